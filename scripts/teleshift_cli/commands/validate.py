"""teleshift validate: check a roster (and the inventory's service policies) without touching a host."""
import json
import sys

from teleshift_cli import paths
from teleshift_cli.context import load_context
from teleshift_cli.errors import describe


def register(sub):
    p = sub.add_parser("validate", help="check the roster and inventory; list every problem",
                       description="Validate the roster against the inventory's services. Exit 0 when "
                                   "valid, 1 with the full list of problems (file:line: field: message), 2 when "
                                   "the inventory cannot be read. --format json prints one JSON object for CI: "
                                   "valid, problems [{source, line, field, message}], counts.")
    p.add_argument("--roster", help="roster file (.csv or .yml); default: teleshift_roster_file of the inventory")
    p.add_argument("--inventory", default=str(paths.LAB_INVENTORY), help="inventory directory or file (default: the lab)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json (standard output, for CI)")
    p.set_defaults(func=run)


def _problem(p):
    return {"source": p.source, "line": p.line, "field": p.field, "message": p.message}


def _json(data):
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def run(args):
    as_json = args.format == "json"
    try:
        ctx = load_context(args.roster, args.inventory)
        problems = ctx.problems
    except Exception as exc:  # noqa: BLE001 - the inventory cannot be read: one line, and JSON for CI
        if not as_json:
            raise  # main() makes it one line
        message, code = describe(exc, args.inventory)
        _json({"valid": False, "roster": args.roster, "inventory": args.inventory, "counts": {},
               "problems": [{"source": str(args.inventory), "line": 0, "field": "", "message": message}]})
        print(f"error: {message}", file=sys.stderr)
        return code
    people = ctx.roster.people
    active = [p for p in people if p.active]
    needs = {n: sum(1 for p in active if n in p.needs) for n in ("vpn", "desktop", "phone")}
    if as_json:
        _json({"valid": not problems, "roster": ctx.roster.source, "inventory": ctx.inventory.source,
               "counts": {"people": len(people), "active": len(active), **needs,
                          "services": len({p.service for p in people})},
               "problems": [_problem(p) for p in problems]})
        if problems:
            print(f"{len(problems)} problem(s) found; nothing is applied until they are fixed", file=sys.stderr)
        return 1 if problems else 0
    if problems:
        print(f"{len(problems)} problem(s) found; nothing is applied until they are fixed:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print(f"{ctx.roster.source}: {len(people)} people valid ({len(active)} active; "
          f"vpn {needs['vpn']}, desktop {needs['desktop']}, phone {needs['phone']}) "
          f"across {len({p.service for p in people})} services")
    return 0
