"""The lab's laptop stand-in (ts-client1): bring up a person's WireGuard tunnel from their kit and open
a real remote-desktop session with FreeRDP on an Xvfb display. Used by the lab tests and the benchmarks.

With the second factor on (docs/mfa.md), bringing a tunnel up also opens the person's gate, as the person
would: the code of their kit's secret sent to the gate page's JSON endpoint through the tunnel
(``open_gate``); RDP logins get the code typed after the password (``start_rdp``). A code is never used
twice by the same person (``fresh_code`` waits for the next 30 s step, the gate and PAM refuse replays).

Passwords go through 0600 files of the container, never a command line or this process's output.
"""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

CLIENT = "ts-client1"
LAB_KITS = Path(__file__).resolve().parents[2] / "kits" / "lab"
# codes already used in the lab (a replayed code is refused by the gate): per user, lab codes only
USED = Path(os.environ.get("TMPDIR", "/tmp")) / f"teleshift-lab-codes-{os.getuid()}.json"  # noqa: S108


def wait_for(predicate, seconds=30, step=0.5):
    """True once ``predicate()`` is true, polled every ``step`` seconds for at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def run(name, *argv, input=None, timeout=60, check=False):
    """argv in container ``name``, bounded in time."""
    from teleshift_cli import lab

    flags = ["-i"] if input is not None else []
    return subprocess.run(["podman", "exec", *flags, name, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout, env=lab.podman_env(), check=check)


def person_of(profile_text):
    """The person id a teleshift profile names in its first comment line ('' when none)."""
    first = profile_text.splitlines()[0] if profile_text else ""
    prefix = "# teleshift VPN profile of "
    return first[len(prefix):].split(",")[0].strip() if first.startswith(prefix) else ""


def fresh_code(secret, key, step=30):
    """A TOTP code of ``secret`` whose time step ``key`` (e.g. "rdp:blefevre") has not used yet: waits for
    the next step when needed (at most 31 s). Recorded in a small file, so other processes know too."""
    import fcntl

    from ansible_collections.teleshift.toolkit.plugins.module_utils.mfa import totp

    with open(USED, "a+", encoding="utf-8") as stream:
        fcntl.flock(stream, fcntl.LOCK_EX)
        stream.seek(0)
        try:
            used = json.loads(stream.read() or "{}")
        except ValueError:
            used = {}
        now = time.time()
        if int(now // step) <= int(used.get(key, -1)):
            time.sleep((int(used[key]) + 1) * step - now + 0.2)
            now = time.time()
        used[key] = int(now // step)
        stream.seek(0)
        stream.truncate()
        stream.write(json.dumps(used))
        return totp(secret, now)


def ping_losses(output):
    """(sent, lost) from the output of a ``ping`` (not -q) stopped with SIGINT: a request with no reply
    before a later one was answered is lost; the one request still in flight when ping was stopped is
    not counted (its reply could not arrive), any earlier unanswered one at the end is."""
    import re

    answered = {int(n) for n in re.findall(r"icmp_seq=(\d+) ttl=", output)}
    summary = re.search(r"(\d+) packets transmitted", output)
    sent = int(summary.group(1)) if summary else max(answered, default=0)
    last = max(answered, default=0)
    lost = sum(1 for n in range(1, last) if n not in answered) + max(0, sent - last - 1)
    return sent, lost


def kit_secret(kits, pid):
    path = Path(kits or LAB_KITS) / pid / "mfa" / "secret"
    return path.read_text(encoding="utf-8").strip() if path.exists() else ""


def gate_url(kits, pid):
    import yaml

    path = Path(kits or LAB_KITS) / pid / "mfa" / "summary.yml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("gate", "") if path.exists() else ""


def gate_request(url, path, body=None, timeout=10, client=CLIENT):
    """From the laptop (``client``), through its tunnel: the gate's JSON answer (a dict), or {"error": ...}."""
    code = ("import json,ssl,sys,urllib.request\n"
            "ctx=ssl.create_default_context();ctx.check_hostname=False;ctx.verify_mode=ssl.CERT_NONE\n"
            f"req=urllib.request.Request({(url.rstrip('/') + path)!r}, data=sys.stdin.read().encode() or None,"
            " headers={'Content-Type':'application/json'})\n"
            "try:\n r=urllib.request.urlopen(req,timeout=%d,context=ctx); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e: print(e.read().decode())\n"
            "except Exception as e: print(json.dumps({'error':str(e)}))\n" % timeout)
    proc = run(client, "python3", "-c", code, input=json.dumps(body) if body is not None else "", timeout=timeout + 30)
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": proc.stderr.strip()[-300:] or "no answer"}


