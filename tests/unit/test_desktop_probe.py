"""The session host's fingerprint (module_utils/desktop_probe.py), run by /bin/sh on this machine: it
changes with any of the account databases and with the set of uids owning a process (a locked
account's process must make the module run again), and is stable otherwise."""
import os
import shutil
import subprocess
import time

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_probe import FILES, probe_script


def digest(files):
    out = subprocess.run(["/bin/sh", "-c", probe_script(files)], capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.fixture()
def databases(tmp_path):
    files = []
    for path in FILES:
        copy = tmp_path / os.path.basename(path)
        copy.write_text(f"{os.path.basename(path)}:x:1:\n")
        files.append(str(copy))
    return files


def test_stable_and_a_hex_digest(databases):
    first = digest(databases)
    assert len(first) == 64 and int(first, 16) >= 0
    assert digest(databases) == first


@pytest.mark.parametrize("index", range(len(FILES)))
def test_any_database_changed_or_removed_changes_it(databases, index):
    before = digest(databases)
    with open(databases[index], "a", encoding="utf-8") as stream:
        stream.write("someone:x:2:\n")
    edited = digest(databases)
    assert edited != before
    os.remove(databases[index])
    assert digest(databases) not in (before, edited)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_a_process_of_a_new_uid_changes_it(databases):
    before = digest(databases)
    proc = subprocess.Popen(["setpriv", "--reuid=48123", "--regid=48123", "--clear-groups", "sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while digest(databases) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert digest(databases) != before
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while digest(databases) != before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert digest(databases) == before  # the same again once it is gone
