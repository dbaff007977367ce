"""The lab's connection (plugins/connection/lab_podman.py), run by ansible-playbook against a
stand-in podman: a script that logs each call and runs `exec [-i] NAME CMD...` as CMD on this machine
(the real one is exercised by every lab run)."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

STAND_IN = """#!/bin/sh
echo "$*" >> "{log}"
[ "$1" = exec ] || exit 64
shift
[ "$1" = -i ] && shift
[ "$1" = gone ] && {{ echo "Error: no container with name or ID \\"gone\\" found" >&2; exit 125; }}
shift
exec "$@"
"""


def run(tmp_path, host, tasks):
    log = tmp_path / "podman.log"
    podman = tmp_path / "podman"
    podman.write_text(STAND_IN.format(log=log))
    podman.chmod(0o755)
    (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"hosts": {host: {
        "ansible_connection": "teleshift.toolkit.lab_podman", "ansible_pipelining": True,
        "ansible_podman_executable": str(podman), "ansible_python_interpreter": sys.executable,
        "ansible_remote_tmp": str(tmp_path / "remote-tmp")}}}}))
    (tmp_path / "play.yml").write_text(json.dumps([{"hosts": "all", "gather_facts": False, "tasks": tasks}]))
    proc = subprocess.run([PLAYBOOK, "-i", str(tmp_path / "hosts.yml"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_a_module_is_one_pipelined_podman_exec_with_no_temporary_files(tmp_path):
    proc, calls = run(tmp_path, "ts-x", [{"ansible.builtin.ping": {"data": "pong-42"}, "register": "p"},
                                         {"ansible.builtin.assert": {"that": "p.ping == 'pong-42'"}}])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(calls) == 1 and calls[0].startswith("exec -i ts-x /bin/sh -c "), calls
    assert not (tmp_path / "remote-tmp").exists() or not any((tmp_path / "remote-tmp").iterdir())


def test_files_are_written_and_read_through_podman_exec(tmp_path):
    src, copied, fetched = tmp_path / "src.txt", tmp_path / "in-container.txt", tmp_path / "fetched"
    src.write_bytes("Zoé\x00binary\n".encode())
    proc, calls = run(tmp_path, "ts-x", [
        {"ansible.builtin.copy": {"src": str(src), "dest": str(copied), "mode": "0600"}},
        {"ansible.builtin.fetch": {"src": str(copied), "dest": str(fetched) + "/", "flat": True}}])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert copied.read_bytes() == src.read_bytes() and oct(copied.stat().st_mode & 0o777) == "0o600"
    assert (fetched / "in-container.txt").read_bytes() == src.read_bytes()
    assert all(c.startswith("exec ") and " ts-x " in f" {c} " for c in calls), calls


def test_a_missing_container_is_unreachable_not_a_task_failure(tmp_path):
    proc, _ = run(tmp_path, "gone", [{"ansible.builtin.ping": {}}])
    assert proc.returncode == 4, proc.stdout  # 4: unreachable hosts
    assert "UNREACHABLE" in proc.stdout and "no container" in proc.stdout


# --- the direct path: runc exec, as root, for a container running under runc

def _store(tmp_path, names_to_ids, pid):
    import os

    tmp_path.mkdir(parents=True, exist_ok=True)
    storage = tmp_path / "containers.json"
    storage.write_text(json.dumps([{"id": cid, "names": [name]} for name, cid in names_to_ids.items()]))
    root = tmp_path / "runc"
    for cid in names_to_ids.values():
        os.makedirs(root / cid, exist_ok=True)
        (root / cid / "state.json").write_text(json.dumps({"id": cid, "init_process_pid": pid}))
    return str(storage), str(root)


def test_a_running_container_is_entered_with_runc_exec(tmp_path, monkeypatch):
    import os

    from ansible_collections.teleshift.toolkit.plugins.connection import lab_podman

    monkeypatch.setattr(lab_podman.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(lab_podman.os, "geteuid", lambda: 0)
    monkeypatch.delenv("TELESHIFT_LAB_EXEC", raising=False)
    storage, root = _store(tmp_path, {"ts-gw1": "ab12" * 16, "ts-gw2": "cd34" * 16}, os.getpid())
    assert lab_podman.runc_exec("ts-gw2", storage, root) == ["/usr/sbin/runc", "--root", root, "exec", "cd34" * 16]
    assert lab_podman.runc_exec("ts-gw3", storage, root) is None  # not in the store: podman exec says why
    monkeypatch.setenv("TELESHIFT_LAB_EXEC", "podman")
    assert lab_podman.runc_exec("ts-gw2", storage, root) is None  # asked for podman exec


def test_a_stopped_or_foreign_container_goes_through_podman(tmp_path, monkeypatch):
    import subprocess as sp

    from ansible_collections.teleshift.toolkit.plugins.connection import lab_podman

    monkeypatch.setattr(lab_podman.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(lab_podman.os, "geteuid", lambda: 0)
    monkeypatch.delenv("TELESHIFT_LAB_EXEC", raising=False)
    dead = sp.Popen(["true"])
    dead.wait()
    storage, root = _store(tmp_path, {"ts-gw1": "ab12" * 16}, dead.pid)
    assert lab_podman.runc_exec("ts-gw1", storage, root) is None  # its init is gone
    storage, root = _store(tmp_path / "b", {"ts-gw1": "../../etc"}, 1)
    assert lab_podman.runc_exec("ts-gw1", storage, root) is None  # not an id: no path built from it
    monkeypatch.setattr(lab_podman.os, "geteuid", lambda: 1000)
    storage, root = _store(tmp_path / "c", {"ts-gw1": "ab12" * 16}, 1)
    assert lab_podman.runc_exec("ts-gw1", storage, root) is None  # rootless: podman's own runtime root


def test_the_direct_path_ends_with_the_command_not_with_what_it_left_running():
    import time

    from ansible_collections.teleshift.toolkit.plugins.connection import lab_podman

    conn = lab_podman.Connection.__new__(lab_podman.Connection)
    conn.get_option = lambda name: "ts-x"
    start = time.monotonic()
    rc, out, err = conn._run_direct(["sh", "-c", "sleep 5 & echo started; echo warn >&2; exit 3"], None)
    assert (rc, out, err) == (3, b"started\n", b"warn\n")
    assert time.monotonic() - start < 3  # the background sleep holds the output open, not the call
    rc, out, _ = conn._run_direct(["sh", "-c", "cat; echo"], b"module source")
    assert (rc, out) == (0, b"module source\n")
