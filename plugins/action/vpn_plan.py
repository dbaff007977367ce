# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.vpn_plan: the VPN plan, on the controller, before any gateway
is touched (see plugins/modules/vpn_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import background
from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import SECRET_IN_KIT
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_planner import finish_along, start_along
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import (
    KIT, PRIVATE_KEY_IN_KIT, client_keys, gateway_slice, routes, state_of, write_client_kits)


class VpnInputs:
    """The front door's Inputs (plugins/module_utils/inputs.py) seen by the VPN plan and kits steps."""

    def __init__(self, action, task_vars, roster=None, kits_dir=None, probe_kits=(), probe_folders=()):
        self.cap = registry.get("vpn")
        self.inputs = front_door.from_task_vars(action._templar, task_vars, roster=roster, kits_dir=kits_dir,
                                                probe_kits=probe_kits, probe_folders=probe_folders)
        self.vars = self.inputs.all_vars
        self.settings = self.inputs.settings
        self.vpn = self.cap.settings(self.inputs)
        self.state_file = str(self.inputs.path(self.cap.state_file))
        root = self.inputs.kits_root()
        self.kits_dir = str(root) if root else None


def rotate_list(value):
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "rotate", "kits_dir", "gate"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # state, indexes and caches are written beside the rest of the plan, all done before returning
        return background.plan_task(result, "VPN plan failed", lambda: self._plan(result, task_vars or {}))

    def _plan(self, result, task_vars):
        args = self._task.args
        # whose key (and second factor's secret) is in their kit, and when each profile folder last
        # changed: looked up on the other core meanwhile (module_utils/kit_presence.py)
        inputs = VpnInputs(self, task_vars, args.get("roster"), args.get("kits_dir"),
                           (PRIVATE_KEY_IN_KIT, SECRET_IN_KIT) if args.get("gate") else (PRIVATE_KEY_IN_KIT,),
                           (KIT,))
        # what the VPN applies, and only that: a stale queue entry elsewhere never keeps a leaver's tunnel
        found = front_door.validate(inputs.inputs, ["vpn"], capacity=True)
        if front_door.refused(result, found, "VPN plan failed, no host was changed."):
            return result
        # the second factor's plan too, in this task (module_utils/mfa_planner.py)
        if args.get("gate") and front_door.refused_also(result, inputs.inputs, ["mfa"],
                                                        "second-factor plan failed, no host was changed."):
            return result
        previous = inputs.inputs.state(inputs.cap)
        plan = inputs.cap.plan(inputs.inputs)
        rotate = rotate_list(args.get("rotate", inputs.vars.get("wireguard_rotate")))
        unknown = sorted(set(rotate) - set(plan.people))
        if unknown:
            result.update(failed=True, msg="wireguard_rotate names people without an active vpn need: "
                                           + ", ".join(unknown))
            return result
        write = not self._task.check_mode
        # the second factor's plan (its placements: this plan's) beside the keys, state and profiles
        along = start_along(inputs.inputs, write, self._task.diff) if args.get("gate") else None
        try:
            return self._finish(result, inputs, previous, plan, rotate, write, along)
        finally:
            if along is not None:
                along.close()  # reaped however this task ends

    def _finish(self, result, inputs, previous, plan, rotate, write, along):
        privates = {}
        known = {str(pid): (entry or {}).get("public_key") for pid, entry in (previous.get("people") or {}).items()}
        public_keys, new_keys = client_keys(sorted(plan.people), inputs.kits_dir, rotate, write=write,
                                            privates=privates, known=known,
                                            holders=inputs.inputs.kit_holders(PRIVATE_KEY_IN_KIT))
        gateway_keys = {str(name): (entry or {}).get("public_key")
                        for name, entry in (previous.get("gateways") or {}).items()}
        state = state_of(plan, public_keys, gateway_keys, inputs.vpn)
        state_changed = state != previous
        if write and state_changed:
            save_state(inputs.state_file, state, differs=True)  # previous: the file, parsed
        # profiles with the gateways' recorded keys now; vpn_kits redoes them if a gateway's key changed
        written, pending = [], sorted(plan.people)
        if write:
            written, pending = write_client_kits(plan, inputs.vpn, inputs.kits_dir, gateway_keys,
                                                 qr=inputs.vars.get("teleshift_vpn_qr", True) is not False,
                                                 privates=privates, public_keys=public_keys,
                                                 folder_times=inputs.inputs.kit_times(KIT))
        privates.clear()
        before = previous.get("people") or {}
        after = state["people"]
        # moved: another gateway or address (a new key alone is not a move); equal entries need no copy
        moved = sorted(pid for pid, entry in after.items() if pid in before and before[pid] != entry
                       and {k: v for k, v in before[pid].items() if k != "public_key"}
                       != {k: v for k, v in entry.items() if k != "public_key"})
        result.update(
            changed=bool(state_changed or (write and (new_keys or written))),
            gateway_keys={k: v for k, v in gateway_keys.items() if v},
            kits_written=len(written),
            kits_pending=pending,
            state_file=inputs.state_file,
            kits_dir=inputs.kits_dir,
            gateways={name: gateway_slice(plan, g, inputs.settings.services, inputs.vpn, public_keys)
                      for name, g in sorted(inputs.vpn.gateways.items())},
            routes=routes(inputs.vpn),
            people={"vpn": len(plan.people), "retired": len(plan.retired)},
            added=sorted(set(after) - set(before)),
            removed=sorted(set(before) - set(after)),
            moved=moved,
            new_keys=sorted(new_keys),
            msg=(f"{len(plan.people)} people on {len(inputs.vpn.gateways)} gateway(s); "
                 f"{len(set(after) - set(before))} new, {len(set(before) - set(after))} revoked, "
                 f"{len(new_keys)} new key(s)" + ("" if write else " (check mode: nothing written)")),
        )
        gate_diff = None
        if along is not None:
            planned, gate_diff = finish_along(along, result, "gate")
            if not planned:
                return result
        if self._task.diff:
            def lines(d):
                return "".join(
                    f"{pid}: {e.get('gateway')} {e.get('address')} {e.get('address6', '')}".rstrip() + "\n"
                    for pid, e in sorted(d.items()) if pid in result["added"] + result["removed"] + result["moved"])
            result["diff"] = {"before": lines(before), "after": lines(after),
                              "before_header": f"{inputs.state_file} (people)",
                              "after_header": f"{inputs.state_file} (people)"}
        if gate_diff:
            result["diff"] = [result["diff"], gate_diff] if "diff" in result else gate_diff
        return result
