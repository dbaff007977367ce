# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Talking to a running Asterisk on the PBX host: the CLI (``asterisk -rx``) for reads and reloads, the
manager interface (AMI, bound to 127.0.0.1) for bulk AstDB writes: thousands of DBPut/DBDel actions
pipelined over one connection take well under a second, where one ``asterisk -rx`` per key would take
minutes for 5,000 people.
"""
from __future__ import annotations

import re
import socket
import time

DEFAULT_AMI_FILE = "/etc/asterisk/manager.d/teleshift.conf"


class AsteriskError(Exception):
    pass


def read_ami_credentials(path=DEFAULT_AMI_FILE):
    """(username, secret) from the manager.d file the asterisk_pbx role writes; None when absent."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError:
        return None
    user = re.search(r"^\[([^\]]+)\]", text, re.M)
    secret = re.search(r"^\s*secret\s*=\s*(\S+)", text, re.M)
    if not (user and secret):
        return None
    return user.group(1), secret.group(1)


def cli_quote(value):
    """Quote one argument for the Asterisk CLI parser."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Ami:
    """A minimal AMI client: login, pipelined actions, logoff. Events are switched off at login."""

    def __init__(self, host="127.0.0.1", port=5038, timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        banner = self._read_line()
        if not banner.startswith("Asterisk Call Manager"):
            raise AsteriskError(f"not an Asterisk manager interface: {banner!r}")

    def _read_line(self):
        while b"\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AsteriskError("the manager interface closed the connection")
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def _read_message(self):
        fields = {}
        while True:
            line = self._read_line()
            if line == "":
                if fields:
                    return fields
                continue
            key, _sep, value = line.partition(":")
            fields[key.strip()] = value.strip()

    @staticmethod
    def _encode(action, fields):
        lines = [f"Action: {action}"] + [f"{k}: {v}" for k, v in fields.items()]
        for line in lines:
            if "\r" in line or "\n" in line:
                raise AsteriskError("AMI values cannot contain line breaks")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")

    def login(self, username, secret):
        self.sock.sendall(self._encode("Login", {"Username": username, "Secret": secret, "Events": "off"}))
        reply = self._read_message()
        if reply.get("Response") != "Success":
            raise AsteriskError("manager login refused: " + reply.get("Message", "no reason given"))

    def run_many(self, actions, window=200):
        """Send [(action, fields)] pipelined (``window`` in flight); returns the failures [(index, message)]."""
        failures = []
        pending = {}
        sent = 0
        done = 0
        total = len(actions)
        while done < total:
            while sent < total and len(pending) < window:
                action, fields = actions[sent]
                action_id = f"ts{sent}"
                self.sock.sendall(self._encode(action, {"ActionID": action_id, **fields}))
                pending[action_id] = sent
                sent += 1
            reply = self._read_message()
            index = pending.pop(reply.get("ActionID", ""), None)
            if index is None:
                continue  # an event or an unrelated message
            done += 1
            if reply.get("Response") != "Success":
                failures.append((index, reply.get("Message", "failed")))
        return failures

    def close(self):
        try:
            self.sock.sendall(self._encode("Logoff", {}))
        except OSError:
            pass
        self.sock.close()


def astdb_actions(puts, deletes):
    """AMI actions for an AstDB change set (deletes first, so a key moving families never disappears twice)."""
    actions = [("DBDel", {"Family": fam, "Key": key}) for fam, key in deletes]
    actions += [("DBPut", {"Family": fam, "Key": key, "Val": value}) for fam, key, value in puts]
    return actions


def cli_commands(puts, deletes):
    """The same change set as ``asterisk -rx`` commands (fallback when the manager user is absent)."""
    commands = [f"database del {fam} {cli_quote(key)}" for fam, key in deletes]
    commands += [f"database put {fam} {cli_quote(key)} {cli_quote(value)}" for fam, key, value in puts]
    return commands


def wait_for(predicate, timeout=30.0, interval=0.5):
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` seconds pass (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)
