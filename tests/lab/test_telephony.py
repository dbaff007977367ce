"""Telephony against the live lab: real calls through Asterisk on ts-pbx1.

Emulated components (SIPp): the operator network on ts-pstn1 (a UAS answering every forwarded call,
plus callers from the outside), desk phones / agent softphones on ts-desk1 (register, then answer,
ring without answer, or answer busy), and a teleworker's softphone on the laptop stand-in ts-client1,
through that person's real WireGuard tunnel. Voicemail notifications go over real SMTP to a stand-in mail
server on ts-pstn1 (playbooks/lab_mail.yml). Every SIPp run is bounded (-m, -timeout, and a process
timeout); every wait is bounded in time.

Run after converging the lab: ``scripts/teleshift lab up && ansible-playbook playbooks/telephony.yml``,
then ``.venv/bin/pytest tests/lab/test_telephony.py``.
"""
from __future__ import annotations

import csv
import datetime
import email
import email.policy
import email.utils
import importlib.util
import io
import ipaddress
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "inventories" / "lab"
KITS = ROOT / "kits" / "lab"
SIPP_DIR = ROOT / "tests" / "lab" / "sipp"
PBX, PSTN, DESK, CLIENT = "ts-pbx1", "ts-pstn1", "ts-desk1", "ts-client1"
PBX_OUTSIDE, PBX_INSIDE, PSTN_IP, DESK_IP = "10.89.250.30", "10.89.251.30", "10.89.250.60", "10.89.251.20"
OPERATOR_LOG = "/var/log/teleshift-lab/operator-messages.log"
MAIL_SPOOL = "/var/spool/teleshift-lab-mail/new"  # the stand-in mail server's messages (playbooks/lab_mail.yml)
VPN_POOL = ipaddress.ip_network("10.100.0.0/16")
SOFTPHONE_PERSON = "dnguyen"  # phone + VPN, service dsi (the tunnel reaches the internal network, PBX included)
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


def desk(scenario, port, timeout=40, host=DESK, address=DESK_IP):
    """A desk phone on ts-desk1 (or a softphone on ``host``) waiting for one call with ``scenario``."""
    proc = sipp(host, f"-sf {scenario}.xml -i {address} -p {port} -m 1 -trace_msg "
                      f"-message_file /tmp/ts-sipp/{scenario}-{port}.log", timeout)
    deadline = time.monotonic() + 15  # the PBX must not call before SIPp listens
    while f"{address}:{port} " not in sh(host, "ss -Hlun").stdout:
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


def conference_members(room="crise"):
    found = re.search(rf"^{room}\s+(\d+)\b", sh(PBX, 'asterisk -rx "confbridge list"').stdout, re.M)
    return int(found.group(1)) if found else 0


def test_conference_room_admits_a_caller_with_the_pin():
    before = conference_members()
    proc = sipp(PSTN, f"{PBX_OUTSIDE}:5060 -sf caller-pin-uac.xml -s 8500 -i {PSTN_IP} -p 5079 -m 1", 60)
    try:
        deadline, members = time.monotonic() + 25, before
        while time.monotonic() < deadline and proc.poll() is None:
            members = conference_members()
            if members == before + 1:
                break
            time.sleep(1)
        assert members == before + 1, f"nobody joined room crise ({members} member(s), {before} before)"
    finally:
        rc, err = finish(proc, 60)
    assert rc == 0, f"the caller's call did not end cleanly: {err}"
    deadline = time.monotonic() + 10
    while conference_members() != before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert conference_members() == before, "the caller hung up but is still in the room"


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


# ------------------------------------------------------------------------------------------------ voicemail e-mail

def roster_person(pid):
    rows = csv.DictReader(io.StringIO((INVENTORY / "roster.csv").read_text(encoding="utf-8")))
    return next(row for row in rows if row["id"] == pid)


def mail_files():
    return set(sh(PSTN, f"ls {MAIL_SPOOL} 2>/dev/null").stdout.split())


def contacts(extension):
    """The contacts Asterisk lists for ``extension`` (``pjsip show contacts``), as 'ext/sip:...' strings."""
    out = sh(PBX, 'asterisk -rx "pjsip show contacts"', check=True).stdout
    return re.findall(rf"^\s*Contact:\s+({re.escape(extension)}/sip:\S+)", out, re.M)


