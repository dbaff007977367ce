"""WireGuard: plan (gateways, addresses, capacity), keys, profiles, peer diff, the wireguard_peers
module against an emulated `wg` command, and handshake status."""
import base64
import ipaddress
import grp
import json
import os
import random
import stat
import sys
import textwrap
import time

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard as wgm
from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard_plan as wp
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people


def person(pid, service="rsa", priority="normal", line=0):
    return Person(id=pid, full_name=pid, email=f"{pid}@x.example", service=service, priority=priority,
                  needs=frozenset({"vpn"}), line=line)


def vpn_settings(pool="10.100.0.0/24", gateways=None, **extra):
    all_vars = {"teleshift_vpn_pool": pool, "teleshift_vpn_internal_networks": ["10.89.251.0/24"], **extra}
    gateways = gateways or {"gw1": {"wireguard_gateway_endpoint": "vpn.example.org"}}
    return wp.load_vpn_settings(all_vars, gateways)


def key(n):
    return base64.b64encode(bytes([n % 256]) * 32).decode()


# ------------------------------------------------------------------------------------ settings

def test_settings_problems_name_the_variable():
    s = wp.load_vpn_settings({"teleshift_vpn_pool": "10.100.0.1/16", "teleshift_vpn_dns": ["nope"],
                              "teleshift_vpn_profile_name": "much-too-long-name"},
                             {"gw1": {}, "gw2": {"wireguard_gateway_endpoint": "b", "wireguard_gateway_port": "x"}})
    fields = {p.field for p in s.problems}
    assert "teleshift_vpn_pool" in fields  # host bits set
    assert "teleshift_vpn_internal_networks" in fields
    assert "teleshift_vpn_dns[0]" in fields
    assert "teleshift_vpn_profile_name" in fields
    assert "gw1: wireguard_gateway_endpoint" in fields
    assert "gw2: wireguard_gateway_port" in fields
    assert "gw1: wireguard_gateway_pool" in fields  # several gateways need their own pool


def test_gateway_pools_must_be_inside_and_disjoint():
    s = vpn_settings("10.100.0.0/16", {
        "a": {"wireguard_gateway_endpoint": "a", "wireguard_gateway_pool": "10.100.0.0/20"},
        "b": {"wireguard_gateway_endpoint": "b", "wireguard_gateway_pool": "10.100.8.0/21"},
        "c": {"wireguard_gateway_endpoint": "c", "wireguard_gateway_pool": "10.200.0.0/24"}})
    messages = " ".join(str(p) for p in s.problems)
    assert "overlaps a's" in messages and "not inside teleshift_vpn_pool" in messages


def test_endpoint_gets_the_port_unless_given():
    s = vpn_settings(gateways={"g": {"wireguard_gateway_endpoint": "vpn.example.org", "wireguard_gateway_port": 4500}})
    assert s.gateways["g"].endpoint == "vpn.example.org:4500"
    s = vpn_settings(gateways={"g": {"wireguard_gateway_endpoint": "198.51.100.7:443"}})
    assert s.gateways["g"].endpoint == "198.51.100.7:443"
    s = vpn_settings(gateways={"g": {"wireguard_gateway_endpoint": "2001:db8::1"}})
    assert s.gateways["g"].endpoint == "[2001:db8::1]:51820"


# ---------------------------------------------------------------------------------------- plan

def addresses(plan):
    return {pid: p.address for pid, p in plan.people.items()}


def test_addresses_are_stable_under_reordering_additions_and_removals():
    s = vpn_settings()
    people = [person(f"p{i:02d}", line=i) for i in range(30)]
    first = wp.plan_vpn(people, s)
    assert not first.problems
    state = wp.state_of(first, {})
    shuffled = people[:]
    random.Random(4).shuffle(shuffled)
    kept = [p for p in shuffled if p.id not in ("p03", "p17")] + [person("zz-new", line=99), person("aa-new", line=98)]
    second = wp.plan_vpn(kept, s, previous=state)
    before, after = addresses(first), addresses(second)
    for pid in after:
        if pid in before:
            assert after[pid] == before[pid], pid
    assert len(set(after.values())) == len(after)
    assert "10.100.0.1" not in after.values()  # the gateway's own address


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 59), unique=True, min_size=1, max_size=40),
       st.lists(st.integers(0, 59), unique=True, max_size=40), st.randoms())
