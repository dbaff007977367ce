"""An EMULATED Cisco IOS / Unified CME command line over SSH, for tests only.

Nobody can run a real Cisco voice gateway here, so the tests talk to this: a small SSH server
(paramiko's server mode) on 127.0.0.1 that behaves like the parts of an IOS CLI that teleshift uses.
It is an emulation, not a Cisco product, and it knows only this much:

- password authentication (a wrong password is refused), prompt ``GW1>``; ``enable`` asks for the
  enable secret and gives ``GW1#`` (a wrong one prints ``% Bad secrets``);
- ``terminal length 0``, ``terminal width 511``, ``show running-config`` with an optional
  ``| section REGEX`` (top-level lines matching REGEX and their indented children);
- ``configure terminal`` -> ``GW1(config)#``; ``ephone-dn N [dual-line|octo-line]`` ->
  ``GW1(config-ephone-dn)#``; ``voice register dn N`` -> ``GW1(config-register-dn)#``; in them
  ``number``, ``label``, ``name`` and the call-forward commands with CME's syntax (SCCP:
  ``call-forward all|busy NUM``, ``call-forward noan NUM [timeout S]``; SIP: the same after
  ``call-forward b2bua``) and their ``no`` forms; ``exit``, ``end``;
- ``write memory`` (and ``write mem``, ``wr``, ``copy running-config startup-config``) copies the
  running configuration to the startup configuration;
- anything else is refused with IOS's ``% Invalid input detected at '^' marker.``

Fault injection for tests: ``reject`` (regexes: configuration lines refused as invalid input, as a
real gateway refuses a number it does not accept), ``ignore`` (regexes: lines accepted but with no
effect) and ``nvram_error`` (``write memory`` fails). State is kept in the object so tests can read the
configuration after a run.
"""
from __future__ import annotations

import re
import socket
import threading
import time
from dataclasses import dataclass, field

import paramiko

EPHONE_DN = "ephone-dn"
REGISTER_DN = "voice register dn"
_HOST_KEY = None
_HOST_KEY_LOCK = threading.Lock()
IDLE_TIMEOUT = 60  # seconds a session may stay silent before the emulator closes it
SESSION_LIMIT = 600  # seconds a session may last at most


def _host_key():
    global _HOST_KEY
    with _HOST_KEY_LOCK:
        if _HOST_KEY is None:
            _HOST_KEY = paramiko.ECDSAKey.generate()
        return _HOST_KEY


@dataclass
class EmulatedDn:
    kind: str
    tag: int
    linemode: str = ""
    number: str = ""
    other: list = field(default_factory=list)  # label/name lines, kept as typed
    forward: dict = field(default_factory=dict)  # all/busy -> number; noan -> (number, timeout)

    def render(self):
        head = f"{self.kind}  {self.tag}" + (f"  {self.linemode}" if self.linemode else "")
        lines = [head]
        if self.number:
            lines.append(f" number {self.number}")
        lines += [f" {line}" for line in self.other]
        cf = "call-forward b2bua" if self.kind == REGISTER_DN else "call-forward"
        for kind in ("all", "busy"):
            if kind in self.forward:
                lines.append(f" {cf} {kind} {self.forward[kind]}")
        if "noan" in self.forward:
            number, timeout = self.forward["noan"]
            lines.append(f" {cf} noan {number} timeout {timeout}")
        return lines


class InvalidInput(Exception):
    def __init__(self, position=0, message="% Invalid input detected at '^' marker."):
        super().__init__(message)
        self.position = position
        self.message = message


def _word(token, full, minimum=1):
    """IOS-style abbreviation: ``token`` is an unambiguous prefix of ``full``."""
    return len(token) >= minimum and full.startswith(token.lower())


