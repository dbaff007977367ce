# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The video rooms' planner (pure, controller side): rooms, PINs and member limits from the inventory
(``teleshift_video_rooms``), each room placed on a host of ``video_hosts`` (sticky: state/video.yml),
who may join which room, each host's public slice and the load of each room at its declared size.

Load figures (docs/video.md gives the sources; every one is a capacity assumption the inventory can change):
- a Janus VideoRoom is an SFU: it forwards, never decodes or mixes. With N people each sending one
  camera, the server receives N streams and sends N x (N - 1);
- video: the room's ``bitrate_kbps`` cap (Janus's ``bitrate``; 512 kbit/s by default here);
- voice: Opus at 40 kbit/s (RFC 7587, 3.1.1: 28-40 kbit/s for full-band speech), plus ~10 % of
  packet overhead (IP/UDP/SRTP headers at 50 packets/s);
- CPU: forwarding is SRTP decryption and re-encryption per packet; the default, 300 forwarded
  streams per core, is a conservative assumption to be measured on the real host (docs/video.md).
"""
from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

ROOM_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")
DEFAULT_MAX_MEMBERS = 12
DEFAULT_BITRATE_KBPS = 512
AUDIO_KBPS = 40
OVERHEAD = 1.1
ROOM_KEYS = {"name", "label", "pin", "members", "services", "max_members", "record", "bitrate_kbps", "host",
             "phone"}


@dataclass
class Room:
    name: str
    label: str
    pin: str
    members: list = field(default_factory=list)  # explicit ids
    services: list = field(default_factory=list)
    max_members: int = DEFAULT_MAX_MEMBERS
    record: bool = False
    bitrate_kbps: int = DEFAULT_BITRATE_KBPS
    host: str = ""  # chosen in the inventory ("" = the planner places it)
    phone: str = ""  # a PBX conference number shown beside the link (people without a camera or link)

    def public(self):
        """What the host's slice carries (no PIN)."""
        return {"name": self.name, "label": self.label, "max_members": self.max_members, "record": self.record,
                "bitrate_kbps": self.bitrate_kbps}


@dataclass
class VideoSettings:
    rooms: dict = field(default_factory=dict)  # name -> Room
    hosts: dict = field(default_factory=dict)  # name -> address
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)


@dataclass
class VideoPlan:
    rooms: dict = field(default_factory=dict)  # name -> host
    people: dict = field(default_factory=dict)  # id -> [room names]
    members: dict = field(default_factory=dict)  # room -> [ids]


def _int(value, where, low, high, problems, source):
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        problems.append(Problem(source, 0, where, f"must be a whole number from {low} to {high}, got {value!r}"))
        return None
    return value


