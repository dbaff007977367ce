# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Controller side of the second-factor gate's call, shared by the ``mfa_gate`` and ``wireguard_peers``
action plugins: the gate's arguments plus the enrolled people's TOTP secrets, read from their kits.

Only the secrets the host does not have yet travel (``<kits>/.mfa-gate.<host>.json`` keeps digests of
those it got): a few as a no_log argument, many in a 0600 file of Ansible's private temporary directory;
never logged. The digests of all go along: when the host lacks some (a rebuilt gateway) or holds others
(another controller's kits were applied since), the module names them and gets every secret in a second
call. Check mode sends no secret: the module compares the people and keeps the secrets the host has.

A secret file is read only when it must travel or when its digest is not known for the file as it is
now: ``<kits>/.mfa-read.<host>.json`` (0600) keeps the inode, size, modification time and digest of
each file read before. A renewed, rotated or restored file (another inode, size or time) is read again.
On a gateway of 5,000 people whose secrets did not change, that is 5,000 stat calls instead of 5,000
file reads at every run."""
from __future__ import annotations

import hashlib
import json
import os

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import parse_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import KIT, SECRET_FILE
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import ID_RE

INLINE = 50  # at most this many secrets travel as a (no_log) argument; more go in a file


def _digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


class KitSecrets:
    """The secrets of ``ids`` in the kits under ``root``, read only when needed.

    ``digests``: {id: digest} of everyone whose kit holds a secret, from ``record_path`` (see the module's
    doc) for files unchanged since they were read, else from the file. ``pick(ids)`` gives the secrets
    themselves, reading those not read yet. ``write``: False in check mode (the record is not updated)."""

    def __init__(self, root, ids, record_path=None, write=True):
        self.root = root
        self.digests = {}
        self._read = {}
        record = read_index(record_path) if record_path else {}
        seen = {}
        for pid in ids:
            if not ID_RE.fullmatch(str(pid)):
                raise ValueError(f"refusing kit path for id {pid!r}")
            try:
                st = os.stat(os.path.join(root, pid, KIT, SECRET_FILE))
            except FileNotFoundError:
                continue
            stamp = [st.st_ino, st.st_size, st.st_mtime_ns]
            entry = record.get(pid)
            if isinstance(entry, list) and len(entry) == 4 and entry[:3] == stamp and isinstance(entry[3], str):
                self.digests[pid] = entry[3]
                seen[pid] = entry
                continue
            value = self._load(pid)  # stat first: a file replaced in between is read again next time
            if value:
                seen[pid] = [*stamp, self.digests[pid]]
        if record_path and write and seen != record:
            atomic_write(record_path, json.dumps(seen, sort_keys=True), mode=0o600, dir_mode=0o700)

    def _load(self, pid):
        value = (read_kit_file(self.root, pid, KIT, SECRET_FILE) or "").strip()
        if value:
            self._read[pid] = value
            self.digests[pid] = _digest(value)
        return value

    def pick(self, ids):
        """{id: secret} of ``ids`` that have one (digests updated for any file read here)."""
        found = {}
        for pid in ids:
            if pid in self.digests:
                value = self._read.get(pid) or self._load(pid)
                if value:
                    found[pid] = value
        return found

    def all(self):
        return self.pick(list(self.digests))

    def clear(self):
        self._read.clear()


def kit_secrets(action, gate_args, task_vars, kits_dir=None):
    """(kits root, KitSecrets, {id: digest}) of the people of ``gate_args``, from their kits; raises
    ValueError with a message for the task when it cannot."""
    kits = kits_dir or action._templar.template(task_vars.get("teleshift_kits_dir"))
    if not kits:
        raise ValueError("no kits directory: set teleshift_kits_dir in the inventory")
    root = str(resolve_path(kits, inventory_dir(task_vars)))
    ids = [pid for pid, _svc, _addrs in parse_people(gate_args.get("people") or "")]
    record = os.path.join(root, f".mfa-read.{task_vars.get('inventory_hostname')}.json")
    secrets = KitSecrets(root, ids, record, write=not action._task.check_mode)
    return root, secrets, secrets.digests


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
    fresh = secrets.pick([pid for pid, digest in digests.items() if sent.get(pid) != digest])
    # the digests let the host tell a secret it kept from another controller's kits (nothing secret)
    result = _with_secrets(action, call, dict(gate_args, digests=digests), fresh, True)
    if result.get("failed") and gate_of(result).get("missing_secrets"):
        result = _with_secrets(action, call, gate_args, secrets.all(), False)  # the host lacks some
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
