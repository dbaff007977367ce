"""xrdp and sesman under systemd (roles/xrdp_host/files/systemd): in the foreground, so no pid file races
systemd; and the health check's bounded wait for units to settle after a restart."""
import configparser
from pathlib import Path

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop_health as dh

DROPINS = Path(__file__).resolve().parents[2] / "roles" / "xrdp_host" / "files" / "systemd"


def service_section(path):
    """[Service] of a drop-in as {key: [values]} (systemd keys repeat; an empty value resets)."""
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("unit, binary", [("xrdp", "/usr/sbin/xrdp"), ("xrdp-sesman", "/usr/sbin/xrdp-sesman")])
def test_dropin_runs_the_daemon_in_the_foreground(unit, binary):
    path = DROPINS / f"{unit}.conf"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.read_string(path.read_text())
    assert parser.sections() == ["Service"]
    service = service_section(path)
    assert service["Type"] == ["exec"] and service["PIDFile"] == [""]
    # ExecStart reset, then the daemon with --nodaemon (flag of xrdp 0.9.21 and sesman's --help)
    assert service["ExecStart"][0] == "" and service["ExecStart"][1].split()[:2] == [binary, "--nodaemon"]
    assert service["ExecStop"] == [""]  # no `--kill` through a pid file: systemd stops the main process


def test_health_waits_for_units_to_settle_then_reads_them():
    seen = {"xrdp": ["activating", "activating", "active"], "xrdp-sesman": ["active"] * 3}
    clock = iter(range(100)).__next__
    sleeps = []
    states = dh.settled_states(lambda unit: seen[unit].pop(0), dh.UNITS, settle=30, clock=clock,
                               sleep=sleeps.append)
    assert states == {"xrdp": "active", "sesman": "active"} and len(sleeps) == 2


def test_health_wait_is_bounded_and_reports_what_it_last_saw():
    clock = iter(range(0, 1000, 10)).__next__
    reads = []
    states = dh.settled_states(lambda unit: reads.append(unit) or "activating", dh.UNITS, settle=25,
                               clock=clock, sleep=lambda s: None)
    assert states == {"xrdp": "activating", "sesman": "activating"}
    assert len(reads) == 2 * 3  # read at clock 10, 20, 30: the last one is past the 25 s deadline
    assert dh.evaluate(states)["problems"] == ["xrdp is activating", "sesman is activating"]


def test_health_without_settle_reads_once():
    reads = []
    dh.settled_states(lambda unit: reads.append(unit) or "failed", dh.UNITS)
    assert reads == ["xrdp", "xrdp-sesman"]
