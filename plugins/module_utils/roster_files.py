# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Reading roster files as written, for roster.py: bytes to text, YAML without type guessing, and
Excel workbooks without Excel's conversions going unnoticed.

Problems go through a ``problem(line, field, message)`` callback; a cell or value that must be
refused is handed on as ``Refused(message)``, which the roster reports with its line and field.
"""
from __future__ import annotations

import datetime
import io
import re
from dataclasses import dataclass

MAX_DEPTH = 6  # mapping > people > person > needs: a roster needs 4 levels
MAX_XLSX_UNZIPPED = 256 * 1024 * 1024
MAX_ROWS = 200_000


@dataclass(frozen=True)
class Refused:
    """A value that cannot be taken (the message says why); the roster reports it on its field."""

    message: str


# ------------------------------------------------------------------------------------- bytes

_WIDE_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
              (b"\xfe\xff", "UTF-16"))


_UTF8_SEQUENCE = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")


def decode(raw, fmt):
    """(text, None) or (None, (line, message)). UTF-8 (with or without BOM); for CSV, Windows-1252
    when the bytes are not UTF-8, hold no UTF-8 sequence at all (a UTF-8 file with one damaged byte
    is not read as Windows-1252) and every byte is a Windows-1252 character."""
    for bom, name in _WIDE_BOMS:
        if raw.startswith(bom):
            return None, (1, f"{name} text: export the file as UTF-8 (Excel: 'CSV UTF-8')")
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
    if fmt == "csv":
        utf8 = _UTF8_SEQUENCE.search(raw)
        if utf8:  # part UTF-8, part something else: a damaged file, no guess is safe
            where = raw.count(b"\n", 0, utf8.start()) + 1
            return None, (line, f"not UTF-8 text, though line {where} is: the file mixes encodings "
                                "(export it again as UTF-8: Excel 'CSV UTF-8')")
        try:
            return raw.decode("cp1252"), None
        except UnicodeDecodeError:
            pass
        hint = "neither UTF-8 nor Windows-1252 text (export the file as UTF-8: Excel 'CSV UTF-8')"
    else:
        hint = "not UTF-8 text (export the file as UTF-8)"
    return None, (line, hint)


# -------------------------------------------------------------------------------------- YAML

class Mapping:
    """A YAML mapping as written: (key, key line, value) entries in order, duplicates kept."""

    __slots__ = ("line", "entries")

    def __init__(self, line):
        self.line, self.entries = line, []


class Sequence(list):
    __slots__ = ("line", "lines")

    def __init__(self, line):
        super().__init__()
        self.line, self.lines = line, []


_NULLS = frozenset(("", "~", "null", "Null", "NULL"))
_STR_TAGS = (None, "!", "tag:yaml.org,2002:str")
_COLLECTION_TAGS = (None, "!", "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map")
_NO_KEY = object()
FAILED = object()


def yaml_tree(text, problem, field_name=str):
    """The YAML document as Mapping / Sequence / str / None, built straight from the parser's events.

    No implicit types: a plain scalar is its text (``null``, ``~`` and nothing are None). Anchors,
    aliases, tags other than str/seq/map, a second document and nesting deeper than MAX_DEPTH are
    refused at the first event that shows them: nothing is ever expanded. Returns FAILED after a
    problem. field_name: key -> the field to report."""
    import yaml

    if "\x00" in text:
        at = text.index("\x00")
        line = text.count("\n", 0, at) + 1
        key = re.match(r"\s*-?\s*([^:#\s][^:]*):", text[text.rfind("\n", 0, at) + 1:at])
        problem(line, field_name(key.group(1)) if key else "", "NUL byte: remove it (the file is damaged or not text)")
        return FAILED
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    stack, root, documents = [], None, 0

    def refuse(event, message):
        top = stack[-1] if stack else None
        name = field_name(top[1]) if top and top[1] is not _NO_KEY else ""
        problem(event.start_mark.line + 1, name, message)
        return FAILED

    try:
        for event in yaml.parse(text, Loader=loader):
            kind = type(event)
            if kind is yaml.AliasEvent or getattr(event, "anchor", None):
                return refuse(event, "YAML anchors and aliases (& and *) are not allowed in a roster: "
                                     "write each value out")
            if kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    return refuse(event, "a roster is one YAML document (found a second '---')")
                continue
            if kind in (yaml.SequenceEndEvent, yaml.MappingEndEvent):
                stack.pop()
                continue
            if kind not in (yaml.ScalarEvent, yaml.SequenceStartEvent, yaml.MappingStartEvent):
                continue
            line = event.start_mark.line + 1
            if kind is yaml.ScalarEvent:
                if event.tag not in _STR_TAGS:
                    return refuse(event, f"YAML tag {event.tag} is not allowed: write the value as text")
                node = event.value
                if event.tag is None and event.implicit[0] and node in _NULLS:
                    node = None
            else:
                if event.tag not in _COLLECTION_TAGS:
                    return refuse(event, f"YAML tag {event.tag} is not allowed")
                if len(stack) >= MAX_DEPTH:
                    return refuse(event, f"nested more than {MAX_DEPTH} levels deep: not a roster")
                node = Mapping(line) if kind is yaml.MappingStartEvent else Sequence(line)
            if stack:
                top = stack[-1]
                if isinstance(top[0], Mapping):
                    if top[1] is _NO_KEY:
                        if kind is not yaml.ScalarEvent:
                            return refuse(event, "a key must be a plain name")
                        top[1], top[2] = event.value, line
                    else:
                        top[0].entries.append((top[1], top[2], node))
                        top[1] = _NO_KEY
                else:
                    top[0].append(node)
                    top[0].lines.append(line)
            else:
                root = node
            if kind is not yaml.ScalarEvent:
                stack.append([node, _NO_KEY, 0])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem(mark.line + 1 if mark else 0, "", f"invalid YAML: {exc}")
        return FAILED
    return root


def plain(node):
    """A field's value: text, None, a tuple of texts (a list) or Refused (anything deeper)."""
    if node is None or isinstance(node, str):
        return node
    if isinstance(node, Sequence):
        return tuple(v if v is None or isinstance(v, str) else Refused("a list or mapping inside a list")
                     for v in node)
    return Refused("expected a single value or a list, not a mapping")


