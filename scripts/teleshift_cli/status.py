"""Hotline status of one person: every capability's view, queried live from its hosts.

Pluggable: each capability has a probe ``probe(person, env) -> CapStatus``. The built-in probes
below read the public state files to find the person's host, then ask the host:
- vpn: ``wg show all allowed-ips|latest-handshakes|endpoints|transfer`` on the gateway (never
  ``dump``: its interface line carries the private key);
- desktop: ``getent passwd`` and ``ps -u <id>`` on the desktop host (a session = the user's Xorg /
  xrdp processes);
- phone: ``asterisk -rx "database show"`` (forwarding families CFIM/CFBS/CFNA and the delay) and
  ``asterisk -rx "pjsip show contacts"`` on the PBX.
A capability's own code can replace a probe: a module
``plugins/module_utils/<vpn|desktop|telephony>_status.py`` defining ``person_status(person, env)``
returning a CapStatus-like dict (capability, state, host, facts, problems) takes precedence.

Hosts are reached through ``HostRunner``: ``podman exec`` when the host is a container of this
machine (the lab), else an ``ansible`` ad-hoc command; every call is bounded in time and an
unreachable host gives state "unknown", never an exception.
"""
from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CAPS = ("vpn", "desktop", "phone")
PROVIDERS = {"vpn": ("vpn_status", "wireguard_status"), "desktop": ("desktop_status", "xrdp_status"),
             "phone": ("telephony_status", "asterisk_status")}
HANDSHAKE_FRESH = 180  # seconds: WireGuard re-handshakes every 2 minutes while traffic flows
FORWARD_FAMILIES = {"always": "CFIM", "busy": "CFBS", "no_answer": "CFNA"}
SESSION_PROCESSES = {"Xorg", "Xvnc", "xrdp-chansrv", "openbox", "xfce4-session", "startwm.sh"}


@dataclass
class CapStatus:
    capability: str
    state: str  # ok | problem | unknown | not configured | not needed
    host: str = ""
    facts: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


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
    """What a probe may use: the Context, public states, kits root, a runner and the clock."""
    ctx: object
    states: dict
    kits_root: object
    runner: object
    now: float = field(default_factory=time.time)


def _entry(states, cap, pid):
    people = (states.get(cap) or {}).get("people")
    entry = people.get(pid) if isinstance(people, dict) else None
    return entry if isinstance(entry, dict) else ({"host": entry} if isinstance(entry, str) else {})


def _host_for(env, cap, group, pid, keys):
    hosts = env.ctx.inventory.groups.get(group, [])
    entry = _entry(env.states, cap, pid)
    for key in keys:
        if isinstance(entry.get(key), str):
            return entry[key], hosts
    return (hosts[0] if len(hosts) == 1 else ""), hosts


def _cannot(status, host, result, tool):
    """Record why a host could not answer: tool missing (capability not applied) or unreachable."""
    if result.rc == 127 or "not found" in result.error:
        status.state = "not configured"
        status.problems.append(f"{tool} is not installed on {host}: the capability is not applied there yet")
    else:
        first = (result.error or f"exit code {result.rc}").strip().splitlines()[0]
        status.problems.append(f"cannot query {host}: {first}")
    return status


def _ago(seconds):
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


# ------------------------------------------------------------------------------------------ VPN

def wg_query():
    script = "for k in allowed-ips latest-handshakes endpoints transfer; do echo \"== $k\"; wg show all $k; done"
    return ["sh", "-c", script]


