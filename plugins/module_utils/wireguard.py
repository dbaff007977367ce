# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""WireGuard on a gateway, as plain data: the peer set, its config file, the live state, the diff.

Used on the gateway by the ``wireguard_peers`` module (standard library only: it travels with the
module) and on the controller by the plan, the tests and the hotline status.

- ``Peer(person, public_key, allowed_ips)``: one person's tunnel on a gateway. A person is named in
  the config file by a ``# teleshift-person: <id>`` comment, so removed people can still be named.
- ``render_gateway_config`` / ``parse_config``: the gateway's wg-quick file. It carries no private
  key: wg-quick loads it from the key file (PostUp), so the file is safe to diff.
- ``parse_dump``: ``wg show <if> dump`` (interface line + one line per peer).
- ``diff_peers``: desired vs actual, per person (added / updated / removed) and per key (what
  ``wg set`` must do).
- ``wg_set_batches``: the live changes as ``wg set`` argument lists, removals first, in batches.
- ``handshakes_from_dump``: person id -> last handshake epoch (or None), for report and hotline.
"""
from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import time
from dataclasses import dataclass, field

PERSON_TAG = "# teleshift-person:"
HEADER = ("# Managed by teleshift (teleshift.toolkit.wireguard_peers). Edit the roster and the inventory,\n"
          "# not this file: the next run rewrites it. No private key here: PostUp loads it from the key file.\n")
_IFACE_RE = re.compile(r"^[A-Za-z0-9_=+.-]{1,15}$")


class WireGuardError(ValueError):
    """Bad desired state (duplicate keys or addresses, malformed key): nothing may be applied."""


@dataclass(frozen=True)
class Peer:
    person: str
    public_key: str
    allowed_ips: tuple = ()

    def line(self):
        return f"{self.person} {', '.join(self.allowed_ips)} key={self.public_key}"


@dataclass
class Dump:
    """``wg show <if> dump`` as data. The interface's private key is kept only as a fingerprint
    comparison helper (``has_private_key``): never store or return it."""

    public_key: str = ""
    listen_port: int = 0
    has_private_key: bool = False
    peers: dict = field(default_factory=dict)  # public key -> {allowed_ips, endpoint, handshake, rx, tx}


@dataclass
class PeerDiff:
    added: list = field(default_factory=list)  # person ids
    changed: list = field(default_factory=list)
    removed: list = field(default_factory=list)
    set_peers: list = field(default_factory=list)  # Peer objects to (re)configure live
    remove_keys: list = field(default_factory=list)  # public keys to remove live

    @property
    def empty(self):
        return not (self.set_peers or self.remove_keys)

    def summary(self):
        # "updated", not "changed": Ansible's own "changed" flag sits beside it in module results
        return {"added": self.added, "updated": self.changed, "removed": self.removed}


def valid_key(text):
    """A WireGuard key: 32 bytes in standard base64 (44 characters ending in '=')."""
    if not isinstance(text, str) or len(text) != 44 or not text.endswith("="):
        return False
    try:
        return len(base64.b64decode(text, validate=True)) == 32
    except (binascii.Error, ValueError):
        return False


def valid_interface(name):
    return bool(isinstance(name, str) and _IFACE_RE.match(name))


_HOST32 = re.compile(r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)/32")


def normalise_ips(ips):
    """Allowed IPs as sorted canonical CIDR text (a bare address becomes /32 or /128)."""
    texts = [str(ip).strip() for ip in ips if str(ip).strip()]
    if len(texts) == 1 and _HOST32.fullmatch(texts[0]):
        return (texts[0],)  # the usual peer, already canonical: 5,000 of them per gateway
    nets = {ipaddress.ip_network(text, strict=False) for text in texts}
    return tuple(str(n) for n in sorted(nets, key=lambda n: (n.version, n)))


def peer_lines(peers):
    """The compact text form of a peer set: one ``<id> <public key> <allowed IP>[,<allowed IP>...]``
    line per peer. Ansible templates a 5,000-item list of dicts in seconds, one string in
    microseconds: the plan hands gateways their peers in this form."""
    return "".join(f"{p['id']} {p['public_key']} {','.join(p['allowed_ips'])}\n" for p in peers)


def parse_peer_lines(text):
    """Items (dicts) from ``peer_lines`` text; a malformed line raises WireGuardError."""
    items = []
    for number, line in enumerate(str(text).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 3:
            raise WireGuardError(f"peer line {number}: expected '<id> <public key> <allowed IPs>'")
        items.append({"id": fields[0], "public_key": fields[1], "allowed_ips": fields[2].split(",")})
    return items


def make_peers(items):
    """Validate and normalise the desired peers (list of dicts {id|person, public_key, allowed_ips},
    or the text of ``peer_lines``).

    Raises WireGuardError on a malformed key, a duplicate person, key or allowed IP: WireGuard
    silently moves an allowed IP to the last peer that claims it, so a duplicate would cut someone off.
    """
    if isinstance(items, str):
        items = parse_peer_lines(items)
    peers, seen_person, seen_key, seen_ip = [], set(), set(), {}
    for item in items:
        if not isinstance(item, dict):
            raise WireGuardError("each peer must be a mapping {id, public_key, allowed_ips}")
        person = str(item.get("id") or item.get("person") or "")
        key = item.get("public_key", "")
        if not person:
            raise WireGuardError("a peer has no person id")
        if not valid_key(key):
            raise WireGuardError(f"{person}: public key is not a WireGuard key")
        if person in seen_person:
            raise WireGuardError(f"{person}: listed twice")
        if key in seen_key:
            raise WireGuardError(f"{person}: public key already used by another person")
        try:
            ips = normalise_ips(item.get("allowed_ips") or ())
        except ValueError as exc:
            raise WireGuardError(f"{person}: {exc}") from None
        if not ips:
            raise WireGuardError(f"{person}: no allowed IPs")
        for ip in ips:
            if ip in seen_ip:
                raise WireGuardError(f"{person}: allowed IP {ip} already given to {seen_ip[ip]}")
            seen_ip[ip] = person
        seen_person.add(person)
        seen_key.add(key)
        peers.append(Peer(person, key, ips))
    return sorted(peers, key=lambda p: p.person)


def render_gateway_config(interface, addresses, listen_port, private_key_path, peers, mtu=None):
    """The gateway's wg-quick file: deterministic (people sorted), no secret in it."""
    lines = [HEADER.rstrip("\n"), "[Interface]"]
    lines.append("Address = " + ", ".join(addresses))
    lines.append(f"ListenPort = {int(listen_port)}")
    if mtu:
        lines.append(f"MTU = {int(mtu)}")
    lines.append(f"PostUp = wg set %i private-key {private_key_path}")
    for peer in sorted(peers, key=lambda p: p.person):
        lines += ["", "[Peer]", f"{PERSON_TAG} {peer.person}", f"PublicKey = {peer.public_key}",
                  "AllowedIPs = " + ", ".join(peer.allowed_ips)]
    return "\n".join(lines) + "\n"


