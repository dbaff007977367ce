"""OpenVPN over TCP 443 in the live lab, the fallback beside WireGuard: the laptop stand-in (ts-client1)
with UDP blocked on its outside interface (as on a hotel network) cannot handshake WireGuard, and
connects with the OpenVPN profile of its kit. Revoking a person ends their session within seconds of
the run while a second person's session (a second OpenVPN process on the laptop, on its own tun
interface) carries pings without losing one. With the second factor on (the lab's inventory), each
OpenVPN person opens the gate with their kit's code through their tunnel, like WireGuard people.
Runs on a private copy of the lab inventory (own roster, state, PKI and kits in a temp dir) and
converges the real lab inventory again at the end.

    .venv/bin/pytest tests/lab/test_openvpn.py        (after scripts/teleshift lab up; ~3 minutes)

Lab policies (inventories/lab/group_vars/all/teleshift.yml): ase (edupont) reaches only the PBX
10.89.251.30; dsi (dnguyen) the whole internal network.
"""
from __future__ import annotations

import importlib.util
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from teleshift_cli import labclient
from teleshift_cli.labclient import wait_for

from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import TABLE as GATE_TABLE

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
PODMAN_ENV, ROOT, lab_exec, lab_inventory_copy, recap, run_playbook = (
    _helpers.PODMAN_ENV, _helpers.ROOT, _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.recap,
    _helpers.run_playbook)

DESK, PBX, GATEWAY = "10.89.251.20", "10.89.251.30", "10.89.250.10"
FIRST, SECOND = "edupont", "dnguyen"  # ase: the PBX only; dsi: everything
NEW_ROW = "zzovpn,Zoé Ovpn,zoe.ovpn@departement.example,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr\n"
BLOCK = "ts_test_no_udp"


class Lab:
    def __init__(self, root):
        self.root = Path(root)
        self.hosts_file = lab_inventory_copy(self.root / "inventory")
        self.roster = self.root / "inventory" / "roster.csv"
        self.kits = self.root / "kits"

    def converge(self, playbook="openvpn.yml", **extra):
        proc = run_playbook(playbook, inventory=self.hosts_file, timeout=600,
                            extra_vars={"teleshift_kits_dir": str(self.kits), **extra})
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc

    def state(self):
        return yaml.safe_load((self.root / "inventory" / "state" / "openvpn.yml").read_text())

    def profile(self, pid):
        return (self.kits / pid / "openvpn" / "teleshift-tcp.ovpn").read_text()


def outside_interface():
    out = lab_exec("ts-client1", "ip", "-o", "-4", "addr", "show", check=True).stdout
    return next(line.split()[1] for line in out.splitlines() if " 10.89.250.50/" in line)


def block_udp(on=True):
    """The laptop's outside interface drops UDP both ways (nftables on the laptop), or no longer."""
    if not on:
        return lab_exec("ts-client1", "nft", "delete", "table", "inet", BLOCK)
    iface = outside_interface()
    rules = (f"table inet {BLOCK} {{\n chain out {{ type filter hook output priority 0; policy accept;\n"
             f"  oifname \"{iface}\" meta l4proto udp drop\n }}\n"
             f" chain in {{ type filter hook input priority 0; policy accept;\n"
             f"  iifname \"{iface}\" meta l4proto udp drop\n }}\n}}\n")
    return lab_exec("ts-client1", "nft", "-f", "-", input=rules, check=True)


def reaches(address, port, timeout=4):
    """From the laptop: does a TCP connection attempt get an answer? A firewall drop gives none."""
    code = ("import socket\n"
            f"s=socket.socket();s.settimeout({timeout})\n"
            f"try:\n s.connect(({address!r},{port}));print('open')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except OSError as e: print('silent', e)\n")
    proc = lab_exec("ts-client1", "python3", "-c", code, timeout=timeout + 20)
    return proc.stdout.split()[:1] in (["open"], ["refused"])


