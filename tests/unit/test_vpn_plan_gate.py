"""vpn_plan with ``gate: true`` (vpn.yml): the second factor planned in the VPN plan's own task gives what
the mfa_plan action gives on its own (every gateway's gate slice, who is enrolled and exempt), writes the
same enrolment kits, and a second run changes nothing. Through ansible-playbook on the lab inventory,
limited to localhost: no host is contacted."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

PLAY = [{"hosts": "localhost", "gather_facts": False, "tasks": [
    {"name": "Both plans in one task", "teleshift.toolkit.vpn_plan": {"gate": True}, "register": "together"},
    {"name": "The second factor's plan on its own", "teleshift.toolkit.mfa_plan": {"vpn_from_state": True},
     "register": "alone"},
    {"name": "Keep both", "ansible.builtin.copy": {
        "content": "{{ {'together': together, 'alone': alone} | to_json }}", "dest": "{{ out }}", "mode": "0600"}}]}]


def run(tmp_path, n, play=PLAY, extra_row=""):
    """``play`` on a copy of the lab inventory (``extra_row`` added to its roster), limited to localhost;
    returns what it kept in ``out`` (also passed: ``inv``, the inventory copy)."""
    inv = tmp_path / "inv"
    if not inv.exists():
        shutil.copytree(ROOT / "inventories" / "lab", inv, ignore=shutil.ignore_patterns("state"))
        (inv / "localhost.yml").write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
        with open(inv / "roster.csv", "a", encoding="utf-8") as stream:
            stream.write(extra_row)
    (tmp_path / "play.yml").write_text(json.dumps(play))
    out = tmp_path / f"out{n}.json"
    cmd = [PLAYBOOK, "-i", str(inv / "hosts.yml"), "-i", str(inv / "localhost.yml"), str(tmp_path / "play.yml"),
           "--limit", "localhost", "-e", f"teleshift_kits_dir={tmp_path / 'kits'}", "-e", f"out={out}",
           "-e", f"inv={inv}", "-e", f"ansible_python_interpreter={sys.executable}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return json.loads(out.read_text())


def test_the_gate_planned_with_the_vpn_is_the_gate_planned_alone(tmp_path):
    first = run(tmp_path, 1)
    together, alone = first["together"]["gate"], first["alone"]
    assert together["enabled"] and together["enrolled"] == alone["enrolled"] > 0
    assert together["gateways"] == alone["gateways"]
    assert together["gateways"]["ts-gw1"]["people"] and together["exempt"] == alone["exempt"]
    assert together["new"] and not alone["new"]  # the secrets were made once, by the VPN plan's task
    for pid in together["new"]:
        secret = tmp_path / "kits" / pid / "mfa" / "secret"
        assert oct(secret.stat().st_mode & 0o777) == "0o600" and secret.read_text().strip()
    assert "second factor:" in first["together"]["msg"]
    second = run(tmp_path, 2)
    assert not second["together"]["changed"] and second["together"]["gate"]["gateways"] == together["gateways"]
