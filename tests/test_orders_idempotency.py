"""Idempotency keys of order creation and postpaid opening (docs/orders.md,
"Idempotency keys"): a retry with the key returns what the first call made and
writes nothing; the key used for another request is a Conflict naming
``idempotency_key``; a malformed key is refused naming it, in Chinese and English.
On SQLite and PostgreSQL (the races: tests/test_concurrency_keys_pg.py)."""

from __future__ import annotations

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.errors import Conflict, InvalidInput
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import postpaid
from feecenter.resources.tables import resources as resources_table
from tests import helpers
from tests.helpers import (add_cash, assert_reconciled, balance, load_sample_catalog, new_account,
                           row_counts)

pytestmark = pytest.mark.spec("ORD-1")

CVM = orders.NewPurchase(product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4")
SSL = orders.NewPurchase(product="ssl", region="mainland", spec_item="OV.single", months=12)
CDB = {"product": "cdb", "region": "ap-guangzhou", "spec_item": "MYSQL.2C4G"}
CDB_FREEZE = 20_00  # the sample catalog's opening freeze of cdb


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, orders_table, resources_table, ledger_transactions, statement_entries)


def purchase(rt, uin, items, key):
    with rt.engine.begin() as conn:
        return orders.create_purchase(conn, rt.clock, SYSTEM, uin, items, key=key)


def renew(rt, uin, resource_id, months, key):
    with rt.engine.begin() as conn:
        return orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, months, key=key)


def upgrade(rt, uin, resource_id, spec, key):
    with rt.engine.begin() as conn:
        return orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, spec, key=key)


def open_(rt, uin, key, **changed):
    with rt.engine.begin() as conn:
        return postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, **{**CDB, **changed}, key=key)


def delivered_cvm(rt, uin) -> str:
    (order_id,) = helpers.buy(rt, uin)
    helpers.pay(rt, uin, [order_id])
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)["resource_id"]


def refused_key(call, error=Conflict):
    """``call`` is refused naming idempotency_key, in both languages."""
    with pytest.raises(error) as err:
        call()
    assert err.value.field == "idempotency_key", err.value.message
    assert err.value.message_zh and err.value.message_en
    assert "幂等键" in err.value.message_zh and "idempotency key" in err.value.message_en
    return err.value


# ---------------------------------------------------------------- repeats

def test_a_repeated_purchase_returns_all_its_orders_in_order_and_writes_nothing(shop):
    rt = shop
    uin = new_account(rt)
    first = purchase(rt, uin, [CVM, SSL], key="buy-1")
    assert len(first) == 2
    before = written(rt)
    assert purchase(rt, uin, [CVM, SSL], key="buy-1") == first
    assert written(rt) == before
    # keys are the account's own: another account's "buy-1" is a purchase of its own
    other = new_account(rt, "other")
    assert purchase(rt, other, [CVM], key="buy-1") not in (first, first[:1])
    # without a key every call is a new purchase, as before
    assert helpers.buy(rt, uin) != helpers.buy(rt, uin)


