"""Bulk receiving (funds/bulk.py receive_many), a statement import's crediting path:
exactly what funds.receive writes one by one — the whole amount into cash as its own
entry, then arrears and unrepaid advances repaid, each its own transaction and
收支明细 entry with the balances after it (ARR-4, RMT-8)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from feecenter.db.engine import dispose
from feecenter.errors import IdempotencyConflict, InvalidInput
from feecenter.funds import bulk
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from tests.test_settlement_bulk import one_by_one, requests, world, written

# per account of test_settlement_bulk.ACCOUNTS, once its spends left it in arrears
# (1, 2), with advances (2, 3) or neither (0, 5): amounts received in one batch
RECEIPTS = [(5_00,), (10, 40, 3_00), (100, 2_00, 50), (60, 1_000), (7,), (1, 2)]


def receipts(rt, uins) -> list[bulk.ReceiveRequest]:
    with rt.engine.begin() as conn:
        source = funds.platform_account(conn, rt.clock, "bank")
    return [bulk.ReceiveRequest(uin, amount, f"in:{uin}:{i}", source, "recharge", "bank",
                                "bank-enterprice", f"ref {uin}-{i}",
                                {"op": "remittance", "id": uin * 10 + i, "amount": amount})
            for uin, amounts in zip(uins, RECEIPTS) for i, amount in enumerate(amounts)]


def receive_one_by_one(rt, batch):
    with rt.engine.begin() as conn:
        return [funds.receive(conn, rt.clock, r.uin, r.amount, key=r.key,
                              source_account_id=r.source_account_id, action_type=r.action_type,
                              pay_channel=r.pay_channel, sub_type=r.sub_type, memo=r.memo,
                              request=r.request) for r in batch]


def receive_in_bulk(rt, batch):
    with rt.engine.begin() as conn:
        return bulk.receive_many(conn, rt.clock, bulk.lock_accounts(conn, {r.uin for r in batch}),
                                 batch)


def in_debt(database_factory):
    """A world whose accounts were charged: some in arrears, some with advances."""
    rt, uins = world(database_factory())
    one_by_one(rt, requests(rt, uins))
    return rt, uins


@pytest.mark.spec("ARR-4", "RMT-8")
def test_bulk_receiving_writes_exactly_what_receive_writes_one_by_one(database_factory):
    single, uins = in_debt(database_factory)
    many, many_uins = in_debt(database_factory)
    assert uins == many_uins
    movements = receive_one_by_one(single, receipts(single, uins))
    batch = receipts(many, uins)
    results = receive_in_bulk(many, batch)
    assert written(many) == written(single)
    assert [(r.txn_id, r.created) for r in results] == [(m.txn_id, True) for m in movements]
    with many.engine.connect() as conn:
        actions = conn.execute(select(statement_entries.c.action_type, statement_entries.c.amount)
                               .where(statement_entries.c.action_type.in_(
                                   ["recharge", "repayment", "repay"]))).all()
    kinds = {action for action, _ in actions}
    assert kinds == {"recharge", "repayment", "repay"}  # both repayments were exercised
    assert sum(a for action, a in actions if action == "recharge") == sum(
        sum(amounts) for amounts in RECEIPTS)

    # a repeat returns the first transactions and writes nothing
    before = written(many)
    again = receive_in_bulk(many, batch)
    assert [(r.txn_id, r.created) for r in again] == [(r.txn_id, False) for r in results]
    assert written(many) == before
    for rt in (single, many):
        dispose(rt.engine)


def test_bulk_receiving_refuses_the_whole_batch_on_one_bad_request(database_factory):
    rt, uins = in_debt(database_factory)
    good, *rest = receipts(rt, uins)
    before = written(rt)
    with rt.engine.begin() as conn:
        locked = bulk.lock_accounts(conn, [good.uin])
        for bad, field in ((bulk.ReceiveRequest(good.uin, 0, "k0", good.source_account_id), "amount"),
                           (bulk.ReceiveRequest(good.uin, 5, good.key, good.source_account_id), "key"),
                           (rest[-1], "uin")):  # an account not locked
            with pytest.raises(InvalidInput) as err:
                bulk.receive_many(conn, rt.clock, locked, [good, bad])
            assert err.value.field == field and err.value.message_zh
    assert written(rt) == before
    receive_in_bulk(rt, [good])
    changed = bulk.ReceiveRequest(good.uin, good.amount + 1, good.key, good.source_account_id)
    with pytest.raises(IdempotencyConflict):
        receive_in_bulk(rt, [changed])
    dispose(rt.engine)
