"""The second factor without hosts: TOTP (RFC 6238 vectors), the gate's decisions, its nftables text, the
plan's policy and slices, enrolment kits, the capability's status, plan and report rows, the helper's
allow-list (the portal's program loaded as a module, nft replaced)."""
from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import mfa, registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_capability import parse_status
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import parse_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import (
    enrol, gate_slices, load_mfa_settings, read_secrets, required, slice_digest)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()


def person(pid, service="dsi", needs=("vpn",), active=True, **kw):
    base = dict(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, priority="normal",
                needs=frozenset(needs), active=active, language="fr")
    fields = Person.__dataclass_fields__
    return Person(**{k: v for k, v in {**base, **kw}.items() if k in fields})


@pytest.mark.parametrize("at,code", [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"),
                                     (2000000000, "69279037"), (20000000000, "65353130")])
def test_totp_matches_the_rfc_6238_sha1_vectors(at, code):
    assert mfa.totp(RFC_SECRET, at, digits=8) == code
    assert mfa.totp(RFC_SECRET, at) == code[-6:]


def test_a_code_is_accepted_within_one_step_either_side_only():
    now = 1_700_000_000
    assert mfa.match_step(RFC_SECRET, mfa.totp(RFC_SECRET, now), now) == now // 30
    assert mfa.match_step(RFC_SECRET, mfa.totp(RFC_SECRET, now - 30), now) == now // 30 - 1
    assert mfa.match_step(RFC_SECRET, mfa.totp(RFC_SECRET, now + 30), now) == now // 30 + 1
    assert mfa.match_step(RFC_SECRET, mfa.totp(RFC_SECRET, now - 90), now) is None
    assert mfa.match_step(RFC_SECRET, "12345", now) is None and mfa.match_step(RFC_SECRET, "abcdef", now) is None


def test_wrong_codes_lock_out_and_a_right_code_is_then_refused():
    gate, now = mfa.Gate(max_failures=5, lockout=120, rate=100), 1_700_000_000
    results = [gate.check("amartin", RFC_SECRET, "000000", now + i)[0] for i in range(5)]
    assert results == ["refused"] * 4 + ["lockout"]
    assert gate.check("amartin", RFC_SECRET, mfa.totp(RFC_SECRET, now + 10), now + 10)[0] == "locked"
    later = now + 130  # the lock-out ended
    assert gate.check("amartin", RFC_SECRET, mfa.totp(RFC_SECRET, later), later)[0] == "opened"
    assert gate.check("blefevre", RFC_SECRET, "000000", now)[0] == "refused"  # others have their own count


def test_a_replayed_code_is_refused_and_counts_as_a_failure():
    gate, now = mfa.Gate(max_failures=2, rate=100), 1_700_000_000
    code = mfa.totp(RFC_SECRET, now)
    assert gate.check("amartin", RFC_SECRET, code, now)[0] == "opened"
    assert gate.check("amartin", RFC_SECRET, code, now + 1)[0] == "replayed"
    earlier = mfa.totp(RFC_SECRET, now - 30)  # an older step than the accepted one: a replay too
    assert gate.check("amartin", RFC_SECRET, earlier, now + 2)[0] == "lockout"


def test_attempts_beyond_the_rate_are_not_even_checked():
    gate, now = mfa.Gate(max_failures=100, rate=3, rate_window=60), 1_700_000_000
    assert [gate.check("x", RFC_SECRET, "000000", now)[0] for _ in range(3)] == ["refused"] * 3
    assert gate.check("x", RFC_SECRET, mfa.totp(RFC_SECRET, now), now)[0] == "rate-limited"
    assert gate.check("x", RFC_SECRET, mfa.totp(RFC_SECRET, now + 61), now + 61)[0] == "opened"


