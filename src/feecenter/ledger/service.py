"""Ledger use cases: open accounts, transfer, hold/post/void, reverse.

All functions take an open database connection inside a transaction (the
caller's unit of work) and never commit. A failure raises and the caller's
transaction rolls back, so nothing partial is ever written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import (Connection, Integer, bindparam, case, exists, func, insert,
                        literal_column, select, true, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from feecenter.clock import Clock, db_time
from feecenter.db import sending
from feecenter.db.base import id_sequence
from feecenter.db.upsert import insert_if_absent
from feecenter.db.precompiled import Precompiled, wrap_error as _wrap
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


class AccountMeta(NamedTuple):  # a tuple: built for every leg on the hot path
    id: int
    code: str
    uin: int | None
    kind: str
    min_balance: int | None
    max_balance: int | None
    cached: bool


# json.dumps(payload, sort_keys=True, default=str), without building an encoder per call
_HASH_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def content_hash(payload: object) -> str:
    return hashlib.sha256(_HASH_ENCODER.encode(payload).encode()).hexdigest()


def _postings_hash(transfer: Transfer, ordered=None) -> str:
    """What "the same transfer" means: kind, uin, reference and the legs in account order
    (``ordered``: the postings already sorted by account).

    The repr of a tuple of str, int and None is canonical and five times cheaper
    than JSON on the single-transfer hot path."""
    legs = [(p.account_id, p.amount) for p in ordered or sorted(transfer.postings,
                                                                key=_ACCOUNT_ID)]
    text = repr((transfer.kind, transfer.uin, transfer.reference, legs))
    return hashlib.sha256(text.encode()).hexdigest()


_ACCOUNT_ID = operator.attrgetter("account_id")


# ---------------------------------------------------------------- accounts

def open_account(conn: Connection, clock: Clock, code: str, kind: str, *, uin: int | None = None,
                 min_balance: int | None = None, max_balance: int | None = None,
                 cached: bool = True) -> int:
    """Open a ledger account by its unique code, or return the existing one's id."""
    find = select(ledger_accounts.c.id).where(ledger_accounts.c.code == code)
    found = conn.execute(find).scalar()
    if found is not None:
        return found
    # Two first uses at once (two deliveries of a new selling entity): the loser's
    # insert does nothing and it reads the winner's row.
    conn.execute(insert_if_absent(conn, ledger_accounts, ["code"]).values(
        code=code, kind=kind, uin=uin, min_balance=min_balance, max_balance=max_balance,
        cached=cached, balance=0, created_at=db_time(clock.now())))
    return conn.execute(find).scalar_one()


# ---------------------------------------------------------------- statements
# The hot paths (transfer, transfer_batch) run statements built once, here
# (db.precompiled.Precompiled: compiled once, run on the driver).

_A = ledger_accounts.c
_T = ledger_transactions.c
_META_COLUMNS = (_A.id, _A.code, _A.uin, _A.kind, _A.min_balance, _A.max_balance, _A.cached)
_TXN_COLUMNS = ("idempotency_key", "request_hash", "kind", "uin", "reference", "memo",
                "reverses_txn_id", "created_at")
_POSTING_COLUMNS = ("txn_id", "account_id", "uin", "amount", "balance_after")
_ID_NAMES = tuple(f"id_{i}" for i in range(MAX_POSTINGS))
_AMOUNT_NAMES = tuple(f"amount_{i}" for i in range(MAX_POSTINGS))

_SELECT_META = select(*_META_COLUMNS).where(_A.id.in_(bindparam("ids", expanding=True)))


def _binds(table, names) -> dict:
    return {name: bindparam(name, type_=table.c[name].type) for name in names}


# SQLite: INSERT the transaction unless its idempotency key exists: RETURNING id, or no row.
_INSERT_TXN_ONCE = Precompiled(sqlite_insert(ledger_transactions)
                           .values(_binds(ledger_transactions, _TXN_COLUMNS))
                           .on_conflict_do_nothing(index_elements=[_T.idempotency_key])
                           .returning(_T.id))
_INSERT_TXN_WITH_ID = Precompiled(insert(ledger_transactions)
                              .values(_binds(ledger_transactions, ("id", *_TXN_COLUMNS))))
_INSERT_POSTING = Precompiled(insert(ledger_postings).values(_binds(ledger_postings, _POSTING_COLUMNS)))
_SET_BALANCE = Precompiled(update(ledger_accounts).where(_A.id == bindparam("b_id", type_=_A.id.type))
                       .values(balance=bindparam("b_balance", type_=_A.balance.type)))


