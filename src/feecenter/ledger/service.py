"""Ledger use cases: open accounts, transfer, hold/post/void, reverse.

All functions take an open database connection inside a transaction (the
caller's unit of work) and never commit. A failure raises and the caller's
transaction rolls back, so nothing partial is ever written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from sqlalchemy import Connection, bindparam, func, insert, select, update

from feecenter.clock import Clock, db_time
from feecenter.errors import (Conflict, IdempotencyConflict, InsufficientBalance,
                              LedgerInvariantBroken, invalid, not_found)
from feecenter.ledger.tables import (ledger_accounts, ledger_hold_legs, ledger_holds,
                                     ledger_postings, ledger_transactions)

MAX_POSTINGS = 64  # a transaction with more legs than this is a bug upstream


@dataclass(frozen=True)
class Posting:
    account_id: int
    amount: int


@dataclass(frozen=True)
class Transfer:
    """A balanced set of postings with the key that makes it happen once."""

    idempotency_key: str
    postings: tuple[Posting, ...]
    kind: str
    uin: int | None = None
    reference: str | None = None
    memo: str | None = None
    request_hash: str | None = None  # what "same request" means; default: the postings
    reverses_txn_id: int | None = None


@dataclass
class TransferResult:
    txn_id: int
    created: bool  # False: the idempotency key was seen before, nothing written
    balances_after: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AccountMeta:
    id: int
    code: str
    uin: int | None
    kind: str
    min_balance: int | None
    max_balance: int | None
    cached: bool


def content_hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _postings_hash(transfer: Transfer) -> str:
    legs = sorted((p.account_id, p.amount) for p in transfer.postings)
    return content_hash([transfer.kind, transfer.uin, transfer.reference, legs])


# ---------------------------------------------------------------- accounts

def open_account(conn: Connection, clock: Clock, code: str, kind: str, *, uin: int | None = None,
                 min_balance: int | None = None, max_balance: int | None = None,
                 cached: bool = True) -> int:
    """Open a ledger account by its unique code, or return the existing one's id."""
    existing = conn.execute(select(ledger_accounts.c.id).where(ledger_accounts.c.code == code))
    found = existing.scalar()
    if found is not None:
        return found
    return conn.execute(insert(ledger_accounts).values(
        code=code, kind=kind, uin=uin, min_balance=min_balance, max_balance=max_balance,
        cached=cached, balance=0, created_at=db_time(clock.now()),
    ).returning(ledger_accounts.c.id)).scalar_one()


def account_meta(conn: Connection, account_ids) -> dict[int, AccountMeta]:
    """Metadata of accounts; immutable after opening, so safe to keep per call."""
    ids = sorted(set(account_ids))
    rows = conn.execute(select(
        ledger_accounts.c.id, ledger_accounts.c.code, ledger_accounts.c.uin,
        ledger_accounts.c.kind, ledger_accounts.c.min_balance, ledger_accounts.c.max_balance,
        ledger_accounts.c.cached).where(ledger_accounts.c.id.in_(ids))).all()
    metas = {row.id: AccountMeta(*row) for row in rows}
    missing = set(ids) - set(metas)
    if missing:
        raise not_found("account_id", "账本账户", "ledger account", sorted(missing))
    return metas


def balance_of(conn: Connection, account_id: int) -> int:
    """Balance of any account: the cached row, or the postings' sum if uncached."""
    meta = account_meta(conn, [account_id])[account_id]
    if meta.cached:
        return conn.execute(select(ledger_accounts.c.balance)
                            .where(ledger_accounts.c.id == account_id)).scalar_one()
    return conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
                        .where(ledger_postings.c.account_id == account_id)).scalar_one()


def lock_balances(conn: Connection, account_ids) -> dict[int, int]:
    """Current cached balances, row-locked on PostgreSQL until the transaction ends."""
    stmt = (select(ledger_accounts.c.id, ledger_accounts.c.balance)
            .where(ledger_accounts.c.id.in_(sorted(set(account_ids))))
            .order_by(ledger_accounts.c.id))
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return dict(conn.execute(stmt).all())


# ---------------------------------------------------------------- transfers

def _validate(transfer: Transfer) -> None:
    postings = transfer.postings
    if not transfer.idempotency_key or len(transfer.idempotency_key) > 200:
        raise invalid("idempotency_key", "幂等键必须为 1–200 个字符",
                      "idempotency key must be 1-200 characters")
    if not 2 <= len(postings) <= MAX_POSTINGS:
        raise LedgerInvariantBroken("交易至少需要两条分录", "a transaction needs 2+ postings")
    if sum(p.amount for p in postings) != 0:
        raise LedgerInvariantBroken("分录合计不为零", "postings do not sum to zero")
    if any(p.amount == 0 or not isinstance(p.amount, int) for p in postings):
        raise LedgerInvariantBroken("分录金额必须为非零整数", "posting amounts must be non-zero ints")
    if len({p.account_id for p in postings}) != len(postings):
        raise LedgerInvariantBroken("同一账户在一笔交易中只能出现一次",
                                    "an account may appear once per transaction")


