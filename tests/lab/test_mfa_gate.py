"""The second factor's VPN gate in the live lab (docs/mfa.md): a tunnel reaches nothing until its person
types a valid code on the gate page, which headless Chromium on the laptop opens through the tunnel;
wrong codes lock out, a short session ends, deactivation closes the gate at once, and another person's
tunnel and RDP session flow all along. Runs on a private copy of the lab inventory (own roster, state,
kits) and re-converges the real lab inventory at the end.

    .venv/bin/pytest tests/lab/test_mfa_gate.py        (after scripts/teleshift lab up and playbooks/lab.yml)

The laptop carries two tunnels: dnguyen's (the usual interface, `teleshift`: the browser, the RDP session,
a ping stream) and the test person's (`gatetest`, its own routing table: traffic bound to its address).
"""
from __future__ import annotations

import base64
import importlib.util
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, PODMAN_ENV, lab_exec, lab_inventory_copy, run_playbook = (
    _helpers.ROOT, _helpers.PODMAN_ENV, _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.run_playbook)
from teleshift_cli import labclient  # noqa: E402  (scripts/ is on sys.path through the helpers)
from teleshift_cli.labclient import wait_for  # noqa: E402

DESK, PBX, PSTN = "10.89.251.20", "10.89.251.30", "ts-pstn1"
ARTEFACTS = ROOT / "build" / "artefacts"
LAB_KITS = ROOT / "kits" / "lab"
ROWS = "".join(f"{pid},Zoé {pid[2:].title()},{pid}@departement.example,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr\n"
               for pid in ("zzlock", "zzshort", "zzoff"))
SYSLOG_PORT = 5514


class Lab:
    def __init__(self, root):
        self.root = Path(root)
        self.hosts_file = lab_inventory_copy(self.root / "inventory")
        self.roster = self.root / "inventory" / "roster.csv"
        self.roster.write_text(self.roster.read_text(encoding="utf-8") + ROWS, encoding="utf-8")
        self.kits = self.root / "kits"
        self.extra = {"teleshift_kits_dir": str(self.kits)}

    def converge(self, **extra):
        start = time.monotonic()
        proc = run_playbook("vpn.yml", inventory=self.hosts_file, extra_vars={**self.extra, **extra}, timeout=600)
        assert proc.returncode == 0, proc.stdout[-4000:]
        return time.monotonic() - start, proc.stdout

    def profile(self, pid):
        return (self.kits / pid / "vpn" / "teleshift.conf").read_text()

    def address(self, pid):
        return yaml.safe_load((self.root / "inventory" / "state" / "vpn.yml").read_text())["people"][pid]["address"]

    def url(self, pid):
        return labclient.gate_url(self.kits, pid)

    def code(self, pid):
        return labclient.fresh_code(labclient.kit_secret(self.kits, pid), f"gate:{self.url(pid)}:{pid}")


def client(code, timeout=30):
    return lab_exec("ts-client1", "python3", "-c", code, timeout=timeout)


def reaches(address, port=3389, source=None, timeout=3):
    """From the laptop (bound to ``source`` when given): does a TCP connection get an answer?"""
    bind = f"s.bind(({source!r},0))\n" if source else ""
    out = client("import socket\ns=socket.socket();s.settimeout(%d)\n%s"
                 "try:\n s.connect((%r,%d));print('open')\nexcept ConnectionRefusedError: print('refused')\n"
                 "except OSError as e: print('silent')\n" % (timeout, bind, address, port), timeout=timeout + 20).stdout
    return out.split()[:1] in (["open"], ["refused"])


def pings(address, source=None):
    flags = ["-I", source] if source else []
    return lab_exec("ts-client1", "ping", "-c", "1", "-W", "2", *flags, address, timeout=30).returncode == 0


def gate_from(source, url, path, body=None):
    """The gate's JSON answer to a request sent from the test tunnel's address ``source``."""
    host = url.split("//")[1].split("/")[0]
    code = ("import http.client,json,ssl,sys\nctx=ssl._create_unverified_context()\n"
            f"c=http.client.HTTPSConnection({host!r},443,context=ctx,source_address=({source!r},0),timeout=10)\n"
            f"body={json.dumps(body)!r}\n"
            f"c.request('POST' if body!='null' else 'GET',{path!r},None if body=='null' else body,"
            "{'Content-Type':'application/json'})\nprint(c.getresponse().read().decode())\n")
    out = client(code).stdout.strip()
    return json.loads(out.splitlines()[-1]) if out else {}


def second_tunnel(profile_text, name="gatetest"):
    """The test person's tunnel beside dnguyen's: routes in table 200, used by traffic from its address."""
    address = re.search(r"^Address = ([0-9.]+)/32", profile_text, re.M).group(1)
    text = profile_text.replace("[Interface]\n", f"[Interface]\nTable = 200\nPostUp = ip rule add from {address} "
                                                 f"table 200\nPostDown = ip rule del from {address} table 200\n", 1)
    env = "WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1"
    lab_exec("ts-client1", "sh", "-c", f"{env} wg-quick down {name} >/dev/null 2>&1; true", timeout=60)
    lab_exec("ts-client1", "sh", "-c", f"umask 077; cat > /etc/wireguard/{name}.conf", input=text, check=True)
    proc = lab_exec("ts-client1", "sh", "-c", f"{env} wg-quick up {name}", timeout=90)
    assert proc.returncode == 0, proc.stderr
    return address


