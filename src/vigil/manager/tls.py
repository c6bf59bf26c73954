"""Self-signed TLS material for the two listeners and the pinning fingerprint agents check."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

__all__ = ["certificate_fingerprint", "generate_self_signed", "public_key_fingerprint"]

logger = logging.getLogger(__name__)


def generate_self_signed(
    cert_path: Path, key_path: Path, hostnames: tuple[str, ...] = ("localhost",), days: int = 3650
) -> str:
    """Write a new P-256 key and self-signed certificate; return the certificate fingerprint.

    The key file is created with mode 0600 before any byte is written to it.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil-manager")])
    alt_names: list[x509.GeneralName] = []
    for host in (*hostnames, "127.0.0.1", "::1"):
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    logger.info("wrote self-signed certificate %s", cert_path)
    return certificate_fingerprint(cert_path.read_bytes())


def _load(pem_or_der: bytes) -> x509.Certificate:
    if pem_or_der.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(pem_or_der)
    return x509.load_der_x509_certificate(pem_or_der)


def certificate_fingerprint(pem_or_der: bytes) -> str:
    """Hex SHA-256 of the DER certificate: what vigil agents pin."""
    cert = _load(pem_or_der)
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def public_key_fingerprint(pem_or_der: bytes) -> str:
    """Hex SHA-256 of the DER SubjectPublicKeyInfo: what WHIDS agents pin (`server-fingerprint`)."""
    cert = _load(pem_or_der)
    der = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()
