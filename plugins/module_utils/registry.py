# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The capability registry: every capability teleshift provides, declared once.

A capability (VPN, remote desktop, telephony...) is one object, a subclass of ``Capability``: what the
roster asks for it (``need``), where its hosts are (``host_group``), its kit subdirectory and public
state file, its planner, capacity figures, notice section, status probe and report rows. Everything that
goes over capabilities asks this registry: the roster's known needs, validate and preflight, the
capacity plan, kits and notices, status and the readiness report. Adding a capability is one module
that defines a subclass and registers it (built-ins: ``BUILTIN``); no other file names capabilities.

Controller-side only (the capabilities import the roster, the planners and the state files).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field

# Modules of this collection's module_utils that register the built-in capabilities, in order.
BUILTIN = ("vpn_capability", "openvpn_capability", "mfa_capability", "desktop_capability", "phone_capability",
           "cme_capability", "video_capability", "telework_station_capability")
_PACKAGE = "ansible_collections.teleshift.toolkit.plugins.module_utils"

_REGISTRY = {}
_LOADED = []


@dataclass
class Findings:
    """What a check found: problems stop a run before any host changes, warnings do not."""

    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    def extend(self, other):
        self.problems.extend(other.problems)
        self.warnings.extend(other.warnings)
        return self


@dataclass
class CapStatus:
    """One capability's view of one person, as the hotline and the verify step see it."""

    capability: str
    state: str  # ok | problem | unknown | not configured | not needed
    host: str = ""
    facts: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)
    verified: object = None  # True: in place on its host; False: not; None: not checked


@dataclass
class NoticeSection:
    """What a capability shows in a person's onboarding notice (rendered by the notice template:
    ``notice_<capability>.html.j2`` when it exists, else the generic section)."""

    name: str
    title: str
    ready: bool = True  # False: "being prepared"
    steps: list = field(default_factory=list)
    rows: list = field(default_factory=list)  # [(label, value)] read from the kit's summary.yml
    secrets: list = field(default_factory=list)  # [(name, value)] the person must type
    files: list = field(default_factory=list)  # kit files, relative to the person's kit
    data: dict = field(default_factory=dict)  # anything the capability's own template reads
    template: str = ""  # set by the notice writer: the template that renders this section


