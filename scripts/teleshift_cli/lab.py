"""The real-host lab: systemd-booted podman containers described by inventories/lab/hosts.yml.

The lab inventory is the only lab definition. Every host in it carries ``teleshift_lab_*`` vars
(suite, networks with static addresses, devices, capabilities, kernel settings, routes); this module
turns them into locally built Debian images, podman networks and containers, idempotently:

    lab_up(inventory)      build missing images, (re)create what is missing, stale or outdated
    lab_down(inventory)    remove the lab's containers and networks
    lab_status(inventory)  one row per host: image, podman state, systemd state, addresses

Only the standard library and PyYAML: the CLI, molecule playbooks and benchmarks all call it.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from teleshift_cli.paths import CACHE, LAB_INVENTORY, ROOT

# Bump when the image recipe code changes in a way the recipe dict does not show.
RECIPE_VERSION = "1"
LABEL = "teleshift.lab"
SPEC_LABEL = "teleshift.lab.spec"
RECIPE_LABEL = "teleshift.lab.recipe"
SYSTEMD_LABEL = "teleshift.lab.systemd"
IMAGE_REPO = "localhost/teleshift-base"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_SUITE = "bookworm"
# Everything a lab host needs before Ansible touches it: systemd as PID 1, python3 for modules,
# python3-apt for the apt module, iproute2/iputils-ping/procps for tests and debugging.
BASE_PACKAGES = (
    "dbus", "iproute2", "iputils-ping", "netbase", "openssh-server", "procps",
    "python3", "python3-apt", "sudo", "systemd", "systemd-sysv",
)
# Units that cannot work in a container or that would race with converge (apt timers take the
# dpkg lock at random times).
MASKED_UNITS = (
    "apt-daily.timer", "apt-daily-upgrade.timer", "e2scrub_all.timer", "e2scrub_reap.service",
    "fstrim.timer", "getty@tty1.service", "console-getty.service",
    "systemd-remount-fs.service", "sys-kernel-config.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "systemd-modules-load.service",
)
# Wanted ulimits; the applied ones are capped at this process's hard limits (see choose_ulimits).
WANTED_ULIMITS = {"nofile": 65536, "nproc": 32768}
CGROUP_PARENT = "teleshift-lab"
BOOT_TIMEOUT = 180
PODMAN_TIMEOUT = 120
# A `podman exec` that only reads state: generous, so a loaded machine is not taken for a dead host.
PROBE_TIMEOUT = 60
BUILD_TIMEOUT = 1800
READY_STATES = ("running", "degraded")
# Kernel settings a container may be given at creation (podman allows the namespaced ones only).
NAMESPACED_SYSCTLS = ("net.", "kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")
# The machine-wide lab lock (container and network names are machine-wide, not per checkout).
LOCK_ENV = "TELESHIFT_LAB_LOCK"
LOCK_NAME = "teleshift-lab.lock"


class LabError(RuntimeError):
    """A lab operation failed; the message tells the user what to do."""


def log(msg):
    print(f"lab: {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- lab definition

@dataclass(frozen=True)
class Network:
    name: str
    subnet: str
    gateway: str
    isolate: bool = True

    def spec(self):
        return {"subnet": self.subnet, "gateway": self.gateway, "isolate": self.isolate}


@dataclass(frozen=True)
class Host:
    name: str
    groups: tuple
    suite: str
    networks: tuple          # ((network name, address), ...)
    devices: tuple = ()
    capabilities: tuple = ()
    routes: tuple = ()       # ("10.100.0.0/16 via 10.89.251.10", ...)
    sysctls: tuple = ()      # (("net.ipv4.ip_forward", "1"), ...): set at creation, sorted by key

    def address(self, network):
        return dict(self.networks).get(network)


@dataclass
class Lab:
    inventory: Path
    networks: dict           # name -> Network
    hosts: list = field(default_factory=list)

    def host(self, name):
        return next(h for h in self.hosts if h.name == name)


def inventory_file(inventory=None):
    """The lab's hosts.yml from a directory or a file path (relative to cwd, then the checkout)."""
    path = Path(inventory) if inventory else LAB_INVENTORY
    if not path.exists() and not path.is_absolute():
        path = ROOT / path
    if path.is_dir():
        for name in ("hosts.yml", "hosts.yaml"):
            if (path / name).is_file():
                return path / name
        raise LabError(f"no hosts.yml in {path}")
    if not path.is_file():
        raise LabError(f"lab inventory not found: {path}")
    return path


