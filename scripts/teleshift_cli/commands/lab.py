"""teleshift lab up|down|status: the real-host lab of podman containers (see teleshift_cli.lab)."""
import sys

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
    return sub


def run(args):
    from teleshift_cli import lab  # imported late: keeps other subcommands fast
    try:
        if args.lab_action == "up":
            lab.lab_up(args.inventory, rebuild=args.rebuild, timeout=args.timeout)
            rows = lab.lab_status(args.inventory)
        elif args.lab_action == "down":
            lab.lab_down(args.inventory)
            return 0
        else:
            rows = lab.lab_status(args.inventory)
    except lab.LabError as exc:
        print(f"error: lab {args.lab_action}: {exc}", file=sys.stderr)
        return 2
    print(lab.format_status(rows))
    return 0 if all(r.healthy for r in rows) else 1
