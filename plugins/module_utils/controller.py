# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Helpers for code that runs on the controller (action plugins, the CLI): the inventory's directory
and Ansible's tagged values turned into plain Python."""
from __future__ import annotations

import os


def plain(value):
    """Ansible's tagged strings, numbers, lists and dicts as plain Python (for state files and results)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return str(value)


BASE_VAR = "teleshift_base_dir"


def project_dir(playbook_dir=None):
    """The project's root (where AWX or a checkout has playbooks/): the playbook directory's parent
    when it is named ``playbooks``, else the playbook directory; the current directory without one."""
    if not playbook_dir:
        return os.getcwd()
    path = os.path.abspath(str(playbook_dir))
    return os.path.dirname(path) if os.path.basename(path) == "playbooks" else path


def generated(source):
    """Whether an inventory source is generated rather than the organisation's files: an executable
    file (AWX writes each job's inventory as a script in a throw-away directory)."""
    path = str(source or "")
    return bool(path) and os.path.isfile(path) and os.access(path, os.X_OK)


def base_dir(value, project, inventory, inventory_source=None):
    """Where relative roster, state, kits and verify paths resolve: ``teleshift_base_dir`` (absolute,
    e.g. a persistent volume, or relative to the project), else the inventory's directory. Raises
    ValueError for a generated inventory without it: state and keys must never land in a job's
    throw-away directory."""
    if value not in (None, ""):
        path = os.path.expanduser(str(value))
        return os.path.normpath(path if os.path.isabs(path) else os.path.join(project, path))
    if generated(inventory_source):
        raise ValueError(f"the inventory {inventory_source} is generated (AWX, an inventory script): set "
                         f"{BASE_VAR} to the directory holding the roster, state/ and kits "
                         "(an absolute path on a persistent volume, or relative to the project; docs/awx.md)")
    return str(inventory)


def inventory_dir(task_vars):
    """The directory inventory paths (roster, state, kits) resolve against: ``teleshift_base_dir``
    when set (see base_dir), else the inventory's directory, also for the implicit localhost (which
    has no inventory_dir). A plain path: this function does not template.

    With several inventory sources (molecule adds an ephemeral one of its own first), the first source
    whose directory holds group_vars/ is the organisation's inventory."""
    value = task_vars.get(BASE_VAR)
    found, source = _inventory(task_vars)
    return base_dir(value, project_dir(task_vars.get("playbook_dir")), found, source)


def _inventory(task_vars):
    """(the inventory's directory, its source file or '')."""
    if task_vars.get("inventory_dir"):
        return str(task_vars["inventory_dir"]), str(task_vars.get("inventory_file") or "")
    dirs = []
    for source in task_vars.get("ansible_inventory_sources") or []:
        path = os.path.abspath(str(source))
        dirs.append(path if os.path.isdir(path) else os.path.dirname(path))
    sources = [os.path.abspath(str(s)) for s in task_vars.get("ansible_inventory_sources") or []]
    for path, source in zip(dirs, sources):
        if os.path.isdir(os.path.join(path, "group_vars")):
            return path, source
    return (dirs[0], sources[0]) if dirs else (os.getcwd(), "")
