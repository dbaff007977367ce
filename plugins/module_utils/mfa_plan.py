# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The second factor's plan, on the controller: its settings, who must prove a code (per service:
required by default, or exempt with a reason), each gateway's gate slice, the enrolment kits.

- ``load_mfa_settings(all_vars, services)``: ``teleshift_mfa_*`` and each service's ``mfa`` key, checked.
- ``required(person, settings, services)`` / ``exemption(...)``: the policy of one person.
- ``gate_slices(entries, people, settings, services)``: per gateway, the enrolled people (id, service,
  tunnel addresses: one line each), the addresses of exempt people and the gated networks, from the
  address lists any VPN capability gives (WireGuard's plan today, OpenVPN's tomorrow). Public data:
  the secrets stay in the kits until the gate's action plugin sends them (no_log file).
- ``enrol(ids, kits_root, issuer, rotate)``: each person's secret (``secrets``, 160 bits) kept in
  ``<kits>/<id>/mfa/secret`` and its otpauth:// QR code; re-runs read them back.
"""
from __future__ import annotations

import hashlib
import json
import secrets as _secrets
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import b32_secret, duration, otpauth_uri
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import not_a_boolean

KIT = "mfa"  # the kit subdirectory this capability owns
SECRET_FILE = "secret"  # noqa: S105  (a file name in the kit, not a secret)
SECRET_IN_KIT = f"{KIT}/{SECRET_FILE}"  # the same, from a person's kit folder
QR_NAME = "authenticator"  # authenticator.png / .svg: the otpauth:// QR code
NEEDS = ("vpn", "desktop")  # the needs whose access the second factor guards
DEFAULTS = {
    "teleshift_mfa_enabled": False,
    "teleshift_mfa_session": "10h",
    "teleshift_mfa_max_failures": 5,
    "teleshift_mfa_lockout": "15m",
    "teleshift_mfa_failure_window": "15m",
    "teleshift_mfa_rate": 10,
    "teleshift_mfa_log_retention": "90d",
    "teleshift_mfa_syslog": "",
    "teleshift_mfa_issuer": "",
    "teleshift_mfa_desktop": True,
    "teleshift_mfa_portal_port": 443,
}


@dataclass
class MfaSettings:
    enabled: bool = False
    session: int = 36000
    max_failures: int = 5
    lockout: int = 900
    failure_window: int = 900
    rate: int = 10
    retention_days: int = 90
    syslog: str = ""
    issuer: str = "teleshift"
    desktop: bool = True
    port: int = 443
    exempt: dict = field(default_factory=dict)  # service -> reason
    problems: list = field(default_factory=list)

    def gate(self):
        """What the gate's portal reads (public settings)."""
        return {"session": self.session, "max_failures": self.max_failures, "lockout": self.lockout,
                "failure_window": self.failure_window, "rate": self.rate, "retention_days": self.retention_days,
                "syslog": self.syslog}


def _number(all_vars, name, problems, source, low, high, kind="int"):
    value = all_vars.get(name, DEFAULTS[name])
    try:
        number = duration(value) if kind == "duration" else value
        if isinstance(number, bool) or not isinstance(number, int):
            raise ValueError
    except ValueError:
        what = "a duration such as 10h, 15m, 45s or 90d" if kind == "duration" else "a whole number"
        problems.append(Problem(source, 0, name, f"expected {what}, got {value!r}"))
        return None
    if not low <= number <= high:
        problems.append(Problem(source, 0, name, f"must be between {low} and {high}"
                                + (" seconds" if kind == "duration" else "") + f", got {number}"))
        return None
    return number


def service_policy(policy):
    """('required', '') or ('exempt', reason) of a service's ``mfa`` value; ValueError when malformed."""
    if policy in (None, "required"):
        return "required", ""
    if isinstance(policy, dict) and set(policy) == {"exempt"}:
        reason = policy["exempt"]
        if isinstance(reason, str) and reason.strip():
            return "exempt", reason.strip()
    raise ValueError("expected `required` or `{exempt: <reason written out>}`")


