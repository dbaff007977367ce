"""Sticky host assignment and address allocation (shared by VPN, desktop and telephony)."""
import ipaddress
import random

import pytest
from hypothesis import given, settings, strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils.assign import (
    PoolExhausted, allocate_addresses, assign_hosts)

IDS = [f"p{i:04d}" for i in range(300)]


def test_addresses_survive_reordering_additions_and_removals():
    first = allocate_addresses(IDS, "10.100.0.0/22", reserved=["10.100.0.1"])
    assert "10.100.0.1" not in first.values() and "10.100.0.0" not in first.values()
    shuffled = IDS[:]
    random.Random(4).shuffle(shuffled)
    survivors = [p for p in shuffled if p not in {"p0003", "p0100"}] + ["new1", "new2"]
    second = allocate_addresses(survivors, "10.100.0.0/22", previous=first, reserved=["10.100.0.1"])
    assert all(second[p] == first[p] for p in survivors if p in first)
    assert len(set(second.values())) == len(second)
    # newcomers reuse the lowest free addresses: those of the people who left
    assert {second["new1"], second["new2"]} == {first["p0003"], first["p0100"]}


def test_pool_exhaustion_says_how_many_do_not_fit():
    with pytest.raises(PoolExhausted) as err:
        allocate_addresses(IDS[:20], "10.100.0.0/28", reserved=["10.100.0.1"])
    assert err.value.missing == 20 - 13  # /28: 14 hosts, one reserved
    assert "7 more" in str(err.value)


def test_previous_address_outside_the_pool_is_replaced():
    result = allocate_addresses(["a"], "10.100.0.0/24", previous={"a": "192.0.2.7"})
    assert ipaddress.ip_address(result["a"]) in ipaddress.ip_network("10.100.0.0/24")


def test_ipv6_pool():
    result = allocate_addresses(IDS[:3], "fd00:100::/64")
    assert result["p0000"] == "fd00:100::1" and result["p0002"] == "fd00:100::3"


def test_hosts_are_sticky_and_capacity_is_respected():
    caps = {"gw1": 150, "gw2": 150}
    first = assign_hosts(IDS[:250], caps)
    assert not first.unplaced
    assert max(len(v) for v in first.by_host().values()) <= 150
    again = assign_hosts(list(reversed(IDS[:250])) + ["x"], caps, previous=first.hosts)
    assert all(again.hosts[p] == first.hosts[p] for p in IDS[:250])


def test_over_capacity_reports_the_shortfall_and_removed_host_moves_people():
    first = assign_hosts(IDS[:100], {"a": 60, "b": 60})
    shrunk = assign_hosts(IDS[:100], {"b": 60, "c": 30}, previous=first.hosts)
    assert len(shrunk.unplaced) == 10
    kept = [p for p in IDS[:100] if first.hosts[p] == "b"]
    assert all(shrunk.hosts[p] == "b" for p in kept)


def test_new_people_join_their_service_where_possible():
    service = {f"p{i:04d}": ("rsa" if i % 2 else "paie") for i in range(300)}
    result = assign_hosts(IDS[:40], {"h1": 30, "h2": 30}, previous={"p0001": "h2", "p0000": "h1"},
                          group_of=service.get)
    by_host = result.by_host()
    assert {service[p] for p in by_host["h2"]} == {"rsa"}
    assert {service[p] for p in by_host["h1"]} == {"paie"}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(IDS[:60]), unique=True, max_size=60), st.integers(0, 2**32 - 1))
def test_allocation_is_stable_under_any_permutation(people, seed):
    first = allocate_addresses(people, "10.100.0.0/24")
    shuffled = people[:]
    random.Random(seed).shuffle(shuffled)
    assert allocate_addresses(shuffled, "10.100.0.0/24", previous=first) == first


def _reference_allocate(people, pool, previous, reserved):
    """The plain ipaddress algorithm allocate_addresses must agree with (its IPv4 path works on ints)."""
    net = ipaddress.ip_network(pool)
    taken = {ipaddress.ip_address(a) for a in reserved} | {net.network_address, net.broadcast_address}
    result = {}
    for pid in people:
        try:
            addr = ipaddress.ip_address(previous[pid]) if pid in previous else None
        except ValueError:
            addr = None
        if addr is not None and addr in net and addr not in taken:
            result[pid] = str(addr)
            taken.add(addr)
    free = (a for a in net.hosts() if a not in taken)
    for pid in people:
        if pid not in result:
            addr = next(free, None)
            if addr is None:
                raise PoolExhausted(str(net), 0)
            result[pid] = str(addr)
    return result


TEXTS = st.one_of(st.sampled_from(["10.9.0.1", "10.9.0.7", "10.9.0.0", "10.9.0.15", "10.9.0.16", "10.9.0.01",
                                   "10.9.0.2 ", "010.9.0.3", "10.9.3", "0x0a.9.0.4", "fd00::5", "::ffff:10.9.0.6",
                                   "", "not an address", "10.9.0.8\x00"]),
                  st.integers(0, 15).map(lambda n: f"10.9.0.{n}"), st.just(168361993))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([f"p{i}" for i in range(14)]), unique=True, max_size=14),
       st.dictionaries(st.sampled_from([f"p{i}" for i in range(14)]), TEXTS),
       st.sampled_from(["10.9.0.0/28", "10.9.0.0/30", "10.9.0.0/31", "10.9.0.0/32"]))
def test_ipv4_addresses_on_ints_agree_with_ipaddress(people, previous, pool):
    reserved = ["10.9.0.1", "fd00::1"]
    try:
        expected = _reference_allocate(people, pool, previous, reserved)
    except PoolExhausted:
        with pytest.raises(PoolExhausted):
            allocate_addresses(people, pool, previous, reserved)
        return
    got = allocate_addresses(people, pool, previous, reserved)
    assert got == expected and list(got) == list(expected)
