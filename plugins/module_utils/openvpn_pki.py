# -*- coding: utf-8 -*-
# Copyright: teleshift contributors. GNU General Public License v3.0+
"""The OpenVPN PKI, made in Python on the controller (``cryptography``): a CA, one certificate per
gateway and per person, the CRL and the tls-crypt key. No shell call per person: 5,000 certificates take
about a second (``scripts/bench openvpn`` measures it against one ``openssl`` call per person).

Keys are ECDSA P-256 (a key pair in microseconds; RSA-2048 would take ~50 ms each), signatures SHA-256.
Certificates carry what OpenVPN's ``remote-cert-tls`` checks: key usage (digitalSignature,
keyAgreement) and the extended key usage (serverAuth for gateways, clientAuth for people).

Where the secrets live: ``PkiStore`` (a 0700 directory, 0600 files) holds the CA key, the gateways'
keys and the tls-crypt key. By default it is ``<kits root>/.pki/openvpn``: the kits root is already the
one place for secrets (outside git, 0700, checked on every run) and whoever reads it holds every
person's private key anyway, so the CA key adds no new exposure and needs no second set of
protections. The inventory's ``state/`` is committed with the roster: a key there is one ``git add``
away from the repository, so the planner refuses a PKI directory inside the inventory.
Controller-side only.
"""
from __future__ import annotations

import datetime
import hashlib
import os
import secrets
import stat

CA_CERT, CA_KEY, TLS_CRYPT, CRL = "ca.crt", "ca.key", "tls-crypt.key", "crl.pem"
CLOCK_SKEW = datetime.timedelta(hours=1)  # certificates and CRLs start an hour early (clients' clocks)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key):
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode("ascii")


def load_key(pem):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(pem.encode("ascii") if isinstance(pem, str) else pem, None)


def cert_pem(cert):
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def load_cert(pem):
    from cryptography import x509

    return x509.load_pem_x509_certificate(pem.encode("ascii") if isinstance(pem, str) else pem)


def fingerprint(cert):
    from cryptography.hazmat.primitives import hashes

    return cert.fingerprint(hashes.SHA256()).hex()


def _name(cn, org=""):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if org:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


def make_ca(cn, days, now=None, org=""):
    """(certificate, key) of a new self-signed CA that signs certificates and CRLs only."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = now or utcnow()
    key = new_key()
    name = _name(cn, org)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


class Issuer:
    """Signs certificates with one CA; the CA's extensions are computed once (5,000 certificates)."""

    def __init__(self, ca_cert, ca_key):
        from cryptography import x509

        self.cert, self.key = ca_cert, ca_key
        self._aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key())

    def issue(self, cn, public_key, days, now=None, server=False):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.x509.oid import ExtendedKeyUsageOID

        now = now or utcnow()
        usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - CLOCK_SKEW).not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(True, False, False, False, True, False, False, False, False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(self._aki, critical=False))
        if server:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def crl(self, revoked, days, now=None):
        """A CRL listing ``revoked`` ({serial int: revocation datetime}), valid ``days``. Its number
        is the signing time (seconds), so a newer CRL always has a higher number."""
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes

        now = now or utcnow()
        builder = (x509.CertificateRevocationListBuilder().issuer_name(self.cert.subject)
                   .last_update(now - CLOCK_SKEW).next_update(now + datetime.timedelta(days=days))
                   .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
                   .add_extension(self._aki, critical=False))
        for serial, when in sorted(revoked.items()):
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build())
        return builder.sign(self.key, hashes.SHA256())


def crl_pem(crl):
    from cryptography.hazmat.primitives import serialization

    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def crl_info(pem):
    """(set of revoked serials, next update) of a CRL in PEM, or (None, None) when unreadable."""
    from cryptography import x509

    try:
        crl = x509.load_pem_x509_crl(pem.encode("ascii") if isinstance(pem, str) else pem)
    except ValueError:
        return None, None
    return {r.serial_number for r in crl}, crl.next_update_utc


def tls_crypt_key():
    """A new OpenVPN static key (2048 random bits, the format of ``openvpn --genkey secret``)."""
    hexa = secrets.token_bytes(256).hex()
    lines = [hexa[i:i + 32] for i in range(0, len(hexa), 32)]
    return "\n".join(["-----BEGIN OpenVPN Static key V1-----", *lines, "-----END OpenVPN Static key V1-----"]) + "\n"


def digest(text):
    """SHA-256 of a secret file's text: what a gateway compares, never the secret itself."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class PkiError(ValueError):
    """The PKI directory cannot be used (wrong rights, damaged files)."""


class PkiStore:
    """The PKI directory (0700, files 0600). ``write=False`` (check mode) reads only: what would be made
    is made in memory and thrown away."""

    def __init__(self, directory, write=True):
        self.dir = os.fspath(directory)
        self.write = write
        if write:
            os.makedirs(self.dir, mode=0o700, exist_ok=True)
        if os.path.isdir(self.dir):
            mode = stat.S_IMODE(os.stat(self.dir).st_mode)
            if mode & 0o077:
                if not write:
                    raise PkiError(f"{self.dir} is open to other users (mode {mode:o}); it must be 0700")
                os.chmod(self.dir, 0o700)

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        try:
            with open(self.path(name), encoding="ascii") as stream:
                return stream.read()
        except FileNotFoundError:
            return None

    def save(self, name, text):
        """Write one file 0600 atomically (when writing); True when its content changed."""
        from ansible_collections.teleshift.toolkit.plugins.module_utils.atomic import atomic_write

        if self.read(name) == text:
            return False
        if self.write:
            atomic_write(self.path(name), text, mode=0o600, dir_mode=0o700, durable=True)
        return True

    def ca(self, cn, days, org=""):
        """(certificate, key, made now) of the CA: read back, or made once. A CA is never replaced
        here (every profile would have to be re-imported): renewing it is a deliberate act."""
        cert_text, key_text = self.read(CA_CERT), self.read(CA_KEY)
        if cert_text and key_text:
            try:
                return load_cert(cert_text), load_key(key_text), False
            except ValueError as exc:
                raise PkiError(f"{self.dir}: the CA certificate or key cannot be read ({exc})") from None
        if cert_text or key_text:
            raise PkiError(f"{self.dir}: {CA_KEY if cert_text else CA_CERT} is missing: restore it from "
                           "backup (a new CA would invalidate every profile)")
        cert, key = make_ca(cn, days, org=org)
        self.save(CA_KEY, key_pem(key))
        self.save(CA_CERT, cert_pem(cert))
        return cert, key, True

    def tls_crypt(self):
        text = self.read(TLS_CRYPT)
        if text and "BEGIN OpenVPN Static key V1" in text:
            return text
        text = tls_crypt_key()
        self.save(TLS_CRYPT, text)
        return text
