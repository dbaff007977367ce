"""Telework stations in the live lab (docs/laptops.md): two stock Debian laptop stand-ins (ts-laptop1/2,
`lab up --laptops 2`: the lab's base image, no teleshift package) are handed to the people of wave 1 by
`teleshift waves --assign 1` and provisioned by playbooks/laptops.yml in parallel. On each, the person's
WireGuard tunnel comes up, the softphone registers with the PBX through it (seen in `pjsip show contacts`),
the notice PDF is on the desktop; the desktop launcher opens an RDP session for its person (password and
second-factor code). A second run changes nothing. Handed to someone else, a laptop is wiped: its
previous person's id, WireGuard key and SIP password are found nowhere on it.

The laptops are recreated from stock at the start; at the end the state file is put back and the default
lab (without laptops) is brought up again. Needs the lab converged from this checkout (its kits).
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, VENV_BIN, lab_exec, recap, run_playbook = (_helpers.ROOT, _helpers.VENV_BIN, _helpers.lab_exec, _helpers.recap,
                                                 _helpers.run_playbook)

from ansible_collections.teleshift.toolkit.plugins.module_utils.phone_capability import parse_pbx  # noqa: E402

from teleshift_cli import lab, labclient, labsize  # noqa: E402
from teleshift_cli.labclient import wait_for  # noqa: E402

KITS = ROOT / "kits" / "lab"
STATE = ROOT / "inventories" / "lab" / "state" / "laptops.yml"
LAPTOPS = ("ts-laptop1", "ts-laptop2")
WAVE = {"ts-laptop1": "amartin", "ts-laptop2": "dnguyen"}  # the queue's first two laptop people
EXTENSIONS = {"amartin": "1001", "dnguyen": "1004"}
DESK = "10.89.251.20"
DESKTOP = "/home/teleworker/Desktop"


def teleshift(inv, *argv, codes=(0,)):
    argv = [str(VENV_BIN / "python"), str(ROOT / "scripts" / "teleshift"), *argv, "--inventory", str(inv)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode in codes, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc


def tunnel_address(pid):
    text = (KITS / pid / "vpn" / "teleshift.conf").read_text()
    return re.search(r"^Address\s*=\s*([0-9.]+)", text, re.M).group(1)


def contacts():
    out = lab_exec("ts-pbx1", "asterisk", "-rx", "pjsip show contacts", timeout=30).stdout
    return parse_pbx("== contacts\n" + out)["contacts"]


def registered(pid):
    """Whether the PBX has ``pid``'s softphone registered from their tunnel address and reachable."""
    found = contacts().get(EXTENSIONS[pid], [])
    return any(f"@{tunnel_address(pid)}:" in uri and status not in ("Unavail", "Unreachable") for uri, status in found)


@pytest.fixture(scope="module")
def stations(lab_up, tmp_path_factory):
    saved = STATE.read_bytes() if STATE.exists() else None
    inv = labsize.sized_inventory(1, 1, laptops=len(LAPTOPS), dest=tmp_path_factory.mktemp("laptops") / "inventory")
    lab.podman("rm", "--force", "--time", "3", "--ignore", *LAPTOPS, timeout=120)  # stock laptops, every time
    STATE.unlink(missing_ok=True)
    for client in ("ts-client1",):  # the lab's own laptop shares these people's keys: its tunnel goes down
        lab_exec(client, "sh", "-c", "timeout 30 systemctl stop wg-quick@teleshift; "
                                     "ip link delete teleshift 2>/dev/null; "
                                     "systemctl reset-failed wg-quick@teleshift; true", timeout=60)
    try:
        lab.lab_up(inv)
        _helpers.ensure_kit_passwords(["dnguyen"])
        teleshift(inv, "kits", "--pdf")
        teleshift(inv, "waves", "--laptops", str(len(LAPTOPS)), "--assign", "1", "-o", os.devnull)
        started = time.monotonic()
        proc = run_playbook("laptops.yml", inventory=inv / "hosts.yml", timeout=900)
        assert proc.returncode == 0, proc.stdout[-5000:]
        yield {"inv": inv, "first": proc, "seconds": time.monotonic() - started}
    finally:
        if saved is None:
            STATE.unlink(missing_ok=True)
        else:
            STATE.write_bytes(saved)
        lab.lab_up()  # the default lab: the laptops go


def test_the_wave_was_recorded_and_status_shows_each_laptop(stations):
    for laptop, pid in WAVE.items():
        out = teleshift(stations["inv"], "status", pid, "--json", codes=(0, 4)).stdout  # 4: another one's problem
        station = json.loads(out)["capabilities"]["telework_station"]
        assert station["host"] == laptop and station["verified"] is True, station
        assert station["facts"]["on the laptop"].startswith(f"{pid}'s files")


