# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Parsed-file cache on the controller: a 5,000-person roster takes ~0.7 s to validate and its state
file ~0.4 s to parse; every controller-side task of a run needs them. The parsed result is kept as
JSON (never pickle: reading the cache runs no code), 0600, under a digest of the file's bytes, the
parser's own source and its options, so any change to any of them parses again.

The directory must be the user's own and writable by nobody else: otherwise (someone else's, a
group- or world-writable one) the cache is not used at all, silently: same results, only slower.
Files are opened relative to the checked directory (no symlink followed), so it cannot be swapped
between the check and the use.

Location: $TELESHIFT_CACHE_DIR, else $XDG_CACHE_HOME/teleshift, else ~/.cache/teleshift.
TELESHIFT_CACHE=0 turns it off. Entries not used for 7 days are removed, and of each kind (rosters,
state files) only the 32 used last are kept (4 of each kind of row memo): a 50,000-person roster's
entry is 9.5 MB, and a roster that changes at every run (a sync timer) left a new one each time
(4.4 GB after two days of benchmarks).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import time

from ansible_collections.teleshift.toolkit.plugins.module_utils import background

MAX_AGE = 7 * 24 * 3600
MAX_ENTRIES = 32  # of each kind, the most recently used (reading an entry refreshes its time)
MAX_MEMOS = 4  # of each kind of row memo (one per parser version and options; 12 MB at 50,000 people)
FORMAT = "json1"  # part of every file name: a new format never reads an old file
MAX_FILE = 256 * 1024 * 1024


def cache_dir():
    base = os.environ.get("TELESHIFT_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "teleshift")
    return base


def enabled():
    return os.environ.get("TELESHIFT_CACHE", "1") not in ("0", "false", "no", "off")


def private(st):
    """A directory or file we may trust: the user's own, writable by nobody else."""
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _open_dir(create):
    """A file descriptor on the cache directory when it is safe to use, else None."""
    base = cache_dir()
    if create:
        try:
            os.makedirs(base, mode=0o700, exist_ok=True)
        except OSError:
            return None
    try:
        fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        if private(os.fstat(fd)):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


def _read(name):
    """The JSON document in the cache file ``name``, or None (absent, unsafe, damaged)."""
    fd = _open_dir(create=False)
    if fd is None:
        return None
    try:
        file_fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
    except OSError:
        os.close(fd)
        return None
    try:
        st = os.fstat(file_fd)
        if not stat.S_ISREG(st.st_mode) or not private(st) or st.st_size > MAX_FILE:
            return None
        with os.fdopen(file_fd, "rb") as stream:
            file_fd = None
            data = json.loads(stream.read())
            os.utime(stream.fileno())
        return data
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        if file_fd is not None:
            os.close(file_fd)
        os.close(fd)


def _encode(document):
    """The JSON bytes written for ``document``; TypeError or ValueError when it is not JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _write(name, document, prune=None, data=None, keep=MAX_ENTRIES):
    """Write ``document`` as JSON to the cache file ``name`` (0600, atomic); no error if it cannot.
    ``data``: its bytes, when the caller has already encoded it (``_encode``). ``prune``: the kind
    whose entries are pruned then, keeping ``keep`` of them (see ``_prune``)."""
    if data is None:
        try:
            data = _encode(document)
        except (TypeError, ValueError):
            return
    fd = _open_dir(create=True)
    if fd is None:
        return
    tmp = f".{name}.{os.getpid()}.tmp"
    try:
        file_fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600, dir_fd=fd)
        with os.fdopen(file_fd, "wb") as stream:
            stream.write(data)
        os.replace(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
        if prune:
            _prune(fd, prune, keep)
    except OSError:
        try:
            os.unlink(tmp, dir_fd=fd)
        except OSError:
            pass
    finally:
        os.close(fd)


_OLD_PICKLE = re.compile(r"[a-z]+(?:-[a-z]+)*-[0-9a-f]{40}\.pickle")  # an older teleshift's entries


def _prune(fd, kind, keep=MAX_ENTRIES):
    """Remove the entries (and row memos) of ``kind`` not used for MAX_AGE, then its entries beyond the
    ``keep`` used last; an older teleshift's pickle files too."""
    now = time.time()
    entry = re.compile(re.escape(kind) + r"-[0-9a-f]{40}\." + re.escape(FORMAT))  # not its row memo
    recent = []
    for name in os.listdir(fd):
        old = _OLD_PICKLE.fullmatch(name)
        if name.startswith(f"{kind}-") or old:
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if old or now - st.st_mtime > MAX_AGE:
                    os.unlink(name, dir_fd=fd)
                elif entry.fullmatch(name):
                    recent.append((st.st_mtime, name))
            except OSError:
                pass
    recent.sort(reverse=True)
    for _used, name in recent[keep:]:
        try:
            os.unlink(name, dir_fd=fd)
        except OSError:
            pass


paused_gc = background.paused_gc  # parsing and decoding a large document (see there)


def _plain(value):
    """The default codec: values JSON gives back exactly (dicts with string keys, lists, strings,
    numbers, booleans, None); anything else is simply not cached."""
    return value


def remember(kind, data, options, value, codec=None):
    """Store ``value`` as what ``data`` parses to (a writer that has the parsed form in hand, e.g. a
    state file just written, spares the next run the parse)."""
    if enabled():
        parsed(kind, data, options, lambda: value, refresh=True, codec=codec)


def parsed(kind, data, options, build, refresh=False, codec=None):
    """``build()`` for the bytes ``data``, from the cache when the same bytes, options and parser
    were seen before. ``options`` must be repr-stable (sorted tuples, strings).

    codec: (encode, decode) between the value and JSON data; decode raises ValueError, TypeError or
    KeyError on anything it does not recognise (then the value is built again). Without a codec,
    only values that JSON gives back equal are cached."""
    with paused_gc():
        return _parsed(kind, data, options, build, refresh, codec)


def _parsed(kind, data, options, build, refresh, codec):
    if not enabled():
        return build()
    encode, decode = codec or (_plain, _plain)
    key = hashlib.sha256(repr((kind, options)).encode() + b"\0" + data).hexdigest()[:40]
    name = f"{kind}-{key}.{FORMAT}"
    if not refresh:
        document = _read(name)
        if document is not None:
            try:
                return decode(document)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError):
                pass
    value = build()
    background.submit("parsed-file cache", _store, name, kind, value, encode, codec is None)
    return value


