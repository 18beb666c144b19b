"""The renewal actions through the official Tencent Cloud Billing SDK, served for real
(XTR-5): ``DescribeRenewInstances`` lists renewal management (RNW-7) with its
filters and paging, ``SetRenewal`` sets one instance's auto-renew flag and period,
``RenewInstance`` renews and pays from the balance at once (a ClientToken repeat
pays once; a resource in the recycle bin is restored, RNW-6), ``RefundInstance``
refunds (ORD-4); bad input answers the Tencent error code and writes nothing.

The server runs on the system clock (the SDK signs with the real time); two
identical signed requests in one second are a replay, so repeated calls vary a
parameter that does not change the answer.
"""

from __future__ import annotations

import itertools
import json

import pytest
from tencentcloud.billing.v20180709 import models
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import add_months, business_time_text, from_db_time
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.rules import order_no, parse_order_ref
from feecenter.orders.tables import orders as orders_table
from feecenter.renewal import settings
from feecenter.renewal.tables import renewal_settings
from feecenter.resources import service as resources
from tests.helpers import (add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay, row_counts)
from tests.test_compat_orders_sdk import customer

# the SDK warns of a response field its models lack: every field we send is Tencent's
pytestmark = [pytest.mark.spec("XTR-5"), pytest.mark.filterwarnings("error::UserWarning")]

AUTO, MANUAL = "NOTIFY_AND_AUTO_RENEW", "NOTIFY_AND_MANUAL_RENEW"
CVM_MEDIUM_MONTH = 178_00
_sizes = itertools.count()


@pytest.fixture
def shop(live_server):
    rt, _ = live_server
    load_sample_catalog(rt)
    return live_server


def bought(rt, uin, *items) -> list[str]:
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


def call(client, action: str, **params):
    req = getattr(models, f"{action}Request")()
    req.from_json_string(json.dumps(params))
    return getattr(client, action)(req)


def listing(client, **params) -> models.DescribeRenewInstancesResponse:
    """DescribeRenewInstances; MaxResults varies (a repeat is no replay) unless given."""
    params.setdefault("MaxResults", 100 - next(_sizes) % 50)
    return call(client, "DescribeRenewInstances", **params)


def refused(client, action: str, **params) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as err:
        call(client, action, **params)
    return err.value


def resource(rt, uin, resource_id) -> dict:
    with rt.engine.connect() as conn:
        return resources.get_resource(conn, uin, resource_id)


def order_of(rt, number: str) -> dict:
    """The order an order number (as the API returns it) names."""
    with rt.engine.connect() as conn:
        return dict(conn.execute(orders_table.select().where(
            orders_table.c.id == parse_order_ref(number))).mappings().one())


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, ledger_transactions, statement_entries, orders_table, renewal_settings)


# ---------------------------------------------------------------- DescribeRenewInstances

