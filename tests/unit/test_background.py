"""Writes beside a plan task (module_utils/background.py): done before the block ends, a failure is
reported (the task fails as it did when it wrote in line), and outside a block nothing changes."""
import os

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import background
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state, save_state


def _write(path, text):
    with open(path, "w", encoding="utf-8") as stream:
        stream.write(text)


def test_outside_a_block_submit_runs_at_once(tmp_path):
    target = tmp_path / "now.txt"
    background.submit("now", _write, target, "done")
    assert target.read_text() == "done"


def test_a_block_waits_for_its_writes_and_they_ran_in_other_processes(tmp_path):
    targets = [tmp_path / f"{n}.txt" for n in range(3)]
    with background.writes_in_background():
        for target in targets:
            background.submit("pid", lambda t=target: _write(t, str(os.getpid())))
    pids = {t.read_text() for t in targets}  # all there once the block has ended
    assert len(pids) == 3 and str(os.getpid()) not in pids


def test_a_failed_write_is_reported_after_the_others_finished(tmp_path):
    good = tmp_path / "good.txt"
    with pytest.raises(background.WriteFailed) as caught:
        with background.writes_in_background():
            background.submit("writing the missing directory", _write, tmp_path / "no" / "such" / "f", "x")
            background.submit("writing good", _write, good, "ok")
    assert good.read_text() == "ok"
    assert len(caught.value.errors) == 1
    assert caught.value.errors[0].startswith("writing the missing directory: FileNotFoundError")


def test_the_block_raising_still_joins_its_writes(tmp_path):
    target = tmp_path / "late.txt"
    with pytest.raises(KeyError):
        with background.writes_in_background():
            background.submit("late", _write, target, "written")
            raise KeyError("the plan failed after the write was handed over")
    assert target.read_text() == "written"
    assert background._active is None  # the next task starts without a batch


def test_state_and_its_cache_written_beside_the_block(tmp_path, monkeypatch):
    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "state" / "vpn.yml"
    data = {"people": {f"p{n}": {"gateway": "gw1", "address": f"10.0.0.{n}"} for n in range(50)}}
    with background.writes_in_background():
        assert save_state(path, data, differs=True)
    assert load_state(path) == data
    # the state's parsed form went to the cache from the child, whose own submit ran in it (not in a
    # batch nobody would join): the next run finds it without parsing YAML
    names = os.listdir(tmp_path / "cache")
    assert any(name.startswith("state-") for name in names), names


def test_a_state_write_that_fails_fails_the_block(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(background.WriteFailed) as caught:
        with background.writes_in_background():
            save_state(blocker / "vpn.yml", {"people": {}}, differs=True)
    assert f"writing {blocker / 'vpn.yml'}" in str(caught.value)


def test_plan_task_fails_the_task_when_a_write_failed(tmp_path):
    result = {"changed": True}

    def work():
        background.submit(f"writing {tmp_path / 'no' / 'state.yml'}", _write, tmp_path / "no" / "state.yml", "x")
        result["planned"] = True
        return result

    out = background.plan_task(result, "VPN plan failed", work)
    assert out is result and out["planned"] and out["failed"]
    assert out["msg"].startswith(f"VPN plan failed, a file could not be written: writing {tmp_path / 'no'}")
    ok = background.plan_task({}, "VPN plan failed", lambda: {"changed": False})
    assert ok == {"changed": False}


def test_plan_task_runs_with_the_collector_paused_and_resumes_it():
    import gc

    seen = []
    assert gc.isenabled()
    result = background.plan_task({}, "Plan failed", lambda: seen.append(gc.isenabled()) or {"ok": True})
    assert result == {"ok": True} and seen == [False] and gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        background.plan_task({}, "Plan failed", lambda: 1 / 0)
    assert gc.isenabled()  # also after a failure
    gc.disable()
    try:  # a caller that had it off keeps it off
        background.plan_task({}, "Plan failed", dict)
        assert not gc.isenabled()
    finally:
        gc.enable()


def _answer_and_write(target):
    background.submit("its own write", _write, target, str(os.getpid()))  # joined in the child itself
    return {"pid": os.getpid(), "ids": ["a", "b"]}


def test_work_beside_the_task_comes_back_with_its_writes_done(tmp_path):
    target = tmp_path / "child.txt"
    with background.writes_in_background():
        started = background.beside("the second factor's plan", lambda: _answer_and_write(target))
        answer = started.result()
        assert target.read_text() != str(os.getpid())  # written by another process, before the answer
    assert answer["ids"] == ["a", "b"] and answer["pid"] != os.getpid()
    assert started.result() is answer  # asked again: the same answer, the child reaped once


def test_work_beside_that_fails_fails_the_task_with_its_reason(tmp_path):
    def broken():
        raise KeyError("no such gateway")

    started = background.beside("the second factor's plan", broken)
    with pytest.raises(background.BesideFailed) as caught:
        started.result()
    assert caught.value.errors == ["the second factor's plan: KeyError: 'no such gateway'"]
    result = background.plan_task({}, "VPN plan failed", lambda: background.beside("the gate's plan", broken).result())
    assert result == {"failed": True, "msg": "VPN plan failed: the gate's plan: KeyError: 'no such gateway'"}

    def bad_write():
        background.submit("its state file", _write, tmp_path / "no" / "such" / "f", "x")
        return {}
    with pytest.raises(background.WriteFailed) as caught:
        background.beside("plan", bad_write).result()
    assert caught.value.errors[0].startswith("plan: its state file: FileNotFoundError")


def test_work_beside_a_task_that_fails_first_is_still_waited_for(tmp_path):
    target = tmp_path / "late.txt"
    started = background.beside("late", lambda: _answer_and_write(target) and None)
    started.close()  # the task failed before asking: the child is reaped, its write done
    assert target.exists() and started.result() is None
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)  # no child left behind
