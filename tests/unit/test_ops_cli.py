"""The operations subcommands end to end, in-process, on a copy of the lab inventory (no host touched
except where said): bad input gives the same Problem list and exit code everywhere; kits are private;
the report says what the data says; status reads emulated host answers; run folds runner events."""
import csv
import json
import shutil
import stat
from pathlib import Path

import pytest
from testlib import make_inputs, with_lab_people

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

from teleshift_cli import main as cli
from teleshift_cli.runner import RunSummary
from teleshift_cli.report import record_verification
from teleshift_cli.status import Env, Result, person_status

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


@pytest.fixture()
def inv(tmp_path):
    """A private copy of the lab inventory whose kits directory is inside tmp_path."""
    root = tmp_path / "inv"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns("state", "kits"))
    (root / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n"
                                                             "teleshift_verify_file: kits/verify.json\n")
    return root


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def write_roster(path, people):
    with open(path, "w", encoding="utf-8", newline="") as stream:
        write_csv(people, stream)
    return path


BAD_ROSTER = ("id,full_name,email,service\n"
              "ok1,Ok One,ok1@x.example,rsa\n"
              "bad2,Bad Two,not-an-email,rsa\n"
              "bad3,Bad Three,bad3@x.example,nosuchservice\n")

COMMANDS = [["plan"], ["waves", "--laptops", "3"], ["kits"], ["report"], ["status", "ok1"], ["run", "preflight"]]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_bad_roster_same_problem_list_from_every_subcommand(command, inv, tmp_path, capsys):
    roster = tmp_path / "bad.csv"
    roster.write_text(BAD_ROSTER, encoding="utf-8")
    code, out, err = run(command + ["--inventory", str(inv), "--roster", str(roster)], capsys)
    assert code == 1
    assert f"{roster}:3: email:" in err and f"{roster}:4: service:" in err
    assert not (inv / "kits").exists()  # nothing was written


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_bad_inventory_policy_from_every_subcommand(command, inv, capsys):
    path = inv / "group_vars" / "all" / "teleshift.yml"
    path.write_text(path.read_text().replace("continuity: critical", "continuity: vital", 1))
    code, out, err = run(command + ["--inventory", str(inv)], capsys)
    assert code == 1
    assert "teleshift_services.paie-prestations.continuity: 'vital' is not one of" in err


def test_plan_json_and_exit_code_follow_capacity(inv, tmp_path, capsys):
    out_file = tmp_path / "plan.json"
    code, out, err = run(["plan", "--inventory", str(inv), "--json", str(out_file)], capsys)
    data = json.loads(out_file.read_text())
    assert code == 0 and data["ok"] is True
    lines = sum(1 for r in csv.DictReader(open(inv / "roster.csv", encoding="utf-8"))
                if r["active"] != "no" and r["extension"])
    trunk = [c for c in data["checks"] if c["resource"] == "trunk channels"][0]
    assert f"from {lines} line(s)" in trunk["note"]
    # one trunk channel is not enough for the lab's lines: exit 3 and the check named
    code, out, err = run(["plan", "--inventory", str(inv), "--format", "json",
                          "--set", "teleshift_capacity_phone_erlangs_per_person=1"], capsys)
    data = json.loads(out)
    assert code == 3 and not data["ok"]
    assert [c["resource"] for c in data["checks"] if not c["ok"]] == ["trunk channels"]


def test_plan_rejects_unknown_override(inv, capsys):
    code, out, err = run(["plan", "--inventory", str(inv), "--set", "teleshift_capacity_nope=1"], capsys)
    assert code == 2 and "NAME=VALUE" in err


