"""`teleshift kits` (the onboarding notices of the README's main job) on the kits the converged lab
wrote: each VPN person's credentials sheet carries their own profile's QR code, the notice their address."""
import base64
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
KITS = ROOT / "kits" / "lab"


def test_notices_carry_each_persons_own_qr_code(lab_up, tmp_path):
    kits = tmp_path / "kits"
    shutil.copytree(KITS, kits, ignore=shutil.ignore_patterns("notice"))
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "kits", "--inventory",
                           str(ROOT / "inventories" / "lab"), "--kits-dir", str(kits)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    state = yaml.safe_load((ROOT / "inventories" / "lab" / "state" / "vpn.yml").read_text())["people"]
    assert state
    for person in state:
        notice = (kits / person / "notice" / "notice.html").read_text(encoding="utf-8")
        sheet = (kits / person / "notice" / "credentials.html").read_text(encoding="utf-8")  # secrets apart
        svg = (kits / person / "vpn" / "teleshift.svg").read_bytes()
        assert "data:image/svg+xml;base64," + base64.b64encode(svg).decode() in sheet, person
        assert "data:image/svg+xml;base64," + base64.b64encode(svg).decode() not in notice, person
        assert state[person]["address"] in notice
