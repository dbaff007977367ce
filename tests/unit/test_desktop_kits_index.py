"""The desktop_accounts action's kit pass (prepare_kits): a person whose index entry holds (the digest of
what their kit is made of, and their kit folder's time) is skipped without reading anything of theirs;
a file removed from a kit, a new address or a password left elsewhere sends them through the full pass.
One index per host (hosts run in parallel, each with its own people)."""
import json
import os

import pytest

from ansible_collections.teleshift.toolkit.plugins.action import desktop_accounts as action
from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_accounts import Account

PEOPLE = [Account(login=f"p{n}", name=f"Person {n}", groups=("ts-dsi",)) for n in range(20)]


def run(kits, index, address="10.89.251.20", check=False, local=True):
    return action.prepare_kits(PEOPLE, kits, "ts-desk1", address, 3389, local, check, index)


def settle(kits, tmp_path, index=None):
    """One pass, then the index as a successful run writes it."""
    new_index, _hashes, fresh, _changed = run(kits, index or {})
    for pid, password in fresh.items():  # what the action writes once the host took the hashes
        made = desktop.hash_passwords([password])[0]
        desktop_file = desktop.hash_file_text(password, made)
        with open(os.path.join(kits, pid, desktop.CAPABILITY, desktop.HASH_FILE), "w", encoding="utf-8") as stream:
            stream.write(desktop_file)
    path = tmp_path / "index.json"
    action._write_index(str(path), index or {}, new_index, str(kits))
    return json.loads(path.read_text()), fresh


@pytest.fixture()
def no_reading(monkeypatch):
    read = []

    def spy(kits, pid, *rest):
        read.append(pid)
        return original(kits, pid, *rest)

    original = action.read_kit_file
    monkeypatch.setattr(action, "read_kit_file", spy)
    return read


def test_a_second_pass_reads_nothing_and_sends_no_password(tmp_path, no_reading):
    kits = tmp_path / "kits"
    index, fresh = settle(kits, tmp_path)
    assert sorted(fresh) == sorted(p.login for p in PEOPLE)
    assert all(":" in value for value in index.values())
    no_reading.clear()
    new_index, hashes, fresh, changed = run(kits, index)
    assert (new_index, hashes, fresh, changed) == (index, {}, {}, 0)
    assert no_reading == []


def test_a_file_removed_from_a_kit_is_written_again_and_only_that_person_is_read(tmp_path, no_reading):
    kits = tmp_path / "kits"
    index, _fresh = settle(kits, tmp_path)
    os.remove(kits / "p3" / desktop.CAPABILITY / "connect-linux.sh")
    no_reading.clear()
    new_index, hashes, fresh, changed = run(kits, index)
    assert (kits / "p3" / desktop.CAPABILITY / "connect-linux.sh").exists()
    assert changed == 1 and fresh == {} and list(hashes) == ["p3"]  # its password kept: the cached hash
    assert set(no_reading) == {"p3"}
    index, _fresh = settle(kits, tmp_path, index)
    assert run(kits, index)[3] == 0


def test_a_new_address_goes_through_everyone(tmp_path, no_reading):
    kits = tmp_path / "kits"
    index, _fresh = settle(kits, tmp_path)
    no_reading.clear()
    _new_index, hashes, fresh, changed = run(kits, index, address="10.89.251.99")
    assert changed == len(PEOPLE) * 3 and fresh == {} and len(hashes) == len(PEOPLE)
    assert "10.89.251.99" in (kits / "p0" / desktop.CAPABILITY / "summary.yml").read_text()


def test_a_removed_password_makes_a_new_one(tmp_path):
    kits = tmp_path / "kits"
    index, _fresh = settle(kits, tmp_path)
    old = (kits / "p5" / desktop.CAPABILITY / desktop.PASSWORD_FILE).read_text()
    os.remove(kits / "p5" / desktop.CAPABILITY / desktop.PASSWORD_FILE)
    _new_index, _hashes, fresh, _changed = run(kits, index)
    assert list(fresh) == ["p5"] and fresh["p5"] != old.strip()


def test_each_host_keeps_its_own_index():
    assert action.KITS_INDEX.format(host="ts-desk1") != action.KITS_INDEX.format(host="ts-desk2")
