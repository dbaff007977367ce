# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The remote-desktop capability (xrdp session hosts), as the registry sees it: placement and session
limits from the desktop planner (plugins/module_utils/desktop.py), memory and CPU checks on that
placement, the notice section from the person's kit, status from one read of the session host."""
from __future__ import annotations

import math

from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.kit_view import kit_files, read_text
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Problem

SESSION_PROCESSES = {"Xorg", "Xvnc", "xrdp-chansrv", "openbox", "xfce4-session", "startwm.sh"}
GROUP_PREFIX = "ts-"  # xrdp_host_service_group_prefix's default (the role documents the same)
USERS_GROUP = "tsusers"  # xrdp_host_users_group's default: the group xrdp admits


def parse_accounts(text):
    """Output of Desktop.host_query() -> {"users": {login: primary gid}, "groups": {group: (gid, {members})},
    "status": {login: passwd -S letter (L locked, P password, NP none)}, "sessions": {login: [processes]}}."""
    users, groups, status, sessions, section = {}, {}, {}, {}, None
    for line in text.splitlines():
        if line.startswith("== "):
            section = line[3:].strip()
            continue
        fields = line.split(":")
        if section == "passwd" and len(fields) >= 4 and fields[0]:
            users[fields[0]] = fields[3]
        elif section == "group" and len(fields) >= 4 and fields[0]:
            groups[fields[0]] = (fields[2], {m for m in fields[3].split(",") if m})
        elif section in ("status", "ps"):
            parts = line.split(None, 1)
            if len(parts) == 2:
                if section == "status":
                    status[parts[0]] = parts[1].split()[0]
                else:
                    sessions.setdefault(parts[0], []).append(parts[1].strip())
    return {"users": users, "groups": groups, "status": status, "sessions": sessions}


def account_problems(login, groups_wanted, facts, host):
    """Why ``login`` is not in place on ``host`` (None when it is): present, not locked, in every group
    (a member, or the group is its primary group)."""
    if login not in facts["users"]:
        return f"no account {login} on {host}: the desktop capability has not created it"
    if facts["status"].get(login) == "L":
        return f"account {login} is locked on {host}"
    primary = facts["users"][login]
    missing = [g for g in groups_wanted if g not in facts["groups"]
               or (login not in facts["groups"][g][1] and facts["groups"][g][0] != primary)]
    if missing:
        return f"{login} is not in group(s) {', '.join(missing)} on {host}"
    return None


