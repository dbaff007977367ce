"""Every subcommand, found from the parser, run in-process with hostile arguments and files: each run
ends with a non-zero exit and one clear error line, never a traceback.

Every option of every subcommand must be attacked here (HOSTILE) or said harmless (HARMLESS): a new
subcommand or option fails `test_every_option_is_classified` until it is. Nothing touches the shared
lab: `lab up`/`lab down` are only given what the parser itself refuses, `run` cannot reach Ansible
and `status` cannot query a host (both are replaced by stubs that fail the test when called)."""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from teleshift_cli import main as cli

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "inventories" / "lab"
CASE_SECONDS = 60

# leaf command -> its ordinary arguments (positionals first), which succeed on the test inventory
BASE = {
    ("validate",): ["--inventory", "{inv}"],
    ("roster", "generate"): ["--count", "5", "-o", "gen.csv"],
    ("roster", "export"): ["--inventory", "{inv}", "-o", "export.csv"],
    ("plan",): ["--inventory", "{inv}"],
    ("waves",): ["--inventory", "{inv}", "-o", "waves.csv"],
    ("kits",): ["--inventory", "{inv}"],
    ("report",): ["--inventory", "{inv}", "-o", "report.html"],
    ("status",): ["amartin", "--inventory", "{inv}"],
    ("run",): ["preflight", "--inventory", "{inv}", "--artefact", "run.json"],
    ("lab", "status"): ["--inventory", "{inv}"],
    ("lab", "up"): [],
    ("lab", "down"): [],
}
# what may run only as far as the parser: anything further touches the shared lab
PARSER_ONLY = {("lab", "up"): "creates or repairs the shared lab's containers",
               ("lab", "down"): "removes the shared lab"}
# hostile values a leaf never reads (with the reason)
NOT_READ = {("lab", "status"): ({"{inv_yaml}", "{inv_services}", "{inv_kits}", "{inv_roster}", "{inv_hotline}",
                                 "{inv_binary}", "{inv_licences}"}, "reads only hosts.yml, not group_vars")}
# leaves whose ordinary run would query lab hosts (their hostile runs are stopped before that)
NO_BASE_RUN = {("status",): "asks the lab hosts", ("lab", "status"): "asks podman about the shared lab",
               ("report",): "reads the lab gateway's second-factor log (the lab inventory turns it on)"}

BAD_PATHS = ["{tmp}", "{tmp}/", "/proc/no/such/dir/out", "{file}/below", "{roster}"]
HOSTILE = {
    "roster": ["{tmp}/missing.csv", "{dir_csv}", "{unreadable}", "{binary}", "{tmp}/roster.txt", "{bad_yaml}",
               "{empty}", "{inv}"],
    "inventory": ["{tmp}/missing", "{roster}", "{tmp}/emptyinv", "{inv_yaml}", "{inv_services}",
                  "{inv_kits}", "{inv_roster}", "{inv_hotline}", "{inv_binary}", "{inv_licences}"],
    "output": BAD_PATHS,
    "json_file": BAD_PATHS,
    "artefact": BAD_PATHS,
    "verify": ["{bad_json}", "{list_json}", "{wrong_json}", "{dir_csv}", "{binary}"],
    "kits_dir": ["{file}"],
    "overrides": ["foo", "nosuch=1", "teleshift_capacity_vpn_max_peers=abc",
                  "teleshift_capacity_vpn_max_peers=1e400", "teleshift_capacity_phone_blocking=nan",
                  "teleshift_capacity_phone_blocking=1e308", "teleshift_capacity_phone_erlangs_per_person=1e300",
                  "teleshift_capacity_desktop_session_mib=0", "teleshift_capacity_vpn_max_peers=-5"],
    "laptops": ["abc", "-1", "1,,2", "99999999999", ""],
    "licences": ["abc", "-1", "99999999999"],
    "per_wave": ["-1", "1000000000000", "x"],
    "count": ["0", "-5", "1000000000000", "x"],
    "seed": ["x", "1.5"],
    "jobs": ["-1", "100000", "x"],
    "timeout": ["-1", "1e12", "x", "nan"],
    "format": ["xml"],
    "person": ["nobody-here", ""],
    "playbook": ["no-such-play", "{tmp}", "{roster}", ""],
    "extra": ['"unclosed'],
    "capability": ["nosuch", ""],
    "vault_password_file": ["{tmp}/missing", "{tmp}", "{empty}"],
    "gateways": ["0", "-1", "17", "x", "1e9"],
    "desktops": ["0", "21", "x"],
    "assign": ["0", "-1", "x", "99"],
    "reassign": ["no-such-laptop", "x=y", "=", "LAB-0001=nobody-here"],
    "release": ["no-such-laptop", ""],
}
HARMLESS = {
    "help": "argparse's own",
    "limit": "handed to Ansible as a host pattern; a pattern matching nothing is Ansible's own message",
    "allow_mass_removal": "a confirmation flag (store_true): it takes no value",
}


