#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: desktop_health
short_description: A remote-desktop session host's health figures and verdict
description:
  - Why it exists - after a converge, and whenever the hotline asks, one question matters - can people open
    a session on this host now? The module reads xrdp's and sesman's unit states, counts the session X
    servers (one per open session) against sesman's MaxSessions, and reads the memory available, then
    says ok, degraded (works, but near capacity or low on memory) or down.
  - Right after a restart xrdp or sesman can still be activating; O(settle) waits, bounded, for them to
    leave that state before judging.
  - Reads only; never changes the host. Check mode reads the same.
version_added: 0.2.0
options:
  settle:
    description: Seconds to wait, at most, for xrdp and sesman to leave a transitional state (0 to 600).
    type: float
    default: 0
  min_free_mib:
    description: Below this much available memory (MiB) the host is degraded.
    type: int
    default: 512
  fail_when_down:
    description: Fail the task when the verdict is down (people cannot connect).
    type: bool
    default: true
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Read the session host's health
  teleshift.toolkit.desktop_health:
    settle: 120
  register: desktop_health
"""

RETURN = r"""
figures:
  description: Unit states (xrdp, sesman), sessions, users with a session, max_sessions, mem_available_mib.
  returned: always
  type: dict
verdict:
  description: ok, status (ok, degraded or down), problems, warnings, sessions, capacity, used_share.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop_health import collect, evaluate


def main():
    module = AnsibleModule(
        argument_spec=dict(settle=dict(type="float", default=0.0), min_free_mib=dict(type="int", default=512),
                           fail_when_down=dict(type="bool", default=True)),
        supports_check_mode=True,
    )
    settle = module.params["settle"]
    if not 0 <= settle <= 600:
        module.fail_json(msg="settle must be between 0 and 600 seconds")
    figures = collect(settle)
    verdict = evaluate(figures, min_free_mib=module.params["min_free_mib"])
    result = dict(changed=False, figures=figures, verdict=verdict)
    if module.params["fail_when_down"] and not verdict["ok"]:
        module.fail_json(msg="session host is down: " + "; ".join(verdict["problems"]), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
