"""The payment fast path (issue #3): ``orders.pay`` writes, in a few precompiled
statements, exactly the rows the general services would write, and the ledger's
hold batch keeps its invariants (keys once, locked balances, bounds)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from feecenter.accounts.permissions import SYSTEM
from feecenter.db import sending
from feecenter.errors import (Conflict, IdempotencyConflict, InsufficientBalance, InvalidInput,
                              LedgerInvariantBroken)
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import (ledger_accounts, ledger_hold_legs, ledger_holds,
                                     ledger_postings, ledger_transactions)
from feecenter.orders import rules
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import (OPS, add_cash, add_gift, assert_reconciled, balance, buy,
                           load_sample_catalog, new_account, pay, row_counts)

CVM_MEDIUM_MONTH = 178_00
SSL_OV_YEAR = 3960_00
SSL = ("ssl", "OV.single", 12, "mainland")
WRITTEN = (ledger_transactions, ledger_postings, ledger_holds, ledger_hold_legs,
           statement_entries, payments)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def funded(rt, name: str, *, cash: int, gift: int, credit: int) -> int:
    uin = new_account(rt, name)
    add_cash(rt, uin, cash, key=f"cash-{uin}")
    add_gift(rt, uin, gift, key=f"gift-{uin}")
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=credit)
    return uin


def pay_the_general_way(rt, uin: int, order_ids: list[int], key: str) -> None:
    """What orders.pay composed before the fast path: freeze_for_payment, then
    deduct_frozen of each automatically delivered order (here: all of them)."""
    with rt.engine.begin() as conn:
        rows = conn.execute(select(orders_table).where(orders_table.c.id.in_(order_ids))
                            .order_by(orders_table.c.id)).mappings().all()
        numbers = [rules.order_no(r["id"], r["created_at"]) for r in rows]
        held = funds.freeze_for_payment(
            conn, rt.clock, uin, [(f"order:{r['id']}", r["amount"], n)
                                  for r, n in zip(rows, numbers)],
            key=f"pay:{uin}:{key}", memo="订单支付 / order payment " + " ".join(numbers))
        revenue = funds.platform_account(conn, rt.clock, "revenue", "cn-cloud")
        for r, n, (hold_id, _) in zip(rows, numbers, held):
            funds.deduct_frozen(conn, rt.clock, uin, hold_id, revenue_account_id=revenue,
                                product_code=r["product_code"], order_id=n,
                                memo=f"{r['kind']} {r['resource_id']}")


def written_rows(rt, uin: int, order_ids: list[int]) -> dict:
    """The account's ledger, hold and 收支明细 rows with ids, keys and order numbers
    replaced by what they stand for, so two accounts' rows can be compared."""
    with rt.engine.connect() as conn:
        kinds = dict(conn.execute(select(ledger_accounts.c.id, ledger_accounts.c.kind)).all())
        rows = conn.execute(select(orders_table.c.id, orders_table.c.created_at,
                                   orders_table.c.resource_id)
                            .where(orders_table.c.id.in_(order_ids))).all()
        names = {str(uin): "UIN"}
        for i, (order_id, created, resource_id) in enumerate(sorted(rows)):
            names[rules.order_no(order_id, created)] = f"ORDER{i}"
            names[f"order:{order_id}"] = f"order:{i}"
            names[resource_id] = f"RESOURCE{i}"

        def plain(value):
            if not isinstance(value, str):
                return value
            for real, name in names.items():
                value = value.replace(real, name)
            return value

        txns = conn.execute(select(ledger_transactions).where(ledger_transactions.c.uin == uin)
                            .order_by(ledger_transactions.c.id)).mappings().all()
        txn_no = {t["id"]: n for n, t in enumerate(txns)}
        holds = conn.execute(select(ledger_holds).where(ledger_holds.c.uin == uin)
                             .order_by(ledger_holds.c.id)).mappings().all()
        for n, h in enumerate(holds):
            names[f"hold-post:{h['id']}"] = f"hold-post:{n}"
        postings = conn.execute(select(ledger_postings).where(
            ledger_postings.c.txn_id.in_(list(txn_no))).order_by(ledger_postings.c.id)).mappings()
        legs = conn.execute(select(ledger_hold_legs).where(ledger_hold_legs.c.hold_id.in_(
            [h["id"] for h in holds])).order_by(ledger_hold_legs.c.hold_id,
                                               ledger_hold_legs.c.seq)).mappings()
        entries = conn.execute(select(statement_entries).where(statement_entries.c.uin == uin)
                               .order_by(statement_entries.c.id)).mappings().all()
        return {
            "txns": [(plain(t["idempotency_key"]), t["kind"], plain(t["reference"]),
                      plain(t["memo"]), t["created_at"]) for t in txns],
            "postings": [(txn_no[p["txn_id"]], kinds[p["account_id"]], p["amount"],
                          p["balance_after"]) for p in postings],
            "holds": [(plain(h["idempotency_key"]), h["state"], h["amount"], h["posted_amount"],
                       txn_no[h["hold_txn_id"]], txn_no.get(h["settle_txn_id"]),
                       plain(h["reference"]), h["created_at"], h["settled_at"]) for h in holds],
            "legs": [(kinds[g["source_account_id"]], kinds[g["escrow_account_id"]], g["amount"])
                     for g in legs],
            "entries": [tuple(plain(e[c]) if c != "txn_id" else txn_no[e[c]]
                              for c in e.keys() if c not in ("id", "uin")) for e in entries],
        }


