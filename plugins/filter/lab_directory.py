# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Filter for the lab's domain controller: a roster file as one LDIF (people, groups, random passwords).

    {{ roster_path | teleshift.toolkit.lab_directory_seed(mapping, groups_ou, realm) }}
    -> {fingerprint: what the seed depends on (no password), ldif: the LDIF, people: count}
"""
from __future__ import annotations

import secrets

from ansible.errors import AnsibleFilterError

from ansible_collections.teleshift.toolkit.plugins.module_utils import directory_ldif, roster_ldap
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import load_roster

DOCUMENTATION = r"""
name: lab_directory_seed
short_description: A roster file as the LDIF that seeds the lab's domain controller
description:
  - Lab only. Reads the roster with teleshift's own loader (it must be valid) and writes every person as
    a user under the mapping's C(base_dn), with the mapped attributes, member of the mapped groups that
    give their service, needs and priority; inactive people are disabled accounts. Each person gets a
    random password that is stored nowhere.
options:
  _input: {description: The roster file., type: path, required: true}
  mapping: {description: "The directory source mapping (base_dn, attributes, groups).", type: dict, required: true}
  groups_ou: {description: DN under which the mapped groups are made., type: str, required: true}
  realm: {description: The domain's realm (userPrincipalName suffix)., type: str, required: true}
"""


def lab_directory_seed(roster_path, mapping, groups_ou, realm):
    roster = load_roster(roster_path)
    if roster.problems:
        raise AnsibleFilterError("the lab roster is not valid: " + "; ".join(map(str, roster.problems[:5])))
    attributes = {k: list(v) for k, v in roster_ldap.DEFAULT_ATTRIBUTES.items()}
    for col, names in (mapping.get("attributes") or {}).items():
        attributes[col] = [names] if isinstance(names, str) else list(names)
    groups = dict(mapping.get("groups") or {})
    people_ou = mapping["base_dn"]
    passwords = {p.id: secrets.token_urlsafe(18) for p in roster.people}
    return {"fingerprint": directory_ldif.fingerprint(roster.people, attributes, groups, people_ou, groups_ou),
            "ldif": directory_ldif.ldif(roster.people, attributes, groups, people_ou, groups_ou, realm, passwords),
            "people": len(roster.people)}


class FilterModule:
    def filters(self):
        return {"lab_directory_seed": lab_directory_seed}
