"""desktop: accounts and placement of 5,000 people on the lab session host (first, re-run, one change).

Runs `playbooks/desktop.yml --tags desktop_accounts` (the one accounts task per host) against the live
lab with a private copy of the lab inventory: its roster is the lab's people plus generated people who
all need a desktop, its state and kits are in a temporary directory (the lab's kits are copied so the
lab's own people keep their passwords). During the one-person change a real RDP session of a lab
person (dnguyen, through the VPN tunnel) is open: its X server must survive. The generated accounts
are removed from the host afterwards (files and homes); the lab's accounts are left as they were.
Targets: first < 60 s, re-run < 10 s, one change < 5 s (5,000 people); 120 / 20 / 3 s for 50,000.

--hosts M: a sized lab of M desktop hosts (teleshift_cli/labsize.py, brought up here, removed at the
end); accounts spread by the plan (sticky: the lab's people stay on ts-desk1, where xrdp runs). Each
step prints its slowest tasks; the figures are kept in build/bench/ and the 5,000 and 50,000 runs of
the same hosts print how the cost per person grows.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people, merge_people

ROOT = Path(__file__).resolve().parents[3]
LAB = ROOT / "inventories" / "lab"
HOST = "ts-desk1"
TARGETS = {"first_s": 60, "rerun_s": 10, "one_change_s": 5}
TARGETS_50K = {"first_s": 120, "rerun_s": 20, "one_change_s": 3}
CLEANUP = r"""
import sys
logins = set(sys.stdin.read().split())
for path, width in (("/etc/passwd", 7), ("/etc/shadow", 9), ("/etc/group", 4), ("/etc/gshadow", 4)):
    rows = [l.split(":") for l in open(path).read().splitlines() if l]
    out = []
    for r in rows:
        if r[0] in logins:
            continue
        if path in ("/etc/group", "/etc/gshadow"):
            r[-1] = ",".join(m for m in r[-1].split(",") if m and m not in logins)
        out.append(":".join(r))
    open(path + ".bench", "w").write("\n".join(out) + "\n")
import os, shutil
for path in ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow"):
    shutil.copymode(path, path + ".bench"); st = os.stat(path); os.chown(path + ".bench", st.st_uid, st.st_gid)
    os.replace(path + ".bench", path)
for login in logins:
    shutil.rmtree("/home/" + login, ignore_errors=True)
print(len(logins))
"""


def add_arguments(parser):
    parser.add_argument("--people", type=int, default=5000, help="generated people (default 5000)")
    parser.add_argument("--hosts", type=int, default=1, help="desktop hosts (a sized lab when more than 1)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changes", type=int, default=3,
                        help="one-person changes timed one after the other (each a different person); their "
                             "median is the figure (default 3)")
    parser.add_argument("--keep", action="store_true",
                        help="leave the generated accounts on the host and the temporary inventory and kits")


def _podman_env():
    from teleshift_cli import lab

    return lab.podman_env()


def _exec(*argv, input=None, timeout=120, host=HOST):
    return subprocess.run(["podman", "exec", *(["-i"] if input is not None else []), host, *argv], input=input,
                          capture_output=True, text=True, timeout=timeout, env=_podman_env())


_RUN = {"limit": HOST, "sessions": 6000}  # the hosts converged and each one's session limit


def _converge(hosts, kits, *extra):
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(ROOT / "playbooks" / "desktop.yml"),
           # localhost: the plan's play (a sized lab's inventory names localhost, so a limit drops it)
           "-i", str(hosts), "--tags", "desktop_accounts", "-l", f"localhost,{_RUN['limit']}",
           "-e", json.dumps({"teleshift_kits_dir": str(kits), "xrdp_host_max_sessions": _RUN["sessions"]}), *extra]
    from teleshift_cli.bench import PROFILE_ENV, save_log

    env = {**_podman_env(), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1", **PROFILE_ENV}
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - start
    save_log("desktop", "accounts", proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise SystemExit(f"converge failed:\n{proc.stdout[-3000:]}")
    return elapsed, proc.stdout


def _x_server_pid(login):
    out = _exec("ps", "-u", login, "-o", "pid=,comm=").stdout
    return next((line.split()[0] for line in out.splitlines() if line.split()[1:] == ["Xorg"]), None)


def _key_on_gateway(profile_text, gateway="ts-gw1"):
    """Whether the public key of the profile's private key is a peer on the lab gateway."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import public_key_of

    private = next((line.split("=", 1)[1].strip() for line in profile_text.splitlines()
                    if line.replace(" ", "").startswith("PrivateKey=")), "")
    try:
        public = public_key_of(private)
    except ValueError:
        return False
    return public in _exec("wg", "show", "wg0", "peers", host=gateway).stdout.split()


def _open_session(login, kits):
    """A real RDP session of a lab person, from the laptop stand-in through their VPN tunnel, kept
    open during the one-person change; returns the session's Xorg pid (None if none started)."""
    from teleshift_cli import labclient

    profile = Path(kits) / login / "vpn" / "teleshift.conf"
    password = (Path(kits) / login / "desktop" / "password").read_text().strip()
    if not _key_on_gateway(profile.read_text()):
        print(f"no RDP session checked: {login}'s VPN key in this checkout's kits/lab is not on ts-gw1 (the lab "
              "was converged from another checkout, or before these kits changed): run scripts/teleshift run "
              "site from this checkout first", flush=True)
        return None
    labclient.tunnel_up(profile.read_text(), kits=kits)
    labclient.start_rdp("10.89.251.20", login, password, seconds=600, tag="bench", kits=kits)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        pid = _x_server_pid(login)
        if pid:
            return pid
        time.sleep(2)
    return None