def test_address_stability_property(first_ids, second_ids, rnd):
    s = vpn_settings()
    one = wp.plan_vpn([person(f"u{i}") for i in first_ids], s)
    second = [person(f"u{i}") for i in second_ids]
    rnd.shuffle(second)
    two = wp.plan_vpn(second, s, previous=wp.state_of(one, {}))
    a, b = addresses(one), addresses(two)
    assert all(b[pid] == a[pid] for pid in b if pid in a)
    assert len(set(b.values())) == len(b)
    assert all(ipaddress.ip_address(v) in ipaddress.ip_network("10.100.0.0/24") for v in b.values())


def test_a_returning_person_gets_the_old_address_back():
    s = vpn_settings()
    one = wp.plan_vpn([person("a"), person("b"), person("c")], s)
    two = wp.plan_vpn([person("a"), person("c"), person("d")], s, previous=wp.state_of(one, {}))
    assert "b" in two.retired and two.people["d"].address != one.people["b"].address
    three = wp.plan_vpn([person("a"), person("b"), person("c"), person("d")], s, previous=wp.state_of(two, {}))
    assert three.people["b"].address == one.people["b"].address


def test_pool_exhaustion_names_how_many_do_not_fit():
    s = vpn_settings("10.100.0.0/29")  # 6 hosts, one for the gateway: room for 5
    plan = wp.plan_vpn([person(f"p{i}") for i in range(8)], s)
    assert plan.problems and not plan.people
    assert "3 of 8" in plan.problems[0].message and "has room for 5" in plan.problems[0].message


def test_over_capacity_is_an_error_naming_the_shortfall():
    s = vpn_settings("10.100.0.0/16", {
        "a": {"wireguard_gateway_endpoint": "a", "wireguard_gateway_pool": "10.100.0.0/24",
              "wireguard_gateway_max_peers": 3},
        "b": {"wireguard_gateway_endpoint": "b", "wireguard_gateway_pool": "10.100.1.0/24",
              "wireguard_gateway_max_peers": 4}})
    assert not s.problems
    plan = wp.plan_vpn([person(f"p{i}") for i in range(10)], s)
    assert len(plan.problems) == 1
    assert plan.problems[0].field == "wireguard_gateway_max_peers"
    assert "3 of 10" in plan.problems[0].message
    fits = wp.plan_vpn([person(f"p{i}") for i in range(7)], s)
    assert not fits.problems
    by_gw = {g: len(fits.on(g)) for g in ("a", "b")}
    assert by_gw == {"a": 3, "b": 4}
    for p in fits.people.values():
        pool = s.gateways[p.gateway].pool
        assert ipaddress.ip_address(p.address) in pool


def test_licences_limit():
    s = vpn_settings(teleshift_vpn_licences=2)
    plan = wp.plan_vpn([person("a"), person("b"), person("c")], s)
    assert any(p.field == "teleshift_vpn_licences" and "1 do not fit" in p.message for p in plan.problems)


def test_plan_for_5000_people_is_fast_and_groups_services():
    people = [p for p in generate_people(5000, seed=3)]
    people = [Person(**{**p.__dict__, "needs": frozenset({"vpn"}), "active": True}) for p in people]
    s = vpn_settings("10.100.0.0/16", {
        "a": {"wireguard_gateway_endpoint": "a", "wireguard_gateway_pool": "10.100.0.0/18",
              "wireguard_gateway_max_peers": 3000},
        "b": {"wireguard_gateway_endpoint": "b", "wireguard_gateway_pool": "10.100.64.0/18",
              "wireguard_gateway_max_peers": 3000}})
    start = time.perf_counter()
    plan = wp.plan_vpn(people, s)
    elapsed = time.perf_counter() - start
    assert not plan.problems and len(plan.people) == 5000
    assert elapsed < 1.0, elapsed
    split = {}
    for p in plan.people.values():
        split.setdefault(p.service, set()).add(p.gateway)
    assert sum(1 for gws in split.values() if len(gws) == 1) >= len(split) - 2


