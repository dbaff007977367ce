# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.desktop_plan: the remote-desktop plan, once on the controller,
before any session host is touched (see plugins/modules/desktop_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import background
from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import SECRET_IN_KIT
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_planner import finish_along, start_along
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "mfa"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # the state and caches are written beside the rest of the plan, all done before returning
        return background.plan_task(result, "Desktop plan failed", lambda: self._plan(result, task_vars or {}))

    def _plan(self, result, task_vars):
        cap = registry.get("desktop")
        mfa = bool(self._task.args.get("mfa"))
        inputs = front_door.open_plan(self._templar, task_vars, self._task.args, result, cap.name,
                                      "Desktop plan failed, no host was changed.",
                                      probe_kits=(SECRET_IN_KIT,) if mfa else ())
        if inputs is None:
            return result
        # the second factor's settings are checked before anything is written
        if mfa and front_door.refused_also(result, inputs, ["mfa"], "second-factor plan failed, no host was changed."):
            return result
        previous = inputs.state(cap)  # as read: the mfa plan below sees the new one
        plan = cap.plan(inputs)
        along = None
        if mfa:  # the second factor's plan from the same roster read (module_utils/mfa_planner.py), beside
            inputs.use_state(cap, plan.state)  # the rest of this task, with each person's host as just placed
            along = start_along(inputs, not self._task.check_mode, self._task.diff)
        try:
            return self._finish(result, inputs, cap, previous, plan, along)
        finally:
            if along is not None:
                along.close()  # reaped however this task ends

    def _finish(self, result, inputs, cap, previous, plan, along):
        before = previous.get("people") or {}
        state_file = inputs.path(cap.state_file)
        state_changed = (plan.state != previous if self._task.check_mode
                         else save_state(state_file, plan.state))
        after = plan.state["people"]
        # each host's slice: its people as one JSON text (templated in microseconds, whatever its size)
        # and where their kits are
        hosts = cap.host_slices(inputs, plan)
        changes = {kind: sorted(ids) for kind, ids in (
            ("added", set(after) - set(before)), ("removed", set(before) - set(after)),
            ("moved", {pid for pid in set(after) & set(before) if after[pid] != before[pid]}))}
        result.update(changed=bool(state_changed), hosts=hosts, state_file=str(state_file), **changes,
                      people=len(plan.hosts), unplaced=len(plan.unplaced),
                      msg=f"{len(plan.hosts)} people on {len(hosts)} desktop host(s); "
                          f"{len(changes['added'])} new, {len(changes['removed'])} gone, "
                          f"{len(changes['moved'])} changed"
                          + (" (check mode: nothing written)" if self._task.check_mode else ""))
        enrolment_diff = None
        if along is not None:
            planned, enrolment_diff = finish_along(along, result, "mfa")
            if not planned:
                return result
        if self._task.diff and any(changes.values()):
            def lines(d):
                return "".join(f"{pid}: {d[pid].get('host')} {d[pid].get('status')}\n"
                               for pid in sorted(d) if pid in set().union(*changes.values()))
            result["diff"] = {"before": lines(before), "after": lines(after),
                              "before_header": f"{state_file} (people)", "after_header": f"{state_file} (people)"}
        if enrolment_diff:
            result["diff"] = [result["diff"], enrolment_diff] if "diff" in result else enrolment_diff
        return result