class Capability:
    """Base class: a capability overrides what it has; the defaults do nothing and find nothing."""

    name = ""  # registry key; also the kit subdirectory and the label in reports
    need = ""  # the roster need this capability serves ("" = override ``wants``)
    order = 100  # position in reports, notices and status
    texts = {}  # notice words per language: {"fr": {"title": ..., "steps": [...], ...}, "en": {...}}
    host_group = ""  # inventory group of the hosts this capability configures ("" = none)
    state_file = ""  # public state file, relative to the inventory directory ("" = none)
    host_key = "host"  # key of a person's host in the state file's ``people`` entries
    assumptions = {}  # capacity assumptions: name -> (default, kind, help), see capacity.py
    playbook = ""  # playbooks/<name>.yml applying it alone ("" = none)
    optional = False  # True: an inventory without its hosts simply does not use it (no shortfall)

    # --- who and where
    def wants(self, person):
        """Whether ``person`` gets this capability (active people only)."""
        return bool(self.need) and person.active and self.need in person.needs

    def users(self, inputs):
        """The roster's people this capability serves (``wants``), in roster order: worked out once per
        Inputs (a plan task's checks, plan and slices each asked again: 50,000 people a pass)."""
        return inputs.memo(f"{self.name}.users", lambda: [p for p in inputs.roster.people if self.wants(p)])

    def hosts(self, inputs):
        return list(inputs.groups.get(self.host_group, [])) if self.host_group else []

    def configured(self, inputs):
        """Whether the inventory provides this capability at all (hosts, or nothing to host)."""
        return bool(self.hosts(inputs)) or not self.host_group

    def in_use(self, inputs):
        """Whether reports, notices and status show it: configured, or missing where people need it."""
        return self.configured(inputs) or not self.optional

    def people_in_state(self, state):
        """Ids the public state file lists as served (``people:`` mapping), active or kept."""
        people = state.get("people") if isinstance(state, dict) else None
        return {str(k) for k in people} if isinstance(people, dict) else set()

    def client_networks(self, inputs):
        """Networks its clients' addresses come from (a VPN's pools): what internal hosts admit."""
        return []

    def host_of(self, entry):
        value = entry.get(self.host_key) if isinstance(entry, dict) else None
        return value if isinstance(value, str) else ""

    def hosts_for(self, person, entry, inputs):
        """The hosts that must carry ``person``: the one their state entry names (or the group's only
        host); a capability whose every host serves everyone overrides this."""
        hosts = self.hosts(inputs)
        host = self.host_of(entry) or (hosts[0] if len(hosts) == 1 and not self.state_file else "")
        return [host] if host else []

    # --- checks and plans (pure: read inputs, never write)
    def validate(self, inputs):
        """Findings on this capability's inputs: its settings and the roster data it uses."""
        return Findings()

    def shortfalls(self, inputs):
        """Problems that stop its planner from placing everyone (capacity, pools, licences): what
        would fail its playbook. ``teleshift plan`` shows them as capacity checks."""
        return []

    def capacity(self, inputs, assumptions):
        """[capacity.Check] from this capability's own planner."""
        return []

    def placements(self, inputs):
        """(host -> people count, [unplaced ids]) from the planner, for the capacity plan."""
        return {}, []

    # --- what a person receives and sees
    def text(self, lang):
        return self.texts.get(lang) or self.texts.get("en") or {"title": self.name}

    def notice(self, person, kit, lang, inputs=None):
        """The NoticeSection of ``person`` (kit: ``pathlib.Path`` of their kit subdirectory for this
        capability), or None when they do not get it. Default: the kit's files, summary and secrets."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import kit_files, kit_rows

        if not self.wants(person):
            return None
        files = kit_files(kit)
        rows, secrets = kit_rows(files)
        text = self.text(lang)
        return NoticeSection(self.name, text.get("title", self.name), ready=bool(files),
                             steps=list(text.get("steps", [])), rows=rows, secrets=secrets,
                             files=[f"{self.name}/{p.name}" for p in files])

    # --- the hosts as they are
    def host_query(self):
        """argv run once on each host of the capability to read its state (None: nothing to read)."""
        return None

    def parse_host(self, text):
        """Facts read from ``host_query``'s output (a pure parser, unit tested)."""
        return {}

    def person_status(self, person, host, entry, facts, inputs):
        """CapStatus of ``person`` from their state ``entry`` and their host's ``facts``."""
        return CapStatus(self.name, "unknown", host)

    # --- the readiness report
    def report_section(self, inputs, read_host):
        """An extra report section {"title", "tables": [{"caption", "header", "rows"}]} or None;
        ``read_host(capability, host)`` gives the host's parsed facts (None when unreadable)."""
        return None


def register(capability):
    """Add (or replace) a capability; returns it, so a module can end with ``register(Mine())``."""
    if not capability.name:
        raise ValueError("a capability needs a name")
    _REGISTRY[capability.name] = capability
    return capability


def unregister(name):
    _REGISTRY.pop(name, None)


def _load_builtin():
    if _LOADED:
        return
    for module in BUILTIN:
        importlib.import_module(f"{_PACKAGE}.{module}")
    _LOADED.append(True)


def capabilities():
    """Every registered capability, in ``order``."""
    _load_builtin()
    return sorted(_REGISTRY.values(), key=lambda c: (c.order, c.name))


def get(name):
    _load_builtin()
    return _REGISTRY[name]


def names():
    return [c.name for c in capabilities()]


def needs():
    """The roster needs every capability serves, in order, each once."""
    return tuple(dict.fromkeys(c.need for c in capabilities() if c.need))


def select(selected=None):
    """The capabilities named in ``selected`` (all when None); unknown names raise KeyError."""
    caps = capabilities()
    if selected is None:
        return caps
    wanted = set(selected)
    unknown = wanted - {c.name for c in caps}
    if unknown:
        raise KeyError(", ".join(sorted(unknown)))
    return [c for c in caps if c.name in wanted]
