#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: openvpn_server
short_description: Give an OpenVPN gateway its whole client set, CRL and firewall, applied live
description:
  - Takes one gateway's slice of C(teleshift.toolkit.openvpn_plan) (every person's address as
    C(<id> <address>) lines, the options pushed to every client, CA, server certificate, CRL) and
    the rendered server configuration and firewall, and applies only the difference.
  - Each person is one client-config-dir (ccd) file naming their fixed address; the server runs with
    C(ccd-exclusive), so a person without a file cannot connect. OpenVPN reads a ccd file when the
    person connects and re-reads the CRL (C(crl-verify)) when its time or size changed, at each new
    TLS session, so adding, changing or removing people never restarts the server.
  - Sessions of people no longer served (or whose key was replaced, I(kick)) are ended through the
    management interface (a unix socket) with C(client-kill <id> HALT); people whose address
    changed get C(RESTART) and reconnect. Nobody else is disconnected.
  - The server is restarted only when its own configuration, CA, certificate or keys change.
  - The server's private key and the tls-crypt key are secrets, so the slice carries only their SHA-256.
    When the files on the host differ, the module returns C(needs_secrets) and applies nothing; the
    action plugin of the same name then sends them in a 0600 file of Ansible's private temporary
    directory (I(secrets_file), read and deleted here), never as arguments.
  - Check mode computes the difference and changes nothing; diff mode shows one line per person
    (id and address) and the firewall's set elements labelled with their person.
  - With I(setup_fingerprint), the host's setup marker must hold it; otherwise nothing is applied
    and C(setup_needed) is returned, so the role sets the host up first.
