# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.desktop_accounts: applies this session host's slice of the desktop
plan (``people``, from teleshift.toolkit.desktop_plan on the controller) in ONE module call.

Controller side, for the people on this host:
- the kit password read back (or made once), its SHA-512 crypt hash from the kit's hidden cache (or made
  now, in one batch), the .rdp file, the FreeRDP command and a summary;
- the module applies the accounts; the hash cache is written only after it succeeded, so a failed run
  sets the password again next time (``reset_passwords`` = the hashes made in this run). Only the
  hashes the host needs travel (new ones; on a rebuilt host, those of the accounts it lacks), in a
  0600 file in Ansible's remote temporary directory, never as module arguments.
Check mode writes nothing on the controller either: new people get a placeholder hash the module never
applies in check mode.

An unchanged host is probed, not called: when the module's arguments are those of the last call that
succeeded, no hash travels and the host's fingerprint is the one that call left
(module_utils/desktop_probe.py: one shell command, one digest back), the module does not run. The record is
``<kits>/.desktop-applied.<host>.json`` (0600, no secret).
"""
from __future__ import annotations

import hashlib
import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop
from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.background import paused_gc
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_accounts import Account, account_lines
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_probe import probe_script
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import (
    kept_secret, read_index, read_kit_file, resolve_path, write_kit_file)

CHECK_MODE_HASH = "$6$checkmode$placeholder"
# <kits>/.desktop-kits.<host>.json: person -> "<digest>:<mtime>", the digest of what their desktop kit
# files are made of (their login and this host's context) and the time of their kit folder, written after
# a successful run on that host. A person whose digest and folder time are unchanged (no file added or
# removed there since) is skipped with one stat, without reading their kit. One per host: hosts run in
# parallel, each with its own people.
KITS_INDEX = ".desktop-kits.{host}.json"
PASSTHROUGH = ("managed_group", "allowed_group", "group_prefix", "home_base", "end_sessions", "must_change",
               "local_passwords")
# In the kit's summary when people log in with their directory password (no password in the kit).
DIRECTORY_LOGIN = "password: your usual (directory) password\n"
# what a skipped call returns: nothing changed; the counts are the last call's
UNCHANGED = {"changed": False, "created": [], "updated": [], "locked": [], "unlocked": [], "passwords_set": [],
             "groups_created": [], "group_members": {}, "sessions_ended": []}
# the code that applies the arguments: a new teleshift applies again
CODE = ("../modules/desktop_accounts.py", "../module_utils/desktop_accounts.py", "../module_utils/desktop_probe.py")


class _Login:
    """What a kit file needs of a person: the login."""

    def __init__(self, login):
        self.id = login


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(PASSTHROUGH + ("people", "kits_dir", "shell", "rdp_address", "rdp_port"))

    def _var(self, task_vars, name, default=None):
        value = task_vars.get(name, default)
        return self._templar.template(value) if value is not None else default

    def run(self, tmp=None, task_vars=None):
        with paused_gc():  # a worker that inherited the whole plan: module_utils/background.py
            return self._run(tmp, task_vars)

    def _run(self, tmp, task_vars):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        host = str(task_vars.get("inventory_hostname"))
        check = bool(self._task.check_mode)
        slice_ = args.get("people")
        try:
            people = json.loads(slice_) if isinstance(slice_, str) else list(slice_ or [])
            if not all(isinstance(p, list) and len(p) == 3 for p in people):
                raise ValueError("expected [login, name, service] items")
        except (TypeError, ValueError) as exc:
            result.update(failed=True, msg=f"people must be this host's slice of teleshift.toolkit.desktop_plan: {exc}")
            return result
        inv_dir = inventory_dir(task_vars)
        kits_value = args.get("kits_dir") or self._var(task_vars, "teleshift_kits_dir")
        if not kits_value:
            result.update(failed=True, msg="no kits directory: set teleshift_kits_dir in the inventory")
            return result
        kits = resolve_path(kits_value, inv_dir)
        address = str(args.get("rdp_address") or task_vars.get("ansible_host") or host)
        port = int(args.get("rdp_port") or desktop.RDP_PORT)
        shell = args.get("shell") or "/bin/bash"
        group_prefix = args.get("group_prefix", "ts-")
        groups = {}  # service -> its group, worked out once per service
        accounts = []
        for login, name, service in sorted(people):
            service = str(service)
            if service not in groups:
                groups[service] = desktop.service_group(group_prefix, service)
            accounts.append(Account(login=str(login), name=str(name), groups=(groups[service],), shell=shell))
        local = args.get("local_passwords", True) not in (False, "false", "False", "no", 0)
        index_path = os.path.join(str(kits), KITS_INDEX.format(host=host))
        index = {} if check else read_index(index_path)
        new_index, hashes, fresh, kits_changed = prepare_kits(accounts, kits, host, address, port, local, check, index)
        if fresh:
            made = desktop.hash_passwords(list(fresh.values()))
            hashes.update(zip(fresh.keys(), made))
        module_args = {
            "accounts": account_lines(accounts),
            "reset_passwords": sorted(fresh) if not check else [],
        }
        module_args.update({k: args[k] for k in PASSTHROUGH if k in args})
        record_path = os.path.join(str(kits), f".desktop-applied.{host}.json")
        fingerprint = _arguments_digest(module_args)
        skipped = None if fresh else self._unchanged(record_path, fingerprint)
        if skipped is not None:
            if not check:
                _write_index(index_path, index, new_index, str(kits))
            result.update(skipped, people=len(accounts), kits_changed=kits_changed)
            result["changed"] = bool(kits_changed)
            return result
        # Hashes go to the host only when needed: the new ones first; when the host lacks accounts
        # it should have (a rebuilt host), the module names them and gets theirs in a second call.
        module_result = self._run_with_hashes(module_args, {pid: hashes[pid] for pid in fresh}, task_vars)
        missing = module_result.get("missing_hash") or []
        if module_result.get("failed") and missing and local:
            for pid in missing:
                if pid not in hashes:  # skipped above thanks to the index: its hash is in the kit
                    password = (read_kit_file(kits, pid, desktop.CAPABILITY, desktop.PASSWORD_FILE) or "").strip()
                    hashes[pid] = desktop.cached_hash(
                        read_kit_file(kits, pid, desktop.CAPABILITY, desktop.HASH_FILE), password) or ""
            if all(hashes.get(pid) for pid in missing):
                needed = {pid: hashes[pid] for pid in set(missing) | set(fresh)}
                module_result = self._run_with_hashes(module_args, needed, task_vars)
        if not module_result.get("failed") and not check:
            for pid in fresh:
                write_kit_file(kits, pid, desktop.CAPABILITY, desktop.HASH_FILE,
                               desktop.hash_file_text(fresh[pid], hashes[pid]))
            _write_index(index_path, index, new_index, str(kits))
        probe = module_result.pop("probe", None)
        if not check:
            if probe and not module_result.get("failed"):
                atomic_write(record_path, json.dumps({"arguments": fingerprint, "probe": probe,
                                                      "accounts": module_result.get("accounts") or {}},
                                                     sort_keys=True), mode=0o600, dir_mode=0o700)
            elif os.path.exists(record_path):  # the next run calls the module again
                os.remove(record_path)
        result.update(module_result)
        result["changed"] = bool(module_result.get("changed") or kits_changed)
        result["people"] = len(accounts)
        result["kits_changed"] = kits_changed
        result.pop("invocation", None)
        return result

    def _unchanged(self, record_path, fingerprint):
        """The no-change result when the record holds these arguments and the host's fingerprint, else None."""
        record = read_index(record_path)
        if not record or record.get("arguments") != fingerprint or not record.get("probe"):
            return None
        out = self._low_level_execute_command(probe_script())
        if out.get("rc") != 0 or out.get("stdout", "").strip() != record["probe"]:
            return None
        return {**UNCHANGED, "accounts": record.get("accounts") or {}, "probed": True,
                "msg": "nothing to change: same arguments as the last call, host unchanged since"}

    def _run_with_hashes(self, module_args, hashes, task_vars):
        """One module call; the hashes travel in a 0600 file in Ansible's private temporary directory
        on the host (read and deleted by the module), never as arguments: no log, no no_log masking
        of thousands of values."""
        args = dict(module_args)
        if hashes:
            tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            path = self._connection._shell.join_path(tmp, "teleshift-hashes.json")
            self._transfer_data(path, json.dumps(hashes))
            args["password_hashes_file"] = path
        return self._execute_module(module_name="teleshift.toolkit.desktop_accounts", module_args=args,
                                    task_vars=task_vars)


