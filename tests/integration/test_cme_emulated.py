"""teleshift.toolkit.cme_forwarding against EMULATED Cisco CME gateways (tests/emulated/ios_cme.py).

Every gateway here is the emulated IOS/CME CLI listening on 127.0.0.1 (SSH, paramiko server): no real
Cisco device is involved and no traffic leaves loopback. The module runs in-process (its main(), with
the arguments Ansible would pass) and, at the end, through ansible-playbook with the shipped play
playbooks/telephony_cme.yml and a temporary inventory of emulated gateways.
"""
import json
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ansible.module_utils.testing import patch_module_args

from ansible_collections.teleshift.toolkit.plugins.modules import cme_forwarding
from emulated.ios_cme import EmulatedCME, EmulatedDn

ROOT = Path(__file__).resolve().parents[2]

PASSWORD = "Emulated-Pw-7f3a9c"
SECRET = "Emulated-Enable-51be2d"

ROSTER = """\
id,full_name,email,service,extension,forward_to,forward_mode,forward_delay,active
amartin,Anaïs Martin,anais@example.org,rsa,1001,06 12 34 56 78,always,20,yes
blefevre,Benoît Lefèvre,benoit@example.org,rsa,1002,+33 6 23 45 67 89,busy,20,yes
cnoel,Chloé Noël,chloe@example.org,rsa,2003,06 34 56 78 90,no_answer,25,yes
dleroy,David Leroy,david@example.org,rsa,1004,,none,20,yes
eroux,Émile Roux,emile@example.org,rsa,1005,06 45 67 89 01,always,20,no
"""

# What each emulated gateway starts with: 1001 and 1002 without forwarding, 2003 (SIP) forwarding on
# busy to an old number, 1004 and 1005 forwarding "all" (to be cleared), 1999 not in the roster.
def initial_dns():
    return [
        EmulatedDn("ephone-dn", 1, "dual-line", "1001", ["label Anais Martin"]),
        EmulatedDn("ephone-dn", 2, "", "1002"),
        EmulatedDn("voice register dn", 3, "", "2003", forward={"busy": "00699999999"}),
        EmulatedDn("ephone-dn", 4, "", "1004", forward={"all": "00611111111"}),
        EmulatedDn("ephone-dn", 5, "", "1005", forward={"all": "00645678901"}),
        EmulatedDn("ephone-dn", 9, "", "1999", forward={"all": "00612121212"}),
    ]


EXPECTED_LINES = [
    "ephone-dn 1 dual-line", "call-forward all 00612345678", "exit",
    "ephone-dn 2", "call-forward busy 00623456789", "exit",
    "ephone-dn 4", "no call-forward all", "exit",
    "ephone-dn 5", "no call-forward all", "exit",
    "voice register dn 3", "no call-forward b2bua busy", "call-forward b2bua noan 00634567890 timeout 25", "exit",
]