def test_voicemail_is_emailed_over_smtp_to_the_persons_address():
    if sh(PSTN, "systemctl is-active teleshift-lab-mail-sink").stdout.strip() != "active":
        _helpers.lab_missing("the stand-in mail server is not running on ts-pstn1: run playbooks/lab_mail.yml")
    person = roster_person(SOFTPHONE_PERSON)  # voicemail yes, no forwarding: an unanswered desk goes to voicemail
    extension, address = person["extension"], person["email"]
    assert contacts(extension) == [], f"{extension} is registered somewhere: the call would ring it first"
    before_mail, before_box = mail_files(), voicemails(extension)
    rc, err = finish(call_and_talk(extension, port=5080))
    assert rc == 0, err
    deadline = time.monotonic() + 10
    while voicemails(extension) <= before_box and time.monotonic() < deadline:
        time.sleep(0.5)
    assert voicemails(extension) == before_box + 1, "no message landed in the box"
    found, deadline = [], time.monotonic() + 30
    while time.monotonic() < deadline:
        for name in sorted(mail_files() - before_mail):
            raw = sh(PSTN, f"cat {MAIL_SPOOL}/{name}", check=True).stdout
            message = email.message_from_string(raw, policy=email.policy.default)
            if address in message["X-Lab-Envelope-To"]:
                found.append((name, message))
        if found:
            break
        time.sleep(1)
    try:
        assert len(found) == 1, f"no notification for {address} reached the stand-in mail server within 30 s"
        message = found[0][1]
        assert message["X-Lab-Peer"] == PBX_OUTSIDE  # handed over SMTP by the PBX itself
        assert [a for _, a in email.utils.getaddresses(message.get_all("To", []))] == [address]
        assert f"box {extension}" in message["Subject"]
        assert email.utils.parseaddr(message["From"])[1] == "pbx@departement.example"
        assert any(part.get_content_maintype() == "audio" for part in message.iter_attachments()), \
            "the recording is not attached"
    finally:
        for name, _ in found:
            sh(PSTN, f"rm -f {MAIL_SPOOL}/{name}")


# ------------------------------------------------------------------------------------------------ softphone via VPN

def kit_account(person):
    """The softphone account from the person's kit (phone/account.txt: 'key: value' lines)."""
    text = (KITS / person / "phone" / "account.txt").read_text(encoding="utf-8")
    return dict(re.findall(r"^(\w+): (.*)$", text, re.M))


def tunnel_handshaken(within=180):
    """Whether the laptop's tunnel completed a handshake in the last ``within`` seconds."""
    out = sh(CLIENT, "date +%s; wg show teleshift latest-handshakes").stdout.split()
    return len(out) >= 3 and out[2] != "0" and int(out[0]) - int(out[2]) < within


@pytest.fixture(scope="module")
def softphone():
    """ts-client1 with the person's WireGuard tunnel up (their kit's profile) and the SIPp scenarios;
    yields (tunnel address, kit account)."""
    if not _helpers.lab_running(CLIENT):
        _helpers.lab_missing(f"{CLIENT} is not running (scripts/teleshift lab up)")
    if sh(CLIENT, "command -v sipp").returncode != 0:
        _helpers.lab_missing(f"no SIPp on {CLIENT}: run playbooks/lab.yml (lab_client_phone.yml)")
    profile = (KITS / SOFTPHONE_PERSON / "vpn" / "teleshift.conf").read_text()
    installed = sh(CLIENT, "cat /etc/wireguard/teleshift.conf 2>/dev/null").stdout
    if installed.strip() != profile.strip() or sh(CLIENT, "ip link show teleshift").returncode != 0:
        _helpers.client_tunnel_up(profile)  # another suite left someone else's tunnel
    _helpers.client_gate_open(SOFTPHONE_PERSON)  # second factor: the gate open (a session may have ended)
    deadline = time.monotonic() + 20
    while not tunnel_handshaken() and time.monotonic() < deadline:
        # a datagram into the tunnel makes WireGuard handshake (to the PBX's discard port: no answer needed)
        sh(CLIENT, f"python3 -c \"import socket; socket.socket(2, 2).sendto(b'x', ('{PBX_INSIDE}', 9))\"")
        time.sleep(1)
    assert tunnel_handshaken(), ("the laptop's tunnel does not handshake with the gateway: is ts-gw1 converged "
                                 "from the lab inventory (the kits in kits/lab)?")
    found = re.search(r"inet ([\d.]+)/", sh(CLIENT, "ip -4 -o addr show dev teleshift").stdout)
    assert found, "the tunnel has no address"
    tunnel = found.group(1)
    assert ipaddress.ip_address(tunnel) in VPN_POOL
    sh(CLIENT, "rm -rf /tmp/ts-sipp && mkdir -p /tmp/ts-sipp", check=True)
    subprocess.run(["podman", "cp", f"{SIPP_DIR}/.", f"{CLIENT}:/tmp/ts-sipp/"], check=True, env=ENV, timeout=30)
    return tunnel, kit_account(SOFTPHONE_PERSON)


