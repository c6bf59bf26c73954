"""Server authentication for the agent's link to the manager.

WHIDS pins the manager by ``server-fingerprint``: the hex SHA-256 of the DER-encoded public key
(SubjectPublicKeyInfo) of a certificate the server presents. vigil enforces the pin inside the TLS
layer, not after the fact: it fetches the server's certificate once, checks the pin, then builds an
SSL context that trusts exactly that certificate. Every later connection therefore fails the
handshake, before any event is sent, if the server presents anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import ssl

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = ["PinMismatchError", "pinned_context", "spki_fingerprint", "verified_context"]


class PinMismatchError(ssl.SSLError):
    """The manager's certificate does not match the configured fingerprint."""


def spki_fingerprint(cert_der: bytes) -> str:
    """Hex SHA-256 of a certificate's DER SubjectPublicKeyInfo (WHIDS ``server-fingerprint``)."""
    cert = x509.load_der_x509_certificate(cert_der)
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(spki).hexdigest()


def fetch_certificate(host: str, port: int, timeout: float = 10.0) -> bytes:
    """The DER certificate the server presents (no verification: the caller checks the pin)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    if der is None:
        raise ssl.SSLError(f"{host}:{port} presented no certificate")
    return der


def pinned_context(host: str, port: int, fingerprint: str, timeout: float = 10.0) -> ssl.SSLContext:
    """An SSL context that accepts only the server certificate matching ``fingerprint``.

    The pin is the SHA-256 of the certificate's SPKI (WHIDS ``server-fingerprint``) or of the whole
    DER certificate (what ``vigil manager`` prints); either identifies exactly one key.
    """
    wanted = fingerprint.strip().lower().replace(":", "")
    der = fetch_certificate(host, port, timeout)
    got = spki_fingerprint(der)
    whole = hashlib.sha256(der).hexdigest()
    if not (hmac.compare_digest(got, wanted) or hmac.compare_digest(whole, wanted)):
        raise PinMismatchError(
            f"{host}:{port}: certificate fingerprint {got} does not match the pinned {wanted}"
        )
    context = ssl.create_default_context(cadata=ssl.DER_cert_to_PEM_cert(der))
    # The pin replaces name checks: a self-signed manager certificate rarely names the address
    # agents use to reach it.
    context.check_hostname = False
    return context


def verified_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The default: full certificate and host name verification against system CAs or ``ca_file``."""
    return ssl.create_default_context(cafile=ca_file)
