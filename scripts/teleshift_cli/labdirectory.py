"""The lab's directory (ts-dc1, playbooks/lab_directory.yml) for the lab tests and `scripts/bench directory`.

``directory_inventory(dest)`` copies the lab inventory so that it reads its people from the domain
controller: ``teleshift_roster_source`` is the lab's ``teleshift_lab_directory`` with the read-only
account's password from Ansible Vault (a vault file encrypted with a fresh password file), the
certificate from .cache/lab/directory/ca.pem, and no roster file. ``samba(...)`` runs samba-tool on the DC.
"""
from __future__ import annotations

import secrets
import shutil
import subprocess
from pathlib import Path

import yaml

from teleshift_cli.paths import CACHE, LAB_INVENTORY

DC = "ts-dc1"
DIRECTORY_DIR = CACHE / "lab" / "directory"  # playbooks/lab_directory.yml: ca.pem, reader-password


class DirectoryLabError(RuntimeError):
    pass


def podman_env():
    from teleshift_cli import lab

    return lab.podman_env() if hasattr(lab, "podman_env") else None


def dc_exec(*argv, input=None, timeout=120, check=True):
    """Run argv on the domain controller (bounded in time)."""
    flags = ["-i"] if input is not None else []
    proc = subprocess.run(["podman", "exec", *flags, DC, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout, env=podman_env())
    if check and proc.returncode != 0:
        raise DirectoryLabError(f"{' '.join(argv[:3])} on {DC}: {(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def samba(*args, timeout=120):
    return dc_exec("samba-tool", *args, timeout=timeout)


def ldb_modify(ldif, timeout=120):
    """Apply an LDIF change on the DC's database (standard input, no file)."""
    return dc_exec("ldbmodify", "-H", "/var/lib/samba/private/sam.ldb", input=ldif, timeout=timeout)


def lab_directory_settings():
    data = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "directory.yml").read_text(encoding="utf-8"))
    return data["teleshift_lab_directory"]


def reader_password():
    path = DIRECTORY_DIR / "reader-password"
    if not path.is_file() or not (DIRECTORY_DIR / "ca.pem").is_file():
        raise DirectoryLabError(f"no {path} or ca.pem: run playbooks/lab_directory.yml first")
    return path.read_text(encoding="utf-8").strip()


def vault_encrypt(text, password):
    from ansible.parsing.vault import VaultLib, VaultSecret

    secret = VaultSecret(password.encode())
    return VaultLib([("default", secret)]).encrypt(text, secret).decode()


def directory_inventory(dest, kits_dir=None, base_dn=None, groups=None, state=True):
    """A copy of the lab inventory in ``dest`` reading its people from the DC; returns
    (hosts.yml, vault password file). ``kits_dir``: the kits it writes (absolute); ``base_dn``/``groups``:
    another OU and mapping (the benchmark's); ``state``: copy the lab's state files (plans stay sticky)."""
    dest = Path(dest)
    shutil.copytree(LAB_INVENTORY, dest, ignore=shutil.ignore_patterns("state", "*.retry", "roster.csv"))
    if state and (LAB_INVENTORY / "state").is_dir():
        shutil.copytree(LAB_INVENTORY / "state", dest / "state")
    settings_file = dest / "group_vars" / "all" / "teleshift.yml"
    settings = yaml.safe_load(settings_file.read_text(encoding="utf-8"))
    settings.pop("teleshift_roster_file", None)
    if kits_dir:
        settings["teleshift_kits_dir"] = str(kits_dir)
    settings_file.write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8")
    source = dict(lab_directory_settings())
    source["ca_file"] = str((DIRECTORY_DIR / "ca.pem").resolve())
    if base_dn:
        source["base_dn"] = base_dn
    if groups is not None:
        source["groups"] = groups
    password_file = dest.parent / f"{dest.name}-vault-pass"
    password_file.write_text(secrets.token_urlsafe(24) + "\n", encoding="utf-8")
    password_file.chmod(0o600)
    vault = vault_encrypt(reader_password(), password_file.read_text(encoding="utf-8").strip())
    (dest / "group_vars" / "all" / "vault.yml").write_text(
        "---\nvault_teleshift_directory_password: !vault |\n" + "".join(f"  {line}\n" for line in vault.splitlines()),
        encoding="utf-8")
    source_yaml = yaml.safe_dump({"teleshift_roster_source": {**source, "bind_password": "@@"}}, sort_keys=False)
    (dest / "group_vars" / "all" / "roster_source.yml").write_text(
        "---\n# The people come from the lab's domain controller (scripts/teleshift_cli/labdirectory.py).\n"
        + source_yaml.replace("'@@'", '"{{ vault_teleshift_directory_password }}"'), encoding="utf-8")
    return dest / "hosts.yml", password_file