def load_video_settings(all_vars, hostvars, source="inventory"):
    """VideoSettings from ``teleshift_video_rooms`` (a list of rooms) and each video host's
    ``video_rooms_address``. Every problem names its field; nothing is guessed."""
    s = VideoSettings()
    for host, hv in sorted(hostvars.items()):
        address = str(hv.get("video_rooms_address") or "")
        try:
            ipaddress.ip_address(address)
        except ValueError:
            s.problems.append(Problem(source, 0, f"{host}: video_rooms_address", "must be the host's internal "
                                      f"address (reached through the VPN), got {address!r}"))
        s.hosts[host] = address
    rooms = all_vars.get("teleshift_video_rooms") or []
    if not isinstance(rooms, list):
        s.problems.append(Problem(source, 0, "teleshift_video_rooms", "expected a list of rooms"))
        return s
    for i, item in enumerate(rooms):
        where = f"teleshift_video_rooms[{i}]"
        if not isinstance(item, dict):
            s.problems.append(Problem(source, 0, where, "expected a mapping (name, label, pin, members...)"))
            continue
        unknown = sorted(set(map(str, item)) - ROOM_KEYS)
        if unknown:
            s.problems.append(Problem(source, 0, f"{where}.{unknown[0]}",
                                      f"unknown key (known: {', '.join(sorted(ROOM_KEYS))})"))
        name = str(item.get("name") or "")
        if not ROOM_RE.match(name):
            s.problems.append(Problem(source, 0, f"{where}.name",
                                      f"must be 1-32 lower-case letters, digits or '-', got {name!r}"))
            continue
        where = f"teleshift_video_rooms[{name}]"
        if name in s.rooms:
            s.problems.append(Problem(source, 0, f"{where}.name", "is declared twice"))
            continue
        pin = item.get("pin")
        pin = str(pin) if isinstance(pin, (str, int)) and not isinstance(pin, bool) else ""
        if not PIN_RE.match(pin):
            s.problems.append(Problem(source, 0, f"{where}.pin",
                                      "must be 4 to 12 digits (typed on a phone too); keep it in Ansible Vault"))
        label = str(item.get("label") or name)
        if any(ord(c) < 32 for c in label) or len(label) > 80:
            s.problems.append(Problem(source, 0, f"{where}.label", "must be one line of at most 80 characters"))
        record = item.get("record", False)
        if not isinstance(record, bool):
            s.problems.append(Problem(source, 0, f"{where}.record", f"must be true or false, got {record!r}"))
            record = False
        size = _int(item.get("max_members", DEFAULT_MAX_MEMBERS), f"{where}.max_members", 2, 100, s.problems, source)
        rate = _int(item.get("bitrate_kbps", DEFAULT_BITRATE_KBPS), f"{where}.bitrate_kbps", 64, 4000, s.problems,
                    source)
        lists = {}
        for key in ("members", "services"):
            value = item.get(key) or []
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                s.problems.append(Problem(source, 0, f"{where}.{key}", "expected a list of names"))
                value = []
            lists[key] = value
        host = str(item.get("host") or "")
        if host and host not in hostvars:
            s.problems.append(Problem(source, 0, f"{where}.host", f"{host!r} is not in the group video_hosts"))
        phone = str(item.get("phone") or "")
        if phone and not re.match(r"^[0-9]{2,8}$", phone):
            s.problems.append(Problem(source, 0, f"{where}.phone", f"must be a PBX number (digits), got {phone!r}"))
        s.rooms[name] = Room(name, label, pin, lists["members"], lists["services"], size or DEFAULT_MAX_MEMBERS,
                             record, rate or DEFAULT_BITRATE_KBPS, host, phone)
    if s.rooms and not hostvars:
        s.warnings.append(Problem(source, 0, "teleshift_video_rooms",
                                  "rooms are declared but the group video_hosts has no host: nobody gets them"))
    return s


def check_people(settings, roster, services, reach, source="inventory"):
    """Problems (unknown ids or services) and warnings (members without the VPN, or whose service's VPN
    access does not reach the room's host) of the rooms' member lists. ``reach(service, address)``: whether
    the VPN lets that service reach the address (None: no VPN policy known)."""
    problems, warnings = [], []
    by_id = {p.id: p for p in roster.people}
    for room in settings.rooms.values():
        where = f"teleshift_video_rooms[{room.name}]"
        gone = [pid for pid in room.members if pid not in by_id]
        if gone:  # like a queue agent who left: dropped from the room, never a reason to stop
            warnings.append(Problem(source, 0, f"{where}.members", f"left out of the room: {_some(gone)} not in the "
                                                                   "roster"))
        for svc in room.services:
            if svc not in services:
                problems.append(Problem(source, 0, f"{where}.services", f"unknown service {svc!r}"))
        address = settings.hosts.get(room.host) if room.host else next(iter(settings.hosts.values()), "")
        no_vpn, no_reach = [], set()
        for pid in members_of(room, roster.people):
            person = by_id[pid]
            if "vpn" not in person.needs:
                no_vpn.append(pid)
            elif address and reach(person.service, address) is False:
                no_reach.add(person.service)
        if no_vpn:
            warnings.append(Problem(source, 0, f"{where}.members",
                                    f"{_some(no_vpn)}: no vpn need, so the room (reached only through the VPN) is "
                                    "out of their reach"))
        for svc in sorted(no_reach):
            warnings.append(Problem(source, 0, f"{where}.members",
                                    f"the VPN does not let service {svc!r} reach the video host {address}: add it "
                                    f"to teleshift_services.{svc}.networks or teleshift_vpn_common_networks"))
    return problems, warnings


