#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: cme_forwarding
short_description: Apply the roster's per-person call forwarding to Cisco Unified CME voice gateways
description:
  - Why it exists - many public bodies run Cisco CME gateways, and people who now work from home must
    still be reached on their desk number. This module makes every CME directory number of a roster
    extension forward the way the roster says (always, on busy, on no answer after N seconds, or not
    at all), from the same roster as the Asterisk PBX, without one task per person.
  - Runs on the controller (netmiko, device_type cisco_ios) and handles a list of gateways in one task,
    at most O(parallel) at a time; the roster is read and checked once, on the controller, by
    M(teleshift.toolkit.cme_plan), which hands every gateway the same O(people).
  - For each gateway it reads C(show running-config | section ephone-dn) and
    C(show running-config | section voice register dn), matches DNs to people by number, computes the
    minimal commands (C(call-forward all|busy|noan) for SCCP C(ephone-dn), C(call-forward b2bua ...) for SIP
    C(voice register dn), C(no call-forward ...) to clear), applies them, verifies by reading back and saves
    with C(write memory) only when something changed.
  - DNs whose number is in no roster line are never touched unless O(purge=true), which clears their
    forwarding (it never removes a DN).
  - A gateway that is unreachable, refuses the credentials or the enable secret, or rejects a command is
    reported with a clear error while the others converge; a rejected command rolls back what was
    applied on that gateway, which is then left unsaved. The task fails after all gateways ran if any failed.
  - Check mode reads the gateways and reports the commands that would run; diff mode shows, per gateway,
    the DN blocks before and after with the person each concerns. Passwords are never returned or logged.
version_added: 0.1.0
options:
  people:
    description:
      - The roster's forwarding, as M(teleshift.toolkit.cme_plan) compiles it on the controller (JSON text of
        [id, full_name, extension, forward_mode, forward_to, forward_delay, active, line] per person with an
        extension; inactive people get no forwarding). The module never reads the roster.
    type: raw
    required: true
  source:
    description: The roster's name, used to locate a refused target as C(source:line).
    type: str
    default: roster
  region:
    description:
      - Country for reading roster numbers written without +<country code>, and the gateways' country
        for dialling in national format (numbers elsewhere get the international access code).
    type: str
    default: FR
  gateways:
    description: The CME gateways to converge.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name used in results and diffs (usually the inventory hostname).
        type: str
        required: true
      host:
        description: Address or DNS name of the gateway's SSH server.
        type: str
        required: true
      port:
        description: SSH port.
        type: int
        default: 22
      username:
        description: SSH user.
        type: str
        required: true
      password:
        description: SSH password (keep it in a vault). Never returned or logged.
        type: str
        required: true
      secret:
        description: Enable secret, when the user does not log in at privilege 15. Never returned or logged.
        type: str
        default: ""
      device_type:
        description: netmiko device type.
        type: str
        default: cisco_ios
        choices: [cisco_ios, cisco_xe]
      dial_prefix:
        description: Overrides O(dial_prefix) for this gateway.
        type: str
      dial_format:
        description: Overrides O(dial_format) for this gateway.
        type: str
        choices: [national, e164]
      region:
        description: Overrides O(region) for dialling from this gateway.
        type: str
  dial_prefix:
    description: Digits the gateway dials first to get an outside line (for example C(0)).
    type: str
    default: ""
  dial_format:
    description:
      - C(national) dials numbers of O(region) in national format (C(+33612345678) -> C(0612345678)) and
        other numbers with the international access code; C(e164) sends C(+33612345678) as is.
    type: str
    default: national
    choices: [national, e164]
  purge:
    description: Also clear the forwarding of DNs whose number is in no roster line.
    type: bool
    default: false
  policy:
    description:
      - The number policy (the inventory's C(teleshift_phone_policy)), against toll fraud. A forwarding
        target it refuses (premium rate, international, short code, emergency number... unless allowed)
        fails the run before any gateway is contacted, naming the roster line and field.
    type: dict
    default: {}
  own_numbers:
    description: The organisation's own numbers (e.g. the PBX trunk's DIDs), never a forwarding target.
    type: list
    elements: str
    default: []
  save:
    description: Run C(write memory) on a gateway whose configuration changed.
    type: bool
    default: true
  parallel:
    description: How many gateways are handled at the same time (threads), between 1 and 64.
    type: int
    default: 8
  conn_timeout:
    description: Seconds allowed to open the SSH session and log in.
    type: int
    default: 10
  read_timeout:
    description: Seconds allowed for one command's output.
    type: int
    default: 60
notes:
  - Tested against an emulated IOS/CME command line (tests/emulated/ios_cme.py), not a real gateway.
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply the roster's forwarding to the CME gateways
  teleshift.toolkit.cme_forwarding:
    people: "{{ hostvars.localhost.teleshift_cme_plan.people }}"
    dial_prefix: "0"
    gateways:
      - name: cme-paris
        host: 192.0.2.10
        username: teleshift
        password: "{{ vault_cme_password }}"
        secret: "{{ vault_cme_enable_secret }}"
"""

RETURN = r"""
gateways:
  description: One result per gateway, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The gateway's name.
      type: str
    changed:
      description: The gateway's configuration changed (or would, in check mode).
      type: bool
    failed:
      description: Something went wrong on this gateway (see error).
      type: bool
    error_kind:
      description: unreachable, authentication, enable, read, rejected, verify, save, roster, settings or error.
      type: str
    error:
      description: What went wrong, without any password.
      type: str
    commands:
      description: The configuration lines sent (or that would be sent in check mode).
      type: list
    people:
      description: Person ids whose forwarding is added, changed or removed (dn:NUMBER for DNs not in the roster).
      type: dict
    saved:
      description: write memory ran.
      type: bool
    warnings:
      description: What was left as is, e.g. forwarding on a DN no roster line names (purge clears it).
      type: list
    rolled_back:
      description: After a failure, the forwarding read before the run was put back.
      type: bool