class Desktop(registry.Capability):
    name = "desktop"
    need = "desktop"
    order = 20
    host_group = "desktop_hosts"
    state_file = "state/desktop.yml"
    host_key = "host"
    playbook = "desktop"
    variables = ("xrdp_host_",)
    assumptions = {
        "teleshift_capacity_desktop_concurrency": (
            1.0, "fraction", "share of desktop users with a session open at the same time"),
        "teleshift_capacity_desktop_session_mib": (
            400, "positive", "memory per light remote-desktop session (MiB)"),
        "teleshift_capacity_desktop_session_cores": (
            0.1, "positive", "CPU cores per light remote-desktop session"),
        "teleshift_capacity_desktop_reserved_mib": (
            1024, "nonneg", "memory kept for the host's own system on each desktop host (MiB)"),
        "teleshift_capacity_desktop_memory_mib": (
            16384, "positive", "memory of a desktop host that sets no teleshift_desktop_memory_mib (MiB)"),
        "teleshift_capacity_desktop_cpus": (
            4, "positive", "CPU cores of a desktop host that sets no teleshift_desktop_cpus"),
    }
    texts = {
        "fr": {"title": "Bureau à distance",
               "steps": ["Activez d'abord le VPN.",
                         "Windows : double-cliquez sur le fichier .rdp ci-dessous (Connexion Bureau à distance). "
                         "Linux : ouvrez-le avec Remmina. Mac : Microsoft Remote Desktop.",
                         "Saisissez votre identifiant et le mot de passe ci-dessous. Votre bureau habituel s'ouvre.",
                         "Pour quitter, utilisez « Se déconnecter » dans le menu : fermer la fenêtre laisse la "
                         "session ouverte."],
               "host": "Serveur", "user": "Utilisateur"},
        "en": {"title": "Remote desktop",
               "steps": ["First activate the VPN.",
                         "Windows: double-click the .rdp file below (Remote Desktop Connection). Linux: open it "
                         "with Remmina. Mac: Microsoft Remote Desktop.",
                         "Enter your user id and the password below. Your usual desktop opens.",
                         "To leave, use \"Log out\" in the menu: closing the window keeps the session open."],
               "host": "Server", "user": "User"},
    }

    def served_in_state(self, state):
        people = state.get("people") if isinstance(state, dict) else None
        if not isinstance(people, dict):
            return set()
        return {str(k) for k, v in people.items() if not (isinstance(v, dict) and v.get("status") == "locked")}

    # --- the planner's view
    def capacities(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop

        hosts = self.hosts(inputs)
        return inputs.memo("desktop.capacities", lambda: desktop.host_capacities(
            hosts, {h: inputs.hostvars.get(h, {}) for h in hosts}))

    def plan(self, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils import desktop

        def build():
            capacities, _problems = self.capacities(inputs)
            return desktop.plan_desktop(inputs.roster.people, capacities, inputs.state(self),
                                        source=inputs.roster.source, wanted=self.users(inputs),
                                        unusable=self.unusable(inputs))
        return inputs.memo("desktop.plan", build)

    def unusable(self, inputs):
        """Its users whose id cannot be a login on a session host (a system account has it)."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import unusable_login

        return inputs.memo("desktop.unusable", lambda: [p for p in self.users(inputs) if unusable_login(p)])

    def validate(self, inputs):
        found = registry.Findings()
        users = self.users(inputs)
        if not users and not self.hosts(inputs):
            return found
        from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import reserved_login_problems

        _capacities, problems = self.capacities(inputs)
        found.problems += problems + reserved_login_problems(users, inputs.roster.source, self.unusable(inputs))
        if users and not inputs.kits_root():
            found.problems.append(Problem(inputs.source, 0, "teleshift_kits_dir",
                                          "must be set: where each person's desktop password is written"))
        return found

    def host_slices(self, inputs, plan):
        """{host: everything that session host applies} (public data): its people as one JSON text
        [login, GECOS name, service] (templated in microseconds whatever its size), the kits root,
        the services' packages and shortcuts, and the networks whose clients may open sessions.
        One pass over the plan for every host."""
        import json

        from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import gecos, service_group

        hosts = self.hosts(inputs)
        services = inputs.settings.services
        packages = sorted({pkg for policy in services.values() for pkg in (policy or {}).get("desktop_packages", [])})
        clients = list(dict.fromkeys(net for cap in registry.capabilities() for net in cap.client_networks(inputs)))
        kits = str(inputs.kits_root() or "")
        rows = {host: [] for host in hosts}
        for pid in sorted(plan.hosts):
            row = rows.get(plan.hosts[pid])
            if row is not None:
                person = plan.people[pid]
                row.append([pid, gecos(person.full_name), person.service])
        slices = {}
        for host in hosts:
            prefix = inputs.hostvar(host, "xrdp_host_service_group_prefix", GROUP_PREFIX)
            links = {service_group(prefix, svc): policy["desktop_links"] for svc, policy in sorted(services.items())
                     if (policy or {}).get("desktop_links")}
            slices[host] = {"people": json.dumps(rows[host], separators=(",", ":")), "kits_dir": kits,
                            "packages": list(packages), "links": links, "allowed_networks": list(clients)}
        return slices

    def shortfalls(self, inputs):
        if self.capacities(inputs)[1]:
            return []
        return [p for p in self.plan(inputs).problems if p.field != "id"]

    def placements(self, inputs):
        plan = self.plan(inputs)
        load = {h: 0 for h in self.hosts(inputs)}
        for host in plan.hosts.values():
            load[host] = load.get(host, 0) + 1
        return load, list(plan.unplaced)

    def capacity(self, inputs, assumptions):
        a = assumptions
        from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import Check

        hosts = self.hosts(inputs)
        if not hosts:
            return []
        capacities, _problems = self.capacities(inputs)
        load, unplaced = self.placements(inputs)
        concurrency = a["teleshift_capacity_desktop_concurrency"]
        session_mib = a["teleshift_capacity_desktop_session_mib"]
        session_cores = a["teleshift_capacity_desktop_session_cores"]
        checks = []
        for host in hosts:
            mem = inputs.hostvar(host, "teleshift_desktop_memory_mib", a["teleshift_capacity_desktop_memory_mib"])
            cpus = inputs.hostvar(host, "teleshift_desktop_cpus", a["teleshift_capacity_desktop_cpus"])
            usable = max(0, mem - a["teleshift_capacity_desktop_reserved_mib"])
            sessions = math.ceil(load.get(host, 0) * concurrency)
            checks.append(Check("desktop", "sessions", host, load.get(host, 0), capacities.get(host, 0), "people",
                                "session limit (xrdp_host_max_sessions)"))
            checks.append(Check("desktop", "memory", host, sessions * session_mib, usable, "MiB",
                                f"{sessions} session(s) x {session_mib} MiB"))
            checks.append(Check("desktop", "cpu", host, round(sessions * session_cores, 2), cpus, "cores",
                                f"{sessions} session(s) x {session_cores} core"))
        users = sum(load.values()) + len(unplaced)
        checks.append(Check("desktop", "sessions", "", users, sum(capacities.values()), "people",
                            "all desktop hosts together"))
        return checks

    # --- the notice
    def notice(self, person, kit, lang, inputs=None):
        section = super().notice(person, kit, lang, inputs)
        if section is None or not section.ready:
            return section
        for path in kit_files(kit):
            if path.suffix == ".rdp":
                section.data["rdp_file"] = f"{self.name}/{path.name}"
                for line in (read_text(path) or "").splitlines():
                    key, _sep, value = line.partition(":s:")
                    if key.strip() in ("full address", "username"):
                        section.data[key.strip().replace(" ", "_")] = value.strip()
                break
        section.data["labels"] = self.text(lang)
        return section

    # --- the session host as it is
    def host_query(self):
        # passwd -S (status letters, never a hash) needs root: without it accounts and groups are still read
        return ["sh", "-c", "echo '== passwd'; getent passwd; echo '== group'; getent group; "
                            "echo '== status'; passwd -S -a 2>/dev/null || true; "
                            "echo '== ps'; ps -eo user:32=,comm= 2>/dev/null || true"]

    def parse_host(self, text):
        return parse_accounts(text)

    def person_status(self, person, host, entry, facts, inputs):
        from ansible_collections.teleshift.toolkit.plugins.module_utils.desktop import service_group

        status = registry.CapStatus(self.name, "unknown", host)
        user = entry.get("login") or person.id
        status.facts.update({"desktop host": host or "(not assigned)", "user": user})
        if not host:
            status.problems.append("no desktop host assigned yet (state/desktop.yml)")
            return status
        if facts is None:
            return status
        groups = [inputs.hostvar(host, "xrdp_host_users_group", USERS_GROUP),
                  service_group(inputs.hostvar(host, "xrdp_host_service_group_prefix", GROUP_PREFIX), person.service)]
        session = sorted(SESSION_PROCESSES.intersection(facts["sessions"].get(user, [])))
        status.facts["session open"] = f"yes ({', '.join(session)})" if session else "no"
        why = account_problems(user, groups, facts, host)
        status.verified = why is None
        status.state = "ok" if why is None else "problem"
        if why:
            status.problems.append(why)
        return status


registry.register(Desktop())
