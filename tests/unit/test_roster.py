"""The roster loader: what it accepts, and every kind of mistake it must locate."""
import textwrap

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    COLUMNS, RosterError, load_roster, parse_roster, require_valid)

HEADER = ",".join(COLUMNS)
SERVICES = {"rsa", "paie-prestations", "dsi"}


def csv_text(*rows, header=HEADER):
    return "\n".join([header, *rows]) + "\n"


GOOD = "amartin,Anaïs Martin,anais@ex.fr,rsa,critical,Siège,laptop,vpn;phone,1001,06 12 34 56 78,always,20,yes,yes,fr"
GOOD2 = "bbrun,Gaëlle Brun,gaelle@ex.fr,dsi,high,Siège,thin_client,desktop,,,none,,no,,en"


def problems_of(text, fmt="csv", services=SERVICES):
    return [(p.line, p.field) for p in parse_roster(text, fmt, "r.csv", services).problems]


def test_valid_csv_with_accents_is_loaded_and_normalised():
    roster = parse_roster(csv_text(GOOD, GOOD2), "csv", "r.csv", SERVICES)
    assert roster.ok, roster.problems
    anais, gaelle = roster.people
    assert anais.full_name == "Anaïs Martin"
    assert anais.forward_to == "+33612345678"
    assert anais.needs == frozenset({"vpn", "phone"})
    assert anais.voicemail is True and anais.active is True
    assert gaelle.device == "thin_client" and gaelle.forward_mode == "none"
    assert gaelle.active is True  # empty 'active' means active
    assert gaelle.language == "en" and gaelle.line == 3


def test_semicolon_export_and_bom_are_accepted(tmp_path):
    text = csv_text(GOOD.replace(",", ";").replace("vpn;phone", "vpn phone"), header=HEADER.replace(",", ";"))
    path = tmp_path / "export.csv"
    path.write_bytes("\ufeff".encode() + text.encode("utf-8"))
    roster = load_roster(path, services=SERVICES)
    assert roster.ok, roster.problems
    assert roster.people[0].needs == frozenset({"vpn", "phone"})


def test_yaml_roster_reports_lines_of_each_person(tmp_path):
    path = tmp_path / "r.yml"
    path.write_text(textwrap.dedent("""\
        people:
          - id: amartin
            full_name: Anaïs Martin
            email: anais@ex.fr
            service: rsa
            needs: [vpn, phone]
            extension: 1001
            forward_to: "+33 6 12 34 56 78"
            forward_mode: no answer
          - id: bbrun
            full_name: Gaëlle Brun
            email: gaelle@ex.fr
            service: nowhere
            priority: urgent
        """), encoding="utf-8")
    roster = load_roster(path, services=SERVICES)
    assert [p.id for p in roster.people] == ["amartin"]
    assert roster.people[0].forward_mode == "no_answer"
    assert roster.people[0].extension == "1001"
    assert [(p.line, p.field) for p in roster.problems] == [(10, "priority"), (10, "service")]


@pytest.mark.parametrize("row, field", [
    (GOOD.replace("critical", "urgent"), "priority"),
    (GOOD.replace("laptop", "tablet"), "device"),
    (GOOD.replace("vpn;phone", "vpn;fax"), "needs"),
    (GOOD.replace("06 12 34 56 78", "06 12"), "forward_to"),
    (GOOD.replace("06 12 34 56 78", "not a number"), "forward_to"),
    (GOOD.replace(",always,", ",sometimes,"), "forward_mode"),
    (GOOD.replace(",yes,yes,fr", ",maybe,yes,fr"), "voicemail"),
    (GOOD.replace(",yes,yes,fr", ",yes,yes,de"), "language"),
    (GOOD.replace("anais@ex.fr", "anais.ex.fr"), "email"),
    (GOOD.replace("amartin", "A Martin"), "id"),
    (GOOD.replace(",1001,", ",01001,"), "extension"),
    (GOOD.replace(",1001,", ",,"), "extension"),  # phone need without an extension
    (GOOD.replace("06 12 34 56 78", ""), "forward_to"),  # always-forward without a number
    (GOOD.replace(",rsa,", ",,"), "service"),
    (GOOD.replace("Anaïs Martin", " "), "full_name"),
    (GOOD.replace(",20,", ",3,"), "forward_delay"),
])
def test_each_mistake_is_located(row, field):
    assert problems_of(csv_text(row)) == [(2, field)]


