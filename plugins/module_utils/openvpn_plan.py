# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The OpenVPN plan (TCP 443 beside WireGuard), computed once on the controller. Pure: no I/O.

- ``load_openvpn_settings(all_vars, gateways_vars)``: its own settings (``teleshift_openvpn_*``, each
  gateway's ``openvpn_gateway_*``) and the access settings it shares with WireGuard
  (``teleshift_vpn_internal_networks``, ``_default_networks``, ``_common_networks``, ``_dns``,
  ``_full_tunnel``: the same per-service policy applies to both tunnels). Problems name the variable.
- ``plan_openvpn(people, settings, previous, vpn_state)``: everyone with the ``vpn`` need gets a gateway
  (sticky; the one their WireGuard tunnel uses when it serves OpenVPN too) and an address of its own
  pool, kept forever while they stay (and held for a comeback), like WireGuard's (assign.py).
- ``gateway_slice``: one gateway's public data in one variable (client lines for the ccd files, the
  options pushed, the per-service access in the WireGuard template's shape, CA, certificate, CRL).
- ``render_profile``: a person's inline ``.ovpn`` (CA, certificate, key, tls-crypt key).
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils.assign import (
    PoolExhausted, allocate_addresses, assign_hosts)
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem, priority_order
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import not_a_boolean
from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import (
    _int, _net, _nets, service_networks)

DEFAULT_PORT = 443
# OpenVPN's own --max-clients default; the capacity plan compares sessions with the per-core figures.
DEFAULT_MAX_CLIENTS = 1024
DEFAULT_PROFILE = "teleshift-tcp"
DEFAULT_CERT_DAYS = 365
DEFAULT_RENEW_DAYS = 30
DEFAULT_CRL_DAYS = 180
DEFAULT_CA_DAYS = 3650
DEFAULT_INTERFACE = "tsovpn0"
KIT = "openvpn"  # the kit subdirectory (the capability's name)
PKI_SUBDIR = ".pki/openvpn"  # under the kits root, unless teleshift_openvpn_pki_dir says otherwise


@dataclass
class OvpnGateway:
    name: str
    pool: object  # ip_network
    address: str = ""  # the gateway's own tunnel address (first host of its pool unless set)
    endpoint: str = ""  # host (name or address) clients connect to
    port: int = DEFAULT_PORT
    listen: str = ""  # address the server binds ("" = every address)
    max_clients: int = DEFAULT_MAX_CLIENTS
    internal_address: str = ""  # where internal hosts route the pool to

    def capacity(self):
        return max(0, min(self.max_clients, self.pool.num_addresses - 3))  # network, broadcast, gateway


@dataclass
class OvpnSettings:
    pool: object = None
    internal_networks: list = field(default_factory=list)
    default_networks: list = field(default_factory=list)
    common_networks: list = field(default_factory=list)
    dns: list = field(default_factory=list)
    full_tunnel: bool = False
    profile_name: str = DEFAULT_PROFILE
    cert_days: int = DEFAULT_CERT_DAYS
    renew_days: int = DEFAULT_RENEW_DAYS
    crl_days: int = DEFAULT_CRL_DAYS
    ca_days: int = DEFAULT_CA_DAYS
    pki_dir: str = ""  # "" = <kits root>/.pki/openvpn
    organisation: str = ""
    gateways: dict = field(default_factory=dict)  # name -> OvpnGateway
    problems: list = field(default_factory=list)


def load_openvpn_settings(all_vars, gateways_vars, source="inventory"):
    """all_vars: the inventory's global vars; gateways_vars: OpenVPN gateway name -> its host vars."""
    problems = []
    s = OvpnSettings(problems=problems)
    if all_vars.get("teleshift_openvpn_pool"):
        s.pool = _net(all_vars["teleshift_openvpn_pool"], "teleshift_openvpn_pool", problems, source, 4)
    else:
        problems.append(Problem(source, 0, "teleshift_openvpn_pool",
                                "must be set to the OpenVPN clients' IPv4 network (not the WireGuard pool)"))
    s.internal_networks = _nets(all_vars.get("teleshift_vpn_internal_networks"),
                                "teleshift_vpn_internal_networks", problems, source)
    if not s.internal_networks and "teleshift_vpn_internal_networks" not in {p.field for p in problems}:
        problems.append(Problem(source, 0, "teleshift_vpn_internal_networks",
                                "must list the organisation's internal networks (what the VPN reaches)"))
    s.default_networks = _nets(all_vars.get("teleshift_vpn_default_networks"),
                               "teleshift_vpn_default_networks", problems, source)
    s.common_networks = _nets(all_vars.get("teleshift_vpn_common_networks"),
                              "teleshift_vpn_common_networks", problems, source)
    for i, addr in enumerate(all_vars.get("teleshift_vpn_dns") or []):
        try:
            s.dns.append(str(ipaddress.IPv4Address(str(addr))))
        except ValueError:
            if ":" not in str(addr):  # IPv6 resolvers are WireGuard's business (no IPv6 pool here)
                problems.append(Problem(source, 0, f"teleshift_vpn_dns[{i}]", f"{addr!r} is not an IP address"))
    full = all_vars.get("teleshift_vpn_full_tunnel", False)
    if not isinstance(full, bool):  # as the WireGuard plan: never read "true" as a split tunnel in silence
        problems.append(Problem(source, 0, "teleshift_vpn_full_tunnel",
                                not_a_boolean("teleshift_vpn_full_tunnel", full)))
    s.full_tunnel = full is True
    name = str(all_vars.get("teleshift_openvpn_profile_name") or DEFAULT_PROFILE)
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.+=-]{0,39}", name):
        problems.append(Problem(source, 0, "teleshift_openvpn_profile_name",
                                "must be 1-40 letters, digits or _.+=- (it names <kits>/<id>/openvpn/<name>.ovpn)"))
        name = DEFAULT_PROFILE
    s.profile_name = name
    for attr, key, low, high in (("cert_days", "teleshift_openvpn_cert_days", 2, 3650),
                                 ("renew_days", "teleshift_openvpn_renew_days", 1, 3649),
                                 ("crl_days", "teleshift_openvpn_crl_days", 2, 3650),
                                 ("ca_days", "teleshift_openvpn_ca_days", 30, 36500)):
        setattr(s, attr, _int(all_vars.get(key), key, problems, source, low, high, getattr(s, attr)))
    if s.renew_days >= s.cert_days:
        problems.append(Problem(source, 0, "teleshift_openvpn_renew_days",
                                f"must be less than teleshift_openvpn_cert_days ({s.cert_days}): certificates "
                                "would be renewed on every run"))
    if s.ca_days <= s.cert_days:
        problems.append(Problem(source, 0, "teleshift_openvpn_ca_days",
                                "must be more than teleshift_openvpn_cert_days (a certificate cannot outlive its CA)"))
    s.pki_dir = str(all_vars.get("teleshift_openvpn_pki_dir") or "")
    s.organisation = str(all_vars.get("teleshift_organisation_name") or "")
    vpn_pool = all_vars.get("teleshift_vpn_pool")
    if not gateways_vars:
        problems.append(Problem(source, 0, "openvpn_gateways", "the inventory group openvpn_gateways has no host"))
    for gw in sorted(gateways_vars):
        _load_gateway(s, gw, gateways_vars[gw] or {}, problems, source, single=len(gateways_vars) == 1)
    _check_overlaps(s, vpn_pool, problems, source)
    return s


