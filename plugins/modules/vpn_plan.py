# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/vpn_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: vpn_plan
short_description: Plan the WireGuard VPN for the whole roster on the controller, before any gateway changes
description:
  - Why it exists. The VPN's desired state (who is on which gateway, with which address, key and
    access rules) is computed once, in Python, for every person; each gateway then gets its slice in
    one module call. Capacity and address problems stop the run here, before any host is touched.
  - Reads the roster and the inventory through teleshift's single input front door (the C(teleshift_*)
    settings and each C(vpn_gateways) host's C(wireguard_gateway_*) variables) and validates what the VPN
    applies, and only that (a stale telephony setting never keeps a leaver's tunnel open). Assigns people
    with the C(vpn) need (active) to gateways within C(wireguard_gateway_max_peers) (and
    C(teleshift_vpn_licences)), sticky and a service's staff together; gives stable addresses from each
    gateway's pool (C(state/vpn.yml) keeps them).
  - Client key pairs are made here (X25519); the private key is written only to
    C(<teleshift_kits_dir>/<id>/vpn/private.key) (0600 in 0700 directories) and read back on later
    runs, so re-running never rotates a key; C(rotate) (or C(-e wireguard_rotate=id1,id2)) does.
  - Writes C(state/vpn.yml) atomically, sorted; it holds public data only (gateway, addresses and
    public key of each person).
  - Writes each person's profile and QR codes (C(<kits>/<id>/vpn/)) with the gateways' public keys
    recorded in the state file (C(teleshift.toolkit.vpn_kits) finishes on a first run or new gateway key).
  - Check mode computes everything and writes nothing (people without a key get a throw-away one in
    memory, so the gateways' check shows them as added).
version_added: 0.1.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  rotate:
    description: Person ids (list or comma-separated text) whose key pair is replaced.
      Defaults to the variable C(wireguard_rotate).
    type: raw
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir) (relative to the inventory directory).
    type: path
  gate:
    description:
      - Also plan the second factor in this task, as C(teleshift.toolkit.mfa_plan) does (enrolment kits,
        each gateway's gate slice), from the same roster read and with the WireGuard placements of this
        plan; its settings are validated before anything is written. The result is in C(gate).
      - Its rotation list is C(teleshift_mfa_rotate) (I(rotate) is the VPN keys').
    type: bool
    default: false
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the VPN
  teleshift.toolkit.vpn_plan:
  register: teleshift_vpn_plan
"""

RETURN = r"""
gateways:
  description: Each gateway's slice (public data) - peers (id, public_key, allowed_ips), access per
    service (addresses, networks), the gateway's addresses, pool and port.
  returned: success
  type: dict
routes:
  description: Routes internal hosts need (network via gateway internal address).
  returned: success
  type: list
  elements: dict
added:
  description: People newly in the state file.
  returned: success
  type: list
  elements: str
removed:
  description: People no longer on the VPN (revoked; their address is kept for a comeback while the pool has room).
  returned: success
  type: list
  elements: str
moved:
  description: People whose gateway or address changed.
  returned: success
  type: list
  elements: str
new_keys:
  description: People who got a new key pair (new, rotated or lost key).
  returned: success
  type: list
  elements: str
gateway_keys:
  description: Gateway public keys recorded in the state file (used for the profiles written).
  returned: success
  type: dict
kits_written:
  description: Number of profiles written or changed by this task.
  returned: success
  type: int
kits_pending:
  description: People whose profile waits for their gateway's key (first run).
  returned: success
  type: list
  elements: str
gate:
  description: What C(teleshift.toolkit.mfa_plan) returns (enabled, gateways with each one's gate slice,
    enrolled, new, exempt...), planned in the same task.
  returned: with I(gate)
  type: dict
problems:
  description: Every problem found (capacity, pool, settings, roster), nothing applied.
  returned: failure
  type: list
  elements: str
"""
