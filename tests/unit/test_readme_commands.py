"""The README's commands that need no lab, run as written from a temporary checkout: the code linked,
the lab inventory copied without state/, so outputs land in the temporary directory (see
tests/readme_commands.py for the list and for the commands run on the lab or not at all)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import readme_commands as rc

ROOT = Path(__file__).resolve().parents[2]
LINKED = ("plugins", "roles", "playbooks", "meta", "galaxy.yml", "requirements.txt", "requirements-dev.txt",
          ".venv")
COMMAND_SECONDS = 300


def test_every_readme_command_is_classified():
    commands = rc.extract()
    assert len(commands) >= 15
    assert not rc.unclassified(commands), (
        "README commands not covered by tests/readme_commands.py (add them to UNIT, LAB or CANNOT): "
        + "; ".join(rc.unclassified(commands)))
    shown = {c for c, _ in commands}
    stale = [c for c in (*rc.UNIT, *rc.LAB, *rc.CANNOT) if c not in shown]
    assert not stale, f"no longer in the README: {stale}"
    assert all(p in shown for deps in rc.PREREQUISITES.values() for p in deps)


def test_extract_reads_sh_blocks_prompts_and_inline_commands():
    text = ("Run `scripts/teleshift plan --x` or `ls`.\n```sh\nscripts/a one   # comment\n\n# only a comment\n"
            "scripts/b 'two words'\n```\n```\n$ scripts/c\noutput line\n```\n```yaml\n$ not: shell\n```\n")
    assert rc.extract(text) == [("scripts/teleshift plan --x", 1), ("scripts/a one", 3), ("scripts/b two words", 6),
                                ("scripts/c", 9)]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    """A checkout whose scripts/ and inventories are copies (ROOT resolves here) and the rest links."""
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "scripts", root / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "ansible.cfg", root / "ansible.cfg")
    shutil.copytree(ROOT / "inventories" / "lab", root / "inventories" / "lab",
                    ignore=shutil.ignore_patterns("state", "*.retry"))
    for name in LINKED:
        if (ROOT / name).exists():
            (root / name).symlink_to(ROOT / name)
    collection = root / ".collections" / "ansible_collections" / "teleshift"
    collection.mkdir(parents=True)
    (collection / "toolkit").symlink_to("../../..")
    return root


def run_command(command, checkout):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "TELESHIFT_"))}
    return subprocess.run(command, shell=True, cwd=checkout, env=env,  # noqa: S602 - the README's commands, as written
                          capture_output=True, text=True, timeout=COMMAND_SECONDS)


def prepare(command, checkout):
    if "<yours>" in command and not (checkout / "inventories" / "yours").exists():
        # step 1 of "Using it on a real organisation": copy inventories/sample to inventories/<yours>
        shutil.copytree(ROOT / "inventories" / "sample", checkout / "inventories" / "yours")
    for before in rc.PREREQUISITES.get(command, []):
        proc = run_command(before, checkout)
        assert proc.returncode == rc.UNIT[before], f"{before}: {proc.stderr}"
    if "--pdf" in command and not (shutil.which("chromium") or shutil.which("chromium-browser")):
        pytest.skip("kits --pdf needs Chromium")
    return command.replace("<yours>", "yours")


class KnownFailure(Exception):
    """The failure tests/readme_commands.py XFAIL describes, and no other."""


def _param(command):
    marks = ([pytest.mark.xfail(strict=True, raises=KnownFailure, reason=rc.XFAIL[command][0])]
             if command in rc.XFAIL else [])
    return pytest.param(command, marks=marks, id=command.removeprefix("scripts/"))


def known_failure(command, proc):
    if command not in rc.XFAIL or proc.returncode == 0:
        return
    lines = [line for line in proc.stderr.splitlines() if line.startswith("  ")]
    if lines and all(re.search(rc.XFAIL[command][1], line) for line in lines):
        raise KnownFailure(f"{len(lines)} known problem(s): {lines[0].strip()}")


@pytest.mark.parametrize("command", [_param(c) for c in rc.UNIT])
def test_readme_command_runs_as_written(command, checkout):
    proc = run_command(prepare(command, checkout), checkout)
    shown = f"{command}: exit {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr, shown
    known_failure(command, proc)
    assert proc.returncode == rc.UNIT[command], shown
    if "-o build/waves.csv" in command:
        assert (checkout / "build" / "waves.csv").read_text().startswith("wave,order,id,")
    if command == "scripts/teleshift report":
        assert "<html" in (checkout / "build" / "report.html").read_text()[:500].lower()
    if command.startswith("scripts/teleshift kits"):
        assert list((checkout / "kits" / "lab").glob("*/notice/notice.pdf"))
    assert not (ROOT / "inventories" / "lab" / "staff.csv").exists()
