# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""What a notice may show of one capability's kit subdirectory (``<kits>/<id>/<capability>/``):
its files, ``summary.yml`` as label/value rows, and the secrets a person must type (files named
``password``, ``secret``, ``pin``... or ``*.password``). Reading only; hidden files are skipped and
large files are listed, never read. Used by every capability's notice section."""
from __future__ import annotations

import os
import re
from pathlib import Path

SECRET_NAMES = re.compile(r"^(password|secret|sip_password|pin)(\.txt)?$|\.password$")
MAX_FILE = 256 * 1024


def read_text(path):
    try:
        if path.stat().st_size > MAX_FILE:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def kit_files(kit):
    """The visible files of a kit subdirectory, sorted ([] when it does not exist)."""
    try:
        with os.scandir(kit) as entries:  # no stat per entry, unlike Path.iterdir + is_file
            names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())
    except OSError:
        return []
    kit = Path(kit)
    return [kit / name for name in names]


def kit_rows(files):
    """(rows, secrets): ``summary.yml`` as [(label, value)] and secret files as [(name, value)]."""
    import yaml

    rows, secrets = [], []
    for path in files:
        if path.name == "summary.yml":
            try:
                data = yaml.safe_load(read_text(path) or "") or {}
            except yaml.YAMLError:
                data = {}
            if isinstance(data, dict):
                rows += [(str(k), str(v)) for k, v in data.items()]
        elif SECRET_NAMES.search(path.name):
            value = (read_text(path) or "").strip()
            if value:
                secrets.append((path.name.replace(".txt", ""), value))
    return rows, secrets


def ini_values(text, keys):
    """First ``key = value`` of each wanted key (lower case) in an INI-like text."""
    found = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        name = name.strip().lower()
        if sep and name in keys and name not in found:
            found[name] = value.strip()
    return found
