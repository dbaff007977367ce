# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Filter: the SHA-1 of files shipped in this collection, for setup fingerprints.

Why it exists: ``lookup('ansible.builtin.file', ...)`` resolves a relative name against the role of the
task that templates the value. A role default such as ``mfa_gate_setup_fingerprint`` is also read by
``vpn.yml`` from another role's task (the gate is applied with the peers, in one call), where that lookup
would not find the file. These paths are relative to the collection's root, whoever asks.

    {{ ['roles/mfa_gate/files/teleshift-gate'] | teleshift.toolkit.collection_file_sha1 }}
"""
from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleFilterError

DOCUMENTATION = r"""
name: collection_file_sha1
short_description: SHA-1 digests of files of the teleshift.toolkit collection
description:
  - For each path, relative to the collection's root, the SHA-1 of the file's text without its trailing
    whitespace (the same value as C(lookup('ansible.builtin.file', path) | hash('sha1'))).
  - Meant for setup fingerprints - the result does not depend on the role of the task that templates it.
options:
  _input: {description: Paths relative to the collection's root., type: list, elements: str, required: true}
"""

EXAMPLES = r"""
mfa_gate_setup_code: "{{ ['roles/mfa_gate/files/teleshift-gate'] | teleshift.toolkit.collection_file_sha1 }}"
"""

RETURN = r"""
_value: {description: One hex digest per path, in order., type: list, elements: str}
"""

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def collection_file_sha1(paths):
    if isinstance(paths, str) or not isinstance(paths, (list, tuple)):
        raise AnsibleFilterError("collection_file_sha1 expects a list of paths")
    digests = []
    for rel in paths:
        path = os.path.normpath(os.path.join(ROOT, str(rel)))
        if os.path.isabs(str(rel)) or not path.startswith(ROOT + os.sep):
            raise AnsibleFilterError(f"collection_file_sha1: {rel} is not a path inside the collection")
        try:
            with open(path, encoding="utf-8") as stream:
                text = stream.read()
        except OSError as exc:
            raise AnsibleFilterError(f"collection_file_sha1: cannot read {rel} ({exc.strerror})") from exc
        digests.append(hashlib.sha1(text.rstrip().encode("utf-8")).hexdigest())  # noqa: S324 - a fingerprint, not security
    return digests


class FilterModule:
    def filters(self):
        return {"collection_file_sha1": collection_file_sha1}
