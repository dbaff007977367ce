"""desktop_plan with ``mfa: true`` (desktop.yml): the second factor planned in the desktop plan's own task
gives what the mfa_plan action gives on its own right after it (who is enrolled and exempt, each
person's desktop host as just placed), writes the same enrolment kits, and a second run changes nothing.
Through ansible-playbook on the lab inventory, limited to localhost: no host is contacted."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
NEW = "zzdesk,Zoé Desk,zoe.desk@departement.example,rh,normal,,thin_client,desktop,,,none,20,no,yes,fr\n"

PLAY = [{"hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "Both plans in one task", "teleshift.toolkit.desktop_plan": {"mfa": True}, "register": "together"},
    {"name": "Keep the state the one task wrote", "ansible.builtin.copy": {
        "src": "{{ inv }}/state/mfa.yml", "dest": "{{ out }}.together.yml", "mode": "0600"}},
    {"name": "The second factor's plan on its own", "teleshift.toolkit.mfa_plan": {}, "register": "alone"},
    {"name": "Keep both", "ansible.builtin.copy": {
        "content": "{{ {'together': together, 'alone': alone} | to_json }}", "dest": "{{ out }}", "mode": "0600"}}]}]


def run(tmp_path, n):
    inv = tmp_path / "inv"
    if not inv.exists():
        shutil.copytree(ROOT / "inventories" / "lab", inv, ignore=shutil.ignore_patterns("state"))
        (inv / "localhost.yml").write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
        with open(inv / "roster.csv", "a", encoding="utf-8") as stream:  # someone placed for the first time
            stream.write(NEW)
    (tmp_path / "play.yml").write_text(json.dumps(PLAY))
    out = tmp_path / f"out{n}.json"
    cmd = [PLAYBOOK, "-i", str(inv / "hosts.yml"), "-i", str(inv / "localhost.yml"), str(tmp_path / "play.yml"),
           "--limit", "localhost", "-e", f"teleshift_kits_dir={tmp_path / 'kits'}", "-e", f"out={out}",
           "-e", f"inv={inv}", "-e", f"ansible_python_interpreter={sys.executable}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    together_state = yaml.safe_load(Path(f"{out}.together.yml").read_text())
    return json.loads(out.read_text()), together_state


def test_the_enrolment_planned_with_the_desktops_is_the_enrolment_planned_after_them(tmp_path):
    (first, state) = run(tmp_path, 1)
    together, alone = first["together"]["mfa"], first["alone"]
    assert together["enabled"] and together["enrolled"] == alone["enrolled"] > 0
    assert together["exempt"] == alone["exempt"]
    assert together["new"] and not alone["new"] and not alone["changed"]  # made once, by the desktop task
    assert state["people"]["zzdesk"]["desktop"] == "ts-desk1"  # the host placed in this same task
    for pid in together["new"]:
        secret = tmp_path / "kits" / pid / "mfa" / "secret"
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text().strip()
    assert "second factor:" in first["together"]["msg"]
    (second, _state) = run(tmp_path, 2)
    assert not second["together"]["changed"] and not second["alone"]["changed"]
