"""The verify step's per-person results on the live lab: after converge every enabled person is verified;
a person whose WireGuard peer was removed by hand on the gateway is not, in the results, the readiness
report and `teleshift status`; re-converging the VPN restores them.

    .venv/bin/pytest tests/lab/test_verify_people.py        (after converge; ~1 minute)
"""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

from teleshift_cli import ops, verify_people
from teleshift_cli.context import load_context
from teleshift_cli.report import record_verification
from teleshift_cli.status import HostRunner

_spec = importlib.util.spec_from_file_location("teleshift_lab_helpers", Path(__file__).with_name("conftest.py"))
_helpers = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_helpers)
ROOT, LAB_INVENTORY, PODMAN_ENV = _helpers.ROOT, _helpers.LAB_INVENTORY, _helpers.PODMAN_ENV
lab_exec, lab_inventory_copy, run_playbook = _helpers.lab_exec, _helpers.lab_inventory_copy, _helpers.run_playbook

PERSON = "fmuller"  # VPN only, a low-priority service: nobody else's test depends on this peer


def lab_results():
    ctx = load_context(None, LAB_INVENTORY)
    states = ops.load_states(ctx)
    return ctx, states, verify_people.verify(ctx, HostRunner(ctx.inventory.source, timeout=120))


def failures(results):
    return {(pid, cap): r["detail"] for pid, caps in results.items() for cap, r in caps.items() if not r["ok"]}


def teleshift(*args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env=PODMAN_ENV)


def test_a_peer_removed_by_hand_is_not_verified_until_reconverged(lab_up, tmp_path):
    ctx, states, results = lab_results()
    assert not failures(results), "the lab is not converged: " + json.dumps(failures(results))
    needing = {p.id for p in ctx.roster.people if p.needs_("vpn")}
    assert PERSON in needing and {pid for pid, caps in results.items() if "vpn" in caps} == needing
    key = states["vpn"]["people"][PERSON]["public_key"]
    removed = lab_exec("ts-gw1", "wg", "set", "wg0", "peer", key, "remove")
    assert removed.returncode == 0, removed.stderr
    try:
        _, _, results = lab_results()
        assert failures(results) == {(PERSON, "vpn"): "no peer with the person's public key on ts-gw1"}
        verify_file = tmp_path / "verify.json"
        record_verification(verify_file, people=results)
        # the readiness report counts one VPN person fewer
        proc = teleshift("report", "--inventory", str(LAB_INVENTORY), "--verify", str(verify_file),
                         "-o", str(tmp_path / "report.html"), "--json", str(tmp_path / "report.json"))
        assert proc.returncode == 0, proc.stderr
        vpn = json.loads((tmp_path / "report.json").read_text())["per_capability"]["vpn"]
        assert vpn["verified"] == vpn["needed"] - 1 == len(needing) - 1
        # the hotline sees it: live (no peer) and as the verify step recorded it
        hosts = lab_inventory_copy(tmp_path / "inventory")
        shutil.copytree(LAB_INVENTORY / "state", hosts.parent / "state")
        (hosts.parent / "group_vars" / "all" / "zz_verify.yml").write_text(
            f"teleshift_verify_file: {verify_file}\nteleshift_kits_dir: {ROOT / 'kits' / 'lab'}\n")
        proc = teleshift("status", PERSON, "--inventory", str(hosts.parent), "--json")
        assert proc.returncode == 4, proc.stdout + proc.stderr
        shown = json.loads(proc.stdout)["capabilities"]["vpn"]
        assert shown["state"] == "problem" and "no peer" in shown["problems"][0]
        assert shown["facts"]["verify step"].startswith("NOT verified (")
        assert shown["facts"]["verify step"].endswith("no peer with the person's public key on ts-gw1")
    finally:
        proc = run_playbook("vpn.yml", timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:]
    _, _, results = lab_results()
    assert not failures(results)
    assert results[PERSON]["vpn"]["ok"]
