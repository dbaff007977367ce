"""Remote-desktop session hosts in the live lab: real RDP sessions from the teleworker laptop
(ts-client1) through the WireGuard tunnel to ts-desk1, with the credentials of the person's kit.

    .venv/bin/pytest tests/lab/test_desktop.py        (after scripts/teleshift lab up; ~5 minutes)

FreeRDP's +auth-only proves nothing against xrdp (it exits 0 with a wrong password): every test looks
at the session processes the host runs for the person (Xorg from xorgxrdp, the window manager).
The laptop uses dnguyen's VPN profile (service dsi reaches the internal network); RDP logins use any
person's kit. The lock test converges a private copy of the lab inventory (same kits, one person made
inactive) and then re-converges the real lab inventory. A screenshot of the session is saved under
build/artefacts/.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

from teleshift_cli import labclient
from teleshift_cli.labclient import wait_for

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, lab_exec, lab_inventory_copy, recap, run_playbook = (
    _helpers.ROOT, _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.recap, _helpers.run_playbook)
client_tunnel_up, desktop_health = _helpers.client_tunnel_up, _helpers.desktop_health

DESK = "10.89.251.20"
KITS = ROOT / "kits" / "lab"
ARTEFACTS = ROOT / "build" / "artefacts"
TUNNEL_PERSON = "dnguyen"  # vpn + desktop, service dsi (reaches the internal network)


def kit_password(pid):
    return (KITS / pid / "desktop" / "password").read_text().strip()


def session_processes(login):
    """(pid, command) of the processes ``login`` runs on the session host."""
    return labclient.session_processes("ts-desk1", login)


def has_session(login):
    commands = {c for _, c in session_processes(login)}
    return "Xorg" in commands and "openbox" in commands


def start_rdp(login, password, seconds=120, tag="rdp"):
    labclient.start_rdp(DESK, login, password, seconds=seconds, tag=tag)


stop_rdp = labclient.stop_rdp


def end_session(login):
    lab_exec("ts-desk1", "sh", "-c",
             f"loginctl terminate-user {login} 2>/dev/null; sleep 1; pkill -KILL -u {login}; true", timeout=30)
    wait_for(lambda: not session_processes(login), seconds=15)


@pytest.fixture(scope="module")
def lab(lab_up):
    for play in ("desktop.yml", "lab_client_desktop.yml"):
        proc = run_playbook(play, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:]
    _helpers.ensure_kit_passwords(["dnguyen", "gbrun", "cgarcia"])  # the shared host may hold another checkout's
    profile = (KITS / TUNNEL_PERSON / "vpn" / "teleshift.conf").read_text()
    client_tunnel_up(profile)
    reach = ("import socket,sys\nfor _ in range(15):\n try:\n  socket.create_connection(('%s',3389),2).close();"
             " print('OK'); sys.exit()\n except OSError: pass\nprint('FAIL')" % DESK)
    assert lab_exec("ts-client1", "python3", "-c", reach, timeout=60).stdout.strip() == "OK"
    for pid in ("dnguyen", "gbrun", "cgarcia"):
        end_session(pid)
    yield
    for tag in ("main", "wrong", "lock", "other"):
        stop_rdp(tag)
    for pid in ("dnguyen", "gbrun", "cgarcia"):
        end_session(pid)


def test_kit_credentials_open_a_real_session_through_the_tunnel(lab):
    start_rdp("dnguyen", kit_password("dnguyen"), tag="main")
    try:
        assert wait_for(lambda: has_session("dnguyen"), seconds=40), session_processes("dnguyen")
        # the client really came through the tunnel: xrdp logged dnguyen's tunnel address
        log = lab_exec("ts-desk1", "tail", "-n", "200", "/var/log/xrdp.log").stdout
        assert "connection received from ::ffff:10.100." in log
        # something to see: a terminal inside the person's session, then the laptop's screen
        xorg = lab_exec("ts-desk1", "sh", "-c", "ps -u dnguyen -o args= | grep -m1 '^/usr/lib/xorg/Xorg'").stdout
        screen = next((word for word in xorg.split() if word.startswith(":")), ":10")  # the session's display
        lab_exec("ts-desk1", "sh", "-c", f"cd /tmp && DISPLAY={screen} nohup runuser -u dnguyen -- timeout 60 xterm "
                                         "-T teleshift-screen -geometry 90x20+60+60 "
                                         "-e 'echo teleshift: bureau de dnguyen; sleep 60' >/dev/null 2>&1 &",
                 timeout=20)
        # bounded waits on the real conditions (a loaded machine is slow): the window is mapped in the
        # session, then the laptop's screen shows something (a blank 1280x800 screen is ~200 bytes)
        assert wait_for(lambda: "teleshift-screen" in lab_exec(
            "ts-desk1", "sh", "-c", f"DISPLAY={screen} runuser -u dnguyen -- xwininfo -root -tree", timeout=20).stdout,
            seconds=40)
        import base64

        shots = []

        def screen_shows_something():
            shot = lab_exec("ts-client1", "sh", "-c", f"xwd -root -display :{labclient.display('main')} -silent | "
                                                      "xwdtopnm 2>/dev/null | pnmtopng > /tmp/desktop-session.png "
                                                      "&& base64 -w0 /tmp/desktop-session.png", timeout=60)
            shots.append(base64.b64decode(shot.stdout))
            return shots[-1].startswith(b"\x89PNG") and len(shots[-1]) > 2000

        assert wait_for(screen_shows_something, seconds=40, step=2), f"{len(shots[-1])} bytes"
        ARTEFACTS.mkdir(parents=True, exist_ok=True)
        (ARTEFACTS / "desktop-session.png").write_bytes(shots[-1])
        # the health check counts the session
        health = desktop_health("ts-desk1", settle=60)
        assert "dnguyen" in health["figures"]["users"] and health["figures"]["sessions"] >= 1
        assert health["verdict"]["ok"] and health["verdict"]["capacity"] == health["figures"]["max_sessions"]
    finally:
        stop_rdp("main")


def test_wrong_password_starts_no_session(lab):
    end_session("gbrun")
    start_rdp("gbrun", kit_password("gbrun") + "x", seconds=25, tag="wrong")
    try:
        assert wait_for(lambda: "login failed for user gbrun" in
                        lab_exec("ts-desk1", "tail", "-n", "60", "/var/log/xrdp.log").stdout, seconds=30)
        assert not has_session("gbrun") and not session_processes("gbrun")
    finally:
        stop_rdp("wrong")


def test_rdp_from_outside_the_vpn_pool_is_dropped(lab):
    def dropped():
        out = lab_exec("ts-desk1", "nft", "list", "chain", "inet", "teleshift_desktop", "input").stdout
        line = next(x for x in out.splitlines() if "outside the VPN pool" in x)
        return int(line.split("packets")[1].split()[0])

    before = dropped()
    probe = ("import socket\ntry:\n socket.create_connection(('%s',3389),3).close(); print('OPEN')\n"
             "except OSError as e: print('BLOCKED', e)" % DESK)
    # ts-gw1 sits on the internal network itself: its own address is not in the VPN pool
    result = lab_exec("ts-gw1", "python3", "-c", probe, timeout=30).stdout
    assert result.startswith("BLOCKED"), result
    assert dropped() > before


def test_inactive_person_is_locked_sessions_end_and_others_are_untouched(lab, tmp_path):
    start_rdp("gbrun", kit_password("gbrun"), seconds=200, tag="lock")
    start_rdp("cgarcia", kit_password("cgarcia"), seconds=200, tag="other")
    try:
        assert wait_for(lambda: has_session("gbrun") and has_session("cgarcia"), seconds=60)
        others = sorted(session_processes("cgarcia"))
        hosts = lab_inventory_copy(tmp_path / "inventory")
        roster = hosts.parent / "roster.csv"
        lines = roster.read_text(encoding="utf-8").splitlines(keepends=True)
        roster.write_text("".join(x.replace(",yes,fr", ",no,fr") if x.startswith("gbrun,") else x for x in lines),
                          encoding="utf-8")
        (hosts.parent / "state").mkdir()
        shutil.copy(ROOT / "inventories" / "lab" / "state" / "desktop.yml", hosts.parent / "state" / "desktop.yml")
        # same kits (a copy): the same passwords, nothing rotated on the host
        shutil.copytree(KITS, tmp_path / "kits", ignore=shutil.ignore_patterns("notice"))
        proc = run_playbook("desktop.yml", "--tags", "desktop", "--diff", inventory=hosts,
                            extra_vars={"teleshift_kits_dir": str(tmp_path / "kits")}, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "gbrun: locked, sessions ended, home kept" in proc.stdout
        assert wait_for(lambda: not session_processes("gbrun"), seconds=20)
        assert sorted(session_processes("cgarcia")) == others  # nobody else disturbed
        assert lab_exec("ts-desk1", "test", "-d", "/home/gbrun").returncode == 0  # home kept
        stop_rdp("lock")
        start_rdp("gbrun", kit_password("gbrun"), seconds=25, tag="lock")
        assert wait_for(lambda: "login failed for user gbrun" in
                        lab_exec("ts-desk1", "tail", "-n", "60", "/var/log/xrdp.log").stdout, seconds=30)
        assert not session_processes("gbrun")
    finally:
        stop_rdp("lock")
        stop_rdp("other")
        proc = run_playbook("desktop.yml", "--tags", "desktop", timeout=900)  # the real lab again: gbrun back
        assert proc.returncode == 0, proc.stdout[-3000:]
    start_rdp("gbrun", kit_password("gbrun"), seconds=60, tag="lock")
    try:
        assert wait_for(lambda: has_session("gbrun"), seconds=40)  # unlocked with the same password
    finally:
        stop_rdp("lock")
        end_session("gbrun")
        end_session("cgarcia")


def test_second_converge_changes_nothing(lab):
    proc = run_playbook("desktop.yml", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert recap(proc.stdout)["ts-desk1"]["changed"] == 0, proc.stdout[-3000:]


def test_an_unchanged_host_is_probed_and_a_hand_edit_is_put_back(lab):
    """The accounts module is skipped when its arguments and the host's fingerprint are those of the last
    call (module_utils/desktop_probe.py); an account edited by hand changes the fingerprint and the next
    run puts it back."""
    def accounts_run():
        proc = run_playbook("desktop.yml", "--tags", "desktop_accounts", "-v", timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:]
        return proc.stdout

    accounts_run()  # whatever ran before (sessions of other tests ended since), the record is now fresh
    assert "probed: true" in accounts_run()
    shell = lab_exec("ts-desk1", "getent", "passwd", "cgarcia").stdout.strip().rsplit(":", 1)[1]
    lab_exec("ts-desk1", "usermod", "-s", "/bin/sh", "cgarcia")
    repaired = accounts_run()
    assert "probed: true" not in repaired and "cgarcia" in repaired
    assert lab_exec("ts-desk1", "getent", "passwd", "cgarcia").stdout.strip().endswith(":" + shell)
    assert "probed: true" in accounts_run()


def test_check_mode_reports_a_new_person_without_changing_the_host(lab, tmp_path):
    hosts = lab_inventory_copy(tmp_path / "inventory")
    roster = hosts.parent / "roster.csv"
    roster.write_text(roster.read_text(encoding="utf-8") +
                      "zzdesk,Zoé Desk,zoe.desk@departement.example,rh,normal,,thin_client,desktop,"
                      ",,none,20,no,yes,fr\n",
                      encoding="utf-8")
    before = lab_exec("ts-desk1", "sha256sum", "/etc/passwd", "/etc/shadow", "/etc/group").stdout
    proc = run_playbook("desktop.yml", "--tags", "desktop", inventory=hosts, check=True, diff=True,
                        extra_vars={"teleshift_kits_dir": str(tmp_path / "kits")}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "+zzdesk: active, groups ts-rh" in proc.stdout
    assert "$6$" not in proc.stdout  # never a hash
    assert lab_exec("ts-desk1", "sha256sum", "/etc/passwd", "/etc/shadow", "/etc/group").stdout == before
    assert not (tmp_path / "kits").exists() and not (hosts.parent / "state" / "desktop.yml").exists()


def _rdp_port_open():
    probe = ("import socket\ntry:\n socket.create_connection(('%s', 3389), 3).close(); print('open')\n"
             "except OSError: print('closed')" % DESK)
    return lab_exec("ts-client1", "python3", "-c", probe, timeout=30).stdout.strip() == "open"


def test_repeated_failed_logins_get_the_address_banned(lab):
    """fail2ban joins xrdp's "connection received from <address>" and "login failed" lines: after
    maxretry failures the laptop's tunnel address is banned (RDP port closed to it), until unbanned."""
    jail = "teleshift-xrdp"
    profile = (KITS / TUNNEL_PERSON / "vpn" / "teleshift.conf").read_text()
    address = next(line.split("=", 1)[1].strip().split("/")[0] for line in profile.splitlines()
                   if line.startswith("Address"))

    def banned():
        return address in lab_exec("ts-desk1", "fail2ban-client", "status", jail, timeout=20).stdout

    def failures():
        return lab_exec("ts-desk1", "grep", "-c", "login failed for user gbrun", "/var/log/xrdp.log").stdout.strip()

    lab_exec("ts-desk1", "fail2ban-client", "set", jail, "unbanip", address, timeout=20)
    assert not banned() and _rdp_port_open()
    try:
        for attempt in range(8):  # noqa: B007 - read after the loop; maxretry is 5; earlier tests may have counted some already
            before = failures()
            start_rdp("gbrun", kit_password("gbrun") + "x", seconds=20, tag="ban")
            wait_for(lambda before=before: failures() != before, seconds=25)
            stop_rdp("ban")
            if wait_for(banned, seconds=6, step=2):
                break
        assert banned(), f"{address} not banned after {attempt + 1} failed logins"
        assert not _rdp_port_open()  # the ban is enforced by nftables, not only listed
    finally:
        stop_rdp("ban")
        lab_exec("ts-desk1", "fail2ban-client", "set", jail, "unbanip", address, timeout=20)
    assert wait_for(_rdp_port_open, seconds=15) and not banned()
