"""AWX offers as playbooks the project files it takes for playbooks: every .yml/.yaml file outside
roles/, tasks/, group_vars/, host_vars/ and hidden directories with a line that starts (after spaces
and an optional "- ") with ``hosts:``, ``include:`` or ``import_playbook:``, or a vault header on its
first line (AWX's project discovery, described in docs/awx.md). The project must offer exactly the
playbooks of playbooks/: every one of them (site.yml included), and no molecule, inventory or state
file."""
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {"roles", "tasks", "group_vars", "host_vars"}
PLAY_LINE = re.compile(r"^\s*-?\s*(hosts|include|import_playbook):")


def offered_as_playbooks(files):
    found = []
    for name in files:
        parts = name.split("/")
        if any(p in SKIPPED_DIRS or p.startswith(".") for p in parts[:-1]):
            continue
        if Path(name).suffix not in (".yml", ".yaml"):
            continue
        lines = (ROOT / name).read_text(encoding="utf-8", errors="ignore").splitlines()
        if any(PLAY_LINE.match(line) for line in lines) or (lines and lines[0].startswith("$ANSIBLE_VAULT;")):
            found.append(name)
    return sorted(found)


def project_files():
    """What an AWX project sync checks out: the repository's files (new ones included)."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return [f for f in out.splitlines() if (ROOT / f).is_file()]


def test_awx_offers_exactly_the_playbooks():
    playbooks = sorted(f"playbooks/{p.name}" for p in (ROOT / "playbooks").glob("*.yml"))
    assert "playbooks/site.yml" in playbooks
    assert offered_as_playbooks(project_files()) == playbooks


def test_every_offered_file_is_a_playbook():
    for name in offered_as_playbooks(project_files()):
        plays = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        assert isinstance(plays, list) and all(
            "hosts" in play or "import_playbook" in play or "ansible.builtin.import_playbook" in play
            for play in plays), name


def test_the_rule_would_catch_an_unquoted_inventory(tmp_path):
    """The rule is what lists inventories: the quoted key is what keeps them out."""
    text = (ROOT / "inventories" / "lab" / "hosts.yml").read_text(encoding="utf-8")
    assert '"hosts":' in text and not any(PLAY_LINE.match(line) for line in text.splitlines())
    assert any(PLAY_LINE.match(line) for line in text.replace('"hosts":', "hosts:").splitlines())
