# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The telephony capability (Asterisk PBX), as the registry sees it: the number policy and the PBX's
settings checked with the telephony compiler (plugins/module_utils/telephony.py), trunk channels from
Erlang B, the softphone and forwarding section of the notice, status from one read of the PBX's AstDB
and contacts."""
from __future__ import annotations

import re

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

FORWARD_FAMILIES = {"always": "CFIM", "busy": "CFBS", "no_answer": "CFNA"}
# AstDB families holding a person's forwarding, keyed by their extension (telephony.py owns the names)
PERSON_FAMILIES = ("CFIM", "CFBS", "CFNA", "CFNADELAY", "TSMOBILE")


def _digits(number):
    return re.sub(r"\D", "", number or "")[-9:]


def parse_pbx(text):
    """Output of Phone.host_query() -> {"astdb": {family: {key: value}}, "contacts": {aor: [(uri, status)]},
    "endpoints": {name}}."""
    astdb, contacts, endpoints, section = {}, {}, set(), None
    for line in text.splitlines():
        if line.startswith("== "):
            section = line[3:].strip()
            continue
        if section == "database":
            key, sep, value = line.partition(":")
            parts = key.strip().strip("/").split("/", 1)
            if sep and len(parts) == 2:
                astdb.setdefault(parts[0], {})[parts[1]] = value.strip()
        elif section == "contacts":
            m = re.match(r"\s*Contact:\s+([^/\s]+)/(\S+)\s+\S+\s+(\S+)", line)
            if m:
                contacts.setdefault(m.group(1), []).append((m.group(2), m.group(3)))
        elif section == "endpoints":  # "pjsip list endpoints": "Endpoint:  1001/1001   Unavailable ..."
            m = re.match(r"\s*Endpoint:\s+([^\s/<][^\s/]*)", line)
            if m:
                endpoints.add(m.group(1))
    return {"astdb": astdb, "contacts": contacts, "endpoints": endpoints}


class Phone(registry.Capability):
    name = "phone"
    need = "phone"
    order = 30
    host_group = "pbx_hosts"
    playbook = "telephony"
    variables = ("asterisk_pbx_",)
    assumptions = {
        "teleshift_capacity_phone_erlangs_per_person": (
            0.1, "nonneg", "busy-hour external call traffic per person with a line (erlangs)"),
        "teleshift_capacity_phone_conditional_forward_share": (
            0.3, "fraction", "share of calls forwarded for busy / no_answer forwarding"),
        "teleshift_capacity_phone_blocking": (
            0.01, "probability", "target blocking probability on the trunk (Erlang B grade of service)"),
    }
    texts = {
        "fr": {"title": "Téléphone",
               "steps": ["Installez le téléphone logiciel recommandé par votre service (par exemple Linphone).",
                         "Activez le VPN, puis créez un compte SIP avec les paramètres ci-dessous.",
                         "Appelez votre propre numéro interne pour vérifier la messagerie."],
               "extension": "Votre numéro interne", "softphone": "Téléphone logiciel : paramètres de compte SIP",
               "forwarding": "Renvoi de votre ligne de bureau",
               "forward_modes": {"none": "Pas de renvoi : les appels sonnent sur votre téléphone logiciel.",
                                 "always": "Tous les appels sont renvoyés vers {to}.",
                                 "busy": "Les appels sont renvoyés vers {to} quand vous êtes déjà en ligne.",
                                 "no_answer": "Les appels sont renvoyés vers {to} après {delay} secondes sans "
                                              "réponse."},
               "voicemail_yes": "Messagerie vocale : activée.", "voicemail_no": "Messagerie vocale : non activée."},
        "en": {"title": "Telephone",
               "steps": ["Install the softphone your service recommends (for example Linphone).",
                         "Activate the VPN, then add a SIP account with the settings below.",
                         "Call your own extension to check your voicemail."],
               "extension": "Your extension", "softphone": "Softphone: SIP account settings",
               "forwarding": "Forwarding of your desk line",
               "forward_modes": {"none": "No forwarding: calls ring on your softphone.",
                                 "always": "Every call is forwarded to {to}.",
                                 "busy": "Calls are forwarded to {to} when you are already on a call.",
                                 "no_answer": "Calls are forwarded to {to} after {delay} seconds without an answer."},
               "voicemail_yes": "Voicemail: on.", "voicemail_no": "Voicemail: off."},
    }

    def wants(self, person):
        """A line on the PBX: people who need a phone, or who forward their desk."""
        return person.active and bool(person.extension) and ("phone" in person.needs or person.forward_mode != "none")

    # --- checks
    def policy(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T

        return inputs.memo("phone.policy", lambda: T.load_number_policy(inputs.all_vars, inputs.settings.region,
                                                                        inputs.source))

    def validate(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T

        hosts = self.hosts(inputs)
        pbx = {h: inputs.hostvars.get(h) or {} for h in hosts}
        problems, warnings = T.inventory_check(inputs.all_vars, pbx, inputs.roster, inputs.settings.region,
                                               source=inputs.source)
        return registry.Findings(problems=problems, warnings=warnings)

    def hosts_for(self, person, entry, inputs):
        return self.hosts(inputs)  # every PBX carries every line

    def expected_astdb(self, inputs, host):
        """The AstDB the telephony playbook gives ``host`` ({family: {key: value}}), or a problem text."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T

        def build():
            policy, _problems = self.policy(inputs)
            people = T.phone_people(inputs.roster)
            pbx = {k: v for k, v in (inputs.hostvars.get(host) or {}).items() if k in T.PBX_VARS}
            cfg, problems, _left_out = T.load_pbx_config(pbx, policy, {p.id: p.extension for p in people},
                                                         source=f"inventory ({host})",
                                                         roster_ids={p.id: p.extension for p in inputs.roster.people})
            if problems:
                return f"cannot compile the PBX plan: {problems[0]}"
            return T.desired_astdb(people, cfg, T.pbx_policy(policy, cfg))
        return inputs.memo(f"phone.astdb.{host}", build)

    def capacity(self, inputs, assumptions):
        a = assumptions
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check, channels_needed, \
            trunk_erlangs

        lines = self.users(inputs)
        hosts = self.hosts(inputs)
        traffic = trunk_erlangs(lines, a["teleshift_capacity_phone_erlangs_per_person"],
                                a["teleshift_capacity_phone_conditional_forward_share"])
        blocking = a["teleshift_capacity_phone_blocking"]
        channels, origin = inputs.all_vars.get("teleshift_trunk_channels"), "teleshift_trunk_channels"
        for host in hosts:
            value = inputs.hostvar(host, "teleshift_trunk_channels")
            if value is not None:
                channels, origin = value, f"teleshift_trunk_channels on {host}"
                break
        if channels is None and not hosts:
            return []
        forwarded = sum(1 for p in lines if p.forward_mode != "none")
        note = (f"{traffic:.1f} erlangs from {len(lines)} line(s) ({forwarded} forwarding) at {blocking:.1%} "
                "blocking (Erlang B)" + (f"; from {origin}" if channels is not None
                                         else "; trunk size not set: teleshift_trunk_channels"))
        return [Check("phone", "trunk channels", "", channels_needed(traffic, blocking),
                      int(channels) if channels is not None else None, "channels", note)]

    # --- the notice
    def notice(self, person, kit, lang, inputs=None):
        if not self.wants(person):
            return None
        section = super().notice(person, kit, lang, inputs)
        text = self.text(lang)
        section.ready = section.ready or "phone" not in person.needs  # forwarding alone needs no kit
        section.data.update(labels=text, softphone="phone" in person.needs, extension=person.extension,
                            forwarding=text["forward_modes"][person.forward_mode].format(
                                to=person.forward_to, delay=person.forward_delay),
                            voicemail=text["voicemail_yes"] if person.voicemail else text["voicemail_no"])
        if "phone" not in person.needs:
            section.steps = []
        return section

    # --- the PBX as it is
    def host_query(self):
        return ["sh", "-c", "echo '== database'; asterisk -rx 'database show'; "
                            "echo '== contacts'; asterisk -rx 'pjsip show contacts'; "
                            "echo '== endpoints'; asterisk -rx 'pjsip list endpoints'"]

    def parse_host(self, text):
        return parse_pbx(text)

    def person_status(self, person, host, entry, facts, inputs):
        status = registry.CapStatus(self.name, "unknown", host)
        status.facts.update({"pbx": host or "(none)", "extension": person.extension or "(none)"})
        wanted = "none" if person.forward_mode == "none" else f"{person.forward_mode} -> {person.forward_to}"
        status.facts["forwarding (roster)"] = wanted
        if not host or not person.extension:
            status.problems.append("no PBX or no extension")
            return status
        if facts is None:
            return status
        ext = person.extension
        entries = {fam: keys[ext] for fam, keys in facts["astdb"].items() if ext in keys}
        shown = [f"{fam}={val}" for fam, val in sorted(entries.items())]
        status.facts["forwarding (PBX)"] = ", ".join(shown) if shown else "none"
        status.state = "ok"
        family = FORWARD_FAMILIES.get(person.forward_mode)
        configured = {fam: val for fam, val in entries.items() if fam in FORWARD_FAMILIES.values()}
        if family and _digits(configured.get(family)) != _digits(person.forward_to):
            status.problems.append(f"PBX forwarding {family} is {configured.get(family) or 'not set'}, roster says "
                                   f"{person.forward_to}: the telephony change is not applied yet")
        extra = sorted(set(configured) - ({family} if family else set()))
        if extra:
            status.problems.append(f"PBX has forwarding the roster does not ask for: {', '.join(extra)}")
        if ext not in facts["endpoints"]:
            status.problems.append(f"no endpoint {ext} on {host}")
        expected = self.expected_astdb(inputs, host) if inputs is not None else None
        if isinstance(expected, str):
            status.problems.append(expected)
        elif expected is not None:
            wrong = [f"{fam} is {facts['astdb'].get(fam, {}).get(ext) or 'not set'} (expected "
                     f"{expected.get(fam, {}).get(ext) or 'not set'})" for fam in PERSON_FAMILIES
                     if facts["astdb"].get(fam, {}).get(ext) != expected.get(fam, {}).get(ext)]
            if wrong and not status.problems:
                status.problems.append(f"forwarding of {ext} on {host}: " + ", ".join(wrong))
        status.verified = not status.problems
        status.state = "ok" if status.verified else "problem"
        if "phone" in person.needs:
            regs = facts["contacts"].get(ext, [])
            status.facts["softphone"] = ", ".join(s for _contact, s in regs) if regs else "not registered"
        return status


registry.register(Phone())
