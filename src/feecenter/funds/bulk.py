"""Bulk postpaid spending and bulk receiving: many accounts' movements in one
database transaction.

Settlement deducts thousands of accounts per database transaction. Calling
``funds.service.spend`` for each would cost a dozen statements per
deduction; this module has exactly its effects for ``postpaid=True`` in a
few set-based statements per batch:

1. ``lock_accounts(conn, uins)`` reads the sub-account ids and balances of
   all the accounts in one query — on PostgreSQL ``FOR UPDATE`` in id order,
   the order every money movement locks in, so bulk and single movements
   never deadlock (on SQLite, ``BEGIN IMMEDIATE`` already made this the one
   writer).
2. ``spend_postpaid(conn, clock, locked, requests)`` plans each deduction in
   Python, in the order given, on running balances: gift, then cash, then
   credit (what credit pays is first advanced into cash, as its own
   ``advanced`` transaction and 收支明细 entry), the rest as arrears
   (BAL-3/4/7, SET-5) — ``funds.rules.plan_spend``, the rule ``spend`` uses.
   All ledger transactions go to ``ledger.transfer_batch`` in one call and
   all 收支明细 entries (with the sub-balances right after each transaction)
   to one ``executemany``. A deduction that postpaid coupons paid part of
   (``coupon``, SET-6) shows the whole amount in its entry, the coupon part
   in ``coupon_amount`` (BAL-5).
3. ``record_coupon_paid(conn, clock, locked, paid)`` writes the entries of
   deductions that coupons paid in full: no money of the account moved, so
   the entry is the coupon payment's own ledger transaction's, with the
   balances as they stand.

4. ``receive_many(conn, clock, locked, requests)`` credits incoming money as
   ``funds.service.receive`` does one by one (a statement import's credited
   lines): the whole amount into cash as its own entry, then arrears and
   unrepaid advances repaid from it, each its own transaction and entry
   (ARR-4, RMT-8) — ``funds.rules.plan_incoming`` on running balances.

Same keys, postings, request hashes, balances after and entries as ``spend``
and ``receive`` one by one (tests/test_settlement_bulk.py and
tests/test_funds_bulk_receive.py compare them). A key used before for the same request is not written again: its
first result is returned (``created=False``); for another request it is an
``IdempotencyConflict``. A bad amount refuses the whole batch before anything
is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, insert, select

from feecenter.clock import Clock, db_time
from feecenter.errors import IdempotencyConflict, invalid, not_found
from feecenter.funds import rules
from feecenter.funds.service import _credit_in_force, _snapshot
from feecenter.funds.tables import credit_lines, statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_accounts, ledger_transactions

MAX_ACCOUNTS = 5_000  # per lock: one statement, so one lock order, and bounded parameters
_KEYS_PER_QUERY = 500
_ENTRY_FIELDS = ("deduct_mode", "pay_channel", "product_code", "billing_item", "order_id",
                 "storefront", "memo")


@dataclass(frozen=True)
class SpendRequest:
    """One postpaid deduction, as ``funds.spend(..., postpaid=True)`` takes it."""

    uin: int
    amount: int  # fen, positive
    key: str
    revenue_account_id: int
    deduct_mode: str
    product_code: str | None = None
    billing_item: str | None = None
    memo: str | None = None
    coupon: int = 0  # fen postpaid coupons paid of the same charge, besides ``amount``


@dataclass(frozen=True)
class SpendResult:
    """What paid one deduction (fen): ``gift + cash + credit + arrears == amount``."""

    txn_id: int
    created: bool  # False: the key was used before; this is the first result
    gift: int
    cash: int      # paid from cash, not counting what credit advanced into it
    credit: int
    arrears: int


@dataclass
class LockedAccounts:
    """Sub-account ids and balances by uin and kind; balances follow the spends made."""

    ids: dict[int, dict[str, int]]
    balances: dict[int, dict[str, int]]


def lock_accounts(conn: Connection, uins) -> LockedAccounts:
    """Read (and on PostgreSQL lock, in id order) the balance rows of these accounts."""
    wanted = sorted(set(uins))
    if len(wanted) > MAX_ACCOUNTS:
        raise invalid("uins", f"一次最多锁定 {MAX_ACCOUNTS} 个账号",
                      f"at most {MAX_ACCOUNTS} accounts are locked at once")
    a = ledger_accounts.c
    stmt = (select(a.uin, a.kind, a.id, a.balance)
            .where(a.uin.in_(bindparam("uins", expanding=True))).order_by(a.id))
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    locked = LockedAccounts({}, {})
    if wanted:
        for uin, kind, account_id, balance in conn.execute(stmt, {"uins": wanted}):
            locked.ids.setdefault(uin, {})[kind] = account_id
            locked.balances.setdefault(uin, {})[kind] = balance
    missing = [uin for uin in wanted if uin not in locked.ids]
    if missing:
        raise not_found("uin", "账号", "account", missing[0])
    return locked


def spend_postpaid(conn: Connection, clock: Clock, locked: LockedAccounts,
                   requests: list[SpendRequest]) -> list[SpendResult]:
    """Deduct every request (gift, cash, credit, then arrears), in order; one result each."""
    for request in requests:
        if request.amount <= 0:
            raise invalid("amount", "扣费金额必须为正数", "deduction amount must be positive")
        if request.coupon < 0:
            raise invalid("coupon", "优惠券支付金额不能为负", "the coupon part cannot be negative")
        if request.uin not in locked.ids:
            raise invalid("uin", "扣费前必须先锁定账号", "the account must be locked first")
    if len({r.key for r in requests}) != len(requests):
        raise invalid("key", "同一批次中幂等键重复", "duplicate idempotency key in batch")
    hashes = [ledger.content_hash(_request_of(r)) for r in requests]
    earlier = _earlier_results(conn, requests, hashes)
    fresh = [(i, r) for i, r in enumerate(requests) if r.key not in earlier]
    credit = _credit_amounts(conn, clock, {r.uin for _, r in fresh})
    now = db_time(clock.now())
    specs: list[ledger.Transfer] = []
    entries: list[dict] = []
    paid: dict[int, rules.SpendPlan] = {}
    for i, request in fresh:
        paid[i] = _plan_one(locked, request, hashes[i], credit.get(request.uin, 0), now,
                            specs, entries)
    created = ledger.transfer_batch(conn, clock, specs)
    for entry, result in zip(entries, created, strict=True):
        entry["txn_id"] = result.txn_id
    if entries:
        conn.execute(insert(statement_entries), entries)
    deduct_ids = iter(result.txn_id for spec, result in zip(specs, created)
                      if spec.kind == "deduct")
    results = []
    for i, request in enumerate(requests):
        if request.key in earlier:
            results.append(earlier[request.key])
            continue
        plan = paid[i]
        results.append(SpendResult(next(deduct_ids), True, plan.gift, plan.cash, plan.credit,
                                   plan.arrears))
    return results


@dataclass(frozen=True)
class ReceiveRequest:
    """One incoming amount, as ``funds.receive`` takes it."""

    uin: int
    amount: int  # fen, positive
    key: str
    source_account_id: int
    action_type: str = "recharge"
    pay_channel: str | None = None
    sub_type: str | None = None   # the entry's SubPayType (``deduct_mode`` column)
    memo: str | None = None
    request: dict | None = None   # what the key stands for (None: receive's default)


@dataclass(frozen=True)
class ReceiveResult:
    txn_id: int    # the transaction of the whole amount (receive's ``Movement.txn_id``)
    created: bool  # False: the key was used before for this request; nothing written


def receive_many(conn: Connection, clock: Clock, locked: LockedAccounts,
                 requests: list[ReceiveRequest]) -> list[ReceiveResult]:
    """Credit every request in order, each as ``funds.receive`` would; one result each."""
    for request in requests:
        if type(request.amount) is not int or request.amount <= 0:
            raise invalid("amount", "入账金额必须为正数", "incoming amount must be positive")
        if request.uin not in locked.ids:
            raise invalid("uin", "入账前必须先锁定账号", "the account must be locked first")
    if len({r.key for r in requests}) != len(requests):
        raise invalid("key", "同一批次中幂等键重复", "duplicate idempotency key in batch")
    bodies = [_receive_request_of(r) for r in requests]
    hashes = [ledger.content_hash(body) for body in bodies]
    earlier = _earlier_txns(conn, [r.key for r in requests], hashes)
    now = db_time(clock.now())
    specs: list[ledger.Transfer] = []
    entries: list[dict] = []
    firsts: dict[str, int] = {}  # key -> position of its first transfer in specs
    for request, body, request_hash in zip(requests, bodies, hashes):
        if request.key not in earlier:
            firsts[request.key] = len(specs)
            _plan_receive(locked, request, body, request_hash, now, specs, entries)
    created = ledger.transfer_batch(conn, clock, specs)
    for entry, result in zip(entries, created, strict=True):
        entry["txn_id"] = result.txn_id
    if entries:
        conn.execute(insert(statement_entries), entries)
    return [ReceiveResult(earlier[r.key], False) if r.key in earlier
            else ReceiveResult(created[firsts[r.key]].txn_id, True) for r in requests]


def _receive_request_of(request: ReceiveRequest) -> dict:
    """The request ``funds.receive`` hashes for the key (its default when none is given)."""
    return request.request or {"op": "receive", "uin": request.uin, "amount": request.amount,
                               "type": request.action_type}


def _plan_receive(locked: LockedAccounts, request: ReceiveRequest, body: dict,
                  request_hash: str, now, specs: list, entries: list) -> None:
    """Queue one receipt's transfers and entries, on the running balances."""
    uin, amount, key = request.uin, request.amount, request.key
    ids, bal = locked.ids[uin], locked.balances[uin]
    plan = rules.plan_incoming(amount, arrears=-bal["arrears"], advances=-bal["advance"])
    specs.append(ledger.Transfer(
        idempotency_key=key, kind=request.action_type, uin=uin, memo=request.memo,
        request_hash=request_hash,
        postings=_legs([(request.source_account_id, -amount), (ids["cash"], amount)])))
    bal["cash"] += amount
    entries.append(_entry(uin, bal, now, request.action_type, amount, cash=amount,
                          pay_channel=request.pay_channel, deduct_mode=request.sub_type,
                          memo=request.memo))
    for part, sub, action in ((plan.to_arrears, "arrears", "repayment"),
                              (plan.to_advances, "advance", "repay")):
        if part:
            specs.append(_transfer(f"{key}:{sub}", action, uin, [body, sub],
                                   [(ids["cash"], -part), (ids[sub], part)]))
            bal["cash"] -= part
            bal[sub] += part
            entries.append(_entry(uin, bal, now, action, -part, cash=-part))


