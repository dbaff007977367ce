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
``os._exit`` so nothing of its parent (queues to Ansible's main process, exit handlers) runs twice."""
from __future__ import annotations

import contextlib
import gc
import os

_active = None  # the Batch of the running writes_in_background() block, if any


class WriteFailed(RuntimeError):
    def __init__(self, errors):
        super().__init__("; ".join(errors))
        self.errors = errors


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
    paused; a write that failed fails the task with ``headline`` and what could not be written."""
    try:
        with paused_gc(), writes_in_background():
            return run()
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
