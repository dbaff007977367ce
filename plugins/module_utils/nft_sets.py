# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""A readable form of nftables rules for diff mode: who gains or loses access.

The VPN firewall keeps each service's client addresses in one set, written on one line
(``elements = { 10.90.0.2, 10.90.0.7, ... }``). A person changing service moves their address from one
set to another: as text, that is two very long changed lines. ``expand_sets`` writes every element on
a line of its own, labelled with the person whose address it is and the service of the set (from the
``# service NAME: ...`` comment before it), so a unified diff shows ``-10.90.0.7  # amartin, service rsa``
and ``+10.90.0.7  # amartin, service ase``. Public data only: addresses and person ids.
"""
from __future__ import annotations

import re

_SERVICE = re.compile(r"^\s*# service (\S+?):")
_SET = re.compile(r"^\s*set (\S+) \{")
_ELEMENTS = re.compile(r"^(\s*)elements = \{(.*)\}\s*$")


def owners_of(peers):
    """Address (without /32 or /128) -> person, from Peer objects (person, allowed_ips)."""
    result = {}
    for peer in peers:
        for ip in peer.allowed_ips:
            address, _sep, prefix = str(ip).partition("/")
            if prefix in ("", "32", "128"):
                result[address] = peer.person
    return result


def expand_sets(text, owners=None):
    """The rules with one set element per line, labelled (see the module docstring)."""
    owners = owners or {}
    out, service, current = [], "", ""
    for line in (text or "").splitlines():
        match = _SERVICE.match(line)
        if match:
            service = match.group(1)
        match = _SET.match(line)
        if match:
            current = match.group(1)
            if not current.startswith("s") or "_" not in current:
                service = ""  # admins4, internal4...: not a service's set
        match = _ELEMENTS.match(line)
        if not match:
            out.append(line)
            continue
        indent, items = match.groups()
        out.append(f"{indent}elements = {{")
        what = f"service {service}" if service else f"set {current}"
        for item in (i.strip() for i in items.split(",")):
            if item:
                who = owners.get(item.partition("/")[0] if item.endswith(("/32", "/128")) else item)
                out.append(f"{indent}\t{item}  # {who + ', ' if who else ''}{what}")
        out.append(f"{indent}}}")
    return "\n".join(out) + ("\n" if out else "")
