"""OpenVPN on the gateway: ccd files, the management interface (against an emulated server on a unix
socket), and the openvpn_server module against emulated systemctl and nft: people applied live,
revoked sessions ended (nobody else's), the server restarted only for its own settings, secrets asked
for by digest, check mode changing nothing."""
import contextlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_host as oh

HEADER = ("HEADER\tCLIENT_LIST\tCommon Name\tReal Address\tVirtual Address\tVirtual IPv6 Address\tBytes Received\t"
          "Bytes Sent\tConnected Since\tConnected Since (time_t)\tUsername\tClient ID\tPeer ID\tData Channel Cipher")


def status_text(rows):
    lines = ["TITLE\tOpenVPN 2.6.3 x86_64-pc-linux-gnu", "TIME\t2026-01-01 10:00:00\t1767261600", HEADER]
    for cn, real, virtual, cid in rows:
        lines.append(f"CLIENT_LIST\t{cn}\t{real}\t{virtual}\t\t1000\t2048\t2026-01-01 09:00:00\t1767258000\t"
                     f"UNDEF\t{cid}\t{cid}\tAES-256-GCM")
    lines += ["HEADER\tROUTING_TABLE\tVirtual Address\tCommon Name\tReal Address\tLast Ref\tLast Ref (time_t)",
              "GLOBAL_STATS\tMax bcast/mcast queue length\t0", "END"]
    return lines


class FakeManagement(threading.Thread):
    """The management interface's protocol on a unix socket: status 3, client-kill, quit."""

    def __init__(self, path, rows):
        super().__init__(daemon=True)
        self.path, self.rows, self.killed = str(path), list(rows), []
        self.server = socket.socket(socket.AF_UNIX)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)  # what the emulated systemctl left
        self.server.bind(self.path)
        self.server.listen(4)
        self.server.settimeout(10)

    def run(self):
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.server.accept()
                with conn:
                    conn.sendall(b">INFO:OpenVPN Management Interface Version 5 -- type 'help' for more info\r\n")
                    for line in conn.makefile("rb"):
                        cmd = line.decode().strip().split()
                        if cmd == ["status", "3"]:
                            conn.sendall(("\r\n".join(status_text(self.rows)) + "\r\n").encode())
                        elif cmd[:1] == ["client-kill"]:
                            self.killed.append((cmd[1], cmd[2] if len(cmd) > 2 else "RESTART"))
                            self.rows = [r for r in self.rows if r[3] != cmd[1]]
                            conn.sendall(b">NOTIFY:info,remote-exit,EXIT\r\nSUCCESS: client-kill command succeeded\r\n")
                        elif cmd == ["quit"]:
                            break

    def stop(self):
        self.server.close()


def test_clients_are_checked_and_become_ccd_files():
    clients = oh.parse_clients("alice 10.101.0.2\nbob 10.101.0.3\n")
    files = oh.ccd_files(clients, "255.255.0.0", ['push "route 10.89.251.0 255.255.255.0"'])
    assert files["bob"].splitlines()[1:] == ["ifconfig-push 10.101.0.3 255.255.0.0",
                                             'push "route 10.89.251.0 255.255.255.0"']
    assert oh.ccd_address(files["alice"]) == "10.101.0.2"
    for bad, why in (("../x 10.101.0.2", "line 1"), ("alice 10.101.0.999", "not an IPv4"),
                     ("alice 10.101.0.2\nalice 10.101.0.3", "listed twice"), ("a 10.1.1.1\nb 10.1.1.1", "share")):
        with pytest.raises(oh.OpenVpnError, match=why):
            oh.parse_clients(bad)


def test_status_is_read_by_its_header_and_sessions_to_end_spare_everyone_else():
    sessions = oh.parse_status("\n".join(status_text([("alice", "10.89.250.50:40000", "10.101.0.2", "4"),
                                                      ("bob", "10.89.250.50:40001", "10.101.0.9", "5"),
                                                      ("carol", "10.89.250.50:40002", "10.101.0.4", "6"),
                                                      ("gone", "10.89.250.50:40003", "10.101.0.5", "7")])))
    assert sessions["alice"][0] == {"real": "10.89.250.50:40000", "virtual": "10.101.0.2", "since": 1767258000,
                                    "rx": 1000, "tx": 2048, "cid": "4"}
    clients = {"alice": "10.101.0.2", "bob": "10.101.0.3", "carol": "10.101.0.4"}
    assert oh.sessions_to_end(sessions, clients, kick=["carol"]) == [
        ("5", "bob", "RESTART"), ("6", "carol", "HALT"), ("7", "gone", "HALT")]


