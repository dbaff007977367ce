# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/phone_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: phone_plan
short_description: Compile the telephony of the whole roster once on the controller, before any PBX changes
description:
  - Why it exists. Every PBX's configuration (endpoints, dialplan with the number policy, voicemail,
    queues, conferences) and runtime state (forwarding, on-duty numbers, holidays in the AstDB) are compiled
    once, in Python, for every person; each PBX then gets its slice in one module call per concern.
  - Reads the roster and the inventory through teleshift's single input front door and validates what the
    telephony applies, and only that; an entry naming someone who left (a queue agent, a ring-group member)
    is dropped with a warning, never an error.
  - Keeps each person's SIP password and voicemail PIN in their kit (made once, read back later) and writes
    their softphone account file (C(<kits>/<id>/phone/account.txt), 0600).
  - The result holds the configuration files with those secrets - register it with C(no_log) (as
    playbooks/telephony.yml does); they reach the PBX only as M(teleshift.toolkit.asterisk_config)'s no_log
    argument.
  - Check mode compiles with the secrets already in the kits and writes nothing.
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Compile the telephony
  teleshift.toolkit.phone_plan:
  register: teleshift_phone_plan
  no_log: true
"""

RETURN = r"""
hosts:
  description: Each PBX's slice - files (configuration, with secrets), labels, prompts, sounds_dir,
    expect_endpoints, astdb (family -> key -> value), astdb_labels and queue_agents.
  returned: success
  type: dict
endpoints:
  description: Lines on the PBX (people with a phone or a forwarded desk).
  returned: success
  type: int
"""
