"""Fixtures of the lab's testinfra suite (hosts from lab_hosts.py)."""
import os

import pytest

from lab_hosts import HOST_NAMES, LAB, connect


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
