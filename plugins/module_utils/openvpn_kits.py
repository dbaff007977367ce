# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""OpenVPN certificates and profiles on the controller: what the plan action does with the PKI.

- ``person_certificates``: one certificate per person, kept across runs (the state file records its
  serial and expiry; a person whose kit still holds it is not even read), renewed with the same key
  ``renew_days`` before it expires (the old one stays valid until then: the person has time to import
  the new profile), replaced with a new key on rotation or when it was revoked (a comeback).
- ``revocations``: the serials the CRL must list: certificates of people who left, rotated ones; each
  stays listed until it expires (an expired certificate is refused anyway).
- ``gateway_certificates``, ``crl_text``: the gateways' certificates and the CRL, re-signed only when
  the revoked set changes or half its lifetime has passed.
- ``write_profiles``: ``<kits>/<id>/openvpn/<profile>.ovpn`` (0600), only for people whose profile's
  inputs changed (an index of digests, like the WireGuard profiles).
Kit layout: ``.client.key`` and ``.client.crt`` (hidden: the notice lists the profile only) and the profile.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field

from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_pki as pki
from ansible_collections.teleshift.toolkit.plugins.module_utils.openvpn_plan import KIT, render_profile, server_name

KEY_FILE, CERT_FILE = ".client.key", ".client.crt"
PROFILE_INDEX = ".openvpn-profiles.json"


def iso(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    try:
        return datetime.datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)
    except ValueError:
        return None


@dataclass
class Certificates:
    records: dict = field(default_factory=dict)  # id -> {"serial": hex, "not_after": iso}
    issued: list = field(default_factory=list)  # ids given a certificate this run
    renewed: list = field(default_factory=list)  # ... of them, because theirs was about to expire
    rotated: list = field(default_factory=list)  # ... of them, with a new key on request
    revoked: dict = field(default_factory=dict)  # serial hex -> {"id", "date", "not_after"} revoked now
    material: dict = field(default_factory=dict)  # id -> (key PEM, cert PEM) made or read (profiles)


def _record(cert):
    return {"serial": format(cert.serial_number, "x"), "not_after": iso(cert.not_valid_after_utc)}


def _kept(entry, now):
    """A state entry's certificate record, with its superseded certificate while that is still valid."""
    kept = {"serial": entry["serial"], "not_after": entry["not_after"]} if entry.get("serial") else {}
    old = entry.get("superseded")
    if isinstance(old, dict) and old.get("serial") and (parse_iso(old.get("not_after")) or now) > now:
        kept["superseded"] = {"serial": str(old["serial"]), "not_after": str(old.get("not_after", ""))}
    return kept


def _kit_path(root, pid, name):
    return os.path.join(root, pid, KIT, name)


def _read_kit(root, pid, name):
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import read_kit_file

    return read_kit_file(root, pid, KIT, name)


