# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Each person's kit: the only place their secrets live (VPN private key, desktop and SIP passwords).

Layout: <kits root>/<person id>/<capability>/<file>; directories 0700, files 0600. A capability writes
only its own subdirectory. Secrets that must survive re-runs are read back from here, so re-running
never rotates them; deleting a file (or an explicit rotation) makes a new one.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import stat
import string
from pathlib import Path

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import ID_RE

_ALPHABET = string.ascii_letters + string.digits


def resolve_path(value, inventory_dir):
    """Inventory path settings are relative to the inventory directory."""
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (Path(inventory_dir) / path).resolve()


_PRIVATE = {}  # directories already checked private in this process


def _private_dir(path):
    """``path`` (a str) as a 0700 directory, whether or not it existed (an existing one with wider rights
    is narrowed); checked once per process."""
    if path in _PRIVATE:
        return
    try:
        mode = os.stat(path).st_mode  # one system call when it is there (most of the time)
    except FileNotFoundError:
        try:
            os.mkdir(path, 0o700)  # the parent was checked just before (kit_dir goes down from the root)
        except FileNotFoundError:
            os.makedirs(path, mode=0o700, exist_ok=True)
        except FileExistsError:
            pass
        mode = os.stat(path).st_mode
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(path)
    if stat.S_IMODE(mode) != 0o700:
        os.chmod(path, 0o700)
    _PRIVATE[path] = True


_KIT_NAME = re.compile(r"[a-z0-9._-]+")


def kit_dir(root, person_id, capability):
    """The kit's capability directory; it, the person's directory and the root are 0700, made so when
    they existed with wider rights. ``person_id`` must be a roster id (never a path: ``../x`` is refused).
    Paths are built as text (50,000 people call this twice each in a first run)."""
    if not ID_RE.fullmatch(str(person_id)) or not _KIT_NAME.fullmatch(str(capability)) \
            or capability in (".", ".."):
        raise ValueError(f"refusing kit path for id {person_id!r} and capability {capability!r}")
    top = os.fspath(root)
    person = os.path.join(top, str(person_id))
    path = os.path.join(person, str(capability))
    for part in (top, person, path):
        _private_dir(part)
    return Path(path)


def write_kit_file(root, person_id, capability, name, content):
    """Write one kit file 0600; returns True when its content changed. A file that was there is
    replaced atomically; a new one is created in place (exclusively, never through a link: a name
    that is a link, even a dangling one, is replaced like an existing file)."""
    folder = os.fspath(kit_dir(root, person_id, capability))
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"refusing kit file name {name!r}")
    path = os.path.join(folder, name)
    data = content.encode("utf-8") if isinstance(content, str) else content
    try:
        with open(path, "rb") as stream:
            if stream.read() == data:
                return False  # unchanged: nothing touched (re-runs for 5,000 people stay fast)
    except FileNotFoundError:
        if _create_private(path, data):
            return True
    except OSError:
        pass
    _replace_private(folder, name, data)
    return True


def _create_private(path, data):
    """Create ``path`` 0600 with ``data`` when nothing is at that name (no temporary file, no rename:
    a first run of 50,000 people creates about 400,000 kit files); False when something is there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:  # a dangling link, or a file made meanwhile
        return False
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    return True


_TMP_COUNTER = itertools.count()


def _replace_private(folder, name, data):
    """atomic_write for a kit file: ``folder`` is a private directory this process has just checked
    (kit_dir), so the temporary file needs no random name (a fixed one per process and write, created
    exclusively, never followed if it is a link) and no directory is made. 50,000 people write about
    400,000 kit files in a first converge: 0.19-0.28 ms each with tempfile and makedirs, about half of
    that here."""
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{next(_TMP_COUNTER)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        os.replace(tmp, os.path.join(folder, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_kit_file(root, person_id, capability, name):
    if not ID_RE.fullmatch(str(person_id)):
        raise ValueError(f"refusing kit path for id {person_id!r}")
    try:
        with open(os.path.join(root, person_id, capability, name), encoding="utf-8") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def new_password(length=20):
    return "".join(secrets.choice(_ALPHABET) for _i in range(length))


def kept_secret(root, person_id, capability, name, make=new_password, rotate=False):
    """The secret stored in the kit, or a new one written there (when absent or ``rotate``)."""
    current = None if rotate else read_kit_file(root, person_id, capability, name)
    if current:
        return current.strip()
    value = make()
    write_kit_file(root, person_id, capability, name, value + "\n")
    return value


def read_index(path):
    """A kits index (``<kits>/.<name>.json``: person -> digest) as a dict; {} when missing or unreadable,
    so that a lost index only costs a full pass."""
    try:
        with open(path, encoding="utf-8") as stream:
            data = json.load(stream)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}
