"""The front door: one validation for validate, preflight and every playbook; the mass-removal guard;
state files whose ids could escape the kits directory are refused."""
import pytest
from testlib import make_inputs, vpn_vars

from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import (
    StateError, build_inputs, checked_state, validate)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person


def person(pid, line=2, needs=("vpn",), active=True):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service="rsa", needs=frozenset(needs),
                  active=active, line=line)


def served(ids):
    return {"people": {pid: {"gateway": "gw1", "address": f"10.100.0.{i + 2}"} for i, pid in enumerate(ids)}}


def vpn_inputs(people, state_ids=(), **all_vars):
    all_vars_, hostvars = vpn_vars()
    return make_inputs(people, {"vpn_gateways": ["gw1"]}, hostvars, {**all_vars_, **all_vars},
                       states={"vpn": served(state_ids)})


def test_removing_a_few_people_is_fine():
    ids = [f"p{i}" for i in range(20)]
    inputs = vpn_inputs([person(pid, i + 2) for i, pid in enumerate(ids[:18])], ids)
    assert not validate(inputs, ["vpn"]).problems


def test_a_truncated_export_stops_the_run_unless_confirmed():
    ids = [f"p{i}" for i in range(20)]
    people = [person(pid, i + 2) for i, pid in enumerate(ids[:10])]
    found = validate(vpn_inputs(people, ids), ["vpn"])
    assert len(found.problems) == 1
    assert "mass removal: 10 of 20 people (50%) would lose access" in found.problems[0].message
    assert "--allow-mass-removal" in found.problems[0].message
    confirmed = validate(vpn_inputs(people, ids, teleshift_allow_mass_removal=True), ["vpn"])
    assert not confirmed.problems and "(confirmed)" in confirmed.warnings[0].message
    assert not validate(vpn_inputs(people, ids), ["vpn"], allow_mass_removal=True).problems


def test_deactivating_people_counts_like_removing_them():
    ids = [f"p{i}" for i in range(20)]
    people = [person(pid, i + 2, active=i < 12) for i, pid in enumerate(ids)]
    assert "8 of 20 people" in validate(vpn_inputs(people, ids), ["vpn"]).problems[0].message


def test_leaving_nobody_stops_even_a_small_team():
    people = [person("p0", needs=())]
    found = validate(vpn_inputs(people, ["p0", "p1"]), ["vpn"])
    assert "nobody would keep access" in found.problems[0].message


def test_an_empty_roster_is_a_problem():
    assert any("holds nobody" in p.message for p in validate(vpn_inputs([]), ["vpn"]).problems)


@pytest.mark.parametrize("bad", ["../outside", "/etc", "a/b", "UPPER", ""])
def test_state_ids_that_are_not_person_ids_are_refused(bad):
    with pytest.raises(StateError, match="not a person id"):
        checked_state({"people": {bad: {"gateway": "gw1"}}}, "state/vpn.yml")


def test_a_state_file_with_a_bad_id_is_a_problem_before_anything_is_written(tmp_path):
    inv = tmp_path / "inv"
    (inv / "state").mkdir(parents=True)
    (inv / "state" / "vpn.yml").write_text("people:\n  ../outside: {gateway: gw1, address: 10.100.0.9}\n")
    (inv / "roster.csv").write_text("id,full_name,email,service,needs\namartin,A M,a@x.example,rsa,vpn\n")
    all_vars, hostvars = vpn_vars()
    inputs = build_inputs({**all_vars, "teleshift_roster_file": "roster.csv", "teleshift_services": {"rsa": {}}},
                          hostvars, {"vpn_gateways": ["gw1"]}, inv)
    found = validate(inputs, ["vpn"], capacity=True)
    assert any("'../outside' is not a person id" in p.message for p in found.problems)


def test_validate_checks_only_what_the_selected_capabilities_apply():
    people = [person("p0", needs=("vpn", "phone"))]
    all_vars, hostvars = vpn_vars()
    hostvars["pbx1"] = {"asterisk_pbx_trunk": {"host": "10.0.0.1"}, "asterisk_pbx_queues": "not a list"}
    inputs = make_inputs(people, {"vpn_gateways": ["gw1"], "pbx_hosts": ["pbx1"]}, hostvars, all_vars)
    assert not validate(inputs, ["vpn"]).problems
    assert any("asterisk_pbx_queues" in p.field for p in validate(inputs).problems)


