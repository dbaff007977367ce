# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.telework_station: one laptop's files rendered on the controller
from its person's kit (station.station_files), applied in one module call.

Only digests, modes and owners are module arguments. When the laptop's files differ, the module asks
for them (``needs_contents``) and they travel in a 0600 file of Ansible's private temporary directory,
never as arguments or in a log; a second run on an unchanged laptop sends nothing but digests."""
from __future__ import annotations

import base64
import json
import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import station
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import ID_RE
from ansible_collections.teleshift.toolkit.plugins.module_utils.station_host import digest

MODULE = "teleshift.toolkit.telework_station"
PATH_KEYS = ("user", "home", "desktop_dir", "wireguard", "wireguard_unit", "openvpn", "softphone_dir",
             "softphone_unit", "softphone_modules", "launcher", "tunnel")
MAX_KIT_FILE = 16 * 1024 * 1024


def read_kit(root, pid):
    """{kit file: text (bytes for the PDF)} of the person's kit parts a laptop uses (absent ones left out)."""
    if not ID_RE.fullmatch(pid):
        raise station.KitError(f"refusing kit path for id {pid!r}")
    found = {}
    for name in station.KIT_FILES:
        path = os.path.join(str(root), pid, name)
        try:
            if os.path.getsize(path) > MAX_KIT_FILE:
                raise station.KitError(f"{pid}: {name} is larger than {MAX_KIT_FILE} bytes")
            with open(path, "rb") as stream:
                data = stream.read()
        except FileNotFoundError:
            continue
        found[name] = data if name.endswith(".pdf") else data.decode("utf-8")
    return found


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("slice", "paths", "kits_dir", "hotline", "rdp_options", "manifest", "unit_timeout",
                             "setup_fingerprint", "setup_marker"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        slice_ = args.get("slice") or {}
        paths = {k: str(v) for k, v in (args.get("paths") or {}).items()}
        missing = [k for k in PATH_KEYS if not paths.get(k)]
        if not isinstance(slice_, dict) or "person" not in slice_ or missing:
            result.update(failed=True, msg="slice must be this laptop's part of teleshift.toolkit.telework_station_plan"
                          + (f"; paths lacks {', '.join(missing)}" if missing else ""))
            return result
        pid = str(slice_.get("person") or "")
        files = {}
        if pid:
            kits_value = args.get("kits_dir") or task_vars.get("teleshift_kits_dir")
            if not kits_value:
                result.update(failed=True, msg="no kits directory: set teleshift_kits_dir in the inventory")
                return result
            root = resolve_path(self._templar.template(kits_value), inventory_dir(task_vars))
            try:
                kit = read_kit(root, pid)
                files = station.station_files(slice_, kit, paths, str(args.get("hotline") or ""),
                                              list(args.get("rdp_options") or []), slice_.get("needs") or [])
            except (station.KitError, OSError, UnicodeDecodeError) as exc:
                result.update(failed=True, msg=f"laptop for {pid}: {exc}; nothing was changed on it")
                return result
        module_args = {
            "person": pid,
            "files": {path: {"sha256": digest(data), "mode": f"{mode:04o}", "owner": owner}
                      for path, (data, mode, owner) in files.items()},
            "units": station.units_for(files, paths),
            "owned_dirs": [paths["softphone_dir"]],
        }
        for key in ("manifest", "unit_timeout", "setup_fingerprint", "setup_marker"):
            if args.get(key) is not None:
                module_args[key] = args[key]
        answer = self._execute_module(module_name=MODULE, module_args=module_args, task_vars=task_vars)
        if answer.get("needs_contents") and not self._task.check_mode:
            wanted = {path: base64.b64encode(files[path][0]).decode("ascii") for path in answer["needs_contents"]
                      if path in files}
            remote_tmp = self._connection._shell.tmpdir or self._make_tmp_path()
            target = self._connection._shell.join_path(remote_tmp, "teleshift-station-contents.json")
            self._transfer_data(target, json.dumps(wanted))
            wanted.clear()
            answer = self._execute_module(module_name=MODULE, module_args={**module_args, "contents_file": target},
                                          task_vars=task_vars)
        files.clear()
        answer.pop("invocation", None)
        result.update(answer)
        return result
