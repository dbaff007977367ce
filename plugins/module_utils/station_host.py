# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""A telework station (laptop), host side: what teleshift put on it and for whom, and the changes that
bring it to one person's files. Standard library only (runs on the laptop).

The manifest (``/var/lib/teleshift/station/manifest.json``) lists the person, every file teleshift
wrote (path and SHA-256), the directories it owns and the units it runs. Wiping is removing exactly
those: a laptop handed to someone else loses its previous person's files, keys and passwords (the
units are stopped first, so no tunnel keeps the old key in memory); files the manifest does not name
are never touched, except unknown files in the directories teleshift owns (the softphone's own state).
"""
from __future__ import annotations

import hashlib
import json
import os

MANIFEST_VERSION = 1


def digest(data):
    return hashlib.sha256(data).hexdigest()


def file_digest(path):
    try:
        with open(path, "rb") as stream:
            return digest(stream.read())
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return ""


def read_manifest(path):
    """The manifest, or an empty one (a stock laptop)."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
    except (FileNotFoundError, ValueError):
        return {"person": "", "files": {}, "dirs": [], "units": []}
    return {"person": str(data.get("person") or ""), "files": dict(data.get("files") or {}),
            "dirs": list(data.get("dirs") or []), "units": list(data.get("units") or [])}


def manifest_text(person, files, dirs, units):
    return json.dumps({"version": MANIFEST_VERSION, "person": person, "files": dict(sorted(files.items())),
                       "dirs": sorted(dirs), "units": sorted(units)}, indent=1) + "\n"


def changes(manifest, person, wanted, actual, owned_extra, units):
    """What to do, from the manifest, the wanted files ({path: {sha256, mode, uid, gid}}), the files as
    they are ({path: (sha256 or "", mode, uid, gid)}), unknown files in owned directories and the wanted
    units ({unit: [paths]}). Returns a dict: write, remove, stop, restart, enable, disable, person_changed."""
    person_changed = manifest["person"] != person
    write = sorted(p for p, w in wanted.items()
                   if actual.get(p, ("", 0, -1, -1)) != (w["sha256"], w["mode"], w["uid"], w["gid"]))
    remove = sorted(p for p in manifest["files"] if p not in wanted and actual.get(p, ("",))[0])
    if person_changed or not person:
        remove = sorted(set(remove) | set(owned_extra))
    old_units = set(manifest["units"])
    stop = sorted(old_units - set(units)) if not person_changed else sorted(old_units)
    content_changed = set(write) - {p for p, w in wanted.items() if actual.get(p, ("",))[0] == w["sha256"]}
    restart = sorted(u for u, paths in units.items()
                     if person_changed or content_changed & set(paths))
    return {"write": write, "remove": remove, "stop": stop, "restart": restart,
            "enable": sorted(units), "disable": sorted(old_units - set(units)), "person_changed": person_changed}


def diff_text(person, files):
    """The diff's side: the person and the files, never their content."""
    lines = [f"person: {person or '(none: a free laptop)'}"]
    lines += [f"{path} sha256:{sha[:12]}" for path, sha in sorted(files.items())]
    return "\n".join(lines) + "\n"


def remove_file(path):
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def unknown_files(dirs, known):
    """Files under ``dirs`` that are not in ``known`` (the softphone's own state, a person's history)."""
    found = []
    for folder in dirs:
        for root, _subdirs, names in os.walk(folder):
            found += [os.path.join(root, n) for n in names if os.path.join(root, n) not in known]
    return sorted(found)
