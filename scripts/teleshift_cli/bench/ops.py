"""ops: plan, waves, report and kits (HTML; --pdf N for N PDFs) for a synthetic roster (default 5,000).

Each is measured in-process (the work itself) and as the command a user runs (`cli_*_s`: process
start, inventory and a cold roster parse included; kits then finds the notices up to date).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster, write_csv
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people, merge_people
from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import plan_waves, write_csv as waves_csv

from teleshift_cli import paths


def add_arguments(parser):
    parser.add_argument("--count", type=int, default=5000, help="people in the synthetic roster (default 5000)")
    parser.add_argument("--pdf", type=int, default=0, help="also print this many notices to PDF (default 0)")
    parser.add_argument("--jobs", type=int, default=0, help="kit workers (default: CPUs)")


def _timed(figures, name, func):
    start = time.perf_counter()
    result = func()
    figures[name] = round(time.perf_counter() - start, 3)
    print(f"{name}: {figures[name]:.2f}s", flush=True)
    return result


def run(args):
    from teleshift_cli import ops
    from teleshift_cli.bench import growth
    from teleshift_cli.commands.report import build
    from teleshift_cli.context import load_context
    from teleshift_cli.kits import person_view, write_notices, write_pdfs
    from teleshift_cli.report import render_report

    figures = {"people": args.count}
    work = Path(tempfile.mkdtemp(prefix="teleshift-bench-ops-"))
    try:
        roster_path = work / "roster.csv"
        with open(roster_path, "w", encoding="utf-8", newline="") as stream:
            # with the lab's own people: the lab inventory's PBX queues name them as agents
            lab_people = load_roster(paths.LAB_INVENTORY / "roster.csv").people
            write_csv(merge_people(generate_people(args.count - len(lab_people), seed=1), lab_people), stream)
        kits = work / "kits"
        ctx = _timed(figures, "load", lambda: load_context(str(roster_path), paths.LAB_INVENTORY, kits_dir=str(kits)))
        assert not ctx.roster.problems, ctx.roster.problems[:3]
        people = ctx.roster.people
        settings = ctx.settings

        class Args:
            kits_dir, verify, laptops, licences, per_wave, overrides = str(kits), None, None, None, None, []

        _timed(figures, "plan", lambda: ops.capacity(ctx, Args))

        def waves():
            plan = plan_waves(people, settings.services, laptops=[args.count // 5, args.count // 5],
                              licences=[args.count // 2], per_wave=args.count // 4)
            with open(work / "waves.csv", "w", encoding="utf-8", newline="") as stream:
                waves_csv(plan, stream)
        _timed(figures, "waves", waves)
        vpn_people = [p for p in people if p.active and "vpn" in p.needs]
        # Emulated VPN profiles, as the VPN capability writes them: <kits>/<id>/vpn/teleshift.conf
        # with its QR codes (drawn here, untimed: the notices embed them, as in the real flow).
        from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import _qr_job

        for i, p in enumerate(vpn_people):
            profile = (f"[Interface]\nPrivateKey = EMULATED{i:035d}=\nAddress = 10.{100 + i // 62500}."
                       f"{i // 250 % 250}.{i % 250 + 2}/32\n"
                       f"\n[Peer]\nPublicKey = EMULATEDGATEWAY{0:028d}=\nEndpoint = 10.89.250.10:51820\n"
                       "AllowedIPs = 10.89.251.0/24\n")
            write_kit_file(kits, p.id, "vpn", "teleshift.conf", profile)
            _qr_job((str(kits), p.id, "teleshift", profile))
        figures["emulated_vpn_kits"] = len(vpn_people)
        # the kits as they are before any notice, for the command's first run below: a copy made now,
        # because deleting 50,000 notice folders just before writing them again slows ext4's inode
        # allocation (it skips recently freed inodes: 20 s instead of 16 s), which no first run meets
        shutil.copytree(kits, work / "kits-first", symlinks=True)
        views = [person_view(p, settings.services) for p in people if p.active]
        org = {"name": "", "hotline": "+33 5 55 00 00 00"}
        _timed(figures, "kits_html_first", lambda: write_notices(views, kits, org, jobs=args.jobs or None))
        _timed(figures, "kits_html_rerun", lambda: write_notices(views, kits, org, jobs=args.jobs or None))
        figures["kits_html_first_per_notice_ms"] = round(figures["kits_html_first"] / max(1, len(views)) * 1000, 3)

        def report():
            page = render_report(build(ctx, Args))
            (work / "report.html").write_text(page, encoding="utf-8")
            return len(page)
        figures["report_bytes"] = _timed(figures, "report", report)
        # the commands as a user runs them (process start, inventory, roster from a cold parse cache)
        cli_env = {**os.environ, "TELESHIFT_CACHE_DIR": str(work / "cache")}
        teleshift = [sys.executable, str(paths.ROOT / "scripts" / "teleshift")]
        common = ["--roster", str(roster_path), "--inventory", str(paths.LAB_INVENTORY)]
        for name, argv in (("plan", ["plan", *common, "--format", "json"]),
                           ("waves", ["waves", *common, "--laptops", str(args.count // 3),
                                      "--output", str(work / "w.csv")]),
                           ("report", ["report", *common, "--kits-dir", str(kits), "--output", str(work / "r.html")]),
                           ("kits", ["kits", *common, "--kits-dir", str(kits)])):
            def command(argv=argv):
                proc = subprocess.run(teleshift + argv, env=cli_env, capture_output=True, text=True, timeout=600)
                if proc.returncode not in (0, 3):  # plan exits 3 when capacity falls short: still a result
                    raise RuntimeError(f"teleshift {argv[0]} failed: {proc.stderr[-1000:]}")
            _timed(figures, f"cli_{name}_s", command)
        # kits as a user runs it the first time: no notice yet (the cold parse cache is warm by now)
        first = ["--roster", str(roster_path), "--inventory", str(paths.LAB_INVENTORY),
                 "--kits-dir", str(work / "kits-first")]
        _timed(figures, "cli_kits_first_s", lambda: subprocess.run(
            teleshift + ["kits", *first], env=cli_env, capture_output=True, timeout=900, check=True))
        if args.pdf:
            ids = [v["id"] for v in views[: args.pdf]]
            _timed(figures, "kits_pdf", lambda: write_pdfs(kits, ids, jobs=args.jobs or 2))
            figures["kits_pdf_per_notice"] = round(figures["kits_pdf"] / max(1, len(ids)), 3)
        growth("ops", "lab", args.count, figures, ["load", "plan", "waves", "kits_html_first", "kits_html_rerun",
                                                  "report", "cli_plan_s", "cli_waves_s", "cli_report_s",
                                                  "cli_kits_s", "cli_kits_first_s"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return figures
