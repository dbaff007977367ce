"""kit_presence.Presence: a forked child looks every kit folder up while the plan goes on; its answer must
be what os.path.exists and os.stat would say, and a plan that never asks must leave no child behind.
Then the two plans that use it: a person the look-up did not find goes through the full pass."""
import os

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import wireguard_plan
from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_presence import Presence


def kit(root, pid, *files):
    for rel in files:
        path = root / pid / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def test_holders_and_times_are_what_stat_says(tmp_path):
    kit(tmp_path, "alice", "vpn/private.key", "mfa/secret")
    kit(tmp_path, "bob", "vpn/private.key")
    kit(tmp_path, "carol", "mfa/secret")
    (tmp_path / "dave").mkdir()
    kit(tmp_path, ".hidden", "vpn/private.key")  # indexes and temp folders are not people
    (tmp_path / "erin" / "vpn").mkdir(parents=True)
    os.symlink(tmp_path / "bob" / "vpn" / "private.key", tmp_path / "erin" / "vpn" / "private.key")
    os.symlink(tmp_path / "nowhere", tmp_path / "dave" / "secret")  # dangling: not there, as exists says

    probe = Presence(tmp_path, ["vpn/private.key", "mfa/secret", "secret"], ["vpn"])
    assert probe.holders("vpn/private.key") == {"alice", "bob", "erin"}
    assert probe.holders("mfa/secret") == {"alice", "carol"}
    assert probe.holders("secret") == set()
    assert probe.times("vpn") == {pid: os.stat(tmp_path / pid / "vpn").st_mtime_ns for pid in ("alice", "bob", "erin")}
    assert probe.holders("other/file") is None  # not looked up: the caller checks each person
    assert probe.times("mfa") is None


def test_each_probe_sees_the_kits_as_they_are_then(tmp_path):
    kit(tmp_path, "alice", "vpn/private.key")
    kit(tmp_path, "bob", "vpn/private.key")
    assert Presence(tmp_path, ["vpn/private.key"]).holders("vpn/private.key") == {"alice", "bob"}
    (tmp_path / "bob" / "vpn" / "private.key").unlink()
    assert Presence(tmp_path, ["vpn/private.key"]).holders("vpn/private.key") == {"alice"}


def test_no_kits_yet_means_nobody_holds_anything(tmp_path):
    probe = Presence(tmp_path / "missing", ["vpn/private.key"], ["vpn"])
    assert probe.holders("vpn/private.key") == set()
    assert probe.times("vpn") == {}
    assert Presence(None, ["vpn/private.key"]).holders("vpn/private.key") is None


def test_an_unasked_probe_leaves_no_child(tmp_path):
    for n in range(300):
        kit(tmp_path, f"p{n}", "vpn/private.key")
    probe = Presence(tmp_path, ["vpn/private.key"])
    pid = probe._pid
    assert pid
    probe.close()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)  # reaped already
    assert probe.holders("vpn/private.key") is None  # closed: unknown, the caller checks each person


def test_client_keys_makes_a_key_for_a_person_the_probe_did_not_find(tmp_path):
    ids = ["alice", "bob"]
    public, new = wireguard_plan.client_keys(ids, str(tmp_path))
    assert sorted(new) == ids
    known = dict(public)
    # both files there, the probe found both: nothing new, nothing read
    public2, new2 = wireguard_plan.client_keys(ids, str(tmp_path), known=known, holders={"alice", "bob"})
    assert new2 == [] and public2 == public
    # bob's key gone since: a probe that did not find it sends him through the full pass
    (tmp_path / "bob" / "vpn" / "private.key").unlink()
    public3, new3 = wireguard_plan.client_keys(ids, str(tmp_path), known=known,
                                               holders=Presence(tmp_path, ["vpn/private.key"]).holders(
                                                   "vpn/private.key"))
    assert new3 == ["bob"] and public3["alice"] == public["alice"] and public3["bob"] != public["bob"]
    assert (tmp_path / "bob" / "vpn" / "private.key").exists()
