"""The gate's secrets on the controller (module_utils/gate_sender.py): a kit's secret file is read only
when its digest is not known for the file as it is now, or when the secret must travel; a renewed,
rotated or restored file is read again (tests/unit/test_gate_with_peers.py runs the whole call)."""
import hashlib
import json
import os

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import gate_sender

SECRETS = {"amartin": "JBSWY3DPEHPK3PXP", "blefevre": "KZXW6YTBOI2DQMZQ", "cdurand": "MFRGGZDFMZTWQ2LK"}


def write_secret(root, pid, secret):
    (root / pid / "mfa").mkdir(parents=True, exist_ok=True)
    (root / pid / "mfa" / "secret").write_text(secret + "\n")


@pytest.fixture
def reads(monkeypatch):
    """The ids whose secret file was read, in order."""
    seen = []
    real = gate_sender.read_kit_file

    def counting(root, pid, capability, name):
        seen.append(pid)
        return real(root, pid, capability, name)
    monkeypatch.setattr(gate_sender, "read_kit_file", counting)
    return seen


def digest(secret):
    return hashlib.sha256(secret.encode()).hexdigest()[:24]


def test_unchanged_files_are_not_read_again(tmp_path, reads):
    for pid, secret in SECRETS.items():
        write_secret(tmp_path, pid, secret)
    record = tmp_path / ".mfa-read.gw1.json"
    first = gate_sender.KitSecrets(str(tmp_path), [*SECRETS, "nosecret"], str(record))
    assert first.digests == {pid: digest(s) for pid, s in SECRETS.items()}
    assert sorted(reads) == sorted(SECRETS)
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    assert not any(s in record.read_text() for s in SECRETS.values())  # digests only

    reads.clear()
    again = gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record))
    assert again.digests == first.digests and reads == []
    assert again.pick(["blefevre"]) == {"blefevre": SECRETS["blefevre"]} and reads == ["blefevre"]
    assert again.all() == SECRETS and sorted(reads) == sorted(SECRETS)
    again.clear()
    assert again._read == {}


def test_a_renewed_or_restored_file_is_read_again(tmp_path, reads):
    for pid, secret in SECRETS.items():
        write_secret(tmp_path, pid, secret)
    record = tmp_path / ".mfa-read.gw1.json"
    gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record))
    path = tmp_path / "amartin" / "mfa" / "secret"
    # rewritten in place with a secret of the same length: same inode and size, another time
    stamp = path.stat()
    path.write_text("ABCDEFGHIJKLMNOP\n")
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns + 1000))
    # replaced by another file (kits restored) with the same size and time: another inode
    other = tmp_path / "blefevre" / "mfa" / "secret"
    kept = other.stat()
    (tmp_path / "new").write_text("QRSTUVWXYZ234567\n")
    os.utime(tmp_path / "new", ns=(kept.st_atime_ns, kept.st_mtime_ns))
    os.replace(tmp_path / "new", other)
    reads.clear()
    again = gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record))
    assert sorted(reads) == ["amartin", "blefevre"]
    assert again.digests == {"amartin": digest("ABCDEFGHIJKLMNOP"), "blefevre": digest("QRSTUVWXYZ234567"),
                             "cdurand": digest(SECRETS["cdurand"])}
    reads.clear()
    gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record))
    assert reads == []  # the record now holds the new files


def test_check_mode_leaves_the_record_and_a_damaged_record_only_costs_reads(tmp_path, reads):
    for pid, secret in SECRETS.items():
        write_secret(tmp_path, pid, secret)
    record = tmp_path / ".mfa-read.gw1.json"
    gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record), write=False)
    assert not record.exists()
    record.write_text(json.dumps({"amartin": "not a stamp", "blefevre": [1, 2], "cdurand": [0, 0, 0, 5]}))
    reads.clear()
    found = gate_sender.KitSecrets(str(tmp_path), list(SECRETS), str(record))
    assert sorted(reads) == sorted(SECRETS) and found.digests == {pid: digest(s) for pid, s in SECRETS.items()}


def test_an_id_that_is_not_a_roster_id_is_refused(tmp_path):
    with pytest.raises(ValueError, match="refusing kit path"):
        gate_sender.KitSecrets(str(tmp_path), ["../etc"], None)


class _Task:
    check_mode = False


class _Action:
    _task = _Task()


def test_only_the_secrets_the_host_lacks_are_read_and_sent(tmp_path, reads):
    for pid, secret in SECRETS.items():
        write_secret(tmp_path, pid, secret)
    people = "".join(f"{pid} dsi 10.100.0.{n + 2}\n" for n, pid in enumerate(SECRETS))
    task_vars = {"inventory_hostname": "gw1", "teleshift_kits_dir": str(tmp_path)}
    calls = []

    def call(args):
        calls.append(args)
        return {"changed": True, "gate": {"enrolled": 3}}
    gate_sender.send_gate(_Action(), {"people": people}, task_vars, call, lambda r: r["gate"], kits_dir=str(tmp_path))
    assert calls[-1]["secrets"] == SECRETS  # the first call: the host has none
    (tmp_path / "blefevre" / "mfa" / "secret").write_text("ONLYTHISONECHANGED\n")
    reads.clear()
    gate_sender.send_gate(_Action(), {"people": people}, task_vars, call, lambda r: r["gate"], kits_dir=str(tmp_path))
    assert calls[-1]["secrets"] == {"blefevre": "ONLYTHISONECHANGED"} and reads == ["blefevre"]
    assert calls[-1]["digests"]["blefevre"] == digest("ONLYTHISONECHANGED")

    def lacking(args):  # a rebuilt host: it asks for everyone's
        calls.append(args)
        return ({"failed": True, "gate": {"missing_secrets": ["amartin"]}} if args["partial"]
                else {"changed": True, "gate": {"enrolled": 3}})
    reads.clear()
    gate_sender.send_gate(_Action(), {"people": people}, task_vars, lacking, lambda r: r["gate"],
                          kits_dir=str(tmp_path))
    assert calls[-2]["secrets"] == {} and calls[-1]["secrets"] == {**SECRETS, "blefevre": "ONLYTHISONECHANGED"}
    assert sorted(reads) == sorted(SECRETS)  # read only when they had to travel