@pytest.fixture
def roster(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text(ROSTER, encoding="utf-8")
    return path


@pytest.fixture
def gateways():
    started = []

    def make(name="GW1", **kwargs):
        emulated = EmulatedCME(hostname=name, password=PASSWORD, secret=SECRET, dns=initial_dns(), **kwargs)
        started.append(emulated.start())
        return emulated

    yield make
    for emulated in started:
        emulated.stop()


def closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gw(name, emulated=None, port=None, password=PASSWORD, secret=SECRET):
    return {"name": name, "host": "127.0.0.1", "port": port or emulated.port, "username": "admin",
            "password": password, "secret": secret}


def lines_of(path):
    """What teleshift.toolkit.cme_plan hands the module for this roster file (no policy check: the module
    must refuse on its own)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.cisco_cme import lines_text
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster

    roster = load_roster(path)
    assert roster.ok, roster.problems
    return lines_text(roster.people)


def run_module(capsys, check=False, diff=True, **args):
    args.setdefault("dial_prefix", "0")
    if "roster" in args:
        args["source"] = args["roster"]
        args["people"] = lines_of(args.pop("roster"))
    args.update(_ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(args):
        with pytest.raises(SystemExit) as exit_info:
            cme_forwarding.main()
    output = capsys.readouterr().out
    result = json.loads(output)
    result["_rc"] = exit_info.value.code
    result["_raw"] = output
    return result


def state(emulated):
    return {dn.number: dict(dn.forward) for dn in emulated.dns.values()}


def test_check_mode_reports_the_commands_and_people_and_changes_nothing(gateways, roster, capsys):
    emulated = gateways()
    before = state(emulated)
    result = run_module(capsys, check=True, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 0 and result["changed"] is True
    (res,) = result["gateways"]
    assert res["commands"] == EXPECTED_LINES
    assert res["people"] == {"added": ["amartin", "blefevre"], "changed": ["cnoel"], "removed": ["dleroy", "eroux"]}
    assert res["saved"] is False
    # the diff shows each changed DN before and after, naming its person
    (diff,) = result["diff"]
    assert "gw1" in diff["before_header"]
    assert " ! cnoel (Chloé Noël)\n number 2003\n call-forward b2bua busy 00699999999" in diff["before"]
    assert "call-forward b2bua noan 00634567890 timeout 25" in diff["after"]
    assert "1999" not in diff["before"] + diff["after"]  # not in the roster: not shown, not touched
    # nothing configured, nothing saved
    assert emulated.config_lines == [] and emulated.writes == 0
    assert state(emulated) == before


def test_apply_sends_only_the_minimal_lines_saves_once_and_is_idempotent(gateways, roster, capsys):
    emulated = gateways()
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 0 and result["changed"] is True
    assert result["gateways"][0]["saved"] is True
    assert emulated.config_lines == EXPECTED_LINES + ["end"]
    assert emulated.writes == 1
    assert emulated.startup == emulated.running_config()
    after = state(emulated)
    assert after["1001"] == {"all": "00612345678"}
    assert after["1002"] == {"busy": "00623456789"}
    assert after["2003"] == {"noan": ("00634567890", 25)}
    assert after["1004"] == {} and after["1005"] == {}
    assert after["1999"] == {"all": "00612121212"}  # not in the roster: untouched
    assert result["not_found"] == []

    lines = len(emulated.config_lines)
    again = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert again["_rc"] == 0 and again["changed"] is False
    assert again["gateways"][0]["commands"] == [] and again["diff"] == []
    quiet = run_module(capsys, diff=False, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert "diff" not in quiet and quiet["changed"] is False
    assert len(emulated.config_lines) == lines and emulated.writes == 1


def test_changing_one_person_touches_only_their_line(gateways, roster, capsys):
    emulated = gateways()
    run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    sent = len(emulated.config_lines)
    roster.write_text(ROSTER.replace("1002,+33 6 23 45 67 89,busy,20", "1002,+33 6 23 45 67 89,no_answer,40"),
                      encoding="utf-8")
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert result["gateways"][0]["people"] == {"added": [], "changed": ["blefevre"], "removed": []}
    assert emulated.config_lines[sent:] == [
        "ephone-dn 2", "no call-forward busy", "call-forward noan 00623456789 timeout 40", "exit", "end"]
    assert emulated.writes == 2


def test_purge_clears_numbers_not_in_the_roster(gateways, roster, capsys):
    emulated = gateways()
    result = run_module(capsys, roster=str(roster), purge=True, gateways=[gw("gw1", emulated)])
    assert "dn:1999" in result["gateways"][0]["people"]["removed"]
    assert state(emulated)["1999"] == {}
    assert ("ephone-dn", 9) in emulated.dns  # the DN itself stays


def test_parallel_gateways_fail_one_by_one_and_the_good_one_converges(gateways, roster, capsys, caplog):
    caplog.set_level(logging.DEBUG)  # paramiko and netmiko log at debug: none may show a secret
    good, locked = gateways("GW1"), gateways("GW2")
    gws = [gw("gw-unreachable", port=closed_port()), gw("gw-badpass", locked, password="Wrong-" + PASSWORD),
           gw("gw-good", good), gw("gw-badsecret", locked, secret="Wrong-" + SECRET)]
    started = time.monotonic()
    result = run_module(capsys, roster=str(roster), gateways=gws, parallel=4)
    elapsed = time.monotonic() - started
    assert elapsed < 60
    assert result["_rc"] == 1 and result["failed"] is True
    by_name = {r["name"]: r for r in result["gateways"]}
    assert [r["name"] for r in result["gateways"]] == [g["name"] for g in gws]
    assert by_name["gw-unreachable"]["error_kind"] == "unreachable"
    assert f"127.0.0.1:{gws[0]['port']}" in by_name["gw-unreachable"]["error"]
    assert by_name["gw-badpass"]["error_kind"] == "authentication"
    assert by_name["gw-badsecret"]["error_kind"] == "enable"
    assert by_name["gw-good"]["failed"] is False and by_name["gw-good"]["changed"] is True
    assert state(good)["1001"] == {"all": "00612345678"} and good.writes == 1
    assert locked.config_lines == [] and locked.failed_logins >= 1
    for name in ("gw-unreachable", "gw-badpass", "gw-badsecret"):
        assert name in result["msg"]
    for secret in (PASSWORD, SECRET, "Wrong-" + PASSWORD, "Wrong-" + SECRET):
        assert secret not in result["_raw"]
        assert secret not in caplog.text
    assert caplog.text  # the logs were really captured


def test_a_rejected_command_is_reported_with_its_line_and_rolled_back(gateways, roster, capsys):
    emulated = gateways(reject=[r"^call-forward busy 00623456789$"])
    before = state(emulated)
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 1
    (res,) = result["gateways"]
    assert res["error_kind"] == "rejected"
    assert "'call-forward busy 00623456789'" in res["error"] and "Invalid input" in res["error"]
    assert res["rolled_back"] is True and res["changed"] is False and res["saved"] is False
    assert "the forwarding read before the run was restored; nothing was saved" in res["error"]
    assert "ephone-dn 1 dual-line" in emulated.config_lines  # amartin's line was applied, then undone
    assert state(emulated) == before
    assert emulated.writes == 0


def test_a_command_the_gateway_ignores_fails_verification(gateways, roster, capsys):
    emulated = gateways(ignore=[r"^call-forward b2bua noan"])
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    (res,) = result["gateways"]
    assert res["error_kind"] == "verify" and res["rolled_back"] is True
    assert emulated.writes == 0
    assert state(emulated)["1001"] == {}


def test_bad_settings_and_bad_people_stop_before_any_connection(gateways, roster, capsys):
    emulated = gateways()
    result = run_module(capsys, roster=str(roster), dial_prefix="9x", gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 1 and "dial prefix" in result["msg"]
    for people in ('[["a", "A", "1001", "sometimes", "", 20, true, 2]]', "[1, 2]", "not json"):
        result = run_module(capsys, people=people, gateways=[gw("gw1", emulated)])
        assert result["_rc"] == 1 and "Invalid people" in result["msg"]
    assert emulated.sessions == 0


# ---- through ansible-playbook ---------------------------------------------------------------

def write_inventory(tmp_path, hosts):
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "roster.csv").write_text(ROSTER, encoding="utf-8")
    lines = ["all:", "  children:", "    cme_gateways:", "      hosts:"]
    for name, port, password in hosts:
        lines += [f"        {name}:", "          cme_host: 127.0.0.1", f"          cme_port: {port}",
                  f"          cme_password: {password}"]
    (inventory / "hosts.yml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (inventory / "group_vars" / "all.yml").write_text(
        "teleshift_roster_file: roster.csv\nteleshift_phone_region: FR\nteleshift_services: {rsa: {}}\n",
        encoding="utf-8")
    (inventory / "group_vars" / "cme_gateways.yml").write_text(textwrap.dedent(f"""\
        cme_username: admin
        cme_enable_secret: {SECRET}
        cme_dial_prefix: "0"
        """), encoding="utf-8")
    return inventory / "hosts.yml"


def playbook(inventory, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory),
               str(ROOT / "playbooks" / "telephony_cme.yml"), *extra]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)


def recap(output, host):
    line = next(line for line in output.splitlines() if line.startswith(host + " ") and "ok=" in line)
    return dict(part.split("=") for part in line.split(":", 1)[1].split())


def test_playbook_check_diff_then_apply_then_idempotent(gateways, tmp_path):
    one, two = gateways("GW1"), gateways("GW2")
    inventory = write_inventory(tmp_path, [("cme-a", one.port, PASSWORD), ("cme-b", two.port, PASSWORD)])

    checked = playbook(inventory, "--check", "--diff", "-v")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "cme-a: DNs before" in checked.stdout and "cme-b: DNs after" in checked.stdout
    assert "+ call-forward all 00612345678" in checked.stdout
    assert "! amartin (Anaïs Martin)" in checked.stdout
    assert one.config_lines == [] and two.config_lines == [] and one.writes == two.writes == 0

    applied = playbook(inventory, "-v")
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for emulated in (one, two):
        assert state(emulated)["2003"] == {"noan": ("00634567890", 25)} and emulated.writes == 1

    again = playbook(inventory)
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again.stdout, "cme-a")["changed"] == "0" and recap(again.stdout, "cme-b")["changed"] == "0"
    assert one.writes == two.writes == 1

    for run in (checked, applied, again):
        assert PASSWORD not in run.stdout + run.stderr and SECRET not in run.stdout + run.stderr


def test_playbook_names_the_failed_gateway_and_converges_the_other(gateways, tmp_path):
    good = gateways("GW1")
    inventory = write_inventory(tmp_path, [("cme-good", good.port, PASSWORD), ("cme-down", closed_port(), PASSWORD)])
    run = playbook(inventory)
    assert run.returncode != 0
    assert recap(run.stdout, "cme-down")["failed"] == "1"
    assert recap(run.stdout, "cme-good")["failed"] == "0"
    assert "cme-down: unreachable" in run.stdout
    assert state(good)["1001"] == {"all": "00612345678"} and good.writes == 1


# ---- batches and scale -----------------------------------------------------------------------

def big_roster(path, count):
    lines = ["id,full_name,email,service,extension,forward_to,forward_mode,forward_delay"]
    modes = ("always", "busy", "no_answer", "none")
    for i in range(count):
        lines.append(f"p{i:05d},Person {i},p{i}@example.org,rsa,{10000 + i},+3361{i:07d},{modes[i % 4]},"
                     f"{15 + i % 4 * 5}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_line_refused_in_a_later_batch_is_named_and_everything_is_rolled_back(tmp_path, capsys):
    roster = big_roster(tmp_path / "roster.csv", 80)  # 60 changes -> 180 lines -> 4 batches
    dns = [EmulatedDn("ephone-dn", i + 1, "", str(10000 + i)) for i in range(80)]
    refused = "call-forward busy 00610000061"  # p00061 (busy), in the third batch
    with EmulatedCME(password=PASSWORD, secret=SECRET, dns=dns, reject=[f"^{refused}$"]) as emulated:
        result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
        (res,) = result["gateways"]
        assert res["error_kind"] == "rejected" and f"'{refused}'" in res["error"]
        assert "restored; nothing was saved" in res["error"]
        # lines after the refused one in the same batch went through, then were undone with the rest
        applied = emulated.config_lines
        assert "call-forward noan 00610000062 timeout 25" in applied
        assert res["rolled_back"] is True
        assert all(dn.forward == {} for dn in emulated.dns.values())
        assert emulated.writes == 0


def test_first_rollout_of_a_5000_person_roster_then_rerun_then_one_change(tmp_path, capsys):
    count = 5000
    roster = big_roster(tmp_path / "roster.csv", count)
    dns = [EmulatedDn("ephone-dn", i + 1, "", str(10000 + i)) for i in range(count)]
    with EmulatedCME(password=PASSWORD, secret=SECRET, dns=dns, max_dn=count) as emulated:
        timings = {}
        for label in ("first", "rerun"):
            started = time.monotonic()
            result = run_module(capsys, diff=False, roster=str(roster), gateways=[gw("gw1", emulated)])
            timings[label] = time.monotonic() - started
            assert result["_rc"] == 0, result["msg"]
        assert len(result["gateways"][0]["commands"]) == 0 and result["changed"] is False
        assert emulated.writes == 1
        assert sum(1 for dn in emulated.dns.values() if dn.forward) == count * 3 // 4
        text = roster.read_text(encoding="utf-8").replace(",10042,+33610000042,no_answer,25",
                                                          ",10042,+33610000042,always,25")
        roster.write_text(text, encoding="utf-8")
        sent = len(emulated.config_lines)
        started = time.monotonic()
        result = run_module(capsys, diff=False, roster=str(roster), gateways=[gw("gw1", emulated)])
        timings["one change"] = time.monotonic() - started
        assert emulated.config_lines[sent:] == ["ephone-dn 43", "no call-forward noan",
                                                "call-forward all 00610000042", "exit", "end"]
        print({k: round(v, 2) for k, v in timings.items()})
        assert timings["first"] < 120 and timings["rerun"] < 20 and timings["one change"] < 20


def test_playbook_with_a_bad_roster_contacts_no_gateway_and_says_why(gateways, tmp_path):
    emulated = gateways("GW1")
    inventory = write_inventory(tmp_path, [("cme-a", emulated.port, PASSWORD)])
    roster = inventory.parent / "roster.csv"
    roster.write_text(ROSTER.replace("06 12 34 56 78", "not a phone"), encoding="utf-8")
    run = playbook(inventory)
    assert run.returncode != 0
    assert recap(run.stdout, "localhost")["failed"] == "1"  # stopped on the controller: no gateway play ran
    assert "Invalid roster or number policy, no gateway was contacted" in run.stdout
    assert "roster.csv:2: forward_to" in run.stdout
    assert emulated.sessions == 0


def test_a_failed_write_memory_is_reported_as_live_but_not_saved(gateways, roster, capsys):
    emulated = gateways(nvram_error=True)
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    (res,) = result["gateways"]
    assert res["error_kind"] == "save" and "Error writing nvram" in res["error"]
    assert res["changed"] is True and res["saved"] is False
    assert state(emulated)["1001"] == {"all": "00612345678"}  # live
    assert emulated.startup != emulated.running_config()  # not saved


# ---- number policy (toll fraud) --------------------------------------------------------------

PREMIUM = "08 99 12 34 56"  # a French premium-rate number
INTERNATIONAL = "+44 20 7946 0958"


@pytest.mark.parametrize("target, why", [(PREMIUM, "premium-rate"), (INTERNATIONAL, "international")])
def test_a_target_the_policy_refuses_stops_the_run_before_any_gateway(gateways, tmp_path, capsys, target, why):
    emulated = gateways()
    bad = tmp_path / "roster.csv"
    bad.write_text(ROSTER.replace("06 12 34 56 78", target), encoding="utf-8")
    result = run_module(capsys, roster=str(bad), gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 1 and f"{bad}:2: forward_to:" in result["msg"] and why in result["msg"]
    assert emulated.sessions == 0 and emulated.config_lines == []


def test_the_policy_opens_exactly_what_it_allows(gateways, tmp_path, capsys):
    emulated = gateways()
    roster = tmp_path / "roster.csv"
    roster.write_text(ROSTER.replace("06 12 34 56 78", PREMIUM), encoding="utf-8")
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)],
                        policy={"allow_international": True})
    assert result["_rc"] == 1 and "premium-rate" in result["msg"] and emulated.sessions == 0
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)], policy={"allow_premium": True})
    assert result["_rc"] == 0, result["msg"]
    assert state(emulated)["1001"] == {"all": "00899123456"}


def test_own_numbers_are_never_a_target(gateways, tmp_path, capsys):
    emulated = gateways()
    result = run_module(capsys, roster=str(write_roster(tmp_path)), gateways=[gw("gw1", emulated)],
                        own_numbers=["0612345678"])
    assert result["_rc"] == 1 and "own numbers" in result["msg"] and emulated.sessions == 0


def write_roster(tmp_path, text=ROSTER):
    path = tmp_path / "roster.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_forwarding_on_a_dn_no_roster_line_names_is_a_warning(gateways, roster, capsys):
    emulated = gateways()
    result = run_module(capsys, roster=str(roster), gateways=[gw("gw1", emulated)])
    assert result["_rc"] == 0
    (res,) = result["gateways"]
    assert [w for w in res["warnings"] if "ephone-dn 9 (number 1999)" in w and "purge" in w]
    assert state(emulated)["1999"] == {"all": "00612121212"}  # left as is without purge


def test_playbook_alone_applies_the_inventory_policy(gateways, tmp_path):
    emulated = gateways("GW1")
    inventory = write_inventory(tmp_path, [("cme-a", emulated.port, PASSWORD)])
    (inventory.parent / "roster.csv").write_text(ROSTER.replace("06 12 34 56 78", PREMIUM), encoding="utf-8")
    run = playbook(inventory)
    assert run.returncode != 0
    assert "no gateway was contacted" in run.stdout and "roster.csv:2: forward_to:" in run.stdout
    assert "premium-rate" in run.stdout and emulated.sessions == 0
    all_vars = inventory.parent / "group_vars" / "all.yml"
    all_vars.write_text(all_vars.read_text() + "teleshift_phone_policy: {allow_premium: true}\n")
    run = playbook(inventory)
    assert run.returncode == 0, run.stdout + run.stderr
    assert state(emulated)["1001"] == {"all": "00899123456"}
    assert "cme-a: ephone-dn 9 (number 1999) forwards" in run.stdout + run.stderr  # a warning, not a failure
