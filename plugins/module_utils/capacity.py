# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Capacity plan: will the gateways, desktop hosts and telephone trunk carry the roster?

Pure Python, no I/O: ``plan_capacity(people, inventory_view, overrides)`` returns every check
(needed vs available, per host where it applies) and the assumptions it used, each a named input
with a default that the inventory (``teleshift_capacity_*``) or the command line can override.

Inventory names read (documented in inventories/sample/group_vars/all/operations.yml):
- VPN gateways (group ``vpn_gateways``), per host: ``wireguard_gateway_max_peers`` (the VPN role's
  own limit, when the role defines it) else ``teleshift_vpn_max_peers``; ``teleshift_vpn_max_mbps``
  (uplink the gateway can carry). Global: ``teleshift_vpn_licences`` (remote-access licences
  owned; unset = no licence limit).
- Desktop hosts (group ``desktop_hosts``), per host: ``teleshift_desktop_memory_mib``,
  ``teleshift_desktop_cpus`` and optionally ``xrdp_host_max_sessions`` (the desktop role's own cap)
  or ``teleshift_desktop_max_sessions`` (a hard cap).
- Trunk: ``teleshift_trunk_channels`` (global or on a ``pbx_hosts`` host): channels the operator
  contract gives.

Erlang B is computed with the recursion on the inverse, 1/B(E,m) = 1 + (m/E)·1/B(E,m-1), which
never overflows and never loses precision the way the factorial form does.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.assign import assign_hosts
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

MAX_CHANNELS = 1_000_000  # bound of the channel search: far beyond any trunk


# --------------------------------------------------------------------------------------------
# Erlang B
# --------------------------------------------------------------------------------------------

def _check_traffic(traffic):
    if isinstance(traffic, bool) or not isinstance(traffic, (int, float)) or math.isnan(traffic) \
            or math.isinf(traffic) or traffic < 0:
        raise ValueError(f"traffic must be a finite number of erlangs >= 0, got {traffic!r}")


def _check_blocking(blocking):
    if isinstance(blocking, bool) or not isinstance(blocking, (int, float)) or not 0 < blocking < 1:
        raise ValueError(f"blocking must be a probability strictly between 0 and 1, got {blocking!r}")


def erlang_b(traffic, channels):
    """Probability that a call is blocked when ``traffic`` erlangs are offered to ``channels``."""
    _check_traffic(traffic)
    if isinstance(channels, bool) or not isinstance(channels, int) or channels < 0:
        raise ValueError(f"channels must be an integer >= 0, got {channels!r}")
    if traffic == 0:
        return 0.0 if channels > 0 else 1.0
    inverse = 1.0
    for m in range(1, channels + 1):
        inverse = 1.0 + inverse * m / traffic
    return 1.0 / inverse


def channels_needed(traffic, blocking):
    """Smallest number of channels whose blocking probability is at most ``blocking``."""
    _check_traffic(traffic)
    _check_blocking(blocking)
    if traffic == 0:
        return 0
    inverse = 1.0
    target = 1.0 / blocking
    for m in range(1, MAX_CHANNELS + 1):
        inverse = 1.0 + inverse * m / traffic
        if inverse >= target:
            return m
    raise ValueError(f"{traffic} erlangs need more than {MAX_CHANNELS} channels")


def traffic_capacity(channels, blocking, tolerance=1e-9):
    """Largest traffic (erlangs) ``channels`` carry at ``blocking`` (bisection; for tables/tests)."""
    _check_blocking(blocking)
    if channels <= 0:
        return 0.0
    low, high = 0.0, float(channels) / (1 - blocking) + 1
    for _ in range(200):  # bounded: bisection halves the interval each step
        mid = (low + high) / 2
        if erlang_b(mid, channels) > blocking:
            high = mid
        else:
            low = mid
        if high - low < tolerance:
            break
    return low


# --------------------------------------------------------------------------------------------
# Assumptions: every one named, with a default, overridable by inventory then command line.
# --------------------------------------------------------------------------------------------

# name -> (default, kind, help). kind: "fraction" (0 < x <= 1), "positive", "nonneg", "count".
ASSUMPTIONS = {
    "teleshift_capacity_vpn_concurrency": (
        0.9, "fraction", "share of VPN users connected at the same time at peak"),
    "teleshift_capacity_vpn_mbps_per_user": (
        0.5, "positive", "average throughput per connected VPN user at peak (Mbit/s)"),
    "teleshift_capacity_vpn_max_peers": (
        1000, "count", "peers one gateway carries when its host sets no limit"),
    "teleshift_capacity_vpn_max_mbps": (
        1000, "positive", "throughput one gateway carries when its host sets none (Mbit/s)"),
    "teleshift_capacity_desktop_concurrency": (
        1.0, "fraction", "share of desktop users with a session open at the same time"),
    "teleshift_capacity_desktop_session_mib": (
        400, "positive", "memory per light remote-desktop session (MiB)"),
    "teleshift_capacity_desktop_session_cores": (
        0.1, "positive", "CPU cores per light remote-desktop session"),
    "teleshift_capacity_desktop_reserved_mib": (
        1024, "nonneg", "memory kept for the host's own system on each desktop host (MiB)"),
    "teleshift_capacity_desktop_memory_mib": (
        16384, "positive", "memory of a desktop host that sets no teleshift_desktop_memory_mib (MiB)"),
    "teleshift_capacity_desktop_cpus": (
        4, "positive", "CPU cores of a desktop host that sets no teleshift_desktop_cpus"),
    "teleshift_capacity_phone_erlangs_per_person": (
        0.1, "nonneg", "busy-hour external call traffic per person with a line (erlangs)"),
    "teleshift_capacity_phone_conditional_forward_share": (
        0.3, "fraction", "share of calls forwarded for busy / no_answer forwarding"),
    "teleshift_capacity_phone_blocking": (
        0.01, "probability", "target blocking probability on the trunk (Erlang B grade of service)"),
}


def _kind_ok(kind, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) or math.isinf(value):
        return "expected a number"
    if kind == "fraction" and not 0 < value <= 1:
        return "expected a share greater than 0 and at most 1"
    if kind == "probability" and not 0 < value < 1:
        return "expected a probability strictly between 0 and 1"
    if kind == "positive" and value <= 0:
        return "expected a number greater than 0"
    if kind == "nonneg" and value < 0:
        return "expected a number >= 0"
    if kind == "count" and (value != int(value) or value < 0):
        return "expected a whole number >= 0"
    return None


def parse_override(text):
    """``NAME=VALUE`` from the command line -> (name, number); raises ValueError saying why not."""
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or name not in ASSUMPTIONS:
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(ASSUMPTIONS)}")
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{text!r}: {raw!r} is not a number") from None
    return name, int(value) if value.is_integer() and abs(value) < 2 ** 53 else value