def _walk(name, group, inherited, hosts):
    """Collect each host's vars (parent group < child group < host) and groups."""
    group = group or {}
    merged = {**inherited, **(group.get("vars") or {})}
    for hname, hvars in (group.get("hosts") or {}).items():
        entry = hosts.setdefault(hname, {"vars": {}, "groups": []})
        entry["vars"] = {**merged, **entry["vars"], **(hvars or {})}
        entry["groups"].append(name)
    for child, cdef in (group.get("children") or {}).items():
        for hname in _walk(child, cdef, merged, hosts):
            hosts[hname]["groups"].append(name)
    return [h for h, e in hosts.items() if name in e["groups"]]


def resolve_inventory(data):
    """{host: {"vars": merged vars, "groups": [...]}} from a YAML inventory's data."""
    hosts = {}
    _walk("all", (data or {}).get("all", data), {}, hosts)
    return hosts


def expand(value, variables):
    """Replace '{{ name }}' with another var of the same host (the only templating the lab
    definition needs; Ansible resolves the same text the same way)."""
    def sub(match):
        if match.group(1) not in variables:
            raise LabError(f"undefined variable {match.group(1)} in {value!r}")
        return str(variables[match.group(1)])
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", sub, str(value))


def _as_network(name, spec):
    return Network(name=name, subnet=str(spec["subnet"]), gateway=str(spec["gateway"]),
                   isolate=bool(spec.get("isolate", True)))


def parse_lab(data, inventory=Path("hosts.yml")):
    """The Lab described by an inventory's data; raises LabError listing every problem."""
    resolved = resolve_inventory(data)
    networks, hosts = {}, []
    for name, entry in resolved.items():
        hv = entry["vars"]
        if "teleshift_lab_networks" not in hv:
            continue  # not a lab container (e.g. localhost)
        for nname, nspec in (hv.get("teleshift_lab_network_defs") or {}).items():
            networks.setdefault(nname, _as_network(nname, nspec))
        hosts.append(Host(
            name=name,
            groups=tuple(dict.fromkeys(entry["groups"])),
            suite=str(hv.get("teleshift_lab_suite", DEFAULT_SUITE)),
            networks=tuple((n, str(a)) for n, a in hv["teleshift_lab_networks"].items()),
            devices=tuple(hv.get("teleshift_lab_devices") or ()),
            capabilities=tuple(hv.get("teleshift_lab_capabilities") or ()),
            routes=tuple(expand(r, hv) for r in hv.get("teleshift_lab_routes") or ()),
            sysctls=_sysctls(name, hv.get("teleshift_lab_sysctls"), hv, inventory),
        ))
    lab = Lab(inventory=inventory, networks=networks, hosts=hosts)
    problems = validate_lab(lab)
    if problems:
        raise LabError(f"invalid lab definition in {inventory}:\n  " + "\n  ".join(problems))
    return lab


def _sysctls(hname, value, variables, inventory):
    """teleshift_lab_sysctls {key: value} -> sorted ((key, value as text), ...)."""
    if not value:
        return ()
    if not isinstance(value, dict):
        raise LabError(f"invalid lab definition in {inventory}:\n  {hname}: teleshift_lab_sysctls "
                       f"must be a mapping of kernel setting: value, got {type(value).__name__}")
    pairs = []
    for key, val in value.items():
        if isinstance(val, bool) or not isinstance(val, (int, str)):
            raise LabError(f"invalid lab definition in {inventory}:\n  {hname}: teleshift_lab_sysctls: "
                           f"{key}: expected a number or text, got {val!r}")
        pairs.append((str(key), expand(val, variables).strip()))
    return tuple(sorted(pairs))


def sysctl_problems(hname, sysctls):
    """Problems with a host's kernel settings (names podman accepts at creation, one-word values)."""
    problems = []
    for key, val in sysctls:
        if not re.fullmatch(r"[a-z0-9_]+(\.[A-Za-z0-9_-]+)+", key):
            problems.append(f"{hname}: teleshift_lab_sysctls: {key!r} is not a kernel setting name")
        elif not key.startswith(NAMESPACED_SYSCTLS):
            problems.append(f"{hname}: teleshift_lab_sysctls: {key} is not namespaced: a container "
                            f"cannot be given it (only {', '.join(NAMESPACED_SYSCTLS)}*)")
        if not val or "=" in val or any(c.isspace() for c in val):
            problems.append(f"{hname}: teleshift_lab_sysctls: {key}: value {val!r} is not one word")
    return problems


