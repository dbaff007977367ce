# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The second factor (TOTP) as the registry sees it: a capability of its own rather than a part of the
VPN, because it guards two accesses (the VPN gate on the gateways, xrdp logins on the desktop hosts),
has its own kit (secret, QR code), notice, state file, status and report rows, and takes the tunnel
addresses of any VPN capability that offers them (``gate_entries``: WireGuard now, OpenVPN later).

Who needs it is a policy (``teleshift_mfa_enabled`` and each service's ``mfa`` key), not a roster need:
``wants`` reads the settings of the inventory last given to ``in_use``/``validate``/``capacity``
(every command asks one of them first); notices look at the kit (a secret there = enrolled).
"""
from __future__ import annotations

import json

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import kit_files, kit_rows
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem


def parse_status(text):
    """Output of Mfa.host_query() -> {"gate": status JSON or None, "desktop": set of logins or None}."""
    facts, section, lines = {"gate": None, "desktop": None}, None, {"gate": [], "desktop": []}
    for line in (text or "").splitlines():
        if line.startswith("== "):
            section = line[3:].strip()
            continue
        if section in lines:
            lines[section].append(line)
    if lines["gate"]:
        try:
            facts["gate"] = json.loads("\n".join(lines["gate"]))
        except ValueError:
            facts["gate"] = None
    if section == "desktop" or lines["desktop"]:
        facts["desktop"] = {line.strip() for line in lines["desktop"] if line.strip()}
    return facts


def _left(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 60} min {seconds % 60} s"


class Mfa(registry.Capability):
    name = "mfa"
    need = ""
    order = 15
    host_group = "vpn_gateways"
    state_file = "state/mfa.yml"
    host_key = "gateway"
    playbook = "mfa"
    optional = True
    variables = ("mfa_gate_",)
    texts = {
        "fr": {"title": "Second facteur (code à usage unique)",
               "steps": ["Installez une application d'authentification sur votre téléphone (FreeOTP, Aegis, "
                         "Google Authenticator, Microsoft Authenticator...).",
                         "Dans l'application, ajoutez un compte en scannant le code QR de votre feuille "
                         "d'identifiants (remise à part) : il affiche un code à 6 chiffres qui change toutes "
                         "les 30 secondes.",
                         "VPN : une fois le tunnel actif, ouvrez la page ci-dessous dans votre navigateur et tapez "
                         "le code : l'accès au réseau s'ouvre pour la durée indiquée.",
                         "Bureau à distance : dans le champ mot de passe, tapez votre mot de passe suivi "
                         "immédiatement du code (sans espace).",
                         "À la première ouverture du bureau, une fenêtre vous demande de remplacer le mot de passe "
                         "initial : choisissez-en un nouveau ; l'ancien ne fonctionnera plus.",
                         "Cinq codes erronés bloquent l'accès un moment : attendez, ou appelez l'assistance."],
               "gate": "Page d'ouverture de l'accès", "session": "Durée d'un accès ouvert",
               "exempt": "Votre service est dispensé du second facteur", "sheet": "Code QR et clé : sur votre "
               "feuille d'identifiants, remise à part.", "qr": "Code QR à scanner dans l'application",
               "key": "Clé (saisie manuelle)"},
        "en": {"title": "Second factor (one-time code)",
               "steps": ["Install an authenticator app on your phone (FreeOTP, Aegis, Google Authenticator, "
                         "Microsoft Authenticator...).",
                         "In the app, add an account by scanning the QR code of your credentials sheet (handed "
                         "over separately): it shows a 6-digit code that changes every 30 seconds.",
                         "VPN: once the tunnel is active, open the page below in your browser and type the code: "
                         "the network opens for the time shown.",
                         "Remote desktop: in the password field, type your password immediately followed by the "
                         "code (no space).",
                         "When your desktop first opens, a window asks you to replace the initial password: choose "
                         "a new one; the old one will no longer work.",
                         "Five wrong codes lock the access for a while: wait, or call the hotline."],
               "gate": "Access page", "session": "An open access lasts", "exempt": "Your service is exempt "
               "from the second factor", "sheet": "QR code and key: on your credentials sheet, handed over "
               "separately.", "qr": "QR code to scan in the app", "key": "Key (manual entry)"},
    }

    def __init__(self):
        self._bound = None

    # --- settings and policy
    def settings(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import load_mfa_settings

        settings = inputs.memo("mfa.settings", lambda: load_mfa_settings(
            inputs.all_vars, inputs.settings.services if inputs.settings else {}, source=inputs.source))
        self._bound = settings
        return settings

    def wants(self, person):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import required

        return self._bound is not None and required(person, self._bound)

    def users(self, inputs):
        self.settings(inputs)  # wants() reads these settings
        return super().users(inputs)

    def exempt_people(self, inputs):
        """{service: (reason, [ids])} of the active people the second factor would guard."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import exemption

        def build():
            settings = self.settings(inputs)
            found = {}
            if settings.exempt:
                for p in inputs.roster.people:
                    reason = exemption(p, settings)
                    if reason:
                        found.setdefault(p.service, (reason, []))[1].append(p.id)
            return dict(sorted(found.items()))
        return inputs.memo("mfa.exempt", build)

    def in_use(self, inputs):
        return self.settings(inputs).enabled

    def configured(self, inputs):
        return self.settings(inputs).enabled and bool(self.hosts(inputs))

    def people_in_state(self, state):
        return super().people_in_state(state)

    def hosts_for(self, person, entry, inputs):
        settings = self.settings(inputs)
        hosts = [h for h in (entry.get("gateway"), entry.get("desktop") if settings.desktop else "") if h]
        return hosts

    # --- checks and plans
    def validate(self, inputs):
        found = registry.Findings()
        settings = self.settings(inputs)
        found.problems += settings.problems
        if settings.enabled and not inputs.kits_root():
            found.problems.append(Problem(inputs.source, 0, "teleshift_kits_dir",
                                          "must be set: where each person's second-factor secret is written"))
        if settings.enabled:
            gated = set(inputs.hosts("vpn_gateways"))
            for cap in registry.capabilities():
                if cap is self or not hasattr(cap, "gate_entries") or not cap.hosts(inputs):
                    continue
                for host in sorted(set(cap.hosts(inputs)) - gated):
                    found.problems.append(Problem(
                        inputs.source, 0, "teleshift_mfa_enabled",
                        f"{cap.name} gateway {host} is not a WireGuard gateway (vpn_gateways), where the gate "
                        "runs: its people would reach the network without a code"))
            for service, (reason, ids) in self.exempt_people(inputs).items():
                found.warnings.append(Problem(inputs.source, 0, f"teleshift_services.{service}.mfa",
                                              f"{len(ids)} people exempt from the second factor: {reason}"))
        return found

    def capacity(self, inputs, assumptions):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check

        settings = self.settings(inputs)
        if not settings.enabled:
            return []
        required = len(self.users(inputs))
        checks = [Check("mfa", "second factor", "", required, required, "people", "code required (VPN gate, desktop)")]
        for service, (reason, ids) in self.exempt_people(inputs).items():
            checks.append(Check("mfa", "exempt", service, len(ids), len(ids), "people", f"exempt: {reason}"))
        return checks

    def gate_entries(self, inputs):
        """{gateway: {"networks", "people"}} merged from every capability that offers tunnel addresses."""
        merged = {}
        for cap in registry.capabilities():
            if cap is self or not hasattr(cap, "gate_entries") or not cap.hosts(inputs):
                continue
            for host, entry in cap.gate_entries(inputs).items():
                into = merged.setdefault(host, {"networks": [], "people": {}, "listen": []})
                for key in ("networks", "listen"):
                    into[key] += [n for n in entry.get(key, []) if n not in into[key]]
                people = into["people"]
                for pid, addresses in entry.get("people", {}).items():
                    have = people.get(pid)
                    if have is None:
                        people[pid] = list(addresses)
                    else:
                        have += [a for a in addresses if a not in have]
        return merged

    # --- the notice: enrolment steps; the key and QR code only on the credentials sheet
    def notice(self, person, kit, lang, inputs=None):
        files = kit_files(kit)
        if not files:
            return None
        rows, secrets = kit_rows(files)
        text = self.text(lang)
        section = registry.NoticeSection(self.name, text["title"], steps=list(text["steps"]), rows=rows,
                                         secrets=list(secrets), files=[])
        section.data["labels"] = text
        for path in files:
            if path.name.endswith(".svg") and "authenticator" in path.name:
                import base64

                section.data["qr_uri"] = "data:image/svg+xml;base64," + base64.b64encode(path.read_bytes()).decode()
        return section

    # --- the hosts as they are
    def host_query(self):
        script = ("if [ -x /usr/local/sbin/teleshift-gate ]; then echo '== gate'; /usr/local/sbin/teleshift-gate "
                  "status; fi; if [ -d /var/lib/teleshift/mfa ]; then echo '== desktop'; ls -1 /var/lib/teleshift/mfa; "
                  "fi; true")
        return ["sh", "-c", script]

    def parse_host(self, text):
        return parse_status(text)

    def person_status(self, person, host, entry, facts, inputs):
        settings = self.settings(inputs)
        status = registry.CapStatus(self.name, "unknown", host)
        if not settings.enabled:
            status.state = "not configured"
            return status
        if facts is None:
            return status
        gate, desktop = facts.get("gate"), facts.get("desktop")
        problems = []
        if gate is not None:
            mine = (gate.get("people") or {}).get(person.id)
            if mine is None:
                if "vpn" in person.needs:
                    problems.append(f"not enrolled on the gate of {host}")
            else:
                left = mine.get("open_seconds")
                status.facts["gate"] = f"open, {_left(left)} left" if left else "closed (no valid code yet)"
                if mine.get("last_opened"):
                    outside = mine.get("last_outside") or "?"
                    status.facts["last session"] = (f"opened {mine['last_opened']} from {outside}, "
                                                    f"until {mine.get('last_expires')}")
                else:
                    status.facts["last session"] = "never"
                if mine.get("locked_until"):
                    status.facts["locked out until"] = mine["locked_until"]
        if desktop is not None and host == entry.get("desktop"):
            if person.id not in desktop:
                problems.append(f"no second-factor secret for {person.id} on {host}")
        status.problems += problems
        status.verified = not problems
        status.state = "ok" if not problems else "problem"
        if "locked out until" in status.facts:
            status.state = "problem"
            status.problems.append(f"locked out after wrong codes until {status.facts['locked out until']}")
        return status

    # --- the report: connection counts per service, and who is exempt
    def report_section(self, inputs, read_host):
        settings = self.settings(inputs)
        if not settings.enabled:
            return None
        counts, unknown = {}, []
        for host in self.hosts(inputs):
            facts = read_host(self, host)
            gate = (facts or {}).get("gate") if isinstance(facts, dict) else None
            if gate is None:
                unknown.append(host)
                continue
            for service, row in (gate.get("counts") or {}).items():
                into = counts.setdefault(service, {})
                for result, n in row.items():
                    into[result] = into.get(result, 0) + int(n)
        results = ("opened", "refused", "replayed", "lockout", "locked", "rate-limited", "closed")
        rows = [[service] + [str(counts[service].get(r, 0)) for r in results] for service in sorted(counts)]
        exempt = [[service, reason, str(len(ids)), ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else "")]
                  for service, (reason, ids) in self.exempt_people(inputs).items()]
        return {"title": "Second factor", "tables": [
            {"caption": f"Gate connection log per service (last {settings.retention_days} days)"
                        + (f"; not read: {', '.join(unknown)}" if unknown else ""),
             "header": ["service", *results], "rows": rows},
            {"caption": "Exempt from the second factor", "header": ["service", "reason", "people", "who"],
             "rows": exempt}]}


registry.register(Mfa())
__all__ = ["Mfa", "parse_status"]
