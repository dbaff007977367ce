# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/openvpn_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: openvpn_plan
short_description: Plan OpenVPN over TCP 443 (the fallback beside WireGuard), its PKI and kits, on the controller
description:
  - Why it exists. Everyone with the C(vpn) need also gets an OpenVPN profile over TCP 443, for networks
    that block WireGuard's UDP. The plan (gateway, address, certificate of every person) is computed once
    in Python; each gateway then gets its slice in one module call (C(teleshift.toolkit.openvpn_server)).
  - Reads the roster and the inventory through teleshift's front door (C(teleshift_openvpn_*), the access
    settings shared with WireGuard C(teleshift_vpn_internal_networks) and friends, each C(openvpn_gateways)
    host's C(openvpn_gateway_*) variables) and validates what OpenVPN applies, and only that.
  - Addresses come from C(teleshift_openvpn_pool) (each gateway its part), sticky like WireGuard's
    (C(state/openvpn.yml) keeps them; a leaver's address is held for a comeback).
  - The PKI is made here with the C(cryptography) library, never by a shell call per person. The CA key,
    the gateways' keys and the tls-crypt key live in the PKI directory (C(teleshift_openvpn_pki_dir),
    default C(<teleshift_kits_dir>/.pki/openvpn), 0700/0600); the CA key never leaves the controller.
    Each person's key and certificate are in C(<kits>/<id>/openvpn/) and their inline profile
    C(<profile>.ovpn) (0600). Certificates are renewed C(teleshift_openvpn_renew_days) before they expire;
    people who left and rotated certificates are listed in the CRL until their certificates expire.
  - Writes C(state/openvpn.yml), public data only (addresses, certificate serials and expiry, revoked serials).
  - Check mode computes everything and writes nothing (new certificates are made in memory and thrown away).
version_added: 0.2.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  rotate:
    description: Person ids (list or comma-separated text) whose key and certificate are replaced (the old
      certificate is revoked and their open session ended). Defaults to the variable C(openvpn_rotate).
    type: raw
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir) (relative to the inventory directory).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan OpenVPN
  teleshift.toolkit.openvpn_plan:
  register: teleshift_openvpn_plan
"""

RETURN = r"""
gateways:
  description: Each gateway's slice (public data) - client lines, pushed options, access per service,
    addresses, CA, certificate, CRL, the SHA-256 of its secret files, people whose session must end.
  returned: success
  type: dict
routes:
  description: Routes internal hosts need back to the OpenVPN pool (network via the gateway's internal address).
  returned: success
  type: list
  elements: dict
pki_dir:
  description: The PKI directory on the controller (read by teleshift.toolkit.openvpn_server for secrets).
  returned: success
  type: str
added:
  description: People newly in the state file.
  returned: success
  type: list
  elements: str
removed:
  description: People no longer served (their certificates are revoked).
  returned: success
  type: list
  elements: str
issued:
  description: People given a certificate in this run (new, renewed, rotated or repaired).
  returned: success
  type: list
  elements: str
renewed:
  description: People whose certificate was renewed before it expired (same key).
  returned: success
  type: list
  elements: str
revoked:
  description: People whose certificate was revoked in this run.
  returned: success
  type: list
  elements: str
problems:
  description: Every problem found (settings, pools, capacity, roster), nothing applied.
  returned: failure
  type: list
  elements: str
"""