def validate_lab(lab):
    """Every problem in a lab definition, as readable strings."""
    problems, seen = [], {}
    if not lab.hosts:
        problems.append("no host has teleshift_lab_networks")
    for net in lab.networks.values():
        try:
            subnet = ipaddress.ip_network(net.subnet)
            if ipaddress.ip_address(net.gateway) not in subnet:
                problems.append(f"network {net.name}: gateway {net.gateway} not in {net.subnet}")
        except ValueError as exc:
            problems.append(f"network {net.name}: {exc}")
    for host in lab.hosts:
        if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", host.name):
            problems.append(f"{host.name}: not a valid container name")
        for nname, addr in host.networks:
            problems.extend(_check_address(lab, host.name, nname, addr, seen))
        for route in host.routes:
            if not re.fullmatch(r"\S+ via \S+", str(route)):
                problems.append(f"{host.name}: route {route!r} is not 'CIDR via ADDRESS'")
        problems.extend(sysctl_problems(host.name, host.sysctls))
    return problems


def _check_address(lab, hname, nname, addr, seen):
    net = lab.networks.get(nname)
    if net is None:
        return [f"{hname}: network {nname} is not in teleshift_lab_network_defs"]
    try:
        ip = ipaddress.ip_address(addr)
        subnet = ipaddress.ip_network(net.subnet)
    except ValueError as exc:
        return [f"{hname}: {exc}"]
    if ip not in subnet or str(ip) in (net.gateway, str(subnet.network_address)):
        return [f"{hname}: address {addr} is not a usable host address of {nname} {net.subnet}"]
    if str(ip) in seen:
        return [f"{hname}: address {addr} already used by {seen[str(ip)]}"]
    seen[str(ip)] = hname
    return []