def test_service_access_uses_policy_default_and_common_networks():
    s = vpn_settings(teleshift_vpn_default_networks=["10.89.251.20/32"],
                     teleshift_vpn_common_networks=["10.89.251.53/32"])
    services = {"rsa": {"networks": ["10.89.251.30/32"]}, "culture": {}}
    plan = wp.plan_vpn([person("a", "rsa"), person("b", "culture")], s, services)
    keys = {"a": key(1), "b": key(2)}
    sl = wp.gateway_slice(plan, s.gateways["gw1"], services, s, keys)
    access = {a["service"]: a for a in sl["access"]}
    assert access["rsa"]["networks"] == ["10.89.251.30/32", "10.89.251.53/32"]
    assert access["culture"]["networks"] == ["10.89.251.20/32", "10.89.251.53/32"]
    assert access["rsa"]["addresses"] == plan.people["a"].address  # nftables set elements, as text
    expected = [{"id": "a", "public_key": key(1), "allowed_ips": [f"{plan.people['a'].address}/32"]},
                {"id": "b", "public_key": key(2), "allowed_ips": [f"{plan.people['b'].address}/32"]}]
    assert wgm.parse_peer_lines(sl["peers"]) == expected
    assert wgm.make_peers(sl["peers"]) == wgm.make_peers(expected)


def test_ipv6_addresses_when_a_v6_pool_is_set():
    s = vpn_settings(teleshift_vpn_pool6="fd00:100::/64")
    plan = wp.plan_vpn([person("a"), person("b")], s)
    assert plan.people["a"].address6 and plan.people["a"].address6 != s.gateways["gw1"].address6
    assert plan.people["a"].allowed_ips()[1].endswith("/128")


# ---------------------------------------------------------------------------------------- keys

def test_public_key_matches_rfc7748_vector():
    private = base64.b64encode(bytes.fromhex(
        "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")).decode()
    public = base64.b64encode(bytes.fromhex(
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")).decode()
    assert wp.public_key_of(private) == public


def test_client_keys_are_kept_and_rotated_only_on_request(tmp_path):
    ids = ["amartin", "blefevre"]
    first, new = wp.client_keys(ids, tmp_path, write=True)
    assert new == ids and all(wgm.valid_key(k) for k in first.values())
    path = tmp_path / "amartin" / "vpn" / "private.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again, new = wp.client_keys(ids, tmp_path, write=True)
    assert again == first and new == []
    rotated, new = wp.client_keys(ids, tmp_path, rotate=["blefevre"], write=True)
    assert new == ["blefevre"] and rotated["amartin"] == first["amartin"] and rotated["blefevre"] != first["blefevre"]
    dry, new = wp.client_keys(["newcomer"], tmp_path, write=False)
    assert new == ["newcomer"] and not (tmp_path / "newcomer").exists()


# ------------------------------------------------------------------------------------ profiles

def test_client_profile_split_and_full_tunnel():
    s = vpn_settings(teleshift_vpn_dns=["192.0.2.53"])
    plan = wp.plan_vpn([person("a")], s)
    text = wp.render_client_config(plan.people["a"], key(9), s.gateways["gw1"], key(7), s)
    assert f"PrivateKey = {key(9)}" in text and f"PublicKey = {key(7)}" in text
    assert "AllowedIPs = 10.89.251.0/24, 192.0.2.53/32" in text  # DNS outside the internal networks added
    assert "DNS = 192.0.2.53" in text and "Endpoint = vpn.example.org:51820" in text
    assert f"Address = {plan.people['a'].address}/32" in text
    full = vpn_settings(teleshift_vpn_full_tunnel=True)
    text = wp.render_client_config(plan.people["a"], key(9), full.gateways["gw1"], key(7), full)
    assert "AllowedIPs = 0.0.0.0/0\n" in text


def test_kits_profile_and_qr_written_once(tmp_path):
    s = vpn_settings()
    plan = wp.plan_vpn([person("a"), person("b")], s)
    wp.client_keys(["a"], tmp_path)  # b has no key yet: skipped
    changed, skipped = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)})
    assert changed == ["a"] and skipped == ["b"]
    conf = tmp_path / "a" / "vpn" / "teleshift.conf"
    png = tmp_path / "a" / "vpn" / "teleshift.png"
    assert png.read_bytes().startswith(b"\x89PNG") and stat.S_IMODE(conf.stat().st_mode) == 0o600
    mtime = png.stat().st_mtime_ns
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)})
    assert changed == [] and png.stat().st_mtime_ns == mtime
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(8)})  # gateway re-keyed
    assert changed == ["a"] and key(8) in conf.read_text()


