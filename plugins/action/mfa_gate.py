# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.mfa_gate: the gateway's gate slice (from teleshift.toolkit.mfa_plan)
plus the enrolled people's TOTP secrets, read from their kits on the controller and sent to the host in a
0600 file of Ansible's private temporary directory (never as module arguments, never logged). Check mode
sends no secret: the module compares the people and keeps the secrets the host has."""
from __future__ import annotations

import json

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import parse_people, read_secrets

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
        if module_args.get("state", "present") == "present" and not self._task.check_mode:
            kits = args.get("kits_dir") or self._templar.template(task_vars.get("teleshift_kits_dir"))
            if not kits:
                result.update(failed=True, msg="no kits directory: set teleshift_kits_dir in the inventory")
                return result
            root = resolve_path(kits, inventory_dir(task_vars))
            try:
                ids = [pid for pid, _svc, _addrs in parse_people(module_args["people"])]
            except ValueError as exc:
                result.update(failed=True, msg=str(exc))
                return result
            secrets = read_secrets(ids, str(root))
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            path = self._connection._shell.join_path(tmpdir, "teleshift-gate-secrets.json")
            self._transfer_data(path, json.dumps(secrets))
            secrets.clear()
            module_args["secrets_file"] = path
        module_result = self._execute_module(module_name="teleshift.toolkit.mfa_gate", module_args=module_args,
                                             task_vars=task_vars)
        module_result.pop("invocation", None)
        result.update(module_result)
        return result
