# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
# The work is done on the controller by the action plugin of the same name (plugins/action/video_plan.py).
from __future__ import annotations

DOCUMENTATION = r"""
module: video_plan
short_description: Plan the video rooms (Janus VideoRoom) on the controller
description:
  - Reads C(teleshift_video_rooms) (rooms, PINs from the vault, members and services, seats, recording) and
    each C(video_hosts) host's C(video_rooms_*) variables through teleshift's front door, and validates them
    (unknown people or services, bad PINs stop the run before any host changes).
  - Places each room on a video host (sticky, C(state/video.yml)), lists who may join which room, and
    writes each member's C(<kits>/<id>/video/rooms.yml) (links and PINs, 0600) for their notice.
  - Returns each host's public slice (rooms without PINs); the role gets the PINs from the inventory, no_log.
  - Check mode computes everything and writes nothing.
version_added: 0.3.0
options:
  roster:
    description: Roster file; relative to the inventory directory. Defaults to C(teleshift_roster_file).
    type: path
  kits_dir:
    description: Kits root; defaults to C(teleshift_kits_dir) (relative to the inventory directory).
    type: path
author: teleshift contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Plan the video rooms
  teleshift.toolkit.video_plan:
  register: teleshift_video_plan
"""

RETURN = r"""
hosts:
  description: Each video host's slice - its address and rooms (name, label, max_members, record, bitrate_kbps).
  returned: success
  type: dict
rooms:
  description: Room name -> host.
  returned: success
  type: dict
"""
