"""A plan task goes over the roster once per question: who a capability serves (``Capability.users``)
and who is exempt from the second factor are worked out once per Inputs, however many checks, plans and
slices ask. At 50,000 people each extra pass cost about 0.05 s of a one-person change."""
from __future__ import annotations

import pytest
from testlib import make_inputs, vpn_vars

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop, mfa_plan, registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_planner import plan_second_factor
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

SERVICES = ("dsi", "rh", "accueil")


def person(pid, service, needs, active=True):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, priority="normal",
                  needs=frozenset(needs), active=active, language="fr")


def people():
    found = []
    for i in range(60):
        needs = [("vpn",), ("vpn", "desktop"), ("desktop",), ("phone",)][i % 4]
        found.append(person(f"p{i:02d}", SERVICES[i % 3], needs, active=i % 11 != 0))
    return found


def inputs(tmp_path):
    all_vars, hostvars = vpn_vars(gateways=("gw1", "gw2"), gateway_pools=("10.100.0.0/24", "10.100.1.0/24"))
    all_vars.update(teleshift_mfa_enabled=True, teleshift_kits_dir=str(tmp_path / "kits"),
                    teleshift_services={"dsi": {}, "rh": {}, "accueil": {"mfa": {"exempt": "shared front desk"}}})
    hostvars.update({h: {"xrdp_host_max_sessions": 40} for h in ("desk1", "desk2")})
    groups = {"vpn_gateways": ["gw1", "gw2"], "desktop_hosts": ["desk1", "desk2"]}
    return make_inputs(people(), groups, hostvars, all_vars, inventory_dir=str(tmp_path), services=SERVICES)


def _counting(calls, real):
    def counted(p, *args):
        calls[p.id] = calls.get(p.id, 0) + 1
        return real(p, *args)
    return counted


@pytest.fixture()
def counted(monkeypatch):
    """{capability: {person id: times its wants() was asked}}, and {person id: calls} of the second
    factor's exemption() and of the desktop's unusable_login()."""
    asked, exempt, logins = {}, {}, {}
    for name in ("vpn", "desktop", "mfa"):
        cap = registry.get(name)
        monkeypatch.setattr(cap, "wants", _counting(asked.setdefault(name, {}), cap.wants))
    monkeypatch.setattr(mfa_plan, "exemption", _counting(exempt, mfa_plan.exemption))
    monkeypatch.setattr(desktop, "unusable_login", _counting(logins, desktop.unusable_login))
    return asked, exempt, logins


def test_a_desktop_plan_task_asks_each_question_once_per_person(tmp_path, counted):
    asked, exempt, logins = counted
    given = inputs(tmp_path)
    # what the desktop plan task does: its checks and the second factor's, its plan and slices, then the
    # second factor's plan along
    found = front_door.validate(given, ["desktop"], capacity=True)
    found.extend(front_door.validate(given, ["mfa"], capacity=True))
    assert not found.problems, found.problems
    desktop = registry.get("desktop")
    plan = desktop.plan(given)
    desktop.host_slices(given, plan)
    given.use_state(desktop, plan.state)
    result = plan_second_factor(given, {}, False, False, {})
    assert result["enabled"] and result["enrolled"] > 0
    assert result["exempt"] == sorted(p.id for p in people() if p.active and p.service == "accueil"
                                      and p.needs & {"vpn", "desktop"})
    assert set(asked) == {"vpn", "desktop", "mfa"}
    for name, calls in asked.items():
        assert set(calls) == {p.id for p in people()}, name  # everyone was asked...
        assert max(calls.values()) == 1, (name, max(calls.values()))  # ...once
    assert exempt and max(exempt.values()) == 1
    assert set(logins) == {p.id for p in people() if p.active and "desktop" in p.needs}
    assert max(logins.values()) == 1


def test_the_capacity_plan_and_a_vpn_plan_ask_once_per_person(tmp_path, counted):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import plan_capacity

    asked, _exempt, _logins = counted
    given = inputs(tmp_path)
    assert not front_door.validate(given, ["vpn"], capacity=True).problems
    vpn = registry.get("vpn")
    vpn.plan(given)
    vpn.placements(given)
    plan_capacity(given)
    assert max(asked["vpn"].values()) == 1
    assert len(vpn.users(given)) == sum(1 for p in people() if p.active and "vpn" in p.needs)
