"""Paying withdrawal legs out online (WDR-2, WDR-5): each leg of a recharge is
refunded through the channel it came from, with the leg's own ``out_refund_no``.
Owns no table (it moves the legs of ``withdrawals.tables``).

One leg at a time, never holding a database transaction across the provider:
1. claim: a short transaction whose conditional UPDATE (pending -> sending, or a
   sending leg whose retry time came) decides which runner works the leg;
2. talk to the provider, outside any transaction: a leg already sent is first
   QUERIED (``query_refund``) — found: its status is the answer; unknown to the
   provider: refunded again with the same ``out_refund_no`` (the provider keeps
   refunds idempotent by it, so nothing is paid twice);
3. settle in a new transaction (``settling``): SUCCESS -> paid, the hold posted to
   the channel's clearing account; PROCESSING -> stays sending, asked again next
   run; ABNORMAL or CLOSED (the payer's account closed or frozen) or a refusal ->
   failed, the money held, the withdrawal "failed — needs review", notified.
A timeout (``GatewayUnavailable``) leaves the leg sending for the next run. The
settling UPDATE is conditional on ``sending``: a leg is settled once even if the
provider answers twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import Engine, or_, select, update

from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.recharges.gateway import (
    REFUND_ABNORMAL,
    REFUND_CLOSED,
    REFUND_PROCESSING,
    REFUND_SUCCESS,
    GatewayRefused,
    GatewayUnavailable,
    PaymentGateway,
    ProviderRefund,
)
from feecenter.recharges.tables import recharges
from feecenter.withdrawals import settling
from feecenter.withdrawals.tables import withdrawal_legs

_L = withdrawal_legs.c
RETRY_AFTER = timedelta(minutes=1)  # a sent leg is asked about again after this
REFUND_REASON = "余额提现 / withdrawal"
FAILED_STATUSES = {REFUND_ABNORMAL: "收款账户异常（已注销或冻结） / the payer's account is closed or "
                                    "frozen (ABNORMAL)",
                   REFUND_CLOSED: "退款已关闭 / the refund was closed by the provider (CLOSED)"}


def send_pending(engine: Engine, clock: Clock, gateways: Mapping[str, PaymentGateway], *,
                 withdrawal_id: int | None = None, limit: int = 100) -> dict:
    """Send (or ask about) every online leg that is due; returns counts by outcome:
    paid, processing, failed, unreachable (a timeout or no provider: tried again next
    run), skipped (another runner had it), duplicate (settled by another)."""
    counts = dict.fromkeys(("paid", "processing", "failed", "unreachable", "skipped",
                            "duplicate"), 0)
    for leg in _due(engine, clock, withdrawal_id, limit):
        counts[_work(engine, clock, gateways, leg)] += 1
    return counts


def _due(engine: Engine, clock: Clock, withdrawal_id: int | None, limit: int) -> list[dict]:
    now = db_time(clock.now())
    where = [_L.source == "recharge", _L.state.in_(("pending", "sending")),
             or_(_L.next_attempt_at.is_(None), _L.next_attempt_at <= now)]
    if withdrawal_id is not None:
        where.append(_L.withdrawal_id == withdrawal_id)
    stmt = (select(*withdrawal_legs.c, recharges.c.out_trade_no,
                   recharges.c.amount.label("recharge_amount"))
            .join(recharges, recharges.c.id == _L.recharge_id)
            .where(*where).order_by(_L.id).limit(limit))
    with engine.connect() as conn:
        return [dict(row) for row in conn.execute(stmt).mappings()]


def _work(engine: Engine, clock: Clock, gateways: Mapping[str, PaymentGateway],
          leg: dict) -> str:
    gateway = gateways.get(leg["channel"])
    if gateway is None:
        return "unreachable"
    if not _claim(engine, clock, leg):
        return "skipped"
    try:
        refund = _ask(gateway, leg)
    except GatewayUnavailable:
        return "unreachable"
    except GatewayRefused as refused:
        return _settle(engine, clock, leg, None, f"{refused.message_zh} / {refused.message_en}")
    return _settle(engine, clock, leg, refund, None)


def _claim(engine: Engine, clock: Clock, leg: dict) -> bool:
    """pending -> sending, or a sending leg's turn taken: the row count decides (the
    next attempt time moves on, so a concurrent runner finds nothing to claim)."""
    now = clock.now()
    same_turn = (_L.next_attempt_at.is_(None) if leg["next_attempt_at"] is None
                 else _L.next_attempt_at == leg["next_attempt_at"])
    with transaction(engine) as conn:
        return conn.execute(update(withdrawal_legs).where(
            _L.id == leg["id"], _L.state == leg["state"], same_turn)
            .values(state="sending", attempts=_L.attempts + 1,
                    next_attempt_at=db_time(now + RETRY_AFTER))).rowcount == 1


def _ask(gateway: PaymentGateway, leg: dict) -> ProviderRefund:
    """A leg sent before is queried first; refunded (again) only if the provider does
    not know it, always with the leg's own out_refund_no."""
    if leg["state"] == "sending":
        try:
            found = gateway.query_refund(leg["out_refund_no"])
        except GatewayRefused as refused:  # a query refused says nothing of the refund
            raise GatewayUnavailable(refused.message_zh, refused.message_en) from refused
        if found is not None:
            return found
    return gateway.refund(leg["out_trade_no"], leg["out_refund_no"], leg["amount"],
                          leg["recharge_amount"], REFUND_REASON)


def _settle(engine: Engine, clock: Clock, leg: dict, refund: ProviderRefund | None,
            refused: str | None) -> str:
    """Apply the provider's word to a sending leg, once."""
    status = refund.status if refund is not None else None
    refund_id = (refund.refund_id or None) if refund is not None else None
    if status == REFUND_PROCESSING or (refund is not None and status not in (
            REFUND_SUCCESS, *FAILED_STATUSES)):
        if refund_id:
            with transaction(engine) as conn:
                conn.execute(update(withdrawal_legs).where(
                    _L.id == leg["id"], _L.state == "sending").values(provider_refund_id=refund_id))
        return "processing"
    with transaction(engine) as conn:
        withdrawal = settling.lock_withdrawal(conn, leg["withdrawal_id"])
        if status == REFUND_SUCCESS:
            done = settling.mark_paid(conn, clock, leg["id"], ("sending",),
                                      settling.gateway_account(conn, clock, leg["channel"]),
                                      provider_refund_id=refund_id)
        else:
            done = settling.mark_failed(conn, clock, leg["id"], ("sending",),
                                        refused or FAILED_STATUSES[status],
                                        provider_refund_id=refund_id)
        if done is None:
            return "duplicate"
        state = settling.refresh(conn, clock, withdrawal, done["reason"])
        if done["state"] == "failed" and state == "failed":
            settling.notify_failed(conn, clock, withdrawal, done)
    return "paid" if done["state"] == "paid" else "failed"
