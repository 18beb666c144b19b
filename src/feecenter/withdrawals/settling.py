"""Settling withdrawal legs (WDR-2..5): a leg paid (its hold posted to the platform
account the money left through), a leg failed (its money stays held: "failed — needs
review", notified), and the withdrawal's state recomputed from its legs. Used by the
online sender (``sending``) and the operators' payouts (``payouts``); owns no table
of its own (the withdrawals package's tables, docs/withdrawal.md).

Every change here runs inside the caller's transaction after
``lock_withdrawal``: the withdrawal row is locked first (PostgreSQL; SQLite has one
writer), then a leg moves by a conditional UPDATE on its state whose row count
decides, so a leg is settled exactly once however many callers (or provider
answers) race for it. Lock order: withdrawal row, then the customer's balances.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from feecenter.clock import Clock, db_time
from feecenter.errors import not_found
from feecenter.funds import service as funds
from feecenter.ledger import service as ledger
from feecenter.money import format_yuan
from feecenter.notifications.service import notify
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals

_L = withdrawal_legs.c
_W = withdrawals.c
UNDER_WAY = ("pending", "sending", "queued", "batched")
BANK_PAYOUTS = "bank_payouts"  # the platform account bank payouts leave through
FAILED_TEMPLATE = "withdrawal_failed"


def gateway_account(conn: Connection, clock: Clock, channel: str) -> int:
    """The channel's clearing account: recharges are credited from it
    (``recharges.service``), so a refund through the channel is posted back to it."""
    return funds.platform_account(conn, clock, f"gateway_{channel}")


def lock_withdrawal(conn: Connection, withdrawal_id: int) -> dict:
    stmt = select(withdrawals).where(_W.id == withdrawal_id)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise not_found("withdrawal_id", "提现", "withdrawal", withdrawal_id)
    return dict(row)


def mark_paid(conn: Connection, clock: Clock, leg_id: int, from_states: tuple[str, ...],
              destination_account_id: int, **values) -> dict | None:
    """from_states -> paid and the leg's hold posted to ``destination_account_id``
    (no customer entry: the money left when the withdrawal was applied). None: the
    leg was not in ``from_states`` (settled already), nothing written."""
    now = db_time(clock.now())
    leg = conn.execute(update(withdrawal_legs).where(_L.id == leg_id, _L.state.in_(from_states))
                       .values(state="paid", settled_at=now, next_attempt_at=None, **values)
                       .returning(*withdrawal_legs.c)).mappings().first()
    if leg is None:
        return None
    ledger.post_hold(conn, clock, leg["hold_id"], destination_account_id,
                     kind="withdrawal_payout", memo=f"提现打款 / withdrawal payout {leg['out_refund_no']}")
    return dict(leg)


def mark_failed(conn: Connection, clock: Clock, leg_id: int, from_states: tuple[str, ...],
                reason: str, **values) -> dict | None:
    """from_states -> failed with the reason; the money stays held. None: settled already."""
    leg = conn.execute(update(withdrawal_legs).where(_L.id == leg_id, _L.state.in_(from_states))
                       .values(state="failed", reason=reason[:2000], next_attempt_at=None,
                               **values)
                       .returning(*withdrawal_legs.c)).mappings().first()
    return None if leg is None else dict(leg)


def state_of(leg_states: list[str]) -> str:
    """The withdrawal's state from its legs' (superseded "rerouted" legs ignored): any
    failed -> failed; any under way -> in_progress; else returned if any leg was
    returned to cash, else paid."""
    live = [s for s in leg_states if s != "rerouted"]
    if "failed" in live:
        return "failed"
    if any(s in UNDER_WAY for s in live):
        return "in_progress"
    return "returned" if "returned" in live else "paid"


def refresh(conn: Connection, clock: Clock, withdrawal: dict, reason: str | None = None) -> str:
    """Write the withdrawal's state from its legs (the row locked by the caller); a
    withdrawal that becomes failed is notified once per failed leg set (WDR-5)."""
    states = list(conn.execute(select(_L.state).where(_L.withdrawal_id == withdrawal["id"]))
                  .scalars())
    state = state_of(states)
    finished = state in ("paid", "returned")
    values = {"state": state, "finished_at": db_time(clock.now()) if finished else None}
    if state == "failed" and reason:
        values["failure_reason"] = reason[:2000]
    conn.execute(update(withdrawals).where(_W.id == withdrawal["id"]).values(**values))
    return state


def notify_failed(conn: Connection, clock: Clock, withdrawal: dict, leg: dict) -> None:
    notify(conn, clock, withdrawal["uin"], FAILED_TEMPLATE,
           {"withdrawal_id": withdrawal["id"], "amount": format_yuan(leg["amount"]),
            "note": leg["reason"] or "-"},
           key=f"withdrawal:{withdrawal['id']}:leg:{leg['id']}:failed")
