"""What every subcommand starts from: the front door's Inputs (plugins/module_utils/inputs.py: the
inventory read with Ansible's own API, the organisation's settings and the roster, the same code the
playbooks' action plugins use), with the shapes the subcommands read."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door


@dataclass
class Inventory:
    source: str  # the hosts file
    groups: dict = field(default_factory=dict)  # group -> [host]
    hostvars: dict = field(default_factory=dict)  # host -> vars
    all_vars: dict = field(default_factory=dict)  # what group_vars/all gives


@dataclass
class Context:
    inputs: object
    inventory: Inventory
    selected: object = None  # capability names validated (None: all)
    allow_mass_removal: bool = False
    _findings: object = None

    @property
    def settings(self):
        return self.inputs.settings

    @property
    def roster(self):
        return self.inputs.roster

    def findings(self):
        if self._findings is None:
            self._findings = front_door.validate(self.inputs, self.selected,
                                                 allow_mass_removal=self.allow_mass_removal or None)
        return self._findings

    @property
    def problems(self):
        return self.findings().problems

    @property
    def warnings(self):
        return self.findings().warnings


def absolute(path):
    """A path given on the command line, relative to the current directory."""
    return str(Path(path).expanduser().resolve()) if path else None


def load_context(roster_path, inventory_path, kits_dir=None, selected=None, allow_mass_removal=False,
                 vault_password_file=None):
    """The Context of a subcommand; raises FileNotFoundError when the inventory does not exist."""
    from teleshift_cli.paths import ROOT

    inputs = front_door.from_inventory(inventory_path, roster=absolute(roster_path), kits_dir=absolute(kits_dir),
                                       vault_password_file=absolute(vault_password_file), project=ROOT)
    inventory = Inventory(source=inputs.inventory_source, groups=inputs.groups, hostvars=inputs.hostvars,
                          all_vars=inputs.all_vars)
    return Context(inputs=inputs, inventory=inventory, selected=selected, allow_mass_removal=allow_mass_removal)