def test_management_conversation_and_the_status_probe(tmp_path):
    server = FakeManagement(tmp_path / "m.sock", [("alice", "10.89.250.50:40000", "10.101.0.2", "4")])
    server.start()
    try:
        with oh.Management(str(tmp_path / "m.sock")) as mgmt:
            assert set(mgmt.status()) == {"alice"}
            assert mgmt.kill("4") is True
        assert server.killed == [("4", "HALT")]
        ccd = tmp_path / "ccd"
        ccd.mkdir()
        (ccd / "alice").write_text("ifconfig-push 10.101.0.2 255.255.0.0\n")
        server.rows = [("alice", "1.2.3.4:5", "10.101.0.2", "9")]
        proc = subprocess.run([sys.executable, "-c", oh.QUERY, str(tmp_path / "m.sock"), str(ccd)],
                              capture_output=True, text=True, timeout=30, check=True)
        facts = oh.parse_query(proc.stdout)
        assert facts["ccd"] == {"alice": "10.101.0.2"} and facts["sessions"]["alice"][0]["real"] == "1.2.3.4:5"
        missing = subprocess.run([sys.executable, "-c", oh.QUERY, str(tmp_path / "none.sock"), str(ccd)],
                                 capture_output=True, text=True, timeout=30)
        assert missing.returncode == 127 and "not found" in missing.stderr
    finally:
        server.stop()


# ----------------------------------------------------------------------- the module, emulated host

FAKE = r'''#!{python}
import json, os, sys
path = os.environ["OVPN_FAKE_STATE"]
state = json.load(open(path)) if os.path.exists(path) else {"active": False, "calls": [], "tables": []}
name, args = os.path.basename(sys.argv[0]), sys.argv[1:]
state["calls"].append([name] + args)
rc = 0
if name == "systemctl":
    if args[0] == "is-active":
        print("active" if state["active"] else "inactive"); rc = 0 if state["active"] else 3
    elif args[0] in ("start", "restart"):
        state["active"] = True
        if not os.path.exists(os.environ["OVPN_FAKE_SOCKET"]):  # the server's socket appears
            open(os.environ["OVPN_FAKE_SOCKET"], "w").close()
elif name == "nft":
    if args[:2] == ["list", "table"]:
        rc = 0 if " ".join(args[2:]) in state["tables"] else 1
    elif args[0] == "-f":
        text = open(args[1]).read()
        for table in ("inet teleshift_ovpn_gate", "inet teleshift_ovpn"):
            if "table " + table + " {" in text and table not in state["tables"]:
                state["tables"].append(table)
    elif args[:2] == ["delete", "table"]:
        state["tables"] = [t for t in state["tables"] if t != " ".join(args[2:])]
json.dump(state, open(path, "w")); sys.exit(rc)
'''


