# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Applying a gateway's second-factor gate on the host (the work of the ``mfa_gate`` module), shared
with ``wireguard_peers``, which applies the gate in the same call as the peers (vpn.yml: one module
call on the gateway instead of two, 0.7 s less for a one-person change at 5,000 people).

``apply_gate(module, params)`` returns the result (``setup_needed`` when the host's setup is not done:
nothing applied) or raises ``GateError``; it writes nothing in check mode."""
from __future__ import annotations

import grp
import hashlib
import json
import os

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import (
    TABLE, nft_close, nft_table, parse_open_sets, parse_people, take_secrets_file)

UNITS = ("teleshift-gate.socket", "teleshift-gate.service", "teleshift-gate-helper.socket",
         "teleshift-gate-helper.service")

# the mfa_gate module's arguments, and the sub-options of wireguard_peers' `gate`
ARGUMENT_SPEC = {
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
}


class GateError(Exception):
    """The gate could not be applied: ``msg``, and what goes with it in the result."""

    def __init__(self, msg, **extra):
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


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


def take_secrets(p):
    """The secrets sent (a file read and deleted at once, and/or a few inline)."""
    secrets = {}
    if p["secrets_file"]:
        try:
            secrets = take_secrets_file(p["secrets_file"])
        except (OSError, ValueError) as exc:
            raise GateError(f"secrets_file: cannot read it ({exc.__class__.__name__}); nothing changed") from None
    secrets.update(p["secrets"] or {})
    return secrets


def apply_gate(module, p):
    """Keep the gate in step with ``p`` (the mfa_gate module's parameters); see that module's docs."""
    if p["setup_fingerprint"]:
        why = None
        if (_read(p["setup_marker"]) or "").strip() != p["setup_fingerprint"]:
            why = "the gate's setup runs first, nothing applied"
        elif p["state"] == "present" and _units_failed(module):
            why = "the gate's page or helper has failed (systemd): its setup runs again, nothing applied"
        if why:
            if p["secrets_file"] and os.path.exists(p["secrets_file"]):
                os.unlink(p["secrets_file"])
            return {"changed": False, "setup_needed": True, "msg": why}
    secrets = take_secrets(p)
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
        return {"changed": changed, "enrolled": 0, "added": [], "removed": sorted(old_allow),
                "closed": sorted(live), "config_changed": False, "table_changed": changed}
    try:
        people = parse_people(p["people"])
        exempt = [a.strip() for a in p["exempt"].split(",") if a.strip()]
        table = nft_table(p["gated"], exempt)
    except ValueError as exc:
        raise GateError(f"invalid gate slice, nothing applied: {exc}") from None
    try:
        names = json.loads(p["names"]) if isinstance(p["names"], str) else dict(p["names"] or {})
    except (TypeError, ValueError):
        raise GateError("names: expected JSON text or a mapping of id -> [full name, language]") from None
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
        raise GateError(f"{len(missing)} enrolled people have no secret on the host, or another one than "
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
        return result
    if config_changed:
        gid = grp.getgrnam(p["group"]).gr_gid
        os.makedirs(p["config_dir"], mode=0o755, exist_ok=True)
        atomic_write(allow_path, allow_text, mode=0o644)
        atomic_write(conf_path, conf_text, mode=0o640, owner=0, group=gid)
    if table_changed:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=table, binary_data=True)
        if rc != 0:
            raise GateError(f"loading the gate table failed: {err.strip()}", **result)
        atomic_write(table_path, table, mode=0o644)
    if close:
        rc, _out, err = module.run_command([nft, "-f", "-"], data=nft_close(close), binary_data=True)
        if rc != 0:
            raise GateError(f"closing revoked sessions failed: {err.strip()}", **result)
    return result