@pytest.mark.spec("ORD-3", "BAL-3", "BAL-5", "BAL-7", "FRZ-4")
def test_the_fast_path_writes_the_rows_the_general_services_write(shop):
    rt = shop
    fast = funded(rt, "fast", cash=100_00, gift=50_00, credit=1_000_00)
    general = funded(rt, "general", cash=100_00, gift=50_00, credit=1_000_00)
    fast_orders = buy(rt, fast, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                      ("cvm", "S5.LARGE8", 1, "ap-guangzhou"))
    general_orders = buy(rt, general, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                         ("cvm", "S5.LARGE8", 1, "ap-guangzhou"))
    pay(rt, fast, fast_orders, key="merged")
    pay_the_general_way(rt, general, general_orders, "merged")
    ours, theirs = written_rows(rt, fast, fast_orders), written_rows(rt, general, general_orders)
    assert [t[1] for t in ours["txns"]][-4:] == ["advanced", "block", "deduct", "deduct"]
    for part in ("txns", "postings", "holds", "legs", "entries"):
        assert ours[part] == theirs[part], part
    assert balance(rt, fast) == balance(rt, general).__class__(
        **{**balance(rt, general).to_dict(), "uin": fast})
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3", "FRZ-3", "BAL-7")
def test_a_merged_payment_of_automatic_and_manual_products(shop):
    rt = shop
    uin = funded(rt, "mixed", cash=3_000_00, gift=100_00, credit=2_000_00)
    cvm, ssl = buy(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"), SSL)
    result = pay(rt, uin, [ssl, cvm], key="mixed")
    total = CVM_MEDIUM_MONTH + SSL_OV_YEAR
    assert result["states"] == {ssl: "paid", cvm: "delivered"}
    assert (result["gift"], result["cash"], result["credit"]) == (100_00, 3_000_00,
                                                                 total - 3_100_00)
    view = balance(rt, uin)
    assert view.frozen == SSL_OV_YEAR and view.advances == total - 3_100_00
    with rt.engine.connect() as conn:
        items = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery())["items"]
    # newest first: the cvm's delivery, the one freeze of both, the credit advance
    assert [(e["action_type"], e["amount"]) for e in items[:3]] == [
        ("deduct", -CVM_MEDIUM_MONTH), ("block", -total), ("advanced", total - 3_100_00)]
    assert items[0]["frozen_after"] == SSL_OV_YEAR and items[1]["frozen_after"] == total
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, ssl)
    assert balance(rt, uin).frozen == 0
    assert_reconciled(rt)


