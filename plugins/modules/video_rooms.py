#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
from __future__ import annotations

DOCUMENTATION = r"""
module: video_rooms
short_description: Apply the video rooms to a running Janus live, through its API (no restart)
description:
  - Makes the rooms of Janus's VideoRoom plugin the declared ones through Janus's HTTP API on loopback
    - new rooms created, changed ones edited (PIN, seats, label, bitrate, recording), removed ones
    destroyed - so a room added or changed never interrupts a meeting in another room.
  - The rooms file the role writes holds the same rooms for Janus's next start; this module does not
    write it. What was applied (one SHA-256 per room, never a PIN) is kept in I(state_file) with Janus's
    process id; after a restart each room is edited once.
  - Check mode lists what would change and changes nothing.
version_added: 0.3.0
options:
  rooms:
    description: The host's rooms (teleshift.toolkit.video_plan's slice) - name, label, max_members, record,
      bitrate_kbps.
    type: list
    elements: dict
    required: true
  pins:
    description: Room name -> PIN (from the vault).
    type: dict
    required: true
  secrets_file:
    description: JSON file on the host with C(admin_key) and C(room_secret) (made by the role).
    type: path
    default: /etc/janus/teleshift/secrets.json
  state_file:
    description: Where what was applied is remembered.
    type: path
    default: /var/lib/teleshift/video/applied.json
  rec_dir:
    description: Recordings directory (each room its subdirectory; used only by rooms with C(record)).
    type: path
    default: /var/lib/janus/recordings
  api:
    description: Janus's HTTP API on loopback.
    type: str
    default: http://127.0.0.1:8088/janus
  unit:
    description: Janus's systemd unit (its main process id tells a restart).
    type: str
    default: janus
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Apply the rooms live
  teleshift.toolkit.video_rooms:
    rooms: "{{ video_rooms_slice.rooms }}"
    pins: "{{ video_rooms_pins }}"
"""

RETURN = r"""
created:
  description: Rooms created.
  returned: always
  type: list
  elements: str
edited:
  description: Rooms edited.
  returned: always
  type: list
  elements: str
destroyed:
  description: Rooms destroyed.
  returned: always
  type: list
  elements: str
"""

import json
import os
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.teleshift.toolkit.plugins.module_utils.video_host import Janus, JanusError, apply


def janus_pid(unit):
    proc = subprocess.run(["systemctl", "show", "-p", "MainPID", "--value", unit], capture_output=True, text=True,
                          timeout=30, check=False)
    return proc.stdout.strip()


def connect(url, seconds=30):
    """Janus's API, waited for (bounded) after a start or restart."""
    deadline, error = time.monotonic() + seconds, None
    while time.monotonic() < deadline:
        try:
            return Janus(url)
        except (OSError, ValueError, KeyError, JanusError) as exc:
            error = exc
            time.sleep(1)
    raise JanusError(f"Janus's API at {url} does not answer: {error}")


def main():
    module = AnsibleModule(argument_spec={
        "rooms": {"type": "list", "elements": "dict", "required": True},
        "pins": {"type": "dict", "required": True, "no_log": True},
        "secrets_file": {"type": "path", "default": "/etc/janus/teleshift/secrets.json"},
        "state_file": {"type": "path", "default": "/var/lib/teleshift/video/applied.json"},
        "rec_dir": {"type": "path", "default": "/var/lib/janus/recordings"},
        "api": {"type": "str", "default": "http://127.0.0.1:8088/janus"},
        "unit": {"type": "str", "default": "janus"},
    }, supports_check_mode=True)
    p = module.params
    rooms = p["rooms"]
    pins = {str(k): str(v) for k, v in p["pins"].items()}
    missing = sorted(r["name"] for r in rooms if not pins.get(r["name"]))
    if missing:
        module.fail_json(msg="no PIN given for room(s): " + ", ".join(missing))
    try:
        with open(p["secrets_file"], encoding="utf-8") as stream:
            secrets = json.load(stream)
    except (OSError, ValueError) as exc:
        if module.check_mode:
            module.exit_json(changed=bool(rooms), created=sorted(r["name"] for r in rooms), edited=[], destroyed=[],
                             msg=f"Janus is not set up yet ({exc})")
        module.fail_json(msg=f"cannot read {p['secrets_file']}: {exc}")
    pid = janus_pid(p["unit"])
    try:
        with open(p["state_file"], encoding="utf-8") as stream:
            known = json.load(stream)
    except (OSError, ValueError):
        known = {}
    applied = known.get("rooms", {}) if known.get("pid") == pid else {}
    try:
        api = connect(p["api"])
    except JanusError as exc:
        module.fail_json(msg=str(exc))
    try:
        done, now = apply(api, rooms, pins, secrets, p["rec_dir"], applied, check=module.check_mode)
    except (OSError, ValueError, KeyError, JanusError) as exc:
        module.fail_json(msg=f"applying the rooms through Janus's API failed: {exc}")
    finally:
        api.close()
    changed = any(done.values())
    if not module.check_mode and (changed or known.get("pid") != pid or known.get("rooms") != now):
        os.makedirs(os.path.dirname(p["state_file"]), mode=0o700, exist_ok=True)
        tmp = p["state_file"] + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as stream:
            json.dump({"pid": pid, "rooms": now}, stream, sort_keys=True)
        os.replace(tmp, p["state_file"])
    diff = {"before": "".join(f"{n}\n" for n in sorted(set(done["edit"] + done["destroy"]))),
            "after": "".join(f"{n}\n" for n in sorted(set(done["edit"] + done["create"]))),
            "before_header": "Janus rooms (live)", "after_header": "Janus rooms (live)"}
    module.exit_json(changed=changed, created=done["create"], edited=done["edit"], destroyed=done["destroy"],
                     diff=diff, msg=f"{len(rooms)} room(s): {len(done['create'])} created, {len(done['edit'])} "
                                    f"edited, {len(done['destroy'])} destroyed, live")


if __name__ == "__main__":
    main()
