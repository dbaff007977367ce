# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.mfa_gate: the gateway's gate slice (from teleshift.toolkit.mfa_plan)
plus the enrolled people's TOTP secrets, read from their kits on the controller. Only the secrets the host
does not have yet travel (``<kits>/.mfa-gate.<host>.json`` keeps digests of those it got): a few as a
no_log argument, many in a 0600 file of Ansible's private temporary directory; never logged. The digests of
all go along: when the host lacks some (a rebuilt gateway) or holds others (another controller's kits were
applied since), the module names them and gets every secret in a second call. Check mode
sends no secret: the module compares the people and keeps the secrets the host has."""
from __future__ import annotations

import hashlib
import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import parse_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import read_secrets

INLINE = 50  # at most this many secrets travel as a (no_log) argument; more go in a file
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
            root = str(resolve_path(kits, inventory_dir(task_vars)))
            try:
                ids = [pid for pid, _svc, _addrs in parse_people(module_args["people"])]
            except ValueError as exc:
                result.update(failed=True, msg=str(exc))
                return result
            secrets = read_secrets(ids, root)
            digests = {pid: hashlib.sha256(s.encode()).hexdigest()[:24] for pid, s in secrets.items()}
            index_path = os.path.join(root, f".mfa-gate.{task_vars.get('inventory_hostname')}.json")
            sent = read_index(index_path)
            fresh = {pid: s for pid, s in secrets.items() if sent.get(pid) != digests[pid]}
            # the digests let the host tell a secret it kept from another controller's kits (nothing secret)
            module_result = self._run(dict(module_args, digests=digests), fresh, True, task_vars)
            if module_result.get("failed") and module_result.get("missing_secrets"):
                module_result = self._run(module_args, secrets, False, task_vars)  # the host lacks some
            secrets.clear()
            fresh.clear()
            if not module_result.get("failed") and digests != sent:
                atomic_write(index_path, json.dumps(digests, sort_keys=True), mode=0o600, dir_mode=0o700)
        else:
            module_result = self._execute_module(module_name="teleshift.toolkit.mfa_gate",
                                                 module_args=module_args, task_vars=task_vars)
        module_result.pop("invocation", None)
        result.update(module_result)
        return result

    def _run(self, module_args, secrets, partial, task_vars):
        args = dict(module_args, partial=partial)
        if len(secrets) > INLINE:
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            path = self._connection._shell.join_path(tmpdir, "teleshift-gate-secrets.json")
            self._transfer_data(path, json.dumps(secrets))
            args["secrets_file"] = path
        else:
            args["secrets"] = dict(secrets)
        return self._execute_module(module_name="teleshift.toolkit.mfa_gate", module_args=args, task_vars=task_vars)
