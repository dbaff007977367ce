"""The controller cache: JSON only (a roster comes back exactly), used only in a directory of the
user's own that nobody else can write, never an error when it cannot be used (issue 19)."""
import json
import os
import pickle
import time

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import cache, roster as rmod
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import SERVICES, generate_people

HEADER = ",".join(rmod.COLUMNS)
ROWS = ["amartin,Anaïs Martin,anais@ex.fr,rsa,critical,Siège,laptop,vpn;phone,1001,06 12 34 56 78,always,20,yes,yes,"
        "fr",
        "bbrun,Gaëlle Brun,gaelle@ex.fr,dsi,high,,thin_client,desktop,,,none,,no,no,en",
        "bad,Bad,not-an-email,dsi,,,,,,,,,,,"]


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(path))
    monkeypatch.delenv("TELESHIFT_CACHE", raising=False)
    return path


@pytest.fixture
def roster_file(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("\n".join([HEADER, *ROWS]) + "\n", encoding="utf-8")
    return path


def no_parse(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("parsed again")
    monkeypatch.setattr(rmod, "parse_roster", refuse)


def test_a_cached_roster_comes_back_exactly_without_parsing(cache_dir, roster_file, monkeypatch):
    first = rmod.load_roster(roster_file, services={"rsa", "dsi"})
    assert len(first.people) == 2 and [p.field for p in first.problems] == ["email"]
    files = sorted(os.listdir(cache_dir))
    assert files and all(f.endswith(".json1") for f in files)
    for name in files:  # JSON documents, nothing pickle could read
        json.loads((cache_dir / name).read_text(encoding="utf-8"))
        assert (cache_dir / name).stat().st_mode & 0o777 == 0o600
    no_parse(monkeypatch)
    again = rmod.load_roster(roster_file, services={"rsa", "dsi"})
    assert again == first
    assert again.people[0].needs == frozenset({"vpn", "phone"}) and isinstance(again.people[0].needs, frozenset)
    assert [p.line for p in again.people] == [2, 3] and again.people[1].active is False
    assert type(again.problems[0]) is rmod.Problem


def test_person_round_trip_is_exact_for_generated_people():
    for person in generate_people(300, seed=4):
        data = json.loads(json.dumps(rmod.person_to_json(person)))
        assert rmod.person_from_json(data) == person


def test_the_row_memo_round_trips_and_parses_only_changed_rows(cache_dir, roster_file, monkeypatch):
    rmod.load_roster(roster_file)
    roster_file.write_text("\n".join([HEADER, ROWS[0].replace("Siège", "Annexe"), *ROWS[1:]]) + "\n", encoding="utf-8")
    built = []
    real = rmod._build_person
    monkeypatch.setattr(rmod, "_build_person", lambda *a, **k: built.append(a[0]) or real(*a, **k))
    changed = rmod.load_roster(roster_file)
    assert built == [2, 4]  # the changed row and the bad one (rows with problems are never kept)
    assert changed.people[0].site == "Annexe" and changed.people[1] == rmod.load_roster(roster_file).people[1]


@pytest.mark.parametrize("content", [b"\x80\x04\x95 not json", b'{"source": "x", "people": [["root"]], "problems": []}',
                                     b'{"people": 1}', b"[]", b'"' + b"x" * 100 + b'"'])
def test_a_damaged_or_forged_entry_is_rebuilt(cache_dir, roster_file, content):
    first = rmod.load_roster(roster_file)
    for name in os.listdir(cache_dir):
        (cache_dir / name).write_bytes(content)
    assert rmod.load_roster(roster_file) == first


def forge(cache_dir):
    """Replace every cached roster by one listing an intruder; returns the intruder."""
    intruder = next(iter(generate_people(1, seed=9)))
    for name in os.listdir(cache_dir):
        if name.startswith("roster-") and "memo" not in name:
            document = json.loads((cache_dir / name).read_text(encoding="utf-8"))
            document["people"], document["problems"] = [rmod.person_to_json(intruder)], []
            (cache_dir / name).write_text(json.dumps(document), encoding="utf-8")
    return intruder


def test_a_forged_entry_is_trusted_only_in_a_private_directory(cache_dir, roster_file):
    honest = rmod.load_roster(roster_file)
    intruder = forge(cache_dir)
    assert rmod.load_roster(roster_file).people == [intruder]  # the user's own 0700 directory: trusted
    for mode in (0o777, 0o770, 0o722, 0o702):
        os.chmod(cache_dir, mode)
        assert rmod.load_roster(roster_file) == honest, oct(mode)
    os.chmod(cache_dir, 0o700)


@pytest.mark.skipif(os.getuid() != 0, reason="giving the directory to another user needs root")
def test_a_directory_owned_by_someone_else_is_not_used(cache_dir, roster_file):
    honest = rmod.load_roster(roster_file)
    forge(cache_dir)
    os.chown(cache_dir, 65534, 65534)
    try:
        assert rmod.load_roster(roster_file) == honest
        before = sorted(os.listdir(cache_dir))
        rmod.load_roster(roster_file.with_name("other.csv"))  # nothing written there either
        assert sorted(os.listdir(cache_dir)) == before
    finally:
        os.chown(cache_dir, 0, 0)


def test_symlinked_entries_and_old_pickles_are_not_read(cache_dir, roster_file, tmp_path):
    honest = rmod.load_roster(roster_file)
    forge(cache_dir)
    for name in os.listdir(cache_dir):
        target = tmp_path / f"elsewhere-{name}"
        os.replace(cache_dir / name, target)
        os.symlink(target, cache_dir / name)
    trap = tmp_path / "trap"

    class Trap:  # unpickling it creates the trap file
        def __reduce__(self):
            return (open, (str(trap), "w"))
    old = "roster-" + "0" * 40 + ".pickle"
    (cache_dir / old).write_bytes(pickle.dumps(Trap()))
    (cache_dir / "someone-elses.pickle").write_bytes(b"kept")
    assert rmod.load_roster(roster_file) == honest
    assert [name for name in os.listdir(cache_dir) if name.endswith(".pickle")] == ["someone-elses.pickle"]
    assert not trap.exists()


def test_a_cache_dir_that_cannot_be_made_is_no_error(tmp_path, monkeypatch, roster_file):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("TELESHIFT_CACHE_DIR", str(blocker / "cache"))
    assert len(rmod.load_roster(roster_file).people) == 2


def test_values_json_would_change_are_not_cached(cache_dir):
    calls = []

    def build():
        calls.append(1)
        return {1: ("a", "b")}
    assert cache.parsed("thing", b"data", ("o",), build) == {1: ("a", "b")}
    assert cache.parsed("thing", b"data", ("o",), build) == {1: ("a", "b")}
    assert len(calls) == 2
    assert not cache_dir.exists() or not [n for n in os.listdir(cache_dir) if n.startswith("thing-")]


def test_a_state_file_json_cannot_hold_is_read_without_the_cache(cache_dir, tmp_path):
    import datetime

    from ansible_collections.teleshift.toolkit.plugins.module_utils.state import load_state

    path = tmp_path / "state.yml"
    path.write_text("when: 2024-01-02\n1: one\npeople: {a: [x]}\n", encoding="utf-8")
    expected = {"when": datetime.date(2024, 1, 2), 1: "one", "people": {"a": ["x"]}}
    assert load_state(path) == expected and load_state(path) == expected


def test_5000_people_come_back_from_the_cache_well_under_a_second(cache_dir, tmp_path):
    path = tmp_path / "staff.csv"
    with open(path, "w", encoding="utf-8", newline="") as stream:
        rmod.write_csv(generate_people(5000, seed=1), stream)
    first = rmod.load_roster(path, services=SERVICES)
    assert first.ok and len(first.people) == 5000
    best = min(_timed(lambda: rmod.load_roster(path, services=SERVICES)) for _ in range(3))
    assert best < 0.5, best  # measured ~0.03 s on the 2-core controller


def _timed(action):
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def test_the_collector_is_paused_while_parsing_and_back_after_even_on_error(cache_dir):
    import gc

    seen = []

    def build():
        seen.append(gc.isenabled())
        return {"people": 1}
    assert cache.parsed("doc", b"a", (), build) == {"people": 1}
    assert cache.parsed("doc", b"a", (), build) == {"people": 1}  # from the cache: build not called
    assert seen == [False] and gc.isenabled()
    with pytest.raises(ZeroDivisionError):
        cache.parsed("doc", b"b", (), lambda: 1 / 0)
    assert gc.isenabled()
    gc.disable()  # a caller that paused it itself keeps it paused
    try:
        cache.parsed("doc", b"c", (), build)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_only_the_entries_used_last_are_kept_of_each_kind(cache_dir):
    """A roster changing at every run leaves a new entry each time (9.5 MB at 50,000 people): of each
    kind only MAX_ENTRIES stay, the ones used last (a read refreshes an entry's time); its row memo and
    the other kinds' entries stay."""
    cache_dir.mkdir(mode=0o700)
    now = time.time()
    names = [f"roster-{i:040x}.{cache.FORMAT}" for i in range(cache.MAX_ENTRIES + 5)]
    for age, name in enumerate(names):
        path = cache_dir / name
        path.write_text("{}", encoding="utf-8")
        path.chmod(0o600)
        os.utime(path, (now - 60 * age, now - 60 * age))  # names[0] used last
    others = [f"roster-rows-memo-{0:040x}.{cache.FORMAT}", f"state-{1:040x}.{cache.FORMAT}"]
    for name in others:
        (cache_dir / name).write_text("{}", encoding="utf-8")
        os.utime(cache_dir / name, (now - 3600, now - 3600))
    assert cache._read(names[-1]) == {}  # read now: used last, kept
    value = {"x": 1}
    cache.parsed("roster", b"new bytes", (), lambda: value)  # a new entry: the kind is pruned after it
    left = set(os.listdir(cache_dir))
    assert set(others) <= left
    assert names[-1] in left and set(names[:cache.MAX_ENTRIES - 2]) <= left
    assert not left & set(names[cache.MAX_ENTRIES - 2:-1])  # the 6 used longest ago are gone
    assert len([n for n in left if n.startswith("roster-") and "memo" not in n]) == cache.MAX_ENTRIES


def test_only_the_row_memos_used_last_are_kept(cache_dir):
    """A row memo is one per parser version and options (12 MB at 50,000 people): a new one keeps
    MAX_MEMOS of its kind, the ones used last, and leaves the parsed entries alone."""
    cache_dir.mkdir(mode=0o700)
    now = time.time()
    memos = [f"roster-rows-memo-{i:040x}.{cache.FORMAT}" for i in range(cache.MAX_MEMOS + 2)]
    entry = f"roster-{7:040x}.{cache.FORMAT}"
    for age, name in enumerate([*memos, entry]):
        (cache_dir / name).write_text("{}", encoding="utf-8")
        os.utime(cache_dir / name, (now - 60 * (age + 1), now - 60 * (age + 1)))
    cache.save_memo("roster-rows", ("new options",), {"a": 1})
    left = set(os.listdir(cache_dir))
    assert entry in left
    mine = {n for n in left if n.startswith("roster-rows-memo-")}
    assert len(mine) == cache.MAX_MEMOS and set(memos[:cache.MAX_MEMOS - 1]) <= mine
    assert cache.load_memo("roster-rows", ("new options",)) == {"a": 1}
