# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.asterisk_forwarding: unless ``state`` is given, compiles the AstDB
runtime state (forwarding, on-duty numbers, holidays, agents' mobiles) from the roster and the inventory
on the controller, then runs the module of the same name on the PBX once."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.action.asterisk_config import compile_pbx
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "state", "labels", "families", "ami_credentials_file", "ami_port",
                             "queue_agents"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = {k: v for k, v in self._task.args.items() if k != "roster"}
        warnings = []
        if "state" not in args:
            people, cfg, policy, _plan, warnings = compile_pbx(self, task_vars)
            labels = {}
            args["state"] = T.desired_astdb(people, cfg, policy, labels)
            args["labels"] = labels
            exts = {p.id: p.extension for p in people}
            args["queue_agents"] = {q.name: [exts[a] for a in q.agents if a in exts] for q in cfg.queues}
        result.update(self._execute_module(module_name="teleshift.toolkit.asterisk_forwarding",
                                           module_args=args, task_vars=task_vars))
        if warnings:
            result["warnings"] = result.get("warnings", []) + warnings
        return result