def softphone_register(tunnel, account, port, password=None, scenario="softphone-register", expires=600):
    extra = f"-key expires {expires} " if scenario == "softphone-register" else ""
    proc = sipp(CLIENT, f"{account['server']}:{account['port']} -sf {scenario}.xml -s {account['extension']} "
                        f"-au {account['username']} -ap {password or account['password']} {extra}"
                        f"-i {tunnel} -p {port} -m 1", 15)
    return finish(proc, 20)


def test_softphone_registers_through_the_vpn_with_the_kit_credentials(softphone):
    tunnel, account = softphone
    assert account["server"] == PBX_INSIDE and account["transport"] == "udp"
    assert sip_options_answered(CLIENT, tunnel, PBX_INSIDE), "SIP must answer the VPN pool"
    try:
        rc, err = softphone_register(tunnel, account, 5090)
        assert rc == 0, f"REGISTER with the kit's credentials did not get 200 OK: {err}"
        assert contacts(account["extension"]) == [f"{account['extension']}/sip:{account['extension']}@{tunnel}:5090"]
    finally:
        softphone_register(tunnel, account, 5090, expires=0)
    assert contacts(account["extension"]) == []


def test_softphone_outside_the_vpn_gets_no_answer(softphone):
    """The same kit credentials, from the laptop's own outside address to the PBX's outside address: the
    firewall lets SIP in there only from the trunk, so the REGISTER is never answered."""
    firewall_or_skip()
    _, account = softphone
    outside = "10.89.250.50"
    proc = sipp(CLIENT, f"{PBX_OUTSIDE}:5060 -sf softphone-register.xml -s {account['extension']} "
                        f"-au {account['username']} -ap {account['password']} -key expires 600 "
                        f"-i {outside} -p 5093 -m 1", 10)
    try:
        rc, _ = finish(proc, 20)
        assert rc != 0, "a REGISTER from outside the VPN pool was answered and accepted"
        assert not [c for c in contacts(account["extension"]) if f"@{outside}:" in c]
    finally:  # if it was accepted after all, take the contact back
        if [c for c in contacts(account["extension"]) if f"@{outside}:" in c]:
            finish(sipp(CLIENT, f"{PBX_OUTSIDE}:5060 -sf softphone-register.xml -s {account['extension']} "
                                f"-au {account['username']} -ap {account['password']} -key expires 0 "
                                f"-i {outside} -p 5093 -m 1", 10), 20)


def test_call_to_the_extension_rings_the_softphone_at_home(softphone):
    tunnel, account = softphone
    phone = None
    try:
        rc, err = softphone_register(tunnel, account, 5091)
        assert rc == 0, err
        phone = desk("desk-answer", 5091, timeout=40, host=CLIENT, address=tunnel)
        since = operator_log_size()
        rc, err = finish(call(account["extension"], hold_ms=3000, port=5081, timeout=40))
        assert rc == 0, f"the caller's call was not answered: {err}"
        rc, err = finish(phone)
        assert rc == 0, f"the softphone on the laptop did not get and answer the call: {err}"
        assert operator_invites(since, wait=1) == [], "the call was forwarded instead of ringing the softphone"
    finally:
        if phone is not None and phone.poll() is None:
            finish(phone, 60)
        softphone_register(tunnel, account, 5091, expires=0)


def test_softphone_with_a_wrong_password_is_refused_and_not_listed(softphone):
    tunnel, account = softphone
    try:
        rc, err = softphone_register(tunnel, account, 5092, password="not-" + account["password"],
                                     scenario="softphone-register-refused")
        assert rc == 0, f"the authenticated REGISTER was not answered 401/403: {err}"
        assert not [c for c in contacts(account["extension"]) if f"@{tunnel}:" in c]
    finally:
        # one failure counts towards fail2ban's limit; never leave the laptop's tunnel address banned
        if firewall_expected():
            sh(PBX, f"fail2ban-client set asterisk unbanip {tunnel}")


# ------------------------------------------------------------------------------------------------ protection

