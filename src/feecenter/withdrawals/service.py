"""The withdrawable amount of an account (WDR-1, WDR-7), with its parts. Read-only.

The parts come from the balances every view shows (``funds.balance_view``: cash
and gift with their frozen parts, frozen, income, unrepaid advances) and the
invoice debt (``invoices.invoiceable.invoice_debt``, INV-7); ``rules`` computes.
"""

from __future__ import annotations

from dataclasses import asdict

from sqlalchemy import Connection, func, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.clock import Clock
from feecenter.funds import service as funds
from feecenter.invoices.invoiceable import invoice_debt
from feecenter.withdrawals import rules
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals

WITHDRAWAL_STATES = ("in_progress", "failed", "paid", "returned")  # failed = needs review
UNFINISHED_STATES = ("in_progress", "failed")
LEG_STATES = ("pending", "sending", "queued", "batched", "paid", "failed", "returned")
ROUTES = ("original", "offline")
SOURCES = ("recharge", "remittance", "bank")


def parts_of(conn: Connection, clock: Clock, actor: Actor, uin: int) -> rules.WithdrawableParts:
    """WDR-1's parts for ``uin`` now; an unknown UIN raises NotFound."""
    view = funds.balance_view(conn, clock, actor, uin)
    return rules.WithdrawableParts(
        cash=view.cash, invoice_debt=invoice_debt(conn, uin), unrepaid_advances=view.advances,
        frozen=view.frozen, gift=view.gift, income=view.income, transferred_in_unspent=0)


def withdrawable(conn: Connection, clock: Clock, actor: Actor, uin: int) -> dict:
    """``{"raw", "takeable", "parts"}`` in fen: the raw value even when negative, what a
    withdrawal may take, and every part, the bracket's value as ``frozen_cash``."""
    require(actor, uin, FINANCE)
    parts = parts_of(conn, clock, actor, uin)
    raw = rules.withdrawable(parts)
    return {"raw": raw, "takeable": rules.takeable(raw),
            "parts": {**asdict(parts), "frozen_cash": rules.frozen_cash(parts)}}


def in_progress(conn: Connection, uin: int) -> list[dict]:
    """The account's withdrawals not finished (in progress or failed — needs review),
    oldest first: ``[{"id", "amount", "state", "applied_at"}]``. No permission check:
    for other domains (cancellation, arrears) deciding on the account."""
    rows = conn.execute(
        select(withdrawals.c.id, withdrawals.c.amount, withdrawals.c.state,
               withdrawals.c.applied_at)
        .where(withdrawals.c.uin == uin, withdrawals.c.state.in_(UNFINISHED_STATES))
        .order_by(withdrawals.c.id)).mappings()
    return [dict(row) for row in rows]


def owed(conn: Connection, uin: int) -> int:
    """Fen held in the account's failed legs (a failed payout keeps its money held,
    WDR-5): what an operator may set off (ARR-6). No permission check."""
    return int(conn.execute(
        select(func.coalesce(func.sum(withdrawal_legs.c.amount), 0))
        .where(withdrawal_legs.c.uin == uin, withdrawal_legs.c.state == "failed")).scalar_one())
