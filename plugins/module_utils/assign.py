# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Sticky assignments shared by every capability: people to hosts within capacity, and addresses
from a pool. Both keep what was assigned before, so reordering, adding or removing other people never
moves anyone; a person moves only when their host is gone or over its (new) capacity.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field


@dataclass
class Assignment:
    hosts: dict = field(default_factory=dict)  # person id -> host
    unplaced: list = field(default_factory=list)  # person ids that did not fit, in input order

    def by_host(self):
        result = {}
        for pid, host in self.hosts.items():
            result.setdefault(host, []).append(pid)
        return result


def assign_hosts(people, capacities, previous=None, group_of=None):
    """Place ``people`` (person ids, in priority order) on hosts.

    capacities: host -> maximum people; previous: person id -> host from the state file;
    group_of: optional person id -> group (e.g. service): new people go where their group already
    is when there is room, so a service's staff share a host where possible.
    """
    previous = previous or {}
    load = {host: 0 for host in sorted(capacities)}
    result = Assignment()
    waiting = []
    for pid in people:  # keep earlier assignments while their host exists and has room
        host = previous.get(pid)
        if host in load and load[host] < capacities[host]:
            result.hosts[pid] = host
            load[host] += 1
        else:
            waiting.append(pid)
    group_hosts = {}
    if group_of:
        for pid, host in result.hosts.items():
            counts = group_hosts.setdefault(group_of(pid), {})
            counts[host] = counts.get(host, 0) + 1
    for pid in waiting:
        free = [h for h in load if load[h] < capacities[h]]
        if not free:
            result.unplaced.append(pid)
            continue
        group = group_of(pid) if group_of else None
        counts = group_hosts.get(group, {})
        # most colleagues first, then the most free room, then the name: deterministic
        host = min(free, key=lambda h: (-counts.get(h, 0), -(capacities[h] - load[h]), h))
        result.hosts[pid] = host
        load[host] += 1
        if group_of:
            group_hosts.setdefault(group, {})[host] = counts.get(host, 0) + 1
    return result


class PoolExhausted(Exception):
    def __init__(self, pool, missing):
        self.pool, self.missing = pool, missing
        super().__init__(f"address pool {pool} is exhausted: {missing} more address(es) needed")


def allocate_addresses(people, pool, previous=None, reserved=()):
    """Give each person id an address of ``pool`` (an ip_network or its text).

    Previous addresses are kept when still inside the pool; new people get the lowest free address.
    The pool's network and broadcast addresses and ``reserved`` (e.g. the gateway's own address)
    are never handed out. Raises PoolExhausted naming how many did not fit.
    """
    net = ipaddress.ip_network(pool, strict=True)
    if net.version == 4:
        return _allocate_v4(people, net, previous or {}, reserved)
    taken = {ipaddress.ip_address(a) for a in reserved}
    taken.update({net.network_address, net.broadcast_address} if net.version == 4 else {net.network_address})
    result = {}
    for pid in people:
        text = (previous or {}).get(pid)
        if text is None:
            continue
        try:
            addr = ipaddress.ip_address(text)
        except ValueError:
            continue
        if addr in net and addr not in taken:
            result[pid] = str(addr)
            taken.add(addr)
    candidates = (a for a in (net.hosts() if net.version == 4 else _v6_hosts(net)) if a not in taken)
    missing = 0
    for pid in people:
        if pid in result:
            continue
        addr = next(candidates, None)
        if addr is None:
            missing += 1
            continue
        result[pid] = str(addr)
    if missing:
        raise PoolExhausted(str(net), missing)
    return result


def _v6_hosts(net):
    first = int(net.network_address) + 1
    for i in range(first, first + min(net.num_addresses - 1, 1 << 20)):
        yield ipaddress.ip_address(i)


def _v4_int(value):
    """The IPv4 address ``value`` as an int, None when it is not one (the same verdict as
    ipaddress.ip_address: a dotted quad in its canonical form is read without building an object,
    anything else goes through ipaddress). 50,000 kept addresses are read on every plan."""
    if type(value) is str:  # pylint: disable=unidiomatic-typecheck
        try:
            packed = socket.inet_aton(value)
            if socket.inet_ntoa(packed) == value:
                return int.from_bytes(packed, "big")
        except (OSError, ValueError):
            pass
    try:
        addr = ipaddress.ip_address(value)
    except ValueError:
        return None
    return int(addr) if addr.version == 4 else None


def _allocate_v4(people, net, previous, reserved):
    """allocate_addresses for an IPv4 pool, on ints (same result, a tenth of the time)."""
    low, high = int(net.network_address), int(net.broadcast_address)
    taken = {low, high}
    for text in reserved:  # a few: read strictly (an invalid one raises, as for any pool)
        addr = ipaddress.ip_address(text)
        if addr.version == 4:
            taken.add(int(addr))
    result = {}
    for pid in people:
        text = previous.get(pid)
        if text is None:
            continue
        value = _v4_int(text)
        if value is not None and low <= value <= high and value not in taken:
            result[pid] = socket.inet_ntoa(value.to_bytes(4, "big"))
            taken.add(value)
    candidate, missing = low + 1, 0
    for pid in people:
        if pid in result:
            continue
        while candidate < high and candidate in taken:
            candidate += 1
        if candidate >= high:
            missing += 1
            continue
        result[pid] = socket.inet_ntoa(candidate.to_bytes(4, "big"))
        candidate += 1
    if missing:
        raise PoolExhausted(str(net), missing)
    return result