def load_lab(inventory=None):
    path = inventory_file(inventory)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise LabError(f"cannot parse {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise LabError(f"{path}: not a lab inventory (expected a YAML mapping of groups)")
    return parse_lab(data, path)


# ---------------------------------------------------------------- what this machine is

def cgroup_layout(mounts_text):
    """'unified' (pure cgroup2), 'hybrid' (v1 + cgroup2 at /sys/fs/cgroup/unified) or 'legacy'."""
    fstype = {}
    for line in mounts_text.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            fstype[parts[1]] = parts[2]  # later mounts hide earlier ones
    if fstype.get("/sys/fs/cgroup") == "cgroup2":
        return "unified"
    if fstype.get("/sys/fs/cgroup/unified") == "cgroup2":
        return "hybrid"
    return "legacy"


def host_cgroup_layout():
    return cgroup_layout(Path("/proc/mounts").read_text())


def systemd_major(version):
    """252 from '252.38-1~deb12u1', 262 from '262~rc2-1'; 0 when unknown."""
    match = re.match(r"\s*(\d+)", str(version or ""))
    return int(match.group(1)) if match else 0


def needs_private_cgroup(layout, systemd_version):
    """systemd >= 256 refuses a hybrid host: give it a private cgroup2 tree to mount."""
    major = systemd_major(systemd_version)
    if major < 256 or layout == "unified":
        return False
    if layout == "hybrid":
        return True
    raise LabError(f"systemd {major} needs cgroup v2, but this host has only cgroup v1 "
                   "(no /sys/fs/cgroup/unified): boot the host with a cgroup2 hierarchy")


def choose_ulimits(hard_limits, wanted=None):
    """['nofile=N:N', 'nproc=M:M'] at or below the hard limits (lacking CAP_SYS_RESOURCE,
    podman's defaults above them fail with 'setrlimit: Operation not permitted')."""
    out = []
    for name, want in (wanted or WANTED_ULIMITS).items():
        hard = hard_limits.get(name, resource.RLIM_INFINITY)
        value = want if hard in (resource.RLIM_INFINITY, -1) else min(want, hard)
        out.append(f"{name}={value}:{value}")
    return out


def current_hard_limits():
    return {"nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[1]}


def choose_runtime(layout, which=shutil.which):
    """runc works everywhere here; crun fails on hybrid hosts ('cgroups in hybrid mode')."""
    if which("runc"):
        return "runc"
    if layout == "unified" and which("crun"):
        return "crun"
    raise LabError("runc is not installed: run scripts/bootstrap-system (as root)")


def containers_conf_text(ulimits, runtime):
    quoted = ", ".join(f'"{u}"' for u in ulimits)
    return (f"# Written by teleshift lab (scripts/teleshift_cli/lab.py); regenerated on each run.\n"
            f"[containers]\ndefault_ulimits = [{quoted}]\n\n[engine]\nruntime = \"{runtime}\"\n")


def lab_cache():
    return CACHE / "lab"


_CONF = {}


def containers_conf():
    """Path of the project's CONTAINERS_CONF, (re)written from what this machine allows."""
    if "path" not in _CONF:
        layout = host_cgroup_layout()
        text = containers_conf_text(choose_ulimits(current_hard_limits()), choose_runtime(layout))
        path = lab_cache() / "containers.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        _CONF["path"] = path
    return _CONF["path"]


def podman_env():
    return {**os.environ, "CONTAINERS_CONF": str(containers_conf())}


# ---------------------------------------------------------------- running podman

def podman_exe():
    exe = shutil.which("podman")
    if not exe:
        raise LabError("podman is not installed: run scripts/bootstrap-system (as root)")
    return exe


def podman(*args, timeout=PODMAN_TIMEOUT, check=True, stdin=None):
    """Run podman with the project's containers.conf; LabError on failure or timeout."""
    cmd = [podman_exe(), *map(str, args)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env=podman_env(), stdin=stdin)
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"timed out after {timeout}s: podman {' '.join(cmd[1:4])} ...") from exc
    if check and proc.returncode != 0:
        raise LabError(f"podman {' '.join(cmd[1:])} failed ({proc.returncode}): "
                       f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc


def podman_json(*args, timeout=PODMAN_TIMEOUT):
    out = podman(*args, timeout=timeout).stdout.strip()
    return json.loads(out) if out else []


# ---------------------------------------------------------------- base images

def mirror():
    return os.environ.get("TELESHIFT_DEBIAN_MIRROR", DEFAULT_MIRROR).rstrip("/")


def apt_conf_text(suite):
    lines = ['Acquire::Languages "none";']
    if suite in ("sid", "unstable"):
        lines.append('Acquire::Check-Valid-Until "false";')  # sid's Release is often expired
    return "\n".join(lines) + "\n"


def recipe(suite, mirror_url):
    """Everything that determines an image's content; its hash names the image version."""
    return {
        "version": RECIPE_VERSION,
        "suite": suite,
        "mirror": mirror_url,
        "packages": sorted(BASE_PACKAGES),
        "masked": sorted(MASKED_UNITS),
        "apt_conf": apt_conf_text(suite),
        "sources": f"deb {mirror_url} {suite} main\n",
    }


def recipe_hash(rec):
    return hashlib.sha256(json.dumps(rec, sort_keys=True).encode()).hexdigest()[:12]


def image_ref(suite):
    return f"{IMAGE_REPO}:{suite}"


def debootstrap_cmd(rec, target, cache_dir):
    return ["debootstrap", "--variant=minbase", f"--include={','.join(rec['packages'])}",
            f"--cache-dir={cache_dir}", rec["suite"], str(target), rec["mirror"]]


def import_cmd(ref, rec, systemd_version):
    labels = {LABEL: "1", RECIPE_LABEL: recipe_hash(rec), SYSTEMD_LABEL: systemd_version}
    changes = ['CMD ["/sbin/init"]', "STOPSIGNAL SIGRTMIN+3"]
    changes += [f"LABEL {k}={v}" for k, v in labels.items()]
    args = ["import", "--quiet"]
    for change in changes:
        args += ["--change", change]
    return args + ["--message", f"teleshift lab base image {rec['suite']}", "-", ref]


def image_info(ref):
    """{'id', 'labels'} of a local image, or None."""
    proc = podman("image", "inspect", ref, check=False)
    if proc.returncode != 0:
        return None
    data = json.loads(proc.stdout)[0]
    labels = data.get("Labels") or (data.get("Config") or {}).get("Labels") or {}
    return {"id": data["Id"], "labels": labels}


def dpkg_version(status_text, package):
    """The installed version of a package from a dpkg status file's text."""
    for para in status_text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): (.*)$", para, re.M))
        if fields.get("Package") == package and "installed" in fields.get("Status", ""):
            return fields.get("Version", "")
    return ""


def customize_rootfs(rootfs, rec):
    """Make a debootstrapped tree boot cleanly as a container and look like a plain host."""
    etc = rootfs / "etc"
    (etc / "apt" / "sources.list").write_text(rec["sources"])
    (etc / "apt" / "apt.conf.d" / "99teleshift-lab").write_text(rec["apt_conf"])
    (etc / "machine-id").write_text("")  # each container gets its own at boot
    dbus_id = rootfs / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    for unit in rec["masked"]:
        link = etc / "systemd" / "system" / unit
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to("/dev/null")
    for deb in (rootfs / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        deb.unlink()
    (etc / "teleshift-lab-image.json").write_text(json.dumps(rec, indent=1, sort_keys=True) + "\n")


def _require_builder():
    if not shutil.which("debootstrap"):
        raise LabError("debootstrap is not installed: run scripts/bootstrap-system (as root)")
    if os.geteuid() != 0:
        raise LabError("building lab images needs root (debootstrap, rootful podman)")


def build_image(suite, mirror_url=None, force=False):
    """Build localhost/teleshift-base:<suite> unless an image of the same recipe exists."""
    rec = recipe(suite, mirror_url or mirror())
    digest, ref = recipe_hash(rec), image_ref(suite)
    old = image_info(ref)
    if old and old["labels"].get(RECIPE_LABEL) == digest and not force:
        return old
    _require_builder()
    work = lab_cache() / "images" / f"{suite}-{digest}"
    rootfs, debs = work / "rootfs", lab_cache() / "debs" / suite
    shutil.rmtree(rootfs, ignore_errors=True)
    debs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"building {ref} (recipe {digest}) from {rec['mirror']}: debootstrap takes minutes")
    _run_logged(debootstrap_cmd(rec, rootfs, debs.resolve()), work / "debootstrap.log")
    customize_rootfs(rootfs, rec)
    systemd = dpkg_version((rootfs / "var/lib/dpkg/status").read_text(), "systemd")
    _import_rootfs(rootfs, import_cmd(ref, rec, systemd))
    shutil.rmtree(rootfs, ignore_errors=True)
    log(f"built {ref} (systemd {systemd}) in {time.monotonic() - started:.0f}s")
    return {**image_info(ref), "built": True}


def _run_logged(cmd, logfile):
    logfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "w") as out:
        try:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{cmd[0]} timed out after {BUILD_TIMEOUT}s, see {logfile}") from exc
    if proc.returncode != 0:
        tail = "".join(logfile.read_text().splitlines(keepends=True)[-15:])
        raise LabError(f"{cmd[0]} failed ({proc.returncode}), see {logfile}:\n{tail}")