def load_mfa_settings(all_vars, services, source="inventory"):
    problems = []
    s = MfaSettings(problems=problems)
    enabled = all_vars.get("teleshift_mfa_enabled", False)
    if not isinstance(enabled, bool):
        problems.append(Problem(source, 0, "teleshift_mfa_enabled", not_a_boolean("teleshift_mfa_enabled", enabled)))
        enabled = False
    s.enabled = enabled
    desktop = all_vars.get("teleshift_mfa_desktop", True)
    if not isinstance(desktop, bool):
        problems.append(Problem(source, 0, "teleshift_mfa_desktop", not_a_boolean("teleshift_mfa_desktop", desktop)))
        desktop = True
    s.desktop = desktop
    for attr, name, low, high, kind in (
            ("session", "teleshift_mfa_session", 10, 7 * 86400, "duration"),
            ("max_failures", "teleshift_mfa_max_failures", 1, 100, "int"),
            ("lockout", "teleshift_mfa_lockout", 10, 7 * 86400, "duration"),
            ("failure_window", "teleshift_mfa_failure_window", 10, 7 * 86400, "duration"),
            ("rate", "teleshift_mfa_rate", 1, 1000, "int"),
            ("port", "teleshift_mfa_portal_port", 1, 65535, "int")):
        value = _number(all_vars, name, problems, source, low, high, kind)
        if value is not None:
            setattr(s, attr, value)
    retention = _number(all_vars, "teleshift_mfa_log_retention", problems, source, 86400, 3650 * 86400, "duration")
    if retention is not None:
        s.retention_days = retention // 86400
    syslog = all_vars.get("teleshift_mfa_syslog") or ""
    if syslog:
        host, sep, port = str(syslog).rpartition(":")
        if not (sep and host and port.isdigit() and 1 <= int(port) <= 65535 and " " not in host):
            problems.append(Problem(source, 0, "teleshift_mfa_syslog", f"expected host:port (UDP), got {syslog!r}"))
        else:
            s.syslog = str(syslog)
    issuer = all_vars.get("teleshift_mfa_issuer") or all_vars.get("teleshift_org_name") or "teleshift"
    if not isinstance(issuer, str) or ":" in issuer or len(issuer) > 64:
        problems.append(Problem(source, 0, "teleshift_mfa_issuer", "expected text of at most 64 characters, no colon"))
    else:
        s.issuer = issuer
    for name, policy in (services or {}).items():
        value = policy.get("mfa") if isinstance(policy, dict) else None
        try:
            kind, reason = service_policy(value)
        except ValueError as exc:
            problems.append(Problem(source, 0, f"teleshift_services.{name}.mfa", str(exc)))
            continue
        if kind == "exempt":
            s.exempt[str(name)] = reason
    return s


def guarded(person):
    """Whether the person has an access the second factor guards (active, VPN or desktop)."""
    return person.active and any(n in person.needs for n in NEEDS)


def required(person, settings):
    return settings.enabled and guarded(person) and person.service not in settings.exempt


def exemption(person, settings):
    """The reason ``person`` is exempt ('' when they are not)."""
    if settings.enabled and guarded(person):
        return settings.exempt.get(person.service, "")
    return ""


def gate_slices(entries, people, settings, enrolled=None, exempt=None):
    """{gateway: slice} from ``entries`` = {gateway: {"networks": [...], "people": {id: [addresses]}}}
    (every VPN capability's address lists merged), ``people``: id -> Person of the roster;
    ``enrolled`` and ``exempt``: the ids ``required`` and ``exemption`` give, when already worked out.

    slice: ``people`` (text, one "id service address[,address]" line per enrolled person),
    ``exempt`` (comma-separated addresses), ``gated`` (networks), ``settings``, ``port``."""
    result = {}
    for gateway in sorted(entries):
        entry = entries[gateway]
        lines, free, names = [], [], {}
        for pid in sorted(entry.get("people", {})):
            person = people.get(pid)
            addresses = [a for a in entry["people"][pid] if a]
            if person is None or not addresses:
                continue
            if pid in enrolled if enrolled is not None else required(person, settings):
                lines.append(f"{pid} {person.service} {','.join(addresses)}")
                names[pid] = [person.full_name, person.language or "fr"]
            elif pid in exempt if exempt is not None else exemption(person, settings):
                free += addresses
        result[gateway] = {"enabled": settings.enabled, "people": "\n".join(lines), "exempt": ", ".join(free),
                           "gated": sorted(set(entry.get("networks", []))), "settings": settings.gate(),
                           "port": settings.port, "listen": list(entry.get("listen", [])),
                           "names": json.dumps(names, ensure_ascii=False, sort_keys=True)}
    return result


