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

import functools
import hashlib
import re
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

# AstDB families the forwarding module owns entirely (keys not desired are deleted).
CF_ALWAYS, CF_BUSY, CF_NOANSWER, CF_DELAY = "CFIM", "CFBS", "CFNA", "CFNADELAY"
ON_DUTY, HOLIDAY, MOBILE = "TSONDUTY", "TSHOLIDAY", "TSMOBILE"
MANAGED_FAMILIES = (CF_ALWAYS, CF_BUSY, CF_NOANSWER, CF_DELAY, ON_DUTY, HOLIDAY, MOBILE)
# Manual switch, never managed: ``database put TSCLOSED <attendant> <reason>`` closes an attendant now.
CLOSED = "TSCLOSED"
MODE_FAMILY = {"always": CF_ALWAYS, "busy": CF_BUSY, "no_answer": CF_NOANSWER}

VOICEMAIL_CONTEXT = "teleshift"
FILES = ("pjsip.conf", "extensions.conf", "voicemail.conf", "queues.conf", "confbridge.conf")
# What makes Asterisk pick up a changed file, without restarting (calls in progress stay up).
RELOADS = {
    "manager.conf": "manager reload",
    "rtp.conf": "module reload res_rtp_asterisk.so",
    "pjsip.conf": "module reload res_pjsip.so",
    "extensions.conf": "dialplan reload",
    "voicemail.conf": "module reload app_voicemail.so",
    "queues.conf": "module reload app_queue.so",
    "confbridge.conf": "module reload app_confbridge.so",
}
BLOCK_MARK = ";; teleshift: "
HEADER = ("; Written by teleshift (role asterisk_pbx) from the roster and the inventory: do not edit,\n"
          "; changes are overwritten. May contain secrets: 0640 root:asterisk, never shown in diffs.\n")

_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,30}$")
_EXT_RE = re.compile(r"^[1-9][0-9]{1,5}$")
_PIN_RE = re.compile(r"^[0-9]{4,12}$")
_DATE_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DAYS_RE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)(-(mon|tue|wed|thu|fri|sat|sun))?$")
_DIGITS_RE = re.compile(r"^[0-9*#+]+$")

# phonenumbers types by policy name; premium_rate is governed by allow_premium alone.
NUMBER_TYPES = ("fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "premium_rate", "shared_cost",
                "voip", "personal_number", "pager", "uan", "voicemail", "unknown")
DEFAULT_ALLOWED_TYPES = ("fixed_line", "mobile", "fixed_line_or_mobile", "voip", "toll_free")
POLICY_KEYS = ("allow_international", "allow_premium", "allowed_types", "allowed_patterns")

FEATURE_CODES = {"queue_login": "*45", "queue_logout": "*46", "queue_login_mobile": "*47", "voicemail": "*98"}
TARGET_KEYS = ("transfer", "ring_group", "queue", "extension", "voicemail", "timeout")


# ------------------------------------------------------------------------------------------------
# Number policy
# ------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NumberPolicy:
    region: str = "FR"
    allow_international: bool = False
    allow_premium: bool = False
    allowed_types: tuple = DEFAULT_ALLOWED_TYPES
    allowed_patterns: tuple = ()  # regular expressions on the E.164 form; when set, one must match

    def describe(self):
        what = ["national numbers" + ("" if not self.allow_international else " and international numbers")]
        if self.allow_premium:
            what.append("premium-rate numbers")
        return ", ".join(what) + f" of types {', '.join(self.allowed_types)}"


def load_number_policy(variables, region="FR", source="inventory"):
    """NumberPolicy from inventory var ``teleshift_phone_policy`` (optional); returns (policy, problems)."""
    problems = []
    raw = variables.get("teleshift_phone_policy") or {}
    path = "teleshift_phone_policy"
    if not isinstance(raw, dict):
        return NumberPolicy(region=region), [Problem(source, 0, path, "expected a mapping")]
    values = {"region": region}
    for key, value in raw.items():
        where = f"{path}.{key}"
        if key not in POLICY_KEYS:
            problems.append(Problem(source, 0, where, "unknown key (known: " + ", ".join(POLICY_KEYS) + ")"))
        elif key in ("allow_international", "allow_premium"):
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
        elif key == "allowed_patterns":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                problems.append(Problem(source, 0, where, "expected a list of regular expressions"))
                continue
            for i, pattern in enumerate(value):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    problems.append(Problem(source, 0, f"{where}[{i}]", f"not a regular expression: {exc}"))
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


