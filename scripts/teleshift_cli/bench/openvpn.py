"""OpenVPN (TCP 443) on the lab gateway for a synthetic roster: first converge, re-run, one change (an
open OpenVPN session pinging meanwhile), and certificates issued in Python against one `openssl` call
per person on a sample.

Works on a private copy of the lab inventory (its own roster, state/, PKI and kits in a temp dir); at the
end the real lab inventory is converged again so ts-gw1 serves the lab's people with the lab's CA.
"""
from __future__ import annotations

import datetime
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from teleshift_cli import paths
from teleshift_cli.bench.vpn import _env, _exec, _write_roster

TARGETS = {"first_converge_s": 60.0, "rerun_s": 10.0, "one_change_s": 5.0}
DESK = "10.89.251.20"


def add_arguments(parser):
    parser.add_argument("--people", type=int, default=5000, help="synthetic roster size (default 5000)")
    parser.add_argument("--sample", type=int, default=100,
                        help="certificates issued with one openssl call each, for the ratio (default 100)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changes", type=int, default=3,
                        help="one-person changes timed one after the other; their median is the figure (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temp inventory and kits")
    parser.add_argument("--no-restore", action="store_true",
                        help="leave the gateway with the synthetic people (default: converge the lab back)")


def _say(msg):
    print(f"bench openvpn: {msg}", flush=True)


