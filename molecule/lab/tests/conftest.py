"""Lab hosts for the testinfra tests, from the same lab definition `teleshift lab up` uses."""
import os
import sys
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "scripts"))

from teleshift_cli import lab  # noqa: E402

LAB = lab.load_lab(os.environ.get("TELESHIFT_LAB_INVENTORY") or lab.LAB_INVENTORY)
HOST_NAMES = [h.name for h in LAB.hosts]
_CONNECTIONS = {}


def connect(name):
    """A testinfra host reached with `podman exec` (no ssh, no Ansible round trip)."""
    if name not in _CONNECTIONS:
        _CONNECTIONS[name] = testinfra.get_host(f"podman://{name}")
    return _CONNECTIONS[name]


@pytest.fixture(scope="session")
def the_lab():
    return LAB


@pytest.fixture(params=HOST_NAMES)
def lab_host(request):
    """(lab.Host, testinfra host) for every lab host in turn."""
    return LAB.host(request.param), connect(request.param)
