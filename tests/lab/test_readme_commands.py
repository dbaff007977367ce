"""The README's commands that need the lab, run as written from the checkout on the converged lab (the
list, and the commands run without the lab or not at all, are in tests/readme_commands.py). Check
mode only: nothing here changes the lab beyond `lab up`, which leaves a healthy lab as it is."""
import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

import readme_commands as rc

# the lab helpers of conftest.py, loaded under their own name (molecule's suite has a conftest too)
_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
PODMAN_ENV, ROOT = _helpers.PODMAN_ENV, _helpers.ROOT

COMMAND_SECONDS = 1200


def run_command(command):
    env = {k: v for k, v in PODMAN_ENV.items() if not k.startswith(("ANSIBLE_", "TELESHIFT_"))}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    if command.startswith("ansible-playbook"):
        env["ANSIBLE_CONFIG"] = str(ROOT / "ansible.cfg")
    return subprocess.run(command.replace("<yours>", "lab"), shell=True,  # noqa: S602 - the README's commands
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=COMMAND_SECONDS)


@pytest.mark.parametrize("command", list(rc.LAB), ids=lambda c: c.split("/", 1)[-1])
def test_readme_lab_command_runs_as_written(command, lab_up):
    proc = run_command(command)
    shown = f"{command}: exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, shown
    expected = rc.LAB[command]
    assert proc.returncode in (expected if isinstance(expected, tuple) else (expected,)), shown
    if command.endswith("--check --diff"):
        assert "failed=0" in proc.stdout or "artefact:" in proc.stderr, shown
