# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""OpenVPN on the gateway: ccd files, the management interface, the status. Standard library only
(runs on managed hosts; the capability's status probe parses the same output on the controller).

- ``ccd_files(clients, netmask, push)``: {person id: file text} of the client-config-dir, from the
  plan's ``<id> <address>`` lines (the ccd file names the person's address; ``ccd-exclusive`` refuses
  anyone without one, so removing the file is the first barrier, the CRL the second).
- ``Management``: the management interface on its unix socket (``status 3``, ``client-kill``).
- ``parse_status``: ``status 3`` output -> {common name: [session]}, columns read from its HEADER
  lines (the order differs between OpenVPN versions).
- ``QUERY``: the one read the status probe runs on a gateway: live sessions and the ccd addresses.
"""
from __future__ import annotations

import ipaddress
import os
import re
import socket
import time

ID_RE = re.compile(r"^[a-z][a-z0-9._-]{0,31}$")  # the roster's person id (also the certificate's CN)
DEFAULT_SOCKET = "/run/openvpn-teleshift/management.sock"


class OpenVpnError(Exception):
    pass


def parse_clients(text):
    """``<id> <address>`` lines -> {id: address}; raises OpenVpnError naming the line."""
    result = {}
    for number, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not ID_RE.match(parts[0]):
            raise OpenVpnError(f"clients line {number}: expected '<person id> <address>', got {line[:80]!r}")
        try:
            address = str(ipaddress.IPv4Address(parts[1]))
        except ValueError:
            raise OpenVpnError(f"clients line {number}: {parts[1]!r} is not an IPv4 address") from None
        if parts[0] in result:
            raise OpenVpnError(f"clients line {number}: {parts[0]} is listed twice")
        result[parts[0]] = address
    if len(set(result.values())) != len(result):
        raise OpenVpnError("two people share an address in clients")
    return result


def ccd_files(clients, netmask, push=()):
    """{id: ccd file text}: the person's fixed address, then what every client is told."""
    tail = "".join(f"{line}\n" for line in push)
    return {pid: f"# teleshift: {pid}\nifconfig-push {address} {netmask}\n{tail}" for pid, address in clients.items()}


def ccd_address(text):
    match = re.search(r"^ifconfig-push\s+(\S+)", text or "", re.M)
    return match.group(1) if match else ""


class Management:
    """A short conversation with the management interface (unix socket), bounded in time."""

    def __init__(self, path=DEFAULT_SOCKET, timeout=5.0):
        self.path, self.timeout = path, timeout
        self.sock, self.buffer = None, b""

    def __enter__(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)
        self._line()  # >INFO: greeting
        return self

    def __exit__(self, *exc):
        try:
            self.sock.sendall(b"quit\n")
        except OSError:
            pass
        self.sock.close()

    def _line(self):
        deadline = time.monotonic() + self.timeout
        while b"\n" not in self.buffer:
            if time.monotonic() > deadline:
                raise OpenVpnError("the management interface did not answer in time")
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OpenVpnError("the management interface closed the connection")
            self.buffer += chunk
        line, _sep, self.buffer = self.buffer.partition(b"\n")
        return line.decode("utf-8", "replace").rstrip("\r")

    def command(self, text):
        """Send one command; its answer: the lines up to END, or the SUCCESS:/ERROR: line."""
        self.sock.sendall(text.encode("ascii") + b"\n")
        lines = []
        while True:
            line = self._line()
            if line.startswith(">"):
                continue  # a real-time notification, not the answer
            if line.startswith(("SUCCESS:", "ERROR:")) and not lines:
                return [line]
            if line == "END":
                return lines
            lines.append(line)

    def status(self):
        return parse_status("\n".join(self.command("status 3")))

    def kill(self, cid, message="HALT"):
        """End one client session by its client id; HALT tells the client to stop, RESTART to reconnect."""
        answer = self.command(f"client-kill {int(cid)} {message}")
        return bool(answer) and answer[0].startswith("SUCCESS")


def parse_status(text):
    """``status 3`` (tab separated) -> {common name: [{real, virtual, since, rx, tx, cid}]}."""
    headers, sessions = {}, {}
    for line in (text or "").splitlines():
        parts = line.rstrip("\r").split("\t")
        if parts[0] == "HEADER" and len(parts) > 2:
            headers[parts[1]] = parts[2:]
        elif parts[0] == "CLIENT_LIST" and "CLIENT_LIST" in headers:
            row = dict(zip(headers["CLIENT_LIST"], parts[1:]))
            cn = row.get("Common Name", "")
            if not cn:
                continue
            sessions.setdefault(cn, []).append({
                "real": row.get("Real Address", ""),
                "virtual": row.get("Virtual Address", ""),
                "since": _int(row.get("Connected Since (time_t)")),
                "rx": _int(row.get("Bytes Received")),
                "tx": _int(row.get("Bytes Sent")),
                "cid": row.get("Client ID", ""),
            })
    return sessions


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def sessions_to_end(sessions, clients, kick=()):
    """[(cid, common name, message)]: sessions of people no longer served or whose key was replaced
    (HALT: their client stops; the CRL refuses it anyway), and of people whose address changed
    (RESTART: they reconnect and get the new one)."""
    result = []
    for cn, rows in sorted(sessions.items()):
        for row in rows:
            if not row.get("cid", "").isdigit():
                continue
            if cn not in clients or cn in kick:
                result.append((row["cid"], cn, "HALT"))
            elif row.get("virtual") and row["virtual"] != clients[cn]:
                result.append((row["cid"], cn, "RESTART"))
    return result


# The status probe's one read on a gateway (python3 is there: Ansible needs it). Exit 127 when the
# server is not set up, so the hotline sees "not configured" rather than an error.
QUERY = r"""
import os, socket, sys, time
path, ccd = sys.argv[1], sys.argv[2]
if not os.path.exists(path):
    sys.stderr.write("management socket not found: " + path + "\n"); sys.exit(127)
s = socket.socket(socket.AF_UNIX); s.settimeout(5); s.connect(path)
s.sendall(b"status 3\n"); data = b""; end = time.monotonic() + 5
while time.monotonic() < end and b"\nEND" not in data:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
s.sendall(b"quit\n")
print("== status"); print(data.decode("utf-8", "replace").replace("\r", ""))
print("== ccd")
for name in sorted(os.listdir(ccd)) if os.path.isdir(ccd) else []:
    try:
        text = open(os.path.join(ccd, name)).read()
    except OSError:
        continue
    for line in text.splitlines():
        if line.startswith("ifconfig-push "):
            print(name + "\t" + line.split()[1])
"""


def parse_query(text):
    """QUERY's output -> {"sessions": {cn: [session]}, "ccd": {id: address}}."""
    section, status, ccd = None, [], {}
    for line in (text or "").splitlines():
        if line.startswith("== "):
            section = line[3:].strip()
            continue
        if section == "status":
            status.append(line)
        elif section == "ccd" and "\t" in line:
            name, address = line.split("\t", 1)
            ccd[name] = address.strip()
    return {"sessions": parse_status("\n".join(status)), "ccd": ccd}


def read_ccd(directory):
    """{file name: text} of a ccd directory ({} when it does not exist)."""
    result = {}
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return result
    for name in names:
        if name.startswith("."):
            continue
        try:
            with open(os.path.join(directory, name), encoding="utf-8") as stream:
                result[name] = stream.read()
        except (OSError, UnicodeDecodeError):
            result[name] = ""
    return result
