"""Erlang B against published table values, and the capacity plan against hand-worked inventories."""
import math

import pytest

from testlib import make_inputs, vpn_vars

from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import (
    channels_needed, erlang_b, known_assumptions, parse_override, plan_capacity, traffic_capacity, trunk_erlangs)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person


# Published Erlang B tables (grade of service -> channels -> erlangs carried).
TABLE = [(5, 0.01, 1.361), (10, 0.01, 4.461), (18, 0.01, 10.437), (30, 0.01, 20.337),
         (100, 0.01, 84.064), (5, 0.02, 1.657), (10, 0.02, 5.084)]


@pytest.mark.parametrize("channels,blocking,erlangs", TABLE)
def test_traffic_capacity_matches_published_tables(channels, blocking, erlangs):
    assert traffic_capacity(channels, blocking) == pytest.approx(erlangs, abs=0.001)


@pytest.mark.parametrize("erlangs,blocking,channels", [(10, 0.01, 18), (1, 0.01, 5), (5, 0.01, 11),
                                                       (20, 0.01, 30), (100, 0.01, 117), (5, 0.02, 10)])
def test_channels_needed_matches_published_tables(erlangs, blocking, channels):
    assert channels_needed(erlangs, blocking) == channels


def test_erlang_b_small_cases_by_hand():
    # B(E,1) = E/(1+E); B(2,2) = (4/2)/(1+2+2) = 0.4
    assert erlang_b(1, 1) == pytest.approx(0.5)
    assert erlang_b(2, 2) == pytest.approx(0.4)
    assert erlang_b(3, 0) == 1.0


def test_channels_needed_is_minimal():
    for erlangs in (0.3, 2.5, 47.0, 333.3):
        n = channels_needed(erlangs, 0.01)
        assert erlang_b(erlangs, n) <= 0.01 < erlang_b(erlangs, n - 1)


def test_zero_traffic_needs_no_channel():
    assert channels_needed(0, 0.01) == 0
    assert erlang_b(0, 3) == 0.0


def test_tiny_and_huge_traffic_are_stable():
    assert channels_needed(1e-6, 0.01) == 1
    n = channels_needed(20000, 0.01)
    b = erlang_b(20000, n)
    assert math.isfinite(b) and 0 < b <= 0.01
    assert 19000 < n < 21000  # large groups are efficient: close to the offered traffic


@pytest.mark.parametrize("blocking", [0, 1, -0.1, 1.5, True])
def test_blocking_outside_0_1_is_rejected(blocking):
    with pytest.raises(ValueError, match="blocking"):
        channels_needed(10, blocking)


@pytest.mark.parametrize("traffic", [-1, float("nan"), float("inf"), "10"])
def test_bad_traffic_is_rejected(traffic):
    with pytest.raises(ValueError, match="traffic"):
        channels_needed(traffic, 0.01)


def person(pid, line, needs=("vpn",), priority="normal", extension="", mode="none", service="rsa"):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, priority=priority,
                  needs=frozenset(needs), extension=extension, forward_to="+33612345678" if mode != "none" else "",
                  forward_mode=mode, line=line)


def test_forwarded_call_holds_two_channels():
    people = [person("a", 2, ("phone",), extension="1001", mode="always"),
              person("b", 3, ("phone",), extension="1002"),
              person("c", 4, ("phone",), extension="1003", mode="busy")]
    assert trunk_erlangs(people, 0.1, 0.3) == pytest.approx(0.1 * 2 + 0.1 + 0.1 * 1.3)


def inventory(people, gw_peers=3, desk_sessions=None, desk_mib=2048, desk_cpus=1, **all_vars):
    """Front-door inputs for two gateways (gw_peers each), one desktop host, one PBX."""
    groups = {"vpn_gateways": ["gw1", "gw2"], "desktop_hosts": ["d1"], "pbx_hosts": ["pbx1"]}
    vpn_all, hostvars = vpn_vars(gateways=("gw1", "gw2"), max_peers=gw_peers,
                                 gateway_pools=("10.100.0.0/24", "10.100.1.0/24"))
    hostvars["d1"] = {"teleshift_desktop_memory_mib": desk_mib, "teleshift_desktop_cpus": desk_cpus}
    if desk_sessions is not None:
        hostvars["d1"]["xrdp_host_max_sessions"] = desk_sessions
    hostvars["pbx1"] = {}
    return make_inputs(people, groups, hostvars, {**vpn_all, **all_vars})


def test_vpn_peers_spread_and_shortfall_named():
    people = [person(f"p{i}", i + 2) for i in range(7)]
    plan = plan_capacity(inventory(people, gw_peers=3, teleshift_trunk_channels=10))
    assert sum(plan.placements["vpn"].values()) == 6
    assert len(plan.unplaced["vpn"]) == 1
    total = [c for c in plan.checks if c.capability == "vpn" and c.resource == "peers" and not c.host][0]
    assert (total.needed, total.available, total.ok) == (7, 6, False)
    assert not plan.ok


def test_lowest_priority_is_the_one_left_out():
    people = [person("boss", 9, priority="critical")] + [person(f"p{i}", i + 2, priority="low") for i in range(6)]
    plan = plan_capacity(inventory(people, gw_peers=3))
    assert "boss" not in plan.unplaced["vpn"] and len(plan.unplaced["vpn"]) == 1


