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
# ansible.cfg's callback (reused module payloads) stays on beside the timings
PROFILE_ENV = {"ANSIBLE_CALLBACKS_ENABLED": "teleshift.toolkit.ansiballz_cache,ansible.posix.profile_tasks",
               "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "25"}
_counter = itertools.count(1)


def save_log(bench, step, text):
    """Keep a playbook's output for the reader; returns the path."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    path = LOG_DIR / f"{bench}-{next(_counter):02d}-{step}.log"
    path.write_text(text or "", encoding="utf-8")
    return path


def task_times(text, top=5):
    """[(task, seconds)] of the slowest tasks in a playbook's profile_tasks summary: where the time went."""
    import re

    found = []
    for line in (text or "").splitlines():
        match = re.match(r"^(.+?) -+ (\d+\.\d+)s\s*$", line.strip())  # long names get 1 or 2 dashes
        if match:
            found.append((match.group(1).strip(), float(match.group(2))))
    return sorted(found, key=lambda t: -t[1])[:top]


def where(text, top=4):
    """The slowest tasks as one line: 'plan 3.1 s, gateway peers 2.0 s, ...'."""
    return ", ".join(f"{_short(name)} {secs:.1f} s" for name, secs in task_times(text, top)) or "(no task timings)"


def _short(name, width=60):
    """A task name cut after its first words (what names the task), not in the middle of one."""
    if len(name) <= width:
        return name
    return name[:width].rsplit(" ", 1)[0].rstrip(" ,(") + "..."


# Creating an empty file costs about 20 µs on this machine's quiet file system. ext4 without a journal
# (the lab machine's /: /proc/fs/jbd2 is empty) passes over the inodes freed in the last minutes each
# time it allocates one, reading each one's inode block: right after 50,000 kits were deleted, 50,000
# new kits took 143 s of kernel time (5,000: 0.5 s when quiet), and the state lasted eight to thirteen minutes.
# The benchmarks measure it before their first converge and say so, so that a file system's state is
# not read as teleshift's speed (the issue of a benchmark run right after another one).
SLOW_CREATE_US = 60


def file_creation_us(where, count=300):
    """Microseconds to create one empty file in a new folder under ``where`` (the mean of ``count``).
    The files stay (in ``where``, removed with it): deleting them now would add freed inodes."""
    import os
    import tempfile
    import time

    probe = tempfile.mkdtemp(prefix=".file-system-probe-", dir=where)
    start = time.perf_counter()
    for i in range(count):
        os.close(os.open(os.path.join(probe, f"f{i}"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    return (time.perf_counter() - start) / count * 1e6


def check_file_system(where, say=print):
    """The cost of a file creation under ``where`` (µs), with a warning when the file system is slow
    to create files now (see SLOW_CREATE_US)."""
    cost = round(file_creation_us(where), 1)
    if cost > SLOW_CREATE_US:
        say(f"warning: creating a file under {where} takes {cost:.0f} µs now, about 20 on a quiet file "
            "system: the first converge will measure the file system too (ext4 without a journal passes "
            "over the inodes freed in the last minutes: were 50,000 kits just deleted?)")
    return cost


GROWTH_SIZES = (5000, 50000)


def growth(bench, key, people, figures, names, say=print):
    """Keep ``figures`` in build/bench/<bench>-<key>-<people>.json; when the figures of the other size
    (5,000 <-> 50,000, same benchmark and ``key``) are there, print and return the cost per person at
    the larger size over the cost per person at the smaller one (1.0: linear; 2.0: twice as much a
    person), for each figure in ``names``."""
    import json

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    mine = LOG_DIR / f"{bench}-{key}-{people}.json"
    mine.write_text(json.dumps({"people": people, **figures}, sort_keys=True, default=str), encoding="utf-8")
    other_size = next((s for s in GROWTH_SIZES if s != people), None) if people in GROWTH_SIZES else None
    other = LOG_DIR / f"{bench}-{key}-{other_size}.json"
    if other_size is None or not other.exists():
        say(f"growth: run the other size ({' and '.join(map(str, GROWTH_SIZES))}) to see the cost per person grow")
        return {}
    theirs = json.loads(other.read_text(encoding="utf-8"))
    small, big = (theirs, figures) if other_size < people else (figures, theirs)
    n_small, n_big = min(people, other_size), max(people, other_size)
    ratios = {}
    for name in names:
        a, b = small.get(name), big.get(name)
        if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0:
            ratios[name] = round((b / n_big) / (a / n_small), 2)
            say(f"growth {name}: {a:.2f} s for {n_small} -> {b:.2f} s for {n_big}: {ratios[name]}x the cost per person")
    return ratios


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
