"""What the operations subcommands (plan, waves, kits, report, status, run) share: the same
--roster/--inventory options, the same Problem list and exit code on bad input, and where the
inventory keeps its state files and kits."""
from __future__ import annotations

import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import parse_override, plan_capacity
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import StateError

from teleshift_cli import paths
from teleshift_cli.context import absolute, load_context
from teleshift_cli.errors import CliError

EXIT_INPUT = 1  # bad roster/inventory (same as `teleshift validate`)
EXIT_USAGE = 2


def add_input_arguments(parser):
    parser.add_argument("--roster", help="roster file (.csv, .xlsx or .yml); default: the inventory's "
                                         "teleshift_roster_source (a directory) or teleshift_roster_file")
    parser.add_argument("--inventory", default=str(paths.LAB_INVENTORY),
                        help="inventory directory or hosts file (default: the lab)")
    parser.add_argument("--allow-mass-removal", action="store_true",
                        help="confirm a roster that removes or deactivates many of the people served today")
    parser.add_argument("--vault-password-file", metavar="FILE",
                        help="Ansible Vault password file (or executable) for vault values in the inventory, such as "
                             "the directory's bind password; default: ANSIBLE_VAULT_PASSWORD_FILE")


def add_capacity_arguments(parser):
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a capacity assumption, e.g. --set teleshift_capacity_phone_blocking=0.02 "
                             "(repeatable; names: see `teleshift plan --assumptions`)")


class InputError(Exception):
    """Bad roster or inventory: carries the exit code; the problems are already printed."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def load(args, need_valid=True, selected=None):
    """The Context for args.roster/args.inventory (the front door), validated for the ``selected``
    capabilities (None: all); prints every problem and raises InputError, prints the warnings."""
    try:
        ctx = load_context(args.roster, args.inventory, kits_dir=getattr(args, "kits_dir", None), selected=selected,
                           allow_mass_removal=getattr(args, "allow_mass_removal", False),
                           vault_password_file=getattr(args, "vault_password_file", None))
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise InputError(EXIT_USAGE) from None
    if need_valid and ctx.problems:
        print_problems(ctx.problems)
        raise InputError(EXIT_INPUT)
    print_warnings(ctx.warnings)
    return ctx


def print_warnings(warnings):
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)


def print_problems(problems):
    print(f"{len(problems)} problem(s) found; nothing is done until they are fixed:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)


def guarded(func):
    """Wrap a subcommand so InputError becomes its exit code."""
    def run(args):
        try:
            return func(args)
        except InputError as exc:
            return exc.code
    run.__doc__ = func.__doc__
    return run


def inventory_dir(ctx):
    return Path(ctx.inputs.inventory_dir)


def kits_root(ctx, override=None):
    """The kits root: ``override`` (a command-line path, relative to the current directory), else the
    inventory's teleshift_kits_dir (relative to the inventory)."""
    root = Path(absolute(override)) if override else ctx.inputs.kits_root()
    if root is not None and root.exists() and not root.is_dir():
        raise CliError(f"kits directory {root} is not a directory")
    return root


def load_states(ctx):
    """capability name -> its public state mapping ({} when it has none or it cannot be read)."""
    result = {}
    for cap in registry.capabilities():
        try:
            result[cap.name] = ctx.inputs.state(cap)
        except StateError as exc:
            print(f"warning: {exc}", file=sys.stderr)
            result[cap.name] = {}
    return result


def overrides(args):
    result = {}
    for text in getattr(args, "overrides", []) or []:
        try:
            name, value = parse_override(text)
        except ValueError as exc:
            print(f"error: --set {exc}", file=sys.stderr)
            raise InputError(EXIT_USAGE) from None
        result[name] = value
    return result


def capacity(ctx, args):
    plan = plan_capacity(ctx.inputs, overrides(args))
    if plan.problems:
        print_problems(plan.problems)
        raise InputError(EXIT_INPUT)
    return plan


def hotline(ctx):
    return str(ctx.inventory.all_vars.get("teleshift_hotline_number") or "")