not_found:
  description: Active people with forwarding whose extension is on none of the gateways (only when all were read).
  returned: always
  type: list
  elements: str
"""

import dataclasses

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.cisco_cme import (
    Dialing, Gateway, check_dialing, converge_gateways, parse_lines)
from ansible_collections.teleshift.toolkit.plugins.module_utils.telephony import (
    check_number, load_number_policy, own_numbers)

GATEWAY_OPTIONS = dict(
    name=dict(type="str", required=True),
    host=dict(type="str", required=True),
    port=dict(type="int", default=22),
    username=dict(type="str", required=True),
    password=dict(type="str", required=True, no_log=True),
    secret=dict(type="str", default="", no_log=True),
    device_type=dict(type="str", default="cisco_ios", choices=["cisco_ios", "cisco_xe"]),
    dial_prefix=dict(type="str"),
    dial_format=dict(type="str", choices=["national", "e164"]),
    region=dict(type="str"),
)


def build_gateways(params):
    """Gateway objects from the module parameters, and the problems found in them."""
    gateways, problems, names = [], [], set()
    for index, item in enumerate(params["gateways"]):
        name = item["name"]
        if name in names:
            problems.append(f"gateways[{index}]: the name {name!r} is used twice")
        names.add(name)

        def pick(key, item=item):
            return item[key] if item.get(key) is not None else params[key]

        dialing = Dialing(region=pick("region"), prefix=pick("dial_prefix"), fmt=pick("dial_format"),
                          purge=params["purge"])
        problems += [f"gateways[{index}] ({name}): {p}" for p in check_dialing(dialing)]
        gateways.append(Gateway(
            name=name, host=item["host"], port=item["port"], username=item["username"],
            password=item["password"], secret=item["secret"] or "", device_type=item["device_type"],
            dialing=dialing, conn_timeout=params["conn_timeout"], read_timeout=params["read_timeout"]))
    if not 1 <= params["parallel"] <= 64:
        problems.append("parallel must be between 1 and 64")
    return gateways, problems


def main():
    module = AnsibleModule(
        argument_spec=dict(
            people=dict(type="raw", required=True),
            source=dict(type="str", default="roster"),
            region=dict(type="str", default="FR"),
            gateways=dict(type="list", elements="dict", required=True, options=GATEWAY_OPTIONS),
            dial_prefix=dict(type="str", default=""),
            dial_format=dict(type="str", default="national", choices=["national", "e164"]),
            purge=dict(type="bool", default=False),
            policy=dict(type="dict", default={}),
            own_numbers=dict(type="list", elements="str", default=[]),
            save=dict(type="bool", default=True),
            parallel=dict(type="int", default=8),
            conn_timeout=dict(type="int", default=10),
            read_timeout=dict(type="int", default=60),
        ),
        supports_check_mode=True,
    )
    params = module.params
    gateways, problems = build_gateways(params)
    if problems:
        module.fail_json(msg="Invalid gateway settings, no gateway was contacted:\n  " + "\n  ".join(problems),
                         gateways=[], not_found=[])
    policy, problems = load_number_policy({"teleshift_phone_policy": params["policy"]}, params["region"],
                                          source="policy")
    policy = dataclasses.replace(policy, own_numbers=own_numbers(params["own_numbers"], params["region"]))
    try:
        people = parse_lines(params["people"])
    except ValueError as exc:
        module.fail_json(msg=f"Invalid people, no gateway was contacted: {exc}", gateways=[], not_found=[])
    problems = [str(p) for p in problems]
    for line in people:  # the same refusal as preflight's, here too (the module may be called alone)
        why = check_number(line.forward_to, policy) if line.active and line.forward_mode != "none" else None
        if why:
            problems.append(f"{params['source']}:{line.line}: forward_to: {why}")
    if problems:
        module.fail_json(msg=f"{len(problems)} problem(s) found, no gateway was contacted:\n  "
                         + "\n  ".join(problems), gateways=[], not_found=[])

    results = converge_gateways(gateways, people, check_mode=module.check_mode, save=params["save"],
                                parallel=params["parallel"], policy=policy)

    diffs = []
    for res in results:
        before, after = res.pop("before", ""), res.pop("after", "")
        if before != after:
            diffs.append({"before_header": f"{res['name']}: DNs before", "before": before,
                          "after_header": f"{res['name']}: DNs after", "after": after})
    not_found = []
    if results and not any(r["failed"] and "matched" not in r for r in results):
        matched = set().union(*(set(r.get("matched", ())) for r in results))
        not_found = [p.id for p in people if p.active and p.forward_mode != "none" and p.id not in matched]
    for res in results:
        res.pop("matched", None)
        for warning in res.get("warnings", []):
            module.warn(f"{res['name']}: {warning}")

    changed = any(r["changed"] for r in results)
    failed = [r for r in results if r["failed"]]
    summary = (f"{len(results)} gateway(s): {sum(r['changed'] for r in results)} "
               f"{'would change' if module.check_mode else 'changed'}, {len(failed)} failed")
    output = dict(changed=changed, gateways=results, not_found=not_found)
    if module._diff:
        output["diff"] = diffs
    if failed:
        details = "; ".join(f"{r['name']}: {r.get('error_kind')}: {r.get('error')}" for r in failed)
        module.fail_json(msg=f"{summary}: {details}", **output)
    module.exit_json(msg=summary, **output)


if __name__ == "__main__":
    main()
