"""Every active person has what they need really in place on their hosts: their WireGuard peer (key and
address) on the gateway, their account and groups on the desktop host, their endpoint and forwarding in
the PBX. Each host is read once for everyone (teleshift_cli/verify_people.py); with
TELESHIFT_VERIFY_FILE set the results are recorded there for `teleshift report` and `status`."""
import os

import pytest

from teleshift_cli import verify_people
from teleshift_cli.context import load_context
from teleshift_cli.paths import LAB_INVENTORY
from teleshift_cli.status import HostRunner

INVENTORY = os.environ.get("TELESHIFT_LAB_INVENTORY") or str(LAB_INVENTORY)


@pytest.fixture(scope="module")
def lab_people():
    """(context, results): each host read once, every person matched."""
    ctx = load_context(None, INVENTORY)
    results = verify_people.verify(ctx, HostRunner(ctx.inventory.source, timeout=120))
    if os.environ.get("TELESHIFT_VERIFY_FILE"):
        from teleshift_cli.report import record_verification

        record_verification(os.environ["TELESHIFT_VERIFY_FILE"], people=results)
    return ctx, results


@pytest.mark.parametrize("capability", ["vpn", "desktop", "phone"])
def test_every_person_has_their_capability_in_place(lab_people, capability):
    from ansible_collections.teleshift.toolkit.plugins.module_utils import registry

    ctx, results = lab_people
    needing = {p.id for p in ctx.roster.people if registry.get(capability).wants(p)}
    assert needing, f"the lab roster should exercise {capability}"
    assert {pid for pid, caps in results.items() if capability in caps} == needing
    missing = {pid: caps[capability]["detail"] for pid, caps in results.items()
               if capability in caps and not caps[capability]["ok"]}
    assert not missing, missing