def find_transaction(conn: Connection, idempotency_key: str):
    return conn.execute(select(ledger_transactions.c.id, ledger_transactions.c.request_hash)
                        .where(ledger_transactions.c.idempotency_key == idempotency_key)).first()


def check_idempotency(conn: Connection, idempotency_key: str, request_hash: str) -> int | None:
    """The earlier transaction's id if this key was used for the same request.

    Raises IdempotencyConflict when the key was used for a different request.
    """
    row = find_transaction(conn, idempotency_key)
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise IdempotencyConflict(
            f"幂等键已用于不同的请求：{idempotency_key}",
            f"idempotency key already used for a different request: {idempotency_key}",
            field="idempotency_key")
    return row.id


def _bounds_error(meta: AccountMeta, new_balance: int) -> InsufficientBalance:
    return InsufficientBalance(
        f"账户 {meta.code} 余额不足", f"insufficient balance in {meta.code}",
        account=meta.code, balance_after=new_balance)


def _within_bounds(meta: AccountMeta, value: int) -> bool:
    return ((meta.min_balance is None or value >= meta.min_balance)
            and (meta.max_balance is None or value <= meta.max_balance))


def transfer(conn: Connection, clock: Clock, spec: Transfer) -> TransferResult:
    """Write one balanced transaction exactly once (by idempotency key)."""
    _validate(spec)
    request_hash = spec.request_hash or _postings_hash(spec)
    earlier = check_idempotency(conn, spec.idempotency_key, request_hash)
    if earlier is not None:
        return TransferResult(earlier, created=False)
    metas = account_meta(conn, [p.account_id for p in spec.postings])
    balances_after = _apply_cached(conn, metas, spec.postings)
    txn_id = conn.execute(insert(ledger_transactions).values(
        idempotency_key=spec.idempotency_key, request_hash=request_hash, kind=spec.kind,
        uin=spec.uin, reference=spec.reference, memo=spec.memo,
        reverses_txn_id=spec.reverses_txn_id, created_at=db_time(clock.now()),
    ).returning(ledger_transactions.c.id)).scalar_one()
    conn.execute(insert(ledger_postings), [
        {"txn_id": txn_id, "account_id": p.account_id, "uin": metas[p.account_id].uin,
         "amount": p.amount, "balance_after": balances_after.get(p.account_id)}
        for p in spec.postings])
    return TransferResult(txn_id, created=True, balances_after=balances_after)


def _apply_cached(conn: Connection, metas: dict[int, AccountMeta], postings) -> dict[int, int]:
    """Change cached balances atomically, refusing any that leaves its bounds."""
    after: dict[int, int] = {}
    for posting in sorted(postings, key=lambda p: p.account_id):  # fixed order: no deadlocks
        meta = metas[posting.account_id]
        if not meta.cached:
            continue
        new_balance = conn.execute(
            update(ledger_accounts).where(ledger_accounts.c.id == meta.id)
            .values(balance=ledger_accounts.c.balance + posting.amount)
            .returning(ledger_accounts.c.balance)).scalar_one()
        if not _within_bounds(meta, new_balance):
            raise _bounds_error(meta, new_balance)
        after[meta.id] = new_balance
    return after


def transfer_batch(conn: Connection, clock: Clock, specs: list[Transfer]) -> list[TransferResult]:
    """Write many transfers in a few set-based statements; all or nothing.

    Keys seen before (with the same content) are skipped and reported as not
    created. Balances are locked once, applied in order, checked against
    their bounds, and written back with one executemany.
    """
    for spec in specs:
        _validate(spec)
    hashes = [spec.request_hash or _postings_hash(spec) for spec in specs]
    if len({s.idempotency_key for s in specs}) != len(specs):
        raise invalid("idempotency_key", "同一批次中幂等键重复", "duplicate idempotency key in batch")
    seen = _existing_keys(conn, [s.idempotency_key for s in specs])
    results: list[TransferResult | None] = []
    fresh: list[tuple[Transfer, str]] = []
    for spec, request_hash in zip(specs, hashes):
        if spec.idempotency_key in seen:
            earlier_id, earlier_hash = seen[spec.idempotency_key]
            if earlier_hash != request_hash:
                raise IdempotencyConflict("幂等键已用于不同的请求", "idempotency key reused",
                                          field="idempotency_key", key=spec.idempotency_key)
            results.append(TransferResult(earlier_id, created=False))
        else:
            results.append(None)
            fresh.append((spec, request_hash))
    if fresh:
        created = _write_batch(conn, clock, fresh)
        iterator = iter(created)
        results = [r if r is not None else next(iterator) for r in results]
    return results  # type: ignore[return-value]