def _address(value, where, problems, source):
    try:
        return str(ipaddress.ip_address(str(value)))
    except ValueError:
        problems.append(Problem(source, 0, where, f"{value!r} is not an IP address"))
        return ""


def _load_gateway(s, name, hv, problems, source, single):
    where = f"{name}: "
    g = OvpnGateway(name=name, pool=None)
    if hv.get("openvpn_gateway_pool"):
        g.pool = _net(hv["openvpn_gateway_pool"], where + "openvpn_gateway_pool", problems, source, 4)
        if g.pool is not None and s.pool is not None and not g.pool.subnet_of(s.pool):
            problems.append(Problem(source, 0, where + "openvpn_gateway_pool",
                                    f"{g.pool} is not inside teleshift_openvpn_pool {s.pool}"))
    elif single:
        g.pool = s.pool
    else:
        problems.append(Problem(source, 0, where + "openvpn_gateway_pool",
                                "with several OpenVPN gateways each needs its own part of teleshift_openvpn_pool"))
    g.port = _int(hv.get("openvpn_gateway_port"), where + "openvpn_gateway_port", problems, source, 1, 65535,
                  DEFAULT_PORT)
    g.max_clients = _int(hv.get("openvpn_gateway_max_clients"), where + "openvpn_gateway_max_clients", problems,
                         source, 1, 1_000_000, DEFAULT_MAX_CLIENTS)
    endpoint = str(hv.get("openvpn_gateway_endpoint") or "")
    if not endpoint and hv.get("wireguard_gateway_endpoint"):  # the same host: its name, OpenVPN's port
        wg = str(hv["wireguard_gateway_endpoint"])
        endpoint = re.sub(r":[0-9]{1,5}$", "", wg).strip("[]") if wg.count(":") <= 1 or wg.startswith("[") else wg
    if not endpoint:
        problems.append(Problem(source, 0, where + "openvpn_gateway_endpoint",
                                "must be set: the public name or address clients connect to (TCP)"))
    elif not re.fullmatch(r"[A-Za-z0-9.:_-]{1,253}", endpoint):
        problems.append(Problem(source, 0, where + "openvpn_gateway_endpoint",
                                f"{endpoint!r} is not a host name or address"))
    g.endpoint = endpoint
    if hv.get("openvpn_gateway_listen_address"):
        g.listen = _address(hv["openvpn_gateway_listen_address"], where + "openvpn_gateway_listen_address",
                            problems, source)
    internal = hv.get("openvpn_gateway_internal_address") or hv.get("wireguard_gateway_internal_address")
    if internal:
        g.internal_address = _address(internal, where + "openvpn_gateway_internal_address", problems, source)
    if g.pool is not None:
        if hv.get("openvpn_gateway_address"):
            g.address = _address(hv["openvpn_gateway_address"], where + "openvpn_gateway_address", problems, source)
            if g.address and ipaddress.ip_address(g.address) not in g.pool:
                problems.append(Problem(source, 0, where + "openvpn_gateway_address",
                                        f"{g.address} is not inside {g.pool}"))
        else:
            g.address = str(next(iter(g.pool.hosts()), g.pool.network_address))
        if g.pool.prefixlen > 29:
            problems.append(Problem(source, 0, where + "openvpn_gateway_pool", f"{g.pool} is too small (at most /29)"))
    s.gateways[name] = g


