# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Per-person call forwarding on Cisco Unified CME voice gateways, from the roster.

Three layers, each usable alone:

1. Reading: ``parse_dns(text)`` turns the ``show running-config | section ...`` output of a gateway into
   Dn records (SCCP ``ephone-dn`` and SIP ``voice register dn``: tag, number, call-forward all / busy /
   noan + timeout) with a TextFSM template. ntc-templates ships no template for CME directory numbers,
   so the template is ours (CME_DN_TEMPLATE below). It is kept as a string in this file on purpose:
   AnsiballZ ships only Python files of module_utils, so a separate .textfsm file would not reach the
   module at run time.
2. Planning (pure, no I/O): ``plan_gateway(dns, people, dialing)`` maps each roster extension to the DNs
   with that number, computes the forwarding the roster wants (E.164 numbers converted to what the
   gateway dials) and the minimal IOS commands to get there. DNs whose number is in no roster line are
   never touched unless ``purge`` is asked (and then only their forwarding is cleared).
3. Applying: ``converge_gateways(...)`` runs ``converge_gateway`` for many gateways in a bounded thread
   pool through netmiko (device_type cisco_ios). Each gateway gets its own result: one gateway being
   unreachable, refusing the credentials or rejecting a command never stops the others. A rejected
   command rolls back what was already applied on that gateway; the configuration is saved
   (``write memory``) only when something changed and the result was verified.

Passwords and enable secrets are never put in results, errors or logs (``mask``).
"""
from __future__ import annotations

import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

EPHONE_DN = "ephone-dn"
REGISTER_DN = "voice register dn"
FORWARD_TYPES = ("all", "busy", "noan")
DEFAULT_NOAN_TIMEOUT = 20  # CME's default when "call-forward noan N" has no timeout
MAX_DIGITS = 32  # CME accepts forward targets of 32 characters at most
DIAL_FORMATS = ("national", "e164")
BATCH_LINES = 50  # configuration lines written at once before reading their answers

# Commands that read the DNs; "section" keeps the output to the DN blocks on a big configuration.
SHOW_COMMANDS = ("show running-config | section ephone-dn",
                 "show running-config | section voice register dn")
# What IOS prints when it refuses a line (checked after every configuration command).
ERROR_PATTERN = r"^\s*% ?(?:Invalid input|Incomplete command|Ambiguous command|Unknown command|Error|Bad)"

# TextFSM template for CME directory numbers (SCCP ephone-dn and SIP voice register dn).
CME_DN_TEMPLATE = r"""Value Required KIND (ephone-dn|voice register dn)
Value Required TAG (\d+)
Value LINEMODE (dual-line|octo-line)
Value NUMBER (\S+)
Value CFA (\S+)
Value CFB (\S+)
Value CFNA (\S+)
Value CFNA_TIMEOUT (\d+)

Start
  ^${KIND}\s+${TAG}(?:\s+${LINEMODE})?\s*$$ -> DN

DN
  ^\s+number\s+${NUMBER}
  ^\s+call-forward\s+(?:b2bua\s+)?all\s+${CFA}\s*$$
  ^\s+call-forward\s+(?:b2bua\s+)?busy\s+${CFB}\s*$$
  ^\s+call-forward\s+(?:b2bua\s+)?noan\s+${CFNA}\s+timeout\s+${CFNA_TIMEOUT}\s*$$
  ^\s+call-forward\s+(?:b2bua\s+)?noan\s+${CFNA}\s*$$
  ^\s
  ^\S -> Continue.Record
  ^${KIND}\s+${TAG}(?:\s+${LINEMODE})?\s*$$ -> DN
  ^\S -> Start