def test_the_gate_table_keeps_sessions_and_drops_what_is_neither_open_nor_exempt():
    text = mfa.nft_table(["10.100.0.0/16", "fd00:100::/64"], ["10.100.0.9"])
    assert "delete table" not in text and "flush set inet teleshift_gate open4" not in text  # sessions survive
    assert "add element inet teleshift_gate gated4 { 10.100.0.0/16 }" in text
    assert "add element inet teleshift_gate exempt4 { 10.100.0.9 }" in text
    assert "ip saddr @gated4 ip saddr != @exempt4 ip saddr != @open4 counter drop" in text
    assert "ip6 saddr @gated6" in text and "priority filter - 10" in text
    opening = mfa.nft_open(["10.100.0.2"], 36000)
    assert opening.splitlines() == ["add element inet teleshift_gate open4 { 10.100.0.2 }",
                                    "delete element inet teleshift_gate open4 { 10.100.0.2 }",
                                    "add element inet teleshift_gate open4 { 10.100.0.2 timeout 36000s }"]
    with pytest.raises(ValueError):
        mfa.nft_open(["10.100.0.2; flush ruleset"], 10)


def test_open_sets_are_read_from_nft_json():
    text = json.dumps({"nftables": [{"metainfo": {}}, {"set": {"name": "open4", "elem": [
        {"elem": {"val": "10.100.0.5", "timeout": 30, "expires": 29}}]}}, {"set": {"name": "gated4", "elem": [
            {"prefix": {"addr": "10.100.0.0", "len": 16}}]}}]})
    assert mfa.parse_open_sets(text) == {"10.100.0.5": 29}
    assert mfa.parse_open_sets("not json") == {}


def test_durations_and_the_otpauth_uri():
    assert mfa.duration("10h") == 36000 and mfa.duration("15m") == 900 and mfa.duration(45) == 45
    with pytest.raises(ValueError):
        mfa.duration("ten hours")
    uri = mfa.otpauth_uri("ABCDEF", "amartin", "Département")
    assert uri.startswith("otpauth://totp/D%C3%A9partement%3Aamartin?secret=ABCDEF&")
    assert "digits=6" in uri and "period=30" in uri and "issuer=D%C3%A9partement" in uri


def test_settings_name_every_bad_value():
    services = {"dsi": {}, "culture": {"mfa": {"exempt": "web mail only"}}, "rh": {"mfa": {"exempt": " "}},
                "ase": {"mfa": "optional"}}
    s = load_mfa_settings({"teleshift_mfa_enabled": True, "teleshift_mfa_session": "ten",
                           "teleshift_mfa_max_failures": 0, "teleshift_mfa_syslog": "nohostport"}, services)
    fields = sorted(p.field for p in s.problems)
    assert fields == ["teleshift_mfa_max_failures", "teleshift_mfa_session", "teleshift_mfa_syslog",
                      "teleshift_services.ase.mfa", "teleshift_services.rh.mfa"]
    assert s.exempt == {"culture": "web mail only"}
    found = load_settings({"teleshift_services": services}).problems
    assert sorted(p.field for p in found) == ["teleshift_services.ase.mfa", "teleshift_services.rh.mfa"]


@pytest.mark.parametrize("value, hint", [("false", "false"), ("Yes", "true"), ("1", None), (0, None)])
def test_a_boolean_setting_given_as_text_is_refused_with_the_way_to_pass_it(value, hint):
    # ansible-playbook -e teleshift_mfa_enabled=false gives the text "false": refused (a template reading
    # it as true elsewhere would split the decision), and the message shows the JSON form that works
    found = load_mfa_settings({"teleshift_mfa_enabled": value}, {"dsi": {}}).problems
    assert [p.field for p in found] == ["teleshift_mfa_enabled"]
    assert "expected true or false" in found[0].message
    assert (f"""-e '{{"teleshift_mfa_enabled": {hint}}}'""" in found[0].message) == (hint is not None)
    assert not load_mfa_settings({"teleshift_mfa_enabled": False}, {"dsi": {}}).problems


