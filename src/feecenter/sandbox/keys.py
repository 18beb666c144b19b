"""The sandbox's keys, kept in a folder: the merchant's API key pair and serial, the
platform key with its self-signed certificate and its public key (``pub_key.pem``,
as WeChat Pay gives merchants in public-key mode, announced as ``PUB_KEY_ID_…``),
the API v3 key, the merchant and app ids. ``merchant_env`` gives the
``FEECENTER_WECHATPAY_*`` settings that point the real adapter at a sandbox
(docs/recharge.md).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

MCHID = "1900000109"
APPID = "wxfeecentersandbox"


@dataclass(frozen=True)
class SandboxKeys:
    folder: Path
    mchid: str
    appid: str
    merchant_serial: str
    apiv3_key: str
    merchant_key: rsa.RSAPrivateKey
    platform_key: rsa.RSAPrivateKey
    platform_cert: x509.Certificate

    @property
    def platform_serial(self) -> str:
        return f"{self.platform_cert.serial_number:X}"

    @property
    def public_key_id(self) -> str:
        """The id the platform's public key is announced by in public-key mode."""
        return f"PUB_KEY_ID_{self.platform_cert.serial_number % 10**28:028d}"

    @property
    def public_key_path(self) -> Path:
        return self.folder / "pub_key.pem"

    @property
    def merchant_key_path(self) -> Path:
        return self.folder / "apiclient_key.pem"

    @property
    def platform_cert_dir(self) -> Path:
        return self.folder / "platform_certs"


def load_or_create(folder: Path) -> SandboxKeys:
    """The keys in ``folder``, made there first if missing (mode 600)."""
    folder = Path(folder)
    if not (folder / "sandbox.json").exists():
        _create(folder)
    meta = json.loads((folder / "sandbox.json").read_text())
    cert_path = folder / "platform_certs" / "platform_cert.pem"
    platform_key = _private((folder / "platform_key.pem").read_bytes())
    if not (folder / "pub_key.pem").exists():  # a folder made before public-key mode
        _write(folder / "pub_key.pem", platform_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return SandboxKeys(
        folder=folder, mchid=meta["mchid"], appid=meta["appid"],
        merchant_serial=meta["merchant_serial"], apiv3_key=meta["apiv3_key"],
        merchant_key=_private((folder / "apiclient_key.pem").read_bytes()),
        platform_key=platform_key,
        platform_cert=x509.load_pem_x509_certificate(cert_path.read_bytes()))


def merchant_env(keys: SandboxKeys, base_url: str, notify_url: str,
                 public_key_mode: bool = False) -> dict[str, str]:
    """The adapter's settings for a merchant of this sandbox: with its platform
    certificate, or in public-key mode with the public key and its id instead."""
    verify = ({"FEECENTER_WECHATPAY_PUBLIC_KEY_PATH": str(keys.public_key_path),
               "FEECENTER_WECHATPAY_PUBLIC_KEY_ID": keys.public_key_id} if public_key_mode
              else {"FEECENTER_WECHATPAY_PLATFORM_CERT_DIR": str(keys.platform_cert_dir)})
    return {"FEECENTER_WECHATPAY_MCHID": keys.mchid, "FEECENTER_WECHATPAY_APPID": keys.appid,
            "FEECENTER_WECHATPAY_SERIAL_NO": keys.merchant_serial,
            "FEECENTER_WECHATPAY_PRIVATE_KEY_PATH": str(keys.merchant_key_path),
            "FEECENTER_WECHATPAY_APIV3_KEY_FILE": str(keys.folder / "apiv3.key"),
            **verify, "FEECENTER_WECHATPAY_NOTIFY_URL": notify_url,
            "FEECENTER_WECHATPAY_BASE_URL": base_url}


def _private(pem: bytes) -> rsa.RSAPrivateKey:
    return serialization.load_pem_private_key(pem, password=None)


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(data)


def _create(folder: Path) -> None:
    merchant = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    platform = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fee Center sandbox platform"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Fee Center sandbox")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(platform.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=3650))
            .sign(platform, hashes.SHA256()))
    apiv3_key = secrets.token_hex(16)  # 32 characters
    _write(folder / "apiclient_key.pem", _pem(merchant))
    _write(folder / "platform_key.pem", _pem(platform))
    _write(folder / "platform_certs" / "platform_cert.pem",
           cert.public_bytes(serialization.Encoding.PEM))
    _write(folder / "apiv3.key", apiv3_key.encode())
    _write(folder / "sandbox.json", json.dumps({
        "mchid": MCHID, "appid": APPID, "merchant_serial": secrets.token_hex(20).upper(),
        "apiv3_key": apiv3_key}).encode())
