# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/vpn_kits.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: vpn_kits
short_description: Write each person's WireGuard profile and its QR codes into their kit
description:
  - Why it exists. A profile needs the gateway's public key, known only once the gateway has made its
    key; this runs on the controller after the gateways and writes every kit in one task. (The plan
    already writes the profiles with the keys recorded in the state file; this task finishes the job
    on a first run or when a gateway's key changed.)
  - For each person of C(state/vpn.yml) writes C(<teleshift_kits_dir>/<id>/vpn/<teleshift_vpn_profile_name>.conf)
    and its QR code as PNG and SVG (for the mobile app), files 0600 in 0700 directories. Only changed
    profiles are rewritten; QR codes are redrawn only for them.
  - Records the gateways' public keys in C(state/vpn.yml). Never returns a private key.
  - Check mode writes nothing.
version_added: 0.1.0
options:
  gateway_keys:
    description: Gateway name -> public key (from C(teleshift.toolkit.wireguard_peers)). Keys already in
      the state file are used for gateways not given.
    type: dict
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir).
    type: path
  qr:
    description: Also write the QR codes; defaults to C(teleshift_vpn_qr) (true).
    type: bool
  recorded_keys:
    description: Gateway keys the plan used for the profiles it wrote (C(teleshift_vpn_plan.gateway_keys)).
      When they equal I(gateway_keys) and nothing is pending, the task has nothing to do and does not
      read the state file.
    type: dict
  pending:
    description: People the plan could not write a profile for (C(teleshift_vpn_plan.kits_pending)).
    type: list
    elements: str
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Write the VPN kits
  teleshift.toolkit.vpn_kits:
    gateway_keys:
      ts-gw1: "{{ hostvars['ts-gw1'].wireguard_gateway_peers_result.public_key }}"
"""

RETURN = r"""
written:
  description: Number of profiles written or changed.
  returned: success
  type: int
skipped:
  description: Person ids left without a profile because their gateway's key is not known yet.
  returned: success
  type: list
  elements: str
"""