def test_policy_and_gate_slices():
    s = load_mfa_settings({"teleshift_mfa_enabled": True}, {"dsi": {}, "culture": {"mfa": {"exempt": "web"}}})
    people = {p.id: p for p in (person("amartin"), person("fmuller", "culture"), person("hroux", active=False),
                                person("gbrun", needs=("phone",)))}
    assert required(people["amartin"], s) and not required(people["fmuller"], s)
    assert not required(people["hroux"], s) and not required(people["gbrun"], s)
    entries = {"ts-gw1": {"networks": ["10.100.0.0/16"], "listen": ["10.100.0.1"], "people": {
        "amartin": ["10.100.0.2"], "fmuller": ["10.100.0.3"], "hroux": ["10.100.0.4"]}}}
    part = gate_slices(entries, people, s)["ts-gw1"]
    assert part["people"] == "amartin dsi 10.100.0.2" and part["exempt"] == "10.100.0.3"
    assert part["gated"] == ["10.100.0.0/16"] and part["listen"] == ["10.100.0.1"]
    assert part["settings"]["session"] == 36000 and json.loads(part["names"]) == {"amartin": ["Amartin", "fr"]}
    assert parse_people(part["people"]) == [("amartin", "dsi", ["10.100.0.2"])]
    with pytest.raises(ValueError):
        parse_people("amartin dsi")
    off = load_mfa_settings({}, {"dsi": {}})
    assert not required(people["amartin"], off)
    # the digest the playbooks compare to send a slice once per run: any change of the slice changes it
    digest = slice_digest(part)
    assert slice_digest(dict(reversed(list(part.items())))) == digest == slice_digest({**part, "digest": "x"})
    entries["ts-gw1"]["people"]["amartin"] = ["10.100.0.9"]
    moved = gate_slices(entries, people, s)["ts-gw1"]
    assert slice_digest(moved) != digest and slice_digest({**part, "revoke": ["amartin"]}) != digest


def test_enrolment_kits_are_made_once_and_rotated_on_demand(tmp_path):
    secrets, new = enrol(["amartin", "dnguyen"], str(tmp_path), "Org")
    assert sorted(new) == ["amartin", "dnguyen"] and len(mfa.secret_bytes(secrets["amartin"])) == 20
    kit = tmp_path / "amartin" / "mfa"
    assert (kit / "secret").stat().st_mode & 0o777 == 0o600 and (kit / "authenticator.png").exists()
    again, new = enrol(["amartin", "dnguyen"], str(tmp_path), "Org")
    assert again == secrets and new == []
    rotated, new = enrol(["amartin"], str(tmp_path), "Org", rotate=["amartin"])
    assert new == ["amartin"] and rotated["amartin"] != secrets["amartin"]
    assert read_secrets(["amartin", "nobody"], str(tmp_path)) == {"amartin": rotated["amartin"]}
    checked, new = enrol(["zz"], str(tmp_path), "Org", write=False)  # check mode writes nothing
    assert checked == {} and new == ["zz"] and not (tmp_path / "zz").exists()


def test_the_qr_code_scans_back_to_the_otpauth_uri(tmp_path):
    import struct
    import zlib

    import zxingcpp

    secrets, _ = enrol(["amartin"], str(tmp_path), "Org")
    png = (tmp_path / "amartin" / "mfa" / "authenticator.png").read_bytes()
    width, height = struct.unpack(">II", png[16:24])  # 1-bit grey, filter 0 on every row (qr.png)
    data = zlib.decompress(png[png.index(b"IDAT") + 4:png.index(b"IEND") - 8])
    row = (width + 7) // 8 + 1
    pixels = bytearray()
    for y in range(height):
        bits = "".join(f"{b:08b}" for b in data[y * row + 1:(y + 1) * row])[:width]
        pixels += bytes(255 if c == "1" else 0 for c in bits)
    image = memoryview(bytes(pixels)).cast("B", (height, width))
    found = [b.text for b in zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)]
    assert found == [mfa.otpauth_uri(secrets["amartin"], "amartin", "Org")]


GATE_TEXT = """== gate
{"counts": {"dsi": {"opened": 3, "lockout": 1}}, "gate": true, "people": {"amartin": {"addresses": ["10.100.0.2"],
 "service": "dsi", "open_seconds": 3700, "last_opened": "2026-03-16T08:00:00Z", "last_expires": "2026-03-16T18:00:00Z",
 "last_outside": "203.0.113.5:40000"}, "zzlock": {"addresses": ["10.100.0.9"], "service": "dsi",
 "locked_until": "2026-03-16T08:15:00Z"}}}
== desktop
amartin
"""


