# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The organisation's directory (Active Directory, OpenLDAP) as the roster.

``teleshift_roster_source: {type: ldap, ...}`` in the inventory: one paged search under ``base_dn``
(LDAPS; StartTLS or plain LDAP only when allowed explicitly), each entry turned into the raw row a
roster file would hold (attributes -> columns, group membership -> service, needs and priority,
a disabled account or no mapped group -> inactive), then validated by the roster's own row rules
(``roster.build_roster``). Problems name the entry's DN and the attribute instead of a line and a
column. Client: python-ldap (OpenLDAP's libldap), imported only when a directory is read.

Controller side only. The bind password comes from the inventory (Ansible Vault) and never appears
in a problem, a result or the cache.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils import roster as roster_mod
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import COLUMNS, PRIORITIES, Problem, Roster

VAR = "teleshift_roster_source"
TYPES = ("ldap",)
AD_FILTER = "(&(objectCategory=person)(objectClass=user))"
# column -> attribute(s): the first attribute with a value gives the column.
DEFAULT_ATTRIBUTES = {"id": ["sAMAccountName"], "full_name": ["displayName", "cn"], "email": ["mail"],
                      "extension": ["telephoneNumber", "ipPhone"], "forward_to": ["mobile"]}
GROUP_KEYS = ("service", "needs", "priority")
DISABLED = 0x2  # userAccountControl ACCOUNTDISABLE
UAC = "userAccountControl"
KEYS = ("type", "uri", "base_dn", "filter", "bind_dn", "bind_password", "ca_file", "allow_starttls",
        "allow_plain", "page_size", "timeout", "max_entries", "attributes", "groups", "defaults",
        "membership_attribute")
MAX_ENTRIES = 100_000


class DirectoryError(Exception):
    """The directory could not be read (connection, TLS, bind, search): the message names no secret."""


@dataclass
class Source:
    uri: str
    base_dn: str
    filter: str = AD_FILTER
    bind_dn: str = ""
    bind_password: str = field(default="", repr=False)
    ca_file: str = ""
    starttls: bool = False
    page_size: int = 500
    timeout: int = 30
    max_entries: int = MAX_ENTRIES
    attributes: dict = field(default_factory=dict)  # column -> [attribute, ...]
    groups: list = field(default_factory=list)  # [(key: lower-case DN or CN, {service, needs, priority})]
    defaults: dict = field(default_factory=dict)  # column -> raw value
    membership: str = "memberOf"

    @property
    def name(self):
        """How problems and messages name this source (no credentials)."""
        return f"{self.uri} ({self.base_dn})"

    def wanted_attributes(self):
        names = [a for attrs in self.attributes.values() for a in attrs] + [self.membership, UAC]
        return list(dict.fromkeys(names))


def configured(all_vars):
    return all_vars.get(VAR) not in (None, "", {})


def parse_source(value, path_of, where=VAR):
    """(Source or None, [Problem]) from the inventory's ``teleshift_roster_source`` mapping;
    ``path_of(text)`` resolves a path relative to the inventory."""
    problems = []

    def bad(key, message):
        problems.append(Problem(where, 0, f"{VAR}.{key}" if key else VAR, message))

    if not isinstance(value, dict):
        bad("", "expected a mapping (type: ldap, uri, base_dn, ...)")
        return None, problems
    for key in value:
        if key not in KEYS:
            bad(key, "unknown key (known: " + ", ".join(KEYS) + ")")
    if value.get("type") not in TYPES:
        bad("type", f"{value.get('type')!r} is not one of {', '.join(TYPES)}")

    def text(key, default="", required=False):
        raw = value.get(key, default)
        if raw is None:
            raw = default
        if not isinstance(raw, str) or (required and not raw.strip()):
            bad(key, "required text" if required else "expected text")
            return default
        return raw.strip()

    def number(key, default, low, high):
        raw = value.get(key, default)
        if isinstance(raw, bool) or not isinstance(raw, int) or not low <= raw <= high:
            bad(key, f"expected a whole number from {low} to {high}, got {raw!r}")
            return default
        return raw

    def flag(key):
        raw = value.get(key, False)
        if not isinstance(raw, bool):
            bad(key, f"expected true or false, got {raw!r}")
            return False
        return raw

    uri = text("uri", required=True)
    allow_starttls, allow_plain = flag("allow_starttls"), flag("allow_plain")
    starttls = False
    if uri:
        scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
        if scheme not in ("ldaps", "ldap") or any(ch.isspace() for ch in uri):
            bad("uri", f"{uri!r} is not one ldaps:// (or ldap://) URI")
        elif scheme == "ldap":
            if allow_starttls:
                starttls = True
            elif not allow_plain:
                bad("uri", f"{uri!r} is plain LDAP: use ldaps://, or allow StartTLS (allow_starttls: true) or, "
                           "knowingly, unencrypted LDAP (allow_plain: true)")
    ca_file = text("ca_file")
    if ca_file:
        path = path_of(ca_file)
        if not path.is_file():
            bad("ca_file", f"{path} is not a file")
        ca_file = str(path)
    bind_dn, password = text("bind_dn"), text("bind_password")
    if bool(bind_dn) != bool(password):
        bad("bind_dn" if not bind_dn else "bind_password",
            "bind_dn and bind_password go together (the password from Ansible Vault)")
    source = Source(uri=uri, base_dn=text("base_dn", required=True), filter=text("filter", AD_FILTER) or AD_FILTER,
                    bind_dn=bind_dn, bind_password=password, ca_file=ca_file, starttls=starttls,
                    page_size=number("page_size", 500, 1, 5000), timeout=number("timeout", 30, 1, 600),
                    max_entries=number("max_entries", MAX_ENTRIES, 1, 1_000_000),
                    membership=text("membership_attribute", "memberOf") or "memberOf")
    if not (source.filter.startswith("(") and source.filter.endswith(")")):
        bad("filter", f"{source.filter!r} is not an LDAP filter (in parentheses)")
    source.attributes = _attributes(value.get("attributes"), bad)
    source.groups = _groups(value.get("groups"), bad)
    source.defaults = _defaults(value.get("defaults"), bad)
    if not any("service" in spec for _group, spec in source.groups) and "service" not in source.attributes:
        bad("groups", "no service: map groups to services (groups: {GROUP: {service: ...}}) or an attribute "
                      "(attributes: {service: department})")
    return (None if problems else source), problems


def _attributes(raw, bad):
    result = {k: list(v) for k, v in DEFAULT_ATTRIBUTES.items()}
    if raw is None:
        return result
    if not isinstance(raw, dict):
        bad("attributes", "expected a mapping of roster column to attribute name(s)")
        return result
    for col, attrs in raw.items():
        names = [attrs] if isinstance(attrs, str) else attrs
        if col not in COLUMNS or col in ("needs",):
            bad(f"attributes.{col}", "not a roster column an attribute can give (needs come from groups)")
        elif not (isinstance(names, list) and names and all(isinstance(n, str) and re.fullmatch(r"[A-Za-z][\w-]*", n)
                                                            for n in names)):
            bad(f"attributes.{col}", "expected an attribute name or a list of them")
        else:
            result[col] = list(names)
    return result


def _groups(raw, bad):
    if raw is None:
        return []
    if not isinstance(raw, dict):
        bad("groups", "expected a mapping of group (DN or name) to {service, needs, priority}")
        return []
    result = []
    for name, spec in raw.items():
        where = f"groups.{name}"
        if not isinstance(spec, dict) or not spec or any(k not in GROUP_KEYS for k in spec):
            bad(where, "expected a mapping with service, needs and/or priority")
            continue
        spec = dict(spec)
        if "needs" in spec:
            needs = spec["needs"]
            needs = [needs] if isinstance(needs, str) else needs
            if not (isinstance(needs, list) and all(isinstance(n, str) and n for n in needs)):
                bad(f"{where}.needs", "expected a need or a list of needs")
                continue
            spec["needs"] = [n.lower() for n in needs]
        if "priority" in spec and spec["priority"] not in PRIORITIES:
            bad(f"{where}.priority", f"{spec['priority']!r} is not one of {', '.join(PRIORITIES)}")
            continue
        if "service" in spec and not (isinstance(spec["service"], str) and spec["service"]):
            bad(f"{where}.service", "expected a service name")
            continue
        result.append((normalise_dn(str(name)), spec))
    return result


def _defaults(raw, bad):
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        bad("defaults", "expected a mapping of roster column to value")
        return {}
    result = {}
    for col, val in raw.items():
        if col not in COLUMNS or COLUMNS[col] or col in ("needs", "active"):
            bad(f"defaults.{col}", "not an optional roster column with a default")
        elif not isinstance(val, (str, int, bool)):
            bad(f"defaults.{col}", "expected a single value")
        else:
            result[col] = val
    return result


def normalise_dn(dn):
    """A DN compared case-insensitively, without spaces around separators."""
    return ",".join("=".join(part.strip() for part in rdn.split("=", 1)) for rdn in dn.split(",")).lower()


def first_rdn_value(dn):
    head = dn.split(",", 1)[0]
    return head.split("=", 1)[1].strip().lower() if "=" in head else head.strip().lower()


# ------------------------------------------------------------------------------------------------
# Entries -> raw roster rows (pure)
# ------------------------------------------------------------------------------------------------

def _matches(key, group_dn):
    return group_dn == key if "=" in key else first_rdn_value(group_dn) == key


def entry_row(dn, attrs, source):
    """(row, fields, skip): the raw roster row of one entry ({attribute lower-case: [text]}), the
    attribute each column came from, and True when the entry is in no mapped group and has no
    service (nobody teleshift serves: left out, which is the same as inactive)."""
    row, fields = {}, {}
    for col, names in source.attributes.items():
        fields[col] = names[0]
        for name in names:
            values = attrs.get(name.lower())
            if values:
                row[col], fields[col] = values[0], name
                break
    if isinstance(row.get("id"), str):
        row["id"] = row["id"].lower()
    member = source.membership
    groups = [normalise_dn(g) for g in attrs.get(member.lower(), []) if isinstance(g, str)]
    services, needs, ranks = [], set(), []
    in_any = False
    for key, spec in source.groups:
        if any(_matches(key, g) for g in groups):
            in_any = True
            if "service" in spec:
                services.append(spec["service"])
            needs.update(spec.get("needs", ()))
            if "priority" in spec:
                ranks.append(PRIORITIES.index(spec["priority"]))
    if services:
        distinct = sorted(set(services))
        row["service"] = distinct[0] if len(distinct) == 1 else roster_mod.roster_files.Refused(
            f"member of groups of several services ({', '.join(distinct)}): one service per person")
        fields["service"] = member
    row["needs"] = tuple(sorted(needs))
    fields["needs"] = member
    if ranks and "priority" not in row:
        row["priority"] = PRIORITIES[min(ranks)]
        fields["priority"] = member
    for col, val in source.defaults.items():
        if col == "forward_mode" and not (row.get("forward_to") and row.get("extension")):
            continue  # forwarding needs a desk extension and a mobile: the default applies to people with both
        text = "yes" if val is True else "no" if val is False else str(val)
        row.setdefault(col, val if isinstance(val, str) else text)
    refused = roster_mod.roster_files.Refused
    uac = attrs.get(UAC.lower())
    try:
        disabled = bool(uac) and bool(int(uac[0]) & DISABLED)
    except (TypeError, ValueError):
        row["active"], fields["active"] = refused(f"{uac[0]!r} is not a userAccountControl number"), UAC
        disabled = None
    if disabled:
        row["active"], fields["active"] = "no", UAC
    elif disabled is not None and source.groups and not in_any:
        row["active"], fields["active"] = "no", member  # left every mapped group
    elif disabled is not None:
        row.setdefault("active", "yes")
        fields.setdefault("active", UAC)
    skip = bool(source.groups) and not in_any and not row.get("service")
    return row, fields, skip


def roster_from_entries(entries, source, services=None, region="FR", memo=None):
    """The Roster of ``entries`` ([(dn, {attribute lower-case: [text]})]), in id order; problems
    located by DN and attribute."""
    rows, dns, fields_of, skipped = [], {}, {}, 0
    for dn, attrs in entries:
        row, fields, skip = entry_row(dn, attrs, source)
        if skip:
            skipped += 1
            continue
        rows.append((str(row.get("id") or ""), dn, row, fields))
    rows.sort(key=lambda item: (item[0], item[1].lower()))
    numbered = []
    for line, (_entry, dn, row, fields) in enumerate(rows, 1):
        dns[line], fields_of[line] = dn, fields
        numbered.append((line, row))
    built = roster_mod.build_roster(numbered, source.name, services, region, memo,
                                    where=lambda line: f"by {dns.get(line, '?')}")
    problems = [Problem(dns[p.line], 0, fields_of[p.line].get(p.field, p.field), p.message) if p.line in dns else p
                for p in built.problems]
    problems.sort(key=lambda p: (p.source.lower(), p.field))
    built.problems = problems
    built.skipped = skipped
    return built


# ------------------------------------------------------------------------------------------------
# Reading the directory (python-ldap)
# ------------------------------------------------------------------------------------------------

def _connect_ldap(source):
    import ldap  # python-ldap: only the controller reading a directory needs it

    conn = ldap.initialize(source.uri)
    conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
    conn.set_option(ldap.OPT_REFERRALS, 0)
    conn.set_option(ldap.OPT_NETWORK_TIMEOUT, source.timeout)
    conn.set_option(ldap.OPT_TIMEOUT, source.timeout)
    conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
    if source.ca_file:
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, source.ca_file)
    conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # last: applies the TLS options above
    return conn


