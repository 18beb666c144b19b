"""Reconciliation: prove every cached balance equals the sum of its postings.

Also checks that every transaction sums to zero, that every balance is inside
its bounds, and that holds agree with their escrow postings. Read-only.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from functools import cache

from sqlalchemy import Connection, Select, bindparam, func, select

from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions


_UINS = bindparam("uins", expanding=True)


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
    if uin is None:
        params = {}
    else:
        params = {"uins": [uin] if isinstance(uin, int) else sorted(set(uin))}
    scoped = bool(params)
    return (
        [Difference("balance_mismatch", code, int(total), balance)
         for code, balance, total in conn.execute(_balance_mismatches(scoped), params)]
        + [Difference("unbalanced_transaction", f"txn:{txn}", 0, int(total))
           for txn, total in conn.execute(_unbalanced(scoped), params)]
        + [Difference("out_of_bounds", code, low if low is not None and bal < low else high, bal)
           for code, bal, low, high in conn.execute(_out_of_bounds(scoped), params)])


# The statements are built once (building one costs more than running it on a few
# accounts); ``scoped`` ones take the accounts' UINs as the expanding parameter "uins".

@cache
def _balance_mismatches(scoped: bool) -> Select:
    sums = select(ledger_postings.c.account_id, func.sum(ledger_postings.c.amount).label("total"))
    if scoped:  # only these accounts' postings (the index on account_id), not all
        sums = sums.where(ledger_postings.c.account_id.in_(
            select(ledger_accounts.c.id).where(ledger_accounts.c.uin.in_(_UINS))))
    sums = sums.group_by(ledger_postings.c.account_id).subquery()
    stmt = (select(ledger_accounts.c.code, ledger_accounts.c.balance,
                   func.coalesce(sums.c.total, 0))
            .select_from(ledger_accounts.outerjoin(sums, sums.c.account_id == ledger_accounts.c.id))
            .where(ledger_accounts.c.cached.is_(True),
                   ledger_accounts.c.balance != func.coalesce(sums.c.total, 0)))
    return stmt.where(ledger_accounts.c.uin.in_(_UINS)) if scoped else stmt


@cache
def _unbalanced(scoped: bool) -> Select:
    stmt = (select(ledger_postings.c.txn_id, func.sum(ledger_postings.c.amount))
            .group_by(ledger_postings.c.txn_id)
            .having(func.sum(ledger_postings.c.amount) != 0))
    if scoped:
        stmt = stmt.where(ledger_postings.c.txn_id.in_(
            select(ledger_transactions.c.id).where(ledger_transactions.c.uin.in_(_UINS))))
    return stmt


@cache
def _out_of_bounds(scoped: bool) -> Select:
    a = ledger_accounts.c
    stmt = select(a.code, a.balance, a.min_balance, a.max_balance).where(
        a.cached.is_(True),
        ((a.min_balance.is_not(None)) & (a.balance < a.min_balance))
        | ((a.max_balance.is_not(None)) & (a.balance > a.max_balance)))
    return stmt.where(a.uin.in_(_UINS)) if scoped else stmt
