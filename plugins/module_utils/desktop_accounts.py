# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Accounts of a remote-desktop session host: read the account databases once, diff them against the
desired accounts, and compute the new databases in memory.

Standard library only: the desktop_accounts module runs this on the host. Applying (locks, writing the
four files, homes, sessions) lives in the module; everything here is pure and unit tested.

Which accounts teleshift owns: members of the *managed group* (a marker group). Accounts outside it are
never changed; a desired login that already exists outside it is a conflict (nothing is applied).
An owned account that is no longer desired is locked (``!`` before its hash, expired), removed from the
allowed and service groups, and keeps its home. Passwords are set only when an account is created, when
it has no usable hash, or when the controller asks (the kit's password was renewed): a person who
changed their password keeps it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

NAME_RE = re.compile(r"^[a-z_][a-z0-9._-]{0,31}$")
LOCK_PREFIX = "!"


@dataclass(frozen=True)
class Account:
    """One desired account (public data only: the hash travels separately, never in a diff)."""

    login: str
    name: str  # GECOS (ASCII, no ':' ',' or newline)
    groups: tuple = ()  # teleshift's supplementary groups (a service group)
    shell: str = "/bin/bash"
    home: str = ""


def account_lines(accounts):
    """The compact text form of accounts: one ``login:name:group,group:shell`` line each."""
    return "".join(f"{a.login}:{a.name}:{','.join(a.groups)}:{a.shell}\n" for a in accounts)


def parse_accounts(value):
    """Accounts from ``account_lines`` text or a list of mappings; ValueError names a bad entry."""
    if isinstance(value, str):
        items = []
        for number, line in enumerate(value.splitlines(), 1):
            if not line.strip():
                continue
            fields = line.split(":")
            if len(fields) != 4:
                raise ValueError(f"line {number}: expected login:name:groups:shell")
            items.append({"login": fields[0], "name": fields[1], "groups": [g for g in fields[2].split(",") if g],
                          "shell": fields[3]})
    elif isinstance(value, list):
        items = value
    else:
        raise ValueError("expected a list of mappings or account lines")
    accounts = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, dict) or not item.get("login"):
            raise ValueError(f"entry {number}: a mapping with a login is needed")
        accounts.append(Account(login=str(item["login"]), name=str(item.get("name") or ""),
                                groups=tuple(str(g) for g in item.get("groups") or ()),
                                shell=str(item.get("shell") or "/bin/bash")))
    return accounts


@dataclass
class Databases:
    """The four account files as ordered lists of fields (the order is kept when writing back)."""

    passwd: list = field(default_factory=list)  # [name, x, uid, gid, gecos, home, shell]
    shadow: list = field(default_factory=list)  # [name, hash, lastchg, min, max, warn, inactive, expire, flag]
    group: list = field(default_factory=list)  # [name, x, gid, members]
    gshadow: list = field(default_factory=list)  # [name, password, admins, members]

    def users(self):
        return {e[0]: e for e in self.passwd}

    def shadows(self):
        return {e[0]: e for e in self.shadow}

    def groups(self):
        return {e[0]: e for e in self.group}

    def members(self, group):
        entry = self.groups().get(group)
        return _split(entry[3]) if entry else set()


def _split(text):
    return {m for m in text.split(",") if m}


def _parse(text, fields, what):
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(":")
        if len(parts) < fields:  # tolerate missing trailing fields (old shadow files)
            parts += [""] * (fields - len(parts))
        if len(parts) != fields:
            raise ValueError(f"{what} line {number}: expected {fields} fields, found {len(parts)}")
        rows.append(parts)
    return rows


def parse_databases(passwd, shadow, group, gshadow):
    return Databases(passwd=_parse(passwd, 7, "passwd"), shadow=_parse(shadow, 9, "shadow"),
                     group=_parse(group, 4, "group"), gshadow=_parse(gshadow, 4, "gshadow"))


def render(rows):
    return "".join(":".join(r) + "\n" for r in rows)