@pytest.mark.slow
@pytest.mark.spec("ORD-3", "BAL-3")
def test_the_largest_merged_payment_is_written_in_chunks(shop):
    rt = shop
    uin = new_account(rt)
    add_gift(rt, uin, 1_000_00)
    add_cash(rt, uin, orders.MAX_ORDERS_PER_PAYMENT * CVM_MEDIUM_MONTH)
    ids = buy(rt, uin, *[("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")] * orders.MAX_ORDERS_PER_PAYMENT)
    before = row_counts(rt, *WRITTEN)
    result = pay(rt, uin, ids, key="all-of-them")
    assert set(result["states"].values()) == {"delivered"} and len(result["states"]) == 100
    assert (result["gift"], result["cash"]) == (1_000_00, 100 * CVM_MEDIUM_MONTH - 1_000_00)
    added = [after - b for after, b in zip(row_counts(rt, *WRITTEN), before)]
    # 1 freeze + 100 deliveries; their postings (the freeze: gift and cash in, escrows out;
    # the one order gift and cash both paid has three legs on delivery); holds, legs, entries
    assert added == [101, 4 + 99 * 2 + 3, 100, 101, 101, 1]
    view = balance(rt, uin)
    assert (view.gift, view.cash, view.frozen) == (0, 1_000_00, 0)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3")
