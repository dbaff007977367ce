"""Per-person verification: each capability's one read of a host, parsed and judged by the capability itself
(plugins/module_utils/<name>_capability.py), verify_people reading every host once, and how the results
reach verify.json, the report and `status`. No host: outputs are written here as the real commands print them."""
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from testlib import make_inputs

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

from teleshift_cli import verify_people as vp
from teleshift_cli.context import load_context
from teleshift_cli.report import load_verification, readiness, record_verification
from teleshift_cli.status import Env, Result, recorded_verification

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"

WG = "== allowed-ips\nwg0\tKEYA=\t10.100.0.2/32\nwg0\tKEYB=\t10.100.0.9/32 fd00::9/128\nwg0\tKEYC=\t(none)\n"
ACCOUNTS = """\
== passwd
root:x:0:0:root:/root:/bin/bash
dnguyen:x:1002:1002:Duc Nguyen:/home/dnguyen:/bin/bash
gbrun:x:1003:1003:Gaelle Brun:/home/gbrun:/bin/bash
cgarcia:x:1004:1010:Cecile Garcia:/home/cgarcia:/bin/bash
== group
tsusers:x:1000:dnguyen,gbrun
ts-dsi:x:1001:dnguyen
ts-rsa:x:1010:
== status
root L 2026-01-01 0 99999 7 -1
dnguyen P 2026-11-26 0 99999 7 -1
gbrun L 2026-11-26 0 99999 7 -1
cgarcia P 2026-11-26 0 99999 7 -1
== ps
"""
PBX = """\
== database
/CFIM/1001                                        : 0612345678
/TSMOBILE/1001                                    : 0612345678
/TSHOLIDAY/2026-01-01                             : Jour de l'an
3 results found.
== contacts
== endpoints

 Endpoint:  <Endpoint/CID.....................................>  <State.....>  <Channels.>
==========================================================================================

 Endpoint:  1001/1001                                            Unavailable   0 of inf
 Endpoint:  operator                                             Not in use    0 of inf

Objects found: 2
"""


def cap(name):
    return registry.get(name)


def person(pid="dnguyen", service="dsi", **kw):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, **kw)


def test_parsers_read_every_section():
    assert cap("vpn").parse_host(WG)["KEYB="]["allowed_ips"] == ["10.100.0.9/32", "fd00::9/128"]
    assert cap("vpn").parse_host(WG)["KEYC="]["allowed_ips"] == ["(none)"]
    desk = cap("desktop").parse_host(ACCOUNTS)
    assert desk["users"] == {"root": "0", "dnguyen": "1002", "gbrun": "1003", "cgarcia": "1010"}
    assert desk["groups"]["tsusers"] == ("1000", {"dnguyen", "gbrun"}) and desk["groups"]["ts-rsa"] == ("1010", set())
    assert desk["status"] == {"root": "L", "dnguyen": "P", "gbrun": "L", "cgarcia": "P"}
    pbx = cap("phone").parse_host(PBX)
    assert pbx["astdb"]["CFIM"] == {"1001": "0612345678"} and pbx["astdb"]["TSHOLIDAY"]["2026-01-01"] == "Jour de l'an"
    assert pbx["endpoints"] == {"1001", "operator"}  # not the header line


@pytest.mark.parametrize("entry, ok, detail", [
    ({"public_key": "KEYA=", "address": "10.100.0.2"}, True, ""),
    ({"public_key": "KEYB=", "address": "10.100.0.9", "address6": "fd00::9"}, True, ""),
    ({"public_key": "KEYZ=", "address": "10.100.0.2"}, False, "no peer with the person's public key on gw"),
    ({"public_key": "KEYA=", "address": "10.100.0.3"}, False, "allows 10.100.0.2/32, not 10.100.0.3/32"),
])
def test_vpn_verdict(entry, ok, detail):
    status = cap("vpn").person_status(person(), "gw", entry, cap("vpn").parse_host(WG), None)
    assert status.verified is ok and (detail in " ".join(status.problems) if detail else True)


