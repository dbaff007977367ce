# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.mfa_desktop: which people of this session host must type a code
(the second factor's policy: teleshift_mfa_* and each service's mfa key) and their secrets, read from
their kits on the controller and sent in a 0600 file of Ansible's private temporary directory."""
from __future__ import annotations

import json

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import load_mfa_settings, read_secrets
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("people", "kits_dir", "directory", "enabled"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = plain(dict(self._task.args))
        names = [k for k in task_vars if k.startswith("teleshift_mfa_") or k == "teleshift_services"]
        variables = {k: plain(self._templar.template(task_vars[k])) for k in names}
        settings = load_mfa_settings(variables, variables.get("teleshift_services") or {})
        if settings.problems:
            result.update(failed=True, msg=format_problems(settings.problems))
            return result
        slice_ = args.get("people") or "[]"
        try:
            people = json.loads(slice_) if isinstance(slice_, str) else list(slice_)
        except ValueError as exc:
            result.update(failed=True, msg=f"people must be this host's desktop slice: {exc}")
            return result
        on = bool(args.get("enabled", True)) and settings.enabled and settings.desktop
        logins = sorted(str(login) for login, _name, service in people if on and service not in settings.exempt)
        module_args = {"logins": logins, "directory": args.get("directory") or "/var/lib/teleshift/mfa"}
        if logins and not self._task.check_mode:
            root = resolve_path(args.get("kits_dir") or task_vars.get("teleshift_kits_dir"), inventory_dir(task_vars))
            secrets = read_secrets(logins, str(root))
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            path = self._connection._shell.join_path(tmpdir, "teleshift-mfa-secrets.json")
            self._transfer_data(path, json.dumps(secrets))
            secrets.clear()
            module_args["secrets_file"] = path
        module_result = self._execute_module(module_name="teleshift.toolkit.mfa_desktop", module_args=module_args,
                                             task_vars=task_vars)
        module_result.pop("invocation", None)
        result.update(module_result)
        return result