@functools.cache  # one statement per number of postings, at most MAX_POSTINGS
def _insert_postings(count: int) -> Precompiled:
    """One INSERT of ``count`` postings: one round trip, where executemany takes several."""
    return Precompiled(insert(ledger_postings).values([
        {name: bindparam(f"{name}_{i}", type_=ledger_postings.c[name].type)
         for name in _POSTING_COLUMNS} for i in range(count)]))


@functools.cache
def _posting_binds(count: int) -> tuple[str, ...]:
    """The bind names of ``_insert_postings(count)``, row by row, in column order."""
    return tuple(f"{name}_{i}" for i in range(count) for name in _POSTING_COLUMNS)


@functools.cache  # one statement per number of accounts, at most MAX_POSTINGS
def _add_to_cached_balances(count: int) -> Precompiled:
    """Add amount_i to account id_i where cached; RETURNING metadata and the new balance."""
    ids = [bindparam(f"id_{i}", type_=_A.id.type) for i in range(count)]
    amounts = [bindparam(f"amount_{i}", type_=_A.balance.type) for i in range(count)]
    if count == 1:
        match, delta = _A.id == ids[0], amounts[0]
    else:
        match, delta = _A.id.in_(ids), case(*[(_A.id == i, a) for i, a in zip(ids, amounts)])
    return Precompiled(update(ledger_accounts).where(match, _A.cached.is_(True))
                   .values(balance=_A.balance + delta)
                   .returning(*_META_COLUMNS, _A.balance))


@functools.cache  # one statement per number of postings, at most MAX_POSTINGS
def _pg_transfer(count: int) -> Precompiled:
    """PostgreSQL: a whole transfer in one statement, so one round trip.

        WITH txn AS (INSERT INTO ledger_transactions … ON CONFLICT (idempotency_key)
                     DO NOTHING RETURNING id),
             locked AS MATERIALIZED (SELECT id FROM ledger_accounts WHERE id IN (…)
                     AND cached AND EXISTS (SELECT FROM txn) ORDER BY id FOR UPDATE),
             changed AS (UPDATE ledger_accounts SET balance = balance + CASE … END
                     FROM locked WHERE id = locked.id RETURNING id, balance),
             known AS (SELECT id, code, uin, … FROM ledger_accounts WHERE id IN (…)),
             posted AS (INSERT INTO ledger_postings SELECT txn.id, known.id, known.uin,
                     CASE … END, changed.balance FROM txn, known LEFT JOIN changed …
                     WHERE (SELECT count(*) FROM known) = count ORDER BY CASE … END)
        SELECT txn.id, known.*, changed.balance FROM txn, known LEFT JOIN changed …

    No row: the key exists, and nothing was locked or written. Otherwise one
    row per known account with its new balance (NULL if not cached); fewer
    rows than accounts: an unknown account, and no posting was written. The
    caller judges the bounds and raises, which rolls the whole transfer back.
    Rows are locked in id order (LockRows above the sort, in a materialized
    CTE), as one UPDATE per account in id order would be: concurrent transfers
    cannot deadlock. A balance changed concurrently is re-read at its newest
    version before the addition (READ COMMITTED's recheck), as in a plain
    UPDATE. Postings get their ids in the order given (ORDER BY seq).

    Bind parameters: the transaction's columns, and for each posting i its
    id_i, amount_i and seq_i (its position in the transfer).
    """
    ids = [bindparam(f"id_{i}", type_=_A.id.type) for i in range(count)]
    amounts = [bindparam(f"amount_{i}", type_=_A.balance.type) for i in range(count)]
    seqs = [bindparam(f"seq_{i}", type_=Integer) for i in range(count)]
    txn = (pg_insert(ledger_transactions).values(_binds(ledger_transactions, _TXN_COLUMNS))
           .on_conflict_do_nothing(index_elements=[_T.idempotency_key])
           .returning(_T.id).cte("txn"))
    locked = (select(_A.id).where(_A.id.in_(ids), _A.cached.is_(True), exists(select(txn.c.id)))
              .order_by(_A.id).with_for_update().cte("locked").prefix_with("MATERIALIZED"))
    changed = (update(ledger_accounts).where(_A.id == locked.c.id)
               .values(balance=_A.balance + case(*zip([_A.id == i for i in ids], amounts)))
               .returning(_A.id, _A.balance).cte("changed"))
    known = select(*_META_COLUMNS).where(_A.id.in_(ids)).cte("known")
    legs = txn.join(known, true()).outerjoin(changed, changed.c.id == known.c.id)
    posted = insert(ledger_postings).from_select(
        list(_POSTING_COLUMNS),
        select(txn.c.id, known.c.id, known.c.uin,
               case(*zip([known.c.id == i for i in ids], amounts)), changed.c.balance)
        .select_from(legs)
        .where(select(func.count()).select_from(known).scalar_subquery()
               == literal_column(str(count), Integer))
        .order_by(case(*zip([known.c.id == i for i in ids], seqs)))).cte("posted")
    return Precompiled(select(txn.c.id, *known.c, changed.c.balance).select_from(legs)
                   .add_cte(posted))