def person_certificates(ids, previous, kits_root, issuer, settings, rotate=(), revoked_serials=(), write=True,
                        now=None, trust_state=True):
    """Certificates of ``ids`` (see the module docstring). previous: the state file; revoked_serials:
    serials (hex) already revoked; trust_state=False (the state names another CA) reads every kit.
    With write=False (check mode) new certificates are made in memory only and thrown away."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    now = now or pki.utcnow()
    renew_before = now + datetime.timedelta(days=settings.renew_days)
    rotate, revoked_serials = set(rotate or ()), set(revoked_serials or ())
    known = {str(k): v for k, v in ((previous or {}).get("people") or {}).items() if isinstance(v, dict)}
    out = Certificates()
    for pid in ids:
        entry = known.get(pid) or {}
        expires = parse_iso(entry.get("not_after"))
        if (trust_state and pid not in rotate and entry.get("serial") and expires and expires > renew_before
                and entry["serial"] not in revoked_serials
                and os.path.exists(_kit_path(kits_root, pid, CERT_FILE))
                and os.path.exists(_kit_path(kits_root, pid, KEY_FILE))):
            out.records[pid] = _kept(entry, now)
            continue  # as the state file says, and the kit has it: nothing read, nothing signed
        key = cert = None
        key_text, cert_text = _read_kit(kits_root, pid, KEY_FILE), _read_kit(kits_root, pid, CERT_FILE)
        try:
            key = pki.load_key(key_text) if key_text else None
            cert = pki.load_cert(cert_text) if cert_text else None
        except (ValueError, TypeError):
            key = cert = None  # damaged: a new pair
        usable = (cert is not None and key is not None and _issued_by(cert, issuer)
                  and cert.public_key().public_numbers() == key.public_key().public_numbers()
                  and format(cert.serial_number, "x") not in revoked_serials)
        if usable and pid not in rotate and cert.not_valid_after_utc > renew_before:
            out.records[pid] = {**_kept(entry, now), **_record(cert)}
            continue
        if pid in rotate and cert is not None and usable:
            for old in (_record(cert), entry.get("superseded") or {}):
                if old.get("serial"):
                    out.revoked[old["serial"]] = {"id": pid, "date": iso(now), "not_after": old.get("not_after", "")}
        renewing = usable and pid not in rotate  # same key, new dates; the old one stays valid
        if not renewing:
            key = pki.new_key()
        cert = issuer.issue(pid, key.public_key(), settings.cert_days, now=now)
        key_pem, cert_pem = pki.key_pem(key), pki.cert_pem(cert)
        if write:
            if not renewing:
                write_kit_file(kits_root, pid, KIT, KEY_FILE, key_pem)
            write_kit_file(kits_root, pid, KIT, CERT_FILE, cert_pem)
        out.records[pid] = _record(cert)
        if renewing:  # revoked with the new one if the person leaves before it expires
            out.records[pid]["superseded"] = _record(pki.load_cert(cert_text))
        out.material[pid] = (key_pem, cert_pem)
        out.issued.append(pid)
        (out.renewed if renewing else out.rotated if pid in rotate else []).append(pid)
    return out


def _issued_by(cert, issuer):
    try:
        cert.verify_directly_issued_by(issuer.cert)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not from this CA"
        return False


def revocations(previous, plan_ids, issued, now=None):
    """The revoked serials to list from now on: those recorded, plus the certificate of everyone in
    the previous state who is no longer planned, plus ``issued`` (this run's rotations), minus those
    that expired. Returns (revoked, newly revoked ids)."""
    now = now or pki.utcnow()
    revoked = {str(k): dict(v) for k, v in ((previous or {}).get("revoked") or {}).items() if isinstance(v, dict)}
    gone = []
    for pid, entry in ((previous or {}).get("people") or {}).items():
        if str(pid) in plan_ids or not isinstance(entry, dict) or not entry.get("serial"):
            continue
        for cert in (entry, entry.get("superseded") or {}):  # a renewed person's older certificate too
            if isinstance(cert, dict) and cert.get("serial") and str(cert["serial"]) not in revoked:
                revoked[str(cert["serial"])] = {"id": str(pid), "date": iso(now),
                                                "not_after": str(cert.get("not_after", ""))}
        gone.append(str(pid))
    revoked.update(issued)
    keep = {}
    for serial, entry in revoked.items():
        expires = parse_iso(entry.get("not_after"))
        if expires is None or expires > now:
            keep[serial] = entry
    return keep, sorted(gone)


def gateway_certificates(store, issuer, gateways, settings, now=None):
    """{gateway: (cert PEM, key PEM)}: read back from the PKI directory, issued when missing, not from
    this CA, named otherwise, or within ``renew_days`` of expiry."""
    now = now or pki.utcnow()
    renew_before = now + datetime.timedelta(days=settings.renew_days)
    result = {}
    for name in sorted(gateways):
        cert_text, key_text = store.read(f"server-{name}.crt"), store.read(f"server-{name}.key")
        try:
            cert = pki.load_cert(cert_text) if cert_text else None
            key = pki.load_key(key_text) if key_text else None
        except ValueError:
            cert = key = None
        cn = server_name(name)
        if (cert is None or key is None or not _issued_by(cert, issuer) or cert.not_valid_after_utc <= renew_before
                or cert.public_key().public_numbers() != key.public_key().public_numbers()
                or cert.subject.rfc4514_string() != f"CN={cn}"):
            key = pki.new_key()
            cert = issuer.issue(cn, key.public_key(), settings.cert_days, now=now, server=True)
            store.save(f"server-{name}.key", pki.key_pem(key))
            store.save(f"server-{name}.crt", pki.cert_pem(cert))
        result[name] = (pki.cert_pem(cert), pki.key_pem(key))
    return result


def crl_text(store, issuer, revoked, settings, now=None):
    """(CRL PEM, re-signed now): the file's when it lists exactly ``revoked`` and has more than half
    its lifetime left, else a new one (saved when the store writes)."""
    now = now or pki.utcnow()
    wanted = {int(serial, 16) for serial in revoked}
    current = store.read(pki.CRL)
    if current:
        listed, next_update = pki.crl_info(current)
        if listed == wanted and next_update and next_update - now > datetime.timedelta(days=settings.crl_days / 2):
            return current, False
    dates = {int(s, 16): parse_iso(e.get("date")) or now for s, e in revoked.items()}
    text = pki.crl_pem(issuer.crl(dates, settings.crl_days, now=now))
    store.save(pki.CRL, text)
    return text, True


def _profile_digest(person, gateway, settings, ca_fp, tls_digest, record):
    text = json.dumps([person.id, gateway.name, gateway.endpoint, gateway.port, settings.profile_name, ca_fp,
                       tls_digest, record.get("serial")], separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def write_profiles(plan, settings, kits_root, ca_pem, tls_crypt, records, material=None):
    """Each person's profile (0600), rewritten only when its inputs changed. Returns the ids written."""
    from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write
    from ansible_collections.teleshift.toolkit.plugins.module_utils.kits import write_kit_file

    material = material or {}
    name = f"{settings.profile_name}.ovpn"
    index_path = os.path.join(kits_root, PROFILE_INDEX)
    try:
        with open(index_path, encoding="utf-8") as stream:
            index = json.load(stream)
        index = index if isinstance(index, dict) else {}
    except (OSError, ValueError):
        index = {}
    ca_fp = pki.fingerprint(pki.load_cert(ca_pem))
    tls_digest = pki.digest(tls_crypt)
    new_index, written = {}, []
    for pid, person in sorted(plan.people.items()):
        gateway = settings.gateways[person.gateway]
        digest = _profile_digest(person, gateway, settings, ca_fp, tls_digest, records.get(pid) or {})
        if index.get(pid) == digest and os.path.exists(_kit_path(kits_root, pid, name)):
            new_index[pid] = digest
            continue
        key_pem, cert_pem = material.get(pid) or (_read_kit(kits_root, pid, KEY_FILE),
                                                  _read_kit(kits_root, pid, CERT_FILE))
        if not key_pem or not cert_pem:
            continue  # no certificate yet (should not happen after person_certificates)
        text = render_profile(person, gateway, settings, ca_pem, cert_pem, key_pem, tls_crypt)
        if write_kit_file(kits_root, pid, KIT, name, text):
            written.append(pid)
        new_index[pid] = digest
    if new_index != index:
        atomic_write(index_path, json.dumps(new_index, sort_keys=True), mode=0o600, dir_mode=0o700)
    return written
