"""Several gateways: stable placement, each gateway's routes, a gateway out of service (its people move,
nobody else does), what `plan` says about it, and the sized lab definition (labsize.py)."""
import ipaddress
import time

import pytest
import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard_plan as wp
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

from teleshift_cli import lab, labsize
from teleshift_cli.paths import LAB_INVENTORY

SERVICES = ("rsa", "ase", "dsi", "pmi", "rh")


def person(pid, service):
    return Person(id=pid, full_name=pid, email=f"{pid}@x.example", service=service, priority="normal",
                  needs=frozenset({"vpn"}))


def gateways(count, out=(), max_peers=100):
    return {f"gw{i}": {"wireguard_gateway_endpoint": f"gw{i}.example", "wireguard_gateway_max_peers": max_peers,
                       "wireguard_gateway_pool": f"10.100.{16 * (i - 1)}.0/20",
                       "wireguard_gateway_internal_address": f"10.89.251.{100 + i}",
                       **({"wireguard_gateway_out_of_service": True} if f"gw{i}" in out else {})}
            for i in range(1, count + 1)}


def settings(count, out=(), max_peers=100):
    s = wp.load_vpn_settings({"teleshift_vpn_pool": "10.100.0.0/16",
                              "teleshift_vpn_internal_networks": ["10.89.251.0/24"]}, gateways(count, out, max_peers))
    assert not s.problems, s.problems
    return s


def people(n):
    return [person(f"p{i:03d}", SERVICES[i % len(SERVICES)]) for i in range(n)]


def state(plan):
    return wp.state_of(plan, {pid: f"key-{pid}" for pid in plan.people})


def test_people_are_spread_and_stay_where_they_are():
    s = settings(3)
    first = wp.plan_vpn(people(150), s)
    load = {g: len(first.on(g)) for g in s.gateways}
    assert sum(load.values()) == 150 and all(load.values()), load
    for p in first.people.values():
        assert ipaddress.ip_address(p.address) in s.gateways[p.gateway].pool
    # reordered, with newcomers and leavers: nobody who stays moves or changes address
    again = wp.plan_vpn(list(reversed(people(150)))[10:] + [person("new1", "rsa")], s, previous=state(first))
    for pid, p in again.people.items():
        if pid in first.people:
            assert (p.gateway, p.address) == (first.people[pid].gateway, first.people[pid].address)


def test_each_gateway_part_of_the_pool_is_routed_via_it():
    routes = wp.routes(settings(3))
    assert routes == [{"network": f"10.100.{16 * i}.0/20", "via": f"10.89.251.{101 + i}", "gateway": f"gw{i + 1}"}
                      for i in range(3)]


def test_a_gateway_out_of_service_moves_only_its_people():
    before = wp.plan_vpn(people(150), settings(3))
    carried = {pid for pid, p in before.people.items() if p.gateway == "gw2"}
    assert carried
    after = wp.plan_vpn(people(150), settings(3, out={"gw2"}), previous=state(before))
    assert not after.problems and not after.on("gw2")
    for pid, p in after.people.items():
        old = before.people[pid]
        if pid in carried:
            assert p.gateway in ("gw1", "gw3")
            assert ipaddress.ip_address(p.address) in settings(3).gateways[p.gateway].pool
        else:
            assert (p.gateway, p.address) == (old.gateway, old.address), pid
    assert wp.carried(state(before), ["gw2"]) == {"gw2": sorted(carried)}
    assert wp.carried(state(after), ["gw2"]) == {"gw2": []}
    assert wp.state_of(after, {}, settings=settings(3, out={"gw2"}))["gateways"]["gw2"]["out_of_service"] is True
    # back in service: nobody moves back (sticky), newcomers may go there
    back = wp.plan_vpn(people(150), settings(3), previous=state(after))
    assert {pid: (p.gateway, p.address) for pid, p in back.people.items()} == \
        {pid: (p.gateway, p.address) for pid, p in after.people.items()}


def test_without_room_on_the_others_the_move_is_refused_naming_it():
    plan = wp.plan_vpn(people(150), settings(3, out={"gw2"}, max_peers=60))
    assert plan.problems and "out of service" in str(plan.problems[0]) and not plan.people


def test_out_of_service_must_be_a_boolean():
    g = gateways(2)
    g["gw1"]["wireguard_gateway_out_of_service"] = "maybe"
    s = wp.load_vpn_settings({"teleshift_vpn_pool": "10.100.0.0/16",
                              "teleshift_vpn_internal_networks": ["10.89.251.0/24"]}, g)
    assert [p.field for p in s.problems] == ["gw1: wireguard_gateway_out_of_service"]


