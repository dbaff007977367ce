"""The AMI client and CLI helpers, against an emulated Asterisk manager interface on loopback."""
import socket
import threading

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils.asterisk import (
    Ami, AsteriskError, astdb_actions, cli_commands, read_ami_credentials, wait_for)
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T


class EmulatedAmi(threading.Thread):
    """A tiny emulated manager interface: checks the login, answers DBPut/DBDel, refuses DBDel of a
    key listed in ``missing`` (as Asterisk does for a key that does not exist), records every action."""

    def __init__(self, secret="s3cret", missing=()):
        super().__init__(daemon=True)
        self.server = socket.socket()
        self.server.bind(("127.0.0.1", 0))
        self.server.listen(1)
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.secret, self.missing, self.actions = secret, set(missing), []
        self.db = {}

    def run(self):
        conn, _ = self.server.accept()
        conn.settimeout(10)
        conn.sendall(b"Asterisk Call Manager/9.0.0\r\n")
        buffer = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            buffer += chunk
            while b"\r\n\r\n" in buffer:
                raw, buffer = buffer.split(b"\r\n\r\n", 1)
                msg = dict(line.split(": ", 1) for line in raw.decode().split("\r\n"))
                self.actions.append(msg)
                conn.sendall(self.reply(msg).encode())
                if msg["Action"] == "Logoff":
                    conn.close()
                    return

    def reply(self, msg):
        aid = f"ActionID: {msg['ActionID']}\r\n" if "ActionID" in msg else ""
        action = msg["Action"]
        if action == "Login":
            ok = msg.get("Secret") == self.secret
            return ("Response: Success\r\nMessage: Authentication accepted\r\n\r\n" if ok else
                    "Response: Error\r\nMessage: Authentication failed\r\n\r\n")
        if action == "DBPut":
            self.db[(msg["Family"], msg["Key"])] = msg["Val"]
            return f"Response: Success\r\n{aid}Message: Updated database successfully\r\n\r\n"
        if action == "DBDel":
            if (msg["Family"], msg["Key"]) in self.missing:
                return f"Response: Error\r\n{aid}Message: Database entry not found\r\n\r\n"
            self.db.pop((msg["Family"], msg["Key"]), None)
            return f"Response: Success\r\n{aid}Message: Key deleted successfully\r\n\r\n"
        return f"Response: Goodbye\r\n{aid}\r\n"


def test_pipelined_changes_reach_the_emulated_manager_in_order_and_failures_are_reported():
    server = EmulatedAmi(missing={("CFIM", "1999")})
    server.start()
    puts = [("CFIM", str(1000 + i), f"06{i:08d}") for i in range(500)]
    deletes = [("CFIM", "1999"), ("CFNA", "1001")]
    ami = Ami(port=server.port)
    ami.login("teleshift", "s3cret")
    failures = ami.run_many(astdb_actions(puts, deletes), window=50)
    ami.close()
    server.join(5)
    assert failures == [(0, "Database entry not found")]
    sent = [a for a in server.actions if a["Action"] in ("DBPut", "DBDel")]
    assert [a["Action"] for a in sent[:2]] == ["DBDel", "DBDel"]  # deletes first
    assert len(sent) == 502
    assert server.db[("CFIM", "1499")] == "0600000499"


def test_wrong_secret_is_refused():
    server = EmulatedAmi()
    server.start()
    ami = Ami(port=server.port)
    with pytest.raises(AsteriskError, match="Authentication failed"):
        ami.login("teleshift", "nope")
    ami.sock.close()


def test_values_with_line_breaks_are_never_sent():
    server = EmulatedAmi()
    server.start()
    ami = Ami(port=server.port)
    ami.login("teleshift", "s3cret")
    with pytest.raises(AsteriskError):
        ami.run_many([("DBPut", {"Family": "CFIM", "Key": "1", "Val": "x\r\nAction: Originate"})])
    ami.close()


def test_credentials_file(tmp_path):
    path = tmp_path / "teleshift.conf"
    assert read_ami_credentials(path) is None
    path.write_text("[teleshift]\nsecret = abc123\npermit = 127.0.0.1/255.255.255.255\n")
    assert read_ami_credentials(path) == ("teleshift", "abc123")


def test_cli_fallback_quotes_values():
    commands = cli_commands([(T.HOLIDAY, "2026-12-25", 'Noël "fermé"')], [("CFIM", "1001")])
    assert commands == ['database del CFIM "1001"', 'database put TSHOLIDAY "2026-12-25" "Noël \\"fermé\\""']


def test_wait_for_is_bounded():
    calls = []
    assert wait_for(lambda: calls.append(1), timeout=0.3, interval=0.1) is None
    assert 2 <= len(calls) <= 6
