"""teleshift run PLAYBOOK: ansible-runner with a progress display, a summary and a JSON artefact."""
import shlex
import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import roster_ldap

from teleshift_cli import ops, paths
from teleshift_cli.errors import CliError
from teleshift_cli.outputs import check_output


def register(sub):
    p = sub.add_parser(
        "run", help="run a playbook through ansible-runner: progress, summary, JSON artefact for CI",
        description="Validate the roster and inventory first (same problem list as `validate`), then run "
                    "PLAYBOOK (a path, or a name under playbooks/, e.g. site) with ansible-runner. Shows the "
                    "current task and results as they come, prints a per-host summary and writes a JSON artefact "
                    "(hosts, ok, changed, failed, unreachable, skipped, duration). Exit 0 when every host "
                    "succeeded, 1 on bad input, 5 when the playbook failed.")
    p.add_argument("playbook", help="playbook file, or a name in playbooks/ (site, preflight, ...)")
    ops.add_input_arguments(p)
    p.add_argument("--check", action="store_true", help="check mode: change nothing (ansible-playbook --check)")
    p.add_argument("--diff", action="store_true",
                   help="show differences (ansible-playbook --diff): each task's diff on standard output")
    p.add_argument("--limit", help="limit to these hosts / groups")
    p.add_argument("--extra", action="append", default=[], metavar="ARG",
                   help="extra ansible-playbook argument (repeatable, e.g. --extra=--tags=vpn)")
    p.add_argument("--artefact", default=str(paths.ROOT / "build" / "run.json"),
                   help="JSON artefact path (default: build/run.json)")
    p.add_argument("--timeout", type=int, default=0, help="stop the run after this many seconds (0: none)")
    p.add_argument("--no-progress", action="store_true", help="no live display (for CI logs)")
    p.set_defaults(func=ops.guarded(run))


def resolve_playbook(name):
    path = Path(name)
    if path.is_file():
        return path if path.suffix in (".yml", ".yaml") else None
    if not name or path.is_absolute():
        return None
    for candidate in (paths.ROOT / "playbooks" / name, paths.ROOT / "playbooks" / f"{name}.yml"):
        if candidate.is_file() and candidate.suffix in (".yml", ".yaml"):
            return candidate
    return None


def applied_capabilities(playbook):
    """What a playbook applies, so the command validates that and only that (as the playbook's own plan
    does): a capability's playbook, every capability for site.yml and preflight.yml, none otherwise."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

    if playbook.stem in ("site", "preflight"):
        return None
    return [c.name for c in registry.capabilities() if c.playbook == playbook.stem]


def run(args):
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from teleshift_cli.runner import RunSummary, format_diff, run_playbook, write_artefact

    playbook = resolve_playbook(args.playbook)
    if playbook is None:
        print(f"error: no playbook {args.playbook!r} (a file, or a name in {paths.ROOT / 'playbooks'})",
              file=sys.stderr)
        return ops.EXIT_USAGE
    if not 0 <= args.timeout <= 7 * 86400:
        raise CliError(f"--timeout must be from 0 (none) to 604800 seconds, got {args.timeout}")
    extra = (["--check"] if args.check else []) + (["--diff"] if args.diff else [])
    for item in args.extra:
        try:
            extra += shlex.split(item)
        except ValueError as exc:
            raise CliError(f"--extra {item!r}: {exc}") from None
    check_output(args.artefact, "artefact", protected=[args.roster])
    ctx = ops.load(args, selected=applied_capabilities(playbook))
    check_output(args.artefact, "artefact", protected=[ctx.roster.source])
    # the roster this command validated, as an absolute path (the play then reads the same file); a
    # directory source is read again by the play's own front door
    from_directory = not args.roster and roster_ldap.configured(ctx.inputs.all_vars)
    extravars = {} if from_directory else {"teleshift_roster_file": str(Path(ctx.roster.source).resolve())}
    if args.roster and roster_ldap.configured(ctx.inputs.all_vars):
        extravars[roster_ldap.VAR] = {}  # --roster replaces the inventory's directory for the play too
    if args.vault_password_file:
        extra.append("--vault-password-file=" + shlex.quote(str(Path(args.vault_password_file).resolve())))
    if args.allow_mass_removal:
        extravars["teleshift_allow_mass_removal"] = True
    summary = RunSummary(playbook=str(playbook), inventory=ctx.inventory.source)
    console = Console(stderr=True)

    def show_diff(event):  # --diff: each task's diff on standard output, as it comes
        text = format_diff(event) if args.diff else None
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()
    if args.no_progress or not console.is_terminal:
        def on_event(event):
            if event.get("event") == "playbook_on_task_start":
                console.print(f"[{summary.tasks}] {summary.task}", highlight=False)
            show_diff(event)
        status, rc = run_playbook(playbook, ctx.inventory.source, summary, extra, extravars, args.limit, on_event,
                                  args.timeout or None)
    else:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                      console=console, transient=True) as progress:
            bar = progress.add_task("starting", total=None)

            def on_event(event):
                progress.update(bar, description=f"task {summary.tasks}: {summary.task[:60]} · "
                                                  f"{summary.results} results, {len(summary.failures)} failed")
                show_diff(event)
            status, rc = run_playbook(playbook, ctx.inventory.source, summary, extra, extravars, args.limit,
                                      on_event, args.timeout or None)
    data = summary.as_dict(status, rc)
    write_artefact(args.artefact, data)
    table = Table(title=f"{playbook.name}: {status} in {data['duration']:.1f}s ({summary.tasks} tasks)")
    for col in ("host", "ok", "changed", "failed", "unreachable", "skipped"):
        table.add_column(col, justify="left" if col == "host" else "right")
    for host, v in data["hosts"].items():
        bad = v["failed"] or v["unreachable"]
        table.add_row(f"[red]{host}[/red]" if bad else host, *(str(v[k]) for k in
                                                                ("ok", "changed", "failed", "unreachable", "skipped")))
    console.print(table)
    for f in summary.failures[:20]:
        console.print(f"[red]{f['host']}[/red] {f['task']}: {f['msg']}", highlight=False)
    for w in summary.warnings[:50]:
        console.print(f"[yellow]warning[/yellow] {w['host']} {w['task']}: {w['msg']}", highlight=False)
    console.print(f"artefact: {args.artefact}")
    return 0 if status == "successful" and rc == 0 else 5
