"""Telework stations (laptops): the laptops file, the assignment of laptops to a wave's people and its
changes (state/laptops.yml), each laptop's files from its person's kit, and the host module that applies
them and wipes a laptop given to someone else of exactly what teleshift put there."""
import base64
import contextlib
import io
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import station as S
from ansible_collections.teleshift.toolkit.plugins.module_utils import station_host as H
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import validate
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import plan_waves

from testlib import make_inputs

LAPTOPS = ("host,serial,mac,os\n"
           "lap1,SN-001,,debian\n"
           "lap2,,AA-BB-CC-DD-EE-02,\n"
           "lap3,SN-003,aabb.ccdd.ee03,ubuntu\n")
TODAY = "2026-11-26"
PATHS = {"user": "teleworker", "home": "/home/teleworker", "desktop_dir": "/home/teleworker/Desktop",
         "wireguard": "/etc/wireguard/teleshift.conf", "wireguard_unit": "wg-quick@teleshift", "tunnel": "teleshift",
         "openvpn": "/etc/openvpn/client/teleshift-tcp.conf", "softphone_dir": "/home/teleworker/.baresip",
         "softphone_unit": "teleshift-softphone", "softphone_modules": "/usr/lib/baresip/modules",
         "launcher": "/usr/local/bin/teleshift-remote-desktop"}


def person(pid, device="laptop", needs=("vpn", "phone", "desktop"), active=True, service="dsi", line=1,
           priority="normal", lang="fr", ext="1004"):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, device=device,
                  needs=frozenset(needs), active=active, priority=priority, line=line, language=lang, extension=ext)


def laptops():
    found, problems = S.parse_laptops(LAPTOPS)
    assert not problems
    return found


def kit(pid="amartin"):
    pdf = f"%PDF-1.4 notice of {pid}".encode()
    return {"vpn/teleshift.conf": f"# teleshift VPN profile of {pid}, test\n[Interface]\nPrivateKey = KEY{pid}=\n",
            "openvpn/teleshift-tcp.ovpn": f"client\n# {pid}\n<key>\nOVPNKEY{pid}\n</key>\n",
            "phone/account.txt": f"# Softphone account of {pid}\nserver: 10.89.251.30\nport: 5060\ntransport: udp\n"
                                 "username: 1001\npassword: SipSecret{pid}123\nextension: 1001\n",
            "phone/sip_password": f"SipSecret{pid}123\n",
            "desktop/summary.yml": f"host: ts-desk1\naddress: 10.89.251.20\nport: 3389\nlogin: {pid}\n",
            "notice/notice.pdf": pdf}


# ------------------------------------------------------------------ the laptops file

def test_laptops_file_reads_serials_and_macs_in_their_usual_spellings():
    found = laptops()
    assert [lt.host for lt in found] == ["lap1", "lap2", "lap3"]
    assert found[1].mac == "aa:bb:cc:dd:ee:02" and found[2].mac == "aa:bb:cc:dd:ee:03" and found[2].os == "ubuntu"
    assert S.find_laptop(found, "aa:bb:cc:dd:ee:02").host == "lap2" and S.find_laptop(found, "SN-003").host == "lap3"
    assert S.find_laptop(found, "nope") is None


def test_every_problem_of_the_laptops_file_names_its_line_and_column():
    text = ("host,serial,mac,os,colour\n"
            "lap1,SN-1,,debian,red\n"
            "lap1,SN-2,,debian,red\n"       # duplicate host
            "lap3,,,debian,\n"              # neither serial nor MAC
            "lap4,SN-4,zz:zz,debian,\n"     # bad MAC
            "lap5,SN-1,,macos,\n"           # duplicate serial, unknown OS
            "bad host,SN-6,,,\n")
    found, problems = S.parse_laptops(text, "laptops.csv")
    where = {(p.line, p.field) for p in problems}
    assert {(1, "colour"), (3, "host"), (4, "serial"), (5, "mac"), (6, "serial"), (6, "os"), (7, "host")} <= where
    assert [lt.host for lt in found] == ["lap1"]
    assert all(str(p).startswith("laptops.csv:") for p in problems)
    assert S.parse_laptops("serial\nX\n", "l.csv")[1][0].field == "host"


