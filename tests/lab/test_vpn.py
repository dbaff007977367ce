"""WireGuard VPN in the live lab: real tunnels from ts-client1 (outside) through ts-gw1 to internal
hosts. Runs on a private copy of the lab inventory (own roster, state and kits in a temp dir) and
re-converges the real lab inventory at the end.

    .venv/bin/pytest tests/lab/test_vpn.py        (after scripts/teleshift lab up; ~4 minutes)

Lab policies (inventories/lab/group_vars/all/teleshift.yml): dsi (dnguyen) reaches the whole
internal network; ase (edupont) only the PBX 10.89.251.30; culture (fmuller) nothing.
"""
from __future__ import annotations

import hashlib
import importlib.util
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard import handshakes_from_dump

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
PODMAN_ENV, lab_exec, lab_inventory_copy, recap, run_playbook = (
    _helpers.PODMAN_ENV, _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.recap, _helpers.run_playbook)
from teleshift_cli.labclient import wait_for  # noqa: E402  (scripts/ is on sys.path through the helpers)

DESK, PBX = "10.89.251.20", "10.89.251.30"
HTTP_PORT = 18080  # our own web server on the PBX (python3 -m http.server), stopped after
RDP_PORT = 3389  # the desktop host's firewall admits the VPN pool on this port only
ECHO_PORT = 18081
PROFILE = "teleshift"
NEW_ROW = "zzadded,Zoé Added,zoe.added@departement.example,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr\n"


