# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The staff roster: one model, one loader, one validator for every module, plugin and script.

A roster is what HR exports: a CSV file (UTF-8, one person per row) or a YAML list. Loading never
raises on bad content: every problem is collected as a Problem(source, line, field, message) so the
user sees all of them at once, and people with problems are left out of ``Roster.people``.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

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

_ID_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EXTENSION_RE = re.compile(r"^[1-9][0-9]{1,5}$")
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


def _read_csv(text, source, problems):
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t", key=first_line.count)  # HR tools export with , ; or tabs
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        problems.append(Problem(source, 0, "", "the file is empty"))
        return
    except csv.Error as exc:
        problems.append(Problem(source, 1, "", f"unreadable CSV header: {exc}"))
        return
    columns = [_normalise_column(h) for h in header]
    if not _check_columns(columns, source, problems):
        return
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(Problem(source, start, "", f"unreadable CSV row: {exc}"))
            return
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            problems.append(Problem(source, start, "",
                                    f"{len(row)} values for {len(columns)} columns"))
            continue
        yield start, dict(zip(columns, row))


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
    import yaml

    class LineLoader(yaml.SafeLoader):
        pass

    def construct_mapping(loader, node, deep=False):
        mapping = yaml.SafeLoader.construct_mapping(loader, node, deep=deep)
        mapping["__line__"] = node.start_mark.line + 1
        return mapping

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    try:
        data = yaml.load(text, Loader=LineLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problems.append(Problem(source, mark.line + 1 if mark else 0, "", f"invalid YAML: {exc}"))
        return
    if isinstance(data, dict) and "people" in data:
        data = data["people"]
    if data is None:
        problems.append(Problem(source, 0, "", "the file is empty"))
        return
    if not isinstance(data, list):
        problems.append(Problem(source, 1, "", "expected a list of people (or a mapping with 'people:')"))
        return
    for item in data:
        if not isinstance(item, dict):
            problems.append(Problem(source, 0, "", f"expected a mapping for a person, got {type(item).__name__}"))
            continue
        line = item.pop("__line__", 0)
        row = {}
        for key, value in item.items():
            col = _normalise_column(key)
            if col not in COLUMNS:
                problems.append(Problem(source, line, col, "unknown field (known: " + ", ".join(COLUMNS) + ")"))
                continue
            row[col] = value
        yield line, row


# --------------------------------------------------------------------------------------------
# Field parsing: each returns (value, error message or None).
# --------------------------------------------------------------------------------------------

def _text(value):
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        raise ValueError("expected a single value, not a list or mapping")
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value).strip()


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
    if isinstance(value, list):
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
        values[col] = text

    if values.get("id") and not _ID_RE.match(values["id"]):
        errors.append(Problem(source, line, "id", f"{values['id']!r} must be lower case letters, digits, "
                                                  "'.', '_' or '-', start with a letter, 32 characters at most"))
    if values.get("email") and not _EMAIL_RE.match(values["email"]):
        errors.append(Problem(source, line, "email", f"{values['email']!r} is not an email address"))
    if "service" in values:
        values["service"] = values["service"].lower()

    take("priority", lambda v: _parse_choice(_text(v), PRIORITIES, "normal"))
    take("device", lambda v: _parse_choice(_text(v), DEVICES, "laptop"))
    take("forward_mode", lambda v: _parse_choice(_text(v), FORWARD_MODES, "none"))
    take("language", lambda v: _parse_choice(_text(v), LANGUAGES, "fr"))
    take("needs", lambda v: _parse_needs(v, needs))
    take("site", _text)
    take("voicemail", lambda v: _parse_bool(_text(v)))
    take("active", lambda v: True if _text(v) == "" else _parse_bool(_text(v)))

    def extension(v):
        text = _text(v)
        if text and not _EXTENSION_RE.match(text):
            raise ValueError(f"{text!r} is not a desk extension (2 to 6 digits, not starting with 0)")
        return text

    def forward_to(v):
        text = _text(v)
        return parse_phone(text, region) if text else ""

    def delay(v):
        text = _text(v)
        if not text:
            return 20
        if not text.isdigit() or not 5 <= int(text) <= 120:
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