def parse_config(text):
    """A wg-quick file -> (interface settings dict, [Peer]) (persons from the teleshift comments)."""
    interface, peers, section, current = {}, [], None, None

    def close():
        if current is not None and current.get("public_key"):
            peers.append(Peer(current.get("person", ""), current["public_key"],
                              normalise_ips(current.get("allowed_ips", []))))

    for raw in (text or "").splitlines():
        line = raw.strip()
        if line.startswith(PERSON_TAG) and section == "peer":
            current["person"] = line[len(PERSON_TAG):].strip()
            continue
        if not line or line.startswith("#"):
            continue
        if line.lower() == "[interface]":
            close()
            section, current = "interface", None
            continue
        if line.lower() == "[peer]":
            close()
            section, current = "peer", {}
            continue
        name, sep, value = line.partition("=")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if section == "interface":
            interface[name] = value
        elif section == "peer":
            if name == "publickey":
                current["public_key"] = value
            elif name == "allowedips":
                current.setdefault("allowed_ips", []).extend(v for v in value.split(",") if v.strip())
    close()
    return interface, peers


def parse_dump(text):
    """``wg show <if> dump`` (or ``wg show all dump``) -> Dump of the first interface seen."""
    dump, iface_seen = Dump(), False
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) in (5, 9):  # `wg show all dump` prefixes the interface name
            parts = parts[1:]
        if len(parts) == 4 and not iface_seen:
            iface_seen = True
            dump.has_private_key = parts[0] not in ("", "(none)")
            dump.public_key = "" if parts[1] == "(none)" else parts[1]
            dump.listen_port = int(parts[2]) if parts[2].isdigit() else 0
        elif len(parts) == 8:
            key, _psk, endpoint, allowed, handshake, rx, tx, _keepalive = parts
            dump.peers[key] = {
                "allowed_ips": normalise_ips(a for a in allowed.split(",") if a not in ("(none)", "")),
                "endpoint": "" if endpoint == "(none)" else endpoint,
                "handshake": int(handshake) if handshake.isdigit() else 0,
                "rx": int(rx) if rx.isdigit() else 0,
                "tx": int(tx) if tx.isdigit() else 0,
            }
    return dump