def firewall_expected():
    """Whether the lab gives ts-pbx1 CAP_NET_ADMIN (then the role loads nftables and fail2ban there)."""
    hosts = yaml.safe_load((INVENTORY / "hosts.yml").read_text())
    pbx = hosts["all"]["children"]["teleshift_lab"]["children"]["pbx_hosts"]["hosts"][PBX]
    return "NET_ADMIN" in (pbx.get("teleshift_lab_capabilities") or [])


def firewall_or_skip():
    if not firewall_expected():
        pytest.skip("ts-pbx1 has no CAP_NET_ADMIN in the lab definition: the role leaves the firewall out")
    table = sh(PBX, "nft list table inet teleshift_pbx")
    assert table.returncode == 0, f"the PBX firewall is not loaded: {table.stderr}"
    jail = sh(PBX, "fail2ban-client status asterisk")
    assert jail.returncode == 0, f"fail2ban's asterisk jail is not running: {jail.stdout}{jail.stderr}"


def sip_options_answered(host, source_ip, target=PBX_OUTSIDE):
    """Send one SIP OPTIONS from ``host`` to the PBX and say whether anything answered within 3 s."""
    probe = (
        "import socket,sys\n"
        "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3);s.bind((sys.argv[1],0))\n"
        "p=s.getsockname()[1]\n"
        "m=('OPTIONS sip:probe@%s SIP/2.0\\r\\nVia: SIP/2.0/UDP %s:%d;branch=z9hG4bKprobe%d\\r\\n'\n"
        "   'From: <sip:probe@%s>;tag=1\\r\\nTo: <sip:probe@%s>\\r\\nCall-ID: probe%d\\r\\nCSeq: 1 OPTIONS\\r\\n'\n"
        "   'Max-Forwards: 70\\r\\nContent-Length: 0\\r\\n\\r\\n')"
        "%(sys.argv[2],sys.argv[1],p,p,sys.argv[1],sys.argv[2],p)\n"
        "s.sendto(m.encode(),(sys.argv[2],5060))\n"
        "try:\n  s.recvfrom(4096);print('answered')\nexcept OSError:\n  print('silent')\n")
    out = sh(host, f"python3 - {source_ip} {target} <<'PY'\n{probe}PY", timeout=20)
    return out.stdout.strip() == "answered"


def test_sip_answers_the_trunk_but_not_other_outside_hosts():
    firewall_or_skip()
    assert sip_options_answered(PSTN, PSTN_IP)
    assert not sip_options_answered(CLIENT, "10.89.250.50"), "SIP answered an address outside the VPN pool"


def banned():
    out = sh(PBX, "fail2ban-client status asterisk", check=True).stdout
    found = re.search(r"Banned IP list:\s*(.*)$", out, re.M)
    return found.group(1).split() if found else []


def test_failed_registrations_get_banned():
    firewall_or_skip()
    assert DESK_IP not in banned()
    assert sip_options_answered(DESK, DESK_IP, PBX_INSIDE), "the desk phones' host must reach SIP to begin with"
    try:
        for _ in range(6):
            proc = sipp(DESK, f"{PBX_INSIDE}:5060 -sf softphone-register-refused.xml -s 1004 -au 1004 "
                              f"-ap wrong-password -i {DESK_IP} -p 5069 -m 1", 10)
            finish(proc, 15)
            if DESK_IP in banned():
                break
        deadline = time.monotonic() + 20
        while DESK_IP not in banned() and time.monotonic() < deadline:
            time.sleep(1)
        assert DESK_IP in banned()
        assert not sip_options_answered(DESK, DESK_IP, PBX_INSIDE), "a banned address still reaches SIP"
    finally:
        sh(PBX, f"fail2ban-client set asterisk unbanip {DESK_IP}")
    assert DESK_IP not in banned()
    assert sip_options_answered(DESK, DESK_IP, PBX_INSIDE), "the address still cannot reach SIP after the unban"


# ------------------------------------------------------------------------------------------------ toll fraud

CALLER, CALLER_EXT = "dnguyen", "1004"  # a registered softphone (no forwarding of its own)


def softphone_call(number, port, scenario="softphone-call", hold_ms=1000, timeout=30, log=None):
    """The registered softphone on ts-desk1 calls ``number`` with the kit's credentials (SIPp UAC)."""
    trace = f"-trace_msg -message_file /tmp/ts-sipp/{log} " if log else ""
    return sipp(DESK, f"{PBX_INSIDE}:5060 -sf {scenario}.xml -s {number} -au {CALLER_EXT} -ap {secret(CALLER)} "
                      f"-key user {CALLER_EXT} -i {DESK_IP} -p {port} -m 1 -d {hold_ms} {trace}", timeout)


