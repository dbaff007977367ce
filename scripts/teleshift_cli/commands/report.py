"""teleshift report: the readiness report, one self-contained HTML page."""
import datetime
import json
import sys
import time
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.waves import plan_waves

from teleshift_cli import ops, paths
from teleshift_cli.commands.waves import per_wave_value, stock_setting
from teleshift_cli.outputs import check_output, write_text


def register(sub):
    p = sub.add_parser(
        "report", help="readiness report: one HTML page with inline SVG charts (no network needed)",
        description="People enabled and verified per service and capability, capacity used vs available, people "
                    "per rollout wave and hosts failing verification, as one self-contained HTML page. "
                    "Verification results are read from verify.json (see teleshift_cli/report.py for the format).")
    ops.add_input_arguments(p)
    ops.add_capacity_arguments(p)
    p.add_argument("--kits-dir", help="kits root (default: teleshift_kits_dir of the inventory)")
    p.add_argument("--verify", help="verification results (default: teleshift_verify_file, else <kits>/verify.json)")
    p.add_argument("--laptops", help="laptops for the waves: N or N1,N2,... (default: teleshift_laptops_stock, "
                                     "else unlimited)")
    p.add_argument("--licences", help="licences for the waves (default: teleshift_vpn_licences, else unlimited)")
    p.add_argument("--per-wave", type=int, default=None, help="people equipped per wave (default: "
                                                              "teleshift_rollout_per_wave, else no limit)")
    p.add_argument("--output", "-o", default=str(paths.ROOT / "build" / "report.html"),
                   help="HTML file to write (default: build/report.html)")
    p.add_argument("--json", dest="json_file", metavar="FILE", help="also write the report's data as JSON")
    p.set_defaults(func=ops.guarded(run))


def build(ctx, args):
    from teleshift_cli.report import enabled_people, load_verification, readiness

    av = ctx.inventory.all_vars
    root = ops.kits_root(ctx, args.kits_dir)
    verify = args.verify or av.get("teleshift_verify_file")
    if verify:
        verify = Path(verify) if Path(verify).is_absolute() or args.verify else ops.inventory_dir(ctx) / verify
    elif root:
        verify = root / "verify.json"
    verification = load_verification(verify) if verify else {"hosts": {}, "people": {}}
    states = ops.load_states(ctx)
    people = ctx.roster.active()
    plan = ops.capacity(ctx, args)
    per_wave = (per_wave_value(args.per_wave, "--per-wave") if args.per_wave is not None else
                per_wave_value(av.get("teleshift_rollout_per_wave") or 0,
                               "inventory variable teleshift_rollout_per_wave"))
    waves = plan_waves(people, ctx.settings.services,
                       stock_setting(args.laptops, av.get("teleshift_laptops_stock"), "teleshift_laptops_stock",
                                     "--laptops"),
                       stock_setting(args.licences, av.get("teleshift_vpn_licences"), "teleshift_vpn_licences",
                                     "--licences"), per_wave)
    caps = [c for c in registry.capabilities() if c.in_use(ctx.inputs)]
    per_service, per_cap = readiness(people, enabled_people(people, root, states, caps), verification,
                                     ctx.settings.services, caps)
    hosts = verification.get("hosts", {})
    sections = [s for s in (c.report_section(ctx.inputs, _host_reader(ctx)) for c in caps) if s]
    failing = sorted(h for h, v in hosts.items() if not v.get("ok", True))
    stranded = {}  # gateways out of service or failing -> the people they carried
    for cap in caps:
        if hasattr(cap, "stranded") and cap.configured(ctx.inputs):
            stranded.update(cap.stranded(ctx.inputs, failing))
    return {
        "sections": sections,
        "generated": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "roster": ctx.roster.source, "inventory": ctx.inventory.source, "people": len(people),
        "per_capability": per_cap, "per_service": per_service, "capacity": plan.as_dict(),
        "not_configured": plan.not_configured, "waves": waves.as_dict(), "hosts": hosts,
        "failing_hosts": failing, "stranded": stranded,
        "warnings": [str(w) for w in ctx.warnings],
        "verification_file": str(verify) if verify else "none",
        "verification_present": bool(verify and Path(verify).exists()),
    }


def _host_reader(ctx):
    """read_host(capability, host) -> parsed facts or None, each host read once (capabilities' extra sections)."""
    from teleshift_cli.status import HostRunner

    runner, cache = HostRunner(ctx.inventory.source, timeout=30), {}

    def read(cap, host):
        if (cap.name, host) not in cache:
            result = runner.run(host, cap.host_query()) if cap.host_query() else None
            cache[(cap.name, host)] = cap.parse_host(result.out) if result is not None and result.ok else None
        return cache[(cap.name, host)]
    return read


def run(args):
    from teleshift_cli.report import render_report

    for path, what in ((args.output, "report"), (args.json_file, "JSON file")):
        check_output(path, what, protected=[args.roster, args.verify])
    ctx = ops.load(args)
    for path, what in ((args.output, "report"), (args.json_file, "JSON file")):  # before any host is read
        check_output(path, what, protected=[ctx.roster.source])
    start = time.monotonic()
    try:
        data = build(ctx, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ops.EXIT_USAGE
    page = render_report(data)
    out = Path(args.output)
    write_text(out, page, "report", protected=[ctx.roster.source])
    if args.json_file:
        write_text(args.json_file, json.dumps(data, indent=2, sort_keys=True) + "\n", "JSON file",
                   protected=[ctx.roster.source])
    print(f"report: {out} ({len(page) // 1024} KiB) in {time.monotonic() - start:.1f}s", file=sys.stderr)
    return 0
