# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Call forwarding on Cisco CME voice gateways (group ``cme_gateways``), as the registry sees it: the
people whose desk forwards, checked against the same number policy as the PBX. The gateways are
network devices reached over SSH by netmiko (plugins/module_utils/cisco_cme.py): no host query, no kit
(the forwarding is shown in the telephone section of the notice)."""
from __future__ import annotations

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry


class Cme(registry.Capability):
    name = "cme"
    need = ""
    order = 35
    host_group = "cme_gateways"
    playbook = "telephony_cme"
    variables = ("cme_",)
    optional = True  # most organisations forward on the PBX alone
    texts = {"fr": {"title": "Renvoi sur autocommutateur Cisco"}, "en": {"title": "Forwarding on Cisco CME"}}

    def wants(self, person):
        return person.active and bool(person.extension) and person.forward_mode != "none"

    def validate(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T

        found = registry.Findings()
        if not self.hosts(inputs):
            return found
        policy, problems = T.load_number_policy(inputs.all_vars, inputs.settings.region, inputs.source)
        found.problems += problems + T.forwarding_problems(inputs.roster, policy)
        return found

    def notice(self, person, kit, lang, inputs=None):
        return None


registry.register(Cme())
