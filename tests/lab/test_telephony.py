"""Telephony against the live lab: real calls through Asterisk on ts-pbx1.

Emulated components (SIPp): the operator network on ts-pstn1 (a UAS answering every forwarded call,
plus callers from the outside), and desk phones / agent softphones on ts-desk1 (register, then answer,
ring without answer, or answer busy). Every SIPp run is bounded (-m, -timeout, and a process timeout).

Run after converging the lab: ``scripts/teleshift lab up && ansible-playbook playbooks/telephony.yml``,
then ``.venv/bin/pytest tests/lab/test_telephony.py``.
"""
from __future__ import annotations

import csv
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"
KITS = ROOT / "kits" / "lab"
SIPP_DIR = ROOT / "tests" / "lab" / "sipp"
PBX, PSTN, DESK = "ts-pbx1", "ts-pstn1", "ts-desk1"
PBX_OUTSIDE, PBX_INSIDE, PSTN_IP, DESK_IP = "10.89.250.30", "10.89.251.30", "10.89.250.60", "10.89.251.20"
OPERATOR_LOG = "/var/log/teleshift-lab/operator-messages.log"
ENV = dict(os.environ, CONTAINERS_CONF=str(ROOT / ".cache" / "lab" / "containers.conf"),
           ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))


def sh(host, command, timeout=60, check=False):
    result = subprocess.run(["podman", "exec", host, "bash", "-c", command], capture_output=True, text=True,
                            timeout=timeout, env=ENV)
    if check and result.returncode != 0:
        raise AssertionError(f"{host}: {command!r} failed: {result.stdout}{result.stderr}")
    return result


