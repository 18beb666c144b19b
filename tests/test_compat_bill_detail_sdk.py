"""DescribeBillDetail (L3 lines with components) and the hourly deductions in
DescribeBillList, through the official Tencent Cloud SDK against the live server
(XTR-5, BIL-1).

The server, settlement and the SDK's signatures share the test's FixedClock
(a Monday in March): the test never depends on the real date.
"""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from tencentcloud.billing.v20180709 import models
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from feecenter.clock import business_time_text
from feecenter.periods import HOURLY, period_containing
from feecenter.settlement import service as settlement
from tests.helpers import add_cash, add_gift, new_account
from tests.test_compat_sdk import make_key, sdk
from tests.test_settlement import ingest, load, open_


def request(cls, **params):
    req = cls()
    req.from_json_string(json.dumps(params))
    return req


@pytest.fixture
def settled(live_server_on_test_clock, monkeypatch):
    """One account, one hourly CVM (0.50/h) billed for two hours, one CBS disk for one,
    settled hour by hour on the test's clock."""
    rt, address = live_server_on_test_clock
    monkeypatch.setattr(abstract_client, "time",  # the SDK signs with the test's clock
                        SimpleNamespace(time=lambda: rt.clock.now().timestamp()))
    first = period_containing(HOURLY, rt.clock.now())
    load(rt)
    uin = new_account(rt, "detail-user")
    add_gift(rt, uin, 30)
    add_cash(rt, uin, 100_00)
    cvm = open_(rt, uin, name="web-1")
    cbs = open_(rt, uin, product="cbs", spec="premium")
    hours = [period_containing(HOURLY, first.start + timedelta(hours=n)) for n in range(2)]
    usage = [[("cvm-h0", uin, cvm, "S5.MEDIUM4", "1", hours[0].start, hours[0].end)],
             [("cvm-h1", uin, cvm, "S5.MEDIUM4", "1", hours[1].start, hours[1].end),
              ("cbs-h1", uin, cbs, "premium", "100", hours[1].start, hours[1].end)]]
    for period, rows in zip(hours, usage):
        rt.clock.set(period.end + timedelta(minutes=5))
        ingest(rt, rows)
        settlement.settle_period(rt.engine, rt.clock, "hour", period)
    key = make_key(rt, uin)
    return rt, sdk(address, key.secret_id, key.secret_key), uin, cvm, cbs, hours


@pytest.mark.spec("XTR-5", "BIL-1")
def test_describe_bill_detail_returns_l3_lines_with_components(settled):
    rt, client, uin, cvm, cbs, hours = settled
    month = business_time_text(hours[1].end)[:7]
    resp = client.DescribeBillDetail(request(models.DescribeBillDetailRequest, Offset=0,
                                             Limit=100, Month=month, NeedRecordNum=1))
    assert resp.Total == 3 and len(resp.DetailSet) == 3
    assert resp.RequestId
    first, disk, second = resp.DetailSet  # by deduction time, then line id
    assert [d.ResourceId for d in resp.DetailSet] == [cvm, cbs, cvm]
    assert first.PayModeName == "按量计费" and first.ActionTypeName == "按量计费小时结"
    assert first.ActionType == "hourh" and first.BusinessCode == "cvm"
    assert first.ResourceName == "web-1" and disk.ResourceName == ""
    assert first.PayerUin == str(uin) and first.RegionId == "ap-guangzhou"
    assert (first.FeeBeginTime, first.FeeEndTime) == (business_time_text(hours[0].start),
                                                      business_time_text(hours[0].end))
    assert first.BillId.endswith("%018d" % int(first.BillId[14:]))
    [c] = first.ComponentSet
    assert c.ItemCode == "S5.MEDIUM4" and c.ItemCodeName == "标准型S5 2核4GB"
    assert (c.SinglePrice, c.UsedAmount, c.UsedAmountUnit, c.PriceUnit) == (
        "0.50000000", "1", "台", "元/台/小时")
    assert (c.TimeSpan, c.TimeUnitName) == ("1", "小时")
    assert (c.Cost, c.Discount, c.RealCost) == ("0.50000000", "1", "0.50000000")
    # the gift (0.30) pays first, then cash (BAL-3): amounts in yuan, as strings
    assert (c.IncentivePayAmount, c.CashPayAmount, c.VoucherPayAmount) == ("0.30", "0.20", "0.00")
    [c2] = second.ComponentSet
    assert (c2.IncentivePayAmount, c2.CashPayAmount) == ("0.00", "0.50")
    [d] = disk.ComponentSet
    # 100 GB x 0.00049 = 0.049, its own transaction (one per product), rounded to 0.05
    assert (d.UsedAmount, d.UsedAmountUnit, d.RealCost) == ("100", "GB", "0.04900000")
    assert (d.CashPayAmount, d.PriceUnit) == ("0.05", "元/GB/小时")
    assert len({first.BillId, second.BillId, disk.BillId}) == 3
    # the same lines on the account's period named, one month window of BeginTime/EndTime,
    # and filters
    by_pay = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=1, PeriodType="byPayTime",
        BeginTime=f"{month}-01 00:00:00", EndTime=f"{month}-02 00:00:00"))
    assert by_pay.Total == 3 and len(by_pay.DetailSet) == 1
    only_disk = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=10, Month=month, ResourceId=cbs,
        PayMode="postPay"))
    assert [d.ResourceId for d in only_disk.DetailSet] == [cbs]
    prepaid = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=10, Month=month, PayMode="prePay"))
    assert prepaid.Total == 0 and prepaid.DetailSet == []
    project = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=10, Month=month,
        ProjectId=first.ProjectId))
    assert project.Total == 3
    other = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=10, Month="2020-01"))
    assert other.Total == 0