def parse_wg(text):
    """Output of wg_query() -> {public key: {interface, allowed_ips, handshake, endpoint, rx, tx}}."""
    peers, section = {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            section = line[3:].strip()
            continue
        parts = line.split("\t")
        if len(parts) < 3 or section is None:
            continue
        iface, key, rest = parts[0], parts[1], parts[2:]
        peer = peers.setdefault(key, {"interface": iface})
        if section == "allowed-ips":
            peer["allowed_ips"] = rest[0].split()
        elif section == "latest-handshakes":
            peer["handshake"] = int(rest[0]) if rest[0].isdigit() else 0
        elif section == "endpoints":
            peer["endpoint"] = "" if rest[0] == "(none)" else rest[0]
        elif section == "transfer" and len(rest) >= 2:
            peer["rx"], peer["tx"] = int(rest[0]), int(rest[1])
    return peers


def _kit_address(env, pid):
    if not env.kits_root:
        return ""
    folder = Path(env.kits_root) / pid / "vpn"
    for path in sorted(folder.glob("*.conf")) if folder.is_dir() else ():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip().lower() == "address":
                return value.split(",")[0].strip()
    return ""


def probe_vpn(person, env):
    host, hosts = _host_for(env, "vpn", "vpn_gateways", person.id, ("gateway", "host"))
    status = CapStatus("vpn", "unknown", host)
    if not hosts:
        status.state = "not configured"
        return status
    entry = _entry(env.states, "vpn", person.id)
    address = entry.get("address") or _kit_address(env, person.id)
    public_key = entry.get("public_key", "")
    status.facts.update({"gateway": host or "(not assigned)", "address": address or "(none yet)"})
    if not host:
        status.problems.append("no gateway assigned yet (state/vpn.yml)")
        return status
    result = env.runner.run(host, wg_query())
    if not result.ok:
        return _cannot(status, host, result, "WireGuard (wg)")
    peers = parse_wg(result.out)
    peer = peers.get(public_key) if public_key else None
    if peer is None and address:
        bare = address.split("/")[0]
        peer = next((p for p in peers.values() if any(a.split("/")[0] == bare for a in p.get("allowed_ips", []))), None)
    if peer is None:
        status.state = "problem"
        status.problems.append(f"no peer for this person on {host}: the VPN is not applied there yet")
        return status
    handshake = peer.get("handshake", 0)
    status.facts["last handshake"] = _ago(env.now - handshake) if handshake else "never"
    status.facts["endpoint"] = peer.get("endpoint") or "(none)"
    if "rx" in peer:
        status.facts["traffic"] = f"{peer['rx'] // 1024} KiB in, {peer['tx'] // 1024} KiB out"
    if not handshake:
        status.state = "problem"
        status.problems.append("never connected: check the profile is imported and the tunnel activated")
    elif env.now - handshake > HANDSHAKE_FRESH:
        status.state = "problem"
        status.problems.append(f"not connected now (last handshake {_ago(env.now - handshake)})")
    else:
        status.state = "ok"
    return status


# -------------------------------------------------------------------------------------- desktop

def desktop_query(user):
    quoted = shlex.quote(user)
    return ["sh", "-c", f"if getent passwd {quoted} >/dev/null; then echo account=yes; else echo account=no; fi; "
                        f"ps -u {quoted} -o comm= 2>/dev/null || true"]


def parse_desktop(text):
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    account = "account=yes" in lines
    processes = sorted({line for line in lines if not line.startswith("account=")})
    return account, processes


def probe_desktop(person, env):
    host, hosts = _host_for(env, "desktop", "desktop_hosts", person.id, ("desktop_host", "host"))
    status = CapStatus("desktop", "unknown", host)
    if not hosts:
        status.state = "not configured"
        return status
    entry = _entry(env.states, "desktop", person.id)
    user = entry.get("login") or entry.get("user") or person.id
    status.facts.update({"desktop host": host or "(not assigned)", "user": user})
    if not host:
        status.problems.append("no desktop host assigned yet (state/desktop.yml)")
        return status
    result = env.runner.run(host, desktop_query(user))
    if not result.ok:
        return _cannot(status, host, result, "the desktop service")
    account, processes = parse_desktop(result.out)
    session = sorted(SESSION_PROCESSES.intersection(processes))
    status.facts["session open"] = f"yes ({', '.join(session)})" if session else "no"
    if not account:
        status.state = "problem"
        status.problems.append(f"no account {user} on {host}: the desktop capability has not created it")
    else:
        status.state = "ok"
    return status


# ---------------------------------------------------------------------------------------- phone

def parse_astdb(text, extension):
    """``database show`` output -> {family: value} for keys equal to ``extension``."""
    found = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        parts = key.strip().strip("/").split("/")
        if sep and len(parts) == 2 and parts[1] == extension:
            found[parts[0]] = value.strip()
    return found


def parse_contacts(text, extension):
    """``pjsip show contacts`` -> list of (uri, status) for the extension's AOR."""
    result = []
    for line in text.splitlines():
        m = re.match(r"\s*Contact:\s+([^/\s]+)/(\S+)\s+\S+\s+(\S+)", line)
        if m and m.group(1) == extension:
            result.append((m.group(2), m.group(3)))
    return result


def _digits(number):
    return re.sub(r"\D", "", number or "")[-9:]


def probe_phone(person, env):
    host, hosts = _host_for(env, "phone", "pbx_hosts", person.id, ("pbx", "host"))
    status = CapStatus("phone", "unknown", host)
    if not hosts:
        status.state = "not configured"
        return status
    status.facts.update({"pbx": host or "(none)", "extension": person.extension or "(none)"})
    wanted = "none" if person.forward_mode == "none" else f"{person.forward_mode} -> {person.forward_to}"
    status.facts["forwarding (roster)"] = wanted
    if not host or not person.extension:
        status.problems.append("no PBX or no extension")
        return status
    db = env.runner.run(host, ["asterisk", "-rx", "database show"])
    if not db.ok:
        return _cannot(status, host, db, "Asterisk")
    entries = parse_astdb(db.out, person.extension)
    shown = [f"{fam}={val}" for fam, val in sorted(entries.items())]
    status.facts["forwarding (PBX)"] = ", ".join(shown) if shown else "none"
    status.state = "ok"
    family = FORWARD_FAMILIES.get(person.forward_mode)
    configured = {fam: val for fam, val in entries.items() if fam in FORWARD_FAMILIES.values()}
    if family and _digits(configured.get(family)) != _digits(person.forward_to):
        status.state = "problem"
        status.problems.append(f"PBX forwarding {family} is {configured.get(family) or 'not set'}, roster says "
                               f"{person.forward_to}: the telephony change is not applied yet")
    extra = sorted(set(configured) - ({family} if family else set()))
    if extra:
        status.state = "problem"
        status.problems.append(f"PBX has forwarding the roster does not ask for: {', '.join(extra)}")
    contacts = env.runner.run(host, ["asterisk", "-rx", "pjsip show contacts"])
    if contacts.ok and "phone" in person.needs:
        regs = parse_contacts(contacts.out, person.extension)
        status.facts["softphone"] = ", ".join(f"{s}" for _, s in regs) if regs else "not registered"
    return status


BUILTIN = {"vpn": probe_vpn, "desktop": probe_desktop, "phone": probe_phone}


def probe_for(cap):
    """The capability's own status function when it ships one, else the built-in probe."""
    for name in PROVIDERS[cap]:
        try:
            module = importlib.import_module(f"ansible_collections.teleshift.toolkit.plugins.module_utils.{name}")
        except ImportError:
            continue
        func = getattr(module, "person_status", None)
        if callable(func):
            def provided(person, env, func=func):
                data = func(person, env)
                return data if isinstance(data, CapStatus) else CapStatus(**data)
            return provided
    return BUILTIN[cap]


def recorded_verification(env, person):
    """What the last verify step recorded for the person: {capability: text} ({} when nothing)."""
    try:
        from teleshift_cli.report import load_verification

        value = env.ctx.inventory.all_vars.get("teleshift_verify_file")
        source = Path(env.ctx.inventory.source)
        base = source if source.is_dir() else source.parent
        path = (base / value) if value else (Path(env.kits_root) / "verify.json" if env.kits_root else None)
        data = load_verification(path) if path else {}
    except Exception:  # noqa: BLE001 - a missing or unreadable file only means "not recorded"
        return {}
    when = str(data.get("updated") or "?")
    done = (data.get("people") or {}).get(person.id)
    why = (data.get("people_problems") or {}).get(person.id)
    why = why if isinstance(why, dict) else {}
    return {cap: f"verified ({when})" if ok is True else f"NOT verified ({when}): {why.get(cap) or 'see verify'}"
            for cap, ok in (done.items() if isinstance(done, dict) else ())}


def person_status(person, env, probes=None):
    """{capability: CapStatus} for one person; a probe that raises gives 'unknown', never a crash."""
    result = {}
    recorded = recorded_verification(env, person)
    for cap in CAPS:
        needed = cap in person.needs or (cap == "phone" and person.forward_mode != "none")
        if not person.active or not needed:
            result[cap] = CapStatus(cap, "not needed")
            continue
        probe = (probes or {}).get(cap) or probe_for(cap)
        try:
            result[cap] = probe(person, env)
        except Exception as exc:  # noqa: BLE001 - the hotline must always get an answer
            result[cap] = CapStatus(cap, "unknown", problems=[f"status probe failed: {exc}"])
        result[cap].facts["verify step"] = recorded.get(cap, "no result recorded")
    return result


def as_dict(person, statuses):
    return {"id": person.id, "full_name": person.full_name, "service": person.service, "active": person.active,
            "capabilities": {cap: asdict(s) for cap, s in statuses.items()},
            "problems": [f"{cap}: {p}" for cap, s in statuses.items() for p in s.problems]}
