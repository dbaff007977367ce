"""teleshift roster generate: synthetic rosters for demos and benchmarks."""
import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people


def register(sub):
    p = sub.add_parser("roster", help="roster tools (generate)")
    rsub = p.add_subparsers(dest="roster_command", metavar="ACTION")
    rsub.required = True
    g = rsub.add_parser("generate", help="write a realistic synthetic roster",
                        description="Write a synthetic roster (CSV): French names, ~20 services, "
                                    "valid mobiles. The same --seed always gives the same file.")
    g.add_argument("--count", type=int, default=5000, help="number of people (default 5000)")
    g.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    g.add_argument("--output", "-o", default="-", help="output .csv file, or - for standard output")
    g.set_defaults(func=generate)


def generate(args):
    if args.count < 1:
        print("error: --count must be at least 1", file=sys.stderr)
        return 2
    people = generate_people(args.count, args.seed)
    if args.output == "-":
        write_csv(people, sys.stdout)
    else:
        with open(args.output, "w", encoding="utf-8", newline="") as stream:
            write_csv(people, stream)
        print(f"wrote {len(people)} people to {Path(args.output)}", file=sys.stderr)
    return 0
