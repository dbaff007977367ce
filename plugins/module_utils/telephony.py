# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Telephony desired state for an Asterisk 22 PBX, compiled once from the roster and the inventory.

Three things come out of a compile, for each PBX:
- configuration files (pjsip.conf, extensions.conf, voicemail.conf, queues.conf, confbridge.conf): what
  changes rarely and is applied by reload (never restart). They carry SIP secrets and PINs, so they are
  written 0640 root:asterisk and never shown in diffs: each file is a sequence of *blocks* introduced by a
  ``;; teleshift: <kind> <name>`` line, and diffs name blocks (``person amartin``), never their content;
- runtime state in the AstDB (families below): forwarding per desk, on-duty numbers of attendants,
  holidays, agents' mobiles. The dialplan reads it on every call, so changing it needs no reload;
- prompts to make on the PBX (espeak-ng from text, or a supplied recording), converted to 8 kHz WAV.

Number policy (toll fraud): every forwarding/transfer target must be a number the organisation allows
(national numbers by default; international and premium-rate refused unless explicitly allowed). The
same check runs at preflight (Problems with file/line/field), at compile time and, as a last guard, in
the dialplan (a regular expression on the dialled string).
"""
from __future__ import annotations

import dataclasses
import functools
import re
import unicodedata
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.asterisk import (
    BLOCK_MARK, CF_ALWAYS, CF_BUSY, CF_DELAY, CF_NOANSWER, CLOSED, HOLIDAY, MANAGED_FAMILIES, MOBILE, MODE_FAMILY,
    ON_DUTY)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

VOICEMAIL_CONTEXT = "teleshift"
FILES = ("pjsip.conf", "extensions.conf", "voicemail.conf", "queues.conf", "confbridge.conf")
HEADER = ("; Written by teleshift (role asterisk_pbx) from the roster and the inventory: do not edit,\n"
          "; changes are overwritten. May contain secrets: 0640 root:asterisk, never shown in diffs.\n")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}\Z")
_EXT_RE = re.compile(r"^[1-9][0-9]{1,5}\Z")
_PIN_RE = re.compile(r"^[0-9]{4,12}\Z")
_DATE_RE = re.compile(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})\Z")
_TIME_RE = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]):([0-5][0-9])\Z")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAYS_RE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?\Z")
_DIGITS_RE = re.compile(r"^[0-9*#+]+\Z")
_DIGITS_ONLY_RE = re.compile(r"[0-9]{2,6}")

# phonenumbers types by policy name; premium_rate is governed by allow_premium alone.
NUMBER_TYPES = ("fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate", "shared_cost",
                "voip", "personal_number", "pager", "uan", "voicemail", "unknown")
DEFAULT_ALLOWED_TYPES = ("fixed_line", "mobile", "fixed_line_or_mobile")
POLICY_KEYS = ("allow_international", "allow_premium", "allow_short_codes", "allowed_types", "allowed_patterns",
               "emergency_numbers")

FEATURE_CODES = {"queue_login": "*45", "queue_logout": "*46", "queue_login_mobile": "*47", "voicemail": "*98"}
TARGET_KEYS = ("transfer", "ring_group", "queue", "extension", "voicemail", "timeout")


# ------------------------------------------------------------------------------------------------
# Number policy
# ------------------------------------------------------------------------------------------------

# Numbers always reachable from softphones (routed to the trunk, no limit), never a forwarding target.
EMERGENCY_NUMBERS = ("15", "17", "18", "112", "114", "115", "119")


@dataclass(frozen=True)
class NumberPolicy:
    region: str = "FR"
    allow_international: bool = False
    allow_premium: bool = False
    allowed_types: tuple = DEFAULT_ALLOWED_TYPES
    allowed_patterns: tuple = ()  # regular expressions on the E.164 form; when set, one must match
    allow_short_codes: bool = False  # short numbers (3949, 118 712...) of the region's short-number plan
    emergency_numbers: tuple = EMERGENCY_NUMBERS
    own_numbers: tuple = ()  # the organisation's own numbers (E.164): never a forwarding target

    def describe(self):
        what = ["national numbers" + ("" if not self.allow_international else " and international numbers")]
        if self.allow_premium:
            what.append("premium-rate numbers")
        if self.allow_short_codes:
            what.append("short codes")
        return ", ".join(what) + f" of types {', '.join(self.allowed_types)}"


def load_number_policy(variables, region="FR", source="inventory"):
    """NumberPolicy from inventory var ``teleshift_phone_policy`` (optional); returns (policy, problems)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.dialrules import check_region, ere

    problems = []
    raw = variables.get("teleshift_phone_policy") or {}
    path = "teleshift_phone_policy"
    if not isinstance(raw, dict):
        return NumberPolicy(region=region), [Problem(source, 0, path, "expected a mapping")]
    values = {"region": region}
    why = check_region(region)
    if why:
        problems.append(Problem(source, 0, "teleshift_phone_region", f"{why}: the number policy cannot be enforced"))
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key not in POLICY_KEYS:
            problems.append(Problem(source, 0, where, "unknown key (known: " + ", ".join(POLICY_KEYS) + ")"))
        elif key in ("allow_international", "allow_premium", "allow_short_codes"):
            if not isinstance(value, bool):
                problems.append(Problem(source, 0, where, "expected true or false"))
            else:
                values[key] = value
        elif key == "allowed_types":
            bad = [v for v in value if v not in NUMBER_TYPES] if isinstance(value, list) else None
            if bad is None or bad:
                problems.append(Problem(source, 0, where, "expected a list of number types among "
                                        + ", ".join(NUMBER_TYPES)
                                        + (f" (unknown: {', '.join(map(str, bad))})" if bad else "")))
            else:
                values[key] = tuple(value)
        elif key == "emergency_numbers":
            if not isinstance(value, list) or not all(_DIGITS_ONLY_RE.fullmatch(str(v)) for v in value):
                problems.append(Problem(source, 0, where, "expected a list of numbers (digits only)"))
            else:
                values[key] = tuple(str(v) for v in value)
        elif key == "allowed_patterns":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(Problem(source, 0, where, "expected a list of regular expressions"))
                continue
            for i, pattern in enumerate(value):
                try:
                    re.compile(pattern)
                    ere(pattern)
                except (re.error, ValueError) as exc:
                    problems.append(Problem(source, 0, f"{where}[{i}]", "not a regular expression the dialplan "
                                            f"can enforce (POSIX ERE: digits, [], (), |, ?, *, +, {{}}): {exc}"))
            values[key] = tuple(value)
    return NumberPolicy(**values), problems


def _parse(number, region):
    """The parsed, valid number (ValueError otherwise). Memoised: every run checks each target for
    the policy, the dial string and the preflight, 5,000 people at ~0.1 ms a parse."""
    return _parse_cached(str(number), region)


