"""teleshift plan: the capacity needed by the roster against what the inventory provides."""
import json
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import known_assumptions

from teleshift_cli import ops
from teleshift_cli.outputs import check_output, write_text


def register(sub):
    p = sub.add_parser(
        "plan", help="capacity check: VPN peers/throughput/licences, desktop sessions, trunk channels",
        description="Compare what the roster needs with what the inventory provides: VPN peers and throughput "
                    "per gateway and licences; remote-desktop sessions against host memory and CPU; trunk "
                    "channels from Erlang B (a forwarded call holds two channels). Every assumption is a named "
                    "input (teleshift_capacity_* in the inventory, --set on the command line). Exit 0 when "
                    "everything fits, 3 when capacity falls short, 1 on bad roster/inventory.")
    ops.add_input_arguments(p)
    ops.add_capacity_arguments(p)
    p.add_argument("--format", choices=("table", "json"), default="table",
                   help="table (terminal, default) or json (standard output, for CI)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="also write the plan as JSON to FILE")
    p.add_argument("--assumptions", action="store_true", help="list every assumption, its value and source")
    p.set_defaults(func=ops.guarded(run))


EXIT_SHORT = 3


def run(args):
    check_output(args.json_file, "JSON file", protected=[args.roster])
    ctx = ops.load(args)
    plan = ops.capacity(ctx, args)
    data = plan.as_dict()
    data["roster"] = ctx.roster.source
    data["people"] = len(ctx.roster.active())
    if args.json_file:
        write_text(args.json_file, json.dumps(data, indent=2, sort_keys=True) + "\n", "JSON file",
                   protected=[ctx.roster.source])
    if args.format == "json":
        json.dump(data, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        show(plan, args.assumptions)
    return 0 if plan.ok else EXIT_SHORT


def _fmt(value):
    if value is None:
        return "not set"
    return f"{value:g}" if isinstance(value, float) else str(value)


def show(plan, with_assumptions):
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Capacity plan", show_lines=False)
    for col, justify in (("capability", "left"), ("resource", "left"), ("host", "left"), ("needed", "right"),
                         ("available", "right"), ("unit", "left"), ("used", "right"), ("", "left"), ("note", "left")):
        table.add_column(col, justify=justify)
    for c in plan.checks:
        share = c.used_share
        table.add_row(c.capability, c.resource, c.host or "(all)", _fmt(c.needed), _fmt(c.available), c.unit,
                      f"{share:.0%}" if share is not None else "-",
                      "[green]ok[/green]" if c.ok and c.available is not None else (
                          "[yellow]?[/yellow]" if c.available is None else "[bold red]SHORT[/bold red]"),
                      c.note)
    console.print(table)
    for cap in plan.not_configured:
        console.print(f"[bold red]{cap}: people need it but the inventory has no host for it[/bold red]")
    for cap, ids in plan.unplaced.items():
        if ids:
            console.print(f"[bold red]{cap}: {len(ids)} people fit on no host[/bold red] "
                          f"(first: {', '.join(ids[:5])})")
    if with_assumptions:
        known = known_assumptions()
        at = Table(title="Assumptions")
        for col in ("name", "value", "source", "meaning"):
            at.add_column(col)
        for a in plan.assumptions.values():
            at.add_row(a.name, _fmt(a.value), a.source, known[a.name][2])
        console.print(at)
    console.print("[green]capacity is sufficient[/green]" if plan.ok
                  else f"[bold red]capacity falls short ({len(plan.shortfalls)} check(s))[/bold red]")