"""


# --------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Forwarding:
    """The call-forward settings of one DN; empty strings mean "not set"."""

    all: str = ""
    busy: str = ""
    noan: str = ""
    noan_timeout: int = 0  # meaningful only when noan is set

    def __post_init__(self):
        if self.noan and not self.noan_timeout:
            object.__setattr__(self, "noan_timeout", DEFAULT_NOAN_TIMEOUT)
        if not self.noan:
            object.__setattr__(self, "noan_timeout", 0)

    @property
    def empty(self):
        return not (self.all or self.busy or self.noan)

    def describe(self):
        parts = [f"{kind} {getattr(self, kind)}" for kind in ("all", "busy") if getattr(self, kind)]
        if self.noan:
            parts.append(f"noan {self.noan} after {self.noan_timeout}s")
        return ", ".join(parts) or "none"


NO_FORWARDING = Forwarding()


@dataclass(frozen=True)
class Dn:
    kind: str  # EPHONE_DN or REGISTER_DN
    tag: str
    number: str = ""
    linemode: str = ""  # dual-line / octo-line for ephone-dn
    forwarding: Forwarding = NO_FORWARDING

    @property
    def header(self):
        """The line that enters this DN's configuration mode (same line mode as configured)."""
        return " ".join(part for part in (self.kind, self.tag, self.linemode) if part)

    @property
    def key(self):
        return (self.kind, int(self.tag))


@dataclass
class Dialing:
    """How E.164 roster numbers become the digits the gateway dials."""

    region: str = "FR"  # the gateway's country: numbers there are dialled in national format
    prefix: str = ""  # outside-line prefix, e.g. "0"
    fmt: str = "national"  # national (numbers abroad get the international access code) or e164
    purge: bool = False  # clear forwarding on DNs whose number is in no roster line


@dataclass
class DnChange:
    dn: Dn
    before: Forwarding
    after: Forwarding
    commands: list
    person: str = ""  # person id, or "" for a DN that is not in the roster (purge)
    name: str = ""

    @property
    def change(self):
        if self.before.empty:
            return "added"
        if self.after.empty:
            return "removed"
        return "changed"


@dataclass
class Plan:
    changes: list = field(default_factory=list)  # DnChange, in DN order
    managed: int = 0  # DNs whose number is in the roster
    unmanaged: int = 0  # DNs whose number is in no roster line (untouched unless purge)
    matched: set = field(default_factory=set)  # person ids found on this gateway
    problems: list = field(default_factory=list)  # text, e.g. a number the gateway cannot dial
    warnings: list = field(default_factory=list)  # text, e.g. forwarding on a DN no roster line names

    @property
    def commands(self):
        return [line for change in self.changes for line in change.commands]

    def people(self):
        result = {"added": [], "changed": [], "removed": []}
        for change in self.changes:
            who = change.person or f"dn:{change.dn.number or change.dn.tag}"
            if who not in result[change.change]:
                result[change.change].append(who)
        return result


# --------------------------------------------------------------------------------------------
# Reading the running configuration
# --------------------------------------------------------------------------------------------

def parse_dns(text):
    """Parse ``show running-config`` text (whole or sections) into Dn records, in configuration order.

    Blocks other than ``ephone-dn N`` and ``voice register dn N`` (ephone-dn-template, voice register
    pool, ephone...) are ignored. A DN appearing twice (two section outputs) is kept once.
    """
    import textfsm

    fsm = textfsm.TextFSM(io.StringIO(CME_DN_TEMPLATE))
    rows = fsm.ParseTextToDicts(text.replace("\r\n", "\n"))
    seen = {}
    for row in rows:
        dn = Dn(
            kind=row["KIND"],
            tag=row["TAG"],
            number=row["NUMBER"],
            linemode=row["LINEMODE"],
            forwarding=Forwarding(all=row["CFA"], busy=row["CFB"], noan=row["CFNA"],
                                  noan_timeout=int(row["CFNA_TIMEOUT"] or 0)),
        )
        seen.setdefault(dn.key, dn)
    return list(seen.values())


# --------------------------------------------------------------------------------------------
# Dial strings
# --------------------------------------------------------------------------------------------

