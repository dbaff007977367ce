"""Every command README.md shows, and where the tests run it (tests/unit/test_readme_commands.py
without the lab, tests/lab/test_readme_commands.py on the lab), or why they cannot.

Commands are: every line of a ```sh block (comments dropped), every ``$ `` line of another fenced
block, and every inline code span starting with ``scripts/`` or ``ansible-playbook``. A command the
README gains is unclassified until it is added below: the README cannot drift from what is tested.
"""
import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# runnable without the lab: command -> expected exit code
UNIT = {
    "scripts/teleshift --help": 0,
    "scripts/teleshift roster generate --count 5000 --seed 1 -o staff.csv": 0,
    "scripts/teleshift validate --roster staff.csv": 0,
    "scripts/teleshift validate --inventory inventories/<yours>": 0,
    "scripts/teleshift plan --inventory inventories/<yours>": 0,
    "scripts/teleshift plan": 0,
    "scripts/teleshift waves --laptops 200,100 --per-wave 100 -o build/waves.csv": 0,
    "scripts/teleshift kits --pdf": 0,
    "scripts/teleshift report": 0,
}
# what a unit command needs run first (README commands too)
PREREQUISITES = {
    "scripts/teleshift validate --roster staff.csv":
        ["scripts/teleshift roster generate --count 5000 --seed 1 -o staff.csv"],
}
# known failures, strict (the test fails once they pass, so the mark is removed then): command ->
# (reason, a pattern every problem line of the known failure matches; any other failure is a real one)
XFAIL = {}
# needs the lab (run on it, from the checkout): command -> expected exit code(s)
LAB = {
    "scripts/teleshift lab up": 0,
    "scripts/teleshift lab status": 0,
    "scripts/teleshift status amartin": (0, 4),  # 4: the command worked and found something wrong for her
    "scripts/teleshift run site --check --diff": 0,
    "ansible-playbook -i inventories/<yours>/hosts.yml playbooks/site.yml --check --diff": 0,
}
# never run by the tests, with the reason
CANNOT = {
    "scripts/demo": "the main job itself (bootstrap, lab up, converge, verify, publish): the lead runs it on "
                    "its own; inside the suite it would redo the suite's own converge and verification",
    "scripts/test": "the test suite itself: it runs this test",
    "scripts/test --no-lab": "the test suite itself: it runs this test",
    "scripts/sanity": "ansible-test sanity on the built collection (a minute or more, ansible-test's venvs from "
                      "PyPI): scripts/test runs it in its lint step",
    "scripts/teleshift lab down": "removes the shared lab (molecule's destroy step does it in scripts/test)",
    "scripts/bootstrap": "installs system packages with apt and rebuilds the shared .venv; every scripts/demo "
                         "and scripts/test starts with it",
    "scripts/bootstrap-system": "installs system packages with apt (scripts/bootstrap runs it)",
    "scripts/bench": "names the benchmark script (see the next entry)",
    "scripts/bench vpn|desktop|telephony|ops|openvpn|directory|laptops": "a synopsis, and each benchmark "
                                                                         "converges thousands of people (or boots "
                                                                         "laptops) on the lab for minutes: the "
                                                                         "lead runs them for the figures",
    "scripts/teleshift lab up --gateways 3 --desktops 2": "resizes the shared lab: tests/lab/test_vpn_gateways.py "
                                                          "brings up its own sized lab (--gateways) and puts the "
                                                          "lab back",
    "scripts/teleshift lab up --laptops 2": "resizes the shared lab: tests/lab/test_laptops.py brings up its own "
                                            "laptop stand-ins and puts the lab back",
    "scripts/teleshift": "names the command line, not a command",
    "scripts/teleshift lab": "names the subcommand (its actions are run above)",
    "scripts/teleshift plan / waves / kits / report / status / run": "a list of subcommands, each run above",
}


def extract(text=None):
    """[(command, line number)] in README order, each command once."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found, fence, lang = [], None, ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("```"):
            if fence is None:
                fence, lang = number, stripped[3:].strip()
            else:
                fence = None
            continue
        if fence is not None:
            if lang == "sh":
                command = " ".join(shlex.split(line, comments=True))
            else:
                command = stripped[2:].strip() if lang in ("", "console") and stripped.startswith("$ ") else ""
            if command:
                found.append((command, number))
            continue
        for span in re.findall(r"`([^`]+)`", line):
            if span.startswith(("scripts/", "ansible-playbook ")):
                found.append((span.strip(), number))
    seen, result = set(), []
    for command, number in found:
        if command not in seen:
            seen.add(command)
            result.append((command, number))
    return result


def unclassified(commands):
    return [c for c, _ in commands if c not in UNIT and c not in LAB and c not in CANNOT]
