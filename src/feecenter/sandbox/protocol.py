"""The WeChat Pay API v3 wire protocol, as the provider side speaks it.

- A merchant's request carries ``Authorization: WECHATPAY2-SHA256-RSA2048
  mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"``; the
  signature is RSA PKCS#1 v1.5 with SHA-256 over
  ``METHOD\\nPATH?QUERY\\nTIMESTAMP\\nNONCE\\nBODY\\n`` by the merchant's key.
- A response or notification carries ``Wechatpay-Timestamp``, ``-Nonce``,
  ``-Serial`` (the platform certificate's serial, hex), ``-Signature`` (over
  ``TIMESTAMP\\nNONCE\\nBODY\\n`` by the platform key) and
  ``-Signature-Type: WECHATPAY2-SHA256-RSA2048``.
- A notification's ``resource`` is AEAD_AES_256_GCM with the API v3 key (32
  bytes, as text), a 12-character nonce and associated data, base64 of
  ciphertext followed by the 16-byte tag.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
import uuid
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SCHEME = "WECHATPAY2-SHA256-RSA2048"
_AUTH_FIELD = re.compile(r'(\w+)="([^"]*)"')


def rsa_sign(key: rsa.RSAPrivateKey, message: str) -> str:
    return base64.b64encode(key.sign(message.encode(), padding.PKCS1v15(),
                                     hashes.SHA256())).decode()


def rsa_verify(key: rsa.RSAPublicKey, message: str, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), message.encode(),
                   padding.PKCS1v15(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def parse_authorization(header: str) -> dict[str, str] | None:
    scheme, _, rest = header.partition(" ")
    if scheme != SCHEME:
        return None
    return dict(_AUTH_FIELD.findall(rest))


def request_message(method: str, path_and_query: str, timestamp: str, nonce: str,
                    body: str) -> str:
    return f"{method}\n{path_and_query}\n{timestamp}\n{nonce}\n{body}\n"


def signed_headers(platform_key: rsa.RSAPrivateKey, serial: str, body: str,
                   timestamp: int | None = None, nonce: str | None = None) -> dict[str, str]:
    """The headers of a response or notification signed by the platform key."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16).upper()
    return {"Wechatpay-Timestamp": str(timestamp), "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": serial, "Wechatpay-Signature-Type": SCHEME,
            "Wechatpay-Signature": rsa_sign(platform_key, f"{timestamp}\n{nonce}\n{body}\n")}


def encrypt_resource(apiv3_key: str, plaintext: str, associated_data: str,
                     nonce: str | None = None) -> dict[str, str]:
    nonce = nonce or secrets.token_hex(6)  # 12 characters
    sealed = AESGCM(apiv3_key.encode()).encrypt(nonce.encode(), plaintext.encode(),
                                                associated_data.encode())
    return {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(sealed).decode(),
            "associated_data": associated_data, "nonce": nonce}


def notification_body(apiv3_key: str, transaction: dict, notification_id: str | None = None,
                      event_type: str = "TRANSACTION.SUCCESS") -> str:
    """The JSON body of a payment notification carrying ``transaction`` encrypted."""
    plain = json.dumps(transaction, ensure_ascii=False)
    return json.dumps({
        "id": notification_id or str(uuid.uuid4()),
        "create_time": datetime.now(UTC).astimezone().isoformat(timespec="seconds"),
        "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
        "resource": encrypt_resource(apiv3_key, plain, "transaction")}, ensure_ascii=False)
