# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""People as directory entries: the inverse of ``roster_ldap``'s mapping, for the lab's domain
controller (seeded from a roster in one LDIF), the directory benchmark and the tests.

A person becomes a user entry (``CN=<id>`` under the people OU) whose mapped attributes hold their
roster values, member of the mapped groups that give their service, needs and priority; an inactive
person is a disabled account (userAccountControl 514). The groups are entries of their own, listing
their members. Pure functions; controller side.
"""
from __future__ import annotations

import base64
import hashlib
import json

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import to_row

NORMAL, DISABLED = 512, 514  # userAccountControl: NORMAL_ACCOUNT, + ACCOUNTDISABLE
_SAFE_INIT = set(range(0x01, 0x80)) - {0x0A, 0x0D, 0x20, 0x3A, 0x3C}  # RFC 2849 SAFE-INIT-CHAR
_SAFE = set(range(0x01, 0x80)) - {0x0A, 0x0D}


def group_dn(name, groups_ou):
    return name if "=" in name else f"CN={name},{groups_ou}"


def memberships(person, groups, groups_ou):
    """The DNs of the mapped groups ``person`` belongs to: their service's, one per need they have,
    their priority's (``groups``: the mapping's {group: {service, needs, priority}})."""
    found = []
    for name, spec in groups.items():
        needs = spec.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        if ("service" in spec and spec["service"] != person.service) or \
                ("priority" in spec and spec["priority"] != person.priority) or \
                any(n not in person.needs for n in needs):
            continue
        found.append(group_dn(name, groups_ou))
    return found


def person_entry(person, attributes, groups, people_ou, groups_ou):
    """(dn, {attribute: [text]}) of one person (without password), as a directory returns it."""
    row = to_row(person)
    dn = f"CN={person.id},{people_ou}"
    attrs = {"objectClass": ["top", "person", "organizationalPerson", "user"], "sAMAccountName": [person.id],
             "userAccountControl": [str(NORMAL if person.active else DISABLED)]}
    for col, names in attributes.items():
        names = [names] if isinstance(names, str) else list(names)
        value = row.get(col, "")
        if value and names[0] not in attrs:
            attrs[names[0]] = [value]
    attrs.setdefault("displayName", [person.full_name])
    return dn, attrs, memberships(person, groups, groups_ou)


def entries(people, attributes, groups, people_ou, groups_ou, membership="memberOf"):
    """What a search of ``people_ou`` returns: [(dn, {attribute lower-case: [text]})] with memberOf."""
    result = []
    for person in people:
        dn, attrs, member_of = person_entry(person, attributes, groups, people_ou, groups_ou)
        found = {k.lower(): v for k, v in attrs.items()}
        if member_of:
            found[membership.lower()] = member_of
        result.append((dn, found))
    return result


def _line(name, value):
    data = value.encode("utf-8")
    if data and (data[0] in _SAFE_INIT) and all(b in _SAFE for b in data) and not value.endswith(" "):
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(data).decode('ascii')}"


def unicode_pwd(password):
    """AD's unicodePwd value: the password in double quotes, UTF-16-LE."""
    return ('"' + password + '"').encode("utf-16-le")


def ldif(people, attributes, groups, people_ou, groups_ou, realm, passwords=None):
    """LDIF adding the OUs, every person (with ``passwords[id]`` when given) and the mapped groups
    with their members: one file, one ``ldbadd``."""
    blocks = [[_line("dn", ou), "objectClass: top", "objectClass: organizationalUnit"]
              for ou in dict.fromkeys((people_ou, groups_ou))]
    members = {group_dn(name, groups_ou): [] for name in groups}
    for person in people:
        dn, attrs, member_of = person_entry(person, attributes, groups, people_ou, groups_ou)
        lines = [_line("dn", dn)]
        for name, values in attrs.items():
            lines += [_line(name, v) for v in values]
        lines.append(_line("userPrincipalName", f"{person.id}@{realm.lower()}"))
        if passwords and passwords.get(person.id):
            lines.append("unicodePwd:: " + base64.b64encode(unicode_pwd(passwords[person.id])).decode("ascii"))
        blocks.append(lines)
        for group in member_of:
            members[group].append(dn)
    for group, member_dns in members.items():
        lines = [_line("dn", group), "objectClass: top", "objectClass: group",
                 _line("sAMAccountName", group.split(",", 1)[0].split("=", 1)[1])]
        lines += [_line("member", m) for m in member_dns]
        blocks.append(lines)
    return "\n\n".join("\n".join(b) for b in blocks) + "\n"


def fingerprint(people, attributes, groups, people_ou, groups_ou):
    """What the seed depends on (never a password): the people's rows and the mapping."""
    data = {"people": [to_row(p) for p in people], "attributes": attributes, "groups": groups,
            "ous": [people_ou, groups_ou]}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=list).encode()).hexdigest()[:24]
