"""Strict input for every adapter (docs/api.md, "Strict input"): JSON bodies, ids and bounded integers.

One place decides what a well-formed request value is, so the REST API, the
compat endpoint and the CLI refuse the same things with the same message:
duplicate JSON keys, NaN/Infinity, integers given as strings or booleans,
non-ASCII digits ("١", "２"), integers beyond their column or their sense, and
text a database cannot store (NUL, lone surrogates) or no client would send.
Each refusal is an ``InvalidInput`` naming the field, in Chinese and English.
"""

from __future__ import annotations

import json
import re

from feecenter.errors import invalid

BIGINT_MAX = 2**63 - 1            # ids and counters are stored as BIGINT
MAX_BODY_BYTES = 1024 * 1024       # a request body larger than this is refused (413)
_ASCII_DIGITS = re.compile(r"^[0-9]{1,19}$", re.ASCII)
# C0 controls and DEL (PostgreSQL refuses NUL in text) and UTF-16 surrogates (a lone
# "\ud800" in JSON decodes to a str that cannot be encoded to UTF-8)
_UNSTORABLE = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")


# An email address one SMTP server can deliver to: ASCII, one address (no "," ";" "<"
# or quotes that would make a header name several recipients), a dotted domain.
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}"
                   r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$", re.ASCII)


class _Duplicate(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict[str, object] = {}
    for key, value in pairs:
        if key in seen:
            raise _Duplicate(key)
        seen[key] = value
    return seen


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def loads(body: bytes | str, field: str = "body") -> object:
    """Parse a JSON document strictly: duplicate keys, NaN and Infinity are refused."""
    try:
        return json.loads(body, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except _Duplicate as dup:
        raise invalid(dup.key, f"JSON 中重复的字段：{dup.key}",
                      f"duplicate JSON key: {dup.key}") from None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise invalid(field, "请求体不是合法的 JSON", "the body is not valid JSON") from None


def bounded_int(value: object, field: str, low: int = 0, high: int = BIGINT_MAX) -> int:
    """A JSON integer (never a string, boolean or float) within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(field, f"{field} 必须是 {low} 到 {high} 之间的整数",
                      f"{field} must be an integer from {low} to {high}")
    return value


def digits_id(value: object, field: str, low: int = 1, high: int = BIGINT_MAX) -> int:
    """An id written as ASCII digits (a JSON string, or a path segment) within [low, high]."""
    text = value.strip() if isinstance(value, str) else None
    if text is None or not _ASCII_DIGITS.match(text) or not low <= int(text) <= high:
        raise invalid(field, f"{field} 必须是由数字 0-9 组成的 {low} 到 {high} 之间的编号",
                      f"{field} must be an id of ASCII digits from {low} to {high}")
    return int(text)


def page_number(value: object, high: int = 100_000) -> int:
    """A page number from a query string, 1..high (a 5,000-digit one is refused before
    ``int`` sees it)."""
    text = value if isinstance(value, str) else None
    if text is None or not _ASCII_DIGITS.match(text) or not 1 <= int(text) <= high:
        raise invalid("page", f"页码须为 1–{high} 的整数", f"the page must be a whole number 1-{high}")
    return int(text)


def plain_text(value: object, field: str, max_len: int = 256) -> str:
    """A JSON string (never a number) of at most ``max_len`` characters, without
    control characters or lone surrogates."""
    if not isinstance(value, str) or len(value) > max_len or _UNSTORABLE.search(value):
        raise invalid(field, f"{field} 必须是不超过 {max_len} 个字符、不含控制字符的字符串",
                      f"{field} must be a string of at most {max_len} characters, "
                      "without control characters")
    return value


MAX_KEY_CHARS = 160  # with "pay:" and the UIN prefix, within the ledger's 200


def account_key(uin: int, key: object) -> str:
    """A customer's idempotency key as stored: prefixed with the account's UIN, since
    keys are the customer's own and two accounts may pick the same one. Refused
    unless 1-160 characters without control characters (``idempotency_key``)."""
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_CHARS or _UNSTORABLE.search(key):
        raise invalid("idempotency_key", f"幂等键须为 1–{MAX_KEY_CHARS} 个字符，且不含控制字符",
                      f"the idempotency key must be 1-{MAX_KEY_CHARS} characters, "
                      "without control characters")
    return f"{uin}:{key}"