def open_set():
    return lab_exec("ts-gw1", "nft", "list", "set", "inet", "teleshift_gate", "open4").stdout


@pytest.fixture(scope="module")
def lab(lab_up, tmp_path_factory):
    if lab_exec("ts-client1", "sh", "-c", "command -v chromium && command -v wg-quick").returncode != 0:
        for play in ("lab_client_vpn.yml", "lab_client_gate.yml"):  # playbooks/lab.yml, if not run yet
            proc = run_playbook(play, timeout=900)
            assert proc.returncode == 0, proc.stdout[-3000:]
    _helpers.ensure_kit_passwords(["dnguyen"])  # the RDP session kept open meanwhile
    lab = Lab(tmp_path_factory.mktemp("mfa"))
    lab.converge()
    # a syslog receiver on the outside network's stand-in (the lab's teleshift_mfa_syslog), stopped after
    lab_exec(PSTN, "sh", "-c", "rm -f /tmp/gate-syslog.txt; nohup timeout 900 python3 -c \"import socket\n"
                               f"s=socket.socket(2,2);s.bind(('0.0.0.0',{SYSLOG_PORT}))\nwhile True:\n d=s.recv(4096)\n"
                               " open('/tmp/gate-syslog.txt','ab').write(d+b'\\n')\" >/dev/null 2>&1 &", timeout=30)
    yield lab
    lab_exec(PSTN, "pkill", "-f", f"{SYSLOG_PORT}")
    lab_exec("ts-client1", "sh", "-c", "WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick down gatetest; "
                                       "pkill -f 'ping -i'; true", timeout=60)
    labclient.stop_rdp("mfa")
    run_playbook("vpn.yml", timeout=600)  # the real lab inventory back on the gateway and the laptop
    run_playbook("lab_client_vpn.yml", timeout=600)


