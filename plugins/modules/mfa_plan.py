# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/mfa_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: mfa_plan
short_description: Plan the second factor (TOTP) for the whole roster on the controller
description:
  - Reads the roster and the inventory through teleshift's input front door and validates the second
    factor's settings (C(teleshift_mfa_*), each service's C(mfa) key); nothing is applied when they are wrong.
  - Everyone active with the C(vpn) or C(desktop) need whose service is not exempt gets a TOTP secret,
    made here with Python's C(secrets) (160 bits) and kept in C(<kits>/<id>/mfa/secret) (0600), with its
    C(otpauth://) QR code (C(authenticator.png), C(.svg)) and a summary (the gate page, the session length).
    Re-runs read the secret back; C(rotate) (or C(-e teleshift_mfa_rotate=id1,id2)) makes a new one and
    closes the person's open gate session.
  - Returns each gateway's gate slice (public data) - the enrolled people with their tunnel addresses from
    every VPN capability, the exempt addresses, the gated networks, the portal's settings.
  - Writes C(state/mfa.yml) (who is enrolled since when, who is exempt and why). Check mode writes nothing.
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir).
    type: path
  rotate:
    description: Person ids (list or comma-separated text) whose secret is renewed. Defaults to C(teleshift_mfa_rotate).
    type: raw
  vpn_from_state:
    description:
      - Take the WireGuard placements (gateway, tunnel addresses) from C(state/vpn.yml) instead of planning the VPN
        again. Only right just after M(teleshift.toolkit.vpn_plan) wrote that file in the same run (C(vpn.yml));
        ignored in check mode, where nothing was written. Saves a second VPN plan (3 s at 50,000 people).
    type: bool
    default: false
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the second factor
  teleshift.toolkit.mfa_plan:
  register: teleshift_mfa_plan
"""

RETURN = r"""
enabled: {description: Whether the second factor is on (teleshift_mfa_enabled)., type: bool, returned: always}
gateways:
  description: Each gateway's gate slice (people, exempt, gated, settings, port, listen, names, revoke, and
    digest, which changes with any of them).
  type: dict
  returned: always
enrolled: {description: Number of people who must prove a code., type: int, returned: always}
new: {description: People whose secret was made in this run., type: list, returned: success}
exempt: {description: People of exempt services., type: list, returned: success}
added: {description: People newly enrolled., type: list, returned: success}
removed: {description: People no longer enrolled., type: list, returned: success}
"""
