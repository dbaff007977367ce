"""The execution environment (execution-environment.yml), built and used without a registry.

    build()      the lab's Debian image (debootstrap, teleshift_cli.lab) -> ee/base (+ pip) ->
                 `ansible-galaxy collection build` -> `ansible-builder create` -> `podman build`
    converge()   ansible-runner in container mode, as AWX runs a job: a private data directory under
                 build/ee/runner/ holding a copy of the project and an AWX-style inventory script (the
                 lab inventory exported), the EE image, the state and kits on "persistent volumes"
                 (the lab inventory's directory and kits, mounted), collections from the image only.
                 The lab is reached through the machine's podman service (a socket under build/ee,
                 started for the run and stopped after): teleshift.toolkit.lab_podman runs `podman
                 exec` as a client of it. Artefacts stay in build/ee/runner/artifacts/<ident>/.

ansible-builder's own `build` is not used: its scripts drive dnf, and its build command may pull the
base image; `create` gives the context and podman builds it with the lab's containers.conf (runc).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from teleshift_cli import lab
from teleshift_cli.paths import LAB_INVENTORY, ROOT

BASE_TAG = "localhost/teleshift-ee-base:bookworm"
IMAGE = "localhost/teleshift-ee:latest"
WORK = ROOT / "build" / "ee"
VOLUME = "/var/lib/teleshift"  # where the job sees the persistent volume (state, roster, kits)
LOCAL_CA = "/usr/local/share/ca-certificates"


def say(msg):
    print(f"ee: {msg}", file=sys.stderr, flush=True)


def _venv_bin(name):
    return str(ROOT / ".venv" / "bin" / name)


def _run(cmd, log, timeout, env=None, cwd=ROOT):
    """Run ``cmd`` with its output in ``log``; raise with the log's tail on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(log, "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, env=env or os.environ,
                              cwd=cwd)
    if proc.returncode != 0:
        tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-25:])
        raise RuntimeError(f"{Path(cmd[0]).name} failed ({proc.returncode}), see {log}:\n{tail}")
    return time.monotonic() - started


def build(timeout=3600):
    """Build the EE image; returns {step: seconds}."""
    env = {**lab.podman_env(), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    times = {}
    started = time.monotonic()
    lab.ensure_images(["bookworm"])  # debootstrap when missing (no registry)
    times["lab_base_image"] = round(time.monotonic() - started, 1)
    base = WORK / "base-context"  # ee/base plus this machine's certificate authorities
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(ROOT / "ee" / "base", base)
    (base / "local-ca").mkdir()
    for cert in Path(LOCAL_CA).glob("*.crt"):
        shutil.copy(cert, base / "local-ca" / cert.name)
    times["ee_base_image"] = round(_run(["podman", "build", "--pull=never", "-t", BASE_TAG, str(base)],
                                        WORK / "logs" / "base.log", timeout, env), 1)
    collection = WORK / "collection"
    shutil.rmtree(collection, ignore_errors=True)
    times["collection"] = round(_run([_venv_bin("ansible-galaxy"), "collection", "build", "--force", "--output-path",
                                      str(collection), str(ROOT)], WORK / "logs" / "collection.log", 300, env), 1)
    built = next(collection.glob("teleshift-toolkit-*.tar.gz"))
    shutil.copy(built, collection / "teleshift-toolkit.tar.gz")
    context = WORK / "context"
    shutil.rmtree(context, ignore_errors=True)
    times["builder_create"] = round(_run([_venv_bin("ansible-builder"), "create", "-f",
                                          str(ROOT / "execution-environment.yml"), "-c", str(context)],
                                         WORK / "logs" / "create.log", 300, env), 1)
    times["podman_build"] = round(_run(["podman", "build", "--pull=never", "-f", str(context / "Containerfile"),
                                        "-t", IMAGE, str(context)], WORK / "logs" / "build.log", timeout, env), 1)
    return times


# ------------------------------------------------------------------------------------------ running

def project_copy(dest):
    """The project as AWX checks it out: the repository's files (tracked and new, not ignored)."""
    shutil.rmtree(dest, ignore_errors=True)
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, names):
        src, dst = ROOT / name, dest / name
        if not (src.exists() or src.is_symlink()):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)


