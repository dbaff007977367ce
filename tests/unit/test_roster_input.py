"""Roster files read as written: YAML without type guessing or aliases, Excel cells Excel may have
changed, Windows-1252 CSV, empty rosters; strict emails, free text and ids (issues 19 and 11)."""
import dataclasses
import io
import re
import textwrap
import time
import tracemalloc
import zipfile

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop, roster as rmod
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import COLUMNS, load_roster, parse_roster

SERVICES = {"rsa", "dsi"}
GOOD = "amartin,Anaïs Martin,anais@ex.fr,rsa,critical,Siège,laptop,vpn;phone,1001,06 12 34 56 78,always,20,yes,yes,fr"


def located(roster):
    return sorted((p.line, p.field) for p in roster.problems)


def yaml_roster(body):
    return parse_roster(body, "yaml", "r.yml", SERVICES)


PERSON = """\
people:
  - id: amartin
    full_name: Anaïs Martin
    email: anais@ex.fr
    service: rsa
    needs: [vpn]
"""


# ------------------------------------------------------------------------------------------ YAML

@pytest.mark.parametrize("line, field, text", [
    ("extension: 0123", "extension", "'0123'"),  # YAML 1.1 octal: would be 83
    ("extension: 1_001", "extension", "'1_001'"),  # would be 1001
    ("extension: 0x3E9", "extension", "'0x3E9'"),  # would be 1001
    ("forward_delay: 10:01", "forward_delay", "'10:01'"),  # sexagesimal: would be 601
    ("forward_delay: 2e1", "forward_delay", "'2e1'"),
    ("voicemail: 1.0", "voicemail", "'1.0'"),
])
def test_yaml_scalars_are_taken_as_written(line, field, text):
    roster = yaml_roster(PERSON + "    " + line + "\n")
    assert located(roster) == [(2, field)]
    assert text in roster.problems[0].message


def test_yaml_phone_numbers_keep_their_leading_zero():
    roster = yaml_roster(PERSON.replace("[vpn]", "[vpn, phone]")
                         + "    extension: 1001\n    forward_to: 0612345670\n    forward_mode: busy\n")
    assert roster.ok, roster.problems
    person = roster.people[0]
    assert person.forward_to == "+33612345670"  # not +33103402424 (0612345670 read as octal)
    assert person.extension == "1001"


def test_yaml_booleans_and_nulls_as_written():
    roster = yaml_roster(PERSON + "    extension: 1001\n    voicemail: true\n    active: ~\n    site:\n")
    assert roster.ok, roster.problems
    assert roster.people[0].voicemail is True and roster.people[0].active is True and roster.people[0].site == ""
    assert yaml_roster(PERSON + "    extension: 1001\n    active: No\n").people[0].active is False


def nested_aliases(levels=9):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines.append("people:\n  - id: x\n    full_name: *i")
    return "\n".join(lines) + "\n"


def test_nested_aliases_are_refused_at_once_without_memory(tmp_path):
    bomb = nested_aliases()
    assert len(bomb) < 450  # the 417-byte kind: 9^9 strings once expanded
    path = tmp_path / "bomb.yml"
    path.write_text(bomb, encoding="utf-8")
    tracemalloc.start()
    started = time.perf_counter()
    roster = load_roster(path, services=SERVICES)
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 5 * 2**20, (elapsed, peak)
    assert not roster.people
    (problem,) = roster.problems
    assert (problem.line, problem.field) == (1, "a") and "aliases" in problem.message


def test_an_alias_in_a_person_is_refused_on_its_line_and_field():
    roster = yaml_roster(PERSON + "    site: &s Siège\n  - id: b\n    full_name: B\n    email: b@ex.fr\n"
                                  "    service: rsa\n    site: *s\n")
    assert [(p.line, p.field) for p in roster.problems] == [(7, "site")]


@pytest.mark.parametrize("extra, line, field, words", [
    ("    x: !!python/object/apply:os.system [ls]\n", 7, "x", "tag"),
    ("    extension: !!int 1001\n", 7, "extension", "tag"),
    ("---\n- id: other\n", 7, "", "one YAML document"),
    ("    service: dsi\n", 2, "service", "twice"),
    ("    Full Name: Anaïs Bis\n", 2, "full_name", "twice"),
    ("people: []\n", 7, "people", "twice"),
])
def test_yaml_structure_refusals_are_located(extra, line, field, words):
    roster = yaml_roster(PERSON + extra)
    assert not roster.people
    assert [(p.line, p.field) for p in roster.problems] == [(line, field)], roster.problems
    assert words in roster.problems[0].message


