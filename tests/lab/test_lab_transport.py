"""The lab's connection (plugins/connection/lab_podman.py) on the real containers: as root with the
containers under runc it enters them with `runc exec`, and a command then runs exactly where
`podman exec` runs it (same cgroup, namespaces, user and environment); TELESHIFT_LAB_EXEC=podman
keeps podman exec."""
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

# the lab helpers by path: under molecule, "conftest" is another suite's module
_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
LAB_INVENTORY, PODMAN_ENV, ROOT, VENV_BIN, lab_exec = (
    _helpers.LAB_INVENTORY, _helpers.PODMAN_ENV, _helpers.ROOT, _helpers.VENV_BIN, _helpers.lab_exec)

PROBE = "cat /proc/self/cgroup; readlink /proc/self/ns/net /proc/self/ns/mnt /proc/self/ns/pid; id -u; hostname"


def _raw(host, **env):
    env = {**PODMAN_ENV, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **env}
    proc = subprocess.run([str(VENV_BIN / "ansible"), host, "-i", str(LAB_INVENTORY / "hosts.yml"), "-vvv",
                           "-m", "ansible.builtin.raw", "-a", f"sh -c '{PROBE}'"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    return proc.stdout + proc.stderr  # -vvv lines go to either, depending on the environment (molecule: stderr)


@pytest.mark.parametrize("name", ["ts-gw1", "ts-desk1"])
def test_commands_run_where_podman_exec_runs_them(host, name):
    host(name)  # skipped (or failed under TELESHIFT_LAB_REQUIRED) when the lab is down
    if os.geteuid() != 0:
        pytest.skip("rootless: the connection always uses podman exec")
    expected = lab_exec(name, "sh", "-c", PROBE, check=True).stdout.strip().splitlines()
    direct = _raw(name, TELESHIFT_LAB_EXEC="auto")
    assert "RUNC EXEC" in direct and "PODMAN ['exec'" not in direct
    assert all(line in direct for line in expected), (expected, direct[-1500:])
    through_podman = _raw(name, TELESHIFT_LAB_EXEC="podman")
    assert "PODMAN ['exec'" in through_podman and "RUNC EXEC" not in through_podman
    assert all(line in through_podman for line in expected)
