"""Revocation wins (issue 11), on the live lab: a queue agent set inactive in the roster loses her VPN on
the next `teleshift run vpn` although the PBX's queue still names her (the VPN run validates the VPN
only), her tunnel stops passing traffic within seconds, and `run site` drops her from the queue with a
warning in the run's summary. Everyone's access is restored at the end.

    .venv/bin/pytest tests/lab/test_revocation.py        (after converge; ~3 minutes)
"""
from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, LAB_INVENTORY, PODMAN_ENV = _helpers.ROOT, _helpers.LAB_INVENTORY, _helpers.PODMAN_ENV
lab_exec, client_tunnel_up = _helpers.lab_exec, _helpers.client_tunnel_up

AGENT, EXTENSION = "edupont", "1005"  # VPN + phone, an agent of the lab's "social" queue (service ase)
PBX = "10.89.251.30"  # what her service (ase) reaches through the VPN
KITS = ROOT / "kits" / "lab"


def teleshift(*args, timeout=900):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=PODMAN_ENV)


def pings(address):
    return lab_exec("ts-client1", "ping", "-c", "1", "-W", "2", address, timeout=20).returncode == 0


def wait_until(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return False


def queue_agents():
    """The extensions allowed to log in to the social queue, as the live dialplan holds them."""
    text = lab_exec("ts-pbx1", "asterisk", "-rx", "dialplan show globals", timeout=30).stdout
    match = re.search(r"TS_AGENTS_social=(\S*)", text)
    return set(match.group(1).strip("'\"").split("&")) - {""} if match else set()


def test_an_inactive_queue_agent_loses_her_vpn_at_once_and_leaves_the_queue(lab_up, tmp_path):
    roster = tmp_path / "roster.csv"
    text = (LAB_INVENTORY / "roster.csv").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith(f"{AGENT},"))
    assert row.endswith(",yes,fr") and EXTENSION in queue_agents()
    roster.write_text(text.replace(row, row[: -len(",yes,fr")] + ",no,fr"), encoding="utf-8")
    before = lab_exec("ts-client1", "cat", "/etc/wireguard/teleshift.conf").stdout
    try:
        client_tunnel_up((KITS / AGENT / "vpn" / "teleshift.conf").read_text(encoding="utf-8"))
        assert wait_until(lambda: pings(PBX), 30), "her tunnel does not carry traffic before the change"

        run = teleshift("run", "vpn", "--roster", str(roster), "--no-progress",
                        "--artefact", str(tmp_path / "vpn.json"))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        gone = time.monotonic()
        assert wait_until(lambda: not pings(PBX), 15), "her tunnel still carries traffic after `run vpn`"
        assert time.monotonic() - gone < 15

        run = teleshift("run", "site", "--roster", str(roster), "--no-progress",
                        "--artefact", str(tmp_path / "site.json"))
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
        warnings = json.loads((tmp_path / "site.json").read_text())["warnings"]
        assert any(AGENT in w["msg"] and "asterisk_pbx_queues" in w["msg"] for w in warnings), warnings
        summary = " ".join(run.stderr.split())  # the console wraps long lines
        assert re.search(rf"warning localhost .{{0,300}}'{AGENT}'", summary), run.stderr[-3000:]  # the summary says so
        assert EXTENSION not in queue_agents()
        assert not pings(PBX)
    finally:
        restored = teleshift("run", "site", "--no-progress", "--artefact", str(tmp_path / "restore.json"))
        if before:
            client_tunnel_up(before)
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert EXTENSION in queue_agents()
