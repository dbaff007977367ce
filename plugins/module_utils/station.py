# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""Telework stations (laptops), controller side and pure: the laptops file, the assignment of laptops
to the people of a wave (state/laptops.yml), and the files one laptop receives from its person's kit.

- The laptops file (``teleshift_laptops_file``, CSV ``host,serial,mac,os``): every laptop the logistics
  team holds, by serial number or MAC address, and the inventory host name it answers to.
- The state file: ``people: {id: {host, serial, mac, wave, assigned}}`` and ``history`` (one line per
  assignment, re-assignment or release). A laptop nobody holds is *free*: the next run wipes it.
- ``station_files``: the files of one laptop, rendered from the kit's texts (the action plugin of
  telework_station reads them on the controller): VPN profiles, the softphone's configuration, the
  remote-desktop launcher with the hotline's number, the notice PDF.

No I/O here (callers read files); unit tested in tests/unit/test_station.py.
"""
from __future__ import annotations

import csv
import io
import re
import shlex

from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import ID_RE, Problem

COLUMNS = ("host", "serial", "mac", "os")
OS_KINDS = ("debian", "ubuntu", "windows")
HOST_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,62}$")
SERIAL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$")
MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
HOTLINE_RE = re.compile(r"^[+0-9][0-9 ().-]{0,30}$")
SIP_SECRET_RE = re.compile(r"^[A-Za-z0-9._~+-]{8,128}$")  # kits make alphanumeric ones
MAX_LAPTOPS = 100_000

# What a laptop gets from its person's kit: (kit file, station file key); binary files end in .pdf.
KIT_FILES = ("vpn/teleshift.conf", "openvpn/teleshift-tcp.ovpn", "phone/account.txt", "phone/sip_password",
             "desktop/summary.yml", "notice/notice.pdf")


class Laptop:
    __slots__ = ("host", "serial", "mac", "os", "line")

    def __init__(self, host, serial="", mac="", os="debian", line=0):
        self.host, self.serial, self.mac, self.os, self.line = host, serial, mac, os, line

    def as_dict(self):
        return {"host": self.host, "serial": self.serial, "mac": self.mac, "os": self.os}


def normal_mac(value):
    """aa:bb:cc:dd:ee:ff from the usual spellings (AA-BB-..., aabb.ccdd.eeff, aabbccddeeff); '' if not a MAC."""
    digits = re.sub(r"[^0-9a-fA-F]", "", value or "").lower()
    if len(digits) != 12 or len(re.sub(r"[0-9a-fA-F:.\- ]", "", value or "")):
        return ""
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def parse_laptops(text, source="laptops.csv"):
    """(laptops in file order, problems) from the laptops file's text: one row per laptop, a host name
    and at least a serial or a MAC; every problem names its line and column."""
    laptops, problems = [], []
    rows = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(rows, None)
    names = [h.strip().lower() for h in header or []]
    if "host" not in names:
        return [], [Problem(source, 1, "host", f"the header must name the columns {', '.join(COLUMNS)}")]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        problems.append(Problem(source, 1, unknown[0], f"unknown column (known: {', '.join(COLUMNS)})"))
    seen = {"host": {}, "serial": {}, "mac": {}}
    for number, row in enumerate(rows, 2):
        if number > MAX_LAPTOPS + 1:
            problems.append(Problem(source, number, "", f"more than {MAX_LAPTOPS} laptops"))
            break
        if not any(cell.strip() for cell in row) or (row and row[0].lstrip().startswith("#")):
            continue
        cells = {name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(names)}
        laptop, mine = _laptop(cells, number, source)
        for key in ("host", "serial", "mac"):
            value = getattr(laptop, key).lower()
            if value and value in seen[key]:
                mine.append(Problem(source, number, key,
                                    f"{getattr(laptop, key)!r} is already on line {seen[key][value]}"))
            elif value:
                seen[key][value] = number
        problems += mine
        if not mine:
            laptops.append(laptop)
    return laptops, problems


def _laptop(cells, number, source):
    problems = []
    host, serial = cells.get("host", ""), cells.get("serial", "")
    mac_text, kind = cells.get("mac", ""), (cells.get("os") or "debian").lower()
    mac = normal_mac(mac_text)
    if not HOST_RE.fullmatch(host):
        problems.append(Problem(source, number, "host", f"{host!r} is not a host name"))
    if serial and not SERIAL_RE.fullmatch(serial):
        problems.append(Problem(source, number, "serial", f"{serial!r}: letters, digits and . _ / - only"))
    if mac_text and not mac:
        problems.append(Problem(source, number, "mac", f"{mac_text!r} is not a MAC address"))
    if not serial and not mac_text:
        problems.append(Problem(source, number, "serial", "a laptop needs its serial number or its MAC address"))
    if kind not in OS_KINDS:
        problems.append(Problem(source, number, "os", f"{kind!r} is not one of {', '.join(OS_KINDS)}"))
    return Laptop(host, serial, mac, kind, number), problems


def find_laptop(laptops, key):
    """The laptop named by host name, serial number or MAC address (None when none)."""
    mac = normal_mac(key)
    for laptop in laptops:
        if key in (laptop.host, laptop.serial) or (mac and mac == laptop.mac):
            return laptop
    return None


# ------------------------------------------------------------------ the state: who holds which laptop

def holders(state):
    """{host: person id} from the state's people."""
    return {entry["host"]: pid for pid, entry in (state.get("people") or {}).items()
            if isinstance(entry, dict) and entry.get("host")}


