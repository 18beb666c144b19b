"""TC3-HMAC-SHA256, the Tencent Cloud API 3.0 request signature: pure functions.

Both the verifier (server) and ``sign`` (our own clients and tests of the
native API) use the same canonical-request code. ``check_scope`` and
``check_signed_headers`` hold the server's structural checks (docs/api.md, "Authentication"):
host and content-type signed, the scope's date, service and terminator.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from feecenter.errors import AuthFailed

ALGORITHM = "TC3-HMAC-SHA256"
SERVICE = "billing"             # the credential scope's service, as the Billing SDK signs
TERMINATOR = "tc3_request"
REQUIRED_HEADERS = ("content-type", "host")
NONCE_HEADER = "x-fc-nonce"     # optional, native API: a signed nonce makes a request unrepeatable
_AUTH = re.compile(r"^TC3-HMAC-SHA256 Credential=(?P<credential>[^,\s]+), ?"
                   r"SignedHeaders=(?P<headers>[^,\s]+), ?Signature=(?P<signature>[0-9a-f]{64})$")
_HEADER_NAME = re.compile(r"^[a-z0-9\-]+$")


@dataclass(frozen=True)
class ParsedAuthorization:
    secret_id: str
    date: str
    service: str
    terminator: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> ParsedAuthorization | None:
    """The Authorization header's parts, or None when it is not TC3-shaped at all."""
    match = _AUTH.match(value.strip())
    if not match or match["credential"].count("/") != 3:
        return None
    secret_id, date, service, terminator = match["credential"].split("/")
    return ParsedAuthorization(secret_id, date, service, terminator,
                               match["headers"].split(";"), match["signature"])


def scope_date(timestamp: int) -> str:
    """The credential scope's date: the UTC date of X-TC-Timestamp."""
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d")


def check_scope(parsed: ParsedAuthorization, timestamp: int) -> None:
    """Credential=SecretId/<UTC date of the timestamp>/billing/tc3_request, nothing else."""
    if parsed.terminator != TERMINATOR:
        raise AuthFailed("InvalidAuthorization", "凭证范围必须以 tc3_request 结尾",
                         f"the credential scope must end with {TERMINATOR}")
    if parsed.date != scope_date(timestamp):
        raise AuthFailed("SignatureFailure",
                         f"凭证日期 {parsed.date} 不是 X-TC-Timestamp 的 UTC 日期 {scope_date(timestamp)}",
                         f"the credential date {parsed.date} is not the UTC date "
                         f"{scope_date(timestamp)} of X-TC-Timestamp")
    if parsed.service != SERVICE:
        raise AuthFailed("SignatureFailure", f"凭证范围的服务必须为 {SERVICE}",
                         f"the credential scope's service must be {SERVICE}, not {parsed.service!r}")


def check_signed_headers(parsed: ParsedAuthorization, headers: dict[str, str]) -> None:
    """host and content-type signed; every signed header named once and sent; a nonce signed."""
    names = parsed.signed_headers
    if any(not _HEADER_NAME.match(n) for n in names) or len(set(names)) != len(names):
        raise AuthFailed("InvalidAuthorization", "SignedHeaders 格式错误（小写头名、以分号分隔、不重复）",
                         "SignedHeaders must be distinct lower-case header names separated by ;")
    required = REQUIRED_HEADERS + ((NONCE_HEADER,) if NONCE_HEADER in headers else ())
    unsigned = ", ".join(r for r in required if r not in names)
    if unsigned:
        raise AuthFailed("InvalidAuthorization", f"SignedHeaders 必须包含 {unsigned}",
                         f"SignedHeaders must include {unsigned}")
    missing = [n for n in names if n not in headers]
    if missing:
        raise AuthFailed("InvalidAuthorization", f"已签名的请求头未随请求发送：{missing[0]}",
                         f"a signed header is missing from the request: {missing[0]}")


def canonical_request(method: str, path: str, query: str, headers: dict[str, str],
                      signed_headers: list[str], body: bytes,
                      body_sha256: str | None = None) -> str:
    """``body_sha256``: the body's hash when it was streamed to disk instead of held."""
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n"
                                for name in signed_headers)
    return "\n".join([method.upper(), path or "/", query, canonical_headers,
                      ";".join(signed_headers), body_sha256 or hashlib.sha256(body).hexdigest()])


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
         body: bytes, content_type: str, timestamp: int, service: str = SERVICE,
         nonce: str | None = None) -> dict[str, str]:
    """Headers that sign a request the way the Tencent Cloud SDK does; ``path`` exactly as
    sent (percent-encoded). With ``nonce``, X-FC-Nonce is sent and signed too."""
    date = scope_date(timestamp)
    headers = {"content-type": content_type, "host": host}
    if nonce is not None:
        headers[NONCE_HEADER] = nonce
    signed = sorted(headers)
    canonical = canonical_request(method, path, query, headers, signed, body)
    sig = signature(secret_key, date, service, timestamp, canonical)
    out = {"Authorization": f"{ALGORITHM} Credential={secret_id}/{date}/{service}/{TERMINATOR}, "
                            f"SignedHeaders={';'.join(signed)}, Signature={sig}",
           "Content-Type": content_type, "Host": host, "X-TC-Timestamp": str(timestamp)}
    if nonce is not None:
        out["X-FC-Nonce"] = nonce
    return out