def _earlier_txns(conn: Connection, keys: list[str], hashes: list[str]) -> dict[str, int]:
    """Keys used before: their transaction (refusing a key used for another request)."""
    t = ledger_transactions.c
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        rows = conn.execute(select(t.idempotency_key, t.id, t.request_hash).where(
            t.idempotency_key.in_(keys[start:start + _KEYS_PER_QUERY])))
        found.update({key: (txn_id, request_hash) for key, txn_id, request_hash in rows})
    for key, request_hash in zip(keys, hashes):
        if key in found and found[key][1] != request_hash:
            raise IdempotencyConflict(
                f"幂等键已用于不同的请求：{key}",
                f"idempotency key already used for a different request: {key}",
                field="idempotency_key")
    return {key: txn_id for key, (txn_id, _) in found.items()}


def _request_of(request: SpendRequest) -> dict:
    """The request ``funds.spend`` hashes for its idempotency key (same key, same hash)."""
    return {"op": "spend", "uin": request.uin, "amount": request.amount, "postpaid": True,
            "order": None, "product": request.product_code, "item": request.billing_item}


def _plan_one(locked: LockedAccounts, request: SpendRequest, request_hash: str,
              credit_amount: int, now, specs: list, entries: list) -> rules.SpendPlan:
    """Plan one deduction on the running balances; queue its transfers and entries."""
    uin, amount, key = request.uin, request.amount, request.key
    ids, bal = locked.ids[uin], locked.balances[uin]
    plan = rules.plan_spend(amount, gift=bal["gift"], cash=bal["cash"],
                            credit_left=rules.credit_left(credit_amount, advances=-bal["advance"]),
                            allow_arrears=True)
    if plan.credit:  # the platform advances what credit pays into cash (垫付, BAL-7)
        specs.append(_transfer(f"{key}:credit", "advanced", uin,
                               {"op": "advance", "of": key, "amount": plan.credit},
                               [(ids["advance"], -plan.credit), (ids["cash"], plan.credit)]))
        bal["advance"] -= plan.credit
        bal["cash"] += plan.credit
        entries.append(_entry(uin, bal, now, "advanced", plan.credit, cash=plan.credit,
                              credit=plan.credit))
    out_of_cash = plan.cash + plan.credit
    specs.append(ledger.Transfer(
        idempotency_key=key, kind="deduct", uin=uin, memo=request.memo,
        request_hash=request_hash, postings=_legs([
            (ids["gift"], -plan.gift), (ids["cash"], -out_of_cash),
            (ids["arrears"], -plan.arrears), (request.revenue_account_id, amount)])))
    bal["gift"] -= plan.gift
    bal["cash"] -= out_of_cash
    bal["arrears"] -= plan.arrears
    entries.append(_deduct_entry(uin, bal, now, request, cash=-out_of_cash, gift=-plan.gift,
                                 credit=-plan.credit))
    return plan


