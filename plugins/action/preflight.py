# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.preflight: validates the roster and the inventory's settings on
the controller, with the same code as ``scripts/teleshift validate``, before any host is touched."""
from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    format_problems, load_roster)
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings
from ansible_collections.teleshift.toolkit.plugins.module_utils.telephony import PBX_VARS, inventory_problems


def inventory_dir(task_vars):
    """The inventory's directory, also for the implicit localhost (which has no inventory_dir)."""
    if task_vars.get("inventory_dir"):
        return task_vars["inventory_dir"]
    sources = task_vars.get("ansible_inventory_sources") or ["."]
    first = os.path.abspath(sources[0])
    return first if os.path.isdir(first) else os.path.dirname(first)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        settings_vars = {k: self._templar.template(task_vars[k]) for k in
                         ("teleshift_services", "teleshift_phone_region") if k in task_vars}
        settings = load_settings(settings_vars, source="inventory")
        roster_path = self._task.args.get("roster") or task_vars.get("teleshift_roster_file")
        if not roster_path:
            result.update(failed=True, msg="no roster: set teleshift_roster_file in the inventory",
                          problems=[str(p) for p in settings.problems])
            return result
        roster_path = self._templar.template(roster_path)
        if not os.path.isabs(roster_path):
            roster_path = os.path.join(inventory_dir(task_vars), roster_path)
        roster = load_roster(roster_path, services=settings.services.keys(), region=settings.region)
        problems = settings.problems + roster.problems
        problems += self._telephony_problems(task_vars, roster, settings.region)
        result["roster"] = roster_path
        result["problems"] = [str(p) for p in problems]
        if problems:
            result.update(failed=True, msg="Preflight failed, no host was changed.\n" + format_problems(problems))
            return result
        active = roster.active()
        result["people"] = {
            "total": len(roster.people),
            "active": len(active),
            **{need: sum(1 for p in active if need in p.needs) for need in ("vpn", "desktop", "phone")},
        }
        result["msg"] = (f"{len(roster.people)} people valid in {roster_path}, "
                         f"{len(active)} active across {len({p.service for p in active})} services")
        result["changed"] = False
        return result

    def _telephony_problems(self, task_vars, roster, region):
        """Forwarding/transfer targets against the number policy, and each PBX's settings."""
        hostvars = task_vars.get("hostvars") or {}
        pbx_vars = {host: {k: self._templar.template(hostvars[host][k]) for k in PBX_VARS if k in hostvars[host]}
                    for host in (task_vars.get("groups") or {}).get("pbx_hosts", [])}
        policy_vars = {k: self._templar.template(task_vars[k]) for k in ("teleshift_phone_policy",) if k in task_vars}
        return inventory_problems(policy_vars, pbx_vars, roster, region)
