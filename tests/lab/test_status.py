"""`teleshift status PERSON` against the converged lab: the hotline sees what the hosts really hold,
and what is wrong when a host drifts from the roster."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

# the lab helpers of conftest.py, loaded under their own name (molecule's suite has a conftest too)
_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
PODMAN_ENV, ROOT, lab_exec = _helpers.PODMAN_ENV, _helpers.ROOT, _helpers.lab_exec


def status(person):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "status", person, "--json"],
                          capture_output=True, text=True, timeout=120, env=PODMAN_ENV, cwd=ROOT)
    return proc.returncode, proc


def test_status_shows_the_gateway_and_the_forwarding_on_the_pbx(lab_up):
    code, proc = status("amartin")
    data = json.loads(proc.stdout)
    vpn, phone = data["capabilities"]["vpn"], data["capabilities"]["phone"]
    assert vpn["host"] == "ts-gw1" and vpn["facts"]["address"].startswith("10.100.")
    assert phone["host"] == "ts-pbx1" and phone["state"] == "ok"
    assert "CFIM=0612345678" in phone["facts"]["forwarding (PBX)"]  # read from the PBX's AstDB
    assert data["capabilities"]["desktop"]["state"] == "not needed"
    assert code in (0, 4)


def test_status_names_a_pbx_that_drifted_from_the_roster(lab_up):
    before = lab_exec("ts-pbx1", "asterisk", "-rx", "database get CFIM 1001").stdout
    assert "0612345678" in before
    lab_exec("ts-pbx1", "asterisk", "-rx", "database put CFIM 1001 0699999999", check=True)
    try:
        code, proc = status("amartin")
        phone = json.loads(proc.stdout)["capabilities"]["phone"]
        assert code == 4 and phone["state"] == "problem"
        assert any("0699999999" in p and "+33612345678" in p for p in phone["problems"])
    finally:
        lab_exec("ts-pbx1", "asterisk", "-rx", "database put CFIM 1001 0612345678", check=True)
    assert status("amartin")[1].stdout.count("0699999999") == 0


def test_status_of_someone_not_in_the_roster(lab_up):
    code, proc = status("nobody-here")
    assert code != 0 and code != 4
    assert "nobody-here" in proc.stdout + proc.stderr
