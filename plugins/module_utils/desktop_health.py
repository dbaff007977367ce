# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""What a remote-desktop session host reports about itself: xrdp and sesman running, sessions in use
(one Xorg server started by xorgxrdp per session) against sesman's MaxSessions, memory available.

Standard library only: the desktop_health module runs it on the session host (the desktop playbook's
health check, the lab tests), and unit tests feed it fake /proc texts. ``collect(settle)`` first waits,
at most ``settle`` seconds, for xrdp and sesman to leave a transitional state (right after a restart
they can still be "activating"); ``evaluate``
turns the figures into a verdict.
"""
from __future__ import annotations

import os
import re
import subprocess
import time

UNITS = {"xrdp": "xrdp", "sesman": "xrdp-sesman"}
TRANSITIONAL = ("activating", "deactivating", "reloading", "refreshing")
SESMAN_INI = "/etc/xrdp/sesman.ini"


def read_max_sessions(text):
    """MaxSessions from sesman.ini's [Sessions] section (None when absent)."""
    section = None
    value = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().lower()
        elif section == "sessions" and "=" in line and not line.startswith((";", "#")):
            key, _sep, val = line.partition("=")
            if key.strip().lower() == "maxsessions" and val.strip().isdigit():
                value = int(val.strip())
    return value


def is_session_server(cmdline_args):
    """An X server started by sesman for a session (xorgxrdp's config), not any Xorg."""
    if not cmdline_args:
        return False
    exe = os.path.basename(cmdline_args[0])
    return exe in ("Xorg", "Xorg.wrap", "Xvnc") and any("xrdp" in a for a in cmdline_args[1:])


def mem_available_mib(meminfo_text):
    match = re.search(r"^MemAvailable:\s+(\d+)\s+kB", meminfo_text, re.M)
    return int(match.group(1)) // 1024 if match else None


def sessions_from(processes, names_by_uid):
    """processes: [(uid, [args])] -> (count, sorted user names) of session X servers."""
    users = []
    for uid, args in processes:
        if is_session_server(args):
            users.append(names_by_uid.get(uid, str(uid)))
    return len(users), sorted(users)


def _unit_state(unit):
    try:
        proc = subprocess.run(["systemctl", "is-active", unit], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc.__class__.__name__})"
    return proc.stdout.strip() or "unknown"


def settled_states(read, units, settle=0.0, interval=0.5, clock=time.monotonic, sleep=time.sleep):
    """{name: state} read with ``read(unit)``, read again while any is transitional, for at most
    ``settle`` seconds (then the last states are returned as they are)."""
    deadline = clock() + settle
    while True:
        states = {name: read(unit) for name, unit in units.items()}
        if not any(s in TRANSITIONAL for s in states.values()) or clock() >= deadline:
            return states
        sleep(interval)


def _processes(proc="/proc"):
    result = []
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            with open(f"{proc}/{pid}/cmdline", "rb") as stream:
                args = [a.decode(errors="replace") for a in stream.read().split(b"\0") if a]
            uid = os.stat(f"{proc}/{pid}").st_uid
        except OSError:  # the process ended meanwhile
            continue
        result.append((uid, args))
    return result


def _names_by_uid(path="/etc/passwd"):
    names = {}
    with open(path, encoding="utf-8", errors="replace") as stream:
        for line in stream:
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                names.setdefault(int(parts[2]), parts[0])
    return names


def collect(settle=0.0):
    """The host's figures (runs on the session host)."""
    figures = settled_states(_unit_state, UNITS, settle)
    count, users = sessions_from(_processes(), _names_by_uid())
    figures["sessions"], figures["users"] = count, users
    try:
        with open(SESMAN_INI, encoding="utf-8", errors="replace") as stream:
            figures["max_sessions"] = read_max_sessions(stream.read())
    except OSError:
        figures["max_sessions"] = None
    with open("/proc/meminfo", encoding="ascii") as stream:
        figures["mem_available_mib"] = mem_available_mib(stream.read())
    return figures


def evaluate(raw, capacity=None, min_free_mib=512, warn_share=0.9):
    """Evaluate a host's figures: {"xrdp": "active", "sesman": "active", "sessions": n,
    "max_sessions": n, "mem_available_mib": n, ...} -> {"ok", "status", "problems", ...}.

    status: ``ok``, ``degraded`` (works, but near capacity or low on memory) or ``down`` (people cannot
    connect). ``capacity`` (sessions) defaults to the host's own MaxSessions.
    """
    problems, warnings = [], []
    for unit in ("xrdp", "sesman"):
        state = raw.get(unit)
        if state != "active":
            problems.append(f"{unit} is {state or 'unknown'}")
    sessions = int(raw.get("sessions") or 0)
    capacity = capacity if capacity is not None else raw.get("max_sessions")
    share = None
    if capacity:
        share = sessions / capacity
        if sessions >= capacity:
            problems.append(f"all {capacity} sessions in use: new people cannot log in")
        elif share >= warn_share:
            warnings.append(f"{sessions} of {capacity} sessions in use")
    free = raw.get("mem_available_mib")
    if free is not None and free < min_free_mib:
        warnings.append(f"only {free} MiB of memory available (threshold {min_free_mib} MiB)")
    status = "down" if problems else ("degraded" if warnings else "ok")
    return {"ok": not problems, "status": status, "problems": problems, "warnings": warnings,
            "sessions": sessions, "capacity": capacity, "used_share": share,
            "mem_available_mib": free, "users": sorted(raw.get("users") or [])}
