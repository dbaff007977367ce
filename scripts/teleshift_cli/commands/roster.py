"""teleshift roster generate: synthetic rosters for demos and benchmarks; teleshift roster export: what
the inventory's roster source (the directory, or a file) yields, as a CSV."""
import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.csvsafe import SafeWriter
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import COLUMNS, to_row
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

from teleshift_cli import ops
from teleshift_cli.errors import CliError
from teleshift_cli.outputs import check_output, open_output

MAX_COUNT = 1_000_000  # well beyond any organisation, and bounded in memory


def register(sub):
    p = sub.add_parser("roster", help="roster tools (generate, export)")
    rsub = p.add_subparsers(dest="roster_command", metavar="ACTION")
    rsub.required = True
    g = rsub.add_parser("generate", help="write a realistic synthetic roster",
                        description="Write a synthetic roster (CSV): French names, ~20 services, "
                                    "valid mobiles. The same --seed always gives the same file.")
    g.add_argument("--count", type=int, default=5000, help="number of people (default 5000)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    g.add_argument("--output", "-o", default="-", help="output .csv file, or - for standard output")
    g.add_argument("--excel", action="store_true",
                   help="CSV for French Excel: UTF-8 with byte order mark, ';' between cells, CRLF line ends")
    g.set_defaults(func=generate)
    e = rsub.add_parser("export", help="write the people the roster source yields (e.g. the directory) as a CSV",
                        description="Read the inventory's roster source (teleshift_roster_source: the directory, "
                                    "else teleshift_roster_file) through the same front door as every command, "
                                    "validate it and write its people as a roster CSV (for audit, CI or a frozen "
                                    "copy). Exit 1 with every problem (a directory entry's DN and attribute) and "
                                    "nothing written when the source is not clean.")
    ops.add_input_arguments(e)
    e.add_argument("--output", "-o", default="-", help="output .csv file, or - for standard output")
    e.add_argument("--excel", action="store_true", help="CSV for French Excel (BOM, ';', CRLF)")
    e.set_defaults(func=ops.guarded(export))


def write_roster_csv(people, stream, excel=False):
    """The roster as `teleshift validate` reads it back; formula-like cells neutralised."""
    writer = SafeWriter(stream, excel=excel)
    writer.writerow(list(COLUMNS))
    for person in people:
        row = to_row(person)
        writer.writerow([row[c] for c in COLUMNS])


def generate(args):
    if not 1 <= args.count <= MAX_COUNT:
        raise CliError(f"--count must be from 1 to {MAX_COUNT}, got {args.count}")
    check_output(args.output, "roster")
    people = generate_people(args.count, args.seed)
    with open_output(args.output, "roster", excel=args.excel) as stream:
        write_roster_csv(people, stream, excel=args.excel)
    if args.output != "-":
        print(f"wrote {len(people)} people to {Path(args.output)}", file=sys.stderr)
    return 0


def export(args):
    check_output(args.output, "roster", protected=[args.roster])
    ctx = ops.load(args, need_valid=False, selected=[])  # the source and the settings, no capability
    if ctx.problems:
        ops.print_problems(ctx.problems)
        return ops.EXIT_INPUT
    check_output(args.output, "roster", protected=[ctx.roster.source])
    people = ctx.roster.people
    with open_output(args.output, "roster", excel=args.excel) as stream:
        write_roster_csv(people, stream, excel=args.excel)
    active = sum(1 for p in people if p.active)
    where = "standard output" if args.output == "-" else Path(args.output)
    print(f"{ctx.roster.source}: {len(people)} people ({active} active) written to {where}", file=sys.stderr)
    return 0
