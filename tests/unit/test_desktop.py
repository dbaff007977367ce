"""Remote-desktop plan (placement, capacity, removal), account-state diffing, kits and health verdicts."""
import dataclasses
import shutil
import subprocess
import time

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop
from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop_accounts as da
from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop_health as dh
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person
from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people


def person(pid, service="rsa", needs=("desktop",), active=True, priority="normal", line=0, name=None):
    return Person(id=pid, full_name=name or pid.title(), email=f"{pid}@x.example", service=service,
                  priority=priority, needs=frozenset(needs), active=active, line=line)


def staff(n, services=("rsa", "pmi", "ase")):
    return [person(f"p{i:04d}", service=services[i % len(services)], line=i + 2) for i in range(n)]


# ------------------------------------------------------------------ plan


def test_only_active_people_with_the_desktop_need_are_placed():
    people = [person("a"), person("b", needs=("vpn",)), person("c", active=False), person("d")]
    plan = desktop.plan_desktop(people, {"h1": 10})
    assert plan.ok and sorted(plan.hosts) == ["a", "d"]


def test_placement_is_sticky_when_people_are_added_reordered_and_removed():
    people = staff(120)
    first = desktop.plan_desktop(people, {"h1": 80, "h2": 80})
    assert first.ok and len(first.hosts) == 120
    changed = list(reversed(people[5:])) + [person("newcomer", service="pmi", line=500)]
    second = desktop.plan_desktop(changed, {"h1": 80, "h2": 80}, first.state)
    assert all(second.hosts[p.id] == first.hosts[p.id] for p in people[5:])
    # the five who left keep their entry as locked, on their host (their home stays there)
    for p in people[:5]:
        assert second.state["people"][p.id] == {"host": first.hosts[p.id], "login": p.id, "status": "locked"}
    # and get that host back when they return
    third = desktop.plan_desktop(people, {"h1": 80, "h2": 80}, second.state)
    assert all(third.hosts[p.id] == first.hosts[p.id] for p in people[:5])


def test_services_share_a_host_where_possible():
    people = [person(f"r{i}", service="rsa", line=i) for i in range(10)] + \
             [person(f"m{i}", service="pmi", line=20 + i) for i in range(10)]
    plan = desktop.plan_desktop(people, {"h1": 10, "h2": 10, "h3": 10})
    assert len({plan.hosts[f"r{i}"] for i in range(10)}) == 1
    assert len({plan.hosts[f"m{i}"] for i in range(10)}) == 1


def test_capacity_is_respected_and_a_shortfall_is_a_problem_naming_it():
    plan = desktop.plan_desktop(staff(25), {"h1": 10, "h2": 12})
    assert not plan.ok
    assert len(plan.unplaced) == 3
    message = str(plan.problems[0])
    assert "3 more needed" in message and "22 session(s)" in message and "desktop_hosts" in message
    assert max(sum(1 for h in plan.hosts.values() if h == host) for host in ("h1", "h2")) <= 12


def test_critical_people_are_placed_first_when_capacity_is_short():
    people = [person(f"n{i}", line=i) for i in range(5)] + [person("boss", priority="critical", line=99)]
    plan = desktop.plan_desktop(people, {"h1": 5})
    assert "boss" in plan.hosts and len(plan.unplaced) == 1


def test_removed_host_moves_its_people_and_drops_stale_entries():
    people = staff(20)
    first = desktop.plan_desktop(people, {"h1": 10, "h2": 10})
    second = desktop.plan_desktop(people, {"h2": 10, "h3": 10}, first.state)
    assert second.ok and set(second.hosts.values()) <= {"h2", "h3"}
    assert all(second.hosts[p] == "h2" for p, h in first.hosts.items() if h == "h2")
    assert all(e["host"] != "h1" for e in second.state["people"].values())


def test_reserved_logins_and_missing_hosts_are_problems():
    plan = desktop.plan_desktop([person("root", line=7), person("xrdp", line=8)], {"h1": 5})
    assert [(p.line, p.field) for p in plan.problems] == [(7, "id"), (8, "id")]
    plan = desktop.plan_desktop([person("a")], {})
    assert not plan.ok and "no host" in str(plan.problems[0])


def test_host_capacities_read_the_role_variable_first_and_reject_bad_values():
    caps, problems = desktop.host_capacities(
        ["a", "b", "c", "d"], {"a": {"xrdp_host_max_sessions": 30, "teleshift_desktop_max_sessions": 5},
                               "b": {"teleshift_desktop_max_sessions": "7"}, "c": {},
                               "d": {"xrdp_host_max_sessions": "lots"}})
    assert caps["a"] == 30 and caps["b"] == 7 and caps["c"] == desktop.DEFAULT_MAX_SESSIONS
    assert [(p.source, p.field) for p in problems] == [("host d", "xrdp_host_max_sessions")]