def account_meta(conn: Connection, account_ids) -> dict[int, AccountMeta]:
    """Metadata of accounts; immutable after opening, so safe to keep per call."""
    ids = sorted(set(account_ids))
    rows = conn.execute(_SELECT_META, {"ids": ids}).all()
    metas = {row.id: AccountMeta(*row) for row in rows}
    _refuse_unknown(ids, metas)
    return metas


def _refuse_unknown(account_ids, metas: dict[int, AccountMeta]) -> None:
    missing = set(account_ids) - set(metas)
    if missing:
        raise not_found("account_id", "账本账户", "ledger account", sorted(missing))


def balance_of(conn: Connection, account_id: int) -> int:
    """Balance of any account: the cached row, or the postings' sum if uncached."""
    meta = account_meta(conn, [account_id])[account_id]
    if meta.cached:
        return conn.execute(select(ledger_accounts.c.balance)
                            .where(ledger_accounts.c.id == account_id)).scalar_one()
    return int(conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
                            .where(ledger_postings.c.account_id == account_id)).scalar_one())


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
    amounts = [p.amount for p in postings]
    if not all(type(a) is int for a in amounts) or 0 in amounts:  # bool is no amount
        raise LedgerInvariantBroken("分录金额必须为非零整数", "posting amounts must be non-zero ints")
    if sum(amounts) != 0:
        raise LedgerInvariantBroken("分录合计不为零", "postings do not sum to zero")
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
    """Write one balanced transaction exactly once (by idempotency key).

    Insert the transaction unless its key exists (that is the idempotency
    check), add the amounts to the cached balances, insert the postings, and
    judge the new balances against the accounts' bounds: one statement on
    PostgreSQL, three on SQLite. Any failure raises and the caller's
    transaction rolls everything back.
    """
    _validate(spec)
    ordered = sorted(spec.postings, key=_ACCOUNT_ID)  # fixed order: no deadlocks
    request_hash = spec.request_hash or _postings_hash(spec, ordered)
    created_at = db_time(clock.now())
    if conn.dialect.name != "postgresql":
        # SQLite: one writer at a time (BEGIN IMMEDIATE), so no row locks to order.
        return _sqlite_transfer(conn, spec, request_hash, ordered, created_at)
    params = {"idempotency_key": spec.idempotency_key, "request_hash": request_hash,
              "kind": spec.kind, "uin": spec.uin, "reference": spec.reference,
              "memo": spec.memo, "reverses_txn_id": spec.reverses_txn_id,
              "created_at": created_at}
    seq = {p.account_id: i for i, p in enumerate(spec.postings)}
    for i, p in enumerate(ordered):
        params[f"id_{i}"], params[f"amount_{i}"] = p.account_id, p.amount
        params[f"seq_{i}"] = seq[p.account_id]
    rows = _pg_transfer(len(ordered)).rows(conn, params)
    if not rows:
        return _replayed(conn, spec, request_hash)
    metas = {row[1]: AccountMeta(*row[1:8]) for row in rows}
    _refuse_unknown(seq, metas)
    return TransferResult(rows[0][0], True, _judge(ordered, metas,
                                                   {row[1]: row[8] for row in rows}))


class _SQLiteTransfer(NamedTuple):
    """SQLite's three transfer statements for one number of postings, ready for the driver."""

    txn_sql: str  # binds: _TXN_COLUMNS in order
    created_at: object  # the DateTime bind processor
    balance_sql: str  # binds: flat [id_0, amount_0, id_1, …] permuted by balance_order
    balance_order: tuple[int, ...]
    postings_sql: str  # binds: _POSTING_COLUMNS row after row


_SQLITE_TRANSFERS: dict[tuple, _SQLiteTransfer] = {}


def _sqlite_statements(dialect, count: int) -> _SQLiteTransfer:
    key = (type(dialect), dialect.server_version_info, count)
    found = _SQLITE_TRANSFERS.get(key)
    if found is None:
        found = _SQLITE_TRANSFERS[key] = _build_sqlite_statements(dialect, count)
    return found


