"""teleshift kits: each person's onboarding notice (HTML, optional PDF) in their kit."""
import sys
import time

from teleshift_cli import ops
from teleshift_cli.errors import CliError


def register(sub):
    p = sub.add_parser(
        "kits", help="write every person's onboarding notice (HTML, --pdf for PDF) into their kit",
        description="For each active person (or --person), write <kits>/<id>/notice/notice.html in the person's "
                    "language with what the VPN, desktop and phone capabilities left in the kit (profile and QR "
                    "code, .rdp, softphone credentials), the forwarding summary, step-by-step instructions for "
                    "home wifi, wired and 4G tethering, and the hotline number (teleshift_hotline_number). "
                    "Files 0600, directories 0700; unchanged notices are not rewritten.")
    ops.add_input_arguments(p)
    p.add_argument("--kits-dir", help="kits root (default: teleshift_kits_dir of the inventory)")
    p.add_argument("--person", action="append", default=[], metavar="ID", help="only these people (repeatable)")
    p.add_argument("--pdf", action="store_true", help="also print each changed notice to PDF with headless Chromium")
    p.add_argument("--jobs", "-j", type=int, default=0, help="parallel workers (default: number of CPUs)")
    p.set_defaults(func=ops.guarded(run))


def run(args):
    from teleshift_cli.kits import chromium, person_view, write_notices, write_pdfs

    if not 0 <= args.jobs <= 256:
        raise CliError(f"--jobs must be from 0 (one per CPU) to 256, got {args.jobs}")
    ctx = ops.load(args)
    root = ops.kits_root(ctx, args.kits_dir)
    if root is None:
        print("error: no kits directory: set teleshift_kits_dir in the inventory or pass --kits-dir", file=sys.stderr)
        return ops.EXIT_USAGE
    people = ctx.roster.active()
    if args.person:
        known = {p.id for p in people}
        unknown = [pid for pid in args.person if pid not in known]
        if unknown:
            print(f"error: not an active person of the roster: {', '.join(unknown)}", file=sys.stderr)
            return ops.EXIT_USAGE
        people = [p for p in people if p.id in set(args.person)]
    org = {"name": str(ctx.inventory.all_vars.get("teleshift_org_name") or ""), "hotline": ops.hotline(ctx),
           "merge": ctx.inventory.all_vars.get("teleshift_notice_merge_credentials") is True}
    if not org["hotline"]:
        print("warning: teleshift_hotline_number is not set: notices say the manager will give it", file=sys.stderr)
    start = time.monotonic()
    views = [person_view(p, ctx.settings.services) for p in people]
    written, unchanged = write_notices(views, root, org, jobs=args.jobs or None)
    print(f"notices: {written} written, {unchanged} unchanged in {time.monotonic() - start:.1f}s under {root}",
          file=sys.stderr)
    if args.pdf:
        if not chromium():
            print("error: --pdf needs Chromium (Debian package: chromium)", file=sys.stderr)
            return ops.EXIT_USAGE
        from rich.progress import Progress

        start = time.monotonic()
        with Progress(transient=True) as progress:
            task = progress.add_task("PDF", total=len(views))
            made, failures = write_pdfs(root, [v["id"] for v in views], jobs=args.jobs or 2,
                                        progress=lambda: progress.advance(task))
        print(f"pdf: {made} made in {time.monotonic() - start:.1f}s", file=sys.stderr)
        for failure in failures[:20]:
            print(f"  {failure}", file=sys.stderr)
        if failures:
            return 1
    return 0
