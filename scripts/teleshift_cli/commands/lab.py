"""teleshift lab up|down|status: the real-host lab of podman containers (see teleshift_cli.lab)."""
import sys
from pathlib import Path

from teleshift_cli.paths import LAB_INVENTORY


def register(subparsers):
    parser = subparsers.add_parser(
        "lab", help="run the lab: real Debian hosts as systemd containers (podman)",
        description="The lab is defined by its inventory (teleshift_lab_* vars in hosts.yml).")
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION")
    actions.required = True
    up = _action(actions, "up", "build missing images, create or repair every lab host")
    up.add_argument("--rebuild", action="store_true", help="rebuild the base images first")
    up.add_argument("--timeout", type=int, default=180, help="seconds to wait for each boot")
    _action(actions, "down", "remove the lab's containers and networks")
    _action(actions, "status", "show every lab host; exit 1 if any is not healthy")
    parser.set_defaults(func=run)


def _action(actions, name, text):
    sub = actions.add_parser(name, help=text, description=text)
    sub.add_argument("--inventory", "-i", default=str(LAB_INVENTORY),
                     help="lab inventory directory or hosts.yml (default: inventories/lab)")
    sub.add_argument("--gateways", type=int, default=None, metavar="N",
                     help="a sized lab of N VPN gateways (generated under build/lab/, see teleshift_cli/labsize.py)")
    sub.add_argument("--desktops", type=int, default=None, metavar="M", help="a sized lab of M desktop hosts")
    sub.add_argument("--laptops", type=int, default=None, metavar="L",
                     help="add L stock laptop stand-ins (group telework_stations, docs/laptops.md)")
    return sub


def inventory(args):
    """The inventory the action works on: the given one, or the sized lab generated from it."""
    if args.gateways is None and args.desktops is None and not args.laptops:
        return args.inventory
    from teleshift_cli import labsize

    gateways = 1 if args.gateways is None else args.gateways
    desktops = 1 if args.desktops is None else args.desktops
    laptops = args.laptops or 0
    for name, value, most in (("gateways", gateways, labsize.MAX_GATEWAYS),
                              ("desktops", desktops, labsize.MAX_DESKTOPS)):
        if not 1 <= value <= most:
            raise labsize.SizeError(f"--{name} must be from 1 to {most}, got {value}")
    if gateways == desktops == 1 and not laptops:
        return args.inventory  # the lab as defined (its generated hosts are removed by `up`)
    base = Path(args.inventory)
    base = base.parent if base.is_file() else base
    path = labsize.sized_inventory(gateways, desktops, base=base, laptops=laptops)
    print(f"lab: sized lab inventory {path}", file=sys.stderr)
    return str(path)


def run(args):
    from teleshift_cli import lab  # imported late: keeps other subcommands fast
    from teleshift_cli.labsize import SizeError
    try:
        where = inventory(args)
        if args.lab_action == "up":
            lab.lab_up(where, rebuild=args.rebuild, timeout=args.timeout)
            rows = lab.lab_status(where)
        elif args.lab_action == "down":
            lab.lab_down(where)
            return 0
        else:
            rows = lab.lab_status(where)
    except (lab.LabError, SizeError, OSError) as exc:
        print(f"error: lab {args.lab_action}: {exc}", file=sys.stderr)
        return 2
    print(lab.format_status(rows))
    return 0 if all(r.healthy for r in rows) else 1
