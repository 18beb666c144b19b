"""The payment-gateway port (RCH-1): what the recharge service needs of a payment
provider, and the values it gets back. Adapters live outside the domain
(``feecenter.gateways``: the WeChat Pay API v3 adapter, which also talks to the
sandbox provider of ``feecenter.sandbox``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from feecenter.errors import FeeCenterError
from feecenter.recharges.rules import CLOSED, FAILED, PAID, PENDING

PROVIDER_STATES = (PENDING, PAID, FAILED, CLOSED)


@dataclass(frozen=True)
class ProviderPayment:
    """A payment as the provider reports it (query or notification)."""

    out_trade_no: str
    state: str                      # pending | paid | failed | closed
    amount: int | None              # fen the payer paid (None: not reported)
    provider_txn_id: str | None = None
    payer: str | None = None        # the provider's payer identity (e.g. WeChat openid)
    intl_card: bool = False         # paid with an international card (RCH-6)
    reason: str | None = None       # the provider's reason for a failure (RCH-6)


@dataclass(frozen=True)
class ProviderNotification:
    """A verified, decrypted payment notification."""

    notification_id: str
    payment: ProviderPayment


REFUND_SUCCESS, REFUND_PROCESSING, REFUND_ABNORMAL, REFUND_CLOSED = (
    "SUCCESS", "PROCESSING", "ABNORMAL", "CLOSED")  # WeChat Pay's refund statuses


@dataclass(frozen=True)
class ProviderRefund:
    """A refund as the provider reports it: SUCCESS (the money reached the payer),
    PROCESSING (not yet), ABNORMAL (the payer's account is closed or frozen: it never
    arrives), CLOSED (the provider gave up)."""

    out_refund_no: str
    refund_id: str
    status: str                     # the provider's word, e.g. SUCCESS, PROCESSING
    amount: int | None = None       # fen refunded (None: not reported)


class NotificationRefused(Exception):
    """A notification that must not be acted on: ``reason`` is a short code
    (bad_signature, stale, undecryptable, other_merchant, malformed)."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class GatewayUnavailable(FeeCenterError):
    """The provider did not answer in time, or refused the call; nothing was written
    that cannot be resolved later by querying the payment."""

    code = "GatewayUnavailable"
    http_status = 503


class GatewayRefused(FeeCenterError):
    """The provider answered with an error for this call (e.g. an order already paid)."""

    code = "GatewayRefused"
    http_status = 409


class PaymentGateway(Protocol):
    channel: str

    def create_payment(self, out_trade_no: str, amount: int, description: str,
                       expires_at: datetime, payer: str | None = None) -> str:
        """Create a QR payment anyone may pay and return its code_url; with ``payer``
        (e.g. a WeChat openid) a payment only that payer may pay (RCH-4), returning
        the provider's id of it (WeChat's prepay_id)."""

    def query(self, out_trade_no: str) -> ProviderPayment:
        """The payment's state at the provider."""

    def close(self, out_trade_no: str) -> None:
        """Close an unpaid payment at the provider (raises GatewayRefused if paid)."""

    def refund(self, out_trade_no: str, out_refund_no: str, amount: int, total: int,
               reason: str) -> ProviderRefund:
        """Refund ``amount`` of a paid payment of ``total``; idempotent by
        ``out_refund_no`` (a repeat answers the first refund)."""

    def query_refund(self, out_refund_no: str) -> ProviderRefund | None:
        """The refund as the provider knows it; None: the provider does not know it
        (it was never taken, so it may be asked again with the same number)."""

    def parse_notification(self, headers: Mapping[str, str], body: bytes,
                           now: datetime) -> ProviderNotification:
        """Verify (signature, freshness, merchant) and decrypt; raises NotificationRefused."""
