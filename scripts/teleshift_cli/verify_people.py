"""Is every capability a person gets really in place on its hosts? Read each host once, match in Python.

Each capability of the registry brings its own one-read query, parser and verdict
(``host_query``, ``parse_host``, ``person_status(...).verified``: the gateway's peer with the person's key
and address, never ``wg show ... dump``; the desktop account present, unlocked and in its groups; the
PBX endpoint and the forwarding the telephony compile gives). This module reads every host a capability
needs once, in parallel, and asks the capability's verdict for everyone it serves.

Results: {person: {capability: {"ok": bool, "detail": str}}} for every active person and each capability
they get (a person the plan has not placed anywhere yet is "not verified", with the reason).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import StateError


def capabilities(inputs):
    """The capabilities the verify step can check in this inventory (in use, with a host query)."""
    return [c for c in registry.capabilities() if c.in_use(inputs) and c.host_query()]


def plan(inputs):
    """[(person, capability, state entry, hosts)] and the set of (capability, host) to read."""
    checks, reads = [], {}
    for cap in capabilities(inputs):
        try:
            people = inputs.state(cap).get("people") or {}
        except StateError:
            people = {}
        for person in inputs.roster.people:
            if not cap.wants(person):
                continue
            entry = people.get(person.id)
            entry = entry if isinstance(entry, dict) else {}
            hosts = cap.hosts_for(person, entry, inputs)
            checks.append((person, cap, entry, hosts))
            for host in hosts:
                reads[(cap.name, host)] = cap
    return checks, reads


def verify(ctx, runner, workers=4):
    """{person: {capability: {"ok", "detail"}}}, reading each host once (runner.run(host, argv))."""
    inputs = ctx.inputs
    checks, reads = plan(inputs)

    def read(key):
        cap = reads[key]
        result = runner.run(key[1], cap.host_query())
        if result.rc != 0:
            return key, f"cannot read {key[1]}: {result.error or f'exit {result.rc}'}"
        return key, cap.parse_host(result.out)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(reads) or 1))) as pool:
        facts = dict(pool.map(read, sorted(reads)))
    results = {}
    for person, cap, entry, hosts in checks:
        details = [] if hosts else [f"not placed on any host yet ({cap.state_file or cap.host_group})"]
        for host in hosts:  # a person several hosts carry (every PBX) is verified when all are right
            got = facts[(cap.name, host)]
            if isinstance(got, str):
                details.append(got)
                continue
            status = cap.person_status(person, host, entry, got, inputs)
            if status.verified is not True:
                details += status.problems or [f"not verified on {host}"]
        results.setdefault(person.id, {})[cap.name] = {"ok": not details, "detail": "; ".join(details)}
    return results
