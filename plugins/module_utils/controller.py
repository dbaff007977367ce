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


def inventory_dir(task_vars):
    """The inventory's directory, also for the implicit localhost (which has no inventory_dir).

    With several inventory sources (molecule adds an ephemeral one of its own first), the first source
    whose directory holds group_vars/ is the organisation's inventory."""
    if task_vars.get("inventory_dir"):
        return str(task_vars["inventory_dir"])
    dirs = []
    for source in task_vars.get("ansible_inventory_sources") or []:
        path = os.path.abspath(str(source))
        dirs.append(path if os.path.isdir(path) else os.path.dirname(path))
    for path in dirs:
        if os.path.isdir(os.path.join(path, "group_vars")):
            return path
    return dirs[0] if dirs else os.getcwd()
