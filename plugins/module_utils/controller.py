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
    """The inventory's directory, also for the implicit localhost (which has no inventory_dir)."""
    if task_vars.get("inventory_dir"):
        return str(task_vars["inventory_dir"])
    sources = task_vars.get("ansible_inventory_sources") or []
    if not sources:
        return os.getcwd()
    first = os.path.abspath(str(sources[0]))
    return first if os.path.isdir(first) else os.path.dirname(first)
