# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.openvpn_server: one module call applies the gateway's slice; the
two secret files it may lack (the gateway's private key, the tls-crypt key) are read from the
controller's PKI directory and sent only when the module asks (first converge, rebuilt host, renewed
certificate), in a 0600 file of Ansible's private temporary directory, never as arguments or in a log."""
from __future__ import annotations

import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_pki import TLS_CRYPT


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = dict(self._task.args)
        pki_dir = args.pop("pki_dir", None)
        host = str(task_vars.get("inventory_hostname"))
        module_result = self._execute_module(module_name="teleshift.toolkit.openvpn_server", module_args=args,
                                             task_vars=task_vars)
        if module_result.get("needs_secrets") and not self._task.check_mode:
            if not pki_dir:
                result.update(failed=True, msg="the gateway lacks its keys and no pki_dir was given")
                return result
            secrets = {}
            for name, source in (("server.key", f"server-{host}.key"), ("tls-crypt.key", TLS_CRYPT)):
                try:
                    with open(os.path.join(str(pki_dir), source), encoding="ascii") as stream:
                        secrets[name] = stream.read()
                except OSError as exc:
                    result.update(failed=True, msg=f"cannot read {source} in the PKI directory: {exc.strerror}")
                    return result
            remote_tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            path = self._connection._shell.join_path(remote_tmp, "teleshift-openvpn-secrets.json")
            self._transfer_data(path, json.dumps(secrets))
            secrets.clear()
            module_result = self._execute_module(module_name="teleshift.toolkit.openvpn_server",
                                                 module_args={**args, "secrets_file": path}, task_vars=task_vars)
        result.update(module_result)
        return result
