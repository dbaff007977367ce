# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Small public state files kept with the inventory (addresses, assigned hosts, public keys).

They must never drift and are reviewed in git: written atomically, keys sorted, one entry per line
where possible, a header saying what the file is. Never put a secret in one.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write  # noqa: F401 (re-exported)
from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import parsed, remember

# libyaml's C loader and dumper when PyYAML has them: 10x faster on a 5,000-person state file.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

_CACHE_OPTIONS = (yaml.__version__,)
HEADER = "# Written by teleshift; public data only. Review changes in git; edit only to fix a mistake.\n"


def load_state(path):
    path = Path(path)
    if not path.exists():
        return {}
    raw = path.read_bytes()
    data = parsed("state", raw, _CACHE_OPTIONS,
                  lambda: yaml.load(raw.decode("utf-8"), Loader=_LOADER) or {})  # noqa: S506 - a safe loader
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def dump_state(data):
    return HEADER + "---\n" + yaml.dump(data, Dumper=_DUMPER, sort_keys=True, allow_unicode=True,
                                           default_flow_style=False, width=200)


def save_state(path, data):
    """Write ``data`` atomically; returns True when the file changed."""
    path = Path(path)
    if path.exists() and load_state(path) == data:  # same data (parsed form cached): nothing to write
        return False
    text = dump_state(data)
    raw = text.encode("utf-8")
    atomic_write(path, raw, mode=0o644, durable=True)
    remember("state", raw, _CACHE_OPTIONS, data)  # the next run does not parse what we just wrote
    return True