def _build_sqlite_statements(dialect, count: int) -> _SQLiteTransfer:
    txn_sql, txn_order, txn_processors = _INSERT_TXN_ONCE.positional(dialect)
    balance_sql, balance_binds, _ = _add_to_cached_balances(count).positional(dialect)
    postings_sql, postings_binds, _ = _insert_postings(count).positional(dialect)
    flat = [name for i in range(count) for name in (_ID_NAMES[i], _AMOUNT_NAMES[i])]
    if (txn_order != _TXN_COLUMNS or set(txn_processors) != {"created_at"}
            or postings_binds != _posting_binds(count) or set(balance_binds) - set(flat)):
        raise LedgerInvariantBroken("转账语句参数不符", "transfer statement binds out of order")
    return _SQLiteTransfer(txn_sql, txn_processors["created_at"], balance_sql,
                           tuple(flat.index(name) for name in balance_binds), postings_sql)


def _sqlite_transfer(conn: Connection, spec: Transfer, request_hash: str, ordered,
                     created_at) -> TransferResult:
    """SQLite's three statements, run positionally on the driver (the hottest path)."""
    count = len(ordered)
    plan = _sqlite_statements(conn.dialect, count)
    flat = [value for p in ordered for value in (p.account_id, p.amount)]
    db = Precompiled.driver(conn)
    txn_args = (spec.idempotency_key, request_hash, spec.kind, spec.uin, spec.reference,
                spec.memo, spec.reverses_txn_id, plan.created_at(created_at))
    try:
        row = db.execute(plan.txn_sql, txn_args).fetchone()
        if row is None:
            return _replayed(conn, spec, request_hash)
        txn_id = row[0]
        changed = db.execute(plan.balance_sql, [flat[i] for i in plan.balance_order]).fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrap(conn, plan.txn_sql, txn_args, exc) from exc
    metas, new_balances = {}, {}
    for row in changed:
        metas[row[0]] = AccountMeta(row[0], row[1], row[2], row[3], row[4], row[5], True)
        new_balances[row[0]] = row[7]
    if len(metas) < count:  # platform accounts (balance summed from postings) or unknown ids
        metas.update(account_meta(conn, [p.account_id for p in ordered
                                         if p.account_id not in metas]))
    balances_after = _judge(ordered, metas, new_balances)
    legs: list = []
    for p in spec.postings:  # the column order of _POSTING_COLUMNS
        legs += (txn_id, p.account_id, metas[p.account_id].uin, p.amount,
                 balances_after.get(p.account_id))
    try:
        db.execute(plan.postings_sql, legs)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrap(conn, plan.postings_sql, legs, exc) from exc
    return TransferResult(txn_id, created=True, balances_after=balances_after)


def _replayed(conn: Connection, spec: Transfer, request_hash: str) -> TransferResult:
    """The key was used before: the earlier result if for the same request, else a conflict."""
    earlier = check_idempotency(conn, spec.idempotency_key, request_hash)
    if earlier is None:
        raise LedgerInvariantBroken("幂等键冲突但找不到原交易",
                                    "idempotency key conflicted but no transaction found")
    return TransferResult(earlier, created=False)


def _judge(ordered, metas: dict[int, AccountMeta], new_balances: dict) -> dict[int, int]:
    """The cached accounts' new balances, refusing the first (in id order) out of bounds."""
    after: dict[int, int] = {}
    for posting in ordered:
        meta = metas[posting.account_id]
        if not meta.cached:
            continue
        new_balance = new_balances[meta.id]
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
    _SET_BALANCE.many(conn, [{"b_id": k, "b_balance": v} for k, v in balances.items()])
    now = db_time(clock.now())
    txn_ids = _reserve_txn_ids(conn, len(fresh))
    _INSERT_TXN_WITH_ID.many(conn, [
        {"id": txn_id, "idempotency_key": spec.idempotency_key, "request_hash": request_hash,
         "kind": spec.kind, "uin": spec.uin, "reference": spec.reference, "memo": spec.memo,
         "reverses_txn_id": spec.reverses_txn_id, "created_at": now}
        for txn_id, (spec, request_hash) in zip(txn_ids, fresh)])
    _INSERT_POSTING.many(conn, [
        {"txn_id": txn_id, "account_id": p.account_id, "uin": metas[p.account_id].uin,
         "amount": p.amount, "balance_after": after.get(p.account_id)}
        for txn_id, (spec, _), after in zip(txn_ids, fresh, per_spec_after)
        for p in spec.postings])
    return [TransferResult(txn_id, True, after) for txn_id, after in zip(txn_ids, per_spec_after)]


