"""The organisation's directory as the source of people, in the live lab: the Samba AD domain controller
ts-dc1 (playbooks/lab_directory.yml, seeded from the lab roster) read over LDAPS by a copy of the lab
inventory whose bind password comes from Ansible Vault (teleshift_cli/labdirectory.py).

    .venv/bin/pytest tests/lab/test_directory.py        (after scripts/teleshift lab up; ~4 minutes)

The copy converges the real hosts (desktop.yml: sssd; sync.yml: VPN peers, desktop accounts, PBX)
with a copy of the kits, so nobody's keys change; at the end the real lab inventory (the CSV roster) is
converged again. A person logs in over RDP with their directory password through the tunnel; a disabled
account loses its tunnel, its desktop and its phone at the next sync, and nobody else is touched.
"""
from __future__ import annotations

import base64
import csv
import importlib.util
import io
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, lab_exec, run_playbook = _helpers.ROOT, _helpers.lab_exec, _helpers.run_playbook
from teleshift_cli import labclient, labdirectory  # noqa: E402  (scripts/ is on sys.path through the helpers)
from teleshift_cli.labclient import wait_for  # noqa: E402

DESK = "10.89.251.20"
KITS = ROOT / "kits" / "lab"
PEOPLE_OU = "OU=People,DC=lab,DC=example"
PERSON = "dnguyen"  # vpn + desktop + phone, service dsi (reaches the whole internal network)
OTHER_TUNNEL = "amartin"  # vpn, service paie-prestations (reaches the desktop host)
SYNC = ROOT / "roles" / "teleshift_sync" / "files" / "teleshift-sync"


