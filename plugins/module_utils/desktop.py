# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Remote-desktop session hosts, controller side: who sits on which host, their accounts, their kits,
and what a host's health figures mean.

- ``plan_desktop``: people with the ``desktop`` need, active, placed on the ``desktop_hosts`` within
  each host's session capacity (``xrdp_host_max_sessions``, else ``teleshift_desktop_max_sessions``),
  by priority then roster order, grouped by service where possible, sticky through the public state
  file ``<inventory>/state/desktop.yml`` (person -> host, login, status). People who no longer need a
  desktop stay in the state as ``locked`` so they get their host (and home) back if they return.
  Over capacity is a Problem naming the shortfall (preflight fails, nothing is applied).
- ``accounts_for``: the desired accounts (public data) of one host, for the desktop_accounts module.
- ``hash_passwords``: SHA-512 crypt hashes made by ``openssl passwd -6 -stdin`` (one process per CPU
  for the whole batch; passwords travel on stdin, never on a command line). Python's ``crypt`` is
  deprecated and gone in 3.13 and passlib is unmaintained; OpenSSL is on every controller.
- ``kit_files``: the person's ``desktop/`` kit (summary, .rdp file, FreeRDP command line).

No I/O except ``hash_passwords`` (a subprocess): the kits' files are written by the caller.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.assign import assign_hosts
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_accounts import NAME_RE, Account
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    SYSTEM_ACCOUNTS, Problem, is_system_account, priority_order)

CAPACITY_VARS = ("xrdp_host_max_sessions", "teleshift_desktop_max_sessions")
DEFAULT_MAX_SESSIONS = 50
CAPABILITY = "desktop"  # the kit subdirectory
PASSWORD_FILE = "password"  # noqa: S105 - a file name, not a password
HASH_FILE = ".password.crypt"  # hidden: the notice does not list it
RDP_PORT = 3389
# Names the hosts already have: never a person's login (the roster refuses them too: one list).
RESERVED_LOGINS = SYSTEM_ACCOUNTS
_ASCII = {"đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE",
          "ł": "l", "Ł": "L", "þ": "th", "ð": "d"}


_PLAIN_NAME = re.compile(r"[A-Za-z0-9.'()/_-]+(?: [A-Za-z0-9.'()/_-]+)*")  # already its own GECOS field


def gecos(full_name):
    """The GECOS field for a full name: ASCII (the shadow tools reject other bytes in some locales)."""
    if _PLAIN_NAME.fullmatch(full_name):  # most names: nothing to translate, strip or squeeze
        return full_name
    return _translated(full_name)


_ASCII_TABLE = str.maketrans(_ASCII)
_SEPARATORS = re.compile(r"[\s:,=]+")


def _translated(full_name):
    text = unicodedata.normalize("NFKD", full_name.translate(_ASCII_TABLE)).encode("ascii", "ignore").decode()
    if not text.isprintable():  # no control character in /etc/passwd
        text = "".join(c if c.isprintable() else " " for c in text)
    return _SEPARATORS.sub(" ", text).strip()


def service_group(prefix, service):
    """The Unix group of a service (``ts-rsa``): lower case, [a-z0-9_-], at most 32 characters."""
    name = (prefix + re.sub(r"[^a-z0-9_-]+", "-", service.lower()))[:32].rstrip("-")
    if not re.search(r"[a-z0-9_]", name[len(prefix):]):  # nothing ASCII in it: never the bare prefix
        name = prefix + "s" + hashlib.sha256(service.encode("utf-8")).hexdigest()[:8]
    return name


def host_capacities(hosts, hostvars, source="inventory"):
    """host -> sessions it takes, from its variables; (capacities, problems)."""
    caps, problems = {}, []
    for host in hosts:
        hv = hostvars.get(host, {})
        value, name = DEFAULT_MAX_SESSIONS, None
        for name in CAPACITY_VARS:
            if hv.get(name) is not None:
                value = hv[name]
                break
        else:
            name = None
        try:
            ok = not isinstance(value, bool) and int(str(value)) >= 1
        except ValueError:
            ok = False
        if not ok:
            problems.append(Problem(f"host {host}", 0, name or CAPACITY_VARS[0],
                                    f"expected a number of sessions >= 1, got {value!r}"))
            value = 0
        caps[host] = int(str(value)) if ok else 0
    return caps, problems