def _check_unique(people, source, problems):
    for attr in ("id", "email", "extension"):
        first = {}
        for person in people:
            key = getattr(person, attr)
            key = key.lower() if attr == "email" else key
            if not key:
                continue
            if key in first:
                problems.append(Problem(source, person.line, attr,
                                        f"{key!r} is already used on line {first[key]}"))
            else:
                first[key] = person.line


def parse_roster(text, fmt, source="roster", services=None, region="FR", memo=None):
    """Parse roster text in ``fmt`` ('csv' or 'yaml'). ``services``: known service names, if any.

    memo: optional dict of row -> Person from an earlier parse with the same services and region; a
    row found there is not parsed again (a one-line change to a 5,000-person roster parses one row).
    It is updated in place to hold exactly this roster's valid rows. Keys are (column names, values):
    the names tuple is shared by every row with the same columns, so the memo pickles small."""
    problems = []
    rows = _read_csv(text, source, problems) if fmt == "csv" else _read_yaml(text, source, problems)
    known = set(services) if services is not None else None
    needs = known_needs()
    if memo is None:
        built = [_build_person(line, row, source, problems, region, known, needs) for line, row in rows]
    else:
        built, kept, columns = [], {}, {}
        for line, row in rows:
            names = tuple(row)
            names = columns.setdefault(names, names)
            try:
                key = (names, tuple(row.values()))
                hash(key)
            except TypeError:  # YAML rows can hold lists
                key = (names, tuple(repr(v) for v in row.values()))
            person = memo.get(key)
            if person is not None:
                if person.line != line:
                    person = _moved(person, line)
            else:
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
    _check_unique(people, source, problems)
    problems.sort(key=lambda p: (p.line, p.field))
    return Roster(people=people, problems=problems, source=source)


def _moved(person, line):
    """``person`` at another line of the file (dataclasses.replace re-runs __init__: 30x slower, and a
    5,000-row roster with a line inserted at the top moves everyone)."""
    copy = object.__new__(Person)
    copy.__dict__.update(person.__dict__)
    copy.__dict__["line"] = line
    return copy


def _parser_version():
    """What a cached roster depends on besides the file: this parser and the phone metadata."""
    import hashlib

    try:
        import phonenumbers
        phones = phonenumbers.__version__
    except ImportError:
        phones = None
    try:
        with open(__file__, "rb") as stream:
            source = stream.read()
    except OSError:  # inside a module's zip payload on a managed host
        source = __loader__.get_data(__file__) if hasattr(__loader__, "get_data") else b""
    return hashlib.sha256(source).hexdigest()[:16], phones


def load_roster(path, services=None, region="FR"):
    """Load a roster file; the format follows the extension (.csv, .yml/.yaml)."""
    path = Path(path)
    source = str(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".yml", ".yaml"):
        return Roster(problems=[Problem(source, 0, "", "roster must be a .csv, .yml or .yaml file")], source=source)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        return Roster(problems=[Problem(source, 0, "", f"cannot read the roster: {exc.strerror}")], source=source)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Roster(problems=[Problem(source, line, "", "not UTF-8 text (export the file as UTF-8)")],
                      source=source)
    fmt = "csv" if suffix == ".csv" else "yaml"
    options = (source, fmt, tuple(sorted(services)) if services is not None else None, region, _parser_version(),
               known_needs())

    def parse():
        from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import load_memo, save_memo

        memo_options = options[2:]  # rows parse the same whatever the file's name and format
        memo = load_memo("roster-rows", memo_options)
        roster = parse_roster(text, fmt, source, services, region, memo=memo)
        save_memo("roster-rows", memo_options, memo)
        return roster
    return cached_parse("roster", raw, options, parse)


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
