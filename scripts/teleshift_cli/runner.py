"""Run a playbook through ansible-runner, turning its event stream into a progress display and a
summary: hosts, ok, changed, failed, unreachable, skipped, duration (JSON artefact for CI)."""
from __future__ import annotations

import difflib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from teleshift_cli import paths

RESULT_EVENTS = {"runner_on_ok": "ok", "runner_on_failed": "failed", "runner_on_unreachable": "unreachable",
                 "runner_on_skipped": "skipped"}


@dataclass
class RunSummary:
    """Folds ansible-runner events into counts; ``feed`` is the event handler."""
    playbook: str
    inventory: str
    started: float = field(default_factory=time.monotonic)
    task: str = ""
    tasks: int = 0
    results: int = 0
    hosts: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    warnings: list = field(default_factory=list)  # what a task warned about (e.g. a revoked agent left out)
    stats_seen: bool = False

    def _host(self, name):
        return self.hosts.setdefault(name, {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0, "skipped": 0})

    def feed(self, event):
        kind = event.get("event", "")
        data = event.get("event_data", {}) or {}
        if kind == "playbook_on_task_start":
            self.tasks += 1
            self.task = data.get("task", "") or data.get("name", "")
        elif kind in RESULT_EVENTS and data.get("host"):
            self.results += 1
            for warning in ((data.get("res") or {}).get("warnings") or [])[:200]:
                self.warnings.append({"host": data["host"], "task": data.get("task", ""), "msg": str(warning)[:500]})
            if kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                res = data.get("res", {}) or {}
                self.failures.append({"host": data["host"], "task": data.get("task", ""),
                                      "unreachable": kind == "runner_on_unreachable",
                                      "msg": str(res.get("msg", ""))[:500]})
        elif kind == "playbook_on_stats":
            self.stats_seen = True
            for key, target in (("ok", "ok"), ("changed", "changed"), ("failures", "failed"),
                                ("dark", "unreachable"), ("skipped", "skipped")):
                for host, n in (data.get(key) or {}).items():
                    self._host(host)[target] = int(n)
            for host in (data.get("processed") or {}):
                self._host(host)
        return True

    def totals(self):
        keys = ("ok", "changed", "failed", "unreachable", "skipped")
        return {k: sum(h[k] for h in self.hosts.values()) for k in keys}

    def as_dict(self, status, rc):
        return {"playbook": self.playbook, "inventory": self.inventory, "status": status, "rc": rc,
                "duration": round(time.monotonic() - self.started, 2), "tasks": self.tasks,
                "hosts": dict(sorted(self.hosts.items())), "totals": self.totals(),
                "failed_hosts": sorted(h for h, v in self.hosts.items() if v["failed"] or v["unreachable"]),
                "failures": self.failures, "warnings": self.warnings}


DIFF_EVENTS = ("runner_on_ok", "runner_on_failed", "runner_item_on_ok", "runner_item_on_failed")
DIFF_FLAGS = {"dst_binary": "diff skipped: the destination looks binary",
              "src_binary": "diff skipped: the source looks binary",
              "dst_larger": "diff skipped: the destination is larger than {}",
              "src_larger": "diff skipped: the source is larger than {}"}


def _diff_side(value):
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, indent=4, sort_keys=True) + "\n"
    return str(value)


def format_diff(event):
    """The diff a task reported in ``--diff`` mode, as unified diff text (None when there is none).
    Results of tasks with no_log are never shown: Ansible has already censored them, and a result
    marked no_log is skipped even if it still carries a diff."""
    if event.get("event") not in DIFF_EVENTS:
        return None
    data = event.get("event_data") or {}
    res = data.get("res") or {}
    if not isinstance(res, dict) or res.get("_ansible_no_log") or "censored" in res:
        return None
    diffs = res.get("diff")
    diffs = [diffs] if isinstance(diffs, dict) else diffs
    if not diffs or not isinstance(diffs, list):
        return None
    out = []
    for diff in (d for d in diffs if isinstance(d, dict)):
        out += [DIFF_FLAGS[k].format(diff[k]) + "\n" for k in DIFF_FLAGS if k in diff]
        if "before" in diff and "after" in diff:
            before, after = _diff_side(diff["before"]), _diff_side(diff["after"])
            head = (f"before: {diff['before_header']}" if diff.get("before_header") else "before",
                    f"after: {diff['after_header']}" if diff.get("after_header") else "after")
            lines = list(difflib.unified_diff(before.splitlines(True), after.splitlines(True), *head))
            out += [line if line.endswith("\n") else line + "\n" for line in lines]
        if diff.get("prepared"):
            out.append(str(diff["prepared"]).rstrip("\n") + "\n")
    if not out:
        return None
    item = f" (item {data['item']})" if event["event"].startswith("runner_item") and "item" in data else ""
    return f"=== {data.get('host', '?')}: {data.get('task', '')}{item}\n" + "".join(out)


def run_playbook(playbook, inventory, summary, extra_args=(), extravars=None, limit=None, on_event=None,
                 timeout=None):
    """Run ``playbook`` with ansible-runner; returns (status, rc). Artifacts go to a temporary dir."""
    import ansible_runner

    def handler(event):
        summary.feed(event)
        if on_event:
            on_event(event)
        return False  # do not keep event files on disk: the summary has what CI needs

    bindir = str(Path(sys.executable).parent)  # the venv's ansible-playbook, even when PATH lacks it
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    envvars = {"ANSIBLE_CONFIG": os.environ.get("ANSIBLE_CONFIG", str(paths.ROOT / "ansible.cfg")),
               "ANSIBLE_FORCE_COLOR": "0"}
    with tempfile.TemporaryDirectory(prefix="teleshift-run-") as private:
        kwargs = dict(private_data_dir=private, playbook=str(Path(playbook).resolve()),
                      inventory=str(Path(inventory).resolve()), envvars=envvars, quiet=True,
                      event_handler=handler, cmdline=" ".join(extra_args) or None, extravars=extravars or None,
                      project_dir=str(paths.ROOT), limit=limit)
        if timeout:
            kwargs["timeout"] = int(timeout)
        runner = ansible_runner.run(**{k: v for k, v in kwargs.items() if v is not None})
    return runner.status, runner.rc


def write_artefact(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