@pytest.mark.parametrize("login, service, ok, detail", [
    ("dnguyen", "dsi", True, ""),
    ("cgarcia", "rsa", False, "not in group(s) tsusers"),  # the service group through her primary group counts
    ("gbrun", "dsi", False, "locked"),
    ("hroux", "dsi", False, "no account hroux on d1"),
    ("dnguyen", "nowhere", False, "ts-nowhere"),
])
def test_desktop_verdict(login, service, ok, detail):
    inputs = make_inputs([], {"desktop_hosts": ["d1"]})
    status = cap("desktop").person_status(person(login, service), "d1", {"login": login},
                                          cap("desktop").parse_host(ACCOUNTS), inputs)
    assert status.verified is ok and detail in " ".join(status.problems)


def test_phone_verdict_needs_the_endpoint_and_the_compiled_forwarding():
    amartin = person("amartin", "rsa", extension="1001", forward_to="+33612345678", forward_mode="always",
                     needs=frozenset({"phone"}))
    inputs = make_inputs([amartin], {"pbx_hosts": ["p"]}, {"p": {"asterisk_pbx_trunk": {"host": "10.0.0.1"}}})
    pbx = cap("phone").parse_host(PBX)
    assert cap("phone").person_status(amartin, "p", {}, pbx, inputs).verified is True
    busy = amartin.__class__(**{**amartin.__dict__, "forward_mode": "busy"})
    inputs = make_inputs([busy], {"pbx_hosts": ["p"]}, {"p": {"asterisk_pbx_trunk": {"host": "10.0.0.1"}}})
    status = cap("phone").person_status(busy, "p", {}, pbx, inputs)
    assert status.verified is False and any("CFBS is not set" in p for p in status.problems)
    other = amartin.__class__(**{**amartin.__dict__, "extension": "1002"})
    status = cap("phone").person_status(other, "p", {}, pbx, inputs)
    assert "no endpoint 1002 on p" in status.problems


class Hosts:
    """Answers each capability's one read as converged lab hosts would, from the roster and the states."""

    def __init__(self, ctx):
        self.calls = []
        inputs = ctx.inputs
        vpn = (inputs.state("vpn").get("people") or {})
        desk = {pid: e for pid, e in (inputs.state("desktop").get("people") or {}).items()
                if e.get("status") == "active"}
        from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import service_group

        service = {p.id: p.service for p in inputs.roster.people}
        groups = {"tsusers": set(desk)}
        for pid in desk:
            groups.setdefault(service_group("ts-", service[pid]), set()).add(pid)
        ovpn = (inputs.state("openvpn").get("people") or {})
        astdb = cap("phone").expected_astdb(inputs, "ts-pbx1")
        phones = [p for p in inputs.roster.people if cap("phone").wants(p)]
        import json

        mfa = {pid: {"service": service[pid]} for pid in (inputs.state("mfa").get("people") or {})}
        self.text = {
            "mfa": "== gate\n" + json.dumps({"people": mfa, "counts": {}}) + "\n== desktop\n" + "".join(
                f"{pid}\n" for pid in mfa),
            "vpn": "== allowed-ips\n" + "".join(f"wg0\t{e['public_key']}\t{e['address']}/32\n" for e in vpn.values()),
            "openvpn": "== status\n== ccd\n" + "".join(f"{pid}\t{e['address']}\n" for pid, e in ovpn.items()),
            "desktop": "== passwd\n" + "".join(f"{pid}:x:{2000 + i}:{2000 + i}::/home/{pid}:/bin/bash\n"
                                               for i, pid in enumerate(desk))
                       + "== group\n" + "".join(f"{g}:x:{3000 + i}:{','.join(sorted(m))}\n"
                                                for i, (g, m) in enumerate(sorted(groups.items())))
                       + "== status\n" + "".join(f"{pid} P 2026-01-01\n" for pid in desk),
            "phone": "== database\n" + "".join(f"/{fam}/{key} : {value}\n" for fam, keys in astdb.items()
                                               for key, value in keys.items())
                     + "== endpoints\n" + "".join(f" Endpoint:  {p.extension}/{p.extension}  Unavailable\n"
                                                 for p in phones),
            "video": json.dumps({"rooms": {r: {"participants": 0} for r in cap("video").plan(inputs).rooms}}),
        }

    def run(self, host, argv):
        self.calls.append((host, argv))
        name = next(c.name for c in registry.capabilities() if c.host_query() == argv)
        return Result(0, self.text[name])


