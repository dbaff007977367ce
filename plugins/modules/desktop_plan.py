# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/desktop_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: desktop_plan
short_description: Plan the remote desktops for the whole roster on the controller, before any session host changes
description:
  - Why it exists. Who sits on which session host is decided once, in Python, for every person, and each
    host then gets its slice in one module call (M(teleshift.toolkit.desktop_accounts)); capacity problems
    stop the run here, before any host is touched.
  - Reads the roster and the inventory through teleshift's single input front door and validates what the
    desktops apply, and only that. Places active people with the C(desktop) need on the C(desktop_hosts)
    within each host's C(xrdp_host_max_sessions), sticky, a service's staff together where possible.
  - Writes C(state/desktop.yml) atomically; it holds public data only (host, login and status of each
    person; people who left stay as C(locked) so they get their host and home back if they return).
  - Check mode computes everything and writes nothing.
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  mfa:
    description:
      - Also plan the second factor in this task, as C(teleshift.toolkit.mfa_plan) does (enrolment kits, who
        is exempt), from the same roster read; its settings are validated before anything is written. The
        result is in C(mfa). C(desktop.yml) plans both in one task.
    type: bool
    default: false
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the remote desktops
  teleshift.toolkit.desktop_plan:
  register: teleshift_desktop_plan
"""

RETURN = r"""
hosts:
  description: Each session host's slice - C(people), JSON text of [login, full name for GECOS, service], and
    C(kits_dir), the absolute kits root.
  returned: success
  type: dict
added:
  description: People who get a desktop account.
  returned: success
  type: list
  elements: str
removed:
  description: People who leave the state file.
  returned: success
  type: list
  elements: str
moved:
  description: People whose host or status changes (for example locked after leaving).
  returned: success
  type: list
  elements: str
"""