def test_waves_csv_puts_critical_services_first(inv, tmp_path, capsys):
    roster = write_roster(tmp_path / "r.csv", with_lab_people(generate_people(120, seed=3)))
    out = tmp_path / "waves.csv"
    code, _, err = run(["waves", "--inventory", str(inv), "--roster", str(roster), "--laptops", "10",
                        "--licences", "1000", "--per-wave", "4", "--output", str(out)], capsys)
    assert code == 0
    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    served = [r for r in rows if r["status"] == "wave"]
    laptops = [r for r in served if r["laptop"] == "yes"]
    assert len(laptops) <= 10
    critical = {"paie-prestations", "ase", "accueil"}
    firsts = [r for r in sorted(served, key=lambda r: int(r["order"])) if r["laptop"] == "yes" or r["licence"] == "yes"]
    # the first people equipped are from the continuity-critical services
    assert firsts and firsts[0]["service"] in critical and firsts[0]["continuity"] == "critical"
    assert all(int(r["wave"]) >= 1 for r in served)
    assert "waiting:" in err


def test_kits_private_and_in_the_person_language(inv, tmp_path, capsys):
    people = with_lab_people(generate_people(12, seed=5))
    people[0] = Person(**{**people[0].__dict__, "language": "en", "needs": frozenset({"vpn"})})
    people[1] = Person(**{**people[1].__dict__, "language": "fr", "needs": frozenset({"vpn"})})
    roster = write_roster(tmp_path / "r.csv", people)
    kits = inv / "kits"
    # emulated VPN kit output for the first person (what the VPN capability will write)
    write_kit_file(kits, people[0].id, "vpn", "wg0.conf", "[Interface]\nPrivateKey = EMULATEDKEY\n"
                   "Address = 10.100.0.9/32\n\n[Peer]\nEndpoint = 10.89.250.10:51820\n")
    code, _, err = run(["kits", "--inventory", str(inv), "--roster", str(roster)], capsys)
    assert code == 0, err
    en = (kits / people[0].id / "notice" / "notice.html").read_text()
    fr = (kits / people[1].id / "notice" / "notice.html").read_text()
    assert 'lang="en"' in en and "Your telework setup" in en and "10.100.0.9/32" in en
    # the profile's QR code (it holds the private key) is on the credentials sheet, not in the notice
    sheet = (kits / people[0].id / "notice" / "credentials.html").read_text()
    assert "<svg" not in en and "<svg" in sheet and "credentials sheet" in en
    assert 'lang="fr"' in fr and "Votre poste de télétravail" in fr and "En cours de préparation" in fr
    assert "+33 5 55 00 00 00" in en and "+33 5 55 00 00 00" in fr
    assert "EMULATEDKEY" not in err
    for path in kits.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert stat.S_IMODE(kits.stat().st_mode) == 0o700
    # a second run rewrites nothing
    code, _, err = run(["kits", "--inventory", str(inv), "--roster", str(roster)], capsys)
    assert f"0 written, {sum(p.active for p in people)} unchanged" in err


