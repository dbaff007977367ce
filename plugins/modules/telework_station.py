#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: telework_station
short_description: Give a laptop its person's files (VPN, softphone, remote desktop, notice), or wipe it
description:
  - Applies one laptop's slice of C(teleshift.toolkit.telework_station_plan) in one call. The action
    plugin of the same name renders the files on the controller from the person's kit; only their
    SHA-256, modes and owners are arguments. When files on the laptop differ, the module returns
    C(needs_contents) and changes nothing; the action plugin then sends the contents in a 0600 file of
    Ansible's private temporary directory (I(contents_file), read and deleted here), never as arguments.
  - A manifest on the laptop records the person, each file teleshift wrote and the units it runs. A
    laptop given to someone else, or freed (I(person) empty), is wiped of exactly what the manifest
    names, after its units are stopped, and of unknown files in the directories teleshift owns.
  - Units are enabled and started; a unit restarts when a file it reads changed or the person changed.
  - Check mode computes the changes and changes nothing; diff mode shows the person and file names
    with short digests, never a file's content.
  - With I(setup_fingerprint), the host's setup marker must hold it; otherwise nothing is applied and
    C(setup_needed) is returned, so the role sets the laptop up first.
version_added: 0.2.0
options:
  slice:
    description: This laptop's part of C(teleshift.toolkit.telework_station_plan) (person, os, name, language,
      needs). Read by the action plugin, which sets I(person), I(files), I(units) and I(owned_dirs) from it.
    type: dict
  paths:
    description: The role's paths (C(user), C(home), C(desktop_dir), C(wireguard), C(wireguard_unit), C(tunnel),
      C(openvpn), C(softphone_dir), C(softphone_unit), C(softphone_modules), C(launcher)); action plugin.
    type: dict
  kits_dir:
    description: Kits root on the controller (default C(teleshift_kits_dir)); action plugin.
    type: path
  hotline:
    description: The hotline's number, written in the launcher and its desktop entry; action plugin.
    type: str
  rdp_options:
    description: FreeRDP options of the launcher after host and login; action plugin.
    type: list
    elements: str
  person:
    description: The person id the laptop is for; empty for a free laptop (wiped).
    type: str
    default: ""
  files:
    description: Every file the person gets, path to its C(sha256), C(mode) (octal text) and C(owner).
    type: dict
    default: {}
  units:
    description: Each systemd unit and the paths whose change restarts it.
    type: dict
    default: {}
  owned_dirs:
    description: Directories teleshift owns whole (their unknown files go when the person changes).
    type: list
    elements: path
    default: []
  contents_file:
    description: JSON file of each path's content in base64 (set by the action plugin; deleted after reading).
    type: path
  manifest:
    description: The manifest on the laptop.
    type: path
    default: /var/lib/teleshift/station/manifest.json
  unit_timeout:
    description: Seconds a unit may take to stop or start.
    type: int
    default: 90
  setup_fingerprint:
    description: The setup the files need (see C(setup_needed)); omitted, no marker is read.
    type: str
  setup_marker:
    description: File on the host holding the fingerprint of the setup done.
    type: path
    default: /var/lib/teleshift/setup/telework_station
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The laptop's files, from the plan and the kit (the action plugin renders them)
  teleshift.toolkit.telework_station:
    slice: "{{ telework_station_slice }}"
    paths: "{{ telework_station_paths }}"
"""

RETURN = r"""
person:
  description: The person the laptop is for now.
  returned: always
  type: str
previous:
  description: The person it was for before (wiped when different).
  returned: always
  type: str
written:
  description: Files written (or, in check mode, to write).
  returned: always
  type: list
  elements: str
removed:
  description: Files removed.
  returned: always
  type: list
  elements: str
restarted:
  description: Units (re)started.
  returned: always
  type: list
  elements: str
needs_contents:
  description: Files that differ; nothing was applied (the action plugin sends their contents).
  returned: when files differ and no contents were given
  type: list
  elements: str
setup_needed:
  description: The setup marker does not hold I(setup_fingerprint); nothing was applied.
  returned: when true
  type: bool
