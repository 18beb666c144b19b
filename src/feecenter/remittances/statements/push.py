"""The signed push of one incoming transfer by the platform bank (RMT-2).

The bank POSTs one JSON object and three headers; the signature is
HMAC-SHA256 with a shared secret over ``timestamp + "\\n" + nonce + "\\n" + body``
(the raw body bytes), hex encoded. ``verify_push`` checks it in constant time,
refuses a timestamp outside the window, and parses the body strictly into a
``Transfer``. Replays inside the window are the caller's to refuse: it stores
the returned nonce (and the bank reference makes a re-credit harmless anyway).

The secret comes from ``FEECENTER_BANK_PUSH_SECRET`` (at least 32 bytes).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from feecenter.clock import Clock
from feecenter.errors import AuthFailed, ConfigurationError
from feecenter.remittances.statements.common import StatementRefused, Where, to_minor
from feecenter.remittances.transfer import Transfer

SECRET_ENV = "FEECENTER_BANK_PUSH_SECRET"
WINDOW_S = 300
MAX_BODY = 16 * 1024
FIELD = "push"
_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_NONCE = re.compile(r"[A-Za-z0-9_-]{16,64}", re.ASCII)
_SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)
_AMOUNT = re.compile(r"[0-9]{1,13}(\.[0-9]{1,3})?", re.ASCII)
_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_TEXT_FIELDS = ("bank_reference", "receiving_account", "payee_account", "payer_name",
                "payer_account", "payer_bank", "memo")
_FIELDS = set(_TEXT_FIELDS) | {"amount", "currency", "value_date"}
_REQUIRED = {"bank_reference", "receiving_account", "payee_account", "payer_name", "amount",
             "currency", "value_date"}


@dataclass(frozen=True, slots=True)
class PushedTransfer:
    transfer: Transfer
    nonce: str        # the caller stores it (with the timestamp window) to refuse a replay


def secret_from_env(env: Mapping[str, str] | None = None) -> bytes:
    value = (os.environ if env is None else env).get(SECRET_ENV, "")
    if len(value.encode()) < 32:
        raise ConfigurationError(f"{SECRET_ENV} 未设置或短于 32 字节",
                                 f"{SECRET_ENV} is unset or shorter than 32 bytes", field=SECRET_ENV)
    return value.encode()


def sign(secret: bytes, timestamp: str, nonce: str, body: bytes) -> str:
    """The signature the bank sends (also what tests and a sandbox bank use)."""
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def verify_push(body: bytes, *, timestamp: str, nonce: str, signature: str, secret: bytes,
                clock: Clock, window_s: int = WINDOW_S) -> PushedTransfer:
    """Verify and parse one pushed transfer. Forged or late: AuthFailed;
    well signed but malformed body: StatementRefused naming the field."""
    if not (_TIMESTAMP.fullmatch(timestamp or "") and _NONCE.fullmatch(nonce or "")
            and _SIGNATURE.fullmatch(signature or "")):
        raise AuthFailed("MalformedSignature", "签名头格式错误（时间戳、随机串或签名）",
                         "malformed signature headers (timestamp, nonce or signature)")
    if len(body) > MAX_BODY:
        raise StatementRefused(FIELD, None, f"报文过大（上限 {MAX_BODY} 字节）",
                               f"body too large (limit {MAX_BODY} bytes)")
    expected = sign(secret, timestamp, nonce, body)
    if not hmac.compare_digest(expected, signature):
        raise AuthFailed("SignatureFailure", "签名校验失败", "signature verification failed")
    skew = abs(clock.now().timestamp() - int(timestamp))
    if skew > window_s:
        raise AuthFailed("SignatureExpire", f"时间戳超出 {window_s} 秒有效期",
                         f"timestamp outside the {window_s} s window")
    return PushedTransfer(transfer=parse_body(body), nonce=nonce)


def parse_body(body: bytes) -> Transfer:
    try:
        data = json.loads(body.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as error:
        raise StatementRefused(FIELD, None, f"报文不是合法的 UTF-8 JSON：{error}",
                               f"the body is not valid UTF-8 JSON: {error}") from None
    if not isinstance(data, dict):
        raise StatementRefused(FIELD, None, "报文必须是 JSON 对象", "the body must be a JSON object")
    unknown, missing = set(data) - _FIELDS, _REQUIRED - set(data)
    if unknown or missing:
        name = sorted(unknown or missing)[0]
        raise StatementRefused(f"{FIELD}.{name}", None, "未知字段" if unknown else "缺少必填字段",
                               "unknown field" if unknown else "required field missing")
    for name, value in data.items():
        if not isinstance(value, str) or len(value) > 256:
            raise StatementRefused(f"{FIELD}.{name}", None, "必须是不超过 256 字符的字符串",
                                   "must be a string of at most 256 characters")
    currency = data["currency"]
    if not _CURRENCY.fullmatch(currency):
        raise StatementRefused(f"{FIELD}.currency", None, "币种必须是三位大写 ISO 4217 代码",
                               "currency must be a 3-letter upper-case ISO 4217 code")
    return Transfer(**{name: data.get(name, "").strip() for name in _TEXT_FIELDS},
                    amount=_amount(data["amount"], currency), currency=currency,
                    value_date=_date(data["value_date"]), line=0)


def _no_duplicates(pairs):
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key")
    return dict(pairs)


def _amount(text: str, currency: str) -> int:
    field = f"{FIELD}.amount"
    if not _AMOUNT.fullmatch(text):
        raise StatementRefused(field, None, f"金额格式错误：{text!r}（如 \"12.30\"）",
                               f'malformed amount {text!r} (e.g. "12.30")')
    minor = to_minor(Decimal(text), currency, field, Where())
    if minor <= 0:
        raise StatementRefused(field, None, "金额必须大于零", "the amount must be greater than zero")
    return minor


def _date(text: str) -> date:
    try:
        if len(text) != 10:
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise StatementRefused(f"{FIELD}.value_date", None, "起息日格式错误（YYYY-MM-DD）",
                               "malformed value date (YYYY-MM-DD)") from None


__all__ = ["PushedTransfer", "SECRET_ENV", "WINDOW_S", "parse_body", "secret_from_env", "sign",
           "verify_push"]
