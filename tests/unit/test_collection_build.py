"""The collection tarball (`ansible-galaxy collection build`) holds collection content only, whatever a user
keeps in the checkout: a copy of the checkout gets inventories, kits with private keys, state files, caches
and a virtualenv planted in it, then is built, and the tarball's file list is compared with what must ship."""
import os
import shutil
import subprocess
import tarfile
from pathlib import Path, PurePosixPath

import pytest

ROOT = Path(__file__).resolve().parents[2]

# What a user may leave in a checkout, none of it collection content.
PLANTED = [
    "kits/lab/amartin/vpn/private.key",
    "kits/lab/amartin/vpn/teleshift.conf",
    "inventories/prod/hosts.yml",
    "inventories/prod/roster.csv",
    "inventories/prod/group_vars/all/vault.yml",
    "inventories/prod/state/vpn.yml",
    "inventories/prod/kits/p001/vpn/private.key",
    "inventories/prod/kits/p001/desktop/notice.html",
    "inventories/sample/kits/p001/vpn/private.key",
    "inventories/sample/state/vpn.yml",
    "inventories/sample/roster-2024.csv",
    "inventories/sample/group_vars/all/kits/p001/vpn/secrets.yml",
    "roles/xrdp_host/files/kits/p001/vpn/teleshift.conf",
    "roles/xrdp_host/files/state/desktop.yml",
    "roles/xrdp_host/files/.cache/hash",
    "roles/xrdp_host/templates/server.key",
    "plugins/module_utils/__pycache__/roster.cpython-311.pyc",
    "plugins/modules/.wireguard_peers.py.swp",
    ".venv/lib/python3.11/site-packages/evil.py",
    ".cache/roster/abc.json",
    ".pytest_cache/v/cache/lastfailed",
    ".hypothesis/examples/x",
    "build/verify.json",
    "teleshift-toolkit-0.0.9.tar.gz",
]


def shipped_rule(path):
    """Whether a tracked file of the checkout belongs in the tarball (the specification of galaxy.yml's
    manifest, written independently of it)."""
    parts = PurePosixPath(path).parts
    if path in ("README.md", "CHANGELOG.md", "LICENSE", "requirements.txt"):
        return True
    if parts[0] == "meta":
        return path.endswith(".yml")
    if parts[0] == "plugins":
        return path.endswith(".py")
    if parts[0] == "playbooks":
        return path.endswith(".yml") and not parts[-1].startswith("lab")
    if parts[0] in ("roles", "docs"):
        return True
    if parts[:2] == ("inventories", "sample"):
        return parts[2] in ("hosts.yml", "roster.csv", "group_vars")
    return parts[:2] == ("tests", "sanity") and parts[-1].startswith("ignore-")


def tracked_files():
    proc = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    return [p for p in proc.stdout.split("\0") if p and not (ROOT / p).is_symlink()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(tracked files, names in the tarball) for a copy of the checkout with PLANTED files in it."""
    work = tmp_path_factory.mktemp("build")
    tree = work / "toolkit"
    files = tracked_files()
    for rel in files:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, tree / rel)
    for rel in PLANTED:
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_text("planted by the test\n", encoding="utf-8")
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    proc = subprocess.run([str(ROOT / ".venv" / "bin" / "ansible-galaxy"), "collection", "build",
                           "--output-path", str(work / "dist"), str(tree)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tarball,) = (work / "dist").glob("teleshift-toolkit-*.tar.gz")
    with tarfile.open(tarball) as archive:
        names = {m.name for m in archive.getmembers() if not m.isdir()}
    return files, names


def test_no_planted_file_is_shipped(built):
    _, names = built
    assert sorted(set(PLANTED) & names) == []


def test_the_tarball_holds_exactly_the_collection_content(built):
    files, names = built
    expected = {p for p in files if shipped_rule(p)} | {"MANIFEST.json", "FILES.json"}
    assert sorted(names - expected) == [], "shipped but not collection content"
    assert sorted(expected - names) == [], "collection content left out"


def test_the_content_that_makes_the_collection_is_there(built):
    _, names = built
    for needed in ("LICENSE", "README.md", "meta/runtime.yml", "plugins/modules/vpn_plan.py",
                   "plugins/action/vpn_plan.py", "roles/xrdp_host/meta/argument_specs.yml", "playbooks/site.yml",
                   "inventories/sample/hosts.yml", "tests/sanity/ignore-2.19.txt"):
        assert needed in names, needed
    assert not any(n.startswith(("tests/unit", "molecule/", "scripts/", "inventories/lab/")) for n in names)