def sipp(host, args, timeout):
    """Start a bounded SIPp run in ``host`` (scenarios in /tmp/ts-sipp); returns the Popen."""
    command = (f"cd /tmp/ts-sipp && exec timeout {timeout} sipp {args} -aa -nostdin -timeout {timeout - 2}s "
               "-timeout_error -trace_err -error_file /tmp/ts-sipp/errors.log")
    return subprocess.Popen(["podman", "exec", host, "bash", "-c", command], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def call(number, hold_ms=2000, port=5070, timeout=40):
    """A caller on the operator network calls ``number`` on the PBX and hangs up after ``hold_ms``."""
    return sipp(PSTN, f"{PBX_OUTSIDE}:5060 -sf caller-uac.xml -s {number} -i {PSTN_IP} -p {port} -m 1 "
                      f"-d {hold_ms}", timeout)


def call_and_talk(number, port, timeout=60):
    """A caller who speaks (RTP) for up to 30 s, e.g. into a voicemail; the PBX may hang up first."""
    return sipp(PSTN, f"{PBX_OUTSIDE}:5060 -sf caller-voicemail-uac.xml -s {number} -i {PSTN_IP} -p {port} -m 1",
                timeout)


def finish(proc, timeout=60):
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, err


def secret(person, name="sip_password"):
    return (KITS / person / "phone" / name).read_text().strip()


def register(person, extension, port, expires=600):
    proc = sipp(DESK, f"{PBX_INSIDE}:5060 -sf softphone-register.xml -s {extension} -au {extension} "
                      f"-ap {secret(person)} -key expires {expires} -i {DESK_IP} -p {port} -m 1", 15)
    rc, err = finish(proc, 20)
    assert rc == 0, f"registration of {extension} failed: {err}"


def desk(scenario, port, timeout=40):
    """A desk phone on ts-desk1 waiting for one call with ``scenario`` (desk-busy, desk-noanswer...)."""
    proc = sipp(DESK, f"-sf {scenario}.xml -i {DESK_IP} -p {port} -m 1 -trace_msg "
                      f"-message_file /tmp/ts-sipp/{scenario}-{port}.log", timeout)
    deadline = time.monotonic() + 15  # the PBX must not call before SIPp listens
    while f":{port} " not in sh(DESK, "ss -Hlun").stdout:
        assert time.monotonic() < deadline and proc.poll() is None, f"{scenario} did not start listening"
        time.sleep(0.3)
    return proc


def operator_log_size():
    out = sh(PSTN, f"stat -c %s {OPERATOR_LOG} 2>/dev/null || echo 0").stdout.strip()
    return int(out or 0)


def operator_invites(since, wait=10.0):
    """Request-URIs of INVITEs the emulated operator received after byte ``since`` (waits for the log)."""
    deadline = time.monotonic() + wait
    while True:
        text = sh(PSTN, f"tail -c +{since + 1} {OPERATOR_LOG}").stdout
        found = re.findall(r"^INVITE sip:([^@\s]+)@", text, re.M)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def voicemails(box):
    out = sh(PBX, f"ls /var/spool/asterisk/voicemail/teleshift/{box}/INBOX/ 2>/dev/null | grep -c '\\.txt$'")
    return int(out.stdout.strip() or 0)


def last_reload_seconds():
    out = sh(PBX, 'asterisk -rx "core show uptime seconds"', check=True).stdout
    return int(re.search(r"Last reload: (\d+)", out).group(1))


def playbook(*args, timeout=300):
    """ansible-playbook playbooks/telephony.yml with the JSON callback; returns (rc, parsed output)."""
    env = dict(ENV, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-playbook"), *args], capture_output=True,
                            text=True, timeout=timeout, cwd=ROOT, env=env)
    try:
        return result.returncode, json.loads(result.stdout[result.stdout.index("{"):])
    except ValueError:
        return result.returncode, {"raw": result.stdout + result.stderr}


def task_result(output, task_name_part, host=PBX):
    for play in output.get("plays", []):
        for task in play["tasks"]:
            if task_name_part in task["task"]["name"] and host in task["hosts"]:
                return task["hosts"][host]
    raise AssertionError(f"task {task_name_part!r} not in the output: {str(output)[:2000]}")


def roster_with(tmp_path, changes):
    """A copy of the lab roster with ``changes`` {person id: {column: value}} applied."""
    rows = list(csv.DictReader(io.StringIO((INVENTORY / "roster.csv").read_text(encoding="utf-8"))))
    for row in rows:
        row.update(changes.get(row["id"], {}))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    path = tmp_path / "roster.csv"
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


@pytest.fixture(scope="module", autouse=True)
def lab():
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed: no lab")
    running = subprocess.run(["podman", "ps", "--format", "{{.Names}}"], capture_output=True, text=True,
                             env=ENV, timeout=30).stdout.split()
    missing = {PBX, PSTN, DESK} - set(running)
    if missing:
        pytest.skip(f"lab containers not running: {', '.join(sorted(missing))} (scripts/teleshift lab up)")
    if sh(PBX, "systemctl is-active asterisk").stdout.strip() != "active":
        pytest.skip("Asterisk is not running on ts-pbx1: converge playbooks/telephony.yml first")
    for host in (PSTN, DESK):
        sh(host, "rm -rf /tmp/ts-sipp && mkdir -p /tmp/ts-sipp", check=True)
        subprocess.run(["podman", "cp", f"{SIPP_DIR}/.", f"{host}:/tmp/ts-sipp/"], check=True, env=ENV, timeout=30)
    yield


# ------------------------------------------------------------------------------------------------ forwarding

def test_forwarded_always_call_reaches_the_operator_addressed_to_the_persons_number():
    since = operator_log_size()
    rc, err = finish(call("1001"))  # amartin: always -> 06 12 34 56 78
    assert rc == 0, err
    assert "0612345678" in operator_invites(since)


def test_busy_desk_forwards_to_the_persons_number():
    register("blefevre", "1002", 5062)  # blefevre: busy -> +33 6 23 45 67 89
    phone = None
    try:
        phone = desk("desk-busy", 5062)
        since = operator_log_size()
        rc, err = finish(call("1002", port=5071))
        assert rc == 0, err
        rc, err = finish(phone)
        assert rc == 0, f"the desk phone never saw the call: {err}"
        assert operator_invites(since) == ["0623456789"]
    finally:
        if phone is not None and phone.poll() is None:
            finish(phone, 60)
        register("blefevre", "1002", 5062, expires=0)


def test_unanswered_desk_forwards_after_the_persons_delay():
    register("cgarcia", "1003", 5063)  # cgarcia: no_answer after 15 s -> 07 61 23 45 67
    phone = None
    try:
        phone = desk("desk-noanswer", 5063, timeout=45)
        since = operator_log_size()
        start = time.monotonic()
        caller = call("1003", port=5072, timeout=50)
        invites = operator_invites(since, wait=30)
        elapsed = time.monotonic() - start
        assert invites == ["0761234567"]
        assert elapsed >= 14, f"forwarded after {elapsed:.1f} s, before the 15 s delay"
        assert finish(caller)[0] == 0
        assert finish(phone)[0] == 0, "the desk phone was not rung then cancelled"
    finally:
        if phone is not None and phone.poll() is None:
            finish(phone, 60)
        register("cgarcia", "1003", 5063, expires=0)


# ------------------------------------------------------------------------------------------------ attendants

def prompt_seconds(name):
    size = int(sh(PBX, f"stat -c %s /var/lib/asterisk/sounds/teleshift/{name}.wav", check=True).stdout)
    return (size - 44) / 16000  # 8 kHz, 16-bit mono WAV


def test_attendant_plays_its_greeting_then_transfers_to_the_on_duty_number():
    since = operator_log_size()
    start = time.monotonic()
    caller = call("0546000000", hold_ms=20000, port=5073, timeout=60)  # the operator's DID for accueil
    invites = operator_invites(since, wait=45)
    elapsed = time.monotonic() - start
    assert invites == ["0546000001"]
    greeting = prompt_seconds("ts-att-accueil-greeting")
    assert greeting > 3
    assert elapsed >= greeting, f"transferred after {elapsed:.1f} s: the {greeting:.1f} s greeting did not play"
    assert finish(caller)[0] == 0


def test_attendant_without_transfer_takes_a_voicemail_that_lands_in_the_box():
    before = voicemails("8901")
    rc, err = finish(call_and_talk("8001", port=5074))  # rsa-info: greeting then box 8901
    assert rc == 0, err
    deadline = time.monotonic() + 10
    while voicemails("8901") <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert voicemails("8901") == before + 1


def test_attendant_menu_key_2_leaves_a_message_instead_of_transferring():
    before = voicemails("8900")
    since = operator_log_size()
    proc = sipp(PSTN, f"{PBX_OUTSIDE}:5060 -sf caller-menu2-uac.xml -s 8000 -i {PSTN_IP} -p 5078 -m 1", 60)
    rc, err = finish(proc)
    assert rc == 0, err
    assert operator_invites(since, wait=2) == [], "key 2 must not transfer to the on-duty number"
    deadline = time.monotonic() + 10
    while voicemails("8900") <= before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert voicemails("8900") == before + 1


def test_conference_room_admits_a_caller_with_the_pin():
    proc = sipp(PSTN, f"{PBX_OUTSIDE}:5060 -sf caller-pin-uac.xml -s 8500 -i {PSTN_IP} -p 5079 -m 1", 60)
    try:
        deadline = time.monotonic() + 25
        listed = ""
        while time.monotonic() < deadline and proc.poll() is None:
            listed = sh(PBX, 'asterisk -rx "confbridge list"').stdout
            if re.search(r"^crise\s+1\b", listed, re.M):
                break
            time.sleep(1)
        assert re.search(r"^crise\s+1\b", listed, re.M), f"nobody joined room crise: {listed}"
    finally:
        finish(proc, 60)


def test_closed_on_a_holiday_plays_the_closed_path_without_transfer(tmp_path):
    today = datetime.datetime.now(ZoneInfo("Europe/Paris")).date().isoformat()
    extra = tmp_path / "holiday.json"
    extra.write_text(json.dumps({"asterisk_pbx_holidays": [{"date": today, "label": "test closure"}]}))
    rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_forwarding", "-e", f"@{extra}")
    assert rc == 0, out
    try:
        result = task_result(out, "Converge forwarding")
        assert f"holiday {today}" in result["people"]["added"] and result["method"] in ("ami", "cli")
        before = voicemails("8900")
        since = operator_log_size()
        rc, err = finish(call_and_talk("8000", port=5075))
        assert rc == 0, err
        assert operator_invites(since, wait=3) == [], "a closed attendant must not transfer"
        deadline = time.monotonic() + 10
        while voicemails("8900") <= before and time.monotonic() < deadline:
            time.sleep(0.5)
        assert voicemails("8900") == before + 1, "the closed path's voicemail did not record"
    finally:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_forwarding")
        assert rc == 0, out


# ------------------------------------------------------------------------------------------------ queues

def test_queue_call_reaches_a_logged_in_agent():
    register("dnguyen", "1004", 5064)
    agent = None
    try:
        login = sipp(DESK, f"{PBX_INSIDE}:5060 -sf softphone-feature.xml -s *458100 -au 1004 "
                           f"-ap {secret('dnguyen')} -key user 1004 -i {DESK_IP} -p 5064 -m 1", 30)
        rc, err = finish(login)
        assert rc == 0, f"agent login failed: {err}"
        members = sh(PBX, 'asterisk -rx "queue show social"').stdout
        assert "PJSIP/1004" in members
        agent = desk("desk-answer", 5064, timeout=50)
        rc, err = finish(call("0546000100", hold_ms=3000, port=5076, timeout=45))  # DID of queue social
        assert rc == 0, err
        rc, err = finish(agent)
        assert rc == 0, f"the agent's softphone did not get the queue call: {err}"
    finally:
        sh(PBX, 'asterisk -rx "queue remove member PJSIP/1004 from social"')
        if agent is not None and agent.poll() is None:
            finish(agent, 60)  # bounded by its own -timeout; frees the port
        register("dnguyen", "1004", 5064, expires=0)


# ------------------------------------------------------------------------------------------------ live change

def test_changing_one_forwarding_keeps_a_call_in_progress_and_reloads_nothing(tmp_path):
    roster = roster_with(tmp_path, {"cgarcia": {"forward_to": "07 61 23 45 68"}})
    reload_before = last_reload_seconds()
    since = operator_log_size()
    long_call = call("1001", hold_ms=45000, port=5077, timeout=70)  # amartin -> operator, held 45 s
    assert operator_invites(since, wait=10) == ["0612345678"]
    try:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_forwarding",
                           "-e", f"teleshift_roster_file={roster}")
        assert rc == 0, out
        result = task_result(out, "Converge forwarding")
        assert result["people"] == {"added": [], "changed": ["person cgarcia"], "removed": []}
        assert sh(PBX, 'asterisk -rx "database get CFNA 1003"').stdout.strip().endswith("0761234568")
        assert last_reload_seconds() >= reload_before, "something reloaded Asterisk"
        rc, err = finish(long_call, 70)
        assert rc == 0, f"the call in progress was disturbed: {err}"
    finally:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_forwarding")
        assert rc == 0, out