def test_status_facts_and_verdicts():
    facts = parse_status(GATE_TEXT)
    assert facts["desktop"] == {"amartin"} and facts["gate"]["counts"]["dsi"]["opened"] == 3
    cap = registry.get("mfa")

    class Inputs:
        all_vars = {"teleshift_mfa_enabled": True}
        source, now = "inv", 0
        settings = type("S", (), {"services": {"dsi": {}}})()

        def memo(self, key, build):
            return build()

    inputs = Inputs()
    status = cap.person_status(person("amartin"), "ts-gw1", {"gateway": "ts-gw1"}, facts, inputs)
    assert status.state == "ok" and status.verified is True
    assert status.facts["gate"] == "open, 1 h 01 min left"
    assert "from 203.0.113.5:40000, until 2026-03-16T18:00:00Z" in status.facts["last session"]
    locked = cap.person_status(person("zzlock"), "ts-gw1", {"gateway": "ts-gw1"}, facts, inputs)
    assert locked.state == "problem" and "locked out" in locked.problems[0]
    missing = cap.person_status(person("nobody"), "ts-gw1", {"gateway": "ts-gw1"}, facts, inputs)
    assert missing.verified is False and "not enrolled" in missing.problems[0]
    desk = cap.person_status(person("blefevre", needs=("desktop",)), "ts-desk1", {"desktop": "ts-desk1"},
                             parse_status("== desktop\namartin\n"), inputs)
    assert desk.verified is False and "no second-factor secret" in desk.problems[0]


def test_plan_and_report_show_who_is_exempt(tmp_path):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import build_inputs

    roster = tmp_path / "r.csv"
    roster.write_text("id,full_name,email,service,needs\namartin,A M,a@x.example,dsi,vpn\n"
                      "fmuller,F M,f@x.example,culture,vpn\nzz,Z Z,z@x.example,culture,phone\n", encoding="utf-8")
    inputs = build_inputs({"teleshift_roster_file": str(roster), "teleshift_mfa_enabled": True,
                           "teleshift_services": {"dsi": {}, "culture": {"mfa": {"exempt": "web mail only"}}}},
                          {"gw": {}}, {"vpn_gateways": ["gw"]}, tmp_path)
    cap = registry.get("mfa")
    checks = {(c.resource, c.host): c for c in cap.capacity(inputs, {})}
    assert checks[("second factor", "")].needed == 1
    assert checks[("exempt", "culture")].needed == 1 and "web mail only" in checks[("exempt", "culture")].note
    section = cap.report_section(inputs, lambda c, h: parse_status(GATE_TEXT))
    counts, exempt = section["tables"]
    assert counts["rows"] == [["dsi", "3", "0", "0", "1", "0", "0", "0"]]
    assert exempt["rows"] == [["culture", "web mail only", "1", "fmuller"]]
    assert cap.validate(inputs).warnings  # the exemption is said at every validate