@pytest.fixture
def host(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("systemctl", "nft"):
        (bindir / name).write_text(FAKE.replace("{python}", sys.executable))
        (bindir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("OVPN_FAKE_STATE", str(tmp_path / "fake.json"))
    monkeypatch.setenv("OVPN_FAKE_SOCKET", str(tmp_path / "m.sock"))
    secrets = {"server.key": "SERVER KEY\n", "tls-crypt.key": "TLS CRYPT\n"}
    return {"tmp": tmp_path, "secrets": secrets}


def fake_state(tmp):
    return json.loads((tmp / "fake.json").read_text())


def run_module(host, clients, check=False, crl="CRL1\n", kick=(), secrets_file=None, config="port 443\n"):
    import hashlib

    from ansible.module_utils import basic
    from ansible.module_utils.common.text.converters import to_bytes
    from ansible_collections.teleshift.toolkit.plugins.modules import openvpn_server

    tmp = host["tmp"]
    digests = {k: hashlib.sha256(v.encode()).hexdigest() for k, v in host["secrets"].items()}
    args = {"clients": clients, "netmask": "255.255.0.0", "push": ['push "route 10.89.251.0 255.255.255.0"'],
            "kick": list(kick), "config": config, "config_dir": str(tmp / "etc"), "ca": "CA\n", "cert": "CERT\n",
            "crl": crl, "secret_digests": digests, "firewall": "table inet teleshift_ovpn {\n}\n",
            "firewall_path": str(tmp / "fw.nft"),
            "management_socket": str(tmp / "m.sock"), "_ansible_check_mode": check, "_ansible_diff": True,
            "_ansible_remote_tmp": str(tmp), "_ansible_keep_remote_files": False}
    if secrets_file:
        args["secrets_file"] = secrets_file
    basic._ANSIBLE_ARGS = to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
    basic._ANSIBLE_PROFILE = "legacy"
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        openvpn_server.main()
    return json.loads(out.getvalue())


def first_converge(host, clients):
    """needs_secrets, then the action plugin's second call with the secrets file."""
    first = run_module(host, clients)
    assert first["needs_secrets"] and not first["changed"] and not (host["tmp"] / "etc").exists()
    path = host["tmp"] / "secrets.json"
    path.write_text(json.dumps(host["secrets"]))
    result = run_module(host, clients, secrets_file=str(path))
    assert not path.exists()  # read and deleted
    return result


def test_first_converge_installs_everything_and_starts_the_server(host):
    tmp = host["tmp"]
    result = first_converge(host, "alice 10.101.0.2\nbob 10.101.0.3\n")
    assert result["changed"] and result["started"] and result["added"] == ["alice", "bob"]
    assert stat.S_IMODE(os.stat(tmp / "etc" / "server.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp / "etc" / "ccd" / "alice").st_mode) == 0o644  # read by the unprivileged server
    assert (tmp / "etc" / "ccd" / "bob").read_text().splitlines()[1] == "ifconfig-push 10.101.0.3 255.255.0.0"
    assert "SERVER KEY" not in json.dumps(result)
    assert ["systemctl", "start", "teleshift-openvpn"] in fake_state(tmp)["calls"]
    again = run_module(host, "alice 10.101.0.2\nbob 10.101.0.3\n")
    assert not again["changed"]


def test_people_changes_are_live_and_end_only_the_revoked_session(host):
    tmp = host["tmp"]
    first_converge(host, "alice 10.101.0.2\nbob 10.101.0.3\ncarol 10.101.0.4\n")
    server = FakeManagement(tmp / "m.sock", [("alice", "1.1.1.1:1", "10.101.0.2", "4"),
                                             ("bob", "1.1.1.1:2", "10.101.0.3", "5")])
    server.start()
    try:
        before = os.stat(tmp / "etc" / "crl.pem").st_mtime
        preview = run_module(host, "alice 10.101.0.2\ncarol 10.101.0.4\ndave 10.101.0.5\n", check=True, crl="CRL2\n")
        assert preview["removed"] == ["bob"] and preview["disconnected"] == ["bob"] and not server.killed
        assert (tmp / "etc" / "ccd" / "bob").exists()
        assert preview["diff"][0]["before"] == "bob 10.101.0.3\n" and preview["diff"][0]["after"] == "dave 10.101.0.5\n"
        calls = len(fake_state(tmp)["calls"])
        result = run_module(host, "alice 10.101.0.2\ncarol 10.101.0.4\ndave 10.101.0.5\n", crl="CRL2\n")
    finally:
        server.stop()
    assert result["added"] == ["dave"] and result["removed"] == ["bob"] and result["crl_changed"]
    assert server.killed == [("5", "HALT")] and result["disconnected"] == ["bob"]  # alice kept her session
    assert not result["restarted"] and not (tmp / "etc" / "ccd" / "bob").exists()
    later = fake_state(tmp)["calls"][calls:]
    assert not any(c[:2] in (["systemctl", "restart"], ["systemctl", "start"]) for c in later)
    assert os.stat(tmp / "etc" / "crl.pem").st_mtime > before  # OpenVPN sees a newer file


def test_own_settings_restart_the_server_and_check_mode_changes_nothing(host):
    tmp = host["tmp"]
    first_converge(host, "alice 10.101.0.2\n")
    preview = run_module(host, "alice 10.101.0.2\n", check=True, config="port 8443\n")
    assert preview["restarted"] and (tmp / "etc" / "server.conf").read_text() == "port 443\n"
    result = run_module(host, "alice 10.101.0.2\n", config="port 8443\n")
    assert result["restarted"] and result["static_changed"] == ["server.conf"]
    assert ["systemctl", "restart", "teleshift-openvpn"] in fake_state(tmp)["calls"]


def test_secrets_that_do_not_match_their_digest_are_refused(host):
    path = host["tmp"] / "secrets.json"
    path.write_text(json.dumps({"server.key": "WRONG", "tls-crypt.key": "TLS CRYPT\n"}))
    result = run_module(host, "alice 10.101.0.2\n", secrets_file=str(path))
    assert result.get("failed") and "do not match" in result["msg"] and not path.exists()
    assert not (host["tmp"] / "etc" / "server.key").exists()
