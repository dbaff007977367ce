# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Telework stations (laptops), as the registry sees it: people whose ``device`` is ``laptop`` get one
from the stock (the laptops file) by rollout wave (``teleshift waves --assign``, state/laptops.yml);
playbooks/laptops.yml puts their kit on it (roles/telework_station). Status reads the laptop's manifest
(who it is for) and whether its tunnel and softphone run. docs/laptops.md has the whole design."""
from __future__ import annotations

import json

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import station as S
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

LAPTOPS_FILE_VAR = "teleshift_laptops_file"
DEFAULT_LAPTOPS_FILE = "laptops.csv"
MANIFEST = "/var/lib/teleshift/station/manifest.json"  # telework_station_manifest's default
UNITS = ("wg-quick@teleshift", "teleshift-softphone")
# Run on a laptop: its manifest's person and file count, and whether its units run (never a file's content).
QUERY = ("import json,subprocess,sys\n"
         "try:\n m=json.load(open(sys.argv[1]))\nexcept Exception:\n m={}\n"
         "u={n:subprocess.run(['systemctl','is-active',n],capture_output=True,text=True).stdout.strip() "
         "for n in sys.argv[2:]}\n"
         "print(json.dumps({'person':m.get('person',''),'files':len(m.get('files') or {}),'units':u}))\n")


class TeleworkStation(registry.Capability):
    name = "telework_station"
    order = 60
    host_group = "telework_stations"
    state_file = "state/laptops.yml"
    host_key = "host"
    playbook = "laptops"
    optional = True  # an inventory without laptops to provision simply does not use it
    variables = ("telework_station_",)
    texts = {"fr": {"title": "Votre ordinateur portable"}, "en": {"title": "Your laptop"}}

    def wants(self, person):
        """A laptop from the stock: the people ``waves`` counts (device laptop, needing something)."""
        return person.active and person.device == "laptop" and bool(person.needs)

    def laptops_file(self, inputs):
        value = inputs.all_vars.get(LAPTOPS_FILE_VAR) or DEFAULT_LAPTOPS_FILE
        return inputs.path(value)

    def laptops(self, inputs):
        """(laptops, problems) of the laptops file (none without the file and without station hosts)."""
        def build():
            path = self.laptops_file(inputs)
            try:
                text = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                if not self.hosts(inputs) and LAPTOPS_FILE_VAR not in inputs.all_vars:
                    return [], []
                return [], [Problem(str(path), 0, LAPTOPS_FILE_VAR, "the laptops file does not exist")]
            except (OSError, UnicodeDecodeError) as exc:
                return [], [Problem(str(path), 0, LAPTOPS_FILE_VAR, f"cannot be read: {exc}")]
            return S.parse_laptops(text, str(path))
        return inputs.memo("telework_station.laptops", build)

    def needs_of(self, person):
        """The kit parts a laptop must carry for ``person``."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils import registry as R

        parts = ["notice"]
        if "vpn" in person.needs:
            parts.append("vpn")
        if "desktop" in person.needs:
            parts.append("desktop")
        if R.get("phone").wants(person) and "phone" in person.needs:
            parts.append("phone")
        return parts

    def plan(self, inputs):
        """({host: slice}, warnings) for the laptops that are hosts of the inventory group."""
        def build():
            laptops, _problems = self.laptops(inputs)
            people = {p.id: p for p in inputs.roster.people}
            return S.plan_stations(laptops, inputs.state(self), people, set(self.hosts(inputs)), self.needs_of)
        return inputs.memo("telework_station.plan", build)

    def validate(self, inputs):
        found = registry.Findings()
        laptops, problems = self.laptops(inputs)
        found.problems += problems
        hotline = inputs.all_vars.get("teleshift_hotline_number")
        if laptops and hotline and not S.HOTLINE_RE.fullmatch(str(hotline)):
            found.problems.append(Problem(inputs.source, 0, "teleshift_hotline_number",
                                          f"{hotline!r}: digits, spaces and + ( ) . - only (it goes in the launcher)"))
        if problems or not laptops:
            return found
        hosts = set(self.hosts(inputs))
        known = {lt.host for lt in laptops}
        state = inputs.state(self)
        for pid, entry in sorted((state.get("people") or {}).items()):
            host = entry.get("host") if isinstance(entry, dict) else None
            if host not in known:
                found.warnings.append(Problem(str(self.laptops_file(inputs)), 0, "host",
                                              f"{pid} holds {host!r}, which the laptops file does not list"))
        absent = sorted(known - hosts)
        if absent and hosts:
            found.warnings.append(Problem(str(self.laptops_file(inputs)), 0, "host",
                                          f"not in the inventory group {self.host_group}: {', '.join(absent[:5])}"
                                          + (" ..." if len(absent) > 5 else "")))
        found.warnings += [Problem(inputs.source, 0, "", w) for w in self.plan(inputs)[1]]
        return found

    def notice(self, person, kit, lang, inputs=None):
        return None  # the laptop carries the notice; it is not a part of the kit

    # --- the laptop as it is
    def host_query(self):
        return ["python3", "-c", QUERY, MANIFEST, *UNITS]

    def parse_host(self, text):
        try:
            data = json.loads(text.strip().splitlines()[-1])
        except (ValueError, IndexError):
            return {}
        return data if isinstance(data, dict) else {}

    def person_status(self, person, host, entry, facts, inputs):
        status = registry.CapStatus(self.name, "unknown", host)
        if not host:
            status.facts["laptop"] = "(none yet)"
            status.problems.append("no laptop assigned yet (teleshift waves --assign WAVE)")
            status.state = "problem"
            return status
        ident = entry.get("serial") or entry.get("mac") or "?"
        status.facts.update({"laptop": f"{host} ({ident})", "wave": entry.get("wave") or "-",
                             "assigned": entry.get("assigned") or "?"})
        if facts is None:
            return status
        on_laptop = facts.get("person") or ""
        units = facts.get("units") or {}
        status.facts["on the laptop"] = (f"{on_laptop}'s files ({facts.get('files', 0)})" if on_laptop
                                         else "nothing of teleshift yet")
        status.facts["tunnel"] = units.get(UNITS[0], "?")
        status.verified = on_laptop == person.id
        if not status.verified:
            status.problems.append(f"{host} carries {on_laptop or 'nobody'}'s files: run playbooks/laptops.yml")
        elif units.get(UNITS[0]) not in ("active", None):
            status.problems.append(f"the tunnel is {units.get(UNITS[0])} on {host}")
        status.state = "ok" if status.verified and not status.problems else "problem"
        return status


registry.register(TeleworkStation())
__all__ = ["TeleworkStation"]
