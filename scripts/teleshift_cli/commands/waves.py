"""teleshift waves: who gets a laptop / licence in which wave, and who waits."""
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import plan_waves, write_csv

from teleshift_cli import ops


def _stock(text):
    """N or N1,N2,... (deliveries per wave)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{text!r}: expected N or N1,N2,... (whole numbers)") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{text!r}: stock cannot be negative")
    return values


def register(sub):
    p = sub.add_parser(
        "waves", help="rollout plan in waves when laptops or licences are fewer than people",
        description="Order people for equipment: services with 'continuity: critical' first, then priority, then "
                    "service; hand out laptops (device=laptop) and VPN licences (needs vpn) within the stock, "
                    "--per-wave people per wave. Writes a CSV for the teams handing out equipment.")
    ops.add_input_arguments(p)
    p.add_argument("--laptops", help="laptops in stock: N, or deliveries per wave N1,N2,... (default: unlimited)")
    p.add_argument("--licences", help="VPN licences: N or N1,N2,... (default: teleshift_vpn_licences, else unlimited)")
    p.add_argument("--per-wave", type=int, default=0, help="people equipped per wave (default 0: no limit)")
    p.add_argument("--output", "-o", default="-", help="CSV file to write, or - for standard output (default)")
    p.set_defaults(func=ops.guarded(run))


def run(args):
    ctx = ops.load(args)
    try:
        laptops = _stock(args.laptops) if args.laptops else None
        licences = _stock(args.licences) if args.licences else None
        if licences is None and ctx.inventory.all_vars.get("teleshift_vpn_licences") is not None:
            licences = [int(ctx.inventory.all_vars["teleshift_vpn_licences"])]
        plan = plan_waves(ctx.roster.people, ctx.settings.services, laptops, licences, args.per_wave)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ops.EXIT_USAGE
    if args.output == "-":
        write_csv(plan, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as stream:
            write_csv(plan, stream)
    summary = plan.by_wave()
    parts = [f"wave {w}: {v['people']} people ({v['laptops']} laptops, {v['licences']} licences)"
             for w, v in summary.items() if w]
    waiting = summary.get(0, {"people": 0})["people"]
    print("; ".join(parts) + f"; waiting: {waiting}" + ("" if args.output == "-" else f" -> {args.output}"),
          file=sys.stderr)
    return 0
