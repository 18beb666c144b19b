"""Domain errors: a stable code, a message in Chinese and English, the field.

Every adapter maps these (REST: 4xx JSON, compat API: Tencent codes, CLI: a
red line and a non-zero exit). Anything else that escapes a service is a bug
and rolls the whole database transaction back.
"""

from __future__ import annotations


class FeeCenterError(Exception):
    """Base of all domain errors."""

    code = "FeeCenterError"
    http_status = 400

    def __init__(self, message_zh: str, message_en: str, field: str | None = None, **details):
        self.message_zh = message_zh
        self.message_en = message_en
        self.field = field
        self.details = details
        super().__init__(self.message)

    @property
    def message(self) -> str:
        prefix = f"[{self.field}] " if self.field else ""
        return f"{prefix}{self.message_zh} / {self.message_en}"

    def to_dict(self) -> dict:
        body = {"code": self.code, "message": self.message, "message_zh": self.message_zh,
                "message_en": self.message_en}
        if self.field:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body


class InvalidInput(FeeCenterError):
    code = "InvalidInput"


class ConfigurationError(FeeCenterError):
    """A setting of the environment cannot work; raised when the runtime opens, so
    that a server refuses to start instead of failing each request."""

    code = "ConfigurationError"
    http_status = 500


class NotFound(FeeCenterError):
    code = "NotFound"
    http_status = 404


class Conflict(FeeCenterError):
    code = "Conflict"
    http_status = 409


class IdempotencyConflict(Conflict):
    code = "IdempotencyConflict"


class InsufficientBalance(FeeCenterError):
    code = "InsufficientBalance"
    http_status = 402


class AccountInArrears(FeeCenterError):
    code = "AccountInArrears"
    http_status = 402


class PermissionDenied(FeeCenterError):
    code = "PermissionDenied"
    http_status = 403


class PurchaseRefused(FeeCenterError):
    """The buyer's account may not buy (ACC-1 real name, ACC-4 account state)."""

    code = "PurchaseRefused"
    http_status = 403


class TooManyRequests(FeeCenterError):
    """A caller went over a rate limit (public invoice verification, INV-8); adapters
    answer 429. ``retry_after_s``: when the next attempt may succeed."""

    code = "TooManyRequests"
    http_status = 429


class AuthFailed(FeeCenterError):
    """Authentication failed; ``reason`` picks the Tencent error code."""

    code = "AuthFailed"
    http_status = 401

    def __init__(self, reason: str, message_zh: str, message_en: str):
        super().__init__(message_zh, message_en, reason=reason)
        self.reason = reason


class LedgerInvariantBroken(FeeCenterError):
    """Raised when a ledger invariant would be violated: always a bug upstream."""

    code = "LedgerInvariantBroken"
    http_status = 500


def invalid(field: str, zh: str, en: str, **details) -> InvalidInput:
    return InvalidInput(zh, en, field=field, **details)


def not_found(field: str, what_zh: str, what_en: str, value) -> NotFound:
    return NotFound(f"{what_zh}不存在：{value}", f"{what_en} not found: {value}", field=field)