@dataclass
class Assumption:
    name: str
    value: float
    source: str  # default | inventory | command line
    help: str


def resolve_assumptions(all_vars, overrides=None, source="inventory"):
    """Return ({name: Assumption}, [Problem]) from defaults < inventory < command line."""
    result, problems = {}, []
    for name, (default, kind, text) in ASSUMPTIONS.items():
        value, origin = default, "default"
        if name in all_vars and all_vars[name] is not None:
            value, origin = all_vars[name], "inventory"
        if overrides and name in overrides:
            value, origin = overrides[name], "command line"
        why = _kind_ok(kind, value)
        if why:
            where = source if origin == "inventory" else "command line"
            problems.append(Problem(where, 0, name, f"{why}, got {value!r}"))
            value = default
        result[name] = Assumption(name, value, origin, text)
    return result, problems


# --------------------------------------------------------------------------------------------
# The plan
# --------------------------------------------------------------------------------------------

@dataclass
class Check:
    capability: str  # vpn | desktop | phone
    resource: str  # peers, throughput, licences, sessions, memory, cpu, trunk channels
    host: str  # host name, or "" for organisation-wide checks
    needed: float
    available: float  # None when not configured
    unit: str = ""
    note: str = ""

    @property
    def ok(self):
        return self.available is None or self.needed <= self.available

    @property
    def used_share(self):
        if not self.available:
            return None
        return self.needed / self.available

    def as_dict(self):
        data = asdict(self)
        data["ok"] = self.ok
        return data


@dataclass
class CapacityPlan:
    checks: list = field(default_factory=list)
    assumptions: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    placements: dict = field(default_factory=dict)  # capability -> {host: people count}
    unplaced: dict = field(default_factory=dict)  # capability -> person ids that fit nowhere
    not_configured: list = field(default_factory=list)  # capabilities with people but no hosts

    @property
    def ok(self):
        return not self.problems and all(c.ok for c in self.checks) and not any(self.unplaced.values()) \
            and not self.not_configured

    @property
    def shortfalls(self):
        return [c for c in self.checks if not c.ok]

    def as_dict(self):
        return {
            "ok": self.ok,
            "checks": [c.as_dict() for c in self.checks],
            "assumptions": {k: asdict(v) for k, v in self.assumptions.items()},
            "placements": self.placements,
            "unplaced": {k: len(v) for k, v in self.unplaced.items()},
            "not_configured": self.not_configured,
            "problems": [str(p) for p in self.problems],
        }


