#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The desired state is compiled on the controller by teleshift.toolkit.phone_plan.
from __future__ import annotations

DOCUMENTATION = r"""
module: asterisk_forwarding
short_description: Converge Asterisk's runtime telephony state (forwarding, on-duty numbers, holidays) in the AstDB
description:
  - Why it exists - forwarding changes every day in a dispersed workforce. Kept in the AstDB and read by
    the dialplan at call time, it changes with no reload and without touching calls in progress; this
    module makes that change minimal and reviewable, for 5,000 people in one task.
  - Reads the whole AstDB with one C(asterisk -rx "database show"), compares the managed families
    (CFIM always, CFBS busy, CFNA no answer, CFNADELAY, TSONDUTY, TSHOLIDAY, TSMOBILE) with the desired
    state, and writes only the differences, through the manager interface on 127.0.0.1 (pipelined
    DBPut/DBDel) or, when no manager user is configured, C(asterisk -rx) per change.
  - Families it does not manage (for example C(TSCLOSED), the manual closure switch of attendants) are
    left alone. Nothing is reloaded or restarted.
  - Supports check mode and diff mode; the diff and the result name the people added, changed and removed.
  - C(state) is usually this PBX's slice of M(teleshift.toolkit.phone_plan), compiled from the roster and
    the inventory on the controller (roles/asterisk_pbx passes it).
version_added: 0.1.0
options:
  state:
    description:
      - Desired content of each managed family, a mapping of family to a mapping of key to value.
      - A managed family missing here is emptied.
    type: dict
    required: true
  labels:
    description: Key to label (C(person amartin)) used to name changes in the result and the diff.
    type: dict
    default: {}
  families:
    description: The families this module owns entirely.
    type: list
    elements: str
    default: [CFIM, CFBS, CFNA, CFNADELAY, TSONDUTY, TSHOLIDAY, TSMOBILE]
  ami_credentials_file:
    description: manager.d file holding the teleshift manager user (C([user]) and C(secret=)).
    type: path
    default: /etc/asterisk/manager.d/teleshift.conf
  ami_port:
    description: Port of the manager interface on 127.0.0.1.
    type: int
    default: 5038
  queue_agents:
    description:
      - Queue name to the extensions allowed to be its members (logged in from their softphone, or on
        their mobile). A member of one of these queues whose extension is not listed (a person made
        inactive, removed from the roster or from the queue's agents) is removed now, persistent
        membership included. Queues not named here are left alone.
    type: dict
    default: {}
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Converge forwarding from the roster (this PBX's slice of the telephony plan)
  teleshift.toolkit.asterisk_forwarding:
    state: "{{ hostvars.localhost.teleshift_phone_plan.hosts[inventory_hostname].astdb }}"
    labels: "{{ hostvars.localhost.teleshift_phone_plan.hosts[inventory_hostname].astdb_labels }}"

- name: Set forwarding explicitly
  teleshift.toolkit.asterisk_forwarding:
    state:
      CFIM: {"1001": "0612345678"}
    families: [CFIM]
"""

