"""Ledger use cases: open accounts, transfer, hold/post/void, reverse.

All functions take an open database connection inside a transaction (the
caller's unit of work) and never commit. A failure raises and the caller's
transaction rolls back, so nothing partial is ever written.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import NamedTuple

from sqlalchemy import (Connection, Integer, bindparam, case, exists, func, insert,
                        literal_column, select, true, update)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

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


def _postings_hash(transfer: Transfer) -> str:
    legs = sorted((p.account_id, p.amount) for p in transfer.postings)
    return content_hash([transfer.kind, transfer.uin, transfer.reference, legs])


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
    dialect_insert = sqlite_insert if conn.dialect.name == "sqlite" else pg_insert
    conn.execute(dialect_insert(ledger_accounts).values(
        code=code, kind=kind, uin=uin, min_balance=min_balance, max_balance=max_balance,
        cached=cached, balance=0, created_at=db_time(clock.now()),
    ).on_conflict_do_nothing(index_elements=[ledger_accounts.c.code]))
    return conn.execute(find).scalar_one()


# ---------------------------------------------------------------- statements
# The hot paths (transfer, transfer_batch) run statements built once, here.

class _Direct:
    """A Core statement compiled once per dialect and run on the DB-API cursor.

    SQLAlchemy's per-execution work (parameter and result processing, cursor
    and result objects, events) costs 30-100 µs a statement: more than the
    statement itself on SQLite, and a large part of a round trip on
    PostgreSQL (docs/benchmarks.md). The ledger's few hot statements skip it:
    SQLAlchemy still writes their SQL for the connection's dialect, and they
    run on the same DB-API connection inside the caller's transaction.
    Bind processors are applied as SQLAlchemy would, and driver errors are
    re-raised as SQLAlchemy's (IntegrityError, …). No expanding parameters;
    result rows are plain tuples with no type processing.
    """

    def __init__(self, statement):
        self.statement = statement
        self._by_dialect: dict = {}
        self._positional: dict = {}

    def _compiled(self, dialect):
        key = (type(dialect), dialect.paramstyle, dialect.server_version_info)
        found = self._by_dialect.get(key)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if ("POSTCOMPILE" in compiled.string or compiled.escaped_bind_names
                    or any(b.value is not None or b.callable for b in compiled.binds.values())):
                # expanding, renamed or valued parameters: conn.execute() handles those
                raise LedgerInvariantBroken("语句无法直接执行", "statement cannot run directly")
            processors = {}
            for name, bind in compiled.binds.items():
                processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            if compiled.positional:
                names = tuple(compiled.positiontup)
                arrange = lambda params: tuple([params[n] for n in names])  # noqa: E731
            else:
                arrange = None
            found = self._by_dialect[key] = (compiled.string, arrange, processors)
        return found

    def positional(self, conn: Connection) -> tuple[str, tuple[str, ...], dict]:
        """(sql, bind names in order, processors) for a positional dialect (SQLite):
        the caller passes DB-ready arguments in that order straight to the driver."""
        found = self._positional.get(type(conn.dialect))
        if found is None:
            compiled = self.statement.compile(dialect=conn.dialect)
            sql, arrange, processors = self._compiled(conn.dialect)
            if not compiled.positional:
                raise LedgerInvariantBroken("语句不是位置参数形式", "statement is not positional")
            found = self._positional[type(conn.dialect)] = (sql, tuple(compiled.positiontup),
                                                            processors)
        return found

    @staticmethod
    def driver(conn: Connection):
        if not conn.in_transaction():
            conn.begin()  # what autobegin would do on conn.execute()
        return conn.connection.dbapi_connection

    @staticmethod
    def _args(arrange, processors, params: list[dict]) -> list:
        if processors:
            done: dict = {}  # a batch repeats values (one created_at): process each once
            processed = []
            for row in params:
                row = dict(row)
                for name, processor in processors.items():
                    if name in row:
                        value = row[name]
                        try:
                            row[name] = done[name, value]
                        except KeyError:
                            row[name] = done[name, value] = processor(value)
                        except TypeError:  # unhashable: no memo
                            row[name] = processor(value)
                processed.append(row)
            params = processed
        return params if arrange is None else [arrange(row) for row in params]

    def rows(self, conn: Connection, params: dict) -> list[tuple]:
        sql, arrange, processors = self._compiled(conn.dialect)
        if processors:
            params = dict(params)
            for name, processor in processors.items():
                if name in params:
                    params[name] = processor(params[name])
        args = params if arrange is None else arrange(params)
        cursor = self.driver(conn).cursor()
        try:
            cursor.execute(sql, args)
            return cursor.fetchall() if cursor.description else []
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrap(conn, sql, args, exc) from exc
        finally:
            cursor.close()

    def many(self, conn: Connection, params: list[dict]) -> None:
        if not params:
            return
        sql, arrange, processors = self._compiled(conn.dialect)
        args = self._args(arrange, processors, params)
        cursor = self.driver(conn).cursor()
        try:
            cursor.executemany(sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise _wrap(conn, sql, args, exc) from exc
        finally:
            cursor.close()


def _wrap(conn: Connection, sql: str, args, exc: Exception) -> Exception:
    return DBAPIError.instance(sql, args, exc, conn.dialect.loaded_dbapi.Error,
                               dialect=conn.dialect)


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
_INSERT_TXN_ONCE = _Direct(sqlite_insert(ledger_transactions)
                           .values(_binds(ledger_transactions, _TXN_COLUMNS))
                           .on_conflict_do_nothing(index_elements=[_T.idempotency_key])
                           .returning(_T.id))
_INSERT_TXN_WITH_ID = _Direct(insert(ledger_transactions)
                              .values(_binds(ledger_transactions, ("id", *_TXN_COLUMNS))))
_INSERT_POSTING = _Direct(insert(ledger_postings).values(_binds(ledger_postings, _POSTING_COLUMNS)))
_SET_BALANCE = _Direct(update(ledger_accounts).where(_A.id == bindparam("b_id", type_=_A.id.type))
                       .values(balance=bindparam("b_balance", type_=_A.balance.type)))


@functools.cache  # one statement per number of postings, at most MAX_POSTINGS
def _insert_postings(count: int) -> _Direct:
    """One INSERT of ``count`` postings: one round trip, where executemany takes several."""
    return _Direct(insert(ledger_postings).values([
        {name: bindparam(f"{name}_{i}", type_=ledger_postings.c[name].type)
         for name in _POSTING_COLUMNS} for i in range(count)]))


@functools.cache
def _posting_binds(count: int) -> tuple[str, ...]:
    """The bind names of ``_insert_postings(count)``, row by row, in column order."""
    return tuple(f"{name}_{i}" for i in range(count) for name in _POSTING_COLUMNS)


@functools.cache  # one statement per number of accounts, at most MAX_POSTINGS
def _add_to_cached_balances(count: int) -> _Direct:
    """Add amount_i to account id_i where cached; RETURNING metadata and the new balance."""
    ids = [bindparam(f"id_{i}", type_=_A.id.type) for i in range(count)]
    amounts = [bindparam(f"amount_{i}", type_=_A.balance.type) for i in range(count)]
    if count == 1:
        match, delta = _A.id == ids[0], amounts[0]
    else:
        match, delta = _A.id.in_(ids), case(*[(_A.id == i, a) for i, a in zip(ids, amounts)])
    return _Direct(update(ledger_accounts).where(match, _A.cached.is_(True))
                   .values(balance=_A.balance + delta)
                   .returning(*_META_COLUMNS, _A.balance))


@functools.cache  # one statement per number of postings, at most MAX_POSTINGS
def _pg_transfer(count: int) -> _Direct:
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
    return _Direct(select(txn.c.id, *known.c, changed.c.balance).select_from(legs)
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
    request_hash = spec.request_hash or _postings_hash(spec)
    ordered = sorted(spec.postings, key=lambda p: p.account_id)  # fixed order: no deadlocks
    params = {"idempotency_key": spec.idempotency_key, "request_hash": request_hash,
              "kind": spec.kind, "uin": spec.uin, "reference": spec.reference,
              "memo": spec.memo, "reverses_txn_id": spec.reverses_txn_id,
              "created_at": db_time(clock.now())}
    if conn.dialect.name == "postgresql":
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
    # SQLite: one writer at a time (BEGIN IMMEDIATE), so no row locks to order.
    return _sqlite_transfer(conn, spec, request_hash, ordered, params)


def _sqlite_transfer(conn: Connection, spec: Transfer, request_hash: str, ordered,
                     params: dict) -> TransferResult:
    """SQLite's three statements, run positionally on the driver (the hottest path)."""
    txn_sql, txn_order, txn_processors = _INSERT_TXN_ONCE.positional(conn)
    for name, processor in txn_processors.items():
        params[name] = processor(params[name])
    count = len(ordered)
    balance_sql, balance_order, _ = _add_to_cached_balances(count).positional(conn)
    amounts = {}
    for i, p in enumerate(ordered):
        amounts[_ID_NAMES[i]], amounts[_AMOUNT_NAMES[i]] = p.account_id, p.amount
    db = _Direct.driver(conn)
    try:
        row = db.execute(txn_sql, [params[n] for n in txn_order]).fetchone()
        if row is None:
            return _replayed(conn, spec, request_hash)
        txn_id = row[0]
        changed = db.execute(balance_sql, [amounts[n] for n in balance_order]).fetchall()
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrap(conn, txn_sql, params, exc) from exc
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
    postings_sql, order, _ = _insert_postings(len(spec.postings)).positional(conn)
    if order != _posting_binds(len(spec.postings)):
        raise LedgerInvariantBroken("分录语句参数顺序不符", "postings statement binds out of order")
    try:
        db.execute(postings_sql, legs)
    except conn.dialect.loaded_dbapi.Error as exc:
        raise _wrap(conn, postings_sql, legs, exc) from exc
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
    sequence = func.pg_get_serial_sequence(ledger_transactions.name, _T.id.name)
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
