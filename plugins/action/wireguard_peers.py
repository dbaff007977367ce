# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.wireguard_peers. Without ``gate`` it runs the module as is. With
``gate`` (the mfa_gate module's arguments, vpn.yml) it reads the enrolled people's TOTP secrets from the
kits and sends those the host lacks with the call, as the mfa_gate action does
(module_utils/gate_sender.py): the peers and the gate are then applied in one module call."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.gate_sender import send_gate


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        gate = args.pop("gate", None)

        def call(gate_args=None):
            module_args = args if gate_args is None else dict(args, gate=gate_args)
            return self._execute_module(module_name="teleshift.toolkit.wireguard_peers", module_args=module_args,
                                        task_vars=task_vars)

        if gate:
            gate = {k: v for k, v in plain(dict(gate)).items() if v is not None}
            result.update(send_gate(self, gate, task_vars, call, lambda r: r.get("gate") or {}))
        else:
            result.update(call())
        return result
