# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The check Ansible runs at the start of a role (its meta/argument_specs.yml entry point), run inside
an action plugin of that role instead.

Why it exists. Ansible checks a role's variables in a task of its own, one worker per host. On the
VPN's fast path (vpn.yml, 10 gateways) that task cost as much as the peers' call it precedes, and the
call already templates the same variables. The role is imported there with ``rolespec_validate: false``
and the peers' action (``role_spec: main``) runs this check in its own worker, before anything else: the
same variables, the same validator, the same failure."""
from __future__ import annotations

import os

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator


def role_argument_errors(action, task_vars, entry_point):
    """The error messages of the calling role's variables against ``entry_point`` of its argument
    spec (an empty list when they pass). A task outside a role, or a role without that entry point,
    is an error: the caller asked for a check that cannot run."""
    role = getattr(action._task, "_role", None)
    if role is None:
        return ["role_spec: this task is not in a role"]
    path = os.path.join(role._role_path, "meta", "argument_specs.yml")
    try:
        specs = action._loader.load_from_file(path) or {}
    except Exception as exc:  # noqa: BLE001 - any reading or parsing error is reported as such
        return [f"role_spec: cannot read {path}: {exc}"]
    entry = ((specs.get("argument_specs") or {}).get(entry_point)) if isinstance(specs, dict) else None
    if not isinstance(entry, dict):
        return [f"role_spec: {role.get_name()} has no argument spec entry point {entry_point!r}"]
    options = entry.get("options") or {}
    values = action._templar.template({name: task_vars[name] for name in options if name in task_vars})
    found = ArgumentSpecValidator(options).validate(values, validate_role_argument_spec=True)
    return list(found.error_messages)