@functools.lru_cache(maxsize=65536)
def _parse_cached(number, region):
    import phonenumbers

    try:
        parsed = phonenumbers.parse(str(number), region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{number!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{number!r} is not a valid phone number")
    return parsed


@functools.lru_cache(maxsize=4096)
def short_code(number, region):
    """The digits of ``number`` when it is a valid short number of ``region`` (3949, 118712), else ''."""
    import phonenumbers
    from phonenumbers import shortnumberinfo

    text = str(number)
    if text.strip().startswith("+"):
        return ""
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return ""
    if not shortnumberinfo.is_valid_short_number_for_region(parsed, region):
        return ""
    return phonenumbers.national_significant_number(parsed)


def _short_cost_premium(digits, region):
    import phonenumbers
    from phonenumbers import shortnumberinfo

    parsed = phonenumbers.parse(digits, region)
    return shortnumberinfo.expected_cost_for_region(parsed, region) == shortnumberinfo.ShortNumberCost.PREMIUM_RATE


def check_number(number, policy):
    """None when ``number`` is an allowed forwarding/transfer target, else the reason it is refused.

    The same decisions as the dialplan's rules (dialrules.dial_rules), which tests compare on generated
    numbers: emergency and own numbers refused, then the type of a national number, short codes, abroad."""
    import phonenumbers

    if re.sub(r"[\s.()-]", "", str(number)) in policy.emergency_numbers:
        return f"{number} is an emergency number: never a forwarding or transfer target"
    try:
        parsed = _parse(number, policy.region)
    except ValueError as exc:
        digits = short_code(number, policy.region)
        if not digits:
            return str(exc)
        if not policy.allow_short_codes:
            return (f"{digits} is a short code: refused to prevent toll fraud "
                    "(set teleshift_phone_policy.allow_short_codes: true to allow)")
        if _short_cost_premium(digits, policy.region) and not policy.allow_premium:
            return (f"{digits} is a premium-rate short code: refused to prevent toll fraud "
                    "(set teleshift_phone_policy.allow_premium: true to allow)")
        if policy.allowed_patterns and not any(re.search(p, digits) for p in policy.allowed_patterns):
            return f"{digits} matches none of teleshift_phone_policy.allowed_patterns"
        return None
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 in policy.own_numbers:
        return (f"{e164} is one of the organisation's own numbers (asterisk_pbx_trunk.dids): forwarding "
                "there would loop back into the PBX")
    home = phonenumbers.country_code_for_region(policy.region)
    if parsed.country_code != home and not policy.allow_international:
        return (f"{e164} is an international number: refused to prevent toll fraud "
                "(set teleshift_phone_policy.allow_international: true to allow)")
    kind = _type_name(phonenumbers.number_type(parsed))
    if kind == "premium_rate":
        if not policy.allow_premium:
            return (f"{e164} is a premium-rate number: refused to prevent toll fraud "
                    "(set teleshift_phone_policy.allow_premium: true to allow)")
    elif kind not in policy.allowed_types:
        return (f"{e164} is a {kind.replace('_', '-')} number; allowed types: {', '.join(policy.allowed_types)} "
                "(teleshift_phone_policy.allowed_types)")
    if policy.allowed_patterns and not any(re.search(p, e164) for p in policy.allowed_patterns):
        return f"{e164} matches none of teleshift_phone_policy.allowed_patterns"
    return None


def _type_name(number_type):
    import phonenumbers

    for name in NUMBER_TYPES:
        if getattr(phonenumbers.PhoneNumberType, name.upper()) == number_type:
            return name
    return "unknown"


def e164_of(number, region):
    """The E.164 form of a valid number, '' when it is not one (short codes, garbage)."""
    import phonenumbers

    try:
        return phonenumbers.format_number(_parse(number, region), phonenumbers.PhoneNumberFormat.E164)
    except ValueError:
        return ""


def dial_string(number, region, number_format="national"):
    """What the trunk is sent for ``number``: national digits (0612345678), 00-international, or E.164;
    a short code as its digits."""
    import phonenumbers

    try:
        parsed = _parse(number, region)
    except ValueError:
        digits = short_code(number, region)
        if digits:
            return digits
        raise
    if number_format == "e164":
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if parsed.country_code == phonenumbers.country_code_for_region(region):
        meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
        return (meta.national_prefix or "") + phonenumbers.national_significant_number(parsed)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = (meta.international_prefix if meta and meta.international_prefix and
              meta.international_prefix.isdigit() else "00")
    return prefix + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def dial_rules(policy, number_format="national"):
    """The policy as the dialplan's ordered rules (see dialrules.dial_rules), own numbers and emergency
    numbers refused."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import dialrules

    own = sorted({dial_string(n, policy.region, number_format) for n in policy.own_numbers})
    return dialrules.dial_rules(policy, number_format, own=own, emergency=policy.emergency_numbers)


def rules_allow(rules, num, e164=None):
    """Evaluate dial rules in Python (what the dialplan does with REGEX): True when allowed."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.dialrules import ALLOW

    values = {"num": num, "e164": num if e164 is None else e164}
    for verdict, conds in rules:
        if all(re.search(regex, values[var]) for var, regex in conds):
            return verdict == ALLOW
    return False


def dialplan_e164(num, policy, number_format="national"):
    """What [ts-policy] computes as ${e164} from a dial string (for allowed_patterns)."""
    import phonenumbers

    if number_format == "e164":
        return num
    if num.startswith("00"):
        return "+" + num[2:]
    if num.startswith("0"):
        return f"+{phonenumbers.country_code_for_region(policy.region)}{num[1:]}"
    return num


def dial_regex(policy, number_format="national"):
    """One POSIX regular expression every dial string the rules allow matches (the rules decide)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.dialrules import ALLOW

    firsts = [conds[0][1] for verdict, conds in dial_rules(policy, number_format) if verdict == ALLOW]
    return "(" + ")|(".join(firsts) + ")" if firsts else "^$"


def own_numbers(dids, region):
    """E.164 forms of the operator's numbers of the organisation (asterisk_pbx_trunk.dids keys)."""
    return tuple(sorted({e for e in (e164_of(n, region) for n in dids) if e}))


def forwarding_problems(roster, policy):
    """Problems (line, field forward_to) for active people whose forwarding target the policy refuses."""
    targets = [p for p in roster.active() if p.forward_mode != "none" and p.forward_to]
    verdicts = number_verdicts({p.forward_to for p in targets}, policy)
    return [Problem(roster.source, p.line, "forward_to", verdicts[p.forward_to])
            for p in targets if verdicts[p.forward_to]]


def number_verdicts(numbers, policy):
    """{number: check_number(number, policy)} for many numbers. The verdicts are kept between runs in the
    controller cache (module_utils/cache.py), keyed by the policy, this file and phonenumbers' version:
    parsing 50,000 mobiles took 1.2 s of every plan, report and preflight."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import load_memo, save_memo

    options = (repr(policy), _checker_version())
    memo = load_memo("number-verdicts", options)
    known = memo or {}
    verdicts = {}
    for number in numbers:
        why = known.get(number, False)
        verdicts[number] = why if why is None or isinstance(why, str) else check_number(number, policy)
    if memo is not None and any(n not in memo for n in verdicts):
        save_memo("number-verdicts", options, {str(n): v for n, v in verdicts.items()})
    return verdicts


@functools.lru_cache(maxsize=1)
def _checker_version():
    """What a verdict depends on besides the number and the policy: this file and phonenumbers."""
    import hashlib

    import phonenumbers

    try:
        with open(__file__, "rb") as stream:
            code = hashlib.sha256(stream.read()).hexdigest()[:16]
    except OSError:  # inside a module's payload on a managed host: no cache there anyway
        code = ""
    return code, phonenumbers.__version__


def extension_problems(roster, policy):
    """Problems (line, field extension) for active people whose extension is an emergency number."""
    return [Problem(roster.source, p.line, "extension", f"{p.extension} is an emergency number "
                    f"({', '.join(policy.emergency_numbers)}): choose another extension")
            for p in roster.active() if p.extension and p.extension in policy.emergency_numbers]


# ------------------------------------------------------------------------------------------------
# PBX settings from the inventory (asterisk_pbx_* variables of a pbx_hosts host)
# ------------------------------------------------------------------------------------------------

PBX_VARS = ("asterisk_pbx_trunk", "asterisk_pbx_attendants", "asterisk_pbx_queues", "asterisk_pbx_conferences",
            "asterisk_pbx_mailboxes", "asterisk_pbx_office_hours", "asterisk_pbx_holidays",
            "asterisk_pbx_timezone", "asterisk_pbx_feature_codes", "asterisk_pbx_voicemail",
            "asterisk_pbx_ring_timeout", "asterisk_pbx_sip_port", "asterisk_pbx_codecs",
            "asterisk_pbx_mail_command", "asterisk_pbx_max_outbound_calls", "asterisk_pbx_max_call_seconds")
DEFAULT_MAIL_COMMAND = "/usr/sbin/sendmail -t"
# What reaches a configuration file from the inventory must have one of these shapes (refused otherwise).
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})\Z|^\[?[0-9A-Fa-f:.]{2,45}\]?\Z")
_MATCH_RE = re.compile(r"^[A-Za-z0-9.:-]{1,253}(/[0-9]{1,3})?\Z")
_USER_RE = re.compile(r"^[A-Za-z0-9._+-]{1,64}\Z")
_SECRET_RE = re.compile(r"^[!-~]{1,128}\Z")  # printable ASCII, no space; ';' is escaped where written
_TZ_RE = re.compile(r"^[A-Za-z0-9_+-]{1,32}(/[A-Za-z0-9_+-]{1,32}){0,2}\Z")
_CODEC_RE = re.compile(r"^[a-z0-9_]{2,16}\Z")
_FORMAT_RE = re.compile(r"^[a-z0-9]{2,8}(\|[a-z0-9]{2,8}){0,3}\Z")
# An address every Asterisk file, mail header and command line holds as one plain token.
EMAIL_RE = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})+\Z")


@dataclass
class Target:
    """Where a call goes: a number, a ring group, a queue, an extension; optionally voicemail after."""
    transfer: str = ""  # E.164
    ring_group: tuple = ()  # extensions
    queue: str = ""
    extension: str = ""
    voicemail: str = ""  # box
    timeout: int = 20


@dataclass
class Attendant:
    name: str
    extension: str
    language: str = "fr"
    greeting: dict = field(default_factory=dict)  # {text} or {recording}
    then: Target = field(default_factory=Target)
    menu: dict = field(default_factory=dict)  # digit -> Target
    menu_wait: int = 5
    hours: list = field(default_factory=list)  # [(days, time)]; empty = always open
    holidays: bool = True
    closed: dict = field(default_factory=dict)  # {text} or {recording}
    closed_then: Target = None


@dataclass
class Queue:
    name: str
    extension: str
    agents: tuple = ()  # person ids allowed to log in
    strategy: str = "ringall"
    agent_timeout: int = 15
    announce_position: bool = True
    announce_frequency: int = 30
    max_wait: int = 600
    greeting: dict = field(default_factory=dict)
    then: Target = None  # after max_wait (e.g. voicemail)


@dataclass
class Conference:
    name: str
    extension: str
    pin: str
    max_members: int = 30


@dataclass
class Mailbox:
    box: str
    name: str
    email: str
    pin: str


@dataclass
class Trunk:
    name: str = "operator"
    host: str = ""
    port: int = 5060
    match: tuple = ()
    number_format: str = "national"
    username: str = ""
    password: str = ""
    dids: dict = field(default_factory=dict)  # number as delivered by the operator -> extension
    channels: int = 30


@dataclass
class PbxConfig:
    trunk: Trunk = field(default_factory=Trunk)
    attendants: list = field(default_factory=list)
    queues: list = field(default_factory=list)
    conferences: list = field(default_factory=list)
    mailboxes: list = field(default_factory=list)
    holidays: dict = field(default_factory=dict)  # YYYY-MM-DD -> label
    timezone: str = "Europe/Paris"
    features: dict = field(default_factory=lambda: dict(FEATURE_CODES))
    voicemail: dict = field(default_factory=dict)
    ring_timeout: int = 25
    max_outbound_calls: int = 2  # per endpoint (softphone, forwarding desk, attendant), emergency calls apart
    max_call_seconds: int = 7200  # an answered outbound call is cut after this
    sip_port: int = 5060
    codecs: tuple = ("alaw", "ulaw", "g722")
    mail_command: str = DEFAULT_MAIL_COMMAND  # voicemail notifications: a sendmail-compatible command
    own_numbers: tuple = ()  # E.164 of every DID in the inventory (even one left out): never a target


class _Checker:
    """Small helpers that read one inventory value and record a Problem naming its path."""

    def __init__(self, source):
        self.source = source
        self.problems = []
        self.warnings = []  # what is left out of the configuration (revoked people): never blocks

    def add(self, path, message):
        self.problems.append(Problem(self.source, 0, path, message))

    def warn(self, path, message):
        self.warnings.append(Problem(self.source, 0, path, message))

    def free_text(self, value, path, required=False):
        """Text shown to people (names, labels): no control characters, nor ';' (comments in every file)."""
        value = self.text(value, path, required)
        if value and (has_control(value) or ";" in value):
            self.add(path, "control characters (line breaks...) and ';' are not allowed")
            return ""
        return value

    def mapping(self, value, path):
        if not isinstance(value, dict):
            self.add(path, "expected a mapping")
            return None
        return value

    def keys(self, value, path, known):
        for key in value:
            if key not in known:
                self.add(f"{path}.{key}", "unknown key (known: " + ", ".join(known) + ")")

    def text(self, value, path, required=False, pattern=None, hint=""):
        if value is None or value == "":
            if required:
                self.add(path, "required")
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            self.add(path, "expected text")
            return ""
        value = str(value)
        if pattern and not pattern.match(value):
            self.add(path, f"{value!r} is not {hint}")
            return ""
        return value

    def integer(self, value, path, default, low, high):
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.add(path, f"expected a whole number between {low} and {high}")
            return default
        return value

    def boolean(self, value, path, default):
        if value is None:
            return default
        if not isinstance(value, bool):
            self.add(path, "expected true or false")
            return default
        return value

    def items(self, value, path):
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(path, "expected a list")
            return []
        return value


def _prompt_spec(chk, value, path):
    if value is None:
        return {}
    spec = chk.mapping(value, path)
    if spec is None:
        return {}
    chk.keys(spec, path, ("text", "recording"))
    if bool(spec.get("text")) == bool(spec.get("recording")):
        chk.add(path, "give exactly one of text (spoken by espeak-ng) or recording (a sound file)")
        return {}
    if spec.get("text"):
        return {"text": chk.text(spec["text"], f"{path}.text")}
    return {"recording": chk.text(spec["recording"], f"{path}.recording")}


def _left_out(pid, roster_ids):
    """Why a person named in the PBX settings is left out (revocation wins over stale settings)."""
    if roster_ids is not None and str(pid) in roster_ids:
        return f"{str(pid)!r} is inactive or has no phone in the roster"
    return f"{str(pid)!r} is not in the roster"


def _target(chk, value, path, policy, region, people_ext, roster_ids=None):
    spec = chk.mapping(value, path)
    if spec is None:
        return Target()
    chk.keys(spec, path, TARGET_KEYS)
    target = Target(timeout=chk.integer(spec.get("timeout"), f"{path}.timeout", 20, 5, 300))
    routes = [k for k in ("transfer", "ring_group", "queue", "extension") if spec.get(k)]
    if len(routes) > 1:
        chk.add(path, f"give one of transfer, ring_group, queue or extension, not {' and '.join(routes)}")
    if not routes and not spec.get("voicemail"):
        chk.add(path, "give transfer, ring_group, queue, extension and/or voicemail")
    if spec.get("transfer"):
        why = check_number(spec["transfer"], policy)
        if why:
            chk.add(f"{path}.transfer", why)
        else:
            target.transfer = dial_string(spec["transfer"], region, "e164")
    if spec.get("ring_group"):
        members = []
        for i, member in enumerate(chk.items(spec["ring_group"], f"{path}.ring_group")):
            member = str(member)
            ext = people_ext.get(member, member if _EXT_RE.match(member) else "")
            revoked = {e for pid, e in (roster_ids or {}).items() if e and pid not in people_ext}
            if not ext or ext in revoked:
                chk.warn(f"{path}.ring_group[{i}]", "left out of the ring group: "
                         + (_left_out(member, roster_ids) if not ext else f"extension {ext} is a revoked person's"))
            else:
                members.append(ext)
        target.ring_group = tuple(members)
        if not members:
            chk.warn(f"{path}.ring_group", "nobody is left in this ring group")
    if spec.get("queue"):
        target.queue = chk.text(spec["queue"], f"{path}.queue", pattern=_NAME_RE, hint="a queue name")
    if spec.get("extension"):
        target.extension = chk.text(spec["extension"], f"{path}.extension", pattern=_EXT_RE, hint="an extension")
    if spec.get("voicemail"):
        target.voicemail = chk.text(spec["voicemail"], f"{path}.voicemail", pattern=_EXT_RE,
                                    hint="a voicemail box number")
    return target


def _hours(chk, value, path):
    result = []
    for i, item in enumerate(chk.items(value, path)):
        where = f"{path}[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("days", "time"))
        days = chk.text(item.get("days"), f"{where}.days", True, _DAYS_RE, "days such as mon-fri or sat")
        time = chk.text(item.get("time"), f"{where}.time", True, _TIME_RE, "a time range such as 08:30-12:00")
        if days and time:
            result.append((days, time))
    return result


def load_pbx_config(variables, policy, people_ext=None, source="inventory", roster_ids=None):
    """PbxConfig from a PBX host's variables; returns (config, problems, warnings), each naming the
    variable paths. Problems block; warnings name what is left out and never block: a queue agent,
    ring-group member, attendant target or DID naming someone who is not an active phone user
    (revocation wins over stale settings).

    people_ext: person id -> extension of the PBX's endpoints (to resolve ring groups and agents, and to
    detect collisions); roster_ids: person id -> extension of everyone in the roster (to say why).
    """
    import datetime

    people_ext = people_ext or {}
    chk = _Checker(source)
    cfg = PbxConfig()
    region = policy.region

    trunk = chk.mapping(variables.get("asterisk_pbx_trunk") or {}, "asterisk_pbx_trunk") or {}
    chk.keys(trunk, "asterisk_pbx_trunk", ("name", "host", "port", "match", "number_format", "username",
                                           "password", "dids", "channels"))
    t = cfg.trunk
    t.name = chk.text(trunk.get("name", "operator"), "asterisk_pbx_trunk.name", True, _NAME_RE, "a name")
    t.host = chk.text(trunk.get("host"), "asterisk_pbx_trunk.host", True, _HOST_RE, "a host name or an address")
    t.port = chk.integer(trunk.get("port"), "asterisk_pbx_trunk.port", 5060, 1, 65535)
    t.match = tuple(m for i, m in enumerate(chk.items(trunk.get("match"), "asterisk_pbx_trunk.match"))
                    if chk.text(m, f"asterisk_pbx_trunk.match[{i}]", True, _MATCH_RE, "an address, network or host")
                    ) or ((t.host,) if t.host else ())
    t.number_format = trunk.get("number_format", "national")
    if t.number_format not in ("national", "e164"):
        chk.add("asterisk_pbx_trunk.number_format", "expected national or e164")
        t.number_format = "national"
    t.username = chk.text(trunk.get("username"), "asterisk_pbx_trunk.username", False, _USER_RE,
                          "a user name (letters, digits, . _ + -)")
    t.password = chk.text(trunk.get("password"), "asterisk_pbx_trunk.password", False, _SECRET_RE,
                          "a password of printable characters without spaces")
    if t.username and not t.password:
        chk.add("asterisk_pbx_trunk.password", "required with asterisk_pbx_trunk.username")
    t.channels = chk.integer(trunk.get("channels"), "asterisk_pbx_trunk.channels", 30, 1, 10000)
    dids = chk.mapping(trunk.get("dids") or {}, "asterisk_pbx_trunk.dids") or {}
    for number, ext in dids.items():
        where = f"asterisk_pbx_trunk.dids.{number}"
        if not _DIGITS_RE.match(str(number)):
            chk.add(where, "the number as the operator delivers it: digits, + * # only")
        elif chk.text(ext, where, True, _EXT_RE, "an extension"):
            t.dids[str(number)] = str(ext)
    cfg.own_numbers = own_numbers(t.dids, region)
    policy = dataclasses.replace(policy, own_numbers=tuple(sorted(set(policy.own_numbers) | set(cfg.own_numbers))))

    cfg.timezone = chk.text(variables.get("asterisk_pbx_timezone", "Europe/Paris"), "asterisk_pbx_timezone", True,
                            _TZ_RE, "a timezone such as Europe/Paris") or "Europe/Paris"
    cfg.max_outbound_calls = chk.integer(variables.get("asterisk_pbx_max_outbound_calls"),
                                         "asterisk_pbx_max_outbound_calls", 2, 1, 100)
    cfg.max_call_seconds = chk.integer(variables.get("asterisk_pbx_max_call_seconds"),
                                       "asterisk_pbx_max_call_seconds", 7200, 5, 86400)
    cfg.ring_timeout = chk.integer(variables.get("asterisk_pbx_ring_timeout"), "asterisk_pbx_ring_timeout",
                                   25, 5, 300)
    cfg.sip_port = chk.integer(variables.get("asterisk_pbx_sip_port"), "asterisk_pbx_sip_port", 5060, 1, 65535)
    cfg.mail_command = chk.text(variables.get("asterisk_pbx_mail_command", DEFAULT_MAIL_COMMAND),
                                "asterisk_pbx_mail_command", True, re.compile(r"^/[^\x00-\x1f\x7f;]+\Z"),
                                "an absolute command that reads the message on stdin, e.g. /usr/sbin/sendmail -t"
                                ) or DEFAULT_MAIL_COMMAND
    codecs = variables.get("asterisk_pbx_codecs")
    if codecs is not None:
        cfg.codecs = tuple(str(c) for i, c in enumerate(chk.items(codecs, "asterisk_pbx_codecs"))
                           if chk.text(c, f"asterisk_pbx_codecs[{i}]", True, _CODEC_RE, "a codec name such as alaw"))
    features = chk.mapping(variables.get("asterisk_pbx_feature_codes") or {}, "asterisk_pbx_feature_codes") or {}
    chk.keys(features, "asterisk_pbx_feature_codes", tuple(FEATURE_CODES))
    for key, code in features.items():
        if key in FEATURE_CODES and chk.text(code, f"asterisk_pbx_feature_codes.{key}", True,
                                             re.compile(r"^\*[0-9]{1,3}$"), "a code such as *45"):
            cfg.features[key] = str(code)
    cfg.voicemail = chk.mapping(variables.get("asterisk_pbx_voicemail") or {}, "asterisk_pbx_voicemail") or {}
    chk.keys(cfg.voicemail, "asterisk_pbx_voicemail", ("from_email", "from_name", "max_seconds", "max_messages",
                                                       "attach", "format"))
    vm, where = cfg.voicemail, "asterisk_pbx_voicemail"
    cfg.voicemail = {
        "from_email": chk.text(vm.get("from_email"), f"{where}.from_email", False, EMAIL_RE, "an e-mail address"),
        "from_name": chk.free_text(vm.get("from_name"), f"{where}.from_name"),
        "max_seconds": chk.integer(vm.get("max_seconds"), f"{where}.max_seconds", 180, 10, 3600),
        "max_messages": chk.integer(vm.get("max_messages"), f"{where}.max_messages", 100, 1, 9999),
        "attach": chk.boolean(vm.get("attach"), f"{where}.attach", True),
        "format": chk.text(vm.get("format"), f"{where}.format", False, _FORMAT_RE, "formats such as wav49|wav"),
    }

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_holidays"), "asterisk_pbx_holidays")):
        where = f"asterisk_pbx_holidays[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("date", "label"))
        date = str(item.get("date", ""))
        match = _DATE_RE.match(date)
        try:
            if not match:
                raise ValueError
            datetime.date(*map(int, match.groups()))
        except ValueError:
            chk.add(f"{where}.date", f"{date!r} is not a date such as 2025-12-25")
            continue
        cfg.holidays[date] = chk.free_text(item.get("label"), f"{where}.label") or "holiday"

    office_hours = _hours(chk, variables.get("asterisk_pbx_office_hours"), "asterisk_pbx_office_hours")

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_mailboxes"), "asterisk_pbx_mailboxes")):
        where = f"asterisk_pbx_mailboxes[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("box", "name", "email", "pin"))
        box = Mailbox(box=chk.text(item.get("box"), f"{where}.box", True, _EXT_RE, "a box number"),
                      name=chk.free_text(item.get("name"), f"{where}.name", True),
                      email=chk.text(item.get("email"), f"{where}.email", True, EMAIL_RE, "an e-mail address"),
                      pin=chk.text(item.get("pin"), f"{where}.pin", True, _PIN_RE, "a PIN of 4 to 12 digits"))
        cfg.mailboxes.append(box)

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_queues"), "asterisk_pbx_queues")):
        where = f"asterisk_pbx_queues[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("name", "extension", "agents", "strategy", "agent_timeout", "announce_position",
                               "announce_frequency", "max_wait", "greeting", "then"))
        agents = []
        for j, pid in enumerate(chk.items(item.get("agents"), f"{where}.agents")):
            if str(pid) not in people_ext:
                chk.warn(f"{where}.agents[{j}]", f"left out of the queue: {_left_out(pid, roster_ids)}")
            else:
                agents.append(str(pid))
        strategy = item.get("strategy", "ringall")
        if strategy not in ("ringall", "leastrecent", "fewestcalls", "random", "rrmemory", "linear", "wrandom"):
            chk.add(f"{where}.strategy", f"{strategy!r} is not an Asterisk queue strategy")
            strategy = "ringall"
        cfg.queues.append(Queue(
            name=chk.text(item.get("name"), f"{where}.name", True, _NAME_RE, "a name (a-z, 0-9, - and _)"),
            extension=chk.text(item.get("extension"), f"{where}.extension", True, _EXT_RE, "an extension"),
            agents=tuple(agents), strategy=strategy,
            agent_timeout=chk.integer(item.get("agent_timeout"), f"{where}.agent_timeout", 15, 5, 120),
            announce_position=chk.boolean(item.get("announce_position"), f"{where}.announce_position", True),
            announce_frequency=chk.integer(item.get("announce_frequency"), f"{where}.announce_frequency", 30, 0, 600),
            max_wait=chk.integer(item.get("max_wait"), f"{where}.max_wait", 600, 10, 7200),
            greeting=_prompt_spec(chk, item.get("greeting"), f"{where}.greeting"),
            then=(_target(chk, item["then"], f"{where}.then", policy, region, people_ext, roster_ids)
                  if item.get("then") else None)))

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_conferences"), "asterisk_pbx_conferences")):
        where = f"asterisk_pbx_conferences[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("name", "extension", "pin", "max_members"))
        cfg.conferences.append(Conference(
            name=chk.text(item.get("name"), f"{where}.name", True, _NAME_RE, "a name (a-z, 0-9, - and _)"),
            extension=chk.text(item.get("extension"), f"{where}.extension", True, _EXT_RE, "an extension"),
            pin=chk.text(item.get("pin"), f"{where}.pin", True, _PIN_RE, "a PIN of 4 to 12 digits"),
            max_members=chk.integer(item.get("max_members"), f"{where}.max_members", 30, 2, 500)))

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_attendants"), "asterisk_pbx_attendants")):
        where = f"asterisk_pbx_attendants[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("name", "extension", "language", "greeting", "then", "menu", "menu_wait", "hours",
                               "holidays", "closed", "closed_then"))
        language = item.get("language", "fr")
        if language not in ("fr", "en"):
            chk.add(f"{where}.language", "expected fr or en")
            language = "fr"
        menu = {}
        raw_menu = chk.mapping(item.get("menu") or {}, f"{where}.menu") or {}
        for digit, option in raw_menu.items():
            if not re.match(r"^[0-9]$", str(digit)):
                chk.add(f"{where}.menu.{digit}", "menu keys are single digits 0-9")
                continue
            menu[str(digit)] = _target(chk, option, f"{where}.menu.{digit}", policy, region, people_ext, roster_ids)
        if item.get("then") is None:
            chk.add(f"{where}.then", "required: where calls go after the greeting")
        greeting = _prompt_spec(chk, item.get("greeting"), f"{where}.greeting")
        if not greeting:
            chk.add(f"{where}.greeting", "required: text or recording")
        cfg.attendants.append(Attendant(
            name=chk.text(item.get("name"), f"{where}.name", True, _NAME_RE, "a name (a-z, 0-9, - and _)"),
            extension=chk.text(item.get("extension"), f"{where}.extension", True, _EXT_RE, "an extension"),
            language=language, greeting=greeting,
            then=_target(chk, item.get("then") or {}, f"{where}.then", policy, region, people_ext, roster_ids),
            menu=menu, menu_wait=chk.integer(item.get("menu_wait"), f"{where}.menu_wait", 5, 1, 30),
            hours=_hours(chk, item["hours"], f"{where}.hours") if "hours" in item else list(office_hours),
            holidays=chk.boolean(item.get("holidays"), f"{where}.holidays", True),
            closed=_prompt_spec(chk, item.get("closed"), f"{where}.closed"),
            closed_then=(_target(chk, item["closed_then"], f"{where}.closed_then", policy, region, people_ext,
                                 roster_ids) if item.get("closed_then") else None)))

    _check_references(chk, cfg, people_ext, policy)
    return cfg, chk.problems, chk.warnings


def _check_references(chk, cfg, people_ext, policy):
    owners = {ext: f"person {pid}" for pid, ext in people_ext.items()}
    for kind, items in (("asterisk_pbx_attendants", cfg.attendants), ("asterisk_pbx_queues", cfg.queues),
                        ("asterisk_pbx_conferences", cfg.conferences)):
        names = set()
        for i, item in enumerate(items):
            if item.name and item.name in names:
                chk.add(f"{kind}[{i}].name", f"{item.name!r} is used twice")
            names.add(item.name)
            if item.extension in policy.emergency_numbers:
                chk.add(f"{kind}[{i}].extension", f"{item.extension} is an emergency number")
            elif item.extension and item.extension in owners:
                chk.add(f"{kind}[{i}].extension", f"{item.extension} is already used by {owners[item.extension]}")
            elif item.extension:
                owners[item.extension] = f"{kind}[{i}]"
    boxes = set(people_ext.values())
    for i, box in enumerate(cfg.mailboxes):
        if box.box in boxes or box.box in owners or box.box in policy.emergency_numbers:
            chk.add(f"asterisk_pbx_mailboxes[{i}].box", f"{box.box} is already used")
        boxes.add(box.box)
    service_boxes = {b.box for b in cfg.mailboxes}
    queue_names = {q.name for q in cfg.queues}

    def targets():
        for i, att in enumerate(cfg.attendants):
            yield f"asterisk_pbx_attendants[{i}].then", att.then
            if att.closed_then:
                yield f"asterisk_pbx_attendants[{i}].closed_then", att.closed_then
            for digit, opt in att.menu.items():
                yield f"asterisk_pbx_attendants[{i}].menu.{digit}", opt
        for i, q in enumerate(cfg.queues):
            if q.then:
                yield f"asterisk_pbx_queues[{i}].then", q.then

    # A box or extension nobody holds any more (a person who left) is left out with a warning.
    for path, target in targets():
        if target.voicemail and target.voicemail not in service_boxes and target.voicemail not in people_ext.values():
            chk.warn(f"{path}.voicemail", f"box {target.voicemail} is neither in asterisk_pbx_mailboxes nor an "
                                          "active person's extension: left out")
            target.voicemail = ""
        if target.queue and target.queue not in queue_names:
            chk.add(f"{path}.queue", f"no queue named {target.queue!r} in asterisk_pbx_queues")
        if target.extension and target.extension not in owners:
            chk.warn(f"{path}.extension", f"extension {target.extension} is not defined (nobody active holds it): "
                                          "left out")
            target.extension = ""
    for number, ext in list(cfg.trunk.dids.items()):
        if ext not in owners:
            chk.warn(f"asterisk_pbx_trunk.dids.{number}", f"extension {ext} is not defined (nobody active holds "
                                                          "it): this number is left out")
            del cfg.trunk.dids[number]


def pbx_check(roster, pbx_vars, policy, source="inventory"):
    """(problems, warnings) preflight reports for telephony: people's extensions and forwarding (against
    the policy and every PBX's own numbers) and each PBX's settings."""
    own = set(policy.own_numbers)
    for host_vars in pbx_vars.values():
        trunk = host_vars.get("asterisk_pbx_trunk")
        dids = trunk.get("dids") if isinstance(trunk, dict) else None
        if isinstance(dids, dict):
            own |= set(own_numbers([str(n) for n in dids], policy.region))
    policy = dataclasses.replace(policy, own_numbers=tuple(sorted(own)))
    problems = extension_problems(roster, policy) + forwarding_problems(roster, policy)
    warnings = []
    people_ext = {p.id: p.extension for p in phone_people(roster)}
    roster_ids = {p.id: p.extension for p in roster.people}
    for host in sorted(pbx_vars):
        _cfg, found, left_out = load_pbx_config(pbx_vars[host], policy, people_ext, source=f"{source} ({host})",
                                                roster_ids=roster_ids)
        problems.extend(found)
        warnings.extend(left_out)
    return problems, warnings


def pbx_problems(roster, pbx_vars, policy, source="inventory"):
    """The blocking half of pbx_check."""
    return pbx_check(roster, pbx_vars, policy, source)[0]


# ------------------------------------------------------------------------------------------------
# Runtime state (AstDB)
# ------------------------------------------------------------------------------------------------

def desired_astdb(people, cfg, policy, owners=None):
    """{family: {key: value}} for the managed families. ``people``: active roster people with a phone.

    owners (out): key label -> person id or item name, to name the people in diffs.
    """
    fmt = cfg.trunk.number_format
    policy = pbx_policy(policy, cfg)
    state = {fam: {} for fam in MANAGED_FAMILIES}
    labels = {} if owners is None else owners
    for person in people:
        if not person.extension:
            continue
        if person.forward_to and check_number(person.forward_to, policy) is None:
            dial = dial_string(person.forward_to, policy.region, fmt)
            state[MOBILE][person.extension] = dial
            if person.forward_mode in MODE_FAMILY:
                state[MODE_FAMILY[person.forward_mode]][person.extension] = dial
                if person.forward_mode == "no_answer":
                    state[CF_DELAY][person.extension] = str(person.forward_delay)
        labels[person.extension] = f"person {person.id}"
    for att in cfg.attendants:
        if att.then.transfer:
            state[ON_DUTY][att.name] = dial_string(att.then.transfer, policy.region, fmt)
        labels[att.name] = f"attendant {att.name}"
    for date, label in cfg.holidays.items():
        state[HOLIDAY][date] = label
        labels[date] = f"holiday {date}"
    return state


# ------------------------------------------------------------------------------------------------
# Configuration files
# ------------------------------------------------------------------------------------------------

def _block(kind, name, text):
    return f"{BLOCK_MARK}{kind} {re.sub(r'[^A-Za-z0-9._ -]', '_', str(name))}\n{text}\n"


def has_control(text):
    """True when ``text`` holds a character no configuration line may hold (controls, line separators)."""
    return any(unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp") for c in str(text))


def clean_text(text, drop="", limit=80):
    """``text`` for one configuration value: control characters and line separators become spaces, the
    characters in ``drop`` (and ';', a comment everywhere in Asterisk files) go, spaces are collapsed."""
    text = "".join(" " if unicodedata.category(c)[0] == "C" or unicodedata.category(c) in ("Zl", "Zp")
                   else c for c in str(text))
    text = "".join(c for c in text if c not in drop and c != ";")
    return " ".join(text.split())[:limit]


def _quote_name(name):
    """A display name inside callerid="..." <ext> (pjsip.conf) or a mail header: no quote, no brackets."""
    return clean_text(name, '\\"<>[]') or "-"


def _conf_value(value):
    """A secret or token as an Asterisk option value: ';' escaped (\\;), nothing that ends the line."""
    value = str(value)
    if has_control(value) or value != value.strip() or not value:
        raise ValueError("a value for an Asterisk file holds a line break, a control character or "
                         "surrounding spaces")
    return value.replace(";", "\\;")


def safe_email(email):
    """``email`` when it is one plain address (EMAIL_RE), else '' (the file gets no address)."""
    return email if isinstance(email, str) and EMAIL_RE.match(email) else ""


def render_pjsip(people, cfg, secret_of):
    """pjsip.conf: transport, the operator trunk, and endpoint+auth+aor per person (by extension).

    Every value is written safely on its own (defence in depth, whatever the roster let through):
    names lose what would end the line or the quoted callerid, secrets are checked and ';' escaped."""
    t = cfg.trunk
    allow = ",".join(cfg.codecs)
    parts = [HEADER,
             _block("global", "pjsip",
                    "[global]\ntype=global\nendpoint_identifier_order=ip,username\n"
                    "user_agent=teleshift-pbx\ndefault_realm=teleshift\n"),
             _block("transport", "udp",
                    f"[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:{int(cfg.sip_port)}\n")]
    trunk = (f"[{t.name}]\ntype=endpoint\ncontext=ts-from-trunk\ndisallow=all\nallow={allow}\naors={t.name}\n"
             "direct_media=no\nrtp_symmetric=yes\nsend_pai=yes\ntrust_id_inbound=no\nsend_connected_line=no\n")
    if t.username:
        trunk += f"outbound_auth={t.name}-auth\n"
    trunk += f"\n[{t.name}]\ntype=aor\ncontact=sip:{t.host}:{int(t.port)}\nqualify_frequency=0\n"
    trunk += f"\n[{t.name}]\ntype=identify\nendpoint={t.name}\n" + "".join(f"match={m}\n" for m in t.match)
    if t.username:
        trunk += (f"\n[{t.name}-auth]\ntype=auth\nauth_type=userpass\nusername={_conf_value(t.username)}\n"
                  f"password={_conf_value(t.password)}\n"
                  f"\n[{t.name}]\ntype=registration\noutbound_auth={t.name}-auth\n"
                  f"server_uri=sip:{t.host}:{int(t.port)}\nclient_uri=sip:{t.username}@{t.host}:{int(t.port)}\n"
                  "retry_interval=60\n")
    parts.append(_block("trunk", t.name, trunk))
    for p in people:
        ext = p.extension
        mailbox = f"mailboxes={ext}@{VOICEMAIL_CONTEXT}\n" if p.voicemail else ""
        language = p.language if p.language in ("fr", "en") else "fr"
        parts.append(_block("person", p.id,
                            f"[{ext}]\ntype=endpoint\ncontext=ts-internal\ndisallow=all\nallow={allow}\n"
                            f"auth={ext}\naors={ext}\ncallerid=\"{_quote_name(p.full_name)}\" <{ext}>\n"
                            f"language={language}\n{mailbox}"
                            "direct_media=no\nrtp_symmetric=yes\nforce_rport=yes\nrewrite_contact=yes\n"
                            "allow_subscribe=yes\n"
                            f"\n[{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\n"
                            f"password={_secret(secret_of(p, 'sip_password'), _SIP_SECRET_RE, p, 'sip_password')}\n"
                            f"\n[{ext}]\ntype=aor\nmax_contacts=2\nremove_existing=yes\n"))
    return "".join(parts)


_SIP_SECRET_RE = re.compile(r"^[A-Za-z0-9._~+/=-]{8,128}\Z")
_VM_PIN_RE = re.compile(r"^[0-9]{4,12}\Z")


def _secret(value, pattern, person, name):
    """A kept secret as written in a file: it must look like what teleshift makes (a damaged kit file
    must not inject lines); ValueError names the kit file otherwise."""
    value = str(value)
    if value == "(new secret)":  # check mode's placeholder for a secret not made yet
        return value
    if not pattern.match(value):
        raise ValueError(f"the kit file {person.id}/phone/{name} does not hold a secret teleshift made "
                         "(unexpected characters or length): remove it to make a new one")
    return value


def _prompt_path(sounds_dir, name):
    return f"{sounds_dir}/{name}"


def prompt_name(kind, owner, what):
    return f"ts-{kind}-{owner}-{what}"


def _target_lines(target, name, sounds_dir, trunk):
    """Dialplan priorities (same => n,...) that send a call to ``target``."""
    lines = []
    dialed = False
    if target.transfer:
        # The on-duty number is runtime data (AstDB): changing it needs no reload.
        lines.append(f"same => n,Gosub(ts-forward,s,1(${{DB({ON_DUTY}/{name})}},{name},{target.timeout}))")
        dialed = True
    elif target.ring_group:
        lines.append(f"same => n,Dial({'&'.join(f'PJSIP/{e}' for e in target.ring_group)},{target.timeout})")
        dialed = True
    elif target.queue:
        lines.append(f"same => n,Goto(ts-queue-{target.queue},s,1)")
    elif target.extension:
        lines.append(f"same => n,Goto(ts-route,{target.extension},1)")
    if target.voicemail:
        if dialed:
            lines.append('same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)')
        lines.append(f"same => n,VoiceMail({target.voicemail}@{VOICEMAIL_CONTEXT},u)")
    lines.append("same => n(done),Hangup()")
    return lines


def _time_checks(hours, tz):
    return [f"same => n,GotoIfTime({time},{days},*,*,{tz}?open,1)" for days, time in hours]


def render_extensions(people, cfg, policy, sounds_dir):
    """extensions.conf: Gosub-only dialplan (no Macro) reading forwarding, on-duty numbers and holidays
    from the AstDB at call time."""
    t = cfg.trunk
    policy = pbx_policy(policy, cfg)
    tz = cfg.timezone
    fc = cfg.features
    out = [HEADER]
    out.append(_block("general", "dialplan",
                      "[general]\nstatic=yes\nwriteprotect=yes\nclearglobalvars=yes\n\n"
                      f"[globals]\nTS_TRUNK={t.name}\nTS_RING_TIMEOUT={int(cfg.ring_timeout)}\n"
                      f"TS_MAX_OUT={int(cfg.max_outbound_calls)}\nTS_MAX_SECS={int(cfg.max_call_seconds)}\n"))
    # Subroutines
    out.append(_block("subroutine", "ts-policy", render_policy(policy, t.number_format)))
    out.append(_block("subroutine", "ts-forward", "\n".join([
        "; Gosub(ts-forward,s,1(dial string,who,timeout)): every call to the trunk but emergency calls: the",
        "; number policy (ts-policy), at most TS_MAX_OUT calls at once per endpoint (who), cut after",
        "; TS_MAX_SECS. Returns with DIALSTATUS set, and TS_REFUSED=policy or limit when refused.",
        "[ts-forward]",
        "exten => s,1,Set(LOCAL(num)=${ARG1})",
        "same => n,Set(TS_REFUSED=)",
        "same => n,Gosub(ts-policy,s,1(${num}))",
        'same => n,GotoIf($["${GOSUB_RETVAL}" = "allow"]?allowed)',
        "same => n,Log(NOTICE,teleshift: refused to dial ${num} for ${ARG2}: not an allowed number)",
        "same => n,Set(TS_REFUSED=policy)",
        "same => n,Set(DIALSTATUS=CHANUNAVAIL)",
        "same => n,Return()",
        "same => n(allowed),Set(GROUP(tsout)=${ARG2})",
        "same => n,GotoIf($[${GROUP_COUNT(${ARG2}@tsout)} <= ${TS_MAX_OUT}]?dial)",
        "same => n,Log(NOTICE,teleshift: refused to dial ${num} for ${ARG2}: ${TS_MAX_OUT} outbound calls already)",
        "same => n,Set(GROUP(tsout)=)",
        "same => n,Set(TS_REFUSED=limit)",
        "same => n,Set(DIALSTATUS=CHANUNAVAIL)",
        "same => n,Return()",
        "same => n(dial),Dial(PJSIP/${num}@${TS_TRUNK},${IF($[\"${ARG3}\" = \"\"]?60:${ARG3})},S(${TS_MAX_SECS}))",
        "same => n,Set(GROUP(tsout)=)",
        "same => n,Return()",
    ]) + "\n"))
    out.append(_block("subroutine", "ts-desk", "\n".join([
        "; Gosub(ts-desk,s,1(extension,has voicemail)): ring a desk; forwarding comes from the AstDB",
        f"; ({CF_ALWAYS} always, {CF_BUSY} on busy, {CF_NOANSWER} after {CF_DELAY} seconds): no reload to change it.",
        "[ts-desk]",
        "exten => s,1,Set(LOCAL(ext)=${ARG1})",
        f"same => n,Set(LOCAL(always)=${{DB({CF_ALWAYS}/${{ext}})}})",
        'same => n,GotoIf($["${always}" != ""]?always)',
        f"same => n,Set(LOCAL(onbusy)=${{DB({CF_BUSY}/${{ext}})}})",
        f"same => n,Set(LOCAL(noanswer)=${{DB({CF_NOANSWER}/${{ext}})}})",
        f"same => n,Set(LOCAL(delay)=${{DB({CF_DELAY}/${{ext}})}})",
        'same => n,Set(LOCAL(delay)=${IF($["${delay}" = ""]?${TS_RING_TIMEOUT}:${delay})})',
        "same => n,Dial(PJSIP/${ext},${delay})",
        'same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?done)',
        'same => n,GotoIf($["${DIALSTATUS}" = "BUSY" & "${onbusy}" != ""]?busy)',
        'same => n,GotoIf($["${DIALSTATUS}" != "BUSY" & "${noanswer}" != ""]?noanswer)',
        'same => n,GotoIf($["${ARG2}" = "1"]?voicemail)',
        'same => n,GotoIf($["${DIALSTATUS}" = "BUSY"]?isbusy)',
        "same => n,Return()",
        "same => n(isbusy),Busy(3)",
        "same => n,Return()",
        "same => n(always),Gosub(ts-forward,s,1(${always},${ext}))",
        "same => n,Return()",
        "same => n(busy),Gosub(ts-forward,s,1(${onbusy},${ext}))",
        "same => n,Return()",
        "same => n(noanswer),Gosub(ts-forward,s,1(${noanswer},${ext}))",
        "same => n,Return()",
        f'same => n(voicemail),VoiceMail(${{ext}}@{VOICEMAIL_CONTEXT},${{IF($["${{DIALSTATUS}}" = "BUSY"]?b:u)}})',
        "same => n(done),Return()",
    ]) + "\n"))
    # Desks
    desks = ["[ts-desks]"]
    for p in people:
        desks.append(f"exten => {p.extension},1,Gosub(ts-desk,s,1({p.extension},{1 if p.voicemail else 0}))")
        desks.append("same => n,Hangup()")
    out.append(_block("desks", "all", "\n".join(desks) + "\n"))
    # Services: attendants, queues, conferences, DIDs
    services = ["[ts-services]"]
    for att in cfg.attendants:
        services.append(f"exten => {att.extension},1,Goto(ts-att-{att.name},s,1)")
    for q in cfg.queues:
        services.append(f"exten => {q.extension},1,Goto(ts-queue-{q.name},s,1)")
    for c in cfg.conferences:
        services.append(f"exten => {c.extension},1,Goto(ts-conf-{c.name},s,1)")
    out.append(_block("services", "all", "\n".join(services) + "\n"))
    out.append(_block("context", "ts-route", "[ts-route]\ninclude => ts-desks\ninclude => ts-services\n"))
    for att in cfg.attendants:
        out.append(_block("attendant", att.name, _render_attendant(att, cfg, sounds_dir, tz)))
    for q in cfg.queues:
        out.append(_block("queue", q.name, _render_queue(q, people, cfg, sounds_dir)))
    for c in cfg.conferences:
        out.append(_block("conference", c.name, "\n".join([
            f"[ts-conf-{c.name}]",
            "exten => s,1,Answer()",
            f"same => n,ConfBridge({c.name},ts-bridge-{c.name},ts-user-{c.name})",
            "same => n,Hangup()"]) + "\n"))
    # Entry points
    out.append(_block("context", "ts-from-trunk", "\n".join(
        ["; Calls from the operator: desks and services by extension, and the operator's numbers (DIDs).",
         "[ts-from-trunk]", "include => ts-desks", "include => ts-services"]
        + [f"exten => {num},1,Goto(ts-route,{ext},1)" for num, ext in sorted(cfg.trunk.dids.items())]
        + ["exten => i,1,Congestion(3)"]) + "\n"))
    features = ["[ts-features]",
                f"exten => {fc['voicemail']},1,VoiceMailMain(${{CHANNEL(endpoint)}}@{VOICEMAIL_CONTEXT})",
                "same => n,Hangup()"]
    for q in cfg.queues:
        features += [
            f"exten => {fc['queue_login']}{q.extension},1,Gosub(ts-agent,login,1({q.name},PJSIP))",
            "same => n,Hangup()",
            f"exten => {fc['queue_login_mobile']}{q.extension},1,Gosub(ts-agent,login,1({q.name},mobile))",
            "same => n,Hangup()",
            f"exten => {fc['queue_logout']}{q.extension},1,Gosub(ts-agent,logout,1({q.name}))",
            "same => n,Hangup()"]
    out.append(_block("context", "ts-features", "\n".join(features) + "\n"))
    out.append(_block("subroutine", "ts-agent", "\n".join([
        "; Agents log in to a queue from their softphone (reached there or on their mobile) and log out.",
        "[ts-agent]",
        "exten => login,1,Set(LOCAL(ext)=${CHANNEL(endpoint)})",
        "same => n,Answer()",
        "same => n,Set(LOCAL(agents)=${TS_AGENTS_${ARG1}})",
        'same => n,GotoIf($[${FIELDNUM(agents,&,${ext})} = 0]?refused)',
        'same => n,GotoIf($["${ARG2}" = "mobile"]?mobile)',
        "same => n,AddQueueMember(${ARG1},PJSIP/${ext},,,${ext})",
        "same => n,Playback(agent-loginok)",
        "same => n,Return()",
        f'same => n(mobile),GotoIf($["${{DB({MOBILE}/${{ext}})}}" = ""]?refused)',
        "same => n,AddQueueMember(${ARG1},Local/${ext}@ts-agent-mobile/n,,,${ext}-mobile)",
        "same => n,Playback(agent-loginok)",
        "same => n,Return()",
        "same => n(refused),Playback(ss-noservice)",
        "same => n,Return()",
        "exten => logout,1,Set(LOCAL(ext)=${CHANNEL(endpoint)})",
        "same => n,Answer()",
        "same => n,RemoveQueueMember(${ARG1},PJSIP/${ext})",
        "same => n,RemoveQueueMember(${ARG1},Local/${ext}@ts-agent-mobile/n)",
        "same => n,Playback(agent-loggedoff)",
        "same => n,Return()",
        "",
        "[ts-agent-mobile]",
        f"exten => _X.,1,Gosub(ts-forward,s,1(${{DB({MOBILE}/${{EXTEN}})}},${{EXTEN}}))",
        "same => n,Hangup()",
    ]) + "\n"))
    agents_globals = "".join(
        f"TS_AGENTS_{q.name}={'&'.join(p.extension for p in people if p.id in q.agents)}\n" for q in cfg.queues)
    out[1] = out[1].rstrip("\n") + "\n" + agents_globals + "\n"
    out.append(_block("context", "ts-emergency", render_emergency(policy)))
    out.append(_block("context", "ts-dialout", render_dialout(cfg, policy)))
    internal = ["; Softphones: emergency numbers first, then desks, services, feature codes, and the",
                "; outside through the number policy and the limits (ts-dialout). First match wins.",
                "[ts-internal]", "include => ts-emergency", "include => ts-desks", "include => ts-services",
                "include => ts-features", "include => ts-dialout"]
    out.append(_block("context", "ts-internal", "\n".join(internal) + "\n"))
    return "".join(out)


def pbx_policy(policy, cfg):
    """The policy with this PBX's own numbers (its DIDs) added: never a target."""
    own = set(policy.own_numbers) | set(cfg.own_numbers) | set(own_numbers(cfg.trunk.dids, policy.region))
    return dataclasses.replace(policy, own_numbers=tuple(sorted(own)))


def render_policy(policy, number_format):
    """[ts-policy]: Gosub(ts-policy,s,1(dial string)) returns allow or refuse, by the policy's rules in
    order (phonenumbers' own patterns for the region, as POSIX ERE: see dialrules.py)."""
    import phonenumbers

    cc = phonenumbers.country_code_for_region(policy.region)
    lines = ["; The number policy (teleshift_phone_policy) for every call to the trunk but emergency calls:",
             f"; phonenumbers' patterns for {policy.region}, tried in its order; the first rule that matches decides.",
             "[ts-policy]",
             "exten => s,1,Set(LOCAL(num)=${ARG1})",
             "same => n,Set(LOCAL(e164)=${num})"]
    if number_format != "e164":
        lines += [f'same => n,ExecIf($["${{num:0:1}}" = "0"]?Set(LOCAL(e164)=+{cc}${{num:1}}))',
                  'same => n,ExecIf($["${num:0:2}" = "00"]?Set(LOCAL(e164)=+${num:2}))']
    for verdict, conds in dial_rules(policy, number_format):
        test = " & ".join(f'${{REGEX("{regex}" ${{{var}}})}}' for var, regex in conds)
        lines.append(f"same => n,GotoIf($[{test}]?{verdict})")
    lines += ["same => n(refuse),Return(refuse)", "same => n(allow),Return(allow)"]
    return "\n".join(lines) + "\n"


def render_emergency(policy):
    lines = ["; Emergency numbers: always allowed from softphones, straight to the trunk, no limit.",
             "[ts-emergency]"]
    for number in policy.emergency_numbers:
        lines += [f"exten => {number},1,Dial(PJSIP/{number}@${{TS_TRUNK}})", "same => n,Hangup()"]
    return "\n".join(lines) + "\n"


def render_dialout(cfg, policy):
    """[ts-dialout]: softphones' calls to the outside. Digits only; the organisation's own numbers stay
    inside; refused calls get a SIP refusal: 403 (policy) or 486 (too many calls at once)."""
    import phonenumbers

    cc = phonenumbers.country_code_for_region(policy.region)
    lines = ["; Softphones' calls to the outside: digits only, then ts-forward (policy and limits).",
             "[ts-dialout]"]
    for number, ext in sorted(cfg.trunk.dids.items()):
        national = dial_string(number, policy.region, "national") if e164_of(number, policy.region) else ""
        if re.fullmatch(r"[0-9]{3,16}", national):
            lines.append(f"exten => {national},1,Goto(ts-route,{ext},1)")
    lines += ["exten => _X.,1,Set(TS_NUM=${FILTER(0-9,${EXTEN})})",
              "same => n,GotoIf($[${LEN(${TS_NUM})} != ${LEN(${EXTEN})}]?policy)",
              "same => n,Set(TS_DIAL=${TS_NUM})"]
    if cfg.trunk.number_format == "e164":
        lines += [f'same => n,ExecIf($["${{TS_NUM:0:1}}" = "0"]?Set(TS_DIAL=+{cc}${{TS_NUM:1}}))',
                  'same => n,ExecIf($["${TS_NUM:0:2}" = "00"]?Set(TS_DIAL=+${TS_NUM:2}))']
    lines += ["same => n,Gosub(ts-forward,s,1(${TS_DIAL},${CHANNEL(endpoint)},60))",
              'same => n,GotoIf($["${TS_REFUSED}" = "policy"]?policy)',
              'same => n,GotoIf($["${TS_REFUSED}" = "limit"]?limit)',
              "same => n,Hangup()",
              "same => n(policy),Hangup(21)",
              "same => n(limit),Hangup(17)"]
    return "\n".join(lines) + "\n"


def _render_attendant(att, cfg, sounds_dir, tz):
    ctx = f"ts-att-{att.name}"
    greeting = _prompt_path(sounds_dir, prompt_name("att", att.name, "greeting"))
    lines = [f"[{ctx}]", "exten => s,1,Answer()",
             "same => n,Set(CHANNEL(language)=" + att.language + ")",
             f'same => n,GotoIf($["${{DB({CLOSED}/{att.name})}}" != ""]?closed,1)']
    if att.holidays:
        lines.append(f'same => n,GotoIf($["${{DB({HOLIDAY}/${{STRFTIME(${{EPOCH}},{tz},%Y-%m-%d)}})}}" != ""]'
                     "?closed,1)")
    if att.hours:
        lines += _time_checks(att.hours, tz)
        lines.append("same => n,Goto(closed,1)")
    else:
        lines.append("same => n,Goto(open,1)")
    if att.menu:
        lines += ["exten => open,1,Set(TIMEOUT(digit)=3)",
                  f"same => n,Background({greeting})",
                  f"same => n,WaitExten({att.menu_wait})",
                  "same => n,Goto(default,1)"]
        for digit, option in sorted(att.menu.items()):
            lines.append(f"exten => {digit},1,NoOp(menu option {digit})")
            lines += _target_lines(option, att.name, sounds_dir, cfg.trunk)
        lines += ["exten => i,1,Playback(option-is-invalid)", "same => n,Goto(open,1)",
                  "exten => t,1,Goto(default,1)"]
    else:
        lines += ["exten => open,1,Playback(" + greeting + ")", "same => n,Goto(default,1)"]
    lines.append("exten => default,1,NoOp(attendant " + att.name + " default route)")
    lines += _target_lines(att.then, att.name, sounds_dir, cfg.trunk)
    lines.append("exten => closed,1,NoOp(attendant " + att.name + " closed)")
    if att.closed:
        lines.append("same => n,Playback(" + _prompt_path(sounds_dir, prompt_name("att", att.name, "closed")) + ")")
    if att.closed_then:
        lines += _target_lines(att.closed_then, att.name, sounds_dir, cfg.trunk)
    else:
        lines.append("same => n,Hangup()")
    return "\n".join(lines) + "\n"


def _render_queue(q, people, cfg, sounds_dir):
    lines = [f"[ts-queue-{q.name}]", "exten => s,1,Answer()"]
    if q.greeting:
        lines.append("same => n,Playback(" + _prompt_path(sounds_dir, prompt_name("queue", q.name, "greeting")) + ")")
    lines.append(f"same => n,Queue({q.name},t,,,{q.max_wait})")
    if q.then:
        lines += _target_lines(q.then, q.name, sounds_dir, cfg.trunk)
    else:
        lines.append("same => n,Hangup()")
    return "\n".join(lines) + "\n"


def render_voicemail(people, cfg, secret_of):
    """voicemail.conf. A box is ``box => pin,name,email,pager,options``: names lose ',' '|' and what would
    end the line, an address that is not one plain address is left out (no e-mail, the box still works)."""
    vm = cfg.voicemail
    general = ["[general]",
               f"format={vm.get('format') or 'wav49|wav'}",
               f"serveremail={safe_email(vm.get('from_email')) or 'pbx@localhost'}",
               f"fromstring={_vm_text(vm.get('from_name') or 'Messagerie vocale')}",
               f"attach={'yes' if vm.get('attach', True) else 'no'}",
               f"maxmsg={int(vm.get('max_messages') or 100)}",
               f"maxsecs={int(vm.get('max_seconds') or 180)}",
               "maxlogins=3",
               f"mailcmd={cfg.mail_command}",
               "emailsubject=[PBX] ${VM_CALLERID}: message ${VM_MSGNUM} in box ${VM_MAILBOX}",
               "emailbody=${VM_NAME},\\n\\n${VM_CALLERID} left a message (${VM_DUR}) on ${VM_DATE}.\\n",
               "", "[zonemessages]", f"local={cfg.timezone}|'vm-received' q 'digits/at' R", ""]
    out = [HEADER, _block("general", "voicemail", "\n".join(general))]
    lines = [f"[{VOICEMAIL_CONTEXT}]"]
    out.append(_block("context", VOICEMAIL_CONTEXT, "\n".join(lines)))
    for p in people:
        if p.voicemail:
            pin = _secret(secret_of(p, 'voicemail_pin'), _VM_PIN_RE, p, "voicemail_pin")
            out.append(_block("person", p.id,
                              f"{p.extension} => {pin},{_vm_text(p.full_name)},"
                              f"{safe_email(p.email)},,attach=yes|tz=local|saycid=no|envelope=no"))
    for box in cfg.mailboxes:
        out.append(_block("mailbox", box.box,
                          f"{box.box} => {box.pin},{_vm_text(box.name)},{safe_email(box.email)},,attach=yes|tz=local"))
    return "".join(out)


def _vm_text(text):
    """A name in a voicemail.conf box line (fields split on ',', options on '|'; also a mail header)."""
    return clean_text(text, ',|\\"<>') or "-"


def render_queues(people, cfg):
    out = [HEADER, _block("general", "queues",
                          "[general]\npersistentmembers=yes\nautofill=yes\nshared_lastcall=yes\n"
                          "monitor-type=MixMonitor\n")]
    for q in cfg.queues:
        out.append(_block("queue", q.name,
                          f"[{q.name}]\nstrategy={q.strategy}\ntimeout={q.agent_timeout}\nretry=3\nwrapuptime=5\n"
                          f"announce-position={'yes' if q.announce_position else 'no'}\n"
                          f"announce-frequency={q.announce_frequency}\nannounce-holdtime=no\n"
                          "joinempty=yes\nleavewhenempty=no\nringinuse=no\nmusicclass=default\n"))
    return "".join(out)


def render_confbridge(cfg):
    out = [HEADER]
    for c in cfg.conferences:
        out.append(_block("conference", c.name,
                          f"[ts-bridge-{c.name}]\ntype=bridge\nmax_members={c.max_members}\n\n"
                          f"[ts-user-{c.name}]\ntype=user\npin={c.pin}\nannounce_user_count=yes\n"
                          "announce_join_leave=no\nquiet=no\n"))
    return "".join(out)


# ------------------------------------------------------------------------------------------------
# The whole plan for one PBX
# ------------------------------------------------------------------------------------------------

@dataclass
class PbxPlan:
    files: dict  # file name -> text (contains secrets)
    astdb: dict  # family -> {key: value}
    labels: dict  # AstDB key -> who (for diffs)
    prompts: list  # [{name, text, language} or {name, recording}]
    people: dict  # extension -> person id
    dial_regex: str = ""


_PERSON_ID_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}\Z")


