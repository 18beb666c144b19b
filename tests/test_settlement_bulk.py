"""Bulk postpaid spending (funds/bulk.py), settlement's deduction path: exactly what
funds.spend(postpaid=True) writes one by one — postings, balances, 收支明细 — for gift,
cash, credit (permanent, temporary, expired), arrears and frozen money (SET-5, BAL-3/4/7)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock
from feecenter.db.engine import dispose, make_engine
from feecenter.errors import IdempotencyConflict, InvalidInput, NotFound
from feecenter.funds import bulk
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.settlement import rules
from tests.conftest import START
from tests.helpers import OPS, add_cash, add_gift, assert_reconciled, new_account

# (gift, cash, credit limit, temporary credit and whether it is still in force, frozen cash)
ACCOUNTS = [
    (30, 10_00, 0, None, 0),          # gift then cash, enough
    (0, 20, 0, None, 0),              # short: arrears
    (5, 10, 3_00, None, 0),           # gift, cash, credit, then arrears
    (0, 0, 1_00, (2_00, True), 0),    # temporary credit in force adds to the limit
    (0, 0, 1_00, (2_00, False), 0),   # an ended temporary credit does not
    (50, 5_00, 0, None, 4_50),        # frozen cash is not spent
]
AMOUNTS = [(17, 30), (50,), (12, 250, 80), (150, 200), (120,), (60, 7)]


def world(url):
    engine = make_engine(url)
    rt = SimpleNamespace(engine=engine, clock=FixedClock(START))
    with engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    uins = []
    for n, (gift, cash, limit, temp, frozen) in enumerate(ACCOUNTS):
        uin = new_account(rt, name=f"acct{n}")
        if gift:
            add_gift(rt, uin, gift, key=f"g{n}")
        if cash:
            add_cash(rt, uin, cash, key=f"c{n}")
        with engine.begin() as conn:
            if limit or temp:
                amount, in_force = temp or (0, False)
                end = START + (timedelta(days=1) if in_force else timedelta(minutes=30))
                funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=limit,
                                   temp_credit=amount, temp_credit_end=end if temp else None)
            if frozen:
                funds.freeze(conn, rt.clock, uin, frozen, key=f"f{n}")
        uins.append(uin)
    rt.clock.set(START + timedelta(hours=1))  # the temporary credits that end have ended
    with engine.begin() as conn:
        rt.revenue = funds.platform_account(conn, rt.clock, "revenue", "cn-cloud")
    return rt, uins


def requests(rt, uins) -> list[bulk.SpendRequest]:
    return [bulk.SpendRequest(uin=uin, amount=amount, key=f"spend:{uin}:{i}",
                              revenue_account_id=rt.revenue, deduct_mode="hour_h",
                              product_code=f"p{i}", billing_item="item" if i else None,
                              memo="按量结算 / settlement")
            for uin, amounts in zip(uins, AMOUNTS) for i, amount in enumerate(amounts)]


def one_by_one(rt, batch):
    with rt.engine.begin() as conn:
        return [funds.spend(conn, rt.clock, r.uin, r.amount, key=r.key, postpaid=True,
                            revenue_account_id=r.revenue_account_id, deduct_mode=r.deduct_mode,
                            product_code=r.product_code, billing_item=r.billing_item,
                            memo=r.memo) for r in batch]


def in_bulk(rt, batch):
    with rt.engine.begin() as conn:
        locked = bulk.lock_accounts(conn, {r.uin for r in batch})
        return bulk.spend_postpaid(conn, rt.clock, locked, batch)


def written(rt):
    """Every transaction with its postings and 收支明细 entry, by key; every balance by code."""
    t, p, a = ledger_transactions.c, ledger_postings.c, ledger_accounts.c
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
        txns = {row.id: row for row in conn.execute(select(t.id, t.idempotency_key,
                                                           t.request_hash, t.kind, t.uin,
                                                           t.reference, t.memo))}
        legs = {}
        for row in conn.execute(select(p.txn_id, a.code, p.amount, p.balance_after)
                                .join(ledger_accounts, a.id == p.account_id).order_by(p.id)):
            legs.setdefault(row.txn_id, []).append(tuple(row[1:]))
        entries = {row.txn_id: {k: v for k, v in row._mapping.items() if k not in ("id", "txn_id")}
                   for row in conn.execute(select(statement_entries))}
        balances = dict(conn.execute(select(a.code, a.balance).where(a.cached)).all())
    return ({txn.idempotency_key: (tuple(txn[2:]), legs[i], entries.get(i))
             for i, txn in txns.items()}, balances)


def paid_by(conn_rt, movement) -> tuple[int, int, int, int]:
    """(gift, cash, credit, arrears) of a funds.spend, from its 收支明细 entry."""
    with conn_rt.engine.connect() as conn:
        entry = conn.execute(select(statement_entries).where(
            statement_entries.c.txn_id == movement.txn_id,
            statement_entries.c.action_type == "deduct")).one()
    gift, credit = -entry.gift_amount, -entry.credit_amount
    cash = -entry.cash_amount - credit
    return gift, cash, credit, -entry.amount - gift - cash - credit


@pytest.mark.spec("SET-5", "BAL-3", "BAL-4", "BAL-7")
def test_bulk_spending_writes_exactly_what_spend_writes_one_by_one(database_factory):
    single, single_uins = world(database_factory())
    many, many_uins = world(database_factory())
    assert single_uins == many_uins
    batch = requests(many, many_uins)
    movements = one_by_one(single, requests(single, single_uins))
    results = in_bulk(many, batch)
    assert written(many) == written(single)
    assert [(r.txn_id, r.created) for r in results] == [(m.txn_id, True) for m in movements]
    assert [(r.gift, r.cash, r.credit, r.arrears) for r in results] == [
        paid_by(single, m) for m in movements]
    kinds = {(r.gift > 0, r.cash > 0, r.credit > 0, r.arrears > 0) for r in results}
    assert {(True, True, False, False), (False, True, False, True),
            (False, False, True, True), (False, False, True, False)} <= kinds

    # a repeat returns the first results and writes nothing
    before = written(many)
    again = in_bulk(many, batch)
    assert [(r.txn_id, r.created) for r in again] == [(r.txn_id, False) for r in results]
    assert [(r.gift, r.cash, r.credit, r.arrears) for r in again] == [
        (r.gift, r.cash, r.credit, r.arrears) for r in results]
    assert written(many) == before
    for rt in (single, many):
        dispose(rt.engine)


def test_bulk_spending_refuses_the_whole_batch_on_one_bad_request(rt):
    uin, other = new_account(rt, name="payer"), new_account(rt, name="other")
    add_cash(rt, uin, 1_00)
    with rt.engine.begin() as conn:
        revenue = funds.platform_account(conn, rt.clock, "revenue")
    good = bulk.SpendRequest(uin, 10, "k1", revenue, "hour_h")
    with rt.engine.begin() as conn:
        locked = bulk.lock_accounts(conn, [uin, other])
        for bad, error, field in (
                (bulk.SpendRequest(other, 0, "k2", revenue, "hour_h"), InvalidInput, "amount"),
                (bulk.SpendRequest(uin, 5, "k1", revenue, "hour_h"), InvalidInput, "key"),
                (bulk.SpendRequest(999, 5, "k3", revenue, "hour_h"), InvalidInput, "uin")):
            with pytest.raises(error) as err:
                bulk.spend_postpaid(conn, rt.clock, locked, [good, bad])
            assert err.value.field == field and err.value.message_zh
    with rt.engine.connect() as conn:
        assert conn.execute(select(ledger_transactions.c.id).where(
            ledger_transactions.c.idempotency_key == "k1")).first() is None
    with rt.engine.begin() as conn, pytest.raises(NotFound):
        bulk.lock_accounts(conn, [uin, 424242])
    with rt.engine.begin() as conn:
        bulk.spend_postpaid(conn, rt.clock, bulk.lock_accounts(conn, [uin]), [good])
    with rt.engine.begin() as conn, pytest.raises(IdempotencyConflict):
        changed = bulk.SpendRequest(uin, 11, "k1", revenue, "hour_h")
        bulk.spend_postpaid(conn, rt.clock, bulk.lock_accounts(conn, [uin]), [changed])


def test_chunks_are_consecutive_bounded_and_never_split_an_account():
    counts = [(1, 3), (2, 3), (3, 10), (4, 1), (5, 1), (6, 1)]
    assert rules.chunk_accounts(counts, 2, 6) == [[1, 2], [3], [4, 5], [6]]
    assert rules.chunk_accounts(counts, 10, 100) == [[1, 2, 3, 4, 5, 6]]
    assert rules.chunk_accounts([], 5, 5) == []
    with pytest.raises(ValueError):
        rules.chunk_accounts(counts, 0, 5)


@pytest.mark.spec("BAL-5", "SET-6")
def test_the_coupon_part_is_in_the_entry_and_a_repeat_returns_the_same_split(rt):
    uin = new_account(rt, name="coupon-payer")
    add_gift(rt, uin, 5)
    add_cash(rt, uin, 20)
    with rt.engine.begin() as conn:
        revenue = funds.platform_account(conn, rt.clock, "revenue")
    request = bulk.SpendRequest(uin, 40, "k-coupon", revenue, "hour_h", coupon=60)
    results = [in_bulk(rt, [request])[0] for _ in range(2)]
    assert [(r.created, r.gift, r.cash, r.credit, r.arrears) for r in results] == [
        (True, 5, 20, 0, 15), (False, 5, 20, 0, 15)]
    with rt.engine.connect() as conn:
        entry = conn.execute(select(statement_entries).where(
            statement_entries.c.txn_id == results[0].txn_id)).one()
    assert (entry.amount, entry.coupon_amount, entry.gift_amount, entry.cash_amount,
            entry.balance_after) == (-100, -60, -5, -20, -15)
    with rt.engine.begin() as conn, pytest.raises(InvalidInput) as err:
        bulk.spend_postpaid(conn, rt.clock, bulk.lock_accounts(conn, [uin]), [
            bulk.SpendRequest(uin, 40, "k-bad", revenue, "hour_h", coupon=-1)])
    assert err.value.field == "coupon"
    assert_reconciled(rt, uin)
