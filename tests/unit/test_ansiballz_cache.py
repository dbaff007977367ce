"""plugins/callback/ansiballz_cache.py, through real ansible-playbook runs: module payloads built by one
run are reused by the next, and a payload whose module or module_utils file changed since is not."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")

MODULE = '''#!/usr/bin/python
from __future__ import annotations
DOCUMENTATION = r"""
module: echo
short_description: test module
description: [test module]
options: {}
author: test
"""
from ansible.module_utils.basic import AnsibleModule
from ansible_collections.testns.cachetest.plugins.module_utils.word import WORD


def main():
    AnsibleModule(argument_spec={}).exit_json(changed=False, word=WORD)


if __name__ == "__main__":
    main()
'''


@pytest.fixture
def collection(tmp_path):
    """A collection of our own (testns.cachetest) whose module answers a word from its module_utils."""
    base = tmp_path / "colls" / "ansible_collections" / "testns" / "cachetest"
    (base / "plugins" / "modules").mkdir(parents=True)
    (base / "plugins" / "module_utils").mkdir(parents=True)
    (base / "galaxy.yml").write_text("namespace: testns\nname: cachetest\nversion: 1.0.0\n")
    (base / "plugins" / "modules" / "echo.py").write_text(MODULE)
    (base / "plugins" / "module_utils" / "word.py").write_text('WORD = "first"\n')
    return base


def run(tmp_path, store, *, verbose=False):
    play = tmp_path / "play.yml"
    play.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"testns.cachetest.echo": {}, "register": "echo"},
        {"ansible.builtin.debug": {"msg": "WORD={{ echo.word }}"}}]}]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
           "ANSIBLE_COLLECTIONS_PATH": f"{tmp_path / 'colls'}:{ROOT / '.collections'}",
           "TELESHIFT_ANSIBALLZ_CACHE": str(store), "ANSIBLE_NOCOLOR": "1"}
    cmd = [PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", f"ansible_python_interpreter={sys.executable}",
           str(play)] + (["-vvv"] if verbose else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def kept(store):
    return sorted(p.name for p in store.glob("core-*/*") if not p.name.endswith(".sources.json"))


def test_a_payload_is_kept_and_reused_by_the_next_run(tmp_path, collection):
    store = tmp_path / "store"
    assert "WORD=first" in run(tmp_path, store)
    assert kept(store) == ["ansible_collections.testns.cachetest.plugins.modules.echo-ZIP_DEFLATED-none"]
    sidecar = json.loads(next(store.glob("core-*/*.sources.json")).read_text())
    assert "ansible_collections/testns/cachetest/plugins/module_utils/word.py" in sidecar
    assert "ansible/module_utils/basic.py" in sidecar
    out = run(tmp_path, store, verbose=True)
    assert "WORD=first" in out and "reused 1 module payloads" in out and "kept 0 new" in out
    assert oct(next(store.glob("core-*")).stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("changed", ["plugins/module_utils/word.py", "plugins/modules/echo.py"])
def test_a_payload_whose_sources_changed_is_built_again(tmp_path, collection, changed):
    store = tmp_path / "store"
    assert "WORD=first" in run(tmp_path, store)
    path = collection / changed
    if changed.endswith("word.py"):
        path.write_text('WORD = "second"\n')
    else:  # the module answers another word of its own
        path.write_text(MODULE.replace("word=WORD", 'word=WORD + "-edited"'))
    out = run(tmp_path, store, verbose=True)
    assert ("WORD=second" if changed.endswith("word.py") else "WORD=first-edited") in out
    assert "reused 0 module payloads" in out and "kept 1 new" in out
    out = run(tmp_path, store, verbose=True)  # and the new payload is the one kept
    assert "reused 1 module payloads" in out
    assert ("WORD=second" if changed.endswith("word.py") else "WORD=first-edited") in out


def test_a_store_others_can_write_is_not_used(tmp_path, collection):
    store = tmp_path / "store"
    run(tmp_path, store)
    version_dir = next(store.glob("core-*"))
    version_dir.chmod(0o777)
    out = run(tmp_path, store, verbose=True)
    assert "WORD=first" in out and "is not private to this user: not used" in out
    assert "reused 1" not in out


def test_an_empty_cache_dir_turns_it_off(tmp_path, collection):
    out = run(tmp_path, "", verbose=True)
    assert "WORD=first" in out and "ansiballz_cache" not in out
    assert not any(tmp_path.glob("core-*"))
