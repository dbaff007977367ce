# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Parsed-file cache on the controller: a 5,000-person roster takes ~0.7 s to validate and its state
file ~0.4 s to parse; every controller-side task of a run needs them. The parsed result is kept
(pickle, 0600, in a 0700 directory of the user's cache) under a digest of the file's bytes, the
parser's own source and its options, so any change to any of them parses again.

Location: $TELESHIFT_CACHE_DIR, else $XDG_CACHE_HOME/teleshift, else ~/.cache/teleshift.
TELESHIFT_CACHE=0 turns it off. Entries not used for 7 days are removed.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import time

from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write

MAX_AGE = 7 * 24 * 3600


def cache_dir():
    base = os.environ.get("TELESHIFT_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "teleshift")
    return base


def enabled():
    return os.environ.get("TELESHIFT_CACHE", "1") not in ("0", "false", "no", "off")


def remember(kind, data, options, value):
    """Store ``value`` as what ``data`` parses to (a writer that has the parsed form in hand, e.g. a
    state file just written, spares the next run the parse)."""
    if enabled():
        parsed(kind, data, options, lambda: value, refresh=True)


def parsed(kind, data, options, build, refresh=False):
    """``build()`` for the bytes ``data``, from the cache when the same bytes, options and parser
    were seen before. ``options`` must be repr-stable (sorted tuples, strings)."""
    if not enabled():
        return build()
    key = hashlib.sha256(repr((kind, options)).encode() + b"\0" + data).hexdigest()[:40]
    base = cache_dir()
    path = os.path.join(base, f"{kind}-{key}.pickle")
    try:
        if refresh:
            raise OSError("refresh")
        with open(path, "rb") as stream:
            value = pickle.load(stream)  # noqa: S301 - our own 0600 file in a 0700 directory
        os.utime(path)
        return value
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        pass
    value = build()
    try:
        os.makedirs(base, mode=0o700, exist_ok=True)
        atomic_write(path, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL), mode=0o600, dir_mode=0o700)
        _prune(base, kind)
    except OSError:
        pass  # a read-only home: no cache, same result
    return value


def _prune(base, kind):
    now = time.time()
    for name in os.listdir(base):
        if name.startswith(f"{kind}-"):
            full = os.path.join(base, name)
            try:
                if now - os.stat(full).st_mtime > MAX_AGE:
                    os.unlink(full)
            except OSError:
                pass


def _memo_path(kind, options):
    key = hashlib.sha256(repr((kind, options)).encode()).hexdigest()[:40]
    return os.path.join(cache_dir(), f"{kind}-memo-{key}.pickle")


def load_memo(kind, options):
    """A dict kept between runs (e.g. each roster row -> its parsed person), {} when none."""
    if not enabled():
        return None
    try:
        with open(_memo_path(kind, options), "rb") as stream:
            memo = pickle.load(stream)  # noqa: S301 - our own 0600 file in a 0700 directory
        return memo if isinstance(memo, dict) else {}
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError):
        return {}


def save_memo(kind, options, memo):
    if not enabled() or memo is None:
        return
    try:
        os.makedirs(cache_dir(), mode=0o700, exist_ok=True)
        atomic_write(_memo_path(kind, options), pickle.dumps(memo, protocol=pickle.HIGHEST_PROTOCOL),
                     mode=0o600, dir_mode=0o700)
    except OSError:
        pass
