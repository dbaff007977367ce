"""Helpers shared by the unit tests."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def with_lab_people(people):
    """A synthetic roster usable with the lab inventory, whose PBX settings name lab people (queue agents)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster
    from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import merge_people

    return merge_people(people, load_roster(ROOT / "inventories" / "lab" / "roster.csv").people)


def make_inputs(people, groups=None, hostvars=None, all_vars=None, states=None, services=("rsa",),
                inventory_dir="/nonexistent"):
    """Front-door Inputs from in-memory people and inventory variables (no file read): what the
    planners, validate and the capacity plan see. ``states``: capability name -> state mapping."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import Inputs
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Roster
    from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings

    all_vars = dict(all_vars or {})
    all_vars.setdefault("teleshift_services", {name: {} for name in services})
    inputs = Inputs(inventory_dir=str(inventory_dir), all_vars=all_vars, hostvars=dict(hostvars or {}),
                    groups=dict(groups or {}))
    inputs.settings = load_settings(all_vars)
    inputs.roster = Roster(people=list(people), source="roster.csv")
    inputs._states.update(states or {})
    return inputs


def vpn_vars(pool="10.100.0.0/16", gateways=("gw1",), max_peers=None, gateway_pools=None):
    """(all_vars, hostvars) of a valid VPN inventory: pool, internal networks, one endpoint per gateway."""
    all_vars = {"teleshift_vpn_pool": pool, "teleshift_vpn_internal_networks": ["10.89.251.0/24"],
                "teleshift_kits_dir": "kits"}
    hostvars = {}
    for i, gw in enumerate(gateways):
        hv = {"wireguard_gateway_endpoint": f"vpn{i}.example:51820"}
        if max_peers is not None:
            hv["wireguard_gateway_max_peers"] = max_peers
        if gateway_pools:
            hv["wireguard_gateway_pool"] = gateway_pools[i]
        hostvars[gw] = hv
    return all_vars, hostvars
