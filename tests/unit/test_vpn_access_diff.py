"""The gateway's diff shows access-rule changes: a person moving to another service leaves one
service's nftables set and joins another's, and --diff says so by name (the real firewall template,
rendered as the role renders it, handed to the wireguard_peers module in check and diff mode)."""
import difflib
import re
from pathlib import Path

import jinja2
from test_wireguard import bring_up, emulated_wg, key, run_module  # noqa: F401 - emulated_wg is a fixture

from ansible_collections.teleshift.toolkit.plugins.module_utils.nft_sets import expand_sets

TEMPLATE = Path(__file__).resolve().parents[2] / "roles" / "wireguard_gateway" / "templates" / "vpn-firewall.nft.j2"
PEERS = [{"id": "amartin", "public_key": key(1), "allowed_ips": ["10.100.0.2/32"]},
         {"id": "blefevre", "public_key": key(2), "allowed_ips": ["10.100.0.3/32"]},
         {"id": "cdurand", "public_key": key(3), "allowed_ips": ["10.100.0.4/32"]}]


def firewall(access):
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)  # noqa: S701 - nftables, not HTML
    env.tests["search"] = lambda value, pattern: re.search(pattern, str(value)) is not None
    env.filters["regex_replace"] = lambda value, pattern, repl: re.sub(pattern, repl, str(value))
    return env.from_string(TEMPLATE.read_text()).render(
        wireguard_gateway_interface="wg0", wireguard_gateway_port=51820, wireguard_gateway_ssh_port=22,
        wireguard_gateway_admin_networks=["10.89.250.0/24"], wireguard_gateway_internal_networks=["10.89.251.0/24"],
        wireguard_gateway_full_tunnel=False, wireguard_gateway_access=access)


def rule(service, addresses, networks):
    return {"service": service, "addresses": ", ".join(addresses), "addresses6": "", "networks": networks,
            "networks6": []}


BEFORE = [rule("ase", ["10.100.0.3"], ["10.89.251.30/32"]),
          rule("rsa", ["10.100.0.2", "10.100.0.4"], ["10.89.251.20/32"])]
AFTER = [rule("ase", ["10.100.0.2", "10.100.0.3"], ["10.89.251.30/32"]),  # amartin moved from rsa to ase
         rule("rsa", ["10.100.0.4"], ["10.89.251.20/32"])]


def unified(diff):
    return [line.rstrip("\n") for line in difflib.unified_diff(diff["before"].splitlines(True),
                                                                 diff["after"].splitlines(True))]


def test_module_diff_names_the_person_whose_access_changes(emulated_wg):  # noqa: F811
    tmp = emulated_wg
    bring_up(tmp, {key(1): ["10.100.0.2/32"], key(2): ["10.100.0.3/32"], key(3): ["10.100.0.4/32"]})
    (tmp / "wg0.conf").write_text("[Interface]\nListenPort = 51820\n")
    fw_path = tmp / "vpn-firewall.nft"
    fw_path.write_text(firewall(BEFORE))
    result, raw = run_module(tmp, PEERS, check=True, firewall=firewall(AFTER), firewall_path=str(fw_path))
    assert result["firewall_changed"] and result["updated"] == []  # the peers themselves did not change
    peers_diff, fw_diff = result["diff"]
    assert "amartin" in peers_diff["after"]
    changed = [line for line in unified(fw_diff) if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    assert "-\t\t\t10.100.0.2  # amartin, service rsa" in changed
    assert "+\t\t\t10.100.0.2  # amartin, service ase" in changed
    assert not [line for line in changed if "blefevre" in line or "cdurand" in line]  # nobody else moved
    assert fw_path.read_text() == firewall(BEFORE)  # check mode


def test_unchanged_firewall_adds_no_second_diff(emulated_wg):  # noqa: F811
    tmp = emulated_wg
    bring_up(tmp, {key(1): ["10.100.0.2/32"]})
    fw_path = tmp / "vpn-firewall.nft"
    fw_path.write_text(firewall(BEFORE))
    result, _ = run_module(tmp, PEERS[:1], check=True, firewall=firewall(BEFORE), firewall_path=str(fw_path))
    assert isinstance(result["diff"], dict)


def test_expand_sets_labels_elements_and_keeps_other_lines():
    text = firewall(AFTER)
    owners = {"10.100.0.2": "amartin", "10.100.0.3": "blefevre"}
    expanded = expand_sets(text, owners)
    assert "\t\t\t10.100.0.3  # blefevre, service ase" in expanded.splitlines()
    assert "\t\t\t10.89.251.30/32  # service ase" in expanded.splitlines()
    assert "\t\t\t10.89.250.0/24  # set admins4" in expanded.splitlines()
    collapsed = [line for line in text.splitlines() if "elements" not in line]
    assert [line for line in expanded.splitlines() if "elements" not in line and "  # " not in line
            and line.strip() != "}"] == [line for line in collapsed if line.strip() != "}"]
    assert expand_sets(None) == "" and expand_sets("") == ""