def _import_rootfs(rootfs, args):
    tar = subprocess.Popen(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-c", "."],
                           stdout=subprocess.PIPE)
    try:
        podman(*args, stdin=tar.stdout, timeout=600)
    finally:
        tar.stdout.close()
        tar.wait(timeout=60)


def ensure_images(suites, force=False):
    """{suite: image info}, building missing or outdated images two at a time."""
    suites = sorted(set(suites))
    with ThreadPoolExecutor(max_workers=2) as pool:
        infos = list(pool.map(lambda s: build_image(s, force=force), suites))
    return dict(zip(suites, infos))


# ---------------------------------------------------------------- networks

def spec_hash(spec):
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def network_create_args(net):
    args = ["network", "create", "--driver", "bridge", "--subnet", net.subnet,
            "--gateway", net.gateway, "--label", f"{LABEL}=1",
            "--label", f"{SPEC_LABEL}={spec_hash(net.spec())}"]
    if net.isolate:
        args += ["--opt", "isolate=true"]  # netavark: no forwarding to other isolated bridges
    return args + [net.name]


def overlapping(subnet, others):
    """Names of the (name, cidr) pairs that overlap subnet."""
    mine = ipaddress.ip_network(subnet)
    return [name for name, cidr in others if mine.overlaps(ipaddress.ip_network(cidr))]


def ensure_networks(lab):
    """Create missing networks, replace ones of the same names with another spec."""
    existing = {n["name"]: n for n in podman_json("network", "ls", "--format", "json")}
    foreign = [(n["name"], s["subnet"]) for n in existing.values() if n["name"] not in lab.networks
               for s in n.get("subnets") or []]
    for net in lab.networks.values():
        current = existing.get(net.name)
        if current and (current.get("labels") or {}).get(SPEC_LABEL) == spec_hash(net.spec()):
            continue
        clash = overlapping(net.subnet, foreign)
        if clash:
            raise LabError(f"network {net.name} {net.subnet} overlaps podman network(s) {clash}: "
                           "change teleshift_lab_network_defs in the lab inventory")
        if current:
            log(f"replacing network {net.name} (outdated); its containers go with it")
            podman("network", "rm", "--force", net.name)
        podman(*network_create_args(net))
        log(f"created network {net.name} {net.subnet}")