def test_a_tunnel_reaches_nothing_until_the_code_is_typed_in_the_browser(lab):
    labclient.tunnel_up(lab.profile("dnguyen"), kits=lab.kits, gate=False)
    url = lab.url("dnguyen")
    assert wait_for(lambda: labclient.gate_request(url, "/api/status").get("person") == "dnguyen", 40)
    labclient.gate_request(url, "/api/close", {})  # a session left by another suite: closed by the person
    assert labclient.gate_request(url, "/api/status")["open"] is False
    assert not reaches(DESK) and not pings(PBX), "the desktop host or the PBX answered before the code"
    script = (Path(__file__).with_name("gate_browser.py")).read_text()
    lab_exec("ts-client1", "sh", "-c", "cat > /tmp/gate_browser.py", input=script, check=True)
    proc = lab_exec("ts-client1", "python3", "/tmp/gate_browser.py", url, lab.code("dnguyen"), "/tmp/gate.png",
                    timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    page = json.loads(proc.stdout.strip().splitlines()[-1])
    assert page["result"] == "opened", page
    assert "Đức Nguyễn" in page["before"] or "dnguyen" in page["before"]
    png = base64.b64decode(lab_exec("ts-client1", "base64", "-w0", "/tmp/gate.png").stdout)
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    (ARTEFACTS / "mfa-gate-page.png").write_bytes(png)
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert wait_for(lambda: reaches(DESK), 5, 0.5), "the desktop host is still unreachable after the code"
    assert pings(PBX)
    assert "10.100." in open_set()


def test_wrong_codes_lock_out_while_others_flow(lab):
    # dnguyen (gate open): a ping stream and a real RDP session through the tunnel, checked at the end
    lab_exec("ts-client1", "sh", "-c", f"rm -f /tmp/mfa-ping.txt; nohup ping -i 0.2 -w 400 {PBX} > /tmp/mfa-ping.txt "
                                       "2>&1 &", timeout=30)
    labclient.start_rdp(DESK, "dnguyen", (LAB_KITS / "dnguyen" / "desktop" / "password").read_text().strip(),
                        seconds=400, tag="mfa")
    assert wait_for(lambda: "Xorg" in {c for _, c in labclient.session_processes("ts-desk1", "dnguyen")}, 60), \
        labclient.rdp_trace("mfa")
    lab.xorg = sorted(p for p, c in labclient.session_processes("ts-desk1", "dnguyen") if c == "Xorg")
    source = second_tunnel(lab.profile("zzlock"))
    url = lab.url("zzlock")
    assert wait_for(lambda: gate_from(source, url, "/api/status").get("person") == "zzlock", 30)
    results = [gate_from(source, url, "/api/open", {"code": "000000"})["result"] for _ in range(5)]
    assert results == ["refused"] * 4 + ["lockout"], results
    answer = gate_from(source, url, "/api/open", {"code": lab.code("zzlock")})
    assert answer["result"] == "locked" and answer["locked_until"], answer
    assert not reaches(DESK, source=source), "a locked-out person reached the desktop host"


def test_a_short_session_ends_and_traffic_stops(lab):
    lab.converge(teleshift_mfa_session="20s")  # the page reads its new settings: nothing restarts
    source = second_tunnel(lab.profile("zzshort"))
    url = lab.url("zzshort")
    assert wait_for(lambda: gate_from(source, url, "/api/status").get("person") == "zzshort", 30)
    answer = gate_from(source, url, "/api/open", {"code": lab.code("zzshort")})
    assert answer["result"] == "opened" and answer["seconds_left"] <= 20, answer
    assert wait_for(lambda: reaches(DESK, source=source), 5, 0.5)
    time.sleep(max(0, answer["seconds_left"] + 2))
    assert not reaches(DESK, source=source), "traffic still passes after the session ended"
    assert lab.address("zzshort") not in open_set()


def test_deactivating_a_person_closes_their_gate_on_the_next_run(lab):
    lab.converge()  # sessions of the usual length again
    source = second_tunnel(lab.profile("zzoff"))
    url = lab.url("zzoff")
    assert wait_for(lambda: gate_from(source, url, "/api/status").get("person") == "zzoff", 30)
    assert gate_from(source, url, "/api/open", {"code": lab.code("zzoff")})["result"] == "opened"
    assert wait_for(lambda: reaches(DESK, source=source), 5, 0.5)
    address = lab.address("zzoff")
    assert address in open_set()
    text = lab.roster.read_text(encoding="utf-8")
    lab.roster.write_text(re.sub(r"^(zzoff,.*),yes,fr$", r"\1,no,fr", text, flags=re.M), encoding="utf-8")
    seconds, out = lab.converge()
    assert address not in open_set(), "the deactivated person's gate entry is still there"
    assert not reaches(DESK, source=source)
    assert "zzoff" not in (lab.root / "inventory" / "state" / "mfa.yml").read_text()  # no longer enrolled
    print(f"deactivation run: {seconds:.1f} s")


def test_the_others_tunnel_and_rdp_session_were_never_interrupted(lab):
    if not hasattr(lab, "xorg"):
        pytest.fail("dnguyen's RDP session never started (see test_wrong_codes_lock_out_while_others_flow)")
    assert sorted(p for p, c in labclient.session_processes("ts-desk1", "dnguyen") if c == "Xorg") == lab.xorg
    assert reaches(DESK)
    lab_exec("ts-client1", "pkill", "-INT", "-f", "ping -i 0.2")
    time.sleep(1)
    summary = lab_exec("ts-client1", "cat", "/tmp/mfa-ping.txt").stdout
    sent, received = re.search(r"(\d+) packets transmitted, (\d+) received", summary).groups()
    assert int(sent) > 100 and int(sent) - int(received) <= 1, summary
    labclient.stop_rdp("mfa")


def test_connection_log_in_the_journal_and_syslog(lab):
    journal = lab_exec("ts-gw1", "journalctl", "-u", "teleshift-gate", "--since", "-15min", "--no-pager").stdout
    assert re.search(r"gate opened person=dnguyen service=dsi tunnel=10\.100\.\S+ ", journal)
    assert "gate lockout person=zzlock" in journal and "gate locked person=zzlock" in journal
    received = lab_exec(PSTN, "cat", "/tmp/gate-syslog.txt").stdout
    assert "opened person=dnguyen" in received and "lockout person=zzlock" in received, received[-1000:]


def test_status_and_report_show_the_gate(lab, tmp_path):
    inventory = lab.root / "inventory"
    (inventory / "group_vars" / "all" / "zz_kits.yml").write_text(f"teleshift_kits_dir: {lab.kits}\n")
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "status", "dnguyen", "--inventory",
                           str(inventory), "--json"], capture_output=True, text=True, timeout=120, env=PODMAN_ENV)
    mfa = json.loads(proc.stdout)["capabilities"]["mfa"]
    assert mfa["facts"]["gate"].startswith("open, ") and mfa["facts"]["last session"].startswith("opened "), mfa
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), "report", "--inventory",
                           str(inventory), "-o", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, timeout=300, env=PODMAN_ENV)
    assert proc.returncode == 0, proc.stderr[-2000:]
    section = json.loads((tmp_path / "r.json").read_text())["sections"][0]
    counts = {row[0]: row[1:] for row in section["tables"][0]["rows"]}
    assert int(counts["dsi"][0]) >= 3 and int(counts["dsi"][3]) >= 1, counts  # opened, lockout
    assert section["tables"][1]["rows"][0][:3] == ["culture", section["tables"][1]["rows"][0][1], "1"]


def test_the_log_names_the_outside_address_a_code_came_from(lab):
    journal = lab_exec("ts-gw1", "journalctl", "-u", "teleshift-gate", "--since", "-30min", "--no-pager").stdout
    assert re.search(r"gate opened person=dnguyen service=dsi tunnel=10\.100\.\S+ outside=10\.89\.250\.50:\d+",
                     journal)
