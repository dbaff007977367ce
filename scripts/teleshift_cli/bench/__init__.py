"""Benchmarks for scripts/bench: one module per benchmark (add_arguments, run).

Each playbook run of a benchmark leaves its output, with per-task timings (profile_tasks), in
build/bench/<benchmark>-<n>-<step>.log: where the seconds went.
"""
from __future__ import annotations

import itertools
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