def open_gate(pid, kits=None, seconds=60, keep=600, client=CLIENT):
    """Open ``pid``'s gate as they would (their code through the tunnel of laptop ``client``, JSON
    endpoint); nothing when they have no second factor, or their gate stays open more than ``keep``
    seconds. Retries for ``seconds`` while the tunnel comes up. Returns the gate's last answer."""
    secret, url = kit_secret(kits, pid), gate_url(kits, pid)
    if not secret or not url:
        return {"result": "no second factor"}
    deadline = time.monotonic() + seconds
    answer = {}
    while time.monotonic() < deadline:
        answer = gate_request(url, "/api/status", client=client)
        if answer.get("person") == pid and answer.get("open") and answer.get("seconds_left", 0) > keep:
            return answer
        if answer.get("person") == pid:
            answer = gate_request(url, "/api/open", {"code": fresh_code(secret, f"gate:{url}:{pid}")}, client=client)
            if answer.get("result") == "opened":
                return answer
            if answer.get("result") in ("locked", "lockout"):
                raise RuntimeError(f"{pid}'s gate is locked: {answer}")
        time.sleep(1)
    raise RuntimeError(f"could not open {pid}'s gate at {url}: {answer}")


def gate_address(kits, pid):
    """The gate page's address from ``pid``'s kit ("" when the second factor is off)."""
    url = gate_url(kits, pid)
    return url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[0].strip("[]") if url else ""


def open_gate_via(pid, kits, device, client=CLIENT):
    """Open ``pid``'s gate through the tunnel interface ``device`` when the laptop has several (the page
    maps the source address to the person): the page's route goes through ``device`` for the request,
    then back to what it was. Returns the gate's answer."""
    portal = gate_address(kits, pid)
    if not portal:
        return {"result": "no second factor"}
    before = run(client, "ip", "route", "show", f"{portal}/32").stdout.strip()
    run(client, "ip", "route", "replace", f"{portal}/32", "dev", device, check=True)
    try:
        return open_gate(pid, kits, client=client)
    finally:
        if before:
            run(client, "ip", "route", "replace", *before.split())
        else:
            run(client, "ip", "route", "del", f"{portal}/32", "dev", device)


def tunnel_up(profile_text, profile="teleshift", kits=None, gate=True):
    """Import a WireGuard profile on the laptop and (re)start its tunnel; then open the person's gate
    (their kit's code) when the second factor is on: ``kits`` is where the profile came from.

    Its userspace wireguard-go can be slow to stop on a loaded machine, and `systemctl restart` then
    hangs: stop (bounded), clear what is left of the old tunnel, start; a second try if needed."""
    wrote = run(CLIENT, "sh", "-c", f"umask 077; cat > /etc/wireguard/{profile}.conf", input=profile_text)
    if wrote.returncode != 0:
        raise RuntimeError(f"writing {profile}.conf on {CLIENT} failed ({wrote.returncode}): {wrote.stderr.strip()}")
    proc = None
    for attempt in (1, 2):
        try:
            run(CLIENT, "systemctl", "stop", f"wg-quick@{profile}", timeout=90)
        except subprocess.TimeoutExpired:
            pass
        # each step on its own: a `pkill -f` inside `sh -c` matches (and kills) that shell, and what
        # followed it never ran
        run(CLIENT, "ip", "link", "delete", profile, timeout=30)
        run(CLIENT, "pkill", "-f", f"wireguard-go {profile}", timeout=30)
        run(CLIENT, "systemctl", "reset-failed", f"wg-quick@{profile}", timeout=30)
        try:
            proc = run(CLIENT, "systemctl", "start", f"wg-quick@{profile}", timeout=90)
        except subprocess.TimeoutExpired:
            if attempt == 2:
                raise
            continue
        if proc.returncode == 0:
            break
    if proc is None or proc.returncode != 0:
        raise RuntimeError(f"the laptop's tunnel did not start: {proc.stderr if proc else 'no start'}")
    pid = person_of(profile_text)
    if gate and pid:
        open_gate(pid, kits)
    return proc