def _deduct_entry(uin: int, bal: dict[str, int], now, request: SpendRequest, **split) -> dict:
    """The ``deduct`` entry of a charge: − the whole of it, coupon part included (BAL-5)."""
    return _entry(uin, bal, now, "deduct", -(request.amount + request.coupon),
                  coupon=-request.coupon, deduct_mode=request.deduct_mode,
                  product_code=request.product_code, billing_item=request.billing_item,
                  memo=request.memo, **split)


def record_coupon_paid(conn: Connection, clock: Clock, locked: LockedAccounts,
                       paid: list[tuple[int, SpendRequest]]) -> None:
    """The ``deduct`` entries of charges postpaid coupons paid in full (SET-6, BAL-5).

    ``paid`` is (the coupon payment's ledger transaction, the charge with
    ``amount`` 0 and ``coupon`` the whole of it). The entry shows − the
    charge, all of it coupon, with the account's balances as they stand; a
    transaction that has its entry already is left alone (a rerun).
    """
    if not paid:
        return
    s = statement_entries.c
    done = set(conn.execute(select(s.txn_id).where(
        s.txn_id.in_(bindparam("ids", expanding=True))), {"ids": [t for t, _ in paid]}).scalars())
    now = db_time(clock.now())
    for _, request in paid:
        if request.amount or request.coupon <= 0 or request.uin not in locked.ids:
            raise invalid("coupon", "只记录优惠券全额支付的扣费", "only charges coupons paid in full")
    rows = [{**_deduct_entry(request.uin, locked.balances[request.uin], now, request),
             "txn_id": txn_id} for txn_id, request in paid if txn_id not in done]
    if rows:
        conn.execute(insert(statement_entries), rows)


