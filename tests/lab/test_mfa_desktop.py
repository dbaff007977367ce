"""The second factor on the remote desktop, in the live lab (docs/mfa.md): FreeRDP from the laptop, through
the VPN, logs in with the kit's password followed by the code of the kit's secret; the password alone or a
wrong code opens nothing; the first session asks for a new password (the kit's is "to be changed"), after
which the kit's password no longer opens a session and the new one does.

A private copy of the lab inventory adds one person (zzdesk) with a copy of the lab's kits, converges the
desktop host, and the real lab inventory is converged again at the end (zzdesk is then locked).

    .venv/bin/pytest tests/lab/test_mfa_desktop.py        (after scripts/teleshift lab up)
"""
from __future__ import annotations

import importlib.util
import secrets
import shutil
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, lab_exec, lab_inventory_copy, run_playbook = (
    _helpers.ROOT, _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.run_playbook)
from teleshift_cli import labclient  # noqa: E402  (scripts/ is on sys.path through the helpers)
from teleshift_cli.labclient import wait_for  # noqa: E402

DESK = "10.89.251.20"
LOGIN = "zzdesk"
ROW = f"{LOGIN},Zoé Desk,zoe.desk@departement.example,rh,normal,,thin_client,desktop,,,none,20,no,yes,fr\n"
LAB_KITS = ROOT / "kits" / "lab"


def processes(login=LOGIN):
    return {c for _, c in labclient.session_processes("ts-desk1", login)}


def failed_logins():
    out = lab_exec("ts-desk1", "grep", "-c", f"login failed for user {LOGIN}", "/var/log/xrdp.log").stdout.strip()
    return int(out or 0)


def end_sessions():
    labclient.stop_rdp("mfadesk")
    lab_exec("ts-desk1", "sh", "-c",
             f"loginctl terminate-user {LOGIN} 2>/dev/null; sleep 1; pkill -KILL -u {LOGIN}; true", timeout=30)
    wait_for(lambda: not processes(), 15)


def display_of(login=LOGIN):
    xorg = lab_exec("ts-desk1", "sh", "-c", f"ps -u {login} -o args= | grep -m1 '^/usr/lib/xorg/Xorg'").stdout
    return next((word for word in xorg.split() if word.startswith(":")), "")


def on_screen(screen, command, timeout=30):
    return lab_exec("ts-desk1", "runuser", "-u", LOGIN, "--", "env", f"DISPLAY={screen}", *command, timeout=timeout)


@pytest.fixture(scope="module")
def desk(lab_up, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mfadesk")
    hosts = lab_inventory_copy(tmp / "inventory")
    roster = hosts.parent / "roster.csv"
    roster.write_text(roster.read_text(encoding="utf-8") + ROW, encoding="utf-8")
    shutil.copytree(ROOT / "inventories" / "lab" / "state", hosts.parent / "state")
    kits = tmp / "kits"
    shutil.copytree(LAB_KITS, kits, ignore=shutil.ignore_patterns("notice"))  # same passwords and secrets
    for play in ("lab_client_desktop.yml", "lab_client_vpn.yml"):
        assert run_playbook(play, timeout=900).returncode == 0
    proc = run_playbook("desktop.yml", "--tags", "desktop", inventory=hosts,
                        extra_vars={"teleshift_kits_dir": str(kits)}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    labclient.tunnel_up((LAB_KITS / "dnguyen" / "vpn" / "teleshift.conf").read_text())  # the laptop's tunnel, gate open
    end_sessions()
    labclient.rdp_unban()  # failures other suites left counted: this one's three must not reach a ban
    yield {"kits": kits, "password": (kits / LOGIN / "desktop" / "password").read_text().strip()}
    end_sessions()
    labclient.rdp_unban()  # the refused logins count towards a ban of the laptop's tunnel address
    proc = run_playbook("desktop.yml", "--tags", "desktop", timeout=900)  # the real lab again (zzdesk locked)
    assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_new_account_must_change_its_initial_password(desk):
    out = lab_exec("ts-desk1", "sh", "-c", f"LC_ALL=C chage -l {LOGIN}").stdout
    assert "password must be changed" in out
    assert lab_exec("ts-desk1", "test", "-s", f"/var/lib/teleshift/mfa/{LOGIN}").returncode == 0


def test_password_alone_or_a_wrong_code_opens_no_session(desk):
    for code in (False, "000000"):
        before = failed_logins()
        labclient.start_rdp(DESK, LOGIN, desk["password"], seconds=25, tag="mfadesk", kits=desk["kits"], code=code)
        assert wait_for(lambda before=before: failed_logins() > before, 30), f"no failed login logged for code={code!r}"
        labclient.stop_rdp("mfadesk")
        assert "Xorg" not in processes()
    time.sleep(31)  # the PAM module's rate limit: 3 attempts per 30 s


def test_password_and_code_open_a_session_that_asks_for_a_new_password(desk):
    labclient.start_rdp(DESK, LOGIN, desk["password"], seconds=240, tag="mfadesk", kits=desk["kits"])
    assert wait_for(lambda: {"Xorg", "openbox"} <= processes(), 60), processes()
    screen = display_of()
    title = "teleshift: new password"
    assert wait_for(lambda: title in on_screen(screen, ["xwininfo", "-root", "-tree"]).stdout, 40)
    new = "Ts-" + secrets.token_urlsafe(12)
    desk["new"] = new
    on_screen(screen, ["xdotool", "search", "--name", title, "windowactivate", "--sync"])
    for text in (desk["password"], new, new):  # current, new, again: as a person types them into passwd
        time.sleep(2)
        on_screen(screen, ["xdotool", "type", "--delay", "40", text])
        on_screen(screen, ["xdotool", "key", "Return"])  # a typed newline does not map to a key on xorgxrdp
    assert wait_for(lambda: "password must be changed" not in lab_exec(
        "ts-desk1", "sh", "-c", f"LC_ALL=C chage -l {LOGIN}").stdout, 30), "the password was not changed"
    assert wait_for(lambda: title not in on_screen(screen, ["xwininfo", "-root", "-tree"]).stdout, 20)
    assert {"Xorg", "openbox"} <= processes()  # the session goes on with the new password
    end_sessions()


def test_the_initial_password_no_longer_opens_a_session_the_new_one_does(desk):
    time.sleep(31)  # a fresh code step and the rate limit's window
    before = failed_logins()
    labclient.start_rdp(DESK, LOGIN, desk["password"], seconds=25, tag="mfadesk", kits=desk["kits"])
    assert wait_for(lambda: failed_logins() > before, 30)
    labclient.stop_rdp("mfadesk")
    assert "Xorg" not in processes()
    time.sleep(31)
    labclient.start_rdp(DESK, LOGIN, desk["new"], seconds=60, tag="mfadesk", kits=desk["kits"])
    assert wait_for(lambda: {"Xorg", "openbox"} <= processes(), 60), processes()
    screen = display_of()
    time.sleep(3)
    assert "teleshift: new password" not in on_screen(screen, ["xwininfo", "-root", "-tree"]).stdout
    end_sessions()
