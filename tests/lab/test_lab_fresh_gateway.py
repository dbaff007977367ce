"""A freshly booted machine: podman creates the first container's network namespace before its network
backend turns forwarding on in the host, so that container (ts-gw1) starts with forwarding off and cannot
change it (/proc/sys is read-only in a container). Simulated here by creating ts-gw1 by hand with
``--sysctl net.ipv4.ip_forward=0`` and the label of the current spec (so only the live check can tell):
`lab status` names it, `lab up` recreates it with forwarding on, and the VPN converges on its first run.

    .venv/bin/pytest tests/lab/test_lab_fresh_gateway.py        (after converge; ~2 minutes)

The gateway is really recreated: it gets a new key, which the VPN playbook publishes (state, kits);
suites that use the laptop's tunnel bring it up from the kits themselves.
"""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

from teleshift_cli import lab

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, PODMAN_ENV, lab_exec = _helpers.ROOT, _helpers.PODMAN_ENV, _helpers.lab_exec
recap, run_playbook = _helpers.recap, _helpers.run_playbook

GATEWAY = "ts-gw1"


def teleshift_lab(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "lab", *args], capture_output=True,
                          text=True, timeout=900, cwd=ROOT, env=PODMAN_ENV)


def forwarding():
    return lab_exec(GATEWAY, "cat", "/proc/sys/net/ipv4/ip_forward", timeout=60).stdout.strip()


def create_gateway_as_a_fresh_machine_does():
    the_lab = lab.load_lab()
    host = the_lab.host(GATEWAY)
    layout, ulimits, images = lab._context(the_lab)
    spec = lab.plan_containers(the_lab, images, layout, ulimits)[GATEWAY]
    args = lab.run_args(host, spec)
    args[args.index("net.ipv4.ip_forward=1")] = "net.ipv4.ip_forward=0"
    lab.podman("rm", "--force", "--time", "3", "--ignore", GATEWAY)
    lab.podman(*args)
    lab.wait_ready(GATEWAY)


def test_a_gateway_created_with_forwarding_off_is_recreated_and_converges_first_time(lab_up):
    create_gateway_as_a_fresh_machine_does()
    assert forwarding() == "0"
    status = teleshift_lab("status")
    assert status.returncode == 1, status.stdout + status.stderr
    assert (f"{GATEWAY}: kernel setting not in place: net.ipv4.ip_forward is 0 (needs 1)"
            in status.stdout), status.stdout
    up = teleshift_lab("up")
    assert up.returncode == 0, up.stderr
    assert f"starting {GATEWAY} (net.ipv4.ip_forward is 0 (needs 1))" in up.stderr
    assert "ts-desk1 kept" in up.stderr and "ts-pbx1 kept" in up.stderr  # nobody else recreated
    assert forwarding() == "1"
    proc = run_playbook("vpn.yml", timeout=900)  # a new gateway: its first converge
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert recap(proc.stdout)[GATEWAY]["failed"] == 0
    assert "wg0" in lab_exec(GATEWAY, "wg", "show", "interfaces").stdout
    status = teleshift_lab("status")
    assert status.returncode == 0, status.stdout + status.stderr