def _existing_keys(conn: Connection, keys: list[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), 500):
        rows = conn.execute(select(ledger_transactions.c.idempotency_key,
                                   ledger_transactions.c.id, ledger_transactions.c.request_hash)
                            .where(ledger_transactions.c.idempotency_key.in_(keys[start:start + 500])))
        found.update({row[0]: (row[1], row[2]) for row in rows})
    return found


def _write_batch(conn: Connection, clock: Clock, fresh) -> list[TransferResult]:
    account_ids = {p.account_id for spec, _ in fresh for p in spec.postings}
    metas = account_meta(conn, account_ids)
    balances = lock_balances(conn, [a for a in account_ids if metas[a].cached])
    per_spec_after: list[dict[int, int]] = []
    for spec, _ in fresh:
        after = {}
        for posting in spec.postings:
            meta = metas[posting.account_id]
            if meta.cached:
                balances[meta.id] += posting.amount
                if not _within_bounds(meta, balances[meta.id]):
                    raise _bounds_error(meta, balances[meta.id])
                after[meta.id] = balances[meta.id]
        per_spec_after.append(after)
    if balances:
        conn.execute(update(ledger_accounts).where(ledger_accounts.c.id == bindparam("b_id"))
                     .values(balance=bindparam("b_balance")),
                     [{"b_id": k, "b_balance": v} for k, v in balances.items()])
    now = db_time(clock.now())
    txn_ids = conn.execute(insert(ledger_transactions).returning(
        ledger_transactions.c.id, sort_by_parameter_order=True), [
        {"idempotency_key": spec.idempotency_key, "request_hash": request_hash,
         "kind": spec.kind, "uin": spec.uin, "reference": spec.reference, "memo": spec.memo,
         "reverses_txn_id": spec.reverses_txn_id, "created_at": now}
        for spec, request_hash in fresh]).scalars().all()
    conn.execute(insert(ledger_postings), [
        {"txn_id": txn_id, "account_id": p.account_id, "uin": metas[p.account_id].uin,
         "amount": p.amount, "balance_after": after.get(p.account_id)}
        for txn_id, (spec, _), after in zip(txn_ids, fresh, per_spec_after)
        for p in spec.postings])
    return [TransferResult(txn_id, True, after) for txn_id, after in zip(txn_ids, per_spec_after)]


# ---------------------------------------------------------------- reversal

def reverse(conn: Connection, clock: Clock, txn_id: int, idempotency_key: str,
            memo: str | None = None) -> TransferResult:
    """Undo a transaction with a new one of opposite postings (never an edit)."""
    original = conn.execute(select(ledger_transactions).where(ledger_transactions.c.id == txn_id)).first()
    if original is None:
        raise not_found("txn_id", "交易", "transaction", txn_id)
    request_hash = content_hash(["reverse", txn_id])
    earlier = check_idempotency(conn, idempotency_key, request_hash)
    if earlier is not None:
        return TransferResult(earlier, created=False)
    already = conn.execute(select(ledger_transactions.c.id)
                           .where(ledger_transactions.c.reverses_txn_id == txn_id)).scalar()
    if already is not None:
        raise Conflict(f"交易 {txn_id} 已被冲正", f"transaction {txn_id} is already reversed",
                       field="txn_id")
    legs = conn.execute(select(ledger_postings.c.account_id, ledger_postings.c.amount)
                        .where(ledger_postings.c.txn_id == txn_id)).all()
    return transfer(conn, clock, Transfer(
        idempotency_key=idempotency_key, kind="reversal", uin=original.uin,
        reference=f"txn:{txn_id}", memo=memo, request_hash=request_hash,
        postings=tuple(Posting(a, -amt) for a, amt in legs), reverses_txn_id=txn_id))


# ---------------------------------------------------------------- holds

@dataclass(frozen=True)
class HoldLeg:
    source_account_id: int
    escrow_account_id: int
    amount: int


