"""telephony: 5,000 extensions with forwarding on the lab PBX: first converge, re-run, one forwarding change.

Runs playbooks/telephony.yml against ts-pbx1 with a synthetic roster (the lab roster's people kept, so the
lab's queues and attendants stay valid) and a throw-away kits directory, then converges the lab roster
again so the lab is left as it was. Targets (issue 5): first < 60 s, re-run < 10 s, change < 5 s, no reload.
"""
import csv
import io
import json
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster, parse_roster, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

from teleshift_cli import paths

TARGETS = {"first_converge_s": 60.0, "rerun_s": 10.0, "forwarding_change_s": 5.0}


def add_arguments(parser):
    parser.add_argument("--count", type=int, default=5000, help="synthetic people (default 5000)")
    parser.add_argument("--seed", type=int, default=5, help="roster generator seed")
    parser.add_argument("--no-restore", action="store_true", help="leave the synthetic roster on the lab PBX")


def _env():
    return dict(os.environ, ANSIBLE_CONFIG=str(paths.ROOT / "ansible.cfg"),
                ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
                CONTAINERS_CONF=os.environ.get("CONTAINERS_CONF",
                                               str(paths.ROOT / ".cache" / "lab" / "containers.conf")))


def _playbook(*args):
    start = time.perf_counter()
    result = subprocess.run([str(paths.ROOT / ".venv" / "bin" / "ansible-playbook"), "playbooks/telephony.yml",
                             "--limit", "pbx_hosts", *args], cwd=paths.ROOT, env=_env(), capture_output=True,
                            text=True, timeout=900)
    elapsed = time.perf_counter() - start
    try:
        output = json.loads(result.stdout[result.stdout.index("{"):])
    except ValueError:
        output = {}
    from teleshift_cli.bench import save_log

    save_log("telephony", "telephony", _timings(output) + "\n" + result.stdout[-20000:] + result.stderr[-5000:])
    if result.returncode != 0:
        raise SystemExit(f"ansible-playbook failed ({result.returncode}):\n"
                         f"{result.stdout[-3000:]}{result.stderr[-2000:]}")
    return elapsed, output


def _timings(output):
    """One line per task with its seconds (from the JSON callback's start/end), slowest first."""
    from datetime import datetime

    rows = []
    for play in output.get("plays", []):
        for task in play.get("tasks", []):
            duration = task.get("task", {}).get("duration", {})
            try:
                start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00")) for k in ("start", "end"))
            except (KeyError, ValueError, AttributeError):
                continue
            rows.append(((end - start).total_seconds(), task["task"].get("name", "?")))
    return "\n".join(f"{seconds:7.2f} s  {name}" for seconds, name in sorted(rows, reverse=True))


def _task(output, name_part):
    for play in output.get("plays", []):
        for task in play["tasks"]:
            if name_part in task["task"]["name"]:
                return next(iter(task["hosts"].values()))
    return {}


def _changed(output):
    return sum(s.get("changed", 0) for s in output.get("stats", {}).values())


def _last_reload():
    out = subprocess.run(["podman", "exec", "ts-pbx1", "asterisk", "-rx", "core show uptime seconds"],
                         capture_output=True, text=True, env=_env(), timeout=30).stdout
    found = re.search(r"Last reload: (\d+)", out)
    return int(found.group(1)) if found else -1


def _roster(count, seed):
    lab = load_roster(paths.LAB_INVENTORY / "roster.csv").people
    taken = {a: {getattr(p, a) for p in lab if getattr(p, a)} for a in ("id", "email", "extension")}
    people = [p for p in generate_people(count, seed) if not any(getattr(p, a) in taken[a] for a in taken)]
    return people + lab


def _write(people, path):
    buf = io.StringIO()
    write_csv(people, buf)
    path.write_text(buf.getvalue(), encoding="utf-8")


def _timed(figures, name, seconds):
    figures[name] = round(seconds, 3)
    print(f"{name}: {seconds:.2f}s", flush=True)


def run(args):
    figures = {"people": args.count}
    with tempfile.TemporaryDirectory(prefix="ts-bench-telephony-") as tmp:
        tmp = Path(tmp)
        people = _roster(args.count, args.seed)
        roster_path = tmp / "roster.csv"
        _write(people, roster_path)
        roster = parse_roster(roster_path.read_text(encoding="utf-8"), "csv", str(roster_path))
        start = time.perf_counter()
        phones = T.phone_people(roster)
        policy = T.NumberPolicy()
        T.desired_astdb(phones, T.load_pbx_config({"asterisk_pbx_trunk": {"host": "192.0.2.1"}}, policy)[0], policy)
        T.plan_pbx(phones, T.load_pbx_config({"asterisk_pbx_trunk": {"host": "192.0.2.1"}}, policy)[0], policy,
                   lambda p, n: "x" * 20 if n == "sip_password" else "246813")  # secrets as teleshift makes them
        _timed(figures, "compile_s", time.perf_counter() - start)
        figures["extensions"] = len(phones)
        figures["forwarding"] = sum(1 for p in phones if p.forward_mode != "none")
        extra = ["-e", f"teleshift_roster_file={roster_path}", "-e", f"teleshift_kits_dir={tmp / 'kits'}"]

        seconds, out = _playbook(*extra)
        _timed(figures, "first_converge_s", seconds)
        figures["first_astdb_writes"] = _task(out, "Converge forwarding").get("puts", 0)

        seconds, out = _playbook(*extra)
        _timed(figures, "rerun_s", seconds)
        figures["rerun_changed_tasks"] = _changed(out)

        person = next(p for p in roster.people if p.forward_mode == "always" and p.extension.startswith("2"))
        rows = list(csv.DictReader(io.StringIO(roster_path.read_text(encoding="utf-8"))))
        for row in rows:
            if row["id"] == person.id:
                row["forward_to"] = "+33 6 99 99 99 " + ("98" if person.forward_to[-2:] != "98" else "97")
        changed_path = tmp / "roster-changed.csv"
        with changed_path.open("w", encoding="utf-8") as stream:
            writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        before = _last_reload()
        seconds, out = _playbook("--tags", "asterisk_pbx_forwarding", "-e", f"teleshift_roster_file={changed_path}",
                                 "-e", f"teleshift_kits_dir={tmp / 'kits'}")
        _timed(figures, "forwarding_change_s", seconds)
        result = _task(out, "Converge forwarding")
        figures["forwarding_change_people"] = result.get("people", {}).get("changed", [])
        figures["forwarding_change_reloaded"] = _last_reload() < before
        print(f"changed: {figures['forwarding_change_people']}, reload: {figures['forwarding_change_reloaded']}")

        if not args.no_restore:
            seconds, _ = _playbook()
            _timed(figures, "restore_lab_s", seconds)
    for name, target in TARGETS.items():
        figures[name.replace("_s", "_target_ratio")] = round(figures[name] / target, 3)
    return figures
