"""`teleshift run PLAY --check --diff` prints each task's diff (from ansible-runner's events), never
what a no_log task touched."""
import shutil
from pathlib import Path

from teleshift_cli import main as cli
from teleshift_cli.runner import format_diff

LAB = Path(__file__).resolve().parents[2] / "inventories" / "lab"


def event(res, kind="runner_on_ok", **data):
    return {"event": kind, "event_data": {"host": "gw1", "task": "Apply peers", "res": res, **data}}


def test_format_diff_text_dict_list_and_prepared():
    text = format_diff(event({"diff": {"before": "a\nb\n", "after": "a\nc\n", "before_header": "f (live)",
                                       "after_header": "f (desired)"}}))
    assert text.splitlines() == ["=== gw1: Apply peers", "--- before: f (live)", "+++ after: f (desired)",
                                 "@@ -1,2 +1,2 @@", " a", "-b", "+c"]
    text = format_diff(event({"diff": [{"before": {"state": "absent"}, "after": {"state": "file"}},
                                       {"prepared": "+ amartin added"}]}))
    assert '-    "state": "absent"' in text and '+    "state": "file"' in text and "+ amartin added" in text
    text = format_diff(event({"diff": {"before": "x", "after": "y"}}, "runner_item_on_ok", item="rsa"))
    assert text.startswith("=== gw1: Apply peers (item rsa)\n") and "-x\n" in text and "+y\n" in text


def test_format_diff_nothing_to_show():
    assert format_diff(event({"diff": {"before": "same\n", "after": "same\n"}})) is None
    assert format_diff(event({"changed": True})) is None
    assert format_diff({"event": "playbook_on_task_start", "event_data": {}}) is None
    assert format_diff(event({"diff": {"before": "pin 1234", "after": "pin 9876"}, "_ansible_no_log": True})) is None
    assert format_diff(event({"censored": "the output has been hidden due to the fact that 'no_log: true'"})) is None
    assert format_diff(event({"diff": {"dst_binary": 1}})) == \
        "=== gw1: Apply peers\ndiff skipped: the destination looks binary\n"


PLAY = """\
- name: Local diff test
  hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: Write a file
      ansible.builtin.copy:
        content: "new line\\n"
        dest: {target}
        mode: "0600"
    - name: Write a secret
      ansible.builtin.copy:
        content: "SECRET-NEW-4729\\n"
        dest: {secret}
        mode: "0600"
      no_log: true
"""


def test_run_check_diff_prints_the_diffs_but_no_secret(tmp_path, capsys):
    inv = tmp_path / "inv"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("state", "kits"))
    target, secret = tmp_path / "target.txt", tmp_path / "secret.txt"
    target.write_text("old line\n")
    secret.write_text("SECRET-OLD-1234\n")
    play = tmp_path / "play.yml"
    play.write_text(PLAY.format(target=target, secret=secret))
    code = cli.main(["run", str(play), "--inventory", str(inv), "--check", "--diff", "--no-progress",
                     "--artefact", str(tmp_path / "run.json"), "--timeout", "300"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"=== localhost: Write a file\n--- before: {target}\n+++ after: {target}\n" in out
    assert "-old line\n+new line\n" in out
    assert "SECRET" not in out + err and "Write a secret" not in out
    assert target.read_text() == "old line\n"  # check mode
    code = cli.main(["run", str(play), "--inventory", str(inv), "--check", "--no-progress",
                     "--artefact", str(tmp_path / "run.json"), "--timeout", "300"])
    out, err = capsys.readouterr()
    assert code == 0 and "+new line" not in out  # no --diff, no diff