def _store(name, kind, value, encode, check):
    """Write ``value`` under ``name``; ``check``: only when JSON gives it back equal."""
    with paused_gc():
        try:
            document = encode(value)
            data = _encode(document)  # once: the round-trip check below reads the bytes written
            if check and json.loads(data) != value:
                return  # tuples, non-string keys...: JSON would not give it back
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return  # dates, sets...: not JSON at all
        _write(name, document, prune=kind, data=data)


def _memo_name(kind, options):
    key = hashlib.sha256(repr((kind, options)).encode()).hexdigest()[:40]
    return f"{_memo_kind(kind)}-{key}.{FORMAT}"


def _memo_kind(kind):
    return f"{kind}-memo"


def load_memo(kind, options, decode=None):
    """A dict kept between runs (e.g. each roster row -> its parsed person), {} when none, None when
    the cache is off. decode: JSON data -> dict (required for anything but string-keyed JSON)."""
    if not enabled():
        return None
    document = _read(_memo_name(kind, options))
    if document is None:
        return {}
    try:
        memo = decode(document) if decode else document
    except (ValueError, TypeError, KeyError, AttributeError, IndexError):
        return {}
    return memo if isinstance(memo, dict) else {}


def save_memo(kind, options, memo, encode=None):
    if not enabled() or memo is None:
        return
    background.submit("row memo", _save_memo, _memo_name(kind, options), memo, encode, _memo_kind(kind))


def _save_memo(name, memo, encode, kind):
    try:
        document = encode(memo) if encode else memo
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return
    _write(name, document, prune=kind, keep=MAX_MEMOS)