# ---------------------------------------------------------------- containers

def cgroup_dir(name):
    return Path("/sys/fs/cgroup/unified") / CGROUP_PARENT / name


def reset_cgroup(path):
    """Remove a private cgroup tree left by a previous container (empty cgroups only)."""
    if not path.is_dir():
        return
    for sub in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        try:
            sub.rmdir()
        except OSError:
            pass


def container_spec(host, lab, image, private_cgroup, ulimits):
    """Everything a container is created from; its hash says whether it is current."""
    spec = {
        "image": image["id"],
        "networks": [[n, a, spec_hash(lab.networks[n].spec())] for n, a in host.networks],
        "devices": list(host.devices),
        "capabilities": list(host.capabilities),
        "private_cgroup": private_cgroup,
        "ulimits": list(ulimits),
    }
    if host.sysctls:  # only when set: hosts without any keep their hash (and are not recreated)
        spec["sysctls"] = dict(host.sysctls)
    return spec


def run_args(host, spec):
    args = ["run", "--detach", "--name", host.name, "--hostname", host.name,
            "--label", f"{LABEL}=1", "--label", f"{SPEC_LABEL}={spec_hash(spec)}",
            "--systemd=always", "--stop-timeout", "5"]
    for net, addr, _ in spec["networks"]:
        args += ["--network", f"{net}:ip={addr}"]
    for dev in spec["devices"]:
        args += ["--device", dev]
    for cap in spec["capabilities"]:
        args += ["--cap-add", cap]
    for key, val in sorted((spec.get("sysctls") or {}).items()):
        args += ["--sysctl", f"{key}={val}"]
    if spec["private_cgroup"]:
        args += ["--volume", f"{cgroup_dir(host.name)}:/sys/fs/cgroup:rw"]
    return args + [spec["image"], "/sbin/init"]


def existing_containers(names):
    """{name: podman ps record} for the given names, running or not."""
    records = podman_json("ps", "--all", "--format", "json")
    return {n: r for r in records for n in r.get("Names") or [] if n in names}


def systemd_state(name, wait=None):
    """systemd's state inside a container ('running', 'degraded', ...) or '' when unreachable."""
    cmd = ["exec", name, "systemctl", "is-system-running"] + (["--wait"] if wait else [])
    try:
        proc = podman(*cmd, check=False, timeout=wait or PROBE_TIMEOUT)
    except LabError:
        return ""
    lines = proc.stdout.strip().splitlines()
    return lines[-1].strip() if lines else ""


def sysctl_read_args(name, keys):
    """podman exec reading each key's live value, one line per key ('?' when it does not exist)."""
    script = 'for p; do v=$(cat "$p" 2>/dev/null) || v="?"; echo "$v"; done'
    return ["exec", name, "sh", "-c", script, "sh"] + [f"/proc/sys/{k.replace('.', '/')}" for k in keys]


def sysctls_off(wanted, output):
    """[(key, live value, wanted value)] of the settings whose live value (lines of
    sysctl_read_args' output, in the same order) differs from the wanted one."""
    lines = output.splitlines()
    off = []
    for i, (key, want) in enumerate(sorted(wanted.items())):
        live = " ".join(lines[i].split()) if i < len(lines) else "?"
        if live != " ".join(str(want).split()):
            off.append((key, live or "?", str(want)))
    return off


def live_sysctls_off(name, wanted):
    """The wanted kernel settings that are not in place in a running container (see sysctls_off)."""
    if not wanted:
        return []
    keys = sorted(wanted)
    proc = podman(*sysctl_read_args(name, keys), check=False, timeout=PROBE_TIMEOUT)
    if proc.returncode != 0:
        return [(k, "unreadable", str(wanted[k])) for k in keys]
    return sysctls_off(wanted, proc.stdout)


def describe_off(off):
    return ", ".join(f"{key} is {live} (needs {want})" for key, live, want in off)


