"""The benchmarks' "where the time went" reads profile_tasks' summary, which pads a task name with
dashes to a fixed width: a long name gets one or two dashes, and was dropped (the desktop bench's
first converge then named only its smallest tasks)."""
from teleshift_cli.bench import task_times

SUMMARY = """TASKS RECAP ********************************************************************
teleshift.toolkit.xrdp_host : Create, update and lock the accounts of the people placed on this host - 120.20s
Place people on session hosts and plan the second factor, write state and kits (nothing written) -- 87.26s
teleshift.toolkit.xrdp_host : Validating arguments against arg spec 'main' - Remote-desktop hosts --- 0.16s
Show the plan ----------------------------------------------------------- 0.03s
"""


def test_long_task_names_are_kept_and_sorted_by_time():
    found = task_times(SUMMARY, top=3)
    assert [seconds for _name, seconds in found] == [120.2, 87.26, 0.16]
    assert found[0][0].endswith("placed on this host")
    assert found[2][0].endswith("' - Remote-desktop hosts")


def test_the_one_line_summary_cuts_long_names_between_words():
    from teleshift_cli.bench import where

    line = where(SUMMARY, top=2)
    assert line.startswith("teleshift.toolkit.xrdp_host : Create, update and lock the... 120.2 s, ")
    assert line.endswith(", Place people on session hosts and plan the second factor... 87.3 s")  # no comma left


def test_the_desktop_benchs_change_moves_exactly_one_person_to_another_service(tmp_path):
    """Each timed change of `bench desktop --changes N` flips one person's service, nothing else."""
    from teleshift_cli.bench.desktop import _change_service

    roster = tmp_path / "roster.csv"
    text = ("id,full_name,email,service,priority\n"
            "ab,A B,ab@x.example,rh,normal\nabc,A B C,abc@x.example,dsi,normal\nxy,X Y,xy@x.example,rh,normal\n")
    roster.write_text(text, encoding="utf-8")
    _change_service(roster, "ab")
    assert roster.read_text(encoding="utf-8") == text.replace("ab,A B,ab@x.example,rh", "ab,A B,ab@x.example,dsi")
    _change_service(roster, "abc")  # a login that starts another one's line is not confused with it
    _change_service(roster, "ab")
    moved = text.replace("abc,A B C,abc@x.example,dsi", "abc,A B C,abc@x.example,rh")
    assert roster.read_text(encoding="utf-8") == moved
