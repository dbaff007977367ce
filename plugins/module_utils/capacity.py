# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Capacity plan: will the gateways, desktop hosts and telephone trunk carry the roster?

Pure Python, no I/O: ``plan_capacity(inputs, overrides)`` asks every capability of the registry for
its checks (needed vs available, per host where it applies), computed from that capability's own
planner, so ``teleshift plan`` and the playbooks agree. Each assumption is a named input with a
default (declared by its capability) that the inventory (``teleshift_capacity_*``) or the command
line can override; the inventory names are documented in
inventories/sample/group_vars/all/operations.yml.

Erlang B is computed with the recursion on the inverse, 1/B(E,m) = 1 + (m/E)·1/B(E,m-1), which
never overflows and never loses precision the way the factorial form does.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

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
    for _step in range(200):  # bounded: bisection halves the interval each step
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

def known_assumptions():
    """name -> (default, kind, help) of every capability's assumptions (Capability.assumptions).
    kind: "fraction" (0 < x <= 1), "positive", "nonneg", "count", "probability"."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

    found = {}
    for cap in registry.capabilities():
        found.update(cap.assumptions)
    return found


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
    known = known_assumptions()
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or name not in known:
        raise ValueError(f"{text!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
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
    for name, (default, kind, text) in known_assumptions().items():
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


def plan_capacity(inputs, overrides=None):
    """Check the roster's needs against the inventory's capacity, capability by capability (registry):
    each capability's checks come from its own planner, so the plan and the playbooks agree.

    inputs: the front door's Inputs; overrides: {assumption: value} from the command line.
    """
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

    assumptions, problems = resolve_assumptions(inputs.all_vars, overrides, inputs.source)
    a = {k: v.value for k, v in assumptions.items()}
    plan = CapacityPlan(assumptions=assumptions, problems=problems)
    for cap in registry.capabilities():
        users = cap.users(inputs)
        if cap.host_group and not cap.hosts(inputs):
            if users and not cap.optional:
                plan.not_configured.append(cap.name)
            continue
        try:
            plan.checks += cap.capacity(inputs, a)
        except ValueError as exc:  # absurd assumptions (more traffic than any trunk carries)
            names = [n for n in cap.assumptions if assumptions[n].source != "default"] or list(cap.assumptions)
            where = "command line" if any(assumptions[n].source == "command line" for n in names) else inputs.source
            plan.problems.append(Problem(where, 0, names[0] if names else cap.name, str(exc)))
            continue
        load, unplaced = cap.placements(inputs)
        if load or unplaced:
            plan.placements[cap.name] = dict(sorted(load.items()))
            plan.unplaced[cap.name] = list(unplaced)
    return plan


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
