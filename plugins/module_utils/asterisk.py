# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The PBX host's side of telephony (standard library only: the PBX modules ship it to the host): talking
to a running Asterisk, the CLI (``asterisk -rx``) for reads and reloads, the manager interface (AMI,
bound to 127.0.0.1) for bulk AstDB writes (thousands of DBPut/DBDel actions pipelined over one
connection take well under a second, where one ``asterisk -rx`` per key would take minutes for 5,000
people); the AstDB families teleshift owns and their diff; the configuration files' blocks, Asterisk's
own way of reading them and the pre-apply checks. The controller-side compile is telephony.py.
"""
from __future__ import annotations

import hashlib
import re
import socket
import time

# AstDB families the forwarding module owns entirely (keys not desired are deleted).
CF_ALWAYS, CF_BUSY, CF_NOANSWER, CF_DELAY = "CFIM", "CFBS", "CFNA", "CFNADELAY"
ON_DUTY, HOLIDAY, MOBILE = "TSONDUTY", "TSHOLIDAY", "TSMOBILE"
MANAGED_FAMILIES = (CF_ALWAYS, CF_BUSY, CF_NOANSWER, CF_DELAY, ON_DUTY, HOLIDAY, MOBILE)
# Manual switch, never managed: ``database put TSCLOSED <attendant> <reason>`` closes an attendant now.
CLOSED = "TSCLOSED"
MODE_FAMILY = {"always": CF_ALWAYS, "busy": CF_BUSY, "no_answer": CF_NOANSWER}

# What makes Asterisk pick up a changed file, without restarting (calls in progress stay up).
RELOADS = {
    "manager.conf": "manager reload",
    "rtp.conf": "module reload res_rtp_asterisk.so",
    "pjsip.conf": "module reload res_pjsip.so",
    "extensions.conf": "dialplan reload",
    "voicemail.conf": "module reload app_voicemail.so",
    "queues.conf": "module reload app_queue.so",
    "confbridge.conf": "module reload app_confbridge.so",
}
BLOCK_MARK = ";; teleshift: "

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


# ------------------------------------------------------------------------------------------------
# The AstDB as it is and as it should be
# ------------------------------------------------------------------------------------------------

def parse_database_show(text):
    """``asterisk -rx "database show"`` output -> {family: {key: value}} (keys may contain '/')."""
    result = {}
    for line in text.splitlines():
        if not line.startswith("/") or ":" not in line:
            continue
        path, _sep, value = line.partition(":")
        parts = path.strip().split("/", 2)
        if len(parts) < 3:
            continue
        result.setdefault(parts[1], {})[parts[2]] = value.strip()
    return result


def diff_astdb(current, desired, families=MANAGED_FAMILIES):
    """(puts, deletes): puts = [(family, key, value)], deletes = [(family, key)]; managed families only."""
    puts, deletes = [], []
    for fam in families:
        have = current.get(fam, {})
        want = desired.get(fam, {})
        for key in sorted(want):
            if have.get(key) != want[key]:
                puts.append((fam, key, want[key]))
        for key in sorted(have):
            if key not in want:
                deletes.append((fam, key))
    return puts, deletes


def describe_astdb_changes(current, desired, labels, families=MANAGED_FAMILIES):
    """Who changes: {'added': [...], 'changed': [...], 'removed': [...]} of labels (e.g. 'person amartin')."""
    def per_key(state):
        result = {}
        for fam in families:
            for key, value in state.get(fam, {}).items():
                result.setdefault(key, {})[fam] = value
        return result

    before, after = per_key(current), per_key(desired)
    out = {"added": [], "changed": [], "removed": []}
    for key in sorted(set(before) | set(after)):
        name = labels.get(key, f"key {key}")
        if key not in before:
            out["added"].append(name)
        elif key not in after:
            out["removed"].append(name)
        elif before[key] != after[key]:
            out["changed"].append(name)
    return out


def astdb_text(state, labels, families=MANAGED_FAMILIES):
    """A readable rendering of the state for Ansible's diff (public data: numbers, not secrets)."""
    lines = []
    for fam in families:
        for key in sorted(state.get(fam, {})):
            label = labels.get(key, "")
            lines.append(f"{fam}/{key} = {state[fam][key]}" + (f"  # {label}" if label else ""))
    return "\n".join(lines) + ("\n" if lines else "")


