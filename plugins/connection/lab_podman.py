# teleshift: the lab's connection to its podman containers.
# Copyright: teleshift contributors. GNU General Public License v3.0+
# Why it exists: containers.podman.podman cannot pipeline, so every module costs four podman
# processes (mount, mkdir, chmod, run); this one pipes the module to `podman exec -i` (one process),
# which is how teleshift runs over SSH in production (pipelining=true), and what the benchmarks time.
# As root, with the container under runc, it runs the command with `runc exec` itself: the process
# podman exec starts in the end (same namespaces, cgroup, capabilities, user, directory and
# environment), without podman's own bookkeeping around it (a conmon process, an exec session in its
# database): 0.03 s a command instead of 0.13 s, nearer an SSH connection kept open than podman is.
from __future__ import annotations

DOCUMENTATION = r"""
name: lab_podman
short_description: Run tasks in the lab's podman containers with one podman process per module
description:
  - Runs commands with C(podman exec) in a running container named after the host, and pipes
    modules to the container's Python over stdin when pipelining is on (no temporary files).
  - As root, when the container runs under runc (its state under C(/run/runc)), runs them with
    C(runc exec) instead, the process podman exec would start, without podman's bookkeeping. Its output
    ends when the command ends, as with podman exec (a process the command left running in the
    background is not waited for). Set C(TELESHIFT_LAB_EXEC=podman) to always use podman exec.
  - Files are written and read through C(podman exec) as well, so no container mount is needed.
  - Built for the teleshift lab (root in the containers, no become).
author: teleshift contributors (!UNKNOWN)
version_added: 0.1.0
extends_documentation_fragment:
  - connection_pipelining
options:
  remote_addr:
    description: The name of the container.
    default: inventory_hostname
    type: str
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_podman_host
  podman_executable:
    description: The podman command.
    default: podman
    type: str
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
"""

import json
import os
import shlex
import shutil
import subprocess
import tempfile

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible.utils.display import Display

display = Display()


class Connection(ConnectionBase):
    """podman exec, pipelined."""

    transport = "teleshift.toolkit.lab_podman"
    has_pipelining = True
    has_tty = False

    _runc = None  # ["runc", "--root", ..., "exec", id] when the container can be entered that way

    def _connect(self):
        if not self._connected:
            super()._connect()
            self._runc = runc_exec(self.get_option("remote_addr"))
            self._connected = True
        return self

    def _podman(self, argv, in_data=None):
        podman = shutil.which(self.get_option("podman_executable"))
        if not podman:
            raise AnsibleConnectionFailure(f"{self.get_option('podman_executable')}: command not found")
        display.vvv(f"PODMAN {argv[:3]}", host=self.get_option("remote_addr"))
        stdin = {"input": in_data} if in_data is not None else {"stdin": subprocess.DEVNULL}
        proc = subprocess.run([podman, *argv], capture_output=True, check=False, **stdin)
        return proc.returncode, proc.stdout, proc.stderr

    def _exec(self, argv, in_data=None):
        if self._runc:
            return self._run_direct([*self._runc, *argv], in_data)
        container = self.get_option("remote_addr")
        flags = ["-i"] if in_data is not None else []
        return self._podman(["exec", *flags, container, *argv], in_data)

    def _run_direct(self, argv, in_data):
        """``argv`` with its output in files, read once the command has ended: a process it left running
        in the background keeps no pipe open (podman exec's conmon ends the streams the same way)."""
        display.vvv(f"RUNC EXEC {argv[5:8]}", host=self.get_option("remote_addr"))
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            stdin = subprocess.PIPE if in_data is not None else subprocess.DEVNULL
            with subprocess.Popen(argv, stdin=stdin, stdout=out, stderr=err) as proc:
                proc.communicate(in_data)
            out.seek(0)
            err.seek(0)
            return proc.returncode, out.read(), err.read()

    @ensure_connect
    def exec_command(self, cmd, in_data=None, sudoable=False):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        rc, out, err = self._exec(shlex.split(cmd), in_data)
        if rc == 125:  # podman's own failure (no such container, not running)
            raise AnsibleConnectionFailure(err.decode(errors="replace").strip())
        return rc, out, err

    @ensure_connect
    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        with open(in_path, "rb") as stream:
            data = stream.read()
        rc, _out, err = self._exec(["/bin/sh", "-c", f"cat > {shlex.quote(out_path)}"], data)
        if rc != 0:
            raise AnsibleError(f"cannot write {out_path}: {err.decode(errors='replace').strip()}")

    @ensure_connect
    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        rc, data, err = self._exec(["cat", in_path])
        if rc != 0:
            raise AnsibleError(f"cannot read {in_path}: {err.decode(errors='replace').strip()}")
        with open(out_path, "wb") as stream:
            stream.write(data)

    def close(self):
        self._connected = False


RUNC_ROOT = "/run/runc"  # runc's own default for root, where rootful podman keeps its containers' state
STORAGE = "/var/lib/containers/storage/overlay-containers/containers.json"  # rootful podman's default


def runc_exec(name, storage=STORAGE, runc_root=RUNC_ROOT):
    """The ``runc exec`` command prefix for the running container ``name``, or None (not root, no runc,
    another runtime or store, not running, or TELESHIFT_LAB_EXEC=podman): podman exec is used then."""
    runc = shutil.which("runc")
    if os.environ.get("TELESHIFT_LAB_EXEC", "auto") == "podman" or not runc or os.geteuid() != 0:
        return None
    try:
        with open(storage, encoding="utf-8") as stream:
            containers = json.load(stream)
        ids = [c["id"] for c in containers if name in (c.get("names") or [])]
        if len(ids) != 1 or not all(ch in "0123456789abcdef" for ch in ids[0]):
            return None
        with open(os.path.join(runc_root, ids[0], "state.json"), encoding="utf-8") as stream:
            state = json.load(stream)
        os.kill(int(state["init_process_pid"]), 0)  # its init still runs
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if state.get("id") != ids[0]:
        return None
    return [runc, "--root", runc_root, "exec", ids[0]]