class Directory:
    """The copy of the lab inventory that reads the DC, and how to run things against it."""

    def __init__(self, tmp):
        self.kits = tmp / "kits"
        shutil.copytree(KITS, self.kits, ignore=shutil.ignore_patterns("notice"))
        self.hosts, self.vault = labdirectory.directory_inventory(tmp / "inventory", kits_dir=self.kits)
        self.inventory = self.hosts.parent
        self.env = {**_helpers.PODMAN_ENV, "ANSIBLE_VAULT_PASSWORD_FILE": str(self.vault)}
        self.lock = tmp / "sync.lock"

    def teleshift(self, *args, timeout=120):
        return subprocess.run([str(ROOT / "scripts" / "teleshift"), *args, "--inventory", str(self.inventory),
                               "--vault-password-file", str(self.vault)], capture_output=True, text=True,
                              timeout=timeout, cwd=ROOT)

    def playbook(self, name, *args, timeout=900):
        cmd = [str(_helpers.VENV_BIN / "ansible-playbook"), "-i", str(self.hosts), str(ROOT / "playbooks" / name),
               *args]
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env={**self.env, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"})

    def sync(self, timeout=300):
        """The people sync exactly as the controller's timer runs it (roles/teleshift_sync)."""
        env = {**self.env, "TELESHIFT_SYNC_ENV": "/nonexistent", "TELESHIFT_CHECKOUT": str(ROOT),
               "TELESHIFT_INVENTORY": str(self.hosts), "TELESHIFT_SYNC_LOCK": str(self.lock)}
        return subprocess.run(["sh", str(SYNC)], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)


def directory_password(pid):
    """Give ``pid`` a fresh directory password (as their organisation would have), returned."""
    password = "Ts-" + secrets.token_urlsafe(12)
    labdirectory.samba("user", "setpassword", pid, f"--newpassword={password}")
    return password


def ldif_entries(text):
    """{dn: {attribute: [values]}} of ldbsearch output (base64 values decoded, folded lines joined)."""
    entries, current = {}, None
    for block in re.sub(r"\n ", "", text).split("\n\n"):
        attrs = {}
        for line in block.splitlines():
            if line.startswith("#") or ":" not in line:
                continue
            name, _, value = line.partition(":")
            value = base64.b64decode(value[2:]).decode() if value.startswith(": ") else value.strip()
            attrs.setdefault(name, []).append(value)
        if "dn" in attrs:
            current = attrs.pop("dn")[0]
            entries[current] = attrs
    return entries


@pytest.fixture(scope="module")
def directory(lab_up, tmp_path_factory):
    if not _helpers.lab_running(labdirectory.DC):
        _helpers.lab_missing(f"{labdirectory.DC} is not running (scripts/teleshift lab up)")
    proc = run_playbook("lab_directory.yml", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lab = Directory(tmp_path_factory.mktemp("directory"))
    try:
        # the lab converges with the people read from the DC: desktop hosts ask it for passwords (sssd),
        # then the people sync (VPN peers and kits, desktop accounts, PBX)
        proc = lab.playbook("desktop.yml", "--tags", "desktop")
        assert proc.returncode == 0, proc.stdout[-4000:]
        proc = lab.sync()
        assert proc.returncode == 0, proc.stdout[-4000:]
        yield lab
    finally:
        for tag in ("dir-main", "dir-wrong", "dir-leaver"):
            labclient.stop_rdp(tag)
        labclient.rdp_unban()  # the wrong password and the leaver's attempts count towards a ban
        labdirectory.samba("user", "enable", PERSON)
        lab_exec("ts-desk1", "sh", "-c", f"loginctl terminate-user {PERSON} 2>/dev/null; true", timeout=30)
        # the real lab again (the CSV roster): local passwords from the kits, sssd out of PAM, peers back
        for play in ("desktop.yml", "sync.yml"):
            proc = run_playbook(play, timeout=900)
            assert proc.returncode == 0, proc.stdout[-3000:]


def test_the_lab_converges_with_people_from_the_directory(directory):
    export = directory.teleshift("roster", "export")
    assert export.returncode == 0, export.stderr
    people = list(csv.DictReader(io.StringIO(export.stdout)))
    vpn = {p["id"] for p in people if "vpn" in p["needs"].split(";") and p["active"] == "yes"}
    dump = lab_exec("ts-gw1", "wg", "show", "wg0", "dump", check=True).stdout
    kits_keys = {pid: (directory.kits / pid / "vpn" / "teleshift.conf").read_text() for pid in vpn}
    assert len(dump.strip().splitlines()) - 1 == len(vpn)  # one peer per active VPN person of the directory
    assert all("PrivateKey" in text for text in kits_keys.values())
    shadow = lab_exec("ts-desk1", "getent", "shadow", PERSON).stdout.split(":")
    assert shadow[1] == "*"  # no local desktop password: the directory checks it
    assert not (directory.kits / PERSON / "desktop" / "password").exists()
    assert "directory" in (directory.kits / PERSON / "desktop" / "summary.yml").read_text()
    assert lab_exec("ts-desk1", "systemctl", "is-active", "sssd").stdout.strip() == "active"
    assert "pam_sss.so" in lab_exec("ts-desk1", "cat", "/etc/pam.d/common-auth").stdout
    endpoints = lab_exec("ts-pbx1", "asterisk", "-rx", "pjsip show endpoints").stdout
    phones = [p for p in people if "phone" in p["needs"].split(";") and p["active"] == "yes"]
    assert phones and all(re.search(rf"Endpoint:\s+{p['extension']}/", endpoints) for p in phones)


def test_roster_export_equals_the_directory(directory):
    export = directory.teleshift("roster", "export")
    assert export.returncode == 0, export.stderr
    rows = {r["id"]: r for r in csv.DictReader(io.StringIO(export.stdout))}
    # the directory as the DC's own tool shows it (not through teleshift's client)
    out = labdirectory.dc_exec("ldbsearch", "-H", "/var/lib/samba/private/sam.ldb", "-b", PEOPLE_OU,
                               "(objectClass=user)", "sAMAccountName", "displayName", "mail", "mobile",
                               "telephoneNumber", "userAccountControl", "memberOf").stdout
    entries = ldif_entries(out)
    assert {e["sAMAccountName"][0] for e in entries.values()} == set(rows)
    import phonenumbers

    settings = labdirectory.lab_directory_settings()
    for attrs in entries.values():
        row = rows[attrs["sAMAccountName"][0]]
        assert row["full_name"] == attrs["displayName"][0] and row["email"] == attrs["mail"][0]
        assert row["extension"] == attrs.get("telephoneNumber", [""])[0]
        mobile = attrs.get("mobile", [""])[0]
        assert row["forward_to"] == (phonenumbers.format_number(phonenumbers.parse(mobile, "FR"),
                                                                phonenumbers.PhoneNumberFormat.E164) if mobile else "")
        assert row["active"] == ("no" if int(attrs["userAccountControl"][0]) & 2 else "yes")
        groups = {dn.split(",")[0][3:] for dn in attrs.get("memberOf", [])}
        needs = {n for g in groups for n in (settings["groups"].get(g) or {}).get("needs", [])}
        assert set(filter(None, row["needs"].split(";"))) == needs
        assert [settings["groups"][g]["service"] for g in groups if "service" in settings["groups"].get(g, {})] \
            == [row["service"]]


def test_a_bad_mobile_number_in_the_directory_is_reported_with_its_dn(directory):
    labdirectory.ldb_modify(f"dn: CN=fmuller,{PEOPLE_OU}\nchangetype: modify\nreplace: mobile\nmobile: 06 12\n")
    try:
        proc = directory.teleshift("validate")
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert f"CN=fmuller,{PEOPLE_OU}: mobile: '06 12' is not a valid phone number" in proc.stderr
        # and the sync applies nothing while the directory is not clean
        before = peers()
        sync = directory.sync()
        assert sync.returncode != 0 and "is not a valid phone number" in sync.stdout
        assert peers() == before
    finally:
        labdirectory.ldb_modify(f"dn: CN=fmuller,{PEOPLE_OU}\nchangetype: modify\ndelete: mobile\n")


def peers():
    """The gateway's peers and their addresses (``wg show`` lists them by latest handshake: sorted here)."""
    return sorted(lab_exec("ts-gw1", "wg", "show", "wg0", "allowed-ips", check=True).stdout.splitlines())


def tunnel(pid, kits):
    """The laptop's tunnel with ``pid``'s profile, passing traffic to the desktop host (a second start
    when a loaded machine's wireguard-go did not come up right)."""
    for _ in range(2):
        labclient.tunnel_up((kits / pid / "vpn" / "teleshift.conf").read_text(), kits=kits)
        if wait_for(reaches_desk, seconds=30):
            return
    pytest.fail(f"{pid}'s tunnel does not reach {DESK}: " + lab_exec("ts-client1", "wg", "show").stdout[-600:])


def log_lines():
    return int(lab_exec("ts-desk1", "sh", "-c", "wc -l < /var/log/xrdp.log").stdout.strip() or 0)


def end_session(login):
    lab_exec("ts-desk1", "sh", "-c",
             f"loginctl terminate-user {login} 2>/dev/null; sleep 1; pkill -KILL -u {login}; true",
             timeout=30)
    wait_for(lambda: not labclient.session_processes("ts-desk1", login), seconds=15)


def reaches_desk(seconds=3):
    probe = ("import socket\ntry:\n socket.create_connection(('%s',3389),%d).close(); print('OPEN')\n"
             "except OSError as e: print('CLOSED', e)" % (DESK, seconds))
    return lab_exec("ts-client1", "python3", "-c", probe, timeout=30).stdout.startswith("OPEN")


def has_session(login):
    commands = {c for _, c in labclient.session_processes("ts-desk1", login)}
    return "Xorg" in commands and "openbox" in commands


def login_failed(login, since):
    """xrdp logged a refused login of ``login`` after line ``since`` of its log."""
    return f"login failed for user {login}" in lab_exec("ts-desk1", "tail", "-n", f"+{since + 1}",
                                                         "/var/log/xrdp.log").stdout


def test_a_person_logs_into_the_desktop_with_their_directory_password(directory):
    password = directory_password(PERSON)
    end_session(PERSON)  # a session left by another test would prove nothing
    tunnel(PERSON, directory.kits)
    mark = log_lines()
    labclient.start_rdp(DESK, PERSON, password + "x", seconds=25, tag="dir-wrong", kits=directory.kits)
    try:
        assert wait_for(lambda: login_failed(PERSON, mark), seconds=40)
        assert not has_session(PERSON)
    finally:
        labclient.stop_rdp("dir-wrong")
    labclient.start_rdp(DESK, PERSON, password, seconds=90, tag="dir-main", kits=directory.kits)
    assert wait_for(lambda: has_session(PERSON), seconds=60), labclient.session_processes("ts-desk1", PERSON)


def test_a_disabled_account_loses_tunnel_desktop_and_phone_at_the_next_sync(directory):
    password = directory_password(PERSON)
    tunnel(PERSON, directory.kits)
    if not has_session(PERSON):
        labclient.start_rdp(DESK, PERSON, password, seconds=120, tag="dir-main", kits=directory.kits)
        assert wait_for(lambda: has_session(PERSON), seconds=60)
    peers = lambda: {line.split("\t")[0]: line for line in  # noqa: E731  public key -> its addresses
                     lab_exec("ts-gw1", "wg", "show", "wg0", "allowed-ips").stdout.splitlines()}
    accounts = lambda: {row.split(":")[0]: row for row in  # noqa: E731
                        lab_exec("ts-desk1", "getent", "shadow").stdout.splitlines()}
    endpoints = lambda: set(re.findall(r"Endpoint:\s+(\S+?)(?:/\S*)?\s", lab_exec(  # noqa: E731
        "ts-pbx1", "asterisk", "-rx", "pjsip show endpoints").stdout))
    before_peers, before_accounts, before_endpoints = peers(), accounts(), endpoints()
    mine = (directory.kits / PERSON / "vpn" / "teleshift.conf").read_text()
    export = directory.teleshift("roster", "export")
    extension = next(r["extension"] for r in csv.DictReader(io.StringIO(export.stdout)) if r["id"] == PERSON)
    assert extension in before_endpoints  # their softphone's endpoint

    labdirectory.samba("user", "disable", PERSON)
    started = time.monotonic()
    sync = directory.sync()
    synced = time.monotonic()
    assert sync.returncode == 0, sync.stdout[-4000:]
    assert wait_for(lambda: not reaches_desk(2), seconds=10), "the tunnel still passes traffic"
    cut = time.monotonic() - synced
    assert wait_for(lambda: not labclient.session_processes("ts-desk1", PERSON), seconds=20)
    after_peers, after_accounts, after_endpoints = peers(), accounts(), endpoints()
    assert extension not in after_endpoints
    assert after_accounts[PERSON].split(":")[1] == "!*"  # locked, and still no local password
    # nobody else is affected: the other peers, accounts and endpoints are exactly as they were
    assert len(after_peers) == len(before_peers) - 1
    assert all(before_peers[key] == line for key, line in after_peers.items())
    assert {k: v for k, v in after_accounts.items() if k != PERSON} == \
        {k: v for k, v in before_accounts.items() if k != PERSON}
    assert after_endpoints == before_endpoints - {extension}
    # the desktop refuses their directory password (reached through a colleague's tunnel)
    tunnel(OTHER_TUNNEL, directory.kits)
    mark = log_lines()
    labclient.start_rdp(DESK, PERSON, password, seconds=25, tag="dir-leaver")
    try:
        assert wait_for(lambda: login_failed(PERSON, mark), seconds=40)
        assert not labclient.session_processes("ts-desk1", PERSON)
    finally:
        labclient.stop_rdp("dir-leaver")
    print(f"sync {synced - started:.1f} s, tunnel cut {cut:.1f} s after it")
    assert "PrivateKey" in mine
