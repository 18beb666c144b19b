"""Reconciliation: prove every cached balance equals the sum of its postings.

Also checks that every transaction sums to zero, that every balance is inside
its bounds, and that holds agree with their escrow postings. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, func, select

from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions


@dataclass(frozen=True)
class Difference:
    kind: str  # balance_mismatch | unbalanced_transaction | out_of_bounds
    subject: str
    expected: int
    actual: int

    def to_dict(self) -> dict:
        return asdict(self)


def reconcile(conn: Connection, uin: int | Iterable[int] | None = None) -> list[Difference]:
    """Every difference, or only those of one account (``uin``) or of several."""
    uins = None if uin is None else [uin] if isinstance(uin, int) else sorted(set(uin))
    return _balance_mismatches(conn, uins) + _unbalanced(conn, uins) + _out_of_bounds(conn, uins)


def _balance_mismatches(conn: Connection, uins: list[int] | None) -> list[Difference]:
    sums = select(ledger_postings.c.account_id, func.sum(ledger_postings.c.amount).label("total"))
    if uins is not None:  # only these accounts' postings (the index on account_id), not all
        sums = sums.where(ledger_postings.c.account_id.in_(
            select(ledger_accounts.c.id).where(ledger_accounts.c.uin.in_(uins))))
    sums = sums.group_by(ledger_postings.c.account_id).subquery()
    stmt = (select(ledger_accounts.c.code, ledger_accounts.c.balance,
                   func.coalesce(sums.c.total, 0))
            .select_from(ledger_accounts.outerjoin(sums, sums.c.account_id == ledger_accounts.c.id))
            .where(ledger_accounts.c.cached.is_(True),
                   ledger_accounts.c.balance != func.coalesce(sums.c.total, 0)))
    if uins is not None:
        stmt = stmt.where(ledger_accounts.c.uin.in_(uins))
    return [Difference("balance_mismatch", code, int(total), balance)
            for code, balance, total in conn.execute(stmt)]


def _unbalanced(conn: Connection, uins: list[int] | None) -> list[Difference]:
    stmt = (select(ledger_postings.c.txn_id, func.sum(ledger_postings.c.amount))
            .group_by(ledger_postings.c.txn_id)
            .having(func.sum(ledger_postings.c.amount) != 0))
    if uins is not None:
        stmt = stmt.where(ledger_postings.c.txn_id.in_(
            select(ledger_transactions.c.id).where(ledger_transactions.c.uin.in_(uins))))
    return [Difference("unbalanced_transaction", f"txn:{txn}", 0, int(total))
            for txn, total in conn.execute(stmt)]


def _out_of_bounds(conn: Connection, uins: list[int] | None) -> list[Difference]:
    a = ledger_accounts.c
    stmt = select(a.code, a.balance, a.min_balance, a.max_balance).where(
        a.cached.is_(True),
        ((a.min_balance.is_not(None)) & (a.balance < a.min_balance))
        | ((a.max_balance.is_not(None)) & (a.balance > a.max_balance)))
    if uins is not None:
        stmt = stmt.where(a.uin.in_(uins))
    return [Difference("out_of_bounds", code, low if low is not None and bal < low else high, bal)
            for code, bal, low, high in conn.execute(stmt)]