def check_databases(db, before=None):
    """Problems that would make the files unusable (run on the new files before they go live).
    With ``before`` (the current files), group problems they already had are not reported: they are
    not ours to fix and must not block everyone's accounts."""
    problems = []
    for what, rows, width in (("passwd", db.passwd, 7), ("shadow", db.shadow, 9), ("group", db.group, 4),
                              ("gshadow", db.gshadow, 4)):
        names = [r[0] for r in rows]
        if len(set(names)) != len(names):
            problems.append(f"{what}: duplicate names")
        for row in rows:
            if len(row) != width or any("\n" in f or ":" in f for f in row):
                problems.append(f"{what}: malformed entry for {row[0]!r}")
    for what, rows in (("passwd", db.passwd), ("group", db.group)):
        ids = [r[2] for r in rows]
        if not all(i.isdigit() for i in ids):
            problems.append(f"{what}: non-numeric id")
        seen = {}
        for r in rows:
            if what == "passwd" and r[2] in seen and int(r[2]) >= 1000:
                problems.append(f"passwd: uid {r[2]} used by {seen[r[2]]} and {r[0]}")
            seen.setdefault(r[2], r[0])
    if {r[0] for r in db.passwd} != {r[0] for r in db.shadow}:
        problems.append("passwd and shadow do not list the same users")
    if {r[0] for r in db.group} != {r[0] for r in db.gshadow}:
        problems.append("group and gshadow do not list the same groups")
    users = {r[0] for r in db.passwd}
    members = {r[0]: r[3] for r in db.group}
    gids = {r[2] for r in db.group}
    for row in db.passwd:
        if row[3] not in gids and len(row) == 7:
            problems.append(f"passwd: {row[0]}'s primary group {row[3]} does not exist")
    for row in db.group:
        unknown = sorted(_split(row[3]) - users)
        if unknown:
            problems.append(f"group {row[0]}: unknown member(s) {', '.join(unknown[:5])}")
    for row in db.gshadow:
        if row[0] in members and _split(row[3]) != _split(members[row[0]]):
            problems.append(f"gshadow {row[0]}: members differ from group")
    if before is not None:
        old = set(check_databases(before))
        problems = [p for p in problems if not (p.startswith(("group ", "gshadow ")) and p in old)]
    return problems


def is_locked(hash_field):
    return hash_field.startswith(LOCK_PREFIX)


def usable(hash_field):
    """A hash someone can log in with once unlocked (not empty, not a bare ! or *)."""
    return hash_field.lstrip(LOCK_PREFIX).startswith("$")


@dataclass
class Changes:
    create: list = field(default_factory=list)  # logins
    update: dict = field(default_factory=dict)  # login -> {field: [old, new]}
    lock: list = field(default_factory=list)
    unlock: list = field(default_factory=list)
    set_password: list = field(default_factory=list)
    create_groups: list = field(default_factory=list)
    members: dict = field(default_factory=dict)  # group -> {"add": [...], "remove": [...]}
    conflicts: list = field(default_factory=list)  # "login: why"
    missing_hash: list = field(default_factory=list)  # logins that need a hash the controller did not send

    @property
    def changed(self):
        return bool(self.create or self.update or self.lock or self.unlock or self.set_password
                    or self.create_groups or self.members)

    def summary(self):
        return {"created": sorted(self.create), "updated": sorted(self.update), "locked": sorted(self.lock),
                "unlocked": sorted(self.unlock), "passwords_set": sorted(self.set_password),
                "groups_created": sorted(self.create_groups),
                "group_members": dict(sorted(self.members.items()))}


NO_PASSWORD = "*"  # noqa: S105 - the shadow field of an account with no local password (logins checked by the directory)