def final_response(log):
    """The final error response the softphone got (from its SIPp message log)."""
    text = sh(DESK, f"cat /tmp/ts-sipp/{log}").stdout
    codes = re.findall(r"^SIP/2\.0 ([3-6]\d\d) ", text, re.M)
    return [c for c in codes if c not in ("401", "407")]


@pytest.fixture
def registered_caller():
    register(CALLER, CALLER_EXT, 5095)
    yield
    register(CALLER, CALLER_EXT, 5095, expires=0)


@pytest.mark.parametrize("number, kind", [("0899123456", "premium rate"), ("00442079460958", "international"),
                                          ("3949", "short code"), ("118712", "short code")])
def test_softphone_calls_the_policy_refuses_get_a_sip_refusal_and_never_reach_the_operator(
        registered_caller, number, kind):
    since = operator_log_size()
    log = f"refused-{number}.log"
    rc, err = finish(softphone_call(number, 5096, "softphone-call-refused", log=log))
    assert rc == 0, f"a call to {number} ({kind}) was not refused with a SIP error: {err}"
    assert set(final_response(log)) == {"403"}
    assert operator_invites(since, wait=3) == [], f"the PBX sent a call to {number} ({kind}) to the operator"


@pytest.mark.parametrize("number", ["0612345678", "112", "15"])
def test_a_national_mobile_and_emergency_numbers_go_through_to_the_operator(registered_caller, number):
    since = operator_log_size()
    rc, err = finish(softphone_call(number, 5097))
    assert rc == 0, f"the call to {number} was not answered: {err}"
    assert operator_invites(since) == [number]


def test_a_third_concurrent_outbound_call_from_one_endpoint_is_refused(registered_caller):
    limit = yaml.safe_load((INVENTORY / "group_vars" / "pbx_hosts" / "asterisk.yml").read_text())[
        "asterisk_pbx_max_outbound_calls"]
    assert limit == 2
    since = operator_log_size()
    held = [softphone_call(n, 5100 + i, hold_ms=15000, timeout=40) for i, n in enumerate(["0612345678", "0761234567"])]
    try:
        deadline = time.monotonic() + 10
        while len(operator_invites(since, wait=0)) < 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert sorted(operator_invites(since, wait=0)) == ["0612345678", "0761234567"]
        third_since = operator_log_size()
        rc, err = finish(softphone_call("0698765432", 5102, "softphone-call-refused", log="third.log"))
        assert rc == 0, f"the third call was not refused: {err}"
        assert set(final_response("third.log")) == {"486"}
        assert operator_invites(third_since, wait=2) == []
        rc, err = finish(softphone_call("112", 5103))  # emergency calls are never limited
        assert rc == 0, err
    finally:
        for proc in held:
            assert finish(proc, 45)[0] == 0, "a call within the limit was disturbed"
    rc, err = finish(softphone_call("0698765432", 5104))  # the limit frees up when calls end
    assert rc == 0, err


def test_a_call_over_the_maximum_length_is_cut(tmp_path, registered_caller):
    rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_config",
                       "-e", json.dumps({"asterisk_pbx_max_call_seconds": 6}))
    assert rc == 0, out
    try:
        assert "TS_MAX_SECS=6" in sh(PBX, "cat /etc/asterisk/extensions.conf").stdout
        start = time.monotonic()
        rc, err = finish(softphone_call("0612345678", 5105, "softphone-call-cut", timeout=40))
        elapsed = time.monotonic() - start
        assert rc == 0, f"the PBX did not hang up the call: {err}"
        assert 6 <= elapsed < 20, f"cut after {elapsed:.1f} s, the maximum is 6 s after the answer"
    finally:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_config")
        assert rc == 0, out


# ------------------------------------------------------------------------------------------------ revocation

def queue_interfaces(queue="social"):
    return re.findall(r"\((PJSIP/\d+|Local/[^)\s]+)", sh(PBX, f'asterisk -rx "queue show {queue}"').stdout)