@pytest.mark.spec("RNW-7")
def test_describe_renew_instances_fills_every_field_and_filters(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-renew-list")
    add_cash(rt, uin, 10_000_00)
    first, second, year, package = bought(
        rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"), ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"),
        ("cvm", "S5.MEDIUM4", 12, "ap-guangzhou"), ("cospack", "std-100GB", 1, "ap-guangzhou"))
    with transaction(rt.engine) as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [year], auto_renew=True, months=3)
        cvm_name = catalog.get_product(conn, "cvm").name_zh
    client = customer(rt, address, uin)

    found = listing(client)
    assert [i.InstanceId for i in found.InstanceList][2:] == [year]  # by expiry, no package
    assert {i.InstanceId for i in found.InstanceList} == {first, second, year}
    assert found.NextToken is None and found.RequestId
    shown = {i.InstanceId: i for i in found.InstanceList}
    one = shown[first]
    assert all(value is not None for value in vars(one).values())  # every field filled
    assert (one.ProductCode, one.SubProductCode, one.RegionCode) == ("cvm", "S5.MEDIUM4",
                                                                     "ap-guangzhou")
    assert (one.Status, one.RenewFlag, one.RenewPeriod, one.RenewPeriodUnit) == (
        "NORMAL", MANUAL, 1, "m")
    expiry = from_db_time(resource(rt, uin, first)["period_end"])
    assert one.ExpireTime == business_time_text(expiry)
    assert (one.InstanceName, one.ProductName, one.ProjectName) == ("", cvm_name, "默认项目")
    assert (shown[year].RenewFlag, shown[year].RenewPeriod) == (AUTO, 3)

    assert [i.InstanceId for i in listing(client, RenewFlagList=[AUTO]).InstanceList] == [year]
    assert {i.InstanceId for i in listing(client, RenewFlagList=[MANUAL]).InstanceList} == {
        first, second}
    disabled = listing(client, RenewFlagList=["DISABLE_NOTIFY_AND_MANUAL_RENEW"])
    assert disabled.InstanceList == []
    by_id = listing(client, InstanceIdList=[second, package]).InstanceList
    assert [i.InstanceId for i in by_id] == [second]
    ends = sorted(shown[r].ExpireTime for r in (first, second))  # to the second, both ends in
    window = listing(client, ExpireTimeStart=ends[0], ExpireTimeEnd=ends[1]).InstanceList
    assert {i.InstanceId for i in window} == {first, second}
    assert [i.InstanceId for i in listing(client, ExpireTimeStart=shown[year].ExpireTime)
            .InstanceList] == [year]
    assert listing(client, Reverse=True).InstanceList[0].InstanceId == year

    page = listing(client, MaxResults=2)
    assert len(page.InstanceList) == 2 and page.NextToken == "2"
    rest = listing(client, MaxResults=2, NextToken=page.NextToken)
    assert [i.InstanceId for i in rest.InstanceList] == [year] and rest.NextToken is None


@pytest.mark.parametrize("params, code, field", [
    ({"MaxResults": 0}, "InvalidParameterValue", "MaxResults"),
    ({"MaxResults": 101}, "InvalidParameterValue", "MaxResults"),
    ({"MaxResults": "10"}, "InvalidParameter", "MaxResults"),
    ({"NextToken": "abc"}, "InvalidParameterValue", "NextToken"),
    ({"RenewFlagList": ["SOMETIMES"]}, "InvalidParameterValue", "RenewFlagList"),
    ({"RenewFlagList": "NOTIFY_AND_AUTO_RENEW"}, "InvalidParameter", "RenewFlagList"),
    ({"ExpireTimeStart": "tomorrow"}, "InvalidParameterValue", "ExpireTimeStart"),
    ({"ExpireTimeStart": "2026-03-02 00:00:00", "ExpireTimeEnd": "2026-03-01 00:00:00"},
     "InvalidParameterValue", "ExpireTimeEnd"),
    ({"InstanceIdList": ["a\x00b"]}, "InvalidParameterValue", "InstanceIdList"),
    ({"Reverse": "true"}, "InvalidParameter", "Reverse")])
def test_describe_renew_instances_bad_parameters(shop, params, code, field):
    rt, address = shop
    client = customer(rt, address, new_account(rt, "sdk-renew-bad"))
    err = refused(client, "DescribeRenewInstances", **params)
    assert err.get_code() == code and field in err.get_message()


# ---------------------------------------------------------------- SetRenewal

