"""The OpenVPN capability in the registry (its need is `vpn`: both profiles for everyone), its capacity
checks, notice section (French and English, rendered by notice_openvpn.html.j2), status verdict (which
tunnel the person is on), and the role's templates: rendered by Ansible's templar and checked by
`nft -c` in a private network namespace, with the same mark the WireGuard table lets through."""
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_plan as op
from ansible_collections.teleshift.toolkit.plugins.module_utils import registry
from ansible_collections.teleshift.toolkit.plugins.module_utils.capacity import plan_capacity
from ansible_collections.teleshift.toolkit.plugins.module_utils.inputs import validate
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

from testlib import make_inputs

ROOT = Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "openvpn_gateway"
SERVICES = {"dsi": {"networks": ["10.89.251.0/24"]}, "ase": {"networks": ["10.89.251.30/32"]}, "culture": {}}


def person(pid, service="dsi", lang="fr", needs=("vpn",)):
    return Person(id=pid, full_name=pid.title(), email=f"{pid}@x.example", service=service, language=lang,
                  needs=frozenset(needs))


def inputs_for(people, gateways=("gw1",), states=None, **extra):
    all_vars = {"teleshift_vpn_pool": "10.100.0.0/16", "teleshift_vpn_internal_networks": ["10.89.251.0/24"],
                "teleshift_openvpn_pool": "10.101.0.0/16", "teleshift_kits_dir": "/tmp/kits",
                "teleshift_services": SERVICES, **extra}
    hostvars = {gw: {"wireguard_gateway_endpoint": f"{gw}.example:51820"} for gw in gateways}
    groups = {"vpn_gateways": list(gateways), "openvpn_gateways": list(gateways)} if gateways else {}
    return make_inputs(people, groups=groups, hostvars=hostvars, all_vars=all_vars, states=states,
                       services=tuple(SERVICES))


def cap():
    return registry.get("openvpn")


def test_everyone_with_the_vpn_need_gets_openvpn_too():
    assert cap().need == "vpn" and "openvpn" in registry.names() and registry.needs().count("vpn") == 1
    assert cap().wants(person("a")) and not cap().wants(person("b", needs=("desktop",)))


def test_an_inventory_without_openvpn_gateways_is_not_short_of_anything():
    inputs = inputs_for([person("a")], gateways=())
    inputs.groups["vpn_gateways"] = []
    plan = plan_capacity(inputs)
    assert "openvpn" not in plan.not_configured and not [c for c in plan.checks if c.capability == "openvpn"]
    assert not cap().in_use(inputs) and cap().client_networks(inputs) == []


def test_capacity_counts_profiles_sessions_and_one_cores_throughput():
    people = [person(f"p{i:04d}") for i in range(2000)]
    inputs = inputs_for(people, teleshift_capacity_openvpn_share=0.1)
    inputs.hostvars["gw1"]["openvpn_gateway_max_clients"] = 3000
    checks = {c.resource: c for c in plan_capacity(inputs).checks if c.capability == "openvpn"}
    assert (checks["profiles"].needed, checks["profiles"].available) == (2000, 3000)
    assert checks["sessions"].needed == 180 and checks["sessions"].available == 128 and not checks["sessions"].ok
    assert checks["throughput"].needed == 90.0 and checks["throughput"].available == 100
    # the WireGuard checks are still there: plan counts both
    assert any(c.capability == "vpn" and c.resource == "peers" for c in plan_capacity(inputs).checks)


def test_validate_names_openvpn_settings_and_warns_about_a_pki_in_the_inventory(tmp_path):
    inputs = inputs_for([person("a")], teleshift_openvpn_pool="10.100.0.0/24")
    assert any(p.field == "teleshift_openvpn_pool" for p in validate(inputs, ["openvpn"]).problems)
    inputs = inputs_for([person("a")], teleshift_kits_dir=str(tmp_path / "kits"))
    inputs.inventory_dir = str(tmp_path)
    found = validate(inputs, ["openvpn"])
    assert not found.problems and [w.field for w in found.warnings] == ["teleshift_openvpn_pki_dir"]


def kit(tmp_path, pid="amartin", endpoint="vpn.example.org"):
    folder = tmp_path / pid / "openvpn"
    folder.mkdir(parents=True)
    (folder / "teleshift-tcp.ovpn").write_text(f"client\nremote {endpoint} 443\n<key>\nSECRET\n</key>\n")
    (folder / ".client.key").write_text("SECRET")
    return folder