class EmulatedCME:
    """The emulated gateway: its configuration, credentials and an SSH listener on 127.0.0.1."""

    def __init__(self, hostname="GW1", username="admin", password="emulated-pass",
                 secret="emulated-enable", dns=(), reject=(), ignore=(), max_dn=240,
                 nvram_error=False):
        self.hostname = hostname
        self.username = username
        self.password = password
        self.secret = secret
        self.nvram_error = nvram_error  # write memory fails, as with a full or broken NVRAM
        self.max_dn = max_dn  # like telephony-service max-dn: higher ephone-dn tags are refused
        self.reject = [re.compile(p) for p in reject]
        self.ignore = [re.compile(p) for p in ignore]
        self.dns = {}
        for dn in dns:
            self.dns[(dn.kind, dn.tag)] = dn
        self.startup = self.running_config()
        self.commands = []  # every line typed in a session (never the enable secret)
        self.config_lines = []  # every configuration line accepted
        self.writes = 0
        self.sessions = 0
        self.failed_logins = 0
        self.lock = threading.RLock()
        self._sock = None
        self._stop = threading.Event()
        self._threads = []
        self.port = None

    # ---- configuration -------------------------------------------------------------------
    def running_config(self):
        lines = ["!", "version 15.7", "service timestamps debug datetime msec", "!",
                 f"hostname {self.hostname}", "!", "interface GigabitEthernet0/0",
                 " ip address 192.0.2.1 255.255.255.0", "!", "telephony-service", " max-ephones 48",
                 f" max-dn {self.max_dn}", " ip source-address 192.0.2.1 port 2000", "!", "voice register global",
                 " mode cme", f" max-dn {self.max_dn}", " max-pool 48", "!"]
        dns = sorted(self.dns.values(), key=lambda d: (d.kind != REGISTER_DN, d.tag))
        for dn in dns:
            if dn.kind == REGISTER_DN:
                lines += dn.render() + ["!"]
        lines += ["voice register pool  1", " id mac 0000.5E00.5301", " number 1 dn 1", "!",
                  "ephone-dn-template  1", " call-forward noan 1999 timeout 30", "!"]
        for dn in dns:
            if dn.kind == EPHONE_DN:
                lines += dn.render() + ["!"]
        lines += ["ephone  1", " mac-address 0000.5E00.5302", " button  1:1", "!",
                  "line con 0", "line vty 0 4", " transport input ssh", "!", "end"]
        return "\n".join(lines) + "\n"

    def forwarding(self, number):
        """The forward settings of the DNs with ``number`` ({} when none), for test assertions."""
        with self.lock:
            found = [dict(dn.forward) for dn in self.dns.values() if dn.number == number]
        return found[0] if len(found) == 1 else found

    # ---- network -------------------------------------------------------------------------
    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        thread = threading.Thread(target=self._accept_loop, name=f"emulated-{self.hostname}", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=5)
        if self._sock:
            self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                client, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, client):
        transport = paramiko.Transport(client)
        transport.add_server_key(_host_key())
        server = _SshServer(self)
        try:
            transport.start_server(server=server)
            channel = transport.accept(timeout=10)
            if channel is None or not server.shell.wait(10):
                return
            with self.lock:
                self.sessions += 1
            _Session(self, channel).run()
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            transport.close()

    # ---- commands ------------------------------------------------------------------------
    def configure(self, mode, dn, line):
        """Apply one configuration line; returns the new (mode, dn) or raises InvalidInput."""
        tokens = line.split()
        if any(p.search(line) for p in self.reject):
            raise InvalidInput(max(0, len(line) - len(tokens[-1])))
        if tokens and _word(tokens[0], "end", 2):
            return "exec", None
        if mode != "config" and tokens and tokens[0] == "exit":
            return "config", None
        if tokens and tokens[0] == "exit":
            return "exec", None
        entered = self._enter_dn(tokens)
        if entered is not None:
            return entered
        if mode == "config" or dn is None:
            raise InvalidInput(0)
        if any(p.search(line) for p in self.ignore):
            return mode, dn
        self._dn_line(dn, tokens)
        return mode, dn

    def _enter_dn(self, tokens):
        if len(tokens) >= 2 and tokens[0] == "ephone-dn":
            if not tokens[1].isdigit() or not 1 <= int(tokens[1]) <= self.max_dn:
                raise InvalidInput(len("ephone-dn "))
            linemode = tokens[2] if len(tokens) > 2 else ""
            if linemode not in ("", "dual-line", "octo-line") or len(tokens) > 3:
                raise InvalidInput(len(" ".join(tokens[:2])) + 1)
            key = (EPHONE_DN, int(tokens[1]))
            with self.lock:
                current = self.dns.get(key)
                if current is not None and current.linemode != linemode:
                    raise InvalidInput(0, f"% ephone-dn {tokens[1]} is configured as "
                                          f"{current.linemode or 'single-line'}; remove it to change")
                if current is None:
                    self.dns[key] = EmulatedDn(EPHONE_DN, int(tokens[1]), linemode)
            return "config-ephone-dn", key
        if len(tokens) >= 3 and tokens[0] == "voice" and _word(tokens[1], "register", 3) and tokens[2] == "dn":
            if len(tokens) != 4 or not tokens[3].isdigit():
                raise InvalidInput(len(" ".join(tokens[:3])) + 1)
            key = (REGISTER_DN, int(tokens[3]))
            with self.lock:
                self.dns.setdefault(key, EmulatedDn(REGISTER_DN, int(tokens[3])))
            return "config-register-dn", key
        return None

    def _dn_line(self, key, tokens):
        dn = self.dns[key]
        negate = tokens[0] == "no"
        words = tokens[1:] if negate else tokens
        if not words:
            raise InvalidInput(0, "% Incomplete command.")
        head = words[0]
        if head in ("label", "name") and not negate and len(words) > 1:
            with self.lock:
                dn.other = [o for o in dn.other if not o.startswith(head + " ")] + [" ".join(words)]
            return
        if head == "number":
            if negate:
                dn.number = ""
                return
            if len(words) < 2 or not re.fullmatch(r"[0-9A-F.+]{1,16}", words[1]):
                raise InvalidInput(len("number "))
            with self.lock:
                dn.number = words[1]
            return
        if head != "call-forward":
            raise InvalidInput(3 if negate else 0)
        rest = words[1:]
        offset = len(" ".join(tokens[: len(tokens) - len(rest)])) + 1
        if dn.kind == REGISTER_DN:  # SIP lines: only "call-forward b2bua ..."
            if not rest or rest[0] != "b2bua":
                raise InvalidInput(offset)
            rest = rest[1:]
            offset += len("b2bua ")
        elif rest and rest[0] == "b2bua":
            raise InvalidInput(offset)
        if not rest:
            raise InvalidInput(0, "% Incomplete command.")
        kind = rest[0]
        if kind not in ("all", "busy", "noan"):
            raise InvalidInput(offset)
        if negate:
            if len(rest) != 1 and kind != "noan":
                raise InvalidInput(offset + len(kind) + 1)
            with self.lock:
                dn.forward.pop(kind, None)
            return
        if len(rest) < 2:
            raise InvalidInput(0, "% Incomplete command.")
        target = rest[1]
        if not re.fullmatch(r"\+?[0-9]{1,32}", target):
            raise InvalidInput(offset + len(kind) + 1)
        if kind == "noan":
            timeout = 20
            if len(rest) == 4 and rest[2] == "timeout" and rest[3].isdigit() and 3 <= int(rest[3]) <= 60000:
                timeout = int(rest[3])
            elif len(rest) != 2:
                raise InvalidInput(offset + len(kind) + len(target) + 2)
            with self.lock:
                dn.forward["noan"] = (target, timeout)
            return
        if len(rest) != 2:
            raise InvalidInput(offset + len(kind) + len(target) + 2)
        with self.lock:
            dn.forward[kind] = target

    def show(self, line):
        """Output of a show command (privileged mode), or raise InvalidInput."""
        command, _, pipe = line.partition("|")
        tokens = command.split()
        if not (len(tokens) == 2 and _word(tokens[0], "show", 2) and _word(tokens[1], "running-config", 3)):
            raise InvalidInput(len(tokens[0]) + 1 if tokens else 0)
        with self.lock:
            text = self.running_config()
        if not pipe.strip():
            return f"Building configuration...\n\nCurrent configuration : {len(text)} bytes\n{text}"
        ptoks = pipe.split(None, 1)
        if len(ptoks) != 2 or not _word(ptoks[0], "section", 3):
            raise InvalidInput(len(command) + 2)
        pattern = re.compile(ptoks[1].strip())
        out, keep = [], False
        for text_line in text.splitlines():
            if text_line and not text_line[0].isspace():
                keep = bool(pattern.search(text_line)) and text_line != "!"
            if keep and text_line.strip() != "!":
                out.append(text_line)
        return "\n".join(out)

    def write_memory(self):
        with self.lock:
            self.startup = self.running_config()
            self.writes += 1


