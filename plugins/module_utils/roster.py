# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The staff roster: one model, one loader, one validator for every module, plugin and script.

A roster is what HR exports: a CSV file (UTF-8, or Windows-1252 when that is unambiguous), an Excel
workbook (.xlsx: its first sheet) or a YAML list. Loading never raises on bad content: every problem
is collected as a Problem(source, line, field, message) so the user sees all of them at once, and
people with problems are left out of ``Roster.people``.

Every value is taken as written: YAML scalars stay text (``0123`` is not 83, ``10:01`` not 601),
spreadsheet cells whose type could change a number (phone numbers typed as numbers, dates) are
refused with a hint. Values that end up in configuration files are held to strict forms: ids are
login-like and never a system account, emails are plain addresses, free text has no control
characters and no ``;``.
"""
from __future__ import annotations

import csv
import io
import itertools
import os
import re
import stat
from dataclasses import dataclass, field, fields as dataclass_fields
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import roster_files
from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import parsed as cached_parse

PRIORITIES = ("critical", "high", "normal", "low")
DEVICES = ("laptop", "thin_client", "own_device")


def known_needs():
    """The needs a roster may name: those of the registered capabilities (plugins/module_utils/registry.py).
    None inside a module's payload, where the capabilities do not travel: needs are not checked there
    (the controller's front door checked them before the module ran)."""
    try:
        from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

        return registry.needs()
    except ImportError:
        return None


FORWARD_MODES = ("none", "always", "busy", "no_answer")
LANGUAGES = ("fr", "en")

# column -> required?  (order is the order of a generated CSV)
COLUMNS = {
    "id": True,
    "full_name": True,
    "email": True,
    "service": True,
    "priority": False,
    "site": False,
    "device": False,
    "needs": False,
    "extension": False,
    "forward_to": False,
    "forward_mode": False,
    "forward_delay": False,
    "voicemail": False,
    "active": False,
    "language": False,
}

# Accounts and groups that exist on the hosts teleshift manages (Debian, its packages, teleshift's own
# groups): never a person's id. The desktop planner refuses the same names (one list, so `validate`
# and preflight agree). Ids starting with SYSTEM_PREFIX are the per-service groups' names.
SYSTEM_ACCOUNTS = frozenset("""
root daemon bin sys sync games man lp mail news uucp proxy www-data backup list irc gnats nobody _apt
systemd-network systemd-resolve systemd-timesync systemd-coredump systemd-journal messagebus sshd _ssh
polkitd xrdp asterisk avahi colord lightdm saned pulse rtkit usbmux dnsmasq tss geoclue nm-openvpn
fail2ban nslcd sssd postfix exim debian-exim msmtp _chrony chrony ntp ntpsec uuidd tcpdump statd _rpc
dhcpcd sddm gdm speech-dispatcher cups-pk-helper lpadmin
adm tty disk kmem dialout fax voice cdrom floppy tape sudo audio dip operator src shadow utmp video
sasl plugdev staff users input sgx kvm render ssl-cert netdev bluetooth wireshark nogroup
teleshift tsusers tsusers-admins
""".split())
SYSTEM_PREFIX = "ts-"

ID_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")  # a person id: also a login, a kit directory
_ID_RE = ID_RE
# A plain address: no quoting, comments or IP literals, nothing a config format reads as syntax
# (, | ; < > " spaces, control characters); a domain of DNS labels with an alphabetic top level.
_EMAIL_RE = re.compile(r"(?=.{6,254}$)(?!\.)(?!.*\.\.)[A-Za-z0-9._%+'-]{1,64}(?<!\.)"
                       r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                       r"(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})")
_EXTENSION_RE = re.compile(r"^[1-9][0-9]{1,5}$")
_PHONE_CHARS_RE = re.compile(r"^\+?[0-9 .()/-]+$")
MAX_TEXT = {"full_name": 128, "site": 128, "service": 64}
MAX_BYTES = 64 * 1024 * 1024  # a roster file; 5,000 people take about 1 MB
_TRUE = {"yes", "y", "true", "1", "oui", "o"}
_FALSE = {"no", "n", "false", "0", "non", ""}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located precisely enough to fix it."""

    source: str
    line: int
    field: str
    message: str

    def __str__(self):
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


@dataclass(frozen=True)
class Person:
    id: str
    full_name: str
    email: str
    service: str
    priority: str = "normal"
    site: str = ""
    device: str = "laptop"
    needs: frozenset = frozenset()
    extension: str = ""
    forward_to: str = ""  # E.164, e.g. +33612345678
    forward_mode: str = "none"
    forward_delay: int = 20  # seconds before a no_answer forward
    voicemail: bool = False
    active: bool = True
    language: str = "fr"
    line: int = 0

    def needs_(self, need):
        return self.active and need in self.needs


@dataclass
class Roster:
    people: list = field(default_factory=list)
    problems: list = field(default_factory=list)
    source: str = ""

    @property
    def ok(self):
        return not self.problems

    def by_id(self):
        return {p.id: p for p in self.people}

    def active(self, need=None):
        """People who are active (and have ``need``, when given), in roster order."""
        return [p for p in self.people if p.active and (need is None or need in p.needs)]


class RosterError(Exception):
    """Raised by require_valid(); carries every problem."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__(format_problems(self.problems))


def format_problems(problems):
    lines = [f"{len(problems)} problem(s) found:"] + [f"  {p}" for p in problems]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Reading files: each reader yields (line, {column: raw value}) and records its own problems.
# --------------------------------------------------------------------------------------------

def _normalise_column(name):
    return re.sub(r"[\s-]+", "_", str(name).strip().lower())


def _delimiter(text):
    first_line = text.split("\n", 1)[0]
    return max(",;\t", key=first_line.count)  # HR tools export with , ; or tabs


def _read_csv(text, source, problems):
    delimiter = _delimiter(text)
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)

    def rows():
        while True:
            start = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                what = "header" if start == 1 else "row"
                problems.append(Problem(source, start, "", f"unreadable CSV {what}: {exc}"))
                return
            yield start, row
    return _read_table(rows(), source, problems)