def phone_people(roster, warnings=None):
    """Active people with an extension who need a phone or forward their desk: the PBX's endpoints.

    Defence in depth: a person whose id or extension could not be written safely into the PBX's files,
    or whose extension is an emergency number, is left out (appended to ``warnings`` when given)."""
    people = []
    for p in roster.active():
        if not (p.extension and ("phone" in p.needs or p.forward_mode != "none")):
            continue
        if (_PERSON_ID_RE.match(str(p.id)) and _EXT_RE.match(str(p.extension))
                and p.extension not in EMERGENCY_NUMBERS):
            people.append(p)
        elif warnings is not None:
            warnings.append(Problem(roster.source, p.line, "extension",
                                    "left out of the PBX: its id or extension cannot be used there"))
    return people


def prompts_of(cfg):
    prompts = []
    for att in cfg.attendants:
        for what, spec in (("greeting", att.greeting), ("closed", att.closed)):
            if spec:
                prompts.append({"name": prompt_name("att", att.name, what), "language": att.language, **spec})
    for q in cfg.queues:
        if q.greeting:
            prompts.append({"name": prompt_name("queue", q.name, "greeting"), "language": "fr", **q.greeting})
    return prompts


def render_manager():
    """manager.conf: the manager interface on 127.0.0.1 only; users in manager.d (teleshift's is made on the PBX)."""
    return (HEADER + _block("general", "manager",
                            "[general]\nenabled = yes\nport = 5038\nbindaddr = 127.0.0.1\ndisplayconnects = no\n\n"
                            '#include "manager.d/*.conf"\n'))


