"""teleshift validate: check a roster (and the inventory's service policies) without touching a host."""
import sys

from teleshift_cli import paths
from teleshift_cli.context import load_context


def register(sub):
    p = sub.add_parser("validate", help="check the roster and inventory; list every problem",
                       description="Validate the roster against the inventory's services. Exit 0 when "
                                   "valid, 1 with the full list of problems (file:line: field: message).")
    p.add_argument("--roster", help="roster file (.csv or .yml); default: teleshift_roster_file of the inventory")
    p.add_argument("--inventory", default=str(paths.LAB_INVENTORY), help="inventory directory or file (default: the lab)")
    p.set_defaults(func=run)


def run(args):
    try:
        ctx = load_context(args.roster, args.inventory)
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if ctx.problems:
        print(f"{len(ctx.problems)} problem(s) found; nothing is applied until they are fixed:", file=sys.stderr)
        for problem in ctx.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    people = ctx.roster.people
    active = [p for p in people if p.active]
    needs = {n: sum(1 for p in active if n in p.needs) for n in ("vpn", "desktop", "phone")}
    print(f"{ctx.roster.source}: {len(people)} people valid ({len(active)} active; "
          f"vpn {needs['vpn']}, desktop {needs['desktop']}, phone {needs['phone']}) "
          f"across {len({p.service for p in people})} services")
    return 0
