#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: mfa_desktop
short_description: Keep a session host's second-factor secrets (xrdp logins with password + code) in one call
description:
  - Writes one file per person who must type a code, C(<directory>/<login>) (root, 0400), in the format
    of Debian's C(libpam-google-authenticator) - the TOTP secret, then its options (30 s codes, a window
    of 3, at most 3 attempts per 30 s, a code never accepted twice). The PAM module rewrites the file with
    its own state (codes used, attempts); a file whose secret is unchanged is left alone so that state stays.
  - Removes the files of logins that no longer need one (left, locked, exempt service); those logins then
    fail at the second factor unless their service is exempt in the PAM stack.
  - Secrets come in I(secrets_file) (read and deleted at once), written by the action plugin of the same
    name from the kits; they are never returned, logged or shown in a diff (diff mode lists logins).
version_added: 0.2.0
options:
  logins:
    description: Logins that must type a code on this host.
    type: list
    elements: str
    default: []
  secrets_file:
    description: JSON file of login -> base32 secret on the host (read and deleted at once).
    type: path
  directory:
    description: Where the secret files live (root only).
    type: path
    default: /var/lib/teleshift/mfa
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Second-factor secrets (normally through the action plugin of the same name)
  teleshift.toolkit.mfa_desktop:
    logins: [blefevre]
"""

RETURN = r"""
added: {description: Logins given a secret file., type: list, returned: always}
updated: {description: Logins whose secret changed., type: list, returned: always}
removed: {description: Logins whose secret file was removed., type: list, returned: always}
missing:
  description: Logins with no secret in their kit (they cannot log in until enrolled).
  type: list
  returned: always
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import take_secrets_file

OPTIONS = '" RATE_LIMIT 3 30\n" WINDOW_SIZE 3\n" DISALLOW_REUSE\n" TOTP_AUTH\n'
LOGIN = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")


def first_line(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.readline().strip()
    except OSError:
        return None


def main():
    module = AnsibleModule(argument_spec={"logins": {"type": "list", "elements": "str", "default": []},
                                          "secrets_file": {"type": "path"},
                                          "directory": {"type": "path", "default": "/var/lib/teleshift/mfa"}},
                           supports_check_mode=True)
    p = module.params
    secrets = {}
    if p["secrets_file"]:
        try:
            secrets = take_secrets_file(p["secrets_file"])
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"secrets_file: cannot read it ({exc.__class__.__name__}); nothing changed")
    bad = [login for login in p["logins"] if not LOGIN.match(login)]
    if bad:
        module.fail_json(msg=f"not logins: {', '.join(bad[:5])}; nothing changed")
    directory = p["directory"]
    present = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    wanted = set(p["logins"])
    added, updated, missing = [], [], []
    for login in sorted(wanted):
        secret = str(secrets.get(login, "")).strip()
        if not p["secrets_file"]:  # check mode: secrets not sent, only presence compared
            if login not in present:
                added.append(login)
            continue
        if not secret:
            missing.append(login)
            continue
        if first_line(os.path.join(directory, login)) != secret:
            (updated if login in present else added).append(login)
    removed = sorted(present - wanted)
    changed = bool(added or updated or removed)
    result = {"changed": changed, "added": added, "updated": updated, "removed": removed, "missing": missing}
    if module._diff:
        result["diff"] = {"before": "".join(f"{x}\n" for x in sorted(present)),
                          "after": "".join(f"{x}\n" for x in sorted((present | set(added)) - set(removed))),
                          "before_header": f"{directory} (logins with a secret)", "after_header": "desired"}
    if module.check_mode or not changed:
        module.exit_json(**result)
    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chmod(directory, 0o700)
    for login in added + updated:
        atomic_write(os.path.join(directory, login), f"{secrets[login].strip()}\n{OPTIONS}", mode=0o400, dir_mode=0o700)
    for login in removed:
        os.unlink(os.path.join(directory, login))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
