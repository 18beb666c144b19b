"""Prepaid orders through the official Tencent Cloud Billing SDK, served for real (XTR-5).

``PayDeals`` pays orders (by order number, or by big deal for a merged
purchase), ``DescribeDealsByCond`` lists them with Tencent's status codes and
amounts in fen, and ``DescribeAccountBalance`` shows credit control (BAL-7).

The server runs on the system clock (the SDK signs with the real time), so
an order is made to expire by moving its ``expires_at`` into the past with
SQL. Two identical signed requests in the same second are refused as a
replay, so every listing below differs from the previous one in some
parameter (``deals`` varies ``Limit``, which does not change the answer).
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import business_time_text, db_time
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.rules import order_no
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import (OPS, add_cash, add_gift, api_key, assert_reconciled, balance, buy,
                           load_sample_catalog, new_account, pay, row_counts)

pytestmark = pytest.mark.spec("XTR-5")

CVM_MEDIUM_MONTH = 178_00  # sample catalog, S5.MEDIUM4 prepaid: 178.00 yuan a month
CVM_LARGE_MONTH = 356_00   # S5.LARGE8
SSL_OV_YEAR = 3960_00      # ssl OV.single: 330.00 a month, sold by the year

_limits = itertools.count()


# ---------------------------------------------------------------- helpers

@pytest.fixture
def shop(live_server):
    rt, _ = live_server
    load_sample_catalog(rt)
    return live_server


def sdk(address: str, key) -> billing_client.BillingClient:
    http = HttpProfile(protocol="http", endpoint=address, reqTimeout=15)
    return billing_client.BillingClient(credential.Credential(key.secret_id, key.secret_key), "",
                                        ClientProfile(httpProfile=http))


def customer(rt, address, uin):
    return sdk(address, api_key(rt, uin))


def funded_customer(rt, address, name: str, cash: int):
    """A new account with ``cash`` fen and an SDK client of its own: (uin, client)."""
    uin = new_account(rt, name)
    add_cash(rt, uin, cash)
    return uin, customer(rt, address, uin)


def row(rt, order_id) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(orders_table).where(orders_table.c.id == order_id))
                    .mappings().one())


def number(rt, order_id) -> str:
    return order_no(order_id, row(rt, order_id)["created_at"])


def written(rt) -> tuple[int, int, int]:
    return row_counts(rt, ledger_transactions, statement_entries, payments)


def deals(client, rt, **params) -> models.DescribeDealsByCondResponse:
    now = rt.clock.now()
    body = {"StartTime": business_time_text(now - timedelta(days=3)),
            "EndTime": business_time_text(now + timedelta(days=1)),
            "Limit": 900 - next(_limits), "Offset": 0, **params}
    req = models.DescribeDealsByCondRequest()
    req.from_json_string(json.dumps(body))
    return client.DescribeDealsByCond(req)


def pay_deals(client, **params) -> models.PayDealsResponse:
    req = models.PayDealsRequest()
    req.from_json_string(json.dumps(params))
    return client.PayDeals(req)


def account_balance(rt, address, uin, temp_credit: bool | None = None):
    """With a key of its own each time: a repeated identical request is then no replay."""
    req = models.DescribeAccountBalanceRequest()
    if temp_credit is not None:
        req.TempCredit = temp_credit
    return customer(rt, address, uin).DescribeAccountBalance(req)


# ---------------------------------------------------------------- PayDeals and DescribeDealsByCond

@pytest.mark.spec("ORD-3", "BAL-3")
def test_pay_deals_by_order_id_pays_the_order_gift_first(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-pay")
    add_cash(rt, uin, 500_00)
    add_gift(rt, uin, 30_00)
    client = customer(rt, address, uin)
    (order_id,) = buy(rt, uin, ("cvm", "S5.MEDIUM4", 2, "ap-guangzhou"))
    no = number(rt, order_id)

    listed = deals(client, rt, OrderId=no)
    assert listed.TotalCount == 1
    (deal,) = listed.Deals
    assert (deal.OrderId, deal.Status, deal.Payer) == (no, 1, str(uin))
    assert (deal.TotalCost, deal.RealTotalCost, deal.VoucherDecline) == (2 * CVM_MEDIUM_MONTH,
                                                                       2 * CVM_MEDIUM_MONTH, 0)
    assert (deal.ProductCode, deal.SubProductCode, deal.ZoneCode) == ("cvm", "S5.MEDIUM4",
                                                                      "ap-guangzhou")
    assert (deal.TimeSpan, deal.TimeUnit, deal.PayMode, deal.Action) == (2, "m", "prePay",
                                                                        "purchase")
    assert deal.Currency == "CNY" and deal.BigDealId == no
    resource_id = deal.ResourceId[0]

    paid = pay_deals(client, OrderIds=[no])
    assert paid.OrderIds == [no] and paid.ResourceIds == [resource_id]
    assert paid.BigDealIds == [no] and paid.RequestId

    before = written(rt)
    again = pay_deals(customer(rt, address, uin), OrderIds=[no])  # a retry, with another key
    assert (again.OrderIds, again.ResourceIds) == ([no], [resource_id])
    assert written(rt) == before  # the first payment, nothing new

    (after,) = deals(client, rt, OrderId=no).Deals
    assert after.Status == 4  # delivered (cvm is delivered automatically)
    assert after.RealTotalCost == 2 * CVM_MEDIUM_MONTH
    money = account_balance(rt, address, uin)
    # ORD-3 / BAL-3: gift first, then cash
    assert (money.PresentAccountBalance, money.CashAccountBalance, money.FreezeAmount) == (
        0, 500_00 + 30_00 - 2 * CVM_MEDIUM_MONTH, 0)
    placed = row(rt, order_id)
    assert (placed["paid_gift"], placed["paid_cash"]) == (30_00, 2 * CVM_MEDIUM_MONTH - 30_00)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3")
def test_pay_deals_by_big_deal_pays_a_merged_purchase_in_one_payment(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-bigdeal", 1_000_00)
    first, second = buy(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                        ("cvm", "S5.LARGE8", 1, "ap-shanghai"))
    big = number(rt, first)

    listed = deals(client, rt, BigDealId=big)
    assert listed.TotalCount == 2
    assert {d.OrderId for d in listed.Deals} == {number(rt, first), number(rt, second)}
    assert {d.BigDealId for d in listed.Deals} == {big}
    assert sorted(d.RealTotalCost for d in listed.Deals) == [CVM_MEDIUM_MONTH, CVM_LARGE_MONTH]

    before = written(rt)
    paid = pay_deals(client, BigDealIds=[big])
    assert sorted(paid.OrderIds) == sorted([number(rt, first), number(rt, second)])
    assert paid.BigDealIds == [big] and len(paid.ResourceIds) == 2
    assert written(rt)[2] == before[2] + 1  # one payment for both orders
    assert {d.Status for d in deals(client, rt, BigDealId=big, Status=4).Deals} == {4}
    assert row(rt, first)["payment_id"] == row(rt, second)["payment_id"]
    assert balance(rt, uin).cash == 1_000_00 - CVM_MEDIUM_MONTH - CVM_LARGE_MONTH

    again = customer(rt, address, uin)  # another key: the same body is then no replay
    with pytest.raises(TencentCloudSDKException) as err:  # nothing left to pay in it
        pay_deals(again, BigDealIds=[big])
    assert err.value.get_code() == "InvalidParameterValue"
    assert "BigDealIds" in err.value.get_message()
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "ORD-2", "FRZ-3")
def test_describe_deals_reports_every_state_with_its_tencent_code(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-states", 20_000_00)
    (unpaid,) = buy(rt, uin)
    (delivered,) = buy(rt, uin)
    (refunded,) = buy(rt, uin, ("cvm", "S5.LARGE8", 1, "ap-beijing"))
    ssl = ("ssl", "OV.single", 12, "mainland")
    (paid,) = buy(rt, uin, ssl)
    (failed,) = buy(rt, uin, ssl)
    (voided,) = buy(rt, uin)
    (expired,) = buy(rt, uin)
    for i, order_id in enumerate((delivered, refunded, paid, failed)):
        pay(rt, uin, [order_id], key=f"states-{i}")
    refunded_resource = row(rt, refunded)["resource_id"]
    with rt.engine.begin() as conn:
        orders.fail_delivery(conn, rt.clock, OPS, failed, "CA 拒绝签发 / the CA refused")
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, refunded_resource,
                                           key="states-refund")
        orders.void_order(conn, rt.clock, SYSTEM, uin, voided)
        conn.execute(update(orders_table).where(orders_table.c.id == expired).values(
            expires_at=db_time(rt.clock.now() - timedelta(minutes=1))))
        assert orders.expire_unpaid(conn, rt.clock) == 1

    expected = {unpaid: 1, paid: 2, delivered: 4, failed: 5, refunded: 6, refund_id: 6,
                voided: 7, expired: 8}
    everything = deals(client, rt)
    assert everything.TotalCount == len(expected)
    assert {d.OrderId: d.Status for d in everything.Deals} == {
        number(rt, i): code for i, code in expected.items()}
    for code in (1, 2, 4, 5, 7, 8):
        filtered = deals(client, rt, Status=code)
        assert [d.OrderId for d in filtered.Deals] == [
            number(rt, i) for i, c in expected.items() if c == code]
    assert deals(client, rt, StatusSet=[6]).TotalCount == 2
    assert deals(client, rt, StatusSet=[1, 8]).TotalCount == 2

    (refund_deal,) = [d for d in everything.Deals if d.OrderId == number(rt, refund_id)]
    assert refund_deal.Action == "refund"
    assert refund_deal.RealTotalCost == -CVM_LARGE_MONTH  # inside the no-reason window: in full
    (ssl_deal,) = [d for d in everything.Deals if d.OrderId == number(rt, paid)]
    assert (ssl_deal.RealTotalCost, ssl_deal.TimeSpan, ssl_deal.ZoneCode) == (SSL_OV_YEAR, 12,
                                                                             "mainland")
    money = account_balance(rt, address, uin)
    assert money.FreezeAmount == SSL_OV_YEAR  # the paid, undelivered certificate (FRZ-3)
    assert money.CashAccountBalance == 20_000_00 - CVM_MEDIUM_MONTH  # the failed one released
    assert money.RealBalance == money.CashAccountBalance - SSL_OV_YEAR
    assert_reconciled(rt)


def test_describe_deals_filters_by_resource_and_order(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-filters", 5_000_00)
    (first,) = buy(rt, uin)
    (other,) = buy(rt, uin)
    pay(rt, uin, [first], key="filters-1")
    resource_id = row(rt, first)["resource_id"]
    with rt.engine.begin() as conn:
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 3)

    by_resource = deals(client, rt, ResourceId=resource_id)
    assert by_resource.TotalCount == 2
    assert [d.OrderId for d in by_resource.Deals] == [number(rt, renewal), number(rt, first)]
    assert [(d.Action, d.Status, d.TimeSpan) for d in by_resource.Deals] == [
        ("renew", 1, 3), ("purchase", 4, 1)]
    assert all(d.ResourceId == [resource_id] for d in by_resource.Deals)
    assert deals(client, rt, ResourceId=resource_id, Status=1).TotalCount == 1
    assert deals(client, rt, ResourceId="cvm-doesnotexist").TotalCount == 0
    (only,) = deals(client, rt, OrderId=number(rt, other)).Deals
    assert only.OrderId == number(rt, other) and only.ResourceId != [resource_id]
    page = deals(client, rt, Limit=1, Offset=1)
    assert page.TotalCount == 3 and len(page.Deals) == 1


def test_describe_deals_never_shows_another_accounts_orders(shop):
    rt, address = shop
    owner, stranger = new_account(rt, "sdk-owner"), new_account(rt, "sdk-stranger")
    (theirs,) = buy(rt, owner)
    client = customer(rt, address, stranger)
    assert deals(client, rt).TotalCount == 0
    assert deals(client, rt, OrderId=number(rt, theirs)).TotalCount == 0
    assert deals(client, rt, ResourceId=row(rt, theirs)["resource_id"]).TotalCount == 0


@pytest.mark.parametrize("params, field", [
    ({"Status": 3}, "Status"),
    ({"StatusSet": [1, 99]}, "Status"),
    ({"StartTime": "yesterday"}, "StartTime"),
    ({"OrderId": "12-34"}, "OrderId"),
    ({"Limit": 0}, "Limit"),
])
def test_describe_deals_bad_parameters_name_the_field(shop, params, field):
    rt, address = shop
    client = customer(rt, address, new_account(rt, "sdk-bad-deals"))
    with pytest.raises(TencentCloudSDKException) as err:
        deals(client, rt, **params)
    assert err.value.get_code() == "InvalidParameterValue"
    assert field in err.value.get_message()


# ---------------------------------------------------------------- refusals: nothing written

@pytest.mark.spec("ORD-2")
def test_paying_an_expired_order_is_refused_and_writes_nothing(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-expired", 1_000_00)
    (order_id,) = buy(rt, uin)
    with rt.engine.begin() as conn:  # past its 15 days; the expiry job has not run yet
        conn.execute(update(orders_table).where(orders_table.c.id == order_id).values(
            expires_at=db_time(rt.clock.now() - timedelta(seconds=1))))
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[number(rt, order_id)])
    assert err.value.get_code() == "FailedOperation.Conflict"
    assert "OrderIds" in err.value.get_message() and "过期" in err.value.get_message()
    assert written(rt) == before
    assert row(rt, order_id)["state"] == "unpaid" and balance(rt, uin).cash == 1_000_00


@pytest.mark.spec("ORD-2")
def test_a_promotional_order_expires_after_its_own_term(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-promo", 1_000_00)
    (promo,) = buy(rt, uin, promo_term_days=1)
    placed = row(rt, promo)
    term = placed["expires_at"] - placed["created_at"]
    assert abs(term - timedelta(days=1)) < timedelta(seconds=1)  # not the usual 15 days
    with rt.engine.begin() as conn:
        conn.execute(update(orders_table).where(orders_table.c.id == promo).values(
            created_at=placed["created_at"] - timedelta(days=1, seconds=5),
            expires_at=placed["expires_at"] - timedelta(days=1, seconds=5)))
        assert orders.expire_unpaid(conn, rt.clock) == 1
    (deal,) = deals(client, rt, OrderId=number(rt, promo)).Deals
    assert deal.Status == 8
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[deal.OrderId])
    assert err.value.get_code() == "FailedOperation.Conflict"
    assert "OrderIds" in err.value.get_message()
    assert balance(rt, uin).cash == 1_000_00


def test_paying_a_voided_order_is_refused(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-voided", 1_000_00)
    (order_id,) = buy(rt, uin)
    with rt.engine.begin() as conn:
        orders.void_order(conn, rt.clock, SYSTEM, uin, order_id)
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[number(rt, order_id)])
    assert err.value.get_code() == "FailedOperation.Conflict"
    assert "OrderIds" in err.value.get_message() and "voided" in err.value.get_message()
    assert written(rt) == before
    assert row(rt, order_id)["state"] == "voided"


@pytest.mark.spec("ACC-2")
def test_paying_someone_elses_order_is_not_found_and_writes_nothing(shop):
    rt, address = shop
    owner, stranger = new_account(rt, "sdk-victim"), new_account(rt, "sdk-thief")
    add_cash(rt, stranger, 1_000_00)
    add_cash(rt, owner, 1_000_00)
    (theirs,) = buy(rt, owner)
    client = customer(rt, address, stranger)
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[number(rt, theirs)])
    assert err.value.get_code() == "ResourceNotFound"
    assert "OrderIds" in err.value.get_message()
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, BigDealIds=[number(rt, theirs)])
    assert err.value.get_code() == "InvalidParameterValue"  # no unpaid order of *this* account
    assert written(rt) == before
    assert row(rt, theirs)["state"] == "unpaid"
    assert (balance(rt, stranger).cash, balance(rt, owner).cash) == (1_000_00, 1_000_00)


@pytest.mark.spec("ACC-2")
def test_someone_elses_paid_order_is_still_not_found(shop):
    """The owner paid with PayDeals; a stranger naming the same order must learn nothing."""
    rt, address = shop
    owner, stranger = new_account(rt, "sdk-paid-owner"), new_account(rt, "sdk-paid-stranger")
    add_cash(rt, owner, 1_000_00)
    add_cash(rt, stranger, 1_000_00)
    (theirs,) = buy(rt, owner)
    pay_deals(customer(rt, address, owner), OrderIds=[number(rt, theirs)])
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(customer(rt, address, stranger), OrderIds=[number(rt, theirs)])
    assert err.value.get_code() == "ResourceNotFound", err.value.get_message()
    assert "OrderIds" in err.value.get_message()
    assert written(rt) == before


@pytest.mark.spec("BAL-4")
def test_paying_more_than_the_balance_is_refused(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-short", 100_00)
    (order_id,) = buy(rt, uin)
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[number(rt, order_id)])
    assert err.value.get_code() == "FailedOperation.BalanceInsufficient"
    assert written(rt) == before
    assert balance(rt, uin).cash == 100_00 and row(rt, order_id)["state"] == "unpaid"


@pytest.mark.spec("ARR-1")
def test_an_account_in_arrears_cannot_pay(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-arrears")
    client = customer(rt, address, uin)
    (order_id,) = buy(rt, uin)
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 12_34, key="sdk-arrears-usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, OrderIds=[number(rt, order_id)])
    assert err.value.get_code() == "FailedOperation.AccountInArrears"
    assert "12.34" in err.value.get_message()
    assert row(rt, order_id)["state"] == "unpaid"


@pytest.mark.spec("ORD-3", "CPN-1")
def test_pay_deals_uses_vouchers_only_when_asked(shop):
    """Tencent's default is AutoVoucher 0: no voucher unless picked or asked for."""
    from feecenter.coupons import rules as coupon_rules
    from feecenter.coupons import service as coupons

    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-voucher", 1_000_00)
    with rt.engine.begin() as conn:
        voucher = coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=30_00,
            valid_days=30), campaign="sdk")
    plain, auto, picked = (buy(rt, uin)[0] for _ in range(3))
    pay_deals(client, OrderIds=[number(rt, plain)])
    assert row(rt, plain)["paid_coupon"] == 0
    pay_deals(client, OrderIds=[number(rt, auto)], AutoVoucher=1)
    assert row(rt, auto)["paid_coupon"] == 30_00
    (deal,) = deals(client, rt, OrderId=number(rt, auto)).Deals
    assert (deal.TotalCost, deal.RealTotalCost, deal.VoucherDecline) == (
        CVM_MEDIUM_MONTH, CVM_MEDIUM_MONTH - 30_00, 30_00)
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:  # not a voucher of the account
        pay_deals(client, OrderIds=[number(rt, picked)], VoucherIds=[str(voucher + 1000)])
    assert "VoucherIds" in err.value.get_message() and written(rt) == before
    assert balance(rt, uin).cash == 1_000_00 - CVM_MEDIUM_MONTH - (CVM_MEDIUM_MONTH - 30_00)
    assert_reconciled(rt)


