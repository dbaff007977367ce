"""teleshift waves: who gets a laptop / licence in which wave, and who waits."""
import sys

from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import whole_number
from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import MAX_WAVES, plan_waves, write_csv

from teleshift_cli import laptops as handout
from teleshift_cli import ops
from teleshift_cli.errors import EXIT_INPUT, CliError
from teleshift_cli.outputs import check_output, open_output

MAX_STOCK = 10_000_000  # more laptops or licences than any organisation: a typo


def _stock(text):
    """N or N1,N2,... (deliveries per wave)."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"{text!r}: expected N or N1,N2,... (whole numbers)") from None
    if any(v < 0 for v in values):
        raise ValueError(f"{text!r}: stock cannot be negative")
    if any(v > MAX_STOCK for v in values) or len(values) > MAX_WAVES:
        raise ValueError(f"{text!r}: at most {MAX_WAVES} deliveries of at most {MAX_STOCK} each")
    return values


def stock_setting(cli, value, name, option):
    """Deliveries from the command line (``option``) or else the inventory variable ``name``."""
    if cli is not None:
        try:
            return _stock(cli)
        except ValueError as exc:
            raise CliError(f"{option} {exc}") from None
    if value is None:
        return None
    values = [whole_number(v) for v in (value if isinstance(value, list) else [value])]
    if not all(v is not None and v <= MAX_STOCK for v in values) or not values or len(values) > MAX_WAVES:
        raise CliError(f"inventory variable {name}: expected a whole number or a list of whole numbers "
                       f"from 0 to {MAX_STOCK}, got {value!r}", EXIT_INPUT)
    return values


def per_wave_value(value, origin):
    number = whole_number(value)
    if number is None or number > MAX_STOCK:
        raise CliError(f"{origin}: expected a whole number from 0 to {MAX_STOCK}, got {value!r}",
                       EXIT_INPUT if origin.startswith("inventory") else 2)
    return number


def register(sub):
    p = sub.add_parser(
        "waves", help="rollout plan in waves when laptops or licences are fewer than people",
        description="Order people for equipment: services with 'continuity: critical' first, then priority, then "
                    "service; hand out laptops (device=laptop) and VPN licences (needs vpn) within the stock, "
                    "--per-wave people per wave. Writes a CSV for the teams handing out equipment (cells a "
                    "spreadsheet would run as formulas are written as text).")
    ops.add_input_arguments(p)
    p.add_argument("--laptops", help="laptops in stock: N, or deliveries per wave N1,N2,... (default: unlimited)")
    p.add_argument("--licences", help="VPN licences: N or N1,N2,... (default: teleshift_vpn_licences, else unlimited)")
    p.add_argument("--per-wave", type=int, default=0, help="people equipped per wave (default 0: no limit)")
    p.add_argument("--output", "-o", default="-", help="CSV file to write, or - for standard output (default)")
    p.add_argument("--excel", action="store_true",
                   help="CSV for French Excel: UTF-8 with byte order mark, ';' between cells, CRLF line ends")
    handout.add_arguments(p)
    p.set_defaults(func=ops.guarded(run))


def run(args):
    per_wave = per_wave_value(args.per_wave, "--per-wave")
    laptops = stock_setting(args.laptops, None, "", "--laptops")
    check_output(args.output, "CSV", protected=[args.roster])
    ctx = ops.load(args)
    licences = stock_setting(args.licences, ctx.inventory.all_vars.get("teleshift_vpn_licences"),
                             "teleshift_vpn_licences", "--licences")
    try:
        plan = plan_waves(ctx.roster.people, ctx.settings.services, laptops, licences, per_wave)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ops.EXIT_USAGE
    with open_output(args.output, "CSV", excel=args.excel, protected=[ctx.roster.source]) as stream:
        write_csv(plan, stream, excel=args.excel)
    summary = plan.by_wave()
    parts = [f"wave {w}: {v['people']} people ({v['laptops']} laptops, {v['licences']} licences)"
             for w, v in summary.items() if w]
    waiting = summary.get(0, {"people": 0})["people"]
    print("; ".join(parts) + f"; waiting: {waiting}" + ("" if args.output == "-" else f" -> {args.output}"),
          file=sys.stderr)
    return handout.apply(args, ctx, plan) if handout.wanted(args) else 0
