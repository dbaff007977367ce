# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.preflight: the front door (plugins/module_utils/inputs.py) on the
controller, with the same code as ``scripts/teleshift validate``, before any host is touched."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "capabilities"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        selected = self._task.args.get("capabilities")
        if selected is not None:
            selected = [str(c) for c in selected]
            try:
                registry.select(selected)
            except KeyError as exc:
                result.update(failed=True, msg=f"unknown capability {exc} (known: {', '.join(registry.names())})")
                return result
        inputs = front_door.from_task_vars(self._templar, task_vars, roster=self._task.args.get("roster"))
        found = front_door.validate(inputs, selected, capacity=True)
        result["roster"] = inputs.roster.source
        result["problems"] = [str(p) for p in found.problems]
        if found.warnings:
            result["warnings"] = [str(w) for w in found.warnings]
        if found.problems:
            result.update(failed=True, msg="Preflight failed, no host was changed.\n" + format_problems(found.problems))
            return result
        people = inputs.roster.people
        active = [p for p in people if p.active]
        result["people"] = {"total": len(people), "active": len(active),
                            **{c.name: sum(1 for p in people if c.wants(p)) for c in registry.select(selected)}}
        result["msg"] = (f"{len(people)} people valid in {inputs.roster.source}, "
                         f"{len(active)} active across {len({p.service for p in active})} services")
        result["changed"] = False
        return result