def test_check_mode_shows_a_forwarding_change_without_making_it(tmp_path):
    roster = roster_with(tmp_path, {"edupont": {"forward_mode": "always"}})
    rc, out = playbook("playbooks/telephony.yml", "--check", "--diff", "--tags", "asterisk_pbx_forwarding",
                       "-e", f"teleshift_roster_file={roster}")
    assert rc == 0, out
    result = task_result(out, "Converge forwarding")
    assert result["changed"] and result["people"]["changed"] == ["person edupont"]
    assert "CFIM/1005 = 0611223344  # person edupont" in result["diff"]["after"]
    assert sh(PBX, 'asterisk -rx "database get CFIM 1005"').stdout.strip().startswith(
        "Database entry not found")


# ------------------------------------------------------------------------------------------------ rollback

def test_a_configuration_that_does_not_load_as_expected_is_rolled_back(tmp_path):
    before = sh(PBX, "sha256sum /etc/asterisk/pjsip.conf", check=True).stdout.split()[0]
    current = sh(PBX, "cat /etc/asterisk/pjsip.conf", check=True).stdout
    endpoints = current.count("type=endpoint")
    start = current.index(";; teleshift: person amartin\n")
    end = current.index(";; teleshift: ", start + 1)
    broken = current[:start] + current[end:]  # well formed, but one endpoint short of what is expected
    (tmp_path / "files.json").write_text(json.dumps({"files": {"pjsip.conf": broken}, "expected": endpoints}))
    (tmp_path / "play.yml").write_text(
        "- hosts: ts-pbx1\n  gather_facts: false\n  tasks:\n"
        "    - name: Install a pjsip.conf that loads one endpoint short\n"
        "      teleshift.toolkit.asterisk_config:\n"
        "        files: \"{{ files }}\"\n        expect_endpoints: \"{{ expected }}\"\n")
    rc, out = playbook(str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'files.json'}")
    assert rc != 0
    result = task_result(out, "loads one endpoint short")
    assert "previous files restored" in result["msg"]
    assert result["files"]["pjsip.conf"]["removed"] == ["person amartin"]
    assert sh(PBX, "sha256sum /etc/asterisk/pjsip.conf").stdout.split()[0] == before
    shown = sh(PBX, 'asterisk -rx "pjsip show endpoint 1001"').stdout
    assert "Unable to find" not in shown and "1001" in shown
    assert secret("amartin") not in json.dumps(out)