def test_an_inactive_queue_agent_is_left_out_with_a_warning_and_removed_from_the_queue(tmp_path):
    register(CALLER, CALLER_EXT, 5064)
    try:
        login = sipp(DESK, f"{PBX_INSIDE}:5060 -sf softphone-feature.xml -s *458100 -au {CALLER_EXT} "
                           f"-ap {secret(CALLER)} -key user {CALLER_EXT} -i {DESK_IP} -p 5064 -m 1", 30)
        assert finish(login)[0] == 0
        assert f"PJSIP/{CALLER_EXT}" in queue_interfaces()
    finally:
        register(CALLER, CALLER_EXT, 5064, expires=0)
    roster = roster_with(tmp_path, {CALLER: {"active": "no"}})
    try:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_config,asterisk_pbx_forwarding",
                           "-e", f"teleshift_roster_file={roster}")
        assert rc == 0, out
        text = json.dumps(out)
        assert f"'{CALLER}' is inactive or has no phone in the roster" in text
        result = task_result(out, "Converge forwarding")
        assert result["queue_members_removed"] == [f"social: PJSIP/{CALLER_EXT}"]
        assert f"PJSIP/{CALLER_EXT}" not in queue_interfaces()
        assert "Unable to find" in sh(PBX, f'asterisk -rx "pjsip show endpoint {CALLER_EXT}"').stdout
    finally:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_config,asterisk_pbx_forwarding")
        assert rc == 0, out


# ------------------------------------------------------------------------------------------------ exposure

def test_no_channel_driver_but_pjsip_is_loaded_and_iax2_does_not_listen():
    loaded = re.findall(r"^(chan_\w+\.so)", sh(PBX, 'asterisk -rx "module show like chan_"', check=True).stdout, re.M)
    assert sorted(loaded) == ["chan_bridge_media.so", "chan_pjsip.so"]
    listening = sh(PBX, "ss -Hlnu; ss -Hlnt", check=True).stdout
    assert not re.search(r":(4569|4520|2727|5000|5061|8088)\s", listening), listening
    assert re.search(r"127\.0\.0\.1:5038\s", listening) and not re.search(r"(0\.0\.0\.0|\*|\[::\]):5038\s", listening)


SCAN_PORTS = "T:22,80,443,2000,5038,5060,5061,8088,8089,U:2727,4520,4569,5000,5060"


def scan(host, target):
    """{port/proto: state} nmap finds on ``target`` from ``host`` (bounded: listed ports, one retry, 90 s).
    TCP states are decisive (SYN scan); a UDP port that drops and one that listens but ignores nmap's
    probe are both open|filtered, so SIP reachability is checked with a real OPTIONS too."""
    if sh(host, "command -v nmap").returncode != 0:
        _helpers.lab_missing(f"no nmap on {host}: run playbooks/lab.yml (lab_client_phone.yml) and telephony.yml")
    out = sh(host, f"nmap -Pn -n -sS -sU -p {SCAN_PORTS} --max-retries 1 --host-timeout 90s -oX - {target}",
             timeout=150, check=True).stdout
    found = {f"{p}/{proto}": state for proto, p, state in
             re.findall(r'<port protocol="(\w+)" portid="(\d+)"><state state="([\w|]+)"', out)}
    assert len(found) == SCAN_PORTS.count(",") + 1, out[-2000:]  # every port got a verdict: the scan ran
    return found


def assert_only(found, allowed=()):
    """Nothing open but ``allowed``; every TCP port filtered (dropped before any listener could answer)."""
    assert {p for p, state in found.items() if state == "open"} <= set(allowed), found
    assert {p: s for p, s in found.items() if p.endswith("/tcp") and s != "filtered"} == {}, found


def test_from_the_outside_network_a_scan_finds_nothing_open():
    firewall_or_skip()
    assert_only(scan(CLIENT, PBX_OUTSIDE))
    assert not sip_options_answered(CLIENT, "10.89.250.50")


def test_from_the_trunk_a_scan_finds_sip_only():
    firewall_or_skip()
    found = scan(PSTN, PBX_OUTSIDE)
    assert_only(found, ["5060/udp"])
    assert found["5060/udp"] in ("open", "open|filtered") and sip_options_answered(PSTN, PSTN_IP)


def vpn_scan(person):
    """The laptop brings up ``person``'s tunnel (their kit), which must handshake, and scans the PBX:
    (scan, whether SIP answers an OPTIONS from the tunnel address)."""
    _helpers.client_tunnel_up((KITS / person / "vpn" / "teleshift.conf").read_text())
    deadline = time.monotonic() + 20
    while not tunnel_handshaken(within=30) and time.monotonic() < deadline:
        sh(CLIENT, f"python3 -c \"import socket; socket.socket(2, 2).sendto(b'x', ('{PBX_INSIDE}', 9))\"")
        time.sleep(1)
    assert tunnel_handshaken(within=30), f"{person}'s tunnel does not handshake: the scan would prove nothing"
    found = re.search(r"inet ([\d.]+)/", sh(CLIENT, "ip -4 -o addr show dev teleshift").stdout)
    assert found and ipaddress.ip_address(found.group(1)) in VPN_POOL
    return scan(CLIENT, PBX_INSIDE), sip_options_answered(CLIENT, found.group(1), PBX_INSIDE)


