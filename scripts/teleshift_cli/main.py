"""Entry point: builds the argument parser from every module in teleshift_cli.commands.

Each command module exposes ``register(subparsers)``; adding a subcommand means adding a module,
never editing this file.
"""
import argparse
import importlib
import pkgutil
import sys

from teleshift_cli import commands


def build_parser():
    parser = argparse.ArgumentParser(
        prog="teleshift",
        description="Move an organisation to telework from one staff roster.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
