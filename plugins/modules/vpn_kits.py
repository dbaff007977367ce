# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/vpn_kits.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: vpn_kits
short_description: Write each person's WireGuard profile and its QR codes into their kit
description:
  - Why it exists. A profile needs the gateway's public key, known only once the gateway has made its
    key; this runs on the controller after the gateways and writes every kit in one task.
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
  state_file:
    description: Public state file; relative to the inventory directory.
    type: path
    default: state/vpn.yml
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir).
    type: path
  qr:
    description: Also write the QR codes.
    type: bool
    default: true
author: teleshift contributors
"""

EXAMPLES = r"""
- name: Write the VPN kits
  teleshift.toolkit.vpn_kits:
    gateway_keys:
      ts-gw1: "{{ hostvars['ts-gw1'].wireguard_gateway_public_key }}"
"""

RETURN = r"""
written:
  description: Person ids whose profile was written or changed.
  returned: success
  type: list
  elements: str
skipped:
  description: Person ids left without a profile because their gateway's key is not known yet.
  returned: success
  type: list
  elements: str
"""