_PLAIN_LINE_MAX = 100_000  # longer lines go through the csv module (its field size limit applies)


def _read_csv_lines(text, source, problems):
    """What ``_read_csv`` yields, as (line, row, key): ``key`` names a plain record by its text's digest (a line
    without quotes, carriage returns or NULs: its cells are its text split at the delimiter, exactly as
    the csv module reads it), and ``row`` is then a function returning the row (called only when the
    row memo does not know the key). Other records (quoted, several lines) go through the csv module:
    key None, row a dict.

    Why: at 50,000 people, reading every row with the csv module and keying it by a digest of its
    values took 0.35 s of each plan task when one line had changed; a digest of the line is 0.5 µs."""
    from hashlib import blake2b

    delimiter = _delimiter(text)
    parts = text.split("\n")
    last = parts.pop()  # after the final newline: usually empty
    lines = iter([part + "\n" for part in parts] + ([last] if last else []))
    number = 0  # physical lines consumed so far

    def quoted(first):
        """The record starting with the physical line ``first``, read by the csv module (which takes
        the further lines it needs from ``lines``)."""
        nonlocal number
        start = number
        reader = csv.reader(itertools.chain((first,), lines), delimiter=delimiter)
        try:
            cells = next(reader)
        except StopIteration:  # pragma: no cover  (a line always holds a record, maybe empty)
            cells = []
        finally:
            number = start - 1 + reader.line_num
        return cells

    def records():
        nonlocal number
        for physical in lines:
            number += 1
            body = physical[:-1] if physical.endswith("\n") else physical
            if body.endswith("\r"):
                body = body[:-1]
            if number == 1 or '"' in body or "\r" in body or "\0" in body or len(body) > _PLAIN_LINE_MAX:
                start = number
                try:
                    cells = quoted(physical)
                except csv.Error as exc:
                    what = "header" if start == 1 else "row"
                    problems.append(Problem(source, start, "", f"unreadable CSV {what}: {exc}"))
                    return
                yield start, cells, None
            else:
                yield number, body, body

    items = records()
    columns = _header_columns(items, source, problems)
    if columns is None:
        return
    width = len(columns)
    tag = _names_tag(tuple(columns)) + delimiter  # a delimiter is never a hex digit: no digest key collides

    def checked(start, cells):
        if not any(cell.strip(_BLANKS) for cell in cells):
            return None
        if len(cells) != width:
            problems.append(Problem(source, start, "", f"{len(cells)} values for {width} columns"))
            return None
        return dict(zip(columns, cells))

    for start, cells, body in items:
        if body is None:
            row = checked(start, cells)
            if row is not None:
                yield start, row, None
        else:
            key = tag + blake2b(body.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
            yield start, (lambda start=start, body=body: checked(start, body.split(delimiter))), key


def _read_xlsx(data, source, problems):
    def problem(line, col, message):
        problems.append(Problem(source, line, col, message))

    rows = roster_files.xlsx_table(data, problem)
    header = next(rows, None)
    if header is None:
        if not problems:
            problems.append(Problem(source, 0, "", "the first sheet is empty"))
        return
    line, cells = header
    names = ["" if c[0] is None else str(c[0]) for c in cells]

    def table():
        yield line, names
        yield from rows
    yield from _read_table(table(), source, problems, roster_files.cell_text)


def _read_table(rows, source, problems, cell_text=None):
    """(line, {column: raw value}) from (line, cells) rows, the first of them the header. CSV rows
    are text, one cell per column; spreadsheet rows go through ``cell_text`` and may be short."""
    columns = _header_columns(rows, source, problems)
    if columns is None:
        return
    width = len(columns)
    for start, row in rows:
        if cell_text is None and not any(cell.strip(_BLANKS) for cell in row):
            continue
        if len(row) > width or (cell_text is None and len(row) != width):
            problems.append(Problem(source, start, "", f"{len(row)} values for {width} columns"))
            continue
        if cell_text is None:
            yield start, dict(zip(columns, row))
        else:
            yield start, {col: cell_text(row[i], col) if i < len(row) else "" for i, col in enumerate(columns)}


def _header_columns(rows, source, problems):
    """The column names of the first of ``rows`` ((line, cells) or (line, cells, key)), or None when
    there is none or they are wrong (recorded in ``problems``)."""
    header = next(rows, None)
    if header is None:
        if not problems:
            problems.append(Problem(source, 0, "", "the file is empty"))
        return None
    columns = [_normalise_column(h) for h in header[1]]
    return columns if _check_columns(columns, source, problems) else None


def _check_columns(columns, source, problems):
    good = True
    seen = set()
    for col in columns:
        if col in seen:
            problems.append(Problem(source, 1, col, "column appears twice"))
            good = False
        seen.add(col)
        if col not in COLUMNS:
            problems.append(Problem(source, 1, col, "unknown column (known: " + ", ".join(COLUMNS) + ")"))
            good = False
    for col, required in COLUMNS.items():
        if required and col not in seen:
            problems.append(Problem(source, 1, col, "required column is missing"))
            good = False
    return good


def _read_yaml(text, source, problems):
    def problem(line, col, message):
        problems.append(Problem(source, line, col, message))

    root = roster_files.yaml_tree(text, problem, _normalise_column)
    if root is roster_files.FAILED:
        return
    data = root
    if isinstance(root, roster_files.Mapping):
        found = [(line, value) for key, line, value in root.entries if key == "people"]
        if len(found) > 1:
            problems.append(Problem(source, found[1][0], "people", f"appears twice (first on line {found[0][0]})"))
            return
        if not found:
            problems.append(Problem(source, root.line, "", "expected a list of people (or a mapping with 'people:')"))
            return
        data = found[0][1]
    if data is None:
        problems.append(Problem(source, 0, "", "the file is empty"))
        return
    if not isinstance(data, roster_files.Sequence):
        problems.append(Problem(source, 1, "", "expected a list of people (or a mapping with 'people:')"))
        return
    for item, line in zip(data, data.lines):
        if not isinstance(item, roster_files.Mapping):
            kind = "a list" if isinstance(item, list) else "nothing" if item is None else f"the text {item!r}"
            problems.append(Problem(source, line, "", f"expected a mapping for a person, got {kind}"))
            continue
        row, first = {}, {}
        for key, key_line, value in item.entries:
            col = _normalise_column(key)
            if col not in COLUMNS:
                problems.append(Problem(source, item.line, col, "unknown field (known: " + ", ".join(COLUMNS) + ")"))
                continue
            if col in first:
                row[col] = roster_files.Refused(f"given twice in this person (lines {first[col]} and {key_line})")
                continue
            first[col] = key_line
            row[col] = roster_files.plain(value)
        yield item.line, row


# --------------------------------------------------------------------------------------------
# Field parsing: each returns the value or raises ValueError saying what is wrong.
# --------------------------------------------------------------------------------------------

_BLANKS = roster_files.BLANKS
_CONTROL_NAMES = {"\r": "carriage return", "\n": "line feed", "\t": "tab", "\x00": "NUL"}


def _text(value):
    if value is None:
        return ""
    if isinstance(value, roster_files.Refused):
        raise ValueError(value.message)
    if isinstance(value, (list, tuple, dict)):
        raise ValueError("expected a single value, not a list or mapping")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip(_BLANKS)  # spaces only: a CR or line break around a value is refused, not hidden


def free_text(text, col=""):
    """``text`` when it can go into any configuration file or notice: no control or invisible
    characters (a lone CR, tabs, Unicode line separators, bidi overrides...), no ';' (a comment in
    INI-style files), within the field's length. Raises ValueError saying what to remove."""
    if not text.isprintable():  # every Unicode "Other" and "Separator" except the plain space...
        import unicodedata

        for position, char in enumerate(text, 1):
            if not char.isprintable() and unicodedata.category(char) != "Zs":  # ...but no-break spaces are fine
                name = _CONTROL_NAMES.get(char) or unicodedata.name(char, "a control character").lower()
                raise ValueError(f"{text!r} contains U+{ord(char):04X} ({name}) at position {position}: remove it")
    if ";" in text:
        raise ValueError(f"{text!r} contains ';': remove it")
    limit = MAX_TEXT.get(col)
    if limit and len(text) > limit:
        raise ValueError(f"{len(text)} characters: {limit} at most")
    return text


def is_system_account(name):
    """True when ``name`` is an account or group the hosts already have (or a service group)."""
    return name in SYSTEM_ACCOUNTS or name.startswith(SYSTEM_PREFIX)


def _parse_bool(raw):
    text = raw.lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"expected yes or no, got {raw!r}")


