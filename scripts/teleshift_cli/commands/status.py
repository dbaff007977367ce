"""teleshift status PERSON: everything about one person for the hotline, queried live."""
import json
import sys

from teleshift_cli import ops
from teleshift_cli.errors import CliError

STYLE = {"ok": "green", "problem": "bold red", "unknown": "yellow", "not configured": "yellow",
         "not needed": "dim"}


def register(sub):
    p = sub.add_parser(
        "status", help="one person at a glance for the hotline: VPN, desktop session, phone forwarding",
        description="Look the person up in the roster (id, email or extension), then ask their hosts: gateway "
                    "and last handshake, desktop host and whether a session is open, forwarding as configured "
                    "on the PBX, and what is wrong. An unreachable host shows as 'unknown'. Exit 0 when "
                    "nothing is wrong, 4 when something is.")
    p.add_argument("person", help="person id, email or desk extension")
    ops.add_input_arguments(p)
    p.add_argument("--kits-dir", help="kits root (default: teleshift_kits_dir of the inventory)")
    p.add_argument("--timeout", type=float, default=15, help="seconds per host query (default 15)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a panel")
    p.set_defaults(func=ops.guarded(run))


def find(people, key):
    key = key.strip().lower()
    for p in people:
        if key in (p.id, p.email.lower()) or (p.extension and key == p.extension):
            return p
    return None


def run(args):
    from teleshift_cli.status import Env, HostRunner, as_dict, person_status

    if not 0 < args.timeout <= 3600:
        raise CliError(f"--timeout must be more than 0 and at most 3600 seconds, got {args.timeout}")
    ctx = ops.load(args)
    person = find(ctx.roster.people, args.person)
    if person is None:
        print(f"error: {args.person!r} is not in the roster (id, email or extension)", file=sys.stderr)
        return ops.EXIT_USAGE
    kits_root = ops.kits_root(ctx, args.kits_dir)
    env = Env(ctx=ctx, runner=HostRunner(ctx.inventory.source, timeout=args.timeout), kits_root=kits_root)
    statuses = person_status(person, env)
    data = as_dict(person, statuses)
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        show(person, statuses, ctx)
    return 4 if data["problems"] else 0


def show(person, statuses, ctx):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    label = (ctx.settings.services.get(person.service) or {}).get("label", person.service)
    console.print(f"[bold]{person.full_name}[/bold] ({person.id}) · {label} · priority {person.priority} · "
                  f"{person.device} · {'active' if person.active else '[red]inactive[/red]'}")
    table = Table(show_header=True)
    table.add_column("capability")
    table.add_column("state")
    table.add_column("details")
    table.add_column("what is wrong")
    for cap, s in statuses.items():
        details = "\n".join(f"{k}: {v}" for k, v in s.facts.items())
        table.add_row(cap, f"[{STYLE.get(s.state, 'white')}]{s.state}[/]", details, "\n".join(s.problems))
    console.print(table)
