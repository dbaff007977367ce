# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Video rooms (Janus VideoRoom behind nginx, coturn for TURN) as the registry sees it: who may join
which room is the inventory's ``teleshift_video_rooms`` (members and services), not a roster need, so
``wants`` reads the rooms of the inventory last given to ``in_use``/``validate``/``capacity`` (as mfa does);
notices read the person's kit (``<kits>/<id>/video/rooms.yml``, written by the video_plan action).
Load per room at its declared size: video_plan.room_load (figures and sources: docs/video.md)."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

KIT_FILE = "rooms.yml"


class Video(registry.Capability):
    name = "video"
    need = ""
    order = 40
    host_group = "video_hosts"
    state_file = "state/video.yml"
    playbook = "video"
    optional = True
    variables = ("video_rooms_",)
    assumptions = {
        "teleshift_capacity_video_streams_per_core": (
            300, "positive", "RTP streams (audio or video) one core of the video host forwards (SRTP in and out)"),
        "teleshift_capacity_video_host_mbps": (
            1000, "positive", "network throughput of a video host when it sets no video_rooms_max_mbps (Mbit/s)"),
        "teleshift_capacity_video_cores": (
            2, "positive", "cores of a video host when it sets no video_rooms_cores"),
    }
    texts = {
        "fr": {"title": "Salles de visioconférence",
               "steps": ["Activez d'abord votre accès VPN (et le second facteur si on vous l'a remis) : les salles ne "
                         "sont joignables que par le VPN.",
                         "Ouvrez le lien de la salle dans Firefox, Chrome ou Edge, tapez votre nom et le code PIN de "
                         "la salle (sur votre feuille d'identifiants), puis « Entrer ».",
                         "Autorisez la caméra et le micro. Sans caméra, décochez « Caméra » : vous participez au son.",
                         "Sans ordinateur ou avec une connexion faible : appelez le numéro de la salle audio indiqué."],
               "room": "Salle", "link": "Lien", "seats": "Places", "record": "Enregistrement",
               "phone": "Salle audio (téléphone)", "yes": "oui", "no": "non", "pin": "PIN"},
        "en": {"title": "Video rooms",
               "steps": ["First turn on your VPN access (and the second factor if you were given one): the rooms are "
                         "reached only through the VPN.",
                         "Open the room's link in Firefox, Chrome or Edge, type your name and the room's PIN (on your "
                         "credentials sheet), then \"Join\".",
                         "Allow the camera and microphone. Without a camera, untick \"Camera\": you take part by "
                         "voice.",
                         "Without a computer or with a weak connection: call the room's audio number shown."],
               "room": "Room", "link": "Link", "seats": "Seats", "record": "Recording",
               "phone": "Audio room (phone)", "yes": "yes", "no": "no", "pin": "PIN"},
    }

    def __init__(self):
        self._bound = None

    # --- the planner's view
    def settings(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_plan import load_video_settings

        settings = inputs.memo("video.settings", lambda: load_video_settings(
            inputs.all_vars, {h: inputs.hostvars.get(h, {}) for h in self.hosts(inputs)}, source=inputs.source))
        self._bound = (settings, inputs.roster)
        return settings

    def plan(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_plan import plan_video

        return inputs.memo("video.plan",
                           lambda: plan_video(inputs.roster.people, self.settings(inputs), inputs.state(self)))

    def wants(self, person):
        if self._bound is None or not person.active:
            return False
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_plan import members_of

        return any(person.id in members_of(r, [person]) for r in self._bound[0].rooms.values())

    def in_use(self, inputs):
        return bool(self.settings(inputs).rooms) or bool(self.hosts(inputs))

    def configured(self, inputs):
        return bool(self.hosts(inputs))

    def people_in_state(self, state):
        return super().people_in_state(state)

    def hosts_for(self, person, entry, inputs):
        plan = self.plan(inputs)
        return sorted({plan.rooms[r] for r in plan.people.get(person.id, []) if r in plan.rooms})

    def _reach(self, inputs):
        """service, address -> whether WireGuard's per-service policy lets it through (None: unknown)."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard_plan as W

        try:
            vpn = W.load_vpn_settings(inputs.all_vars, {}, source=inputs.source)
        except (AttributeError, TypeError, ValueError):
            return lambda service, address: None
        services = inputs.settings.services if inputs.settings else {}

        def reach(service, address):
            try:
                ip = ipaddress.ip_address(address)
                return any(ip in net for net in W.service_networks(service, services, vpn))
            except (ValueError, TypeError, KeyError):
                return None
        return reach

    # --- checks and plans
    def validate(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_plan import check_people

        found = registry.Findings()
        settings = self.settings(inputs)
        if not settings.rooms and not self.hosts(inputs):
            return found
        found.problems += settings.problems
        found.warnings += settings.warnings
        if not self.hosts(inputs):
            return found
        services = inputs.settings.services if inputs.settings else {}
        problems, warnings = check_people(settings, inputs.roster, services, self._reach(inputs), inputs.source)
        found.problems += problems
        found.warnings += warnings
        return found

    def placements(self, inputs):
        settings = self.settings(inputs)
        if settings.problems or not self.hosts(inputs):
            return {}, []
        plan = self.plan(inputs)
        load = {h: 0 for h in settings.hosts}
        for rooms in plan.people.values():
            for host in {plan.rooms[r] for r in rooms}:
                load[host] += 1
        return load, []

    def loads(self, inputs, a):
        """[(room, host, load dict)] at each room's declared size."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_plan import room_load

        settings = self.settings(inputs)
        if settings.problems:
            return []
        plan = self.plan(inputs)
        return [(settings.rooms[n], plan.rooms[n], room_load(settings.rooms[n], a)) for n in sorted(plan.rooms)]

    def capacity(self, inputs, assumptions):
        """Per room at its declared size: the server's outgoing Mbit/s and cores; per host, every room at once."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check

        a = assumptions
        checks, total = [], {}
        for room, host, load in self.loads(inputs, a):
            hv = inputs.hostvars.get(host, {})
            mbps = hv.get("video_rooms_max_mbps") or a["teleshift_capacity_video_host_mbps"]
            cores = hv.get("video_rooms_cores") or a["teleshift_capacity_video_cores"]
            note = (f"room {room.name}: {room.max_members} people, {room.bitrate_kbps} kbit/s video + Opus; "
                    f"{load['down_mbps']} Mbit/s down and {load['up_mbps']} up per person")
            checks.append(Check("video", f"bandwidth ({room.name})", host, load["out_mbps"], mbps, "Mbit/s out", note))
            checks.append(Check("video", f"cpu ({room.name})", host, load["cores"], cores, "cores",
                                f"room {room.name}: {load['streams']} forwarded streams"))
            t = total.setdefault(host, [0.0, 0.0, mbps, cores])
            t[0] += load["out_mbps"]
            t[1] += load["cores"]
        for host, (out, used, mbps, cores) in sorted(total.items()):
            checks.append(Check("video", "bandwidth (all rooms at once)", host, round(out, 1), mbps, "Mbit/s out",
                                "every room full at the same time"))
            checks.append(Check("video", "cpu (all rooms at once)", host, round(used, 2), cores, "cores",
                                "every room full at the same time"))
        return checks

    # --- the notice
    def notice(self, person, kit, lang, inputs=None):
        import yaml

        from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import read_text

        path = Path(kit) / KIT_FILE
        if not path.is_file():
            return None
        try:
            rooms = (yaml.safe_load(read_text(path) or "") or {}).get("rooms") or []
        except yaml.YAMLError:
            rooms = []
        if not rooms:
            return None
        text = self.text(lang)
        section = registry.NoticeSection(self.name, text["title"], steps=list(text["steps"]))
        keys = ("label", "url", "max_members", "record", "phone")
        section.data.update(labels=text, rooms=[{k: r.get(k) for k in keys} for r in rooms])
        section.secrets = [(f"{text['pin']} - {r.get('label')}", str(r.get("pin"))) for r in rooms if r.get("pin")]
        return section

    # --- the hosts as they are
    def host_query(self):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_host import QUERY

        return ["python3", "-c", QUERY]

    def parse_host(self, text):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.video_host import parse_query

        return parse_query(text)

    def person_status(self, person, host, entry, facts, inputs):
        rooms = list((entry or {}).get("rooms") or [])
        status = registry.CapStatus(self.name, "unknown", host)
        status.facts["rooms"] = ", ".join(rooms) or "(none)"
        if facts is None:
            return status
        live = facts.get("rooms") or {}
        missing = [r for r in rooms if r not in live]
        status.verified = not missing
        if missing:
            status.problems.append(f"room(s) not on {host}: {', '.join(missing)}")
        busy = [f"{r} ({live[r].get('participants', 0)} in)" for r in rooms if live.get(r, {}).get("participants")]
        if busy:
            status.facts["meetings now"] = ", ".join(busy)
        status.state = "ok" if status.verified else "problem"
        return status

    def report_section(self, inputs, read_host):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import resolve_assumptions

        settings = self.settings(inputs)
        if not settings.rooms or settings.problems:
            return None
        a = {k: v.value for k, v in resolve_assumptions(inputs.all_vars)[0].items()}
        plan = self.plan(inputs)
        rows = []
        for room, host, load in self.loads(inputs, a):
            facts = read_host(self, host) if host else None
            live = ((facts or {}).get("rooms") or {}).get(room.name)
            now = "unknown" if facts is None else ("missing" if live is None else str(live.get("participants", 0)))
            rows.append([room.name, room.label, host, str(len(plan.members.get(room.name, []))), str(room.max_members),
                         "yes" if room.record else "no", f"{load['out_mbps']} / {load['in_mbps']}",
                         f"{load['down_mbps']} / {load['up_mbps']}", str(load["cores"]), now])
        return {"title": "Video rooms", "tables": [{
            "caption": "Each room at its declared size, every camera on (SFU: N streams in, N x (N-1) out; "
                       "figures and sources in docs/video.md)",
            "header": ["room", "label", "host", "members", "seats", "recorded", "server Mbit/s out / in",
                       "per person Mbit/s down / up", "cores", "in the room now"],
            "rows": rows}]}


registry.register(Video())
__all__ = ["Video"]