def _change_service(roster, login):
    """Move ``login`` to another service in the roster file (its desktop groups change, nothing else)."""
    rows = roster.read_text(encoding="utf-8").splitlines(keepends=True)
    for i, row in enumerate(rows):
        if row.startswith(login + ","):
            cells = row.split(",")
            cells[3] = "dsi" if cells[3] != "dsi" else "rh"
            rows[i] = ",".join(cells)
    roster.write_text("".join(rows), encoding="utf-8")


def run(args):
    from teleshift_cli.bench import check_file_system, growth, where

    tmp = Path(tempfile.mkdtemp(prefix="bench-desktop-"))
    inv = tmp / "inventory"
    hosts = [HOST]
    if args.hosts > 1:
        from teleshift_cli import lab, labsize

        labsize.sized_inventory(1, args.hosts, dest=inv)
        lab.lab_up(inv)
        hosts = [h.name for h in lab.load_lab(inv).hosts if "desktop_hosts" in h.groups]
        _RUN.update(limit="desktop_hosts", sessions=max(6000, -(-args.people * 6 // (5 * args.hosts)) + 50))
    else:
        shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("state", "*.retry"))
    (inv / "state").mkdir(exist_ok=True)
    if (LAB / "state" / "desktop.yml").exists():
        shutil.copy(LAB / "state" / "desktop.yml", inv / "state" / "desktop.yml")
    kits = tmp / "kits"
    if (ROOT / "kits" / "lab").exists():
        shutil.copytree(ROOT / "kits" / "lab", kits, ignore=shutil.ignore_patterns("notice"))
    lab_people = load_roster(LAB / "roster.csv").people
    generated = [dataclasses.replace(p, needs=frozenset(p.needs | {"desktop"}))
                 for p in generate_people(args.people, seed=args.seed)]
    people = merge_people(generated, lab_people)
    bench_logins = sorted({p.id for p in people} - {p.id for p in lab_people})
    with open(inv / "roster.csv", "w", encoding="utf-8", newline="") as stream:
        write_csv(people, stream)
    figures = {"people": len(people), "generated": len(bench_logins), "host": HOST, "hosts": len(hosts)}
    try:
        figures["file_create_us"] = check_file_system(tmp, lambda m: print(m, flush=True))
        figures["first_s"], out = _converge(inv / "hosts.yml", kits)
        print(f"first converge: {figures['first_s']:.1f} s", flush=True)
        print(f"  where the time went: {where(out)}", flush=True)
        figures["rerun_s"], out = _converge(inv / "hosts.yml", kits)
        print(f"re-run: {figures['rerun_s']:.1f} s", flush=True)
        print(f"  where the time went: {where(out)}", flush=True)
        placed = yaml.safe_load((inv / "state" / "desktop.yml").read_text())["people"]
        figures["accounts_per_host"] = {h: sum(1 for e in placed.values() if e.get("host") == h) for h in hosts}
        figures["rerun_changed"] = "changed: [" in out
        session_before = _open_session("dnguyen", kits)
        print(f"open RDP session of dnguyen through the VPN: Xorg pid {session_before}", flush=True)
        # one person changes service: their groups change, nothing else (a different person each run)
        samples, named = [], []
        for n in range(max(1, args.changes)):
            victim = bench_logins[(len(bench_logins) // 2 + 7919 * n) % len(bench_logins)]
            _change_service(inv / "roster.csv", victim)
            seconds, out = _converge(inv / "hosts.yml", kits, "--diff")
            samples.append(round(seconds, 2))
            named.append(victim in out)
        figures["one_change_samples_s"] = samples
        figures["one_change_s"] = statistics.median(samples)
        print(f"one-person change: {figures['one_change_s']:.1f} s (median of {samples} s)", flush=True)
        print(f"  where the time went (last change): {where(out)}", flush=True)
        figures["one_change_diff_names_person"] = all(named)
        session_after = _x_server_pid("dnguyen")
        from teleshift_cli import labclient

        labclient.stop_rdp("bench")
        figures["open_session_checked"] = session_before is not None
        figures["open_session_kept"] = session_before is not None and session_before == session_after
        accounts = sum(_exec("getent", "group", "teleshift", host=h).stdout.count(",") + 1 for h in hosts)
        figures["managed_accounts_on_host"] = accounts
    finally:
        if not args.keep:
            cleaned = [_exec("python3", "-c", CLEANUP, input="\n".join(bench_logins), timeout=600,
                             host=h).stdout.strip()
                       for h in hosts]
            figures["cleaned_up"] = cleaned[0] == str(len(bench_logins))
        if args.keep:
            print(f"kept the accounts on {', '.join(hosts)} and {tmp}", flush=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        if args.hosts > 1 and not args.keep:
            from teleshift_cli import lab

            lab.lab_up()  # the default lab again: the generated desktop hosts go
    growth("desktop", f"h{args.hosts}", args.people, figures, list(TARGETS), say=lambda m: print(m, flush=True))
    targets = TARGETS_50K if args.people > 5000 or args.hosts > 1 else TARGETS
    for name, target in targets.items():
        if name in figures:
            figures[name.replace("_s", "_ratio_to_target")] = round(figures[name] / target, 3)
            figures[name] = round(figures[name], 2)
    figures["targets_met"] = (all(figures.get(k, 1e9) <= v for k, v in targets.items())
                              and figures.get("open_session_kept", False))
    return figures