def awx_inventory(inventory, dest):
    """AWX's job inventory: the project's inventory exported (`ansible-inventory --list --export`),
    written as an executable script in the job's own directory."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    exported = subprocess.run([_venv_bin("ansible-inventory"), "-i", str(inventory), "--list", "--export"],
                              cwd=ROOT, capture_output=True, text=True, check=True, env=env, timeout=120).stdout
    dest.mkdir(parents=True, exist_ok=True)
    script = dest / "hosts"
    script.write_text("#!/usr/bin/env python3\n# AWX-style job inventory (scripts/teleshift_cli/ee.py)\n"
                      f"print({json.dumps(json.dumps(json.loads(exported)))})\n")
    script.chmod(0o700)
    return script


def podman_service(socket):
    """The machine's podman API on a socket of our own (stopped by the caller)."""
    socket.parent.mkdir(parents=True, exist_ok=True)
    if socket.exists():
        socket.unlink()
    proc = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{socket}"], env=lab.podman_env(),
                            stdout=subprocess.DEVNULL, stderr=open(WORK / "logs" / "podman-service.log", "w"))
    deadline = time.monotonic() + 30
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if not socket.exists():
        proc.terminate()
        raise RuntimeError(f"podman system service did not open {socket}")
    return proc


def converge(playbook="site.yml", inventory=LAB_INVENTORY, kits=None, ident=None, timeout=3600, extra=None):
    """Run ``playbook`` with ansible-runner in container mode from the EE image; returns
    (rc, artefact directory, seconds)."""
    import ansible_runner

    inventory = Path(inventory)
    if "/" not in playbook:  # a name: the project's playbooks/ (ansible-runner looks in the project's root)
        playbook = f"playbooks/{playbook if playbook.endswith(('.yml', '.yaml')) else playbook + '.yml'}"
    kits = Path(kits or ROOT / "kits" / "lab")
    kits.mkdir(parents=True, exist_ok=True)
    private = WORK / "runner"
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    project_copy(private / "project")
    shutil.rmtree(private / "inventory", ignore_errors=True)
    shutil.rmtree(private / "env", ignore_errors=True)  # ansible-runner keeps envvars/extravars files there
    awx_inventory(inventory / "hosts.yml" if inventory.is_dir() else inventory, private / "inventory")
    base = inventory if inventory.is_dir() else inventory.parent
    extravars = {"teleshift_base_dir": f"{VOLUME}/inventory", "teleshift_kits_dir": f"{VOLUME}/kits",
                 "teleshift_verify_file": f"{VOLUME}/kits/verify.json", **(extra or {})}
    socket = WORK / "podman.sock"
    service = podman_service(socket)
    ident = ident or time.strftime("%Y%m%d-%H%M%S")
    started = time.monotonic()
    try:
        result = ansible_runner.run(
            private_data_dir=str(private), playbook=playbook, ident=ident, extravars=extravars,
            process_isolation=True, process_isolation_executable="podman", container_image=IMAGE,
            container_volume_mounts=[f"{base.resolve()}:{VOLUME}/inventory:rw", f"{kits.resolve()}:{VOLUME}/kits:rw",
                                     f"{socket}:{socket}:rw"],
            container_options=["--user=0", "--pull=never"],
            # the same path inside and out: ansible-runner's own podman (launching the job) sees it too
            envvars={"CONTAINER_HOST": f"unix://{socket}", "ANSIBLE_NOCOLOR": "1",
                     # as AWX: collections from the image (and a project's requirements), not the checkout's link
                     "ANSIBLE_COLLECTIONS_PATH": "/runner/requirements_collections:/usr/share/ansible/collections",
                     "ANSIBLE_ROLES_PATH": "/runner/requirements_roles:/usr/share/ansible/roles",
                     "TELESHIFT_CACHE": "0"},
            timeout=timeout, quiet=True)
        rc = result.rc
    finally:
        service.terminate()
        try:
            service.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
        if socket.exists():
            socket.unlink()
    return rc, private / "artifacts" / ident, time.monotonic() - started