def create_hold(conn: Connection, clock: Clock, idempotency_key: str, legs: list[HoldLeg], *,
                kind: str = "hold", uin: int | None = None, reference: str | None = None,
                memo: str | None = None) -> int:
    """Phase one: move money from sources to escrow accounts and record a pending hold."""
    legs = [leg for leg in legs if leg.amount]
    if not legs or any(leg.amount < 0 for leg in legs):
        raise invalid("amount", "冻结金额必须为正数", "hold amount must be positive")
    request_hash = content_hash([kind, uin, reference, [(l.source_account_id, l.escrow_account_id,
                                                         l.amount) for l in legs]])
    existing = conn.execute(select(ledger_holds.c.id).where(
        ledger_holds.c.idempotency_key == idempotency_key)).scalar()
    if existing is not None:
        check_idempotency(conn, f"hold:{idempotency_key}", request_hash)
        return existing
    postings = []
    for leg in legs:
        postings += [Posting(leg.source_account_id, -leg.amount),
                     Posting(leg.escrow_account_id, leg.amount)]
    result = transfer(conn, clock, Transfer(
        idempotency_key=f"hold:{idempotency_key}", kind=kind, uin=uin, reference=reference,
        memo=memo, request_hash=request_hash, postings=_merge(postings)))
    hold_id = conn.execute(insert(ledger_holds).values(
        idempotency_key=idempotency_key, uin=uin, state="pending",
        amount=sum(leg.amount for leg in legs), hold_txn_id=result.txn_id, reference=reference,
        created_at=db_time(clock.now())).returning(ledger_holds.c.id)).scalar_one()
    conn.execute(insert(ledger_hold_legs), [
        {"hold_id": hold_id, "seq": i, "source_account_id": leg.source_account_id,
         "escrow_account_id": leg.escrow_account_id, "amount": leg.amount}
        for i, leg in enumerate(legs)])
    return hold_id


def _merge(postings: list[Posting]) -> tuple[Posting, ...]:
    totals: dict[int, int] = {}
    for p in postings:
        totals[p.account_id] = totals.get(p.account_id, 0) + p.amount
    return tuple(Posting(a, amt) for a, amt in totals.items() if amt)


def hold_legs(conn: Connection, hold_id: int) -> list[HoldLeg]:
    rows = conn.execute(select(ledger_hold_legs.c.source_account_id,
                               ledger_hold_legs.c.escrow_account_id, ledger_hold_legs.c.amount)
                        .where(ledger_hold_legs.c.hold_id == hold_id)
                        .order_by(ledger_hold_legs.c.seq)).all()
    return [HoldLeg(*row) for row in rows]


def _claim_hold(conn: Connection, hold_id: int, new_state: str):
    """Move a pending hold to its final state exactly once, even under concurrency."""
    hold = conn.execute(select(ledger_holds).where(ledger_holds.c.id == hold_id)).first()
    if hold is None:
        raise not_found("hold_id", "冻结", "hold", hold_id)
    claimed = conn.execute(update(ledger_holds).where(ledger_holds.c.id == hold_id,
                                                      ledger_holds.c.state == "pending")
                           .values(state=new_state)).rowcount
    if claimed != 1:
        raise Conflict(f"冻结 {hold_id} 已结束（{hold.state}）",
                       f"hold {hold_id} is already {hold.state}", field="hold_id")
    return hold


def post_hold(conn: Connection, clock: Clock, hold_id: int, destination_account_id: int,
              amount: int | None = None, *, kind: str = "hold_post",
              memo: str | None = None) -> TransferResult:
    """Phase two: pay ``amount`` (default all) of a hold to the destination; the rest returns."""
    hold = _claim_hold(conn, hold_id, "posted")
    amount = hold.amount if amount is None else amount
    if not 0 < amount <= hold.amount:
        raise invalid("amount", "入账金额必须大于零且不超过冻结金额",
                      "posted amount must be positive and at most the held amount")
    postings, left = [], amount
    for leg in hold_legs(conn, hold_id):
        paid = min(left, leg.amount)
        left -= paid
        postings.append(Posting(leg.escrow_account_id, -leg.amount))
        if paid:
            postings.append(Posting(destination_account_id, paid))
        if leg.amount - paid:
            postings.append(Posting(leg.source_account_id, leg.amount - paid))
    result = transfer(conn, clock, Transfer(
        idempotency_key=f"hold-post:{hold_id}", kind=kind, uin=hold.uin,
        reference=hold.reference, memo=memo, postings=_merge(postings)))
    _finish_hold(conn, clock, hold_id, result.txn_id, amount)
    return result


def void_hold(conn: Connection, clock: Clock, hold_id: int, *, kind: str = "hold_void",
              memo: str | None = None) -> TransferResult:
    """Phase two, the other way: return everything held to where it came from."""
    hold = _claim_hold(conn, hold_id, "voided")
    postings = []
    for leg in hold_legs(conn, hold_id):
        postings += [Posting(leg.escrow_account_id, -leg.amount),
                     Posting(leg.source_account_id, leg.amount)]
    result = transfer(conn, clock, Transfer(
        idempotency_key=f"hold-void:{hold_id}", kind=kind, uin=hold.uin,
        reference=hold.reference, memo=memo, postings=_merge(postings)))
    _finish_hold(conn, clock, hold_id, result.txn_id, 0)
    return result


def _finish_hold(conn, clock, hold_id, txn_id, posted_amount) -> None:
    conn.execute(update(ledger_holds).where(ledger_holds.c.id == hold_id).values(
        settle_txn_id=txn_id, posted_amount=posted_amount, settled_at=db_time(clock.now())))
