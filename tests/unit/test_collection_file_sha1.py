"""collection_file_sha1 gives what lookup('file') | hash('sha1') gives, whatever the role templating it:
mfa_gate_setup_fingerprint is read from the gateway role's task in vpn.yml, where a relative file
lookup would search the wrong role."""
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.teleshift.toolkit.plugins.filter.collection_files import collection_file_sha1

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
GATE = "roles/mfa_gate/files/teleshift-gate"

PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: mfa_gate's defaults, exposed to the play (none of its tasks runs)
      ansible.builtin.import_role:
        name: teleshift.toolkit.mfa_gate
      when: false
    - name: Compare
      ansible.builtin.debug:
        msg: >-
          SAME={{ (['GATE'] | teleshift.toolkit.collection_file_sha1)[0]
                  == (lookup('ansible.builtin.file', 'ROOT/GATE') | hash('sha1')) }}
          FINGERPRINT={{ mfa_gate_setup_fingerprint }}
"""


def fingerprint(tmp_path, extra=()):
    (tmp_path / "play.yml").write_text(PLAY.replace("GATE", GATE).replace("ROOT", str(ROOT)))
    proc = subprocess.run([PLAYBOOK, "-i", "localhost,", "-c", "local", *extra, str(tmp_path / "play.yml")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "SAME=True" in proc.stdout
    return proc.stdout.split("FINGERPRINT=")[1].split()[0]


def test_same_as_a_file_lookup_and_usable_outside_the_role(tmp_path):
    first = fingerprint(tmp_path)
    assert len(first) == 40
    assert fingerprint(tmp_path, ["-e", "mfa_gate_user=someoneelse"]) != first  # still a fingerprint of settings


def test_paths_stay_inside_the_collection():
    assert len(collection_file_sha1([GATE, "plugins/module_utils/mfa.py"])) == 2
    for bad in (["/etc/passwd"], ["../../etc/passwd"], GATE):
        with pytest.raises(AnsibleFilterError):
            collection_file_sha1(bad)
    with pytest.raises(AnsibleFilterError, match="cannot read"):
        collection_file_sha1(["roles/mfa_gate/files/absent"])
