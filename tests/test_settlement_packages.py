"""Resource packages (SET-10) and postpaid coupons (SET-6) at settlement."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from feecenter.clock import BUSINESS_TZ
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.funds import service as funds
from feecenter.packages import service as packages
from feecenter.packages.tables import package_uses
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay, row_counts)
from tests.test_settlement import ingest, lines, open_, settle

GB = 1_000_000
DAY1 = datetime(2026, 3, 3, tzinfo=BUSINESS_TZ)  # the first whole business day after START
DAY2 = DAY1 + timedelta(days=1)
STORAGE_PRICE = 393_333  # cos storage_std, 1e-8 yuan per GB-day (sample catalog)


@pytest.fixture
def shop(rt):
    """The sample catalog; an account with 100 yuan, a postpaid cos bucket in Guangzhou."""
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    bucket = open_(rt, uin, product="cos", spec="storage_std")
    return rt, uin, bucket


def buy_package(rt, uin, spec, count=1, region="ap-guangzhou") -> str:
    [order_id] = buy(rt, uin, ("cospack", spec, 1, region), count=count)
    result = pay(rt, uin, [order_id])
    assert result["states"] == {order_id: "delivered"}
    [resource_id] = result["resource_ids"]
    return resource_id


def use(rt, uin, bucket, item, gb, day, tag=""):
    rt.clock.set(day + timedelta(days=1, hours=1))
    ingest(rt, [(f"{bucket}-{item}-{day:%d}{tag}", uin, bucket, item, str(gb), day,
                 day + timedelta(days=1))])


def line_of(rt, uin, item, day):
    key = f"{day:%Y-%m-%d}"
    [line] = [x for x in lines(rt, uin) if x["billing_item"] == item and x["period_key"] == key]
    return line


@pytest.mark.spec("SET-10", "SET-2")
def test_a_storage_package_covers_each_day_up_to_its_size_and_the_rest_is_charged(shop):
    rt, uin, bucket = shop
    package = buy_package(rt, uin, "std-100GB")
    cash_before = balance(rt, uin).cash
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    line = line_of(rt, uin, "storage_std", DAY1)
    assert (line["quantity"], line["package_quantity"]) == (150 * GB, 100 * GB)
    assert line["discounted_amount"] == 50 * STORAGE_PRICE  # only what the package left
    assert line["deducted"] == 20 and balance(rt, uin).cash == cash_before - 20
    with rt.engine.connect() as conn:
        [trace] = packages.uses_of(conn, uin)
    assert (trace["package_id"], trace["resource_id"], trace["quantity"]) == (package, bucket,
                                                                             100 * GB)
    # the next day the capacity is whole again
    use(rt, uin, bucket, "storage_std", 80, DAY2)
    settle(rt, "day", DAY2)
    assert line_of(rt, uin, "storage_std", DAY2)["package_quantity"] == 80 * GB
    assert line_of(rt, uin, "storage_std", DAY2)["deducted"] == 0
    assert_reconciled(rt)


@pytest.mark.spec("SET-10", "SET-8")
def test_a_monthly_traffic_pool_is_drawn_down_and_a_rerun_covers_nothing_twice(shop):
    rt, uin, bucket = shop
    buy_package(rt, uin, "traffic-100GB")
    use(rt, uin, bucket, "traffic_out", 60, DAY1)
    settle(rt, "day", DAY1)
    use(rt, uin, bucket, "traffic_out", 60, DAY2)
    settle(rt, "day", DAY2)
    first, second = line_of(rt, uin, "traffic_out", DAY1), line_of(rt, uin, "traffic_out", DAY2)
    assert (first["package_quantity"], first["deducted"]) == (60 * GB, 0)
    assert (second["package_quantity"], second["deducted"]) == (40 * GB, 10_00)  # 20 GB × 0.50
    before = row_counts(rt, package_uses)
    settle(rt, "day", DAY2)  # settling again changes nothing
    assert row_counts(rt, package_uses) == before
    assert line_of(rt, uin, "traffic_out", DAY2) == second


@pytest.mark.spec("SET-10")
def test_packages_cover_only_their_region_and_while_in_force(shop):
    rt, uin, bucket = shop
    buy_package(rt, uin, "std-100GB", region="ap-shanghai")
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    assert line_of(rt, uin, "storage_std", DAY1)["package_quantity"] == 0
    late = DAY1 + timedelta(days=40)  # a month's package bought on 2 March has ended
    buy_package(rt, uin, "std-100GB")
    use(rt, uin, bucket, "storage_std", 150, late, tag="late")
    settle(rt, "day", late)
    assert line_of(rt, uin, "storage_std", late)["package_quantity"] == 0


def grant_voucher(rt, uin, fen, **kw) -> int:
    terms = coupon_rules.Terms(kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.POSTPAID,
                               face_amount=fen, product_scope=coupon_rules.ONLY,
                               products=("cos",), valid_days=90, **kw)
    with rt.engine.begin() as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, terms, campaign="postpaid-trial")


def remaining(rt, coupon_id) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(coupons_table.c.remaining)
                            .where(coupons_table.c.id == coupon_id)).scalar_one()


@pytest.mark.spec("SET-6", "CPN-3")
def test_a_postpaid_voucher_pays_the_settlement_before_the_balance(shop):
    rt, uin, bucket = shop
    voucher = grant_voucher(rt, uin, 50)
    cash_before = balance(rt, uin).cash
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    line = line_of(rt, uin, "storage_std", DAY1)
    assert (line["deducted"], line["voucher_paid"], line["cash_paid"]) == (59, 50, 9)
    assert remaining(rt, voucher) == 0
    assert balance(rt, uin).cash == cash_before - 9
    settle(rt, "day", DAY1)  # a rerun takes nothing more from the coupon or the balance
    assert balance(rt, uin).cash == cash_before - 9
    assert_reconciled(rt)


@pytest.mark.spec("SET-6", "ARR-5")
def test_no_coupon_pays_while_the_account_is_in_arrears(shop):
    rt, uin, bucket = shop
    voucher = grant_voucher(rt, uin, 50)
    available = balance(rt, uin).available
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, available + 1, key="overdraw",
                    postpaid=True, revenue_account_id=funds.platform_account(conn, rt.clock,
                                                                             "revenue"))
    use(rt, uin, bucket, "storage_std", 150, DAY1)
    settle(rt, "day", DAY1)
    line = line_of(rt, uin, "storage_std", DAY1)
    assert (line["voucher_paid"], line["arrears"]) == (0, 59)
    assert remaining(rt, voucher) == 50
    assert_reconciled(rt)