def test_from_a_vpn_client_a_scan_finds_only_what_its_service_allows():
    """fmuller (service culture: VPN, no phone) reaches nothing on the PBX; dnguyen (dsi, a softphone) reaches
    SIP only: the VPN pool is a SIP source, not an admin network (SSH), and AMI listens on 127.0.0.1."""
    firewall_or_skip()
    assert roster_person("fmuller")["needs"] == "vpn" and "phone" in roster_person(SOFTPHONE_PERSON)["needs"]
    try:
        found, sip = vpn_scan("fmuller")
        assert_only(found)
        assert not sip, "SIP answered a VPN client whose service has no telephony"
    finally:  # the softphone tests expect their person's tunnel; it is also the positive control
        found, sip = vpn_scan(SOFTPHONE_PERSON)
    assert_only(found, ["5060/udp"])
    assert sip, "SIP must answer a softphone through the VPN"


# ------------------------------------------------------------------------------------------------ config injection

PARSE_DIR = "/etc/asterisk/teleshift-parse-check"
GETCONFIG = r"""
import json, re, socket, sys
text = open("/etc/asterisk/manager.d/teleshift.conf").read()
user = re.search(r"^\[([^\]]+)\]", text, re.M).group(1)
secret = re.search(r"^\s*secret\s*=\s*(\S+)", text, re.M).group(1)
sock = socket.create_connection(("127.0.0.1", 5038), timeout=20)
stream = sock.makefile("rb")
stream.readline()
def send(fields):
    sock.sendall(("".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n").encode())
def read():
    lines = []
    while True:
        line = stream.readline().decode("utf-8", "surrogateescape")
        if line in ("\r\n", ""):
            if lines or not line:
                return lines
            continue
        lines.append(line[:-2] if line.endswith("\r\n") else line)
send({"Action": "Login", "Username": user, "Secret": secret, "Events": "off"})
assert "Success" in read()[0]
result = {}
for name in sys.stdin.read().split():
    send({"Action": "GetConfig", "Filename": name})
    sections = []
    for line in read():
        key, _, value = line.partition(": ")
        if key.startswith("Category-"):
            sections.append([value, []])
        elif key.startswith("Line-"):
            option, _, val = value.partition("=")
            sections[-1][1].append([option, val])
        elif key == "Response" and value != "Success" or key == "Message":
            sections.append(["!" + value, []])
    result[name] = sections
print(json.dumps(result))
"""


def asterisk_reads(examples):
    """Asterisk's own parser (AMI GetConfig on the live PBX, read only) on rendered files:
    {example index: {file: [(section, [(key, value)])]}}. The files sit in a directory of their own
    under /etc/asterisk (GetConfig reads only there) and are removed afterwards; nothing is loaded."""
    local = Path(tempfile.mkdtemp(prefix="ts-parse-"))
    try:
        names = []
        for i, files in enumerate(examples):
            (local / str(i)).mkdir()
            for name, text in files.items():
                (local / str(i) / name).write_text(text, encoding="utf-8")
                names.append(f"teleshift-parse-check/{i}/{name}")
        sh(PBX, f"rm -rf {PARSE_DIR} && mkdir -p {PARSE_DIR}", check=True)
        subprocess.run(["podman", "cp", f"{local}/.", f"{PBX}:{PARSE_DIR}/"], check=True, env=ENV, timeout=60)
        sh(PBX, f"chgrp -R asterisk {PARSE_DIR} && chmod -R g+rX,o-rwx {PARSE_DIR}", check=True)
        out = subprocess.run(["podman", "exec", "-i", PBX, "python3", "-c", GETCONFIG], input="\n".join(names),
                             capture_output=True, text=True, timeout=120, env=ENV)
        assert out.returncode == 0, out.stderr
        read = json.loads(out.stdout)
    finally:
        shutil.rmtree(local, ignore_errors=True)
        sh(PBX, f"rm -rf {PARSE_DIR}")
    result = {}
    for key, sections in read.items():
        _, index, name = key.split("/")
        assert not [s for s, _ in sections if s.startswith("!")], f"Asterisk could not read {key}: {sections}"
        result.setdefault(int(index), {})[name] = [(s, [tuple(kv) for kv in items]) for s, items in sections]
    return result