def plan_containers(lab, images, layout, ulimits):
    """{host name: spec} the lab should run."""
    specs = {}
    for host in lab.hosts:
        image = images[host.suite]
        private = needs_private_cgroup(layout, image["labels"].get(SYSTEMD_LABEL, ""))
        specs[host.name] = container_spec(host, lab, image, private, ulimits)
    return specs


def replace_reason(record, spec, probe, sysctl_probe=live_sysctls_off):
    """Why a container must be (re)created, or '' to keep it. probe(name) -> systemd state;
    sysctl_probe(name, wanted) -> [(key, live, wanted)] of kernel settings not in place (a container
    cannot change them: only a new one gets them)."""
    if not record:
        return "missing"
    if (record.get("Labels") or {}).get(SPEC_LABEL) != spec_hash(spec):
        return "outdated"
    if record.get("State") != "running":
        return f"{record.get('State') or 'unknown'}"
    state = probe(record["Names"][0])
    if state in ("", "offline", "maintenance", "stopping"):
        return f"systemd {state or 'unreachable'}"
    off = sysctl_probe(record["Names"][0], spec.get("sysctls") or {}) if spec.get("sysctls") else []
    if off:
        return describe_off(off)
    return ""


def start_container(host, spec):
    podman("rm", "--force", "--time", "3", "--ignore", host.name)
    if spec["private_cgroup"]:
        reset_cgroup(cgroup_dir(host.name))
        cgroup_dir(host.name).mkdir(parents=True, exist_ok=True)
    podman(*run_args(host, spec))


def wait_ready(name, timeout=BOOT_TIMEOUT):
    """Wait until systemd finished booting and python3 runs; return systemd's state."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        state = systemd_state(name, wait=max(5, int(deadline - time.monotonic())))
        if state in READY_STATES:
            break
        if not container_running(name):
            raise LabError(f"{name} stopped while booting; last log lines:\n{container_logs(name)}")
        time.sleep(0.5)
    else:
        raise LabError(f"{name}: systemd not ready after {timeout}s (state {state or 'unknown'})")
    python = podman("exec", name, "python3", "-c", "import sys; print(sys.version.split()[0])",
                    check=False, timeout=PROBE_TIMEOUT)
    if python.returncode != 0:
        raise LabError(f"{name}: python3 does not run: {python.stderr.strip()}")
    return state


def container_running(name):
    proc = podman("container", "inspect", "--format", "{{.State.Running}}", name, check=False)
    return proc.stdout.strip() == "true"


def container_logs(name):
    return podman("logs", "--tail", "20", name, check=False).stdout.strip() or "(no output)"


def apply_routes(host):
    """Static routes inside a container (its own network namespace; podman grants the caps)."""
    for route in host.routes:
        dest, gateway = str(route).split(" via ")
        podman("exec", "--privileged", host.name, "ip", "route", "replace", dest.strip(),
               "via", gateway.strip())


def failed_units(name):
    proc = podman("exec", name, "systemctl", "list-units", "--failed", "--plain", "--no-legend",
                  check=False, timeout=PROBE_TIMEOUT)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


# ---------------------------------------------------------------- the API

def lock_path():
    """The machine-wide lab lock: $TELESHIFT_LAB_LOCK, else /run/lock (or the temporary
    directory) - never in a checkout: every checkout on the machine drives the same containers."""
    if os.environ.get(LOCK_ENV):
        return Path(os.environ[LOCK_ENV])
    run_lock = Path("/run/lock")
    base = run_lock if run_lock.is_dir() and os.access(run_lock, os.W_OK) else Path(tempfile.gettempdir())
    return base / LOCK_NAME


def _open_lock(path):
    """A descriptor to flock (read-only is enough); an existing file is opened without O_CREAT, which
    sticky shared directories refuse on another user's file (fs.protected_regular)."""
    try:
        return os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        return fd


@contextlib.contextmanager
def lab_lock(timeout=900):
    """One lab operation at a time on this machine (CI, benchmarks and people share it)."""
    path = lock_path()
    with os.fdopen(_open_lock(path), "rb") as handle:
        deadline, told = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LabError(f"another lab operation holds {path} since {timeout}s") from None
                if not told:
                    log("waiting for another lab operation to finish")
                    told = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _context(lab, force=False):
    layout = host_cgroup_layout()
    ulimits = choose_ulimits(current_hard_limits())
    images = ensure_images({h.suite for h in lab.hosts}, force=force)
    return layout, ulimits, images


