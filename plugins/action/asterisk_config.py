# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.asterisk_config: compiles the PBX's configuration on the controller
(roster + inventory + secrets kept in each person's kit), then hands the whole result to the module of
the same name on the PBX in one call. Secrets travel only as a no_log module argument."""
from __future__ import annotations

import base64

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils.controller import inventory_dir, plain
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file, resolve_path
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems
from ansible_collections.teleshift.toolkit.plugins.module_utils.settings import load_settings


def compile_pbx(action, task_vars):
    """(people, cfg, policy, kits_root, warnings) for the PBX host this task runs on; fails on invalid
    input. Warnings (text) name what is left out of the configuration, e.g. a revoked queue agent."""
    templar = action._templar

    def var(name, default=None):
        return templar.template(task_vars[name]) if name in task_vars else default

    settings = load_settings({k: var(k) for k in ("teleshift_services", "teleshift_phone_region")
                              if k in task_vars})
    base = inventory_dir(task_vars)
    # the roster through the front door: a roster file, or the directory (teleshift_roster_source)
    roster = front_door.build_inputs({k: plain(var(k)) for k in task_vars if k.startswith("teleshift_")}, {}, {},
                                     base, roster=action._task.args.get("roster")).roster
    policy, problems = T.load_number_policy({"teleshift_phone_policy": var("teleshift_phone_policy")}
                                            if "teleshift_phone_policy" in task_vars else {}, settings.region)
    warnings = []
    people = T.phone_people(roster, warnings)
    cfg, pbx_problems, left_out = T.load_pbx_config(
        {k: var(k) for k in T.PBX_VARS if k in task_vars}, policy, {p.id: p.extension for p in people},
        source=f"inventory ({task_vars.get('inventory_hostname')})",
        roster_ids={p.id: p.extension for p in roster.people})
    policy = T.pbx_policy(policy, cfg)
    problems = (settings.problems + roster.problems + problems + pbx_problems
                + T.extension_problems(roster, policy) + T.forwarding_problems(roster, policy))
    if problems:
        raise AnsibleActionFail("Telephony input is invalid, nothing was changed.\n" + format_problems(problems))
    kits_root = resolve_path(var("teleshift_kits_dir", "kits"), base)
    return people, cfg, policy, kits_root, [str(w) for w in warnings + left_out]


def _read_only_secrets(kits_root):
    """Check mode writes no kit: existing secrets are used, missing ones show as a placeholder."""
    def secret_of(person, name):
        return (read_kit_file(kits_root, person.id, "phone", name) or "").strip() or "(new secret)"
    return secret_of


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster", "sounds_dir", "sip_address", "reload", "rtp_start", "rtp_end",
                             "files", "expect_endpoints", "labels", "prompts"))
    _MODULE_ARGS = ("files", "expect_endpoints", "labels", "prompts", "sounds_dir", "reload")

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        if "files" in self._task.args:  # explicit files: install exactly these (no roster compile)
            args = {k: v for k, v in self._task.args.items() if k in self._MODULE_ARGS}
            result.update(self._execute_module(module_name="teleshift.toolkit.asterisk_config",
                                               module_args=args, task_vars=task_vars))
            return result
        people, cfg, policy, kits_root, warnings = compile_pbx(self, task_vars)
        sounds_dir = self._task.args.get("sounds_dir") or "/var/lib/asterisk/sounds/teleshift"
        secret_of = T.kit_secrets(kits_root) if not self._task.check_mode else _read_only_secrets(kits_root)
        rtp = (int(self._task.args.get("rtp_start", 10000)), int(self._task.args.get("rtp_end", 10999)))
        try:
            plan = T.plan_pbx(people, cfg, policy, secret_of, sounds_dir=sounds_dir, rtp=rtp)
        except ValueError as exc:  # a damaged kit secret: named, nothing sent
            raise AnsibleActionFail(f"{exc}; nothing was changed") from None
        sip_address = self._task.args.get("sip_address") or task_vars.get("inventory_hostname")
        kits_changed = []
        if not self._task.check_mode:
            kits_changed = T.write_phone_kits(kits_root, people, secret_of, sip_address,
                                              cfg.sip_port, cfg)
        prompts = []
        base = inventory_dir(task_vars)
        for prompt in plan.prompts:
            if "recording" in prompt:
                path = resolve_path(prompt["recording"], base)
                try:
                    with open(path, "rb") as stream:
                        data = stream.read()
                except OSError as exc:
                    raise AnsibleActionFail(f"prompt {prompt['name']}: cannot read {path}: {exc.strerror}")
                prompts.append({"name": prompt["name"], "recording_b64": base64.b64encode(data).decode("ascii")})
            else:
                prompts.append({"name": prompt["name"], "text": prompt["text"], "language": prompt["language"]})
        module_args = {
            "files": plan.files,
            "labels": {ext: f"person {pid}" for ext, pid in plan.people.items()},
            "prompts": prompts,
            "sounds_dir": sounds_dir,
            "expect_endpoints": len(people) + 1,
            "reload": self._task.args.get("reload", True),
        }
        module_result = self._execute_module(module_name="teleshift.toolkit.asterisk_config",
                                             module_args=module_args, task_vars=task_vars)
        result.update(module_result)
        if warnings:  # people left out of queues, ring groups... (never blocks)
            result["warnings"] = result.get("warnings", []) + warnings
        result["kits_changed"] = len(kits_changed)
        result["endpoints"] = len(people)
        return result