def display(tag):
    return 90 + sum(map(ord, tag)) % 9


def start_rdp(address, login, password, seconds=120, tag="rdp", kits=None, code=True):
    """A FreeRDP client on its own Xvfb display of the laptop, in the background, ended after ``seconds``.
    With the second factor on, the login's fresh code (their kit's secret) is typed after the password
    (``code=False``: the password alone; a string: that code)."""
    secret = kit_secret(kits, login) if code is True else ""
    if secret:
        password = password + fresh_code(secret, f"rdp:{address}:{login}")
    elif isinstance(code, str):
        password = password + code
    screen = display(tag)
    run(CLIENT, "sh", "-c", f"umask 077; cat > /tmp/{tag}.pw", input=password, check=True)
    script = (f"#!/bin/sh\nexport DISPLAY=:{screen}\n"
              f"timeout {seconds + 10} Xvfb :{screen} -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &\n"
              # Xvfb's socket, waited for (at most 30 s) rather than a fixed second: a loaded laptop is slow
              f"i=0; while [ ! -S /tmp/.X11-unix/X{screen} ] && [ $i -lt 150 ]; do sleep 0.2; i=$((i+1)); done\n"
              f"echo $$ > /tmp/{tag}.pid\n"
              f"exec timeout {seconds} xfreerdp /v:{address} /u:{login} /p:\"$(cat /tmp/{tag}.pw)\" /cert:ignore "
              f"/size:1024x768 /log-level:ERROR\n")
    run(CLIENT, "sh", "-c", f"umask 077; cat > /tmp/{tag}.sh", input=script, check=True)
    run(CLIENT, "sh", "-c", f"nohup sh /tmp/{tag}.sh >/tmp/{tag}.log 2>&1 &", timeout=30)


def stop_rdp(tag):
    run(CLIENT, "sh", "-c", f"test -f /tmp/{tag}.pid && kill $(cat /tmp/{tag}.pid); "
                            f"pkill -f 'Xvfb :{display(tag)} '; rm -f /tmp/{tag}.pw /tmp/{tag}.pid; true", timeout=20)


def rdp_unban(host="ts-desk1", jail="teleshift-xrdp"):
    """Lift fail2ban's bans on a session host and forget the failures it counted: a test that fails logins
    on purpose (wrong code, leaver) counts towards a ban of the laptop's tunnel address (maxretry failures
    in findtime), which would refuse the next suite's logins. Unbanning keeps the count; restarting the
    jail drops it (the log position is kept in fail2ban's database, so old lines are not read again)."""
    run(host, "sh", "-c", f"fail2ban-client restart --unban --if-exists {jail} >/dev/null 2>&1; true", timeout=60)


def rdp_trace(tag, host="ts-desk1"):
    """What a failed RDP start left behind, for an assertion's message: FreeRDP's output on the laptop and
    the ends of the session host's xrdp and sesman logs (no password is in them)."""
    client = run(CLIENT, "sh", "-c", f"tail -c 1500 /tmp/{tag}.log 2>/dev/null; true", timeout=20).stdout
    server = run(host, "sh", "-c", "tail -n 15 /var/log/xrdp.log /var/log/xrdp-sesman.log 2>/dev/null; true",
                 timeout=20).stdout
    return f"FreeRDP ({tag}):\n{client}\n{host}:\n{server}"


def session_processes(host, login):
    """(pid, command) of the processes ``login`` runs on the session host ``host``."""
    proc = run(host, "ps", "-u", login, "-o", "pid=,comm=", timeout=20)
    return [tuple(line.split(None, 1)) for line in proc.stdout.splitlines() if line.strip()]


