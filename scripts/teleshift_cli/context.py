"""Load what every subcommand starts from: the inventory (through Ansible's own API, so the CLI and
the playbooks read the same variables), the organisation's settings and the roster."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import plain
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    Problem, Roster, load_roster)
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import Settings, load_settings


@dataclass
class Inventory:
    source: str
    groups: dict = field(default_factory=dict)  # group -> [host]
    hostvars: dict = field(default_factory=dict)  # host -> vars
    all_vars: dict = field(default_factory=dict)  # what group_vars/all gives


@dataclass
class Context:
    inventory: Inventory
    settings: Settings
    roster: Roster

    @property
    def problems(self):
        return self.settings.problems + self.roster.problems + self._telephony[0]

    @property
    def warnings(self):
        """What is left out of the configuration (e.g. a revoked queue agent): reported, never blocks."""
        return self._telephony[1]

    @functools.cached_property
    def _telephony(self):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.telephony import inventory_check

        pbx = {h: self.inventory.hostvars.get(h, {}) for h in self.inventory.groups.get("pbx_hosts", [])}
        return inventory_check(self.inventory.all_vars, pbx, self.roster, self.settings.region,
                               source=f"{self.inventory.source} (group_vars)")


def inventory_source(path):
    path = Path(path)
    if path.is_dir() and (path / "hosts.yml").exists():
        return path / "hosts.yml"
    return path


def load_inventory(path):
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.manager import VariableManager

    source = inventory_source(path)
    if not source.exists():
        raise FileNotFoundError(f"inventory {source} does not exist")
    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    variables = VariableManager(loader=loader, inventory=inventory)
    result = Inventory(source=str(source))
    for name, group in inventory.groups.items():
        result.groups[name] = sorted(h.name for h in group.get_hosts())
    skip = {"groups", "hostvars", "omit", "playbook_dir", "inventory_dir", "inventory_file",
            "ansible_playbook_python", "ansible_config_file", "ansible_version", "group_names",
            "inventory_hostname", "inventory_hostname_short", "ansible_facts", "environment"}
    for host in inventory.get_hosts():
        hv = variables.get_vars(host=host, include_hostvars=False)
        result.hostvars[host.name] = {k: plain(v) for k, v in hv.items() if k not in skip and not k.startswith("ansible_")}
    local = inventory.localhost or inventory.get_host("localhost")
    av = variables.get_vars(host=local, include_hostvars=False) if local else {}
    result.all_vars = {k: plain(v) for k, v in av.items() if k not in skip and not k.startswith("ansible_")}
    return result


def default_roster(inventory):
    roster = inventory.all_vars.get("teleshift_roster_file")
    if roster and not Path(roster).is_absolute():
        base = Path(inventory.source)
        roster = str((base if base.is_dir() else base.parent) / roster)
    return roster


def load_context(roster_path, inventory_path):
    inventory = load_inventory(inventory_path)
    settings = load_settings(inventory.all_vars, source=f"{inventory.source} (group_vars)")
    roster_path = roster_path or default_roster(inventory)
    if not roster_path:
        roster = Roster(problems=[Problem(str(inventory.source), 0, "teleshift_roster_file",
                                          "no roster given (--roster) and none set in the inventory")])
    else:
        roster = load_roster(roster_path, services=settings.services.keys(), region=settings.region)
    return Context(inventory=inventory, settings=settings, roster=roster)
