"""The lab's laptop stand-in (ts-client1): bring up a person's WireGuard tunnel from their kit and open
a real remote-desktop session with FreeRDP on an Xvfb display. Used by the lab tests and the benchmarks.

Passwords go through 0600 files of the container, never a command line or this process's output.
"""
from __future__ import annotations

import subprocess

CLIENT = "ts-client1"


def run(name, *argv, input=None, timeout=60, check=False):
    """argv in container ``name``, bounded in time."""
    from teleshift_cli import lab

    flags = ["-i"] if input is not None else []
    return subprocess.run(["podman", "exec", *flags, name, *argv], input=input, capture_output=True, text=True,
                          timeout=timeout, env=lab.podman_env(), check=check)


def tunnel_up(profile_text, profile="teleshift"):
    """Import a WireGuard profile on the laptop and (re)start its tunnel.

    Its userspace wireguard-go can be slow to stop on a loaded machine, and `systemctl restart` then
    hangs: stop (bounded), clear what is left of the old tunnel, start; a second try if needed."""
    run(CLIENT, "sh", "-c", f"umask 077; cat > /etc/wireguard/{profile}.conf", input=profile_text, check=True)
    proc = None
    for attempt in (1, 2):
        try:
            run(CLIENT, "systemctl", "stop", f"wg-quick@{profile}", timeout=90)
        except subprocess.TimeoutExpired:
            pass
        run(CLIENT, "sh", "-c", f"ip link delete {profile} 2>/dev/null; pkill -f 'wireguard-go {profile}'; "
                                f"systemctl reset-failed wg-quick@{profile}; true", timeout=30)
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
    return proc


def display(tag):
    return 90 + sum(map(ord, tag)) % 9


def start_rdp(address, login, password, seconds=120, tag="rdp"):
    """A FreeRDP client on its own Xvfb display of the laptop, in the background, ended after ``seconds``."""
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


def session_processes(host, login):
    """(pid, command) of the processes ``login`` runs on the session host ``host``."""
    proc = run(host, "ps", "-u", login, "-o", "pid=,comm=", timeout=20)
    return [tuple(line.split(None, 1)) for line in proc.stdout.splitlines() if line.strip()]


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
