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

import grp
import hashlib
import json
import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import (
    TABLE, nft_close, nft_table, parse_open_sets, parse_people)


UNITS = ("teleshift-gate.socket", "teleshift-gate.service", "teleshift-gate-helper.socket",
         "teleshift-gate-helper.service")


def _read(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except OSError:
        return None


def _units_failed(module):
    """Whether a unit of the gate is in the failed state (a page that crashed, a socket left without its
    address): the role's setup starts them again. Nothing known without systemctl."""
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return False
    rc, _out, _err = module.run_command([systemctl, "is-failed", "--quiet", *UNITS])
    return rc == 0  # 0: at least one of them is failed


def _allow_text(allow):
    """The gate's allow-list as diff text: one "id address..." line per person."""
    return "".join(f"{pid} {' '.join(allow[pid])}\n" for pid in sorted(allow))


def main():
    module = AnsibleModule(
        argument_spec={
            "people": {"type": "str", "default": ""},
            "exempt": {"type": "str", "default": ""},
            "gated": {"type": "list", "elements": "str", "default": []},
            "settings": {"type": "dict", "default": {}},
            "names": {"type": "raw", "default": {}},
            "secrets_file": {"type": "path"},
            "secrets": {"type": "dict", "default": {}, "no_log": True},
            "partial": {"type": "bool", "default": False},
            # one-way digests, not secrets: no_log would scan every output string for 5,000 of them (~1 s);
            # the action drops the invocation, so they are not logged either
            "digests": {"type": "dict", "default": {}, "no_log": False},
            "revoke": {"type": "list", "elements": "str", "default": []},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "config_dir": {"type": "path", "default": "/etc/teleshift/gate"},
            "group": {"type": "str", "default": "tsgate"},
            "setup_fingerprint": {"type": "str"},
            "setup_marker": {"type": "path", "default": "/var/lib/teleshift/setup/mfa_gate"},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["setup_fingerprint"]:
        why = None
        if (_read(p["setup_marker"]) or "").strip() != p["setup_fingerprint"]:
            why = "the gate's setup runs first, nothing applied"
        elif p["state"] == "present" and _units_failed(module):
            why = "the gate's page or helper has failed (systemd): its setup runs again, nothing applied"
        if why:
            if p["secrets_file"] and os.path.exists(p["secrets_file"]):
                os.unlink(p["secrets_file"])
            module.exit_json(changed=False, setup_needed=True, msg=why)
    secrets = {}
    if p["secrets_file"]:
        try:
            with open(p["secrets_file"], encoding="utf-8") as stream:
                secrets = json.load(stream)
        except (OSError, ValueError) as exc:
            module.fail_json(msg=f"secrets_file: cannot read it ({exc.__class__.__name__}); nothing changed")
        finally:
            if os.path.exists(p["secrets_file"]):
                os.unlink(p["secrets_file"])
    nft = module.get_bin_path("nft", required=True)
    rc, out, _err = module.run_command([nft, "-j", "list", "table", "inet", TABLE])
    loaded = rc == 0
    live = parse_open_sets(out) if loaded else {}
    conf_path = os.path.join(p["config_dir"], "config.json")
    allow_path = os.path.join(p["config_dir"], "allow.json")
    old_allow = json.loads(_read(allow_path) or "{}").get("people", {})

    if p["state"] == "absent":
        changed = loaded
        if changed and not module.check_mode:
            module.run_command([nft, "delete", "table", "inet", TABLE], check_rc=True)
        module.exit_json(changed=changed, enrolled=0, added=[], removed=sorted(old_allow), closed=sorted(live),
                         config_changed=False, table_changed=changed)
    try:
        people = parse_people(p["people"])
        exempt = [a.strip() for a in p["exempt"].split(",") if a.strip()]
        table = nft_table(p["gated"], exempt)
    except ValueError as exc:
        module.fail_json(msg=f"invalid gate slice, nothing applied: {exc}")
    try:
        names = json.loads(p["names"]) if isinstance(p["names"], str) else dict(p["names"] or {})
    except (TypeError, ValueError):
        module.fail_json(msg="names: expected JSON text or a mapping of id -> [full name, language]")
    secrets.update(p["secrets"] or {})
    sent = bool(p["secrets_file"]) or bool(p["secrets"]) or p["partial"]
    old_conf = json.loads(_read(conf_path) or "{}")
    stale = []
    if not sent or p["partial"]:  # keep the secrets the host has for those not sent (check mode: all)
        for pid, _svc, _addrs in people:
            if pid not in secrets:
                secrets[pid] = ((old_conf.get("people") or {}).get(pid) or {}).get("secret", "")
                wanted = (p["digests"] or {}).get(pid)
                if wanted and secrets[pid] and hashlib.sha256(secrets[pid].encode()).hexdigest()[:24] != wanted:
                    stale.append(pid)
    missing = sorted({pid for pid, _svc, _addrs in people if not secrets.get(pid)} | set(stale)) if sent else []
    if missing and p["partial"]:
        module.fail_json(msg=f"{len(missing)} enrolled people have no secret on the host, or another one than "
                             "their kit's: all are sent again", missing_secrets=missing)
    allow = {pid: addrs for pid, _svc, addrs in people}
    conf_people = {}
    for pid, service, addrs in people:
        name, lang = (names.get(pid) or [pid, "fr"])[:2]
        conf_people[pid] = {"service": service, "addresses": addrs, "name": name, "language": lang,
                            "secret": secrets.get(pid, "")}
    # nobody without a secret is enrolled: their gate stays closed (fail closed)
    conf_people = {pid: e for pid, e in conf_people.items() if e["secret"]}
    allow = {pid: a for pid, a in allow.items() if pid in conf_people}
    settings = dict(p["settings"])
    conf = {**settings, "people": conf_people}
    allow_doc = {"people": allow, "session": int(settings.get("session") or 0)}
    conf_text = json.dumps(conf, sort_keys=True, indent=0)
    allow_text = json.dumps(allow_doc, sort_keys=True, indent=0)
    config_changed = _read(conf_path) != conf_text or _read(allow_path) != allow_text
    table_path = os.path.join(p["config_dir"], "gate.nft")
    table_changed = not loaded or _read(table_path) != table
    wanted = {a for addrs in allow.values() for a in addrs}
    revoked = {a for pid in p["revoke"] for a in allow.get(pid, []) + old_allow.get(pid, [])}
    close = sorted(a for a in live if a not in wanted or a in revoked)
    added = sorted(set(allow) - set(old_allow))
    removed = sorted(set(old_allow) - set(allow))
    changed = config_changed or table_changed or bool(close)
    result = {"changed": changed, "enrolled": len(allow), "added": added, "removed": removed, "closed": close,
              "config_changed": config_changed, "table_changed": table_changed}
    if missing:
        result["warnings"] = [f"{len(missing)} enrolled people have no secret in their kit (gate closed for them): "
                              + ", ".join(missing[:10])]
    if module._diff:
        result["diff"] = {"before": _allow_text(old_allow), "after": _allow_text(allow),
                          "before_header": f"{allow_path} (people on the gate)", "after_header": "desired"}
    if module.check_mode or not changed:
        module.exit_json(**result)
    if config_changed:
        gid = grp.getgrnam(p["group"]).gr_gid
        os.makedirs(p["config_dir"], mode=0o755, exist_ok=True)
        atomic_write(allow_path, allow_text, mode=0o644)
        atomic_write(conf_path, conf_text, mode=0o640, owner=0, group=gid)
    if table_changed:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=table, binary_data=True)
        if rc != 0:
            module.fail_json(msg=f"loading the gate table failed: {err.strip()}", **result)
        atomic_write(table_path, table, mode=0o644)
    if close:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=nft_close(close), binary_data=True)
        if rc != 0:
            module.fail_json(msg=f"closing revoked sessions failed: {err.strip()}", **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
