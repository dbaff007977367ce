# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The second factor's core, standard library only (it runs on the gateways: the gate portal, its
nftables helper and the ``mfa_gate`` module import it; the controller uses it too).

- TOTP per RFC 6238 (HMAC-SHA1, 30 s steps, 6 digits, the authenticator apps' defaults): ``totp``,
  ``match_step`` (the step a code belongs to within a window of steps around now).
- ``Gate``: the decision on one code for one person: rate limit, lock-out after wrong codes, replay
  refused (a code's step must be newer than the last accepted one); its state is plain JSON.
- ``nft_*``: the nftables text of the gate table (``inet teleshift_gate``) and of its live changes.
  The table's open sets have timeouts: a valid code adds the person's tunnel addresses for the
  session length, the kernel drops them when it ends; nothing is restarted, nobody else is touched.
- ``otpauth_uri``: what the enrolment QR code carries.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import struct
import time
import urllib.parse

STEP = 30  # seconds per TOTP step (RFC 6238 default; what every authenticator app uses)
DIGITS = 6
WINDOW = 1  # steps accepted either side of now (clock drift of a phone: +-30 s)
TABLE = "teleshift_gate"  # nftables table (family inet) of the gate
DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def duration(value):
    """Seconds from an int or a text such as ``10h``, ``90m``, ``45s``, ``7d``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int):
        return value
    match = DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (a number of seconds, or e.g. 10h, 90m, 45s, 7d)")
    return int(match.group(1)) * UNITS[match.group(2)]


# ------------------------------------------------------------------------------------------- TOTP

def b32_secret(raw):
    """Base32 text (no padding, upper case) of the raw secret bytes: what apps and otpauth:// take."""
    return base64.b32encode(raw).decode("ascii").rstrip("=")


def secret_bytes(text):
    """Raw bytes of a base32 secret (spaces, case and missing padding tolerated); ValueError if not base32."""
    clean = re.sub(r"\s+", "", str(text)).upper()
    if not clean or not re.fullmatch(r"[A-Z2-7]+=*", clean):
        raise ValueError("not a base32 secret")
    clean = clean.rstrip("=")
    return base64.b32decode(clean + "=" * (-len(clean) % 8))


def hotp(key, counter, digits=DIGITS):
    """RFC 4226 HOTP of raw ``key`` at ``counter``, as a zero-padded string."""
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def totp(secret, at=None, digits=DIGITS, step=STEP):
    """RFC 6238 TOTP code of a base32 ``secret`` (or raw bytes) at unix time ``at`` (now)."""
    key = secret if isinstance(secret, bytes) else secret_bytes(secret)
    return hotp(key, int((time.time() if at is None else at) // step), digits)


def match_step(secret, code, at=None, window=WINDOW, digits=DIGITS, step=STEP):
    """The time step (int) whose code is ``code`` within ``window`` steps of ``at``, else None.
    Compared in constant time, every candidate step computed."""
    code = str(code or "").strip()
    if not re.fullmatch(r"[0-9]{%d}" % digits, code):
        return None
    key = secret if isinstance(secret, bytes) else secret_bytes(secret)
    now = int((time.time() if at is None else at) // step)
    found = None
    for counter in range(now - window, now + window + 1):
        if hmac.compare_digest(hotp(key, counter, digits), code) and found is None:
            found = counter
    return found


def otpauth_uri(secret, account, issuer):
    """``otpauth://totp/<issuer>:<account>?secret=...&issuer=...`` (Key Uri Format of the apps)."""
    label = urllib.parse.quote(f"{issuer}:{account}" if issuer else account, safe="")
    query = {"secret": secret, "algorithm": "SHA1", "digits": str(DIGITS), "period": str(STEP)}
    if issuer:
        query["issuer"] = issuer
    return f"otpauth://totp/{label}?{urllib.parse.urlencode(query, quote_via=urllib.parse.quote)}"


# ------------------------------------------------------------------------------------------- gate

class Gate:
    """Decides on codes. ``state`` is plain JSON (kept in a file by the portal):
    {person: {"failures": [t...], "locked_until": t, "last_step": n, "attempts": [t...]}}.

    - at most ``rate`` attempts per ``rate_window`` seconds per person: more are "rate-limited" (the
      code is not even looked at, so guessing is slow whatever the lock-out says);
    - ``max_failures`` wrong codes within ``failure_window`` seconds lock the person out for
      ``lockout`` seconds: every code, right or wrong, is then "locked";
    - a right code whose step is not newer than the last accepted one is "replayed" (and counts as a
      failure: someone else may have seen it);
    - else "opened".
    """

    def __init__(self, state=None, max_failures=5, failure_window=900, lockout=900, rate=10, rate_window=60,
                 window=WINDOW):
        self.state = state if isinstance(state, dict) else {}
        self.max_failures, self.failure_window, self.lockout = max_failures, failure_window, lockout
        self.rate, self.rate_window, self.window = rate, rate_window, window

    def entry(self, person):
        entry = self.state.get(person)
        if not isinstance(entry, dict):
            entry = self.state[person] = {}
        return entry

    def locked_until(self, person, now=None):
        now = time.time() if now is None else now
        until = float(self.entry(person).get("locked_until") or 0)
        return until if until > now else 0

    def check(self, person, secret, code, now=None):
        """(result, detail): result is opened | refused | replayed | locked | lockout | rate-limited."""
        now = time.time() if now is None else now
        entry = self.entry(person)
        attempts = [t for t in entry.get("attempts", []) if now - t < self.rate_window]
        if len(attempts) >= self.rate:
            entry["attempts"] = attempts
            return "rate-limited", f"more than {self.rate} attempts in {self.rate_window} s"
        entry["attempts"] = attempts + [now]
        until = self.locked_until(person, now)
        if until:
            return "locked", f"locked out until {int(until)}"
        try:
            found = match_step(secret, code, now, self.window)
        except ValueError:
            found = None
        if found is not None and found > int(entry.get("last_step") or -1):
            entry["last_step"] = found
            entry["failures"] = []
            return "opened", ""
        result = "replayed" if found is not None else "refused"
        failures = [t for t in entry.get("failures", []) if now - t < self.failure_window] + [now]
        if len(failures) >= self.max_failures:
            entry["locked_until"] = now + self.lockout
            entry["failures"] = []
            return "lockout", f"{len(failures)} wrong codes: locked out for {self.lockout} s"
        entry["failures"] = failures
        return result, f"{len(failures)} wrong code(s) of {self.max_failures}"

    def unlock(self, person):
        entry = self.entry(person)
        entry.pop("locked_until", None)
        entry["failures"] = []

    def prune(self, people, now=None):
        """Forget people no longer enrolled and attempts too old to matter."""
        now = time.time() if now is None else now
        for person in list(self.state):
            if person not in people:
                del self.state[person]
                continue
            entry = self.state[person]
            entry["attempts"] = [t for t in entry.get("attempts", []) if now - t < self.rate_window]
            entry["failures"] = [t for t in entry.get("failures", []) if now - t < self.failure_window]


# ----------------------------------------------------------------------------------------- nftables

def parse_people(text):
    """[(id, service, [addresses])] from a slice's ``people`` text."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 3:
            out.append((parts[0], parts[1], parts[2].split(",")))
        elif parts:
            raise ValueError(f"bad gate line {line!r}: expected 'id service address[,address]'")
    return out


def family_of(address):
    return 6 if ipaddress.ip_address(address.split("/")[0]).version == 6 else 4


def _elements(items):
    return ", ".join(items)


def nft_table(gated, exempt, interfaces=None):
    """The gate table's static part, as one transaction that keeps the open sets' live elements: the
    table and sets are declared (a no-op when they exist), the static sets and the chain replaced.

    gated: networks whose clients pass the gate (any VPN's pools); exempt: addresses that need no
    code (people of exempt services). Traffic forwarded from a gated address that is neither exempt
    nor open is dropped, whatever the other tables say (a drop in any base chain is final)."""
    nets = {4: [], 6: []}
    for net in gated:
        nets[family_of(net)].append(str(ipaddress.ip_network(net, strict=False)))
    free = {4: [], 6: []}
    for addr in exempt:
        free[family_of(addr)].append(str(ipaddress.ip_address(addr)))
    lines = [f"table inet {TABLE} {{"]
    for fam, kind in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        lines += [f"\tset gated{fam} {{ type {kind}; flags interval; }}",
                  f"\tset exempt{fam} {{ type {kind}; }}",
                  f"\tset open{fam} {{ type {kind}; flags timeout; }}"]
    lines += ["\tchain forward { type filter hook forward priority filter - 10; policy accept; }", "}"]
    for fam in (4, 6):
        lines.append(f"flush set inet {TABLE} gated{fam}")
        if nets[fam]:
            lines.append(f"add element inet {TABLE} gated{fam} {{ {_elements(sorted(set(nets[fam])))} }}")
        lines.append(f"flush set inet {TABLE} exempt{fam}")
        if free[fam]:
            lines.append(f"add element inet {TABLE} exempt{fam} {{ {_elements(sorted(set(free[fam])))} }}")
    lines.append(f"flush chain inet {TABLE} forward")
    for fam, ip in ((4, "ip"), (6, "ip6")):
        lines.append(f"add rule inet {TABLE} forward {ip} saddr @gated{fam} {ip} saddr != @exempt{fam} "
                     f"{ip} saddr != @open{fam} counter drop comment \"gate closed\"")
    return "\n".join(lines) + "\n"


def nft_open(addresses, seconds):
    """Open (or renew) the gate for ``addresses`` for ``seconds``: add, delete, add again in one
    transaction, so an open entry gets the new timeout and a missing one no error."""
    lines = []
    for addr in addresses:
        addr = str(ipaddress.ip_address(addr))
        name = f"inet {TABLE} open{family_of(addr)}"
        lines += [f"add element {name} {{ {addr} }}", f"delete element {name} {{ {addr} }}",
                  f"add element {name} {{ {addr} timeout {int(seconds)}s }}"]
    return "\n".join(lines) + "\n"


def nft_close(addresses):
    """Close the gate for ``addresses`` at once (no error when they are not open)."""
    lines = []
    for addr in addresses:
        addr = str(ipaddress.ip_address(addr))
        name = f"inet {TABLE} open{family_of(addr)}"
        lines += [f"add element {name} {{ {addr} }}", f"delete element {name} {{ {addr} }}"]
    return "\n".join(lines) + "\n"


def parse_open_sets(json_text):
    """{address: seconds left} from ``nft -j list table inet teleshift_gate`` (or a set)."""
    import json

    found = {}
    try:
        items = json.loads(json_text or "{}").get("nftables", [])
    except ValueError:
        return found
    for item in items:
        nft_set = item.get("set") if isinstance(item, dict) else None
        if not nft_set or not str(nft_set.get("name", "")).startswith("open"):
            continue
        for elem in nft_set.get("elem", []) or []:
            if isinstance(elem, dict) and "elem" in elem:
                inner = elem["elem"]
                found[str(inner.get("val"))] = int(inner.get("expires", inner.get("timeout", 0)) or 0)
            elif isinstance(elem, str):
                found[elem] = 0
    return found


def take_secrets_file(path):
    """{id: secret} from a JSON file the controller sent, deleted at once whatever happens (OSError or
    ValueError when it cannot be read)."""
    import json
    import os

    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    finally:
        if os.path.exists(path):
            os.unlink(path)
