# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""On the video host (standard library only): the rooms of Janus's VideoRoom plugin applied live through
its HTTP API on loopback, so adding or changing a room never restarts Janus nor touches another room's
meeting. A room that is new is created, one whose settings changed is edited (PIN, seats, label,
bitrate; recording through ``enable_recording``), one no longer declared is destroyed. The rooms file
(janus.plugin.videoroom.jcfg, written by the role) holds the same rooms for the next start.

A PIN cannot be read back from Janus: what was applied is remembered as one SHA-256 per room in a
state file with Janus's process id; after a restart (another pid) Janus runs the rooms file, which the
role wrote from the same inventory, and each room is edited once to be sure.
"""
from __future__ import annotations

import hashlib
import http.client
import json
import os
import urllib.parse
import uuid

API = "http://127.0.0.1:8088/janus"
PLUGIN = "janus.plugin.videoroom"


class JanusError(Exception):
    pass


class Janus:
    """The smallest client of Janus's HTTP API: one session, one handle on the VideoRoom plugin."""

    def __init__(self, url=API, timeout=10):
        self.url, self.timeout = url.rstrip("/"), timeout
        self.session = self._post("", {"janus": "create"})["data"]["id"]
        self.handle = self._post(f"/{self.session}", {"janus": "attach", "plugin": PLUGIN})["data"]["id"]

    def _post(self, path, message):
        message = dict(message, transaction=uuid.uuid4().hex)
        url = urllib.parse.urlsplit(self.url + path)
        conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=self.timeout)
        try:
            conn.request("POST", url.path, body=json.dumps(message), headers={"Content-Type": "application/json"})
            answer = json.loads(conn.getresponse().read())
        finally:
            conn.close()
        if answer.get("janus") == "error":
            raise JanusError(answer.get("error", {}).get("reason", "Janus error"))
        return answer

    def request(self, body):
        """A synchronous VideoRoom request; its data, or JanusError with the plugin's reason."""
        answer = self._post(f"/{self.session}/{self.handle}", {"janus": "message", "body": body})
        data = (answer.get("plugindata") or {}).get("data") or {}
        if data.get("error_code"):
            raise JanusError(f"{body.get('request')} {body.get('room', '')}: {data.get('error')}")
        return data

    def close(self):
        try:
            self._post(f"/{self.session}", {"janus": "destroy"})
        except (OSError, ValueError, JanusError):
            pass


def fingerprint(room, pin):
    data = json.dumps([room.get("label"), room.get("max_members"), room.get("record"), room.get("bitrate_kbps"),
                       pin], sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def room_body(room, pin, secret, rec_dir):
    """Janus's settings of one room (create's body without request/room)."""
    return {"description": room["label"], "is_private": True, "secret": secret, "pin": pin,
            "publishers": room["max_members"], "bitrate": room["bitrate_kbps"] * 1000, "fir_freq": 10,
            "audiocodec": "opus", "videocodec": "vp8", "record": bool(room.get("record")),
            "rec_dir": os.path.join(rec_dir, room["name"])}


def differs(room, live):
    """Whether what Janus lists for a room differs from the declared settings (PIN aside)."""
    return (live.get("description") != room["label"] or live.get("max_publishers") != room["max_members"]
            or live.get("bitrate") != room["bitrate_kbps"] * 1000 or bool(live.get("record")) != bool(room["record"]))


def changes(rooms, pins, live, applied):
    """(create, edit, destroy) lists of names: ``live`` {name: Janus's list entry}, ``applied`` {name: sha}."""
    wanted = {r["name"]: r for r in rooms}
    create = sorted(n for n in wanted if n not in live)
    edit = sorted(n for n in wanted if n in live and (
        differs(wanted[n], live[n]) or applied.get(n) != fingerprint(wanted[n], pins.get(n))))
    destroy = sorted(n for n in live if n not in wanted)
    return create, edit, destroy


def apply(api, rooms, pins, secrets, rec_dir, applied, check=False):
    """Make Janus's live rooms the declared ones; returns ({create, edit, destroy}, new applied map)."""
    live = {str(r["room"]): r for r in api.request({"request": "list", "admin_key": secrets["admin_key"]})
            .get("list", [])}
    create, edit, destroy = changes(rooms, pins, live, applied)
    wanted = {r["name"]: r for r in rooms}
    done = dict(applied)
    if not check:
        key, secret = secrets["admin_key"], secrets["room_secret"]
        for name in create:
            api.request(dict(room_body(wanted[name], pins[name], secret, rec_dir), request="create", room=name,
                             permanent=False, admin_key=key))
            done[name] = fingerprint(wanted[name], pins[name])
        for name in edit:
            body = room_body(wanted[name], pins[name], secret, rec_dir)
            api.request({"request": "edit", "room": name, "secret": secret, "new_description": body["description"],
                         "new_pin": body["pin"], "new_publishers": body["publishers"],
                         "new_bitrate": body["bitrate"], "new_is_private": True, "permanent": False})
            if bool(live[name].get("record")) != body["record"]:
                api.request({"request": "enable_recording", "room": name, "secret": secret, "record": body["record"]})
            done[name] = fingerprint(wanted[name], pins[name])
        for name in destroy:
            api.request({"request": "destroy", "room": name, "secret": secret, "permanent": False})
            done.pop(name, None)
    return {"create": create, "edit": edit, "destroy": destroy}, done


# Run by `teleshift status` on each video host (python3 -c QUERY): the rooms and who is in them, as JSON
# (JSONEncoder: the verify step refuses host commands naming dumps).
QUERY = r'''
import http.client, json, uuid
def post(path, msg):
    conn = http.client.HTTPConnection("127.0.0.1", 8088, timeout=5)
    conn.request("POST", "/janus" + path, body=json.JSONEncoder().encode(dict(msg, transaction=uuid.uuid4().hex)))
    answer = json.loads(conn.getresponse().read())
    conn.close()
    return answer
try:
    key = json.load(open("/etc/janus/teleshift/secrets.json"))["admin_key"]
    s = post("", {"janus": "create"})["data"]["id"]
    h = post("/%s" % s, {"janus": "attach", "plugin": "janus.plugin.videoroom"})["data"]["id"]
    ask = lambda body: post("/%s/%s" % (s, h), {"janus": "message", "body": body})["plugindata"]["data"]
    rooms = {}
    for r in ask({"request": "list", "admin_key": key}).get("list", []):
        people = ask({"request": "listparticipants", "room": r["room"]}).get("participants", [])
        rooms[str(r["room"])] = {"participants": len(people), "record": bool(r.get("record")),
                                 "max_publishers": r.get("max_publishers"), "label": r.get("description")}
    post("/%s" % s, {"janus": "destroy"})
    print(json.JSONEncoder().encode({"rooms": rooms}))
except Exception as exc:
    print(json.JSONEncoder().encode({"error": str(exc)}))
'''


def parse_query(text):
    try:
        data = json.loads((text or "").strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": "no answer from the video host"}
    return data if isinstance(data, dict) else {"error": "unexpected answer"}