def _number(hostvars, names, default, host, problems, kind="positive"):
    """First of ``names`` set in ``hostvars`` (checked), else ``default``; returns (value, origin)."""
    for name in names:
        value = hostvars.get(name)
        if value is None:
            continue
        why = _kind_ok(kind, value)
        if why:
            problems.append(Problem(f"host {host}", 0, name, f"{why}, got {value!r}"))
            return default, "default"
        return value, name
    return default, "default"


def _previous(state, capability_key):
    """person id -> host from a capability's public state file, whatever of the usual shapes it has."""
    result = {}
    people = state.get("people") if isinstance(state, dict) else None
    if isinstance(people, dict):
        for pid, entry in people.items():
            if isinstance(entry, dict):
                host = entry.get(capability_key) or entry.get("host")
                if isinstance(host, str):
                    result[str(pid)] = host
            elif isinstance(entry, str):
                result[str(pid)] = entry
    return result


def plan_capacity(people, groups, hostvars, all_vars, overrides=None, states=None, source="inventory"):
    """Check the roster's needs against the inventory's capacity.

    people: the roster's Person list (inactive people are ignored); groups: group -> [host];
    hostvars: host -> vars; all_vars: organisation-wide vars; overrides: {assumption: value} from
    the command line; states: {"vpn": {...}, "desktop": {...}} public state files (optional), used
    to keep people on the hosts they already have.
    """
    assumptions, problems = resolve_assumptions(all_vars, overrides, source)
    a = {k: v.value for k, v in assumptions.items()}
    plan = CapacityPlan(assumptions=assumptions, problems=problems)
    states = states or {}
    active = [p for p in people if p.active]
    _plan_vpn(plan, active, groups, hostvars, all_vars, a, states.get("vpn") or {})
    _plan_desktop(plan, active, groups, hostvars, a, states.get("desktop") or {})
    _plan_phone(plan, active, groups, hostvars, all_vars, a)
    return plan


def _order(people):
    rank = {"critical": 0, "high": 1, "normal": 2, "low": 3}
    return [p.id for p in sorted(people, key=lambda p: (rank.get(p.priority, 9), p.line))]


def _plan_vpn(plan, active, groups, hostvars, all_vars, a, state):
    users = [p for p in active if "vpn" in p.needs]
    gateways = groups.get("vpn_gateways", [])
    licences = all_vars.get("teleshift_vpn_licences")
    if licences is not None:
        why = _kind_ok("count", licences)
        if why:
            plan.problems.append(Problem("inventory", 0, "teleshift_vpn_licences", f"{why}, got {licences!r}"))
        else:
            plan.checks.append(Check("vpn", "licences", "", len(users), licences, "people",
                                     "remote-access licences owned (teleshift_vpn_licences)"))
    if not gateways:
        if users:
            plan.not_configured.append("vpn")
        return
    caps, mbps = {}, {}
    for host in gateways:
        hv = hostvars.get(host, {})
        caps[host], origin = _number(hv, ("wireguard_gateway_max_peers", "teleshift_vpn_max_peers"),
                                     int(a["teleshift_capacity_vpn_max_peers"]), host, plan.problems, "count")
        caps[host] = int(caps[host])
        mbps[host], _ = _number(hv, ("teleshift_vpn_max_mbps",), a["teleshift_capacity_vpn_max_mbps"],
                                host, plan.problems)
    by_id = {p.id: p for p in users}
    assignment = assign_hosts(_order(users), caps, _previous(state, "gateway"),
                              group_of=lambda pid: by_id[pid].service)
    load = {h: 0 for h in gateways}
    for pid, host in assignment.hosts.items():
        load[host] += 1
    # people that fit nowhere are counted on the gateways' total so the shortfall shows
    plan.placements["vpn"] = dict(sorted(load.items()))
    plan.unplaced["vpn"] = list(assignment.unplaced)
    for host in gateways:
        plan.checks.append(Check("vpn", "peers", host, load[host], caps[host], "peers"))
        throughput = math.ceil(load[host] * a["teleshift_capacity_vpn_concurrency"]) \
            * a["teleshift_capacity_vpn_mbps_per_user"]
        plan.checks.append(Check("vpn", "throughput", host, round(throughput, 1), mbps[host], "Mbit/s"))
    total_caps = sum(caps.values())
    plan.checks.append(Check("vpn", "peers", "", len(users), total_caps, "peers", "all gateways together"))