def dial_string(e164, dialing):
    """The digits the gateway dials to reach E.164 number ``e164``.

    national: a number in ``dialing.region`` is dialled in national format (+33 6 12 34 56 78 -> 0612345678),
    a number abroad with the region's international access code (+44 20 ... -> 004420...); e164 keeps
    +<country code><number>. The outside-line prefix comes first. Raises ValueError when impossible.
    """
    import phonenumbers

    try:
        number = phonenumbers.parse(e164, None if str(e164).startswith("+") else dialing.region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{e164!r} is not a phone number ({exc})") from None
    if dialing.fmt == "e164":
        digits = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    elif dialing.fmt == "national":
        region_code = phonenumbers.country_code_for_region(dialing.region)
        if not region_code:
            raise ValueError(f"{dialing.region!r} is not a known country code")
        if number.country_code == region_code:
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        else:
            text = phonenumbers.format_out_of_country_calling_number(number, dialing.region)
        digits = re.sub(r"[^0-9]", "", text)
    else:
        raise ValueError(f"unknown dial format {dialing.fmt!r} (known: {', '.join(DIAL_FORMATS)})")
    result = f"{dialing.prefix}{digits}"
    if not re.fullmatch(r"\+?[0-9]+", result):
        raise ValueError(f"{result!r} is not a string of digits the gateway can dial")
    if len(result) > MAX_DIGITS:
        raise ValueError(f"{result!r} is longer than the {MAX_DIGITS} digits CME accepts")
    return result


def check_dialing(dialing):
    """Problems (text) with dialing settings, before anything connects."""
    problems = []
    if not re.fullmatch(r"[0-9*#]{0,8}", dialing.prefix or ""):
        problems.append(f"dial prefix {dialing.prefix!r} must be up to 8 digits")
    if dialing.fmt not in DIAL_FORMATS:
        problems.append(f"dial format {dialing.fmt!r} is not one of {', '.join(DIAL_FORMATS)}")
    if dialing.fmt == "e164" and dialing.prefix:
        problems.append("a dial prefix cannot be combined with the e164 dial format")
    if not (isinstance(dialing.region, str) and re.fullmatch(r"[A-Z]{2}", dialing.region)):
        problems.append(f"region {dialing.region!r} is not a two-letter country code such as FR")
    return problems


def desired_forwarding(person, dialing, policy=None):
    """The forwarding the roster wants on ``person``'s line (inactive people: none). With ``policy``
    (telephony.NumberPolicy), a target the number policy refuses raises ValueError (toll fraud)."""
    mode = person.forward_mode if person.active else "none"
    if mode == "none" or not person.forward_to:
        return NO_FORWARDING
    if policy is not None:
        from ansible_collections.teleshift.toolkit.plugins.module_utils.telephony import check_number

        why = check_number(person.forward_to, policy)
        if why:
            raise ValueError(f"refused by the number policy: {why}")
    target = dial_string(person.forward_to, dialing)
    if mode == "always":
        return Forwarding(all=target)
    if mode == "busy":
        return Forwarding(busy=target)
    if mode == "no_answer":
        return Forwarding(noan=target, noan_timeout=int(person.forward_delay))
    raise ValueError(f"unknown forward_mode {mode!r}")


# --------------------------------------------------------------------------------------------
# The roster's forwarding, as the controller's plan hands it to the module
# --------------------------------------------------------------------------------------------

LINE_FIELDS = ("id", "full_name", "extension", "forward_mode", "forward_to", "forward_delay", "active", "line")


@dataclass(frozen=True)
class Line:
    """What the gateways need of one roster person (public data)."""

    id: str
    full_name: str
    extension: str
    forward_mode: str = "none"
    forward_to: str = ""
    forward_delay: int = DEFAULT_NOAN_TIMEOUT
    active: bool = True
    line: int = 0


def lines_text(people):
    """JSON text of the Lines of every person with an extension (inactive people too: their forwarding
    is removed): one string, templated in microseconds whatever the roster's size."""
    import json

    return json.dumps([[getattr(p, f) for f in LINE_FIELDS] for p in people if p.extension],
                      separators=(",", ":"), ensure_ascii=False)


def parse_lines(value):
    """[Line] from lines_text's JSON (or a list of such lists); ValueError saying what is wrong."""
    import json

    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ValueError("people must be a list")
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, (list, tuple)) or len(item) != len(LINE_FIELDS):
            raise ValueError(f"people[{index}]: expected [{', '.join(LINE_FIELDS)}]")
        data = dict(zip(LINE_FIELDS, item))
        if not all(isinstance(data[k], str) for k in ("id", "full_name", "extension", "forward_mode", "forward_to")) \
                or not isinstance(data["active"], bool) or isinstance(data["forward_delay"], bool) \
                or not isinstance(data["forward_delay"], int) or data["forward_mode"] not in (
                    "none", "always", "busy", "no_answer"):
            raise ValueError(f"people[{index}]: a field has the wrong type or value")
        lines.append(Line(**data))
    return lines


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------

