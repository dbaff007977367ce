"""Hotline status of one person: every capability's view, queried live from its hosts.

Each capability of the registry (plugins/module_utils/registry.py) brings its own probe: the command it
runs once on a host (``host_query``), the parser of its output (``parse_host``, tested without hosts)
and the verdict for one person (``person_status``): the gateway's ``wg show`` (never ``dump``: it
prints private keys), the session host's accounts, groups and processes, the PBX's AstDB and contacts.
The person's host comes from the capability's public state file (or is the only host of its group).

Hosts are reached through ``HostRunner``: ``podman exec`` when the host is a container of this
machine (the lab), else an ``ansible`` ad-hoc command; every call is bounded in time and an
unreachable host gives state "unknown", never an exception.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from dataclasses import asdict, dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.registry import CapStatus


@dataclass
class Result:
    rc: int
    out: str
    error: str = ""

    @property
    def ok(self):
        return self.rc == 0


class HostRunner:
    """Run a command on an inventory host: podman exec for local containers, else ansible ad-hoc."""

    def __init__(self, inventory_source, timeout=15):
        self.inventory_source = str(inventory_source)
        self.timeout = timeout
        self._podman = None
        self._env = None

    def _podman_env(self):
        if self._env is None:
            try:
                from teleshift_cli.lab import podman_env
                self._env = podman_env()
            except Exception:  # noqa: BLE001 - the lab module is optional here
                self._env = dict(os.environ)
        return self._env

    def is_container(self, host):
        exe = shutil.which("podman")
        if not exe:
            return False
        try:
            proc = subprocess.run([exe, "container", "inspect", "--format", "{{.State.Running}}", host],
                                  capture_output=True, text=True, timeout=self.timeout, env=self._podman_env(),
                                  check=False)
        except subprocess.TimeoutExpired:
            return False
        return proc.returncode == 0 and proc.stdout.strip() == "true"

    def run(self, host, argv):
        try:
            if self.is_container(host):
                proc = subprocess.run(["podman", "exec", host, *argv], capture_output=True, text=True,
                                      timeout=self.timeout, env=self._podman_env(), check=False)
                return Result(proc.returncode, proc.stdout, proc.stderr.strip()[-300:])
            return self._ansible(host, argv)
        except subprocess.TimeoutExpired:
            return Result(124, "", f"no answer from {host} within {self.timeout}s")
        except OSError as exc:
            return Result(127, "", str(exc))

    def _ansible(self, host, argv):
        env = {**os.environ, "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
        proc = subprocess.run(["ansible", host, "-i", self.inventory_source, "-m", "ansible.builtin.command",
                               "-a", shlex.join(argv)], capture_output=True, text=True, timeout=self.timeout,
                              env=env, check=False)
        try:
            data = json.loads(proc.stdout)
            result = data["plays"][0]["tasks"][0]["hosts"][host]
        except (ValueError, KeyError, IndexError):
            return Result(proc.returncode or 1, "", (proc.stderr or proc.stdout).strip()[-300:])
        if result.get("unreachable"):
            return Result(255, "", result.get("msg", "unreachable"))
        return Result(result.get("rc", 1), result.get("stdout", ""), result.get("stderr", "") or result.get("msg", ""))


@dataclass
class Env:
    """What a probe may use: the Context (its front-door Inputs), a runner and the clock."""
    ctx: object
    runner: object
    now: float = field(default_factory=time.time)
    kits_root: object = None


def _cannot(status, host, result):
    """Record why a host could not answer: its tool missing (capability not applied) or unreachable."""
    if result.rc == 127 or "not found" in result.error:
        status.state = "not configured"
        status.problems.append(f"{host} cannot answer ({result.error.strip()[:80] or 'command not found'}): "
                               "the capability is not applied there yet")
    else:
        first = (result.error or f"exit code {result.rc}").strip().splitlines()[0]
        status.problems.append(f"cannot query {host}: {first}")
    return status


def host_facts(cap, host, env, cache=None):
    """(facts, failed Result or None) of ``host`` for capability ``cap``, asked once per host."""
    key = (cap.name, host)
    if cache is not None and key in cache:
        return cache[key]
    result = env.runner.run(host, cap.host_query())
    answer = (cap.parse_host(result.out), None) if result.ok else (None, result)
    if cache is not None:
        cache[key] = answer
    return answer


def capability_status(cap, person, env, cache=None):
    """CapStatus of ``person`` for one capability (not needed / not configured / the probe's verdict)."""
    inputs = env.ctx.inputs
    if not cap.wants(person):
        return CapStatus(cap.name, "not needed")
    hosts = cap.hosts(inputs)
    if cap.host_group and not hosts:
        return CapStatus(cap.name, "not configured")
    try:
        state = inputs.state(cap)
    except ValueError as exc:
        return CapStatus(cap.name, "unknown", problems=[str(exc)])
    entry = ((state.get("people") or {}).get(person.id) or {}) if isinstance(state, dict) else {}
    entry = entry if isinstance(entry, dict) else {}
    host = cap.host_of(entry) or (hosts[0] if len(hosts) == 1 else "")
    facts, failed = (None, None)
    if host and cap.host_query():
        facts, failed = host_facts(cap, host, env, cache)
    inputs.now = env.now
    status = cap.person_status(person, host, entry, facts, inputs)
    if failed is not None:
        _cannot(status, host, failed)
    return status


def recorded_verification(env, person):
    """What the last verify step recorded for the person: {capability: text} ({} when nothing)."""
    try:
        from teleshift_cli.report import load_verification

        value = env.ctx.inputs.all_vars.get("teleshift_verify_file")
        path = env.ctx.inputs.path(value) if value else (Path(env.kits_root) / "verify.json" if env.kits_root else None)
        data = load_verification(path) if path else {}
    except Exception:  # noqa: BLE001 - a missing or unreadable file only means "not recorded"
        return {}
    when = str(data.get("updated") or "?")
    done = (data.get("people") or {}).get(person.id)
    why = (data.get("people_problems") or {}).get(person.id)
    why = why if isinstance(why, dict) else {}
    return {cap: f"verified ({when})" if ok is True else f"NOT verified ({when}): {why.get(cap) or 'see verify'}"
            for cap, ok in (done.items() if isinstance(done, dict) else ())}


def person_status(person, env):
    """{capability: CapStatus} for one person; a probe that raises gives 'unknown', never a crash."""
    result = {}
    recorded = recorded_verification(env, person)
    for cap in registry.capabilities():
        if not cap.in_use(env.ctx.inputs):
            continue
        try:
            result[cap.name] = capability_status(cap, person, env)
        except Exception as exc:  # noqa: BLE001 - the hotline must always get an answer
            result[cap.name] = CapStatus(cap.name, "unknown", problems=[f"status probe failed: {exc}"])
        if cap.wants(person):
            result[cap.name].facts["verify step"] = recorded.get(cap.name, "no result recorded")
    return result


def as_dict(person, statuses):
    return {"id": person.id, "full_name": person.full_name, "service": person.service, "active": person.active,
            "capabilities": {cap: asdict(s) for cap, s in statuses.items()},
            "problems": [f"{cap}: {p}" for cap, s in statuses.items() for p in s.problems]}