def test_notice_section_in_both_languages_and_rendered_by_its_template(tmp_path):
    from teleshift_cli import kits as notices

    kit(tmp_path)
    fr = cap().notice(person("amartin"), tmp_path / "amartin" / "openvpn", "fr")
    en = cap().notice(person("amartin", lang="en"), tmp_path / "amartin" / "openvpn", "en")
    assert fr.title == "Si la connexion ne fonctionne pas (hôtel, 4G, wifi invité)"
    assert en.title == "If the connection does not work (hotel, 4G, guest wifi)"
    assert fr.ready and fr.files == ["openvpn/teleshift-tcp.ovpn"]
    assert fr.data["endpoint"] == "vpn.example.org (TCP 443)"
    assert cap().notice(person("nokit"), tmp_path / "nokit" / "openvpn", "fr") is None  # not offered here
    template = notices._env().get_template("notice.html.j2")
    view = notices.person_view(person("amartin", lang="en"), {})
    html = notices.render_notice(template, view, tmp_path, {"name": "Org"})
    assert "If the connection does not work (hotel, 4G, guest wifi)" in html
    assert "openvpn/teleshift-tcp.ovpn" in html and "TCP 443" in html and "SECRET" not in html
    assert en.steps[0] in html


def facts(sessions=(), ccd=None):
    return {"sessions": {cn: [{"real": "203.0.113.7:40000", "virtual": addr, "since": 1000, "rx": 4096, "tx": 8192,
                               "cid": "3"}] for cn, addr in sessions}, "ccd": ccd or {}}


def test_status_says_which_tunnel_the_person_is_on():
    inputs = inputs_for([person("amartin")])
    inputs.now = 1600
    entry = {"gateway": "gw1", "address": "10.101.0.2", "not_after": "2027-01-01T00:00:00Z"}
    on = cap().person_status(person("amartin"), "gw1", entry, facts([("amartin", "10.101.0.2")],
                                                                    {"amartin": "10.101.0.2"}), inputs)
    assert on.state == "ok" and on.verified and on.facts["tunnel"].startswith("OpenVPN over TCP, connected 10 min ago")
    assert on.facts["certificate"] == "valid until 2027-01-01"
    off = cap().person_status(person("amartin"), "gw1", entry, facts((), {"amartin": "10.101.0.2"}), inputs)
    assert off.state == "ok" and not off.problems and "not on OpenVPN now" in off.facts["tunnel"]
    missing = cap().person_status(person("amartin"), "gw1", entry, facts(), inputs)
    assert missing.state == "problem" and missing.verified is False and "no client file" in missing.problems[0]


# ------------------------------------------------------------------------------- role templates

def render(name, variables):
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar, trust_as_template

    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    defaults = {k: trust_as_template(v) if isinstance(v, str) else v for k, v in defaults.items()}
    templar = Templar(loader=DataLoader(), variables={**defaults, "inventory_hostname": "gw1",
                                                      "ansible_managed": "Managed by teleshift", **variables})
    return templar.template(trust_as_template((ROLE / "templates" / name).read_text(encoding="utf-8")))


