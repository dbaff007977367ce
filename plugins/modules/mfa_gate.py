#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: mfa_gate
short_description: Give a VPN gateway's second-factor gate its whole roster, live, in one call
description:
  - Keeps the gate of one gateway (role C(mfa_gate)) in step with the plan, without restarting anything
    and without touching anyone else's open session.
  - Writes the portal's configuration (enrolled people with their TOTP secrets, 0640 root:portal group) and
    the helper's public allow-list (person -> tunnel addresses) atomically when they change; the portal
    and the helper re-read them on their next request.
  - Loads the static part of the nftables table C(inet teleshift_gate) (gated networks, exempt addresses,
    the drop rule) in one transaction that keeps the open sets' live elements (the sessions).
  - Revocation - every open entry whose address no longer belongs to an enrolled person (left, deactivated,
    moved to an exempt service), or to a person in I(revoke) (secret renewed), is deleted at once.
  - Check mode reports what would change; diff mode lists the people who gain or lose the gate (never a
    secret). Usually called through the action plugin of the same name, which reads the secrets from the
    kits on the controller and sends them in a 0600 file (never as arguments).
version_added: 0.2.0
options:
  people:
    description: Enrolled people, one C(id service address[,address]) line each (the plan's slice).
    type: str
    default: ""
  exempt:
    description: Comma-separated tunnel addresses of people of exempt services (no code needed).
    type: str
    default: ""
  gated:
    description: Networks whose clients must pass the gate (every VPN's pools on this gateway).
    type: list
    elements: str
    default: []
  settings:
    description: The portal's settings (session, max_failures, lockout, failure_window, rate, retention_days, syslog).
    type: dict
    default: {}
  names:
    description: id -> [full name, language] shown on the page (public data), as JSON text (the plan's form)
      or a mapping.
    type: raw
    default: {}
  secrets_file:
    description: JSON file of id -> base32 secret on the host (read and deleted at once).
    type: path
  secrets:
    description: id -> base32 secret for a few people (never logged); with I(secrets_file), both are used.
    type: dict
    default: {}
  partial:
    description: The secrets given are only the new or changed ones; the others are kept from the host's
      configuration. A person whose secret is neither given nor on the host fails the run with
      C(missing_secrets) (nothing applied), so the caller sends them all.
    type: bool
    default: false
  digests:
    description: id -> digest (first 24 hex digits of the SHA-256) of each enrolled person's secret in their
      kit, with I(partial). A secret kept from the host whose digest differs (the host was given another
      controller's secrets) counts as missing, so the caller sends them all.
    type: dict
    default: {}
  revoke:
    description: People whose open session is closed whatever happens (their secret was renewed).
    type: list
    elements: str
    default: []
  state:
    description: C(present), or C(absent) to remove the gate table (every gated client is let through).
    type: str
    choices: [present, absent]
    default: present
  config_dir:
    description: Where the configuration and allow-list are written.
    type: path
    default: /etc/teleshift/gate
  group:
    description: Group of the portal's user (may read the configuration).
    type: str
    default: tsgate
  setup_fingerprint:
    description: The setup the gate needs; when the host's marker does not hold it, nothing is applied and
      C(setup_needed) is returned (the role sets the host up first). Omitted, no marker is read.
    type: str
  setup_marker:
    description: File on the host holding the fingerprint of the setup done.
    type: path
    default: /var/lib/teleshift/setup/mfa_gate
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: The gate's roster (normally through the action plugin of the same name)
  teleshift.toolkit.mfa_gate:
    people: "amartin paie-prestations 10.100.0.2\ndnguyen dsi 10.100.0.3"
    gated: [10.100.0.0/16]
    settings: {session: 36000}
"""

RETURN = r"""
enrolled: {description: Number of enrolled people., type: int, returned: always}
added: {description: People who gained the gate., type: list, returned: always}
removed: {description: People who left the gate., type: list, returned: always}
closed: {description: Tunnel addresses whose open session was closed (revocation)., type: list, returned: always}
config_changed: {description: The portal's configuration or allow-list changed., type: bool, returned: always}
table_changed: {description: The static part of the gate table was (re)loaded., type: bool, returned: always}
missing_secrets:
  description: Enrolled people whose secret the host lacks or holds another of (partial run; nothing applied).
  type: list
  returned: failure
setup_needed:
  description: The host's setup marker does not hold setup_fingerprint, or a unit of the gate has failed;
    nothing was applied.
  type: bool
  returned: when the setup is needed
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_gate_host import (
    ARGUMENT_SPEC, GateError, apply_gate)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = apply_gate(module, module.params)
    except GateError as exc:
        module.fail_json(msg=exc.msg, **exc.extra)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
