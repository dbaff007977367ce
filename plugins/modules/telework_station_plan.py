# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/telework_station_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: telework_station_plan
short_description: Plan the telework stations (laptops) on the controller, one slice per laptop
description:
  - Why it exists. Each laptop of the stock goes to one person of a rollout wave (C(teleshift waves
    --assign), recorded in C(state/laptops.yml)); this plan says, for every laptop that is a host of the
    C(telework_stations) group, whose files it must carry. Computed once in Python; each laptop then
    gets its slice in one module call (C(teleshift.toolkit.telework_station)).
  - Reads the roster, the laptops file (C(teleshift_laptops_file), CSV C(host,serial,mac,os)) and the
    state file through teleshift's front door and validates what the laptops need, and only that.
  - A laptop nobody holds, or whose holder left the roster, gets an empty person (it is wiped).
  - Writes nothing (the assignment is written by C(teleshift waves --assign/--reassign/--release)).
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir) (relative to the inventory directory).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the laptops
  teleshift.toolkit.telework_station_plan:
  register: teleshift_station_plan
"""

RETURN = r"""
stations:
  description: Each laptop's slice (public data) - person, os, serial, mac, name, language, kit parts needed.
  returned: success
  type: dict
kits_dir:
  description: The kits root on the controller.
  returned: success
  type: str
state_file:
  description: The assignment state file.
  returned: success
  type: str
"""