@pytest.mark.spec("XTR-5")
def test_describe_bill_detail_refuses_bad_parameters(settled):
    _, client, *_ = settled
    for params, field in (({"Offset": 0, "Limit": 10}, "Month"),
                          ({"Offset": 0, "Limit": 301, "Month": "2026-01"}, "Limit"),
                          ({"Offset": 0, "Limit": 10, "BeginTime": "2026-01-01 00:00:00",
                            "EndTime": "2026-02-01 00:00:00"}, "EndTime"),
                          ({"Offset": 0, "Limit": 10, "Month": "2026-01",
                            "PeriodType": "byWhatever"}, "PeriodType")):
        with pytest.raises(TencentCloudSDKException) as err:
            client.DescribeBillDetail(request(models.DescribeBillDetailRequest, **params))
        assert err.value.get_code() == "InvalidParameterValue"
        assert err.value.get_message().startswith(field)


@pytest.mark.spec("XTR-5", "BIL-1", "SET-4")
def test_describe_bill_list_shows_the_hourly_deductions(settled):
    rt, client, uin, cvm, cbs, hours = settled
    since = business_time_text(hours[0].start)
    until = business_time_text(rt.clock.now())
    listing = client.DescribeBillList(request(
        models.DescribeBillListRequest, StartTime=since, EndTime=until, Offset=0, Limit=100,
        PayType=["deduct"]))
    deductions = [t for t in listing.TransactionList if t.ActionType == "deduct"]
    assert {t.DeductMode for t in deductions} == {"hourh"}
    # hour 0: cvm 0.50; hour 1: cvm 0.50 and cbs 0.049 -> 0.05 (one deduction per product)
    assert sorted(abs(t.Amount) for t in deductions) == [5, 50, 50]
    detail = client.DescribeBillDetail(request(
        models.DescribeBillDetailRequest, Offset=0, Limit=100,
        Month=business_time_text(hours[1].end)[:7]))
    assert {d.BillId for d in detail.DetailSet} <= {t.BillId for t in deductions}


@pytest.mark.spec("BIL-1", "SET-5")
def test_a_line_in_arrears_shows_the_shortfall_as_cash_paid():
    from datetime import datetime

    from feecenter.compat.actions import _bill_detail

    line = {"id": 7, "uin": 100000000003, "resource_id": "cdn-x", "resource_name": None,
            "product_code": "cdn", "product_name": "内容分发网络", "region": "mainland",
            "region_name": "中国大陆", "billing_item": "traffic", "item_name": "中国境内流量",
            "unit": "GB", "postpaid_period": None, "project_id": 3, "project_name": "默认项目",
            "cycle": "day", "kind": "charge", "reason": None, "period_key": "2026-10-31",
            "period_start": datetime(2026, 10, 30, 16), "period_end": datetime(2026, 10, 31, 16),
            "deducted_at": datetime(2026, 10, 31, 16), "txn_id": 33, "quantity": 32_959_000,
            "package_quantity": 0,
            "price_kind": "list", "unit_price": 19_000_000, "list_amount": 626_221_000,
            "discount_bp": 10_000, "discounted_amount": 626_221_000, "deducted": 626,
            "statistic_time": datetime(2026, 10, 31, 16),
            "voucher_paid": 0, "gift_paid": 100, "cash_paid": 20, "credit_paid": 6,
            "arrears": 500, "stopped_quantity": 0}
    detail = _bill_detail(line)
    [c] = detail["ComponentSet"]
    assert (c["IncentivePayAmount"], c["CashPayAmount"], c["VoucherPayAmount"]) == (
        "1.00", "5.26", "0.00")
    assert (c["UsedAmount"], c["PriceUnit"], c["TimeSpan"], c["RealCost"]) == (
        "32.959", "元/GB", "", "6.26221000")
    assert (detail["ActionType"], detail["ActionTypeName"], detail["PayTime"]) == (
        "hourd", "按量计费日结", "2026-11-01 00:00:00")
    assert detail["BillId"] == "20261031160000" + "%018d" % 33


@pytest.mark.spec("BIL-1")
def test_a_discounted_lines_contract_price_and_blended_discount_round_half_up():
    """ContractPrice = list unit price × discount, rounded half-up like every amount
    (not truncated); BlendedDiscount = RealCost / Cost to 8 decimals, half-up."""
    from datetime import datetime

    from feecenter.compat.actions import _bill_detail

    line = {"id": 8, "uin": 100000000003, "resource_id": "cvm-x", "resource_name": None,
            "product_code": "cvm", "product_name": "云服务器", "region": "gz",
            "region_name": "广州", "billing_item": "instance", "item_name": "实例",
            "unit": "个", "postpaid_period": "hour", "project_id": 3, "project_name": "默认项目",
            "cycle": "hour", "kind": "charge", "reason": None, "period_key": "2026-10-31T10",
            "period_start": datetime(2026, 10, 31, 2), "period_end": datetime(2026, 10, 31, 3),
            "deducted_at": datetime(2026, 10, 31, 3), "txn_id": 34, "quantity": 1_000_000,
            "package_quantity": 0, "price_kind": "list", "unit_price": 123,
            "list_amount": 3, "discount_bp": 8_500, "discounted_amount": 2, "deducted": 0,
            "statistic_time": datetime(2026, 10, 31, 3), "voucher_paid": 0, "gift_paid": 0,
            "cash_paid": 0, "credit_paid": 0, "arrears": 0, "stopped_quantity": 0}
    [c] = _bill_detail(line)["ComponentSet"]
    assert c["ContractPrice"] == "0.00000105"  # 123 × 0.85 = 104.55 → 105 (1e-8 yuan)
    assert (c["Discount"], c["BlendedDiscount"]) == ("0.85", "0.66666667")
