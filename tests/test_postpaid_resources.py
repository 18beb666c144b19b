"""Postpaid resources: opening behind the arrears gate with a freeze, release (FRZ-1/3)."""

from datetime import timedelta

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.errors import AccountInArrears, Conflict, FeeCenterError
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from tests.helpers import OPS, add_cash, add_gift, balance, new_account


@pytest.fixture
def shop(rt):
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    return rt


def open_(rt, uin, product="cdb", spec=None, region="ap-guangzhou"):
    with rt.engine.begin() as conn:
        spec = spec or next(i["code"] for i in catalog.list_items(conn, product) if i["spec"])
        return postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product=product,
                                      region=region, spec_item=spec)


@pytest.mark.spec("FRZ-1", "FRZ-2", "FRZ-3", "FRZ-4")
def test_opening_freezes_gift_then_cash_and_release_unfreezes(shop):
    rt = shop
    with rt.engine.connect() as conn:
        freeze = catalog.get_product(conn, "cdb").freeze_amount
        rule = catalog.get_product(conn, "cdb").freeze_release
    assert freeze > 0
    uin = new_account(rt)
    add_gift(rt, uin, freeze // 2)
    add_cash(rt, uin, freeze * 3)
    resource_id = open_(rt, uin)
    view = balance(rt, uin)
    assert (view.frozen, view.available) == (freeze, freeze * 3 + freeze // 2 - freeze)
    with rt.engine.connect() as conn:
        kinds = [e["action_type"] for e in funds.list_transactions(
            conn, SYSTEM, uin, funds.StatementQuery())["items"]]
    assert kinds[0] == "block"
    with rt.engine.begin() as conn:
        released = postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, resource_id)
    if rule == "immediate":
        assert balance(rt, uin).frozen == 0
    else:  # released at the next settlement boundary, and the time is known now
        assert released["freeze_release_at"] > rt.clock.now()
        assert balance(rt, uin).frozen == freeze
        rt.clock.set(released["freeze_release_at"] + timedelta(seconds=1))
        with rt.engine.begin() as conn:
            assert postpaid.release_due_freezes(conn, rt.clock) == 1
            assert postpaid.release_due_freezes(conn, rt.clock) == 0
        assert balance(rt, uin).frozen == 0
    with rt.engine.begin() as conn, pytest.raises(Conflict):
        postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, resource_id)
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []


@pytest.mark.spec("FRZ-3")
def test_next_settlement_boundaries():
    from datetime import datetime, timezone

    when = datetime(2026, 1, 31, 15, 30, tzinfo=timezone.utc)  # 23:30 in Shanghai
    assert postpaid.next_settlement("hour", when) == datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert postpaid.next_settlement("day", when) == datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert postpaid.next_settlement("month", when) == datetime(2026, 1, 31, 16, 0, tzinfo=timezone.utc)
    assert postpaid.next_settlement("month", when - timedelta(days=2)) == datetime(
        2026, 1, 31, 16, 0, tzinfo=timezone.utc)


@pytest.mark.spec("ARR-1", "FRZ-1")
def test_opening_is_gated_and_needs_money_for_the_freeze(shop):
    rt = shop
    uin = new_account(rt)
    with pytest.raises(FeeCenterError) as err:  # nothing to freeze from
        open_(rt, uin)
    assert err.value.code == "InsufficientBalance"
    add_cash(rt, uin, 10_000_00)
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 10_000_01, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    with pytest.raises(AccountInArrears):
        open_(rt, uin, product="cvm")
    with rt.engine.connect() as conn:
        assert resources.list_resources(conn, SYSTEM, uin) == []


def test_only_postpaid_products_open_here(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    with pytest.raises(FeeCenterError) as err:
        open_(rt, uin, product="ssl", region="mainland")
    assert err.value.field == "product"
