"""Readiness report: one self-contained HTML page (inline CSS and SVG, no network) with people enabled
and verified per service and capability, capacity used vs available, people per rollout wave and
hosts failing verification.

"Enabled" for a person and a capability: the capability left something in the person's kit
(``<kits>/<id>/<capability>/`` is not empty) or lists the person in its public state file
(``people:`` mapping of ``state/<capability>.yml``). "Verified": the verification results say so.

Verification results (``verify.json``, written by the verify step through ``record_verification``;
default ``<kits>/verify.json``, or inventory ``teleshift_verify_file``, or ``--verify``)::

    {"version": 1, "updated": "2025-01-31T08:00:00Z",
     "hosts": {"ts-gw1": {"ok": false, "checks": {"wg listening": {"ok": false, "detail": "...",
                                                                    "at": "..."}}}},
     "people": {"amartin": {"vpn": true, "phone": false}},
     "people_problems": {"amartin": {"phone": "no endpoint 1001 on ts-pbx1"}}}

A host is failing when any of its checks is not ok; a person's capability is verified when true.
``people_problems`` says why a capability is not verified (written by the verify step, see
``teleshift_cli/verify_people.py``).
"""
from __future__ import annotations

import datetime
import fcntl
import html
import json
import os
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write

from teleshift_cli.kits import TEMPLATES

COLORS = {"needed": "#9fb3c8", "enabled": "#3d7ab8", "verified": "#2e8540", "waiting": "#b3261e",
          "ok": "#2e8540", "short": "#b3261e", "warn": "#d08a00"}


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def load_verification(path):
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "hosts": {}, "people": {}}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a verification file: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("hosts", {}), dict) \
            or not isinstance(data.get("people", {}), dict):
        raise ValueError(f"{path}: expected a mapping with 'hosts' and 'people' mappings")
    data.setdefault("hosts", {})
    data.setdefault("people", {})
    return data


def record_verification(path, host=None, check=None, person=None, capability=None, ok=True, detail="",
                        people=None):
    """Merge one result into ``path`` (locked, atomic): a host check and/or a person's capability.
    ``people`` ({id: {capability: {"ok", "detail"}}}: a whole verify run) replaces every person's results."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        data = load_verification(path)
        if host:
            entry = data["hosts"].setdefault(host, {"checks": {}})
            entry["checks"][check or "verify"] = {"ok": bool(ok), "detail": str(detail), "at": _now()}
            entry["ok"] = all(c["ok"] for c in entry["checks"].values())
        if person and capability:
            data["people"].setdefault(person, {})[capability] = bool(ok)
        if people is not None:
            data["people"] = {pid: {cap: bool(r["ok"]) for cap, r in caps.items()} for pid, caps in people.items()}
            data["people_problems"] = {pid: {cap: str(r["detail"]) for cap, r in caps.items() if not r["ok"]}
                                       for pid, caps in people.items() if not all(r["ok"] for r in caps.values())}
        data["version"] = 1
        data["updated"] = _now()
        atomic_write(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), mode=0o600)


def enabled_people(people, kits_root, states, caps=None):
    """capability name -> set of person ids the capability has done something for (listed in its
    state file, or something in their kit). caps: the registry's capabilities shown."""
    caps = [c.name for c in caps] if caps is not None else registry.names()
    result = {cap: set() for cap in caps}
    for cap in caps:
        listed = (states.get(cap) or {}).get("people")
        if isinstance(listed, dict):
            result[cap].update(str(k) for k in listed)
    if kits_root and Path(kits_root).is_dir():
        # one listing of the kits, then one of each kit (50,000 people: 0.5 s, where a stat and a
        # listing per person and capability took 3 s)
        with os.scandir(kits_root) as found:
            kits = {e.name for e in found if e.is_dir()}
        wanted = set(caps)
        for p in people:
            if p.id not in kits:
                continue
            try:
                with os.scandir(os.path.join(kits_root, p.id)) as found:
                    parts = [e.name for e in found if e.name in wanted and p.id not in result[e.name]
                             and e.is_dir()]
            except OSError:
                continue
            for cap in parts:
                try:
                    with os.scandir(os.path.join(kits_root, p.id, cap)) as inside:
                        if any(inside):
                            result[cap].add(p.id)
                except OSError:
                    pass
    return result


def readiness(people, enabled, verification, services, caps=None):
    """Counts per service and capability: needed, enabled, verified."""
    caps = caps if caps is not None else registry.capabilities()
    verified = verification.get("people", {})
    per_service, per_cap = {}, {c.name: {"needed": 0, "enabled": 0, "verified": 0} for c in caps}
    for p in people:
        row = per_service.setdefault(p.service, {"label": (services.get(p.service) or {}).get("label", p.service),
                                                 "people": 0, "needed": 0, "enabled": 0, "verified": 0})
        row["people"] += 1
        for c in caps:
            cap = c.name
            if not c.wants(p):
                continue
            on = p.id in enabled.get(cap, ())
            ok = on and verified.get(p.id, {}).get(cap) is True
            for counts in (row, per_cap[cap]):
                counts["needed"] += 1
                counts["enabled"] += on
                counts["verified"] += ok
    return dict(sorted(per_service.items())), per_cap