# ------------------------------------------------------------------ assignment

def wave_plan(people, stock):
    return plan_waves(people, {"dsi": {"continuity": "critical"}, "rh": {}}, laptops=stock)


def test_a_wave_gets_free_laptops_in_queue_order_and_the_rest_waits():
    people = [person("zed", service="rh", line=1), person("amy", line=2), person("bob", line=3),
              person("cat", device="thin_client", line=4)]
    plan = wave_plan(people, [2, 5])
    state, given, short = S.assign_wave(plan.entries, 1, laptops(), {}, TODAY)
    assert given == [("amy", "lap1"), ("bob", "lap2")] and short == []  # dsi is critical: first
    assert state["people"]["amy"] == {"host": "lap1", "serial": "SN-001", "mac": "", "wave": 1, "assigned": TODAY}
    again, given2, _ = S.assign_wave(plan.entries, 1, laptops(), state, TODAY)
    assert given2 == [] and again == state  # idempotent: nobody gets a second laptop
    state2, given3, short3 = S.assign_wave(plan.entries, 2, laptops()[:2], state, TODAY)
    assert given3 == [] and short3 == ["zed"]  # wave 2's person, no laptop left in the file


def test_reassigning_a_laptop_takes_it_from_its_holder_and_records_it():
    people = {p.id: p for p in (person("amy"), person("bob"), person("gone", active=False))}
    state, _given, _short = S.assign_wave(wave_plan(list(people.values()), 3).entries, 1, laptops(), {}, TODAY)
    holder = S.holders(state)["lap1"]
    other = "bob" if holder == "amy" else "amy"
    with pytest.raises(ValueError, match="already holds"):
        S.reassign(state, laptops(), "SN-001", other, TODAY, people)
    state, released = S.release(state, laptops(), state["people"][other]["host"], TODAY)
    assert released == other and other not in state["people"]
    new, before = S.reassign(state, laptops(), "SN-001", other, TODAY, people)
    assert before == holder and S.holders(new)["lap1"] == other and holder not in new["people"]
    assert new["history"][-1].endswith(f"{holder} -> {other}")
    with pytest.raises(ValueError, match="not an active person"):
        S.reassign(new, laptops(), "lap3", "gone", TODAY, people)
    with pytest.raises(ValueError, match="no laptop"):
        S.reassign(new, laptops(), "SN-999", "amy", TODAY, people)


def test_the_plan_gives_each_laptop_its_holder_and_wipes_a_leavers():
    people = {"amy": person("amy"), "bob": person("bob", active=False)}
    state = {"people": {"amy": {"host": "lap1"}, "bob": {"host": "lap2"}}}
    slices, warnings = S.plan_stations(laptops(), state, people, {"lap1", "lap2", "lap3"}, lambda p: ["vpn"])
    assert slices["lap1"]["person"] == "amy" and slices["lap1"]["needs"] == ["vpn"]
    assert slices["lap2"]["person"] == "" and "bob" in warnings[0]  # a leaver's laptop is wiped
    assert slices["lap3"]["person"] == ""  # free
    assert "lap9" not in S.plan_stations(laptops(), state, people, {"lap1"})[0]


def test_the_capability_validates_the_laptops_file_and_reports_status(tmp_path):
    (tmp_path / "laptops.csv").write_text(LAPTOPS + "lap1,X,,debian\n")
    cap = registry.get("telework_station")
    inputs = make_inputs([person("amy")], groups={"telework_stations": ["lap1"]}, inventory_dir=tmp_path,
                         all_vars={"teleshift_hotline_number": "+33 5 55 00 00 00"}, services=("dsi",),
                         states={"telework_station": {}})
    found = validate(inputs, ["telework_station"])
    assert [str(p) for p in found.problems] == [f"{tmp_path / 'laptops.csv'}:5: host: 'lap1' is already on line 2"]
    assert cap.wants(person("amy")) and not cap.wants(person("x", device="thin_client"))
    status = cap.person_status(person("amy"), "lap1", {"host": "lap1", "serial": "SN-001", "wave": 1},
                               cap.parse_host('{"person": "bob", "files": 3, "units": {}}\n'), inputs)
    assert status.verified is False and "bob's files" in status.problems[0]
    ok = cap.person_status(person("amy"), "lap1", {"host": "lap1"},
                           {"person": "amy", "units": {"wg-quick@teleshift": "active"}}, inputs)
    assert ok.verified and ok.state == "ok"


