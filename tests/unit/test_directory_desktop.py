"""Desktop accounts when people log in with their directory password (sssd): no local password, no
hash needed, a password left from a kit removed, leavers still locked."""
from test_desktop import acc, db

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop_accounts as da


def diff(desired):
    return da.diff_accounts(desired, db(), "teleshift", "tsusers", "ts-", local_passwords=False)


def test_directory_accounts_need_no_hash_and_hold_no_local_password():
    desired = [acc("alice"), acc("carol"), acc("dave", groups=("ts-pmi",))]
    changes = diff(desired)
    assert changes.create == ["dave"] and not changes.missing_hash
    assert changes.set_password == ["alice", "carol"]  # their kit passwords go
    assert changes.unlock == ["carol"] and changes.lock == ["bob"]
    new, created = da.apply_changes(db(), changes, desired, {}, today=20000, local_passwords=False)
    assert not da.check_databases(new)
    shadows = new.shadows()
    assert [shadows[u][1] for u in ("alice", "carol", "dave")] == ["*", "*", "*"]
    assert shadows["carol"][7] == "" and shadows["bob"][1].startswith("!") and shadows["bob"][7] == "1"
    again = da.diff_accounts(desired, new, "teleshift", "tsusers", "ts-", local_passwords=False)
    assert not again.changed, again.summary()
    # back to local passwords (a CSV roster again): the accounts need their kit's hash
    back = da.diff_accounts(desired, new, "teleshift", "tsusers", "ts-")
    assert back.missing_hash == ["alice", "carol", "dave"]


def test_a_leaver_locked_under_directory_logins_stays_without_password():
    first = [acc("alice"), acc("bob")]
    new, _ = da.apply_changes(db(), diff(first), first, {}, today=20000, local_passwords=False)
    gone = da.diff_accounts([acc("alice")], new, "teleshift", "tsusers", "ts-", local_passwords=False)
    assert gone.lock == ["bob"]
    locked, _ = da.apply_changes(new, gone, [acc("alice")], {}, today=20001, local_passwords=False)
    assert locked.shadows()["bob"][1] == "!*" and locked.shadows()["bob"][7] == "1"
    back = da.diff_accounts(first, locked, "teleshift", "tsusers", "ts-", local_passwords=False)
    assert back.unlock == ["bob"] and not back.set_password
    again, _ = da.apply_changes(locked, back, first, {}, today=20002, local_passwords=False)
    assert again.shadows()["bob"][1] == "*" and again.shadows()["bob"][7] == ""