def test_explicit_text_tag_is_text():
    roster = yaml_roster(PERSON + "    extension: !!str 1001\n")
    assert roster.ok and roster.people[0].extension == "1001"


def test_deep_nesting_is_refused_quickly():
    started = time.perf_counter()
    roster = parse_roster("[" * 100000 + "]" * 100000, "yaml", "r.yml")
    assert time.perf_counter() - started < 2 and "nested" in roster.problems[0].message


@pytest.mark.parametrize("fmt, text, line, field", [
    ("yaml", PERSON + "    site: Si\x00ge\n", 7, "site"),
    ("csv", ",".join(COLUMNS) + "\n" + GOOD.replace("Siège", "Si\x00ge") + "\n", 2, "site"),
])
def test_nul_bytes_are_refused_with_line_and_field(fmt, text, line, field):
    roster = parse_roster(textwrap.dedent(text), fmt, "r", SERVICES)
    assert not roster.people
    assert (line, field) in located(roster) and "NUL" in str(roster.problems)


# ----------------------------------------------------------------------------------------- Excel

def workbook(rows, formats=None, extra_sheet=False):
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    for ref, fmt in (formats or {}).items():
        sheet[ref].number_format = fmt
    if extra_sheet:
        book.create_sheet("other").append(["not", "a", "roster"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


ROW = ["amartin", "Anaïs Martin", "anais@ex.fr", "rsa", "critical", "Siège", "laptop", "vpn;phone", "1001",
       "06 12 34 56 78", "always", "20", "yes", "yes", "fr"]


def with_cells(**cells):
    row = list(ROW)
    for name, value in cells.items():
        row[list(COLUMNS).index(name)] = value
    return row


def test_xlsx_first_sheet_with_row_numbers(tmp_path):
    bob = with_cells(id="bbrun", full_name="Bob Brun", email="bob@ex.fr", extension=1002, forward_delay=25,
                     voicemail=False, active=True, forward_to="+33 6 23 45 67 89")
    data = workbook([list(COLUMNS), ROW, [], [None] * 3, bob, with_cells(id="x y")], extra_sheet=True)
    path = tmp_path / "export.xlsx"
    path.write_bytes(data)
    roster = load_roster(path, services=SERVICES)
    assert [(p.id, p.line) for p in roster.people] == [("amartin", 2), ("bbrun", 5)]
    bob = roster.people[1]
    assert (bob.extension, bob.forward_delay, bob.voicemail, bob.active) == ("1002", 25, False, True)
    assert located(roster) == [(6, "id")]


@pytest.mark.parametrize("cells, field, words", [
    ({"forward_to": 612345678}, "forward_to", "leading 0"),  # typed 06 12 34 56 78 in a number cell
    ({"forward_to": 33612345678}, "forward_to", "Text"),  # typed +33612345678: Excel ate the +
    ({"extension": "=NA()"}, "extension", ""),  # a formula with no cached result: empty
    ({"site": "#N/A"}, "site", "error"),
    ({"full_name": True}, "full_name", "TRUE/FALSE"),
    ({"forward_delay": "__TIME__"}, "forward_delay", "date or time"),  # 10:01 typed in a General cell
    ({"site": "__DATE__"}, "site", "date or time"),
    ({"extension": 1001.5}, "extension", "1001.5"),
])
def test_xlsx_cells_excel_changed_are_refused_with_a_hint(cells, field, words):
    import datetime

    cells = {k: datetime.time(10, 1) if v == "__TIME__" else datetime.datetime(2024, 3, 1) if v == "__DATE__"
             else v for k, v in cells.items()}
    roster = parse_roster(workbook([list(COLUMNS), with_cells(**cells)]), "xlsx", "r.xlsx", SERVICES)
    assert located(roster) == [(2, field)], roster.problems
    assert words in roster.problems[0].message


def test_xlsx_number_formats_are_read_as_excel_shows_them():
    rows = [list(COLUMNS), with_cells(extension=123), with_cells(id="b", email="b@ex.fr", extension=1002),
            with_cells(id="c", email="c@ex.fr", extension=1003)]
    roster = parse_roster(workbook(rows, {"I2": "0000", "I4": "#,##0.00"}), "xlsx", "r.xlsx", SERVICES)
    assert [p.extension for p in roster.people] == ["1002"]
    found = {p.line: p.message for p in roster.problems}
    assert "'0123'" in found[2]  # shown as 0123: judged as such (an extension never starts with 0)
    assert "format" in found[4]


def test_xlsx_with_a_wrong_recorded_size_is_read_whole():
    data = workbook([list(COLUMNS), ROW])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w") as dst:
        for item in src.infolist():
            content = src.read(item)
            if item.filename.startswith("xl/worksheets/sheet"):
                content = re.sub(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:A1"', content)
            dst.writestr(item, content)
    roster = parse_roster(out.getvalue(), "xlsx", "r.xlsx", SERVICES)
    assert roster.ok and roster.people[0].language == "fr"


def test_not_a_workbook_is_a_problem(tmp_path):
    path = tmp_path / "r.xlsx"
    path.write_bytes(b"id,full_name\n")
    assert "not an Excel workbook" in load_roster(path).problems[0].message


# ------------------------------------------------------------------------------- CSV encodings

def test_windows_1252_csv_is_read(tmp_path):
    row = GOOD.replace("vpn;phone", "vpn phone").replace(",", ";").replace("Anaïs Martin", "Œdipe L’Été €")
    text = ";".join(COLUMNS) + "\n" + row + "\n"
    path = tmp_path / "hr.csv"
    path.write_bytes(text.encode("cp1252"))
    roster = load_roster(path, services=SERVICES)
    assert roster.ok, roster.problems
    assert roster.people[0].full_name == "Œdipe L’Été €" and roster.people[0].site == "Siège"


@pytest.mark.parametrize("raw, words", [
    ((",".join(COLUMNS) + "\n" + GOOD + "\n").encode("cp1252") + b"\x81\n", "Windows-1252"),  # undefined in cp1252
    ((",".join(COLUMNS) + "\n" + GOOD + "\n").encode("utf-16"), "UTF-16"),
    ((",".join(COLUMNS) + "\n" + GOOD + "\n").encode("utf-8") + "x,Zoé\n".encode("cp1252"), "mixes"),
])
def test_ambiguous_encodings_are_refused_with_a_hint(tmp_path, raw, words):
    path = tmp_path / "hr.csv"
    path.write_bytes(raw)
    roster = load_roster(path, services=SERVICES)
    assert not roster.people and words in roster.problems[0].message and "UTF-8" in roster.problems[0].message


# ------------------------------------------------------------------------------- empty rosters

@pytest.mark.parametrize("fmt, text", [
    ("csv", ",".join(COLUMNS) + "\n"),
    ("csv", ",".join(COLUMNS) + "\n,,,,,,,,,,,,,,\n\n"),
    ("yaml", "people: []\n"),
    ("yaml", "[]\n"),
    ("xlsx", None),
])
def test_a_roster_with_nobody_is_a_problem(fmt, text):
    data = workbook([list(COLUMNS)]) if fmt == "xlsx" else text
    roster = parse_roster(data, fmt, "r", SERVICES)
    assert not roster.ok and "nobody" in roster.problems[0].message


# --------------------------------------------------------------- values that reach config files

def csv_with(**fields):
    row = dict(zip(COLUMNS, GOOD.split(",")))
    row.update(fields)
    out = io.StringIO()
    import csv

    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    writer.writerow([row[c] for c in COLUMNS])
    return parse_roster(out.getvalue(), "csv", "r.csv", SERVICES | {"x;y", "a\u2028b", "a\rb"})


@pytest.mark.parametrize("field", ["full_name", "site", "service"])
@pytest.mark.parametrize("value", ["Anaïs\rMartin", "a\nb", "\r[evil]\r", "a\tb", "a\u2028b", "a\u2029b",
                                   "a\u202eb", "a\x1bb", "a\x00b", "a\x85b", "Martin; extra", "x" * 200])
def test_free_text_refuses_control_characters_and_semicolons(field, value):
    assert located(csv_with(**{field: value})) == [(2, field)]


def test_free_text_keeps_what_names_have():
    roster = csv_with(full_name="Marie-Thérèse O'Brien\u00a0de La Tour, Jr. (\"Maité\") <RH> & co")
    assert roster.ok, roster.problems


@pytest.mark.parametrize("email", [
    "a@b.c,,dialout=ts-internal|callback=ts-internal", "a@ex.fr,b@ex.fr", "a|b@ex.fr", "a;b@ex.fr",
    "<a@ex.fr>", "Anaïs <a@ex.fr>", '"a"@ex.fr', "a b@ex.fr", "a@ex.fr\r", "a\r@ex.fr", "a@localhost",
    "a@10.0.0.1", "a@[10.0.0.1]", "a@-ex.fr", "a..b@ex.fr", ".a@ex.fr", "a@ex..fr", "anaïs@ex.fr",
    "a@département.fr", "a@ex.f", "a@ex.fr.", "a@@ex.fr", "a@ex.fr\x00", "a@ex.1fr", "x" * 65 + "@ex.fr",
])
def test_email_must_be_a_plain_address(email):
    assert (2, "email") in located(csv_with(email=email))


@pytest.mark.parametrize("email", ["anais.martin@departement.example", "o'brien@ex.fr", "a+tag@sub.ex.fr",
                                   "A.Martin@EX.FR", "a_b-c%d@xn--dpartement-b7a.fr", "a1@ex.museum"])
def test_plain_addresses_are_accepted(email):
    roster = csv_with(email=email)
    assert roster.ok, roster.problems


@pytest.mark.parametrize("pid", ["root", "daemon", "sshd", "xrdp", "asterisk", "nobody", "sudo", "users",
                                 "teleshift", "tsusers", "ts-rsa", "www-data", "systemd-network"])
def test_system_account_ids_are_refused_like_preflight_does(pid):
    roster = csv_with(id=pid, needs="desktop")
    assert located(roster) == [(2, "id")] and "system account" in roster.problems[0].message


def test_roster_and_desktop_planner_share_one_list():
    assert desktop.RESERVED_LOGINS is rmod.SYSTEM_ACCOUNTS
    assert {"root", "sshd", "xrdp", "asterisk", "nobody", "daemon"} <= rmod.SYSTEM_ACCOUNTS


@pytest.mark.parametrize("number", ["06 12 34 56 78 ext. 12", "06 12 34 56 78;ext=1", "０６１２３４５６７８",
                                    "tel:+33612345678", "+33 6 12 34 56 78\r"])
def test_forward_to_is_only_a_phone_number(number):
    assert located(csv_with(forward_to=number)) == [(2, "forward_to")]


# ------------------------------------------------------------------- one value, three formats

SAMPLES = ["0123", "1_001", "10:01", "0612345670", "06 12 34 56 78", "+33 6 12 34 56 78", "yes", "No", "null", "~",
           "", "1001", "20", "2e1", "0x10", "a;b", "a\rb", "\u2028", "é", "Anaïs O'Brien", "vpn, phone", "[vpn]",
           "a@ex.fr", "ǅ", "#x", "&a", "*a", "!x", "%x", "@x", "'q'", '"d"', "-", "? x", "a: b", "{x}", "| x"]


def yaml_scalar(value):
    import json

    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


@pytest.mark.parametrize("field", [c for c in COLUMNS if c != "id"])
def test_a_value_reads_the_same_from_csv_yaml_and_xlsx(field):
    import csv

    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    base = dict(zip(COLUMNS, GOOD.split(",")))
    for value in SAMPLES:
        row = dict(base, **{field: value})
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerows([list(COLUMNS), [row[c] for c in COLUMNS]])
        results = {"csv": parse_roster(out.getvalue(), "csv", "r", SERVICES),
                   "yaml": parse_roster("people:\n  - " + "\n    ".join(f"{c}: {yaml_scalar(row[c])}" for c in COLUMNS)
                                        + "\n", "yaml", "r", SERVICES)}
        if not ILLEGAL_CHARACTERS_RE.search(value):
            results["xlsx"] = parse_roster(workbook([list(COLUMNS), [row[c] for c in COLUMNS]]), "xlsx", "r", SERVICES)
        people = {fmt: [dataclasses.replace(p, line=0) for p in r.people] for fmt, r in results.items()}
        fields = {fmt: sorted(p.field for p in r.problems) for fmt, r in results.items()}
        assert all(v == people["csv"] for v in people.values()), (value, people)
        assert all(v == fields["csv"] for v in fields.values()), (value, fields)
        assert set(fields["csv"]) <= {field}
