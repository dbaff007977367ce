"""Per-person verification (teleshift_cli/verify_people.py): what each person should have where, the
parsing of each host's one read, the matching, and how the results reach verify.json, the report and
`status`. No host: outputs are written here as the real commands print them."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from teleshift_cli import ops, verify_people as vp
from teleshift_cli.context import load_context
from teleshift_cli.report import load_verification, readiness, record_verification
from teleshift_cli.status import Env, Result, recorded_verification

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"

WG = "wg0\tKEYA=\t10.100.0.2/32\nwg0\tKEYB=\t10.100.0.9/32 fd00::9/128\nwg0\tKEYC=\t(none)\n"
ACCOUNTS = """\
root:x:0:0:root:/root:/bin/bash
dnguyen:x:1002:1002:Duc Nguyen:/home/dnguyen:/bin/bash
gbrun:x:1003:1003:Gaelle Brun:/home/gbrun:/bin/bash
cgarcia:x:1004:1010:Cecile Garcia:/home/cgarcia:/bin/bash
@@teleshift group
tsusers:x:1000:dnguyen,gbrun
ts-dsi:x:1001:dnguyen
ts-rsa:x:1010:
@@teleshift status
root L 2026-01-01 0 99999 7 -1
dnguyen P 2026-11-26 0 99999 7 -1
gbrun L 2026-11-26 0 99999 7 -1
cgarcia P 2026-11-26 0 99999 7 -1
"""
PBX = """\
/CFIM/1001                                        : 0612345678
/TSMOBILE/1001                                    : 0612345678
/TSHOLIDAY/2026-01-01                             : Jour de l'an
3 results found.
@@teleshift endpoints

 Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>
==========================================================================================

 Endpoint:  1001/1001                                            Unavailable   0 of inf
 Endpoint:  operator                                             Not in use    0 of inf