def _gate_program():
    sys.modules["teleshift_mfa"] = mfa
    path = ROOT / "roles" / "mfa_gate" / "files" / "teleshift-gate"
    loader = importlib.machinery.SourceFileLoader("teleshift_gate_program", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_the_helper_opens_only_allow_listed_people_for_at_most_the_session(monkeypatch):
    program = _gate_program()
    sent = []
    monkeypatch.setattr(program, "nft", lambda text: (sent.append(text), (True, ""))[1])
    monkeypatch.setattr(program, "endpoint_of", lambda addresses: "203.0.113.5:4000")
    allow = {"people": {"amartin": ["10.100.0.2"]}, "session": 600}
    assert program.helper_answer({"op": "open", "person": "mallory", "seconds": 60}, allow)["ok"] is False
    assert program.helper_answer({"op": "flush", "person": "amartin"}, allow)["ok"] is False
    answer = program.helper_answer({"op": "open", "person": "amartin", "seconds": 99999}, allow)
    assert answer == {"ok": True, "error": "", "outside": "203.0.113.5:4000"}
    assert "10.100.0.2 timeout 600s" in sent[-1]  # capped at the session length
    assert program.helper_answer({"op": "close", "person": "amartin"}, allow)["ok"] is True
    assert "delete element inet teleshift_gate open4 { 10.100.0.2 }" in sent[-1]


def test_the_outside_address_is_read_from_wg_output_as_wireguard_tools_prints_it():
    program = _gate_program()
    # as `wg show all ...` printed them on the lab gateway: the interface name on the first endpoint line only
    ips = ("wg0\tGtDOEdzYIHoqAR5piej2HNd3rSy+9juYIxukEJjS4B0=\t10.100.0.5/32\n"
           "wg0\t/MK0Jdwf5uOVBGVOsTGAUj7uXCc/Jo3qDgo8iQX2P3Y=\t10.100.0.2/32 fd00:100::2/128\n"
           "wg0\t5unvsCzv3kuR9l8xAv7y3WaOmzEhoSuwR+XpBSLNhEI=\t10.100.0.3/32\n")
    eps = ("wg0\t/MK0Jdwf5uOVBGVOsTGAUj7uXCc/Jo3qDgo8iQX2P3Y=\t10.89.250.50:51000\n"
           "5unvsCzv3kuR9l8xAv7y3WaOmzEhoSuwR+XpBSLNhEI=\t10.89.250.50:43122\n"
           "GtDOEdzYIHoqAR5piej2HNd3rSy+9juYIxukEJjS4B0=\t(none)\n")
    assert program.endpoint_in(ips, eps, ["10.100.0.3", "10.101.0.3"]) == "10.89.250.50:43122"
    assert program.endpoint_in(ips, eps, ["fd00:100::2"]) == "10.89.250.50:51000"
    assert program.endpoint_in(ips, eps, ["10.100.0.5"]) == ""  # no handshake yet
    assert program.endpoint_in(ips, eps, ["10.100.0.9"]) == ""  # not a WireGuard peer (an OpenVPN address)


def test_the_log_keeps_only_the_retention(tmp_path):
    program = _gate_program()
    log = tmp_path / "connections.log"
    log.write_text(json.dumps({"time": "2001-01-01T00:00:00Z", "result": "opened"}) + "\n"
                   + json.dumps({"time": program.iso(__import__("time").time()), "result": "refused"}) + "\n")
    program.prune_log(str(log), 30)
    assert [json.loads(line)["result"] for line in log.read_text().splitlines()] == ["refused"]


def test_pam_exempt_groups_skip_exactly_the_code_line():
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(ROOT / "roles" / "xrdp_host" / "templates")),  # noqa: S701
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["bool"] = bool  # Ansible's filter, enough for true/false here
    text = env.get_template("pam-teleshift-mfa.j2").render(
        ansible_managed="managed", xrdp_host_mfa=True, xrdp_host_mfa_exempt_groups=["ts-culture", "ts-rh"],
        xrdp_host_mfa_dir="/var/lib/teleshift/mfa")
    lines = [line for line in text.splitlines() if line.startswith("auth")]
    assert lines == ["auth [success=2 default=ignore] pam_succeed_if.so quiet user ingroup ts-culture",
                     "auth [success=1 default=ignore] pam_succeed_if.so quiet user ingroup ts-rh",
                     "auth requisite pam_google_authenticator.so secret=/var/lib/teleshift/mfa/${USER} user=root "
                     "forward_pass"]
    off = env.get_template("pam-teleshift-mfa.j2").render(ansible_managed="m", xrdp_host_mfa=False,
                                                           xrdp_host_mfa_exempt_groups=[], xrdp_host_mfa_dir="/x")
    assert not [line for line in off.splitlines() if line.startswith("auth")]


def test_a_password_set_from_the_kit_must_be_changed_at_first_use():
    from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_accounts import (
        Account, apply_changes, diff_accounts, parse_databases)

    db = parse_databases("root:x:0:0:root:/root:/bin/bash\n", "root:*:19000:0:99999:7:::\n",
                         "root:x:0:\nteleshift:x:900:\ntsusers:x:901:\n", "root:*::\nteleshift:!::\ntsusers:!::\n")
    desired = [Account(login="zzdesk", name="Z", groups=("ts-rh",), shell="/bin/bash")]  # noqa: S604
    changes = diff_accounts(desired, db, "teleshift", "tsusers", "ts-", hashes={"zzdesk": "$6$s$h"})
    forced, _ = apply_changes(db, changes, desired, {"zzdesk": "$6$s$h"}, 20000, must_change=True)
    normal, _ = apply_changes(db, changes, desired, {"zzdesk": "$6$s$h"}, 20000)
    assert forced.shadows()["zzdesk"][2] == "0" and normal.shadows()["zzdesk"][2] == "20000"


