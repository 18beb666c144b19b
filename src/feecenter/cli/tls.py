"""A local certificate authority and one server certificate it signs, for
serving over TLS on this machine (``feecenter demo --tls`` and the tests):
``local_tls`` writes ``ca.pem``, ``server.pem`` and ``server-key.pem``.

The server certificate names localhost, 127.0.0.1 and ::1 in its
subjectAltName. The CA's private key is never written: once the server
certificate is signed, nothing more can be signed by it, so trusting ``ca.pem``
trusts this one server certificate only. Production puts a certificate from a
public CA on a reverse proxy instead (docs/api.md).

Imported by ``demo --tls`` only when it runs (``feecenter --help`` stays light).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALID_DAYS = 365
NAMES = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
         x509.IPAddress(ipaddress.ip_address("::1"))]


@dataclass(frozen=True)
class LocalTLS:
    ca: Path    # what a client trusts
    cert: Path  # what the server presents (uvicorn's ssl_certfile)
    key: Path   # its private key (uvicorn's ssl_keyfile), readable by the owner only


def local_tls(directory: Path, *, now: datetime | None = None) -> LocalTLS:
    """The pair in ``directory``: the files already there while the server certificate
    is valid for at least a day more, else a new CA and server certificate."""
    now = now or datetime.now(timezone.utc)
    files = LocalTLS(directory / "ca.pem", directory / "server.pem", directory / "server-key.pem")
    if all(p.exists() for p in (files.ca, files.cert, files.key)):
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        if cert.not_valid_after_utc > now + timedelta(days=1):
            return files
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _ca_certificate(ca_key, now)
    files.key.touch(mode=0o600)
    files.key.chmod(0o600)
    files.key.write_bytes(server_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    files.cert.write_bytes(_server_certificate(server_key, ca, ca_key, now)
                           .public_bytes(serialization.Encoding.PEM))
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return files


def _builder(subject: str, issuer: x509.Name, public_key, now: datetime) -> x509.CertificateBuilder:
    return (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))  # a client clock a little behind
            .not_valid_after(now + timedelta(days=VALID_DAYS))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))


def _ca_certificate(key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fee Center local CA")])
    return (_builder("Fee Center local CA", name, key.public_key(), now)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))


def _server_certificate(key: ec.EllipticCurvePrivateKey, ca: x509.Certificate,
                        ca_key: ec.EllipticCurvePrivateKey, now: datetime) -> x509.Certificate:
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (_builder("localhost", ca.subject, key.public_key(), now)
            .add_extension(x509.SubjectAlternativeName(NAMES), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