def _check_overlaps(s, vpn_pool, problems, source):
    gws = [g for g in s.gateways.values() if g.pool is not None]
    for i, a in enumerate(gws):
        for b in gws[i + 1:]:
            if a.pool.overlaps(b.pool):
                problems.append(Problem(source, 0, f"{b.name}: openvpn_gateway_pool",
                                        f"{b.pool} overlaps {a.name}'s {a.pool}"))
    if s.pool is None:
        return
    try:
        wg = ipaddress.ip_network(str(vpn_pool)) if vpn_pool else None
    except ValueError:
        wg = None  # WireGuard's own checks say so
    if wg is not None and wg.version == 4 and wg.overlaps(s.pool):
        problems.append(Problem(source, 0, "teleshift_openvpn_pool",
                                f"{s.pool} overlaps the WireGuard pool teleshift_vpn_pool {wg}: each tunnel needs "
                                "its own addresses"))
    for net in s.internal_networks:
        if net.version == 4 and net.overlaps(s.pool):
            problems.append(Problem(source, 0, "teleshift_openvpn_pool",
                                    f"{s.pool} overlaps the internal network {net}"))


# ------------------------------------------------------------------------------------ the plan

@dataclass
class PersonPlan:
    id: str
    service: str
    gateway: str
    address: str


@dataclass
class Plan:
    people: dict = field(default_factory=dict)  # id -> PersonPlan
    retired: dict = field(default_factory=dict)  # id -> {address, gateway}: held for a comeback
    problems: list = field(default_factory=list)

    def on(self, gateway):
        return sorted((p for p in self.people.values() if p.gateway == gateway), key=lambda p: p.id)


def _entries(previous):
    previous = previous or {}
    entries = {**(previous.get("retired") or {}), **(previous.get("people") or {})}
    return {str(k): v for k, v in entries.items() if isinstance(v, dict)}


