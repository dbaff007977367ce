"""On the lab: `teleshift run vpn --check --diff` after a person changes service shows, by name, that
their address leaves one service's nftables set and joins another's, and changes nothing."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

# the lab helpers of conftest.py, loaded under their own name (molecule's suite has a conftest too)
_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
PODMAN_ENV, ROOT, LAB_INVENTORY = _helpers.PODMAN_ENV, _helpers.ROOT, _helpers.LAB_INVENTORY
lab_exec = _helpers.lab_exec


def test_service_change_shows_in_the_gateways_diff(lab_up, tmp_path):
    inv = tmp_path / "inv"
    shutil.copytree(LAB_INVENTORY, inv, ignore=shutil.ignore_patterns("*.retry"))  # with state/: same addresses
    settings = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "teleshift.yml").read_text())
    kits = (LAB_INVENTORY / settings["teleshift_kits_dir"]).resolve()
    (inv / "group_vars" / "all" / "zz_test.yml").write_text(f"teleshift_kits_dir: {kits}\n")
    roster = inv / "roster.csv"
    lines = roster.read_text(encoding="utf-8").splitlines(True)
    row = next(i for i, line in enumerate(lines) if line.startswith("amartin,"))
    assert ",paie-prestations," in lines[row]
    lines[row] = lines[row].replace(",paie-prestations,", ",dsi,", 1)
    roster.write_text("".join(lines), encoding="utf-8")
    before = lab_exec("ts-gw1", "cat", "/etc/teleshift/vpn-firewall.nft").stdout
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "run", "vpn", "--inventory", str(inv),
                           "--check", "--diff", "--no-progress", "--artefact", str(tmp_path / "run.json")],
                          capture_output=True, text=True, timeout=900, env=PODMAN_ENV, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    changed = [line for line in proc.stdout.splitlines() if line[:1] in "+-" and "amartin" in line]
    assert any(line.startswith("-") and line.endswith("# amartin, service paie-prestations") for line in changed), \
        proc.stdout[-3000:]
    assert any(line.startswith("+") and line.endswith("# amartin, service dsi") for line in changed), \
        proc.stdout[-3000:]
    assert lab_exec("ts-gw1", "cat", "/etc/teleshift/vpn-firewall.nft").stdout == before  # check mode
