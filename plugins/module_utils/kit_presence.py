# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Which people's kits hold a given file, found by a forked child while the plan goes on.

Why: a plan skips the people whose key or secret is already in their kit, and checking that took one
``stat`` a person and a file: about 0.27 s for each of the VPN key and the second factor's secret at
50,000 people, on the controller's one busy core. ``Presence(root, files)`` forks a child at once
(before the roster is read and the plan made) that looks every kit folder up on the other core and
sends back, for each file, the ids whose kit holds it, and for each folder asked, its time (the VPN
profiles' index skips a person whose folder is unchanged). ``holders(file)`` and ``times(folder)``
wait for that answer.

The answer is what ``os.path.exists`` would have said when the child looked (symlinks followed, as
there). It is only ever used to skip work for a file that was there: a file created after the look
is simply found again by the caller's own read. Without ``fork``, or if the child fails,
``holders`` returns None and callers check each person themselves, as before."""
from __future__ import annotations

import json
import os
import signal

MAX_ANSWER = 64 * 1024 * 1024


def _look(root, files, folders=()):
    """{"files": {file: [ids whose kit folder holds it]}, "folders": {folder: {id: its st_mtime_ns}}}
    for the kit folders under ``root``."""
    found = {rel: [] for rel in files}
    times = {rel: {} for rel in folders}
    answer = {"files": found, "folders": times}
    try:
        names = [e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir()]
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return answer  # no kits yet: nobody holds anything
    try:
        for name in names:
            for rel in files:
                try:
                    os.stat(f"{name}/{rel}", dir_fd=fd)
                except OSError:
                    continue
                found[rel].append(name)
            for rel in folders:
                try:
                    times[rel][name] = os.stat(f"{name}/{rel}", dir_fd=fd).st_mtime_ns
                except OSError:
                    continue
    finally:
        os.close(fd)
    return answer


class Presence:
    """The look-up of ``files`` and ``folders`` (paths relative to a person's kit folder) under ``root``,
    started now."""

    def __init__(self, root, files, folders=()):
        self.files = tuple(files)
        self.folders = tuple(folders)
        self._answer = None
        self._pid = None
        self._read_end = None
        if not root or not (self.files or self.folders) or not hasattr(os, "fork"):
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: look, answer, leave at once (nothing of the parent runs twice)
            code = 0
            try:
                os.close(read_end)
                data = json.dumps(_look(str(root), self.files, self.folders)).encode()
                with os.fdopen(write_end, "wb") as stream:
                    stream.write(data)
            except BaseException:  # noqa: BLE001  (the parent sees a short answer and checks itself)
                code = 1
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid, self._read_end = pid, read_end

    def holders(self, rel):
        """The set of ids whose kit held ``rel`` when the child looked, or None (unknown: check each)."""
        if rel not in self.files:
            return None
        answer = self._get()
        return None if answer is None else set(answer["files"].get(rel, ()))

    def times(self, rel):
        """{id: st_mtime_ns} of the kit folders holding the folder ``rel`` when the child looked, or None."""
        if rel not in self.folders:
            return None
        answer = self._get()
        return None if answer is None else dict(answer["folders"].get(rel, {}))

    def wait(self):
        """Wait for the child's answer now (before this process forks again: a child of ours must never
        read it, it is not its child to reap)."""
        self._get()

    def _get(self):
        if self._answer is None and self._pid is not None:
            self._answer = self._collect()
        return self._answer or None

    def _collect(self):
        try:
            with os.fdopen(self._read_end, "rb") as stream:
                data = stream.read(MAX_ANSWER + 1)
            status = os.waitpid(self._pid, 0)[1]
        finally:
            self._pid = self._read_end = None
        if os.waitstatus_to_exitcode(status) != 0 or len(data) > MAX_ANSWER:
            return {}
        try:
            answer = json.loads(data)
        except ValueError:
            return {}
        ok = (isinstance(answer, dict) and isinstance(answer.get("files"), dict)
              and isinstance(answer.get("folders"), dict))
        return answer if ok else {}

    def close(self):
        """Stop and reap a child whose answer nobody asked for (a plan refused early)."""
        if self._pid is None:
            return
        try:
            os.kill(self._pid, signal.SIGKILL)
        except OSError:
            pass
        os.close(self._read_end)
        os.waitpid(self._pid, 0)
        self._pid = self._read_end = None

    def __del__(self):
        self.close()