def assign_gateways(people, settings, previous=None, vpn_state=None):
    """Sticky placement within each gateway's capacity. A person without an OpenVPN gateway yet goes
    to the one carrying their WireGuard tunnel when that host serves OpenVPN too."""
    users = priority_order(people)
    caps = {n: g.capacity() for n, g in settings.gateways.items() if g.pool is not None}
    prev = {pid: e.get("gateway") for pid, e in _entries(vpn_state).items()}
    prev.update({pid: e.get("gateway") for pid, e in _entries(previous).items()})
    service_of = {p.id: p.service for p in users}
    return assign_hosts([p.id for p in users], caps, prev, group_of=service_of.get)


def plan_openvpn(people, settings, previous=None, vpn_state=None, source="inventory"):
    """people: active Person objects with the vpn need; previous: state/openvpn.yml; vpn_state:
    state/vpn.yml (the WireGuard gateways people are on)."""
    plan = Plan()
    gateways = {n: g for n, g in settings.gateways.items() if g.pool is not None}
    if not gateways:
        return plan
    service_of = {p.id: p.service for p in people}
    assignment = assign_gateways(people, settings, previous, vpn_state)
    if assignment.unplaced:
        detail = ", ".join(f"{n} {g.capacity()}" for n, g in sorted(gateways.items()))
        plan.problems.append(Problem(source, 0, "openvpn_gateway_max_clients",
                                     f"{len(assignment.unplaced)} of {len(people)} people with the vpn need do not "
                                     f"fit on the OpenVPN gateways (capacity {detail}); raise "
                                     "openvpn_gateway_max_clients, add a gateway or a larger pool"))
        return plan
    entries = _entries(previous)
    prev = {pid: e.get("address") for pid, e in entries.items() if e.get("address")}
    by_gw = assignment.by_host()
    for name, g in sorted(gateways.items()):
        ids = sorted(by_gw.get(name, []))
        held = [a for pid, a in prev.items() if pid not in assignment.hosts and _inside(a, g.pool)]
        try:
            try:
                addrs = allocate_addresses(ids, g.pool, prev, reserved=[g.address, *held])
            except PoolExhausted:
                addrs = allocate_addresses(ids, g.pool, prev, reserved=[g.address])
        except PoolExhausted as exc:
            plan.problems.append(Problem(source, 0, f"{name}: openvpn_gateway_pool",
                                         f"address pool {g.pool} is exhausted: {exc.missing} of {len(ids)} people "
                                         f"on {name} get no address"))
            continue
        for pid in ids:
            plan.people[pid] = PersonPlan(pid, service_of[pid], name, addrs[pid])
    used = {p.address for p in plan.people.values()}
    for pid, entry in entries.items():
        if pid not in plan.people and entry.get("address") and entry["address"] not in used:
            plan.retired[pid] = {k: entry[k] for k in ("address", "gateway") if entry.get(k)}
    return plan


def _inside(address, pool):
    try:
        return ipaddress.ip_address(address) in pool
    except ValueError:
        return False


# ------------------------------------------------------------------------------ what hosts get

def pushed_options(settings, gateway, extra_routes=()):
    """What every client of ``gateway`` is told (one line each, written into every ccd file): routes
    to the internal networks (split tunnel) or the default route (full tunnel), and the DNS servers."""
    lines = []
    if settings.full_tunnel:
        lines.append('push "redirect-gateway def1"')
    else:
        nets = [n for n in settings.internal_networks if n.version == 4]
        for addr in settings.dns:
            ip = ipaddress.ip_address(addr)
            if not any(ip in n for n in nets):
                nets.append(ipaddress.ip_network(f"{ip}/32"))
        nets += [ipaddress.ip_network(r) for r in extra_routes]
        for net in nets:
            lines.append(f'push "route {net.network_address} {net.netmask}"')
    lines += [f'push "dhcp-option DNS {addr}"' for addr in settings.dns]
    return lines


def client_lines(plan, gateway):
    """``<id> <address>`` per person on ``gateway``: the ccd files' source, one string."""
    return "".join(f"{p.id} {p.address}\n" for p in plan.on(gateway))


