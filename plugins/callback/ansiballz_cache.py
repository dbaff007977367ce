# teleshift: keep the modules Ansible builds for the hosts from one run to the next.
# Copyright: teleshift contributors. GNU General Public License v3.0+
# Why it exists: before its first call of a module in a run, Ansible builds the module's payload
# (AnsiballZ: it parses the module and every module_utils file it imports, about 60 files for one of
# teleshift's modules) into a cache that lives in the run's own temporary directory and goes with it.
# A one-person VPN change calls two modules, so every run paid 0.4 to 0.9 s of controller CPU per
# module on its critical path. This callback copies the payloads built by earlier runs into the new
# run's cache before any task starts, and keeps the new ones at the end. A payload is reused only when
# every file inside it is byte for byte the file the controller has now; Ansible builds anything else.
from __future__ import annotations

DOCUMENTATION = r"""
name: ansiballz_cache
type: aggregate
short_description: Reuse the module payloads Ansible built in earlier runs
description:
  - Ansible builds each module's payload (AnsiballZ) once per run, in a cache inside the run's own
    temporary directory. This callback seeds that cache, before the first task, with the payloads kept
    from earlier runs, and keeps the run's payloads at its end.
  - A kept payload is used only when each file it holds (the module and every module_utils file) is
    byte for byte the same as the file on the controller now, and only by the same ansible-core and
    Python versions. Otherwise Ansible builds it as usual and the new one is kept.
  - The cache directory is created private (0700); a directory that others can write is not used.
  - Only speed changes. A run without this callback, or with an empty or removed cache, does the same.
author: teleshift contributors (!UNKNOWN)
version_added: 0.2.0
requirements:
  - enabled in C(callbacks_enabled) (teleshift's ansible.cfg enables it)
options:
  cache_dir:
    description:
      - Where the payloads are kept between runs, one subdirectory per ansible-core and Python version.
      - A leading C(~) is the user's home; an empty value turns the callback off.
    type: str
    default: ~/.cache/teleshift/ansiballz
    env:
      - name: TELESHIFT_ANSIBALLZ_CACHE
    ini:
      - section: teleshift_ansiballz_cache
        key: cache_dir
"""

import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path

from ansible.plugins.callback import CallbackBase
from ansible.utils.display import Display

display = Display()

SIDECAR = ".sources.json"  # beside each kept payload: the files it holds and their digests
GENERATED_INIT = b"from pkgutil import extend_path"  # how Ansible's own package markers begin


def version_key():
    from ansible.release import __version__

    return f"core-{__version__}-py{sys.version_info[0]}.{sys.version_info[1]}"


def run_cache_dir():
    """Ansible's payload cache for this run (module_common: <local tmp>/ansiballz_cache)."""
    import ansible.constants as C

    return Path(C.DEFAULT_LOCAL_TMP) / "ansiballz_cache"


def source_path(member):
    """The controller file a payload member was copied from, if there is one."""
    parts = member.split("/")
    if parts[0] == "ansible" and len(parts) > 1:
        import ansible

        path = Path(ansible.__file__).parent.joinpath(*parts[1:])
    elif parts[0] == "ansible_collections" and len(parts) > 3:
        from ansible.utils.collection_loader import AnsibleCollectionConfig

        path = None
        for root in AnsibleCollectionConfig.collection_paths:
            candidate = Path(root, *parts)
            if candidate.is_file():
                path = candidate
                break
    else:
        path = None
    if path is not None and path.is_file():
        return path
    return None


def payload_members(cached_file):
    """{member: bytes} of a payload file Ansible wrote (module_common._CachedModule, pickled)."""
    import base64
    import io
    import pickle
    import zipfile

    with open(cached_file, "rb") as stream:
        cached = pickle.load(stream)  # noqa: S301 -- Ansible's own format, read from this run's private directory
    with zipfile.ZipFile(io.BytesIO(base64.b64decode(cached.zip_data))) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def digest(data):
    return hashlib.sha256(data).hexdigest()


