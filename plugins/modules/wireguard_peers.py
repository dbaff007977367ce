#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: wireguard_peers
short_description: Give a WireGuard gateway its whole peer set, applied live without disturbing anyone
description:
  - Takes the complete desired peer set of one gateway (one entry per person with its public key, allowed
    IPs, person id), reads the live interface (C(wg show <interface> dump)) and the config file, and
    applies only the difference live with C(wg set) (peers added, changed, removed). The interface is
    never restarted, so the other people's tunnels and connections are not disturbed.
  - Why it exists. Per-peer Ansible tasks cost ~0.4 s each (35 minutes for 5,000 people) and the
    usual template + C(wg syncconf <(wg-quick strip ...)) handler has a known failure - when the
    pipeline breaks, C(wg syncconf) reads an empty config and wipes every peer and the private key
    of the live interface. This module never feeds the interface a whole config; it validates the
    desired set first (keys, duplicate people, keys or addresses), applies removals then additions
    in batches, checks the result and puts the previous peers back if anything failed.
  - Writes the wg-quick file atomically (mode 0600) with one C(# teleshift-person) comment per peer, so a
    reboot (C(wg-quick@<interface>)) restores the same state. The file has no private key - its
    C(PostUp) loads the gateway's key from I(private_key_path), which the role generates on the
    gateway with C(wg genkey); that key never leaves the gateway and is never returned.
  - Check mode computes the difference and changes nothing. Diff mode shows one line per person
    (person id, allowed IPs, public key); C(added), C(updated) and C(removed) name the people. When
    the I(firewall) rules change, a second diff shows them with every set element on a line of its
    own, labelled with the person and the service, so an access change (someone moving to another
    service's set) shows as that person's line leaving one service and joining another.
  - When the live interface lost its private key or listen port, they are restored from the key
    file and I(listen_port) (reported as C(interface_repaired)).
  - With I(setup_fingerprint), the host's setup marker (written by the role's setup) must hold that
    fingerprint; otherwise nothing is applied and C(setup_needed) is returned, so the role sets the
    host up first. The marker lives on the host, so a rebuilt host is set up again.
version_added: 0.1.0
options:
  interface:
    description: WireGuard interface name (also names the wg-quick file).
    type: str
    default: wg0
  config_path:
    description: The wg-quick file; defaults to C(/etc/wireguard/<interface>.conf).
    type: path
  private_key_path:
    description: The gateway's private key file (made by C(wg genkey) on the gateway).
      Defaults to C(/etc/wireguard/<interface>.key).
    type: path
  addresses:
    description: The gateway's own tunnel addresses with prefix (C(10.100.0.1/16)).
    type: list
    elements: str
    required: true
  listen_port:
    description: UDP port the gateway listens on.
    type: int
    default: 51820
  mtu:
    description: Interface MTU; omitted lets wg-quick choose.
    type: int
  peers:
    description:
      - The complete desired peer set. A live peer that is not listed is removed.
      - Each item is C({id, public_key, allowed_ips}); C(id) is the person id.
      - Or the same as text, one C(<id> <public key> <allowed IP>[,<allowed IP>]) line per peer. This is
        what C(teleshift.toolkit.vpn_plan) hands each gateway (one string templates in microseconds, a
        5,000-item list of mappings in seconds).
    type: raw
    required: true
  setup_fingerprint:
    description: The setup the peers need (see C(setup_needed)); omitted, no marker is read.
    type: str
  setup_marker:
    description: File on the host holding the fingerprint of the setup done.
    type: path
    default: /var/lib/teleshift/setup/wireguard_gateway
  batch_size:
    description: Peers changed per C(wg set) call.
    type: int
    default: 500
  service:
    description: systemd unit that brings the interface up (C(wg-quick@wg0)); when the interface is
      down after the config file is written, the module starts it.
    type: str
  firewall:
    description:
      - nftables rules for these peers (the per-service sets of their addresses). Checked with
        C(nft -c -f) before anything is applied; written to I(firewall_path) atomically and loaded in
        one transaction (C(nft -f)) when they changed or are not loaded.
    type: str
  firewall_path:
    description: Where the firewall rules are kept (a boot unit loads them).
    type: path
    default: /etc/teleshift/vpn-firewall.nft
  firewall_table:
    description: The nftables table the rules define (to see whether they are loaded).
    type: str
    default: inet teleshift_vpn
  gate:
    description:
      - The arguments of C(teleshift.toolkit.mfa_gate) for this gateway's second-factor gate, applied in
        this same call after the peers (one module call on the gateway instead of two). The action plugin
        of this module sends the secrets from the kits as the C(mfa_gate) action does.
      - Its result is returned in C(gate). When the gate's setup is not done (C(gate.setup_needed)) the gate
        is left as it is and the caller runs the C(mfa_gate) role. A gate that cannot be applied fails the
        task after the peers were applied, as a separate C(mfa_gate) task after this one would.
    type: dict
  role_spec:
    description:
      - Handled by the action plugin, on the controller - the entry point of the calling role's argument spec
        (C(meta/argument_specs.yml)) its variables are checked against before anything else, as Ansible's own
        check task does (the C(wireguard_gateway) role's fast path imports the role with
        C(rolespec_validate=false) and saves that task's worker on every gateway). Failures name each variable.
    type: str
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply the gateway's peer set live
  teleshift.toolkit.wireguard_peers:
    interface: wg0
    addresses: [10.100.0.1/16]
    listen_port: 51820
    peers:
      - id: amartin
        public_key: 7Gq1o0sR0m5w6H2y9o8p0l3KQbqJbYk3Vx2p0sT1mWc=
        allowed_ips: [10.100.0.2/32]
  register: wireguard_peers_result
"""

RETURN = r"""
public_key:
  description: The gateway's public key (for the clients' profiles); empty when the key file does not
    exist yet (check mode before the first run).
  returned: always
  type: str
added:
  description: Person ids whose peer is (or would be, in check mode) added.
  returned: always
  type: list
  elements: str
updated:
  description: Person ids whose key or addresses changed.
  returned: always
  type: list
  elements: str
removed:
  description: Person ids (or C(unknown peer <key prefix>...)) whose peer is removed.
  returned: always
  type: list
  elements: str
peers:
  description: Number of peers in the desired set.
  returned: always
  type: int
live:
  description: Whether the interface was up, so changes were applied live (else only the file).
  returned: always
  type: bool
config_changed:
  description: Whether the wg-quick file changed.
  returned: always
  type: bool
interface_changed:
  description: The interface section (addresses, port, MTU) of the file changed; addresses and MTU
    take effect at the next restart of the interface, which the role does only when asked.
  returned: always
  type: bool
interface_repaired:
  description: The live interface had lost its private key or listen port and got them back.
  returned: always
  type: bool
firewall_changed:
  description: The firewall rules were (or would be) rewritten or reloaded.
  returned: always
  type: bool
started:
  description: The interface was down and was started with I(service).
  returned: always
  type: bool
setup_needed:
  description: The host's setup marker does not hold I(setup_fingerprint); nothing was applied.
  returned: when the setup is needed
  type: bool
probe:
  description: The host's fingerprint after this call (module_utils/wireguard_probe.py), which the action
    plugin keeps to skip the next call when neither the arguments nor the host changed.
  returned: when something was applied or checked, not in check mode
  type: str
gate:
  description: What C(teleshift.toolkit.mfa_gate) returns (enrolled, added, removed, closed, setup_needed...)
    for the gate applied with I(gate).
  returned: when I(gate) is given and the peers' setup is done
  type: dict
"""

import os
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_gate_host import (
    ARGUMENT_SPEC as GATE_SPEC, GateError, apply_gate, take_secrets)
from ansible_collections.teleshift.toolkit.plugins.module_utils.nft_sets import expand_sets, owners_of
from ansible_collections.teleshift.toolkit.plugins.module_utils.results import brief_invocation
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard import (
    WireGuardError, diff_peers, diff_text, inverse_batches, make_peers, parse_config, parse_dump,
    render_gateway_config, valid_interface, wg_set_batches)
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_probe import DEFAULTS, probe_script


def _read(path):
    try:
        with open(path, encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def main():
    module = AnsibleModule(
        argument_spec={
            "interface": {"type": "str", "default": DEFAULTS["interface"]},
            "config_path": {"type": "path"},
            "private_key_path": {"type": "path", "no_log": False},
            "addresses": {"type": "list", "elements": "str", "required": True},
            "listen_port": {"type": "int", "default": 51820},
            "mtu": {"type": "int"},
            "peers": {"type": "raw", "required": True},
            "batch_size": {"type": "int", "default": 500},
            "service": {"type": "str"},
            "firewall": {"type": "str"},
            "firewall_path": {"type": "path", "default": DEFAULTS["firewall_path"]},
            "firewall_table": {"type": "str", "default": "inet teleshift_vpn"},
            "setup_fingerprint": {"type": "str"},
            "setup_marker": {"type": "path", "default": DEFAULTS["setup_marker"]},
            "gate": {"type": "dict"},  # validated against mfa_gate's spec in _gate_params
            "role_spec": {"type": "str"},  # the action plugin's (it never reaches the host)
        },
        supports_check_mode=True,
    )
    p = module.params
    gate = _gate_params(module, p["gate"]) if p["gate"] is not None else None
    iface = p["interface"]
    if not valid_interface(iface):
        module.fail_json(msg=f"{iface!r} is not a valid interface name")
    if p["setup_fingerprint"] and (_read(p["setup_marker"]) or "").strip() != p["setup_fingerprint"]:
        module.exit_json(changed=False, setup_needed=True, public_key="",
                         msg=f"{p['setup_marker']} does not match: the host setup runs first, nothing applied")
    config_path = p["config_path"] or f"/etc/wireguard/{iface}.conf"
    key_path = p["private_key_path"] or f"/etc/wireguard/{iface}.key"
    try:
        desired = make_peers(p["peers"])
    except WireGuardError as exc:
        module.fail_json(msg=f"invalid peer set, nothing applied: {exc}")

    wg = module.get_bin_path("wg", required=True)
    public_key = ""
    if os.path.exists(key_path):
        rc, out, err = module.run_command([wg, "pubkey"], data=_read(key_path) or "", binary_data=False)
        if rc != 0 or not out.strip():
            module.fail_json(msg=f"{key_path} does not hold a WireGuard private key: {err.strip()}")
        public_key = out.strip()
    elif not module.check_mode:
        module.fail_json(msg=f"{key_path} does not exist: the gateway's key must be generated first "
                             "(the role does it with wg genkey); nothing applied")

    old_text = _read(config_path)
    # The interface sections only (parse_config reads any [Peer] left in the first part all the same).
    old_iface, _peers = parse_config((old_text or "").partition("\n[Peer]")[0])
    new_text = render_gateway_config(iface, p["addresses"], p["listen_port"], key_path, desired, p["mtu"])
    new_iface, _peers = parse_config(new_text.partition("\n[Peer]")[0])

    rc, out, _err = module.run_command([wg, "show", iface, "dump"])
    live = rc == 0
    dump = parse_dump(out) if live else None
    desired_keys = {peer.public_key for peer in desired}
    # The file's peers name the keys that are no longer desired (5,000 peers parse in 0.1 s: only
    # when some live key is not desired, for the diff, or when the interface is down).
    need_file_peers = not live or module._diff or any(key not in desired_keys for key in dump.peers)
    old_peers = parse_config(old_text or "")[1] if need_file_peers else []
    known = {peer.public_key: peer.person for peer in old_peers if peer.person}
    if live:
        actual = {key: tuple(info["allowed_ips"]) for key, info in dump.peers.items()}
    else:  # interface down: the file is what the next start loads
        actual = {peer.public_key: peer.allowed_ips for peer in old_peers}
    diff = diff_peers(desired, actual, known)
    by_key = {peer.public_key: peer.person for peer in desired}
    before_peers = [_named(key, ips, by_key, known) for key, ips in actual.items()]

    repair = []
    if live and public_key and (not dump.has_private_key or dump.public_key != public_key):
        repair += ["private-key", key_path]
    if live and dump.listen_port != p["listen_port"]:
        repair += ["listen-port", str(p["listen_port"])]

    config_changed = old_text != new_text
    interface_changed = old_text is not None and old_iface != new_iface
    fw_text, fw_changed, fw_old = p["firewall"], False, None
    if fw_text is not None:
        fw_old = _read(p["firewall_path"])
        fw_changed = fw_old != fw_text or not _table_loaded(module, p["firewall_table"])
    start = not live and bool(p["service"])
    changed = config_changed or not diff.empty or bool(repair) or fw_changed or start
    result = {
        "changed": changed, "public_key": public_key, "peers": len(desired), "live": live,
        "config_changed": config_changed, "interface_changed": interface_changed,
        "interface_repaired": bool(repair), "firewall_changed": fw_changed, "started": False,
        **diff.summary(),
        "invocation": brief_invocation(p, ("peers", "firewall", "gate")),  # the gate's carries secrets
    }
    if module._diff:
        result["diff"] = {"before": diff_text(before_peers), "after": diff_text(desired),
                          "before_header": f"{iface} peers (live)" if live else f"{config_path} peers",
                          "after_header": f"{iface} peers (desired)"}
        if fw_text is not None and fw_old != fw_text:  # access rules: who is in which service's set
            owners = owners_of(before_peers + list(desired))
            result["diff"] = [result["diff"], {
                "before": expand_sets(fw_old, owners), "after": expand_sets(fw_text, owners),
                "before_header": p["firewall_path"], "after_header": f"{p['firewall_path']} (desired)"}]
    if module.check_mode or not changed:
        _finish(module, result, gate)

    fw_tmp = None
    if fw_changed:  # check the rules before anything changes: a bad rule set stops the whole run
        fw_tmp = _stage(p["firewall_path"], fw_text)
        rc, _out, err = module.run_command(["nft", "-c", "-f", fw_tmp])
        if rc != 0:
            os.unlink(fw_tmp)
            module.fail_json(msg=f"the firewall rules do not pass nft -c, nothing applied: {err.strip()}", **result)
    if live:
        if repair:
            rc, _out, err = module.run_command([wg, "set", iface, *repair])
            if rc != 0:
                module.fail_json(msg=f"could not restore the interface's key/port: {err.strip()}", **result)
        _apply_live(module, wg, iface, diff, actual, desired, p["batch_size"], result)
    if config_changed:
        os.makedirs(os.path.dirname(config_path) or ".", mode=0o700, exist_ok=True)
        atomic_write(config_path, new_text, mode=0o600, durable=True)
    if start:
        rc, _out, err = module.run_command(["systemctl", "start", p["service"]])
        if rc != 0:
            module.fail_json(msg=f"could not start {p['service']}: {err.strip()}", **result)
        result["started"] = True
    if fw_tmp:
        previous = _read(p["firewall_path"])
        os.replace(fw_tmp, p["firewall_path"])
        rc, _out, err = module.run_command(["nft", "-f", p["firewall_path"]])
        if rc != 0:  # put the previous rules back (file and kernel)
            if previous is not None:
                atomic_write(p["firewall_path"], previous, mode=0o600, durable=True)
                module.run_command(["nft", "-f", p["firewall_path"]])
            module.fail_json(msg=f"loading the firewall rules failed, previous rules restored: {err.strip()}",
                             **result)
    _finish(module, result, gate)


def _gate_params(module, given):
    """The gate's arguments checked and completed as the mfa_gate module's are; its secrets are masked
    in any output like a no_log option's."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    brief = brief_invocation(module.params, ("peers", "firewall", "gate"))
    checked = ArgumentSpecValidator(GATE_SPEC).validate(given)
    if checked.error_messages:
        module.fail_json(msg=f"gate: {checked.error_messages[0]}; nothing applied", invocation=brief)
    gate = checked.validated_parameters
    try:  # the secrets' file is read and deleted at once, whatever happens next
        secrets = take_secrets(gate)
    except GateError as exc:
        module.fail_json(msg=f"gate: {exc.msg}", invocation=brief)
    module.no_log_values.update(str(v) for v in secrets.values() if v)
    return dict(gate, secrets=secrets, secrets_file=None)


def _finish(module, result, gate):
    """Exit with the peers' result, after applying the gate when one is given."""
    if gate is not None:
        try:
            gate_result = apply_gate(module, gate)
        except GateError as exc:
            module.fail_json(msg=f"the peers are in place; the gate: {exc.msg}", gate=exc.extra, **result)
        if "diff" in gate_result:  # a list of diffs: the peers', the firewall's, the gate's
            diffs = result.get("diff") or []
            result["diff"] = (diffs if isinstance(diffs, list) else [diffs]) + [gate_result.pop("diff")]
        if gate_result.get("warnings"):
            result["warnings"] = gate_result.pop("warnings")
        result["gate"] = gate_result
        result["changed"] = result["changed"] or gate_result["changed"]
    if not module.check_mode and not (result.get("gate") or {}).get("setup_needed"):
        # the host's fingerprint now, for the action's next run (module_utils/wireguard_probe.py)
        rc, out, _err = module.run_command(["/bin/sh", "-c", probe_script(module.params)])
        if rc == 0 and len(out.strip()) == 64:
            result["probe"] = out.strip()
    module.exit_json(**result)


def _stage(path, text):
    """The text in a 0600 temporary file beside ``path`` (same filesystem: os.replace is atomic)."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    return tmp


def _table_loaded(module, table):
    """Whether the kernel holds the table: `nft list tables` names them (0.02 s), where listing the table
    itself prints every set element (0.11 s with 5,000 people)."""
    nft = module.get_bin_path("nft")
    if not nft:
        return False
    rc, out, _err = module.run_command([nft, "list", "tables"])
    return rc == 0 and f"table {' '.join(table.split())}" in {line.strip() for line in out.splitlines()}


def _named(key, ips, by_key, known):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard import Peer

    person = by_key.get(key) or known.get(key, f"unknown peer {key[:8]}...")
    return Peer(person, key, tuple(ips))


def _apply_live(module, wg, iface, diff, actual, desired, batch, result):
    """Apply the diff; on any failure put the previous peers back and fail (the file is untouched)."""
    done = []
    for args in wg_set_batches(iface, diff, batch):
        rc, _out, err = module.run_command([wg, *args])
        if rc != 0:
            _rollback(module, wg, iface, diff, actual, batch)
            module.fail_json(msg=f"wg set failed ({err.strip()}); the previous peers were put back, "
                                 "the config file is unchanged", **result)
        done.append(args)
    rc, out, err = module.run_command([wg, "show", iface, "dump"])
    now = {key: tuple(info["allowed_ips"]) for key, info in parse_dump(out).peers.items()} if rc == 0 else None
    wanted = {peer.public_key: tuple(peer.allowed_ips) for peer in desired}
    if now != wanted:
        _rollback(module, wg, iface, diff, actual, batch)
        module.fail_json(msg="after wg set the live peers differ from the desired set; the previous peers "
                             "were put back, the config file is unchanged", **result)


def _rollback(module, wg, iface, diff, actual, batch):
    for args in inverse_batches(iface, diff, actual, batch):
        module.run_command([wg, *args])


if __name__ == "__main__":
    main()