@dataclass
class DesktopPlan:
    capacities: dict = field(default_factory=dict)  # host -> sessions
    hosts: dict = field(default_factory=dict)  # person id -> host (people with an account to use)
    unplaced: list = field(default_factory=list)
    people: dict = field(default_factory=dict)  # person id -> Person (placed people)
    state: dict = field(default_factory=dict)  # the new public state file
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems

    def people_on(self, host):
        return sorted(pid for pid, h in self.hosts.items() if h == host)

    def accounts_for(self, host, group_prefix="ts-", shell="/bin/bash"):
        """The desired accounts of ``host``, sorted by login (public data only)."""
        return [Account(login=pid, name=gecos(self.people[pid].full_name),
                        groups=(service_group(group_prefix, self.people[pid].service),), shell=shell)
                for pid in self.people_on(host)]


def previous_hosts(state):
    """person id -> host from the state file (any status)."""
    people = state.get("people") if isinstance(state, dict) else None
    result = {}
    if isinstance(people, dict):
        for pid, entry in people.items():
            if isinstance(entry, dict) and isinstance(entry.get("host"), str):
                result[str(pid)] = entry["host"]
    return result


def unusable_login(person):
    return is_system_account(person.id) or not NAME_RE.match(person.id)


def reserved_login_problems(people, source="roster", unusable=None):
    """Problems for people whose id cannot be a login on desktop hosts (a system account has it);
    ``unusable``: those people, when already picked out of ``people``."""
    return [Problem(source, p.line, "id", f"{p.id!r} cannot be a login name on desktop hosts (a system account "
                                          "has it); give this person another id")
            for p in (unusable if unusable is not None else [p for p in people if unusable_login(p)])]


def plan_desktop(people, capacities, state=None, source="roster", wanted=None, unusable=None):
    """Place the active people who need a desktop on hosts; see the module docstring. ``wanted`` (those
    people) and ``unusable`` (those of them whose id cannot be a login): when already picked out."""
    plan = DesktopPlan(capacities=dict(capacities))
    wanted = [p for p in people if p.needs_(CAPABILITY)] if wanted is None else wanted
    unusable = [p for p in wanted if unusable_login(p)] if unusable is None else unusable
    plan.problems += reserved_login_problems(wanted, source, unusable)
    bad = {p.id for p in unusable}
    users = [p for p in wanted if p.id not in bad] if bad else wanted
    if users and not capacities:
        plan.problems.append(Problem("inventory", 0, "desktop_hosts",
                                     f"{len(users)} people need a remote desktop but the group has no host"))
        return plan
    previous = previous_hosts(state or {})
    by_id = {p.id: p for p in users}
    assignment = assign_hosts([p.id for p in priority_order(users)], capacities, previous,
                              group_of=lambda pid: by_id[pid].service)
    plan.hosts = dict(assignment.hosts)
    plan.unplaced = list(assignment.unplaced)
    plan.people = {pid: by_id[pid] for pid in plan.hosts}
    if plan.unplaced:
        total = sum(capacities.values())
        first = ", ".join(plan.unplaced[:5]) + (" ..." if len(plan.unplaced) > 5 else "")
        plan.problems.append(Problem(
            "inventory", 0, "desktop_hosts",
            f"{len(users)} people need a remote desktop but the {len(capacities)} host(s) take {total} "
            f"session(s): {len(plan.unplaced)} more needed (not placed: {first}); raise "
            f"xrdp_host_max_sessions or add a host to desktop_hosts"))
    entries = {}
    for pid, host in previous.items():  # earlier people keep their entry (and home) while their host exists
        if pid not in plan.hosts and host in capacities:
            entries[pid] = {"host": host, "login": pid, "status": "locked"}
    for pid, host in plan.hosts.items():
        entries[pid] = {"host": host, "login": pid, "status": "active", "service": by_id[pid].service}
    load = {h: 0 for h in capacities}
    for host in plan.hosts.values():
        load[host] += 1
    plan.state = {
        # not "hosts": AWX would list the state file as a playbook (docs/awx.md)
        "session_hosts": {h: {"capacity": capacities[h], "assigned": load[h]} for h in sorted(capacities)},
        "people": dict(sorted(entries.items())),
    }
    return plan