def check_number(number, policy):
    """None when ``number`` is an allowed forwarding/transfer target, else the reason it is refused."""
    import phonenumbers

    try:
        parsed = _parse(number, policy.region)
    except ValueError as exc:
        return str(exc)
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
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


def dial_string(number, region, number_format="national"):
    """What the trunk is sent for ``number``: national digits (0612345678), 00-international, or E.164."""
    import phonenumbers

    parsed = _parse(number, region)
    if number_format == "e164":
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if parsed.country_code == phonenumbers.country_code_for_region(region):
        return re.sub(r"\D", "", phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL))
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    prefix = (meta.international_prefix if meta and meta.international_prefix and
              meta.international_prefix.isdigit() else "00")
    return prefix + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]


def dial_regex(policy, number_format="national"):
    """The dialplan's last guard: a POSIX regular expression every forwarded dial string must match."""
    import phonenumbers

    cc = phonenumbers.country_code_for_region(policy.region)
    if number_format == "e164":
        return rf"^\+{cc}[1-9][0-9]{{5,12}}$" if not policy.allow_international else r"^\+[1-9][0-9]{6,14}$"
    meta = phonenumbers.PhoneMetadata.metadata_for_region(policy.region)
    national = (meta.national_prefix if meta and meta.national_prefix else "")
    pattern = f"^{national}[1-9][0-9]{{5,12}}$"
    if policy.allow_international:
        pattern = f"({pattern})|(^00[1-9][0-9]{{6,14}}$)"
    return pattern


def forwarding_problems(roster, policy):
    """Problems (line, field forward_to) for active people whose forwarding target the policy refuses."""
    problems = []
    for person in roster.active():
        if person.forward_mode == "none" or not person.forward_to:
            continue
        why = check_number(person.forward_to, policy)
        if why:
            problems.append(Problem(roster.source, person.line, "forward_to", why))
    return problems


# ------------------------------------------------------------------------------------------------
# PBX settings from the inventory (asterisk_pbx_* variables of a pbx_hosts host)
# ------------------------------------------------------------------------------------------------

PBX_VARS = ("asterisk_pbx_trunk", "asterisk_pbx_attendants", "asterisk_pbx_queues", "asterisk_pbx_conferences",
            "asterisk_pbx_mailboxes", "asterisk_pbx_office_hours", "asterisk_pbx_holidays",
            "asterisk_pbx_timezone", "asterisk_pbx_feature_codes", "asterisk_pbx_voicemail",
            "asterisk_pbx_ring_timeout", "asterisk_pbx_sip_port", "asterisk_pbx_codecs",
            "asterisk_pbx_mail_command")
DEFAULT_MAIL_COMMAND = "/usr/sbin/sendmail -t"


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
    sip_port: int = 5060
    codecs: tuple = ("alaw", "ulaw", "g722")
    mail_command: str = DEFAULT_MAIL_COMMAND  # voicemail notifications: a sendmail-compatible command


class _Checker:
    """Small helpers that read one inventory value and record a Problem naming its path."""

    def __init__(self, source):
        self.source = source
        self.problems = []

    def add(self, path, message):
        self.problems.append(Problem(self.source, 0, path, message))

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


def _target(chk, value, path, policy, region, people_ext, queues_by_name=None):
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
            if not ext:
                chk.add(f"{path}.ring_group[{i}]", f"{member!r} is neither a person id with an extension "
                                                    "nor an extension")
            else:
                members.append(ext)
        target.ring_group = tuple(members)
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