def render_rtp(start=10000, end=10999):
    return HEADER + _block("general", "rtp", f"[general]\nrtpstart={start}\nrtpend={end}\nstrictrtp=yes\n")


def plan_pbx(people, cfg, policy, secret_of, sounds_dir="/var/lib/asterisk/sounds/teleshift", rtp=(10000, 10999)):
    """Everything one PBX should hold. ``secret_of(person, name)`` returns that person's kept secret."""
    labels = {}
    policy = pbx_policy(policy, cfg)
    return PbxPlan(
        files={
            "manager.conf": render_manager(),
            "rtp.conf": render_rtp(*rtp),
            "pjsip.conf": render_pjsip(people, cfg, secret_of),
            "extensions.conf": render_extensions(people, cfg, policy, sounds_dir),
            "voicemail.conf": render_voicemail(people, cfg, secret_of),
            "queues.conf": render_queues(people, cfg),
            "confbridge.conf": render_confbridge(cfg),
        },
        astdb=desired_astdb(people, cfg, policy, labels),
        labels=labels,
        prompts=prompts_of(cfg),
        people={p.extension: p.id for p in people},
        dial_regex=dial_regex(policy, cfg.trunk.number_format),
    )


def new_pin(length=6):
    import secrets

    return "".join(secrets.choice("0123456789") for _i in range(length))


