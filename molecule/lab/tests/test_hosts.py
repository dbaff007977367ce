"""Every lab host is a real, healthy machine on the networks the lab definition gives it,
and the networks are isolated from each other. Network probes go only to lab addresses,
each bounded (ping -c1 -W2, 2 s TCP connect in a process given 10 s: a loaded machine starts it late)."""
import ipaddress
import json

import pytest

from lab_hosts import LAB, connect

READY = ("running", "degraded")


def lab_addresses():
    """{address: (host name, network name)} of every lab host."""
    return {addr: (h.name, net) for h in LAB.hosts for net, addr in h.networks}


def lab_devices(spec, host):
    """The host's interfaces on its lab networks (not a VPN tunnel a capability may have added)."""
    ifaces = json.loads(host.check_output("ip -j -4 addr show"))
    mine = {addr for _, addr in spec.networks}
    return [i["ifname"] for i in ifaces if any(a["local"] in mine for a in i.get("addr_info", []))]


def probe(host, addresses, port=None, devices=None):
    """{address: reachable?} probed in parallel from inside a host (2 s per probe).

    devices: send only through these interfaces (the lab networks' own), so a VPN tunnel the host
    may have up does not count as the network reaching the address."""
    devices = devices or [None]
    checks = []
    for dev in devices:
        if port is None:
            checks.append("ping -c1 -W2 -q " + (f"-I {dev} " if dev else "") + "{a} >/dev/null 2>&1")
        else:
            bind = f"s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'{dev}'); " if dev else ""
            checks.append("timeout 10 python3 -c \"import socket; s = socket.socket(); s.settimeout(2); "
                          + bind + f"s.connect(('{{a}}', {port}))\" >/dev/null 2>&1")
    script = " ".join("( (" + " || ".join(c.format(a=a) for c in checks) + f") && echo '{a} up' || echo '{a} down' ) &"
                      for a in addresses) + " wait"
    out = host.check_output(f"sh -c {json.dumps(script)}")
    return {line.split()[0]: line.split()[1] == "up" for line in out.splitlines()}


def test_systemd_is_pid1_and_booted_without_failed_units(lab_host):
    spec, host = lab_host
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"
    state = host.run("systemctl is-system-running").stdout.strip()
    failed = host.check_output("systemctl list-units --failed --plain --no-legend")
    assert state in READY, f"{spec.name}: systemd {state}"
    assert failed.strip() == "", f"{spec.name}: failed units:\n{failed}"


def test_python3_runs_for_ansible(lab_host):
    spec, host = lab_host
    version = host.check_output("python3 -c 'import sys, apt; print(sys.version_info[:2])'")
    assert tuple(int(x) for x in version.strip("()").split(",")) >= (3, 11)


def test_hostname_is_the_inventory_name(lab_host):
    spec, host = lab_host
    assert host.check_output("hostname") == spec.name


def test_addresses_on_expected_networks_only(lab_host):
    spec, host = lab_host
    ifaces = json.loads(host.check_output("ip -j -4 addr show"))
    mine = {a["local"] for i in ifaces for a in i.get("addr_info", [])}
    for net, addr in spec.networks:
        assert addr in mine, f"{spec.name} lacks {addr} on {net}"
    attached = {n for n, _ in spec.networks}
    for name, net in LAB.networks.items():
        subnet = ipaddress.ip_network(net.subnet)
        stray = [a for a in mine if ipaddress.ip_address(a) in subnet]
        if name not in attached:
            assert not stray, f"{spec.name} has {stray} on {name}, which it must not be on"


def test_default_route_through_a_lab_network_for_apt(lab_host):
    spec, host = lab_host
    gateways = {LAB.networks[n].gateway for n, _ in spec.networks}
    routes = json.loads(host.check_output("ip -j -4 route show default"))
    assert {r.get("gateway") for r in routes} & gateways


def test_new_systemd_gets_a_private_cgroup2_tree(lab_host):
    spec, host = lab_host
    major = int(host.check_output("systemctl --version").split()[1].split(".")[0])
    fstype = host.check_output("stat -fc %T /sys/fs/cgroup")
    if major >= 256:
        assert fstype == "cgroup2fs"
    if spec.suite == "sid":
        assert major >= 256  # the PBX runs the systemd that needs it


@pytest.mark.parametrize("network", sorted(LAB.networks))
def test_hosts_on_a_network_reach_each_other(network):
    members = [(h.name, h.address(network)) for h in LAB.hosts if h.address(network)]
    for name, _ in members:
        targets = [addr for other, addr in members if other != name]
        result = probe(connect(name), targets)
        assert all(result.values()), f"{name} on {network} cannot reach {result}"


def test_gateway_reaches_both_networks():
    gateways = [h for h in LAB.hosts if "vpn_gateways" in h.groups]
    assert gateways
    for gw in gateways:
        assert {n for n, _ in gw.networks} == set(LAB.networks)
        others = [a for a, (name, _) in lab_addresses().items() if name != gw.name]
        result = probe(connect(gw.name), others)
        assert all(result.values()), result


@pytest.mark.parametrize("name", [h.name for h in LAB.hosts if len(h.networks) < len(LAB.networks)])
def test_networks_are_isolated(name):
    """A host reaches no address on a network it is not attached to (ICMP and TCP)."""
    spec, host = LAB.host(name), connect(name)
    attached = {n for n, _ in spec.networks}
    foreign = [a for a, (_, net) in lab_addresses().items() if net not in attached]
    devices = lab_devices(spec, host)
    assert foreign and devices
    assert not any(probe(host, foreign, devices=devices).values()), f"{name} reaches {foreign}"
    assert not any(probe(host, foreign, port=22, devices=devices).values())


def test_tcp_probe_sees_an_open_port_on_the_same_network():
    """The control for the TCP isolation test: sshd answers within a network, through the same
    interface-bound probe (the peer is a stand-in with no firewall: the gateway's drops port 22)."""
    client = next(h for h in LAB.hosts if "lab_clients" in h.groups)
    network = client.networks[0][0]
    peer = next(h for h in LAB.hosts if h.name != client.name and h.address(network)
                and not set(h.groups) & {"vpn_gateways", "pbx_hosts", "desktop_hosts"})
    target = peer.address(network)
    host = connect(client.name)
    assert probe(host, [target], port=22, devices=lab_devices(client, host)) == {target: True}


@pytest.mark.parametrize("name", [h.name for h in LAB.hosts if h.routes])
def test_static_routes(name):
    host = connect(name)
    for route in LAB.host(name).routes:
        dest, via = route.split(" via ")
        assert f"via {via}" in host.check_output(f"ip -4 route show {dest}")