def _playbook(playbook, inventory=None, extra=None, timeout=900):
    import json

    from teleshift_cli.bench import save_log

    cmd = [str(paths.ROOT / ".venv" / "bin" / "ansible-playbook"), str(paths.ROOT / "playbooks" / playbook)]
    cmd += ["-i", str(inventory)] if inventory else []
    cmd += ["-e", json.dumps(extra)] if extra else []
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    save_log("openvpn", Path(playbook).stem, proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{playbook} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def python_certificates(count):
    """Seconds to issue ``count`` person certificates in Python (key pair, certificate, PEM of both)."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_pki as pki

    ca, key = pki.make_ca("bench CA", 3650)
    issuer = pki.Issuer(ca, key)
    start = time.perf_counter()
    for i in range(count):
        person_key = pki.new_key()
        cert = issuer.issue(f"p{i:05d}", person_key.public_key(), 365)
        pki.key_pem(person_key), pki.cert_pem(cert)
    return time.perf_counter() - start, issuer


def openssl_certificates(count, issuer, work):
    """Seconds to issue ``count`` certificates with one `openssl req` call per person (a new P-256 key,
    the certificate signed by the same CA with the same extensions), as a shell script would."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_pki as pki

    work.mkdir(parents=True, exist_ok=True)
    (work / "ca.crt").write_text(pki.cert_pem(issuer.cert))
    (work / "ca.key").write_text(pki.key_pem(issuer.key))
    (work / "ca.key").chmod(0o600)
    start = time.perf_counter()
    for i in range(count):
        subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-keyout", str(work / f"p{i}.key"), "-out", str(work / f"p{i}.crt"),
                        "-subj", f"/CN=p{i:05d}", "-CA", str(work / "ca.crt"), "-CAkey", str(work / "ca.key"),
                        "-days", "365", "-addext", "basicConstraints=critical,CA:FALSE",
                        "-addext", "keyUsage=critical,digitalSignature,keyAgreement",
                        "-addext", "extendedKeyUsage=clientAuth"],
                       check=True, capture_output=True, timeout=60)
    elapsed = time.perf_counter() - start
    check = subprocess.run(["openssl", "verify", "-CAfile", str(work / "ca.crt"), str(work / "p0.crt")],
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    return elapsed


def run(args):
    from teleshift_cli import lab, labclient

    import yaml

    if not lab.container_running("ts-gw1") or not lab.container_running("ts-client1"):
        raise SystemExit("the lab is not up: scripts/teleshift lab up")
    work = Path(tempfile.mkdtemp(prefix="teleshift-bench-openvpn-"))
    figures = {"people": args.people, "sample": args.sample}
    try:
        seconds, issuer = python_certificates(args.people)
        figures["python_certificates_s"] = round(seconds, 2)
        figures["python_per_certificate_ms"] = round(seconds / args.people * 1000, 3)
        openssl_s = openssl_certificates(args.sample, issuer, work / "openssl")
        figures["openssl_sample_s"] = round(openssl_s, 2)
        figures["openssl_per_certificate_ms"] = round(openssl_s / args.sample * 1000, 2)
        figures["openssl_extrapolated_s"] = round(openssl_s / args.sample * args.people, 1)
        figures["ratio_openssl_vs_python"] = round(figures["openssl_per_certificate_ms"]
                                                   / figures["python_per_certificate_ms"], 1)
        _say(f"certificates: Python {seconds:.2f} s for {args.people} ({figures['python_per_certificate_ms']} ms "
             f"each); openssl, one call per person: {openssl_s:.2f} s for {args.sample} "
             f"({figures['openssl_per_certificate_ms']} ms each, {figures['openssl_extrapolated_s']} s for "
             f"{args.people}): {figures['ratio_openssl_vs_python']}x")

        inv = work / "inventory"
        shutil.copytree(paths.LAB_INVENTORY, inv, ignore=shutil.ignore_patterns("state"))
        _write_roster(inv / "roster.csv", args.people, args.seed)
        extra = {"teleshift_kits_dir": str(work / "kits"), "teleshift_vpn_licences": args.people + 100,
                 "openvpn_gateway_max_clients": args.people + 100}
        _playbook("lab_client_openvpn.yml")
        _playbook("vpn.yml")  # this checkout's WireGuard firewall on the gateway: it lets OpenVPN's marks through

        seconds, _ = _playbook("openvpn.yml", inv / "hosts.yml", extra)
        figures["first_converge_s"] = round(seconds, 2)
        files = int(_exec("ts-gw1", "sh", "-c", "ls /etc/openvpn/teleshift/ccd | wc -l").stdout)
        assert files == args.people, f"{files} client files on ts-gw1, expected {args.people}"
        _say(f"first converge, {args.people} people (CA, {args.people} certificates, state, profiles, "
             f"{files} client files, firewall): {seconds:.1f} s")

        seconds, _ = _playbook("openvpn.yml", inv / "hosts.yml", extra)
        figures["rerun_s"] = round(seconds, 2)
        _say(f"re-run, no change: {seconds:.1f} s")

        # a teleworker on OpenVPN pinging the desktop host while people are added
        state = yaml.safe_load((inv / "state" / "openvpn.yml").read_text())["people"]
        watcher = next(pid for pid, e in sorted(state.items()) if e.get("service") in {"dsi", "paie-prestations"})
        labclient.openvpn_up((work / "kits" / watcher / "openvpn" / "teleshift-tcp.ovpn").read_text(), "ovpnbench",
                             "--route-nopull")
        _exec("ts-client1", "ip", "route", "replace", f"{DESK}/32", "dev", "ovpnbench")
        gate = labclient.open_gate_via(watcher, work / "kits", "ovpnbench")  # the second factor, when on
        if gate.get("result") != "no second factor" and gate.get("person") != watcher:
            raise SystemExit(f"{watcher} could not open the gate over OpenVPN: {gate}")
        if not labclient.wait_for(lambda: _exec("ts-client1", "ping", "-I", "ovpnbench", "-c", "1", "-W", "1", DESK,
                                                check=False).returncode == 0, 20):
            raise SystemExit(f"{watcher}'s OpenVPN session does not reach the desktop host {DESK}")
        deadline = str(20 + 15 * args.changes)
        pinger = subprocess.Popen(["podman", "exec", "ts-client1", "ping", "-I", "ovpnbench", "-i", "0.2", "-w",
                                   deadline, DESK], env=_env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        samples = []
        for n in range(1, args.changes + 1):
            with open(inv / "roster.csv", "a", encoding="utf-8") as stream:
                stream.write(f"zzovpn{n},Zoé Ovpn{n},zoe.ovpn{n}@departement.example,dsi,normal,,laptop,vpn,"
                             ",,none,20,no,yes,fr\n")
            seconds, _ = _playbook("openvpn.yml", inv / "hosts.yml", extra)
            samples.append(round(seconds, 2))
        figures["one_change_samples_s"] = samples
        figures["one_change_s"] = statistics.median(samples)
        time.sleep(1)
        _exec("ts-client1", "pkill", "-INT", "-x", "ping", check=False)
        out, _ = pinger.communicate(timeout=120)
        sent, lost = labclient.ping_losses(out)  # by sequence: the request in flight at the stop is not a loss
        received = sent - lost
        figures["other_session_pings_sent"] = sent
        figures["other_session_pings_lost"] = lost
        labclient.openvpn_down("ovpnbench")
        _say(f"one person added: {figures['one_change_s']:.1f} s (median of {samples} s); {watcher}'s OpenVPN "
             f"session meanwhile: {received}/{sent} pings answered")
        for name, limit in TARGETS.items():
            figures[f"{name}_target_met"] = figures[name] <= limit
            _say(f"target {name} <= {limit} s: {'met' if figures[name] <= limit else 'MISSED'} ({figures[name]} s)")
        figures["measured"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    finally:
        labclient.openvpn_down("ovpnbench")
        if not args.no_restore:
            _say("restoring the lab's own OpenVPN (converge of inventories/lab)")
            _playbook("openvpn.yml")
        if args.keep:
            _say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return figures
