"""OpenVPN planner: settings named by variable, addresses stable under roster edits (shuffles, people
added and removed), gateway stickiness, slices in the WireGuard template's access shape."""
import ipaddress
import random

import pytest

from hypothesis import given, settings as hsettings, strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_plan as op
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

BASE = {"teleshift_openvpn_pool": "10.101.0.0/24", "teleshift_vpn_internal_networks": ["10.89.251.0/24"],
        "teleshift_vpn_pool": "10.100.0.0/16"}
SERVICES = {"dsi": {"networks": ["10.89.251.0/24"]}, "ase": {"networks": ["10.89.251.30/32"]}, "culture": {}}


def person(pid, service="dsi", priority="normal"):
    return Person(id=pid, full_name=pid, email=f"{pid}@x.example", service=service, priority=priority,
                  needs=frozenset({"vpn"}))


def settings(gateways=None, **extra):
    gateways = gateways or {"gw1": {"openvpn_gateway_endpoint": "vpn.example.org"}}
    return op.load_openvpn_settings({**BASE, **extra}, gateways)


def state(plan):
    return op.state_of(plan, {}, {}, settings())


def test_settings_problems_name_the_variable():
    s = op.load_openvpn_settings(
        {"teleshift_vpn_pool": "10.100.0.0/16", "teleshift_openvpn_profile_name": "a b",
         "teleshift_openvpn_cert_days": "30", "teleshift_openvpn_renew_days": "45"},
        {"gw1": {"openvpn_gateway_port": "x"}, "gw2": {"openvpn_gateway_endpoint": "b c"}})
    fields = {p.field for p in s.problems}
    assert {"teleshift_openvpn_pool", "teleshift_vpn_internal_networks", "teleshift_openvpn_profile_name",
            "teleshift_openvpn_renew_days", "gw1: openvpn_gateway_port", "gw1: openvpn_gateway_endpoint",
            "gw2: openvpn_gateway_endpoint", "gw1: openvpn_gateway_pool"} <= fields


def test_the_pool_may_not_overlap_wireguard_or_internal_networks():
    s = settings(teleshift_openvpn_pool="10.100.5.0/24")
    assert any("overlaps the WireGuard pool" in p.message for p in s.problems)
    s = settings(teleshift_openvpn_pool="10.89.251.0/25")
    assert any("overlaps the internal network" in p.message for p in s.problems)
    assert not settings().problems


def test_endpoint_and_internal_address_default_to_the_wireguard_gateways():
    s = op.load_openvpn_settings(BASE, {"gw1": {"wireguard_gateway_endpoint": "vpn1.example.org:51820",
                                                "wireguard_gateway_internal_address": "10.20.0.11"}})
    gw = s.gateways["gw1"]
    assert (gw.endpoint, gw.port, gw.internal_address, gw.address) == ("vpn1.example.org", 443, "10.20.0.11",
                                                                       "10.101.0.1")
    assert op.routes(s) == [{"network": "10.101.0.0/24", "via": "10.20.0.11", "gateway": "gw1"}]


def test_everyone_gets_an_address_of_the_pool_never_the_gateways():
    s = settings()
    plan = op.plan_openvpn([person(f"p{i:02d}") for i in range(20)], s)
    addresses = [p.address for p in plan.people.values()]
    assert len(set(addresses)) == 20 and "10.101.0.1" not in addresses
    assert all(ipaddress.ip_address(a) in s.pool for a in addresses)


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 59), min_size=1, max_size=30, unique=True), st.randoms(use_true_random=False))
def test_addresses_survive_shuffles_additions_and_removals(removed, rnd):
    s = settings()
    people = [person(f"p{i:02d}", random.Random(i).choice(["dsi", "ase", "culture"])) for i in range(60)]
    first = op.plan_openvpn(people, s)
    kept = [p for i, p in enumerate(people) if i not in set(removed)] + [person(f"new{i}") for i in range(5)]
    rnd.shuffle(kept)
    second = op.plan_openvpn(kept, s, state(first))
    for p in kept:
        if p.id in first.people:
            assert second.people[p.id].address == first.people[p.id].address
    # a comeback gets the old address back (held while the pool has room)
    back = kept + [people[removed[0]]]
    third = op.plan_openvpn(back, s, state(second))
    assert third.people[people[removed[0]].id].address == first.people[people[removed[0]].id].address


