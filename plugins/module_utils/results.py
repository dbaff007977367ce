# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Module results that stay small for 5,000 people: AnsibleModule echoes every argument back as
``invocation`` (a whole roster's slice, hundreds of kilobytes to encode, mask and ship back). Modules
pass this brief form instead: big arguments are replaced by their size."""
from __future__ import annotations


def brief_invocation(params, big):
    """``invocation`` for exit_json/fail_json: ``params`` with each name in ``big`` summarised."""
    args = {}
    for name, value in params.items():
        if name in big and value is not None:
            args[name] = f"<{len(value)} {'items' if isinstance(value, (list, dict)) else 'characters'}>"
        else:
            args[name] = value
    return {"module_args": args}
