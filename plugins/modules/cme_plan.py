# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/cme_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: cme_plan
short_description: The roster's call forwarding for Cisco CME gateways, compiled once on the controller
description:
  - Why it exists. Every CME gateway gets the same forwarding from the roster; reading and checking the
    roster once, on the controller, before any gateway is contacted, is the same pipeline as every other
    teleshift capability (plan on the controller, apply per host).
  - Reads the roster and the inventory through teleshift's single input front door and validates what the
    CME forwarding applies (the number policy, C(teleshift_phone_policy), against toll fraud), and only that.
  - Returns C(people) for M(teleshift.toolkit.cme_forwarding), every person with a desk extension (inactive
    people too, so their forwarding is removed).
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Compile the CME forwarding
  teleshift.toolkit.cme_plan:
  register: teleshift_cme_plan
"""

RETURN = r"""
people:
  description: JSON text of [id, full_name, extension, forward_mode, forward_to, forward_delay, active, line]
    per person with an extension.
  returned: success
  type: str
source:
  description: The roster's file name (to locate problems the gateways' module finds).
  returned: success
  type: str
"""
