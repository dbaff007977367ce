# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.mfa_gate: the gateway's gate slice (from teleshift.toolkit.mfa_plan)
plus the enrolled people's TOTP secrets, read from their kits on the controller and sent as
module_utils/gate_sender.py says (only those the host lacks; a 0600 file when many; never logged)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.gate_sender import send_gate

PASSTHROUGH = ("exempt", "gated", "settings", "names", "revoke", "state", "config_dir", "group", "setup_fingerprint",
               "setup_marker")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(PASSTHROUGH + ("people", "kits_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = plain(dict(self._task.args))
        module_args = {k: args[k] for k in PASSTHROUGH if k in args and args[k] is not None}
        module_args["people"] = args.get("people") or ""

        def call(gate_args):
            return self._execute_module(module_name="teleshift.toolkit.mfa_gate", module_args=gate_args,
                                        task_vars=task_vars)

        module_result = send_gate(self, module_args, task_vars, call, lambda r: r, kits_dir=args.get("kits_dir"))
        module_result.pop("invocation", None)
        result.update(module_result)
        return result