def _parse_choice(raw, choices, default):
    text = _normalise_column(raw) if raw else default
    if text not in choices:
        raise ValueError(f"{raw!r} is not one of {', '.join(choices)}")
    return text


def _parse_needs(value, known):
    if isinstance(value, (list, tuple)):
        items = [_text(v).lower() for v in value]
    else:
        items = [v.strip().lower() for v in re.split(r"[;,|\s]+", _text(value)) if v.strip()]
    bad = [i for i in items if known is not None and i not in known]
    if bad:
        raise ValueError(f"unknown need(s) {', '.join(map(repr, bad))} (known: {', '.join(known)})")
    return frozenset(items)


def parse_phone(raw, region="FR"):
    """Return the E.164 form of a phone number, or raise ValueError saying why it is not one."""
    import phonenumbers

    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(f"{raw!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(number):
        raise ValueError(f"{raw!r} is not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _build_person(line, row, source, problems, region, services, needs=None):
    """Turn one raw row into a Person; on any problem record it and return None."""
    errors = []
    values = {"line": line}

    def take(col, parse):
        try:
            raw = row.get(col)
            values[col] = parse(raw)
        except ValueError as exc:
            errors.append(Problem(source, line, col, str(exc)))

    for col, required in COLUMNS.items():
        if not required:
            continue
        try:
            text = _text(row.get(col))
        except ValueError as exc:
            errors.append(Problem(source, line, col, str(exc)))
            continue
        if not text:
            errors.append(Problem(source, line, col, "required field is empty"))
        elif col in MAX_TEXT:
            try:
                free_text(text, col)
            except ValueError as exc:
                errors.append(Problem(source, line, col, str(exc)))
                continue
        values[col] = text

    pid = values.get("id")
    if pid and not _ID_RE.fullmatch(pid):
        errors.append(Problem(source, line, "id", f"{pid!r} must be lower case letters, digits, "
                                                  "'.', '_' or '-', start with a letter, 32 characters at most"))
    elif pid and is_system_account(pid):
        errors.append(Problem(source, line, "id", f"{pid!r} is the name of a system account or group on the hosts"
                                                  + (f" (or starts with {SYSTEM_PREFIX!r}, kept for service groups)"
                                                     if pid.startswith(SYSTEM_PREFIX) else "")
                                                  + ": give this person another id"))
    if values.get("email") and not _EMAIL_RE.fullmatch(values["email"]):
        errors.append(Problem(source, line, "email", f"{values['email']!r} is not a plain email address "
                                                     "(name@domain.tld: letters, digits and . _ % + - ' only, "
                                                     "an ASCII domain)"))
    if "service" in values:
        values["service"] = values["service"].lower()

    take("priority", lambda v: _parse_choice(_text(v), PRIORITIES, "normal"))
    take("device", lambda v: _parse_choice(_text(v), DEVICES, "laptop"))
    take("forward_mode", lambda v: _parse_choice(_text(v), FORWARD_MODES, "none"))
    take("language", lambda v: _parse_choice(_text(v), LANGUAGES, "fr"))
    take("needs", lambda v: _parse_needs(v, needs))
    take("site", lambda v: free_text(_text(v), "site"))
    take("voicemail", lambda v: _parse_bool(_text(v)))
    take("active", lambda v: True if _text(v) == "" else _parse_bool(_text(v)))

    def extension(v):
        text = _text(v)
        if text and not _EXTENSION_RE.fullmatch(text):
            raise ValueError(f"{text!r} is not a desk extension (2 to 6 digits, not starting with 0)")
        return text

    def forward_to(v):
        text = _text(v)
        if text and not _PHONE_CHARS_RE.fullmatch(text):
            raise ValueError(f"{text!r} is not a phone number (digits, spaces, '.', '-', '/', "
                             "parentheses and a leading '+' only)")
        return parse_phone(text, region) if text else ""

    def delay(v):
        text = _text(v)
        if not text:
            return 20
        if not (text.isascii() and text.isdigit()) or not 5 <= int(text) <= 120:
            raise ValueError(f"{text!r} is not a number of seconds between 5 and 120")
        return int(text)

    take("extension", extension)
    take("forward_to", forward_to)
    take("forward_delay", delay)

    # Rules across fields.
    needs = values.get("needs", frozenset())
    mode = values.get("forward_mode")
    forwarding = bool(mode) and mode != "none"
    if "extension" in values and not values["extension"] and ("phone" in needs or forwarding):
        why = "people who need a phone" if "phone" in needs else f"forward_mode {mode}"
        errors.append(Problem(source, line, "extension", f"required for {why}"))
    if forwarding and "forward_to" in values and not values["forward_to"]:
        errors.append(Problem(source, line, "forward_to", f"required when forward_mode is {mode}"))
    if services is not None and values.get("service") and values["service"] not in services:
        errors.append(Problem(source, line, "service", f"unknown service {values['service']!r} "
                                                       f"(known: {', '.join(sorted(services))})"))

    if errors:
        problems.extend(errors)
        return None
    return Person(**values)


def _check_unique(people, source, problems, where=None):
    """``where(line)``: how a message names the first holder (default: ``on line N``)."""
    for attr in ("id", "email", "extension"):
        first = {}
        for person in people:
            key = getattr(person, attr)
            key = key.lower() if attr == "email" else key
            if not key:
                continue
            if key in first:
                held = where(first[key]) if where else f"on line {first[key]}"
                problems.append(Problem(source, person.line, attr, f"{key!r} is already used {held}"))
            else:
                first[key] = person.line


_READERS = {"csv": _read_csv, "yaml": _read_yaml, "xlsx": _read_xlsx}


def parse_roster(text, fmt, source="roster", services=None, region="FR", memo=None):
    """Parse roster text in ``fmt`` ('csv' or 'yaml'; 'xlsx' takes the workbook's bytes).
    ``services``: known service names, if any. A roster with nobody in it is a problem.

    memo: optional dict of row -> Person from an earlier parse with the same services and region; a
    row found there is not parsed again (a one-line change to a 5,000-person roster parses one row).
    It is updated in place to hold exactly this roster's valid rows. Keys are text: digests of the
    column names and of the row's values (text, None, tuples of text: their repr is exact)."""
    problems = []
    if fmt not in _READERS:
        raise ValueError(f"unknown roster format {fmt!r}")
    if fmt == "csv" and memo is not None:
        rows = _read_csv_lines(text, source, problems)  # keyed by their text where they can be
    else:
        rows = _READERS[fmt](text, source, problems)
    return build_roster(rows, source, services, region, memo, problems)


def build_roster(rows, source="roster", services=None, region="FR", memo=None, problems=None, where=None):
    """The Roster of raw ``rows`` ((line, {column: raw value}) from any reader: a file, the directory),
    with the same rules, memo and checks as ``parse_roster``; ``where``: see ``_check_unique``. With a
    memo, a row may also come as (line, row, key) from ``_read_csv_lines``: its own memo key, or None
    for the digest of its values; ``row`` may then be a function giving the row, or None (nothing to
    build: its problem is recorded)."""
    problems = [] if problems is None else problems
    known = set(services) if services is not None else None
    needs = known_needs()
    if memo is None:
        built = [_build_person(line, row, source, problems, region, known, needs) for line, row in rows]
    else:
        from hashlib import blake2b

        built, kept, tags = [], {}, {}
        for item in rows:
            line, row = item[0], item[1]
            key = item[2] if len(item) > 2 else None
            if key is None:
                names = tuple(row)
                tag = tags.get(names) or tags.setdefault(names, _names_tag(names))
                key = tag + blake2b(repr(tuple(row.values())).encode("utf-8", "surrogatepass"),
                                    digest_size=16).hexdigest()
            person = memo.get(key)
            if person is not None:
                if person.line != line:
                    person = _moved(person, line)
            else:
                if callable(row):
                    row = row()
                    if row is None:  # blank, or the wrong width (recorded)
                        continue
                count = len(problems)
                person = _build_person(line, row, source, problems, region, known, needs)
                if len(problems) != count:  # rows with problems are never remembered
                    built.append(person)
                    continue
            if person is not None:
                kept[key] = person
            built.append(person)
        memo.clear()
        memo.update(kept)
    people = [p for p in built if p is not None]
    if not built and not problems:
        problems.append(Problem(source, 0, "", "the roster lists nobody: an empty or truncated export? "
                                               "(a roster must list everyone, active or not)"))
    _check_unique(people, source, problems, where)
    problems.sort(key=lambda p: (p.line, p.field))
    return Roster(people=people, problems=problems, source=source)


def _names_tag(names):
    import hashlib

    return hashlib.blake2b(repr(names).encode("utf-8"), digest_size=6).hexdigest()


def _moved(person, line):
    """``person`` at another line of the file (dataclasses.replace re-runs __init__: 30x slower, and a
    5,000-row roster with a line inserted at the top moves everyone)."""
    copy = object.__new__(Person)
    copy.__dict__.update(person.__dict__)
    copy.__dict__["line"] = line
    return copy


# --------------------------------------------------------------------------------------------
# The controller cache holds rosters as JSON: these turn them into JSON data and back, exactly.
# --------------------------------------------------------------------------------------------

_PERSON_FIELDS = tuple(f.name for f in dataclass_fields(Person))
_PERSON_TYPES = [{"needs": list, "forward_delay": int, "voicemail": bool, "active": bool, "line": int}.get(name, str)
                 for name in _PERSON_FIELDS]
_NEEDS_AT = _PERSON_FIELDS.index("needs")


def person_to_json(person):
    values = list(person.__dict__.values())  # field order: __init__, _moved and person_from_json keep it
    if len(values) != len(_PERSON_FIELDS):
        values = [getattr(person, name) for name in _PERSON_FIELDS]
    values[_NEEDS_AT] = sorted(values[_NEEDS_AT])
    return values


def person_from_json(values):
    """The Person of ``person_to_json``; ValueError on anything else (a damaged cache file)."""
    if list(map(type, values)) != _PERSON_TYPES:
        raise ValueError("not a person")
    person = object.__new__(Person)  # the fields' own types were just checked: no __init__ needed
    person.__dict__.update(zip(_PERSON_FIELDS, values))
    person.__dict__["needs"] = frozenset(values[_NEEDS_AT])
    return person


def roster_to_json(roster):
    return {"source": roster.source, "people": [person_to_json(p) for p in roster.people],
            "problems": [[p.source, p.line, p.field, p.message] for p in roster.problems]}


def roster_from_json(data):
    if not isinstance(data["source"], str) or not all(
            isinstance(item, list) and list(map(type, item)) == [str, int, str, str] for item in data["problems"]):
        raise ValueError("not a roster")
    problems = [Problem(*item) for item in data["problems"]]
    return Roster(people=[person_from_json(v) for v in data["people"]], problems=problems, source=data["source"])


def _memo_to_json(memo):
    return {"rows": {key: person_to_json(person) for key, person in memo.items()}}


def _memo_from_json(data):
    return {key: person_from_json(person) for key, person in data["rows"].items()}


ROSTER_CODEC = (roster_to_json, roster_from_json)


def _parser_version():
    """What a cached roster depends on besides the file: this parser, its readers, the phone metadata."""
    import hashlib

    try:
        import phonenumbers
        phones = phonenumbers.__version__
    except ImportError:
        phones = None
    digest = hashlib.sha256()
    for module_file, loader in ((__file__, globals().get("__loader__")),
                                (roster_files.__file__, getattr(roster_files, "__loader__", None))):
        try:
            with open(module_file, "rb") as stream:
                digest.update(stream.read())
        except OSError:  # inside a module's zip payload on a managed host
            digest.update(loader.get_data(module_file) if hasattr(loader, "get_data") else b"")
    return digest.hexdigest()[:16], phones


FORMATS = {".csv": "csv", ".yml": "yaml", ".yaml": "yaml", ".xlsx": "xlsx"}


def load_roster(path, services=None, region="FR"):
    """Load a roster file; the format follows the extension (.csv, .xlsx, .yml/.yaml)."""
    path = Path(path)
    source = str(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        hint = " (save the sheet as .xlsx or CSV UTF-8)" if path.suffix.lower() in (".xls", ".ods", ".xlsm") else ""
        return Roster(problems=[Problem(source, 0, "", "roster must be a .csv, .xlsx, .yml or .yaml file" + hint)],
                      source=source)
    try:
        with open(path, "rb") as stream:
            st = os.fstat(stream.fileno())
            size = st.st_size if stat.S_ISREG(st.st_mode) else MAX_BYTES + 1  # no FIFO or device
            raw = stream.read() if size <= MAX_BYTES else b""
    except OSError as exc:
        return Roster(problems=[Problem(source, 0, "", f"cannot read the roster: {exc.strerror}")], source=source)
    if size > MAX_BYTES or len(raw) > MAX_BYTES:
        message = f"not a regular file of at most {MAX_BYTES // 2**20} MiB: not a roster"
        return Roster(problems=[Problem(source, 0, "", message)], source=source)
    if fmt == "xlsx":
        text = raw
    else:
        text, refusal = roster_files.decode(raw, fmt)
        if refusal:
            return Roster(problems=[Problem(source, refusal[0], "", refusal[1])], source=source)
    options = (source, fmt, tuple(sorted(services)) if services is not None else None, region, _parser_version(),
               known_needs())

    def parse():
        from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import load_memo, save_memo

        memo_options = options[2:]  # rows parse the same whatever the file's name and format
        memo = load_memo("roster-rows", memo_options, decode=_memo_from_json)
        roster = parse_roster(text, fmt, source, services, region, memo=memo)
        save_memo("roster-rows", memo_options, memo, encode=_memo_to_json)
        return roster
    return cached_parse("roster", raw, options, parse, codec=ROSTER_CODEC)


PRIORITY_RANK = {p: i for i, p in enumerate(PRIORITIES)}


def priority_key(person):
    """The one order every planner uses: priority (critical first), then roster line, then id."""
    return (PRIORITY_RANK.get(person.priority, len(PRIORITY_RANK)), person.line, person.id)


def priority_order(people):
    return sorted(people, key=priority_key)


def require_valid(roster):
    if roster.problems:
        raise RosterError(roster.problems)
    return roster


def to_row(person):
    """A person as a flat dict of CSV strings (the inverse of loading)."""
    return {
        "id": person.id,
        "full_name": person.full_name,
        "email": person.email,
        "service": person.service,
        "priority": person.priority,
        "site": person.site,
        "device": person.device,
        "needs": ";".join(sorted(person.needs, key=lambda n: (_need_rank(n), n))),
        "extension": person.extension,
        "forward_to": person.forward_to,
        "forward_mode": person.forward_mode,
        "forward_delay": str(person.forward_delay),
        "voicemail": "yes" if person.voicemail else "no",
        "active": "yes" if person.active else "no",
        "language": person.language,
    }


def _need_rank(need):
    known = known_needs() or ()
    return known.index(need) if need in known else len(known)


def write_csv(people, stream):
    writer = csv.DictWriter(stream, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for person in people:
        writer.writerow(to_row(person))