def test_tunnel_softphone_and_notice_on_every_laptop(stations):
    for laptop, pid in WAVE.items():
        assert lab_exec(laptop, "systemctl", "is-active", "wg-quick@teleshift").stdout.strip() == "active"
        labclient.open_gate(pid, KITS, client=laptop)  # through this laptop's tunnel, as the person would
        pings = lab_exec(laptop, "ping", "-c", "3", "-W", "2", "10.89.251.30", timeout=30).stdout
        assert " 0 received" not in pings, pings
        # the softphone retries a failed registration after about half a minute: the gate is open now
        lab_exec(laptop, "systemctl", "restart", "teleshift-softphone", timeout=60)
    for laptop, pid in WAVE.items():
        assert wait_for(lambda pid=pid: registered(pid), 45, 2), (pid, contacts().get(EXTENSIONS[pid]))
        pdfs = lab_exec(laptop, "sh", "-c", f"sha256sum {DESKTOP}/*.pdf").stdout.splitlines()
        kit_pdf = (KITS / pid / "notice" / "notice.pdf").read_bytes()
        assert kit_pdf.startswith(b"%PDF")
        assert [line.split()[0] for line in pdfs] == [hashlib.sha256(kit_pdf).hexdigest()], pdfs
        assert "Unattended-Upgrade \"1\"" in lab_exec(laptop, "cat", "/etc/apt/apt.conf.d/20auto-upgrades").stdout


def test_the_launcher_opens_a_remote_desktop_session_for_its_person(stations):
    laptop, pid = "ts-laptop2", "dnguyen"  # vpn, desktop and phone
    entry = lab_exec(laptop, "cat", f"{DESKTOP}/teleshift-remote-desktop.desktop").stdout
    assert "+33 5 55 00 00 00" in entry
    launcher = re.search(r"^Exec=(\S+)$", entry, re.M).group(1)
    password = (KITS / pid / "desktop" / "password").read_text().strip()
    password += labclient.fresh_code(labclient.kit_secret(KITS, pid), f"rdp:{DESK}:{pid}")
    secret = "/home/teleworker/.rdp-test"
    lab_exec(laptop, "sh", "-c", "mkdir -p /tmp/.X11-unix && chmod 1777 /tmp/.X11-unix")  # Xvfb as the user
    lab_exec(laptop, "sh", "-c", f"umask 077; cat > {secret} && chown teleworker {secret}", input=password, timeout=30)
    script = ("export HOME=/home/teleworker DISPLAY=:91; "
              "Xvfb :91 -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 & "
              "i=0; while [ ! -S /tmp/.X11-unix/X91 ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done; "
              f"exec timeout 90 {launcher} /p:\"$(cat {secret})\" /size:1024x768")
    lab_exec(laptop, "sh", "-c", f"nohup runuser -u teleworker -- sh -c '{script}' >/tmp/launcher.log 2>&1 &",
             timeout=30)
    try:
        def session():
            return {c for _, c in labclient.session_processes("ts-desk1", pid)} >= {"Xorg"}
        assert wait_for(session, 60, 2), lab_exec(laptop, "cat", "/tmp/launcher.log").stdout[-2000:]
    finally:
        lab_exec(laptop, "sh", "-c", f"pkill -x xfreerdp; pkill -x Xvfb; rm -f {secret}; true")
        lab_exec("ts-desk1", "sh", "-c",
                 f"loginctl terminate-user {pid} 2>/dev/null; sleep 1; pkill -KILL -u {pid}; true", timeout=30)


def test_a_second_run_changes_nothing(stations):
    proc = run_playbook("laptops.yml", inventory=stations["inv"] / "hosts.yml", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    counts = recap(proc.stdout)
    assert all(counts[laptop]["changed"] == 0 for laptop in LAPTOPS), counts


def test_a_laptop_handed_to_someone_else_keeps_nothing_of_its_previous_person(stations):
    laptop, before, after = "ts-laptop1", "amartin", "fmuller"
    key = re.search(r"^PrivateKey\s*=\s*(\S+)", (KITS / before / "vpn" / "teleshift.conf").read_text(), re.M).group(1)
    sip = (KITS / before / "phone" / "sip_password").read_text().strip()
    present = lab_exec(laptop, "grep", "-rlF", "-e", key, "-e", sip, "/etc", "/home").stdout
    assert present.strip(), "the previous person's secrets should be on the laptop before the hand-over"
    teleshift(stations["inv"], "kits", "--pdf")
    teleshift(stations["inv"], "waves", "--reassign", f"{laptop}={after}", "-o", os.devnull)
    check = run_playbook("laptops.yml", "--limit", f"localhost,{laptop}", inventory=stations["inv"] / "hosts.yml",
                         check=True, diff=True, timeout=600)
    assert check.returncode == 0 and recap(check.stdout)[laptop]["changed"] == 1, check.stdout[-3000:]
    assert "-person: amartin" in check.stdout and "+person: fmuller" in check.stdout, check.stdout[-3000:]
    assert key not in check.stdout and sip not in check.stdout  # the diff names files, never their contents
    assert lab_exec(laptop, "grep", "-rlF", "-e", key, "/etc/wireguard").stdout.strip()  # check mode changed nothing
    proc = run_playbook("laptops.yml", "--limit", f"localhost,{laptop}", inventory=stations["inv"] / "hosts.yml",
                        timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    searched = ["/etc", "/home", "/root", "/var", "/usr/local", "/opt", "/srv", "/tmp", "/run"]  # journal included
    left = lab_exec(laptop, "grep", "-rlsF", "-e", before, "-e", key, "-e", sip, *searched, timeout=180).stdout
    assert left.strip() == "", left
    assert "teleshift VPN profile of fmuller" in lab_exec(laptop, "cat", "/etc/wireguard/teleshift.conf").stdout
    assert lab_exec(laptop, "systemctl", "is-active", "teleshift-softphone").stdout.strip() != "active"  # no phone