Objects found: 2
"""


def test_parse_allowed_ips_every_peer_with_or_without_addresses():
    assert vp.parse_allowed_ips(WG) == {"KEYA=": ["10.100.0.2/32"], "KEYB=": ["10.100.0.9/32", "fd00::9/128"],
                                        "KEYC=": []}


def test_parse_accounts_sections():
    users, groups, status = vp.parse_accounts(ACCOUNTS)
    assert users == {"root": "0", "dnguyen": "1002", "gbrun": "1003", "cgarcia": "1010"}
    assert groups["tsusers"] == ("1000", {"dnguyen", "gbrun"}) and groups["ts-rsa"] == ("1010", set())
    assert status == {"root": "L", "dnguyen": "P", "gbrun": "L", "cgarcia": "P"}


def test_parse_pbx_astdb_and_endpoints_without_the_header_line():
    astdb, endpoints = vp.parse_pbx(PBX)
    assert astdb["CFIM"] == {"1001": "0612345678"} and astdb["TSHOLIDAY"]["2026-01-01"] == "Jour de l'an"
    assert endpoints == {"1001", "operator"}
    assert vp.parse_endpoints("No objects found.\n") == set()


@pytest.mark.parametrize("want, ok, detail", [
    ({"public_key": "KEYA=", "address": "10.100.0.2"}, True, ""),
    ({"public_key": "KEYB=", "address": "fd00::9"}, True, ""),
    ({"public_key": "KEYZ=", "address": "10.100.0.2"}, False, "no peer with the person's public key on gw"),
    ({"public_key": "KEYA=", "address": "10.100.0.3"}, False, "allows 10.100.0.2/32, not 10.100.0.3/32"),
    ({"public_key": "KEYC=", "address": "10.100.0.4"}, False, "allows nothing"),
])
def test_match_vpn(want, ok, detail):
    got = vp.match_vpn(want, vp.parse_allowed_ips(WG), "gw")
    assert got[0] is ok and detail in got[1]


@pytest.mark.parametrize("login, groups, ok, detail", [
    ("dnguyen", ["tsusers", "ts-dsi"], True, ""),
    ("cgarcia", ["ts-rsa"], True, ""),  # member through the primary group counts
    ("cgarcia", ["tsusers", "ts-rsa"], False, "not in group(s) tsusers"),
    ("gbrun", ["tsusers"], False, "locked"),
    ("hroux", ["tsusers"], False, "no account hroux on d1"),
    ("dnguyen", ["ts-nowhere"], False, "ts-nowhere"),
])
def test_match_desktop(login, groups, ok, detail):
    got = vp.match_desktop({"login": login, "groups": groups}, vp.parse_accounts(ACCOUNTS), "d1")
    assert got[0] is ok and detail in got[1]


def test_match_phone_endpoint_and_every_forwarding_family():
    pbx = vp.parse_pbx(PBX)
    right = {"CFIM": "0612345678", "CFBS": None, "CFNA": None, "CFNADELAY": None, "TSMOBILE": "0612345678"}
    assert vp.match_phone({"extension": "1001", "astdb": right}, pbx, "p") == (True, "")
    ok, detail = vp.match_phone({"extension": "1001", "astdb": {**right, "CFIM": None, "CFBS": "0612345678"}},
                                pbx, "p")
    assert not ok and "CFBS is not set (expected 0612345678)" in detail and "CFIM is 0612345678" in detail
    assert vp.match_phone({"extension": "1002", "astdb": {}}, pbx, "p") == (False, "no endpoint 1002 on p")


def test_check_needs_every_host_right_and_says_why_not():
    exps = [vp.Expect("a", "phone", "p1", {"extension": "1001", "astdb": {}}),
            vp.Expect("a", "phone", "p2", {"extension": "1001", "astdb": {}}),
            vp.Expect("b", "vpn", "gw", {"public_key": "KEYA=", "address": "10.100.0.2"}),
            vp.Expect("c", "vpn", problem="no gateway and key planned (state/vpn.yml)")]
    outputs = {("phone", "p1"): (0, PBX, ""), ("phone", "p2"): (1, "", "Unable to connect to remote asterisk"),
               ("vpn", "gw"): (0, WG, "")}
    got = vp.check(exps, outputs)
    assert got["a"]["phone"] == {"ok": False, "detail": "cannot read p2: Unable to connect to remote asterisk"}
    assert got["b"]["vpn"] == {"ok": True, "detail": ""}
    assert got["c"]["vpn"] == {"ok": False, "detail": "no gateway and key planned (state/vpn.yml)"}


@pytest.fixture(scope="module")
def lab_ctx():
    ctx = load_context(None, LAB)
    return ctx, ops.load_states(ctx)


def test_expectations_of_the_lab_follow_the_roster_and_the_state(lab_ctx):
    ctx, states = lab_ctx
    exps = vp.expectations(ctx, states)
    by = {(e.person, e.capability): e for e in exps}
    for cap in vp.CAPS:
        assert {p for p, c in by if c == cap} == {p.id for p in ctx.roster.people if p.needs_(cap)}
    assert "hroux" not in {e.person for e in exps}  # inactive
    vpn = by[("fmuller", "vpn")]
    assert vpn.host == "ts-gw1" and vpn.want == {k: states["vpn"]["people"]["fmuller"][k]
                                                 for k in ("public_key", "address")}
    assert by[("dnguyen", "desktop")].want == {"login": "dnguyen", "groups": ["tsusers", "ts-dsi"]}
    # the playbook's own compile: cgarcia forwards on no answer after 15 s to her mobile
    phone = by[("cgarcia", "phone")].want
    assert phone["extension"] == "1003" and phone["astdb"]["CFNA"] == phone["astdb"]["TSMOBILE"] == "0761234567"
    assert phone["astdb"]["CFNADELAY"] == "15" and phone["astdb"]["CFIM"] is None
    # a person the VPN plan does not know is not verified, with the reason
    bare = vp.expectations(ctx, {**states, "vpn": {}})
    assert next(e for e in bare if e.person == "fmuller").problem.startswith("no gateway")


class Hosts:
    """Answers each read as the lab's hosts would once converged (built from the expectations)."""

    def __init__(self, exps):
        self.calls = []
        peers = [f"wg0\t{e.want['public_key']}\t{e.want['address']}/32" for e in exps if e.capability == "vpn"]
        desk = [e.want for e in exps if e.capability == "desktop"]
        groups = sorted({g for w in desk for g in w["groups"]})
        phones = [e.want for e in exps if e.capability == "phone"]
        self.text = {
            "vpn": "\n".join(peers) + "\n",
            "desktop": "".join(f"{w['login']}:x:{2000 + i}:{2000 + i}::/home/{w['login']}:/bin/bash\n"
                               for i, w in enumerate(desk)) + "@@teleshift group\n"
                       + "".join(f"{g}:x:{3000 + i}:" + ",".join(w["login"] for w in desk if g in w["groups"]) + "\n"
                                 for i, g in enumerate(groups))
                       + "@@teleshift status\n" + "".join(f"{w['login']} P 2026-01-01\n" for w in desk),
            "phone": "".join(f"/{fam}/{w['extension']} : {v}\n" for w in phones for fam, v in w["astdb"].items() if v)
                     + "@@teleshift endpoints\n" + "".join(f" Endpoint:  {w['extension']}/{w['extension']}  Unavailable\n"
                                                          for w in phones),
        }

    def run(self, host, argv):
        self.calls.append((host, argv))
        cap = next(c for c, a in vp.READS.items() if a == argv)
        return Result(0, self.text[cap])