version_added: 0.2.0
options:
  clients:
    description: Every person this gateway serves, one C(<id> <address>) line each (the plan's form).
    type: str
    required: true
  netmask:
    description: The pool's netmask (C(ifconfig-push <address> <netmask>)).
    type: str
    required: true
  push:
    description: Lines written into every ccd file (routes, DNS) after the address.
    type: list
    elements: str
    default: []
  kick:
    description: People whose open session must end now (their key was replaced).
    type: list
    elements: str
    default: []
  config:
    description: The server configuration file's text (the role renders it).
    type: str
    required: true
  config_dir:
    description: Directory of the server's files; C(ccd/) is inside it.
    type: path
    default: /etc/openvpn/teleshift
  ca:
    description: The CA certificate (PEM).
    type: str
    required: true
  cert:
    description: The gateway's certificate (PEM).
    type: str
    required: true
  crl:
    description: The certificate revocation list (PEM).
    type: str
    required: true
  secret_digests:
    description: SHA-256 of the server key (C(server.key)) and the tls-crypt key (C(tls-crypt.key)).
    type: dict
    required: true
  secrets_file:
    description: JSON file of the secret files' texts (set by the action plugin; deleted after reading).
    type: path
  firewall:
    description: The nftables rules of the OpenVPN table (one transaction); omitted, no firewall.
    type: str
  firewall_path:
    description: Where the rules are written (loaded at boot by the role's unit).
    type: path
    default: /etc/teleshift/openvpn-firewall.nft
  firewall_table:
    description: The table the rules define (checked to be loaded).
    type: str
    default: inet teleshift_ovpn
  service:
    description: systemd unit of the server.
    type: str
    default: teleshift-openvpn
  management_socket:
    description: The server's management interface (unix socket).
    type: path
    default: /run/openvpn-teleshift/management.sock
  setup_fingerprint:
    description: The setup the server needs (see C(setup_needed)); omitted, no marker is read.
    type: str
  setup_marker:
    description: File on the host holding the fingerprint of the setup done.
    type: path
    default: /var/lib/teleshift/setup/openvpn_gateway
  pki_dir:
    description: The controller's PKI directory (C(openvpn_plan)'s C(pki_dir)), read by the action plugin
      for the secrets a host lacks; never sent to the host.
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply the whole client set live
  teleshift.toolkit.openvpn_server:
    clients: "{{ openvpn_gateway_slice.clients }}"
    netmask: "{{ openvpn_gateway_slice.netmask }}"
    push: "{{ openvpn_gateway_slice.push }}"
    config: "{{ lookup('ansible.builtin.template', 'server.conf.j2') }}"
    ca: "{{ openvpn_gateway_slice.ca }}"
    cert: "{{ openvpn_gateway_slice.cert }}"
    crl: "{{ openvpn_gateway_slice.crl }}"
    secret_digests: "{{ openvpn_gateway_slice.secret_digests }}"
    pki_dir: /srv/kits/.pki/openvpn
"""

RETURN = r"""
added:
  description: People given a ccd file.
  returned: always
  type: list
  elements: str
updated:
  description: People whose ccd file changed (address or pushed options).
  returned: always
  type: list
  elements: str
removed:
  description: People whose ccd file was removed.
  returned: always
  type: list
  elements: str
disconnected:
  description: People whose open session was ended (revoked, key replaced, address changed).
  returned: always
  type: list
  elements: str
crl_changed:
  description: Whether the CRL file changed (the server reads it at the next connection).
  returned: always
  type: bool
restarted:
  description: Whether the server was (or in check mode would be) restarted for its own settings.
  returned: always
  type: bool
needs_secrets:
  description: The server key or tls-crypt key on the host differs; nothing was applied.
  returned: when true
  type: bool
setup_needed:
  description: The setup marker does not hold I(setup_fingerprint); nothing was applied.
  returned: when true
  type: bool
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.nft_sets import expand_sets
from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_host import (
    Management, OpenVpnError, ccd_address, ccd_files, parse_clients, read_ccd, sessions_to_end)
from ansible_collections.teleshift.toolkit.plugins.module_utils.results import brief_invocation

SECRETS = ("server.key", "tls-crypt.key")


def _read(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def _sha256(text):
    import hashlib

    return hashlib.sha256(text.encode("utf-8")).hexdigest() if text is not None else ""


def main():
    module = AnsibleModule(
        argument_spec={
            "clients": {"type": "str", "required": True},
            "netmask": {"type": "str", "required": True},
            "push": {"type": "list", "elements": "str", "default": []},
            "kick": {"type": "list", "elements": "str", "default": []},
            "config": {"type": "str", "required": True},
            "config_dir": {"type": "path", "default": "/etc/openvpn/teleshift"},
            "ca": {"type": "str", "required": True},
            "cert": {"type": "str", "required": True},
            "crl": {"type": "str", "required": True},
            "secret_digests": {"type": "dict", "required": True, "no_log": False},  # SHA-256 only
            "secrets_file": {"type": "path"},
            "firewall": {"type": "str"},
            "firewall_path": {"type": "path", "default": "/etc/teleshift/openvpn-firewall.nft"},
            "firewall_table": {"type": "str", "default": "inet teleshift_ovpn"},
            "service": {"type": "str", "default": "teleshift-openvpn"},
            "management_socket": {"type": "path", "default": "/run/openvpn-teleshift/management.sock"},
            "setup_fingerprint": {"type": "str"},
            "setup_marker": {"type": "path", "default": "/var/lib/teleshift/setup/openvpn_gateway"},
            "pki_dir": {"type": "path"},  # the action plugin's (it reads the secrets there); unused here
        },
        supports_check_mode=True,
    )
    p = module.params
    big = ("clients", "config", "firewall", "crl", "ca", "cert")
    brief = brief_invocation({k: v for k, v in p.items() if k != "secrets_file"}, big)
    if p["setup_fingerprint"] and (_read(p["setup_marker"]) or "").strip() != p["setup_fingerprint"]:
        module.exit_json(changed=False, setup_needed=True, invocation=brief,
                         msg=f"{p['setup_marker']} does not match: the host setup runs first, nothing applied")
    try:
        clients = parse_clients(p["clients"])
    except OpenVpnError as exc:
        module.fail_json(msg=f"nothing applied: {exc}", invocation=brief)
    cdir = p["config_dir"]
    ccd_dir = os.path.join(cdir, "ccd")
    wanted = ccd_files(clients, p["netmask"], p["push"])
    current = read_ccd(ccd_dir)
    added = sorted(set(wanted) - set(current))
    removed = sorted(set(current) - set(wanted))
    updated = sorted(pid for pid in wanted if pid in current and current[pid] != wanted[pid])

    secrets = {}
    digests = {name: str((p["secret_digests"] or {}).get(name, "")) for name in SECRETS}
    stale = [name for name in SECRETS if _sha256(_read(os.path.join(cdir, name))) != digests[name]]
    if stale and p["secrets_file"]:
        secrets = _load_secrets(module, p["secrets_file"], digests, brief)
    elif stale and not module.check_mode:
        module.exit_json(changed=False, needs_secrets=True, stale=stale, invocation=brief,
                         msg="the server's key or tls-crypt key differs on the host: sent next, nothing applied yet")
    static = {"server.conf": p["config"], "ca.crt": p["ca"], "server.crt": p["cert"]}
    static_changed = sorted([n for n, text in static.items() if _read(os.path.join(cdir, n)) != text] + stale)
    crl_path = os.path.join(cdir, "crl.pem")
    crl_changed = _read(crl_path) != p["crl"]
    fw_changed = p["firewall"] is not None and (_read(p["firewall_path"]) != p["firewall"]
                                                or not _table_loaded(module, p["firewall_table"]))
    active = _active(module, p["service"])
    restart = bool(static_changed) and active
    start = not active
    changed = bool(added or removed or updated or static_changed or crl_changed or fw_changed or start)
    result = {"changed": changed, "added": added, "updated": updated, "removed": removed, "disconnected": [],
              "crl_changed": crl_changed, "restarted": restart, "started": False, "static_changed": static_changed,
              "firewall_changed": fw_changed, "invocation": brief,
              "people": len(wanted)}
    if module._diff:
        touched = set(added + removed + updated)

        def line(files):
            return "".join(f"{pid} {ccd_address(files[pid])}\n" for pid in sorted(files) if pid in touched)
        result["diff"] = [{"before": line(current), "after": line(wanted), "before_header": f"{ccd_dir} (people)",
                           "after_header": f"{ccd_dir} (people)"}]
        if fw_changed:
            owners = {a: pid for pid, a in clients.items()}
            owners.update({ccd_address(t): pid for pid, t in current.items()})
            result["diff"].append({"before": expand_sets(_read(p["firewall_path"]) or "", owners),
                                   "after": expand_sets(p["firewall"], owners),
                                   "before_header": p["firewall_path"],
                                   "after_header": f"{p['firewall_path']} (desired)"})
    if module.check_mode:
        result["disconnected"] = _would_end(module, p, clients) if active else []
        module.exit_json(**result)
    if not changed:
        result["disconnected"] = _end_sessions(module, p, clients, result)
        result["changed"] = bool(result["disconnected"])
        module.exit_json(**result)

    os.makedirs(ccd_dir, mode=0o755, exist_ok=True)
    for name, text in static.items():
        if name in static_changed:
            atomic_write(os.path.join(cdir, name), text, mode=0o644, durable=True)
    for name, text in secrets.items():
        atomic_write(os.path.join(cdir, name), text, mode=0o600, durable=True)
    for pid in added + updated:
        atomic_write(os.path.join(ccd_dir, pid), wanted[pid], mode=0o644)
    for pid in removed:
        try:
            os.unlink(os.path.join(ccd_dir, pid))
        except FileNotFoundError:
            pass
    if crl_changed:
        _write_crl(crl_path, p["crl"])
    if fw_changed:
        _load_rules(module, p["firewall_path"], p["firewall"], result)
    if start or restart:
        rc, _out, err = module.run_command(["systemctl", "restart" if restart else "start", p["service"]])
        if rc != 0:
            module.fail_json(msg=f"{p['service']} did not start: {err.strip()}", **result)
        result["started"] = start
        _wait_socket(p["management_socket"])
    if not (start or restart):
        result["disconnected"] = _end_sessions(module, p, clients, result)
    module.exit_json(**result)


def _load_secrets(module, path, digests, brief):
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (OSError, ValueError) as exc:
        module.fail_json(msg=f"cannot read the secrets file: {exc}", invocation=brief)
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
    secrets = {name: str(data.get(name) or "") for name in SECRETS}
    wrong = [name for name, text in secrets.items() if _sha256(text) != digests[name]]
    if wrong:
        module.fail_json(msg=f"the secrets sent do not match their digests ({', '.join(wrong)}), nothing applied",
                         invocation=brief)
    return secrets


def _write_crl(path, text):
    """Replace the CRL atomically, with a modification time later than the old one's: OpenVPN reloads
    the file when its time (seconds) or size changed, and two CRLs of one second may share a size."""
    try:
        before = os.stat(path).st_mtime
    except FileNotFoundError:
        before = 0
    atomic_write(path, text, mode=0o644, durable=True)
    stamp = max(time.time(), int(before) + 1)
    os.utime(path, (stamp, stamp))


def _active(module, service):
    rc, out, _err = module.run_command(["systemctl", "is-active", service])
    return out.strip() in ("active", "reloading")


def _table_loaded(module, table):
    nft = module.get_bin_path("nft")
    if not nft:
        return False
    rc, _out, _err = module.run_command([nft, "list", "table", *table.split()])
    return rc == 0


def _load_rules(module, path, text, result):
    """Check, then load one nftables file (one transaction); the previous rules come back on failure."""
    staged = f"{path}.new"
    atomic_write(staged, text, mode=0o600, dir_mode=0o755)
    rc, _out, err = module.run_command(["nft", "-c", "-f", staged])
    if rc != 0:
        os.unlink(staged)
        module.fail_json(msg=f"{path}: the rules do not pass nft -c: {err.strip()}", **result)
    previous = _read(path)
    os.replace(staged, path)
    rc, _out, err = module.run_command(["nft", "-f", path])
    if rc != 0:
        if previous is not None:
            atomic_write(path, previous, mode=0o600)
            module.run_command(["nft", "-f", path])
        module.fail_json(msg=f"{path}: loading failed, previous rules restored: {err.strip()}", **result)


def _wait_socket(path, seconds=20):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not os.path.exists(path):
        time.sleep(0.2)


def _would_end(module, p, clients):
    try:
        with Management(p["management_socket"]) as mgmt:
            return sorted({cn for _cid, cn, _m in sessions_to_end(mgmt.status(), clients, p["kick"])})
    except (OSError, OpenVpnError):
        return []


def _end_sessions(module, p, clients, result):
    """End the sessions of people no longer served, kicked or moved; nobody else's."""
    if not os.path.exists(p["management_socket"]):
        return []
    ended = set()
    try:
        with Management(p["management_socket"]) as mgmt:
            for cid, cn, message in sessions_to_end(mgmt.status(), clients, p["kick"]):
                if mgmt.kill(cid, message):
                    ended.add(cn)
    except (OSError, OpenVpnError) as exc:
        module.warn(f"could not end revoked sessions through {p['management_socket']}: {exc}")
    return sorted(ended)


if __name__ == "__main__":
    main()
