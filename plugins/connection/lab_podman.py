# teleshift: the lab's connection to its podman containers.
# Copyright: teleshift contributors. GNU General Public License v3.0+
# Why it exists: containers.podman.podman cannot pipeline, so every module costs four podman
# processes (mount, mkdir, chmod, run); this one pipes the module to `podman exec -i` (one process),
# which is how teleshift runs over SSH in production (pipelining=true), and what the benchmarks time.
from __future__ import annotations

DOCUMENTATION = r"""
name: lab_podman
short_description: Run tasks in the lab's podman containers with one podman process per module
description:
  - Runs commands with C(podman exec) in a running container named after the host, and pipes
    modules to the container's Python over stdin when pipelining is on (no temporary files).
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

import shlex
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError
from ansible.plugins.connection import ConnectionBase, ensure_connect
from ansible.utils.display import Display

display = Display()


class Connection(ConnectionBase):
    """podman exec, pipelined."""

    transport = "teleshift.toolkit.lab_podman"
    has_pipelining = True
    has_tty = False

    def _connect(self):
        if not self._connected:
            super()._connect()
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
        container = self.get_option("remote_addr")
        flags = ["-i"] if in_data is not None else []
        return self._podman(["exec", *flags, container, *argv], in_data)

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