def _plan_desktop(plan, active, groups, hostvars, a, state):
    users = [p for p in active if "desktop" in p.needs]
    hosts = groups.get("desktop_hosts", [])
    if not hosts:
        if users:
            plan.not_configured.append("desktop")
        return
    session_mib = a["teleshift_capacity_desktop_session_mib"]
    session_cores = a["teleshift_capacity_desktop_session_cores"]
    concurrency = a["teleshift_capacity_desktop_concurrency"]
    caps, figures = {}, {}
    for host in hosts:
        hv = hostvars.get(host, {})
        mem, _ = _number(hv, ("teleshift_desktop_memory_mib",), a["teleshift_capacity_desktop_memory_mib"],
                         host, plan.problems)
        cpus, _ = _number(hv, ("teleshift_desktop_cpus",), a["teleshift_capacity_desktop_cpus"], host, plan.problems)
        cap_sessions, origin = _number(hv, ("xrdp_host_max_sessions", "teleshift_desktop_max_sessions"), None, host,
                                        plan.problems, "count")
        usable_mib = max(0, mem - a["teleshift_capacity_desktop_reserved_mib"])
        by_mem = int(usable_mib // session_mib)
        by_cpu = math.floor(cpus / session_cores + 1e-9)  # 0.3 // 0.1 is 2.0 in floating point
        sessions = min(by_mem, by_cpu, int(cap_sessions) if cap_sessions is not None else by_mem)
        figures[host] = (usable_mib, cpus, by_mem, by_cpu)
        # how many people a host can be assigned: its sessions scaled by the concurrency
        caps[host] = int(sessions / concurrency + 1e-9)
    by_id = {p.id: p for p in users}
    assignment = assign_hosts(_order(users), caps, _previous(state, "desktop_host"),
                              group_of=lambda pid: by_id[pid].service)
    load = {h: 0 for h in hosts}
    for pid, host in assignment.hosts.items():
        load[host] += 1
    plan.placements["desktop"] = dict(sorted(load.items()))
    plan.unplaced["desktop"] = list(assignment.unplaced)
    for host in hosts:
        usable_mib, cpus, by_mem, by_cpu = figures[host]
        sessions = math.ceil(load[host] * concurrency)
        plan.checks.append(Check("desktop", "memory", host, sessions * session_mib, usable_mib, "MiB",
                                 f"{sessions} session(s) x {session_mib} MiB"))
        plan.checks.append(Check("desktop", "cpu", host, round(sessions * session_cores, 2), cpus, "cores",
                                 f"{sessions} session(s) x {session_cores} core"))
    needed = math.ceil(len(users) * concurrency)
    available = sum(int(caps[h] * concurrency + 1e-9) for h in hosts)
    plan.checks.append(Check("desktop", "sessions", "", needed, available, "sessions", "all desktop hosts together"))


def trunk_erlangs(people, erlangs_per_person, conditional_share):
    """Busy-hour trunk traffic: every call holds one trunk channel, a forwarded one two (in and out)."""
    total = 0.0
    for p in people:
        if not p.extension:
            continue
        forwarded = 1.0 if p.forward_mode == "always" else (
            conditional_share if p.forward_mode in ("busy", "no_answer") else 0.0)
        total += erlangs_per_person * (1.0 + forwarded)
    return total


def _plan_phone(plan, active, groups, hostvars, all_vars, a):
    lines = [p for p in active if p.extension and ("phone" in p.needs or p.forward_mode != "none")]
    traffic = trunk_erlangs(lines, a["teleshift_capacity_phone_erlangs_per_person"],
                            a["teleshift_capacity_phone_conditional_forward_share"])
    blocking = a["teleshift_capacity_phone_blocking"]
    try:
        needed = channels_needed(traffic, blocking)
    except ValueError as exc:  # absurd assumptions: more traffic than any trunk could carry
        origin = plan.assumptions["teleshift_capacity_phone_erlangs_per_person"].source
        plan.problems.append(Problem("command line" if origin == "command line" else "inventory", 0,
                                     "teleshift_capacity_phone_erlangs_per_person", str(exc)))
        return
    channels = all_vars.get("teleshift_trunk_channels")
    origin = "teleshift_trunk_channels"
    for host in groups.get("pbx_hosts", []):
        value = hostvars.get(host, {}).get("teleshift_trunk_channels")
        if value is not None:
            channels, origin = value, f"teleshift_trunk_channels on {host}"
            break
    if channels is not None and _kind_ok("count", channels):
        plan.problems.append(Problem("inventory", 0, "teleshift_trunk_channels",
                                     f"{_kind_ok('count', channels)}, got {channels!r}"))
        channels = None
    if channels is None and not groups.get("pbx_hosts"):
        if lines:
            plan.not_configured.append("phone")
        return
    forwarded = sum(1 for p in lines if p.forward_mode != "none")
    plan.checks.append(Check(
        "phone", "trunk channels", "", needed, int(channels) if channels is not None else None, "channels",
        f"{traffic:.1f} erlangs from {len(lines)} line(s) ({forwarded} forwarding) at "
        f"{blocking:.1%} blocking (Erlang B)" + ("" if channels is not None else "; trunk size not set: "
                                                 "teleshift_trunk_channels") + (
            f"; from {origin}" if channels is not None else "")))