def _reserve_txn_ids(conn: Connection, count: int) -> list[int]:
    """Ids for ``count`` new transactions, ascending, so the inserts need no RETURNING.

    PostgreSQL: taken from the table's own sequence, safe under concurrency.
    SQLite: the rowids it would assign itself (max + 1, …): the write lock of
    BEGIN IMMEDIATE is held, so no one else inserts until the commit.
    """
    if conn.dialect.name == "sqlite":
        last = conn.execute(select(func.coalesce(func.max(_T.id), 0))).scalar_one()
        return list(range(last + 1, last + 1 + count))
    sequence = literal_column(id_sequence(ledger_transactions.name))
    return sorted(conn.execute(select(func.nextval(sequence))
                               .select_from(func.generate_series(1, count))).scalars())


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
    hold = conn.execute(select(ledger_holds.c.id).where(
        (ledger_holds.c.hold_txn_id == txn_id) | (ledger_holds.c.settle_txn_id == txn_id))).scalar()
    if hold is not None:
        raise Conflict(f"交易 {txn_id} 属于冻结 {hold}，请作废或入账该冻结，不能冲正",
                       f"transaction {txn_id} belongs to hold {hold}: void or post the hold "
                       "instead of reversing it", field="txn_id")
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
    hold_ids, _ = create_holds(conn, clock, idempotency_key, [(idempotency_key, legs, reference)],
                               kind=kind, uin=uin, memo=memo)
    return hold_ids[0]


def create_holds(conn: Connection, clock: Clock, idempotency_key: str,
                 holds: list[tuple[str, list[HoldLeg], str | None]], *, kind: str = "hold",
                 uin: int | None = None, memo: str | None = None) -> tuple[list[int], int]:
    """Several pending holds written as ONE transaction (a merged payment, say).

    ``holds`` are (hold key, legs, reference); each hold is later posted or
    voided on its own. Returns the hold ids, in order, and the transaction id.
    A repeat of the same key and content returns the first holds.
    """
    holds = [(key, [leg for leg in legs if leg.amount], ref) for key, legs, ref in holds]
    if not holds or any(not legs or any(leg.amount < 0 for leg in legs) for _, legs, _ in holds):
        raise invalid("amount", "冻结金额必须为正数", "hold amount must be positive")
    request_hash = content_hash([kind, uin, [(key, ref, [(l.source_account_id, l.escrow_account_id,
                                                          l.amount) for l in legs])
                                             for key, legs, ref in holds]])
    txn_key = f"hold:{idempotency_key}"
    earlier = check_idempotency(conn, txn_key, request_hash)
    if earlier is not None:
        ids = conn.execute(select(ledger_holds.c.id).where(ledger_holds.c.hold_txn_id == earlier)
                           .order_by(ledger_holds.c.id)).scalars().all()
        return list(ids), earlier
    postings = []
    for _, legs, _ in holds:
        for leg in legs:
            postings += [Posting(leg.source_account_id, -leg.amount),
                         Posting(leg.escrow_account_id, leg.amount)]
    result = transfer(conn, clock, Transfer(
        idempotency_key=txn_key, kind=kind, uin=uin, memo=memo, request_hash=request_hash,
        reference=holds[0][2] if len(holds) == 1 else None, postings=_merge(postings)))
    now = db_time(clock.now())
    hold_ids = []
    for key, legs, ref in holds:
        hold_id = conn.execute(insert(ledger_holds).values(
            idempotency_key=key, uin=uin, state="pending", amount=sum(l.amount for l in legs),
            hold_txn_id=result.txn_id, reference=ref, created_at=now,
        ).returning(ledger_holds.c.id)).scalar_one()
        conn.execute(insert(ledger_hold_legs), [
            {"hold_id": hold_id, "seq": i, "source_account_id": leg.source_account_id,
             "escrow_account_id": leg.escrow_account_id, "amount": leg.amount}
            for i, leg in enumerate(legs)])
        hold_ids.append(hold_id)
    return hold_ids, result.txn_id


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



# ---------------------------------------------------------------- hold batches on locked balances
# The payment fast path (orders.pay, docs/orders.md): the caller has locked the
# customer's balance rows, reserved ids and planned the money in Python; the
# ledger checks the whole money side of the payment and sends it in five
# multi-row statements.

MAX_BATCH_HOLDS = 100


class LockedAccount(NamedTuple):  # a tuple: one per customer sub-account on the hot path
    """A cached account whose row the caller has locked (``FOR UPDATE`` on
    PostgreSQL; SQLite has one writer), with the balance read under that lock."""

    meta: AccountMeta
    balance: int


@dataclass(frozen=True)
class BatchHold:
    """One hold of a batch. With ``post_to`` it is posted in full to that account
    in the same batch (a delivery that happens at once); else it stays pending,
    for post_hold or void_hold later."""

    key: str
    legs: tuple[HoldLeg, ...]
    reference: str | None = None
    post_to: int | None = None
    post_kind: str = "hold_post"
    post_memo: str | None = None


