# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Write a file atomically: a temporary file beside it, then a rename, so readers (a service, wg-quick
at boot, a person opening their kit) never see half a file. Standard library only: modules ship it to
the managed hosts."""
from __future__ import annotations

import os
import tempfile


def atomic_write(path, content, mode=0o644, owner=None, group=None, durable=False, dir_mode=0o755):
    """Write ``content`` (bytes or text) to ``path`` with ``mode`` (and owner/group ids when given).

    durable: flush to disk before the rename (config files that must survive a power cut)."""
    path = os.fspath(path)
    data = content.encode("utf-8") if isinstance(content, str) else content
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, mode=dir_mode, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.")
    try:
        if owner is not None or group is not None:
            os.fchown(fd, -1 if owner is None else owner, -1 if group is None else group)
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