def test_plan_of_5000_people_is_fast_and_deterministic():
    people = generate_people(5000, seed=3)
    start = time.perf_counter()
    a = desktop.plan_desktop(people, {"h1": 3000, "h2": 3000})
    elapsed = time.perf_counter() - start
    b = desktop.plan_desktop(list(people), {"h1": 3000, "h2": 3000})
    assert a.hosts == b.hosts and a.state == b.state
    assert elapsed < 1.0, elapsed
    accounts = a.accounts_for("h1")
    assert [x.login for x in accounts] == sorted(x.login for x in accounts)
    assert all(x.groups[0].startswith("ts-") for x in accounts)


def test_gecos_and_service_group_names_are_safe():
    assert desktop.gecos("Đức Nguyễn") == "Duc Nguyen"
    assert desktop.gecos("Anaïs: Martin, RH") == "Anais Martin RH"
    assert desktop.service_group("ts-", "Paie Prestations") == "ts-paie-prestations"
    assert len(desktop.service_group("ts-", "x" * 60)) == 32


def _reference_gecos(full_name):
    """The GECOS rule spelt out one character at a time (what the fast paths must give)."""
    import re
    import unicodedata

    text = "".join(desktop._ASCII.get(c, c) for c in full_name)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = "".join(c if c.isprintable() else " " for c in text)
    return re.sub(r"[\s:,=]+", " ", text).strip()


