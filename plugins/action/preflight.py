# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.preflight: validates the roster and the inventory's settings on
the controller, with the same code as ``scripts/teleshift validate``, before any host is touched."""
from __future__ import annotations

import os

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    format_problems, load_roster)
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state
from ansible_collections.teleshift.toolkit.plugins.module_utils.telephony import PBX_VARS, inventory_check


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
        telephony_problems, warnings = self._telephony_check(task_vars, roster, settings.region)
        problems += telephony_problems
        problems += self._desktop_problems(task_vars, roster)
        result["roster"] = roster_path
        result["problems"] = [str(p) for p in problems]
        if warnings:  # left out of the configuration (e.g. a revoked queue agent): never blocks
            result["warnings"] = [str(w) for w in warnings]
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

    def _telephony_check(self, task_vars, roster, region):
        """(problems, warnings): extensions and forwarding/transfer targets against the number policy, and
        each PBX's settings."""
        hostvars = task_vars.get("hostvars") or {}
        pbx_vars = {host: {k: self._templar.template(hostvars[host][k]) for k in PBX_VARS if k in hostvars[host]}
                    for host in (task_vars.get("groups") or {}).get("pbx_hosts", [])}
        policy_vars = {k: self._templar.template(task_vars[k]) for k in ("teleshift_phone_policy",) if k in task_vars}
        return inventory_check(policy_vars, pbx_vars, roster, region)

    def _desktop_problems(self, task_vars, roster):
        """Session-host capacity: the same plan the desktop role applies, so a shortfall stops the run here."""
        hostvars = task_vars.get("hostvars") or {}
        hosts = [str(h) for h in (task_vars.get("groups") or {}).get("desktop_hosts", [])]
        if not hosts:
            return []
        capacity_vars = {h: {n: self._templar.template(hostvars[h][n]) for n in desktop.CAPACITY_VARS
                             if n in hostvars[h]} for h in hosts}
        capacities, problems = desktop.host_capacities(hosts, capacity_vars)
        state = load_state(resolve_path("state/desktop.yml", inventory_dir(task_vars)))
        return problems + desktop.plan_desktop(roster.people, capacities, state, source=roster.source).problems