def _entry(laptop, wave, today):
    return {"host": laptop.host, "serial": laptop.serial, "mac": laptop.mac, "wave": wave, "assigned": today}


def _copy(state):
    return {"people": {k: dict(v) for k, v in (state.get("people") or {}).items()},
            "history": list(state.get("history") or [])}


def assign_wave(entries, wave, laptops, state, today):
    """Hand a free laptop to everyone of ``wave`` (waves.plan_waves entries) who needs one and holds none,
    in queue order. Returns (new state, [(id, host)] handed out, [ids] left without a laptop)."""
    new = _copy(state)
    taken = holders(new)
    free = [lt for lt in laptops if lt.host not in taken and lt.os in OS_KINDS]
    given, short = [], []
    for entry in entries:
        pid = entry.person.id
        if entry.wave != wave or not entry.laptop or pid in new["people"]:
            continue
        if not free:
            short.append(pid)
            continue
        laptop = free.pop(0)
        new["people"][pid] = _entry(laptop, wave, today)
        new["history"].append(f"{today} {laptop.host} ({laptop.serial or laptop.mac}) -> {pid} (wave {wave})")
        given.append((pid, laptop.host))
    return new, given, short


def reassign(state, laptops, key, pid, today, people):
    """Give the laptop named by ``key`` (host, serial or MAC) to ``pid`` (an active person of ``people``,
    {id: Person}); its previous holder loses it (the next run wipes their files). Raises ValueError."""
    laptop = find_laptop(laptops, key)
    if laptop is None:
        raise ValueError(f"no laptop {key!r} in the laptops file")
    person = people.get(pid)
    if person is None or not person.active:
        raise ValueError(f"{pid!r} is not an active person of the roster")
    new = _copy(state)
    current = new["people"].get(pid)
    if current and current.get("host") != laptop.host:
        raise ValueError(f"{pid} already holds {current.get('host')}: release it first")
    before = holders(new).get(laptop.host)
    if before == pid:
        return new, None
    if before:
        del new["people"][before]
    wave = (current or {}).get("wave") or 0
    new["people"][pid] = _entry(laptop, wave, today)
    new["history"].append(f"{today} {laptop.host} ({laptop.serial or laptop.mac}) {before or '(free)'} -> {pid}")
    return new, before


def release(state, laptops, key, today):
    """The laptop named by ``key`` back to the stock (wiped on the next run). Returns (state, previous id)."""
    laptop = find_laptop(laptops, key)
    if laptop is None:
        raise ValueError(f"no laptop {key!r} in the laptops file")
    new = _copy(state)
    before = holders(new).get(laptop.host)
    if before:
        del new["people"][before]
        new["history"].append(f"{today} {laptop.host} ({laptop.serial or laptop.mac}) {before} -> (free)")
    return new, before


# ------------------------------------------------------------------ the plan: one slice per laptop

