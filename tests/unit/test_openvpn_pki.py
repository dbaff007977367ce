"""OpenVPN PKI on the controller: the CA made once and kept private, one certificate per person kept
across runs, renewed with the same key before it expires, replaced on rotation; the CRL lists who left
and what was rotated, and `openssl verify` (another implementation) agrees; inline profiles, 0600."""
import datetime
import os
import shutil
import stat
import subprocess

import pytest

from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_kits as K
from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_pki as pki
from ansible_collections.teleshift.toolkit.plugins.module_utils import openvpn_plan as op
from ansible_collections.teleshift.toolkit.plugins.module_utils.roster import Person

BASE = {"teleshift_openvpn_pool": "10.101.0.0/24", "teleshift_vpn_internal_networks": ["10.89.251.0/24"]}


def person(pid):
    return Person(id=pid, full_name=pid, email=f"{pid}@x.example", service="dsi", needs=frozenset({"vpn"}))


@pytest.fixture
def world(tmp_path):
    s = op.load_openvpn_settings(BASE, {"gw1": {"openvpn_gateway_endpoint": "vpn.example.org"}})
    store = pki.PkiStore(tmp_path / "kits" / ".pki" / "openvpn")
    ca, key, made = store.ca("test CA", s.ca_days)
    assert made
    return {"settings": s, "store": store, "issuer": pki.Issuer(ca, key), "kits": str(tmp_path / "kits"),
            "tmp": tmp_path}


def run(world, ids, previous=None, rotate=(), now=None):
    """One plan run's certificate step: (state, certificates, revoked, newly gone)."""
    s = world["settings"]
    plan = op.plan_openvpn([person(i) for i in ids], s, previous)
    certs = K.person_certificates(sorted(plan.people), previous, world["kits"], world["issuer"], s, rotate=rotate,
                                  revoked_serials=set((previous or {}).get("revoked") or {}), now=now)
    revoked, gone = K.revocations(previous, set(plan.people), certs.revoked, now=now)
    return op.state_of(plan, certs.records, revoked, s), certs, revoked, gone


def test_the_ca_is_made_once_and_kept_private(world):
    store = world["store"]
    assert stat.S_IMODE(os.stat(store.dir).st_mode) == 0o700
    for name in (pki.CA_KEY, pki.CA_CERT):
        assert stat.S_IMODE(os.stat(store.path(name)).st_mode) == 0o600
    again, _key, made = pki.PkiStore(store.dir).ca("test CA", 3650)
    assert not made and pki.fingerprint(again) == pki.fingerprint(world["issuer"].cert)
    os.unlink(store.path(pki.CA_KEY))
    with pytest.raises(pki.PkiError, match="restore it from backup"):
        pki.PkiStore(store.dir).ca("test CA", 3650)
    os.chmod(store.dir, 0o755)  # noqa: S103 - the wider rights the store must refuse
    with pytest.raises(pki.PkiError, match="0700"):
        pki.PkiStore(store.dir, write=False)


def test_tls_crypt_key_has_openvpns_static_key_format(world):
    text = world["store"].tls_crypt()
    lines = text.strip().splitlines()
    assert lines[0] == "-----BEGIN OpenVPN Static key V1-----" and lines[-1] == "-----END OpenVPN Static key V1-----"
    assert len(lines) == 18 and all(len(line) == 32 and int(line, 16) >= 0 for line in lines[1:-1])
    assert world["store"].tls_crypt() == text  # read back, never replaced


def test_certificates_are_kept_across_runs_and_reordering(world):
    state1, certs1, _, _ = run(world, ["alice", "bob", "carol"])
    assert sorted(certs1.issued) == ["alice", "bob", "carol"]
    state2, certs2, _, _ = run(world, ["carol", "alice", "bob", "dave"], state1)
    assert certs2.issued == ["dave"]
    for pid in ("alice", "bob", "carol"):
        assert state2["people"][pid]["serial"] == state1["people"][pid]["serial"]
        assert state2["people"][pid]["address"] == state1["people"][pid]["address"]
    key = os.path.join(world["kits"], "alice", "openvpn", K.KEY_FILE)
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    os.unlink(os.path.join(world["kits"], "bob", "openvpn", K.CERT_FILE))  # a damaged kit is repaired
    _, certs3, _, _ = run(world, ["alice", "bob", "carol", "dave"], state2)
    assert certs3.issued == ["bob"]


