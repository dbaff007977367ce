"""A bigger lab: N gateways and M desktop hosts, generated from the lab definition.

``sized_inventory(gateways, desktops)`` writes ``build/lab/g<N>-d<M>/``: a hosts.yml where the first
gateway and the first desktop host of inventories/lab/hosts.yml are cloned (ts-gw2.., ts-desk2..,
addresses .100+k and .120+k of the same networks), each gateway with its own part of the VPN pool
(``wireguard_gateway_pool``: the pool split in equal parts) when there are several, a copy of the
lab's group_vars and roster, and its own state/ and kits/. The default lab is unchanged: the first
hosts keep their names, addresses and container specs, so both definitions share them; generated
hosts carry ``teleshift_lab_extra`` and their containers a label, so bringing the default lab up
removes them.

``laptops=N`` adds N stock laptop stand-ins (ts-laptop1..N, group telework_stations: the lab's base
image, no teleshift package) on the outside network (.150+k) and a provisioning network of their own
(ts-provision, 10.89.252.0/24: the bench's wired network), and a laptops file (serial, MAC) listing them.
A lab sized only by laptops is the lab's own organisation (``teleshift_base_dir``: its roster, state
and kits) with laptops added; with more gateways or desktops it has its own state and kits as above.
"""
from __future__ import annotations

import copy
import ipaddress
import math
import re
import shutil
from pathlib import Path

import yaml

from teleshift_cli.paths import LAB_INVENTORY, ROOT

MAX_GATEWAYS = 16  # generated gateway addresses .101-.116, and the pool in at most 16 parts
MAX_DESKTOPS = 20  # generated desktop addresses .121-.140
MAX_LAPTOPS = 100  # generated laptop addresses .151-.250
GATEWAY_GROUP, DESKTOP_GROUP, LAPTOP_GROUP = "vpn_gateways", "desktop_hosts", "telework_stations"
PROVISION_NET = ("ts-provision", {"subnet": "10.89.252.0/24", "gateway": "10.89.252.1", "isolate": True})
LAPTOPS_FILE = "laptops.csv"


class SizeError(ValueError):
    pass


def _lab_groups(data):
    try:
        return data["all"]["children"]["teleshift_lab"]["children"]
    except (KeyError, TypeError):
        raise SizeError("the lab definition has no all.children.teleshift_lab.children groups") from None


def _clone_name(name, k):
    base = re.sub(r"\d+$", "", name)
    return f"{base}{k}"


def _clone_networks(networks, host_part):
    out = {}
    for net, addr in networks.items():
        ip = ipaddress.ip_address(str(addr))
        out[net] = str(ipaddress.ip_address((int(ip) & ~0xFF) | host_part))
    return out


def _grow(group, count, host_base, kind):
    hosts = group.get("hosts") or {}
    if not hosts:
        raise SizeError(f"the lab definition has no host in {kind} to clone")
    first, template = next(iter(hosts.items()))
    kept = {first: template}
    for k in range(2, count + 1):
        clone = copy.deepcopy(template)
        clone["teleshift_lab_networks"] = _clone_networks(template["teleshift_lab_networks"], host_base + k)
        clone["teleshift_lab_extra"] = True
        kept[_clone_name(first, k)] = clone
    group["hosts"] = kept
    return list(kept)


def pool_parts(pool, count):
    """``pool`` split in the smallest power of two of equal parts >= count; the first ``count``."""
    net = ipaddress.ip_network(str(pool))
    bits = max(0, math.ceil(math.log2(count))) if count > 1 else 0
    return [str(n) for n in net.subnets(prefixlen_diff=bits)][:count]


def laptop_hosts(count):
    """{name: host vars} of ``count`` laptop stand-ins."""
    return {f"ts-laptop{k}": {"teleshift_lab_networks": {"ts-outside": f"10.89.250.{150 + k}",
                                                       PROVISION_NET[0]: f"10.89.252.{10 + k}"},
                              "teleshift_lab_devices": ["/dev/net/tun"], "teleshift_lab_capabilities": ["NET_ADMIN"],
                              "teleshift_lab_extra": True}
            for k in range(1, count + 1)}


def laptops_csv(count):
    """The laptops file of the stand-ins: made-up serial numbers and locally administered MACs."""
    rows = ["host,serial,mac,os"] + [f"ts-laptop{k},LAB-{k:04d},02:00:00:00:{k // 256:02x}:{k % 256:02x},debian"
                                     for k in range(1, count + 1)]
    return "\n".join(rows) + "\n"


