# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The organisation's settings from the inventory (group_vars), validated once for every consumer.

Inventory variables are plain data; this module turns the ones teleshift reads into checked values and
reports every problem as a Problem naming the variable path (``teleshift_services.rsa.networks[1]``).
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

# Keys a service policy may have, and the checker for each.
SERVICE_KEYS = {
    "label": "text",
    "networks": "networks",  # internal networks this service reaches through the VPN
    "desktop_packages": "list",  # packages installed on session hosts for this service
    "desktop_links": "links",  # [{name, url}] shortcuts on the remote desktop
    "attendant": "text",  # the answering attendant line of this service, if any
    "continuity": "continuity",  # critical: the service's staff are equipped first (rollout waves)
    "mfa": "mfa",  # second factor: required (default) or {exempt: <reason>} (docs/mfa.md)
}

# Optional settings that must be text when set (paths are relative to the inventory's directory).
TEXT_SETTINGS = ("teleshift_roster_file", "teleshift_kits_dir", "teleshift_verify_file",
                 "teleshift_hotline_number", "teleshift_org_name")

# Optional stock settings: a whole number, or one per rollout wave where the list form is allowed.
COUNT_SETTINGS = {"teleshift_vpn_licences": False, "teleshift_laptops_stock": True, "teleshift_rollout_per_wave": False}

# Values of a service's ``continuity`` key: ``critical`` services come first in rollout waves.
CONTINUITY = ("critical", "normal")


@dataclass
class Settings:
    services: dict = field(default_factory=dict)
    region: str = "FR"
    problems: list = field(default_factory=list)

    @property
    def ok(self):
        return not self.problems


def _check_list(value, path, problems, source):
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(Problem(source, 0, path, "expected a list of non-empty strings"))
        return False
    return True


def _mfa_ok(value):
    return value == "required" or (isinstance(value, dict) and set(value) == {"exempt"}
                                   and isinstance(value["exempt"], str) and bool(value["exempt"].strip()))


def _check_service(name, policy, source, problems):
    path = f"teleshift_services.{name}"
    if not isinstance(policy, dict):
        problems.append(Problem(source, 0, path, "expected a mapping (the service's policy)"))
        return
    for key, value in policy.items():
        kind = SERVICE_KEYS.get(key)
        where = f"{path}.{key}"
        if kind is None:
            problems.append(Problem(source, 0, where, "unknown key (known: " + ", ".join(SERVICE_KEYS) + ")"))
        elif kind == "text" and not isinstance(value, str):
            problems.append(Problem(source, 0, where, "expected text"))
        elif kind == "list":
            _check_list(value, where, problems, source)
        elif kind == "mfa" and not _mfa_ok(value):
            problems.append(Problem(source, 0, where, "expected `required` or `{exempt: <reason written out>}`"))
        elif kind == "continuity" and value not in CONTINUITY:
            problems.append(Problem(source, 0, where, f"{value!r} is not one of {', '.join(CONTINUITY)}"))
        elif kind == "networks" and _check_list(value, where, problems, source):
            for i, net in enumerate(value):
                try:
                    ipaddress.ip_network(net, strict=True)
                except ValueError as exc:
                    problems.append(Problem(source, 0, f"{where}[{i}]", f"not a network: {exc}"))
        elif kind == "links":
            if not isinstance(value, list):
                problems.append(Problem(source, 0, where, "expected a list of {name, url}"))
                continue
            for i, link in enumerate(value):
                if not (isinstance(link, dict) and isinstance(link.get("name"), str)
                        and isinstance(link.get("url"), str)):
                    problems.append(Problem(source, 0, f"{where}[{i}]", "expected {name: ..., url: ...}"))


def load_settings(variables, source="inventory"):
    """Build Settings from a host's (or 'all') inventory variables."""
    problems = []
    services = variables.get("teleshift_services")
    if not isinstance(services, dict) or not services:
        problems.append(Problem(source, 0, "teleshift_services",
                                "must define at least one service (a mapping of service name to policy)"))
        services = {}
    for name, policy in services.items():
        _check_service(str(name), policy, source, problems)
    region = variables.get("teleshift_phone_region", "FR")
    if not (isinstance(region, str) and len(region) == 2 and region.isalpha() and region.isupper()):
        problems.append(Problem(source, 0, "teleshift_phone_region",
                                f"{region!r} is not a two-letter country code such as FR"))
        region = "FR"
    for name in TEXT_SETTINGS:
        value = variables.get(name)
        if value is not None and not (isinstance(value, str) and value.strip()):
            problems.append(Problem(source, 0, name, f"expected text (quote numbers), got {value!r}"))
    for name, list_ok in COUNT_SETTINGS.items():
        value = variables.get(name)
        values = value if list_ok and isinstance(value, list) and value else [value]
        if value is not None and not all(whole_number(v) is not None for v in values):
            problems.append(Problem(source, 0, name, "expected a whole number >= 0" + (
                " or a list of them (one per wave)" if list_ok else "") + f", got {value!r}"))
    return Settings(services={str(k): v for k, v in services.items()}, region=region, problems=problems)


def not_a_boolean(name, value):
    """The problem to report for a setting that must be true or false. Text that reads as one is what
    ``ansible-playbook -e name=false`` gives: the message says how to pass a real boolean, since
    accepting the text here while a template elsewhere reads "false" as true would split the decision."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off"):
        return (f"expected true or false, got the text {value!r} (on the command line, give it as JSON: "
                f"-e '{{\"{name}\": {value.strip().lower() in ('true', 'yes', 'on') and 'true' or 'false'}}}')")
    return f"expected true or false, got {value!r}"


def whole_number(value):
    """``value`` as a whole number >= 0, or None. Digits as text count too: ``-e name=200`` on the
    ansible-playbook command line gives the text "200". Anything else (a bool, "2e2", " 200", "-1",
    "0x10", 2.0) is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None
