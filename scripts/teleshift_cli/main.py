"""Entry point: builds the argument parser from every module in teleshift_cli.commands.

Each command module exposes ``register(subparsers)``; adding a subcommand means adding a module,
never editing this file. Whatever a subcommand raises ends as one line on standard error and a
non-zero exit (teleshift_cli.errors); TELESHIFT_DEBUG=1 lets the traceback through.
"""
import argparse
import importlib
import os
import pkgutil
import sys

from teleshift_cli import commands
from teleshift_cli.errors import EXIT_BROKEN_PIPE, describe, silence_stdout


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
        code = args.func(args) or 0
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        silence_stdout()
        print("error: standard output was closed before everything was written (broken pipe)", file=sys.stderr)
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # the one place every error becomes one line
        if os.environ.get("TELESHIFT_DEBUG") == "1":
            raise
        message, code = describe(exc, getattr(args, "inventory", None))
        print(f"error: {message}", file=sys.stderr)
        return code
