"""What the CLI writes: CSV cells a spreadsheet would run are text (read back with the csv module),
the French Excel variant, `validate --format json`, and command-line paths relative to the current
directory while inventory paths stay relative to the inventory."""
import csv
import dataclasses
import io
import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils.csvsafe import safe_cell
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster

from teleshift_cli import main as cli
from teleshift_cli.commands.roster import write_roster_csv

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"
HOSTILE_NAMES = ["=cmd|' /C calc'!A0", "+SUM(1+1)", "@SUM(1)", "-2+3+cmd|' /C calc'!A0"]


@pytest.fixture()
def inv(tmp_path):
    root = tmp_path / "inv"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns("state", "kits"))
    (root / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n")
    return root


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def hostile_roster(inv):
    """The lab roster with formula-like names on its first rows."""
    path = inv / "roster.csv"
    rows = list(csv.DictReader(open(path, encoding="utf-8")))
    for row, name in zip(rows, HOSTILE_NAMES):
        row["full_name"] = name
    with open(path, "w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {r["id"]: r["full_name"] for r in rows}


@pytest.mark.parametrize("value,expected", [
    ("=1+1", "'=1+1"), ("+SUM(1)", "'+SUM(1)"), ("-cmd", "'-cmd"), ("@A1", "'@A1"), ("\t=1", "'\t=1"),
    ("\r=1", "'\r=1"), ("Anaïs Martin", "Anaïs Martin"), ("+33612345678", "+33612345678"), ("-5", "-5"),
    ("", ""), (3, 3), ("a=b", "a=b"), ("-1+2", "'-1+2"),
])
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_waves_csv_neutralises_formulas(inv, tmp_path, capsys):
    names = hostile_roster(inv)
    out = tmp_path / "waves.csv"
    code, _, err = run(["waves", "--inventory", str(inv), "-o", str(out)], capsys)
    assert code == 0, err
    rows = list(csv.DictReader(open(out, encoding="utf-8", newline="")))
    got = {r["id"]: r["full_name"] for r in rows}
    hostile_ids = [pid for pid, name in names.items() if name in HOSTILE_NAMES]
    assert len(hostile_ids) == len(HOSTILE_NAMES) and set(hostile_ids) <= set(got)
    for pid in got:
        assert got[pid] == ("'" + names[pid] if pid in hostile_ids else names[pid])
    assert not any(c.startswith(("=", "+", "@")) for r in rows for c in r.values())


def test_waves_excel_variant_reads_back_the_same(inv, tmp_path, capsys):
    hostile_roster(inv)
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    assert run(["waves", "--inventory", str(inv), "--laptops", "2", "-o", str(plain)], capsys)[0] == 0
    assert run(["waves", "--inventory", str(inv), "--laptops", "2", "-o", str(excel), "--excel"], capsys)[0] == 0
    raw = excel.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    assert raw[3:].split(b"\r\n")[0].decode() == ";".join(csv.reader(open(plain, encoding="utf-8")).__next__())
    with open(excel, encoding="utf-8-sig", newline="") as stream:
        excel_rows = list(csv.reader(stream, delimiter=";"))
    with open(plain, encoding="utf-8", newline="") as stream:
        plain_rows = list(csv.reader(stream))
    assert excel_rows == plain_rows and len(plain_rows) > 3


def test_waves_excel_to_standard_output(inv, capsys):
    code, out, err = run(["waves", "--inventory", str(inv), "--excel"], capsys)
    assert code == 0 and out.startswith("\ufeffwave;order;id;")


def test_roster_generate_excel_reads_back_as_the_same_roster(tmp_path, capsys):
    plain, excel = tmp_path / "plain.csv", tmp_path / "excel.csv"
    assert run(["roster", "generate", "--count", "40", "--seed", "3", "-o", str(plain)], capsys)[0] == 0
    assert run(["roster", "generate", "--count", "40", "--seed", "3", "-o", str(excel), "--excel"], capsys)[0] == 0
    assert excel.read_bytes().startswith(b"\xef\xbb\xbf")
    a, b = load_roster(plain), load_roster(excel)
    assert not a.problems and not b.problems
    assert [(p.id, p.full_name, p.forward_to, p.needs) for p in a.people] == \
           [(p.id, p.full_name, p.forward_to, p.needs) for p in b.people]
    assert any(p.forward_to.startswith("+") for p in a.people)  # phone numbers are kept as numbers


def test_roster_csv_writer_neutralises_names_but_not_phone_numbers():
    person = load_roster(LAB / "roster.csv").people[0]
    hostile = dataclasses.replace(person, full_name="=HYPERLINK(\"http://x\")", forward_to="+33612345678")
    stream = io.StringIO()
    write_roster_csv([hostile], stream)
    row = next(csv.DictReader(io.StringIO(stream.getvalue())))
    assert row["full_name"] == "'=HYPERLINK(\"http://x\")" and row["forward_to"] == "+33612345678"


def test_validate_json_lists_problems_as_objects(inv, tmp_path, capsys):
    roster = tmp_path / "bad.csv"
    roster.write_text("id,full_name,email,service\nok1,Ok One,ok1@x.example,rsa\n"
                      "bad2,Bad Two,not-an-email,rsa\n", encoding="utf-8")
    code, out, err = run(["validate", "--inventory", str(inv), "--roster", str(roster), "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 1 and data["valid"] is False
    email = [p for p in data["problems"] if p["field"] == "email"]
    assert email == [{"source": str(roster), "line": 3, "field": "email", "message": email[0]["message"]}]
    assert "not-an-email" in email[0]["message"] or "email" in email[0]["message"]
    assert all(set(p) == {"source", "line", "field", "message"} for p in data["problems"])


def test_validate_json_valid(inv, capsys):
    code, out, err = run(["validate", "--inventory", str(inv), "--format", "json"], capsys)
    data = json.loads(out)
    assert code == 0 and data["valid"] is True and data["problems"] == []
    assert data["counts"]["people"] == len(load_roster(inv / "roster.csv").people)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_kits_dir_on_the_command_line_is_relative_to_the_current_directory(inv, tmp_path, capsys, monkeypatch):
    before = _files(inv)
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(["kits", "--inventory", str(inv), "--kits-dir", "mykits"], capsys)
    assert code == 0, err
    assert _files(inv) == before  # nothing written into the inventory
    assert (work / "mykits").is_dir() and list((work / "mykits").glob("*/notice/notice.html"))


def test_kits_dir_of_the_inventory_stays_relative_to_the_inventory(inv, tmp_path, capsys, monkeypatch):
    work = tmp_path / "elsewhere"
    work.mkdir()
    monkeypatch.chdir(work)
    code, out, err = run(["kits", "--inventory", str(inv)], capsys)
    assert code == 0, err
    assert list((inv / "kits").glob("*/notice/notice.html")) and not list(work.iterdir())


def test_output_never_overwrites_the_roster(inv, capsys):
    roster = inv / "roster.csv"
    before = roster.read_bytes()
    code, out, err = run(["waves", "--inventory", str(inv), "-o", str(roster)], capsys)
    assert code == 2 and "is an input file of this command" in err
    assert roster.read_bytes() == before
