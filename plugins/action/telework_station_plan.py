# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.telework_station_plan: every laptop's slice, once on the controller,
before any laptop is touched (see plugins/modules/telework_station_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "kits_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        cap = registry.get("telework_station")
        inputs = front_door.open_plan(self._templar, task_vars, self._task.args, result, cap.name,
                                      "Laptop plan failed, no laptop was changed.")
        if inputs is None:
            return result
        stations, _warnings = cap.plan(inputs) if cap.hosts(inputs) else ({}, [])
        held = sum(1 for s in stations.values() if s["person"])
        result.update(changed=False, stations=stations, kits_dir=str(inputs.kits_root() or ""),
                      state_file=str(inputs.path(cap.state_file)),
                      msg=f"{len(stations)} laptop(s): {held} for a person, {len(stations) - held} free (wiped)")
        return result