def test_the_notice_explains_enrolment_and_the_sheet_carries_the_secret(tmp_path):
    sys.path.insert(0, str(ROOT / "scripts"))
    from teleshift_cli.kits import person_view, write_notices

    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    secrets, _ = enrol(["amartin"], str(tmp_path), "Org")
    write_kit_file(tmp_path, "amartin", "mfa", "summary.yml", "gate: https://10.100.0.1/\nsession: 10 h 00 min\n")
    view = person_view(person("amartin", language="en"), {"dsi": {"label": "IT"}})
    for merge in (False, True):
        write_notices([view], tmp_path, {"name": "Org", "hotline": "1", "merge": merge}, jobs=1)
        notice = (tmp_path / "amartin" / "notice" / "notice.html").read_text()
        sheet = tmp_path / "amartin" / "notice" / "credentials.html"
        assert "Second factor" in notice and "https://10.100.0.1/" in notice and "password immediately" in notice
        assert (secrets["amartin"] in notice) is merge and sheet.exists() is not merge
        if not merge:
            text = sheet.read_text()
            assert secrets["amartin"] in text and "data:image/svg+xml;base64," in text


def test_the_page_says_open_only_while_this_tunnel_address_is_in_the_set(monkeypatch, tmp_path):
    """The portal remembers sessions per person, but "open" is what the gate's set holds for the address
    asking: a revocation run that emptied the set, or tunnel addresses that changed since the code (a
    new gateway, a rotated key, an OpenVPN address added) read as closed, so a new code opens them."""
    program = _gate_program()
    conf = tmp_path / "gate.json"
    people = {"amartin": {"service": "dsi", "secret": "JBSWY3DPEHPK3PXP", "addresses": ["10.100.0.2"]}}
    conf.write_text(json.dumps({"people": people, "session": 600}))
    monkeypatch.setattr(program, "CONF", str(conf))
    monkeypatch.setattr(program, "STATE_DIR", str(tmp_path))
    in_set = {}  # the gate's nft set, as the privileged helper sees it

    def helper(request):
        addresses = people.get(request["person"], {}).get("addresses", [])
        if request["op"] == "open":
            in_set.update({a: request["seconds"] for a in addresses})
            return {"ok": True, "outside": "203.0.113.5:4000"}
        return {"ok": True, "live": {a: in_set[a] for a in addresses if a in in_set}}

    monkeypatch.setattr(program, "ask_helper", helper)
    portal = program.Portal()
    monkeypatch.setattr(portal, "log", lambda event: None)
    assert portal.submit("10.100.0.2", mfa.totp("JBSWY3DPEHPK3PXP"))[0] == "opened"
    answer = portal.status("10.100.0.2")
    assert answer["open"] is True and 590 <= answer["seconds_left"] <= 600
    in_set.clear()  # a revocation run closed the person's addresses behind the portal's back
    assert portal.status("10.100.0.2")["open"] is False
    in_set["10.100.0.2"] = 300
    people["amartin"]["addresses"] = ["10.100.0.2", "10.101.0.2"]  # an OpenVPN address joins
    conf.write_text(json.dumps({"people": people, "session": 600}))
    __import__("os").utime(conf, ns=(1, 1))  # a new modification time: the portal reads it again
    assert portal.status("10.100.0.2")["open"] is True and portal.status("10.101.0.2")["open"] is False


def _gate_module(tmp_path, monkeypatch, **args):
    """teleshift.toolkit.mfa_gate run in check mode on a host whose nft is a stand-in (an empty table)."""
    import contextlib
    import io

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes

    from ansible_collections.teleshift.toolkit.plugins.modules import mfa_gate

    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "nft").write_text("#!/bin/sh\necho '{\"nftables\": []}'\n")
    (bindir / "nft").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    full = {"people": "amartin dsi 10.100.0.2\nblefevre rh 10.100.0.3\n", "gated": ["10.89.251.0/24"],
            "settings": {"session": 600}, "config_dir": str(tmp_path / "gate"), "_ansible_check_mode": True,
            "_ansible_diff": False, "_ansible_remote_tmp": str(tmp_path), "_ansible_keep_remote_files": False, **args}
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": full}))
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        mfa_gate.main()
    return json.loads(out.getvalue())


