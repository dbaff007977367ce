# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Writes that run beside the work after them, joined before the task returns.

Why: at 50,000 people a one-person change spent 1.5-2 s of the plan task writing files nothing later in
the same task reads (the state files, the parsed-file cache, the roster's row memo) while the
controller's second core waited. Inside ``writes_in_background()``, ``submit(what, fn, ...)`` runs
``fn`` in a forked child (a copy of the data as it is now) and the task goes on; leaving the block waits
for every child and raises ``WriteFailed`` naming each write that failed, so a task still fails when
its state file could not be written, as before, only later. Outside such a block (the command line,
tests, any other caller) ``submit`` simply calls ``fn``.

A child only encodes and writes files: no logging, no Ansible display, no threads; it leaves with
``os._exit`` so nothing of its parent (queues to Ansible's main process, exit handlers) runs twice.

``beside(what, fn)`` does the same for a part of the work whose answer the task needs later (the second
factor's plan beside the rest of a VPN or desktop plan task): ``fn``'s JSON value comes back from
``.result()``, after the child's own writes are done."""
from __future__ import annotations

import contextlib
import gc
import json
import os

_active = None  # the Batch of the running writes_in_background() block, if any


class WriteFailed(RuntimeError):
    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = errors


class BesideFailed(WriteFailed):
    """Work run ``beside`` the task failed (or one of its own writes did)."""


class Batch:
    def __init__(self):
        self.children = []  # (pid, read end of its error pipe, what)

    def submit(self, what, fn, *args, **kwargs):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: write, report an error on the pipe, leave at once
            global _active  # pylint: disable=global-statement
            _active = None  # its own submits run in it, not in a batch it would never join
            code = 0
            try:
                os.close(read_end)
                fn(*args, **kwargs)
            except BaseException as exc:  # noqa: BLE001  (whatever it is, the parent must hear of it)
                code = 1
                try:
                    os.write(write_end, f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:4000])
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(write_end)
        self.children.append((pid, read_end, what))

    def join(self):
        """Wait for every child; the list of failures ("what: error"), empty when all succeeded."""
        errors = []
        for pid, read_end, what in self.children:
            with os.fdopen(read_end, "rb") as stream:
                message = stream.read().decode("utf-8", "replace")
            status = os.waitpid(pid, 0)[1]
            if os.waitstatus_to_exitcode(status) != 0:
                errors.append(f"{what}: {message or 'the writer process failed'}")
        self.children = []
        return errors


class Beside:
    """``fn()`` run in a forked child now; ``result()`` waits for it and gives its value (JSON data), or
    raises BesideFailed with what went wrong there. Without ``fork``, ``fn`` runs at once."""

    def __init__(self, what, fn):
        self.what = what
        self._value = self._pid = self._read_end = None
        if not hasattr(os, "fork"):
            self._value = fn()
            return
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: the work, its own writes joined, its answer on the pipe, leave at once
            global _active  # pylint: disable=global-statement
            code = 0
            try:
                os.close(read_end)
                batch = _active = Batch()  # never the parent's children: those are not its own
                try:
                    answer = {"value": fn()}
                finally:
                    _active = None
                    errors = batch.join()
                if errors:
                    answer = {"error": "; ".join(errors)}
                data = json.dumps(answer).encode()
            except BaseException as exc:  # noqa: BLE001  (whatever it is, the parent must hear of it)
                code = 1
                data = json.dumps({"error": f"{type(exc).__name__}: {exc}"[:4000]}).encode()
            try:
                with os.fdopen(write_end, "wb") as stream:
                    stream.write(data)
            finally:
                os._exit(code)
        os.close(write_end)
        self._pid, self._read_end = pid, read_end

    def result(self):
        if self._pid is None:
            return self._value
        try:
            with os.fdopen(self._read_end, "rb") as stream:
                data = stream.read()
            os.waitpid(self._pid, 0)
        finally:
            self._pid = self._read_end = None
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {"error": "the process ended without an answer"}
        if not isinstance(answer, dict) or "value" not in answer:
            raise BesideFailed([f"{self.what}: {answer.get('error') if isinstance(answer, dict) else answer}"])
        self._value = answer["value"]
        return self._value

    def close(self):
        """Wait for a child whose answer nobody asked for (the task failed before): never a zombie, and
        its writes are done (or failed) when the task ends, as every write of a plan task."""
        if self._pid is None:
            return
        try:
            self.result()
        except BesideFailed:
            pass


def beside(what, fn):
    """``fn()`` beside the rest of the task (see the module's doc): a Beside whose ``result()`` is its value."""
    return Beside(what, fn)


def submit(what, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a child of the running batch, or now when there is none."""
    if _active is None:
        fn(*args, **kwargs)
    else:
        _active.submit(what, fn, *args, **kwargs)


@contextlib.contextmanager
def writes_in_background():
    """Run the block's ``submit`` calls beside it; wait for them all when it ends (also when it raises:
    no write outlives the task). Raises WriteFailed after the block when one of them failed. Nested
    blocks join with the outermost one."""
    global _active  # pylint: disable=global-statement
    if _active is not None or not hasattr(os, "fork"):
        yield
        return
    batch = _active = Batch()
    try:
        yield
    finally:
        _active = None
        errors = batch.join()
    if errors:
        raise WriteFailed(errors)


def plan_task(result, headline, run):
    """``run()`` (an action's work, filling ``result``) with its writes beside it and the collector
    paused; a write that failed fails the task with ``headline`` and what could not be written, work
    run ``beside`` it that failed with its reason."""
    try:
        with paused_gc(), writes_in_background():
            return run()
    except BesideFailed as exc:  # the work beside the task (its reason says what it was)
        result.update(failed=True, msg=f"{headline}: {exc}")
    except WriteFailed as exc:
        result.update(failed=True, msg=f"{headline}, a file could not be written: {exc}")
    return result


@contextlib.contextmanager
def paused_gc():
    """Python's cyclic garbage collector paused for the block.

    Why: a plan builds many objects that all stay alive until the task ends; the collector, triggered
    by those allocations, walks them again and again, and with them everything an Ansible worker
    inherited from its parent (the inventory, the registered plans). At 50,000 people that was 0.3-0.4 s
    of a VPN plan task, and a 50,000-person roster took 0.85 to 1.6 s to come back from the parsed-file
    cache instead of 0.2 s. Objects are still freed by reference counting as usual; a cycle waits for
    the collector to resume (an Ansible worker runs one task, then leaves)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