def test_verify_reads_each_host_once_and_never_dumps_keys(lab_ctx):
    ctx, states = lab_ctx
    hosts = Hosts(vp.expectations(ctx, states))
    results = vp.verify(ctx, states, hosts)
    assert sorted(h for h, _ in hosts.calls) == ["ts-desk1", "ts-gw1", "ts-pbx1"]
    assert not any("dump" in " ".join(argv) or "private" in " ".join(argv) for _, argv in hosts.calls)
    assert all(r["ok"] for caps in results.values() for r in caps.values()), results
    # the peer removed by hand on the gateway: that person only
    key = states["vpn"]["people"]["fmuller"]["public_key"]
    hosts.text["vpn"] = "\n".join(line for line in hosts.text["vpn"].splitlines() if key not in line)
    results = vp.verify(ctx, states, hosts)
    assert results["fmuller"]["vpn"] == {"ok": False, "detail": "no peer with the person's public key on ts-gw1"}
    assert [(p, c) for p, caps in results.items() for c, r in caps.items() if not r["ok"]] == [("fmuller", "vpn")]


def test_results_reach_verify_json_the_report_and_status(lab_ctx, tmp_path):
    ctx, states = lab_ctx
    path = tmp_path / "verify.json"
    record_verification(path, person="gone", capability="vpn", ok=True)  # an earlier run's person
    record_verification(path, host="ts-gw1", check="wg", ok=True)
    results = {"fmuller": {"vpn": {"ok": False, "detail": "no peer with the person's public key on ts-gw1"}},
               "amartin": {"vpn": {"ok": True, "detail": ""}, "phone": {"ok": True, "detail": ""}}}
    record_verification(path, people=results)
    data = load_verification(path)
    assert data["people"] == {"fmuller": {"vpn": False}, "amartin": {"vpn": True, "phone": True}}
    assert data["people_problems"] == {"fmuller": {"vpn": "no peer with the person's public key on ts-gw1"}}
    assert data["hosts"]["ts-gw1"]["ok"]  # host checks are kept
    people = ctx.roster.active()
    enabled = {cap: {p.id for p in people if cap in p.needs} for cap in vp.CAPS}
    _, per_cap = readiness(people, enabled, data, ctx.settings.services)
    assert per_cap["vpn"]["verified"] == 1 and per_cap["vpn"]["needed"] == 4
    inventory = SimpleNamespace(all_vars={"teleshift_verify_file": str(path)}, source=str(LAB / "hosts.yml"))
    env = Env(ctx=SimpleNamespace(inventory=inventory), states={}, kits_root=None, runner=None)
    shown = recorded_verification(env, next(p for p in people if p.id == "fmuller"))
    assert shown["vpn"].startswith("NOT verified (") and shown["vpn"].endswith("no peer with the person's "
                                                                              "public key on ts-gw1")
    assert recorded_verification(env, next(p for p in people if p.id == "amartin"))["phone"].startswith("verified (")
    # the lab's own inventory points status and report at the verify step's file
    assert ctx.inventory.all_vars["teleshift_verify_file"] == "../../build/verify.json"
    assert json.loads(path.read_text())["version"] == 1
