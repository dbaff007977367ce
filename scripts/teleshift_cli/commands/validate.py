"""teleshift validate: check a roster (and the inventory's settings) without touching a host, with the same
code as the playbooks' preflight (the front door: plugins/module_utils/inputs.py)."""
import json
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

from teleshift_cli import ops
from teleshift_cli.errors import describe


def register(sub):
    p = sub.add_parser("validate", help="check the roster and inventory; list every problem",
                       description="Validate the roster and the inventory's settings for every capability (or "
                                   "--capability), with the same code as the playbooks' preflight (capacity is "
                                   "`teleshift plan`'s). Exit 0 when valid, 1 with the full list of problems "
                                   "(file:line: field: message), 2 when the inventory cannot be read. Warnings "
                                   "(entries dropped because they name people who left) do not fail. --format json "
                                   "prints one JSON object for CI: valid, problems and warnings [{source, line, "
                                   "field, message}], counts.")
    ops.add_input_arguments(p)
    p.add_argument("--capability", action="append", metavar="NAME",
                   help="validate only what this capability applies (repeatable; default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text",
                   help="text (default) or json (standard output, for CI)")
    p.set_defaults(func=ops.guarded(run))


def _problem(p):
    return {"source": p.source, "line": p.line, "field": p.field, "message": p.message}


def _json(data):
    json.dump(data, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")


def run(args):
    as_json = args.format == "json"
    if args.capability:
        try:
            registry.select(args.capability)
        except KeyError as exc:
            print(f"error: unknown capability {exc} (known: {', '.join(registry.names())})", file=sys.stderr)
            return ops.EXIT_USAGE
    try:
        ctx = ops.load(args, need_valid=False, selected=args.capability)
        problems, warnings = ctx.problems, ctx.warnings
    except Exception as exc:  # the inventory cannot be read: one line, and JSON for CI
        if not as_json or isinstance(exc, ops.InputError):
            raise  # main() makes it one line
        message, code = describe(exc, args.inventory)
        _json({"valid": False, "roster": args.roster, "inventory": args.inventory, "counts": {},
               "problems": [{"source": str(args.inventory), "line": 0, "field": "", "message": message}],
               "warnings": []})
        print(f"error: {message}", file=sys.stderr)
        return code
    people = ctx.roster.people
    active = [p for p in people if p.active]
    counts = {c.name: sum(1 for p in people if c.wants(p)) for c in registry.select(args.capability)
              if c.configured(ctx.inputs)}
    if as_json:
        _json({"valid": not problems, "roster": ctx.roster.source, "inventory": ctx.inventory.source,
               "counts": {"people": len(people), "active": len(active), **counts,
                          "services": len({p.service for p in people})},
               "problems": [_problem(p) for p in problems], "warnings": [_problem(w) for w in warnings]})
        if problems:
            print(f"{len(problems)} problem(s) found; nothing is applied until they are fixed", file=sys.stderr)
        return ops.EXIT_INPUT if problems else 0
    if problems:
        print(f"{len(problems)} problem(s) found; nothing is applied until they are fixed:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return ops.EXIT_INPUT
    print(f"{ctx.roster.source}: {len(people)} people valid ({len(active)} active; "
          + ", ".join(f"{name} {n}" for name, n in counts.items())
          + f") across {len({p.service for p in people})} services")
    return 0