def test_capacity_counts_only_when_asked():
    people = [person(f"p{i}", i + 2) for i in range(20)]
    all_vars, hostvars = vpn_vars(pool="10.100.0.0/28")
    inputs = make_inputs(people, {"vpn_gateways": ["gw1"]}, hostvars, all_vars)
    assert not validate(inputs, ["vpn"]).problems
    assert "do not fit on the gateways" in validate(inputs, ["vpn"], capacity=True).problems[0].message


def test_a_plan_action_stops_on_problems_and_carries_warnings():
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import refused
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

    found = registry.Findings()
    found.warnings.append(Problem("roster.csv", 3, "queue", "'edupont' left: dropped"))
    result = {}
    assert refused(result, found, "VPN plan failed, no host was changed.") is False
    assert result == {"warnings": ["roster.csv:3: queue: 'edupont' left: dropped"]}
    found.problems.append(Problem("roster.csv", 7, "email", "not one plain address"))
    result = {}
    assert refused(result, found, "VPN plan failed, no host was changed.") is True
    assert result["failed"] is True and result["problems"] == ["roster.csv:7: email: not one plain address"]
    assert result["msg"].startswith("VPN plan failed, no host was changed.\n") and "roster.csv:7" in result["msg"]


class RecordingTemplar:
    """Templates nothing; records what it was asked to template (a registered result must never be)."""

    def __init__(self):
        self.seen = []

    def template(self, value):
        self.seen.append(value)
        return value


def test_registered_results_are_not_read_as_settings(tmp_path):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import from_task_vars

    result = {"gateways": {"gw1": {"people": "x" * 1000}}, "changed": False}
    roster = tmp_path / "roster.csv"
    roster.write_text("id,full_name,email,service,priority,extension,mobile,needs\n", encoding="utf-8")
    task_vars = {
        "inventory_dir": str(tmp_path), "teleshift_roster_file": "roster.csv", "teleshift_vpn_plan": result,
        "teleshift_preflight": {"changed": False}, "groups": {"vpn_gateways": ["gw1"]},
        "hostvars": {"gw1": {"wireguard_gateway_endpoint": "gw1.example", "teleshift_mfa_plan": result,
                             "other_role_x": 1}},
    }
    templar = RecordingTemplar()
    inputs = from_task_vars(templar, task_vars)
    assert "teleshift_vpn_plan" not in inputs.all_vars and "teleshift_preflight" not in inputs.all_vars
    assert inputs.all_vars["teleshift_roster_file"] == "roster.csv"
    assert inputs.hostvars["gw1"] == {"wireguard_gateway_endpoint": "gw1.example"}
    assert not any(value is result for value in templar.seen)


def test_every_result_the_playbooks_register_is_known_as_one():
    import re
    from pathlib import Path

    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import REGISTERED

    root = Path(__file__).resolve().parents[2]
    names = {m.group(1) for path in (root / "playbooks").rglob("*.yml")
             for m in re.finditer(r"register:\s*(teleshift_\w+)", path.read_text(encoding="utf-8"))}
    assert "teleshift_vpn_plan" in names and "teleshift_mfa_plan" in names
    assert sorted(n for n in names if not REGISTERED.match(n)) == []
    assert not REGISTERED.match("teleshift_roster_file") and not REGISTERED.match("teleshift_vpn_pool")


class HostView(dict):
    """Like Ansible's HostVarsVars: the host's raw variables under ``_vars``."""

    def __init__(self, raw):
        super().__init__(raw)
        self._vars = raw


def test_a_hosts_copy_of_a_global_is_templated_once_its_own_values_each_time(tmp_path):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import from_task_vars

    services = {"dsi": {"label": "DSI"}}
    templated = "{{ inventory_hostname }}"
    task_vars = {"inventory_dir": str(tmp_path), "teleshift_services": services, "teleshift_site": templated,
                 "teleshift_roster_file": "roster.csv", "groups": {"vpn_gateways": ["gw1", "gw2"]}}
    task_vars["hostvars"] = {
        "gw1": HostView({"teleshift_services": services, "teleshift_site": templated}),
        "gw2": HostView({"teleshift_services": {"dsi": {"label": "own"}}, "teleshift_site": templated}),
    }
    templar = RecordingTemplar()
    inputs = from_task_vars(templar, task_vars)
    assert inputs.hostvars["gw1"]["teleshift_services"] == services
    assert inputs.hostvars["gw2"]["teleshift_services"] == {"dsi": {"label": "own"}}
    assert sum(value is services for value in templar.seen) == 1  # the global only, not gw1's copy
    assert sum(value == templated for value in templar.seen) == 3  # a template: for each host again
