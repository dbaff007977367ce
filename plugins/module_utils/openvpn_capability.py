# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""OpenVPN over TCP 443, the fallback beside WireGuard, as the registry sees it: everyone with the
``vpn`` need gets both profiles. Checks and capacity come from its planner (openvpn_plan.py), the
notice section "if the connection does not work" from the person's kit, the status from one read of
the gateway (management interface ``status 3`` and the ccd files: openvpn_host.QUERY).

Capacity figures (defaults of the assumptions below; docs/openvpn.md gives the sources):
- OpenVPN 2 is single-threaded: one server process uses one core (OpenVPN Access Server documentation,
  "Advanced options": "each OpenVPN process runs on a single CPU core"; it runs one daemon per core).
- Throughput: about 20 MHz of a modern AES-NI core per Mbit/s carried (OpenVPN Inc.'s hardware
  rule of thumb), i.e. ~100 Mbit/s for a 2 GHz core: ``teleshift_capacity_openvpn_mbps_per_core``.
- Sessions: one core for ~64 concurrent clients (conservative) to ~128 for people working from home
  (eduVPN's scaling notes, April 2020): ``teleshift_capacity_openvpn_sessions_per_core`` = 128.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import kit_files
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

CONFIG_DIR = "/etc/openvpn/teleshift"  # openvpn_gateway_config_dir's default


class OpenVpn(registry.Capability):
    name = "openvpn"
    need = "vpn"  # everyone who needs the VPN gets both profiles
    order = 11
    host_group = "openvpn_gateways"
    state_file = "state/openvpn.yml"
    host_key = "gateway"
    playbook = "openvpn"
    optional = True  # an inventory without OpenVPN gateways simply offers WireGuard alone
    variables = ("openvpn_gateway_", "wireguard_gateway_")
    assumptions = {
        "teleshift_capacity_openvpn_share": (
            0.15, "fraction", "share of connected VPN users on the OpenVPN fallback at peak (UDP blocked)"),
        "teleshift_capacity_openvpn_mbps_per_core": (
            100, "positive", "throughput one OpenVPN process (one core) carries (Mbit/s; ~20 MHz per Mbit/s)"),
        "teleshift_capacity_openvpn_sessions_per_core": (
            128, "positive", "concurrent OpenVPN sessions one process (one core) serves (eduVPN: 64 to 128)"),
    }
    texts = {
        "fr": {"title": "Si la connexion ne fonctionne pas (hôtel, 4G, wifi invité)",
               "why": "Certains réseaux (hôtels, wifi invité, certains opérateurs 4G) bloquent WireGuard. Ce "
                      "second profil passe par le port des sites web sécurisés (TCP 443) : il fonctionne presque "
                      "partout, un peu plus lentement. Ne l'utilisez que lorsque WireGuard ne se connecte pas.",
               "steps": ["Désactivez d'abord le tunnel WireGuard.",
                         "Installez l'application « OpenVPN Connect » (ordinateur : openvpn.net/client ; téléphone : "
                         "magasin d'applications). Sous Linux : le module OpenVPN du gestionnaire de réseau.",
                         "Importez le fichier ci-dessous (« Importer un profil » puis « Fichier »).",
                         "Connectez-vous : l'état passe à « Connecté ». De retour chez vous, revenez à WireGuard."],
               "address": "Votre adresse dans ce tunnel", "endpoint": "Serveur", "file": "Profil à importer"},
        "en": {"title": "If the connection does not work (hotel, 4G, guest wifi)",
               "why": "Some networks (hotels, guest wifi, some 4G operators) block WireGuard. This second profile "
                      "goes through the port of secure web sites (TCP 443): it works almost everywhere, a little "
                      "slower. Use it only when WireGuard does not connect.",
               "steps": ["First deactivate the WireGuard tunnel.",
                         "Install the \"OpenVPN Connect\" app (computer: openvpn.net/client; phone: your app store). "
                         "On Linux: the network manager's OpenVPN plugin.",
                         "Import the file below (\"Import profile\" then \"File\").",
                         "Connect: its status turns to \"Connected\". Back home, switch to WireGuard again."],
               "address": "Your address in this tunnel", "endpoint": "Server", "file": "Profile to import"},
    }

    # --- the planner's view
    def settings(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import load_openvpn_settings

        return inputs.memo("openvpn.settings", lambda: load_openvpn_settings(
            inputs.all_vars, {gw: inputs.hostvars.get(gw, {}) for gw in self.hosts(inputs)}, source=inputs.source))

    def vpn_state(self, inputs):
        try:
            return inputs.state("vpn")
        except (KeyError, ValueError):
            return {}

    def plan(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import plan_openvpn

        return inputs.memo("openvpn.plan", lambda: plan_openvpn(
            self.users(inputs), self.settings(inputs), inputs.state(self), self.vpn_state(inputs),
            source=inputs.source))

    def pki_dir(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import PKI_SUBDIR

        value = self.settings(inputs).pki_dir
        if value:
            return inputs.path(value)
        root = inputs.kits_root()
        return Path(root) / PKI_SUBDIR if root else None

    def gate_entries(self, inputs):
        """{gateway: {"networks": its OpenVPN pool, "people": {id: [tunnel address]}, "listen": []}}: what
        the second factor's gate guards on that host (mfa_capability.py merges it with WireGuard's). The
        page itself listens on the host's WireGuard addresses; OpenVPN clients get a route to it
        (openvpn_gateway_gate_portal, set by playbooks/openvpn.yml from the gate's plan)."""
        settings = self.settings(inputs)
        found = {name: {"networks": [str(g.pool)], "people": {}, "listen": []}
                 for name, g in settings.gateways.items() if g.pool is not None}
        if settings.problems:
            return found
        for p in self.plan(inputs).people.values():
            found.setdefault(p.gateway, {"networks": [], "people": {}, "listen": []})["people"][p.id] = [p.address]
        return found

    def client_networks(self, inputs):
        settings = self.settings(inputs)
        return [str(settings.pool)] if self.hosts(inputs) and settings.pool is not None else []

    def validate(self, inputs):
        found = registry.Findings()
        if not self.hosts(inputs):
            return found
        found.problems += self.settings(inputs).problems
        if not inputs.kits_root():
            found.problems.append(Problem(inputs.source, 0, "teleshift_kits_dir",
                                          "must be set: where each person's OpenVPN profile (with its key) is written"))
            return found
        pki = self.pki_dir(inputs)
        inventory = Path(inputs.inventory_dir).resolve()
        if pki is not None and (Path(pki).resolve() == inventory or inventory in Path(pki).resolve().parents):
            found.warnings.append(Problem(inputs.source, 0, "teleshift_openvpn_pki_dir",
                                          f"{pki} (the OpenVPN CA key) is inside the inventory directory, which is "
                                          "kept in git: keep it (or teleshift_kits_dir) outside, or git-ignored"))
        return found

    def shortfalls(self, inputs):
        if not self.hosts(inputs) or self.settings(inputs).problems:
            return []
        return list(self.plan(inputs).problems)

    def placements(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import assign_gateways

        settings = self.settings(inputs)
        assignment = assign_gateways(self.users(inputs), settings, inputs.state(self), self.vpn_state(inputs))
        load = {g: 0 for g in settings.gateways}
        for host in assignment.hosts.values():
            load[host] += 1
        return load, list(assignment.unplaced)

    def capacity(self, inputs, assumptions):
        """Profiles per gateway (its pool and max-clients), and at peak the sessions and throughput of
        its one OpenVPN process (one core) against the per-core figures."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check

        settings = self.settings(inputs)
        checks = []
        if settings.problems:
            return checks
        a = assumptions
        load = self.placements(inputs)[0]
        concurrency = a.get("teleshift_capacity_vpn_concurrency", 0.9)
        per_user = a.get("teleshift_capacity_vpn_mbps_per_user", 0.5)
        for name, gw in sorted(settings.gateways.items()):
            people = load.get(name, 0)
            checks.append(Check("openvpn", "profiles", name, people, gw.capacity(), "people",
                                "openvpn_gateway_max_clients and its pool"))
            sessions = math.ceil(people * concurrency * a["teleshift_capacity_openvpn_share"])
            limit = min(gw.max_clients, a["teleshift_capacity_openvpn_sessions_per_core"])
            checks.append(Check("openvpn", "sessions", name, sessions, limit, "sessions",
                                "at peak on TCP 443; one OpenVPN process = one core"))
            checks.append(Check("openvpn", "throughput", name, round(sessions * per_user, 1),
                                a["teleshift_capacity_openvpn_mbps_per_core"], "Mbit/s",
                                "one core (~20 MHz per Mbit/s)"))
        return checks

    # --- the notice
    def notice(self, person, kit, lang, inputs=None):
        """The fallback section, once the OpenVPN plan has made the person's kit (an inventory without
        OpenVPN gateways never does: its notices have no such section)."""
        if not Path(kit).is_dir():
            return None
        section = super().notice(person, kit, lang, inputs)
        if section is None:
            return None
        text = self.text(lang)
        profile = next((p for p in kit_files(kit) if p.suffix == ".ovpn"), None)
        section.ready = profile is not None
        section.files = [f"{self.name}/{profile.name}"] if profile else []
        section.data.update(labels=text, why=text["why"])
        if profile is not None:
            from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import read_text

            body = read_text(profile) or ""
            remote = next((line.split()[1:3] for line in body.splitlines() if line.startswith("remote ")), [])
            if len(remote) == 2:
                section.data["endpoint"] = f"{remote[0]} (TCP {remote[1]})"
            section.data["profile_file"] = f"{self.name}/{profile.name}"
        return section

    # --- the gateway as it is
    def host_query(self):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_host import DEFAULT_SOCKET, QUERY

        return ["python3", "-c", QUERY, DEFAULT_SOCKET, f"{CONFIG_DIR}/ccd"]

    def parse_host(self, text):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_host import parse_query

        return parse_query(text)

    def person_status(self, person, host, entry, facts, inputs):
        status = registry.CapStatus(self.name, "unknown", host)
        address = entry.get("address", "")
        status.facts.update({"gateway": host or "(not assigned)", "address": address or "(none yet)"})
        expires = entry.get("not_after", "")
        if expires:
            status.facts["certificate"] = f"valid until {expires[:10]}"
        if not host:
            status.problems.append("no OpenVPN gateway assigned yet (state/openvpn.yml)")
            return status
        if facts is None:
            return status
        on_host = (facts.get("ccd") or {}).get(person.id)
        status.verified = bool(address) and on_host == address
        if not status.verified:
            status.problems.append(f"no client file for the person on {host}" if not on_host
                                   else f"the client file on {host} gives {on_host}, not {address}")
        now = (inputs.now if inputs is not None else 0) or time.time()
        sessions = (facts.get("sessions") or {}).get(person.id) or []
        if sessions:
            s = max(sessions, key=lambda r: r.get("since", 0))
            since = int(now - s["since"]) if s.get("since") else 0
            status.facts["tunnel"] = (f"OpenVPN over TCP, connected {_duration(since)} from {s.get('real', '?')} "
                                      f"as {s.get('virtual', '?')}")
            status.facts["traffic"] = f"{s.get('rx', 0) // 1024} KiB in, {s.get('tx', 0) // 1024} KiB out"
            status.facts["note"] = "on the fallback tunnel: an old WireGuard handshake (vpn) is expected"
        else:
            status.facts["tunnel"] = "not on OpenVPN now (WireGuard is the usual tunnel: see vpn)"
        status.state = "ok" if status.verified else "problem"
        return status


def _duration(seconds):
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


registry.register(OpenVpn())
__all__ = ["OpenVpn"]