def test_a_full_pool_and_too_many_people_are_problems_naming_the_variable():
    s = settings(teleshift_openvpn_pool="10.101.0.0/29")  # 5 addresses for people
    plan = op.plan_openvpn([person(f"p{i}") for i in range(8)], s)
    assert plan.problems and "openvpn_gateway_max_clients" in plan.problems[0].field
    assert "3 of 8" in plan.problems[0].message


def test_people_stay_on_their_wireguard_gateway_when_it_serves_openvpn():
    s = op.load_openvpn_settings({**BASE, "teleshift_openvpn_pool": "10.101.0.0/16"}, {
        "a": {"openvpn_gateway_endpoint": "a", "openvpn_gateway_pool": "10.101.0.0/24"},
        "b": {"openvpn_gateway_endpoint": "b", "openvpn_gateway_pool": "10.101.1.0/24"}})
    assert not s.problems
    vpn_state = {"people": {"x": {"gateway": "b"}, "y": {"gateway": "a"}, "z": {"gateway": "b"}}}
    plan = op.plan_openvpn([person("x"), person("y"), person("z")], s, None, vpn_state)
    assert {p.id: p.gateway for p in plan.people.values()} == {"x": "b", "y": "a", "z": "b"}
    assert plan.people["x"].address.startswith("10.101.1.")


def test_slice_is_the_wireguard_access_shape_and_pushes_the_internal_routes():
    s = settings(teleshift_vpn_dns=["10.20.0.53"])
    people = [person("a", "dsi"), person("b", "ase"), person("c", "ase"), person("d", "culture")]
    plan = op.plan_openvpn(people, s)
    public = {"ca": "CA", "crl": "CRL", "cert": {"gw1": "C"}, "digests": {"gw1": {"server.key": "h"}}}
    part = op.gateway_slice(plan, s.gateways["gw1"], SERVICES, s, public, kick={"b", "zz"})
    assert part["clients"].splitlines() == [f"{p} {plan.people[p].address}" for p in "abcd"]
    access = {r["service"]: r for r in part["access"]}
    assert access["ase"]["addresses"] == f"{plan.people['b'].address}, {plan.people['c'].address}"
    assert access["ase"]["networks"] == ["10.89.251.30/32"] and access["culture"]["networks"] == []
    assert part["push"] == ['push "route 10.89.251.0 255.255.255.0"', 'push "route 10.20.0.53 255.255.255.255"',
                            'push "dhcp-option DNS 10.20.0.53"']
    assert part["netmask"] == "255.255.255.0" and part["kick"] == ["b"] and part["cert"] == "C"
    full = op.gateway_slice(plan, s.gateways["gw1"], SERVICES, settings(teleshift_vpn_full_tunnel=True), {})
    assert full["push"] == ['push "redirect-gateway def1"'] and full["full_tunnel"] is True


def test_plan_of_5000_people_is_fast():
    import time

    s = settings(teleshift_openvpn_pool="10.101.0.0/16", teleshift_vpn_pool="10.100.0.0/16")
    s.gateways["gw1"].max_clients = 6000
    people = [person(f"p{i:05d}", ["dsi", "ase"][i % 2]) for i in range(5000)]
    start = time.perf_counter()
    plan = op.plan_openvpn(people, s)
    part = op.gateway_slice(plan, s.gateways["gw1"], SERVICES, s, {})
    assert time.perf_counter() - start < 2.0
    assert len(plan.people) == 5000 and len(part["clients"].splitlines()) == 5000


@pytest.mark.parametrize("value", ["true", "yes", 1])
def test_full_tunnel_that_is_not_true_or_false_is_refused_not_read_as_split(value):
    # -e teleshift_vpn_full_tunnel=true gives the text "true": the WireGuard plan refused it while this one
    # silently built split-tunnel profiles
    s = settings(teleshift_vpn_full_tunnel=value)
    assert [p.field for p in s.problems] == ["teleshift_vpn_full_tunnel"]
    assert "expected true or false" in s.problems[0].message
    full = settings(teleshift_vpn_full_tunnel=True)
    assert not full.problems and full.full_tunnel