@pytest.fixture(scope="module")
def lab_ctx():
    ctx = load_context(None, LAB)
    if not ctx.inputs.state("vpn").get("people"):
        pytest.skip("the lab's state/vpn.yml has no people")
    return ctx


def test_verify_reads_each_host_once_and_never_dumps_keys(lab_ctx):
    hosts = Hosts(lab_ctx)
    results = vp.verify(lab_ctx, hosts)
    # once per capability and host (the second factor reads the gateway and the session host too; OpenVPN its gateway)
    assert sorted(h for h, _ in hosts.calls) == ["ts-desk1", "ts-desk1", "ts-gw1", "ts-gw1", "ts-gw1", "ts-pbx1",
                                                 "ts-video1"]
    assert len({(h, " ".join(argv)) for h, argv in hosts.calls}) == len(hosts.calls)
    assert not any("dump" in " ".join(argv) or "private" in " ".join(argv) for _, argv in hosts.calls)
    assert all(r["ok"] for caps in results.values() for r in caps.values()), results
    wanted = {(p.id, c.name) for c in vp.capabilities(lab_ctx.inputs) for p in lab_ctx.roster.people if c.wants(p)}
    assert {(pid, c) for pid, caps in results.items() for c in caps} == wanted
    assert "hroux" not in results  # inactive
    # the peer removed by hand on the gateway: that person only
    key = lab_ctx.inputs.state("vpn")["people"]["fmuller"]["public_key"]
    hosts.text["vpn"] = "\n".join(line for line in hosts.text["vpn"].splitlines() if key not in line)
    results = vp.verify(lab_ctx, hosts)
    assert results["fmuller"]["vpn"] == {"ok": False, "detail": "no peer with the person's public key on ts-gw1"}
    assert [(p, c) for p, caps in results.items() for c, r in caps.items() if not r["ok"]] == [("fmuller", "vpn")]


def test_a_host_that_cannot_answer_fails_its_people_with_the_reason(lab_ctx):
    class Down(Hosts):
        def run(self, host, argv):
            if host == "ts-pbx1":
                return Result(1, "", "Unable to connect to remote asterisk")
            return super().run(host, argv)
    results = vp.verify(lab_ctx, Down(lab_ctx))
    assert results["amartin"]["phone"] == {"ok": False, "detail": "cannot read ts-pbx1: Unable to connect to remote "
                                                                  "asterisk"}
    assert results["amartin"]["vpn"]["ok"]


def test_results_reach_verify_json_the_report_and_status(lab_ctx, tmp_path):
    ctx = lab_ctx
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
    enabled = {c.name: {p.id for p in people if c.wants(p)} for c in registry.capabilities()}
    _, per_cap = readiness(people, enabled, data, ctx.settings.services)
    assert per_cap["vpn"]["verified"] == 1 and per_cap["vpn"]["needed"] == 4
    shown_ctx = SimpleNamespace(inputs=make_inputs([], all_vars={"teleshift_verify_file": str(path)}))
    env = Env(ctx=shown_ctx, runner=None)
    shown = recorded_verification(env, next(p for p in people if p.id == "fmuller"))
    assert shown["vpn"].startswith("NOT verified (") and shown["vpn"].endswith("no peer with the person's "
                                                                              "public key on ts-gw1")
    assert recorded_verification(env, next(p for p in people if p.id == "amartin"))["phone"].startswith("verified (")
    # the lab's own inventory points status and report at the verify step's file
    assert ctx.inventory.all_vars["teleshift_verify_file"] == "../../build/verify.json"
    assert json.loads(path.read_text())["version"] == 1


def test_status_falls_back_to_the_kits_root_verify_file(lab_ctx, tmp_path):
    """Without teleshift_verify_file, status reads <kits root>/verify.json (this path once raised a NameError
    that the catch-all turned into "no result recorded")."""
    person = next(p for p in lab_ctx.roster.active() if p.id == "amartin")
    record_verification(tmp_path / "verify.json", people={"amartin": {"vpn": {"ok": True, "detail": ""}}})
    env = Env(ctx=SimpleNamespace(inputs=make_inputs([], all_vars={})), runner=None, kits_root=str(tmp_path))
    assert recorded_verification(env, person)["vpn"].startswith("verified (")
