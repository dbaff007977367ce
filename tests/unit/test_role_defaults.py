"""The planners own the defaults; the roles' defaults document the same values (they never drift)."""
from pathlib import Path

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop, desktop_capability, wireguard_plan

ROLES = Path(__file__).resolve().parents[2] / "roles"


def defaults(role):
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text(encoding="utf-8"))


def spec(role):
    data = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    return data["argument_specs"]["main"]["options"]


def test_wireguard_gateway_defaults_are_the_planners():
    assert "default(%d)" % wireguard_plan.DEFAULT_PORT in defaults("wireguard_gateway")["wireguard_gateway_port"]
    assert spec("wireguard_gateway")["wireguard_gateway_port"]["default"] == wireguard_plan.DEFAULT_PORT
    assert defaults("wireguard_gateway")["wireguard_gateway_max_peers"] == wireguard_plan.DEFAULT_MAX_PEERS
    assert spec("wireguard_gateway")["wireguard_gateway_max_peers"]["default"] == wireguard_plan.DEFAULT_MAX_PEERS


def test_xrdp_host_defaults_are_the_planners():
    values = defaults("xrdp_host")
    assert values["xrdp_host_max_sessions"] == desktop.DEFAULT_MAX_SESSIONS
    assert values["xrdp_host_service_group_prefix"] == desktop_capability.GROUP_PREFIX
    assert values["xrdp_host_users_group"] == desktop_capability.USERS_GROUP
    assert values["xrdp_host_port"] == desktop.RDP_PORT


def test_every_role_default_is_declared_in_the_argument_specs():
    for role in sorted(p.name for p in ROLES.iterdir() if (p / "defaults" / "main.yml").exists()):
        declared = spec(role)
        missing = sorted(set(defaults(role) or {}) - set(declared))
        assert not missing, f"{role}: defaults not in meta/argument_specs.yml: {missing}"