@dataclass(frozen=True)
class HoldBatch:
    """Holds written as ONE transaction (key ``hold:`` + key, as create_holds),
    an optional transfer written before them (``first``: a credit advance, say),
    and the postings of the holds posted at once."""

    key: str
    uin: int | None
    holds: tuple[BatchHold, ...]
    kind: str = "hold"
    memo: str | None = None
    first: Transfer | None = None


class BatchTxn(NamedTuple):
    txn_id: int
    balances_after: dict[int, int]  # the cached accounts it changed, right after it


@dataclass(frozen=True)
class HoldBatchResult:
    first: BatchTxn | None
    hold_txn: BatchTxn
    hold_ids: tuple[int, ...]
    posts: tuple[BatchTxn | None, ...]  # per hold: its posting, or None while pending


class Reservation:
    """Ids for new transactions and holds, taken before the batch is built so
    that no insert needs to return one (``reserve_ids``)."""

    def __init__(self, sent: sending.Sent, postgres: bool, txns: int, holds: int):
        self._sent, self._postgres, self._txns, self._holds = sent, postgres, txns, holds

    def ids(self) -> tuple[list[int], list[int]]:
        first_txn, first_hold = self._sent.rows()[0]
        if self._postgres:
            return sorted(first_txn), sorted(first_hold)
        return (list(range(first_txn + 1, first_txn + 1 + self._txns)),
                list(range(first_hold + 1, first_hold + 1 + self._holds)))


@functools.cache  # per pair of counts: a payment of n orders takes n + 2 and n
def _next_ids_statement(txns: int, holds: int, postgres: bool) -> Precompiled:
    """PostgreSQL: values of the tables' own sequences, an ARRAY of ``nextval``
    each (a fifth of the server time of aggregating over ``generate_series``).
    SQLite: the highest ids, as the ids SQLite would assign itself follow them
    (max + 1, …): BEGIN IMMEDIATE holds the write lock, so nobody inserts
    before the commit."""
    def taken(table: str, count: int):
        if not count:
            return literal_column("'{}'::bigint[]")
        return literal_column(f"ARRAY[{', '.join([f'nextval({id_sequence(table)})'] * count)}]")

    def highest(table):
        return select(func.coalesce(func.max(table.c.id), literal_column("0"))).scalar_subquery()

    if postgres:
        return Precompiled(select(taken("ledger_transactions", txns).label("txns"),
                                  taken("ledger_holds", holds).label("holds")))
    return Precompiled(select(highest(ledger_transactions), highest(ledger_holds)))


def reserve_ids(conn: Connection, *, txns: int, holds: int) -> Reservation:
    """Reserve ids for up to ``txns`` transactions and ``holds`` holds (sent; read
    with ``.ids()``). Unused PostgreSQL ids are gaps, as after any rollback. On
    SQLite they are the next ids, so no other ledger transaction or hold may be
    written between this call and the ``write_hold_batch`` that uses them. At most
    what one batch uses (MAX_BATCH_HOLDS holds, two transactions more): each pair
    of counts is a statement of its own, kept."""
    if not (0 <= holds <= MAX_BATCH_HOLDS and 0 <= txns <= MAX_BATCH_HOLDS + 2):
        raise invalid("txns", f"一次预留至多 {MAX_BATCH_HOLDS + 2} 个交易编号、{MAX_BATCH_HOLDS} 个冻结编号",
                      f"at most {MAX_BATCH_HOLDS + 2} transaction and {MAX_BATCH_HOLDS} hold ids "
                      "may be reserved at once")
    postgres = conn.dialect.name == "postgresql"
    statement = (_next_ids_statement(txns, holds, True) if postgres
                 else _next_ids_statement(0, 0, False))
    sent = sending.send(conn, statement, {}, returns=True)
    return Reservation(sent, postgres, txns, holds)


