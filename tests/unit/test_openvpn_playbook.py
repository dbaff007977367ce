"""playbooks/openvpn.yml's controller step (the openvpn_plan action through ansible-playbook, limited to
localhost: no host is contacted): state, PKI and kits written with their rights and no secret in the
state or the output; a re-run changes nothing; check mode writes nothing; a revoked person's serial
goes into the CRL; bad settings stop the run naming the variable."""
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook")]


def inventory(tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(ROOT / "inventories" / "lab", inv, ignore=shutil.ignore_patterns("state"))
    # localhost named in the inventory, so --limit can keep the run on the controller
    (inv / "localhost.yml").write_text("all:\n  hosts:\n    localhost: {ansible_connection: local}\n")
    return inv


def play(inv, kits, *extra, check=False):
    cmd = [*PLAYBOOK, "-i", str(inv / "hosts.yml"), "-i", str(inv / "localhost.yml"),
           str(ROOT / "playbooks" / "openvpn.yml"), "--limit", "localhost", "-e", f"teleshift_kits_dir={kits}",
           *extra, *(["--check", "--diff"] if check else [])]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})
    return proc, proc.stdout + proc.stderr


def changed(out):
    return int(re.search(r"localhost\s+: ok=\d+\s+changed=(\d+)", out).group(1))


def test_plan_writes_state_pki_and_kits_then_changes_nothing(tmp_path):
    inv, kits = inventory(tmp_path), tmp_path / "kits"
    proc, out = play(inv, kits)
    assert proc.returncode == 0, out[-3000:]
    state = yaml.safe_load((inv / "state" / "openvpn.yml").read_text())
    people = state["people"]
    assert set(people) == {"amartin", "dnguyen", "edupont", "fmuller"}  # active with the vpn need
    pki = kits / ".pki" / "openvpn"
    assert stat.S_IMODE(os.stat(pki).st_mode) == 0o700 and stat.S_IMODE(os.stat(pki / "ca.key").st_mode) == 0o600
    profile = kits / "amartin" / "openvpn" / "teleshift-tcp.ovpn"
    assert stat.S_IMODE(os.stat(profile).st_mode) == 0o600 and "<key>" in profile.read_text()
    secrets = [(pki / "ca.key").read_text(), (pki / "tls-crypt.key").read_text(),
               (kits / "amartin" / "openvpn" / ".client.key").read_text()]
    text = (inv / "state" / "openvpn.yml").read_text()
    for secret in secrets:
        body = secret.strip().splitlines()[1]
        assert body not in text and body not in out
    assert not list(inv.rglob("*.key"))  # nothing secret under the inventory
    proc, out = play(inv, kits)
    assert proc.returncode == 0 and changed(out) == 0, out[-3000:]

    roster = inv / "roster.csv"
    rows = roster.read_text(encoding="utf-8")
    roster.write_text(re.sub(r"^(edupont,.*),yes,fr$", r"\1,no,fr", rows, flags=re.M), encoding="utf-8")
    before = (inv / "state" / "openvpn.yml").read_text()
    proc, out = play(inv, kits, check=True)
    assert proc.returncode == 0 and "edupont: ts-gw1 10.101.0.4" in out, out[-3000:]
    assert (inv / "state" / "openvpn.yml").read_text() == before
    proc, out = play(inv, kits)
    assert proc.returncode == 0, out[-3000:]
    after = yaml.safe_load((inv / "state" / "openvpn.yml").read_text())
    assert people["edupont"]["serial"] in after["revoked"] and "edupont" not in after["people"]
    assert {p: e["serial"] for p, e in after["people"].items()} == \
           {p: e["serial"] for p, e in people.items() if p != "edupont"}
    from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_pki import crl_info

    revoked, _ = crl_info((pki / "crl.pem").read_text())
    assert revoked == {int(people["edupont"]["serial"], 16)}


def test_bad_settings_stop_the_run_naming_the_variable(tmp_path):
    inv, kits = inventory(tmp_path), tmp_path / "kits"
    proc, out = play(inv, kits, "-e", "teleshift_openvpn_pool=10.100.1.0/24")
    assert proc.returncode != 0 and "teleshift_openvpn_pool" in out and "overlaps the WireGuard pool" in out
    assert not (inv / "state" / "openvpn.yml").exists() and not (kits / ".pki").exists()
