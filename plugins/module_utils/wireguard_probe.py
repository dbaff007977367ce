# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""A gateway's fingerprint: one digest of everything ``wireguard_peers`` enforces on it.

Why it exists. With 50,000 people on 10 gateways, a one-person change still sent every gateway its
whole peer set and gate (thousands of entries each) and ran the module there, which found nothing to do
on nine of them. The module now returns this digest after each call; the action plugin keeps it in
``<kits>/.wg-applied.<host>.json`` with a digest of the arguments. When the next run's arguments are
the same, the action asks the host for its digest with one shell command instead of the module call:
if anything changed on the host (a peer removed by hand, a file edited, the interface down, a firewall
table or the gate's units gone, another controller's converge), the digest differs and the module runs
as before. The host prints one SHA-256 digest: no key, address or secret travels back.

What goes into it: the interface's public key and listen port, each peer's key and allowed IPs, the
nftables tables loaded, the contents of the wg-quick file, the firewall file and the setup marker,
and with a gate its files, setup marker and whether a unit has failed. Not the peers' endpoints,
handshakes or counters, which change all the time."""
from __future__ import annotations

import shlex

from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_gate_host import ARGUMENT_SPEC as GATE_SPEC
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_gate_host import UNITS as GATE_UNITS

# the wireguard_peers module's defaults for the paths the fingerprint reads (its argument spec uses them)
DEFAULTS = {
    "interface": "wg0",
    "firewall_path": "/etc/teleshift/vpn-firewall.nft",
    "setup_marker": "/var/lib/teleshift/setup/wireguard_gateway",
}
GATE_FILES = ("config.json", "allow.json", "gate.nft")


def probe_script(params):
    """The POSIX shell command printing the host's digest for the module's ``params`` (its arguments;
    missing ones take the module's defaults, and the gate's those of mfa_gate)."""
    def value(name):
        return params.get(name) or DEFAULTS[name]

    iface = value("interface")
    files = [params.get("config_path") or f"/etc/wireguard/{iface}.conf", value("setup_marker")]
    if params.get("firewall") is not None:
        files.append(value("firewall_path"))
    gate = params.get("gate") or None
    if gate and gate.get("state", "present") == "present":
        config_dir = gate.get("config_dir") or GATE_SPEC["config_dir"]["default"]
        files += [f"{config_dir.rstrip('/')}/{name}" for name in GATE_FILES]
        files.append(gate.get("setup_marker") or GATE_SPEC["setup_marker"]["default"])
        units = GATE_UNITS
    else:
        units = ()
    q = shlex.quote
    lines = [
        f"wg show {q(iface)} dump | awk -F '\\t' 'NR == 1 {{print $2, $3; next}} {{print $1, $4}}' | LC_ALL=C sort",
        "nft list tables",
        f"for f in {' '.join(q(f) for f in files)}; do "
        "if [ -f \"$f\" ]; then echo \"$f $(sha256sum < \"$f\")\"; else echo \"$f absent\"; fi; done",
    ]
    if units:
        lines.append(f"systemctl is-failed --quiet {' '.join(q(u) for u in units)} && echo 'a gate unit failed'")
    return "{ " + "; ".join(lines) + "; } 2>&1 | sha256sum | cut -d ' ' -f 1"