# ---------------------------------------------------------------------------------------- SVG

def _e(text):
    return html.escape(str(text), quote=True)


def grouped_bars(rows, series, width=760, bar=9, gap=8, label_width=230):
    """Horizontal grouped bars. rows: [(label, {series: value})]; series: [(key, title, colour)]."""
    top = 24
    group = bar * len(series) + gap
    height = top + group * len(rows) + 10
    biggest = max([values.get(key, 0) for _, values in rows for key, _, _ in series] + [1])
    scale = (width - label_width - 60) / biggest
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">']
    x = label_width
    for _key, title, colour in series:
        out.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>'
                   f'<text x="{x + 14}" y="15">{_e(title)}</text>')
        x += 24 + 7 * len(title)
    for i, (label, values) in enumerate(rows):
        y = top + i * group
        out.append(f'<text x="{label_width - 6}" y="{y + bar * len(series) / 2 + 4}" text-anchor="end">'
                   f'{_e(label)}</text>')
        for j, (key, title, colour) in enumerate(series):
            value = values.get(key, 0)
            w = max(0.0, value * scale)
            out.append(f'<rect x="{label_width}" y="{y + j * bar}" width="{w:.1f}" height="{bar - 1}" '
                       f'fill="{colour}"><title>{_e(label)}: {_e(title)} {value}</title></rect>'
                       f'<text x="{label_width + w + 3:.1f}" y="{y + j * bar + bar - 2}" font-size="9">{value}</text>')
    out.append("</svg>")
    return "".join(out)


def usage_bars(checks, width=760, bar=16, label_width=300):
    """One bar per capacity check: share used, a line at 100 %."""
    top = 10
    height = top + (bar + 6) * len(checks) + 20
    span = width - label_width - 80
    full = span / 1.5  # 100 % at two thirds: room to show overflow up to 150 %
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">']
    for i, c in enumerate(checks):
        y = top + i * (bar + 6)
        label = f"{c['capability']} {c['resource']} {c['host'] or '(all)'}"
        out.append(f'<text x="{label_width - 6}" y="{y + bar - 4}" text-anchor="end">{_e(label)}</text>')
        if c["available"] is None:
            out.append(f'<text x="{label_width}" y="{y + bar - 4}" fill="{COLORS["warn"]}">not configured</text>')
            continue
        share = c["needed"] / c["available"] if c["available"] else (0 if not c["needed"] else 9.99)
        w = min(share, 1.5) * full
        colour = COLORS["ok"] if c["ok"] else COLORS["short"]
        out.append(f'<rect x="{label_width}" y="{y}" width="{w:.1f}" height="{bar}" fill="{colour}">'
                   f'<title>{_e(label)}: {c["needed"]} / {c["available"]} {_e(c["unit"])}</title></rect>'
                   f'<text x="{label_width + w + 4:.1f}" y="{y + bar - 4}">{share:.0%} '
                   f'({c["needed"]:g} / {c["available"]:g} {_e(c["unit"])})</text>')
    x100 = label_width + full
    out.append(f'<line x1="{x100:.1f}" y1="4" x2="{x100:.1f}" y2="{height - 14}" stroke="#1d2733" '
               f'stroke-dasharray="4 3"/><text x="{x100:.1f}" y="{height - 3}" text-anchor="middle">100 %</text>')
    out.append("</svg>")
    return "".join(out)


def wave_bars(by_wave, width=760, height=220):
    """Vertical bars: people per wave, the waiting list last in red."""
    items = [(f"wave {w}", v["people"], COLORS["enabled"]) for w, v in by_wave.items() if w] + \
            [("waiting", by_wave.get(0, {}).get("people", 0), COLORS["waiting"])]
    biggest = max([n for _, n, _ in items] + [1])
    slot = (width - 40) / max(len(items), 1)
    bar = min(60.0, slot * 0.7)
    base = height - 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="11">',
           f'<line x1="30" y1="{base}" x2="{width - 5}" y2="{base}" stroke="#1d2733"/>']
    for i, (label, n, colour) in enumerate(items):
        h = (base - 20) * n / biggest
        x = 35 + i * slot + (slot - bar) / 2
        out.append(f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{colour}">'
                   f'<title>{_e(label)}: {n}</title></rect>'
                   f'<text x="{x + bar / 2:.1f}" y="{base - h - 4:.1f}" text-anchor="middle">{n}</text>'
                   f'<text x="{x + bar / 2:.1f}" y="{base + 14}" text-anchor="middle">{_e(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def render_report(data):
    """The HTML page from the report data (build_report_data)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    series = [("needed", "needed", COLORS["needed"]), ("enabled", "enabled", COLORS["enabled"]),
              ("verified", "verified", COLORS["verified"])]
    charts = {
        "capabilities": grouped_bars([(cap, v) for cap, v in data["per_capability"].items()], series),
        "services": grouped_bars([(v["label"], v) for v in data["per_service"].values()], series, bar=7, gap=6),
        "capacity": usage_bars(data["capacity"]["checks"]),
        "waves": wave_bars({int(k): v for k, v in data["waves"]["by_wave"].items()}),
    }
    return env.get_template("report.html.j2").render(d=data, charts=charts)