def test_plan_names_the_people_a_lost_gateway_carries():
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import Inputs

    before = wp.plan_vpn(people(40), settings(3))
    inputs = Inputs(inventory_dir="/nonexistent", all_vars={
        "teleshift_vpn_pool": "10.100.0.0/16", "teleshift_vpn_internal_networks": ["10.89.251.0/24"]},
        hostvars=gateways(3, out={"gw3"}), groups={"vpn_gateways": ["gw1", "gw2", "gw3"]})
    inputs.roster = type("R", (), {"people": people(40)})()
    inputs._states["vpn"] = state(before)
    cap = registry.get("vpn")
    lost = sorted(pid for pid, p in before.people.items() if p.gateway == "gw3")
    assert cap.stranded(inputs) == {"gw3": lost}
    assert cap.stranded(inputs, down=["gw1"])["gw1"] == sorted(pid for pid, p in before.people.items()
                                                               if p.gateway == "gw1")
    check = next(c for c in cap.capacity(inputs, {"teleshift_capacity_vpn_concurrency": 1,
                                                  "teleshift_capacity_vpn_mbps_per_user": 1,
                                                  "teleshift_capacity_vpn_max_mbps": 1000})
                 if c.resource == "out of service")
    assert check.host == "gw3" and check.needed == len(lost) and not check.ok and lost[0] in check.note


def test_50000_people_on_10_gateways_plan_in_seconds():
    gws = {f"gw{i}": {"wireguard_gateway_endpoint": f"gw{i}", "wireguard_gateway_max_peers": 6000,
                      "wireguard_gateway_pool": f"10.{100 + i}.0.0/16"} for i in range(1, 11)}
    s = wp.load_vpn_settings({"teleshift_vpn_pool": "10.96.0.0/11",
                              "teleshift_vpn_internal_networks": ["10.89.251.0/24"]}, gws)
    assert not s.problems, s.problems
    crowd = generate_people(50000, seed=3)
    start = time.perf_counter()
    plan = wp.plan_vpn(crowd, s)
    elapsed = time.perf_counter() - start
    assert not plan.problems and len(plan.people) == 50000
    assert max(len(plan.on(g)) for g in gws) <= 6000
    assert elapsed < 10, elapsed


# ------------------------------------------------------------------------------------ sized lab

def base_data():
    return yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text(encoding="utf-8"))


def test_sized_lab_clones_gateways_and_desktops_and_splits_the_pool():
    data = labsize.sized_data(base_data(), 10, 5)
    the_lab = lab.parse_lab(data)
    names = [h.name for h in the_lab.hosts]
    assert [n for n in names if n.startswith("ts-gw")] == [f"ts-gw{i}" for i in range(1, 11)]
    assert [n for n in names if n.startswith("ts-desk")] == [f"ts-desk{i}" for i in range(1, 6)]
    gws = data["all"]["children"]["teleshift_lab"]["children"]["vpn_gateways"]["hosts"]
    pools = [ipaddress.ip_network(g["wireguard_gateway_pool"]) for g in gws.values()]
    assert all(p.subnet_of(ipaddress.ip_network("10.100.0.0/16")) for p in pools)
    assert all(not a.overlaps(b) for i, a in enumerate(pools) for b in pools[i + 1:])
    extra = {h.name for h in the_lab.hosts if h.extra}
    assert "ts-gw1" not in extra and "ts-gw10" in extra and "ts-desk5" in extra


def test_sized_lab_keeps_the_default_hosts_as_they_are():
    default = {h.name: h for h in lab.parse_lab(base_data()).hosts}
    sized = {h.name: h for h in lab.parse_lab(labsize.sized_data(base_data(), 3, 2)).hosts}
    for name, host in default.items():
        assert sized[name] == host  # same container spec: the default lab's containers are shared
    assert labsize.sized_data(base_data(), 1, 1) == base_data()


@pytest.mark.parametrize("g, d", [(0, 1), (17, 1), (1, 0), (1, 21)])
def test_sized_lab_refuses_absurd_sizes(g, d):
    with pytest.raises(labsize.SizeError):
        labsize.sized_data(base_data(), g, d)


def test_sized_inventory_is_a_complete_inventory(tmp_path):
    path = labsize.sized_inventory(3, 2, dest=tmp_path / "sized")
    the_lab = lab.load_lab(path)
    assert len([h for h in the_lab.hosts if h.extra]) == 3
    assert (path / "roster.csv").read_text() == (LAB_INVENTORY / "roster.csv").read_text()
    assert (path / "state").is_dir() and (path / "group_vars" / "all" / "zz_sized_lab.yml").exists()
