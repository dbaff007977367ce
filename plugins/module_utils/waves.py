# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Rollout in waves when laptops or remote-access licences are fewer than the people who need them.

Who needs what (from the roster):
- a **laptop**: active people whose ``device`` is ``laptop`` (thin clients and own devices are not
  drawn from the laptop stock);
- a **licence**: active people who need the VPN (``vpn`` in ``needs``): one remote-access seat each.

Order: people of services whose policy says ``continuity: critical`` first, then by priority
(critical, high, normal, low), then by service name, then in roster order. Stock arrives per wave
(``laptops=[100, 50]``: 100 for wave 1, 50 more for wave 2; leftovers carry over); ``per_wave``
bounds how many people the logistics team equips in one wave. Walking the queue in order, a person
is served in the current wave when there is a slot and stock for everything they need; stock is
never held back for someone ahead who cannot use it yet (someone needing only a licence can pass
someone waiting for a laptop). People needing nothing from the stock are ready in wave 1. Whoever is
still unserved when deliveries end waits, with the reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.csvsafe import SafeWriter
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import PRIORITY_RANK

MAX_WAVES = 10_000  # bound on the wave loop

CSV_COLUMNS = ("wave", "order", "id", "full_name", "service", "continuity", "priority", "site",
               "device", "laptop", "licence", "status", "reason")


@dataclass
class Entry:
    order: int  # position in the queue, from 1
    person: object
    continuity: bool
    laptop: bool  # needs a laptop from the stock
    licence: bool  # needs a remote-access licence
    wave: int = 0  # 0 while waiting
    reason: str = ""

    @property
    def served(self):
        return self.wave > 0


@dataclass
class WavePlan:
    entries: list = field(default_factory=list)  # every active person, in queue order
    laptops: list = field(default_factory=list)  # deliveries per wave
    licences: list = field(default_factory=list)
    per_wave: int = 0

    @property
    def waves(self):
        return max((e.wave for e in self.entries), default=0)

    @property
    def waiting(self):
        return [e for e in self.entries if not e.served]

    def by_wave(self):
        """wave -> {people, laptops, licences} handed out in that wave; 0 = waiting."""
        result = {}
        for e in self.entries:
            row = result.setdefault(e.wave, {"people": 0, "laptops": 0, "licences": 0})
            row["people"] += 1
            row["laptops"] += e.laptop
            row["licences"] += e.licence
        return dict(sorted(result.items()))

    def as_dict(self):
        return {"waves": self.waves, "per_wave": self.per_wave, "laptops": self.laptops,
                "licences": self.licences, "by_wave": {str(k): v for k, v in self.by_wave().items()},
                "waiting": len(self.waiting)}


def critical_services(services):
    """Names of the services whose policy says ``continuity: critical``."""
    return {name for name, policy in services.items()
            if isinstance(policy, dict) and policy.get("continuity") == "critical"}


def queue(people, services):
    """Active people in rollout order, as Entries (not yet placed in a wave)."""
    critical = critical_services(services)
    active = [p for p in people if p.active]
    ordered = sorted(active, key=lambda p: (p.service not in critical, PRIORITY_RANK.get(p.priority, 9),
                                            p.service, p.line))
    return [Entry(order=i, person=p, continuity=p.service in critical,
                  laptop=p.device == "laptop" and bool(p.needs), licence="vpn" in p.needs)
            for i, p in enumerate(ordered, 1)]


def _deliveries(value, name):
    if value is None:
        return None
    items = [value] if isinstance(value, int) else list(value)
    if not items or any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in items):
        raise ValueError(f"{name}: expected whole numbers >= 0, got {value!r}")
    return items


def plan_waves(people, services, laptops=None, licences=None, per_wave=0):
    """Place every active person in a wave or the waiting list.

    laptops/licences: an int (all in stock for wave 1) or a list of deliveries per wave; None means
    that item is not limited. per_wave: people equipped per wave (0 = no limit).
    """
    laptops, licences = _deliveries(laptops, "laptops"), _deliveries(licences, "licences")
    if isinstance(per_wave, bool) or not isinstance(per_wave, int) or per_wave < 0:
        raise ValueError(f"per_wave: expected a whole number >= 0, got {per_wave!r}")
    entries = queue(people, services)
    plan = WavePlan(entries=entries, laptops=laptops or [], licences=licences or [], per_wave=per_wave)
    pending = []
    for e in entries:
        if e.laptop or e.licence:
            pending.append(e)
        else:
            e.wave = 1  # nothing to hand out: ready as soon as their accounts are
    stock = {"laptop": 0, "licence": 0}
    deliveries = {"laptop": laptops, "licence": licences}
    last_delivery = max(len(laptops or [0]), len(licences or [0]))
    wave = 0
    while pending and wave < MAX_WAVES:
        wave += 1
        for item, plan_items in deliveries.items():
            if plan_items is not None and wave <= len(plan_items):
                stock[item] += plan_items[wave - 1]
        slots = per_wave or len(pending)
        still = []
        for e in pending:
            if slots and _fits(e, stock, deliveries):
                e.wave = wave
                slots -= 1
                for item in ("laptop", "licence"):
                    if getattr(e, item) and deliveries[item] is not None:
                        stock[item] -= 1
            else:
                still.append(e)
        served_any = len(still) < len(pending)
        pending = still
        if not served_any and wave >= last_delivery:
            break  # no more stock arriving and nobody can be served: the rest waits
    for e in pending:
        missing = [name for item, name in (("laptop", "laptop"), ("licence", "licence"))
                   if getattr(e, item) and deliveries[item] is not None and stock[item] <= 0]
        e.reason = "no " + " and no ".join(missing) + " left" if missing else "no slot left"
    return plan


def _fits(entry, stock, deliveries):
    for item in ("laptop", "licence"):
        if getattr(entry, item) and deliveries[item] is not None and stock[item] <= 0:
            return False
    return True


def write_csv(plan, stream, excel=False):
    """The plan for the teams handing out equipment: one row per person, waves first, waiting last.
    Cells that a spreadsheet would run as formulas are neutralised; ``excel``: ``;`` and CRLF (the
    caller opens the file as utf-8-sig for the byte order mark)."""
    writer = SafeWriter(stream, excel=excel)
    writer.writerow(CSV_COLUMNS)
    rows = sorted(plan.entries, key=lambda e: (e.wave == 0, e.wave, e.order))
    for e in rows:
        p = e.person
        writer.writerow([
            e.wave or "", e.order, p.id, p.full_name, p.service, "critical" if e.continuity else "",
            p.priority, p.site, p.device, "yes" if e.laptop else "no", "yes" if e.licence else "no",
            "wave" if e.served else "waiting", e.reason])