def diff_peers(desired, actual, known=None):
    """Desired peers vs actual ({public key: allowed_ips tuple}).

    known: public key -> person id for keys no longer desired (from the previous config file), so
    removals are reported by person. A person whose key or addresses changed is "changed"; their
    old key is removed and the new one set. Lists are sorted.
    """
    known = dict(known or {})
    result = PeerDiff()
    desired_by_key = {p.public_key: p for p in desired}
    actual_people = {}
    for key in actual:
        person = desired_by_key[key].person if key in desired_by_key else known.get(key, f"unknown peer {key[:8]}...")
        actual_people.setdefault(person, []).append(key)
    for peer in desired:
        current = actual.get(peer.public_key)
        if current is None or tuple(current) != tuple(peer.allowed_ips):
            result.set_peers.append(peer)
    for key in actual:
        if key not in desired_by_key:
            result.remove_keys.append(key)
    desired_people = {p.person for p in desired}
    touched = {p.person for p in result.set_peers} | {
        desired_by_key[k].person if k in desired_by_key else known.get(k, f"unknown peer {k[:8]}...")
        for k in result.remove_keys}
    for person in sorted(touched):
        if person in desired_people and person in actual_people:
            result.changed.append(person)
        elif person in desired_people:
            result.added.append(person)
        else:
            result.removed.append(person)
    result.set_peers.sort(key=lambda p: p.person)
    result.remove_keys.sort()
    return result


def wg_set_batches(interface, diff, batch=500):
    """``wg set`` argument lists applying ``diff`` live: removals first (so an address moving from
    one key to another is free when the new key claims it), then additions/changes. Each call
    changes at most ``batch`` peers; ``allowed-ips`` replaces the peer's whole list."""
    ops = [["peer", key, "remove"] for key in diff.remove_keys]
    ops += [["peer", p.public_key, "allowed-ips", ",".join(p.allowed_ips)] for p in diff.set_peers]
    calls = []
    for start in range(0, len(ops), batch):
        args = ["set", interface]
        for op in ops[start:start + batch]:
            args += op
        calls.append(args)
    return calls


def inverse_batches(interface, diff, actual, batch=500):
    """The ``wg set`` calls that put back ``actual`` after ``diff`` was (partly) applied."""
    back = PeerDiff()
    desired_keys = {p.public_key for p in diff.set_peers}
    back.remove_keys = sorted(k for k in desired_keys if k not in actual)
    restore = [Peer("", k, tuple(actual[k])) for k in sorted(actual)
               if k in diff.remove_keys or k in desired_keys]
    back.set_peers = restore
    return wg_set_batches(interface, back, batch)


def diff_text(peers):
    """One line per person (for Ansible's diff mode): public data only."""
    return "".join(p.line() + "\n" for p in sorted(peers, key=lambda p: p.person))


def handshakes_from_dump(text, peers_by_key, now=None, fresh=None):
    """Person id -> last handshake (epoch seconds) or None when the peer never handshook.

    text: ``wg show <if> dump`` or ``wg show all dump``; peers_by_key: public key -> person id (e.g.
    from state/vpn.yml). People whose key is not on the gateway are absent from the result. With
    ``fresh`` (seconds), handshakes older than ``now - fresh`` are reported as None too.
    """
    dump = parse_dump_all(text)
    now = time.time() if now is None else now
    result = {}
    for key, person in peers_by_key.items():
        peer = dump.get(key)
        if peer is None:
            continue
        when = peer["handshake"] or None
        if when is not None and fresh is not None and now - when > fresh:
            when = None
        result[person] = when
    return result


def parse_dump_all(text):
    """Peers of every interface in a dump: public key -> peer dict (see parse_dump)."""
    peers = {}
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) == 9:
            parts = parts[1:]
        if len(parts) == 8:
            peers.update(parse_dump("\t".join(parts)).peers)
    return peers
