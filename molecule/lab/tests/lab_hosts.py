"""The lab hosts the testinfra suite checks, from the same lab definition `teleshift lab up` uses."""
import os

import testinfra

from teleshift_cli import lab  # scripts/ is on the path through pyproject.toml (pytest pythonpath)

LAB = lab.load_lab(os.environ.get("TELESHIFT_LAB_INVENTORY") or lab.LAB_INVENTORY)
HOST_NAMES = [h.name for h in LAB.hosts]
_CONNECTIONS = {}

def connect(name):
    """A testinfra host reached with `podman exec` (no ssh, no Ansible round trip)."""
    if name not in _CONNECTIONS:
        _CONNECTIONS[name] = testinfra.get_host(f"podman://{name}")
    return _CONNECTIONS[name]