def load_pbx_config(variables, policy, people_ext=None, source="inventory"):
    """PbxConfig from a PBX host's variables; returns (config, problems naming the variable paths).

    people_ext: person id -> extension (to resolve ring groups and agents, and to detect collisions).
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
    t.host = chk.text(trunk.get("host"), "asterisk_pbx_trunk.host", True)
    t.port = chk.integer(trunk.get("port"), "asterisk_pbx_trunk.port", 5060, 1, 65535)
    t.match = tuple(str(m) for m in chk.items(trunk.get("match"), "asterisk_pbx_trunk.match")) or (t.host,)
    t.number_format = trunk.get("number_format", "national")
    if t.number_format not in ("national", "e164"):
        chk.add("asterisk_pbx_trunk.number_format", "expected national or e164")
        t.number_format = "national"
    t.username = chk.text(trunk.get("username"), "asterisk_pbx_trunk.username")
    t.password = chk.text(trunk.get("password"), "asterisk_pbx_trunk.password")
    t.channels = chk.integer(trunk.get("channels"), "asterisk_pbx_trunk.channels", 30, 1, 10000)
    dids = chk.mapping(trunk.get("dids") or {}, "asterisk_pbx_trunk.dids") or {}
    for number, ext in dids.items():
        where = f"asterisk_pbx_trunk.dids.{number}"
        if not _DIGITS_RE.match(str(number)):
            chk.add(where, "the number as the operator delivers it: digits, + * # only")
        elif chk.text(ext, where, True, _EXT_RE, "an extension"):
            t.dids[str(number)] = str(ext)

    cfg.timezone = chk.text(variables.get("asterisk_pbx_timezone", "Europe/Paris"), "asterisk_pbx_timezone", True)
    cfg.ring_timeout = chk.integer(variables.get("asterisk_pbx_ring_timeout"), "asterisk_pbx_ring_timeout",
                                   25, 5, 300)
    cfg.sip_port = chk.integer(variables.get("asterisk_pbx_sip_port"), "asterisk_pbx_sip_port", 5060, 1, 65535)
    cfg.mail_command = chk.text(variables.get("asterisk_pbx_mail_command", DEFAULT_MAIL_COMMAND),
                                "asterisk_pbx_mail_command", True, re.compile(r"^/[^\n;]+\Z"),
                                "an absolute command that reads the message on stdin, e.g. /usr/sbin/sendmail -t"
                                ) or DEFAULT_MAIL_COMMAND
    codecs = variables.get("asterisk_pbx_codecs")
    if codecs is not None:
        cfg.codecs = tuple(str(c) for c in chk.items(codecs, "asterisk_pbx_codecs"))
    features = chk.mapping(variables.get("asterisk_pbx_feature_codes") or {}, "asterisk_pbx_feature_codes") or {}
    chk.keys(features, "asterisk_pbx_feature_codes", tuple(FEATURE_CODES))
    for key, code in features.items():
        if key in FEATURE_CODES and chk.text(code, f"asterisk_pbx_feature_codes.{key}", True,
                                             re.compile(r"^\*[0-9]{1,3}$"), "a code such as *45"):
            cfg.features[key] = str(code)
    cfg.voicemail = chk.mapping(variables.get("asterisk_pbx_voicemail") or {}, "asterisk_pbx_voicemail") or {}
    chk.keys(cfg.voicemail, "asterisk_pbx_voicemail", ("from_email", "from_name", "max_seconds", "max_messages",
                                                        "attach", "format"))

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
        cfg.holidays[date] = str(item.get("label") or "holiday")

    office_hours = _hours(chk, variables.get("asterisk_pbx_office_hours"), "asterisk_pbx_office_hours")

    for i, item in enumerate(chk.items(variables.get("asterisk_pbx_mailboxes"), "asterisk_pbx_mailboxes")):
        where = f"asterisk_pbx_mailboxes[{i}]"
        item = chk.mapping(item, where)
        if item is None:
            continue
        chk.keys(item, where, ("box", "name", "email", "pin"))
        box = Mailbox(box=chk.text(item.get("box"), f"{where}.box", True, _EXT_RE, "a box number"),
                      name=chk.text(item.get("name"), f"{where}.name", True),
                      email=chk.text(item.get("email"), f"{where}.email", True,
                                     re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"), "an email address"),
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
                chk.add(f"{where}.agents[{j}]", f"{pid!r} is not an active person with an extension in the roster")
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
            then=(_target(chk, item["then"], f"{where}.then", policy, region, people_ext)
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
            menu[str(digit)] = _target(chk, option, f"{where}.menu.{digit}", policy, region, people_ext)
        if item.get("then") is None:
            chk.add(f"{where}.then", "required: where calls go after the greeting")
        greeting = _prompt_spec(chk, item.get("greeting"), f"{where}.greeting")
        if not greeting:
            chk.add(f"{where}.greeting", "required: text or recording")
        cfg.attendants.append(Attendant(
            name=chk.text(item.get("name"), f"{where}.name", True, _NAME_RE, "a name (a-z, 0-9, - and _)"),
            extension=chk.text(item.get("extension"), f"{where}.extension", True, _EXT_RE, "an extension"),
            language=language, greeting=greeting,
            then=_target(chk, item.get("then") or {}, f"{where}.then", policy, region, people_ext),
            menu=menu, menu_wait=chk.integer(item.get("menu_wait"), f"{where}.menu_wait", 5, 1, 30),
            hours=_hours(chk, item["hours"], f"{where}.hours") if "hours" in item else list(office_hours),
            holidays=chk.boolean(item.get("holidays"), f"{where}.holidays", True),
            closed=_prompt_spec(chk, item.get("closed"), f"{where}.closed"),
            closed_then=(_target(chk, item["closed_then"], f"{where}.closed_then", policy, region, people_ext)
                         if item.get("closed_then") else None)))

    _check_references(chk, cfg, people_ext)
    return cfg, chk.problems


def _check_references(chk, cfg, people_ext):
    owners = {ext: f"person {pid}" for pid, ext in people_ext.items()}
    for kind, items in (("asterisk_pbx_attendants", cfg.attendants), ("asterisk_pbx_queues", cfg.queues),
                        ("asterisk_pbx_conferences", cfg.conferences)):
        names = set()
        for i, item in enumerate(items):
            if item.name and item.name in names:
                chk.add(f"{kind}[{i}].name", f"{item.name!r} is used twice")
            names.add(item.name)
            if item.extension and item.extension in owners:
                chk.add(f"{kind}[{i}].extension", f"{item.extension} is already used by {owners[item.extension]}")
            elif item.extension:
                owners[item.extension] = f"{kind}[{i}]"
    boxes = {ext for ext in people_ext.values()}
    for i, box in enumerate(cfg.mailboxes):
        if box.box in boxes or box.box in owners:
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

    for path, target in targets():
        if target.voicemail and target.voicemail not in service_boxes and target.voicemail not in people_ext.values():
            chk.add(f"{path}.voicemail", f"box {target.voicemail} is neither in asterisk_pbx_mailboxes nor a "
                                         "person's extension with voicemail")
        if target.queue and target.queue not in queue_names:
            chk.add(f"{path}.queue", f"no queue named {target.queue!r} in asterisk_pbx_queues")
        if target.extension and target.extension not in owners:
            chk.add(f"{path}.extension", f"extension {target.extension} is not defined")
    for number, ext in cfg.trunk.dids.items():
        if ext not in owners:
            chk.add(f"asterisk_pbx_trunk.dids.{number}", f"extension {ext} is not defined")


def pbx_problems(roster, pbx_vars, policy, source="inventory"):
    """Everything preflight reports for telephony: people's forwarding and each PBX's settings."""
    problems = forwarding_problems(roster, policy)
    people_ext = {p.id: p.extension for p in roster.active() if p.extension}
    for host in sorted(pbx_vars):
        _, found = load_pbx_config(pbx_vars[host], policy, people_ext, source=f"{source} ({host})")
        problems.extend(found)
    return problems


# ------------------------------------------------------------------------------------------------
# Runtime state (AstDB)
# ------------------------------------------------------------------------------------------------

def desired_astdb(people, cfg, policy, owners=None):
    """{family: {key: value}} for the managed families. ``people``: active roster people with a phone.

    owners (out): key label -> person id or item name, to name the people in diffs.
    """
    fmt = cfg.trunk.number_format
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


def parse_database_show(text):
    """``asterisk -rx "database show"`` output -> {family: {key: value}} (keys may contain '/')."""
    result = {}
    for line in text.splitlines():
        if not line.startswith("/") or ":" not in line:
            continue
        path, _, value = line.partition(":")
        parts = path.strip().split("/", 2)
        if len(parts) < 3:
            continue
        result.setdefault(parts[1], {})[parts[2]] = value.strip()
    return result


def diff_astdb(current, desired, families=MANAGED_FAMILIES):
    """(puts, deletes): puts = [(family, key, value)], deletes = [(family, key)]; managed families only."""
    puts, deletes = [], []
    for fam in families:
        have = current.get(fam, {})
        want = desired.get(fam, {})
        for key in sorted(want):
            if have.get(key) != want[key]:
                puts.append((fam, key, want[key]))
        for key in sorted(have):
            if key not in want:
                deletes.append((fam, key))
    return puts, deletes


def describe_astdb_changes(current, desired, labels, families=MANAGED_FAMILIES):
    """Who changes: {'added': [...], 'changed': [...], 'removed': [...]} of labels (e.g. 'person amartin')."""
    def per_key(state):
        result = {}
        for fam in families:
            for key, value in state.get(fam, {}).items():
                result.setdefault(key, {})[fam] = value
        return result

    before, after = per_key(current), per_key(desired)
    out = {"added": [], "changed": [], "removed": []}
    for key in sorted(set(before) | set(after)):
        name = labels.get(key, f"key {key}")
        if key not in before:
            out["added"].append(name)
        elif key not in after:
            out["removed"].append(name)
        elif before[key] != after[key]:
            out["changed"].append(name)
    return out


def astdb_text(state, labels, families=MANAGED_FAMILIES):
    """A readable rendering of the state for Ansible's diff (public data: numbers, not secrets)."""
    lines = []
    for fam in families:
        for key in sorted(state.get(fam, {})):
            label = labels.get(key, "")
            lines.append(f"{fam}/{key} = {state[fam][key]}" + (f"  # {label}" if label else ""))
    return "\n".join(lines) + ("\n" if lines else "")