RETURN = r"""
people:
  description: Labels of what was added, changed and removed (C(person amartin), C(holiday 2025-12-25)).
  returned: always
  type: dict
puts:
  description: Number of keys written.
  returned: always
  type: int
deletes:
  description: Number of keys deleted.
  returned: always
  type: int
method:
  description: How changes were written (C(ami), C(cli)), or C(none).
  returned: always
  type: str
queue_members_removed:
  description: Queue members removed (or that would be, in check mode), each as C(queue) colon interface.
  returned: always
  type: list
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.asterisk import (
    MANAGED_FAMILIES, Ami, AsteriskError, astdb_actions, astdb_text, cli_commands, describe_astdb_changes, diff_astdb,
    parse_database_show, read_ami_credentials)
from ansible_collections.teleshift.toolkit.plugins.module_utils.results import brief_invocation


def read_astdb(module):
    rc, out, err = module.run_command(["asterisk", "-rx", "database show"])
    if rc != 0:
        module.fail_json(msg=f"cannot read the AstDB (is Asterisk running?): {err or out}")
    return parse_database_show(out)


def apply_changes(module, puts, deletes):
    creds = read_ami_credentials(module.params["ami_credentials_file"])
    if creds:
        ami = None
        try:
            ami = Ami(port=module.params["ami_port"])
            ami.login(*creds)
            failures = ami.run_many(astdb_actions(puts, deletes))
        except (OSError, AsteriskError) as exc:
            module.fail_json(msg=f"manager interface: {exc}")
        finally:
            if ami:
                ami.close()
        if failures:
            module.fail_json(msg=f"{len(failures)} AstDB change(s) failed, first: {failures[0][1]}")
        return "ami"
    for command in cli_commands(puts, deletes):
        rc, out, err = module.run_command(["asterisk", "-rx", command])
        if rc != 0 or "failed" in out.lower():
            module.fail_json(msg=f"{command!r} failed: {err or out}")
    return "cli"


MEMBER_RE = re.compile(r"^\s+\S.*? \(([A-Za-z0-9]+/[^\s)]+)")


def queue_members(module, queue):
    """Interfaces of the members of ``queue`` (``queue show``), e.g. PJSIP/1004, Local/1004@ts-agent-mobile/n."""
    rc, out, err = module.run_command(["asterisk", "-rx", f"queue show {queue}"])
    if rc != 0:
        module.fail_json(msg=f"cannot read queue {queue}: {err or out}")
    if "No such queue" in out:
        return []
    members = out.split("Members:", 1)[1] if "Members:" in out else ""
    members = re.split(r"^\s+(?:No )?Callers", members, maxsplit=1, flags=re.M)[0]
    return [m.group(1) for m in map(MEMBER_RE.match, members.splitlines()) if m]


def stale_members(module, queue_agents):
    """[(queue, interface)] of members whose extension may no longer be in the queue."""
    stale = []
    for queue, extensions in sorted(queue_agents.items()):
        allowed = {f"PJSIP/{e}" for e in extensions} | {f"Local/{e}@ts-agent-mobile/n" for e in extensions}
        stale += [(queue, iface) for iface in queue_members(module, queue) if iface not in allowed]
    return stale


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "dict", "required": True},
            "labels": {"type": "dict", "default": {}},
            "families": {"type": "list", "elements": "str", "default": list(MANAGED_FAMILIES)},
            "ami_credentials_file": {"type": "path", "default": "/etc/asterisk/manager.d/teleshift.conf"},
            "ami_port": {"type": "int", "default": 5038},
            "queue_agents": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    families = tuple(module.params["families"])
    desired = {fam: {str(k): str(v) for k, v in (module.params["state"].get(fam) or {}).items()}
               for fam in families}
    labels = {str(k): str(v) for k, v in module.params["labels"].items()}
    current = read_astdb(module)
    puts, deletes = diff_astdb(current, desired, families)
    people = describe_astdb_changes(current, desired, labels, families)
    stale = stale_members(module, {str(q): [str(e) for e in (exts or [])]
                                   for q, exts in module.params["queue_agents"].items()})
    result = {"changed": bool(puts or deletes or stale), "people": people, "puts": len(puts),
              "deletes": len(deletes), "method": "none",
              "queue_members_removed": [f"{q}: {iface}" for q, iface in stale],
              "invocation": brief_invocation(module.params, ("state", "labels", "queue_agents"))}
    if module._diff and result["changed"]:
        result["diff"] = {"before": astdb_text({f: current.get(f, {}) for f in families}, labels, families),
                          "after": astdb_text(desired, labels, families),
                          "before_header": "AstDB (managed families)", "after_header": "AstDB (managed families)"}
    if not result["changed"] or module.check_mode:
        module.exit_json(**result)
    for queue, iface in stale:  # revocation: out of the queue now (persistent membership too)
        rc, out, err = module.run_command(["asterisk", "-rx", f"queue remove member {iface} from {queue}"])
        if rc != 0 or iface in queue_members(module, queue):
            module.fail_json(msg=f"could not remove {iface} from queue {queue}: {err or out}", **result)
    if not (puts or deletes):
        module.exit_json(**result)
    result["method"] = apply_changes(module, puts, deletes)
    after = read_astdb(module)
    left, extra = diff_astdb(after, desired, families)
    if left or extra:
        module.fail_json(msg=f"AstDB still differs after writing: {len(left)} missing, {len(extra)} extra", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
