#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: desktop_accounts
short_description: Create, update and lock every remote-desktop account of a session host in one call
description:
  - Why it exists - a session host carries hundreds or thousands of people; one task per person costs
    about half a second each, and C(useradd) was measured at 58 ms per account on the lab host (minutes for
    5,000), C(newusers) at 32 ms (Debian's build hashes a placeholder password through PAM for every
    line). This module reads C(/etc/passwd), C(/etc/shadow), C(/etc/group) and C(/etc/gshadow) once, computes
    the whole change in memory and writes the four files once, the way the shadow tools do it (C(lckpwdf)
    plus the C(.lock) files, C(-) backups, a temporary file renamed into place), after checking the new
    files in linear time (fields, names, ids, primary groups, members, the pairs of files; C(grpck) is
    quadratic, 10 s at 5,000 accounts); if writing fails the previous files are put back.
  - Teleshift owns the accounts in O(managed_group). Desired accounts are created (with a private group,
    a 0700 home from C(/etc/skel)) or updated (name, shell, groups); owned accounts that are not desired
    are locked (C(!) before the hash, expired), leave the allowed and service groups, and keep their home;
    their sessions are ended (C(loginctl terminate-user), then C(SIGKILL) after a bounded wait).
    A desired login that exists outside O(managed_group) is a conflict and nothing is applied.
  - Passwords are set only at creation, when the account has no usable hash, or for O(reset_passwords);
    a person who changed their password keeps it. Hashes come from the controller (the plaintext never
    reaches the host), are never returned, logged or shown in a diff.
  - Usually called through the action plugin of the same name, which plans the whole roster on the
    controller, keeps the public state file and the kits, and passes this host's slice.
  - Check mode reports what would change; diff mode lists the people created, updated, locked and unlocked.
