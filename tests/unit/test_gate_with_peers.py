"""The gateway's call in vpn.yml, through the wireguard_peers action plugin: the peers and the second-factor
gate in one module call, run by ansible-playbook on this machine with an emulated wg and nft (the lab runs
the real ones: tests/lab/test_mfa_gate.py). The secrets come from the kits; only those the host lacks
travel, a host holding other secrets gets all of them again, and no secret is ever printed."""
import grp
import json
import os
import subprocess
import sys
from pathlib import Path

from test_wireguard import EMULATED_WG, key

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
SECRETS = {"amartin": "JBSWY3DPEHPK3PXP", "blefevre": "KZXW6YTBOI2DQMZQ"}


def write_secret(kits, pid, secret):
    (kits / pid / "mfa").mkdir(parents=True, exist_ok=True)
    (kits / pid / "mfa" / "secret").write_text(secret + "\n")


def converge(tmp):
    """One run of the gateway's task; returns (its result, the whole output)."""
    bindir = tmp / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "wg").write_text(EMULATED_WG.replace("{python}", sys.executable))
    (bindir / "nft").write_text('#!/bin/sh\n[ "$1" = -j ] && echo \'{"nftables": []}\'\n'
                                '[ "$2" = - ] && cat > /dev/null\nexit 0\n')
    for tool in ("wg", "nft"):
        (bindir / tool).chmod(0o755)
    people = "".join(f"{pid} dsi 10.100.0.{n + 2}\n" for n, pid in enumerate(SECRETS))
    task = {"name": "Peers and gate", "register": "r",
            "environment": {"PATH": f"{bindir}:{os.environ['PATH']}", "WG_STATE": str(tmp / "state.json")},
            "teleshift.toolkit.wireguard_peers": {
                "interface": "wg0", "config_path": str(tmp / "wg0.conf"), "private_key_path": str(tmp / "wg0.key"),
                "addresses": ["10.100.0.1/24"], "listen_port": 51820,
                "peers": "".join(f"{pid} {key(n + 1)} 10.100.0.{n + 2}/32\n" for n, pid in enumerate(SECRETS)),
                "gate": {"people": people, "gated": ["10.89.251.0/24"], "settings": {"session": 600},
                         "config_dir": str(tmp / "gate"), "group": grp.getgrgid(os.getgid()).gr_name}}}
    (tmp / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    (tmp / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "teleshift_kits_dir": str(tmp / "kits")}}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"}
    proc = subprocess.run([PLAYBOOK, "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml")], capture_output=True,
                          text=True, timeout=120, cwd=tmp, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"], out


def host_secrets(tmp):
    return {pid: e["secret"] for pid, e in json.loads((tmp / "gate" / "config.json").read_text())["people"].items()}


def test_one_call_applies_peers_and_gate_with_the_kits_secrets_sending_only_what_the_host_lacks(tmp_path):
    (tmp_path / "wg0.key").write_text("GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=\n")
    (tmp_path / "state.json").write_text(json.dumps({"private": "GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=",
                                                     "public": "x", "port": 51820, "peers": {}}))
    for pid, secret in SECRETS.items():
        write_secret(tmp_path / "kits", pid, secret)
    result, out = converge(tmp_path)
    assert result["changed"] and result["added"] == ["amartin", "blefevre"] and result["gate"]["enrolled"] == 2
    assert host_secrets(tmp_path) == SECRETS
    sent = json.loads((tmp_path / "kits" / ".mfa-gate.localhost.json").read_text())
    assert sorted(sent) == ["amartin", "blefevre"] and oct((tmp_path / "kits" / ".mfa-gate.localhost.json")
                                                            .stat().st_mode & 0o777) == "0o600"

    result, out = converge(tmp_path)  # nothing new: nothing changes
    assert not result["changed"] and result["gate"]["enrolled"] == 2

    write_secret(tmp_path / "kits", "blefevre", "ONLYTHISONECHANGED")  # a renewed enrolment
    result, out = converge(tmp_path)
    assert result["gate"]["changed"] and host_secrets(tmp_path) == {**SECRETS, "blefevre": "ONLYTHISONECHANGED"}

    conf = json.loads((tmp_path / "gate" / "config.json").read_text())  # the host holds another's secret
    conf["people"]["amartin"]["secret"] = "ANOTHERCONTROLLERS"
    (tmp_path / "gate" / "config.json").write_text(json.dumps(conf))
    result, out = converge(tmp_path)
    assert host_secrets(tmp_path)["amartin"] == SECRETS["amartin"], result
    for secret in (*SECRETS.values(), "ONLYTHISONECHANGED"):
        assert secret not in out