# ------------------------------------------------------------------ a laptop's files

def test_a_laptop_gets_profiles_softphone_launcher_and_notice_from_the_kit():
    slice_ = {"person": "amartin", "name": 'Anaïs "Boss" Martin\nX', "language": "fr"}
    files = S.station_files(slice_, kit(), PATHS, "+33 5 55 00 00 00", ["/cert:tofu"], ["vpn", "phone", "notice"])
    assert files["/etc/wireguard/teleshift.conf"][1:] == (0o600, "root")
    accounts = files["/home/teleworker/.baresip/accounts"][0].decode()
    assert accounts.startswith('"Anaïs Boss MartinX" <sip:1001@10.89.251.30:5060;transport=udp>;'
                               'auth_pass=SipSecretamartin123')
    assert files["/home/teleworker/.baresip/accounts"][1:] == (0o600, "teleworker")
    assert "net_interface\t\tteleshift" in files["/home/teleworker/.baresip/config"][0].decode()
    script = files[PATHS["launcher"]][0].decode()
    assert "xfreerdp /v:10.89.251.20:3389 /u:amartin /cert:tofu \"$@\"" in script and "+33 5 55 00 00 00" in script
    assert subprocess.run(["sh", "-n"], input=script, text=True, check=False).returncode == 0
    entry = files["/home/teleworker/Desktop/teleshift-remote-desktop.desktop"][0].decode()
    assert "Name=Bureau à distance" in entry and "Assistance : +33 5 55 00 00 00" in entry
    assert files["/home/teleworker/Desktop/Notice teletravail.pdf"][0].startswith(b"%PDF")
    assert S.units_for(files, PATHS) == {"wg-quick@teleshift": ["/etc/wireguard/teleshift.conf"],
                                         "teleshift-softphone": sorted(p for p in files if "/.baresip/" in p)}


def test_a_kit_missing_what_the_person_needs_or_unusable_stops_that_laptop():
    partial = {k: v for k, v in kit().items() if k != "notice/notice.pdf"}
    with pytest.raises(S.KitError, match="kits --pdf"):
        S.station_files({"person": "amartin"}, partial, PATHS, "1", [], ["notice"])
    bad = {**kit(), "phone/sip_password": "a b;c\n"}
    with pytest.raises(S.KitError, match="sip_password"):
        S.station_files({"person": "amartin"}, bad, PATHS, "1", [], [])
    hostile = {**kit(), "desktop/summary.yml": "address: 1.2.3.4; rm -rf /\nlogin: amartin\n"}
    with pytest.raises(S.KitError, match="summary.yml"):
        S.station_files({"person": "amartin"}, hostile, PATHS, "1", [], [])
    assert S.station_files({"person": ""}, kit(), PATHS, "1") == {}  # a free laptop carries nothing


# ------------------------------------------------------------------ the laptop side

def wanted_of(files, uid=0, gid=0):
    return {p: {"sha256": H.digest(data), "mode": mode, "uid": uid, "gid": gid}
            for p, (data, mode, _o) in files.items()}


def test_changes_first_run_rerun_reassignment_and_release():
    files = S.station_files({"person": "amy"}, kit("amy"), PATHS, "1")
    units = S.units_for(files, PATHS)
    wanted = wanted_of(files)
    empty = H.read_manifest("/nonexistent/manifest.json")
    first = H.changes(empty, "amy", wanted, {}, [], units)
    assert first["write"] == sorted(files) and first["restart"] == sorted(units) and first["person_changed"]
    manifest = {"person": "amy", "files": {p: w["sha256"] for p, w in wanted.items()}, "dirs": [], "units": list(units)}
    actual = {p: (w["sha256"], w["mode"], 0, 0) for p, w in wanted.items()}
    rerun = H.changes(manifest, "amy", wanted, actual, [], units)
    assert not rerun["write"] and not rerun["remove"] and not rerun["restart"] and not rerun["stop"]
    bob = wanted_of({p: v for p, v in S.station_files({"person": "bob"}, kit("bob"), PATHS, "1").items()
                     if "/.baresip/" not in p})
    moved = H.changes(manifest, "bob", bob, actual, ["/home/teleworker/.baresip/uuid"], {"wg-quick@teleshift": []})
    assert set(moved["remove"]) == {p for p in files if "/.baresip/" in p} | {"/home/teleworker/.baresip/uuid"}
    assert moved["stop"] == sorted(units) and moved["disable"] == ["teleshift-softphone"]
    freed = H.changes(manifest, "", {}, actual, [], {})
    assert set(freed["remove"]) == set(files) and freed["stop"] == sorted(units) and freed["enable"] == []