def plan_stations(laptops, state, people, hosts, needs_of=lambda person: []):
    """({host: slice}, warnings) for the laptops that are inventory hosts (``hosts``). A slice names the
    person (or "" for a free laptop: wiped) and the kit parts they must have (``needs_of(person)``);
    public data only. A holder who left the roster or is inactive is not served: their laptop is wiped
    (warning)."""
    held = holders(state)
    slices, warnings = {}, []
    for laptop in laptops:
        if laptop.host not in hosts:
            continue
        pid = held.get(laptop.host, "")
        person = people.get(pid) if pid else None
        if pid and (person is None or not person.active):
            warnings.append(f"{laptop.host}: {pid} is no longer an active person of the roster: the laptop "
                            "is wiped of their files (release it: teleshift waves --release " + laptop.host + ")")
            pid, person = "", None
        slices[laptop.host] = {
            "person": pid, "os": laptop.os, "serial": laptop.serial, "mac": laptop.mac,
            "name": person.full_name if person else "", "language": person.language if person else "",
            "needs": sorted(needs_of(person)) if person else [],
        }
    return slices, warnings


# ------------------------------------------------------------------ rendering one laptop's files

def _summary(text):
    values = {}
    for line in (text or "").splitlines():
        key, sep, value = line.partition(":")
        if sep and not line.startswith("#"):
            values[key.strip()] = value.strip()
    return values


TEXTS = {
    "fr": {"launcher": "Bureau à distance", "comment": "Ouvre votre bureau de travail (activez d'abord le VPN). "
           "Assistance : {hotline}", "failed": "La connexion au bureau à distance a échoué. Vérifiez que le VPN "
           "est actif, puis appelez l'assistance : {hotline}", "notice": "Notice teletravail.pdf",
           "hotline": "Assistance"},
    "en": {"launcher": "Remote desktop", "comment": "Opens your work desktop (the VPN first). Hotline: {hotline}",
           "failed": "The remote desktop did not open. Check that the VPN is on, then call the hotline: {hotline}",
           "notice": "Telework notice.pdf", "hotline": "Hotline"},
}


class KitError(ValueError):
    """A kit that cannot make a laptop's files (missing or malformed file): the message says which."""


def _clean(text):
    return re.sub(r'["\\<>\r\n\x00-\x1f]', "", text or "").strip()


def station_files(slice_, kit, paths, hotline, rdp_options=(), needs=()):
    """{path: (content bytes, mode, owner)} of one Debian laptop. ``kit``: {kit file: text or bytes} (see
    KIT_FILES; absent ones missing); ``paths``: the role's paths (user, home, desktop_dir, wireguard,
    openvpn, softphone_dir, launcher). ``needs``: the kit parts the person must have (vpn, phone,
    desktop, notice): a missing one raises KitError."""
    pid, user = slice_["person"], paths["user"]
    if not pid:
        return {}
    lang = slice_.get("language") if slice_.get("language") in TEXTS else "en"
    words = {k: v.format(hotline=hotline) for k, v in TEXTS[lang].items()}
    for part, name in (("vpn", "vpn/teleshift.conf"), ("phone", "phone/account.txt"),
                       ("desktop", "desktop/summary.yml"), ("notice", "notice/notice.pdf")):
        if part in needs and not kit.get(name):
            hint = "scripts/teleshift kits --pdf" if part == "notice" else f"the {part} playbook"
            raise KitError(f"{pid}: the kit has no {name} (run {hint} first)")
    files = {}
    if kit.get("vpn/teleshift.conf"):
        files[paths["wireguard"]] = (_text(kit["vpn/teleshift.conf"]), 0o600, "root")
    if kit.get("openvpn/teleshift-tcp.ovpn"):
        files[paths["openvpn"]] = (_text(kit["openvpn/teleshift-tcp.ovpn"]), 0o600, "root")
    if kit.get("phone/account.txt"):
        files.update(softphone_files(slice_, kit, paths, hotline, words))
    if kit.get("desktop/summary.yml"):
        files.update(launcher_files(slice_, kit["desktop/summary.yml"], paths, hotline, rdp_options, words))
    if kit.get("notice/notice.pdf"):
        pdf = kit["notice/notice.pdf"]
        files[f"{paths['desktop_dir']}/{words['notice']}"] = (pdf if isinstance(pdf, bytes) else pdf.encode(), 0o644,
                                                              user)
    return files


def _text(value):
    return value.encode("utf-8") if isinstance(value, str) else value