def test_known_public_keys_are_trusted_only_while_the_kits_hold_them(tmp_path, monkeypatch):
    first, _ = wp.client_keys(["a", "b"], tmp_path)
    (tmp_path / "b" / "vpn" / "private.key").unlink()
    reads = []
    real_public_key_of = wp.public_key_of
    monkeypatch.setattr(wp, "public_key_of", lambda private: (reads.append(private), real_public_key_of(private))[1])
    public, new = wp.client_keys(["a", "b"], tmp_path, known=dict(first))
    assert public["a"] == first["a"] and reads == []  # taken from the state, the kit's key not derived again
    assert new == ["b"] and public["b"] != first["b"]
    rotated, new = wp.client_keys(["a"], tmp_path, rotate=["a"], known=dict(first))
    assert new == ["a"] and rotated["a"] != first["a"]


def test_a_state_from_other_kits_does_not_override_the_kits_own_keys(tmp_path):
    # the state file (in git) was written by another controller, whose kits held other keys
    mine, _ = wp.client_keys(["a", "b"], tmp_path)
    theirs = {"a": key(1), "b": key(2)}
    public, new = wp.client_keys(["a", "b"], tmp_path, known=theirs)
    assert public == mine and new == []  # the gateway gets the keys the people's profiles hold
    (tmp_path / wp.KEYS_INDEX).unlink()  # kits from before the record: derived once, then recorded
    public, _ = wp.client_keys(["a", "b"], tmp_path, known=theirs)
    assert public == mine and json.loads((tmp_path / wp.KEYS_INDEX).read_text()) == mine
    dry_root = tmp_path / "dry"
    wp.client_keys(["c"], dry_root, write=False)
    assert not (dry_root / wp.KEYS_INDEX).exists()  # check mode writes nothing


def test_profile_index_skips_unchanged_people_without_reading_their_kit(tmp_path, monkeypatch):
    from ansible_collections.teleshift.toolkit.plugins.module_utils import kits

    s = vpn_settings()
    plan = wp.plan_vpn([person("a"), person("b")], s)
    public, _ = wp.client_keys(["a", "b"], tmp_path)
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)}, public_keys=public)
    assert changed == ["a", "b"] and (tmp_path / wp.PROFILE_INDEX).exists()
    assert stat.S_IMODE((tmp_path / wp.PROFILE_INDEX).stat().st_mode) == 0o600

    def no_read(*args):
        raise AssertionError("an unchanged person's kit was read")
    monkeypatch.setattr(kits, "read_kit_file", no_read)
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)}, public_keys=public)
    assert changed == []
    monkeypatch.undo()
    (tmp_path / "b" / "vpn" / "teleshift.svg").unlink()  # a lost file is redrawn
    rotated, _ = wp.client_keys(["a"], tmp_path, rotate=["a"])  # a new key pair for a
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)}, public_keys={**public, **rotated})
    assert changed == ["a"] and (tmp_path / "b" / "vpn" / "teleshift.svg").exists()
    private = (tmp_path / "a" / "vpn" / "private.key").read_text().strip()
    assert f"PrivateKey = {private}" in (tmp_path / "a" / "vpn" / "teleshift.conf").read_text()
    changed, _ = wp.write_client_kits(plan, s, tmp_path, {"gw1": key(8)}, public_keys={**public, **rotated})
    assert changed == ["a", "b"]  # the gateway was re-keyed: everyone's profile changes
    index = json.loads((tmp_path / wp.PROFILE_INDEX).read_text())
    assert all(value.count(":") == 1 for value in index.values())  # digest and folder time


def test_profiles_written_without_qr_codes_get_them_when_asked(tmp_path):
    s = vpn_settings()
    plan = wp.plan_vpn([person("a")], s)
    public, _ = wp.client_keys(["a"], tmp_path)
    wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)}, qr=False, public_keys=public)
    assert not (tmp_path / "a" / "vpn" / "teleshift.png").exists()
    wp.write_client_kits(plan, s, tmp_path, {"gw1": key(7)}, qr=True, public_keys=public)
    assert (tmp_path / "a" / "vpn" / "teleshift.png").exists() and (tmp_path / "a" / "vpn" / "teleshift.svg").exists()


# --------------------------------------------------------------------------- gateway data & diff

