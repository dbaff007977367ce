"""No task of a role or playbook loops over people: 5,000 people must cost the same number of tasks as
5 (compute in Python, apply in one module call). A loop is allowed over a list written out in the
file (its length is fixed there, e.g. two file names) or over one of the variables below, each
bounded by something other than the roster."""
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/handlers/*.yml"),
                *ROOT.glob("playbooks/*.yml"), *ROOT.glob("molecule/lab/*.yml")])

BOUNDED = {
    "{{ vpn_route_routes }}": "one route per VPN gateway",
    "{{ vpn_route_current.results }}": "the results of the loop over vpn_route_routes",
    "{{ vpn_route_stale }}": "the routes the role set before and no longer wants: one per former gateway",
}


def tasks_of(node):
    """Every task mapping in a task file or playbook, blocks and plays included."""
    if isinstance(node, list):
        for item in node:
            yield from tasks_of(item)
    elif isinstance(node, dict):
        if any(k in node for k in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always")):
            for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
                yield from tasks_of(node.get(key) or [])
        if "hosts" not in node:
            yield node


def loops(path):
    for task in tasks_of(yaml.safe_load(path.read_text(encoding="utf-8")) or []):
        for key, value in task.items():
            if key == "loop" or str(key).startswith("with_"):
                yield task.get("name", "?"), key, value


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(ROOT)) for p in FILES])
def test_loops_are_over_fixed_lists_or_bounded_variables(path):
    for name, key, value in loops(path):
        if isinstance(value, list):
            assert key == "loop" and len(value) <= 10, f"{path.name}: {name!r}: a written-out list of {len(value)}"
        else:
            assert str(value).strip() in BOUNDED, (
                f"{path.name}: task {name!r} loops over {value!r}: compute it in Python and apply "
                "it in one module call, or add the variable to BOUNDED with what bounds it")


def test_the_check_reads_the_loops_there_are():
    found = {(path.name, name) for path in FILES for name, _, _ in loops(path)}
    assert ("config.yml", "Remove the health script of earlier versions (the health check is now "
                          "teleshift.toolkit.desktop_health)") in found
    assert ("routes.yml", "Route each gateway's part of the pool via the gateway") in found


def test_the_check_sees_a_loop_over_people(tmp_path):
    bad = tmp_path / "main.yml"
    bad.write_text("- name: One account per person\n  ansible.builtin.user:\n    name: '{{ item.id }}'\n"
                   "  loop: '{{ people }}'\n")
    with pytest.raises(AssertionError, match="loops over"):
        test_loops_are_over_fixed_lists_or_bounded_variables(bad)