def slice_digest(part):
    """A gateway slice's digest (every key but ``digest``): the playbooks send a slice once per run by
    comparing it (hashing the slice in Jinja took 1.3 s at 50,000 people)."""
    body = {k: v for k, v in part.items() if k != "digest"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]


def summary_text(settings, listen):
    """The kit's summary.yml: the gate page's address and the session length ('' without a gate)."""
    if not listen:
        return ""
    port = "" if settings.port == 443 else f":{settings.port}"
    host = f"[{listen[0]}]" if ":" in listen[0] else listen[0]
    hours, minutes = settings.session // 3600, settings.session % 3600 // 60
    return f"gate: https://{host}{port}/\nsession: {hours} h {minutes:02d} min\n"


# ------------------------------------------------------------------------------------------ kits

def new_secret():
    return b32_secret(_secrets.token_bytes(20))  # 160 bits, RFC 4226's recommended length


def enrol(ids, kits_root, issuer, rotate=(), write=True, qr=True, workers=None):
    """{id: secret} for ``ids``: read back from ``<kits>/<id>/mfa/secret`` or made (and written, with
    its QR code, when ``write``). Returns (secrets, new_ids). Check mode (write=False) reads only.
    QR codes are drawn in worker processes when there are many (5,000 people: seconds, not minutes)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file, write_kit_file

    rotate = set(rotate or ())
    found, new, jobs = {}, [], []
    for pid in ids:
        current = None if pid in rotate else (read_kit_file(kits_root, pid, KIT, SECRET_FILE) or "").strip()
        if current:
            found[pid] = current
            if write and qr and not _qr_present(kits_root, pid):
                jobs.append((str(kits_root), pid, current, issuer))
            continue
        if not write:
            new.append(pid)
            continue
        secret = new_secret()
        write_kit_file(kits_root, pid, KIT, SECRET_FILE, secret + "\n")
        if qr:
            jobs.append((str(kits_root), pid, secret, issuer))
        found[pid] = secret
        new.append(pid)
    _draw(jobs, workers)
    return found, new


def _draw(jobs, workers=None):
    import os

    if len(jobs) > 40 and (workers or os.cpu_count() or 1) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            list(pool.map(_qr_job, jobs, chunksize=64))
    else:
        for job in jobs:
            _qr_job(job)


def _qr_job(job):
    _write_qr(*job)
    return job[1]


def _qr_present(root, pid):
    import os

    folder = os.path.join(root, pid, KIT)
    return all(os.path.exists(os.path.join(folder, f"{QR_NAME}.{ext}")) for ext in ("png", "svg"))


def _write_qr(root, pid, secret, issuer):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
    from ansible_collections.teleshift.toolkit.plugins.module_utils.qr import images

    png, svg = images(otpauth_uri(secret, pid, issuer))
    write_kit_file(root, pid, KIT, f"{QR_NAME}.png", png)
    write_kit_file(root, pid, KIT, f"{QR_NAME}.svg", svg)


def read_secrets(ids, kits_root):
    """{id: secret} of the people whose kit holds one (the gate and the desktops read them)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file

    found = {}
    for pid in ids:
        value = (read_kit_file(kits_root, pid, KIT, SECRET_FILE) or "").strip()
        if value:
            found[pid] = value
    return found