def test_a_repeat_returns_the_order_even_once_it_is_paid_and_delivered(shop):
    """A client that lost the answer retries later: it gets the order it made, not a
    second renewal or a refusal because the resource changed since."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = delivered_cvm(rt, uin)
    renewal = renew(rt, uin, resource_id, 1, key="renew-1")
    helpers.pay(rt, uin, [renewal])
    up = upgrade(rt, uin, resource_id, "S5.LARGE8", key="up-1")
    helpers.pay(rt, uin, [up])  # the resource is LARGE8 now: a new upgrade to it is refused
    before = written(rt)
    assert renew(rt, uin, resource_id, 1, key="renew-1") == renewal
    assert upgrade(rt, uin, resource_id, "S5.LARGE8", key="up-1") == up
    assert written(rt) == before
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-1")
def test_a_repeated_opening_returns_its_resource_and_freezes_once(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    resource_id = open_(rt, uin, "open-1")
    before = written(rt)
    assert open_(rt, uin, "open-1") == resource_id
    assert written(rt) == before
    assert balance(rt, uin).frozen == CDB_FREEZE
    assert open_(rt, uin, "open-2") != resource_id  # another key: another resource
    assert balance(rt, uin).frozen == 2 * CDB_FREEZE
    assert_reconciled(rt)


# ---------------------------------------------------------------- another request

def test_a_key_used_for_another_request_is_a_conflict_and_writes_nothing(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = delivered_cvm(rt, uin)
    other_resource = delivered_cvm(rt, uin)
    purchase(rt, uin, [CVM, SSL], key="k-buy")
    renew(rt, uin, resource_id, 1, key="k-renew")
    before = written(rt)
    refused_key(lambda: purchase(rt, uin, [CVM], key="k-buy"))  # other items
    refused_key(lambda: purchase(rt, uin, [SSL, CVM], key="k-buy"))  # in another order
    refused_key(lambda: renew(rt, uin, other_resource, 1, key="k-renew"))  # another resource
    refused_key(lambda: renew(rt, uin, resource_id, 2, key="k-renew"))  # other months
    refused_key(lambda: upgrade(rt, uin, resource_id, "S5.LARGE8", key="k-renew"))  # kind
    refused_key(lambda: purchase(rt, uin, [CVM], key="k-renew"))
    refused_key(lambda: renew(rt, uin, resource_id, 1, key="k-buy"))
    with rt.engine.begin() as conn:  # refunds and downgrades share the orders' keys
        refused_key(lambda: orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id,
                                                   key="k-renew"))
    assert written(rt) == before


@pytest.mark.spec("FRZ-1")
def test_an_opening_key_used_for_another_resource_is_a_conflict(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    open_(rt, uin, "open-1")
    before = written(rt)
    refused_key(lambda: open_(rt, uin, "open-1", spec_item="MYSQL.4C8G"))
    refused_key(lambda: open_(rt, uin, "open-1", count=2))
    refused_key(lambda: open_(rt, uin, "open-1", product="cvm", spec_item="S5.MEDIUM4"))
    assert written(rt) == before


# ---------------------------------------------------------------- malformed keys

BAD_KEYS = ["", "k" * 161, "line\nbreak", "nul\x00", 7, b"bytes"]


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_a_malformed_key_is_refused_naming_it_and_nothing_is_written(shop, bad):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = delivered_cvm(rt, uin)
    before = written(rt)
    for call in (lambda: purchase(rt, uin, [CVM], key=bad),
                 lambda: renew(rt, uin, resource_id, 1, key=bad),
                 lambda: upgrade(rt, uin, resource_id, "S5.LARGE8", key=bad),
                 lambda: open_(rt, uin, bad)):
        error = refused_key(call, InvalidInput)
        assert "160" in error.message_zh and "160" in error.message_en
    assert written(rt) == before


def test_a_key_of_160_characters_is_taken(shop):
    rt = shop
    uin = new_account(rt)
    longest = "k" * 160
    assert purchase(rt, uin, [CVM], key=longest) == purchase(rt, uin, [CVM], key=longest)


# ---------------------------------------------------------------- the REST API

@pytest.fixture
def served(live_server_on_test_clock):
    rt, _ = live_server_on_test_clock
    load_sample_catalog(rt)
    return live_server_on_test_clock


def test_rest_creations_take_the_key_in_the_header_or_the_body(served):
    from tests.test_rest_orders import CVM as CVM_BODY
    from tests.test_rest_orders import Shopper

    rt, address = served
    me = Shopper(rt, address, "rest-keys", cash_fen=5_000_00)
    url = f"{me.base}/orders"
    first = me.api.post(url, {"items": [CVM_BODY, CVM_BODY]}, Idempotency_Key="buy-1")["orders"]
    before = written(rt)
    again = me.api.post(url, {"items": [CVM_BODY, CVM_BODY]}, Idempotency_Key="buy-1")["orders"]
    assert [o["order_no"] for o in again] == [o["order_no"] for o in first]
    assert len(first) == 2 and written(rt) == before
    in_body = me.api.post(url, {"items": [CVM_BODY], "idempotency_key": "buy-2"})["orders"]
    assert me.api.post(url, {"items": [CVM_BODY]}, Idempotency_Key="buy-2")["orders"] == in_body
    me.pay(first[0]["order_no"], key="pay-1")
    resource_id = me.order(first[0]["order_no"])["resource_id"]
    renewal = me.change(resource_id, action="renew", months=1, idempotency_key="renew-1")
    assert me.change(resource_id, action="renew", months=1,
                     idempotency_key="renew-1")["order_no"] == renewal["order_no"]
    opened = me.api.post(f"{me.base}/postpaid-resources", CDB, Idempotency_Key="open-1")
    assert me.api.post(f"{me.base}/postpaid-resources", {**CDB, "idempotency_key": "open-1"}
                       )["id"] == opened["id"]
    assert me.balance()["frozen"] == "20.00"


def test_rest_a_reused_or_malformed_key_is_refused_naming_it(served):
    from tests.test_rest_orders import CVM as CVM_BODY
    from tests.test_rest_orders import Shopper, refused

    rt, address = served
    me = Shopper(rt, address, "rest-bad-keys", cash_fen=100_00)
    url = f"{me.base}/orders"
    me.api.post(url, {"items": [CVM_BODY]}, Idempotency_Key="buy-1")
    before = written(rt)
    refused(lambda: me.api.post(url, {"items": [{**CVM_BODY, "count": 2}]},
                                Idempotency_Key="buy-1"), 409, "idempotency_key")
    refused(lambda: me.api.post(url, {"items": [CVM_BODY], "idempotency_key": "k" * 129}),
            400, "idempotency_key")
    refused(lambda: me.api.post(url, {"items": [CVM_BODY]}, Idempotency_Key="k" * 161),
            400, "idempotency_key")
    refused(lambda: me.api.post(f"{me.base}/postpaid-resources",
                                {**CDB, "idempotency_key": ""}), 400, "idempotency_key")
    assert written(rt) == before
