"""Rollout waves against hand-worked examples, and the ``continuity`` service policy key."""
import csv
import io

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings
from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import plan_waves, queue, write_csv

SERVICES = {"paie": {"continuity": "critical"}, "culture": {}, "rsa": {"continuity": "normal"}}


def p(pid, line, service="culture", priority="normal", device="laptop", needs=("vpn",), active=True):
    return Person(id=pid, full_name=pid.upper(), email=f"{pid}@x.example", service=service, priority=priority,
                  device=device, needs=frozenset(needs), active=active, line=line)


def test_queue_order_continuity_then_priority_then_service_then_line():
    people = [p("c_low", 2, "culture", "low"), p("r_crit", 3, "rsa", "critical"), p("p_low", 4, "paie", "low"),
              p("c_crit", 5, "culture", "critical"), p("p_high", 6, "paie", "high"), p("r_crit2", 7, "rsa", "critical"),
              p("gone", 8, "paie", "critical", active=False)]
    order = [e.person.id for e in queue(people, SERVICES)]
    # paie is critical for continuity: its people first whatever their priority (high before low);
    # then critical people by service name (culture < rsa), roster order within a service; then low.
    assert order == ["p_high", "p_low", "c_crit", "r_crit", "r_crit2", "c_low"]


def test_laptops_fewer_than_people_hand_worked():
    # 5 people need a laptop and a licence; 3 laptops, licences unlimited, 2 people per wave:
    # wave 1: A, B; wave 2: C; D and E wait for laptops.
    people = [p(x, i + 2, "paie" if x in "AB" else "culture", "high" if x == "C" else "normal")
              for i, x in enumerate("ABCDE")]
    plan = plan_waves(people, SERVICES, laptops=3, per_wave=2)
    got = {e.person.id: e.wave for e in plan.entries}
    assert got == {"A": 1, "B": 1, "C": 2, "D": 0, "E": 0}
    assert {e.person.id: e.reason for e in plan.waiting} == {"D": "no laptop left", "E": "no laptop left"}
    assert plan.by_wave() == {0: {"people": 2, "laptops": 2, "licences": 2},
                              1: {"people": 2, "laptops": 2, "licences": 2},
                              2: {"people": 1, "laptops": 1, "licences": 1}}


def test_own_device_people_pass_those_waiting_for_laptops():
    # 1 laptop, 3 licences: L1 takes the laptop; L2 waits; O (own device, vpn) gets a licence anyway.
    people = [p("l1", 2), p("l2", 3), p("o", 4, device="own_device")]
    plan = plan_waves(people, SERVICES, laptops=1, licences=3)
    got = {e.person.id: (e.wave, e.laptop, e.licence) for e in plan.entries}
    assert got == {"l1": (1, True, True), "l2": (0, True, True), "o": (1, False, True)}


def test_deliveries_per_wave_carry_over():
    # laptops arrive 1 then 2; licences 2 then 0: wave 1 serves a; wave 2 serves b (second licence)
    # then c finds a laptop but no licence: waits with the licence as the reason.
    people = [p("a", 2), p("b", 3), p("c", 4)]
    plan = plan_waves(people, SERVICES, laptops=[1, 2], licences=[2, 0])
    got = {e.person.id: e.wave for e in plan.entries}
    assert got == {"a": 1, "b": 2, "c": 0}
    assert plan.waiting[0].reason == "no licence left"


def test_nothing_needed_is_wave_one_and_uses_no_slot():
    people = [p("thin", 2, device="thin_client", needs=("desktop",)), p("a", 3), p("b", 4)]
    plan = plan_waves(people, SERVICES, laptops=10, per_wave=1)
    assert {e.person.id: e.wave for e in plan.entries} == {"thin": 1, "a": 1, "b": 2}


def test_unlimited_stock_everyone_in_wave_one():
    people = [p(f"x{i}", i + 2) for i in range(20)]
    plan = plan_waves(people, SERVICES)
    assert plan.waves == 1 and not plan.waiting


def test_per_wave_only_spreads_everyone():
    people = [p(f"x{i}", i + 2) for i in range(7)]
    plan = plan_waves(people, SERVICES, per_wave=3)
    assert [sum(1 for e in plan.entries if e.wave == w) for w in (1, 2, 3)] == [3, 3, 1]


@pytest.mark.parametrize("kw", [{"laptops": -1}, {"licences": [1, "2"]}, {"per_wave": -3}, {"laptops": []}])
def test_bad_stock_rejected(kw):
    with pytest.raises(ValueError):
        plan_waves([p("a", 2)], SERVICES, **kw)


def test_csv_for_logistics_waves_first_waiting_last():
    people = [p("a", 2), p("b", 3, "paie")]
    plan = plan_waves(people, SERVICES, laptops=1)
    out = io.StringIO()
    write_csv(plan, out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [(r["id"], r["wave"], r["status"], r["continuity"]) for r in rows] == [
        ("b", "1", "wave", "critical"), ("a", "", "waiting", "")]
    assert rows[1]["reason"] == "no laptop left"


def test_continuity_policy_key_is_validated():
    ok = load_settings({"teleshift_services": {"paie": {"continuity": "critical"}, "rh": {"continuity": "normal"}}})
    assert ok.ok
    bad = load_settings({"teleshift_services": {"paie": {"continuity": "vital"}}})
    assert [(x.field, "'vital'" in x.message) for x in bad.problems] == [("teleshift_services.paie.continuity", True)]


@pytest.mark.parametrize("value", [200, "200", "0", [10, "20"]])
def test_stock_settings_take_digits_given_as_text(value):
    # ansible-playbook -e teleshift_vpn_licences=200 passes the text "200": the same as 200 in YAML
    assert not load_settings({"teleshift_services": SERVICES, "teleshift_laptops_stock": value}).problems
    assert not load_settings({"teleshift_services": SERVICES, "teleshift_vpn_licences": 200 if isinstance(value, list)
                              else value}).problems


@pytest.mark.parametrize("value", [-1, "-1", "2e2", " 200", "0x10", "²", "", True, 2.0, [1, "x"], "lots"])
def test_stock_settings_refuse_what_is_not_a_whole_number(value):
    found = load_settings({"teleshift_services": SERVICES, "teleshift_vpn_licences": value}).problems
    assert [p.field for p in found] == ["teleshift_vpn_licences"] and "whole number" in found[0].message


def test_cli_stock_and_per_wave_from_the_inventory_take_digits_as_text():
    from teleshift_cli.commands.waves import per_wave_value, stock_setting
    from teleshift_cli.errors import CliError

    assert stock_setting(None, "150", "teleshift_laptops_stock", "--laptops") == [150]
    assert stock_setting(None, [5, "7"], "teleshift_laptops_stock", "--laptops") == [5, 7]
    assert per_wave_value("40", "inventory variable teleshift_rollout_per_wave") == 40
    for bad in ("4.5", "-3", True, "²"):
        with pytest.raises(CliError):
            stock_setting(None, bad, "teleshift_laptops_stock", "--laptops")
        with pytest.raises(CliError):
            per_wave_value(bad, "inventory variable teleshift_rollout_per_wave")