# ------------------------------------------------------------------------------------- Excel

def xlsx_table(data, problem):
    """(row number, [(value, data type, number format), ...]) for each row of the first sheet, the
    header first; blank rows are skipped. Read-only mode with cached formula results."""
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unzipped = sum(item.file_size for item in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        problem(0, "", "not an Excel workbook (.xlsx): an old .xls or another file renamed? "
                       "Save it as 'Excel Workbook (.xlsx)' or 'CSV UTF-8'")
        return
    if unzipped > MAX_XLSX_UNZIPPED:
        problem(0, "", f"the workbook unpacks to {unzipped // 2**20} MiB: too big for a roster")
        return
    try:
        import openpyxl
    except ImportError:
        problem(0, "", "reading .xlsx needs openpyxl (pip install -r requirements.txt); "
                       "or export the sheet as 'CSV UTF-8'")
        return
    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds on a damaged file
        problem(0, "", f"unreadable Excel workbook: {type(exc).__name__}: {exc}"[:300])
        return
    try:
        if not book.worksheets:
            problem(0, "", "the workbook has no worksheet")
            return
        sheet = book.worksheets[0]
        sheet.reset_dimensions()  # some exporters write a wrong size: read every cell there is
        for number, row in enumerate(sheet.iter_rows(), 1):
            if number > MAX_ROWS:
                problem(number, "", f"more than {MAX_ROWS} rows: not a roster")
                return
            cells = [(c.value, getattr(c, "data_type", "n"), getattr(c, "number_format", "General")) for c in row]
            while cells and _blank(cells[-1][0]):
                cells.pop()
            if cells:
                yield number, cells
    except Exception as exc:  # noqa: BLE001 - a damaged sheet part
        problem(0, "", f"unreadable Excel worksheet: {type(exc).__name__}: {exc}"[:300])
    finally:
        book.close()


BLANKS = " \t\u00a0\u202f\u3000"  # what is stripped around a value (a line break is not: it is refused)


def _blank(value):
    return value is None or (isinstance(value, str) and not value.strip(BLANKS))


_TEXT_HINT = "format the column as Text and type the value again"
_DIGITS_FORMAT = re.compile(r"0+")
_BOOLEAN_FIELDS = ("voicemail", "active")


def cell_text(cell, column):
    """What a cell says, as the roster's text; Refused when Excel may have changed what was typed."""
    value, data_type, number_format = cell
    if value is None:
        return ""
    if data_type == "e":
        return Refused(f"the cell shows the error {value}: fix the formula or type the value")
    if isinstance(value, bool):
        if column in _BOOLEAN_FIELDS:
            return "yes" if value else "no"
        return Refused(f"a TRUE/FALSE cell: {_TEXT_HINT}")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time, datetime.timedelta)):
        return Refused(f"Excel turned this cell into a date or time ({value}): {_TEXT_HINT}")
    if isinstance(value, (int, float)):
        return _number_text(value, column, number_format or "General")
    return str(value)


def _number_text(value, column, number_format):
    if column == "forward_to":
        shown = int(value) if float(value).is_integer() else value
        return Refused(f"a number cell ({shown}): Excel drops the leading 0 or + of phone numbers; "
                       f"{_TEXT_HINT} (e.g. 06 12 34 56 78 or +33 6 12 34 56 78)")
    if isinstance(value, float) and not value.is_integer():
        return repr(value)
    if abs(value) >= 10 ** 15:
        return Refused(f"a number too long for Excel to keep exactly: {_TEXT_HINT}")
    number = int(value)
    if number_format in ("General", "0", "@"):
        return str(number)  # what Excel shows
    if _DIGITS_FORMAT.fullmatch(number_format):
        return str(number).zfill(len(number_format))  # "0000" shows 0123 for 123
    return Refused(f"a number shown with the format {number_format!r}: {_TEXT_HINT}")
