"""WireGuard VPN on the lab gateway(s) for a synthetic roster: first converge, re-run, one change, and
the common way (one Ansible task per person) on a sample, extrapolated.

--gateways N: a sized lab of N gateways (teleshift_cli/labsize.py, brought up here, removed at the
end), each with its own part of a pool large enough for everyone. Each step prints its slowest tasks;
the figures are kept in build/bench/, and the 5,000 and 50,000 runs of the same gateways print how the
cost per person grows.

Works on a private copy of the lab inventory (its own roster, state/ and kits in a temp dir), so the
lab's own state and kits are untouched; at the end the real lab inventory is converged again so
ts-gw1 carries the lab's peers, and the laptop (ts-client1) its usual tunnel.
"""
from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from teleshift_cli import paths
from teleshift_cli.bench import check_file_system, growth, where

TARGETS = {"first_converge_s": 30.0, "rerun_s": 10.0, "one_change_s": 5.0}
TARGETS_50K = {"first_converge_s": 120.0, "rerun_s": 20.0, "one_change_s": 3.0}  # issue 16, 10 gateways
BENCH_POOL = "10.104.0.0/13"  # several gateways: a part each (/17 for 10), outside the lab's 10.100.0.0/16
PBX = "10.89.251.30"


def add_arguments(parser):
    parser.add_argument("--people", type=int, default=5000, help="synthetic roster size (default 5000)")
    parser.add_argument("--gateways", type=int, default=1, help="gateways (a sized lab when more than 1)")
    parser.add_argument("--sample", type=int, default=200,
                        help="people applied the common way, one Ansible task each (default 200)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--changes", type=int, default=3,
                        help="one-person changes timed one after the other; their median is the figure (default 3)")
    parser.add_argument("--keep", action="store_true", help="keep the temp inventory and kits")
    parser.add_argument("--no-restore", action="store_true",
                        help="leave the gateway with the synthetic peers (default: converge the lab back)")


