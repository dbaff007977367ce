# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.cme_plan: the roster's forwarding for the Cisco CME gateways, once on
the controller (see plugins/modules/cme_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.cisco_cme import lines_text


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        cap = registry.get("cme")
        inputs = front_door.open_plan(self._templar, task_vars, self._task.args, result, cap.name,
                                      "Invalid roster or number policy, no gateway was contacted.")
        if inputs is None:
            return result
        people = [p for p in inputs.roster.people if p.extension]
        forwarding = sum(1 for p in people if cap.wants(p))
        result.update(changed=False, people=lines_text(people), source=inputs.roster.source,
                      msg=f"{len(people)} desk line(s), {forwarding} forwarded, for {len(cap.hosts(inputs))} "
                          "CME gateway(s)")
        return result