version_added: 0.1.0
options:
  accounts:
    description:
      - The desired accounts of this host (public data), a list of C({login, name, groups, shell})
        (C(name) is the ASCII full name for GECOS, C(groups) the teleshift supplementary groups,
        C(shell) defaults to C(/bin/bash)).
      - Or the same as text, one C(login:name:group,group:shell) line per account. This is what the
        action plugin sends (a 5,000-item list of mappings costs a second of validation on the host).
    type: raw
    required: true
  password_hashes:
    description:
      - login -> SHA-512 crypt hash, used only when a password must be set. Never returned or logged.
      - For many people use I(password_hashes_file) (what the action plugin does) - Ansible masks every
        no_log value in the whole result, which costs seconds per thousand hashes.
    type: dict
    default: {}
  password_hashes_file:
    description:
      - A JSON file on the host with more login -> hash entries (written 0600 in Ansible's private
        remote temporary directory by the action plugin); the module reads it and deletes it at once.
    type: path
  reset_passwords:
    description: Logins whose password must be set to their hash even if the account has one (the kit's renewed).
    type: list
    elements: str
    default: []
  must_change:
    description: A password set from the kit is marked "to be changed" (last change 0), so the first session
      asks for a new one (role xrdp_host). A person who changed it keeps theirs.
    type: bool
    default: false
  managed_group:
    description: Marker group of every account teleshift created on this host (active or locked).
    type: str
    default: teleshift
  allowed_group:
    description: The group xrdp admits (sesman TerminalServerUsers); exactly the desired accounts, plus
      non-teleshift members.
    type: str
    default: tsusers
  group_prefix:
    description: Prefix of the service groups; teleshift sets its accounts' membership of every group with it.
    type: str
    default: ts-
  home_base:
    description: Directory of new homes.
    type: path
    default: /home
  end_sessions:
    description: End the sessions of locked accounts.
    type: bool
    default: true
  local_passwords:
    description:
      - False when people log in with their directory password (sssd on the host, see docs/directory.md) - the
        accounts then hold no local password (C(*) in /etc/shadow, a password left from a kit is removed) and
        no hash is needed.
    type: bool
    default: true
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Accounts of the session host (normally through the action plugin of the same name)
  teleshift.toolkit.desktop_accounts:
    accounts:
      - {login: blefevre, name: Benoit Lefevre, groups: [ts-paie-prestations]}
    password_hashes: {blefevre: "{{ hashes.blefevre }}"}
"""

RETURN = r"""
created:
  description: Logins created.
  type: list
  elements: str
  returned: always
updated:
  description: Logins whose name or shell changed.
  type: list
  elements: str
  returned: always
locked:
  description: Logins locked (home kept).
  type: list
  elements: str
  returned: always
unlocked:
  description: Logins unlocked (the person is back).
  type: list
  elements: str
  returned: always
passwords_set:
  description: Logins whose password hash was set (never the hash).
  type: list
  elements: str
  returned: always
sessions_ended:
  description: Logins of locked accounts whose processes were ended.
  type: list
  elements: str
  returned: always
group_members:
  description: Per group, the logins added and removed.
  type: dict
  returned: always
accounts:
  description: Counts of the desired, managed and locked accounts after the run.
  type: dict
  returned: always
missing_hash:
  description: Accounts that need a password hash none was given for (nothing was changed).
  type: list
  elements: str
  returned: failure
probe:
  description: The host's fingerprint after this call (module_utils/desktop_probe.py), which the action
    plugin keeps to skip the next call when nothing changed. Not returned in check mode, or when this call
    ended sessions of locked accounts (the next call looks again).
  type: str
  returned: sometimes
"""

import ctypes
import json
import os
import shutil
import stat
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_accounts import (
    check_databases, diff_accounts, apply_changes, is_locked, parse_accounts, parse_databases, render,
    uids_with_processes)
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_probe import probe_script
from ansible_collections.teleshift.toolkit.plugins.module_utils.results import brief_invocation

FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow")
WRITE_ORDER = ("/etc/group", "/etc/gshadow", "/etc/shadow", "/etc/passwd")  # users appear last
SESSION_WAIT = 5.0  # seconds between terminate-user and SIGKILL


def login_defs(path="/etc/login.defs"):
    values = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            for line in stream:
                parts = line.split()
                if len(parts) >= 2 and not parts[0].startswith("#"):
                    values[parts[0]] = parts[1]
    except OSError:
        pass
    return values


class ShadowLock:
    """The locks the shadow tools take: lckpwdf() and <file>.lock for each of the four files."""

    def __init__(self, module):
        self.module = module
        self.held = []
        self.libc = None

    def __enter__(self):
        self.libc = ctypes.CDLL(None)
        deadline = time.monotonic() + 15
        while self.libc.lckpwdf() != 0:
            if time.monotonic() > deadline:
                self.module.fail_json(msg="the account databases are locked by another program (lckpwdf)")
            time.sleep(0.2)
        pid = str(os.getpid()).encode()
        for path in FILES:
            lock, tmp = f"{path}.lock", f"{path}.{os.getpid()}"
            with open(tmp, "wb") as stream:
                stream.write(pid)
            try:
                os.link(tmp, lock)
            except FileExistsError:
                os.unlink(tmp)
                self.__exit__(None, None, None)
                self.module.fail_json(msg=f"{lock} exists: another program is changing the accounts")
            os.unlink(tmp)
            self.held.append(lock)
        return self

    def __exit__(self, *exc):
        for lock in self.held:
            try:
                os.unlink(lock)
            except FileNotFoundError:
                pass
        self.held = []
        if self.libc is not None:
            self.libc.ulckpwdf()
            self.libc = None


def read_files():
    texts = []
    for path in FILES:
        with open(path, encoding="utf-8", errors="surrogateescape") as stream:
            texts.append(stream.read())
    return parse_databases(*texts)


def _temp_copy(path, text):
    st = os.stat(path)
    tmp = f"{path}+teleshift"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return tmp


def write_databases(module, new, created=()):
    """Validate, back up (<file>-) and rename the new files into place; restore all on failure."""
    texts = {"/etc/passwd": render(new.passwd), "/etc/shadow": render(new.shadow),
             "/etc/group": render(new.group), "/etc/gshadow": render(new.gshadow)}
    temps = {}
    try:
        for path in FILES:
            temps[path] = _temp_copy(path, texts[path])
        # Validated by check_databases before this call; pwck/grpck are not run: grpck compares every
        # member with every user (10 s at 5,000 accounts), pwck adds ~1 s and checks nothing more
        # that matters here (fields, names, ids, primary groups, pairs of files, members).
        for path in FILES:
            shutil.copy2(path, f"{path}-")
        done = []
        try:
            for path in WRITE_ORDER:
                os.replace(temps.pop(path), path)
                done.append(path)
        except OSError as exc:
            for path in done:
                shutil.copy2(f"{path}-", path)
            module.fail_json(msg=f"writing {path} failed ({exc}); the previous account files were restored")
    finally:
        for tmp in temps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)


def make_home(home, uid, gid, skel="/etc/skel"):
    if os.path.isdir(home):
        st = os.stat(home)
        if st.st_uid != uid:  # a home kept from an earlier account of this login: give it back
            for root, dirs, files in os.walk(home):
                for name in dirs + files:
                    os.lchown(os.path.join(root, name), uid, gid)
            os.chown(home, uid, gid)
        return
    os.makedirs(os.path.dirname(home) or "/", exist_ok=True)
    os.mkdir(home, 0o700)
    if os.path.isdir(skel):
        for name in os.listdir(skel):
            src, dst = os.path.join(skel, name), os.path.join(home, name)
            if os.path.isdir(src) and not os.path.islink(src):
                shutil.copytree(src, dst, symlinks=True)
            else:
                shutil.copy2(src, dst, follow_symlinks=False)
        for root, dirs, files in os.walk(home):
            for name in dirs + files:
                os.lchown(os.path.join(root, name), uid, gid)
    os.chown(home, uid, gid)
    os.chmod(home, 0o700)


def proc_status_texts():
    texts = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as stream:
                    texts.append(stream.read())
            except OSError:
                continue
    return texts


def end_sessions(module, logins, uids):
    if not logins:
        return
    for login in logins:
        if shutil.which("loginctl"):
            module.run_command(["loginctl", "terminate-user", login])
    deadline = time.monotonic() + SESSION_WAIT
    while time.monotonic() < deadline and uids & uids_with_processes(proc_status_texts()):
        time.sleep(0.25)
    left = uids & uids_with_processes(proc_status_texts())
    for uid in sorted(left):
        module.run_command(["pkill", "-KILL", "-U", str(uid)])


def describe(account):
    return f"active, groups {','.join(account.groups) or '-'}, shell {account.shell}"


def build_diff(changes, desired, db, local=True):
    accounts = {a.login: a for a in desired}
    before, after = [], []
    for login in sorted(changes.create):
        before.append(f"{login}: absent")
        after.append(f"{login}: {describe(accounts[login])}")
    for login in sorted(changes.update):
        for key, (old, new) in sorted(changes.update[login].items()):
            before.append(f"{login}: {key} {old}")
            after.append(f"{login}: {key} {new}")
    for login in sorted(changes.unlock):
        before.append(f"{login}: locked")
        after.append(f"{login}: {describe(accounts[login])}")
    for login in sorted(changes.lock):
        before.append(f"{login}: active")
        after.append(f"{login}: locked, sessions ended, home kept")
    for login in sorted(changes.set_password):
        if login not in changes.create:
            before.append(f"{login}: password (kept)")
            after.append(f"{login}: password (set from the kit)" if local
                         else f"{login}: no local password (directory)")
    for group, delta in sorted(changes.members.items()):
        before.append(f"group {group}: " + (" ".join("-" + m for m in delta["remove"]) or "(no removal)"))
        after.append(f"group {group}: " + (" ".join("+" + m for m in delta["add"]) or "(no addition)"))
    return {"before_header": "accounts (changed entries)", "after_header": "accounts (changed entries)",
            "before": "\n".join(before) + "\n" if before else "",
            "after": "\n".join(after) + "\n" if after else ""}


def run(module):
    p = module.params
    invocation = brief_invocation({k: v for k, v in p.items() if k != "password_hashes"}, ("accounts",))
    try:
        desired = parse_accounts(p["accounts"])
    except ValueError as exc:
        module.fail_json(msg=f"accounts: {exc}; nothing was changed", invocation=invocation)
    hashes = dict(p["password_hashes"] or {})
    if p["password_hashes_file"]:
        try:
            with open(p["password_hashes_file"], encoding="utf-8") as stream:
                hashes.update(json.load(stream))
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"password_hashes_file: cannot read it ({exc.__class__.__name__}); "
                                 "nothing was changed")
        finally:
            if os.path.exists(p["password_hashes_file"]):
                os.unlink(p["password_hashes_file"])
    bad = [login for login, h in hashes.items() if not isinstance(h, str) or not h.startswith("$")
           or ":" in h or "\n" in h]
    if bad:
        module.fail_json(msg=f"password_hashes: not a crypt hash for {len(bad)} login(s): {', '.join(sorted(bad)[:5])}")
    defs = login_defs()
    uid_min, uid_max = int(defs.get("UID_MIN", 1000)), int(defs.get("UID_MAX", 60000))
    db = read_files()
    changes = diff_accounts(desired, db, p["managed_group"], p["allowed_group"], p["group_prefix"],
                            hashes=hashes, reset_passwords=set(p["reset_passwords"]), uid_min=uid_min,
                            local_passwords=p["local_passwords"])
    if changes.conflicts:
        module.fail_json(msg="nothing was changed: " + "; ".join(changes.conflicts[:20]),
                         conflicts=changes.conflicts)
    if changes.missing_hash:
        module.fail_json(msg=f"no password hash for {len(changes.missing_hash)} account(s) that need one: "
                             + ", ".join(sorted(changes.missing_hash)[:10]) + "; nothing was changed",
                         missing_hash=sorted(changes.missing_hash), invocation=invocation)
    # locked accounts that still run processes (just locked, or a session an earlier run could not end)
    users, shadows = db.users(), db.shadows()
    managed = db.members(p["managed_group"])
    wanted = {a.login for a in desired}
    to_lock = set(changes.lock) | {u for u in managed - wanted
                                   if u in shadows and is_locked(shadows[u][1]) and u in users}
    lock_uids = {int(users[u][2]): u for u in to_lock if users[u][2].isdigit()}
    running = uids_with_processes(proc_status_texts()) if p["end_sessions"] else set()
    ending = sorted(lock_uids[uid] for uid in running & set(lock_uids))
    summary = changes.summary()
    result = dict(changed=changes.changed or bool(ending), sessions_ended=ending, invocation=invocation, **summary)
    if module._diff:
        result["diff"] = build_diff(changes, desired, db, p["local_passwords"])
    if not module.check_mode and changes.changed:
        with ShadowLock(module):
            fresh = read_files()  # the files as they are under the lock
            if fresh.passwd != db.passwd or fresh.shadow != db.shadow or fresh.group != db.group:
                changes = diff_accounts(desired, fresh, p["managed_group"], p["allowed_group"],
                                        p["group_prefix"], hashes=hashes,
                                        reset_passwords=set(p["reset_passwords"]), uid_min=uid_min,
                                        local_passwords=p["local_passwords"])
                db = fresh
            today = int(time.time() // 86400)
            new, created = apply_changes(db, changes, desired, hashes, today, uid_min, uid_max,
                                         p["home_base"], must_change=p["must_change"],
                                         local_passwords=p["local_passwords"])
            problems = check_databases(new, before=db)
            if problems:
                module.fail_json(msg="nothing was changed: the new account files would be invalid: "
                                     + "; ".join(problems[:5]))
            write_databases(module, new, created)
        if shutil.which("nscd"):
            module.run_command(["nscd", "-i", "passwd", "-i", "group"])
        for _login, (uid, gid, home) in sorted(created.items()):
            make_home(home, uid, gid)
    if not module.check_mode and ending:
        end_sessions(module, ending, {uid for uid, u in lock_uids.items() if u in ending})
    after = read_files() if not module.check_mode else None
    if after is not None:
        members = after.members(p["managed_group"])
        locked = sum(1 for e in after.shadow if e[0] in members and is_locked(e[1]))
        result["accounts"] = {"desired": len(desired), "managed": len(members), "locked": locked}
    else:
        result["accounts"] = {"desired": len(desired), "managed": len(managed)}
    if not module.check_mode and not ending:
        # the host's fingerprint now, for the action's next run (module_utils/desktop_probe.py)
        rc, out, _err = module.run_command(["/bin/sh", "-c", probe_script()])
        if rc == 0 and out.strip():
            result["probe"] = out.strip()
    module.exit_json(**result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            accounts=dict(type="raw", required=True),
            password_hashes=dict(type="dict", default={}, no_log=True),
            password_hashes_file=dict(type="path", no_log=False),  # a file name; its content is never returned
            reset_passwords=dict(type="list", elements="str", default=[], no_log=False),  # logins, not passwords
            must_change=dict(type="bool", default=False),
            managed_group=dict(type="str", default="teleshift"),
            allowed_group=dict(type="str", default="tsusers"),
            group_prefix=dict(type="str", default="ts-"),
            home_base=dict(type="path", default="/home"),
            end_sessions=dict(type="bool", default=True),
            local_passwords=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    run(module)


if __name__ == "__main__":
    main()