def write_hold_batch(conn: Connection, clock: Clock, batch: HoldBatch,
                     locked: dict[int, LockedAccount], others: dict[int, AccountMeta],
                     reserved: tuple[list[int], list[int]]) -> HoldBatchResult:
    """Write a batch of holds on balances the caller has locked, in five statements.

    The rows equal what ``transfer(first)``, ``create_holds`` and ``post_hold``
    of each hold posted at once would write (keys, hashes, postings, holds in
    their final state), without reading back what the caller already read.
    ``others`` are the uncached accounts posted to (revenue: no balance row),
    ``reserved`` the ids from ``reserve_ids``. Every transaction is checked
    (balanced, non-zero, an account once) and applied in order to the locked
    balances, whose bounds are judged; then the transactions are sent (a key
    seen before refuses the whole batch with IdempotencyConflict, so callers
    check their own request key first), the
    postings, the balances (guarded: a row changed since it was read refuses
    the batch), the holds and their legs. Inside ``sending.writes`` the checks on
    what the statements returned run when it ends.
    """
    holds = _batch_holds(batch)
    metas = _batch_metas(batch, holds, locked, others)
    count = 1 + (batch.first is not None) + sum(h.post_to is not None for h in holds)
    txn_ids, hold_ids = reserved[0][:count], reserved[1][:len(holds)]
    if len(txn_ids) < count or len(hold_ids) < len(holds):
        raise LedgerInvariantBroken("预留的编号不足", "too few ids reserved for the batch")
    specs = ([batch.first] if batch.first else []) + [_batch_hold_transfer(batch, holds)]
    specs += [_batch_post_transfer(batch.uin, h, hold_id)
              for h, hold_id in zip(holds, hold_ids) if h.post_to is not None]
    balances = {account_id: a.balance for account_id, a in locked.items()}
    afters = [_apply_locked(spec, metas, balances) for spec in specs]
    now = db_time(clock.now())
    _send_batch_txns(conn, list(zip(txn_ids, specs)), now)
    sending.send_rows(conn, ledger_postings, _POSTING_COLUMNS, [
        {"txn_id": txn_id, "account_id": p.account_id, "uin": metas[p.account_id].uin,
         "amount": p.amount, "balance_after": after.get(p.account_id)}
        for txn_id, spec, after in zip(txn_ids, specs, afters) for p in spec.postings])
    _send_locked_balances(conn, locked, balances)
    txns = [BatchTxn(txn_id, after) for txn_id, after in zip(txn_ids, afters)]
    first = txns.pop(0) if batch.first else None
    hold_txn, post_txns = txns[0], iter(txns[1:])
    posts = tuple(next(post_txns) if h.post_to is not None else None for h in holds)
    _send_batch_holds(conn, batch.uin, holds, hold_ids, hold_txn.txn_id, posts, now)
    return HoldBatchResult(first, hold_txn, tuple(hold_ids), posts)


def _batch_holds(batch: HoldBatch) -> list[BatchHold]:
    """The holds with their zero legs dropped; refuses an empty or negative hold."""
    if not 1 <= len(batch.holds) <= MAX_BATCH_HOLDS:
        raise invalid("holds", f"一批冻结须为 1–{MAX_BATCH_HOLDS} 笔",
                      f"a batch holds 1-{MAX_BATCH_HOLDS} holds")
    holds = []
    for hold in batch.holds:
        legs = tuple(leg for leg in hold.legs if leg.amount)
        if not legs or any(leg.amount < 0 for leg in legs):
            raise invalid("amount", "冻结金额必须为正数", "hold amount must be positive")
        holds.append(BatchHold(hold.key, legs, hold.reference, hold.post_to, hold.post_kind,
                               hold.post_memo))
    if len({h.key for h in holds}) != len(holds):
        raise invalid("holds", "同一批次中冻结键重复", "duplicate hold key in batch")
    return holds


def _batch_metas(batch: HoldBatch, holds: list[BatchHold], locked: dict[int, LockedAccount],
                 others: dict[int, AccountMeta]) -> dict[int, AccountMeta]:
    """Every account the batch posts to: locked (cached) or given as uncached."""
    accounts = {h.post_to for h in holds if h.post_to is not None}
    accounts |= {leg.source_account_id for h in holds for leg in h.legs}
    accounts |= {leg.escrow_account_id for h in holds for leg in h.legs}
    if batch.first:
        accounts |= {p.account_id for p in batch.first.postings}
    metas = {account_id: a.meta for account_id, a in locked.items()}
    for account_id in accounts - set(locked):
        meta = others.get(account_id)
        if meta is None or meta.id != account_id:
            raise not_found("account_id", "账本账户", "ledger account", account_id)
        if meta.cached:  # its balance would change without the caller's lock
            raise LedgerInvariantBroken(f"账户 {meta.code} 未加锁", f"account {meta.code} is not locked")
        metas[account_id] = meta
    return metas


def _batch_hold_transfer(batch: HoldBatch, holds: list[BatchHold]) -> Transfer:
    """The hold transaction exactly as create_holds writes it (key, hash, postings)."""
    request_hash = content_hash([batch.kind, batch.uin, [
        (h.key, h.reference, [(leg.source_account_id, leg.escrow_account_id, leg.amount)
                              for leg in h.legs]) for h in holds]])
    postings = []
    for hold in holds:
        for leg in hold.legs:
            postings += [Posting(leg.source_account_id, -leg.amount),
                         Posting(leg.escrow_account_id, leg.amount)]
    return Transfer(idempotency_key=f"hold:{batch.key}", kind=batch.kind, uin=batch.uin,
                    memo=batch.memo, request_hash=request_hash,
                    reference=holds[0].reference if len(holds) == 1 else None,
                    postings=_merge(postings))