def _some(ids, shown=5):
    return ", ".join(ids[:shown]) + (f" and {len(ids) - shown} more" if len(ids) > shown else "")


def members_of(room, people):
    """Active people who may join ``room``: named members and the members of its services, sorted."""
    ids = set(room.members)
    services = set(room.services)
    return sorted(p.id for p in people if p.active and (p.id in ids or p.service in services))


def place_rooms(settings, previous):
    """{room: host}: the inventory's choice, else the room's host in the previous state, else the host
    with the least declared seats (ties by name). Sticky: adding a room never moves another."""
    hosts = sorted(settings.hosts)
    placed, load = {}, {h: 0 for h in hosts}
    before = (previous or {}).get("rooms") or {}
    for name in sorted(settings.rooms):
        room = settings.rooms[name]
        old = (before.get(name) or {}).get("host") if isinstance(before.get(name), dict) else None
        host = room.host or (old if old in load else "")
        if host:
            placed[name] = host
            load[host] += room.max_members
    for name in sorted(settings.rooms):
        if name in placed or not hosts:
            continue
        host = min(hosts, key=lambda h: (load[h], h))
        placed[name] = host
        load[host] += settings.rooms[name].max_members
    return placed


def plan_video(people, settings, previous=None):
    plan = VideoPlan(rooms=place_rooms(settings, previous))
    for name in sorted(settings.rooms):
        ids = members_of(settings.rooms[name], people)
        plan.members[name] = ids
        for pid in ids:
            plan.people.setdefault(pid, []).append(name)
    return plan


def room_url(address, room):
    host = f"[{address}]" if ":" in address else address
    return f"https://{host}/#{room}"


def room_load(room, a):
    """At the room's declared size (every seat taken, every camera on): Mbit/s into and out of the
    server, per person down and up, and CPU cores (forwarded streams / streams per core)."""
    n = room.max_members
    per_stream = (room.bitrate_kbps + AUDIO_KBPS) * OVERHEAD / 1000.0  # Mbit/s of one person's camera + voice
    streams = n * (n - 1) * 2  # forwarded RTP streams (audio and video)
    return {"in_mbps": round(n * per_stream, 1), "out_mbps": round(n * (n - 1) * per_stream, 1),
            "down_mbps": round((n - 1) * per_stream, 2), "up_mbps": round(per_stream, 2),
            "cores": round(streams / a["teleshift_capacity_video_streams_per_core"], 2), "streams": streams}


def host_slice(plan, settings, host):
    """One host's public slice: its address and its rooms (no PIN)."""
    return {"address": settings.hosts.get(host, ""),
            "rooms": [settings.rooms[n].public() for n in sorted(plan.rooms) if plan.rooms[n] == host]}


def kit_rooms(plan, settings, pid):
    """What a person's kit lists: each room they may join, with its link and PIN."""
    found = []
    for name in plan.people.get(pid, []):
        room = settings.rooms[name]
        url = room_url(settings.hosts.get(plan.rooms[name], ""), name)
        found.append({"name": name, "label": room.label, "url": url,
                      "pin": room.pin, "max_members": room.max_members, "record": room.record, "phone": room.phone})
    return found


def state_of(plan):
    return {"rooms": {n: {"host": h, "members": len(plan.members.get(n, []))} for n, h in sorted(plan.rooms.items())},
            "people": {pid: {"rooms": rooms} for pid, rooms in sorted(plan.people.items())}}


def cores_needed(loads):
    return math.ceil(sum(x["cores"] for x in loads) * 100) / 100