def lab_up(inventory_dir=None, rebuild=False, timeout=BOOT_TIMEOUT):
    """Bring the lab to its definition; returns {host: 'kept'|'created'} and leaves healthy,
    current containers alone."""
    with lab_lock():
        return _up(load_lab(inventory_dir), rebuild, timeout)


def _up(lab, rebuild, timeout):
    started = time.monotonic()
    layout, ulimits, images = _context(lab, force=rebuild)
    ensure_networks(lab)
    specs = plan_containers(lab, images, layout, ulimits)
    records = existing_containers(specs)
    actions = {}
    for host in lab.hosts:
        why = replace_reason(records.get(host.name), specs[host.name], systemd_state)
        if not why:
            actions[host.name] = "kept"
            continue
        log(f"starting {host.name} ({why})")
        start_container(host, specs[host.name])
        actions[host.name] = "created"
    with ThreadPoolExecutor(max_workers=len(lab.hosts)) as pool:
        states = dict(zip(specs, pool.map(lambda n: wait_ready(n, timeout), specs)))
    if any(i.get("built") for i in images.values()):
        # the images replaced by this build, now that no container uses them
        podman("image", "prune", "--force", "--filter", f"label={LABEL}=1", check=False)
    for host in lab.hosts:
        off = live_sysctls_off(host.name, dict(host.sysctls))
        if off:
            raise LabError(f"{host.name}: {describe_off(off)} although the container was given it: "
                           "does podman accept --sysctl here?")
        apply_routes(host)
        if states[host.name] == "degraded":
            log(f"{host.name} is degraded: failed units {failed_units(host.name)}")
    log(f"lab up in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{n} {a}" for n, a in actions.items()))
    return actions


def lab_down(inventory_dir=None):
    """Remove the lab's containers and networks; idempotent."""
    with lab_lock():
        _down(load_lab(inventory_dir))


def _down(lab):
    names = [h.name for h in lab.hosts]
    podman("rm", "--force", "--time", "3", "--ignore", *names, timeout=180)
    existing = {n["name"] for n in podman_json("network", "ls", "--format", "json")}
    for net in lab.networks:
        if net in existing:
            podman("network", "rm", "--force", net)
    for path in [cgroup_dir(n) for n in names] + [cgroup_dir(names[0]).parent]:
        reset_cgroup(path)
        try:
            path.rmdir()  # only empty cgroups go; a busy one stays, harmlessly
        except OSError:
            pass
    log(f"lab down: removed {', '.join(names)} and networks {', '.join(lab.networks)}")


@dataclass
class HostStatus:
    name: str
    image: str
    state: str
    systemd: str
    addresses: dict
    settings_off: list = field(default_factory=list)  # [(kernel setting, live, wanted)]

    @property
    def healthy(self):
        return self.state == "running" and self.systemd in READY_STATES and not self.settings_off


def lab_status(inventory_dir=None):
    """[HostStatus] for every lab host (absent hosts included)."""
    lab = load_lab(inventory_dir)
    names = [h.name for h in lab.hosts]
    records = existing_containers(names)
    inspected = {}
    if records:
        for data in podman_json("container", "inspect", *records):
            inspected[data["Name"].lstrip("/")] = data
    rows = []
    for host in lab.hosts:
        data = inspected.get(host.name)
        if not data:
            rows.append(HostStatus(host.name, image_ref(host.suite), "absent", "-", {}))
            continue
        state = data["State"]["Status"]
        nets = data["NetworkSettings"].get("Networks") or {}
        rows.append(HostStatus(
            name=host.name,
            image=data.get("ImageName") or image_ref(host.suite),
            state=state,
            systemd=(systemd_state(host.name) or "-") if state == "running" else "-",
            addresses={n: v.get("IPAddress") or "-" for n, v in nets.items()},
            settings_off=live_sysctls_off(host.name, dict(host.sysctls)) if state == "running" else [],
        ))
    return rows


def format_status(rows):
    table = [("HOST", "IMAGE", "STATE", "SYSTEMD", "ADDRESSES")]
    for r in rows:
        addrs = " ".join(f"{n}={a}" for n, a in sorted(r.addresses.items())) or "-"
        table.append((r.name, r.image, r.state, r.systemd, addrs))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row[:4], widths)) + "  " + row[4] for row in table]
    for r in rows:
        if r.settings_off:
            lines.append(f"{r.name}: kernel setting not in place: {describe_off(r.settings_off)}; "
                         "`scripts/teleshift lab up` recreates the host with it")
    return "\n".join(lines)
