# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The VPN capability (WireGuard), as the registry sees it: its checks and capacity come from the VPN
planner itself (plugins/module_utils/wireguard_plan.py), its notice section from the person's kit, its
status from one read of the gateway (``wg show``, never ``wg show ... dump``: that prints private keys)."""
from __future__ import annotations

import base64
import math
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import (
    ini_values, kit_files, kit_rows, read_text)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

HANDSHAKE_FRESH = 180  # seconds: WireGuard re-handshakes every 2 minutes while traffic flows


def _ago(seconds):
    seconds = int(seconds)
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def parse_wg(text):
    """Output of Vpn.host_query() -> {public key: {interface, allowed_ips, handshake, endpoint, rx, tx}}."""
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


class Vpn(registry.Capability):
    name = "vpn"
    need = "vpn"
    order = 10
    host_group = "vpn_gateways"
    state_file = "state/vpn.yml"
    host_key = "gateway"
    playbook = "vpn"
    variables = ("wireguard_gateway_",)
    assumptions = {
        "teleshift_capacity_vpn_concurrency": (
            0.9, "fraction", "share of VPN users connected at the same time at peak"),
        "teleshift_capacity_vpn_mbps_per_user": (
            0.5, "positive", "average throughput per connected VPN user at peak (Mbit/s)"),
        "teleshift_capacity_vpn_max_mbps": (
            1000, "positive", "throughput one gateway carries when its host sets no teleshift_vpn_max_mbps (Mbit/s)"),
    }
    texts = {
        "fr": {"title": "Accès sécurisé (VPN WireGuard)",
               "steps": ["Installez l'application WireGuard (ordinateur : wireguard.com/install ; téléphone : "
                         "magasin d'applications).",
                         "Ordinateur : « Importer un tunnel depuis un fichier » puis choisissez le fichier ci-dessous.",
                         "Téléphone : « + » puis « Scanner un code QR » et visez le code ci-dessous.",
                         "Activez le tunnel : l'état passe à « Actif ». Désactivez-le en fin de journée."],
               "address": "Votre adresse dans le réseau", "endpoint": "Passerelle",
               "qr": "Code QR de votre profil (ne le montrez à personne)"},
        "en": {"title": "Secure access (WireGuard VPN)",
               "steps": ["Install the WireGuard app (computer: wireguard.com/install; phone: your app store).",
                         "Computer: \"Import tunnel from file\" and pick the file below.",
                         "Phone: \"+\" then \"Scan from QR code\" and point at the code below.",
                         "Activate the tunnel: its status turns to \"Active\". Deactivate it at the end of the day."],
               "address": "Your address on the network", "endpoint": "Gateway",
               "qr": "QR code of your profile (show it to nobody)"},
    }

    def client_networks(self, inputs):
        settings = self.settings(inputs)
        return [str(n) for n in (settings.pool, settings.pool6) if n is not None]

    def gate_entries(self, inputs):
        """{gateway: {"networks": its pools, "people": {id: [tunnel addresses]}, "listen": its own tunnel
        addresses}}: what the second factor's gate guards (mfa_capability.py merges every VPN's lists)."""
        settings = self.settings(inputs)
        found = {name: {"networks": [str(n) for n in (g.pool, g.pool6) if n is not None], "people": {},
                        "listen": [a for a in (g.address, g.address6) if a]}
                 for name, g in settings.gateways.items() if g.pool is not None}
        if settings.problems:
            return found
        if self.name in inputs.fresh_states:  # vpn_plan wrote the state from this very plan
            for pid, e in (inputs.state(self).get("people") or {}).items():
                if e.get("gateway") in found:
                    found[e["gateway"]]["people"][pid] = [a for a in (e.get("address"), e.get("address6")) if a]
            return found
        for p in self.plan(inputs).people.values():
            found[p.gateway]["people"][p.id] = [a for a in (p.address, p.address6) if a]
        return found

    # --- the planner's view
    def settings(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import load_vpn_settings

        return inputs.memo("vpn.settings", lambda: load_vpn_settings(
            inputs.all_vars, {gw: inputs.hostvars.get(gw, {}) for gw in self.hosts(inputs)}, source=inputs.source))

    def plan(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import plan_vpn

        def build():
            users = self.users(inputs)
            return plan_vpn(users, self.settings(inputs), inputs.settings.services, inputs.state(self),
                            source=inputs.source)
        return inputs.memo("vpn.plan", build)

    def validate(self, inputs):
        found = registry.Findings()
        if not self.hosts(inputs):
            return found  # not configured here: `teleshift plan` and preflight say who needs it
        found.problems += self.settings(inputs).problems
        if not inputs.kits_root():
            found.problems.append(Problem(inputs.source, 0, "teleshift_kits_dir",
                                          "must be set: where each person's VPN profile (with its private key) "
                                          "is written"))
        return found

    def shortfalls(self, inputs):
        users = self.users(inputs)
        if not self.hosts(inputs):
            return [Problem(inputs.source, 0, self.host_group, f"{len(users)} people need the VPN but the "
                                                               "group has no host")] if users else []
        return list(self.plan(inputs).problems) if not self.settings(inputs).problems else []

    def placements(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import assign_gateways

        settings = self.settings(inputs)
        users = self.users(inputs)
        assignment = assign_gateways(users, settings, inputs.state(self))
        load = {g: 0 for g in settings.gateways}
        for host in assignment.hosts.values():
            load[host] += 1
        return load, list(assignment.unplaced)

    def stranded(self, inputs, down=()):
        """gateway -> ids the state file places on a gateway marked out of service or named in ``down``
        (e.g. failing its verification): the people a lost gateway carried."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import carried

        settings = self.settings(inputs)
        lost = {n for n, g in settings.gateways.items() if g.out_of_service} | (set(down) & set(settings.gateways))
        return carried(inputs.state(self), lost) if lost else {}

    def capacity(self, inputs, assumptions):
        a = assumptions
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check

        users = self.users(inputs)
        settings = self.settings(inputs)
        checks = []
        if settings.licences is not None:
            checks.append(Check("vpn", "licences", "", len(users), settings.licences, "people",
                                "remote-access licences owned (teleshift_vpn_licences)"))
        if not settings.gateways:
            return checks
        load, _problems = self.placements(inputs)
        stranded = self.stranded(inputs)
        for name, gw in sorted(settings.gateways.items()):
            if gw.pool is None:
                continue
            if gw.out_of_service:
                ids = stranded.get(name, [])
                shown = ", ".join(ids[:10]) + (f" ... ({len(ids)})" if len(ids) > 10 else "")
                checks.append(Check("vpn", "out of service", name, len(ids), 0, "people",
                                    f"still carries {shown}: the VPN playbook moves them" if ids
                                    else "wireguard_gateway_out_of_service: carries nobody"))
                continue
            note = (f"limited by its pool {gw.pool}" if gw.capacity() < gw.max_peers
                    else "wireguard_gateway_max_peers")
            checks.append(Check("vpn", "peers", name, load.get(name, 0), gw.capacity(), "peers", note))
            mbps = inputs.hostvar(name, "teleshift_vpn_max_mbps", a["teleshift_capacity_vpn_max_mbps"])
            throughput = math.ceil(load.get(name, 0) * a["teleshift_capacity_vpn_concurrency"]) \
                * a["teleshift_capacity_vpn_mbps_per_user"]
            checks.append(Check("vpn", "throughput", name, round(throughput, 1), mbps, "Mbit/s"))
        total = sum(g.capacity() for g in settings.gateways.values() if g.pool is not None)
        checks.append(Check("vpn", "peers", "", len(users), total, "peers", "all gateways together"))
        return checks

    # --- the notice
    def notice(self, person, kit, lang, inputs=None):
        section = super().notice(person, kit, lang, inputs)
        if section is None or not section.ready:
            return section
        text = self.text(lang)
        files = kit_files(kit)
        config = None
        for path in files:
            body = read_text(path) if path.suffix == ".conf" else None
            if body and "[Interface]" in body:
                config = path
                section.data.update(config_file=f"{self.name}/{path.name}", config=body,
                                    **ini_values(body, {"address", "endpoint", "dns"}))
                break
        stem = config.stem if config else ""
        for path in sorted(files, key=lambda f: (f.stem != stem, f.suffix != ".svg")):
            if (path.stem == stem or "qr" in path.name.lower()) and path.suffix in (".svg", ".png"):
                mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
                section.data["qr_uri"] = f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"
                break
        if section.data.get("config") and "qr_uri" not in section.data:
            from ansible_collections.teleshift.toolkit.plugins.module_utils import qr

            section.data["qr_svg"] = qr.svg(*qr.matrix(section.data["config"]), scale=3, inline=True)
        section.data.update(labels=text)
        return section

    # --- the gateway as it is
    def host_query(self):
        script = ("for k in allowed-ips latest-handshakes endpoints transfer; do echo \"== $k\"; "
                  "wg show all $k; done")
        return ["sh", "-c", script]

    def parse_host(self, text):
        return parse_wg(text)

    def person_status(self, person, host, entry, facts, inputs):
        status = registry.CapStatus(self.name, "unknown", host)
        address = entry.get("address") or _kit_address(inputs, person.id)
        key = entry.get("public_key", "")
        status.facts.update({"gateway": host or "(not assigned)", "address": address or "(none yet)"})
        if not host:
            status.problems.append("no gateway assigned yet (state/vpn.yml)")
            return status
        if facts is None:
            return status
        peer = facts.get(key) if key else None
        wanted = [f"{entry['address']}/32"] if entry.get("address") else []
        wanted += [f"{entry['address6']}/128"] if entry.get("address6") else []
        if peer is not None:
            allowed = peer.get("allowed_ips", [])
            missing = [w for w in wanted if w not in allowed]
            status.verified = not missing
            if missing:
                status.problems.append(f"the peer on {host} allows {', '.join(allowed) or 'nothing'}, "
                                       f"not {', '.join(missing)}")
        else:
            status.verified = False
            status.problems.append(f"no peer with the person's public key on {host}"
                                   if key else "no public key recorded for this person (state/vpn.yml)")
            if address:  # the hotline still sees the tunnel of whoever holds the address
                bare = address.split("/")[0]
                peer = next((p for p in facts.values()
                             if any(a.split("/")[0] == bare for a in p.get("allowed_ips", []))), None)
            if peer is None:
                status.state = "problem"
                return status
        import time

        now = (inputs.now if inputs is not None else 0) or time.time()
        handshake = peer.get("handshake", 0)
        status.facts["last handshake"] = _ago(now - handshake) if handshake else "never"
        status.facts["endpoint"] = peer.get("endpoint") or "(none)"
        if "rx" in peer:
            status.facts["traffic"] = f"{peer['rx'] // 1024} KiB in, {peer['tx'] // 1024} KiB out"
        if not handshake:
            status.state = "problem"
            status.problems.append("never connected: check the profile is imported and the tunnel activated")
        elif now - handshake > HANDSHAKE_FRESH:
            status.state = "problem"
            status.problems.append(f"not connected now (last handshake {_ago(now - handshake)})")
        else:
            status.state = "ok" if status.verified else "problem"
        return status


def _kit_address(inputs, pid):
    root = inputs.kits_root() if inputs is not None else None
    if not root:
        return ""
    for path in sorted((Path(root) / pid / "vpn").glob("*.conf")):
        value = ini_values(read_text(path) or "", {"address"}).get("address", "")
        if value:
            return value.split(",")[0].strip()
    return ""


registry.register(Vpn())
__all__ = ["Vpn", "parse_wg", "kit_rows"]