# ------------------------------------------------------------------------------------------------
# Configuration files
# ------------------------------------------------------------------------------------------------

def _block(kind, name, text):
    return f"{BLOCK_MARK}{kind} {name}\n{text}\n"


def _quote_name(name):
    return re.sub(r'[\\"<>\n;]', "", name)


def render_pjsip(people, cfg, secret_of):
    """pjsip.conf: transport, the operator trunk, and endpoint+auth+aor per person (by extension)."""
    t = cfg.trunk
    allow = ",".join(cfg.codecs)
    parts = [HEADER,
             _block("global", "pjsip",
                    "[global]\ntype=global\nendpoint_identifier_order=ip,username\n"
                    "user_agent=teleshift-pbx\ndefault_realm=teleshift\n"),
             _block("transport", "udp",
                    f"[transport-udp]\ntype=transport\nprotocol=udp\nbind=0.0.0.0:{cfg.sip_port}\n")]
    trunk = (f"[{t.name}]\ntype=endpoint\ncontext=ts-from-trunk\ndisallow=all\nallow={allow}\naors={t.name}\n"
             "direct_media=no\nrtp_symmetric=yes\nsend_pai=yes\ntrust_id_inbound=no\nsend_connected_line=no\n")
    if t.username:
        trunk += f"outbound_auth={t.name}-auth\n"
    trunk += f"\n[{t.name}]\ntype=aor\ncontact=sip:{t.host}:{t.port}\nqualify_frequency=0\n"
    trunk += f"\n[{t.name}]\ntype=identify\nendpoint={t.name}\n" + "".join(f"match={m}\n" for m in t.match)
    if t.username:
        trunk += (f"\n[{t.name}-auth]\ntype=auth\nauth_type=userpass\nusername={t.username}\n"
                  f"password={t.password}\n"
                  f"\n[{t.name}]\ntype=registration\noutbound_auth={t.name}-auth\n"
                  f"server_uri=sip:{t.host}:{t.port}\nclient_uri=sip:{t.username}@{t.host}:{t.port}\n"
                  "retry_interval=60\n")
    parts.append(_block("trunk", t.name, trunk))
    for p in people:
        ext = p.extension
        mailbox = f"mailboxes={ext}@{VOICEMAIL_CONTEXT}\n" if p.voicemail else ""
        parts.append(_block("person", p.id,
                            f"[{ext}]\ntype=endpoint\ncontext=ts-internal\ndisallow=all\nallow={allow}\n"
                            f"auth={ext}\naors={ext}\ncallerid=\"{_quote_name(p.full_name)}\" <{ext}>\n"
                            f"language={p.language}\n{mailbox}"
                            "direct_media=no\nrtp_symmetric=yes\nforce_rport=yes\nrewrite_contact=yes\n"
                            "allow_subscribe=yes\n"
                            f"\n[{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\n"
                            f"password={secret_of(p, 'sip_password')}\n"
                            f"\n[{ext}]\ntype=aor\nmax_contacts=2\nremove_existing=yes\n"))
    return "".join(parts)


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
    regex = dial_regex(policy, t.number_format)
    tz = cfg.timezone
    fc = cfg.features
    out = [HEADER]
    out.append(_block("general", "dialplan",
                      "[general]\nstatic=yes\nwriteprotect=yes\nclearglobalvars=yes\n\n"
                      f"[globals]\nTS_TRUNK={t.name}\nTS_RING_TIMEOUT={cfg.ring_timeout}\n"))
    # Subroutines
    out.append(_block("subroutine", "ts-forward", "\n".join([
        "; Gosub(ts-forward,s,1(dial string,who,timeout)): call out through the trunk, after the number",
        "; policy's last guard. Returns with DIALSTATUS set.",
        "[ts-forward]",
        "exten => s,1,Set(LOCAL(num)=${ARG1})",
        f'same => n,GotoIf($[${{REGEX("{regex}" ${{num}})}}]?allowed)',
        "same => n,Log(WARNING,teleshift: refused to dial ${num} for ${ARG2}: not an allowed number)",
        "same => n,Set(DIALSTATUS=CHANUNAVAIL)",
        "same => n,Return()",
        "same => n(allowed),Dial(PJSIP/${num}@${TS_TRUNK},${IF($[\"${ARG3}\" = \"\"]?60:${ARG3})})",
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
        f"exten => _X.,1,Gosub(ts-forward,s,1(${{DB({MOBILE}/${{EXTEN}})}},agent ${{EXTEN}}))",
        "same => n,Hangup()",
    ]) + "\n"))
    agents_globals = "".join(
        f"TS_AGENTS_{q.name}={'&'.join(p.extension for p in people if p.id in q.agents)}\n" for q in cfg.queues)
    out[1] = out[1].rstrip("\n") + "\n" + agents_globals + "\n"
    internal = ["; Softphones: desks, services, feature codes and national calls through the trunk.",
                "[ts-internal]", "include => ts-desks", "include => ts-services", "include => ts-features",
                "exten => _0X.,1,Gosub(ts-forward,s,1(${EXTEN},${CHANNEL(endpoint)}))",
                "same => n,Hangup()"]
    out.append(_block("context", "ts-internal", "\n".join(internal) + "\n"))
    return "".join(out)


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
    vm = cfg.voicemail
    general = ["[general]",
               f"format={vm.get('format', 'wav49|wav')}",
               f"serveremail={vm.get('from_email', 'pbx@localhost')}",
               f"fromstring={vm.get('from_name', 'Messagerie vocale')}",
               f"attach={'yes' if vm.get('attach', True) else 'no'}",
               f"maxmsg={int(vm.get('max_messages', 100))}",
               f"maxsecs={int(vm.get('max_seconds', 180))}",
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
            out.append(_block("person", p.id,
                              f"{p.extension} => {secret_of(p, 'voicemail_pin')},{_vm_text(p.full_name)},"
                              f"{p.email},,attach=yes|tz=local|saycid=no|envelope=no"))
    for box in cfg.mailboxes:
        out.append(_block("mailbox", box.box,
                          f"{box.box} => {box.pin},{_vm_text(box.name)},{box.email},,attach=yes|tz=local"))
    return "".join(out)


def _vm_text(text):
    return re.sub(r"[,|\n]", " ", text)


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


def phone_people(roster):
    """Active people with an extension who need a phone or forward their desk: the PBX's endpoints."""
    return [p for p in roster.active() if p.extension and ("phone" in p.needs or p.forward_mode != "none")]


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

    return "".join(secrets.choice("0123456789") for _ in range(length))


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
        lines = [f"# Softphone account of {p.full_name} (teleshift). Private: do not share.",
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


# ------------------------------------------------------------------------------------------------
# Blocks: what the config-file module diffs (names only, never content)
# ------------------------------------------------------------------------------------------------

def split_blocks(text):
    """{'kind name': sha256 of the block} for a rendered (or installed) teleshift file."""
    blocks = {}
    current, lines = "header", []
    for line in text.splitlines(keepends=True):
        if line.startswith(BLOCK_MARK):
            blocks[current] = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
            current, lines = line[len(BLOCK_MARK):].strip(), []
        else:
            lines.append(line)
    blocks[current] = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    return blocks


def diff_blocks(old_text, new_text):
    """{'added': [...], 'changed': [...], 'removed': [...]} block names between two versions of a file."""
    old = split_blocks(old_text) if old_text is not None else {}
    new = split_blocks(new_text)
    return {
        "added": sorted(k for k in new if k not in old),
        "changed": sorted(k for k in new if k in old and old[k] != new[k]),
        "removed": sorted(k for k in old if k not in new),
    }


def parse_conf(text):
    """Asterisk config text -> list of (section, [(key, value)]) in order (same-named sections allowed).

    Used by tests and by the module's pre-apply checks (every section well formed, no duplicate
    endpoint/auth/aor)."""
    sections = []
    current = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(";", 1)[0].strip() if not raw.lstrip().startswith(";") else ""
        if not line or line.startswith(("#include", "#tryinclude")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = (line[1:-1], [])
            sections.append(current)
            continue
        if current is None:
            raise ValueError(f"line {number}: setting outside a section")
        if "=>" in line:
            key, _, value = line.partition("=>")
        elif "=" in line:
            key, _, value = line.partition("=")
        else:
            raise ValueError(f"line {number}: neither key=value nor key => value: {raw!r}")
        current[1].append((key.strip(), value.strip()))
    return sections


def check_pjsip(text):
    """Problems (strings) in a pjsip.conf before it goes live: duplicate (name, type), missing types."""
    problems = []
    seen = set()
    for name, settings in parse_conf(text):
        types = [v for k, v in settings if k == "type"]
        if len(types) != 1:
            problems.append(f"section [{name}] must have exactly one type=")
            continue
        if (name, types[0]) in seen:
            problems.append(f"section [{name}] type={types[0]} appears twice")
        seen.add((name, types[0]))
    return problems


def inventory_problems(all_vars, pbx_vars, roster, region="FR", source="inventory"):
    """Preflight's telephony checks: the number policy (teleshift_phone_policy in ``all_vars``), every
    person's forwarding target and each PBX's settings (``pbx_vars``: host -> its asterisk_pbx_* vars)."""
    policy, problems = load_number_policy(all_vars, region, source)
    pbx = {h: {k: v for k, v in hv.items() if k in PBX_VARS} for h, hv in pbx_vars.items()}
    return problems + pbx_problems(roster, pbx, policy, source)
