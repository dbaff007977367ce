# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""A session host's fingerprint: one digest of everything ``desktop_accounts`` reads on it.

Why it exists. With 50,000 people on 5 session hosts, a one-person change still sent each host its
10,000 accounts and ran the module there (reading and checking the four account databases), which found
nothing to do on four of them. The module now returns this digest after a call; the action plugin keeps
it in ``<kits>/.desktop-applied.<host>.json`` with a digest of the arguments. When the next run's
arguments are the same and no password travels, the action asks the host for its digest with one shell
command instead: if anything changed there (an account edited or removed by hand, a group, the
databases restored from a backup, login.defs), the digest differs and the module runs as before. Only
one SHA-256 digest comes back: no name, hash or id.

What goes into it: the SHA-256 of /etc/passwd, /etc/shadow, /etc/group, /etc/gshadow and
/etc/login.defs, and the set of real uids that own a process. The module ends the processes of locked
accounts at every run; it returns a digest only from a run that had none to end, so while that set is
unchanged (and the databases too) no locked account has a process to end either."""
from __future__ import annotations

import shlex

FILES = ("/etc/passwd", "/etc/shadow", "/etc/group", "/etc/gshadow", "/etc/login.defs")


def probe_script(files=FILES):
    """The POSIX shell command printing the host's digest (run as root: it reads /etc/shadow).
    ``files``: the databases' paths (tests give others)."""
    return ("{ for f in " + " ".join(shlex.quote(f) for f in files) + "; do "
            "if [ -f \"$f\" ]; then echo \"$f $(sha256sum < \"$f\")\"; else echo \"$f absent\"; fi; done; "
            # cat goes on past a process that ended meanwhile; awk reads each status' Uid line
            "cat /proc/[0-9]*/status 2>/dev/null | awk '$1 == \"Uid:\" {print $2}' | LC_ALL=C sort -un; "
            "} | sha256sum | cut -d ' ' -f 1")