def pings(address, count=3, interface=None):
    args = ["ping", "-c", str(count), "-W", "2"] + (["-I", interface] if interface else []) + [address]
    return lab_exec("ts-client1", *args, timeout=30).returncode == 0


def server_sessions():
    from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_host import QUERY, parse_query

    proc = lab_exec("ts-gw1", "python3", "-c", QUERY, "/run/openvpn-teleshift/management.sock",
                    "/etc/openvpn/teleshift/ccd", timeout=30)
    return parse_query(proc.stdout)["sessions"]


def wireguard_down():
    """The laptop's WireGuard tunnel gone, without waiting on wg-quick (its userspace wireguard-go can be
    slow to stop on a loaded machine): the link deleted, the stop job left to systemd."""
    lab_exec("ts-client1", "systemctl", "stop", "--no-block", "wg-quick@teleshift", timeout=30)
    lab_exec("ts-client1", "sh", "-c", "ip link delete teleshift 2>/dev/null; pkill -f 'wireguard-go teleshift'; true",
             timeout=30)
    assert wait_for(lambda: lab_exec("ts-client1", "ip", "link", "show", "teleshift").returncode != 0, 30)


def server_pid():
    return lab_exec("ts-gw1", "systemctl", "show", "-p", "MainPID", "--value", "teleshift-openvpn").stdout.strip()


@pytest.fixture(scope="module")
def lab(lab_up, tmp_path_factory):
    proc = run_playbook("lab_client_openvpn.yml", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lab = Lab(tmp_path_factory.mktemp("openvpn"))
    lab.converge("vpn.yml")
    lab.converge()
    # a gate opened by an earlier test (through WireGuard, sessions last 10 h) opened every address of
    # that person, the OpenVPN one too: these tests start with nobody's gate open
    if labclient.kit_secret(lab.kits, FIRST):  # the second factor is on: its gate's table is there
        for family in ("4", "6"):
            lab_exec("ts-gw1", "nft", "flush", "set", "inet", GATE_TABLE, f"open{family}", check=True)
    yield lab
    for tag in ("ovpn1", "ovpn2"):
        labclient.openvpn_down(tag)
    block_udp(False)
    run_playbook("openvpn.yml", timeout=600)  # the lab's own PKI and people back on the gateway
    run_playbook("vpn.yml", timeout=600)
    run_playbook("lab_client_vpn.yml", timeout=600)


def test_udp_blocked_wireguard_fails_and_openvpn_connects_to_its_services_only(lab):
    block_udp()
    labclient.tunnel_up((lab.kits / FIRST / "vpn" / "teleshift.conf").read_text(), gate=False)
    time.sleep(12)  # wg-quick sends its handshake at once and retries every 5 s
    shakes = lab_exec("ts-client1", "wg", "show", "teleshift", "latest-handshakes", check=True).stdout.split()
    assert shakes and all(v == "0" for v in shakes[1::2]), f"WireGuard handshook through blocked UDP: {shakes}"
    wireguard_down()

    log = labclient.openvpn_up(lab.profile(FIRST), "ovpn1")
    assert f"TCP connection established with [AF_INET]{GATEWAY}:443" in log, log[-2000:]
    address = lab.state()["people"][FIRST]["address"]
    assert f"inet {address}/16" in lab_exec("ts-client1", "ip", "-4", "addr", "show", "ovpn1").stdout
    if labclient.kit_secret(lab.kits, FIRST):  # second factor on: nothing passes before the code
        assert not pings(PBX), "ase reached the PBX over OpenVPN before proving a code"
        assert labclient.open_gate(FIRST, lab.kits).get("person") == FIRST
    assert wait_for(lambda: pings(PBX), 20), "ase cannot reach the PBX over OpenVPN"
    assert not pings(DESK), "ase reached the desktop host over OpenVPN"
    assert not reaches(DESK, 3389), "ase reached the desktop host's RDP port over OpenVPN"
    assert [s["virtual"] for s in server_sessions()[FIRST]] == [address]

    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "status", FIRST, "--json",
                           "--inventory", str(lab.hosts_file), "--kits-dir", str(lab.kits)],
                          capture_output=True, text=True, timeout=120, env={**PODMAN_ENV})
    data = json.loads(proc.stdout)
    tunnel = data["capabilities"]["openvpn"]["facts"]["tunnel"]
    assert tunnel.startswith("OpenVPN over TCP, connected") and address in tunnel, data


