"""Property-based: whatever HR sends, the loader answers with a Roster and located problems, never a traceback."""
import csv
import io

from hypothesis import HealthCheck, given, settings, strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import COLUMNS, parse_roster

SERVICES = {"rsa", "dsi"}
cell = st.one_of(
    st.text(max_size=12),
    st.sampled_from(["", "yes", "no", "vpn;phone", "+33612345678", "06 12", "always", "critical", "rsa",
                     "a@b.fr", "1001", "laptop", "\u00e9\u00e8", "\x00", "\"", "\n", "99999999"]),
)
rows = st.lists(st.lists(cell, min_size=0, max_size=len(COLUMNS) + 2), max_size=8)
fast = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def to_csv(header, body):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


def check(roster):
    assert all(p.line >= 0 and isinstance(p.message, str) and p.message for p in roster.problems)
    ids = [p.id for p in roster.people]
    # a person with a problem on its line is never among the people handed to capabilities
    bad_lines = {p.line for p in roster.problems if p.field not in ("id", "email", "extension")}
    assert not {p.line for p in roster.people} & bad_lines
    return ids


@fast
@given(rows)
def test_random_rows_under_the_right_header(body):
    check(parse_roster(to_csv(list(COLUMNS), body), "csv", "r.csv", SERVICES))


@fast
@given(st.lists(st.sampled_from(list(COLUMNS) + ["x", "", "ID", "full name"]), max_size=18), rows)
def test_random_headers(header, body):
    check(parse_roster(to_csv(header, body), "csv", "r.csv", SERVICES))


@fast
@given(st.text(max_size=400))
def test_arbitrary_text_as_csv_or_yaml(text):
    check(parse_roster(text, "csv", "r.csv", SERVICES))
    check(parse_roster(text, "yaml", "r.yml", SERVICES))


yaml_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True),
                                     st.text(max_size=8)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=10)


@fast
@given(st.lists(st.dictionaries(st.sampled_from(list(COLUMNS) + ["zzz"]), yaml_values, max_size=8), max_size=5))
def test_random_yaml_people(people):
    import yaml

    check(parse_roster(yaml.safe_dump(people), "yaml", "r.yml", SERVICES))


xlsx_cell = st.one_of(st.none(), st.booleans(), st.integers(-10**16, 10**16),
                      st.floats(allow_nan=False, allow_infinity=False), st.dates(), st.datetimes(), st.times(),
                      st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=12),
                      st.sampled_from(["#N/A", "=1+1", "0123"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.lists(xlsx_cell, max_size=len(COLUMNS) + 2), max_size=5), st.booleans())
def test_random_workbooks(body, with_header):
    import io as io_

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    if with_header:
        sheet.append(list(COLUMNS))
    for row in body:
        sheet.append(row)
    out = io_.BytesIO()
    book.save(out)
    roster = parse_roster(out.getvalue(), "xlsx", "r.xlsx", SERVICES)
    check(roster)
    assert all(p.line <= len(body) + 1 for p in roster.problems + roster.people)