"""

import base64
import json
import os
import pwd
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.station_host import (
    changes, diff_text, digest, file_digest, manifest_text, read_manifest, remove_file, unknown_files)


def _ids(module, owner):
    try:
        entry = pwd.getpwnam(owner)
    except KeyError:
        module.fail_json(msg=f"no user {owner!r} on the laptop: the role's setup creates it")
    return entry.pw_uid, entry.pw_gid


def _actual(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return ("", 0, -1, -1)
    return (file_digest(path), st.st_mode & 0o7777, st.st_uid, st.st_gid)


def _systemctl(*args, timeout=90):
    try:
        proc = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=timeout, check=False)
        return proc.returncode, (proc.stdout + proc.stderr).strip()
    except subprocess.TimeoutExpired:
        return 124, f"systemctl {' '.join(args)}: no answer within {timeout}s"


def _stop(unit, timeout):
    """Stop a unit; a wg-quick unit whose userspace daemon hangs on stop loses its link instead."""
    rc, _out = _systemctl("stop", unit, timeout=timeout)
    if rc != 0 and unit.startswith("wg-quick@"):
        subprocess.run(["ip", "link", "delete", unit.split("@", 1)[1]], capture_output=True, timeout=30, check=False)
        _systemctl("kill", unit, timeout=30)
        _systemctl("reset-failed", unit, timeout=30)


def _contents(module, path):
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the contents file: {exc}")
    finally:
        remove_file(path)
    return {p: base64.b64decode(v) for p, v in data.items()}


def main():
    module = AnsibleModule(
        argument_spec={
            # the action plugin's (it renders the files from them on the controller); unused here
            "slice": {"type": "dict"}, "paths": {"type": "dict"}, "kits_dir": {"type": "path"},
            "hotline": {"type": "str"}, "rdp_options": {"type": "list", "elements": "str"},
            "person": {"type": "str", "default": ""},
            "files": {"type": "dict", "default": {}},
            "units": {"type": "dict", "default": {}},
            "owned_dirs": {"type": "list", "elements": "path", "default": []},
            "contents_file": {"type": "path"},
            "manifest": {"type": "path", "default": "/var/lib/teleshift/station/manifest.json"},
            "unit_timeout": {"type": "int", "default": 90},
            "setup_fingerprint": {"type": "str"},
            "setup_marker": {"type": "path", "default": "/var/lib/teleshift/setup/telework_station"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["setup_fingerprint"]:
        try:
            with open(p["setup_marker"], encoding="utf-8") as stream:
                done = stream.read().strip()
        except FileNotFoundError:
            done = ""
        if done != p["setup_fingerprint"]:
            module.exit_json(changed=False, setup_needed=True, person=p["person"], previous="", written=[],
                             removed=[], restarted=[])
    person = p["person"]
    wanted = {}
    for path, spec in p["files"].items():
        if not os.path.isabs(path) or ".." in path.split("/"):
            module.fail_json(msg=f"refusing file path {path!r}")
        uid, gid = _ids(module, spec.get("owner") or "root")
        wanted[path] = {"sha256": str(spec["sha256"]), "mode": int(str(spec["mode"]), 8), "uid": uid, "gid": gid}
    manifest = read_manifest(p["manifest"])
    paths = set(wanted) | set(manifest["files"])
    actual = {path: _actual(path) for path in paths}
    dirs = [d for d in p["owned_dirs"] if os.path.isdir(d)] + [d for d in manifest["dirs"] if os.path.isdir(d)]
    extra = unknown_files(sorted(set(dirs)), set(wanted))
    units = {u: list(v or []) for u, v in p["units"].items()}
    todo = changes(manifest, person, wanted, actual, extra, units)
    inactive = [u for u in todo["enable"] if u not in todo["restart"] and _systemctl("is-active", u)[0] != 0]
    not_enabled = [u for u in todo["enable"] if _systemctl("is-enabled", u)[0] != 0]
    start = sorted(set(todo["restart"]) | set(inactive))
    files_digest = {path: w["sha256"] for path, w in wanted.items()}
    changed = bool(todo["write"] or todo["remove"] or todo["stop"] or start or not_enabled or todo["disable"]
                   or manifest["files"] != files_digest or todo["person_changed"])
    result = {"changed": changed, "person": person, "previous": manifest["person"], "written": todo["write"],
              "removed": todo["remove"], "restarted": start}
    if module._diff and changed:
        result["diff"] = {"before": diff_text(manifest["person"], manifest["files"]),
                          "after": diff_text(person, files_digest), "before_header": p["manifest"],
                          "after_header": p["manifest"]}
    if module.check_mode or not changed:
        module.exit_json(**result)
    contents = {}
    if todo["write"]:
        if not p["contents_file"]:
            module.exit_json(changed=False, needs_contents=todo["write"], person=person, previous=manifest["person"],
                             written=[], removed=[], restarted=[])
        contents = _contents(module, p["contents_file"])
        missing = [path for path in todo["write"] if path not in contents]
        bad = [path for path in todo["write"] if path in contents and digest(contents[path]) != wanted[path]["sha256"]]
        if missing or bad:
            module.fail_json(msg=f"contents missing or not matching their digest: {', '.join((missing + bad)[:5])}")
    for unit in todo["stop"]:
        _stop(unit, p["unit_timeout"])
    for unit in todo["disable"]:
        _systemctl("disable", unit, timeout=p["unit_timeout"])
    for path in todo["remove"]:
        remove_file(path)
    for path in todo["write"]:
        w = wanted[path]
        atomic_write(path, contents[path], mode=w["mode"], owner=w["uid"], group=w["gid"], durable=True)
        folder = os.path.dirname(path)
        if folder in p["owned_dirs"]:  # the person's own directory (the softphone writes its state there)
            os.chown(folder, w["uid"], w["gid"])
            os.chmod(folder, 0o700)
    atomic_write(p["manifest"], manifest_text(person, files_digest, p["owned_dirs"], list(units)), mode=0o600,
                 durable=True, dir_mode=0o700)
    failed = []
    for unit in todo["enable"]:
        if unit in not_enabled:
            _systemctl("enable", unit, timeout=p["unit_timeout"])
        if unit in start:
            if unit in todo["restart"] and unit.startswith("wg-quick@"):
                _stop(unit, p["unit_timeout"])
            rc, out = _systemctl("restart", unit, timeout=p["unit_timeout"])
            if rc != 0:
                failed.append(f"{unit}: {out[-300:]}")
    if failed:
        module.fail_json(msg="files applied, but units did not start: " + "; ".join(failed), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
