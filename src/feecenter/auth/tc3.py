"""TC3-HMAC-SHA256, the Tencent Cloud API 3.0 request signature: pure functions.

Both the verifier (server) and ``sign`` (our own clients and tests of the
native API) use the same canonical-request code.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone

ALGORITHM = "TC3-HMAC-SHA256"
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=(?P<secret_id>[^/]+)/(?P<date>\d{4}-\d{2}-\d{2})"
                   r"/(?P<service>[^/]+)/tc3_request, ?SignedHeaders=(?P<headers>[a-z0-9\-;]+), ?"
                   r"Signature=(?P<signature>[0-9a-f]{64})$")


@dataclass(frozen=True)
class ParsedAuthorization:
    secret_id: str
    date: str
    service: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    match = _AUTH.match(value.strip())
    if not match:
        return None
    return ParsedAuthorization(match["secret_id"], match["date"], match["service"],
                               match["headers"].split(";"), match["signature"])


def canonical_request(method: str, path: str, query: str, headers: dict[str, str],
                      signed_headers: list[str], body: bytes) -> str:
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n"
                                for name in signed_headers)
    return "\n".join([method.upper(), path or "/", query, canonical_headers,
                      ";".join(signed_headers), hashlib.sha256(body).hexdigest()])


def signature(secret_key: str, date: str, service: str, timestamp: int, canonical: str) -> str:
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join([ALGORITHM, str(timestamp), scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])

    def _hmac(key: bytes, msg: str) -> bytes:
        return hmac.new(key, msg.encode(), hashlib.sha256).digest()

    secret_date = _hmac(("TC3" + secret_key).encode(), date)
    secret_signing = _hmac(_hmac(secret_date, service), "tc3_request")
    return hmac.new(secret_signing, to_sign.encode(), hashlib.sha256).hexdigest()


def sign(secret_id: str, secret_key: str, *, method: str, host: str, path: str, query: str,
         body: bytes, content_type: str, timestamp: int, service: str) -> dict[str, str]:
    """Headers that sign a request the way the Tencent Cloud SDK does."""
    date = datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")
    headers = {"content-type": content_type, "host": host}
    signed = ["content-type", "host"]
    canonical = canonical_request(method, path, query, headers, signed, body)
    sig = signature(secret_key, date, service, timestamp, canonical)
    return {"Authorization": f"{ALGORITHM} Credential={secret_id}/{date}/{service}/tc3_request, "
                             f"SignedHeaders={';'.join(signed)}, Signature={sig}",
            "Content-Type": content_type, "Host": host, "X-TC-Timestamp": str(timestamp)}
