"""Pure logic of the real-host lab (teleshift_cli.lab): no podman, no containers."""
import resource
import tomllib
from pathlib import Path

import pytest
import yaml

from teleshift_cli import lab
from teleshift_cli.paths import LAB_INVENTORY

HYBRID_MOUNTS = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
"""
UNIFIED_MOUNTS = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"
LEGACY_MOUNTS = ("tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
                 "cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")


def minimal_lab(**host_overrides):
    host = {"teleshift_lab_networks": {"net-a": "10.1.0.5"}, **host_overrides}
    return {"all": {"children": {"teleshift_lab": {
        "vars": {"teleshift_lab_network_defs": {
            "net-a": {"subnet": "10.1.0.0/24", "gateway": "10.1.0.1"}}},
        "hosts": {"h1": host}}}}}


# ------------------------------------------------------------ host detection

@pytest.mark.parametrize("mounts, layout", [
    (HYBRID_MOUNTS, "hybrid"), (UNIFIED_MOUNTS, "unified"), (LEGACY_MOUNTS, "legacy"), ("", "legacy"),
])
def test_cgroup_layout(mounts, layout):
    assert lab.cgroup_layout(mounts) == layout


def test_cgroup_layout_later_mount_hides_earlier():
    # a cgroup2 mounted over the tmpfs is what a process sees
    assert lab.cgroup_layout(LEGACY_MOUNTS + UNIFIED_MOUNTS) == "unified"


@pytest.mark.parametrize("version, major", [
    ("252.39-1~deb12u2", 252), ("262.1-1", 262), ("262~rc2-1", 262), ("", 0), (None, 0),
])
def test_systemd_major(version, major):
    assert lab.systemd_major(version) == major


@pytest.mark.parametrize("layout, version, private", [
    ("hybrid", "252.39-1~deb12u2", False),
    ("hybrid", "256.1-1", True),
    ("hybrid", "262.1-1", True),
    ("unified", "262.1-1", False),
    ("legacy", "252.39-1", False),
])
def test_needs_private_cgroup(layout, version, private):
    assert lab.needs_private_cgroup(layout, version) is private


def test_new_systemd_on_pure_v1_host_is_a_clear_error():
    with pytest.raises(lab.LabError, match="cgroup v2"):
        lab.needs_private_cgroup("legacy", "257.1-1")


def test_ulimits_capped_at_hard_limits():
    got = lab.choose_ulimits({"nofile": 20000, "nproc": 96364})
    assert got == ["nofile=20000:20000", "nproc=32768:32768"]


def test_ulimits_unlimited_hard_limit_uses_wanted_value():
    got = lab.choose_ulimits({"nofile": resource.RLIM_INFINITY, "nproc": 100},
                             wanted={"nofile": 1024, "nproc": 4096})
    assert got == ["nofile=1024:1024", "nproc=100:100"]


def test_runtime_prefers_runc_and_refuses_crun_on_hybrid_hosts():
    only = lambda names: (lambda n: f"/usr/bin/{n}" if n in names else None)  # noqa: E731
    assert lab.choose_runtime("hybrid", only({"runc", "crun"})) == "runc"
    assert lab.choose_runtime("unified", only({"crun"})) == "crun"
    with pytest.raises(lab.LabError, match="bootstrap-system"):
        lab.choose_runtime("hybrid", only({"crun"}))


def test_containers_conf_is_valid_toml_with_the_chosen_values():
    conf = tomllib.loads(lab.containers_conf_text(["nofile=10:10", "nproc=20:20"], "runc"))
    assert conf["containers"]["default_ulimits"] == ["nofile=10:10", "nproc=20:20"]
    assert conf["engine"]["runtime"] == "runc"


# ------------------------------------------------------------ images

def test_recipe_hash_is_stable_and_tracks_every_input(monkeypatch):
    base = lab.recipe("bookworm", "http://m/debian")
    digest = lab.recipe_hash(base)
    assert digest == lab.recipe_hash(lab.recipe("bookworm", "http://m/debian"))
    assert len(digest) == 12
    others = {lab.recipe_hash(lab.recipe("sid", "http://m/debian")),
              lab.recipe_hash(lab.recipe("bookworm", "http://other/debian"))}
    monkeypatch.setattr(lab, "BASE_PACKAGES", lab.BASE_PACKAGES + ("curl",))
    others.add(lab.recipe_hash(lab.recipe("bookworm", "http://m/debian")))
    monkeypatch.setattr(lab, "RECIPE_VERSION", "999")
    others.add(lab.recipe_hash(lab.recipe("bookworm", "http://m/debian")))
    assert digest not in others and len(others) == 4


def test_recipe_ignores_package_order(monkeypatch):
    first = lab.recipe_hash(lab.recipe("bookworm", "m"))
    monkeypatch.setattr(lab, "BASE_PACKAGES", tuple(reversed(lab.BASE_PACKAGES)))
    assert lab.recipe_hash(lab.recipe("bookworm", "m")) == first


def test_sid_images_accept_an_expired_release_file():
    assert 'Check-Valid-Until "false"' in lab.apt_conf_text("sid")
    assert "Check-Valid-Until" not in lab.apt_conf_text("bookworm")


def test_mirror_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("TELESHIFT_DEBIAN_MIRROR", "http://mirror.example/debian/")
    assert lab.mirror() == "http://mirror.example/debian"
    monkeypatch.delenv("TELESHIFT_DEBIAN_MIRROR")
    assert lab.mirror() == lab.DEFAULT_MIRROR


def test_debootstrap_command():
    rec = lab.recipe("sid", "http://m/debian")
    cmd = lab.debootstrap_cmd(rec, Path("/t/rootfs"), Path("/c/debs"))
    assert cmd[:2] == ["debootstrap", "--variant=minbase"]
    included = next(a for a in cmd if a.startswith("--include=")).split("=", 1)[1].split(",")
    assert {"python3", "systemd-sysv", "dbus"} <= set(included)
    assert "--cache-dir=/c/debs" in cmd
    assert cmd[-3:] == ["sid", "/t/rootfs", "http://m/debian"]


def test_import_labels_image_with_recipe_and_systemd_version():
    rec = lab.recipe("sid", "m")
    args = lab.import_cmd("localhost/teleshift-base:sid", rec, "262.1-1")
    changes = [args[i + 1] for i, a in enumerate(args) if a == "--change"]
    assert f"LABEL {lab.RECIPE_LABEL}={lab.recipe_hash(rec)}" in changes
    assert f"LABEL {lab.SYSTEMD_LABEL}=262.1-1" in changes
    assert 'CMD ["/sbin/init"]' in changes
    assert args[-2:] == ["-", "localhost/teleshift-base:sid"]


def test_dpkg_version_skips_removed_packages():
    status = ("Package: systemd\nStatus: deinstall ok config-files\nVersion: 1\n\n"
              "Package: systemd-sysv\nStatus: install ok installed\nVersion: 2\n\n"
              "Package: systemd\nStatus: install ok installed\nVersion: 252.39-1\n")
    assert lab.dpkg_version(status, "systemd") == "252.39-1"
    assert lab.dpkg_version(status, "absent") == ""


def test_customize_rootfs(tmp_path):
    for d in ("etc/apt/apt.conf.d", "etc/systemd/system/timers.target.wants",
              "var/lib/dbus", "var/cache/apt/archives"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/machine-id").write_text("e9ac283c217e4b87b4aec612f976301a\n")
    (tmp_path / "var/lib/dbus/machine-id").write_text("e9ac283c217e4b87b4aec612f976301a\n")
    (tmp_path / "var/cache/apt/archives/python3.deb").write_text("x")
    (tmp_path / "etc/systemd/system/apt-daily.timer").symlink_to("/lib/systemd/system/x")
    rec = lab.recipe("sid", "http://m/debian")
    lab.customize_rootfs(tmp_path, rec)
    assert (tmp_path / "etc/machine-id").read_text() == ""
    assert not (tmp_path / "var/lib/dbus/machine-id").exists()
    assert not list((tmp_path / "var/cache/apt/archives").glob("*.deb"))
    assert (tmp_path / "etc/apt/sources.list").read_text() == "deb http://m/debian sid main\n"
    assert "Check-Valid-Until" in (tmp_path / "etc/apt/apt.conf.d/99teleshift-lab").read_text()
    for unit in lab.MASKED_UNITS:
        assert Path(tmp_path / "etc/systemd/system" / unit).readlink() == Path("/dev/null")


# ------------------------------------------------------------ the lab definition

def test_the_lab_inventory():
    the_lab = lab.load_lab(LAB_INVENTORY)
    hosts = {h.name: h for h in the_lab.hosts}
    assert set(hosts) == {"ts-gw1", "ts-desk1", "ts-pbx1", "ts-client1", "ts-pstn1", "ts-dc1", "ts-video1"}
    assert "vpn_gateways" in hosts["ts-gw1"].groups and "teleshift_lab" in hosts["ts-gw1"].groups
    assert "pbx_hosts" in hosts["ts-pbx1"].groups and hosts["ts-pbx1"].suite == "sid"
    assert {n for n, _ in hosts["ts-gw1"].networks} == {"ts-outside", "ts-internal"}
    assert hosts["ts-client1"].address("ts-internal") is None  # the point of the isolation
    assert "/dev/net/tun" in hosts["ts-gw1"].devices and "NET_ADMIN" in hosts["ts-gw1"].capabilities
    gw_inside = hosts["ts-gw1"].address("ts-internal")
    assert hosts["ts-desk1"].routes == (f"10.100.0.0/16 via {gw_inside}",)
    assert all(n.isolate for n in the_lab.networks.values())


def test_lab_inventory_uses_the_pipelined_podman_connection_for_every_host():
    data = yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text())
    for name, entry in lab.resolve_inventory(data).items():
        assert entry["vars"]["ansible_connection"] == "teleshift.toolkit.lab_podman", name
        assert entry["vars"]["ansible_pipelining"] is True, name


def test_lab_subnets_do_not_overlap_podman_default_or_each_other():
    nets = lab.load_lab(LAB_INVENTORY).networks
    pairs = [("podman", "10.88.0.0/16")] + [(n.name, n.subnet) for n in nets.values()]
    for net in nets.values():
        assert lab.overlapping(net.subnet, pairs) == [net.name]


def test_inventory_file_accepts_a_directory_or_a_file(tmp_path):
    (tmp_path / "hosts.yml").write_text("all: {}\n")
    assert lab.inventory_file(tmp_path) == tmp_path / "hosts.yml"
    assert lab.inventory_file(tmp_path / "hosts.yml") == tmp_path / "hosts.yml"
    with pytest.raises(lab.LabError, match="not found"):
        lab.inventory_file(tmp_path / "nope.yml")


def test_host_vars_override_group_vars():
    data = minimal_lab(teleshift_lab_suite="sid")
    data["all"]["children"]["teleshift_lab"]["vars"]["teleshift_lab_suite"] = "bookworm"
    assert lab.parse_lab(data).hosts[0].suite == "sid"


@pytest.mark.parametrize("overrides, message", [
    ({"teleshift_lab_networks": {"net-a": "10.2.0.5"}}, "not a usable host address"),
    ({"teleshift_lab_networks": {"net-a": "10.1.0.1"}}, "not a usable host address"),
    ({"teleshift_lab_networks": {"net-b": "10.1.0.5"}}, "net-b is not in"),
    ({"teleshift_lab_routes": ["10.100.0.0/16"]}, "not 'CIDR via ADDRESS'"),
])
def test_invalid_definitions_are_reported(overrides, message):
    with pytest.raises(lab.LabError, match=message):
        lab.parse_lab(minimal_lab(**overrides))


def test_duplicate_addresses_are_reported():
    data = minimal_lab()
    data["all"]["children"]["teleshift_lab"]["hosts"]["h2"] = {
        "teleshift_lab_networks": {"net-a": "10.1.0.5"}}
    with pytest.raises(lab.LabError, match="already used by h1"):
        lab.parse_lab(data)


def test_routes_expand_other_vars_and_reject_undefined_ones():
    data = minimal_lab(teleshift_lab_routes=["{{ pool }} via 10.1.0.9"], pool="10.100.0.0/16")
    assert lab.parse_lab(data).hosts[0].routes == ("10.100.0.0/16 via 10.1.0.9",)
    with pytest.raises(lab.LabError, match="undefined variable nope"):
        lab.parse_lab(minimal_lab(teleshift_lab_routes=["{{ nope }} via 10.1.0.9"]))


# ------------------------------------------------------------ podman commands and decisions

def gw_spec(private=False, image_id="img1"):
    the_lab = lab.load_lab(LAB_INVENTORY)
    host = the_lab.host("ts-gw1")
    return host, lab.container_spec(host, the_lab, {"id": image_id}, private, ["nofile=1:1"])


def test_run_args():
    host, spec = gw_spec()
    args = lab.run_args(host, spec)
    assert args[:2] == ["run", "--detach"] and args[-2:] == ["img1", "/sbin/init"]
    assert "--systemd=always" in args
    joined = " ".join(args)
    assert "--network ts-outside:ip=10.89.250.10" in joined
    assert "--network ts-internal:ip=10.89.251.10" in joined
    assert "--device /dev/net/tun" in joined and "--cap-add NET_ADMIN" in joined
    assert f"--label {lab.SPEC_LABEL}={lab.spec_hash(spec)}" in joined
    assert "--hostname ts-gw1" in joined and "/sys/fs/cgroup" not in joined


def test_run_args_bind_a_private_cgroup_tree_only_when_needed():
    host, spec = gw_spec(private=True)
    joined = " ".join(lab.run_args(host, spec))
    assert "--volume /sys/fs/cgroup/unified/teleshift-lab/ts-gw1:/sys/fs/cgroup:rw" in joined


def test_container_spec_changes_with_image():
    assert lab.spec_hash(gw_spec(image_id="a")[1]) != lab.spec_hash(gw_spec(image_id="b")[1])


def test_network_create_args_isolate():
    net = lab.Network("ts-x", "10.9.0.0/24", "10.9.0.1")
    args = lab.network_create_args(net)
    assert args[-1] == "ts-x" and "isolate=true" in args
    assert "isolate=true" not in lab.network_create_args(lab.Network("n", "10.9.0.0/24", "10.9.0.1",
                                                                     isolate=False))


def test_replace_reason():
    _, spec = gw_spec()
    good = {"Names": ["ts-gw1"], "State": "running",
            "Labels": {lab.SPEC_LABEL: lab.spec_hash(spec)}}
    running = lambda name: "running"  # noqa: E731
    in_place = lambda name, wanted: []  # noqa: E731  (kernel settings: see the tests below)
    assert lab.replace_reason(good, spec, running, in_place) == ""
    assert lab.replace_reason(good, spec, lambda name: "degraded", in_place) == ""
    assert lab.replace_reason(None, spec, running, in_place) == "missing"
    assert lab.replace_reason({**good, "State": "exited"}, spec, running, in_place) == "exited"
    assert lab.replace_reason({**good, "Labels": {}}, spec, running, in_place) == "outdated"
    # a record that says running but whose processes died with the machine
    assert lab.replace_reason(good, spec, lambda name: "", in_place) == "systemd unreachable"


def test_reset_cgroup_removes_nested_empty_dirs(tmp_path):
    (tmp_path / "init.scope").mkdir()
    (tmp_path / "system.slice" / "ssh.service").mkdir(parents=True)
    lab.reset_cgroup(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_format_status_and_health():
    rows = [lab.HostStatus("ts-gw1", "img", "running", "degraded", {"b": "2", "a": "1"}),
            lab.HostStatus("ts-pstn1", "img", "absent", "-", {})]
    lines = lab.format_status(rows).splitlines()
    assert lines[0].split() == ["HOST", "IMAGE", "STATE", "SYSTEMD", "ADDRESSES"]
    assert lines[1].endswith("a=1 b=2") and lines[2].endswith("-")
    assert rows[0].healthy and not rows[1].healthy


def test_lab_operations_wait_for_each_other(tmp_path, monkeypatch):
    monkeypatch.setenv(lab.LOCK_ENV, str(tmp_path / "lab.lock"))
    with lab.lab_lock():
        with pytest.raises(lab.LabError, match="another lab operation"):
            with lab.lab_lock(timeout=0.2):
                pass
    with lab.lab_lock(timeout=0.2):  # released
        pass


def test_the_lab_lock_is_machine_wide(monkeypatch):
    monkeypatch.delenv(lab.LOCK_ENV, raising=False)
    path = lab.lock_path()
    assert path.name == lab.LOCK_NAME and path.is_absolute()
    assert lab.ROOT not in path.parents  # not per checkout: container names are machine-wide
    assert path != Path("/work/lab.lock")  # the helpers' own lock around whole sequences


def test_an_existing_lock_file_is_locked_without_write_access(tmp_path, monkeypatch):
    path = tmp_path / "lab.lock"
    path.write_text("")
    path.chmod(0o444)
    monkeypatch.setenv(lab.LOCK_ENV, str(path))
    with lab.lab_lock(timeout=0.2):
        with pytest.raises(lab.LabError, match="another lab operation"):
            with lab.lab_lock(timeout=0.2):
                pass


# ------------------------------------------------------------ kernel settings at creation

def test_gateway_sysctls_reach_the_spec_and_the_run_arguments():
    host, spec = gw_spec()
    assert host.sysctls == (("net.ipv4.ip_forward", "1"),)
    assert spec["sysctls"] == {"net.ipv4.ip_forward": "1"}
    args = lab.run_args(host, spec)
    i = args.index("--sysctl")
    assert args[i + 1] == "net.ipv4.ip_forward=1" and i < args.index(spec["image"])


def test_sysctls_are_part_of_the_spec_hash_only_where_declared():
    the_lab = lab.load_lab(LAB_INVENTORY)
    host = the_lab.host("ts-gw1")
    image = {"id": "img1"}
    with_it = lab.container_spec(host, the_lab, image, False, [])
    without = lab.container_spec(lab.Host(**{**host.__dict__, "sysctls": ()}), the_lab, image, False, [])
    # a gateway created without forwarding is outdated, so `lab up` replaces it
    assert lab.spec_hash(with_it) != lab.spec_hash(without) and "sysctls" not in without
    other = lab.container_spec(the_lab.host("ts-pstn1"), the_lab, image, False, [])
    assert "sysctls" not in other and "--sysctl" not in lab.run_args(the_lab.host("ts-pstn1"), other)


def _role_sysctls():
    """{kernel setting: condition or None} the gateway role sets."""
    tasks = yaml.safe_load((lab.ROOT / "roles/wireguard_gateway/tasks/setup.yml").read_text())
    found = {}
    for task in tasks:
        for block in [task] + list(task.get("block") or []):
            args = block.get("ansible.posix.sysctl")
            if args:
                found[args["name"]] = block.get("when", task.get("when"))
    return found


def test_lab_gateways_get_every_kernel_setting_the_gateway_role_sets():
    role = _role_sysctls()
    assert "net.ipv4.ip_forward" in role and "net.ipv6.conf.all.forwarding" in role
    group_vars = yaml.safe_load((LAB_INVENTORY / "group_vars/all/vpn.yml").read_text())
    pool6 = bool(group_vars.get("teleshift_vpn_pool6"))
    gateways = [h for h in lab.load_lab(LAB_INVENTORY).hosts if "vpn_gateways" in h.groups]
    assert gateways
    for gw in gateways:
        have = dict(gw.sysctls)
        for key, when in role.items():
            needed = not when or ("pool6" in str(when) and pool6)
            assert (have.get(key) == "1") is needed, (gw.name, key, when)


@pytest.mark.parametrize("value, message", [
    ({"vm.swappiness": 10}, "not namespaced"),
    ({"net.ipv4.ip_forward": "1 2"}, "not one word"),
    ({"net ipv4": 1}, "not a kernel setting name"),
    ({"net.ipv4.ip_forward": True}, "expected a number or text"),
    (["net.ipv4.ip_forward=1"], "must be a mapping"),
])
def test_invalid_sysctls_are_reported(value, message):
    with pytest.raises(lab.LabError, match=message):
        lab.parse_lab(minimal_lab(teleshift_lab_sysctls=value))


def test_sysctl_values_expand_other_vars():
    data = minimal_lab(teleshift_lab_sysctls={"net.ipv4.ip_forward": "{{ fwd }}"}, fwd=1)
    assert lab.parse_lab(data).hosts[0].sysctls == (("net.ipv4.ip_forward", "1"),)


def test_sysctl_read_args_and_mismatches():
    args = lab.sysctl_read_args("ts-gw1", ["net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"])
    assert args[:3] == ["exec", "ts-gw1", "sh"]
    assert args[-2:] == ["/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"]
    wanted = {"net.ipv6.conf.all.forwarding": "1", "net.ipv4.ip_forward": "1"}  # read in key order
    assert lab.sysctls_off(wanted, "1\n1\n") == []
    assert lab.sysctls_off(wanted, "0\n1\n") == [("net.ipv4.ip_forward", "0", "1")]
    assert lab.sysctls_off(wanted, "1\n?\n") == [("net.ipv6.conf.all.forwarding", "?", "1")]
    assert lab.sysctls_off(wanted, "1\n") == [("net.ipv6.conf.all.forwarding", "?", "1")]
    # multi-word values compare word by word (the kernel separates them with tabs)
    assert lab.sysctls_off({"net.ipv4.tcp_rmem": "4096 87380 6291456"}, "4096\t87380\t6291456\n") == []


def test_replace_reason_recreates_a_host_whose_kernel_setting_is_off():
    _, spec = gw_spec()
    good = {"Names": ["ts-gw1"], "State": "running",
            "Labels": {lab.SPEC_LABEL: lab.spec_hash(spec)}}
    running = lambda name: "running"  # noqa: E731
    off = lambda name, wanted: [("net.ipv4.ip_forward", "0", "1")]  # noqa: E731
    asked = []
    fine = lambda name, wanted: asked.append((name, wanted)) or []  # noqa: E731
    assert lab.replace_reason(good, spec, running, off) == "net.ipv4.ip_forward is 0 (needs 1)"
    assert lab.replace_reason(good, spec, running, fine) == ""
    assert asked == [("ts-gw1", {"net.ipv4.ip_forward": "1"})]
    # hosts without kernel settings are not probed for them
    plain = {k: v for k, v in spec.items() if k != "sysctls"}
    record = {**good, "Labels": {lab.SPEC_LABEL: lab.spec_hash(plain)}}
    assert lab.replace_reason(record, plain, running, off) == ""


def test_status_names_a_host_whose_kernel_setting_is_off():
    rows = [lab.HostStatus("ts-gw1", "img", "running", "running", {"a": "1"},
                           [("net.ipv4.ip_forward", "0", "1")]),
            lab.HostStatus("ts-desk1", "img", "running", "running", {"a": "2"})]
    assert not rows[0].healthy and rows[1].healthy
    text = lab.format_status(rows)
    assert "ts-gw1: kernel setting not in place: net.ipv4.ip_forward is 0 (needs 1)" in text
    assert "ts-desk1:" not in text


def test_container_removal_is_tried_again_after_podmans_stop_race(monkeypatch):
    calls = []

    def fake_podman(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise lab.LabError("podman rm ... failed (2): container state improper: stopped")

    monkeypatch.setattr(lab, "podman", fake_podman)
    monkeypatch.setattr(lab.time, "sleep", lambda s: None)
    lab.remove_containers("ts-gw1", "ts-desk1")
    assert calls == [("rm", "--force", "--time", "3", "--ignore", "ts-gw1", "ts-desk1")] * 2
    calls.clear()
    monkeypatch.setattr(lab, "podman", lambda *a, **k: (calls.append(a), (_ for _ in ()).throw(lab.LabError("x")))[1])
    with pytest.raises(lab.LabError):  # a removal that keeps failing is reported, not hidden
        lab.remove_containers("ts-gw1")
    assert len(calls) == 2


def test_lab_up_raises_the_inotify_limit_systemd_containers_share(tmp_path):
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")
    assert lab.inotify_needed(7) <= 128 and lab.inotify_needed(16) <= 128  # the usual labs: untouched
    assert lab.ensure_inotify(7, limit) == 128 and limit.read_text() == "128\n"
    assert lab.ensure_inotify(27, limit) >= lab.inotify_needed(27) > 128
    assert int(limit.read_text()) >= lab.inotify_needed(27)
    limit.write_text("100000\n")
    assert lab.ensure_inotify(27, limit) == 100000  # never lowered
    assert limit.read_text() == "100000\n"
    assert lab.ensure_inotify(3, tmp_path / "absent") is None  # no such setting here: nothing to do


def test_lab_up_says_how_when_it_cannot_raise_the_inotify_limit(tmp_path, monkeypatch):
    limit = tmp_path / "max_user_instances"
    limit.write_text("128\n")

    def refused(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(type(limit), "write_text", refused)
    with pytest.raises(lab.LabError, match=r"sysctl -w fs.inotify.max_user_instances=\d+"):
        lab.ensure_inotify(27, limit)


def _ping_output(answered, sent):
    lines = [f"64 bytes from 10.89.251.30: icmp_seq={n} ttl=63 time=0.4 ms" for n in answered]
    return "\n".join(["PING 10.89.251.30 (10.89.251.30) 56(84) bytes of data.", *lines, "",
                      "--- 10.89.251.30 ping statistics ---",
                      f"{sent} packets transmitted, {len(answered)} received, 0% packet loss, time 9000ms"])


def test_ping_losses_count_gaps_not_the_request_in_flight_at_the_stop():
    from teleshift_cli.labclient import ping_losses

    assert ping_losses(_ping_output(range(1, 51), 51)) == (51, 0)  # the 51st was in flight at SIGINT
    assert ping_losses(_ping_output(range(1, 51), 50)) == (50, 0)
    assert ping_losses(_ping_output([n for n in range(1, 51) if n not in (7, 8, 30)], 51)) == (51, 3)
    assert ping_losses(_ping_output(range(1, 41), 51)) == (51, 10)  # the tunnel died at the end
    assert ping_losses(_ping_output([], 4)) == (4, 3)
