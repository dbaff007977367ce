"""Is every capability a person needs really in place on its host? Read once per host, match in Python.

- vpn: ``wg show all allowed-ips`` on each gateway (never ``dump``: it prints private keys): a peer with
  the person's public key (state/vpn.yml) that allows the person's address;
- desktop: ``getent passwd``, ``getent group`` and ``passwd -S -a`` (status letters, no hashes) on each
  desktop host: the account exists, is not locked, and is in the host's allowed group and in the
  person's service group;
- phone: ``database show`` and ``pjsip list endpoints`` on every PBX: the endpoint of the person's
  extension exists and the forwarding families hold what the roster gives (the playbook's own compile).

``expectations`` (pure) says what each person should have where, ``check`` matches it against the hosts'
outputs; ``verify`` does both with a runner (``status.HostRunner``) reading each host once, in parallel.
Results: {person: {capability: {"ok": bool, "detail": str}}} for every active person and capability
they need (a capability with no plan for them is "not verified", with the reason).
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import service_group

from teleshift_cli.paths import ROOT

CAPS = ("vpn", "desktop", "phone")
GROUPS = {"vpn": "vpn_gateways", "desktop": "desktop_hosts", "phone": "pbx_hosts"}
MARK = "@@teleshift "
READS = {
    "vpn": ["wg", "show", "all", "allowed-ips"],
    # lock status needs root: without it the accounts and groups are still checked
    "desktop": ["sh", "-c", f"getent passwd && echo '{MARK}group' && getent group && echo '{MARK}status' "
                            "&& { passwd -S -a 2>/dev/null || true; }"],
    "phone": ["sh", "-c", f"asterisk -rx 'database show' && echo '{MARK}endpoints' "
                          "&& asterisk -rx 'pjsip list endpoints'"],
}
PERSON_FAMILIES = (T.CF_ALWAYS, T.CF_BUSY, T.CF_NOANSWER, T.CF_DELAY, T.MOBILE)
XRDP_DEFAULTS = ROOT / "roles" / "xrdp_host" / "defaults" / "main.yml"


@dataclass(frozen=True)
class Expect:
    person: str
    capability: str
    host: str = ""
    want: dict = field(default_factory=dict, compare=False)
    problem: str = ""  # nothing can be checked (no plan for the person): the reason


# ------------------------------------------------------------------------------ parsing

def sections(text, first):
    """Split an output joined with MARK lines: {section: text}, the part before any mark is ``first``."""
    out, name, lines = {}, first, []
    for line in text.splitlines():
        if line.startswith(MARK):
            out[name] = "\n".join(lines)
            name, lines = line[len(MARK):].strip(), []
        else:
            lines.append(line)
    out[name] = "\n".join(lines)
    return out


def parse_allowed_ips(text):
    """``wg show all allowed-ips`` -> {public key: [allowed ips]} (every interface)."""
    peers = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            peers[parts[1]] = [] if parts[2].strip() == "(none)" else parts[2].split()
    return peers


def parse_accounts(text):
    """The desktop read -> (users {login: primary gid}, groups {name: (gid, {members})}, {login: status})."""
    parts = sections(text, "passwd")
    users, groups, status = {}, {}, {}
    for line in parts.get("passwd", "").splitlines():
        fields = line.split(":")
        if len(fields) >= 7:
            users[fields[0]] = fields[3]
    for line in parts.get("group", "").splitlines():
        fields = line.split(":")
        if len(fields) >= 4:
            groups[fields[0]] = (fields[2], {m for m in fields[3].split(",") if m})
    for line in parts.get("status", "").splitlines():
        fields = line.split()
        if len(fields) >= 2:
            status[fields[0]] = fields[1]
    return users, groups, status


def parse_endpoints(text):
    """``pjsip list endpoints`` (or ``show``) -> endpoint names (``1001`` from ``1001/1001``)."""
    names = set()
    for line in text.splitlines():
        match = re.match(r"\s*Endpoint:\s+([^\s/<][^\s/]*)", line)
        if match:
            names.add(match.group(1))
    return names


def parse_pbx(text):
    parts = sections(text, "astdb")
    return T.parse_database_show(parts.get("astdb", "")), parse_endpoints(parts.get("endpoints", ""))


PARSERS = {"vpn": parse_allowed_ips, "desktop": parse_accounts, "phone": parse_pbx}


# ------------------------------------------------------------------------------ matching

def _address_cidr(address):
    address = str(address)
    if "/" in address:
        return address
    return f"{address}/128" if ":" in address else f"{address}/32"


def match_vpn(want, peers, host):
    peer = peers.get(want["public_key"])
    if peer is None:
        return False, f"no peer with the person's public key on {host}"
    cidr = _address_cidr(want["address"])
    if cidr not in peer:
        return False, f"the peer on {host} allows {', '.join(peer) or 'nothing'}, not {cidr}"
    return True, ""


def match_desktop(want, accounts, host):
    users, groups, status = accounts
    login = want["login"]
    if login not in users:
        return False, f"no account {login} on {host}"
    if status.get(login) == "L":
        return False, f"account {login} is locked on {host}"
    primary = users[login]
    missing = [g for g in want["groups"] if g not in groups
               or (login not in groups[g][1] and groups[g][0] != primary)]
    if missing:
        return False, f"{login} is not in group(s) {', '.join(missing)} on {host}"
    return True, ""


def match_phone(want, pbx, host):
    astdb, endpoints = pbx
    ext = want["extension"]
    if ext not in endpoints:
        return False, f"no endpoint {ext} on {host}"
    wrong = [f"{fam} is {astdb.get(fam, {}).get(ext) or 'not set'} (expected {value or 'not set'})"
             for fam, value in sorted(want["astdb"].items()) if astdb.get(fam, {}).get(ext) != value]
    if wrong:
        return False, f"forwarding of {ext} on {host}: " + ", ".join(wrong)
    return True, ""


MATCHERS = {"vpn": match_vpn, "desktop": match_desktop, "phone": match_phone}


def check(expects, outputs):
    """Match expectations against the hosts' outputs {(capability, host): (rc, text, error)}."""
    parsed, results = {}, {}
    for key, (rc, text, error) in outputs.items():
        parsed[key] = PARSERS[key[0]](text) if rc == 0 else f"cannot read {key[1]}: {error or f'exit {rc}'}"
    for exp in expects:
        if exp.problem:
            ok, detail = False, exp.problem
        else:
            data = parsed.get((exp.capability, exp.host), f"{exp.host} was not read")
            ok, detail = (False, data) if isinstance(data, str) else MATCHERS[exp.capability](exp.want, data, exp.host)
        entry = results.setdefault(exp.person, {}).setdefault(exp.capability, {"ok": True, "detail": ""})
        if not ok:  # a person on several hosts (every PBX) is verified when all of them are right
            entry["ok"] = False
            entry["detail"] = "; ".join(d for d in (entry["detail"], detail) if d)
    return results