# ------------------------------------------------------------------------------------------------
# Blocks: what the config-file module diffs (names only, never content)
# ------------------------------------------------------------------------------------------------

def split_blocks(text):
    """{'kind name': sha256 of the block} for a rendered (or installed) teleshift file."""
    blocks = {}
    current, lines = "header", []
    for line in text.splitlines(keepends=True):
        if line.startswith(BLOCK_MARK):
            blocks[current] = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
            current, lines = line[len(BLOCK_MARK):].strip(), []
        else:
            lines.append(line)
    blocks[current] = hashlib.sha256("".join(lines).encode("utf-8")).hexdigest()
    return blocks


def diff_blocks(old_text, new_text):
    """{'added': [...], 'changed': [...], 'removed': [...]} block names between two versions of a file."""
    old = split_blocks(old_text) if old_text is not None else {}
    new = split_blocks(new_text)
    return {
        "added": sorted(k for k in new if k not in old),
        "changed": sorted(k for k in new if k in old and old[k] != new[k]),
        "removed": sorted(k for k in old if k not in new),
    }


def _strip_comments(lines):
    """Asterisk's comment rules, line by line: ';' starts a comment unless escaped as '\\;' (the backslash
    goes), ';--' ... '--;' is a block comment that may span lines."""
    depth = 0
    for number, raw in enumerate(lines, 1):
        out, i = [], 0
        while i < len(raw):
            if depth:
                if raw.startswith("--;", i):
                    depth -= 1
                    i += 3
                elif raw.startswith(";--", i):
                    depth += 1
                    i += 3
                else:
                    i += 1
                continue
            char = raw[i]
            if char == ";":
                if out and out[-1] == "\\":
                    out[-1] = ";"
                elif raw.startswith(";--", i):
                    depth += 1
                    i += 3
                    continue
                else:
                    break
            else:
                out.append(char)
            i += 1
        yield number, "".join(out)


def parse_conf(text):
    """Asterisk config text -> list of (section, [(key, value)]) in order (same-named sections allowed).

    Reads as Asterisk's own parser does (config.c): lines end at '\\n' only, comments as above, spaces
    (and a lone CR) around names and values stripped. Used by tests and by the module's pre-apply checks
    (every section well formed, no duplicate endpoint/auth/aor); Asterisk's own reading is checked on
    the lab PBX (tests/lab/test_telephony.py)."""
    sections = []
    current = None
    for number, line in _strip_comments(text.split("\n")):
        line = line.strip(" \t\n\v\f\r")
        if not line or line.startswith(("#include", "#tryinclude")):
            continue
        if line.startswith("["):
            if "]" not in line:
                raise ValueError(f"line {number}: a section name without its closing ']'")
            current = (line[1:line.index("]")], [])
            sections.append(current)
            continue
        if current is None:
            raise ValueError(f"line {number}: setting outside a section")
        if "=" not in line:
            raise ValueError(f"line {number}: neither key=value nor key => value: {line!r}")
        key, _sep, value = line.partition("=")
        value = value[1:] if value.startswith(">") else value
        current[1].append((key.strip(" \t\v\f\r"), value.strip(" \t\v\f\r")))
    return sections


def check_pjsip(text):
    """Problems (strings) in a pjsip.conf before it goes live: duplicate (name, type), missing types."""
    problems = []
    seen = set()
    for name, settings in parse_conf(text):
        types = [v for k, v in settings if k == "type"]
        if len(types) != 1:
            problems.append(f"section [{name}] must have exactly one type=")
            continue
        if (name, types[0]) in seen:
            problems.append(f"section [{name}] type={types[0]} appears twice")
        seen.add((name, types[0]))
    return problems
