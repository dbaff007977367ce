"""The wireguard_peers action skips the module call when neither its arguments nor the host changed
since the last call (module_utils/wireguard_probe.py), and calls it as before on any change on either
side. Run by ansible-playbook on this machine with an emulated wg and nft in the process's PATH, so the
module and the action's shell probe see the same emulated host (the lab runs the real ones:
tests/lab/test_verify_people.py removes a peer by hand and expects the next run to put it back)."""
import grp
import json
import os
import subprocess
import sys
from pathlib import Path

from test_gate_with_peers import SECRETS, write_secret
from test_wireguard import EMULATED_WG, key

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = str(Path(sys.executable).parent / "ansible-playbook")
NFT = '#!/bin/sh\n[ "$1" = -j ] && echo \'{"nftables": []}\'\n[ "$2" = - ] && cat > /dev/null\nexit 0\n'


def setup(tmp):
    bindir = tmp / "bin"
    bindir.mkdir()
    (bindir / "wg").write_text(EMULATED_WG.replace("{python}", sys.executable))
    (bindir / "nft").write_text(NFT)
    for tool in ("wg", "nft"):
        (bindir / tool).chmod(0o755)
    (tmp / "wg0.key").write_text("GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=\n")
    (tmp / "state.json").write_text(json.dumps({"private": "GATEWAYPRIVATEKEYGATEWAYPRIVATEKEYGATEWAYPR=",
                                                "public": "x", "port": 51820, "peers": {}}))
    for pid, secret in SECRETS.items():
        write_secret(tmp / "kits", pid, secret)


def converge(tmp, people=tuple(SECRETS), check=False):
    """One run of the gateway's task; returns its result."""
    gated = "".join(f"{pid} dsi 10.100.0.{n + 2}\n" for n, pid in enumerate(people))
    task = {"name": "Peers and gate", "register": "r", "teleshift.toolkit.wireguard_peers": {
        "interface": "wg0", "config_path": str(tmp / "wg0.conf"), "private_key_path": str(tmp / "wg0.key"),
        "addresses": ["10.100.0.1/24"], "listen_port": 51820, "firewall": "table inet teleshift_vpn {}\n",
        "firewall_path": str(tmp / "vpn.nft"), "setup_marker": str(tmp / "marker"),
        "peers": "".join(f"{pid} {key(n + 1)} 10.100.0.{n + 2}/32\n" for n, pid in enumerate(people)),
        "gate": {"people": gated, "gated": ["10.89.251.0/24"], "settings": {"session": 600},
                 "config_dir": str(tmp / "gate"), "setup_marker": str(tmp / "gate-marker"),
                 "group": grp.getgrgid(os.getgid()).gr_name}}}
    (tmp / "play.yml").write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]))
    (tmp / "hosts.yml").write_text(json.dumps({"all": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "teleshift_kits_dir": str(tmp / "kits")}}}}))
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
           "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "WG_STATE": str(tmp / "state.json")}
    argv = [PLAYBOOK, "-i", str(tmp / "hosts.yml"), str(tmp / "play.yml"), *(["--check"] if check else [])]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, cwd=tmp, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for secret in SECRETS.values():
        assert secret not in proc.stdout + proc.stderr
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def live_peers(tmp):
    return json.loads((tmp / "state.json").read_text())["peers"]


def test_an_unchanged_gateway_is_probed_not_called_and_any_change_calls_the_module(tmp_path):
    setup(tmp_path)
    record = tmp_path / "kits" / ".wg-applied.localhost.json"
    first = converge(tmp_path)
    assert first["changed"] and first["added"] == sorted(SECRETS) and "probed" not in first
    assert oct(record.stat().st_mode & 0o777) == "0o600"
    kept = json.loads(record.read_text())
    assert len(kept["probe"]) == 64 and kept["result"]["public_key"] == first["public_key"]
    assert not any(secret in record.read_text() for secret in SECRETS.values())

    again = converge(tmp_path)  # nothing changed: the module is not called
    assert again["probed"] and not again["changed"] and again["public_key"] == first["public_key"]
    assert again["gate"] == {"changed": False, "added": [], "removed": [], "closed": [], "enrolled": 2}
    assert converge(tmp_path, check=True)["probed"]

    peers = live_peers(tmp_path)  # a peer removed by hand: the host's fingerprint changed
    gone = sorted(peers)[0]
    del peers[gone]
    state = json.loads((tmp_path / "state.json").read_text())
    (tmp_path / "state.json").write_text(json.dumps({**state, "peers": peers}))
    repaired = converge(tmp_path)
    assert "probed" not in repaired and repaired["changed"] and gone in live_peers(tmp_path)
    assert converge(tmp_path)["probed"]

    (tmp_path / "gate" / "allow.json").write_text("{}")  # a gate file edited by hand
    assert "probed" not in converge(tmp_path) and converge(tmp_path)["probed"]

    write_secret(tmp_path / "kits", "blefevre", "ONLYTHISONECHANGED")  # a renewed enrolment: new arguments
    renewed = converge(tmp_path)
    assert "probed" not in renewed and renewed["gate"]["changed"]

    left = converge(tmp_path, people=("amartin",))  # a leaver: new arguments, the module removes the peer
    assert "probed" not in left and left["removed"] == ["blefevre"] and len(live_peers(tmp_path)) == 1