def nft_check(text, tmp_path):
    nft, unshare = shutil.which("nft") or "/usr/sbin/nft", shutil.which("unshare")
    if not (Path(nft).exists() and unshare):
        pytest.skip("no nft or unshare here")
    path = tmp_path / "rules.nft"
    path.write_text(text, encoding="utf-8")
    proc = subprocess.run([unshare, "-rn", nft, "-c", "-f", str(path)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 and "Operation not permitted" in proc.stderr:
        pytest.skip("no user namespaces here")
    return proc


def a_slice(full_tunnel=False):
    s = op.load_openvpn_settings({"teleshift_openvpn_pool": "10.101.0.0/16", "teleshift_vpn_full_tunnel": full_tunnel,
                                  "teleshift_vpn_internal_networks": ["10.89.251.0/24"]},
                                 {"gw1": {"openvpn_gateway_endpoint": "vpn.example.org",
                                          "openvpn_gateway_listen_address": "192.0.2.10"}})
    plan = op.plan_openvpn([person("a", "dsi"), person("b", "ase"), person("c", "culture\"; drop")], s)
    return op.gateway_slice(plan, s.gateways["gw1"], SERVICES, s, {}), plan


@pytest.mark.parametrize("guard,full", [(False, False), (True, True)])
def test_firewall_renders_checks_and_marks_what_it_accepts(tmp_path, guard, full):
    part, plan = a_slice(full)
    groups = {"vpn_gateways": [] if guard else ["gw1"]}
    text = render("openvpn-firewall.nft.j2", {"openvpn_gateway_slice": part, "groups": groups,
                                              "openvpn_gateway_admin_networks": ["10.89.251.1/32"],
                                              "openvpn_gateway_gate_portal": "10.100.0.1:8443"})
    proc = nft_check(text, tmp_path)
    assert proc.returncode == 0, proc.stderr + text
    assert f"policy {'drop' if guard else 'accept'};" in text
    assert 'ip daddr 192.0.2.10 tcp dport 443 meta mark set meta mark or 0x00100000 accept comment "OpenVPN"' in text
    assert re.search(r'iifname "tsovpn0" ip saddr @s1_clients4 ip daddr @s1_nets4 meta mark set .* comment "ase"', text)
    assert f"elements = {{ {plan.people['b'].address} }}" in text and 'comment "culture__ drop"' in text
    assert text.rstrip().endswith("}") and ('masquerade' in text) == full
    assert re.search(r'iifname "tsovpn0" drop comment', text)
    wg = (ROOT / "roles" / "wireguard_gateway" / "templates" / "vpn-firewall.nft.j2").read_text(encoding="utf-8")
    assert wg.count("meta mark & 0x00100000 == 0x00100000 accept") == 2  # input and forward let it through


def test_server_config_names_every_file_and_the_management_socket():
    part, _ = a_slice()
    text = render("server.conf.j2", {"openvpn_gateway_slice": part})
    lines = set(text.splitlines())
    for line in ("proto tcp-server", "port 443", "local 192.0.2.10", "ccd-exclusive", "mode server",
                 "ifconfig 10.101.0.1 255.255.0.0", "crl-verify /etc/openvpn/teleshift/crl.pem",
                 "client-config-dir /etc/openvpn/teleshift/ccd", "remote-cert-tls client", "user nobody",
                 "management /run/openvpn-teleshift/management.sock unix", "max-clients 1024"):
        assert line in lines, line


def test_role_defaults_are_the_planners():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text(encoding="utf-8"))
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = spec["argument_specs"]["main"]["options"]
    assert f"default({op.DEFAULT_PORT})" in defaults["openvpn_gateway_port"]
    assert defaults["openvpn_gateway_max_clients"] == op.DEFAULT_MAX_CLIENTS
    assert options["openvpn_gateway_max_clients"]["default"] == op.DEFAULT_MAX_CLIENTS
    assert defaults["openvpn_gateway_interface"] == op.DEFAULT_INTERFACE
    assert not set(defaults) - set(options)


def test_the_second_factor_gates_openvpn_addresses_beside_wireguard_ones():
    """Both VPN capabilities hand the gate their pools and each person's tunnel addresses; the merged
    gate slice carries one line per person with both addresses, so a code opens either tunnel."""
    inputs = inputs_for([person("amartin"), person("bdurand", service="ase")], teleshift_mfa_enabled=True,
                        wireguard_gateway_address="10.100.0.1")
    entries = registry.get("mfa").gate_entries(inputs)
    gw1 = entries["gw1"]
    assert "10.101.0.0/16" in gw1["networks"] and "10.100.0.0/16" in gw1["networks"]
    ovpn = {p.id: p.address for p in cap().plan(inputs).people.values()}
    assert set(ovpn) == {"amartin", "bdurand"}
    for pid, address in ovpn.items():
        assert address in gw1["people"][pid] and len(gw1["people"][pid]) == 2  # WireGuard's and OpenVPN's
    assert not validate(inputs, ["mfa", "openvpn"]).problems


def test_with_the_second_factor_on_an_openvpn_gateway_without_the_gate_is_refused():
    inputs = inputs_for([person("amartin")], teleshift_mfa_enabled=True)
    inputs.groups["openvpn_gateways"] = ["gw1", "ovpn-only"]
    inputs.hostvars["ovpn-only"] = {"openvpn_gateway_endpoint": "ovpn.example"}
    problems = validate(inputs, ["mfa", "openvpn"]).problems
    assert [p for p in problems if p.field == "teleshift_mfa_enabled" and "ovpn-only" in p.message], problems
    off = inputs_for([person("amartin")])  # second factor off: an OpenVPN-only gateway is fine
    off.groups["openvpn_gateways"] = ["gw1", "ovpn-only"]
    off.hostvars["ovpn-only"] = {"openvpn_gateway_endpoint": "ovpn.example"}
    assert not [p for p in validate(off, ["mfa", "openvpn"]).problems if p.field == "teleshift_mfa_enabled"]