def test_a_leaver_is_revoked_and_a_comeback_gets_a_new_key(world):
    state1, _, _, _ = run(world, ["alice", "bob"])
    bob_serial = state1["people"]["bob"]["serial"]
    bob_key = open(os.path.join(world["kits"], "bob", "openvpn", K.KEY_FILE)).read()
    state2, _, revoked, gone = run(world, ["alice"], state1)
    assert gone == ["bob"] and revoked[bob_serial]["id"] == "bob" and state2["revoked"] == revoked
    assert state2["retired"]["bob"]["address"] == state1["people"]["bob"]["address"]
    state3, certs3, revoked3, _ = run(world, ["alice", "bob"], state2)
    assert certs3.issued == ["bob"] and bob_serial in revoked3
    assert state3["people"]["bob"]["serial"] != bob_serial
    assert open(os.path.join(world["kits"], "bob", "openvpn", K.KEY_FILE)).read() != bob_key
    assert state3["people"]["bob"]["address"] == state1["people"]["bob"]["address"]


def test_rotation_replaces_the_key_and_revokes_the_old_certificate(world):
    state1, _, _, _ = run(world, ["alice", "bob"])
    old = state1["people"]["alice"]["serial"]
    state2, certs, revoked, _ = run(world, ["alice", "bob"], state1, rotate=["alice"])
    assert certs.rotated == ["alice"] and old in revoked and state2["people"]["alice"]["serial"] != old
    assert state2["people"]["bob"]["serial"] == state1["people"]["bob"]["serial"]


def test_renewal_before_expiry_keeps_the_key_and_revokes_both_when_the_person_leaves(world):
    state1, _, _, _ = run(world, ["alice"])
    key_before = open(os.path.join(world["kits"], "alice", "openvpn", K.KEY_FILE)).read()
    later = pki.utcnow() + datetime.timedelta(days=world["settings"].cert_days - 10)  # within renew_days
    state2, certs, revoked, _ = run(world, ["alice"], state1, now=later)
    assert certs.renewed == ["alice"] and not revoked
    entry = state2["people"]["alice"]
    assert entry["serial"] != state1["people"]["alice"]["serial"]
    assert entry["superseded"]["serial"] == state1["people"]["alice"]["serial"]  # still valid until it expires
    assert open(os.path.join(world["kits"], "alice", "openvpn", K.KEY_FILE)).read() == key_before
    _, _, revoked3, gone = run(world, [], state2, now=later)
    assert gone == ["alice"] and {entry["serial"], entry["superseded"]["serial"]} <= set(revoked3)
    far = later + datetime.timedelta(days=800)  # expired certificates leave the CRL
    assert K.revocations({"revoked": revoked3}, set(), {}, now=far) == ({}, [])


def openssl(*args, cwd):
    return subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.skipif(not shutil.which("openssl"), reason="no openssl command")