@pytest.mark.parametrize("params, field", [
    ({}, "OrderIds"),
    ({"OrderIds": ["x"], "BigDealIds": ["y"]}, "OrderIds"),
    ({"OrderIds": ["not-a-number"]}, "OrderIds"),
    ({"BigDealIds": ["2026-11"]}, "BigDealIds"),
    ({"OrderIds": ["202601010000000001"], "VoucherIds": ["v1"]}, "VoucherIds"),
])
def test_pay_deals_bad_parameters_name_the_field(shop, params, field):
    rt, address = shop
    uin = new_account(rt, "sdk-bad-pay")
    client = customer(rt, address, uin)
    before = written(rt)
    with pytest.raises(TencentCloudSDKException) as err:
        pay_deals(client, **params)
    assert err.value.get_code() == "InvalidParameterValue"
    assert field in err.value.get_message()
    assert written(rt) == before


# ---------------------------------------------------------------- credit control

@pytest.mark.spec("BAL-7", "ARR-4")
def test_account_balance_shows_credit_and_pay_deals_draws_on_it(shop):
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-credit", 100_00)
    money = account_balance(rt, address, uin, temp_credit=True)
    assert (money.CreditAmount, money.CreditBalance, money.RealCreditBalance, money.TempCredit) == (
        0, 100_00, 100_00, 0)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=1_000_00, temp_credit=200_00,
                           temp_credit_end=rt.clock.now() + timedelta(days=30))

    money = account_balance(rt, address, uin, temp_credit=True)
    assert money.CreditAmount == 1_200_00  # limit + temporary credit in force
    assert money.CreditBalance == 100_00 + 1_200_00
    assert money.RealCreditBalance == money.CreditBalance  # nothing frozen
    assert money.TempCredit == 200_00
    assert (money.Balance, money.CashAccountBalance) == (100_00, 100_00)  # credit is not balance
    # the temporary credit only when asked for
    assert account_balance(rt, address, uin, temp_credit=False).TempCredit == 0

    (order_id,) = buy(rt, uin)
    pay_deals(client, OrderIds=[number(rt, order_id)])
    placed = row(rt, order_id)
    assert (placed["paid_cash"], placed["paid_credit"]) == (100_00, CVM_MEDIUM_MONTH - 100_00)
    money = account_balance(rt, address, uin)
    assert (money.CashAccountBalance, money.Balance, money.OweAmount) == (0, 0, 0)
    assert money.CreditBalance == 1_200_00 - (CVM_MEDIUM_MONTH - 100_00)
    assert money.RealCreditBalance == money.CreditBalance

    (ssl,) = buy(rt, uin, ("ssl", "OV.single", 12, "mainland"))
    with pytest.raises(TencentCloudSDKException) as err:  # 3,960.00 is beyond the credit left
        pay_deals(client, OrderIds=[number(rt, ssl)])
    assert err.value.get_code() == "FailedOperation.BalanceInsufficient"

    add_cash(rt, uin, 100_00, key="sdk-credit-repay")  # repays the 78.00 advance first (ARR-4)
    money = account_balance(rt, address, uin, temp_credit=True)
    assert money.CashAccountBalance == 100_00 - (CVM_MEDIUM_MONTH - 100_00)
    assert money.CreditBalance == money.CashAccountBalance + 1_200_00
    assert money.TempCredit == 200_00
    assert_reconciled(rt)