def test_revoking_ends_that_session_only_and_keeps_everyone_elses_address_and_certificate(lab):
    assert labclient.openvpn_running("ovpn1"), "the first person's client is not running"
    labclient.openvpn_up(lab.profile(SECOND), "ovpn2", "--route-nopull")
    lab_exec("ts-client1", "ip", "route", "replace", f"{DESK}/32", "dev", "ovpn2", check=True)
    portal = labclient.gate_address(lab.kits, SECOND)
    if portal:  # the second person's code goes through their own tunnel (the page maps the source address)
        lab_exec("ts-client1", "ip", "route", "replace", f"{portal}/32", "dev", "ovpn2", check=True)
        try:
            assert labclient.open_gate(SECOND, lab.kits).get("person") == SECOND
        finally:
            lab_exec("ts-client1", "ip", "route", "replace", f"{portal}/32", "dev", "ovpn1", check=True)
    assert wait_for(lambda: pings(DESK, 1, "ovpn2"), 20), "dsi cannot reach the desktop host over OpenVPN"
    before = lab.state()
    pid = server_pid()
    count = 200  # 40 s at 0.2 s: spans the converge (about 10 s) and the revocation
    pinger = subprocess.Popen(["podman", "exec", "ts-client1", "ping", "-I", "ovpn2", "-i", "0.2", "-W", "2",
                               "-c", str(count), DESK], env=PODMAN_ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(2)
        rows = lab.roster.read_text(encoding="utf-8").splitlines(keepends=True)
        header, body = rows[0], rows[1:]
        body = [re.sub(r",yes,(\w+)$", r",no,\1", r.rstrip("\n")) + "\n" if r.startswith(f"{FIRST},") else r
                for r in body]
        random.Random(14).shuffle(body)  # the roster reordered, one person added, one deactivated
        lab.roster.write_text(header + "".join(body) + NEW_ROW, encoding="utf-8")
        started = time.monotonic()
        lab.converge()
        done = time.monotonic()
        assert wait_for(lambda: not labclient.openvpn_running("ovpn1"), 15), "the revoked client still runs"
        assert FIRST not in server_sessions()
        ended = time.monotonic() - done
    finally:
        out, _ = pinger.communicate(timeout=120)
    assert ended < 10, f"the revoked session ended {ended:.1f} s after the run"
    match = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    print(f"revocation run {done - started:.1f} s; the revoked client stopped {ended:.1f} s after it; the other "
          f"session: {match and match.group(2)}/{match and match.group(1)} pings answered")
    assert match and int(match.group(1)) == count and int(match.group(2)) == count, out[-500:]
    assert SECOND in server_sessions() and server_pid() == pid  # the server was not restarted
    after = lab.state()
    assert FIRST not in after["people"] and before["people"][FIRST]["serial"] in after["revoked"]
    for pid, entry in before["people"].items():
        if pid != FIRST:
            assert {k: after["people"][pid][k] for k in ("address", "serial")} == \
                   {k: entry[k] for k in ("address", "serial")}, pid
    assert "zzovpn" in after["people"] and (lab.kits / "zzovpn" / "openvpn" / "teleshift-tcp.ovpn").exists()
    assert "ifconfig-push" in lab_exec("ts-gw1", "cat", "/etc/openvpn/teleshift/ccd/zzovpn").stdout
    assert lab_exec("ts-gw1", "test", "-e", f"/etc/openvpn/teleshift/ccd/{FIRST}").returncode != 0


def test_second_converge_changes_nothing(lab):
    counts = recap(lab.converge().stdout)
    assert counts and all(c["changed"] == 0 for c in counts.values()), counts