def access_rules(plan, gateway, services, settings):
    """Per-service access, in the shape the WireGuard firewall template reads: [{service, addresses
    (one comma-separated string), addresses6, networks, networks6}]."""
    access = {}
    for p in plan.on(gateway):
        access.setdefault(p.service, []).append(p.address)
    rules = []
    for svc in sorted(access):
        nets = service_networks(svc, services, settings)
        rules.append({"service": svc, "addresses": ", ".join(access[svc]), "addresses6": "",
                      "networks": [str(n) for n in nets if n.version == 4],
                      "networks6": [str(n) for n in nets if n.version == 6]})
    return rules


def server_name(gateway_name):
    """The gateway certificate's common name (clients check it with verify-x509-name)."""
    return f"teleshift-openvpn-{gateway_name}"[:64]


def gateway_slice(plan, gateway, services, settings, pki_public, kick=()):
    """One gateway's public data: everything the role applies, in one variable.

    pki_public: {"ca": PEM, "cert": {gateway: PEM}, "crl": PEM, "digests": {gateway: {file: sha256}}}."""
    return {
        "clients": client_lines(plan, gateway.name),
        "push": pushed_options(settings, gateway),
        "access": access_rules(plan, gateway.name, services, settings),
        "address": gateway.address,
        "netmask": str(gateway.pool.netmask),
        "pool": str(gateway.pool),
        "port": gateway.port,
        "listen": gateway.listen,
        "max_clients": gateway.max_clients,
        "server_name": server_name(gateway.name),
        "internal_networks": [str(n) for n in settings.internal_networks],
        "full_tunnel": settings.full_tunnel,
        "ca": pki_public.get("ca", ""),
        "cert": (pki_public.get("cert") or {}).get(gateway.name, ""),
        "crl": pki_public.get("crl", ""),
        "secret_digests": (pki_public.get("digests") or {}).get(gateway.name, {}),
        "kick": sorted(k for k in kick if k in {p.id for p in plan.on(gateway.name)}),
    }


def routes(settings):
    """Routes internal hosts need back to OpenVPN clients: each gateway's pool via its internal address."""
    return [{"network": str(g.pool), "via": g.internal_address, "gateway": g.name}
            for g in sorted(settings.gateways.values(), key=lambda g: g.name)
            if g.pool is not None and g.internal_address]


def state_of(plan, certs, revoked, settings, ca=None):
    """The public state file: people (gateway, address, service, certificate serial and expiry),
    retired people (address held), revoked serials still in the CRL, gateways, the CA's fingerprint."""
    people = {}
    for pid, p in sorted(plan.people.items()):
        entry = {"gateway": p.gateway, "address": p.address, "service": p.service}
        entry.update(certs.get(pid) or {})
        people[pid] = entry
    data = {"people": people}
    if plan.retired:
        data["retired"] = {pid: dict(plan.retired[pid]) for pid in sorted(plan.retired)}
    if revoked:
        data["revoked"] = {serial: dict(revoked[serial]) for serial in sorted(revoked)}
    data["gateways"] = {name: {"address": g.address, "pool": str(g.pool), "endpoint": f"{g.endpoint}:{g.port}"}
                        for name, g in sorted(settings.gateways.items()) if g.pool is not None}
    if ca:
        data["ca"] = dict(ca)
    return data


# ----------------------------------------------------------------------------------- profiles

def render_profile(person, gateway, settings, ca_pem, cert_pem, key_pem, tls_crypt):
    """A person's inline .ovpn: TCP to the gateway, server checked by name and certificate usage."""
    lines = [
        f"# teleshift OpenVPN profile of {person.id}, through {gateway.name} over TCP {gateway.port}: for networks",
        "# where WireGuard does not connect (hotels, 4G, guest wifi). Keep this file private.",
        "client",
        "dev tun",
        "proto tcp-client",
        f"remote {gateway.endpoint} {gateway.port}",
        "nobind",
        "persist-key",
        "persist-tun",
        "remote-cert-tls server",
        f"verify-x509-name {server_name(gateway.name)} name",
        "tls-version-min 1.2",
        "data-ciphers AES-256-GCM:AES-128-GCM:CHACHA20-POLY1305",
        "connect-retry 2 30",
        "verb 3",
        "<ca>", ca_pem.strip(), "</ca>",
        "<cert>", cert_pem.strip(), "</cert>",
        "<key>", key_pem.strip(), "</key>",
        "<tls-crypt>", tls_crypt.strip(), "</tls-crypt>",
    ]
    return "\n".join(lines) + "\n"