class Lab:
    def __init__(self, root):
        self.root = Path(root)
        self.hosts_file = lab_inventory_copy(self.root / "inventory")
        self.roster = self.root / "inventory" / "roster.csv"
        self.kits = self.root / "kits"
        self.state = self.root / "inventory" / "state" / "vpn.yml"

    def converge(self, *args, check=False, diff=False):
        proc = run_playbook("vpn.yml", *args, inventory=self.hosts_file, check=check, diff=diff,
                            extra_vars={"teleshift_kits_dir": str(self.kits)}, timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        return proc

    def people(self):
        return yaml.safe_load(self.state.read_text())["people"]

    def use_profile(self, pid):
        """The laptop imports ``pid``'s profile from the kit and (re)starts its tunnel."""
        _helpers.client_tunnel_up((self.kits / pid / "vpn" / f"{PROFILE}.conf").read_text(), PROFILE, kits=self.kits)

    def gateway_dump(self):
        proc = lab_exec("ts-gw1", "wg", "show", "wg0", "dump", check=True)
        return proc.stdout


def reaches(address, port, timeout=4):
    """From the laptop: does a TCP connection attempt get an answer (accepted or refused)? A
    firewall drop gives no answer. Bounded by ``timeout``."""
    code = ("import socket\n"
            f"s=socket.socket();s.settimeout({timeout})\n"
            f"try:\n s.connect(({address!r},{port}));print('open')\n"
            "except ConnectionRefusedError: print('refused')\n"
            "except OSError as e: print('silent', e)\n")
    proc = lab_exec("ts-client1", "python3", "-c", code, timeout=timeout + 20)
    return proc.stdout.split()[:1] in (["open"], ["refused"])


@pytest.fixture(scope="module")
def lab(lab_up, tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("vpn"))
    proc = run_playbook("lab_client_vpn.yml", timeout=600)  # packages on the laptop (real lab kit)
    assert proc.returncode == 0, proc.stdout[-3000:]
    lab.converge()
    # a tiny web server and a TCP echo server on the PBX, stopped after; the PBX's own firewall drops all but
    # SIP and RTP, so a rule of the test's lets these two ports in while it runs (what the VPN tests look at
    # is the gateway's per-service policy in front of them)
    lab_exec("ts-pbx1", "nft", "insert", "rule", "inet", "teleshift_pbx", "input", "tcp", "dport",
             f"{{ {HTTP_PORT}, {ECHO_PORT} }}", "accept", "comment", '"teleshift-vpn-test"', timeout=30)
    lab_exec("ts-pbx1", "sh", "-c", f"cd /tmp && nohup timeout 900 python3 -m http.server {HTTP_PORT} "
                                    f"--bind {PBX} >/dev/null 2>&1 &", timeout=30)
    echo = ("import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
            f"s.bind(('{PBX}',{ECHO_PORT}));s.listen(4)\n"
            "while True:\n c,_=s.accept()\n while True:\n  d=c.recv(100)\n  if not d: break\n  c.sendall(d)\n")
    lab_exec("ts-pbx1", "sh", "-c", f"nohup timeout 900 python3 -c \"{echo}\" >/dev/null 2>&1 &", timeout=30)
    time.sleep(1)
    yield lab
    # pkill run directly: under `sh -c`, the first pkill matched (and killed) that shell, whose command
    # line holds both patterns, so the echo server outlived the module and answered the next session's
    # tests until its `timeout 900` closed their connection
    for pattern in (f"http.server {HTTP_PORT}", f"{PBX}',{ECHO_PORT}"):
        lab_exec("ts-pbx1", "pkill", "-f", pattern)
    rules = lab_exec("ts-pbx1", "nft", "-a", "list", "chain", "inet", "teleshift_pbx", "input").stdout
    for handle in re.findall(r'comment "teleshift-vpn-test" # handle (\d+)', rules):
        lab_exec("ts-pbx1", "nft", "delete", "rule", "inet", "teleshift_pbx", "input", "handle", handle)
    # put the real lab inventory back on the gateway and the laptop
    run_playbook("vpn.yml", timeout=600)
    run_playbook("lab_client_vpn.yml", timeout=600)


def http_get(url, timeout=4):
    """From the laptop: the page's first bytes, or '' (bounded by ``timeout``)."""
    code = (f"import urllib.request\n"
            f"try:\n print(urllib.request.urlopen({url!r}, timeout={timeout}).read(200).decode(errors='replace'))\n"
            f"except Exception as e: pass\n")
    return lab_exec("ts-client1", "python3", "-c", code, timeout=timeout + 20).stdout


def test_tunnel_handshakes_and_reaches_an_internal_service(lab):
    lab.use_profile("dnguyen")
    assert wait_for(lambda: "Directory listing" in http_get(f"http://{PBX}:{HTTP_PORT}/"), 30), \
        "dsi cannot fetch a page from the PBX's web server"
    assert reaches(DESK, RDP_PORT), "dsi cannot reach the desktop host's RDP port"
    people = lab.people()
    keys = {e["public_key"]: pid for pid, e in people.items()}
    shakes = handshakes_from_dump(lab.gateway_dump(), keys, fresh=180)
    assert shakes["dnguyen"] is not None and shakes.get("fmuller") is None
    # the gateway saw the real client address (no NAT): the desktop's route goes back via the gateway
    assert people["dnguyen"]["address"].startswith("10.100.")


def test_service_policy_limits_what_a_person_reaches(lab):
    lab.use_profile("edupont")  # ase: the PBX only
    assert wait_for(lambda: reaches(PBX, HTTP_PORT), 30), "ase cannot reach the PBX"
    assert not reaches(DESK, RDP_PORT), "ase reached the desktop host"
    lab.use_profile("fmuller")  # culture: no networks at all
    assert not reaches(PBX, HTTP_PORT), "culture reached the PBX"
    # the gateway itself answers only WireGuard (and ping): not the web server port of a client
    rules = lab_exec("ts-gw1", "nft", "list", "chain", "inet", "teleshift_vpn", "input", check=True).stdout
    assert "policy drop" in rules and "udp dport 51820 accept" in rules


def test_adding_a_person_does_not_break_an_open_connection(lab):
    lab.use_profile("dnguyen")
    assert wait_for(lambda: reaches(DESK, RDP_PORT), 30)
    client = ("import socket,time,os,sys\n"
              f"s=socket.create_connection(('{PBX}',{ECHO_PORT}),timeout=5)\n"
              "n=0;worst=0;end=time.time()+400\n"
              "while time.time()<end and not os.path.exists('/tmp/vpn-test-stop'):\n"
              " t=time.time();s.sendall(b'ping');d=s.recv(10)\n"
              " assert d==b'ping',d\n"
              " worst=max(worst,time.time()-t);n+=1;time.sleep(0.2)\n"
              "print(n,round(worst,3))\n")
    lab_exec("ts-client1", "rm", "-f", "/tmp/vpn-test-stop")
    proc = subprocess.Popen(["podman", "exec", "ts-client1", "python3", "-c", client], env=PODMAN_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        with lab.roster.open("a", encoding="utf-8") as stream:
            stream.write(NEW_ROW)
        out = lab.converge().stdout
        assert "zzadded" in lab.people()
        assert re.search(r"changed: \[ts-gw1\]", out)
        time.sleep(2)
    finally:
        lab_exec("ts-client1", "touch", "/tmp/vpn-test-stop")
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    count, worst = stdout.split()
    assert int(count) > 20 and float(worst) < 5.0, stdout  # kept echoing all along, never stalled
    assert (lab.kits / "zzadded" / "vpn" / f"{PROFILE}.conf").exists()


def test_a_revoked_person_stops_passing_traffic(lab):
    lab.use_profile("zzadded")
    assert wait_for(lambda: reaches(DESK, RDP_PORT), 30), "the new person's tunnel does not work"
    key = lab.people()["zzadded"]["public_key"]
    text = lab.roster.read_text(encoding="utf-8").replace(NEW_ROW, NEW_ROW.replace(",yes,fr", ",no,fr"))
    lab.roster.write_text(text, encoding="utf-8")
    lab.converge()
    assert key not in lab.gateway_dump()
    assert "zzadded" not in lab.people()
    assert not reaches(DESK, RDP_PORT, timeout=3), "a revoked person still reaches the desktop"


def test_second_converge_changes_nothing(lab):
    out = lab.converge().stdout
    counts = recap(out)
    assert counts and all(c["changed"] == 0 for c in counts.values()), out[-3000:]
    # the fast path (every task result costs the controller a worker): a set-up gateway runs the peer
    # call alone (it checks the role's arguments and carries the gate's), an internal host the read of
    # its routes' marker; the rest is decided by meta tasks, in the controller, and not counted
    gateway, internal = counts["ts-gw1"], counts["ts-desk1"]
    assert gateway["ok"] + gateway["skipped"] <= 1, counts
    assert internal["ok"] + internal["skipped"] <= 1, counts


def peer_set(dump):
    """(public key, allowed IPs) of every live peer (counters and handshakes left out)."""
    return {tuple(line.split("\t")[i] for i in (0, 3)) for line in dump.splitlines()[1:] if line}


def test_check_diff_lists_the_change_and_alters_nothing(lab):
    before_state = hashlib.sha256(lab.state.read_bytes()).hexdigest()
    before_peers = peer_set(lab.gateway_dump())
    text = lab.roster.read_text(encoding="utf-8")
    changed = text.replace(NEW_ROW.replace(",yes,fr", ",no,fr"), "") + NEW_ROW.replace("zzadded", "zzcheck")
    changed = re.sub(r"^(fmuller,.*),yes,fr$", r"\1,no,fr", changed, flags=re.M)
    lab.roster.write_text(changed, encoding="utf-8")
    try:
        out = lab.converge(check=True, diff=True).stdout
    finally:
        lab.roster.write_text(text, encoding="utf-8")
    assert re.search(r"^\+zzcheck ", out, re.M), out[-3000:]  # peer diff on the gateway
    assert re.search(r"^-fmuller ", out, re.M), out[-3000:]
    assert hashlib.sha256(lab.state.read_bytes()).hexdigest() == before_state
    assert peer_set(lab.gateway_dump()) == before_peers
    assert not (lab.kits / "zzcheck").exists()


def test_a_rebuilt_host_is_set_up_again(lab):
    """What a host has had set up is recorded on the host: a host that lost it (rebuilt, or its route
    gone with the marker) gets its route back, and a gateway without its marker is set up again."""
    pool = "10.100.0.0/16"
    lab_exec("ts-desk1", "sh", "-c", f"ip route del {pool}; rm -f /var/lib/teleshift/setup/vpn_route", check=True)
    lab_exec("ts-gw1", "rm", "-f", "/var/lib/teleshift/setup/wireguard_gateway", check=True)
    assert "via" not in lab_exec("ts-desk1", "ip", "route", "show", "exact", pool).stdout
    out = lab.converge().stdout
    assert "via 10.89.251.10 " in lab_exec("ts-desk1", "ip", "route", "show", "exact", pool).stdout + " "
    assert lab_exec("ts-desk1", "cat", "/var/lib/teleshift/setup/vpn_route").stdout.strip()
    assert lab_exec("ts-gw1", "cat", "/var/lib/teleshift/setup/wireguard_gateway").stdout.strip()
    assert "Record on the host that this setup is done" in out  # a task of the setup, listed only when it runs
    assert recap(lab.converge().stdout)["ts-desk1"]["changed"] == 0  # and then nothing more to do