# --------------------------------------------------------------------------------------------
# Passwords: only hashes leave the controller
# --------------------------------------------------------------------------------------------

def _openssl_batch(passwords):
    if any("\n" in p or "\r" in p for p in passwords):
        raise ValueError("a password contains a line break")
    proc = subprocess.run(["openssl", "passwd", "-6", "-stdin"], input="\n".join(passwords) + "\n",
                          capture_output=True, text=True, check=False, timeout=600)
    hashes = proc.stdout.split()
    if proc.returncode != 0 or len(hashes) != len(passwords) or not all(h.startswith("$6$") for h in hashes):
        raise RuntimeError(f"openssl passwd -6 failed (exit {proc.returncode}): {proc.stderr.strip()[:200]}")
    return hashes


def hash_passwords(passwords, workers=None):
    """SHA-512 crypt hashes of ``passwords`` (same order), one openssl process per CPU."""
    passwords = list(passwords)
    if not passwords:
        return []
    workers = max(1, min(workers or os.cpu_count() or 1, len(passwords)))
    size = -(-len(passwords) // workers)
    chunks = [passwords[i:i + size] for i in range(0, len(passwords), size)]
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return [h for part in pool.map(_openssl_batch, chunks) for h in part]


def fingerprint(password, crypt_hash):
    """Ties a cached hash to the password it was made from, without a slow crypt to check it."""
    return hmac.new(crypt_hash.encode(), password.encode(), hashlib.sha256).hexdigest()[:32]


def cached_hash(text, password):
    """The hash stored in the kit's hidden hash file if it still belongs to ``password``, else None."""
    if not text:
        return None
    parts = text.split()
    if len(parts) == 2 and parts[0].startswith("$6$") and hmac.compare_digest(
            parts[1], fingerprint(password, parts[0])):
        return parts[0]
    return None


def hash_file_text(password, crypt_hash):
    return f"{crypt_hash} {fingerprint(password, crypt_hash)}\n"


# --------------------------------------------------------------------------------------------
# Kits
# --------------------------------------------------------------------------------------------

def rdp_file(address, login, port=RDP_PORT, width=1600, height=900):
    """A .rdp file for Windows' Remote Desktop Connection (CRLF lines, as mstsc writes them)."""
    lines = [
        f"full address:s:{address}:{port}" if port != RDP_PORT else f"full address:s:{address}",
        f"username:s:{login}",
        "screen mode id:i:2",
        f"desktopwidth:i:{width}",
        f"desktopheight:i:{height}",
        "session bpp:i:24",
        "prompt for credentials:i:1",
        "authentication level:i:2",
        "enablecredsspsupport:i:0",
        "redirectclipboard:i:1",
        "redirectprinters:i:0",
        "redirectdrives:i:0",
        "autoreconnection enabled:i:1",
    ]
    return "\r\n".join(lines) + "\r\n"


def freerdp_command(address, login, port=RDP_PORT):
    """The Linux command line (FreeRDP 2): asks for the password; trusts the host key on first use."""
    return (f"xfreerdp /v:{address}:{port} /u:{login} /cert:tofu /dynamic-resolution +clipboard "
            f"/sec:tls\n")


def _yaml_text(value):
    """``value`` as a YAML scalar that reads back as the same text (an id such as ``no`` or ``null``
    would read as a boolean or nothing): plain when it is safe, JSON-quoted otherwise."""
    import yaml

    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/-]*", text) and yaml.resolver.Resolver().resolve(
            yaml.ScalarNode, text, (True, False)) == "tag:yaml.org,2002:str":
        return text
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def kit_files(person, host, address, port=RDP_PORT):
    """name -> content of the person's desktop/ kit files (the password file is kept separately)."""
    summary = (f"host: {_yaml_text(host)}\naddress: {_yaml_text(address)}\nport: {int(port)}\n"
               f"login: {_yaml_text(person.id)}\nconnect (Windows): {_yaml_text(person.id + '.rdp')}\n"
               "connect (Linux): connect-linux.sh\n")
    script = ("#!/bin/sh\n# Remote desktop from Linux (package freerdp2-x11): connect the VPN first.\n"
              "exec " + freerdp_command(address, person.id, port))
    return {"summary.yml": summary, f"{person.id}.rdp": rdp_file(address, person.id, port),
            "connect-linux.sh": script}
