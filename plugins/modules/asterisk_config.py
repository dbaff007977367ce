#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The files are compiled on the controller by teleshift.toolkit.phone_plan (from the roster and the kits).
from __future__ import annotations

DOCUMENTATION = r"""
module: asterisk_config
short_description: Install teleshift's Asterisk configuration files and prompts, validated, by reload only
description:
  - Why it exists - the PBX configuration for thousands of extensions is rendered in one pass on the
    controller and holds SIP secrets; Ansible's template/copy would show secrets in diffs and restart
    nothing selectively. This module compares each file, names the changed blocks (C(person amartin),
    C(queue social)) without ever showing content, checks the new files before they go live, writes
    them atomically (0640 root:asterisk), reloads only the Asterisk modules whose file changed (never a
    restart, so calls in progress stay up), verifies the result, and restores the previous files and
    reloads again if the check fails.
  - Also makes the attendants' prompts, from text with espeak-ng or from a supplied recording, converted
    with sox to the 8 kHz mono WAV Asterisk plays; a prompt is remade only when its source changed.
  - Supports check mode and diff mode.
version_added: 0.1.0
options:
  files:
    description: File name (in O(directory)) to its full content. Contains secrets; never logged.
    type: dict
    required: true
  labels:
    description: Block key to label, for the result (e.g. extension to C(person amartin)).
    type: dict
    default: {}
  directory:
    description: Asterisk's configuration directory.
    type: path
    default: /etc/asterisk
  group:
    description: Group owning the files (Asterisk reads them through it).
    type: str
    default: asterisk
  prompts:
    description: Prompts to make, each C({name, text, language}) or C({name, recording_b64}).
    type: list
    elements: dict
    default: []
  sounds_dir:
    description: Where prompts go (C(<name>.wav)).
    type: path
    default: /var/lib/asterisk/sounds/teleshift
  expect_endpoints:
    description: PJSIP endpoints Asterisk must report after a reload of pjsip.conf (0 skips the check).
    type: int
    default: 0
  reload:
    description: Reload Asterisk modules whose file changed (false when Asterisk is not running yet).
    type: bool
    default: true
  ami_credentials_file:
    description: manager.d file of the local manager user teleshift writes the AstDB with. Made once on the
      PBX with a random secret (which never leaves it) when absent.
    type: path
    default: /etc/asterisk/manager.d/teleshift.conf
  required_applications:
    description: Dialplan applications that must be registered (checked before anything changes).
    type: list
    elements: str
    default: [VoiceMail, Queue, ConfBridge, Gosub, AddQueueMember]
  wait:
    description: Seconds to wait for Asterisk's CLI to answer (just started, or restarted for a new module set).
    type: int
    default: 60
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Install the compiled PBX configuration (this PBX's slice of the telephony plan)
  teleshift.toolkit.asterisk_config:
    files: "{{ hostvars.localhost.teleshift_phone_plan.hosts[inventory_hostname].files }}"
    prompts: "{{ hostvars.localhost.teleshift_phone_plan.hosts[inventory_hostname].prompts }}"
"""

RETURN = r"""
files:
  description: Per changed file, the blocks added, changed and removed (names only).
  returned: always
  type: dict
reloads:
  description: The Asterisk CLI reload commands that ran.
  returned: always
  type: list
prompts:
  description: Names of the prompts made or remade.
  returned: always
  type: list
"""

import base64
import grp
import hashlib
import os
import secrets
import shutil
import string
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.asterisk import (
    RELOADS, check_pjsip, diff_blocks, parse_conf, wait_for)
from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.results import brief_invocation