def diff_accounts(desired, db, managed_group, allowed_group, group_prefix, hashes=None,
                  reset_passwords=(), uid_min=1000, local_passwords=True):
    """What must change on the host so that exactly ``desired`` accounts (a list of Account) are usable.

    ``hashes``: login -> crypt hash available for accounts that need a password; ``reset_passwords``:
    logins whose password the controller renewed. Returns Changes (conflicts mean: apply nothing).
    ``local_passwords`` False: people log in with their directory password (sssd), accounts hold none.
    """
    hashes = hashes or {}
    if not local_passwords:
        hashes = {a.login: NO_PASSWORD for a in desired}
    users, shadows, groups = db.users(), db.shadows(), db.groups()
    managed = db.members(managed_group)
    changes = Changes()
    wanted = {}
    for account in desired:
        if account.login in wanted:
            changes.conflicts.append(f"{account.login}: listed twice")
            continue
        wanted[account.login] = account
        if not NAME_RE.match(account.login):
            changes.conflicts.append(f"{account.login}: not a valid login name")
            continue
        entry = users.get(account.login)
        if entry is None:
            if account.login in groups:
                changes.conflicts.append(f"{account.login}: a group of that name exists and is not the person's")
                continue
            changes.create.append(account.login)
            if not hashes.get(account.login):
                changes.missing_hash.append(account.login)
            continue
        if account.login not in managed:
            why = "a system account" if entry[2].isdigit() and int(entry[2]) < uid_min else "an account"
            changes.conflicts.append(f"{account.login}: {why} not created by teleshift already has this name")
            continue
        diff = {}
        if entry[4] != account.name:
            diff["name"] = [entry[4], account.name]
        if entry[6] != account.shell:
            diff["shell"] = [entry[6], account.shell]
        if diff:
            changes.update[account.login] = diff
        current = shadows.get(account.login, [account.login, "!"] + [""] * 7)
        if not local_passwords:
            stale = current[1].lstrip(LOCK_PREFIX) != NO_PASSWORD  # a local password left from the kit days
            if stale:
                changes.set_password.append(account.login)
            if is_locked(current[1]) or current[7] not in ("", "-1"):
                changes.unlock.append(account.login)
        elif account.login in reset_passwords or not usable(current[1]):
            changes.set_password.append(account.login)
            if not hashes.get(account.login):
                changes.missing_hash.append(account.login)
        elif is_locked(current[1]) or current[7] not in ("", "-1"):
            changes.unlock.append(account.login)
    for login in sorted(managed - set(wanted)):
        current = shadows.get(login)
        if login in users and current and not (is_locked(current[1]) and current[7] == "1"):
            changes.lock.append(login)
    # group membership: teleshift sets its own accounts' membership, other members are left alone
    desired_members = {managed_group: set(managed) | set(wanted), allowed_group: set(wanted)}
    for account in wanted.values():
        for group in account.groups:
            desired_members.setdefault(group, set()).add(account.login)
    for name in groups:
        if name.startswith(group_prefix) and name not in desired_members and name not in users:
            desired_members[name] = set()
    owned = managed | set(wanted)
    for group, want in sorted(desired_members.items()):
        if group not in groups:
            changes.create_groups.append(group)
            current = set()
        else:
            current = _split(groups[group][3])
        target = (current - owned) | want
        if target != current:
            changes.members[group] = {"add": sorted(target - current), "remove": sorted(current - target)}
    return changes


class _Ids:
    """Free ids in [start, stop]: above the highest one used (as useradd does), else the first hole."""

    def __init__(self, used, start, stop):
        self.used, self.start, self.stop = set(used), start, stop
        self.top = max((i for i in self.used if start <= i <= stop), default=start - 1)

    def take(self, preferred=None):
        if preferred is not None and preferred not in self.used and self.start <= preferred <= self.stop:
            chosen = preferred
        else:
            chosen = self.top + 1
            while chosen in self.used:
                chosen += 1
            if chosen > self.stop:
                chosen = next((i for i in range(self.start, self.stop + 1) if i not in self.used), None)
                if chosen is None:
                    raise ValueError(f"no free id between {self.start} and {self.stop}")
        self.used.add(chosen)
        if chosen > self.top and chosen <= self.stop:
            self.top = chosen
        return chosen