SECRET_MAKERS = {"sip_password": None, "voicemail_pin": new_pin}  # None: kits.new_password (20 characters)


def kit_secrets(kits_root):
    """secret_of(person, name) backed by the person's kit (``<kits>/<id>/phone/<name>``): kept across runs."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import kept_secret

    cache = {}

    def secret_of(person, name):
        key = (person.id, name)
        if key not in cache:
            make = SECRET_MAKERS.get(name)
            cache[key] = (kept_secret(kits_root, person.id, "phone", name, make=make) if make
                          else kept_secret(kits_root, person.id, "phone", name))
        return cache[key]

    return secret_of


def write_phone_kits(kits_root, people, secret_of, server, port, cfg):
    """``<kits>/<id>/phone/account.txt`` (0600): what a softphone needs; returns the ids whose file changed."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    changed = []
    for p in people:
        lines = [f"# Softphone account of {clean_text(p.full_name)} (teleshift). Private: do not share.",
                 f"server: {server}", f"port: {port}", "transport: udp",
                 f"username: {p.extension}", f"password: {secret_of(p, 'sip_password')}",
                 f"extension: {p.extension}"]
        if p.voicemail:
            lines += [f"voicemail_code: {cfg.features['voicemail']}",
                      f"voicemail_pin: {secret_of(p, 'voicemail_pin')}"]
        lines.append(f"forwarding: {p.forward_mode}" + (f" to {p.forward_to}" if p.forward_mode != "none" else "")
                     + (f" after {p.forward_delay} s" if p.forward_mode == "no_answer" else ""))
        if write_kit_file(kits_root, p.id, "phone", "account.txt", "\n".join(lines) + "\n"):
            changed.append(p.id)
    return changed


def inventory_check(all_vars, pbx_vars, roster, region="FR", source="inventory"):
    """Preflight's telephony checks, (problems, warnings): the number policy (teleshift_phone_policy in
    ``all_vars``), every person's extension and forwarding target, and each PBX's settings (``pbx_vars``:
    host -> its asterisk_pbx_* vars). Warnings name what is left out of the configuration."""
    policy, problems = load_number_policy(all_vars, region, source)
    pbx = {h: {k: v for k, v in hv.items() if k in PBX_VARS} for h, hv in pbx_vars.items()}
    found, warnings = pbx_check(roster, pbx, policy, source)
    return problems + found, warnings


def inventory_problems(all_vars, pbx_vars, roster, region="FR", source="inventory"):
    """The blocking half of inventory_check."""
    return inventory_check(all_vars, pbx_vars, roster, region, source)[0]