def test_a_partial_run_asks_for_every_secret_when_the_host_holds_another_controllers(tmp_path, monkeypatch):
    import hashlib

    def digest(secret):
        return hashlib.sha256(secret.encode()).hexdigest()[:24]

    (tmp_path / "gate").mkdir()
    held = {"amartin": {"secret": "JBSWY3DPEHPK3PXP"}, "blefevre": {"secret": "OTHERCONTROLLERSSECRET"}}
    (tmp_path / "gate" / "config.json").write_text(json.dumps({"people": held}))
    kits = {"amartin": digest("JBSWY3DPEHPK3PXP"), "blefevre": digest("KZXW6YTBOI2DQMZQ")}
    result = _gate_module(tmp_path, monkeypatch, partial=True, digests=kits)
    assert result.get("failed") and result["missing_secrets"] == ["blefevre"], result
    assert "OTHERCONTROLLERSSECRET" not in json.dumps(result) and "KZXW" not in json.dumps(result)
    kits["blefevre"] = digest("OTHERCONTROLLERSSECRET")  # the kits and the host agree: nothing to send
    result = _gate_module(tmp_path, monkeypatch, partial=True, digests=kits)
    assert not result.get("failed") and result["enrolled"] == 2, result


def test_a_failed_gate_unit_sends_the_role_back_to_its_setup(tmp_path, monkeypatch):
    """A socket left without its address (its settings changed while it ran) makes the page fail on each
    start: the next run sees the failed unit and asks for the setup, which starts the units again."""
    marker = tmp_path / "marker"
    marker.write_text("fp1\n")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    systemctl = bindir / "systemctl"
    calls = tmp_path / "calls"
    systemctl.write_text(f"#!/bin/sh\necho \"$@\" >> {calls}\nexit $(cat {tmp_path / 'rc'})\n")
    systemctl.chmod(0o755)
    (tmp_path / "rc").write_text("1")  # no unit failed
    result = _gate_module(tmp_path, monkeypatch, setup_fingerprint="fp1", setup_marker=str(marker))
    assert not result.get("setup_needed") and "enrolled" in result, result
    assert "is-failed --quiet teleshift-gate.socket" in calls.read_text()
    (tmp_path / "rc").write_text("0")  # one unit failed
    result = _gate_module(tmp_path, monkeypatch, setup_fingerprint="fp1", setup_marker=str(marker))
    assert result["setup_needed"] and "failed" in result["msg"] and "enrolled" not in result, result


def test_placements_read_back_from_a_fresh_vpn_state_are_the_plans():
    """vpn.yml: mfa_plan takes the WireGuard placements from the state vpn_plan has just written instead
    of planning again; both give the same gate entries (without the flag the VPN is planned)."""
    from testlib import make_inputs, vpn_vars

    from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import state_of

    people = [person(f"p{i:02d}", service=("dsi", "ase")[i % 2]) for i in range(12)] + [person("left", active=False)]
    all_vars, hostvars = vpn_vars(gateways=("gw1", "gw2"), gateway_pools=("10.100.0.0/24", "10.100.1.0/24"))
    all_vars.update(teleshift_mfa_enabled=True, teleshift_kits_dir="kits")
    groups = {"vpn_gateways": ["gw1", "gw2"]}

    def inputs(states=None):
        return make_inputs(people, groups, hostvars, all_vars, states=states, services=("dsi", "ase"))

    vpn = registry.get("vpn")
    planned = inputs()
    written = state_of(vpn.plan(planned), {})
    expected = vpn.gate_entries(planned)
    assert sum(len(e["people"]) for e in expected.values()) == 12 and "left" not in str(expected)

    fresh = inputs({"vpn": written})
    fresh.fresh_states.add("vpn")
    assert vpn.gate_entries(fresh) == expected
    assert "vpn.plan" not in fresh._memo  # read back, not planned again

    other = inputs({"vpn": written})  # without the flag: planned (from that state, as vpn_plan does)
    assert vpn.gate_entries(other) == expected and "vpn.plan" in other._memo