class _SshServer(paramiko.ServerInterface):
    def __init__(self, emulated):
        self.emulated = emulated
        self.shell = threading.Event()

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        if username == self.emulated.username and password == self.emulated.password:
            return paramiko.AUTH_SUCCESSFUL
        with self.emulated.lock:
            self.emulated.failed_logins += 1
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind, chanid):
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(self, channel, term, width, height, pixelwidth, pixelheight, modes):
        return True

    def check_channel_shell_request(self, channel):
        self.shell.set()
        return True


class _Session:
    """One interactive CLI session: line editing with echo, modes and prompts."""

    MODE_PROMPTS = {"user": ">", "exec": "#", "config": "(config)#",
                    "config-ephone-dn": "(config-ephone-dn)#", "config-register-dn": "(config-register-dn)#"}

    def __init__(self, emulated, channel):
        self.emu = emulated
        self.chan = channel
        self.mode = "user"
        self.dn = None
        self.awaiting_secret = False
        self.closed = False

    def prompt(self):
        return self.emu.hostname + self.MODE_PROMPTS[self.mode]

    def send(self, text):
        self.chan.sendall(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    def run(self):
        self.chan.settimeout(0.5)
        self.send(f"\n{self.prompt()}")
        buffer, last, started, last_input = "", "", time.monotonic(), time.monotonic()
        while not self.closed and not self.emu._stop.is_set():
            now = time.monotonic()
            if now - last_input > IDLE_TIMEOUT or now - started > SESSION_LIMIT:
                break
            try:
                data = self.chan.recv(4096)
            except socket.timeout:
                continue
            if not data:
                break
            last_input = time.monotonic()
            echo = []  # echoed characters go out in one packet per chunk, not one per character
            for char in data.decode(errors="replace"):
                if char == "\n" and last == "\r":
                    last = char
                    continue
                last = char
                if char in "\r\n":
                    if not self.awaiting_secret:
                        echo.append("\n")
                    self.send("".join(echo))
                    echo = []
                    self.line(buffer)
                    buffer = ""
                    if self.closed:
                        break
                elif char in "\x08\x7f":
                    buffer = buffer[:-1]
                elif char == "\x1a":  # Ctrl-Z leaves configuration mode
                    buffer, self.mode, self.dn = "", "exec" if self.mode != "user" else "user", None
                else:
                    buffer += char
                    if not self.awaiting_secret:
                        echo.append(char)
            if echo and not self.closed:
                self.send("".join(echo))
        self.chan.close()

    def line(self, text):
        if self.awaiting_secret:
            self.awaiting_secret = False
            if text == self.emu.secret:
                self.mode = "exec"
            else:
                self.send("% Bad secrets\n\n")
            self.send(self.prompt())
            return
        stripped = text.strip()
        with self.emu.lock:
            self.emu.commands.append(stripped)
        if not stripped or stripped.startswith("!"):
            self.send(self.prompt())
            return
        try:
            output = self.execute(stripped)
        except InvalidInput as exc:
            caret = " " * (len(self.prompt()) + exc.position) + "^\n" if "marker" in exc.message else ""
            output = f"{caret}{exc.message}\n\n"
        if self.closed or output is None:
            return
        if output and not output.endswith("\n"):
            output += "\n"
        self.send(output + self.prompt())

    def execute(self, line):
        tokens = line.split()
        first = tokens[0].lower()
        if self.mode in ("user", "exec"):
            if _word(first, "exit", 2) or _word(first, "logout", 2) or first == "quit":
                self.closed = True
                return ""
            if _word(first, "terminal", 3) and len(tokens) == 3 and tokens[2].isdigit() and (
                    _word(tokens[1], "length", 3) or _word(tokens[1], "width", 3)):
                return ""
            if _word(first, "enable", 2) and len(tokens) == 1:
                if self.mode == "user":
                    self.awaiting_secret = True
                    self.send("Password: ")
                    return None  # no prompt: the next line is the secret
                return ""
            if self.mode == "user":
                raise InvalidInput(0)
            if _word(first, "disable", 4):
                self.mode = "user"
                return ""
            if _word(first, "show", 2):
                return self.emu.show(line)
            if (_word(first, "write", 2) and (len(tokens) == 1 or _word(tokens[1], "memory", 3))) or (
                    _word(first, "copy", 2) and len(tokens) == 3 and _word(tokens[1], "running-config", 3)
                    and _word(tokens[2], "startup-config", 3)):
                if self.emu.nvram_error:
                    return "Building configuration...\n% Error writing nvram: device full\n"
                self.emu.write_memory()
                return "Building configuration...\n[OK]\n"
            if _word(first, "configure", 4) and len(tokens) == 2 and _word(tokens[1], "terminal", 1):
                self.mode = "config"
                return "Enter configuration commands, one per line.  End with CNTL/Z.\n"
            raise InvalidInput(0)
        # configuration modes
        if tokens[0] == "do" and len(tokens) > 1:
            return self.emu.show(line[3:]) if _word(tokens[1], "show", 2) else ""
        mode, dn = self.emu.configure(self.mode, self.dn, line)
        with self.emu.lock:
            self.emu.config_lines.append(line)
        self.mode, self.dn = mode, dn
        return ""
