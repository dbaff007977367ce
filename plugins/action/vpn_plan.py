# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.vpn_plan: the VPN plan, on the controller, before any gateway
is touched (see plugins/modules/vpn_plan.py for the documentation)."""
from __future__ import annotations

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain

from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems, load_roster
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state, save_state
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import (
    client_keys, gateway_slice, load_vpn_settings, plan_vpn, routes, state_of, write_client_kits)

# Host variables of each gateway the plan reads (role defaults are not visible on the controller:
# the plan's defaults are the same numbers, see wireguard_plan.py).
GATEWAY_VARS = ("wireguard_gateway_pool", "wireguard_gateway_pool6", "wireguard_gateway_port",
                "wireguard_gateway_max_peers", "teleshift_vpn_max_peers", "wireguard_gateway_endpoint",
                "wireguard_gateway_internal_address", "wireguard_gateway_address", "wireguard_gateway_address6",
                "wireguard_gateway_public_key")
GLOBAL_VARS = ("teleshift_services", "teleshift_phone_region", "teleshift_roster_file", "teleshift_kits_dir",
               "teleshift_vpn_pool", "teleshift_vpn_pool6", "teleshift_vpn_internal_networks",
               "teleshift_vpn_default_networks", "teleshift_vpn_common_networks", "teleshift_vpn_dns",
               "teleshift_vpn_full_tunnel", "teleshift_vpn_keepalive", "teleshift_vpn_profile_name",
               "teleshift_vpn_licences", "teleshift_vpn_qr", "wireguard_rotate")


class VpnInputs:
    """Roster, settings, VPN settings, state and kits paths, read from the task's variables."""

    def __init__(self, action, task_vars, roster=None, state_file=None, kits_dir=None):
        templar = action._templar
        get = {k: plain(templar.template(task_vars[k])) for k in GLOBAL_VARS if k in task_vars}
        self.vars = get
        self.inventory_dir = inventory_dir(task_vars)
        self.settings = load_settings(get, source="inventory")
        hostvars = task_vars.get("hostvars", {})
        self.gateways_vars = {}
        for gw in task_vars.get("groups", {}).get("vpn_gateways", []):
            hv = hostvars.get(gw, {})
            self.gateways_vars[str(gw)] = {k: plain(templar.template(hv[k])) for k in GATEWAY_VARS if k in hv}
        self.vpn = load_vpn_settings(get, self.gateways_vars)
        roster_path = roster or get.get("teleshift_roster_file")
        self.roster_path = str(resolve_path(roster_path, self.inventory_dir)) if roster_path else None
        self.roster = load_roster(self.roster_path, services=self.settings.services.keys(),
                                  region=self.settings.region) if self.roster_path else None
        self.state_file = str(resolve_path(state_file or "state/vpn.yml", self.inventory_dir))
        kits = kits_dir or get.get("teleshift_kits_dir")
        self.kits_dir = str(resolve_path(kits, self.inventory_dir)) if kits else None

    def problems(self):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

        problems = list(self.settings.problems) + list(self.vpn.problems)
        if self.roster is None:
            problems.append(Problem("inventory", 0, "teleshift_roster_file", "no roster: set teleshift_roster_file"))
        else:
            problems += self.roster.problems
        if not self.kits_dir:
            problems.append(Problem("inventory", 0, "teleshift_kits_dir",
                                    "must be set: where each person's VPN profile (with its private key) is written"))
        return problems


def rotate_list(value):
    if not value:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v).strip() for v in value if str(v).strip()]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "rotate", "state_file", "kits_dir"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        args = self._task.args
        inputs = VpnInputs(self, task_vars, args.get("roster"), args.get("state_file"), args.get("kits_dir"))
        problems = inputs.problems()
        if problems:
            result.update(failed=True, problems=[str(p) for p in problems],
                          msg="VPN plan failed, no host was changed.\n" + format_problems(problems))
            return result
        previous = load_state(inputs.state_file)
        users = inputs.roster.active("vpn")
        plan = plan_vpn(users, inputs.vpn, inputs.settings.services, previous)
        if plan.problems:
            result.update(failed=True, problems=[str(p) for p in plan.problems],
                          msg="VPN plan failed, no host was changed.\n" + format_problems(plan.problems))
            return result
        rotate = rotate_list(args.get("rotate", inputs.vars.get("wireguard_rotate")))
        unknown = sorted(set(rotate) - set(plan.people))
        if unknown:
            result.update(failed=True, msg="wireguard_rotate names people without an active vpn need: "
                                           + ", ".join(unknown))
            return result
        write = not self._task.check_mode
        privates = {}
        known = {str(pid): (entry or {}).get("public_key") for pid, entry in (previous.get("people") or {}).items()}
        public_keys, new_keys = client_keys(sorted(plan.people), inputs.kits_dir, rotate, write=write,
                                            privates=privates, known=known)
        gateway_keys = {str(name): (entry or {}).get("public_key")
                        for name, entry in (previous.get("gateways") or {}).items()}
        state = state_of(plan, public_keys, gateway_keys, inputs.vpn)
        state_changed = state != previous
        if write and state_changed:
            save_state(inputs.state_file, state)
        # profiles with the gateways' recorded keys now; vpn_kits redoes them if a gateway's key changed
        written, pending = [], sorted(plan.people)
        if write:
            written, pending = write_client_kits(plan, inputs.vpn, inputs.kits_dir, gateway_keys,
                                                 qr=inputs.vars.get("teleshift_vpn_qr", True) is not False,
                                                 privates=privates, public_keys=public_keys)
        privates.clear()
        before = previous.get("people") or {}
        after = state["people"]
        moved = sorted(pid for pid in after if pid in before
                       and {k: v for k, v in before[pid].items() if k != "public_key"}
                       != {k: v for k, v in after[pid].items() if k != "public_key"})
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
        if self._task.diff:
            lines = lambda d: "".join(  # noqa: E731
                f"{pid}: {e.get('gateway')} {e.get('address')} {e.get('address6', '')}".rstrip() + "\n"
                for pid, e in sorted(d.items()) if pid in result["added"] + result["removed"] + result["moved"])
            result["diff"] = {"before": lines(before), "after": lines(after),
                              "before_header": f"{inputs.state_file} (people)",
                              "after_header": f"{inputs.state_file} (people)"}
        return result