def test_unknown_service_is_reported_with_known_ones():
    roster = parse_roster(csv_text(GOOD.replace(",rsa,", ",rh,")), "csv", "r.csv", SERVICES)
    (problem,) = roster.problems
    assert problem.field == "service" and "'rh'" in problem.message and "dsi" in problem.message


def test_duplicates_point_at_the_first_occurrence():
    dup = GOOD.replace("Anaïs Martin", "Anaïs Bis").replace("06 12 34 56 78", "06 12 34 56 79")
    roster = parse_roster(csv_text(GOOD, GOOD2, dup), "csv", "r.csv", SERVICES)
    found = sorted((p.line, p.field, p.message) for p in roster.problems)
    assert [(line, f) for line, f, _ in found] == [(4, "email"), (4, "extension"), (4, "id")]
    assert all("line 2" in message for _, _, message in found)


def test_every_problem_is_reported_at_once():
    rows = [GOOD.replace("critical", "urgent"), GOOD2.replace("thin_client", "tablet").replace("dsi", "x"),
            "c,C,c@ex.fr,rsa"]
    found = problems_of(csv_text(*rows))
    assert (2, "priority") in found and (3, "device") in found
    assert (4, "") in found  # wrong number of values
    assert len(found) >= 3


def test_missing_and_unknown_columns():
    header = HEADER.replace("email,", "").replace("language", "langue")
    found = problems_of(csv_text(GOOD, header=header))
    assert (1, "email") in found and (1, "langue") in found


def test_require_valid_raises_with_every_problem():
    roster = parse_roster(csv_text(GOOD.replace("critical", "urgent"), GOOD2.replace("tablet", "x").replace(
        "thin_client", "tablet")), "csv", "r.csv", SERVICES)
    with pytest.raises(RosterError) as err:
        require_valid(roster)
    assert "r.csv:2: priority" in str(err.value) and "r.csv:3: device" in str(err.value)


def test_unreadable_files_are_problems_not_tracebacks(tmp_path):
    not_text = tmp_path / "binary.csv"
    not_text.write_bytes(csv_text(GOOD).encode("utf-8") + b"\x81\x8d broken")
    assert "UTF-8" in load_roster(not_text).problems[0].message
    assert load_roster(tmp_path / "missing.csv").problems[0].message.startswith("cannot read")
    assert load_roster(tmp_path / "missing.xlsx").problems[0].message.startswith("cannot read")
    assert "xlsx" in load_roster(tmp_path / "roster.xls").problems[0].message
    broken = tmp_path / "broken.yml"
    broken.write_text("people: [\n  {id: x\n", encoding="utf-8")
    assert "invalid YAML" in load_roster(broken).problems[0].message