def test_openssl_verifies_the_certificates_and_honours_the_crl(world):
    s, store, issuer = world["settings"], world["store"], world["issuer"]
    state1, _, _, _ = run(world, ["alice", "bob"])
    state2, _, revoked, _ = run(world, ["alice"], state1)
    crl, resigned = K.crl_text(store, issuer, revoked, s)
    assert resigned and K.crl_text(store, issuer, revoked, s) == (crl, False)  # kept while it lists the same
    servers = K.gateway_certificates(store, issuer, s.gateways, s)
    tmp = world["tmp"]
    (tmp / "server.crt").write_text(servers["gw1"][0])
    for pid in ("alice", "bob"):
        shutil.copy(os.path.join(world["kits"], pid, "openvpn", K.CERT_FILE), tmp / f"{pid}.crt")
    common = ["verify", "-CAfile", store.path(pki.CA_CERT), "-crl_check", "-CRLfile", store.path(pki.CRL)]
    assert openssl(*common, "-purpose", "sslclient", "alice.crt", cwd=tmp).returncode == 0
    proc = openssl(*common, "-purpose", "sslclient", "bob.crt", cwd=tmp)
    assert proc.returncode != 0 and "revoked" in proc.stdout + proc.stderr
    assert openssl(*common, "-purpose", "sslserver", "server.crt", cwd=tmp).returncode == 0
    assert openssl(*common, "-purpose", "sslserver", "alice.crt", cwd=tmp).returncode != 0  # a person is no server
    text = openssl("x509", "-in", "server.crt", "-noout", "-subject", cwd=tmp).stdout
    assert "teleshift-openvpn-gw1" in text


def test_the_crl_is_resigned_past_half_its_life(world):
    s, store, issuer = world["settings"], world["store"], world["issuer"]
    first, _ = K.crl_text(store, issuer, {}, s)
    later = pki.utcnow() + datetime.timedelta(days=s.crl_days // 2 + 1)
    second, resigned = K.crl_text(store, issuer, {}, s, now=later)
    assert resigned and second != first and pki.crl_info(second)[1] > pki.crl_info(first)[1]


def test_profiles_are_inline_private_and_rewritten_only_when_needed(world):
    s, store = world["settings"], world["store"]
    plan = op.plan_openvpn([person("alice"), person("bob")], s)
    state1, certs, _, _ = run(world, ["alice", "bob"])
    ca = pki.cert_pem(world["issuer"].cert)
    tc = store.tls_crypt()
    written = K.write_profiles(plan, s, world["kits"], ca, tc, certs.records, certs.material)
    assert written == ["alice", "bob"]
    path = os.path.join(world["kits"], "alice", "openvpn", "teleshift-tcp.ovpn")
    text = open(path).read()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    for block in ("ca", "cert", "key", "tls-crypt"):
        assert text.count(f"<{block}>") == 1 and text.count(f"</{block}>") == 1
    assert "proto tcp-client" in text and "remote vpn.example.org 443" in text
    assert "verify-x509-name teleshift-openvpn-gw1 name" in text and "BEGIN OpenVPN Static key V1" in text
    key = open(os.path.join(world["kits"], "alice", "openvpn", K.KEY_FILE)).read()
    assert key.strip() in text
    assert K.write_profiles(plan, s, world["kits"], ca, tc, state1["people"]) == []  # nothing changed
    state2, certs2, _, _ = run(world, ["alice", "bob"], state1, rotate=["bob"])
    assert K.write_profiles(plan, s, world["kits"], ca, tc, state2["people"], certs2.material) == ["bob"]


def test_a_new_ca_reissues_every_certificate_even_when_the_state_looks_fine(world, tmp_path):
    state1, _, _, _ = run(world, ["alice", "bob"])
    other = pki.PkiStore(tmp_path / "other-pki")
    ca, key, _ = other.ca("another CA", 3650)
    world["issuer"] = pki.Issuer(ca, key)  # the PKI directory was lost: a new CA
    s = world["settings"]
    trusting = K.person_certificates(["alice", "bob"], state1, world["kits"], world["issuer"], s)
    assert trusting.issued == []  # what the fast path alone would do: hence the action's check of the CA
    fresh = K.person_certificates(["alice", "bob"], state1, world["kits"], world["issuer"], s, trust_state=False)
    assert sorted(fresh.issued) == ["alice", "bob"]
    cert = pki.load_cert(open(os.path.join(world["kits"], "alice", "openvpn", K.CERT_FILE)).read())
    cert.verify_directly_issued_by(ca)