def read(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def write_config(path, data, gid, mode=0o640):
    """root:asterisk, durable: the PBX reads these at reload and at boot."""
    atomic_write(path, data, mode=mode, owner=0, group=gid, durable=True)


def label(block, labels):
    kind, _sep, name = block.partition(" ")
    return labels.get(name, block) if kind == "person" and name in labels else block


def prompt_source(prompt):
    if prompt.get("recording_b64"):
        return b"recording:" + base64.b64decode(prompt["recording_b64"])
    return f"espeak-ng:{prompt.get('language', 'fr')}:{prompt.get('text', '')}".encode("utf-8")


def make_prompt(module, prompt, sounds_dir, gid):
    target = os.path.join(sounds_dir, prompt["name"] + ".wav")
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "source.wav")
        if prompt.get("recording_b64"):
            with open(source, "wb") as stream:
                stream.write(base64.b64decode(prompt["recording_b64"]))
        else:
            voice = {"fr": "fr", "en": "en"}.get(prompt.get("language"), "fr")
            rc, _out, err = module.run_command(["espeak-ng", "-v", voice, "-s", "150", "-w", source, prompt["text"]])
            if rc != 0:
                module.fail_json(msg=f"espeak-ng failed for prompt {prompt['name']}: {err}")
        converted = os.path.join(tmp, "prompt.wav")
        rc, _out, err = module.run_command(["sox", source, "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                                            converted])
        if rc != 0:
            module.fail_json(msg=f"sox could not convert prompt {prompt['name']}: {err}")
        with open(converted, "rb") as stream:
            write_config(target, stream.read(), gid, 0o644)


def cli(module, command):
    rc, out, err = module.run_command(["asterisk", "-rx", command])
    return rc, out + err


def ensure_ami_user(path, gid, check_mode):
    """The local manager user (127.0.0.1 only, system class). Returns True when it had to be created."""
    if os.path.exists(path):
        return False
    if not check_mode:
        secret = "".join(secrets.choice(string.ascii_letters + string.digits) for _i in range(32))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        write_config(path, (f"[teleshift]\nsecret = {secret}\ndeny = 0.0.0.0/0.0.0.0\n"
                            "permit = 127.0.0.1/255.255.255.255\nread = system\nwrite = system\n").encode(), gid)
    return True


def ready(module, applications):
    """None when the CLI answers and every application is registered, else what is missing."""
    rc, out = cli(module, "core show applications")
    if rc != 0 or "-= Registered Asterisk Applications =-" not in out:
        return "Asterisk's CLI does not answer"
    names = {line.split(":", 1)[0].strip().lower() for line in out.splitlines() if ":" in line}
    missing = [a for a in applications if a.lower() not in names]
    return f"applications not registered: {', '.join(missing)}" if missing else None


def verify(module, changed_files, expect_endpoints):
    """Problems seen in the running Asterisk after the reloads."""
    problems = []
    if "pjsip.conf" in changed_files and expect_endpoints:
        rc, out = cli(module, "pjsip show endpoints")
        found = [line for line in out.splitlines() if line.strip().startswith("Objects found:")]
        count = int(found[-1].split(":")[1]) if found else 0
        if rc != 0 or count != expect_endpoints:
            problems.append(f"Asterisk reports {count} PJSIP endpoints after the reload, expected {expect_endpoints}")
    if "extensions.conf" in changed_files:
        rc, out = cli(module, "dialplan show ts-desks")
        if rc != 0 or "There is no existence" in out:
            problems.append("the dialplan did not load (context ts-desks is missing)")
    return problems


def main():
    module = AnsibleModule(
        argument_spec={
            "files": {"type": "dict", "required": True, "no_log": True},
            "labels": {"type": "dict", "default": {}},
            "directory": {"type": "path", "default": "/etc/asterisk"},
            "group": {"type": "str", "default": "asterisk"},
            "prompts": {"type": "list", "elements": "dict", "default": []},
            "sounds_dir": {"type": "path", "default": "/var/lib/asterisk/sounds/teleshift"},
            "expect_endpoints": {"type": "int", "default": 0},
            "reload": {"type": "bool", "default": True},
            "ami_credentials_file": {"type": "path", "default": "/etc/asterisk/manager.d/teleshift.conf"},
            "required_applications": {"type": "list", "elements": "str",
                                      "default": ["VoiceMail", "Queue", "ConfBridge", "Gosub", "AddQueueMember"]},
            "wait": {"type": "int", "default": 60},
        },
        supports_check_mode=True,
    )
    p = module.params
    labels = {str(k): str(v) for k, v in p["labels"].items()}
    try:
        gid = grp.getgrnam(p["group"]).gr_gid
    except KeyError:
        module.fail_json(msg=f"group {p['group']} does not exist: is Asterisk installed?")

    # 0. Asterisk must answer, with every application the dialplan uses
    state = {"why": "not checked"}

    def is_ready():
        state["why"] = ready(module, p["required_applications"])
        return state["why"] is None

    if not wait_for(is_ready, timeout=p["wait"], interval=1.0):
        module.fail_json(msg=f"Asterisk is not ready: {state['why']}; nothing was changed")
    ami_created = ensure_ami_user(p["ami_credentials_file"], gid, module.check_mode)

    # 1. what differs (files: names of blocks only; prompts: by source fingerprint)
    changes, new_bytes, old_bytes = {}, {}, {}
    for name, content in sorted(p["files"].items()):
        if "/" in name:
            module.fail_json(msg=f"file names are relative to {p['directory']}: {name!r}")
        path = os.path.join(p["directory"], name)
        data = content.encode("utf-8")
        old = read(path)
        st = os.stat(path) if old is not None else None
        if old == data and st.st_gid == gid and (st.st_mode & 0o777) == 0o640:
            continue
        blocks = diff_blocks(old.decode("utf-8", "replace") if old is not None else None, content)
        changes[name] = {k: [label(b, labels) for b in v] for k, v in blocks.items()}
        new_bytes[name], old_bytes[name] = data, old
    todo_prompts = []
    for prompt in p["prompts"]:
        stamp = hashlib.sha256(prompt_source(prompt)).hexdigest()
        stamp_path = os.path.join(p["sounds_dir"], f".{prompt['name']}.source")
        if read(stamp_path) != stamp.encode() or read(os.path.join(p["sounds_dir"], prompt["name"] + ".wav")) is None:
            todo_prompts.append((prompt, stamp_path, stamp))

    result = {"changed": bool(changes or todo_prompts or ami_created), "files": changes, "reloads": [],
              "prompts": [pr["name"] for pr, _path, _stamp in todo_prompts], "ami_user_created": ami_created,
              "invocation": brief_invocation({k: v for k, v in p.items() if k != "files"}, ("labels", "prompts"))}
    if ami_created and "manager.conf" not in new_bytes and p["reload"] and not module.check_mode:
        result["reloads"].append(RELOADS["manager.conf"])
        cli(module, RELOADS["manager.conf"])
    if module._diff and result["changed"]:
        def lines(kinds):
            return "".join(f"{f}: {b}\n" for f, c in changes.items() for k in kinds for b in c[k])
        result["diff"] = {"before": lines(("removed", "changed")), "after": lines(("added", "changed"))
                          + "".join(f"prompt {n}\n" for n in result["prompts"]),
                          "before_header": "blocks (content hidden: secrets)",
                          "after_header": "blocks (content hidden: secrets)"}
    if not result["changed"] or module.check_mode:
        module.exit_json(**result)

    # 2. check the new files before they go live
    for name, data in new_bytes.items():
        try:
            parse_conf(data.decode("utf-8"))
        except ValueError as exc:
            module.fail_json(msg=f"{name} is not valid Asterisk configuration: {exc}; nothing was changed")
    if "pjsip.conf" in new_bytes:
        problems = check_pjsip(new_bytes["pjsip.conf"].decode("utf-8"))
        if problems:
            module.fail_json(msg="pjsip.conf: " + "; ".join(problems) + "; nothing was changed")

    # 3. prompts (new files only: nothing plays them until the dialplan refers to them)
    if todo_prompts:
        os.makedirs(p["sounds_dir"], mode=0o755, exist_ok=True)
        if shutil.which("espeak-ng") is None and any("text" in pr for pr, _path, _stamp in todo_prompts):
            module.fail_json(msg="espeak-ng is not installed")
        for prompt, stamp_path, stamp in todo_prompts:
            make_prompt(module, prompt, p["sounds_dir"], gid)
            write_config(stamp_path, stamp.encode(), gid, 0o644)

    # 4. go live, reload what changed, verify; roll back on failure
    for name, data in new_bytes.items():
        write_config(os.path.join(p["directory"], name), data, gid)
    if p["reload"]:
        failed = []
        for name in new_bytes:
            command = RELOADS.get(name)
            if command:
                rc, out = cli(module, command)
                result["reloads"].append(command)
                if rc != 0 or "failed" in out.lower() or "unable" in out.lower():
                    failed.append(f"{command}: {out.strip()}")
        problems = failed + verify(module, set(new_bytes), p["expect_endpoints"])
        if problems:
            for name, old in old_bytes.items():
                path = os.path.join(p["directory"], name)
                if old is None:
                    os.unlink(path)
                else:
                    write_config(path, old, gid)
            for name in old_bytes:
                if RELOADS.get(name):
                    cli(module, RELOADS[name])
            module.fail_json(msg="the new configuration did not load; previous files restored and reloaded: "
                             + "; ".join(problems), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