def _arguments_digest(module_args):
    """One digest of the module's arguments (no hash is among them) and of the code that applies them."""
    digest = hashlib.sha256()
    here = os.path.dirname(os.path.abspath(__file__))
    for part in CODE:
        try:
            with open(os.path.join(here, part), "rb") as stream:
                digest.update(stream.read())
        except OSError:
            digest.update(part.encode())
    digest.update(json.dumps(module_args, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _kit_context(host, address, port, local):
    """What every person's desktop kit files are made of besides their login: this host's name,
    address and port, the password mode, and the code that writes them (desktop.kit_files)."""
    with open(desktop.__file__, "rb") as stream:
        code = stream.read()
    sample = desktop.kit_files(_Login("login"), host, address, port)
    return hashlib.sha256(code + json.dumps([sample, bool(local)], sort_keys=True).encode()).hexdigest()


def _folder_time(folder):
    """The modification time of a kit folder (any file added, removed or replaced there changes it)."""
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def _write_index(path, index, new_index, kits):
    """The kits index after a successful run: the people written this run get their folder's time now."""
    final = {}
    for pid, value in new_index.items():
        if ":" not in value:
            when = _folder_time(os.path.join(kits, pid, desktop.CAPABILITY))
            value = f"{value}:{when}" if when is not None else value
        final[pid] = value
    if final != index:
        atomic_write(path, json.dumps(final, sort_keys=True), mode=0o600, dir_mode=0o700)


def prepare_kits(accounts, kits, host, address, port, local, check, index):
    """Each person's desktop kit files (made or kept), their password and its hash. Returns
    (new index, login -> hash, login -> password made or renewed in this run, files changed). A person
    whose index entry still holds (see KITS_INDEX) is skipped without reading anything of theirs."""
    new_index, hashes, fresh, kits_changed = {}, {}, {}, 0
    context = _kit_context(host, address, port, local)
    for account in accounts:
        pid = account.login
        digest = hashlib.sha256(f"{context}\n{pid}".encode()).hexdigest()[:24]
        folder = os.path.join(str(kits), pid, desktop.CAPABILITY)
        recorded = index.get(pid)
        if isinstance(recorded, str) and recorded == f"{digest}:{_folder_time(folder)}":
            new_index[pid] = recorded  # kit as the last successful run left it: nothing to read
            continue
        files = desktop.kit_files(_Login(pid), host, address, port)
        if not local:  # directory logins: no password made, kept or sent (one left from a kit goes)
            files["summary.yml"] += DIRECTORY_LOGIN
            if not check:
                for name in (desktop.PASSWORD_FILE, desktop.HASH_FILE):
                    if os.path.exists(os.path.join(folder, name)):
                        os.remove(os.path.join(folder, name))
                        kits_changed += 1
                for name, content in files.items():
                    kits_changed += write_kit_file(kits, pid, desktop.CAPABILITY, name, content)
                new_index[pid] = digest
            continue
        if check:
            password = (read_kit_file(kits, pid, desktop.CAPABILITY, desktop.PASSWORD_FILE) or "").strip()
        else:
            password = kept_secret(kits, pid, desktop.CAPABILITY, desktop.PASSWORD_FILE)
        cached = desktop.cached_hash(read_kit_file(kits, pid, desktop.CAPABILITY, desktop.HASH_FILE),
                                     password) if password else None
        if cached:
            hashes[pid] = cached
        elif check:
            hashes[pid] = CHECK_MODE_HASH
        else:
            fresh[pid] = password
        if not check:
            for name, content in files.items():
                kits_changed += write_kit_file(kits, pid, desktop.CAPABILITY, name, content)
            new_index[pid] = digest
    return new_index, hashes, fresh, kits_changed
