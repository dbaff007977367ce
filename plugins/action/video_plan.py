# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.video_plan: the video rooms' plan, once on the controller, before
any video host is touched (see plugins/modules/video_plan.py for the documentation)."""
from __future__ import annotations

import os

import yaml
from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import video_plan as V
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state
from ansible_collections.teleshift.toolkit.plugins.module_utils.video_capability import KIT_FILE as KIT


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "kits_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        cap = registry.get("video")
        inputs = front_door.open_plan(self._templar, task_vars, self._task.args, result, cap.name,
                                      "Video plan failed, no host was changed.")
        if inputs is None:
            return result
        settings = cap.settings(inputs)
        previous = inputs.state(cap)
        plan = cap.plan(inputs)
        state = V.state_of(plan)
        write = not self._task.check_mode
        state_file = inputs.path(cap.state_file)
        state_changed = save_state(state_file, state) if write else state != previous
        kits, written = inputs.kits_root(), []
        if kits and write:
            before = set((previous.get("people") or {}))
            for pid in sorted(set(plan.people) | before):
                text = yaml.safe_dump({"rooms": V.kit_rooms(plan, settings, pid)}, allow_unicode=True, sort_keys=False)
                if pid in plan.people or os.path.isdir(os.path.join(str(kits), pid, cap.name)):
                    if write_kit_file(str(kits), pid, cap.name, KIT, text):
                        written.append(pid)
        pools = sorted({net for c in registry.capabilities() for net in c.client_networks(inputs)})
        hosts = {h: dict(V.host_slice(plan, settings, h), allowed_networks=pools) for h in cap.hosts(inputs)}
        old_people = previous.get("people") or {}
        result.update(
            changed=bool(state_changed or written), hosts=hosts, state_file=str(state_file),
            rooms=dict(sorted(plan.rooms.items())),
            added=sorted(set(plan.people) - set(old_people)), removed=sorted(set(old_people) - set(plan.people)),
            kits_written=len(written),
            msg=f"{len(plan.rooms)} room(s) on {len(hosts)} video host(s); {len(plan.people)} people may join one"
                + ("" if write else " (check mode: nothing written)"))
        if self._task.diff and state_changed:
            def lines(data):
                return "".join(f"{n}: {e.get('host')} ({e.get('members')} members)\n"
                               for n, e in sorted((data.get("rooms") or {}).items()))
            result["diff"] = {"before": lines(previous), "after": lines(state),
                              "before_header": f"{state_file} (rooms)", "after_header": f"{state_file} (rooms)"}
        return result
