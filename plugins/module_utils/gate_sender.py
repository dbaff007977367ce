# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Controller side of the second-factor gate's call, shared by the ``mfa_gate`` and ``wireguard_peers``
action plugins: the gate's arguments plus the enrolled people's TOTP secrets, read from their kits.

Only the secrets the host does not have yet travel (``<kits>/.mfa-gate.<host>.json`` keeps digests of
those it got): a few as a no_log argument, many in a 0600 file of Ansible's private temporary directory;
never logged. The digests of all go along: when the host lacks some (a rebuilt gateway) or holds others
(another controller's kits were applied since), the module names them and gets every secret in a second
call. Check mode sends no secret: the module compares the people and keeps the secrets the host has."""
from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import parse_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import read_secrets

INLINE = 50  # at most this many secrets travel as a (no_log) argument; more go in a file


def kit_secrets(action, gate_args, task_vars, kits_dir=None):
    """(kits root, {id: secret}, {id: digest}) of the people of ``gate_args``, read from their kits;
    raises ValueError with a message for the task when it cannot."""
    kits = kits_dir or action._templar.template(task_vars.get("teleshift_kits_dir"))
    if not kits:
        raise ValueError("no kits directory: set teleshift_kits_dir in the inventory")
    root = str(resolve_path(kits, inventory_dir(task_vars)))
    ids = [pid for pid, _svc, _addrs in parse_people(gate_args.get("people") or "")]
    secrets = read_secrets(ids, root)
    return root, secrets, {pid: hashlib.sha256(s.encode()).hexdigest()[:24] for pid, s in secrets.items()}


def send_gate(action, gate_args, task_vars, call, gate_of, kits_dir=None, read=None):
    """Run the module once (``call(gate_args with secrets)`` returns its result) with the secrets the
    host needs; a second time with all of them when the host asks (``gate_of(result)``: the gate's part
    of a result, where ``missing_secrets`` and ``setup_needed`` are read). Returns the last result.
    read: what kit_secrets returned, when the caller has it already."""
    if gate_args.get("state", "present") != "present" or action._task.check_mode:
        return call(gate_args)
    try:
        root, secrets, digests = read or kit_secrets(action, gate_args, task_vars, kits_dir)
    except ValueError as exc:
        return {"failed": True, "msg": str(exc)}
    index_path = os.path.join(root, f".mfa-gate.{task_vars.get('inventory_hostname')}.json")
    sent = read_index(index_path)
    fresh = {pid: s for pid, s in secrets.items() if sent.get(pid) != digests[pid]}
    # the digests let the host tell a secret it kept from another controller's kits (nothing secret)
    result = _with_secrets(action, call, dict(gate_args, digests=digests), fresh, True)
    if result.get("failed") and gate_of(result).get("missing_secrets"):
        result = _with_secrets(action, call, gate_args, secrets, False)  # the host lacks some
    secrets.clear()
    fresh.clear()
    gate = gate_of(result)
    if not result.get("failed") and gate and not gate.get("setup_needed") and digests != sent:
        atomic_write(index_path, json.dumps(digests, sort_keys=True), mode=0o600, dir_mode=0o700)
    return result


def _with_secrets(action, call, gate_args, secrets, partial):
    args = dict(gate_args, partial=partial)
    if len(secrets) > INLINE:
        tmpdir = action._connection._shell.tmpdir or action._make_tmp_path()
        path = action._connection._shell.join_path(tmpdir, "teleshift-gate-secrets.json")
        action._transfer_data(path, json.dumps(secrets))
        args["secrets_file"] = path
    else:
        args["secrets"] = dict(secrets)
    return call(args)
