# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The second factor's plan on the controller (the work of the ``mfa_plan`` action), shared with
``vpn_plan``, which runs it in the same task as the VPN's (vpn.yml: ``gate: true``, one roster read and
one templating of the inventory instead of two, and the WireGuard placements straight from its plan).

``plan_second_factor(inputs, args, write, diff, result)`` fills ``result`` as the ``mfa_plan`` action
returns it: who must prove a second factor, their enrolment kits and each gateway's gate slice."""
from __future__ import annotations

import datetime
import hashlib
import json
import os

from ansible_collections.teleshift.toolkit.plugins.module_utils import background, registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_index, write_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa_plan import (
    KIT, SECRET_FILE, SECRET_IN_KIT, enrol, gate_slices, slice_digest, summary_text)
from ansible_collections.teleshift.toolkit.plugins.module_utils.state import save_state

INDEX = ".mfa-kits.json"


def _digest(text):
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def id_list(value):
    if not value:
        return []
    items = value.split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()]


def plan_second_factor(inputs, args, write, diff, result):
    """Plan the second factor from ``inputs`` (validated for it) into ``result``; ``args``: the mfa_plan
    action's (``rotate``). Writes kits and state only with ``write``. Returns ``result``."""
    cap = registry.get("mfa")
    settings = cap.settings(inputs)
    entries = cap.gate_entries(inputs) if settings.enabled else {}
    gateways = {gw: {"enabled": False, "port": 0} for gw in inputs.hosts("vpn_gateways")}
    if not settings.enabled:
        result.update(changed=False, enabled=False, gateways=gateways, enrolled=0,
                      msg="second factor off (teleshift_mfa_enabled is false)")
        return result
    people = {p.id: p for p in inputs.roster.people}
    ids = sorted(p.id for p in cap.users(inputs))  # required(p, settings), worked out once a task
    rotate = id_list(args.get("rotate", inputs.all_vars.get("teleshift_mfa_rotate")))
    unknown = sorted(set(rotate) - set(ids))
    if unknown:
        result.update(failed=True, msg="teleshift_mfa_rotate names people who need no second factor: "
                                       + ", ".join(unknown))
        return result
    root = str(inputs.kits_root())
    on_gateway = {pid: gw for gw, e in entries.items() for pid in e.get("people", {})}
    # one summary per gateway (its gate's address), not one text and digest built per person
    texts = {gw: summary_text(settings, (entries.get(gw) or {}).get("listen", [])) for gw in entries}
    texts.setdefault("", summary_text(settings, []))
    digests = {text: _digest(text) for text in set(texts.values())}
    summaries = {pid: texts.get(on_gateway.get(pid, ""), texts[""]) for pid in ids}
    # <kits>/.mfa-kits.json: person -> digest of their summary after a successful run; a person whose
    # digest is unchanged and whose secret is there is skipped without reading their kit
    index_path = os.path.join(root, INDEX)
    index = read_index(index_path) if write else {}
    holders = inputs.kit_holders(SECRET_IN_KIT)  # looked up at the start, or None
    done = {pid for pid in ids if pid not in rotate and index.get(pid) == digests[summaries[pid]]
            and (pid in holders if holders is not None else os.path.exists(os.path.join(root, pid, KIT, SECRET_FILE)))}
    secrets, new = enrol([pid for pid in ids if pid not in done], root, settings.issuer, rotate=rotate, write=write)
    secrets.clear()
    exempt = cap.exempt_people(inputs)
    slices = gate_slices(entries, people, settings, enrolled=set(ids),
                         exempt={pid for _reason, some in exempt.values() for pid in some})
    for gw, part in slices.items():
        part["revoke"] = [pid for pid in rotate if f"\n{pid} " in f"\n{part['people']}"]
        part["digest"] = slice_digest(part)  # what the playbooks compare to send a slice once per run
        gateways[gw] = part
    kits_changed = 0
    previous = inputs.state(cap)
    before = previous.get("people") or {}
    desktop_state = inputs.state("desktop") if "desktop" in registry.names() else {}
    today = datetime.date.today().isoformat()
    state = {"people": {}, "exempt": {}}
    placed = (desktop_state.get("people") or {}) if settings.desktop else {}
    enrolled = state["people"]
    for pid in ids:
        entry = {}
        gw = on_gateway.get(pid)
        if gw:
            entry["gateway"] = gw
        desk = (placed.get(pid) or {}).get("host") if placed and "desktop" in people[pid].needs else None
        if desk:
            entry["desktop"] = desk
        entry["since"] = (before.get(pid) or {}).get("since") or today
        enrolled[pid] = entry
        if write and summaries[pid] and pid not in done:
            kits_changed += write_kit_file(root, pid, KIT, "summary.yml", summaries[pid])
    if write:
        new_index = {pid: digests[summaries[pid]] for pid in ids}
        if new_index != index:  # read at the next run only: written beside the rest of the task
            background.submit(f"writing {index_path}", lambda: atomic_write(
                index_path, json.dumps(new_index, sort_keys=True), mode=0o600, dir_mode=0o700))
    for service, (reason, exempt_ids) in exempt.items():  # exemption(p, settings), once a task
        for pid in exempt_ids:
            state["exempt"][pid] = {"service": service, "reason": reason}
    state_changed = state != previous
    if write and state_changed:
        save_state(str(inputs.path(cap.state_file)), state, differs=True)  # previous: the file, parsed
    added = sorted(set(state["people"]) - set(before))
    removed = sorted(set(before) - set(state["people"]))
    result.update(
        changed=bool(state_changed or (write and (new or kits_changed))), enabled=True, gateways=gateways,
        enrolled=len(ids), new=sorted(new), rotated=sorted(rotate), added=added, removed=removed,
        exempt=sorted(state["exempt"]), state_file=str(inputs.path(cap.state_file)),
        msg=(f"second factor: {len(ids)} people enrolled ({len(new)} new secret(s)), "
             f"{len(state['exempt'])} exempt; {len(added)} added, {len(removed)} removed"
             + ("" if write else " (check mode: nothing written)")))
    if diff and (added or removed):
        result["diff"] = {"before": "".join(f"{pid}\n" for pid in sorted(before)),
                          "after": "".join(f"{pid}\n" for pid in sorted(state["people"])),
                          "before_header": f"{cap.state_file} (enrolled)", "after_header": "after"}
    return result


def plan_along(inputs, result, key, write, diff):
    """The second factor planned in another plan's task (vpn_plan's gate, desktop_plan's mfa): its result
    goes under ``key`` of that task's ``result``, its change and message merged. Returns (True, its diff
    or None), or (False, None) when it failed (``result`` says why)."""
    return finish_along(start_along(inputs, write, diff), result, key)


def start_along(inputs, write, diff):
    """``plan_along``'s work, started beside the rest of the task (module_utils/background.py): the
    second factor's plan reads only what ``inputs`` holds now (the roster, the states and placements of
    this task's plan, the kits' look-up, waited for here); ``finish_along`` takes its answer."""
    if inputs.presence is not None:
        inputs.presence.wait()  # its answer read here, never by the child
    return background.beside("the second factor's plan", lambda: plan_second_factor(inputs, {}, write, diff, {}))


def finish_along(started, result, key):
    """``plan_along``'s end: the answer of ``start_along`` merged into ``result`` under ``key``."""
    found = started.result()
    if found.get("failed"):
        result.update(failed=True, msg=found["msg"])
        return False, None
    found_diff = found.pop("diff", None)
    result.update({key: found}, changed=result["changed"] or found["changed"], msg=f"{result['msg']}; {found['msg']}")
    return True, found_diff