def _cf(kind):
    return "call-forward b2bua" if kind == REGISTER_DN else "call-forward"


def dn_commands(dn, after):
    """Minimal commands taking ``dn`` from its current forwarding to ``after`` ([] when equal).

    Removals come first, then settings; a changed target or timeout is set directly (IOS replaces the
    old value), so one line per forward type that differs.
    """
    before = dn.forwarding
    cf = _cf(dn.kind)
    removals, settings = [], []
    for kind in FORWARD_TYPES:
        old, new = getattr(before, kind), getattr(after, kind)
        if kind == "noan":
            same = (old, before.noan_timeout) == (new, after.noan_timeout)
        else:
            same = old == new
        if same:
            continue
        if not new:
            removals.append(f"no {cf} {kind}")
        elif kind == "noan":
            settings.append(f"{cf} noan {new} timeout {after.noan_timeout}")
        else:
            settings.append(f"{cf} {kind} {new}")
    body = removals + settings
    return [dn.header, *body, "exit"] if body else []


def plan_gateway(dns, people, dialing, policy=None):
    """The changes that bring ``dns`` (parsed from one gateway) to the roster's forwarding.

    ``people``: roster Person records; everyone with an extension is managed (inactive people and
    forward_mode none get no forwarding). A number the gateway cannot dial, or that ``policy`` refuses,
    is a problem and that DN is left as it is. A DN no roster line names that still forwards somewhere
    (someone removed from the roster) is a warning, cleared only with ``purge``.
    """
    by_extension = {p.extension: p for p in people if p.extension}
    plan = Plan()
    wanted = {}
    for dn in dns:
        person = by_extension.get(dn.number)
        if person is None:
            plan.unmanaged += 1
            if not dn.forwarding.empty and not dialing.purge:
                plan.warnings.append(f"{dn.kind} {dn.tag} (number {dn.number or 'none'}) forwards "
                                     f"({dn.forwarding.describe()}) but no roster line names it: left as is "
                                     "(purge clears it)")
            if not dialing.purge or dn.forwarding.empty:
                continue
            after, who, name = NO_FORWARDING, "", ""
        else:
            plan.managed += 1
            plan.matched.add(person.id)
            if person.id not in wanted:
                try:
                    wanted[person.id] = desired_forwarding(person, dialing, policy)
                except ValueError as exc:
                    wanted[person.id] = None
                    plan.problems.append(f"{person.id} (extension {person.extension}): forward_to {exc}")
            after, who, name = wanted[person.id], person.id, person.full_name
            if after is None:
                continue
        commands = dn_commands(dn, after)
        if commands:
            plan.changes.append(DnChange(dn=dn, before=dn.forwarding, after=after, commands=commands,
                                         person=who, name=name))
    return plan


def restore_commands(current_dns, original_dns):
    """Commands bringing DNs back to their original forwarding (rollback after a rejected command)."""
    original = {dn.key: dn for dn in original_dns}
    commands = []
    for dn in current_dns:
        before = original.get(dn.key)
        if before is not None:
            commands += dn_commands(dn, before.forwarding)
    return commands


def render_dn(dn, forwarding, person="", name=""):
    """A DN block as IOS shows it (used for diffs); a comment line names the person."""
    cf = _cf(dn.kind)
    lines = [dn.header]
    if person:
        lines.append(f" ! {person} ({name})" if name else f" ! {person}")
    elif dn.number:
        lines.append(" ! not in the roster")
    if dn.number:
        lines.append(f" number {dn.number}")
    for kind in ("all", "busy"):
        if getattr(forwarding, kind):
            lines.append(f" {cf} {kind} {getattr(forwarding, kind)}")
    if forwarding.noan:
        lines.append(f" {cf} noan {forwarding.noan} timeout {forwarding.noan_timeout}")
    return "\n".join(lines) + "\n"


def plan_diff(plan):
    """(before, after) texts of the DNs that change."""
    before = "".join(render_dn(c.dn, c.before, c.person, c.name) for c in plan.changes)
    after = "".join(render_dn(c.dn, c.after, c.person, c.name) for c in plan.changes)
    return before, after


# --------------------------------------------------------------------------------------------
# Talking to gateways
# --------------------------------------------------------------------------------------------