# ------------------------------------------------------------------------------------------------ policy, idempotence

def test_forbidden_target_fails_preflight_with_line_and_field(tmp_path):
    roster = roster_with(tmp_path, {"gbrun": {"forward_to": "+44 20 7946 0958"}})
    rc, out = playbook("playbooks/site.yml", "--tags", "preflight", "-e", f"teleshift_roster_file={roster}")
    assert rc != 0
    text = json.dumps(out)
    assert f"{roster}:8: forward_to:" in text and "international" in text


def test_secrets_stay_out_of_files_diffs_and_output(tmp_path):
    mode = sh(PBX, "stat -c '%a %U %G' /etc/asterisk/pjsip.conf /etc/asterisk/voicemail.conf", check=True).stdout
    assert mode.split("\n")[:2] == ["640 root asterisk", "640 root asterisk"]
    roster = roster_with(tmp_path, {"fmuller": {"needs": "vpn;phone", "extension": "1006"}})
    rc, out = playbook("playbooks/telephony.yml", "--check", "--diff", "--tags", "asterisk_pbx_config",
                       "-e", f"teleshift_roster_file={roster}")
    assert rc == 0, out
    result = task_result(out, "Install the PBX configuration")
    assert result["changed"] and "person fmuller" in result["files"]["pjsip.conf"]["added"]
    text = json.dumps(out)
    for person in ("amartin", "blefevre", "dnguyen"):
        assert secret(person) not in text
    assert not (KITS / "fmuller" / "phone").exists(), "check mode wrote a kit"


