# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.vpn_kits: each person's VPN profile and QR codes, on the
controller, once the gateways' public keys are known (see plugins/modules/vpn_kits.py)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard import valid_key
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import (
    Plan, PersonPlan, write_client_kits)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("gateway_keys", "kits_dir", "qr", "recorded_keys", "pending"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = plain(dict(self._task.args))
        given = {k: v for k, v in (args.get("gateway_keys") or {}).items() if v}
        if ("recorded_keys" in args and not args.get("pending") and given == (args.get("recorded_keys") or {})):
            # the plan already wrote every profile with these gateway keys: nothing to do
            result.update(changed=False, written=0, skipped=[], msg="VPN profiles up to date")
            return result
        if self._task.check_mode:
            result.update(changed=False,
                          msg="check mode: no kit written (profiles follow the plan and the gateways' keys)")
            return result
        cap = registry.get("vpn")
        inputs = front_door.from_task_vars(self._templar, task_vars, kits_dir=args.get("kits_dir"))
        vpn = cap.settings(inputs)
        problems = list(inputs.settings.problems) + list(vpn.problems)
        if problems:
            result.update(failed=True, msg=format_problems(problems))
            return result
        state_file = inputs.path(cap.state_file)
        kits_dir = str(inputs.kits_root())
        try:
            state = inputs.state(cap)
        except front_door.StateError as exc:
            result.update(failed=True, msg=str(exc))
            return result
        keys = {}
        for name, entry in (state.get("gateways") or {}).items():
            keys[name] = (entry or {}).get("public_key")
        for name, key in (args.get("gateway_keys") or {}).items():
            if key:
                if not valid_key(key):
                    result.update(failed=True, msg=f"gateway_keys.{name} is not a WireGuard public key")
                    return result
                keys[name] = key
        plan = Plan()
        for pid, entry in (state.get("people") or {}).items():
            if entry.get("gateway") in vpn.gateways:
                plan.people[pid] = PersonPlan(pid, entry.get("service", ""), entry["gateway"],
                                              entry.get("address", ""), entry.get("address6", ""))
        state_changed = False
        for name, key in keys.items():
            gw = (state.get("gateways") or {}).get(name)
            if key and isinstance(gw, dict) and gw.get("public_key") != key:
                gw["public_key"] = key
                state_changed = True
        if state_changed:
            save_state(state_file, state)
        qr = args.get("qr", inputs.all_vars.get("teleshift_vpn_qr", True)) is not False
        public_keys = {str(pid): (entry or {}).get("public_key") for pid, entry in (state.get("people") or {}).items()}
        changed, skipped = write_client_kits(plan, vpn, kits_dir, keys, qr=qr, public_keys=public_keys)
        result.update(
            changed=bool(changed or state_changed), written=len(changed), skipped=skipped,
            kits_dir=kits_dir, profile=f"{vpn.profile_name}.conf",
            msg=f"{len(changed)} VPN profile(s) written under {kits_dir}"
                + (f"; {len(skipped)} skipped (gateway key unknown)" if skipped else ""),
        )
        return result