def test_kits_embed_the_qr_images_the_vpn_capability_wrote(inv, tmp_path, capsys):
    """The real VPN kit: <id>/vpn/teleshift.conf with teleshift.png and teleshift.svg beside it."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.qr import images

    people = with_lab_people(generate_people(6, seed=3))
    people[0] = Person(**{**people[0].__dict__, "needs": frozenset({"vpn", "desktop"})})
    roster = write_roster(tmp_path / "r.csv", people)
    kits = inv / "kits"
    profile = ("[Interface]\nPrivateKey = EMULATEDKEY\nAddress = 10.100.0.7/32\n\n"
               "[Peer]\nEndpoint = 10.89.250.10:51820\n")
    png, svg = images(profile)
    write_kit_file(kits, people[0].id, "vpn", "teleshift.conf", profile)
    write_kit_file(kits, people[0].id, "vpn", "teleshift.png", png)
    write_kit_file(kits, people[0].id, "vpn", "teleshift.svg", svg)
    write_kit_file(kits, people[0].id, "desktop", "summary.yml", "host: 10.89.251.20\n")  # no .rdp file
    code, _, err = run(["kits", "--inventory", str(inv), "--roster", str(roster)], capsys)
    assert code == 0, err
    notice = (kits / people[0].id / "notice" / "notice.html").read_text()
    sheet = (kits / people[0].id / "notice" / "credentials.html").read_text()
    assert 'src="data:image/svg+xml;base64,' in sheet and "10.100.0.7/32" in notice
    assert 'src="data:image/svg+xml;base64,' not in notice
    assert not list((kits / people[0].id / "notice").glob(".qr-*.svg"))  # the kit's own image, none drawn


def test_an_inventory_switch_merges_the_credentials_sheet_into_the_notice(inv, tmp_path, capsys):
    """For organisations that hand both over at pick-up: teleshift_notice_merge_credentials."""
    people = with_lab_people(generate_people(4, seed=3))
    people[0] = Person(**{**people[0].__dict__, "needs": frozenset({"vpn"})})
    roster = write_roster(tmp_path / "r.csv", people)
    (inv / "group_vars" / "all" / "zz_merge.yml").write_text("teleshift_notice_merge_credentials: true\n")
    kits = inv / "kits"
    write_kit_file(kits, people[0].id, "vpn", "teleshift.conf", "[Interface]\nPrivateKey = EMULATEDKEY\n"
                   "Address = 10.100.0.7/32\n\n[Peer]\nEndpoint = 10.89.250.10:51820\n")
    write_kit_file(kits, people[0].id, "desktop", "password", "EmulatedDesktopSecret\n")
    code, _, err = run(["kits", "--inventory", str(inv), "--roster", str(roster)], capsys)
    assert code == 0, err
    notice = (kits / people[0].id / "notice" / "notice.html").read_text()
    assert "<svg" in notice and not (kits / people[0].id / "notice" / "credentials.html").exists()


def test_report_says_what_the_data_says(inv, tmp_path, capsys):
    people = with_lab_people(generate_people(40, seed=9))
    roster = write_roster(tmp_path / "r.csv", people)
    kits = inv / "kits"
    vpn_people = [p for p in people if p.active and "vpn" in p.needs]
    for p in vpn_people[:5]:  # emulated: the VPN capability produced five kits, three verified
        d = kits / p.id / "vpn"
        d.mkdir(parents=True)
        (d / "wg0.conf").write_text("[Interface]\n")
    (kits / vpn_people[5].id / "vpn").mkdir(parents=True)  # an empty kit folder is not a kit
    (kits / vpn_people[6].id).mkdir()
    (kits / vpn_people[6].id / "vpn").write_text("a file, not a folder")
    verify = kits / "verify.json"
    for p in vpn_people[:3]:
        record_verification(verify, person=p.id, capability="vpn", ok=True)
    record_verification(verify, host="ts-gw1", check="wireguard listening", ok=False, detail="emulated: port closed")
    record_verification(verify, host="ts-desk1", check="xrdp listening", ok=True)
    out = tmp_path / "report.html"
    data_file = tmp_path / "report.json"
    code, _, err = run(["report", "--inventory", str(inv), "--roster", str(roster), "--laptops", "2",
                        "--output", str(out), "--json", str(data_file)], capsys)
    assert code == 0, err
    data = json.loads(data_file.read_text())
    assert data["per_capability"]["vpn"] == {"needed": len(vpn_people), "enabled": 5, "verified": 3}
    assert data["failing_hosts"] == ["ts-gw1"]
    page = out.read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")  # self-contained
    assert "<script" not in page and page.count("<svg") == 4
    assert "emulated: port closed" in page and "ts-desk1" not in page.split('id="hosts"')[1]
    assert f"3/{len(vpn_people)}" in page
    assert data["waves"]["waiting"] == sum(v["people"] for k, v in data["waves"]["by_wave"].items() if k == "0")


# --------------------------------------------------------------------- status (emulated hosts)

class EmulatedRunner:
    """Answers like the real hosts would, from canned text; records what was asked."""

    def __init__(self, answers):
        self.answers, self.calls = answers, []

    def run(self, host, argv):
        self.calls.append((host, argv))
        for (h, needle), result in self.answers.items():
            if h == host and needle in " ".join(argv):
                return result
        return Result(255, "", f"{host} unreachable (emulated)")


class Ctx:
    """A Context standing in for the CLI's: the front door's Inputs, no file read."""

    def __init__(self, people=(), groups=None, states=None):
        groups = {"vpn_gateways": ["gw1"], "desktop_hosts": ["d1"], "pbx_hosts": ["pbx1"]} if groups is None \
            else groups
        self.inputs = make_inputs(people, groups, {"pbx1": {"asterisk_pbx_trunk": {"host": "10.0.0.1"}}},
                                  states=states or {"vpn": {}, "desktop": {}})


def person(**kw):
    base = dict(id="amartin", full_name="Anaïs Martin", email="a@x.example", service="rsa",
                needs=frozenset({"vpn", "desktop", "phone"}), extension="1001", forward_to="+33612345678",
                forward_mode="always")
    base.update(kw)
    return Person(**base)


WG = ("== allowed-ips\nwg0\tPUBKEY=\t10.100.0.7/32\nwg0\tOTHER=\t10.100.0.8/32\n"
      "== latest-handshakes\nwg0\tPUBKEY=\t1000\nwg0\tOTHER=\t0\n"
      "== endpoints\nwg0\tPUBKEY=\t10.89.250.50:40000\nwg0\tOTHER=\t(none)\n"
      "== transfer\nwg0\tPUBKEY=\t2048\t4096\nwg0\tOTHER=\t0\t0\n")
ASTDB = ("/CFIM/1001                                        : 0612345678\n"
         "/TSMOBILE/1001                                    : 0612345678\n"
         "/CFNA/1002                                        : 0700000000\n"
         "/CFBS/10011                                       : 0799999999\n3 results found.\n")
CONTACTS = ("  Contact:  1001/sip:1001@10.100.0.7:5060;ob                    5f2a3c1d9e Avail        12.441\n"
            "  Contact:  1002/sip:1002@10.100.0.8:5060                        7a1b2c3d4e Unavail       nan\n")
ENDPOINTS = (" Endpoint:  1001                                                 Not in use    0 of inf\n"
             " Endpoint:  operator                                             Not in use    0 of inf\n")
PBX = f"== database\n{ASTDB}== contacts\n{CONTACTS}== endpoints\n{ENDPOINTS}"
DESK = ("== passwd\nroot:x:0:0:root:/root:/bin/bash\namartin:x:2001:2001:Anais Martin:/home/amartin:/bin/bash\n"
        "== group\nts-rsa:x:3001:amartin,other\ntsusers:x:1000:amartin\n== status\namartin P 2026-01-01\n"
        "== ps\namartin Xorg\namartin openbox\nroot systemd\n")
STATES = {"vpn": {"people": {"amartin": {"gateway": "gw1", "address": "10.100.0.7", "public_key": "PUBKEY="}}},
          "desktop": {"people": {"amartin": {"host": "d1", "login": "amartin", "status": "active"}}}}


def test_parsers():
    from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_capability import parse_accounts
    from ansible_collections.teleshift.toolkit.plugins.module_utils.phone_capability import parse_pbx
    from ansible_collections.teleshift.toolkit.plugins.module_utils.vpn_capability import parse_wg

    peers = parse_wg(WG)
    assert peers["PUBKEY="] == {"interface": "wg0", "allowed_ips": ["10.100.0.7/32"], "handshake": 1000,
                                "endpoint": "10.89.250.50:40000", "rx": 2048, "tx": 4096}
    pbx = parse_pbx(PBX)
    assert pbx["astdb"]["CFIM"] == {"1001": "0612345678"} and pbx["astdb"]["CFBS"] == {"10011": "0799999999"}
    assert pbx["astdb"]["TSMOBILE"] == {"1001": "0612345678"}
    assert pbx["contacts"]["1002"] == [("sip:1002@10.100.0.8:5060", "Unavail")]
    assert pbx["endpoints"] == {"1001", "operator"}
    desk = parse_accounts(DESK)
    assert desk["users"] == {"root": "0", "amartin": "2001"}
    assert desk["groups"]["ts-rsa"] == ("3001", {"amartin", "other"})
    assert desk["sessions"]["amartin"] == ["Xorg", "openbox"]


def test_status_all_good_from_emulated_hosts():
    runner = EmulatedRunner({("gw1", "wg show"): Result(0, WG), ("d1", "getent"): Result(0, DESK),
                             ("pbx1", "database show"): Result(0, PBX)})
    env = Env(ctx=Ctx([person()], states=STATES), runner=runner, now=1060)
    result = person_status(person(), env)
    assert {c: s.state for c, s in result.items()} == {"vpn": "ok", "desktop": "ok", "phone": "ok"}
    assert {c: s.verified for c, s in result.items()} == {"vpn": True, "desktop": True, "phone": True}
    assert result["vpn"].facts["last handshake"] == "60 s ago"
    assert result["desktop"].facts["session open"].startswith("yes")
    assert result["phone"].facts["softphone"] == "Avail"
    assert len(runner.calls) == 3  # one read per host


def test_status_names_what_is_wrong():
    runner = EmulatedRunner({("gw1", "wg show"): Result(0, WG),
                             ("d1", "getent"): Result(0, "== passwd\nroot:x:0:0::/:/bin/sh\n== group\n== ps\n"),
                             ("pbx1", "database show"): Result(0, f"== database\n{ASTDB}== contacts\n== endpoints\n")})
    states = {"vpn": {"people": {"amartin": {"gateway": "gw1", "address": "10.100.0.8"}}}, "desktop": {}}
    env = Env(ctx=Ctx([person()], states=states), runner=runner, now=5000)
    # roster says busy -> 0799..., PBX has CFIM 0612... for 1001: both differences reported
    result = person_status(person(forward_mode="busy", forward_to="+33799999999"), env)
    assert result["vpn"].state == "problem" and not result["vpn"].verified  # found by address, not by key
    assert any("never connected" in p for p in result["vpn"].problems)
    assert result["desktop"].state == "problem" and "no account" in result["desktop"].problems[0]
    assert result["phone"].state == "problem" and result["phone"].verified is False
    assert any("CFBS is not set" in p for p in result["phone"].problems)
    assert any("CFIM" in p for p in result["phone"].problems)
    assert result["phone"].facts["softphone"] == "not registered"


def test_status_a_peer_removed_by_hand_is_not_verified():
    runner = EmulatedRunner({("gw1", "wg show"): Result(0, WG.replace("PUBKEY=", "GONE=")),
                             ("d1", "getent"): Result(0, DESK), ("pbx1", "database show"): Result(0, PBX)})
    result = person_status(person(), Env(ctx=Ctx([person()], states=STATES), runner=runner, now=1060))
    assert result["vpn"].verified is False and result["vpn"].state == "problem"


def test_status_unreachable_host_is_unknown_not_a_crash():
    runner = EmulatedRunner({})
    env = Env(ctx=Ctx([person()], states=STATES), runner=runner, now=0)
    result = person_status(person(), env)
    assert all(s.state == "unknown" for s in result.values())
    assert all(any("unreachable (emulated)" in p for p in s.problems) for s in result.values())
    assert any(p.startswith("cannot query d1") for p in result["desktop"].problems)


def test_status_probe_exception_and_not_needed(monkeypatch):
    env = Env(ctx=Ctx([person()]), runner=EmulatedRunner({}), now=0)

    def broken(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(registry.get("vpn"), "person_status", broken)  # the capability's own verdict fails
    result = person_status(person(needs=frozenset({"vpn"}), forward_mode="none", extension=""), env)
    assert result["vpn"].state == "unknown" and "boom" in result["vpn"].problems[0]
    assert result["desktop"].state == result["phone"].state == "not needed"


def test_status_without_capability_hosts_is_not_configured():
    env = Env(ctx=Ctx([person()], groups={}), runner=EmulatedRunner({}), now=0)
    assert {s.state for s in person_status(person(), env).values()} == {"not configured"}


def test_status_unknown_person(inv, capsys):
    code, _, err = run(["status", "nobody", "--inventory", str(inv)], capsys)
    assert code == 2 and "not in the roster" in err


# ------------------------------------------------------------------------------- run summary

def test_run_summary_folds_runner_events():
    s = RunSummary("site.yml", "inv")
    events = [{"event": "playbook_on_task_start", "event_data": {"task": "Install"}},
              {"event": "runner_on_ok", "event_data": {"host": "a", "task": "Install"}},
              {"event": "runner_on_failed", "event_data": {"host": "b", "task": "Install", "res": {"msg": "no space"}}},
              {"event": "runner_on_unreachable", "event_data": {"host": "c", "task": "Install", "res": {"msg": "ssh"}}},
              {"event": "playbook_on_stats", "event_data": {"ok": {"a": 3, "b": 1}, "changed": {"a": 2},
                                                            "failures": {"b": 1}, "dark": {"c": 1},
                                                            "processed": {"a": 1, "b": 1, "c": 1}}}]
    for e in events:
        s.feed(e)
    data = s.as_dict("failed", 2)
    assert data["totals"] == {"ok": 4, "changed": 2, "failed": 1, "unreachable": 1, "skipped": 0}
    assert data["failed_hosts"] == ["b", "c"]
    assert [f["msg"] for f in data["failures"]] == ["no space", "ssh"]
    assert data["tasks"] == 1


def test_every_subcommand_has_help(capsys):
    for name in ("plan", "waves", "kits", "report", "status", "run"):
        with pytest.raises(SystemExit) as exc:
            cli.main([name, "--help"])
        assert exc.value.code == 0
        assert "--inventory" in capsys.readouterr().out


def test_run_summary_keeps_the_tasks_warnings_and_each_playbook_validates_what_it_applies():
    from teleshift_cli.commands.run import applied_capabilities

    summary = RunSummary(playbook="site.yml", inventory="hosts.yml")
    summary.feed({"event": "runner_on_ok", "event_data": {
        "host": "localhost", "task": "Compile the telephony", "res": {"warnings": [
            "inventory (ts-pbx1): asterisk_pbx_queues[0].agents[2]: 'edupont' is inactive: left out"]}}})
    assert summary.as_dict("successful", 0)["warnings"] == [
        {"host": "localhost", "task": "Compile the telephony",
         "msg": "inventory (ts-pbx1): asterisk_pbx_queues[0].agents[2]: 'edupont' is inactive: left out"}]
    playbooks = Path(__file__).resolve().parents[2] / "playbooks"
    assert applied_capabilities(playbooks / "vpn.yml") == ["vpn"]
    assert applied_capabilities(playbooks / "telephony.yml") == ["phone"]
    assert applied_capabilities(playbooks / "site.yml") is None
    assert applied_capabilities(playbooks / "lab.yml") == []


def test_run_vpn_is_not_blocked_by_a_stale_telephony_setting(inv, tmp_path, capsys, monkeypatch):
    """A queue naming someone who does not exist blocks nothing; a broken PBX setting blocks only the
    telephony: `run vpn` validates the VPN alone (nothing reaches Ansible here: runner stubbed)."""
    import teleshift_cli.runner as runner

    calls = []
    monkeypatch.setattr(runner, "run_playbook", lambda *a, **k: calls.append(a) or ("successful", 0))
    pbx = inv / "group_vars" / "pbx_hosts" / "asterisk.yml"
    pbx.write_text(pbx.read_text() + "asterisk_pbx_ring_timeout: forever\n")
    code, _, err = run(["run", "vpn", "--inventory", str(inv), "--artefact", str(tmp_path / "a.json"),
                        "--no-progress"], capsys)
    assert code == 0, err
    code, _, err = run(["run", "telephony", "--inventory", str(inv), "--artefact", str(tmp_path / "b.json"),
                        "--no-progress"], capsys)
    assert code == 1 and "asterisk_pbx_ring_timeout" in err
    assert len(calls) == 1
