# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The single input front door: roster + inventory + settings, loaded and validated once.

Every action plugin (``from_task_vars``) and the command line (``from_inventory``) build an ``Inputs``
the same way, then ask ``validate(inputs, capabilities)`` for the problems and warnings of what they
are about to apply: the roster and the settings always (an unreadable row could be anyone), each
selected capability's own checks (the registry), and the mass-removal guard. ``site.yml`` selects
every capability; a capability's own playbook selects only itself, so a stale queue entry can never
keep a leaver's VPN open.

Paths set in the inventory (roster, kits, state) are relative to ``teleshift_base_dir`` when it is set
(an absolute path, e.g. a persistent volume under AWX, or relative to the project), else to the
inventory directory (controller.base_dir); a generated inventory (AWX's job inventory script) without
it is a problem. Paths given on a command line are made absolute by the command line before they reach
here.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry, roster_ldap
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import (
    ID_RE, Problem, Roster, format_problems, load_roster)
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings

# Share of the people served today that a run may remove or deactivate without confirmation, and the
# number of people below which no share applies (a small team losing one person is not an accident).
MASS_REMOVAL_SHARE = 0.10
MASS_REMOVAL_MIN = 5
ALLOW_MASS_REMOVAL = "teleshift_allow_mass_removal"
# Variables every capability may read, besides each capability's own (Capability.variables).
GLOBAL_PREFIX = "teleshift_"
HOST_KEYS = ("ansible_host",)
# Results the playbooks register on the controller (teleshift_<capability>_plan, teleshift_preflight):
# never settings, and a plan result holds every gateway's slice, so templating it for each later plan
# cost 2 s at 50,000 people. tests/unit/test_inputs.py checks every `register:` follows this pattern.
REGISTERED = re.compile(r"teleshift_(?:\w+_plan|preflight|lab_up)\Z")


@dataclass
class Inputs:
    inventory_dir: str
    all_vars: dict = field(default_factory=dict)  # organisation-wide variables (plain Python)
    hostvars: dict = field(default_factory=dict)  # host -> its variables (plain Python)
    groups: dict = field(default_factory=dict)  # group -> [host]
    roster: Roster = None
    settings: object = None
    source: str = "inventory"  # how problems name the inventory
    kits_override: str = ""
    now: float = 0.0  # the clock status verdicts use (0: time.time())
    # capabilities whose state file this run has just written from their plan (vpn.yml: vpn_plan, then
    # mfa_plan): their placements are read back from it instead of planned again
    fresh_states: set = field(default_factory=set)
    _states: dict = field(default_factory=dict, repr=False)
    _memo: dict = field(default_factory=dict, repr=False)
    presence: object = field(default=None, repr=False)  # kit_presence.Presence, when a plan asked for one

    # --- paths
    def path(self, value):
        path = Path(os.path.expanduser(str(value)))
        return path if path.is_absolute() else (Path(self.inventory_dir) / path).resolve()

    def kits_root(self):
        value = self.kits_override or self.all_vars.get("teleshift_kits_dir")
        return self.path(value) if value else None

    def kit_holders(self, rel):
        """Ids whose kit holds ``rel`` (a path in a kit folder) as looked up at the start, or None when
        nobody looked it up (check each person)."""
        return self.presence.holders(rel) if self.presence is not None else None

    def kit_times(self, rel):
        """{id: st_mtime_ns} of a folder in each kit (``rel``) as looked up at the start, or None."""
        return self.presence.times(rel) if self.presence is not None else None

    def hosts(self, group):
        return list(self.groups.get(group, []))

    def hostvar(self, host, name, default=None):
        value = (self.hostvars.get(host) or {}).get(name)
        return default if value is None else value

    # --- public state files (read once; ids checked before anyone uses them in a path)
    def state(self, capability):
        cap = registry.get(capability) if isinstance(capability, str) else capability
        if not cap.state_file:
            return {}
        if cap.name not in self._states:
            from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state

            path = self.path(cap.state_file)
            try:
                data = load_state(path)
            except (OSError, ValueError) as exc:
                raise StateError(f"{path}: {exc}") from None
            self._states[cap.name] = checked_state(data, str(path))
        return self._states[cap.name]

    def use_state(self, capability, data):
        """``data`` as this run's state of ``capability`` from now on: the state its plan has just made
        (and written, unless in check mode), which a later step of the same task must see."""
        cap = registry.get(capability) if isinstance(capability, str) else capability
        self._states[cap.name] = data

    def memo(self, key, build):
        """``build()`` once per Inputs (a plan several checks need)."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]


class StateError(ValueError):
    """A state file that cannot be read or holds unsafe ids."""


def checked_state(data, source):
    """The state mapping with every person id checked: an id that is not a roster id (``../x``) is
    refused, since ids name kit directories."""
    for section in ("people", "retired"):
        entries = data.get(section)
        if entries is None:
            continue
        if not isinstance(entries, dict):
            raise StateError(f"{source}: {section} must be a mapping of person id to entry")
        bad = sorted(str(k) for k in entries if not ID_RE.fullmatch(str(k)))
        if bad:
            raise StateError(f"{source}: {section}: {', '.join(map(repr, bad[:5]))} "
                             f"{'is not a person id' if len(bad) == 1 else 'are not person ids'}")
    return data


def build_inputs(all_vars, hostvars, groups, inventory_dir, roster=None, kits_dir=None, source="inventory",
                 base_problem=None, probe_kits=(), probe_folders=()):
    """Inputs from plain variables. ``roster`` and ``kits_dir``: overrides (absolute paths);
    ``base_problem``: why relative paths cannot be resolved (nothing is read then); ``probe_kits``:
    kit files whose holders are looked up beside the rest (``Inputs.kit_holders``), ``probe_folders``:
    kit folders whose times are (``Inputs.kit_times``)."""
    inputs = Inputs(inventory_dir=str(inventory_dir), all_vars=dict(all_vars), hostvars=dict(hostvars),
                    groups={str(k): [str(h) for h in v] for k, v in groups.items()}, source=source,
                    kits_override=str(kits_dir or ""))
    inputs.settings = load_settings(inputs.all_vars, source=source)
    if (probe_kits or probe_folders) and not base_problem:
        from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_presence import Presence

        inputs.presence = Presence(inputs.kits_root(), probe_kits, probe_folders)
    roster_path = roster or inputs.all_vars.get("teleshift_roster_file")
    if base_problem:
        inputs.roster = Roster(problems=[Problem(source, 0, "teleshift_base_dir", base_problem)])
    elif not roster and roster_ldap.configured(inputs.all_vars):  # the directory; a --roster file overrides it
        inputs.roster = roster_ldap.load_from_settings(
            inputs.all_vars[roster_ldap.VAR], inputs.path, services=inputs.settings.services.keys(),
            region=inputs.settings.region, where=source)
    elif roster_path and not isinstance(roster_path, str):
        inputs.roster = Roster(problems=[Problem(source, 0, "teleshift_roster_file",
                                                 f"expected a file name, got {roster_path!r}")])
    elif not roster_path:
        inputs.roster = Roster(problems=[Problem(source, 0, "teleshift_roster_file",
                                                 "no roster: set teleshift_roster_file in the inventory")])
    else:
        inputs.roster = load_roster(inputs.path(roster_path), services=inputs.settings.services.keys(),
                                    region=inputs.settings.region)
    return inputs


def validate(inputs, selected=None, allow_mass_removal=None, capacity=False):
    """Findings for applying ``selected`` capabilities (names; None = all). Roster and settings
    problems always count; each capability's own findings come from the registry. ``capacity``: also
    what stops the planners from placing everyone (preflight and the playbooks; ``validate`` leaves
    capacity to ``teleshift plan``)."""
    found = registry.Findings()
    found.problems += list(inputs.settings.problems) + list(inputs.roster.problems)
    if inputs.roster.ok and not inputs.roster.people:
        found.problems.append(Problem(inputs.roster.source, 0, "", "the roster holds nobody"))
    for cap in registry.select(selected):
        try:
            mine = cap.validate(inputs)
            if capacity and not mine.problems:
                mine.problems += cap.shortfalls(inputs)
            found.extend(mine)
        except StateError as exc:
            found.problems.append(Problem(inputs.source, 0, cap.state_file, str(exc)))
    if not found.problems:
        if allow_mass_removal is None:
            allow_mass_removal = inputs.all_vars.get(ALLOW_MASS_REMOVAL) in (True, "true", "yes", "1", 1)
        guard = mass_removal(inputs, selected)
        if guard and not allow_mass_removal:
            found.problems.append(guard)
        elif guard:
            found.warnings.append(Problem(guard.source, 0, guard.field, guard.message + " (confirmed)"))
    return found


def served_now(inputs, cap):
    return inputs.memo(f"{cap.name}.served", lambda: {p.id for p in cap.users(inputs)})


def mass_removal(inputs, selected=None):
    """A Problem when the run would remove or deactivate more than a share of the people its
    capabilities serve today (a truncated HR export), or leave nobody; else None."""
    before, after = set(), set()
    for cap in registry.select(selected):
        if not cap.state_file:
            continue
        try:
            served = cap.served_in_state(inputs.state(cap)) if hasattr(cap, "served_in_state") \
                else cap.people_in_state(inputs.state(cap))
        except StateError:
            continue
        before |= served
        after |= served_now(inputs, cap)
    if not before:
        return None
    gone = before - after
    share = _number(inputs.all_vars.get("teleshift_mass_removal_share"), MASS_REMOVAL_SHARE)
    least = int(_number(inputs.all_vars.get("teleshift_mass_removal_min"), MASS_REMOVAL_MIN))
    if after and (len(gone) <= share * len(before) or len(gone) < least):
        return None
    first = ", ".join(sorted(gone)[:5]) + (" ..." if len(gone) > 5 else "")
    what = ("nobody would keep access" if not after
            else f"{len(gone)} of {len(before)} people ({len(gone) / len(before):.0%})")
    return Problem(inputs.roster.source, 0, "",
                   f"mass removal: {what} would lose access ({first}); if the roster is right, confirm with "
                   f"--allow-mass-removal (command line) or -e {ALLOW_MASS_REMOVAL}=true (playbooks)")


def _number(value, default):
    try:
        return default if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return default


# --------------------------------------------------------------------------------------------
# Building Inputs where Ansible runs: an action plugin's task variables, or an inventory on disk
# --------------------------------------------------------------------------------------------

def _wanted(name, prefixes):
    return (name.startswith(prefixes) or name in HOST_KEYS) and not REGISTERED.match(name)


def _prefixes():
    found = [GLOBAL_PREFIX]
    for cap in registry.capabilities():
        found += list(getattr(cap, "variables", ()))
    return tuple(dict.fromkeys(found))


def refused(result, found, headline):
    """For a plan action: ``found``'s warnings into its ``result``; with problems, the result failed
    (each problem listed under ``headline``) and True returned: the action stops, nothing is applied."""
    if found.warnings:
        result["warnings"] = [str(w) for w in found.warnings]
    if not found.problems:
        return False
    result.update(failed=True, problems=[str(p) for p in found.problems],
                  msg=f"{headline}\n" + format_problems(found.problems))
    return True


def open_plan(templar, task_vars, args, result, capability, headline, selected=None, capacity=True,
              probe_kits=()):
    """The opening every plan action shares: its Inputs (``roster`` and ``kits_dir`` from the task's
    ``args``), validated for ``selected`` (default: the capability alone, so a stale setting of another
    never blocks or keeps anyone in); ``probe_kits``: see ``build_inputs``. Returns the Inputs, or None
    when refused (``result`` says why)."""
    inputs = from_task_vars(templar, task_vars, roster=args.get("roster"), kits_dir=args.get("kits_dir"),
                            probe_kits=probe_kits)
    found = validate(inputs, selected or [capability], capacity=capacity)
    return None if refused(result, found, headline) else inputs


def refused_also(result, inputs, selected, headline):
    """A plan task that also plans ``selected`` (vpn_plan's gate, desktop_plan's second factor) checks
    them before anything is written: True when refused (``result`` says why); the roster's warnings,
    found by both checks, appear once."""
    warnings = result.pop("warnings", [])
    found = validate(inputs, selected, capacity=False)
    refusal = refused(result, found, headline)
    warnings = list(dict.fromkeys(warnings + result.pop("warnings", [])))
    if warnings:
        result["warnings"] = warnings
    return refusal


def from_task_vars(templar, task_vars, roster=None, kits_dir=None, probe_kits=(), probe_folders=()):
    """Inputs from an action plugin's ``task_vars``: the global variables and every host's
    variables whose names teleshift or a capability reads, templated (vault values decrypted)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import BASE_VAR, inventory_dir, plain

    prefixes = _prefixes()
    all_vars = {k: plain(templar.template(v)) for k, v in task_vars.items()
                if k.startswith(GLOBAL_PREFIX) and not REGISTERED.match(k)}
    groups = {str(g): [str(h) for h in hosts] for g, hosts in (task_vars.get("groups") or {}).items()}
    hostvars = {}
    source = task_vars.get("hostvars") or {}
    for host in sorted({h for hosts in groups.values() for h in hosts}):
        try:
            hv = source[host]
            names = [k for k in hv.keys() if _wanted(str(k), prefixes)]
        except (KeyError, TypeError):
            continue
        # a host's copy of an organisation-wide value (same object, nothing to template) is taken from
        # all_vars: templating every global again for every host cost 0.15 s a plan at 5,000 people
        raw = getattr(hv, "_vars", None) or {}
        hostvars[host] = {str(k): all_vars[k] if k in all_vars and k in raw and raw[k] is task_vars.get(k)
                          and _static(raw[k]) else plain(templar.template(hv[k])) for k in names}
    try:
        base, problem = inventory_dir({**task_vars, BASE_VAR: all_vars.get(BASE_VAR)}), None
    except ValueError as exc:
        base, problem = "", str(exc)
    return build_inputs(all_vars, hostvars, groups, base, roster=roster, kits_dir=kits_dir, base_problem=problem,
                        probe_kits=probe_kits, probe_folders=probe_folders)


def _static(value):
    """True when ``value`` holds no template and nothing encrypted (the same for every host)."""
    if isinstance(value, str):
        return "{" not in value
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, dict):
        return all(isinstance(k, str) and _static(v) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return all(_static(v) for v in value)
    return False  # a vault value, or anything else: templated


def from_inventory(path, roster=None, kits_dir=None, vault_password_file=None, project=None):
    """Inputs from an inventory directory or hosts file, read with Ansible's own inventory API (the
    same variables the playbooks see), vault values decrypted with ``vault_password_file`` (else
    ANSIBLE_VAULT_PASSWORD_FILE or ansible.cfg's). ``project``: what a relative teleshift_base_dir is
    relative to (the checkout; default: the current directory). Raises FileNotFoundError when it does
    not exist."""
    # Controller only (the command line): Ansible's own inventory API, imported here, never on a host.
    # pylint: disable=ansible-bad-module-import
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar
    from ansible.vars.manager import VariableManager

    from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import BASE_VAR, base_dir

    source = Path(path)
    if source.is_dir():
        for name in ("hosts.yml", "hosts.yaml", "hosts"):
            if (source / name).exists():
                source = source / name
                break
    if not source.exists():
        raise FileNotFoundError(f"inventory {source} does not exist")
    loader = DataLoader()
    _vault_secrets(loader, vault_password_file)
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    variables = VariableManager(loader=loader, inventory=inventory)
    prefixes = _prefixes()
    groups = {name: sorted(h.name for h in group.get_hosts()) for name, group in inventory.groups.items()}
    hostvars = {}
    for host in inventory.get_hosts():
        hv = variables.get_vars(host=host, include_hostvars=False)
        templar = Templar(loader=loader, variables=hv)
        hostvars[host.name] = {k: _templated(templar, v) for k, v in hv.items() if _wanted(k, prefixes)}
    local = inventory.localhost or inventory.get_host("localhost")
    av = variables.get_vars(host=local, include_hostvars=False) if local else {}
    templar = Templar(loader=loader, variables=av)
    all_vars = {k: _templated(templar, v) for k, v in av.items() if k.startswith(GLOBAL_PREFIX)}
    base = source.parent if source.is_file() else source
    try:
        base, problem = base_dir(all_vars.get(BASE_VAR), str(project or os.getcwd()), base.resolve(), source), None
    except ValueError as exc:
        problem = str(exc)
    inputs = build_inputs(all_vars, hostvars, groups, base, roster=roster, kits_dir=kits_dir,
                          source=f"{source} (group_vars)", base_problem=problem)
    inputs.inventory_source = str(source)
    return inputs


def _vault_secrets(loader, password_file=None):
    """Give ``loader`` the vault password from ``password_file`` (a file, or an executable printing
    it), else from ANSIBLE_VAULT_PASSWORD_FILE / ansible.cfg; none: vault values stay undecryptable."""
    # Controller only (the command line), like from_inventory. pylint: disable=ansible-bad-module-import
    from ansible import constants as C
    from ansible.parsing.vault import get_file_vault_secret

    files = password_file or C.DEFAULT_VAULT_PASSWORD_FILE or []
    files = [files] if isinstance(files, str) else list(files)
    secrets = []
    for name in files:
        secret = get_file_vault_secret(filename=os.path.expanduser(str(name)), loader=loader)
        secret.load()
        secrets.append(("default", secret))
    if not secrets:
        return
    loader.set_vault_secrets(secrets)
    try:  # ansible-core 2.19+: decryption reads a process-wide context, set once
        from ansible.parsing.vault import VaultSecretsContext
    except ImportError:
        return
    current = VaultSecretsContext.current(optional=True)
    if current is None:
        VaultSecretsContext.initialize(VaultSecretsContext(secrets))
    else:
        current.secrets = secrets + [s for s in current.secrets if s not in secrets]


def _templated(templar, value):
    """``value`` templated as plain Python; a vault value without its password is one clear error."""
    # Controller only (the command line), like from_inventory. pylint: disable=ansible-bad-module-import
    from ansible.errors import AnsibleError

    from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import plain

    try:
        return plain(templar.template(value))
    except AnsibleError as exc:
        if "ndecryptable" in str(exc) or "vault" in str(exc).lower():
            raise AnsibleError("the inventory holds Ansible Vault values and no vault password was given: "
                               "--vault-password-file FILE or ANSIBLE_VAULT_PASSWORD_FILE") from None
        raise