@pytest.fixture()
def laptop(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/systemctl.log\n'
                                      'case "$1" in is-active|is-enabled) grep -qx "enable $2" '
                                      f'{tmp_path}/systemctl.log ;; esac\n')
    (bindir / "systemctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    return tmp_path


def run_station(tmp, files, person_id, check=False, contents=None):
    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
    from ansible_collections.teleshift.toolkit.plugins.modules import telework_station

    args = {"person": person_id, "units": S.units_for(files, tpaths(tmp)), "owned_dirs": [str(tmp / "home/.baresip")],
            "files": {p: {"sha256": H.digest(d), "mode": f"{m:04o}", "owner": "root"}
                      for p, (d, m, _o) in files.items()},
            "manifest": str(tmp / "manifest.json"), "_ansible_check_mode": check, "_ansible_diff": True,
            "_ansible_remote_tmp": str(tmp), "_ansible_keep_remote_files": False}
    if contents is not None:
        path = tmp / "contents.json"
        path.write_text(json.dumps({p: base64.b64encode(files[p][0]).decode() for p in contents}))
        args["contents_file"] = str(path)
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        telework_station.main()
    return json.loads(out.getvalue())


def tpaths(tmp):
    return {k: (str(tmp) + v if v.startswith("/") else v) for k, v in PATHS.items()} | {
        "user": "root", "softphone_dir": str(tmp / "home/.baresip"), "desktop_dir": str(tmp / "home/Desktop")}


def apply(tmp, pid):
    files = S.station_files({"person": pid}, kit(pid), tpaths(tmp), "1") if pid else {}
    first = run_station(tmp, files, pid)
    if first.get("needs_contents"):
        assert not first["changed"]
        return files, run_station(tmp, files, pid, contents=first["needs_contents"])
    return files, first


def test_the_module_applies_reruns_quietly_and_wipes_the_previous_person(laptop):
    tmp = laptop
    files, result = apply(tmp, "amartin")
    assert result["changed"] and result["person"] == "amartin" and set(result["written"]) == set(files)
    assert "KEYamartin" not in json.dumps(result)  # contents never in a result or a diff
    conf = Path(tpaths(tmp)["wireguard"])
    assert conf.read_text().endswith("KEYamartin=\n") and stat.S_IMODE(conf.stat().st_mode) == 0o600
    assert "restart wg-quick@teleshift" in (tmp / "systemctl.log").read_text()
    _, again = apply(tmp, "amartin")
    assert not again["changed"] and again["written"] == []
    check = run_station(tmp, S.station_files({"person": "fmuller"}, kit("fmuller"), tpaths(tmp), "1"), "fmuller",
                        check=True)
    assert check["changed"] and check["previous"] == "amartin" and conf.read_text().endswith("KEYamartin=\n")
    assert "person: amartin" in check["diff"]["before"] and "KEY" not in json.dumps(check["diff"])
    (tmp / "home/.baresip/uuid").write_text("softphone state of amartin\n")  # written by baresip itself
    _, moved = apply(tmp, "fmuller")
    assert moved["changed"] and moved["previous"] == "amartin"
    found = subprocess.run(["grep", "-rlF", "-e", "amartin", "-e", "KEYamartin", "-e", "SipSecretamartin", str(tmp)],
                           capture_output=True, text=True, check=False).stdout.splitlines()
    assert [f for f in found if not f.endswith(("systemctl.log", "contents.json"))] == []
    _, freed = apply(tmp, "")
    assert freed["changed"] and not conf.exists() and json.loads((tmp / "manifest.json").read_text())["files"] == {}
    assert "stop teleshift-softphone" in (tmp / "systemctl.log").read_text()


# ------------------------------------------------------------------ the command line and the lab

def test_waves_assigns_reassigns_and_releases_laptops_in_the_state_file(tmp_path, capsys):
    import shutil

    import yaml

    from teleshift_cli import main as cli

    inv = tmp_path / "inv"
    shutil.copytree(Path(__file__).resolve().parents[2] / "inventories" / "lab", inv,
                    ignore=shutil.ignore_patterns("state"))
    (inv / "laptops.csv").write_text("host,serial,mac,os\nts-laptop1,LAB-0001,02:00:00:00:00:01,debian\n"
                                     "ts-laptop2,LAB-0002,,debian\n")
    (inv / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n"
                                                            "teleshift_laptops_file: laptops.csv\n")
    base = ["waves", "--inventory", str(inv), "-o", str(tmp_path / "waves.csv")]
    assert cli.main([*base, "--assign", "1"]) == 0
    state = yaml.safe_load((inv / "state" / "laptops.yml").read_text())
    assert {pid: e["host"] for pid, e in state["people"].items()} == {"amartin": "ts-laptop1", "dnguyen": "ts-laptop2"}
    assert "fmuller" in capsys.readouterr().err  # the third laptop person waits for a laptop
    assert cli.main([*base, "--reassign", "02:00:00:00:00:01=fmuller"]) == 0  # by MAC
    assert cli.main([*base, "--reassign", "ts-laptop2=fmuller"]) == 2  # one laptop each
    assert "already holds ts-laptop1" in capsys.readouterr().err
    assert cli.main([*base, "--release", "LAB-0002"]) == 0  # by serial
    state = yaml.safe_load((inv / "state" / "laptops.yml").read_text())
    assert {pid: e["host"] for pid, e in state["people"].items()} == {"fmuller": "ts-laptop1"}
    assert len(state["history"]) == 4 and "amartin -> fmuller" in state["history"][2]


def test_a_lab_sized_by_laptops_is_the_labs_organisation_with_stock_laptops(tmp_path):
    import yaml

    from teleshift_cli import lab, labsize

    inv = labsize.sized_inventory(1, 1, dest=tmp_path / "inv", laptops=3)
    the_lab = lab.load_lab(inv)
    laptops = [h for h in the_lab.hosts if "telework_stations" in h.groups]
    assert [h.name for h in laptops] == ["ts-laptop1", "ts-laptop2", "ts-laptop3"] and all(h.extra for h in laptops)
    assert dict(laptops[2].networks) == {"ts-outside": "10.89.250.153", "ts-provision": "10.89.252.13"}
    assert "ts-provision" in the_lab.networks and "ts-gw1" in {h.name for h in the_lab.hosts}
    local = yaml.safe_load((inv / "group_vars" / "all" / "zz_sized_lab.yml").read_text())
    assert local["teleshift_base_dir"] == str(labsize.LAB_INVENTORY.resolve())  # the lab's roster, state, kits
    found, problems = S.parse_laptops((inv / "laptops.csv").read_text())
    assert not problems and [lt.serial for lt in found] == ["LAB-0001", "LAB-0002", "LAB-0003"]
    with pytest.raises(labsize.SizeError):
        labsize.sized_data(yaml.safe_load((labsize.LAB_INVENTORY / "hosts.yml").read_text()), 1, 1, laptops=101)
    sized = labsize.sized_inventory(2, 1, dest=tmp_path / "inv2", laptops=1)
    assert "teleshift_kits_dir: kits" in (sized / "group_vars" / "all" / "zz_sized_lab.yml").read_text()


def test_the_action_plugin_reads_only_a_persons_kit_files(tmp_path):
    from ansible_collections.teleshift.toolkit.plugins.action.telework_station import read_kit

    for name, text in kit("amy").items():
        (tmp_path / "amy" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "amy" / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    found = read_kit(tmp_path, "amy")
    assert set(found) == set(S.KIT_FILES) and isinstance(found["notice/notice.pdf"], bytes)
    with pytest.raises(S.KitError):
        read_kit(tmp_path, "../amy")
