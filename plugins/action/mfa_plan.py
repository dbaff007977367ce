# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.mfa_plan: who must prove a second factor, their enrolment kits and
each gateway's gate slice, on the controller before any host changes (see plugins/modules/mfa_plan.py;
the work: module_utils/mfa_planner.py, which vpn_plan also runs with ``gate: true``)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import background
from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_planner import plan_second_factor


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "kits_dir", "rotate", "vpn_from_state"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # the state, index and caches are written beside the rest of the plan, all done before returning
        return background.plan_task(result, "second-factor plan failed",
                                    lambda: self._plan(result, task_vars or {}))

    def _plan(self, result, task_vars):
        args = self._task.args
        inputs = front_door.open_plan(self._templar, task_vars, args, result, "mfa",
                                      "second-factor plan failed, no host was changed.", capacity=False)
        if inputs is None:
            return result
        if args.get("vpn_from_state") and not self._task.check_mode:
            inputs.fresh_states.add("vpn")  # vpn_plan has just written state/vpn.yml from this roster
        return plan_second_factor(inputs, args, not self._task.check_mode, self._task.diff, result)
