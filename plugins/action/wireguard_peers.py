# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.wireguard_peers.

- With ``gate`` (the mfa_gate module's arguments, vpn.yml) it reads the enrolled people's TOTP secrets
  from the kits and sends those the host lacks with the call, as the mfa_gate action does
  (module_utils/gate_sender.py): the peers and the gate are then applied in one module call.
- It skips the module call when nothing changed on either side: the arguments (and the kits' secrets)
  are those of the last call that succeeded, and the host's fingerprint is the one that call left
  (module_utils/wireguard_probe.py: one shell command on the host, one digest back). Anything else
  runs the module as before. The record is ``<kits>/.wg-applied.<host>.json`` (0600); without a kits
  directory the module always runs.
- With ``role_spec`` (the wireguard_gateway role's fast path) it first checks the role's variables
  against that entry point of its argument spec, as Ansible's own check task would, in this same worker
  (module_utils/role_arguments.py)."""
from __future__ import annotations

import hashlib
import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.background import paused_gc
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.gate_sender import kit_secrets, send_gate
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.role_arguments import role_argument_errors
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_probe import probe_script

MODULE = "teleshift.toolkit.wireguard_peers"
# what a skipped call returns from the recorded result; everything else says nothing changed
KEPT = ("public_key", "peers", "live")
UNCHANGED = {"changed": False, "config_changed": False, "interface_changed": False, "interface_repaired": False,
             "firewall_changed": False, "started": False, "added": [], "updated": [], "removed": []}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        with paused_gc():  # this worker inherited the whole plan: module_utils/background.py
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = plain(dict(self._task.args))
        role_spec = args.pop("role_spec", None)
        if role_spec:
            errors = role_argument_errors(self, task_vars, str(role_spec))
            if errors:
                result.update(failed=True, argument_errors=errors,
                              msg="Validation of arguments failed:\n" + "\n".join(errors))
                return result
        gate = {k: v for k, v in (args.pop("gate", None) or {}).items() if v is not None} or None

        def call(gate_args=None):
            module_args = args if gate_args is None else dict(args, gate=gate_args)
            return self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)

        read = None
        if gate and gate.get("state", "present") == "present":
            try:
                read = kit_secrets(self, gate, task_vars)
            except ValueError as exc:
                if not self._task.check_mode:  # check mode sends no secret: it goes on without them
                    result.update(failed=True, msg=str(exc))
                    return result
        record_path = self._record_path(task_vars)
        fingerprint = _arguments_digest(args, gate, read[2] if read else None)
        skipped = self._unchanged(record_path, fingerprint, args, gate)
        if skipped is not None:
            if read:
                read[1].clear()
            result.update(skipped)
            return result
        result.update(send_gate(self, gate, task_vars, call, lambda r: r.get("gate") or {}, read=read)
                      if gate else call())
        probe = result.pop("probe", None)
        gate_result = result.get("gate") or {}
        if (record_path and probe and not result.get("failed") and not self._task.check_mode
                and not result.get("setup_needed") and not gate_result.get("setup_needed")):
            kept = {k: result[k] for k in KEPT if k in result}
            if gate_result:
                kept["gate"] = {"enrolled": gate_result.get("enrolled", 0)}
            atomic_write(record_path, json.dumps({"arguments": fingerprint, "probe": probe, "result": kept},
                                                 sort_keys=True), mode=0o600, dir_mode=0o700)
        return result

    def _record_path(self, task_vars):
        kits = self._templar.template(task_vars.get("teleshift_kits_dir"))
        if not kits:
            return None
        try:
            root = str(resolve_path(kits, inventory_dir(task_vars)))
        except ValueError:  # no base for a relative kits path (a generated inventory): no record, the module runs
            return None
        return os.path.join(root, f".wg-applied.{task_vars.get('inventory_hostname')}.json")

    def _unchanged(self, record_path, fingerprint, args, gate):
        """The no-change result when the record matches these arguments and the host's fingerprint, else None."""
        record = read_index(record_path) if record_path else {}
        if not record or record.get("arguments") != fingerprint or not isinstance(record.get("result"), dict):
            return None
        out = self._low_level_execute_command(probe_script(dict(args, gate=gate)))
        if out.get("rc") != 0 or out.get("stdout", "").strip() != record.get("probe"):
            return None
        kept = record["result"]
        skipped = {**UNCHANGED, **{k: kept[k] for k in KEPT if k in kept}, "probed": True,
                   "msg": "nothing to change: same arguments as the last call, host unchanged since"}
        if gate is not None:
            skipped["gate"] = {"changed": False, "added": [], "removed": [], "closed": [],
                               "enrolled": (kept.get("gate") or {}).get("enrolled", 0)}
        return skipped


def _arguments_digest(args, gate, secret_digests):
    """One digest of the module's arguments, the gate's and the digests of the kits' secrets, with the
    code that applies them (a new teleshift applies again)."""
    digest = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for part in ("../modules/wireguard_peers.py", "../module_utils/wireguard.py",
                 "../module_utils/mfa_gate_host.py", "../module_utils/wireguard_probe.py"):
        try:
            with open(os.path.join(here, part), "rb") as stream:
                digest.update(stream.read())
        except OSError:
            digest.update(part.encode())
    digest.update(json.dumps([args, gate, secret_digests], sort_keys=True, default=str).encode())
    return digest.hexdigest()