_TIMING = r'''
import json, os, socket, ssl, struct, sys, time, urllib.request
url, code, target = sys.argv[1:4]

def ping(addr, timeout=0.05):
    """One ICMP echo (raw socket: the laptop runs as root); True when answered within timeout."""
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(timeout)
    ident = os.getpid() & 0xFFFF
    body = struct.pack("!BBHHH", 8, 0, 0, ident, 1) + b"teleshift!"  # an even length: 16-bit words
    total = sum(struct.unpack("!%dH" % (len(body) // 2), body))
    total = (total >> 16) + (total & 0xFFFF); total += total >> 16
    body = body[:2] + struct.pack("!H", ~total & 0xFFFF) + body[4:]
    try:
        s.sendto(body, (addr, 0))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data, src = s.recvfrom(1024)
            if src[0] == addr and data[20] == 0:
                return True
    except OSError:
        return False
    finally:
        s.close()
    return False

closed = not any(ping(target, 0.3) for _ in range(3))
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
start = time.monotonic()
req = urllib.request.Request(url.rstrip("/") + "/api/open", data=json.dumps({"code": code}).encode(),
                             headers={"Content-Type": "application/json"})
try:
    answer = json.loads(urllib.request.urlopen(req, timeout=10, context=ctx).read())
except urllib.error.HTTPError as exc:
    answer = json.loads(exc.read() or b"{}")
answered = time.monotonic() - start
passed = None
while time.monotonic() - start < 10:
    if ping(target):
        passed = time.monotonic() - start
        break
print(json.dumps({"closed_before": closed, "result": answer.get("result"), "answer_s": round(answered, 3),
                  "traffic_s": round(passed, 3) if passed is not None else None}))
'''


def time_code_to_traffic(pid, target, kits=None):
    """From the laptop: close ``pid``'s gate, then time a valid code sent to the JSON endpoint until the
    first ICMP echo to ``target`` through the tunnel is answered (10 ms probes). Returns the figures."""
    secret, url = kit_secret(kits, pid), gate_url(kits, pid)
    gate_request(url, "/api/close", {})
    code = fresh_code(secret, f"gate:{url}:{pid}")
    run(CLIENT, "sh", "-c", "cat > /tmp/teleshift-gate-timing.py", input=_TIMING, check=True)
    proc = run(CLIENT, "python3", "/tmp/teleshift-gate-timing.py",  # noqa: S108  (inside the lab laptop)
               url, code, target, timeout=60)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"gate timing failed on the laptop: {proc.stderr.strip()[-500:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def openvpn_up(profile_text, tag, *options, seconds=45):
    """Start an OpenVPN client on the laptop from a kit's .ovpn, as a process of its own on interface
    ``tag`` (several can run side by side); returns its log once connected. Raises when it does not
    connect within ``seconds``."""
    import time

    openvpn_down(tag)
    run(CLIENT, "sh", "-c", f"umask 077; cat > /root/{tag}.ovpn", input=profile_text, check=True)
    run(CLIENT, "openvpn", "--config", f"/root/{tag}.ovpn", "--dev", tag, "--dev-type", "tun", "--daemon", tag,
        "--writepid", f"/run/{tag}.pid", "--log", f"/run/{tag}.log", *options, check=True)
    deadline = time.monotonic() + seconds
    log = ""
    while time.monotonic() < deadline:
        log = run(CLIENT, "cat", f"/run/{tag}.log", timeout=20).stdout
        if "Initialization Sequence Completed" in log:
            return log
        time.sleep(0.5)
    raise RuntimeError(f"the laptop's OpenVPN client {tag} did not connect:\n{log[-2000:]}")


def openvpn_running(tag):
    """Whether the laptop's OpenVPN client ``tag`` still runs."""
    proc = run(CLIENT, "sh", "-c", f"test -f /run/{tag}.pid && kill -0 $(cat /run/{tag}.pid)", timeout=20)
    return proc.returncode == 0


def openvpn_down(tag):
    run(CLIENT, "sh", "-c", f"test -f /run/{tag}.pid && kill $(cat /run/{tag}.pid); "
                            f"rm -f /run/{tag}.pid /root/{tag}.ovpn; true", timeout=20)
