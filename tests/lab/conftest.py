"""Shared fixtures for the live-lab tests (tests/lab/test_<capability>.py).

The lab must be up (`scripts/teleshift lab up`); tests are skipped otherwise. Hosts are reached with
testinfra's podman backend (`podman://<name>`), playbooks are run with the project's ansible-playbook.

- ``host(name)``: a testinfra host for a lab container.
- ``lab_exec(name, *argv, input=None, timeout=60)``: run a command in a container (CompletedProcess).
- ``run_playbook(playbook, *args, inventory=None, extra_vars=None, check=False, diff=False, timeout=900)``.
- ``lab_inventory_copy(tmp)``: a private copy of the lab inventory (hosts, group_vars, roster; no
  state/), so a test can change the roster and state without touching the lab's own files.
  Capability tests that use it should re-converge the real lab inventory when they finish.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAB_INVENTORY = ROOT / "inventories" / "lab"
VENV_BIN = ROOT / ".venv" / "bin"


def _podman_env():
    from teleshift_cli import lab  # the lab's own containers.conf (runtime, ulimits)

    return lab.podman_env()


PODMAN_ENV = _podman_env()
os.environ.setdefault("CONTAINERS_CONF", PODMAN_ENV.get("CONTAINERS_CONF", ""))


def lab_exec(name, *argv, input=None, timeout=60, check=False):
    """Run argv in container ``name`` (bounded in time)."""
    flags = ["-i"] if input is not None else []
    return subprocess.run(["podman", "exec", *flags, name, *argv],
                          input=input, capture_output=True, text=True, timeout=timeout, env=PODMAN_ENV, check=check)


def client_tunnel_up(profile_text, profile="teleshift", kits=None):
    """The laptop stand-in (ts-client1) imports a WireGuard profile and (re)starts its tunnel; with the
    second factor on, it then opens the person's gate with their kit's code (``kits``: where the
    profile comes from, default kits/lab)."""
    from teleshift_cli import labclient

    return labclient.tunnel_up(profile_text, profile, kits=kits)


def client_gate_open(person, kits=None):
    """Open ``person``'s gate from the laptop (their code through the tunnel) unless it is open already."""
    from teleshift_cli import labclient

    return labclient.open_gate(person, kits)


def kit_password_on_host(login, kits=None, host="ts-desk1"):
    """Whether ``login``'s password on the session host is still their kit's initial one."""
    kits = Path(kits or ROOT / "kits" / "lab")
    password = (kits / login / "desktop" / "password").read_text().strip()
    code = ("import crypt,os,spwd,sys\ne=spwd.getspnam(sys.argv[1])\n"
            "print(crypt.crypt(os.environ['PW'],e.sp_pwdp.lstrip('!'))==e.sp_pwdp.lstrip('!'))")
    proc = subprocess.run(["podman", "exec", "-e", "PW", host, "python3", "-W", "ignore", "-c", code, login],
                          capture_output=True, text=True, timeout=60, env={**PODMAN_ENV, "PW": password})
    return proc.stdout.strip() == "True"


def ensure_kit_passwords(logins):
    """The shared lab's session host may carry passwords of another checkout's kits (a password is set only
    when an account is made or its kit's password is new): set these logins' kit passwords again, as a
    kit whose hash cache is gone does (desktop_accounts then sets the kit's password)."""
    stale = [login for login in logins if not kit_password_on_host(login)]
    for login in stale:
        (ROOT / "kits" / "lab" / login / "desktop" / ".password.crypt").unlink(missing_ok=True)
    if stale:
        proc = run_playbook("desktop.yml", "--tags", "desktop", timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:]
    return stale


def lab_missing(reason):
    """Skip when the lab is not up, or fail where it must be (TELESHIFT_LAB_REQUIRED=1: molecule, CI)."""
    if os.environ.get("TELESHIFT_LAB_REQUIRED") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def lab_running(name):
    proc = subprocess.run(["podman", "container", "inspect", "--format", "{{.State.Running}}", name],
                          capture_output=True, text=True, timeout=30, env=PODMAN_ENV)
    return proc.stdout.strip() == "true"


@pytest.fixture(scope="session")
def host():
    import testinfra

    cache = {}

    def get(name):
        if not lab_running(name):
            lab_missing(f"lab host {name} is not running (scripts/teleshift lab up)")
        if name not in cache:
            cache[name] = testinfra.get_host(f"podman://{name}")
        return cache[name]

    return get


def run_playbook(playbook, *args, inventory=None, extra_vars=None, check=False, diff=False, timeout=900):
    """ansible-playbook from the checkout; returns CompletedProcess (stdout + stderr in .stdout)."""
    cmd = [str(VENV_BIN / "ansible-playbook"), str(ROOT / "playbooks" / playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    cmd += list(args)
    env = {**PODMAN_ENV, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0",
           "ANSIBLE_NOCOLOR": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def desktop_health(host, settle=0):
    """The teleshift.toolkit.desktop_health module's result on a lab host (through the lab connection)."""
    env = {**PODMAN_ENV, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
           "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    proc = subprocess.run([str(VENV_BIN / "ansible"), host, "-i", str(LAB_INVENTORY / "hosts.yml"), "-m",
                           "teleshift.toolkit.desktop_health", "-a", f"settle={settle} fail_when_down=false"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=settle + 120)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][host]


def recap(output):
    """PLAY RECAP of an ansible-playbook output: host -> {ok, changed, failed, ...} (ints)."""
    result, on = {}, False
    for line in output.splitlines():
        if line.startswith("PLAY RECAP"):
            on = True
            continue
        if on and ":" in line:
            name, _, counts = line.partition(":")
            result[name.strip()] = {k: int(v) for k, v in (c.split("=") for c in counts.split())}
    return result


def lab_inventory_copy(dest):
    """Copy the lab inventory (without state/) to ``dest``; returns its hosts.yml path."""
    dest = Path(dest)
    shutil.copytree(LAB_INVENTORY, dest, ignore=shutil.ignore_patterns("state", "*.retry"))
    return dest / "hosts.yml"


@pytest.fixture(scope="session")
def lab_up():
    """Skip unless every lab container is running."""
    names = ("ts-gw1", "ts-desk1", "ts-pbx1", "ts-client1", "ts-pstn1")
    down = [n for n in names if not lab_running(n)]
    if down:
        lab_missing("lab not running: " + ", ".join(down) + " (scripts/teleshift lab up)")
    return names
