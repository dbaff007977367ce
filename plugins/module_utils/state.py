# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Small public state files kept with the inventory (addresses, assigned hosts, public keys).

They must never drift and are reviewed in git: written atomically, keys sorted, one entry per line
where possible, a header saying what the file is. Never put a secret in one.
"""
from __future__ import annotations

import functools
import json
import re
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils import background
from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
from ansible_collections.teleshift.toolkit.plugins.module_utils.cache import parsed, remember

HEADER = "# Written by teleshift; public data only. Review changes in git; edit only to fix a mistake.\n"


@functools.cache
def _yaml():
    """PyYAML, imported on first use: state files are read and written on the controller only (where
    ansible-core brings PyYAML), and a module that imports this file must still load on a host without it.
    Returns (yaml, its loader, the cache options): libyaml's C loader when PyYAML has it (10x faster on a
    5,000-person state file; dump_state writes its own text)."""
    import yaml

    return yaml, getattr(yaml, "CSafeLoader", yaml.SafeLoader), (yaml.__version__,)


@functools.cache
def _resolver():
    """YAML's resolver, and the first characters that can make a plain scalar something else than a string."""
    yaml = _yaml()[0]
    return yaml.resolver.Resolver(), frozenset(yaml.resolver.Resolver.yaml_implicit_resolvers)


def load_state(path):
    path = Path(path)
    if not path.exists():
        return {}
    raw = path.read_bytes()
    yaml, loader, options = _yaml()
    data = parsed("state", raw, options,
                  lambda: yaml.load(raw.decode("utf-8"), Loader=loader) or {})  # a safe loader (above)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data


def dump_state(data):
    """The file's text: block mappings with sorted keys, one scalar per line, lists in flow style.

    Written here rather than by PyYAML's representer, which builds a node per value in Python
    (0.8 s for 5,000 people): scalars stay plain when YAML reads them back as the same string, and
    are JSON-quoted (a valid YAML double-quoted scalar) otherwise. load_state gives ``data`` back."""
    lines = [HEADER.rstrip("\n"), "---"]
    if not data:
        lines.append("{}")
    else:
        _emit_mapping(data, 0, lines)
    return "\n".join(lines) + "\n"


_PLAIN = re.compile(r"[A-Za-z0-9/+][A-Za-z0-9._/+=@-]*(?::[0-9]+)?")
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(value):
    if type(value) is str:  # the common case first, str subclasses are not  # pylint: disable=unidiomatic-typecheck
        return _text_scalar(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return _text_scalar(str(value))


@functools.lru_cache(maxsize=512)  # mapping keys and service names repeat 5,000 times
def _text_scalar(text):
    if not _PLAIN.fullmatch(text):
        return _quote(text)
    resolver, implicit_first = _resolver()
    if text[0] not in implicit_first or resolver.resolve(_yaml()[0].ScalarNode, text, (True, False)) == _STR_TAG:
        return text
    return _quote(text)


_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _quote(text):
    """A YAML double-quoted scalar: printable characters as they are, the rest escaped the YAML way
    (\\uXXXX or \\UXXXXXXXX; JSON's surrogate pairs would not read back)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() and char not in "\u2028\u2029\ufeff":
            out.append(char)
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    return '"' + "".join(out) + '"'


def _emit_mapping(mapping, indent, lines):
    pad = " " * indent
    for key in sorted(mapping, key=str):
        value = mapping[key]
        name = _scalar(key)
        if isinstance(value, dict) and value:
            lines.append(f"{pad}{name}:")
            _emit_mapping(value, indent + 2, lines)
        elif isinstance(value, dict):
            lines.append(f"{pad}{name}: {{}}")
        elif isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
            lines.append(f"{pad}{name}: {json.dumps(value, sort_keys=True)}")
        else:
            lines.append(f"{pad}{name}: {_scalar(value)}")


def save_state(path, data, differs=False):
    """Write ``data`` atomically; returns True when the file changed. ``differs``: the caller has just
    compared ``data`` with the file's parsed content (load_state) and found a difference, so it is not
    read and compared again (0.5 s for 50,000 people)."""
    path = Path(path)
    if not differs and path.exists() and load_state(path) == data:  # same data: nothing to write
        return False
    background.submit(f"writing {path}", _write_state, path, data)  # in a plan task: beside the rest
    return True


def _write_state(path, data):
    raw = dump_state(data).encode("utf-8")
    atomic_write(path, raw, mode=0o644, durable=True)
    remember("state", raw, _yaml()[2], data)  # the next run does not parse what we just wrote