@pytest.mark.spec("RNW-7")
def test_set_renewal_turns_auto_renew_on_with_a_period_and_off(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-set-renewal")
    add_cash(rt, uin, 1_000_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    client = customer(rt, address, uin)
    done = call(client, "SetRenewal", ProductCode="cvm", RegionCode="ap-guangzhou",
                InstanceId=cvm, RenewFlag=AUTO, RenewPeriod="3", RenewPeriodUnit="m")
    assert done.InstanceList == [] and done.RequestId
    (item,) = listing(client).InstanceList
    assert (item.RenewFlag, item.RenewPeriod) == (AUTO, 3)
    call(client, "SetRenewal", InstanceId=cvm, RenewFlag=AUTO, RenewPeriod="1",
         RenewPeriodUnit="y")
    assert listing(client).InstanceList[0].RenewPeriod == 12
    call(client, "SetRenewal", InstanceId=cvm, RenewFlag=MANUAL)
    (item,) = listing(client).InstanceList
    assert (item.RenewFlag, item.RenewPeriod) == (MANUAL, 12)  # the period stays


@pytest.mark.parametrize("params, code, field", [
    ({"RenewFlag": "DISABLE_NOTIFY_AND_MANUAL_RENEW"}, "InvalidParameterValue", "RenewFlag"),
    ({"RenewFlag": "ALWAYS"}, "InvalidParameterValue", "RenewFlag"),
    ({"RenewFlag": AUTO, "InstanceId": "cvm-nosuchthing"}, "ResourceNotFound", "InstanceId"),
    ({"RenewFlag": AUTO, "ProductCode": "cbs"}, "InvalidParameterValue", "ProductCode"),
    ({"RenewFlag": AUTO, "RegionCode": "ap-beijing"}, "InvalidParameterValue", "RegionCode"),
    ({"RenewFlag": AUTO, "RenewPeriod": "x"}, "InvalidParameterValue", "RenewPeriod"),
    ({"RenewFlag": AUTO, "RenewPeriod": "13"}, "InvalidParameterValue", "RenewPeriod"),
    ({"RenewFlag": AUTO, "RenewPeriod": 3}, "InvalidParameter", "RenewPeriod"),
    ({"RenewFlag": AUTO, "RenewPeriod": "1", "RenewPeriodUnit": "d"}, "InvalidParameterValue",
     "RenewPeriodUnit"),
    ({"InstanceId": None}, "InvalidParameterValue", "InstanceId")])
def test_set_renewal_bad_parameters_write_nothing(shop, params, code, field):
    rt, address = shop
    uin = new_account(rt, "sdk-set-bad")
    add_cash(rt, uin, 1_000_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    body = {"InstanceId": cvm, "RenewFlag": MANUAL, **params}
    body = {k: v for k, v in body.items() if v is not None}
    before = written(rt)
    err = refused(customer(rt, address, uin), "SetRenewal", **body)
    assert err.get_code() == code and field in err.get_message()
    assert written(rt) == before


# ---------------------------------------------------------------- RenewInstance

@pytest.mark.spec("RNW-7")
def test_renew_instance_pays_from_the_balance_once_per_client_token(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-renew")
    add_cash(rt, uin, 5_000_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    cash, end = balance(rt, uin).cash, from_db_time(resource(rt, uin, cvm)["period_end"])
    client = customer(rt, address, uin)
    done = call(client, "RenewInstance", ClientToken="renew-1", ProductCode="cvm",
                SubProductCode="S5.MEDIUM4", RegionCode="ap-guangzhou", InstanceId=cvm,
                Period=2, PeriodUnit="m")
    (number,) = done.OrderIdList
    order = order_of(rt, number)
    assert order_no(order["id"], order["created_at"]) == number
    assert (order["kind"], order["state"], order["months"]) == ("renew", "delivered", 2)
    assert balance(rt, uin).cash == cash - 2 * CVM_MEDIUM_MONTH
    assert from_db_time(resource(rt, uin, cvm)["period_end"]) == add_months(end, 2)
    again = call(client, "RenewInstance", ClientToken="renew-1", InstanceId=cvm, Period=2)
    assert again.OrderIdList == [number]  # the same order, paid once
    assert balance(rt, uin).cash == cash - 2 * CVM_MEDIUM_MONTH
    yearly = call(client, "RenewInstance", InstanceId=cvm, Period=1, PeriodUnit="y")
    assert order_of(rt, yearly.OrderIdList[0])["months"] == 12
    assert from_db_time(resource(rt, uin, cvm)["period_end"]) == add_months(end, 14)
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6")
def test_renew_instance_restores_a_resource_from_the_recycle_bin(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-restore")
    add_cash(rt, uin, 1_000_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    end = from_db_time(resource(rt, uin, cvm)["period_end"])
    with transaction(rt.engine) as conn:  # stopped for expiry (the server's clock is real)
        resources.stop_resource(conn, cvm, rt.clock.now(), "expired")
    done = call(customer(rt, address, uin), "RenewInstance", InstanceId=cvm, Period=1)
    assert order_of(rt, done.OrderIdList[0])["state"] == "delivered"
    assert from_db_time(resource(rt, uin, cvm)["period_end"]) == add_months(end, 1)
    assert_reconciled(rt, uin)


@pytest.mark.parametrize("params, code, field", [
    ({"Period": 0}, "InvalidParameterValue", "Period"),
    ({"Period": 37}, "InvalidParameterValue", "Period"),
    ({"Period": 13}, "InvalidParameterValue", "Period"),  # cvm sells 1-12, 24, 36 months
    ({"Period": "1"}, "InvalidParameter", "Period"),
    ({"Period": 1, "PeriodUnit": "w"}, "InvalidParameterValue", "PeriodUnit"),
    ({"InstanceId": "cvm-nosuchthing"}, "ResourceNotFound", "InstanceId"),
    ({"SubProductCode": "S5.LARGE8"}, "InvalidParameterValue", "SubProductCode"),
    ({"ClientToken": "x" * 65}, "InvalidParameterValue", "ClientToken"),
    ({"Period": 12}, "FailedOperation.BalanceInsufficient", ""),
    ({"InstanceId": None}, "InvalidParameterValue", "InstanceId")])
def test_renew_instance_refusals_write_nothing(shop, params, code, field):
    rt, address = shop
    uin = new_account(rt, "sdk-renew-bad")
    add_cash(rt, uin, 200_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    body = {k: v for k, v in {"InstanceId": cvm, **params}.items() if v is not None}
    before = written(rt)
    err = refused(customer(rt, address, uin), "RenewInstance", **body)
    assert err.get_code() == code and field in err.get_message()
    assert written(rt) == before


# ---------------------------------------------------------------- RefundInstance

@pytest.mark.spec("ORD-4")
def test_refund_instance_refunds_and_releases_once(shop):
    rt, address = shop
    uin = new_account(rt, "sdk-refund")
    add_cash(rt, uin, 1_000_00)
    cash = balance(rt, uin).cash
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    client = customer(rt, address, uin)
    done = call(client, "RefundInstance", ClientToken="refund-1", ProductCode="cvm",
                SubProductCode="S5.MEDIUM4", InstanceId=cvm, RegionCode="ap-guangzhou")
    (number,) = done.OrderIdList
    refund = order_of(rt, number)
    assert (refund["kind"], refund["state"], refund["amount"]) == ("refund", "refunded",
                                                                   -CVM_MEDIUM_MONTH)
    assert balance(rt, uin).cash == cash  # inside the no-reason window: all of it back
    assert resource(rt, uin, cvm)["state"] == "recycled"
    assert call(client, "RefundInstance", ClientToken="refund-1",
                InstanceId=cvm).OrderIdList == [number]
    err = refused(client, "RefundInstance", ClientToken="refund-2", InstanceId=cvm)
    assert err.get_code() == "FailedOperation.Conflict" and "InstanceId" in err.get_message()
    assert balance(rt, uin).cash == cash
    assert_reconciled(rt, uin)


@pytest.mark.parametrize("params, code, field", [
    ({"InstanceId": "cvm-nosuchthing"}, "ResourceNotFound", "InstanceId"),
    ({"InstanceId": None}, "InvalidParameterValue", "InstanceId"),
    ({"ProductCode": "cdn"}, "InvalidParameterValue", "ProductCode"),
    ({"InstanceId": "a\x00b"}, "InvalidParameterValue", "InstanceId"),
    ({"InstanceId": 7}, "InvalidParameter", "InstanceId")])
def test_refund_instance_refusals_write_nothing(shop, params, code, field):
    rt, address = shop
    uin = new_account(rt, "sdk-refund-bad")
    add_cash(rt, uin, 1_000_00)
    (cvm,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    body = {k: v for k, v in {"InstanceId": cvm, **params}.items() if v is not None}
    before = written(rt)
    err = refused(customer(rt, address, uin), "RefundInstance", **body)
    assert err.get_code() == code and field in err.get_message()
    assert written(rt) == before