def hostile_examples(count):
    """``count`` compiled examples with hostile roster and inventory values (hypothesis); refused ones dropped."""
    from hypothesis import HealthCheck, Phase, given, settings

    from hostile import asterisk as hostile

    examples = []

    @settings(max_examples=count, database=None, deadline=None, phases=[Phase.generate], derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(hostile.people(), hostile.inventories())
    def collect(persons, inventory):
        variables, _ = inventory
        plan, phones, problems = hostile.compile_hostile(persons, variables)
        if plan is not None:
            examples.append((plan, phones, variables))

    collect()
    return hostile, examples


def test_asterisk_reads_hostile_values_back_as_exactly_the_expected_sections_and_options():
    from ansible_collections.teleshift.toolkit.plugins.module_utils import asterisk as A

    hostile, examples = hostile_examples(60)
    assert len(examples) >= 20
    files = [{name: plan.files[name] for name in T_FILES} for plan, _, _ in examples]
    read = asterisk_reads(files)
    assert len(read) == len(examples)
    for i, (plan, phones, variables) in enumerate(examples):
        hostile.check_read_back(read[i], phones, variables)
        # and Asterisk reads exactly what the module's pre-apply reader reads
        for name in T_FILES:
            assert read[i][name] == [(s, list(items)) for s, items in A.parse_conf(plan.files[name])], name


T_FILES = ("pjsip.conf", "extensions.conf", "voicemail.conf", "queues.conf", "confbridge.conf", "rtp.conf")


def test_hostile_names_and_emails_go_live_and_the_pbx_keeps_working_for_everyone(tmp_path):
    import dataclasses

    from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster

    attacks = {"amartin": ("Anaïs\r[evil]\r; Martin", "a@b.c,,dialout=ts-internal|callback=ts-internal"),
               "blefevre": ('Benoît ;-- "Lefèvre" <9999>', "benoit.lefevre@departement.example"),
               "dnguyen": ("Đức\nexten => _X.,1,Dial(PJSIP/0899@operator)", "d@x.example;evil=1")}
    roster = load_roster(str(INVENTORY / "roster.csv"))
    people = [dataclasses.replace(p, full_name=attacks[p.id][0], email=attacks[p.id][1]) if p.id in attacks else p
              for p in T.phone_people(roster)]
    variables = yaml.safe_load((INVENTORY / "group_vars" / "pbx_hosts" / "asterisk.yml").read_text())
    policy = T.NumberPolicy()
    cfg, problems, _ = T.load_pbx_config({k: v for k, v in variables.items() if k in T.PBX_VARS}, policy,
                                         {p.id: p.extension for p in people})
    assert not problems
    plan = T.plan_pbx(people, cfg, policy, lambda p, name: secret(p.id, name))
    (tmp_path / "files.json").write_text(json.dumps({"files": plan.files, "expected": len(people) + 1}))
    (tmp_path / "play.yml").write_text(
        "- hosts: ts-pbx1\n  gather_facts: false\n  tasks:\n"
        "    - name: Install files rendered from hostile names and addresses\n"
        "      teleshift.toolkit.asterisk_config:\n"
        "        files: \"{{ files }}\"\n        expect_endpoints: \"{{ expected }}\"\n")
    try:
        rc, out = playbook(str(tmp_path / "play.yml"), "-e", f"@{tmp_path / 'files.json'}")
        assert rc == 0, out  # the pre-apply check passes, every module reloads, every endpoint loads
        users = sh(PBX, 'asterisk -rx "voicemail show users for teleshift"', check=True).stdout
        assert {p.extension for p in people if p.voicemail} <= set(re.findall(r"^teleshift\s+(\d+)", users, re.M))
        assert "evil" not in sh(PBX, 'asterisk -rx "dialplan show"', check=True).stdout
        assert "There is no existence" in sh(PBX, 'asterisk -rx "dialplan show evil"').stdout
        shown = sh(PBX, 'asterisk -rx "pjsip show endpoint 1001"', check=True).stdout
        assert '"Anaïs evil Martin" <1001>' in shown, shown  # one line, no section, no comment
        since = operator_log_size()
        rc, err = finish(call("1001"))  # amartin's forwarding still works
        assert rc == 0, err
        assert "0612345678" in operator_invites(since)
    finally:
        rc, out = playbook("playbooks/telephony.yml", "--tags", "asterisk_pbx_config")
        assert rc == 0, out