def test_plain_names_skip_the_translation_with_the_same_result():
    import random

    rng = random.Random(7)
    alphabet = "aZ09 .'()/_-:,=\t\néŒßđ\x07\u00a0"
    drawn = ("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000))
    names = ["Jean-Luc O'Neil", "Marie (RH) Dupont", " Lead", "Trail ", "Two  spaces", "Tab\there", "a=b",
             "Line\nbreak", "Bell\x07", "Zoé", "", "x/y_z.", *drawn]
    fast = 0
    for name in names:
        assert desktop.gecos(name) == _reference_gecos(name), repr(name)
        fast += bool(desktop._PLAIN_NAME.fullmatch(name))
    assert 100 < fast < len(names) - 100  # both paths taken, often


# ------------------------------------------------------------------ account-state diffing

PASSWD = """root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
admin:x:1000:1000:Local Admin:/home/admin:/bin/bash
alice:x:1001:1001:Alice:/home/alice:/bin/bash
bob:x:1002:1002:Bob:/home/bob:/bin/bash
carol:x:1003:1003:Carol:/home/carol:/bin/bash
"""
SHADOW = """root:*:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
admin:$6$a$admin:19000:0:99999:7:::
alice:$6$a$alice:19000:0:99999:7:::
bob:$6$a$bob:19000:0:99999:7:::
carol:!$6$a$carol:19000:0:99999:7::1:
"""
GROUP = """root:x:0:
daemon:x:1:
admin:x:1000:
alice:x:1001:
bob:x:1002:
carol:x:1003:
teleshift:x:1100:alice,bob,carol
tsusers:x:1101:alice,bob,admin
ts-rsa:x:1102:alice,bob
"""
GSHADOW = "\n".join(f"{line.split(':')[0]}:!::{line.split(':')[3]}" for line in GROUP.splitlines()) + "\n"


def db():
    return da.parse_databases(PASSWD, SHADOW, GROUP, GSHADOW)


def acc(login, groups=("ts-rsa",), name=None, shell="/bin/bash"):
    return da.Account(login=login, name=name or login.title(), groups=tuple(groups), shell=shell)


def diff(desired, **kw):
    return da.diff_accounts(desired, db(), "teleshift", "tsusers", "ts-", **kw)


def test_nothing_changes_when_the_host_matches():
    changes = diff([acc("alice"), acc("bob")])
    assert not changes.changed and not changes.conflicts


def test_new_person_is_created_with_groups_and_needs_a_hash():
    changes = diff([acc("alice"), acc("bob"), acc("dave", groups=("ts-pmi",))])
    assert changes.create == ["dave"] and changes.missing_hash == ["dave"]
    assert "ts-pmi" in changes.create_groups
    assert changes.members["ts-pmi"] == {"add": ["dave"], "remove": []}
    assert changes.members["tsusers"]["add"] == ["dave"]
    assert not diff([acc("alice"), acc("bob"), acc("dave", groups=("ts-pmi",))],
                    hashes={"dave": "$6$x$y"}).missing_hash


def test_removed_person_is_locked_and_leaves_only_teleshift_groups():
    changes = diff([acc("alice")])
    assert changes.lock == ["bob"]
    assert changes.members["tsusers"] == {"add": [], "remove": ["bob"]}  # admin (not ours) stays
    assert changes.members["ts-rsa"] == {"add": [], "remove": ["bob"]}
    assert "teleshift" not in changes.members  # locked accounts stay managed


def test_returning_person_is_unlocked_and_changes_are_detected():
    changes = diff([acc("alice", name="Alice Martin", shell="/bin/sh"), acc("bob"), acc("carol")])  # noqa: S604 - a login shell
    assert changes.unlock == ["carol"]
    assert changes.update["alice"] == {"name": ["Alice", "Alice Martin"], "shell": ["/bin/bash", "/bin/sh"]}


def test_existing_accounts_not_created_by_teleshift_are_conflicts():
    changes = diff([acc("alice"), acc("bob"), acc("admin"), acc("daemon")])
    assert any(c.startswith("admin: an account") for c in changes.conflicts)
    assert any(c.startswith("daemon: a system account") for c in changes.conflicts)


def test_password_is_set_only_on_reset_or_when_unusable():
    assert not diff([acc("alice"), acc("bob")], hashes={"alice": "$6$n$new"}).set_password
    changes = diff([acc("alice"), acc("bob")], hashes={"alice": "$6$n$new"}, reset_passwords={"alice"})
    assert changes.set_password == ["alice"]


def test_apply_changes_gives_valid_files_and_keeps_homes_of_locked_people():
    desired = [acc("alice"), acc("dave", groups=("ts-pmi",)), acc("erin")]
    hashes = {"dave": "$6$d$dave", "erin": "$6$e$erin"}
    changes = diff(desired, hashes=hashes)
    new, created = da.apply_changes(db(), changes, desired, hashes, today=20000)
    assert not da.check_databases(new)
    users, shadows = new.users(), new.shadows()
    assert created["dave"] == (1004, 1004, "/home/dave") and created["erin"][0] == 1005
    assert shadows["dave"][1] == "$6$d$dave" and users["dave"][5] == "/home/dave"
    assert shadows["bob"][1].startswith("!") and shadows["bob"][7] == "1" and "bob" in users
    assert new.members("tsusers") == {"alice", "dave", "erin", "admin"}
    assert new.members("teleshift") == {"alice", "bob", "carol", "dave", "erin"}
    assert new.members("ts-pmi") == {"dave"}
    # the same desired state again: nothing more to do
    again = da.diff_accounts(desired, new, "teleshift", "tsusers", "ts-")
    assert not again.changed, again.summary()
    # and the root/system lines are byte-identical
    assert da.render(new.passwd).startswith(PASSWD.split("admin")[0])


def test_unlock_restores_the_previous_hash():
    desired = [acc("alice"), acc("bob"), acc("carol")]
    new, _ = da.apply_changes(db(), diff(desired), desired, {}, today=20000)
    assert new.shadows()["carol"][1] == "$6$a$carol" and new.shadows()["carol"][7] == ""


def test_check_databases_finds_broken_files():
    broken = db()
    broken.passwd.append(["alice", "x", "1009", "1009", "", "/home/x", "/bin/sh"])
    broken.passwd.append(["zed", "x", "1010", "1010", "", "/home/zed", "/bin/sh"])
    problems = da.check_databases(broken)
    assert any("duplicate" in p for p in problems) and any("same users" in p for p in problems)
    with pytest.raises(ValueError):
        da.parse_databases("a:x:1:1:g:/h:/bin/sh:extra:more\n", "", "", "")


def test_check_databases_finds_group_members_that_are_not_users_only_when_new():
    import copy

    good = db()
    assert not da.check_databases(good)
    bad = copy.deepcopy(good)
    group = next(r for r in bad.group if r[0] != "")
    group[3] = ",".join(filter(None, [group[3], "ghost"]))
    problems = da.check_databases(bad)
    assert any("unknown member(s) ghost" in p for p in problems)
    assert any(p.startswith(f"gshadow {group[0]}: members differ") for p in problems)
    # a problem the host already had is not ours to block on; a new one is
    assert not da.check_databases(bad, before=bad)
    assert da.check_databases(bad, before=good)


def test_diff_of_5000_new_accounts_is_fast():
    desired = [acc(f"u{i:05d}") for i in range(5000)]
    hashes = {a.login: "$6$s$h" for a in desired}
    start = time.perf_counter()
    changes = diff(desired, hashes=hashes)
    new, created = da.apply_changes(db(), changes, desired, hashes, today=20000)
    again = da.diff_accounts(desired, new, "teleshift", "tsusers", "ts-")
    assert len(created) == 5000 and not again.changed
    assert time.perf_counter() - start < 2.0


def test_processes_are_counted_per_real_uid():
    texts = ["Name:\tXorg\nUid:\t1001\t1001\t1001\t1001\n", "Name:\tsh\nUid:\t0\t0\t0\t0\n", "garbage"]
    assert da.uids_with_processes(texts) == {1001, 0}


# ------------------------------------------------------------------ passwords and kits


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl not installed")
def test_hashes_are_sha512_crypt_and_verify_with_openssl():
    hashes = desktop.hash_passwords(["secret-one", "secret-two", "secret-3"], workers=2)
    assert len(hashes) == 3 and all(h.startswith("$6$") for h in hashes)
    salt = hashes[1].split("$")[2]
    again = subprocess.run(["openssl", "passwd", "-6", "-salt", salt, "-stdin"], input="secret-two\n",
                           capture_output=True, text=True, check=True).stdout.strip()
    assert again == hashes[1]


def test_hash_cache_belongs_to_its_password_only():
    text = desktop.hash_file_text("pw1", "$6$s$h")
    assert desktop.cached_hash(text, "pw1") == "$6$s$h"
    assert desktop.cached_hash(text, "pw2") is None
    assert desktop.cached_hash("$6$s$h", "pw1") is None and desktop.cached_hash(None, "pw1") is None


def test_kit_files_name_the_host_and_hold_no_password():
    p = person("blefevre", name="Benoît Lefèvre")
    files = desktop.kit_files(p, "ts-desk1", "10.89.251.20")
    rdp = files["blefevre.rdp"]
    assert "full address:s:10.89.251.20\r\n" in rdp and "username:s:blefevre\r\n" in rdp
    assert "/v:10.89.251.20:3389 /u:blefevre" in files["connect-linux.sh"]
    assert "host: ts-desk1" in files["summary.yml"]
    assert not any("password" in c.lower() for c in files.values())
    assert "full address:s:h:3390" in desktop.kit_files(p, "h", "h", port=3390)["blefevre.rdp"]


# ------------------------------------------------------------------ health


def test_health_verdicts():
    good = {"xrdp": "active", "sesman": "active", "sessions": 3, "max_sessions": 50, "mem_available_mib": 4000}
    assert dh.evaluate(good)["status"] == "ok"
    assert dh.evaluate(dict(good, sesman="failed"))["status"] == "down"
    full = dh.evaluate(dict(good, sessions=50))
    assert full["status"] == "down" and "50 sessions" in full["problems"][0]
    assert dh.evaluate(dict(good, sessions=46))["status"] == "degraded"
    low = dh.evaluate(dict(good, mem_available_mib=100))
    assert low["status"] == "degraded" and low["ok"]
    assert dh.evaluate(good, capacity=3)["status"] == "down"


def test_health_figures_from_host_texts():
    ini = "[Globals]\nMaxSessions=9\n[Sessions]\n; MaxSessions=1\nMaxSessions=25\n[Xorg]\n"
    assert dh.read_max_sessions(ini) == 25 and dh.read_max_sessions("[Sessions]\n") is None
    assert dh.mem_available_mib("MemTotal: 100 kB\nMemAvailable:    2048000 kB\n") == 2000
    procs = [(1001, ["/usr/lib/xorg/Xorg", ":10", "-config", "xrdp/xorg.conf"]),
             (1002, ["/usr/lib/xorg/Xorg", ":0"]), (1003, ["openbox"]), (1004, [])]
    assert dh.sessions_from(procs, {1001: "alice"}) == (1, ["alice"])


def test_account_is_frozen_public_data():
    fields = {f.name for f in dataclasses.fields(da.Account)}
    assert not any("pass" in f or "hash" in f for f in fields)


def test_account_lines_round_trip_and_bad_entries():
    accounts = [da.Account("alice", "Alice Martin", ("ts-dsi",), "/bin/bash"),
                da.Account("bob", "", (), "/bin/sh"), da.Account("carol", "C", ("ts-a", "ts-b"), "/bin/bash")]
    assert da.parse_accounts(da.account_lines(accounts)) == accounts
    assert da.parse_accounts([{"login": "dan"}]) == [da.Account("dan", "", (), "/bin/bash")]
    with pytest.raises(ValueError, match="line 2"):
        da.parse_accounts("alice:A::/bin/bash\nbob:B:/bin/sh\n")
    with pytest.raises(ValueError, match="entry 1"):
        da.parse_accounts([{"name": "no login"}])