def test_vpn_capacity_is_the_planners_a_small_pool_limits_it():
    """The plan counts what the VPN planner can place: a /28 pool holds 13 people whatever the peer limit."""
    people = [person(f"p{i}", i + 2) for i in range(20)]
    all_vars, hostvars = vpn_vars(pool="10.100.0.0/28", max_peers=1000)
    inputs = make_inputs(people, {"vpn_gateways": ["gw1"]}, hostvars, all_vars)
    plan = plan_capacity(inputs)
    peers = [c for c in plan.checks if c.resource == "peers" and c.host == "gw1"][0]
    assert (peers.needed, peers.available, peers.ok) == (13, 13, True)
    assert len(plan.unplaced["vpn"]) == 7 and not plan.ok
    assert "pool" in peers.note


def test_licences_checked_against_vpn_users():
    people = [person(f"p{i}", i + 2) for i in range(4)]
    plan = plan_capacity(inventory(people, gw_peers=10, teleshift_vpn_licences=3, teleshift_trunk_channels=4))
    lic = [c for c in plan.checks if c.resource == "licences"][0]
    assert (lic.needed, lic.available, lic.ok) == (4, 3, False)
    plan = plan_capacity(inventory(people, gw_peers=10, teleshift_vpn_licences=4, teleshift_trunk_channels=4))
    assert plan.ok, [c.as_dict() for c in plan.shortfalls]


def test_desktop_memory_and_cpu_checked_on_the_planners_placement():
    # 2048 MiB - 1024 reserved = 1024 usable -> 2 sessions of 400 MiB fit; 3 people placed (session limit 5)
    people = [person(f"p{i}", i + 2, needs=("desktop",)) for i in range(3)]
    plan = plan_capacity(inventory(people, desk_sessions=5, teleshift_trunk_channels=4))
    assert plan.placements["desktop"] == {"d1": 3} and not plan.unplaced["desktop"]
    memory = [c for c in plan.checks if c.resource == "memory"][0]
    assert (memory.needed, memory.available, memory.ok) == (1200, 1024, False)
    # with half the users connected at once the memory holds
    plan = plan_capacity(inventory(people, desk_sessions=5, teleshift_trunk_channels=4),
                         overrides={"teleshift_capacity_desktop_concurrency": 0.5})
    assert [c for c in plan.checks if c.resource == "memory"][0].ok
    assert plan.assumptions["teleshift_capacity_desktop_concurrency"].source == "command line"


def test_desktop_session_limit_places_people():
    people = [person(f"p{i}", i + 2, needs=("desktop",)) for i in range(5)]
    plan = plan_capacity(inventory(people, desk_sessions=3, desk_mib=65536, desk_cpus=8))
    assert plan.placements["desktop"] == {"d1": 3} and len(plan.unplaced["desktop"]) == 2


def test_cpu_bound_host():
    people = [person(f"p{i}", i + 2, needs=("desktop",)) for i in range(5)]
    plan = plan_capacity(inventory(people, desk_mib=65536, desk_cpus=0.3))
    cpu = [c for c in plan.checks if c.resource == "cpu"][0]
    assert (cpu.needed, cpu.available, cpu.ok) == (0.5, 0.3, False)


def test_trunk_check_uses_erlang_b():
    people = [person(f"p{i}", i + 2, ("phone",), extension=str(1000 + i), mode="always") for i in range(50)]
    # 50 x 0.1 E x 2 = 10 E -> 18 channels at 1%
    inputs = inventory(people, teleshift_trunk_channels=17)
    trunk = [c for c in plan_capacity(inputs).checks if c.resource == "trunk channels"][0]
    assert (trunk.needed, trunk.available, trunk.ok) == (18, 17, False)
    inputs.hostvars["pbx1"]["teleshift_trunk_channels"] = 18
    assert [c for c in plan_capacity(inputs).checks if c.resource == "trunk channels"][0].ok


def test_missing_capability_hosts_are_not_configured_not_a_crash():
    plan = plan_capacity(make_inputs([person("a", 2, ("vpn", "desktop"))]))
    assert set(plan.not_configured) == {"vpn", "desktop"}
    assert not plan.ok
    assert plan_capacity(make_inputs([person("b", 2, ())])).ok  # nobody needs anything: nothing missing


def test_bad_assumption_is_a_problem_naming_the_variable():
    plan = plan_capacity(make_inputs([], all_vars={"teleshift_capacity_phone_blocking": 1.0,
                                                   "teleshift_capacity_vpn_concurrency": "lots"}))
    fields = {p.field for p in plan.problems}
    assert fields == {"teleshift_capacity_phone_blocking", "teleshift_capacity_vpn_concurrency"}
    assert not plan.ok


def test_parse_override():
    assert parse_override("teleshift_capacity_phone_blocking=0.02") == ("teleshift_capacity_phone_blocking", 0.02)
    assert parse_override("teleshift_capacity_desktop_cpus=50") == ("teleshift_capacity_desktop_cpus", 50)
    with pytest.raises(ValueError, match="NAME=VALUE"):
        parse_override("nonsense=1")
    with pytest.raises(ValueError, match="not a number"):
        parse_override("teleshift_capacity_phone_blocking=high")


def test_every_assumption_has_a_valid_default():
    plan = plan_capacity(make_inputs([]))
    assert not plan.problems
    assert set(plan.assumptions) == set(known_assumptions())
    assert all(a.source == "default" for a in plan.assumptions.values())
