# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The VPN plan, computed once on the controller: who is on which gateway, with which address, key
and access rules; the client profiles of the kits; the public state file.

Inputs are the roster and inventory variables; nothing here touches a host.

- ``load_vpn_settings(all_vars, gateways_vars)``: the inventory's VPN settings, checked; every
  problem names the variable (``teleshift_vpn_pool``, ``ts-gw1: wireguard_gateway_pool``...).
- ``plan_vpn(people, settings, services, previous)``: gateways within their peer limits (sticky,
  a service's staff together), stable addresses from each gateway's pool (kept forever while the
  person stays; a person who leaves and comes back gets the old address back while the pool has
  room), access per service. Over capacity and pool exhaustion are Problems naming how many people
  do not fit. Pure: < 1 s for 5,000 people.
- Keys: ``new_keypair`` / ``public_key_of`` (X25519 via ``cryptography``, base64 like ``wg genkey``).
- ``render_client_config``: a person's wg-quick profile (split tunnel by default).
- ``state_of(plan, gateway_keys)``: the public state file (addresses, gateways, public keys).
"""
from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.assign import (
    PoolExhausted, allocate_addresses, assign_hosts)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem, priority_order
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import not_a_boolean

DEFAULT_PORT = 51820
DEFAULT_MAX_PEERS = 1000  # the role's wireguard_gateway_max_peers default documents the same number
DEFAULT_KEEPALIVE = 25
DEFAULT_PROFILE = "teleshift"
KIT = "vpn"  # the kit subdirectory this capability owns
PRIVATE_KEY_FILE = "private.key"
PRIVATE_KEY_IN_KIT = f"{KIT}/{PRIVATE_KEY_FILE}"  # the same, from a person's kit folder


@dataclass
class GatewaySettings:
    name: str
    pool: object  # ip_network
    pool6: object = None
    address: str = ""  # the gateway's own tunnel address (first host of its pool unless set)
    address6: str = ""
    endpoint: str = ""  # host:port the clients connect to
    port: int = DEFAULT_PORT
    max_peers: int = DEFAULT_MAX_PEERS
    internal_address: str = ""  # where internal hosts route the pool to
    out_of_service: bool = False  # lost or withdrawn: nobody is placed on it, its people move

    def capacity(self):
        if self.out_of_service:
            return 0
        size = self.pool.num_addresses - (2 if self.pool.version == 4 else 1) - 1
        return max(0, min(self.max_peers, size))


@dataclass
class VpnSettings:
    pool: object = None
    pool6: object = None
    internal_networks: list = field(default_factory=list)
    default_networks: list = field(default_factory=list)  # for services without `networks`
    common_networks: list = field(default_factory=list)  # every VPN user (DNS servers...)
    dns: list = field(default_factory=list)
    full_tunnel: bool = False
    keepalive: int = DEFAULT_KEEPALIVE
    profile_name: str = DEFAULT_PROFILE
    licences: int = None
    gate: bool = False  # the second factor's gate is on: profiles also route the gateway's own address
    gateways: dict = field(default_factory=dict)  # name -> GatewaySettings
    problems: list = field(default_factory=list)


def _net(value, where, problems, source, version=None):
    try:
        net = ipaddress.ip_network(str(value), strict=True)
    except ValueError as exc:
        problems.append(Problem(source, 0, where, f"not a network: {exc}"))
        return None
    if version and net.version != version:
        problems.append(Problem(source, 0, where, f"expected an IPv{version} network"))
        return None
    return net


def _nets(value, where, problems, source):
    if value in (None, ""):
        return []
    if not isinstance(value, list):
        problems.append(Problem(source, 0, where, "expected a list of networks"))
        return []
    nets = [_net(v, f"{where}[{i}]", problems, source) for i, v in enumerate(value)]
    return [n for n in nets if n is not None]


def _int(value, where, problems, source, low, high, default):
    if value in (None, ""):
        return default
    try:
        number = int(value)
        if isinstance(value, bool) or str(number) != str(value).strip():
            raise ValueError
    except (TypeError, ValueError):
        problems.append(Problem(source, 0, where, f"expected a whole number, got {value!r}"))
        return default
    if not low <= number <= high:
        problems.append(Problem(source, 0, where, f"must be between {low} and {high}, got {number}"))
        return default
    return number


def load_vpn_settings(all_vars, gateways_vars, source="inventory"):
    """all_vars: the inventory's global vars; gateways_vars: gateway name -> its host vars."""
    problems = []
    s = VpnSettings(problems=problems)
    s.pool = _net(all_vars.get("teleshift_vpn_pool"), "teleshift_vpn_pool", problems, source, 4) \
        if all_vars.get("teleshift_vpn_pool") else None
    if s.pool is None and not any(p.field == "teleshift_vpn_pool" for p in problems):
        problems.append(Problem(source, 0, "teleshift_vpn_pool", "must be set to the VPN clients' IPv4 network"))
    if all_vars.get("teleshift_vpn_pool6"):
        s.pool6 = _net(all_vars["teleshift_vpn_pool6"], "teleshift_vpn_pool6", problems, source, 6)
    s.internal_networks = _nets(all_vars.get("teleshift_vpn_internal_networks"),
                                "teleshift_vpn_internal_networks", problems, source)
    if not s.internal_networks and "teleshift_vpn_internal_networks" not in {p.field for p in problems}:
        problems.append(Problem(source, 0, "teleshift_vpn_internal_networks",
                                "must list the organisation's internal networks (what the VPN reaches)"))
    s.default_networks = _nets(all_vars.get("teleshift_vpn_default_networks"),
                               "teleshift_vpn_default_networks", problems, source)
    s.common_networks = _nets(all_vars.get("teleshift_vpn_common_networks"),
                              "teleshift_vpn_common_networks", problems, source)
    dns = all_vars.get("teleshift_vpn_dns") or []
    if not isinstance(dns, list):
        problems.append(Problem(source, 0, "teleshift_vpn_dns", "expected a list of addresses"))
        dns = []
    for i, addr in enumerate(dns):
        try:
            s.dns.append(str(ipaddress.ip_address(str(addr))))
        except ValueError:
            problems.append(Problem(source, 0, f"teleshift_vpn_dns[{i}]", f"{addr!r} is not an IP address"))
    full = all_vars.get("teleshift_vpn_full_tunnel", False)
    if not isinstance(full, bool):
        problems.append(Problem(source, 0, "teleshift_vpn_full_tunnel",
                                not_a_boolean("teleshift_vpn_full_tunnel", full)))
        full = False
    s.full_tunnel = full
    s.gate = all_vars.get("teleshift_mfa_enabled") is True  # the gate page is on the gateway's tunnel address
    s.keepalive = _int(all_vars.get("teleshift_vpn_keepalive"), "teleshift_vpn_keepalive", problems, source,
                       0, 65535, DEFAULT_KEEPALIVE)
    name = str(all_vars.get("teleshift_vpn_profile_name") or DEFAULT_PROFILE)
    if not (1 <= len(name) <= 15 and all(c.isalnum() or c in "_=+.-" for c in name) and name.isascii()):
        problems.append(Problem(source, 0, "teleshift_vpn_profile_name",
                                "must be 1-15 characters among letters, digits and _=+.- (it names the "
                                "client's interface)"))
        name = DEFAULT_PROFILE
    s.profile_name = name
    if all_vars.get("teleshift_vpn_licences") not in (None, ""):
        s.licences = _int(all_vars.get("teleshift_vpn_licences"), "teleshift_vpn_licences", problems, source,
                          0, 10_000_000, None)
    if not gateways_vars:
        problems.append(Problem(source, 0, "vpn_gateways", "the inventory group vpn_gateways has no host"))
    for gw in sorted(gateways_vars):
        _load_gateway(s, gw, gateways_vars[gw] or {}, problems, source, single=len(gateways_vars) == 1)
    _check_overlaps(s, problems, source)
    return s


def _load_gateway(s, name, hv, problems, source, single):
    where = f"{name}: "
    g = GatewaySettings(name=name, pool=None)
    if hv.get("wireguard_gateway_pool"):
        g.pool = _net(hv["wireguard_gateway_pool"], where + "wireguard_gateway_pool", problems, source, 4)
        if g.pool is not None and s.pool is not None and not g.pool.subnet_of(s.pool):
            problems.append(Problem(source, 0, where + "wireguard_gateway_pool",
                                    f"{g.pool} is not inside teleshift_vpn_pool {s.pool}"))
    elif single:
        g.pool = s.pool
    else:
        problems.append(Problem(source, 0, where + "wireguard_gateway_pool",
                                "with several gateways each needs its own part of teleshift_vpn_pool "
                                "(so internal hosts know which gateway a client is behind)"))
    if hv.get("wireguard_gateway_pool6"):
        g.pool6 = _net(hv["wireguard_gateway_pool6"], where + "wireguard_gateway_pool6", problems, source, 6)
    elif single:
        g.pool6 = s.pool6
    elif s.pool6 is not None:
        problems.append(Problem(source, 0, where + "wireguard_gateway_pool6",
                                "with several gateways and teleshift_vpn_pool6 each needs its own IPv6 part"))
    g.port = _int(hv.get("wireguard_gateway_port"), where + "wireguard_gateway_port", problems, source,
                  1, 65535, DEFAULT_PORT)
    for key in ("wireguard_gateway_max_peers", "teleshift_vpn_max_peers"):
        if hv.get(key) not in (None, ""):
            g.max_peers = _int(hv[key], where + key, problems, source, 0, 1_000_000, DEFAULT_MAX_PEERS)
            break
    endpoint = str(hv.get("wireguard_gateway_endpoint") or "")
    if not endpoint:
        problems.append(Problem(source, 0, where + "wireguard_gateway_endpoint",
                                "must be set: the public name or address clients connect to"))
    elif re.match(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+):[0-9]{1,5}$", endpoint):
        g.endpoint = endpoint  # host:port given
    else:
        g.endpoint = f"[{endpoint}]:{g.port}" if ":" in endpoint else f"{endpoint}:{g.port}"
    oos = hv.get("wireguard_gateway_out_of_service", False)
    if oos not in (True, False, None, ""):
        problems.append(Problem(source, 0, where + "wireguard_gateway_out_of_service",
                                not_a_boolean("wireguard_gateway_out_of_service", oos)))
    g.out_of_service = oos is True
    g.internal_address = str(hv.get("wireguard_gateway_internal_address") or "")
    if g.internal_address:
        try:
            ipaddress.ip_address(g.internal_address)
        except ValueError:
            problems.append(Problem(source, 0, where + "wireguard_gateway_internal_address",
                                    f"{g.internal_address!r} is not an IP address"))
    for attr, pool_attr, key in (("address", "pool", "wireguard_gateway_address"),
                                 ("address6", "pool6", "wireguard_gateway_address6")):
        pool = getattr(g, pool_attr)
        if pool is None:
            continue
        value = hv.get(key)
        if value:
            try:
                addr = ipaddress.ip_address(str(value))
            except ValueError:
                problems.append(Problem(source, 0, where + key, f"{value!r} is not an IP address"))
                continue
            if addr not in pool:
                problems.append(Problem(source, 0, where + key, f"{addr} is not inside {pool}"))
            setattr(g, attr, str(addr))
        else:
            setattr(g, attr, str(next(iter(pool.hosts())) if pool.version == 4 else pool.network_address + 1))
    s.gateways[name] = g


def _check_overlaps(s, problems, source):
    gws = [g for g in s.gateways.values() if g.pool is not None]
    for i, a in enumerate(gws):
        for b in gws[i + 1:]:
            if a.pool.overlaps(b.pool):
                problems.append(Problem(source, 0, f"{b.name}: wireguard_gateway_pool",
                                        f"{b.pool} overlaps {a.name}'s {a.pool}"))
    if s.pool is not None:
        for net in s.internal_networks:
            if net.version == s.pool.version and net.overlaps(s.pool):
                problems.append(Problem(source, 0, "teleshift_vpn_internal_networks",
                                        f"{net} overlaps the VPN pool {s.pool}"))


# ------------------------------------------------------------------------------------ the plan

@dataclass
class PersonPlan:
    id: str
    service: str
    gateway: str
    address: str
    address6: str = ""

    def allowed_ips(self):
        ips = [f"{self.address}/32"]
        if self.address6:
            ips.append(f"{self.address6}/128")
        return ips


@dataclass
class Plan:
    people: dict = field(default_factory=dict)  # id -> PersonPlan
    retired: dict = field(default_factory=dict)  # id -> {address, address6, gateway}: kept for a comeback
    problems: list = field(default_factory=list)

    def on(self, gateway):
        return sorted((p for p in self.people.values() if p.gateway == gateway), key=lambda p: p.id)


def service_networks(service, services, settings):
    """Networks a service's VPN users reach: its policy's ``networks``, else the default, plus the
    networks every VPN user reaches (DNS servers...)."""
    policy = services.get(service) or {}
    nets = policy.get("networks")
    chosen = [ipaddress.ip_network(n) for n in nets] if nets is not None else list(settings.default_networks)
    result = []
    for net in chosen + list(settings.common_networks):
        if net not in result:
            result.append(net)
    return result


def assign_gateways(people, settings, previous=None):
    """The sticky placement of ``people`` (active, with the vpn need) on the gateways, within each
    gateway's capacity (its peer limit and its pool): what the plan and the capacity check share."""
    previous = previous or {}
    entries = {**(previous.get("retired") or {}), **(previous.get("people") or {})}
    users = priority_order(people)
    caps = {n: g.capacity() for n, g in settings.gateways.items() if g.pool is not None}
    prev_gw = {pid: e.get("gateway") for pid, e in entries.items() if isinstance(e, dict)}
    service_of = {p.id: p.service for p in users}
    return assign_hosts([p.id for p in users], caps, prev_gw, group_of=service_of.get)


def carried(previous, gateways):
    """gateway -> sorted ids the state file places on each of ``gateways`` (who a lost gateway carried)."""
    wanted = set(gateways)
    found = {g: [] for g in sorted(wanted)}
    for pid, entry in (previous.get("people") or {}).items():
        if isinstance(entry, dict) and entry.get("gateway") in wanted:
            found[entry["gateway"]].append(str(pid))
    return {g: sorted(ids) for g, ids in found.items()}


def plan_vpn(people, settings, services=None, previous=None, source="inventory"):
    """people: active Person objects with the vpn need (any order); previous: the state file."""
    plan = Plan(problems=[])
    previous = previous or {}
    prev_people = previous.get("people") or {}
    prev_retired = previous.get("retired") or {}
    users = people
    if settings.licences is not None and len(users) > settings.licences:
        plan.problems.append(Problem(source, 0, "teleshift_vpn_licences",
                                     f"{len(users)} people need the VPN but only {settings.licences} "
                                     f"licences are owned: {len(users) - settings.licences} do not fit"))
    gateways = {n: g for n, g in settings.gateways.items() if g.pool is not None}
    if not gateways:
        return plan
    caps = {n: g.capacity() for n, g in gateways.items()}
    service_of = {p.id: p.service for p in users}
    assignment = assign_gateways(users, settings, previous)
    if assignment.unplaced:
        total = sum(caps.values())
        detail = ", ".join(f"{n} {caps[n]}" + (" (out of service)" if gateways[n].out_of_service else
                                               f" (its pool {gateways[n].pool} has room for {caps[n]})"
                                               if caps[n] < gateways[n].max_peers else "") for n in sorted(caps))
        plan.problems.append(Problem(
            source, 0, "wireguard_gateway_max_peers",
            f"{len(assignment.unplaced)} of {len(users)} people with the vpn need do not fit on the gateways "
            f"(capacity {total}: {detail}); raise wireguard_gateway_max_peers, add a gateway or a larger pool"))
        return plan
    by_gw = assignment.by_host()
    # each family's previous addresses, and those of people who left (they stay reserved: a comeback
    # gets them back while there is room): computed once, not once per gateway
    previous_of, held_of = {}, {}
    for family in ("address", "address6"):
        previous_of[family] = {pid: e.get(family) for pid, e in {**prev_retired, **prev_people}.items()
                               if isinstance(e, dict) and e.get(family)}
        held_of[family] = [addr for pid, addr in previous_of[family].items() if pid not in assignment.hosts]
    for name, g in sorted(gateways.items()):
        ids = sorted(by_gw.get(name, []))
        for family, pool, gw_addr in (("address", g.pool, g.address), ("address6", g.pool6, g.address6)):
            if pool is None:
                continue
            prev, held = previous_of[family], held_of[family]
            try:
                try:
                    addrs = allocate_addresses(ids, pool, prev, reserved=[gw_addr, *_inside(held, pool)])
                except PoolExhausted:
                    addrs = allocate_addresses(ids, pool, prev, reserved=[gw_addr])
            except PoolExhausted as exc:
                var = "wireguard_gateway_pool" if family == "address" else "wireguard_gateway_pool6"
                plan.problems.append(Problem(source, 0, f"{name}: {var}",
                                             f"address pool {pool} is exhausted: {exc.missing} of {len(ids)} "
                                             f"people on {name} get no address"))
                continue
            for pid in ids:
                person = plan.people.get(pid)
                if person is None:
                    person = plan.people[pid] = PersonPlan(pid, service_of[pid], name, "")
                setattr(person, family, addrs[pid])
    used = {a for p in plan.people.values() for a in (p.address, p.address6) if a}
    for pid, entry in {**prev_retired, **prev_people}.items():
        if pid in plan.people or not isinstance(entry, dict):
            continue
        kept = {k: entry[k] for k in ("address", "address6", "gateway") if entry.get(k)}
        if kept.get("address") and not {kept.get("address"), kept.get("address6")} & used:
            plan.retired[pid] = kept
    return plan


def _inside(addresses, pool):
    out = []
    for a in addresses:
        try:
            if ipaddress.ip_address(a) in pool:
                out.append(a)
        except ValueError:
            continue
    return out


# ------------------------------------------------------------------------------------------ keys

def new_keypair():
    """(private, public) base64 X25519 keys, like ``wg genkey | tee priv | wg pubkey``."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
    from cryptography.hazmat.primitives import serialization

    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                            serialization.NoEncryption())
    return base64.b64encode(raw).decode(), _public_b64(key)


def public_key_of(private_b64):
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    raw = base64.b64decode(private_b64.strip(), validate=True)
    return _public_b64(X25519PrivateKey.from_private_bytes(raw))


def _public_b64(key):
    from cryptography.hazmat.primitives import serialization

    return base64.b64encode(key.public_key().public_bytes(serialization.Encoding.Raw,
                                                          serialization.PublicFormat.Raw)).decode()


# ------------------------------------------------------------------------------- client profiles

def client_allowed_ips(settings, gateway):
    """What the client sends into the tunnel: the internal networks (split tunnel, the default) or
    everything (full tunnel). DNS servers outside the internal networks are added."""
    if settings.full_tunnel:
        return ["0.0.0.0/0"] + (["::/0"] if gateway.pool6 is not None else [])
    nets = list(settings.internal_networks)
    if settings.gate:  # the second factor's gate page, on the gateway's own tunnel addresses
        nets += [ipaddress.ip_network(a) for a in (gateway.address, gateway.address6) if a]
    for addr in settings.dns:
        ip = ipaddress.ip_address(addr)
        if not any(ip in n for n in nets if n.version == ip.version):
            nets.append(ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}"))
    return [str(n) for n in nets]


def render_client_config(person, private_key, gateway, gateway_public_key, settings, allowed_ips=None):
    """A person's wg-quick profile (also what the QR code carries). ``allowed_ips``: the gateway's
    client_allowed_ips, when the caller renders many profiles (the same for everyone of a gateway)."""
    addresses = [f"{person.address}/32"] + ([f"{person.address6}/128"] if person.address6 else [])
    lines = [
        f"# teleshift VPN profile of {person.id}, through {gateway.name}. Keep this file private.",
        "[Interface]",
        f"PrivateKey = {private_key}",
        "Address = " + ", ".join(addresses),
    ]
    if settings.dns:
        lines.append("DNS = " + ", ".join(settings.dns))
    lines += [
        "",
        "[Peer]",
        f"PublicKey = {gateway_public_key}",
        "AllowedIPs = " + ", ".join(allowed_ips if allowed_ips is not None else client_allowed_ips(settings, gateway)),
        f"Endpoint = {gateway.endpoint}",
    ]
    if settings.keepalive:
        lines.append(f"PersistentKeepalive = {settings.keepalive}")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------- gateway slices

def gateway_slice(plan, gateway, services, settings, public_keys):
    """Everything one gateway needs (public data): peers for wireguard_peers (compact text, see
    wireguard.peer_lines), access per service for the firewall (client addresses as one
    comma-separated string each: nftables set elements), its addresses. public_keys: person id ->
    public key. Big collections are strings: Ansible templates a string in microseconds."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard import peer_lines

    mine = plan.on(gateway.name)  # one pass over everyone, not one per use
    peers = peer_lines({"id": p.id, "public_key": public_keys[p.id], "allowed_ips": p.allowed_ips()} for p in mine)
    access = {}
    for p in mine:
        entry = access.setdefault(p.service, {"service": p.service, "addresses": [], "addresses6": []})
        entry["addresses"].append(p.address)
        if p.address6:
            entry["addresses6"].append(p.address6)
    for svc, entry in access.items():
        entry["addresses"] = ", ".join(entry["addresses"])
        entry["addresses6"] = ", ".join(entry["addresses6"])
        nets = service_networks(svc, services, settings)
        entry["networks"] = [str(n) for n in nets if n.version == 4]
        entry["networks6"] = [str(n) for n in nets if n.version == 6]
    addresses = [f"{gateway.address}/{gateway.pool.prefixlen}"]
    if gateway.pool6 is not None:
        addresses.append(f"{gateway.address6}/{gateway.pool6.prefixlen}")
    return {
        "peers": peers,
        "access": [access[s] for s in sorted(access)],
        "addresses": addresses,
        "pool": str(gateway.pool),
        "pool6": str(gateway.pool6) if gateway.pool6 is not None else "",
        "port": gateway.port,
        "internal_networks": [str(n) for n in settings.internal_networks],
        "full_tunnel": settings.full_tunnel,
    }


def routes(settings):
    """Routes internal hosts need back to VPN clients: each gateway's pool via its internal address."""
    result = []
    for g in sorted(settings.gateways.values(), key=lambda g: g.name):
        if not g.internal_address:
            continue
        for pool in (g.pool, g.pool6):
            if pool is not None and ipaddress.ip_address(g.internal_address).version == pool.version:
                result.append({"network": str(pool), "via": g.internal_address, "gateway": g.name})
    return result


def state_of(plan, public_keys, gateway_keys=None, settings=None):
    """The public state file: people (gateway, addresses, public key), gateways, retired people."""
    people = {}
    for pid, p in sorted(plan.people.items()):
        entry = {"gateway": p.gateway, "address": p.address, "service": p.service}
        if p.address6:
            entry["address6"] = p.address6
        if public_keys.get(pid):
            entry["public_key"] = public_keys[pid]
        people[pid] = entry
    data = {"people": people}
    if plan.retired:
        data["retired"] = {pid: dict(plan.retired[pid]) for pid in sorted(plan.retired)}
    if settings is not None:
        gws = {}
        for name, g in sorted(settings.gateways.items()):
            if g.pool is None:
                continue
            entry = {"address": g.address, "pool": str(g.pool), "endpoint": g.endpoint}
            if g.pool6 is not None:
                entry.update(address6=g.address6, pool6=str(g.pool6))
            if (gateway_keys or {}).get(name):
                entry["public_key"] = gateway_keys[name]
            if g.out_of_service:
                entry["out_of_service"] = True
            gws[name] = entry
        data["gateways"] = gws
    return data


# ------------------------------------------------------------------------------------------ kits

KEYS_INDEX = ".vpn-keys.json"


def client_keys(ids, kits_root, rotate=(), write=True, privates=None, known=None, holders=None):
    """Person id -> public key, reading each private key back from the kit (so re-runs never rotate)
    and making a new pair when there is none or the person is in ``rotate``.

    known: id -> public key recorded in the state file. It is taken as is (no read of the private key,
    no curve operation: 5,000 people in milliseconds) only when the kits' own record
    (``<kits>/.vpn-keys.json``, written here beside the keys it describes) gives the same key and the
    private key file is there. A state file committed from another controller's kits, or kits restored
    from elsewhere, therefore never puts a key on the gateway that the person's profile does not hold.
    Rotation or a missing key file makes a new pair.
    Returns (public_keys, new_ids). With write=False (check mode) new keys are made in memory only and
    thrown away: the plan shows those people as added/changed, nothing is written.
    privates: an optional dict filled with id -> private key of the keys read or made here (kept in
    memory for the profiles only).
    holders: the ids whose private key file is there, when already looked up (kit_presence.py);
    None: each person's file is checked here.
    """
    import json
    import os

    from ansible_collections.teleshift.toolkit.plugins.module_utils import background
    from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, read_kit_file
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    rotate = set(rotate or ())
    known = known or {}
    index_path = os.path.join(kits_root, KEYS_INDEX)
    index = read_index(index_path)
    public, new, pending = {}, [], []
    for pid in ids:
        if (pid not in rotate and known.get(pid) and index.get(pid) == known[pid]
                and (pid in holders if holders is not None
                     else os.path.exists(os.path.join(kits_root, pid, KIT, PRIVATE_KEY_FILE)))):
            public[pid] = known[pid]
            continue
        private = None if pid in rotate else (read_kit_file(kits_root, pid, KIT, PRIVATE_KEY_FILE) or "").strip()
        if private:
            try:
                public[pid] = public_key_of(private)
                if privates is not None:
                    privates[pid] = private
                continue
            except ValueError:
                pass  # damaged key file: replace it
        private, public[pid] = new_keypair()
        new.append(pid)
        if privates is not None and write:
            privates[pid] = private
        if write:
            pending.append((pid, private))
    if len(pending) > 200:  # file creation waits on the file system: several threads overlap it
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda item: write_kit_file(kits_root, item[0], KIT, PRIVATE_KEY_FILE, item[1] + "\n"),
                          pending))
    else:
        for pid, private in pending:
            write_kit_file(kits_root, pid, KIT, PRIVATE_KEY_FILE, private + "\n")
    if write:
        recorded = {**index, **public}
        if recorded != index:  # read by this function only: written beside the rest of a plan task
            background.submit(f"writing {index_path}", lambda: atomic_write(
                index_path, json.dumps(recorded, sort_keys=True), mode=0o600, dir_mode=0o700))
    return public, new


