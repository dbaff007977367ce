"""A host that a play ends early (``meta: end_host``) skips the handlers notified for it so far: Ansible
runs them at the play's end, which that host never reaches. vpn.yml and openvpn.yml end internal hosts
after their routes (whose unit change notifies a reload) and gateways after the peers (an interface
restart). Every such end must come right after a ``meta: flush_handlers`` once anything before it in the
play can notify. The first test shows the Ansible behaviour this guards against, on this machine."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
ENDS = ("end_host", "end_play", "end_batch")
INCLUDES = ("include_role", "import_role", "include_tasks", "import_tasks")


def _action(task):
    for key in task:
        short = key.rsplit(".", 1)[-1]
        if short == "meta" or short in INCLUDES:
            return short, task[key]
    return None, None


def _can_notify(task):
    short, _ = _action(task)
    return "notify" in task or short in INCLUDES or any(_can_notify(t) for t in task.get("block", []))


def _ends_without_flush(path):
    found = []
    for play in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
        tasks = list(play.get("pre_tasks", [])) + list(play.get("tasks", []))
        notified = bool(play.get("roles"))
        for index, task in enumerate(tasks):
            short, value = _action(task)
            if short == "meta" and str(value).strip() in ENDS and notified:
                before = _action(tasks[index - 1]) if index else (None, None)
                if before != ("meta", "flush_handlers"):
                    found.append(f"{path.name}: {task.get('name', value)}")
            notified = notified or _can_notify(task)
    return found


def test_ansible_skips_the_handlers_of_a_host_ended_early_unless_flushed(tmp_path):
    play = """
- hosts: all
  gather_facts: false
  strategy: ansible.builtin.free
  tasks:
    - ansible.builtin.command: "true"
      changed_when: true
      notify: h
    {flush}
    - ansible.builtin.meta: end_host
  handlers:
    - name: h
      ansible.builtin.debug: {{msg: HANDLER-RAN}}
"""
    outputs = {}
    for name, flush in (("ended", ""), ("flushed", "- ansible.builtin.meta: flush_handlers")):
        (tmp_path / f"{name}.yml").write_text(play.format(flush=flush))
        proc = subprocess.run([PLAYBOOK, "-i", "a,", "-c", "local", "-e",
                               f"ansible_python_interpreter={sys.executable}", str(tmp_path / f"{name}.yml")],
                              capture_output=True, text=True, timeout=120, cwd=ROOT)
        assert proc.returncode == 0, proc.stdout[-2000:]
        outputs[name] = proc.stdout
    assert "HANDLER-RAN" not in outputs["ended"]
    assert "HANDLER-RAN" in outputs["flushed"]


@pytest.mark.parametrize("path", sorted((ROOT / "playbooks").glob("*.yml")), ids=lambda p: p.name)
def test_no_play_ends_a_host_with_handlers_pending(path):
    assert _ends_without_flush(path) == []


def test_the_check_finds_an_end_without_a_flush(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text("- hosts: all\n  tasks:\n"
                    "    - {name: routes, ansible.builtin.include_role: {name: teleshift.toolkit.vpn_route}}\n"
                    "    - {name: stop, ansible.builtin.meta: end_host}\n")
    assert _ends_without_flush(path) == ["play.yml: stop"]