@pytest.mark.spec("BAL-7", "FRZ-2")
def test_real_credit_balance_leaves_out_what_is_frozen(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-credit-frozen")
    add_cash(rt, uin, 5_000_00)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=500_00)
    client = customer(rt, address, uin)
    (ssl,) = buy(rt, uin, ("ssl", "OV.single", 12, "mainland"))
    pay_deals(client, OrderIds=[number(rt, ssl)])
    money = account_balance(rt, address, uin)
    assert money.FreezeAmount == SSL_OV_YEAR  # manual delivery: frozen until delivered
    assert money.CreditAmount == 500_00
    assert money.CreditBalance == 5_000_00 + 500_00
    assert money.RealCreditBalance == 5_000_00 + 500_00 - SSL_OV_YEAR
    assert money.RealBalance == 5_000_00 - SSL_OV_YEAR


@pytest.mark.slow
@pytest.mark.spec("ORD-3")
def test_pay_deals_pays_the_largest_merged_purchase(shop):
    """A big deal of 100 orders (the most one payment takes) is paid by one PayDeals."""
    rt, address = shop
    uin, client = funded_customer(rt, address, "sdk-hundred", 100 * CVM_MEDIUM_MONTH)
    ids = buy(rt, uin, *[("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")] * 100)
    paid = pay_deals(client, BigDealIds=[number(rt, ids[0])])
    assert len(paid.OrderIds) == 100 and len(set(paid.ResourceIds)) == 100
    assert balance(rt, uin).cash == 0
    assert deals(client, rt, Status=4).TotalCount == 100