def test_row_memo_parses_only_changed_rows_and_gives_the_same_roster(monkeypatch):
    from ansible_collections.teleshift.toolkit.plugins.module_utils import roster as rmod

    rows = [f"p{i},Person {i},p{i}@example.org,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr" for i in range(50)]
    header = ("id,full_name,email,service,priority,site,device,needs,extension,forward_to,forward_mode,"
              "forward_delay,voicemail,active,language")
    text = "\n".join([header, *rows]) + "\n"
    memo = {}
    first = rmod.parse_roster(text, "csv", memo=memo)
    assert not first.problems and len(memo) == 50
    calls = []
    real = rmod._build_person
    monkeypatch.setattr(rmod, "_build_person", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    changed = (rows[:10] + [rows[10].replace("dsi", "rh")] + ["bad,,x,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr"]
               + rows[11:])
    second = rmod.parse_roster("\n".join([header, *changed]) + "\n", "csv", memo=memo)
    assert calls == [12, 13]  # the changed row and the new bad one; the rest came from the memo
    plain = rmod.parse_roster("\n".join([header, *changed]) + "\n", "csv")
    assert second.people == plain.people and second.problems == plain.problems
    assert [p.line for p in second.people][-1] == 52  # line numbers follow the new file
    assert len(memo) == 50  # this roster's valid rows only: the old row 10 and the bad row are not kept


def _messy_csv(rng, delimiter):
    """CSV text in the shapes exports take: quoted cells (a delimiter, a quote, a line break inside),
    CRLF and bare CR, blank and short rows, NULs, duplicated lines, no newline at the end."""
    header = delimiter.join(COLUMNS)
    names = list(COLUMNS)
    lines = [header if rng.random() < 0.7 else f'"{names[0]}"{delimiter}' + delimiter.join(names[1:])]
    for i in range(rng.randint(5, 40)):
        cells = [f"p{i}", f"Person {i}", f"p{i}@ex.fr", rng.choice(["dsi", "rsa", "rh"]), "normal", "",
                 "laptop", rng.choice(["vpn", "vpn;phone", "desktop"]), "", "", "none", "20", "no", "yes", "fr"]
        shape = rng.random()
        if shape < 0.08:
            cells[1] = f'"Dupont{delimiter} Jean {i}"'
        elif shape < 0.14:
            cells[1] = f'"Jean ""{i}"" Dupont"'
        elif shape < 0.18:
            cells[5] = f'"Site\nB{i}"'
        elif shape < 0.21:
            cells[1] = f'Jean "{i}" Dupont'  # a quote inside an unquoted cell: literal for csv
        elif shape < 0.24:
            cells = cells[:-2]
        elif shape < 0.26:
            cells[5] = "x\0y"
        elif shape < 0.265:
            cells[5] = "a\rb"  # the csv module stops there: "unreadable CSV row"
        line = delimiter.join(cells)
        if rng.random() < 0.1:
            line += "\r"
        lines.append(line)
        if rng.random() < 0.08:
            lines.append(rng.choice(["", delimiter * 14, "   ", lines[-1]]))
    if rng.random() < 0.05:
        lines.append('"unterminated' + delimiter + "x")
    return "\n".join(lines) + ("\n" if rng.random() < 0.8 else "")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_row_memo_by_line_text_reads_as_the_csv_module_does(delimiter):
    """The memo's CSV path keys plain lines by their text and reads only the others with the csv
    module: on messy exports, with an empty, a full and a stale memo, the roster (people, lines,
    problems) is the one the csv module's reading gives."""
    import random

    from ansible_collections.teleshift.toolkit.plugins.module_utils import roster as rmod

    rng = random.Random(20261128 + ord(delimiter))
    memo, keyed_by_text = {}, 0
    for _ in range(60):
        text = _messy_csv(rng, delimiter)
        plain = rmod.parse_roster(text, "csv", "r.csv", SERVICES)
        for _again in range(2):  # what the memo held before, then this text's own rows
            memoed = rmod.parse_roster(text, "csv", "r.csv", SERVICES, memo=memo)
            assert memoed.people == plain.people, text
            assert memoed.problems == plain.problems, text
        keyed_by_text += sum(key[12] == delimiter for key in memo)  # names tag, delimiter, digest of the line
    assert keyed_by_text > 300, "plain lines are kept under their text"


def test_row_memo_by_line_text_builds_only_the_changed_line(monkeypatch):
    from ansible_collections.teleshift.toolkit.plugins.module_utils import roster as rmod

    rows = [GOOD.replace("amartin", f"a{i}").replace("1001", str(2000 + i)) for i in range(30)]
    memo = {}
    rmod.parse_roster(csv_text(*rows), "csv", "r.csv", SERVICES, memo=memo)
    built = []
    real = rmod._build_person
    monkeypatch.setattr(rmod, "_build_person", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    rows[7] = rows[7].replace("critical", "high")
    again = rmod.parse_roster(csv_text("", *rows), "csv", "r.csv", SERVICES, memo=memo)  # a blank line first
    assert built == [10]  # the changed row, now on line 10; the others came back moved a line down
    assert [p.line for p in again.people] == list(range(3, 33))
    assert again.people[7].priority == "high"
