"""The synthetic roster generator and the validate / roster generate commands."""
import subprocess
import sys
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import SERVICES, generate_people

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, str(ROOT / "scripts" / "teleshift")]


def run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_generator_is_deterministic_and_its_output_validates(tmp_path):
    assert generate_people(300, seed=7) == generate_people(300, seed=7)
    assert generate_people(300, seed=7) != generate_people(300, seed=8)
    out = tmp_path / "roster.csv"
    result = run("roster", "generate", "--count", "2000", "--seed", "5", "--output", str(out))
    assert result.returncode == 0, result.stderr
    roster = load_roster(out, services=SERVICES)
    assert roster.ok, roster.problems[:5]
    assert len(roster.people) == 2000
    assert len({p.service for p in roster.people}) >= 18
    assert {p.priority for p in roster.people} >= {"critical", "high", "normal", "low"}
    assert any("é" in p.full_name or "ë" in p.full_name for p in roster.people)


def test_validate_accepts_the_lab_roster():
    result = run("validate")
    assert result.returncode == 0, result.stderr
    assert "people valid" in result.stdout


def test_validate_lists_every_problem_with_line_and_field(tmp_path):
    lab = (ROOT / "inventories" / "lab" / "roster.csv").read_text(encoding="utf-8").splitlines()
    lab[1] = lab[1].replace(",critical,", ",urgent,")  # line 2: bad priority
    lab[3] = lab[3].replace(",rsa,", ",nowhere,")  # line 4: unknown service
    lab.append(lab[2])  # line 10: duplicate of line 3
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lab) + "\n", encoding="utf-8")
    result = run("validate", "--roster", str(bad))
    assert result.returncode == 1
    assert f"{bad}:2: priority" in result.stderr
    assert f"{bad}:4: service" in result.stderr and "nowhere" in result.stderr
    assert f"{bad}:10: id" in result.stderr and "line 3" in result.stderr
    assert f"{bad}:10: email" in result.stderr and f"{bad}:10: extension" in result.stderr


def test_validate_reports_a_broken_inventory_policy(tmp_path):
    inv = tmp_path / "inv"
    (inv / "group_vars" / "all").mkdir(parents=True)
    (inv / "hosts.yml").write_text("all:\n  hosts: {}\n", encoding="utf-8")
    (inv / "group_vars" / "all" / "teleshift.yml").write_text(
        "teleshift_roster_file: roster.csv\n"
        "teleshift_services:\n  rsa:\n    networks: [10.0.0.1/8]\n    colour: blue\n", encoding="utf-8")
    (inv / "roster.csv").write_text((ROOT / "inventories/lab/roster.csv").read_text(encoding="utf-8"), encoding="utf-8")
    result = run("validate", "--inventory", str(inv))
    assert result.returncode == 1
    assert "teleshift_services.rsa.networks[0]" in result.stderr
    assert "teleshift_services.rsa.colour" in result.stderr
    assert "unknown service 'paie-prestations'" in result.stderr


def test_the_sample_inventory_stays_valid():
    result = run("validate", "--inventory", str(ROOT / "inventories" / "sample"))
    assert result.returncode == 0, result.stderr
    assert "3 people valid" in result.stdout
