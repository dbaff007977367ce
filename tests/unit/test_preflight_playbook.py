"""site.yml's preflight stops a run with a bad roster before any host is touched."""
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = [str(Path(sys.executable).parent / "ansible-playbook")]


NETWORKS = "{ts-outside: 10.89.250.10, ts-internal: 10.89.251.10}"
UNREACHABLE_LAB = f"""all:
  children:
    vpn_gateways:
      hosts:
        nowhere.invalid: {{ansible_connection: ssh, teleshift_lab_networks: {NETWORKS}}}
    desktop_hosts:
      hosts:
        desk.invalid: {{ansible_connection: ssh, teleshift_lab_networks: {NETWORKS}}}
    pbx_hosts:
      hosts:
        pbx.invalid: {{ansible_connection: ssh}}
"""


def unreachable_lab(inv, hosts=UNREACHABLE_LAB):
    """The lab's settings (group_vars) on hosts that do not exist: if preflight let a run go on, it
    would fail on them with UNREACHABLE instead of the roster errors."""
    shutil.copytree(ROOT / "inventories/lab/group_vars", inv / "group_vars")
    (inv / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n", encoding="utf-8")
    (inv / "hosts.yml").write_text(hosts, encoding="utf-8")
    return inv


def play(tmp_path, roster_text):
    roster = tmp_path / "roster.csv"
    roster.write_text(roster_text, encoding="utf-8")
    inv = unreachable_lab(tmp_path / "inv")
    return subprocess.run([*PLAYBOOK, "-i", str(inv / "hosts.yml"), str(ROOT / "playbooks/site.yml"),
                           "-e", f"teleshift_roster_file={roster}"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_bad_roster_fails_in_preflight_and_no_host_is_contacted(tmp_path):
    lines = (ROOT / "inventories/lab/roster.csv").read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].replace("+33 6 23 45 67 89", "+33 6 23")
    lines[4] = lines[4].replace(",dsi,", ",unknown-service,")
    result = play(tmp_path, "\n".join(lines) + "\n")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Preflight failed, no host was changed" in out
    assert "roster.csv:3: forward_to" in out and "roster.csv:5: service" in out
    assert "nowhere.invalid" not in out  # the second play never started


def test_good_roster_passes_preflight_and_reaches_the_hosts(tmp_path):
    result = play(tmp_path, (ROOT / "inventories/lab/roster.csv").read_text(encoding="utf-8"))
    out = result.stdout + result.stderr
    assert "8 people valid" in out
    assert "nowhere.invalid" in out  # preflight passed: the run went on to the hosts


def test_relative_roster_setting_is_read_from_the_inventory_directory(tmp_path):
    inv = unreachable_lab(tmp_path / "inv")
    (inv / "roster.csv").write_text((ROOT / "inventories/lab/roster.csv").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([*PLAYBOOK, "-i", str(inv / "hosts.yml"), str(ROOT / "playbooks/preflight.yml")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    # the roster play passes; the hosts' OS check then finds them unreachable (they do not exist)
    assert re.search(r"localhost +: ok=\d+ +changed=0 +unreachable=0 +failed=0", result.stdout), result.stdout[-2000:]
    assert f"8 people valid in {inv / 'roster.csv'}" in result.stdout


def test_desktop_session_shortfall_fails_in_preflight(tmp_path):
    inv = unreachable_lab(tmp_path / "inv", UNREACHABLE_LAB.replace(
        "desk.invalid: {ansible_connection: ssh,",
        "nowhere.invalid: {ansible_connection: ssh, xrdp_host_max_sessions: 1,")
        .replace("        nowhere.invalid: {ansible_connection: ssh, "
                 "teleshift_lab_networks: {ts-outside: 10.89.250.10, "
                 "ts-internal: 10.89.251.10}}\n    desktop_hosts", "        gw.invalid: {ansible_connection: ssh, "
                 "teleshift_lab_networks: {ts-outside: 10.89.250.10, ts-internal: 10.89.251.10}}\n    desktop_hosts"))
    (inv / "roster.csv").write_text((ROOT / "inventories/lab/roster.csv").read_text(encoding="utf-8"), encoding="utf-8")
    result = subprocess.run([*PLAYBOOK, "-i", str(inv / "hosts.yml"), str(ROOT / "playbooks/site.yml")],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Preflight failed, no host was changed" in out
    assert "3 more needed" in out  # 4 active people need a desktop, 1 session
    assert "nowhere.invalid" not in out.split("Preflight failed")[1].split("PLAY RECAP")[0]