# ------------------------------------------------------------------------------ expectations

def _people(states, cap):
    people = (states.get(cap) or {}).get("people")
    return people if isinstance(people, dict) else {}


def xrdp_defaults():
    try:
        data = yaml.safe_load(XRDP_DEFAULTS.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        data = {}
    return {"users_group": str(data.get("xrdp_host_users_group", "tsusers")),
            "prefix": str(data.get("xrdp_host_service_group_prefix", "ts-"))}


def _vpn(person, states):
    entry = _people(states, "vpn").get(person.id)
    if not isinstance(entry, dict) or not entry.get("gateway") or not entry.get("public_key"):
        return [Expect(person.id, "vpn", problem="no gateway and key planned (state/vpn.yml)")]
    return [Expect(person.id, "vpn", str(entry["gateway"]),
                   {"public_key": str(entry["public_key"]), "address": str(entry.get("address", ""))})]


def _desktop(person, states, hostvars, defaults):
    entry = _people(states, "desktop").get(person.id)
    if not isinstance(entry, dict) or not entry.get("host") or entry.get("status", "active") != "active":
        return [Expect(person.id, "desktop", problem="no desktop host planned (state/desktop.yml)")]
    host = str(entry["host"])
    hv = hostvars.get(host, {})
    groups = [str(hv.get("xrdp_host_users_group") or defaults["users_group"]),
              service_group(str(hv.get("xrdp_host_service_group_prefix") or defaults["prefix"]), person.service)]
    return [Expect(person.id, "desktop", host, {"login": str(entry.get("login") or person.id), "groups": groups})]


def phone_plans(ctx):
    """{pbx host: desired AstDB} compiled as the telephony playbook does, or {host: problem text}."""
    people = T.phone_people(ctx.roster)
    av = ctx.inventory.all_vars
    policy, _ = T.load_number_policy({"teleshift_phone_policy": av["teleshift_phone_policy"]}
                                     if "teleshift_phone_policy" in av else {}, ctx.settings.region)
    plans = {}
    for host in ctx.inventory.groups.get(GROUPS["phone"], []):
        hv = ctx.inventory.hostvars.get(host, {})
        cfg, problems = T.load_pbx_config({k: hv[k] for k in T.PBX_VARS if k in hv}, policy,
                                          {p.id: p.extension for p in people}, source=f"inventory ({host})")
        plans[host] = f"cannot compile the PBX plan: {problems[0]}" if problems else T.desired_astdb(people, cfg, policy)
    return plans


def _phone(person, plans):
    if not person.extension:
        return [Expect(person.id, "phone", problem="no desk extension in the roster")]
    if not plans:
        return [Expect(person.id, "phone", problem="no PBX in the inventory (pbx_hosts)")]
    out = []
    for host, desired in sorted(plans.items()):
        if isinstance(desired, str):
            out.append(Expect(person.id, "phone", host, problem=desired))
            continue
        want = {fam: desired.get(fam, {}).get(person.extension) for fam in PERSON_FAMILIES}
        out.append(Expect(person.id, "phone", host, {"extension": person.extension, "astdb": want}))
    return out


def expectations(ctx, states):
    """[Expect] for every active person and each capability they need."""
    defaults = xrdp_defaults()
    plans = None
    out = []
    for person in ctx.roster.people:
        if not person.active:
            continue
        if "vpn" in person.needs:
            out += _vpn(person, states)
        if "desktop" in person.needs:
            out += _desktop(person, states, ctx.inventory.hostvars, defaults)
        if "phone" in person.needs:
            plans = phone_plans(ctx) if plans is None else plans
            out += _phone(person, plans)
    return out


def verify(ctx, states, runner, workers=4):
    """{person: {capability: {"ok", "detail"}}}, reading each host once (runner.run(host, argv))."""
    expects = expectations(ctx, states)
    reads = sorted({(e.capability, e.host) for e in expects if e.host and not e.problem})

    def read(key):
        result = runner.run(key[1], READS[key[0]])
        return key, (result.rc, result.out, result.error)

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(reads)))) as pool:
        outputs = dict(pool.map(read, reads))
    return check(expects, outputs)
