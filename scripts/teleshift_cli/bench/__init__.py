"""teleshift benchmarks: scripts/bench <vpn|desktop|telephony|ops> [options].

Each benchmark prints its figures as it measures them; its last line is one JSON object with every
figure (seconds) and ratio. Benchmarks live in scripts/teleshift_cli/bench/<name>.py, each exposing
``add_arguments(parser)`` and ``run(args) -> dict`` (scripts/bench is the launcher scripts/teleshift under
another name).

Each playbook run of a benchmark leaves its output, with per-task timings (profile_tasks), in
build/bench/<benchmark>-<n>-<step>.log: where the seconds went.
"""
from __future__ import annotations

import argparse
import importlib
import itertools
import json
import pkgutil
from pathlib import Path

LOG_DIR = Path(__file__).resolve().parents[3] / "build" / "bench"
PROFILE_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks", "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25"}
_counter = itertools.count(1)


def save_log(bench, step, text):
    """Keep a playbook's output for the reader; returns the path."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{bench}-{next(_counter):02d}-{step}.log"
    path.write_text(text or "", encoding="utf-8")
    return path


def main():
    parser = argparse.ArgumentParser(prog="bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="name", metavar="BENCHMARK")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        p = sub.add_parser(info.name, help=(module.__doc__ or "").strip().split("\n")[0])
        module.add_arguments(p)
        p.set_defaults(module=module)
    args = parser.parse_args()
    figures = args.module.run(args)
    print(json.dumps({"benchmark": args.name, **figures}, sort_keys=True))
    return 0
