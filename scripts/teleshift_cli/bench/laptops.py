"""Laptops from stock to verified, in parallel (docs/laptops.md): N stock laptop stand-ins (`lab up
--laptops N`), N synthetic people of one wave (device laptop, VPN), their kits (WireGuard on the lab
gateway, notice PDFs), `waves --assign 1`, then playbooks/laptops.yml timed from stock (packages, account,
units, the person's files) and each laptop verified (its tunnel's handshake with the gateway, the manifest
naming its person); a second run times the idempotent pass. Prints the per-laptop cost and the
extrapolation to 100 laptops (target: 100 in 15 minutes, the time the town hall spent on one).

Works on a private inventory (its own roster, state and kits in a temp dir); at the end the lab's own VPN
is converged again and the default lab (without laptops) is brought up.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from teleshift_cli import paths
from teleshift_cli.bench.vpn import _env, _exec

TARGET_100_S = 900.0
PRIVATE_VARS = ("---\n# bench laptops: a private organisation (roster, state, kits here) with laptop stand-ins.\n"
                "teleshift_kits_dir: kits\nteleshift_verify_file: verify.json\nteleshift_laptops_file: laptops.csv\n"
                "teleshift_vpn_licences: 100000\n")


def add_arguments(parser):
    parser.add_argument("--count", type=int, default=20, help="laptops provisioned in parallel (default 20)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--keep", action="store_true", help="keep the temp inventory and kits")
    parser.add_argument("--no-restore", action="store_true",
                        help="leave the laptops and the synthetic peers (default: the lab back as it was)")


def _say(msg):
    print(f"bench laptops: {msg}", flush=True)


def _playbook(playbook, inventory, step, timeout=1800):
    from teleshift_cli.bench import save_log

    cmd = [str(paths.ROOT / ".venv" / "bin" / "ansible-playbook"), str(paths.ROOT / "playbooks" / playbook)]
    cmd += ["-i", str(inventory)] if inventory else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    log = save_log("laptops", step, proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{playbook} failed (see {log}):\n{proc.stdout[-3000:]}")
    return elapsed, proc.stdout


def _roster(path, count, seed):
    """``count`` people of one service exempt from the second factor, each needing a laptop and the VPN."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import write_csv
    from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

    people = [p.__class__(**{**p.__dict__, "needs": frozenset({"vpn"}), "device": "laptop", "active": True,
                             "service": "culture", "extension": "", "forward_mode": "none"})
              for p in generate_people(count, seed=seed)]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        write_csv(people, stream)
    return people


def _teleshift(inv, *argv):
    cmd = [str(paths.ROOT / ".venv" / "bin" / "python"), str(paths.ROOT / "scripts" / "teleshift"), *argv,
           "--inventory", str(inv)]
    proc = subprocess.run(cmd, cwd=paths.ROOT, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"teleshift {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    return proc


def _verified(laptop, pid, seconds=90):
    """Whether ``laptop`` carries ``pid``'s files and its tunnel shook hands with the gateway (bounded)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        manifest = _exec(laptop, "cat", "/var/lib/teleshift/station/manifest.json", check=False).stdout
        shakes = _exec(laptop, "wg", "show", "teleshift", "latest-handshakes", check=False).stdout.split()
        if manifest and json.loads(manifest).get("person") == pid and len(shakes) == 2 and shakes[1] != "0":
            return True
        time.sleep(2)
    return False


def run(args):
    from teleshift_cli import lab, labsize

    import yaml

    if not 1 <= args.count <= labsize.MAX_LAPTOPS:
        raise SystemExit(f"--count must be from 1 to {labsize.MAX_LAPTOPS}")
    if not lab.container_running("ts-gw1"):
        raise SystemExit("the lab is not up: scripts/teleshift lab up")
    work = Path(tempfile.mkdtemp(prefix="teleshift-bench-laptops-"))
    figures = {"count": args.count}
    laptops = [f"ts-laptop{k}" for k in range(1, args.count + 1)]
    try:
        inv = labsize.sized_inventory(1, 1, dest=work / "inventory", laptops=args.count)
        (inv / "group_vars" / "all" / "zz_sized_lab.yml").write_text(PRIVATE_VARS, encoding="utf-8")
        people = _roster(inv / "roster.csv", args.count, args.seed)
        lab.podman("rm", "--force", "--time", "3", "--ignore", *laptops, timeout=300)  # stock laptops
        start = time.perf_counter()
        lab.lab_up(inv, timeout=900)  # 20 containers booting at once on 2 cores: minutes
        figures["lab_up_s"] = round(time.perf_counter() - start, 1)
        _say(f"{args.count} stock laptops up in {figures['lab_up_s']} s (untimed below)")
        seconds, _ = _playbook("vpn.yml", inv / "hosts.yml", "vpn")
        _teleshift(inv, "kits", "--pdf")
        _teleshift(inv, "waves", "--assign", "1", "-o", os.devnull)
        assigned = yaml.safe_load((inv / "state" / "laptops.yml").read_text())["people"]
        holders = {entry["host"]: pid for pid, entry in assigned.items()}
        _say(f"{len(people)} people's kits and assignment ready (VPN {seconds:.0f} s)")
        start = time.perf_counter()
        seconds, out = _playbook("laptops.yml", inv / "hosts.yml", "first")
        ok = [lt for lt in laptops if _verified(lt, holders.get(lt, ""))]
        figures["first_s"] = round(seconds, 1)
        figures["verified_s"] = round(time.perf_counter() - start, 1)
        figures["verified"] = len(ok)
        from teleshift_cli.bench import where

        _say(f"from stock to verified: {figures['verified_s']} s for {args.count} laptops ({len(ok)} verified); "
             f"playbook {seconds:.1f} s; slowest: {where(out)}")
        seconds, out = _playbook("laptops.yml", inv / "hosts.yml", "rerun")
        figures["rerun_s"] = round(seconds, 1)
        per = figures["verified_s"] / args.count
        figures["per_laptop_s"] = round(per, 1)
        figures["extrapolated_100_s"] = round(per * 100, 1)
        figures["target_100_s"] = TARGET_100_S
        _say(f"re-run (nothing to change): {figures['rerun_s']} s")
        _say(f"per laptop: {per:.1f} s on this machine's 2 shared cores; 100 laptops: ~{per * 100 / 60:.1f} min "
             f"(target {TARGET_100_S / 60:.0f} min)")
        if len(ok) != args.count:
            raise RuntimeError(f"only {len(ok)} of {args.count} laptops verified: {sorted(set(laptops) - set(ok))}")
    finally:
        if not args.no_restore:
            _say("restoring the lab's VPN and removing the laptops")
            _playbook("vpn.yml", None, "restore")
            lab.lab_up()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return figures
