"""The lab hosts the testinfra suite checks, from the same lab definition `teleshift lab up` uses."""
import os
import sys
from pathlib import Path

import testinfra

ROOT = Path(__file__).resolve().parents[3]
for _path in (ROOT / "scripts", ROOT / ".collections"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from teleshift_cli import lab  # noqa: E402

LAB = lab.load_lab(os.environ.get("TELESHIFT_LAB_INVENTORY") or lab.LAB_INVENTORY)
HOST_NAMES = [h.name for h in LAB.hosts]
_CONNECTIONS = {}

def connect(name):
    """A testinfra host reached with `podman exec` (no ssh, no Ansible round trip)."""
    if name not in _CONNECTIONS:
        _CONNECTIONS[name] = testinfra.get_host(f"podman://{name}")
    return _CONNECTIONS[name]


