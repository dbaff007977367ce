"""Running as AWX does: the project copied to another directory, the inventory given as a generated
script in a throw-away directory (AWX's job inventory), state and kits on a persistent volume named by
teleshift_base_dir. The copy must read and write the same roster, state and kits as the checkout;
without teleshift_base_dir a generated inventory is refused, nothing written. No lab host is touched:
only the VPN plan on the controller runs (``--limit localhost``)."""
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv" / "bin"
LAB = ROOT / "inventories" / "lab"


def project_copy(dest):
    """What AWX checks out: the repository's files (tracked and new, not ignored), links kept."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src, dst = ROOT / name, dest / name
        if not src.exists() and not src.is_symlink():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    return dest


def awx_inventory(dest):
    """AWX's job inventory: the project's inventory exported, as an executable script."""
    exported = subprocess.run([str(VENV / "ansible-inventory"), "-i", str(LAB / "hosts.yml"), "--list", "--export"],
                              cwd=ROOT, capture_output=True, text=True, check=True,
                              env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}).stdout
    dest.mkdir(parents=True)
    script = dest / "hosts"
    script.write_text("#!/usr/bin/env python3\nprint(%r)\n" % json.dumps(json.loads(exported)))
    script.chmod(0o700)
    return script


# The first play of playbooks/vpn.yml (the plan: roster, state, keys); the others reach the gateways.
PLAN_ONLY = """- name: Plan the VPN on the controller
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: Plan
      teleshift.toolkit.vpn_plan:
      register: plan
    - name: Show
      ansible.builtin.debug:
        msg: "{{ plan.msg }}"
"""


def vpn_plan(project, inventory, **extra):
    playbook = project / "playbooks" / "zz_plan_only.yml"
    if not playbook.exists():
        playbook.parent.mkdir(parents=True, exist_ok=True)
        playbook.write_text(PLAN_ONLY)
    env = {**os.environ, "ANSIBLE_CONFIG": str(project / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
           "TELESHIFT_CACHE": "0"}
    return subprocess.run([str(VENV / "ansible-playbook"), "-i", str(inventory), str(playbook), "-e",
                           json.dumps(extra)], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def tree_digest(path):
    digest = hashlib.sha256()
    for item in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        digest.update(str(item.relative_to(path)).encode() + item.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    base = tmp_path_factory.mktemp("awx")
    volume = base / "volume"  # the persistent volume: roster, state/, kits
    volume.mkdir()
    shutil.copy(LAB / "roster.csv", volume / "roster.csv")
    return {"volume": volume, "project": project_copy(base / "project"),
            "inventory": awx_inventory(base / "runner" / "inventory"),
            "vars": {"teleshift_base_dir": str(volume), "teleshift_kits_dir": "kits"},
            "checkout": checkout_runner(base / "checkout")}


def checkout_runner(dest):
    """A directory whose ansible.cfg is the checkout's (collections from the checkout itself)."""
    dest.mkdir()
    text = (ROOT / "ansible.cfg").read_text().replace("collections_path = .collections",
                                                      f"collections_path = {ROOT / '.collections'}")
    text = text.replace("roles_path = roles", f"roles_path = {ROOT / 'roles'}")
    (dest / "ansible.cfg").write_text(text)
    return dest


def test_the_copy_reads_and_writes_what_the_checkout_wrote(awx):
    volume = awx["volume"]
    # the checkout's code and the organisation's inventory (its playbook outside the checkout, so the
    # checkout is left as it is: the paths are absolute here)
    first = vpn_plan(awx["checkout"], LAB / "hosts.yml", **awx["vars"])
    assert first.returncode == 0, first.stdout[-3000:]
    state = volume / "state" / "vpn.yml"
    people = yaml.safe_load(state.read_text())["people"]
    assert people and all((volume / "kits" / pid / "vpn" / "private.key").exists() for pid in people)
    before = (tree_digest(volume), state.stat().st_mtime_ns)
    elsewhere = [awx["inventory"].parent, awx["project"] / "inventories"]
    untouched = [tree_digest(p) for p in elsewhere]
    second = vpn_plan(awx["project"], awx["inventory"], **awx["vars"])  # AWX: a copy, a generated inventory
    assert second.returncode == 0, second.stdout[-3000:]
    assert "0 new, 0 revoked, 0 new key(s)" in second.stdout, second.stdout[-3000:]
    assert (tree_digest(volume), state.stat().st_mtime_ns) == before  # same roster, state and keys: nothing rewritten
    assert [tree_digest(p) for p in elsewhere] == untouched  # nothing written beside the job's inventory
    assert not (awx["project"] / "kits").exists()
    # a roster change made on the volume is what the copy applies, into the volume's state
    with (volume / "roster.csv").open("a", encoding="utf-8") as stream:
        stream.write("zzawx,Zoé Awx,zoe.awx@departement.example,dsi,normal,,laptop,vpn,,,none,20,no,yes,fr\n")
    third = vpn_plan(awx["project"], awx["inventory"], **awx["vars"])
    assert third.returncode == 0, third.stdout[-3000:]
    assert "zzawx" in yaml.safe_load(state.read_text())["people"]
    assert (volume / "kits" / "zzawx" / "vpn" / "private.key").exists()


def test_a_relative_base_dir_is_the_projects(awx):
    proc = vpn_plan(awx["project"], awx["inventory"], teleshift_base_dir="inventories/lab",
                    teleshift_kits_dir=str(awx["volume"] / "kits-relative"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (awx["project"] / "inventories" / "lab" / "state" / "vpn.yml").exists()
    assert not (awx["inventory"].parent / "state").exists()


def test_a_generated_inventory_without_base_dir_is_refused(awx):
    proc = vpn_plan(awx["project"], awx["inventory"], teleshift_kits_dir=str(awx["volume"] / "kits-refused"))
    assert proc.returncode != 0
    assert "teleshift_base_dir" in proc.stdout and "generated" in proc.stdout, proc.stdout[-3000:]
    assert not (awx["inventory"].parent / "state").exists()
    assert not (awx["volume"] / "kits-refused").exists()