def _transfer(key: str, kind: str, uin: int, request: dict, legs) -> ledger.Transfer:
    return ledger.Transfer(idempotency_key=key, kind=kind, uin=uin,
                           request_hash=ledger.content_hash(request), postings=_legs(legs))


def _legs(legs) -> tuple[ledger.Posting, ...]:
    return tuple(ledger.Posting(account_id, amount) for account_id, amount in legs if amount)


def _entry(uin: int, bal: dict[str, int], now, action_type: str, amount: int, *, cash: int = 0,
           gift: int = 0, credit: int = 0, coupon: int = 0, **fields) -> dict:
    """A 收支明细 row with the sub-balances right after its transaction (as funds._record)."""
    cash_after, gift_after, frozen, available = _snapshot(bal)
    row = {"uin": uin, "txn_id": None, "action_type": action_type, "amount": amount,
           "cash_amount": cash, "gift_amount": gift, "credit_amount": credit,
           "coupon_amount": coupon, "balance_after": available, "cash_after": cash_after,
           "gift_after": gift_after, "frozen_after": frozen, "created_at": now}
    row.update({name: fields.get(name) for name in _ENTRY_FIELDS})
    return row


def _credit_amounts(conn: Connection, clock: Clock, uins) -> dict[int, int]:
    """Credit amount in force per account (BAL-7, ``rules.credit_in_force``);
    accounts without a credit line have none."""
    if not uins:
        return {}
    c = credit_lines.c
    now = clock.now()
    rows = conn.execute(select(c.uin, c.credit_limit, c.temp_credit, c.temp_credit_end)
                        .where(c.uin.in_(bindparam("uins", expanding=True))),
                        {"uins": sorted(uins)})
    return {row.uin: _credit_in_force(row, now) for row in rows}


def _earlier_results(conn: Connection, requests: list[SpendRequest],
                     hashes: list[str]) -> dict[str, SpendResult]:
    """Requests whose key was used before: their first result (refusing another request)."""
    t = ledger_transactions.c
    keys = [r.key for r in requests]
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        rows = conn.execute(select(t.idempotency_key, t.id, t.request_hash).where(
            t.idempotency_key.in_(keys[start:start + _KEYS_PER_QUERY])))
        found.update({key: (txn_id, request_hash) for key, txn_id, request_hash in rows})
    if not found:
        return {}
    for request, request_hash in zip(requests, hashes):
        if request.key in found and found[request.key][1] != request_hash:
            raise IdempotencyConflict(
                f"幂等键已用于不同的请求：{request.key}",
                f"idempotency key already used for a different request: {request.key}",
                field="idempotency_key")
    s = statement_entries.c
    paid = {row.txn_id: row for row in conn.execute(
        select(s.txn_id, s.amount, s.cash_amount, s.gift_amount, s.credit_amount,
               s.coupon_amount).where(
            s.txn_id.in_([txn_id for txn_id, _ in found.values()]),
            s.action_type == "deduct"))}
    results = {}
    for key, (txn_id, _) in found.items():
        row = paid[txn_id]
        gift, credit = -row.gift_amount, -row.credit_amount
        cash = -row.cash_amount - credit
        owed = row.coupon_amount - row.amount  # what the balances owed: the coupon part aside
        results[key] = SpendResult(txn_id, False, gift, cash, credit, owed - gift - cash - credit)
    return results


__all__ = ["SpendRequest", "SpendResult", "LockedAccounts", "lock_accounts", "spend_postpaid",
           "record_coupon_paid", "ReceiveRequest", "ReceiveResult", "receive_many", "MAX_ACCOUNTS"]
