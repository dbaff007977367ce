"""What the operations subcommands (plan, waves, kits, report, status, run) share: the same
--roster/--inventory options, the same Problem list and exit code on bad input, and where the
inventory keeps its state files and kits."""
from __future__ import annotations

import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import parse_override, plan_capacity
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state

from teleshift_cli import paths
from teleshift_cli.context import load_context
from teleshift_cli.errors import CliError

CAPABILITIES = ("vpn", "desktop", "phone")
# state file name in <inventory>/state/ for each capability (several names accepted: the
# capability's own issue chooses; the first that exists wins)
STATE_FILES = {"vpn": ("vpn.yml", "wireguard.yml"), "desktop": ("desktop.yml", "xrdp.yml"),
               "phone": ("phone.yml", "telephony.yml", "asterisk.yml")}
EXIT_INPUT = 1  # bad roster/inventory (same as `teleshift validate`)
EXIT_USAGE = 2


def add_input_arguments(parser):
    parser.add_argument("--roster", help="roster file (.csv or .yml); default: teleshift_roster_file of the inventory")
    parser.add_argument("--inventory", default=str(paths.LAB_INVENTORY),
                        help="inventory directory or hosts file (default: the lab)")


def add_capacity_arguments(parser):
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="NAME=VALUE",
                        help="override a capacity assumption, e.g. --set teleshift_capacity_phone_blocking=0.02 "
                             "(repeatable; names: see `teleshift plan --assumptions`)")


class InputError(Exception):
    """Bad roster or inventory: carries the exit code; the problems are already printed."""

    def __init__(self, code):
        super().__init__(code)
        self.code = code


def load(args, need_valid=True):
    """The Context for args.roster/args.inventory; prints every problem and raises InputError."""
    try:
        ctx = load_context(args.roster, args.inventory)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise InputError(EXIT_USAGE) from None
    if need_valid and ctx.problems:
        print_problems(ctx.problems)
        raise InputError(EXIT_INPUT)
    return ctx


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
    source = Path(ctx.inventory.source)
    return source if source.is_dir() else source.parent


def kits_root(ctx, override=None):
    """--kits-dir is relative to the current directory; teleshift_kits_dir to the inventory's."""
    value = override or ctx.inventory.all_vars.get("teleshift_kits_dir")
    if not value:
        return None
    root = Path(override).expanduser().resolve() if override else resolve_path(value, inventory_dir(ctx))
    if root.exists() and not root.is_dir():
        raise CliError(f"kits directory {root} is not a directory")
    return root


def load_states(ctx):
    """capability -> its public state mapping ({} when the capability has not written one)."""
    result = {}
    state_dir = inventory_dir(ctx) / "state"
    for cap, names in STATE_FILES.items():
        result[cap] = {}
        for name in names:
            path = state_dir / name
            if path.exists():
                try:
                    result[cap] = load_state(path)
                except (ValueError, OSError) as exc:
                    print(f"warning: {path}: {exc}", file=sys.stderr)
                break
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
    plan = plan_capacity(ctx.roster.people, ctx.inventory.groups, ctx.inventory.hostvars,
                         ctx.inventory.all_vars, overrides(args), load_states(ctx),
                         source=f"{ctx.inventory.source} (group_vars)")
    if plan.problems:
        print_problems(plan.problems)
        raise InputError(EXIT_INPUT)
    return plan


def hotline(ctx):
    return str(ctx.inventory.all_vars.get("teleshift_hotline_number") or "")