def _env():
    from teleshift_cli import lab

    from teleshift_cli.bench import PROFILE_ENV

    return {**lab.podman_env(), "ANSIBLE_CONFIG": str(paths.ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
            **PROFILE_ENV}


def _playbook(playbook, inventory=None, extra=None, timeout=900):
    cmd = [str(paths.ROOT / ".venv" / "bin" / "ansible-playbook"), str(paths.ROOT / "playbooks" / playbook)]
    if inventory:
        cmd += ["-i", str(inventory)]
    if extra:
        cmd += ["-e", json.dumps(extra)]
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=paths.ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    from teleshift_cli.bench import save_log

    save_log("vpn", Path(playbook).stem, proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{playbook} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def _exec(name, *argv, input=None, timeout=120, check=True):
    flags = ["-i"] if input is not None else []
    return subprocess.run(["podman", "exec", *flags, name, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout, env=_env(), check=check)


def _say(msg):
    print(f"bench vpn: {msg}", flush=True)


def _write_roster(path, count, seed):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import write_csv
    from ansible_collections.teleshift.toolkit.plugins.module_utils.rostergen import generate_people

    people = [p.__class__(**{**p.__dict__, "needs": frozenset(p.needs | {"vpn"}), "active": True})
              for p in generate_people(count, seed=seed)]
    with open(path, "w", encoding="utf-8", newline="") as stream:
        write_csv(people, stream)
    return people


def _plan_seconds(people, inventory, gateways=1):
    """The pure plan for everyone (no I/O), in-process."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.wireguard_plan import load_vpn_settings, plan_vpn

    if gateways > 1:
        gws = {f"ts-gw{i + 1}": {"wireguard_gateway_endpoint": f"gw{i + 1}", "wireguard_gateway_pool": part,
                                 "wireguard_gateway_max_peers": _per_gateway(len(people), gateways)}
               for i, part in enumerate(_pools(gateways))}
        settings = load_vpn_settings({"teleshift_vpn_pool": BENCH_POOL,
                                      "teleshift_vpn_internal_networks": ["10.89.251.0/24"]}, gws)
        start = time.perf_counter()
        plan = plan_vpn(people, settings)
        assert not plan.problems and len(plan.people) == len(people), plan.problems[:2]
        return time.perf_counter() - start
    settings = load_vpn_settings(
        {"teleshift_vpn_pool": "10.100.0.0/16", "teleshift_vpn_internal_networks": ["10.89.251.0/24"]},
        {"ts-gw1": {"wireguard_gateway_endpoint": "10.89.250.10", "wireguard_gateway_max_peers": len(people) + 10}})
    start = time.perf_counter()
    plan = plan_vpn(people, settings)
    elapsed = time.perf_counter() - start
    assert not plan.problems and len(plan.people) == len(people)
    return elapsed


def _pools(gateways):
    from teleshift_cli.labsize import pool_parts

    return pool_parts(BENCH_POOL, gateways)


def _per_gateway(people, gateways):
    return -(-people * 6 // (5 * gateways)) + 10  # a fifth more than an even share: the plan spreads people


def _sized_inventory(inv, people, gateways):
    """A sized lab of ``gateways`` in ``inv`` (its containers brought up), each gateway with its part of
    BENCH_POOL; returns the gateway names."""
    import yaml

    from teleshift_cli import lab, labsize

    labsize.sized_inventory(gateways, 1, dest=inv)
    data = yaml.safe_load((inv / "hosts.yml").read_text())
    gws = data["all"]["children"]["teleshift_lab"]["children"]["vpn_gateways"]["hosts"]
    for hv, part in zip(gws.values(), _pools(gateways)):
        hv["wireguard_gateway_pool"] = part
    (inv / "hosts.yml").write_text(yaml.safe_dump(data, sort_keys=False))
    (inv / "group_vars" / "all" / "zz_bench.yml").write_text(yaml.safe_dump({"teleshift_vpn_pool": BENCH_POOL}))
    lab.lab_up(inv)
    return list(gws)


def _live_peers(gateways):
    return sum(len(_exec(gw, "wg", "show", "wg0", "peers").stdout.split()) for gw in gateways)


def _use_profile(kits, pid):
    from teleshift_cli import labclient

    labclient.tunnel_up((Path(kits) / pid / "vpn" / "teleshift.conf").read_text(), kits=kits)


def _naive(sample, timeout=1800):
    """One Ansible task per person (a loop item costs what a task costs): `wg set` per peer on a
    scratch userspace interface (wgnaive) of the gateway, so the real one is not disturbed."""
    playbook = Path(tempfile.mkdtemp(prefix="teleshift-naive-")) / "naive.yml"
    peers = [{"id": p["id"], "key": p["public_key"], "ip": p["ip"]} for p in sample]
    playbook.write_text(json.dumps([{
        "name": "Naive: one task per person", "hosts": "ts-gw1", "gather_facts": False,
        "vars": {"naive_peers": peers},
        "tasks": [{"name": "Add one peer",
                   "ansible.builtin.command": "wg set wgnaive peer {{ item.key }} allowed-ips {{ item.ip }}/32",
                   "loop": "{{ naive_peers }}", "loop_control": {"label": "{{ item.id }}"}, "changed_when": True}],
    }]))
    _exec("ts-gw1", "sh", "-c", "ip link del wgnaive 2>/dev/null; WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 "
                                "wireguard-go wgnaive && wg set wgnaive listen-port 51999")
    try:
        cmd = [str(paths.ROOT / ".venv" / "bin" / "ansible-playbook"), str(playbook)]
        start = time.perf_counter()
        proc = subprocess.run(cmd, cwd=paths.ROOT, env=_env(), capture_output=True, text=True, timeout=timeout)
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(proc.stdout[-2000:])
        count = len(_exec("ts-gw1", "wg", "show", "wgnaive", "peers").stdout.split())
        assert count == len(sample), (count, len(sample))
    finally:
        _exec("ts-gw1", "ip", "link", "del", "wgnaive", check=False)
        shutil.rmtree(playbook.parent, ignore_errors=True)
    return elapsed


def run(args):
    from teleshift_cli import lab

    import yaml

    if not lab.container_running("ts-gw1") or not lab.container_running("ts-client1"):
        raise SystemExit("the lab is not up: scripts/teleshift lab up")
    work = Path(tempfile.mkdtemp(prefix="teleshift-bench-vpn-"))
    figures = {"people": args.people, "sample": args.sample, "gateways": args.gateways}
    gateways = ["ts-gw1"]
    try:
        inv = work / "inventory"
        if args.gateways > 1:
            gateways = _sized_inventory(inv, args.people, args.gateways)
            # untimed: new gateways get their packages and setup (as ts-gw1 has from the lab's converge)
            seconds, _ = _playbook("vpn.yml", inv / "hosts.yml", {"teleshift_kits_dir": str(work / "setup-kits")})
            for name in ("vpn.yml", "mfa.yml"):  # the set-up run's people (the lab's) are not the bench's
                (inv / "state" / name).unlink(missing_ok=True)
            _say(f"generated gateways set up (untimed): {seconds:.0f} s")
        else:
            shutil.copytree(paths.LAB_INVENTORY, inv, ignore=shutil.ignore_patterns("state"))
        people = _write_roster(inv / "roster.csv", args.people, args.seed)
        per_gateway = args.people + 100 if args.gateways == 1 else _per_gateway(args.people, args.gateways)
        extra = {"teleshift_kits_dir": str(work / "kits"), "teleshift_vpn_licences": args.people + 100,
                 "wireguard_gateway_max_peers": per_gateway}
        figures["plan_s"] = round(_plan_seconds(people, inv, args.gateways), 3)
        _say(f"plan of {args.people} people on {args.gateways} gateway(s) (pure Python): {figures['plan_s']} s")

        figures["file_create_us"] = check_file_system(work, _say)
        seconds, out = _playbook("vpn.yml", inv / "hosts.yml", extra)
        figures["first_converge_s"] = round(seconds, 2)
        live = _live_peers(gateways)
        assert live == args.people, f"{live} peers live on {', '.join(gateways)}, expected {args.people}"
        _say(f"first converge, {args.people} people (keys, state, {live} live peers, kits + QR codes): {seconds:.1f} s")
        _say(f"  where the time went: {where(out)}")

        seconds, out = _playbook("vpn.yml", inv / "hosts.yml", extra)
        figures["rerun_s"] = round(seconds, 2)
        _say(f"re-run, no change: {seconds:.1f} s")
        _say(f"  where the time went: {where(out)}")

        # a teleworker with a live tunnel (service allowed to reach the PBX) while one person is added
        state = yaml.safe_load((inv / "state" / "vpn.yml").read_text())["people"]
        allowed = {"dsi", "paie-prestations", "ase"}
        watcher = next(pid for pid, e in sorted(state.items()) if e.get("service") in allowed)
        _use_profile(work / "kits", watcher)
        _exec("ts-client1", "ping", "-c", "3", "-W", "2", PBX, timeout=30)
        deadline = str(20 + 15 * args.changes)
        pinger = subprocess.Popen(["podman", "exec", "ts-client1", "ping", "-i", "0.2", "-w", deadline, PBX],
                                  env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1)
        samples = []
        for n in range(1, args.changes + 1):  # one person added per run, each run timed
            with open(inv / "roster.csv", "a", encoding="utf-8") as stream:
                stream.write(f"zzbench{n},Zoé Bench{n},zoe.bench{n}@departement.example,dsi,normal,,laptop,vpn,"
                             ",,none,20,no,yes,fr\n")
            seconds, out = _playbook("vpn.yml", inv / "hosts.yml", extra)
            samples.append(round(seconds, 2))
        _say(f"  where the time went (last change): {where(out)}")
        figures["one_change_samples_s"] = samples
        figures["one_change_s"] = statistics.median(samples)
        seconds = figures["one_change_s"]
        time.sleep(1)
        _exec("ts-client1", "pkill", "-INT", "-x", "ping", check=False)  # ping prints its summary
        ping_out, _ = pinger.communicate(timeout=60)
        from teleshift_cli.labclient import ping_losses

        sent, lost = ping_losses(ping_out)  # by sequence: the request in flight at the stop is not a loss
        received = sent - lost
        figures["other_tunnel_pings_sent"] = sent
        figures["other_tunnel_pings_lost"] = lost
        _say(f"one person added: {seconds:.1f} s (median of {samples} s); {watcher}'s tunnel meanwhile: "
             f"{received}/{sent} pings answered")

        from teleshift_cli.labclient import time_code_to_traffic  # the second factor's gate (docs/mfa.md)

        gate = time_code_to_traffic(watcher, PBX, work / "kits") if (work / "kits" / watcher / "mfa").exists() else {}
        figures.update({f"gate_{k}": v for k, v in gate.items()})
        _say(f"gate: valid code to traffic passing {gate.get('traffic_s')} s (target <= 1 s), page answered in "
             f"{gate.get('answer_s')} s; closed before: {gate.get('closed_before')}" if gate else "gate: off")

        sample = [{"id": pid, "public_key": e["public_key"], "ip": e["address"]}
                  for pid, e in sorted(state.items())[:args.sample]]
        seconds = _naive(sample) if sample else 0.0
        figures["naive_sample_s"] = round(seconds, 2)
        figures["naive_per_person_s"] = round(seconds / max(1, len(sample)), 4)
        figures["naive_extrapolated_s"] = round(seconds / max(1, len(sample)) * args.people, 1)
        figures["ratio_naive_vs_first"] = round(figures["naive_extrapolated_s"] / figures["first_converge_s"], 1)
        figures["ratio_naive_vs_one_change"] = round(figures["naive_extrapolated_s"] / figures["one_change_s"], 1)
        _say(f"common way, one task per person: {seconds:.1f} s for {len(sample)} -> "
             f"{figures['naive_extrapolated_s']:.0f} s extrapolated to {args.people} "
             f"({figures['ratio_naive_vs_first']}x the first converge)")
        if gate:
            figures["gate_open_to_traffic_s"] = gate.get("traffic_s")
            figures["gate_open_to_traffic_target_met"] = gate.get("traffic_s") is not None and gate["traffic_s"] <= 1.0
        growth("vpn", f"g{args.gateways}", args.people, figures, ["plan_s", *TARGETS], say=_say)
        for name, limit in (TARGETS_50K if args.people > 5000 or args.gateways > 1 else TARGETS).items():
            figures[f"{name}_target_met"] = figures[name] < limit
            _say(f"target {name} < {limit} s: {'met' if figures[name] < limit else 'MISSED'} ({figures[name]} s)")
    finally:
        if not args.no_restore:
            _say("restoring the lab's own VPN (converge of inventories/lab)")
            _playbook("vpn.yml")
            _playbook("lab_client_vpn.yml")
            if args.gateways > 1:  # the default lab again: its generated gateways go
                from teleshift_cli import lab

                lab.lab_up()
        if args.keep:
            _say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return figures