def apply_changes(db, changes, desired, hashes, today, uid_min=1000, uid_max=60000, home_base="/home",
                  must_change=False, local_passwords=True):
    """New Databases with ``changes`` applied (pure: the caller validates and writes them).

    Returns (new_db, created) where created maps login -> (uid, gid, home) for the homes to make.
    must_change: a password set from the kit is "to be changed" (last change 0): the first session asks
    for a new one (roles/xrdp_host, password-change).
    """
    if not local_passwords:
        hashes = {a.login: NO_PASSWORD for a in desired}
        must_change = False  # no local password to change: the directory's own
    lastchg = "0" if must_change else str(today)
    new = Databases(passwd=[list(r) for r in db.passwd], shadow=[list(r) for r in db.shadow],
                    group=[list(r) for r in db.group], gshadow=[list(r) for r in db.gshadow])
    accounts = {a.login: a for a in desired}
    users, shadows, groups = new.users(), new.shadows(), new.groups()
    gshadows = {r[0]: r for r in new.gshadow}
    uids = _Ids((int(r[2]) for r in new.passwd if r[2].isdigit()), uid_min, uid_max)
    gids = _Ids((int(r[2]) for r in new.group if r[2].isdigit()), uid_min, uid_max)
    created = {}

    def add_group(name, gid=None):
        gid = gids.take(gid)
        row = [name, "x", str(gid), ""]
        new.group.append(row)
        groups[name] = row
        gsrow = [name, "!", "", ""]
        new.gshadow.append(gsrow)
        gshadows[name] = gsrow
        return gid

    for login in changes.create:
        account = accounts[login]
        uid = uids.take()
        gid = add_group(login, uid)  # the user's private group, same number when free (as useradd)
        home = account.home or f"{home_base}/{login}"
        row = [login, "x", str(uid), str(gid), account.name, home, account.shell]
        new.passwd.append(row)
        users[login] = row
        srow = [login, hashes[login], lastchg, "0", "99999", "7", "", "", ""]
        new.shadow.append(srow)
        shadows[login] = srow
        created[login] = (uid, gid, home)
    for login, diff in changes.update.items():
        if "name" in diff:
            users[login][4] = diff["name"][1]
        if "shell" in diff:
            users[login][6] = diff["shell"][1]
    for login in changes.set_password:
        srow = shadows.get(login)
        if srow is None:
            srow = [login, "", "", "0", "99999", "7", "", "", ""]
            new.shadow.append(srow)
            shadows[login] = srow
        srow[1], srow[2], srow[7] = hashes[login], lastchg, ""
    for login in changes.unlock:
        srow = shadows[login]
        srow[1] = hashes[login] if not local_passwords else srow[1].lstrip(LOCK_PREFIX)
        srow[7] = ""
    for login in changes.lock:
        srow = shadows[login]
        if not is_locked(srow[1]):
            srow[1] = LOCK_PREFIX + srow[1]
        srow[7] = "1"  # expired since 1970-01-02: no login at all, whatever the method
    for name in changes.create_groups:
        if name not in groups:
            add_group(name)
    for name, delta in changes.members.items():
        row = groups[name]
        remove = set(delta["remove"])
        members = [m for m in row[3].split(",") if m and m not in remove]
        present = set(members)
        members += [m for m in delta["add"] if m not in present]
        row[3] = ",".join(members)
        gsrow = gshadows.get(name)
        if gsrow is not None:
            gsrow[3] = row[3]
    return new, created


def uids_with_processes(proc_status_texts):
    """Real uids owning processes, from the texts of /proc/<pid>/status."""
    result = set()
    for text in proc_status_texts:
        for line in text.splitlines():
            if line.startswith("Uid:"):
                parts = line.split()
                if len(parts) > 1 and parts[1].isdigit():
                    result.add(int(parts[1]))
                break
    return result
