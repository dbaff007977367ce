"""Laptops handed out by wave (docs/laptops.md): `teleshift waves --assign WAVE` matches the free laptops
of the laptops file to the people of a wave who need one; `--reassign LAPTOP=PERSON` and `--release
LAPTOP` change one laptop (host name, serial number or MAC address). The assignment is the public state
file state/laptops.yml; playbooks/laptops.yml then puts each person's kit on their laptop and wipes a
laptop handed to someone else."""
from __future__ import annotations

import datetime
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import station as S
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state

from teleshift_cli.errors import EXIT_INPUT, CliError


def add_arguments(parser):
    group = parser.add_argument_group("laptops (the laptops file, teleshift_laptops_file; state/laptops.yml)")
    group.add_argument("--assign", type=int, metavar="WAVE",
                       help="hand a free laptop of the laptops file to everyone of wave WAVE who needs one")
    group.add_argument("--reassign", metavar="LAPTOP=PERSON", action="append", default=[],
                       help="give a laptop (host, serial or MAC) to another person; its holder's files are wiped "
                            "on the next run of playbooks/laptops.yml")
    group.add_argument("--release", metavar="LAPTOP", action="append", default=[],
                       help="a laptop back to the stock (wiped on the next run)")


def wanted(args):
    return args.assign is not None or args.reassign or args.release


def today():
    return datetime.date.today().isoformat()


def apply(args, ctx, plan):
    """Change state/laptops.yml as asked; prints what changed. Returns the exit code."""
    cap = registry.get("telework_station")
    inputs = ctx.inputs
    laptops, problems = cap.laptops(inputs)
    if problems:
        raise CliError("the laptops file has problems:\n  " + "\n  ".join(map(str, problems)), EXIT_INPUT)
    if not laptops:
        raise CliError(f"no laptops file ({cap.laptops_file(inputs)}): set teleshift_laptops_file", EXIT_INPUT)
    state = inputs.state(cap)
    people = {p.id: p for p in inputs.roster.people}
    when = today()
    try:
        if args.assign is not None:
            if not 1 <= args.assign <= max(plan.waves, 1):
                raise ValueError(f"--assign {args.assign}: the plan has waves 1 to {plan.waves}")
            state, given, short = S.assign_wave(plan.entries, args.assign, laptops, state, when)
            for pid, host in given:
                print(f"laptop {host} -> {pid} (wave {args.assign})", file=sys.stderr)
            if short:
                print(f"warning: no free laptop in the laptops file for {len(short)} person(s) of wave "
                      f"{args.assign}: {', '.join(short[:10])}", file=sys.stderr)
        for text in args.reassign:
            key, sep, pid = text.partition("=")
            if not sep:
                raise ValueError(f"--reassign {text!r}: expected LAPTOP=PERSON")
            state, before = S.reassign(state, laptops, key.strip(), pid.strip(), when, people)
            print(f"laptop {key.strip()}: {before or '(free)'} -> {pid.strip()}", file=sys.stderr)
        for key in args.release:
            state, before = S.release(state, laptops, key, when)
            print(f"laptop {key}: {before or '(free)'} -> (free)", file=sys.stderr)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    path = inputs.path(cap.state_file)
    if save_state(path, state):
        print(f"{path} written: run playbooks/laptops.yml to apply", file=sys.stderr)
    return 0
