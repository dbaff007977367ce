# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/preflight.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: preflight
short_description: Validate the teleshift roster and inventory settings before touching any host
description:
  - Loads the staff roster (CSV or YAML) and the inventory's settings through teleshift's single input
    front door, with the same code as C(scripts/teleshift validate), and fails with every problem
    (file, line, field, message) of what the selected capabilities apply.
  - It exists because an invalid roster must stop a run before any host changes; Ansible's assert cannot
    report hundreds of line-located problems at once.
  - Warnings (an entry naming someone who left, dropped from the configuration) are returned, not fatal.
  - A run that would remove or deactivate many of the people served today (a truncated export) fails
    unless C(teleshift_allow_mass_removal) is true.
  - Runs on the controller; reads the C(teleshift_*) variables and each capability's own host variables.
version_added: 0.1.0
options:
  capabilities:
    description: Names of the capabilities whose checks run (the registry's names, e.g. C(vpn)).
      Defaults to every capability.
    type: list
    elements: str
  roster:
    description: Roster file; relative paths are relative to the inventory directory.
      Defaults to C(teleshift_roster_file).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Validate the roster and inventory
  teleshift.toolkit.preflight:
"""

RETURN = r"""
people:
  description: Counts of people (total, active, and per selected capability).
  returned: success
  type: dict
problems:
  description: "Every problem found, each as C(file:line: field: message)."
  returned: always
  type: list
  elements: str
"""