@dataclass
class Gateway:
    name: str
    host: str
    username: str
    password: str = field(repr=False)
    secret: str = field(default="", repr=False)
    port: int = 22
    device_type: str = "cisco_ios"
    dialing: Dialing = field(default_factory=Dialing)
    conn_timeout: float = 10
    read_timeout: float = 60


class GatewayError(Exception):
    """A failure on one gateway: ``kind`` is unreachable, authentication, enable, read, rejected,
    verify, save or error."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


def mask(text, *secrets):
    """``text`` with every secret replaced by ********."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(str(secret), "********")
    return text


def netmiko_connect(gateway):
    """Open a netmiko session in privileged (enable) mode; raises GatewayError."""
    from netmiko import ConnectHandler
    from netmiko.exceptions import NetmikoAuthenticationException, NetmikoTimeoutException

    try:
        conn = ConnectHandler(
            device_type=gateway.device_type, host=gateway.host, port=gateway.port,
            username=gateway.username, password=gateway.password, secret=gateway.secret,
            conn_timeout=gateway.conn_timeout, auth_timeout=gateway.conn_timeout,
            banner_timeout=gateway.conn_timeout, session_timeout=gateway.read_timeout,
            use_keys=False, allow_agent=False, session_log=None,
        )
    except NetmikoAuthenticationException:
        raise GatewayError("authentication", f"authentication failed for user {gateway.username!r} "
                                             f"on {gateway.host}:{gateway.port}") from None
    except NetmikoTimeoutException:
        raise GatewayError("unreachable", f"cannot reach {gateway.host}:{gateway.port} over SSH "
                                          "(connection refused or timed out)") from None
    except (OSError, EOFError) as exc:
        raise GatewayError("unreachable", f"cannot reach {gateway.host}:{gateway.port} over SSH: "
                                          f"{exc.__class__.__name__}") from None
    try:
        if not conn.check_enable_mode():
            conn.enable()
        if not conn.check_enable_mode():
            raise ValueError("still not in enable mode")
    except Exception:  # noqa: BLE001 - netmiko raises ValueError or ReadTimeout here
        _disconnect(conn)
        raise GatewayError("enable", "could not enter privileged mode (enable): check the enable secret") from None
    return conn


def _disconnect(conn):
    try:
        conn.disconnect()
    except Exception:  # noqa: BLE001, S110 - the session may already be gone
        pass


def read_dns(conn, gateway):
    text = []
    for command in SHOW_COMMANDS:
        output = conn.send_command(command, read_timeout=gateway.read_timeout)
        if re.search(ERROR_PATTERN, output, flags=re.M):
            raise GatewayError("read", f"the gateway refused {command!r}: is it a Cisco CME (IOS) gateway?")
        text.append(output)
    return parse_dns("\n".join(text))


def send_config(conn, gateway, commands, batch=BATCH_LINES):
    """Send configuration lines in batches; GatewayError 'rejected' names the first line IOS refused.

    Lines go out ``batch`` at a time (one write, then read until one configuration prompt per line
    came back): waiting for each line's echo costs a round trip per line, far too slow for a first
    rollout of thousands of DNs. IOS answers every line with its prompt, so the output splits into one
    segment per line and an error message is tied to the line that caused it. Lines after a refused
    one in the same batch may have been applied: the caller rolls back from the state it reads.
    """
    prompt = re.compile(re.escape(conn.base_prompt) + r"[^\r\n#>]*\(config[^)\r\n]*\)#")
    conn.config_mode()
    try:
        for start in range(0, len(commands), batch):
            chunk = commands[start:start + batch]
            conn.write_channel("".join(conn.normalize_cmd(line) for line in chunk))
            output = _read_prompts(conn, prompt, len(chunk), gateway.read_timeout)
            for line, segment in zip(chunk, prompt.split(output)):
                if re.search(ERROR_PATTERN, segment, flags=re.M):
                    error = next(text.strip() for text in segment.splitlines()
                                 if re.search(ERROR_PATTERN, text))
                    raise GatewayError("rejected", f"the gateway rejected the command {line!r}: {error}")
    finally:
        try:
            conn.exit_config_mode()
        except Exception:  # noqa: BLE001, S110 - the session may be gone; the caller reports the first error
            pass


