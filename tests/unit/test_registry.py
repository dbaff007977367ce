"""The capability registry: a capability declared once shows up everywhere (validate, plan, report, kits,
notices, status) with no other file changed; validate and preflight share one front door."""
import json
import shutil
from pathlib import Path

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

from teleshift_cli import main as cli

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


class Parcel(registry.Capability):
    """A made-up capability: a parcel of equipment sent home, one locker host handing it out."""

    name = "parcel"
    need = "parcel"
    order = 90
    host_group = "parcel_lockers"
    state_file = "state/parcel.yml"
    variables = ("parcel_",)
    assumptions = {"teleshift_capacity_parcel_per_locker": (2, "count", "parcels one locker holds")}
    texts = {"fr": {"title": "Colis d'équipement", "steps": ["Retirez votre colis au casier."]},
             "en": {"title": "Equipment parcel", "steps": ["Collect your parcel from the locker."]}}

    def validate(self, inputs):
        found = registry.Findings()
        for host in self.hosts(inputs):
            if not inputs.hostvar(host, "parcel_address"):
                found.problems.append(Problem(inputs.source, 0, f"{host}: parcel_address", "must be set"))
        return found

    def capacity(self, inputs, a):
        users = sum(1 for p in inputs.roster.people if self.wants(p))
        per = a["teleshift_capacity_parcel_per_locker"]
        return [Check(self.name, "parcels", "", users, per * len(self.hosts(inputs)), "parcels")]

    def host_query(self):
        return ["echo", "parcels-ready"]

    def parse_host(self, text):
        return {"ready": "parcels-ready" in text}

    def person_status(self, person, host, entry, facts, inputs):
        status = registry.CapStatus(self.name, "unknown", host)
        if facts is not None:
            status.state = "ok" if facts["ready"] else "problem"
            status.verified = facts["ready"]
            status.facts["locker"] = host
        return status


@pytest.fixture()
def parcel():
    registry.register(Parcel())
    yield
    registry.unregister("parcel")


@pytest.fixture()
def inv(tmp_path):
    """The lab inventory with a locker (reached with the local connection) and parcel people."""
    root = tmp_path / "inv"
    shutil.copytree(LAB, root, ignore=shutil.ignore_patterns("state", "kits"))
    (root / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n")
    hosts = (root / "hosts.yml").read_text()
    (root / "hosts.yml").write_text(hosts + "    parcel_lockers:\n      hosts:\n        locker1:\n"
                                    "          ansible_connection: local\n"
                                    "          ansible_python_interpreter: '{{ ansible_playbook_python }}'\n"
                                    "          parcel_address: 1 rue de la Poste\n")
    roster = (root / "roster.csv").read_text().splitlines()
    roster[1] = roster[1].replace(",vpn;phone,", ",vpn;phone;parcel,")
    (root / "roster.csv").write_text("\n".join(roster) + "\n")
    return root


def run(argv, capsys):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_without_the_capability_its_need_is_unknown(inv, capsys):
    code, _, err = run(["validate", "--inventory", str(inv)], capsys)
    assert code == 1 and "roster.csv:2: needs: unknown need(s) 'parcel'" in err


def test_a_registered_capability_is_everywhere(parcel, inv, tmp_path, capsys):
    code, out, err = run(["validate", "--inventory", str(inv)], capsys)
    assert code == 0, err
    assert "parcel 1" in out

    code, out, _ = run(["plan", "--inventory", str(inv), "--format", "json"], capsys)
    checks = [c for c in json.loads(out)["checks"] if c["capability"] == "parcel"]
    assert checks == [dict(checks[0], needed=1, available=2, ok=True)]
    code, out, _ = run(["plan", "--inventory", str(inv), "--format", "json",
                        "--set", "teleshift_capacity_parcel_per_locker=0"], capsys)
    assert code == 3 and not json.loads(out)["ok"]

    write_kit_file(inv / "kits", "amartin", "parcel", "summary.yml", "locker: locker1\ncode: 4711\n")
    code, _, err = run(["kits", "--inventory", str(inv)], capsys)
    assert code == 0, err
    notice = (inv / "kits" / "amartin" / "notice" / "notice.html").read_text()
    assert '<section id="parcel">' in notice and "Colis d&#39;équipement" in notice and "4711" in notice
    assert '<section id="parcel">' not in (inv / "kits" / "blefevre" / "notice" / "notice.html").read_text()

    report = tmp_path / "report.json"
    code, _, err = run(["report", "--inventory", str(inv), "-o", str(tmp_path / "r.html"), "--json", str(report)],
                       capsys)
    assert code == 0, err
    assert json.loads(report.read_text())["per_capability"]["parcel"] == {"needed": 1, "enabled": 1, "verified": 0}

    code, out, err = run(["status", "amartin", "--inventory", str(inv), "--json"], capsys)
    parcel_status = json.loads(out)["capabilities"]["parcel"]
    assert parcel_status["state"] == "ok" and parcel_status["facts"]["locker"] == "locker1", err


def test_its_own_checks_stop_validate_and_name_the_variable(parcel, inv, capsys):
    hosts = (inv / "hosts.yml").read_text().replace("          parcel_address: 1 rue de la Poste\n", "")
    (inv / "hosts.yml").write_text(hosts)
    code, _, err = run(["validate", "--inventory", str(inv)], capsys)
    assert code == 1 and "locker1: parcel_address: must be set" in err
    # validating only the VPN leaves the parcel's settings alone
    code, _, err = run(["validate", "--inventory", str(inv), "--capability", "vpn"], capsys)
    assert code == 0, err