def describe(cached_file):
    """{member: digest or None} for a payload whose every member is either the current controller file
    or a marker Ansible writes; None when a member matches no file (Ansible will build it again)."""
    sources = {}
    for member, data in payload_members(cached_file).items():
        path = source_path(member)
        if path is not None and path.read_bytes() == data:
            sources[member] = digest(data)
        elif member.endswith("__init__.py") and (not data or data.startswith(GENERATED_INIT)):
            sources[member] = None  # a package marker Ansible writes, fixed by its version
        else:
            return None
    return sources


def still_current(sources, seen):
    for member, wanted in sources.items():
        if wanted is None:
            continue
        if member not in seen:
            path = source_path(member)
            seen[member] = digest(path.read_bytes()) if path is not None else None
        if seen[member] != wanted:
            return False
    return True


def private_dir(path):
    """Create the cache directory 0700 (parents too); refuse one another user owns or others can write."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PermissionError(f"{path} is not private to this user: not used")
    return path


def seed(store, run_cache):
    """Copy every kept payload that is still current into the run's cache. Returns the names copied."""
    copied = []
    if not store.is_dir():
        return copied
    private_dir(store)
    run_cache.mkdir(parents=True, exist_ok=True)
    seen = {}
    for sidecar in sorted(store.glob(f"*{SIDECAR}")):
        name = sidecar.name[: -len(SIDECAR)]
        kept, target = store / name, run_cache / name
        try:
            sources = json.loads(sidecar.read_text(encoding="utf-8"))
            if target.exists() or not kept.is_file() or not still_current(sources, seen):
                continue
            shutil.copyfile(kept, target)
            copied.append(name)
        except (OSError, ValueError) as exc:
            display.vvv(f"ansiballz_cache: {name} not reused: {exc}")
    return copied


def keep(store, run_cache):
    """Keep the run's payloads whose files are the controller's; returns the names kept."""
    kept = []
    if not run_cache.is_dir():
        return kept
    private_dir(store)
    for built in sorted(run_cache.iterdir()):
        if not built.is_file() or built.name.endswith((".lock", "-part")) or built.name.endswith(SIDECAR):
            continue
        target, sidecar = store / built.name, store / (built.name + SIDECAR)
        if target.is_file() and sidecar.is_file() and target.read_bytes() == built.read_bytes():
            continue
        try:
            sources = describe(built)
        except Exception as exc:  # noqa: BLE001 -- another ansible-core cache format: keep nothing
            display.vvv(f"ansiballz_cache: {built.name} not kept: {exc}")
            continue
        if sources is None:
            continue
        for path, data in ((target, built.read_bytes()), (sidecar, json.dumps(sources).encode())):
            fd, tmp = tempfile.mkstemp(dir=store, prefix=".tmp-")
            with os.fdopen(fd, "wb") as stream:
                stream.write(data)
            os.replace(tmp, path)
        kept.append(built.name)
    return kept


class CallbackModule(CallbackBase):
    """Seeds the run's AnsiballZ cache at the start, keeps it at the end."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "teleshift.toolkit.ansiballz_cache"
    CALLBACK_NEEDS_ENABLED = True

    def _store(self):
        base = (self.get_option("cache_dir") or "").strip()
        return Path(os.path.expanduser(base), version_key()) if base else None

    def _step(self, work, done, nothing):
        """Run ``work(store, run cache)``; say what it did (``done``, with the count) or why not."""
        store = self._store()
        if store is None:
            return
        try:
            names = work(store, run_cache_dir())
        except Exception as exc:  # noqa: BLE001 -- a cache never fails a run
            display.vvv(f"ansiballz_cache: {nothing}: {exc}")
            return
        display.vvv(f"ansiballz_cache: {done.format(len(names), store)}")

    def v2_playbook_on_start(self, playbook):
        self._step(seed, "reused {} module payloads from {}", "nothing reused")

    def v2_playbook_on_stats(self, stats):
        self._step(keep, "kept {} new module payloads in {}", "nothing kept")