def softphone_files(slice_, kit, paths, hotline, words):
    """baresip's config, accounts and contacts for the kit's SIP account (registered through the tunnel)."""
    account = _summary(_text(kit["phone/account.txt"]).decode("utf-8", "replace"))
    secret = (_text(kit.get("phone/sip_password") or b"").decode() or account.get("password", "")).strip()
    server, username = account.get("server", ""), account.get("username", "")
    port, transport = account.get("port", "5060"), account.get("transport", "udp")
    if not re.fullmatch(r"[0-9A-Za-z.:-]+", server) or not re.fullmatch(r"[0-9A-Za-z._+-]+", username) \
            or not port.isdigit() or transport not in ("udp", "tcp", "tls"):
        raise KitError(f"{slice_['person']}: phone/account.txt: server, username, port or transport is not usable")
    if not SIP_SECRET_RE.fullmatch(secret):
        raise KitError(f"{slice_['person']}: phone/sip_password is missing or holds unexpected characters")
    folder, user = paths["softphone_dir"], paths["user"]
    config = (f"# baresip of {slice_['person']}'s laptop, written by teleshift: do not edit.\n"
              "poll_method\t\tepoll\n"
              f"net_interface\t\t{paths['tunnel']}\n"
              "audio_player\t\talsa,default\naudio_source\t\talsa,default\naudio_alert\t\talsa,default\n"
              f"module_path\t\t{paths['softphone_modules']}\n"
              "module\t\t\tg711.so\nmodule\t\t\topus.so\nmodule\t\t\talsa.so\n"
              "module_tmp\t\tuuid.so\nmodule_tmp\t\taccount.so\n"
              "module_app\t\tcontact.so\nmodule_app\t\tmenu.so\n")
    name = _clean(slice_.get("name")) or username
    accounts = (f'"{name}" <sip:{username}@{server}:{port};transport={transport}>'
                f";auth_pass={secret};regint=120;mwi=no;answermode=manual\n")
    digits = re.sub(r"[^0-9+]", "", hotline)
    contacts = f'"{words["hotline"]}" <sip:{digits}@{server}:{port}>\n' if digits else ""
    return {f"{folder}/config": (config.encode(), 0o600, user),
            f"{folder}/accounts": (accounts.encode(), 0o600, user),
            f"{folder}/contacts": (contacts.encode(), 0o600, user)}


def launcher_files(slice_, summary_text, paths, hotline, rdp_options, words):
    """The FreeRDP launcher: a script with the kit's host, port and login and the hotline's number when it
    fails, and a desktop entry naming the hotline."""
    summary = _summary(_text(summary_text).decode("utf-8", "replace"))
    address, port, login = summary.get("address", ""), summary.get("port", "3389"), summary.get("login", "")
    if not re.fullmatch(r"[0-9A-Za-z.:-]+", address) or not port.isdigit() or not ID_RE.fullmatch(login):
        raise KitError(f"{slice_['person']}: desktop/summary.yml: address, port or login is not usable")
    options = " ".join(shlex.quote(o) for o in rdp_options)
    failed = words["failed"]
    script = (f"#!/bin/sh\n# The remote desktop of {login}, written by teleshift: do not edit.\n"
              f"HOTLINE={shlex.quote(hotline)}\n"
              f"xfreerdp /v:{address}:{port} /u:{login} {options} \"$@\"\n"
              "status=$?\n"
              "if [ $status -ne 0 ]; then\n"
              f"  message={shlex.quote(failed)}\n"
              "  if command -v zenity >/dev/null 2>&1 && [ -n \"$DISPLAY\" ]; then\n"
              "    zenity --error --text=\"$message\"\n"
              "  else echo \"$message\" >&2; fi\nfi\nexit $status\n")
    entry = ("[Desktop Entry]\nType=Application\nVersion=1.0\n"
             f"Name={words['launcher']}\nComment={_clean(words['comment'])}\n"
             f"Exec={paths['launcher']}\nIcon=preferences-desktop-remote-desktop\nTerminal=false\n"
             "Categories=Network;RemoteAccess;\n")
    return {paths["launcher"]: (script.encode(), 0o755, "root"),
            f"{paths['desktop_dir']}/teleshift-remote-desktop.desktop": (entry.encode(), 0o755, paths["user"])}


def units_for(files, paths):
    """{unit: [paths that restart it]} of the laptop's services: the tunnel and the softphone."""
    units = {}
    if paths["wireguard"] in files:
        units[paths["wireguard_unit"]] = [paths["wireguard"]]
    phone = [p for p in files if p.startswith(paths["softphone_dir"] + "/")]
    if phone:
        units[paths["softphone_unit"]] = sorted(phone)
    return units