def _batch_post_transfer(uin: int | None, hold: BatchHold, hold_id: int) -> Transfer:
    """A hold posted in full, exactly as post_hold writes it."""
    postings = []
    for leg in hold.legs:
        postings += [Posting(leg.escrow_account_id, -leg.amount),
                     Posting(hold.post_to, leg.amount)]
    return Transfer(idempotency_key=f"hold-post:{hold_id}", kind=hold.post_kind, uin=uin,
                    reference=hold.reference, memo=hold.post_memo, postings=_merge(postings))


def _apply_locked(spec: Transfer, metas: dict[int, AccountMeta],
                  balances: dict[int, int]) -> dict[int, int]:
    """Apply one transaction to the running locked balances; its cached balances after."""
    _validate(spec)
    after = {}
    for posting in spec.postings:
        meta = metas[posting.account_id]
        if not meta.cached:
            continue
        value = balances[meta.id] + posting.amount
        if not _within_bounds(meta, value):
            raise _bounds_error(meta, value)
        balances[meta.id] = after[meta.id] = value
    return after


def _send_batch_txns(conn: Connection, txns: list[tuple[int, Transfer]], now) -> None:
    sending.send_rows(conn, ledger_transactions, ("id", *_TXN_COLUMNS), [
        {"id": txn_id, "idempotency_key": spec.idempotency_key,
         "request_hash": spec.request_hash or _postings_hash(spec), "kind": spec.kind,
         "uin": spec.uin, "reference": spec.reference, "memo": spec.memo,
         "reverses_txn_id": spec.reverses_txn_id, "created_at": now} for txn_id, spec in txns],
        once_on="idempotency_key")


@functools.cache  # per number of accounts (a customer has a handful)
def _set_balances_statement(count: int) -> Precompiled:
    """Set each account's new balance where it still has the balance read under the lock."""
    ids = [bindparam(f"id_{i}", type_=_A.id.type) for i in range(count)]
    olds = [bindparam(f"old_{i}", type_=_A.balance.type) for i in range(count)]
    news = [bindparam(f"new_{i}", type_=_A.balance.type) for i in range(count)]
    match = functools.reduce(lambda a, b: a | b,
                             [(_A.id == i) & (_A.balance == o) for i, o in zip(ids, olds)])
    return Precompiled(update(ledger_accounts).where(match)
                       .values(balance=case(*[(_A.id == i, n) for i, n in zip(ids, news)])))


def _send_locked_balances(conn: Connection, locked: dict[int, LockedAccount],
                          balances: dict[int, int]) -> None:
    changed = [(account_id, locked[account_id].balance, value)
               for account_id, value in sorted(balances.items())
               if value != locked[account_id].balance]
    if not changed:
        return
    params = {}
    for i, (account_id, old, new) in enumerate(changed):
        params[f"id_{i}"], params[f"old_{i}"], params[f"new_{i}"] = account_id, old, new

    sending.send(conn, _set_balances_statement(len(changed)), params,
                 expect=sending.Expect(len(changed), _balance_changed))


def _balance_changed() -> LedgerInvariantBroken:
    return LedgerInvariantBroken("余额在加锁后被修改", "a balance changed after it was locked")


_HOLD_COLUMNS = ("id", "idempotency_key", "uin", "state", "amount", "posted_amount",
                 "hold_txn_id", "settle_txn_id", "reference", "created_at", "settled_at")
_LEG_COLUMNS = ("hold_id", "seq", "source_account_id", "escrow_account_id", "amount")


def _send_batch_holds(conn: Connection, uin: int | None, holds: list[BatchHold],
                      hold_ids: list[int], hold_txn_id: int, posts, now) -> None:
    rows = []
    for hold, hold_id, post in zip(holds, hold_ids, posts):
        amount = sum(leg.amount for leg in hold.legs)
        rows.append({"id": hold_id, "idempotency_key": hold.key, "uin": uin,
                     "state": "posted" if post else "pending", "amount": amount,
                     "posted_amount": amount if post else None, "hold_txn_id": hold_txn_id,
                     "settle_txn_id": post.txn_id if post else None,
                     "reference": hold.reference, "created_at": now,
                     "settled_at": now if post else None})
    sending.send_rows(conn, ledger_holds, _HOLD_COLUMNS, rows, once_on="idempotency_key")
    sending.send_rows(conn, ledger_hold_legs, _LEG_COLUMNS, [
        {"hold_id": hold_id, "seq": seq, "source_account_id": leg.source_account_id,
         "escrow_account_id": leg.escrow_account_id, "amount": leg.amount}
        for hold, hold_id in zip(holds, hold_ids) for seq, leg in enumerate(hold.legs)])