def test_second_converge_changes_nothing():
    rc, out = playbook("playbooks/telephony.yml")
    assert rc == 0, out
    stats = out["stats"]
    assert {host: s["changed"] for host, s in stats.items()} == {host: 0 for host in stats}


# ------------------------------------------------------------------------------------------------ protection

def firewall_or_skip():
    if sh(PBX, "nft list table inet teleshift_pbx").returncode != 0:
        pytest.skip("the PBX firewall is not active (asterisk_pbx_firewall needs CAP_NET_ADMIN in ts-pbx1)")


def sip_options_answered(host, source_ip):
    """Send one SIP OPTIONS from ``host`` to the PBX and say whether anything answered within 3 s."""
    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.bind((sys.argv[1],0))\n"
        "p=s.getsockname()[1]\n"
        "m=('OPTIONS sip:probe@%s SIP/2.0\\r\\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKprobe%d\\r\\n'\n"
        "   'From: <sip:probe@%s>;tag=1\\r\\nTo: <sip:probe@%s>\\r\\nCall-ID: probe%d\\r\\nCSeq: 1 OPTIONS\\r\\n'\n"
        "   'Max-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n')%(sys.argv[2],sys.argv[1],p,p,sys.argv[1],sys.argv[2],p)\n"
        "s.sendto(m.encode(),(sys.argv[2],5060))\n"
        "try:\n  s.recvfrom(4096);print('answered')\nexcept socket.timeout:\n  print('silent')\n")
    out = sh(host, f"python3 - {source_ip} {PBX_OUTSIDE} <<'PY'\n{probe}PY", timeout=20)
    return out.stdout.strip() == "answered"


def test_sip_answers_the_trunk_but_not_other_outside_hosts():
    firewall_or_skip()
    assert sip_options_answered(PSTN, PSTN_IP)
    assert not sip_options_answered("ts-client1", "10.89.250.50")


def test_failed_registrations_get_banned():
    firewall_or_skip()
    if sh(PBX, "fail2ban-client status asterisk").returncode != 0:
        pytest.skip("fail2ban's asterisk jail is not running")
    try:
        for _ in range(6):
            proc = sipp(DESK, f"{PBX_INSIDE}:5060 -sf softphone-register.xml -s 1004 -au 1004 -ap wrong-password "
                              f"-key expires 60 -i {DESK_IP} -p 5069 -m 1", 10)
            finish(proc, 15)
        deadline = time.monotonic() + 20
        while DESK_IP not in sh(PBX, "fail2ban-client status asterisk").stdout and time.monotonic() < deadline:
            time.sleep(1)
        assert DESK_IP in sh(PBX, "fail2ban-client status asterisk").stdout
    finally:
        sh(PBX, f"fail2ban-client set asterisk unbanip {DESK_IP}")
