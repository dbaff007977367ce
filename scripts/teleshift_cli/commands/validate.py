"""teleshift validate: check a roster (and the inventory's settings) without touching a host, with the same
code as the playbooks' preflight (the front door: plugins/module_utils/inputs.py)."""
import json
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

from teleshift_cli import ops


def register(sub):
    p = sub.add_parser("validate", help="check the roster and inventory; list every problem",
                       description="Validate the roster and the inventory's settings for every capability (or "
                                   "--capability), exactly as the playbooks' preflight does. Exit 0 when valid, 1 "
                                   "with the full list of problems (file:line: field: message). Warnings (entries "
                                   "dropped because they name people who left) do not fail.")
    ops.add_input_arguments(p)
    p.add_argument("--capability", action="append", metavar="NAME",
                   help="validate only what this capability applies (repeatable; default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json (for CI)")
    p.set_defaults(func=ops.guarded(run))


def _as_dict(problem):
    return {"source": problem.source, "line": problem.line, "field": problem.field, "message": problem.message}


def run(args):
    if args.capability:
        try:
            registry.select(args.capability)
        except KeyError as exc:
            print(f"error: unknown capability {exc} (known: {', '.join(registry.names())})", file=sys.stderr)
            return ops.EXIT_USAGE
    ctx = ops.load(args, need_valid=False, selected=args.capability)
    people = ctx.roster.people
    active = [p for p in people if p.active]
    counts = {c.name: sum(1 for p in people if c.wants(p)) for c in registry.select(args.capability)
              if c.configured(ctx.inputs)}
    if args.format == "json":
        json.dump({"ok": not ctx.problems, "roster": ctx.roster.source, "people": len(people), "active": len(active),
                   "capabilities": counts, "problems": [_as_dict(p) for p in ctx.problems],
                   "warnings": [_as_dict(w) for w in ctx.warnings]}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
        return ops.EXIT_INPUT if ctx.problems else 0
    if ctx.problems:
        print(f"{len(ctx.problems)} problem(s) found; nothing is applied until they are fixed:", file=sys.stderr)
        for problem in ctx.problems:
            print(f"  {problem}", file=sys.stderr)
        return ops.EXIT_INPUT
    print(f"{ctx.roster.source}: {len(people)} people valid ({len(active)} active; "
          + ", ".join(f"{name} {n}" for name, n in counts.items())
          + f") across {len({p.service for p in people})} services")
    return 0