def test_gateway_config_round_trip_has_no_private_key():
    peers = wgm.make_peers([{"id": "b", "public_key": key(2), "allowed_ips": ["10.100.0.3"]},
                            {"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]}])
    text = wgm.render_gateway_config("wg0", ["10.100.0.1/24"], 51820, "/etc/wireguard/wg0.key", peers)
    assert "PrivateKey" not in text and "PostUp = wg set %i private-key /etc/wireguard/wg0.key" in text
    iface, parsed = wgm.parse_config(text)
    assert parsed == peers and [p.person for p in parsed] == ["a", "b"]
    assert iface["listenport"] == "51820"


def test_bad_peer_lines_are_refused():
    with pytest.raises(wgm.WireGuardError, match="peer line 2"):
        wgm.make_peers(f"a {key(1)} 10.100.0.2/32\nb {key(2)}\n")
    with pytest.raises(wgm.WireGuardError, match="mapping"):
        wgm.make_peers(["a"])


@pytest.mark.parametrize("items,message", [
    ([{"id": "a", "public_key": "nope", "allowed_ips": ["10.0.0.2/32"]}], "not a WireGuard key"),
    ([{"id": "a", "public_key": key(1), "allowed_ips": ["10.0.0.2/32"]},
      {"id": "a", "public_key": key(2), "allowed_ips": ["10.0.0.3/32"]}], "listed twice"),
    ([{"id": "a", "public_key": key(1), "allowed_ips": ["10.0.0.2/32"]},
      {"id": "b", "public_key": key(1), "allowed_ips": ["10.0.0.3/32"]}], "already used"),
    ([{"id": "a", "public_key": key(1), "allowed_ips": ["10.0.0.2/32"]},
      {"id": "b", "public_key": key(2), "allowed_ips": ["10.0.0.2"]}], "already given to a"),
])
def test_bad_peer_sets_are_refused(items, message):
    with pytest.raises(wgm.WireGuardError, match=message):
        wgm.make_peers(items)


def test_diff_names_people_and_orders_removals_first():
    desired = wgm.make_peers([
        {"id": "keep", "public_key": key(1), "allowed_ips": ["10.0.0.2/32"]},
        {"id": "moved", "public_key": key(2), "allowed_ips": ["10.0.0.9/32"]},
        {"id": "rekeyed", "public_key": key(30), "allowed_ips": ["10.0.0.4/32"]},
        {"id": "new", "public_key": key(4), "allowed_ips": ["10.0.0.5/32"]}])
    actual = {key(1): ("10.0.0.2/32",), key(2): ("10.0.0.3/32",), key(3): ("10.0.0.4/32",), key(5): ("10.0.0.6/32",)}
    known = {key(3): "rekeyed", key(5): "gone"}
    diff = wgm.diff_peers(desired, actual, known)
    assert diff.summary() == {"added": ["new"], "updated": ["moved", "rekeyed"], "removed": ["gone"]}
    calls = wgm.wg_set_batches("wg0", diff, batch=2)
    flat = [arg for call in calls for arg in call[2:]]
    assert flat.index("remove") < flat.index(key(30))  # old key frees 10.0.0.4 before the new one takes it
    assert all(call[:2] == ["set", "wg0"] for call in calls) and len(calls) == 3
    assert wgm.diff_peers(desired, {p.public_key: p.allowed_ips for p in desired}).empty


DUMP = textwrap.dedent("""\
    SECRETPRIVATEKEYSECRETPRIVATEKEYSECRETPRIV=\t{gw}\t51820\toff
    {a}\t(none)\t10.89.250.50:41000\t10.100.0.2/32\t1700000000\t100\t200\t25
    {b}\t(none)\t(none)\t10.100.0.3/32\t0\t0\t0\toff
    {c}\t(none)\t(none)\t(none)\t0\t0\t0\toff
    """).format(gw=key(9), a=key(1), b=key(2), c=key(3))


def test_dump_parsing_and_handshakes():
    dump = wgm.parse_dump(DUMP)
    assert dump.public_key == key(9) and dump.listen_port == 51820 and dump.has_private_key
    assert dump.peers[key(1)]["allowed_ips"] == ("10.100.0.2/32",) and dump.peers[key(3)]["allowed_ips"] == ()
    peers = {key(1): "amartin", key(2): "blefevre", key(4): "absent"}
    assert wgm.handshakes_from_dump(DUMP, peers, now=1700000100) == {"amartin": 1700000000, "blefevre": None}
    assert wgm.handshakes_from_dump(DUMP, peers, now=1700009999, fresh=180) == {"amartin": None, "blefevre": None}
    every = "\n".join("wg0\t" + line for line in DUMP.splitlines())
    assert wgm.handshakes_from_dump(every, peers, now=1700000100)["amartin"] == 1700000000


# ------------------------------------------------- the module, against an emulated `wg` command

EMULATED_WG = r'''#!{python}
"""Emulated `wg` (state in $WG_STATE): show IF dump, set IF ..., pubkey. Fails `set` when the
peer key given in $WG_FAIL_ON is configured."""
import base64, hashlib, json, os, sys
path = os.environ["WG_STATE"]
state = json.load(open(path)) if os.path.exists(path) else None
args = sys.argv[1:]
if args[:1] == ["pubkey"]:
    data = sys.stdin.read().strip().encode()
    print(base64.b64encode(hashlib.sha256(data).digest()).decode()); sys.exit(0)
if state is None:
    print("Unable to access interface: No such device", file=sys.stderr); sys.exit(1)
if args[:1] == ["show"]:
    public = (base64.b64encode(hashlib.sha256(state["private"].encode()).digest()).decode()
              if state["private"] else "(none)")
    print("\t".join([state["private"] or "(none)", public, str(state["port"]), "off"]))
    for k, ips in state["peers"].items():
        print("\t".join([k, "(none)", "(none)", ",".join(ips) or "(none)", "0", "0", "0", "off"]))
    sys.exit(0)
if args[:1] == ["set"]:
    rest = args[2:]
    i = 0
    while i < len(rest):
        if rest[i] == "private-key":
            state["private"] = open(rest[i + 1]).read().strip(); i += 2
        elif rest[i] == "listen-port":
            state["port"] = int(rest[i + 1]); i += 2
        elif rest[i] == "peer":
            k = rest[i + 1]
            if k == os.environ.get("WG_FAIL_ON") and rest[i + 2] != "remove":
                json.dump(state, open(path, "w")); print("emulated failure", file=sys.stderr); sys.exit(1)
            if rest[i + 2] == "remove":
                state["peers"].pop(k, None); i += 3
            else:
                state["peers"][k] = rest[i + 3].split(","); i += 4
        else:
            sys.exit(2)
    json.dump(state, open(path, "w")); sys.exit(0)
sys.exit(2)
'''


@pytest.fixture
def emulated_wg(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wg = bindir / "wg"
    wg.write_text(EMULATED_WG.replace("{python}", sys.executable))
    wg.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("WG_STATE", str(tmp_path / "state.json"))
    keyfile = tmp_path / "wg0.key"
    keyfile.write_text("GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=\n")
    return tmp_path


def run_module(tmp, peers, check=False, diff=True, **extra):
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
    from ansible_collections.teleshift.toolkit.plugins.modules import wireguard_peers

    args = {"interface": "wg0", "config_path": str(tmp / "wg0.conf"), "private_key_path": str(tmp / "wg0.key"),
            "addresses": ["10.100.0.1/24"], "listen_port": 51820, "peers": peers,
            "_ansible_check_mode": check, "_ansible_diff": diff, "_ansible_remote_tmp": str(tmp),
            "_ansible_keep_remote_files": False, **extra}
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    basic._ANSIBLE_PROFILE = "legacy"
    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        wireguard_peers.main()
    return json.loads(out.getvalue()), out.getvalue()


def live_state(tmp):
    return json.loads((tmp / "state.json").read_text())


def bring_up(tmp, peers=None):
    (tmp / "state.json").write_text(json.dumps({"private": "GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=",
                                                "public": "x", "port": 51820, "peers": peers or {}}))


def test_module_applies_live_reports_people_and_never_returns_the_private_key(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp, {key(5): ["10.100.0.9/32"]})
    (tmp / "wg0.conf").write_text(f"[Interface]\nListenPort = 51820\n\n[Peer]\n{wgm.PERSON_TAG} leaver\n"
                                  f"PublicKey = {key(5)}\nAllowedIPs = 10.100.0.9/32\n")
    peers = [{"id": "amartin", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]},
             {"id": "blefevre", "public_key": key(2), "allowed_ips": ["10.100.0.3/32"]}]
    result, raw = run_module(tmp, peers, check=True)
    assert result["changed"] and result["added"] == ["amartin", "blefevre"] and result["removed"] == ["leaver"]
    assert live_state(tmp)["peers"] == {key(5): ["10.100.0.9/32"]}  # check mode changed nothing
    assert "leaver" in result["diff"]["before"] and "amartin" in result["diff"]["after"]
    result, raw = run_module(tmp, peers)
    assert "GATEWAYPRIVATEKEY" not in raw
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"], key(2): ["10.100.0.3/32"]}
    conf = tmp / "wg0.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600 and "PrivateKey" not in conf.read_text()
    assert result["public_key"] and result["live"]
    again, _ = run_module(tmp, peers)
    assert not again["changed"] and again["added"] == again["removed"] == again["updated"] == []


@pytest.mark.parametrize("tables, reloaded", [("table inet teleshift_vpn\ntable inet teleshift_gate\n", False),
                                              ("table inet teleshift_gate\ntable ip teleshift_vpn\n", True)])
def test_the_firewall_is_loaded_again_only_when_the_kernel_lacks_its_table(emulated_wg, tables, reloaded):
    tmp = emulated_wg
    (tmp / "tables").write_text(tables)
    nft = tmp / "bin" / "nft"  # an emulated nft: `list tables` prints the kernel's tables, `-c -f`/`-f` succeed
    nft.write_text(f'#!/bin/sh\n[ "$*" = "list tables" ] && cat {tmp / "tables"}\nexit 0\n')
    nft.chmod(0o755)
    bring_up(tmp, {key(1): ["10.100.0.2/32"]})
    peers = [{"id": "amartin", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]}]
    fw_path = tmp / "vpn-firewall.nft"
    fw_path.write_text("table inet teleshift_vpn {}\n")
    run_module(tmp, peers, firewall="table inet teleshift_vpn {}\n", firewall_path=str(fw_path))
    result, _ = run_module(tmp, peers, firewall="table inet teleshift_vpn {}\n", firewall_path=str(fw_path))
    assert result["firewall_changed"] is reloaded and result["changed"] is reloaded


def gate_args(tmp, **extra):
    nft = tmp / "bin" / "nft"  # an emulated nft: an empty gate table, every load succeeds
    nft.write_text('#!/bin/sh\n[ "$1" = -j ] && echo \'{"nftables": []}\'\n[ "$2" = - ] && cat > /dev/null\nexit 0\n')
    nft.chmod(0o755)
    return {"people": "amartin dsi 10.100.0.2\nblefevre rh 10.100.0.3\n", "gated": ["10.89.251.0/24"],
            "settings": {"session": 600}, "config_dir": str(tmp / "gate"), "group": grp.getgrgid(os.getgid()).gr_name,
            **extra}


PAIR = [{"id": "amartin", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]},
        {"id": "blefevre", "public_key": key(2), "allowed_ips": ["10.100.0.3/32"]}]


def test_the_gate_is_applied_in_the_peers_call_and_its_secrets_never_come_back(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp)
    secrets = {"amartin": "JBSWY3DPEHPK3PXP", "blefevre": "KZXW6YTBOI2DQMZQ"}
    result, raw = run_module(tmp, PAIR, gate=gate_args(tmp, secrets=secrets))
    assert result["changed"] and result["added"] == ["amartin", "blefevre"], result
    assert result["gate"]["enrolled"] == 2 and result["gate"]["added"] == ["amartin", "blefevre"], result
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"], key(2): ["10.100.0.3/32"]}
    conf = json.loads((tmp / "gate" / "config.json").read_text())
    assert conf["people"]["amartin"]["secret"] == secrets["amartin"]
    assert stat.S_IMODE((tmp / "gate" / "config.json").stat().st_mode) == 0o640
    assert not any(s in raw for s in secrets.values()), raw  # not in the result, the invocation or the diff
    assert result["invocation"]["module_args"]["gate"].startswith("<")
    again, _ = run_module(tmp, PAIR, gate=gate_args(tmp))  # nothing sent: the host keeps its secrets
    assert not again["changed"] and again["gate"] == {**again["gate"], "changed": False, "enrolled": 2}


def test_a_gate_whose_setup_is_not_done_is_left_alone_and_said_so(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp)
    marker = tmp / "gate-marker"
    result, _ = run_module(tmp, PAIR, gate=gate_args(tmp, secrets={"amartin": "JBSWY3DPEHPK3PXP"},
                                                     setup_fingerprint="fp1", setup_marker=str(marker)))
    assert result["gate"]["setup_needed"] and not (tmp / "gate").exists(), result
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"], key(2): ["10.100.0.3/32"]}  # peers applied


def test_a_partial_gate_the_host_cannot_complete_fails_naming_who_after_the_peers(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp)
    result, raw = run_module(tmp, PAIR, gate=gate_args(tmp, secrets={"amartin": "JBSWY3DPEHPK3PXP"}, partial=True))
    assert result["failed"] and result["gate"]["missing_secrets"] == ["blefevre"], result
    assert "JBSWY3DPEHPK3PXP" not in raw and not (tmp / "gate" / "config.json").exists()
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"], key(2): ["10.100.0.3/32"]}


def test_module_restores_a_wiped_private_key_and_keeps_going(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp)
    state = live_state(tmp)
    state["private"] = ""
    (tmp / "state.json").write_text(json.dumps(state))
    result, raw = run_module(tmp, [{"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]}])
    assert result["interface_repaired"] and live_state(tmp)["private"].startswith("GATEWAYPRIVATE")
    assert "GATEWAYPRIVATEKEY" not in raw


def test_module_rolls_back_when_wg_set_fails(emulated_wg, monkeypatch):
    tmp = emulated_wg
    before = {key(1): ["10.100.0.2/32"], key(5): ["10.100.0.9/32"]}
    bring_up(tmp, before)
    monkeypatch.setenv("WG_FAIL_ON", key(3))
    peers = [{"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]},
             {"id": "b", "public_key": key(2), "allowed_ips": ["10.100.0.3/32"]},
             {"id": "c", "public_key": key(3), "allowed_ips": ["10.100.0.4/32"]}]
    monkeypatch.setattr(wgm, "wg_set_batches", wgm.wg_set_batches)
    result, _ = run_module(tmp, peers)
    assert result.get("failed") and "put back" in result["msg"]
    monkeypatch.delenv("WG_FAIL_ON")
    assert live_state(tmp)["peers"] == before
    assert not (tmp / "wg0.conf").exists()


def test_module_refuses_a_bad_peer_set_without_touching_anything(emulated_wg):
    tmp = emulated_wg
    bring_up(tmp, {key(1): ["10.100.0.2/32"]})
    result, _ = run_module(tmp, [{"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]},
                                 {"id": "b", "public_key": key(2), "allowed_ips": ["10.100.0.2/32"]}])
    assert result["failed"] and "nothing applied" in result["msg"]
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"]}


def test_module_with_interface_down_writes_only_the_file(emulated_wg):
    tmp = emulated_wg
    result, _ = run_module(tmp, [{"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]}])
    assert result["changed"] and not result["live"] and result["added"] == ["a"]
    _, peers = wgm.parse_config((tmp / "wg0.conf").read_text())
    assert [p.person for p in peers] == ["a"]


def test_module_applies_nothing_until_the_hosts_marker_holds_the_setup(emulated_wg):
    """The setup record lives on the host: a rebuilt host (no marker) or changed settings (another
    fingerprint) make the role set the host up before any peer is applied."""
    tmp = emulated_wg
    bring_up(tmp)
    marker = tmp / "setup" / "wireguard_gateway"
    peers = [{"id": "a", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]}]
    result, _ = run_module(tmp, peers, setup_fingerprint="abc", setup_marker=str(marker))
    assert result["setup_needed"] and not result["changed"] and live_state(tmp)["peers"] == {}
    marker.parent.mkdir()
    marker.write_text("old\n")
    result, _ = run_module(tmp, peers, setup_fingerprint="abc", setup_marker=str(marker))
    assert result["setup_needed"] and not (tmp / "wg0.conf").exists()
    marker.write_text("abc\n")
    result, _ = run_module(tmp, peers, setup_fingerprint="abc", setup_marker=str(marker))
    assert not result.get("setup_needed") and result["added"] == ["a"]
    assert live_state(tmp)["peers"] == {key(1): ["10.100.0.2/32"]}