def test_one_key_for_other_orders_is_refused_and_writes_nothing(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    (first,), (second,) = buy(rt, uin), buy(rt, uin)
    pay(rt, uin, [first], key="k")
    before = row_counts(rt, *WRITTEN)
    with pytest.raises(Conflict) as err:
        pay(rt, uin, [second], key="k")
    assert err.value.field == "idempotency_key"
    assert row_counts(rt, *WRITTEN) == before
    with pytest.raises(InvalidInput) as err:
        pay(rt, uin, [second, second], key="twice")
    assert err.value.field == "order_ids"


# ---------------------------------------------------------------- the ledger's hold batch

def _batch(rt, uin: int, conn, *, key: str, hold_key: str, amount: int, meanwhile=None):
    """A one-hold batch of ``amount`` cash on the account's locked rows;
    ``meanwhile(locked)`` runs between the read and the batch."""
    locked = funds.lock_for_payment(conn, rt.clock, uin)()
    if meanwhile:
        meanwhile(locked)
    ids = locked.ids
    hold = ledger.BatchHold(hold_key, (ledger.HoldLeg(ids["cash"], ids["frozen_cash"], amount),))
    reserved = ledger.reserve_ids(conn, txns=1, holds=1).ids()
    return locked, ledger.HoldBatch(key, uin, (hold,), kind="block"), reserved


def test_a_hold_batch_refuses_a_key_seen_before_and_writes_nothing(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    with rt.engine.begin() as conn:
        locked, batch, reserved = _batch(rt, uin, conn, key="b1", hold_key="h1", amount=10_00)
        ledger.write_hold_batch(conn, rt.clock, batch, locked.accounts, {}, reserved)
    before = row_counts(rt, *WRITTEN)
    for key, hold_key in (("b1", "h2"), ("b2", "h1")):  # the transaction's key, the hold's key
        with pytest.raises(IdempotencyConflict), rt.engine.begin() as conn:
            locked, batch, reserved = _batch(rt, uin, conn, key=key, hold_key=hold_key,
                                             amount=10_00)
            ledger.write_hold_batch(conn, rt.clock, batch, locked.accounts, {}, reserved)
    assert row_counts(rt, *WRITTEN) == before
    assert balance(rt, uin).frozen == 10_00
    assert_reconciled(rt)


def test_a_hold_batch_refuses_stale_balances_and_unlocked_cached_accounts(shop):
    rt = shop
    uin, other = new_account(rt), new_account(rt, "other")
    add_cash(rt, uin, 100_00)
    before = row_counts(rt, *WRITTEN)
    with pytest.raises(LedgerInvariantBroken, match="changed after it was locked"), \
            rt.engine.begin() as conn:
        def cash_changes(locked):  # the cash row changes after it was read
            ledger.transfer(conn, rt.clock, ledger.Transfer("meanwhile", (
                ledger.Posting(locked.ids["gift"], 1), ledger.Posting(locked.ids["cash"], -1)),
                "test"))

        locked, batch, reserved = _batch(rt, uin, conn, key="stale", hold_key="h", amount=5_00,
                                         meanwhile=cash_changes)
        ledger.write_hold_batch(conn, rt.clock, batch, locked.accounts, {}, reserved)
    with pytest.raises(LedgerInvariantBroken, match="is not locked"), rt.engine.begin() as conn:
        locked, batch, reserved = _batch(rt, uin, conn, key="unlocked", hold_key="h", amount=5_00)
        theirs = funds.lock_for_payment(conn, rt.clock, other)()
        cash = theirs.accounts[theirs.ids["cash"]].meta  # cached, and not in this batch's lock
        posted = ledger.BatchHold("h", batch.holds[0].legs, post_to=cash.id)
        ledger.write_hold_batch(conn, rt.clock, ledger.HoldBatch("unlocked", uin, (posted,)),
                                locked.accounts, {cash.id: cash}, reserved)
    assert row_counts(rt, *WRITTEN) == before
    assert_reconciled(rt)


@pytest.mark.postgres_only  # SQLite runs its statements as they are sent
def test_no_sqlalchemy_statement_runs_inside_reads(shop):
    rt = shop
    with rt.engine.begin() as conn, pytest.raises(LedgerInvariantBroken, match="reads"):
        with sending.reads(conn):
            conn.execute(select(ledger_accounts.c.id))
    with rt.engine.begin() as conn:  # the reads ended with the error: plain statements run
        assert conn.execute(select(ledger_accounts.c.id)).all() is not None


@pytest.mark.spec("BAL-7", "ORD-3")
def test_a_payment_draws_temporary_credit_only_until_it_ends(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=0,
                           temp_credit=2 * CVM_MEDIUM_MONTH,
                           temp_credit_end=rt.clock.now() + timedelta(days=1))
    (first,) = buy(rt, uin)
    assert pay(rt, uin, [first])["credit"] == CVM_MEDIUM_MONTH - 100_00
    rt.clock.advance(days=2)  # the temporary credit has ended
    (second,) = buy(rt, uin)
    with pytest.raises(InsufficientBalance):
        pay(rt, uin, [second])
    assert balance(rt, uin).advances == CVM_MEDIUM_MONTH - 100_00
    assert_reconciled(rt)


def test_reserved_ids_are_new_distinct_and_ascending_alone_or_read_together(shop):
    """The ids a batch is written with come from the tables' own sequences on
    PostgreSQL (the highest ids on SQLite): never one in use, none twice."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)  # a transaction, so the ids do not start at 1
    with rt.engine.begin() as conn:
        taken = conn.execute(select(ledger_transactions.c.id)).scalars().all()
        alone = ledger.reserve_ids(conn, txns=3, holds=0).ids()
        assert alone[1] == [] and len(alone[0]) == 3
        assert alone[0] == sorted(set(alone[0])) and min(alone[0]) > max(taken)
    if rt.engine.dialect.name != "postgresql":
        return  # SQLite's follow the highest id: the same until one is written
    with rt.engine.begin() as conn:
        with sending.reads(conn):
            together = [ledger.reserve_ids(conn, txns=2, holds=2) for _ in range(2)]
        txns = [i for r in together for i in r.ids()[0]]
        holds = [i for r in together for i in r.ids()[1]]
    assert len(set(txns)) == 4 and min(txns) > max(alone[0]) and len(set(holds)) == 4


@pytest.mark.parametrize("txns, holds", [(ledger.MAX_BATCH_HOLDS + 3, 1),
                                         (1, ledger.MAX_BATCH_HOLDS + 1), (-1, 0)])
def test_reserving_more_ids_than_a_batch_uses_is_refused(shop, txns, holds):
    """Each pair of counts is a statement kept for reuse: the counts are bounded."""
    with shop.engine.begin() as conn, pytest.raises(InvalidInput) as refused:
        ledger.reserve_ids(conn, txns=txns, holds=holds)
    assert refused.value.field == "txns"