def search(source, connect=None):
    """[(dn, {attribute lower-case: [text]})] of every entry the source's search finds, read in pages;
    raises DirectoryError (no secret in its message)."""
    import ldap
    from ldap.controls import SimplePagedResultsControl

    wanted = source.wanted_attributes()
    conn = None
    try:
        conn = (connect or _connect_ldap)(source)
        if source.starttls:
            conn.start_tls_s()
        conn.simple_bind_s(source.bind_dn, source.bind_password)
        page = SimplePagedResultsControl(True, size=source.page_size, cookie=b"")
        entries = []
        for _page in range(source.max_entries // source.page_size + 2):  # bounded: at most max_entries
            msgid = conn.search_ext(source.base_dn, ldap.SCOPE_SUBTREE, source.filter, wanted, serverctrls=[page])
            _kind, data, _msgid, controls = conn.result3(msgid, timeout=source.timeout)
            for dn, attrs in data:
                if dn is None or not isinstance(attrs, dict):
                    continue  # a search continuation reference (AD's DomainDnsZones...)
                entries.append((dn, _decoded(attrs)))
            if len(entries) > source.max_entries:
                raise DirectoryError(f"more than {source.max_entries} entries: narrow base_dn or filter, "
                                     "or raise max_entries")
            cookie = next((c.cookie for c in controls or ()
                           if c.controlType == SimplePagedResultsControl.controlType), b"")
            if not cookie:
                return entries
            page.cookie = cookie
        raise DirectoryError("the paged search did not end")
    except ldap.LDAPError as exc:
        raise DirectoryError(_ldap_message(exc)) from None
    finally:
        if conn is not None:
            try:
                conn.unbind_s()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass


def _decoded(attrs):
    result = {}
    for name, values in attrs.items():
        texts = []
        for value in values:
            try:
                texts.append(value.decode("utf-8") if isinstance(value, bytes) else str(value))
            except UnicodeDecodeError:
                texts.append(roster_mod.roster_files.Refused("not UTF-8 text"))
        result[name.lower()] = texts
    return result


def _ldap_message(exc):
    info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    parts = [str(info.get("desc") or exc.__class__.__name__)]
    if info.get("info"):
        parts.append(str(info["info"]).strip())
    return ": ".join(parts)


def load_directory(source, services=None, region="FR", connect=None):
    """The Roster the directory yields now; an unreadable directory is one problem (nothing applied)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import load_memo, save_memo

    try:
        entries = search(source, connect)
    except ImportError:
        return Roster(problems=[Problem(source.name, 0, "", "reading a directory needs python-ldap: "
                                                            "pip install -r requirements.txt")], source=source.name)
    except DirectoryError as exc:
        return Roster(problems=[Problem(source.name, 0, "", f"cannot read the directory: {exc}")], source=source.name)
    options = (tuple(sorted(services)) if services is not None else None, region, roster_mod._parser_version(),
               roster_mod.known_needs())
    memo = load_memo("directory-rows", options, decode=roster_mod._memo_from_json)
    roster = roster_from_entries(entries, source, services, region, memo)
    save_memo("directory-rows", options, memo, encode=roster_mod._memo_to_json)
    return roster


def load_from_settings(value, path_of, services=None, region="FR", where=VAR, connect=None):
    """The Roster of the inventory's ``teleshift_roster_source`` (settings problems first)."""
    source, problems = parse_source(value, path_of, where)
    if problems:
        return Roster(problems=problems, source=where)
    return load_directory(source, services, region, connect)