def _qr_job(args):
    root, pid, name, text = args
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    from ansible_collections.teleshift.toolkit.plugins.module_utils.qr import images

    png, svg = images(text)
    write_kit_file(root, pid, KIT, f"{name}.png", png)
    write_kit_file(root, pid, KIT, f"{name}.svg", svg)
    return pid


def _profile_job(args):
    """Write one person's profile; draw its QR codes when it changed or they are missing (a worker's
    job: at 50,000 people the files and the codes are most of a first converge). Returns whether the
    profile changed."""
    import os

    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    root, pid, name, text, qr = args
    changed = write_kit_file(root, pid, KIT, f"{name}.conf", text)
    folder = os.path.join(root, pid, KIT)
    if qr and (changed or not all(os.path.exists(os.path.join(folder, f"{name}.{ext}")) for ext in ("png", "svg"))):
        _qr_job((root, pid, name, text))
    return changed


PROFILE_INDEX = ".vpn-profiles.json"


def write_client_kits(plan, settings, kits_root, gateway_keys, qr=True, workers=None, privates=None,
                      public_keys=None, folder_times=None):
    """Each person's ``<kits>/<id>/vpn/``: ``<profile>.conf`` (0600) and its QR code as PNG and SVG.

    Only what changed is rewritten; QR codes are redrawn only for changed profiles. With
    ``public_keys`` (id -> public key), ``<kits>/.vpn-profiles.json`` keeps a digest of each profile's
    public inputs (everything but the private key, plus the person's public key, which changes with
    the private one) and the time of their kit folder: a person whose digest and folder time are
    unchanged (no file added, removed or replaced there since) is skipped with one ``stat``, without
    reading anything. Returns (sorted ids whose profile changed, ids skipped because their
    gateway's public key is not known yet).
    folder_times: {id: st_mtime_ns of their vpn folder} already looked up (kit_presence.py), taken
    instead of one ``stat`` a person.
    """
    import hashlib
    import json
    import os

    from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file

    name = settings.profile_name
    index_path = os.path.join(kits_root, PROFILE_INDEX)
    index = {}
    if public_keys is not None:
        try:
            with open(index_path, encoding="utf-8") as stream:
                index = json.load(stream)
        except (OSError, ValueError):
            index = {}
    new_index = {}
    skipped, jobs = [], []
    allowed = {name: client_allowed_ips(settings, g) for name, g in settings.gateways.items()}
    for pid, person in sorted(plan.people.items()):
        gw_key = (gateway_keys or {}).get(person.gateway)
        if not gw_key:
            skipped.append(pid)
            continue
        gateway = settings.gateways[person.gateway]
        digest = None
        if public_keys is not None and public_keys.get(pid):
            public_text = render_client_config(person, "-", gateway, gw_key, settings,
                                               allowed[person.gateway]) + public_keys[pid] + ("+qr" if qr else "")
            digest = hashlib.sha256(public_text.encode("utf-8")).hexdigest()[:24]
            recorded = index.get(pid)
            if isinstance(recorded, str) and recorded.startswith(digest + ":"):
                # the folder's time: any file added, removed or replaced there since changes it
                if folder_times is not None:
                    seen = folder_times.get(pid)
                else:
                    try:
                        seen = os.stat(os.path.join(kits_root, pid, KIT)).st_mtime_ns
                    except OSError:
                        seen = None
                if recorded == f"{digest}:{seen}":
                    new_index[pid] = recorded
                    continue
        private = (privates or {}).get(pid) or (read_kit_file(kits_root, pid, KIT, PRIVATE_KEY_FILE) or "").strip()
        if not private:
            skipped.append(pid)
            continue
        text = render_client_config(person, private, gateway, gw_key, settings, allowed[person.gateway])
        jobs.append((str(kits_root), pid, name, text, qr))
        if digest:
            new_index[pid] = digest
    if len(jobs) > 40 and (workers or os.cpu_count() or 1) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count(), mp_context=context) as pool:
            outcomes = list(pool.map(_profile_job, jobs, chunksize=64))
    else:
        outcomes = [_profile_job(job) for job in jobs]
    changed = [job[1] for job, was_changed in zip(jobs, outcomes) if was_changed]
    if public_keys is not None:
        for pid, value in new_index.items():  # written or checked in this run: their folder's time now
            if ":" not in value:
                try:
                    new_index[pid] = f"{value}:{os.stat(os.path.join(kits_root, pid, KIT)).st_mtime_ns}"
                except OSError:
                    pass
        if new_index != index:
            atomic_write(index_path, json.dumps(new_index, sort_keys=True), mode=0o600, dir_mode=0o700)
    return changed, skipped
