# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Action plugin for teleshift.toolkit.phone_plan: telephony compiled once on the controller for every PBX
(see plugins/modules/phone_plan.py for the documentation). Each PBX's slice holds its configuration files,
which carry SIP passwords and PINs read from the people's kits: the playbook registers this task with
no_log, and the files travel only as the asterisk_config module's no_log argument."""
from __future__ import annotations

import base64

from ansible.plugins.action import ActionBase

from ansible_collections.teleshift.toolkit.plugins.module_utils import inputs as front_door
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils import telephony as T
from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import format_problems

# The planner's defaults for the PBX's own settings (roles/asterisk_pbx/defaults documents the same).
DEFAULTS = {"asterisk_pbx_sounds_dir": "/var/lib/asterisk/sounds/teleshift", "asterisk_pbx_rtp_start": 10000,
            "asterisk_pbx_rtp_end": 10999}


def read_only_secrets(kits_root):
    """Check mode writes no kit: existing secrets are used, missing ones show as a placeholder."""
    def secret_of(person, name):
        return (read_kit_file(kits_root, person.id, "phone", name) or "").strip() or "(new secret)"
    return secret_of


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("roster",))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        cap = registry.get("phone")
        inputs = front_door.open_plan(self._templar, task_vars, self._task.args, result, cap.name,
                                      "Telephony input is invalid, nothing was changed.")
        if inputs is None:
            return result
        warnings = result.pop("warnings", [])
        check = bool(self._task.check_mode)
        kits_root = inputs.kits_root()
        left_out = []
        people = T.phone_people(inputs.roster, left_out)
        warnings += [str(w) for w in left_out]
        policy = cap.policy(inputs)[0]
        secret_of = read_only_secrets(kits_root) if check else T.kit_secrets(kits_root)
        hosts, kits_changed = {}, []
        for index, host in enumerate(cap.hosts(inputs)):
            try:
                hosts[host], changed = self.host_slice(inputs, host, people, policy, secret_of,
                                                       write=not check and index == 0)
            except ValueError as exc:  # a damaged kit secret or an unreadable prompt: named, nothing sent
                result.update(failed=True, msg=f"{host}: {exc}; nothing was changed")
                return result
            kits_changed += changed
        result.update(changed=bool(kits_changed), hosts=hosts, endpoints=len(people), kits_changed=len(kits_changed),
                      msg=f"{len(people)} line(s) on {len(hosts)} PBX(es); {len(kits_changed)} softphone kit(s) "
                          "written" + (" (check mode: nothing written)" if check else ""))
        if warnings:  # people left out of queues, ring groups... (never blocks)
            result["warnings"] = warnings
        return result

    def host_slice(self, inputs, host, people, policy, secret_of, write):
        """Everything one PBX applies, and the ids whose softphone kit changed (written for the first PBX:
        the kit names one server)."""
        setting = {k: inputs.hostvar(host, k, v) for k, v in DEFAULTS.items()}
        pbx_vars = {k: v for k, v in (inputs.hostvars.get(host) or {}).items() if k in T.PBX_VARS}
        cfg, problems, _left_out = T.load_pbx_config(
            pbx_vars, policy, {p.id: p.extension for p in people}, source=f"inventory ({host})",
            roster_ids={p.id: p.extension for p in inputs.roster.people})
        if problems:  # validated above: only a race with the inventory could get here
            raise ValueError(format_problems(problems))
        policy = T.pbx_policy(policy, cfg)
        plan = T.plan_pbx(people, cfg, policy, secret_of, sounds_dir=setting["asterisk_pbx_sounds_dir"],
                          rtp=(int(setting["asterisk_pbx_rtp_start"]), int(setting["asterisk_pbx_rtp_end"])))
        sip_address = inputs.hostvar(host, "asterisk_pbx_sip_address") or inputs.hostvar(host, "ansible_host", host)
        changed = T.write_phone_kits(inputs.kits_root(), people, secret_of, sip_address, cfg.sip_port, cfg) \
            if write else []
        prompts = []
        for prompt in plan.prompts:
            if "recording" in prompt:
                path = inputs.path(prompt["recording"])
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise ValueError(f"prompt {prompt['name']}: cannot read {path}: {exc.strerror}") from None
                prompts.append({"name": prompt["name"], "recording_b64": base64.b64encode(data).decode("ascii")})
            else:
                prompts.append({"name": prompt["name"], "text": prompt["text"], "language": prompt["language"]})
        labels = {}
        astdb = T.desired_astdb(people, cfg, policy, labels)
        exts = {p.id: p.extension for p in people}
        return {
            "files": plan.files,
            "labels": {ext: f"person {pid}" for ext, pid in plan.people.items()},
            "prompts": prompts,
            "sounds_dir": setting["asterisk_pbx_sounds_dir"],
            "expect_endpoints": len(people) + 1,
            "astdb": astdb,
            "astdb_labels": labels,
            "queue_agents": {q.name: [exts[a] for a in q.agents if a in exts] for q in cfg.queues},
        }, changed