class _Timeout(BaseException):
    pass


class _Touched(BaseException):
    """A stub was reached: the command went further than it may in this test."""


def leaves():
    """(path, parser) for every runnable subcommand, found from the parser."""
    found = []

    def walk(parser, path):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            found.append((path, parser))
            return
        for name, child in subs[0].choices.items():
            walk(child, path + (name,))
    walk(cli.build_parser(), ())
    return found


LEAVES = dict(leaves())


def options(parser):
    """(dest, how to pass it) for every action taking a value."""
    result = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.nargs == 0:
            continue
        longs = [s for s in action.option_strings if s.startswith("--")]
        result.append((action.dest, longs[0] if longs else None))
    return result


def test_every_option_is_classified():
    assert len(LEAVES) >= 9  # validate, roster generate, plan, waves, kits, report, status, run, lab ...
    missing = [f"{' '.join(path)}: no BASE arguments" for path in LEAVES if path not in BASE]
    for path, parser in LEAVES.items():
        missing += [f"{' '.join(path)}: {dest}" for dest, _ in options(parser)
                    if dest not in HOSTILE and dest not in HARMLESS]
    assert not missing, "add hostile values (HOSTILE) or a reason (HARMLESS) for: " + "; ".join(missing)


def _inventory(world, name, text, file="zzz_hostile.yml", mode="w"):
    path = world / name
    shutil.copytree(world / "inv", path)
    target = path / "group_vars" / "all" / file
    if mode == "wb":
        target.write_bytes(text)
    else:
        target.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A good inventory (copy of the lab's, kits inside) and hostile files beside it."""
    w = tmp_path_factory.mktemp("world")
    inv = w / "inv"
    shutil.copytree(LAB, inv, ignore=shutil.ignore_patterns("state", "kits"))
    (inv / "group_vars" / "all" / "zz_test.yml").write_text("teleshift_kits_dir: kits\n")
    (w / "dir.csv").mkdir()
    (w / "emptyinv").mkdir()
    (w / "file").write_text("a file\n")
    (w / "binary.csv").write_bytes(b"\x00\xff\xfe\x00id,full_name\n\x80\x81")
    (w / "roster.txt").write_text("id,full_name,email,service\n")
    (w / "bad.yml").write_text("- id: [unclosed\n  full_name: : x\n")
    (w / "empty.csv").write_text("")
    (w / "unreadable.csv").symlink_to("/proc/self/mem")  # EIO even for root
    (w / "bad.json").write_text('{"hosts": ')
    (w / "list.json").write_text("[1, 2]\n")
    (w / "wrong.json").write_text('{"hosts": [1], "people": 3}\n')
    places = {"tmp": str(w), "inv": str(inv), "roster": str(inv / "roster.csv"), "dir_csv": str(w / "dir.csv"),
              "file": str(w / "file"), "binary": str(w / "binary.csv"), "bad_yaml": str(w / "bad.yml"),
              "empty": str(w / "empty.csv"), "unreadable": str(w / "unreadable.csv"),
              "bad_json": str(w / "bad.json"), "list_json": str(w / "list.json"), "wrong_json": str(w / "wrong.json")}
    for key, text in {"inv_yaml": "teleshift_services: [unclosed\n  a: : b\n",
                      "inv_services": "teleshift_services: 42\n",
                      "inv_kits": "teleshift_kits_dir: [1, 2]\n",
                      "inv_roster": "teleshift_roster_file: 5\n",
                      "inv_hotline": "teleshift_hotline_number: {a: 1}\n",
                      "inv_licences": "teleshift_vpn_licences: lots\nteleshift_rollout_per_wave: x\n"}.items():
        places[key] = str(_inventory(w, key, text))
    places["inv_binary"] = str(_inventory(w, "inv_binary", b"\x00\xff\xfe: [", mode="wb"))
    return places


@pytest.fixture()
def guarded(monkeypatch, tmp_path):
    """Stubs where a command would reach Ansible, the lab hosts or the lab itself; a private cwd."""
    from teleshift_cli import lab, runner, status

    def touched(what):
        def stub(*args, **kwargs):
            raise _Touched(what)
        return stub
    monkeypatch.setattr(runner, "run_playbook", touched("ansible-runner"))
    monkeypatch.setattr(status, "HostRunner", touched("the lab hosts"))
    monkeypatch.setattr(lab, "lab_up", touched("lab up"))
    monkeypatch.setattr(lab, "lab_down", touched("lab down"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_bounded(argv, capsys):
    def alarm(signum, frame):
        raise _Timeout(f"more than {CASE_SECONDS}s")
    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse refusing an argument
            code = exc.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    out, err = capsys.readouterr()
    return code, out, err


CLEAR = re.compile(r"^(error: \S|teleshift( \S+)+: error: \S|\d+ problem\(s\) found)", re.M)


def assert_one_clear_error(code, err, argv):
    shown = f"{' '.join(argv)}\n--- stderr ---\n{err}"
    assert "Traceback" not in err, shown
    assert code not in (0, None), f"exit {code} for hostile input: {shown}"
    assert code != 70 and "internal error" not in err, shown
    heads = CLEAR.findall(err)
    assert len(heads) == 1, f"expected one error line, got {len(heads)}: {shown}"


def fill(items, world):
    return [item.format(**world) for item in items]


def argv_with(path, parser, world, dest=None, value=None):
    """The leaf's BASE arguments with ``dest`` set to ``value`` (replacing a positional or an option)."""
    base = fill(BASE[path], world)
    positionals = [a.dest for a in parser._actions if not a.option_strings and not
                   isinstance(a, argparse._SubParsersAction)]
    if dest is None:
        return list(path) + base
    if dest in positionals:
        base[positionals.index(dest)] = value
        return list(path) + base
    aliases = [s for a in parser._actions if a.dest == dest for s in a.option_strings]
    for i, item in enumerate(base):
        if item in aliases:
            del base[i:i + 2]
            break
    return list(path) + base + [f"{dict(options(parser))[dest]}={value}"]


def cases():
    for path, parser in LEAVES.items():
        for dest, _flag in options(parser):
            for raw in HOSTILE.get(dest, []):
                if raw in NOT_READ.get(path, ((), ""))[0]:
                    continue
                yield pytest.param(path, dest, raw, id=f"{'-'.join(path)}:{dest}={raw}")


@pytest.mark.parametrize("path,dest,raw", list(cases()))
def test_hostile_argument_gives_one_clear_error(path, dest, raw, world, guarded, capsys):
    parser = LEAVES[path]
    if raw == "{roster}" and dest in ("output", "json_file", "artefact") and "roster" not in dict(options(parser)):
        pytest.skip("no roster input to protect")
    argv = argv_with(path, parser, world, dest, raw.format(**world))
    try:
        code, out, err = run_bounded(argv, capsys)
    except _Touched as exc:
        if path in PARSER_ONLY:
            pytest.skip(f"{' '.join(path)}: {PARSER_ONLY[path]}")
        pytest.fail(f"{' '.join(argv)} reached {exc} instead of refusing its input")
    assert_one_clear_error(code, err, argv)


@pytest.mark.parametrize("path", [p for p in BASE if p not in PARSER_ONLY and p not in NO_BASE_RUN],
                         ids=lambda p: "-".join(p))
def test_base_arguments_succeed(path, world, guarded, capsys, monkeypatch):
    """The hostile runs above fail because of the hostile value, not because the base is wrong."""
    from teleshift_cli import runner

    monkeypatch.setattr(runner, "run_playbook", lambda *a, **k: ("successful", 0))
    argv = argv_with(path, LEAVES[path], world)
    code, out, err = run_bounded(argv, capsys)
    assert code == 0, f"{' '.join(argv)}: {err}"
    assert "Traceback" not in err


# ------------------------------------------------------------------ through the launcher

def _launcher(args, **kwargs):
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CONFIG", "TELESHIFT_DEBUG")}
    return subprocess.run([sys.executable, str(ROOT / "scripts" / "teleshift"), *args], env=env,
                          capture_output=True, text=True, timeout=120, **kwargs)


def test_broken_pipe_is_one_line_not_a_traceback(world):
    """`plan --format json | head -c 0`: the reader is gone before the plan is printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("ANSIBLE_CONFIG", "TELESHIFT_DEBUG")}
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "teleshift"), "plan", "--format", "json",
                             "--inventory", world["inv"]], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    code = proc.wait(timeout=120)
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert code == 141 and err.strip().splitlines()[-1].startswith("error: standard output was closed"), err


def test_launcher_output_directory_is_one_line(world, tmp_path):
    proc = _launcher(["waves", "--inventory", world["inv"], "-o", f"{tmp_path}/"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: CSV {tmp_path}/: is a directory; give a file name"


def test_group_vars_yaml_error_names_file_and_line(world, capsys, guarded):
    code, out, err = run_bounded(["validate", "--inventory", world["inv_yaml"]], capsys)
    assert code == 1
    assert re.search(r"^error: .*/inv_yaml/group_vars/all/zzz_hostile\.yml:2:\d+: YAML parsing failed", err, re.M), err


def test_validate_json_on_unreadable_inventory(world, capsys, guarded):
    import json

    code, out, err = run_bounded(["validate", "--format", "json", "--inventory", f"{world['tmp']}/emptyinv"], capsys)
    data = json.loads(out)
    assert code == 1 and data["valid"] is False
    assert data["problems"][0]["message"].endswith("not an inventory (Ansible could read no host or group from it)")