def sized_data(data, gateways, desktops, laptops=0):
    """The lab definition's data with ``gateways`` gateways, ``desktops`` desktop hosts and ``laptops``."""
    if not 1 <= gateways <= MAX_GATEWAYS:
        raise SizeError(f"--gateways must be from 1 to {MAX_GATEWAYS}, got {gateways}")
    if not 1 <= desktops <= MAX_DESKTOPS:
        raise SizeError(f"--desktops must be from 1 to {MAX_DESKTOPS}, got {desktops}")
    if not 0 <= laptops <= MAX_LAPTOPS:
        raise SizeError(f"--laptops must be from 0 to {MAX_LAPTOPS}, got {laptops}")
    data = copy.deepcopy(data)
    groups = _lab_groups(data)
    if laptops:
        lab_vars = data["all"]["children"]["teleshift_lab"].setdefault("vars", {})
        lab_vars.setdefault("teleshift_lab_network_defs", {})[PROVISION_NET[0]] = dict(PROVISION_NET[1])
        groups[LAPTOP_GROUP] = {"hosts": laptop_hosts(laptops)}
    names = _grow(groups[GATEWAY_GROUP], gateways, 100, GATEWAY_GROUP)
    _grow(groups[DESKTOP_GROUP], desktops, 120, DESKTOP_GROUP)
    if gateways > 1:
        pool = data["all"]["children"]["teleshift_lab"].get("vars", {}).get("teleshift_lab_vpn_pool")
        if not pool:
            raise SizeError("several gateways need teleshift_lab_vpn_pool to split")
        for name, part in zip(names, pool_parts(pool, gateways)):
            groups[GATEWAY_GROUP]["hosts"][name]["wireguard_gateway_pool"] = part
    return data


def sized_dir(gateways, desktops, laptops=0):
    return ROOT / "build" / "lab" / (f"g{gateways}-d{desktops}" + (f"-l{laptops}" if laptops else ""))


HEADER = ("# Generated by `scripts/teleshift lab up --gateways {g} --desktops {d} --laptops {l}` from {src}:\n"
          "# do not edit (regenerated on each lab up); the lab definition is inventories/lab/hosts.yml.\n")
LOCAL_VARS = ("# This sized lab's own kits and verify results (its state is in state/ here).\n"
              "teleshift_kits_dir: kits\nteleshift_verify_file: verify.json\n")


LAPTOP_VARS = ("# The lab's own organisation (roster, state, kits) with laptop stand-ins added.\n"
               "teleshift_base_dir: {base}\nteleshift_laptops_file: {laptops}\n")
# The stand-ins have no screen: Xvfb lets the lab test open the launcher (a real laptop has a display).
STATION_VARS = "---\ntelework_station_extra_packages: [xvfb]\n"


def sized_inventory(gateways, desktops, base=LAB_INVENTORY, dest=None, laptops=0):
    """Write the sized lab inventory (hosts.yml, group_vars, roster; state/ kept); returns its directory."""
    base = Path(base)
    dest = Path(dest) if dest else sized_dir(gateways, desktops, laptops)
    data = yaml.safe_load((base / "hosts.yml").read_text(encoding="utf-8"))
    sized = sized_data(data, gateways, desktops, laptops)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(dest / "group_vars", ignore_errors=True)
    shutil.copytree(base / "group_vars", dest / "group_vars")
    local = LOCAL_VARS
    if laptops:
        (dest / LAPTOPS_FILE).write_text(laptops_csv(laptops), encoding="utf-8")
        (dest / "group_vars" / LAPTOP_GROUP).mkdir(exist_ok=True)
        (dest / "group_vars" / LAPTOP_GROUP / "lab.yml").write_text(STATION_VARS, encoding="utf-8")
        if gateways == desktops == 1:
            local = LAPTOP_VARS.format(base=base.resolve(), laptops=(dest / LAPTOPS_FILE).resolve())
        else:
            local += f"teleshift_laptops_file: {LAPTOPS_FILE}\n"
    (dest / "group_vars" / "all" / "zz_sized_lab.yml").write_text("---\n" + local, encoding="utf-8")
    for item in base.iterdir():
        if item.is_file() and item.suffix == ".csv":  # the roster
            shutil.copy2(item, dest / item.name)
    (dest / "state").mkdir(exist_ok=True)
    text = HEADER.format(g=gateways, d=desktops, l=laptops, src=base / "hosts.yml") + "---\n" + yaml.safe_dump(
        sized, sort_keys=False, default_flow_style=False, width=160)
    (dest / "hosts.yml").write_text(text, encoding="utf-8")
    return dest
