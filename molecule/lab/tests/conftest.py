"""Lab hosts for the testinfra tests, from the same lab definition `teleshift lab up` uses."""
import os
import sys
from pathlib import Path

import pytest
import testinfra

ROOT = Path(__file__).resolve().parents[3]
sys.path[:0] = [str(ROOT / "scripts"), str(ROOT / ".collections")]

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


# With TELESHIFT_VERIFY_FILE set (scripts/demo does), every host check's outcome is recorded there for
# the readiness report (`teleshift report --verify`): host -> check -> ok, detail.
VERIFY_FILE = os.environ.get("TELESHIFT_VERIFY_FILE")


def _host_of(item):
    params = getattr(getattr(item, "callspec", None), "params", {})
    for value in params.values():
        if isinstance(value, str) and value in HOST_NAMES:
            return value
    return None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not VERIFY_FILE or report.when != "call" and not (report.when == "setup" and report.failed):
        return
    host = _host_of(item)
    if host:
        from teleshift_cli.report import record_verification

        detail = "" if report.passed else str(report.longrepr).splitlines()[-1][:300]
        record_verification(VERIFY_FILE, host=host, check=item.originalname, ok=report.passed, detail=detail)