def _read_prompts(conn, prompt, count, timeout):
    """Read until ``count`` configuration prompts arrived (bounded by ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    output = ""
    while len(prompt.findall(output)) < count:
        if time.monotonic() > deadline:
            raise GatewayError("error", f"no answer from the gateway within {timeout}s while configuring")
        data = conn.read_channel()
        if data:
            output += data
        else:
            time.sleep(0.005)
    return output


def converge_gateway(gateway, people, check_mode=False, save=True, connect=netmiko_connect, policy=None):
    """Converge one gateway; always returns a result dict (never raises)."""
    started = time.monotonic()
    result = {"name": gateway.name, "host": gateway.host, "changed": False, "failed": False,
              "error_kind": "", "error": "",
              "commands": [], "people": {"added": [], "changed": [], "removed": []}, "saved": False,
              "rolled_back": False, "problems": [], "before": "", "after": ""}
    secrets = (gateway.password, gateway.secret)
    problems = check_dialing(gateway.dialing)
    if problems:
        result.update(failed=True, error_kind="settings", error="; ".join(problems))
        return result
    conn = None
    try:
        conn = connect(gateway)
        original = read_dns(conn, gateway)
        plan = plan_gateway(original, people, gateway.dialing, policy)
        result["matched"] = sorted(plan.matched)
        result["warnings"] = plan.warnings
        result.update(dns=len(original), managed=plan.managed, unmanaged=plan.unmanaged,
                      problems=plan.problems, commands=plan.commands, people=plan.people())
        result["before"], result["after"] = plan_diff(plan)
        result["changed"] = bool(plan.changes)
        if plan.changes and not check_mode:
            try:
                send_config(conn, gateway, plan.commands)
                remaining = plan_gateway(read_dns(conn, gateway), people, gateway.dialing, policy).commands
                if remaining:
                    raise GatewayError("verify", "the gateway accepted the commands but its configuration still "
                                                 f"differs ({len(remaining)} lines left, e.g. {remaining[:2]!r})")
            except GatewayError as exc:
                result["rolled_back"] = _roll_back(conn, gateway, original)
                # rolled back: the gateway is as it was; otherwise it may hold part of the change
                result["changed"] = not result["rolled_back"]
                outcome = ("the forwarding read before the run was restored" if result["rolled_back"] else
                           "ROLLBACK FAILED: the running configuration may hold part of the change "
                           "(a reload returns to the saved configuration)")
                raise GatewayError(exc.kind, f"{exc}; {outcome}; nothing was saved") from None
            if save:
                output = conn.save_config()
                if re.search(ERROR_PATTERN, output or "", flags=re.M):
                    raise GatewayError("save", "the change is live but write memory failed: "
                                               + " ".join((output or "").split())[-200:])
                result["saved"] = True
        if plan.problems:
            result.update(failed=True, error_kind="roster",
                          error=f"{len(plan.problems)} number(s) the gateway cannot dial: "
                                + "; ".join(plan.problems))
    except GatewayError as exc:
        result.update(failed=True, error_kind=exc.kind, error=mask(exc, *secrets))
    except Exception as exc:  # noqa: BLE001 - one gateway's surprise must not stop the others
        result.update(failed=True, error_kind="error", error=mask(f"{exc.__class__.__name__}: {exc}", *secrets))
    finally:
        if conn is not None:
            _disconnect(conn)
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def _roll_back(conn, gateway, original):
    """Put back the forwarding read before the run; True when the gateway is as it was."""
    try:
        commands = restore_commands(read_dns(conn, gateway), original)
        if commands:
            send_config(conn, gateway, commands)
        return not restore_commands(read_dns(conn, gateway), original)
    except Exception:  # noqa: BLE001 - reported as "not rolled back"
        return False


def converge_gateways(gateways, people, check_mode=False, save=True, parallel=8, connect=netmiko_connect,
                      policy=None):
    """Converge every gateway, at most ``parallel`` at a time; results in the gateways' order."""
    if not gateways:
        return []
    workers = max(1, min(int(parallel), len(gateways)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cme") as pool:
        futures = [pool.submit(converge_gateway, gw, people, check_mode, save, connect, policy) for gw in gateways]
        return [future.result() for future in futures]
