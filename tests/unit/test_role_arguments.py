"""The peers' action checks its role's variables against the role's argument spec itself (``role_spec``),
so vpn.yml imports wireguard_gateway with ``rolespec_validate: false`` and saves a worker per gateway.
Real ansible-playbook runs on localhost: the module stops before touching anything (its setup marker
does not exist, so it answers setup_needed)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

SPEC = """argument_specs:
  main:
    short_description: a role for the test
    options:
      probe_role_port: {type: int, default: 1}
      probe_role_flag: {type: bool, default: false}
"""
TASKS = """- name: Call the peers with the role's check
  teleshift.toolkit.wireguard_peers:
    role_spec: {entry}
    addresses: [10.99.0.1/24]
    peers: []
    setup_fingerprint: test
    setup_marker: {marker}
  register: called
- name: Show
  ansible.builtin.debug: {{msg: "SETUP-NEEDED={{{{ called.setup_needed }}}}"}}
"""
PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: The role, without Ansible's own check task
      ansible.builtin.import_role:
        name: probe_role
        rolespec_validate: false
      vars:
        probe_role_port: {port}
        probe_role_flag: {flag}
"""


def run(tmp_path, port="2", flag="true", entry="main"):
    role = tmp_path / "roles" / "probe_role"
    (role / "meta").mkdir(parents=True, exist_ok=True)
    (role / "tasks").mkdir(parents=True, exist_ok=True)
    (role / "meta" / "argument_specs.yml").write_text(SPEC)
    (role / "tasks" / "main.yml").write_text(TASKS.format(entry=entry, marker=tmp_path / "no-marker"))
    (tmp_path / "play.yml").write_text(PLAY.format(port=port, flag=flag))
    return subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(tmp_path / "play.yml")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_valid_variables_reach_the_module(tmp_path):
    proc = run(tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SETUP-NEEDED=True" in proc.stdout
    assert "Validating arguments" not in proc.stdout  # no separate check task


@pytest.mark.parametrize("port, flag, named", [("abc", "true", "probe_role_port"),
                                               ("2", "perhaps", "probe_role_flag")])
def test_a_bad_variable_fails_before_the_module_runs(tmp_path, port, flag, named):
    proc = run(tmp_path, port=port, flag=flag)
    assert proc.returncode != 0
    assert "Validation of arguments failed" in proc.stdout + proc.stderr
    assert named in proc.stdout
    assert "SETUP-NEEDED" not in proc.stdout


def test_an_unknown_entry_point_is_an_error(tmp_path):
    proc = run(tmp_path, entry="nope")
    assert proc.returncode != 0
    assert "no argument spec entry point 'nope'" in proc.stdout + proc.stderr
