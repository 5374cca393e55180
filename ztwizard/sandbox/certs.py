"""The sandbox's own certificate authority and server certificate, so clients verify TLS with
`connection_verify=<ca.pem>` exactly as they would against a private ARM endpoint.

The CA is kept across runs (clients that trust ca.pem keep trusting the sandbox); the server key
and certificate are new on every `serve`, so a leaked server key is worth one run at most."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .store import atomic_write

VALIDITY = dt.timedelta(days=825)
SERVER_VALIDITY = dt.timedelta(days=30)
RENEW_BEFORE = dt.timedelta(days=7)


@dataclass(frozen=True)
class CertFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def files(directory: Path) -> CertFiles:
    return CertFiles(directory / "ca.pem", directory / "ca-key.pem", directory / "server.pem",
                     directory / "server-key.pem")


def ensure(directory: Path) -> CertFiles:
    """Keep the CA under `directory` while it is valid (else make a new one), and issue a fresh
    server key and certificate signed by it. Keys are written 0600; certificates 0644."""
    f = files(directory)
    ca_and_key = _load_ca(f)
    if ca_and_key is None:
        ca_and_key = _new_ca(f)
    ca, ca_key = ca_and_key
    _issue_server(f, ca, ca_key)
    return f


def _load_ca(f: CertFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None:
    try:
        ca = x509.load_pem_x509_certificate(f.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(f.ca_key.read_bytes(), password=None)
    except (OSError, ValueError, TypeError):
        return None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or ca_key.public_key() != ca.public_key():
        return None
    if ca.not_valid_after_utc - dt.datetime.now(dt.UTC) <= RENEW_BEFORE:
        return None
    return ca, ca_key


def _new_ca(f: CertFiles) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ztwizard sandbox CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + VALIDITY)
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    atomic_write(f.ca_key, ca_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                serialization.NoEncryption()), 0o600)
    atomic_write(f.ca_cert, ca.public_bytes(pem), 0o644)
    return ca, ca_key


def _issue_server(f: CertFiles, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey) -> None:
    now = dt.datetime.now(dt.UTC)
    key = ec.generate_private_key(ec.SECP256R1())
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    not_after = min(now + SERVER_VALIDITY, ca.not_valid_after_utc)
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    atomic_write(f.key, key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
                 0o600)
    atomic_write(f.cert, leaf.public_bytes(pem), 0o644)
