"""The bill summaries and the consumption views through the official Tencent Cloud
Billing SDK against the live server (XTR-5): DescribeBillSummaryBy{Product,Project,
Region,PayMode,Tag}, DescribeBillSummary and DescribeBillResourceSummary answer the
amounts the roll-ups hold (BIL-1: L0 = Σ L1 for every dimension = Σ L2), refunds
and downgrades negative (BIL-5); DescribeCostSummaryBy{Product,Project,Region,
Resource} and DescribeCostDetail answer the consumption bill (BIL-4); bad input is
a Tencent error code naming the parameter.

The month is tests/test_bills_rollup.py's March (prepaid bought, upgraded,
downgraded, refunded; postpaid CVM, traffic at a contract price, a tagged disk),
plus a prepaid CVM in Shanghai; the server and the SDK's signatures share the
test's FixedClock.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from types import SimpleNamespace

import pytest
from tencentcloud.billing.v20180709 import models
from tencentcloud.common import abstract_client
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from feecenter.accounts import service as accounts
from feecenter.bills import consumption, rollups, service
from feecenter.clock import business_time_text
from tests.helpers import OPS, buy, pay
from tests.test_bills_rollup import DAYS, MONTH, at, month  # noqa: F401 - the fixture
from tests.test_compat_sdk import make_key, sdk

# the SDK warns of a response field its models lack: every field we send is Tencent's
pytestmark = pytest.mark.filterwarnings("error::UserWarning")
AMOUNT = re.compile(r"-?[0-9]+\.[0-9]{8}")
SUMS = ("TotalCost", "RealTotalCost", "CashPayAmount", "IncentivePayAmount", "VoucherPayAmount")


@pytest.fixture
def billed(month, live_server_on_test_clock, monkeypatch):  # noqa: F811 - the fixture above
    """March rolled up (T+1), a Shanghai CVM bought on the 3rd, and the SDK client."""
    rt, address = live_server_on_test_clock
    monkeypatch.setattr(abstract_client, "time",  # the SDK signs with the test's clock
                        SimpleNamespace(time=lambda: rt.clock.now().timestamp()))
    uin = month["uin"]
    now = rt.clock.now()
    rt.clock.set(at(3, 16))
    (shanghai,) = buy(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"))
    pay(rt, uin, [shanghai])
    rt.clock.set(now)
    key = make_key(rt, uin)
    return SimpleNamespace(rt=rt, uin=uin, client=sdk(address, key.secret_id, key.secret_key),
                           month=month)


def refresh(rt) -> None:
    for day in DAYS:
        rollups.refresh_day(rt.engine, rt.clock, day)


def call(client, action: str, **params):
    req = getattr(models, f"{action}Request")()
    req.from_json_string(json.dumps(params))
    return getattr(client, action)(req)


def refused(client, action: str, **params) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as err:
        call(client, action, **params)
    return err.value


def rated(text: str) -> int:
    """An 8-decimal yuan string -> 1e-8 yuan (exact)."""
    assert AMOUNT.fullmatch(text), text
    return int(Decimal(text) * 100_000_000)


def fen(text: str) -> int:
    """A yuan string of fen (2 or 8 decimals, the last six zero) -> fen."""
    value = Decimal(text) * 100
    assert value == value.to_integral_value(), text
    return int(value)


def amounts(item, names=SUMS) -> dict:
    return {name: rated(getattr(item, name)) for name in names}


def expected(sums: dict) -> dict:
    """The roll-ups' sums as the amounts of a Tencent summary item (1e-8 yuan)."""
    return {"TotalCost": sums["original_cost"], "RealTotalCost": sums["discounted_cost"],
            "CashPayAmount": sums["cash_paid"] * 1_000_000,
            "IncentivePayAmount": sums["gift_paid"] * 1_000_000,
            "VoucherPayAmount": sums["voucher_paid"] * 1_000_000}


def added(items, names=SUMS) -> dict:
    return {name: sum(amounts(i, names)[name] for i in items) for name in names}


def months(**more) -> dict:
    return {"BeginTime": MONTH, "EndTime": MONTH, **more}


# ---------------------------------------------------------------- cost bills (roll-ups)

@pytest.mark.spec("XTR-5", "BIL-1", "BIL-5")
def test_bill_summaries_answer_the_rollups_and_agree_with_each_other(billed):
    rt, uin, client = billed.rt, billed.uin, billed.client
    before = call(client, "DescribeBillSummaryByProduct", **months())
    assert before.SummaryOverview == [] and rated(before.SummaryTotal.RealTotalCost) == 0  # T+1
    refresh(rt)
    with rt.engine.connect() as conn:
        total = service.overview(conn, OPS, uin, MONTH)["total"]
        by_region = service.summary(conn, OPS, uin, MONTH, "region")
        by_mode = {g["pay_mode"]: g for g in service.summary(conn, OPS, uin, MONTH, "pay_mode")}
    assert total["deducted"] > 0 and len(by_region) == 2

    product = call(client, "DescribeBillSummaryByProduct", **months(PayerUin=str(uin)))
    assert product.Ready == 1 and product.RequestId
    assert amounts(product.SummaryTotal) == expected(total) == added(product.SummaryOverview)
    assert rated(product.SummaryTotal.TransferPayAmount) == 0
    cvm = next(i for i in product.SummaryOverview if i.BusinessCode == "cvm")
    assert (cvm.BusinessCodeName, cvm.BillMonth) == ("云服务器", MONTH)
    assert all(value is not None for value in vars(cvm).values())  # every field filled
    ratios = [Decimal(i.RealTotalCostRatio) for i in product.SummaryOverview]
    assert all(re.fullmatch(r"-?[0-9]+\.[0-9]{2}", i.RealTotalCostRatio)
               for i in product.SummaryOverview) and abs(sum(ratios) - 100) <= Decimal("0.02")

    region = call(client, "DescribeBillSummaryByRegion", **months())
    assert added(region.SummaryOverview) == expected(total)
    shown = {i.RegionId: i for i in region.SummaryOverview}
    assert set(shown) == {"ap-guangzhou", "ap-shanghai"}
    assert shown["ap-shanghai"].RegionName == "华东地区（上海）"
    for group in by_region:
        assert amounts(shown[group["region"]]) == expected(group)

    project = call(client, "DescribeBillSummaryByProject", **months())
    assert added(project.SummaryOverview) == expected(total)
    assert all(i.ProjectName and i.ProjectId.isdigit() for i in project.SummaryOverview)

    mode = call(client, "DescribeBillSummaryByPayMode", **months())
    assert added(mode.SummaryOverview) == expected(total)
    modes = {i.PayMode: i for i in mode.SummaryOverview}
    assert (modes["prePay"].PayModeName, modes["postPay"].PayModeName) == ("包年包月", "按量计费")
    for code, ours in (("prePay", "prepaid"), ("postPay", "postpaid")):
        assert amounts(modes[code]) == expected(by_mode[ours]) == added(modes[code].Detail)
    actions = {d.ActionType: d for d in modes["prePay"].Detail}
    assert set(actions) == {"prepay_purchase", "prepay_modify", "prepay_return"}
    assert actions["prepay_return"].ActionTypeName == "包年包月退款"
    assert rated(actions["prepay_return"].RealTotalCost) < 0  # BIL-5: the refund negative
    assert {d.ActionType for d in modes["postPay"].Detail} == {"postpay_deduct"}

    tagged = call(client, "DescribeBillSummaryByTag", **months(TagKey="env"))
    assert {i.TagValue for i in tagged.SummaryOverview} == {"prod", ""}
    assert rated(tagged.SummaryTotal.RealTotalCost) == total["discounted_cost"]
    assert added(tagged.SummaryOverview) == expected(total)
    prod = call(client, "DescribeBillSummaryByTag", **months(TagKey="env", TagValue="prod"))
    [disk] = prod.SummaryOverview
    assert rated(disk.RealTotalCost) > 0 and disk.TagValue == "prod"


@pytest.mark.spec("XTR-5", "BIL-1")
def test_describe_bill_summary_groups_each_dimension_with_its_products(billed):
    rt, client = billed.rt, billed.client
    refresh(rt)
    with rt.engine.connect() as conn:
        total = expected(service.overview(conn, OPS, billed.uin, MONTH)["total"])
    for group_type, keys in (("business", {"cvm", "cbs"}),
                             ("region", {"ap-guangzhou", "ap-shanghai"}),
                             ("payMode", {"prePay", "postPay"}), ("project", None),
                             ("tag", {"env"})):
        params = {"Month": MONTH, "GroupType": group_type}
        if group_type == "tag":
            params["TagKey"] = ["env"]
        found = call(client, "DescribeBillSummary", **params)
        assert found.Ready == 1
        assert added(found.SummaryDetail) == total, group_type
        for group in found.SummaryDetail:
            assert added(group.Business) == amounts(group), (group_type, group.GroupKey)
            assert group.GroupValue is not None
        if keys:
            assert {g.GroupKey for g in found.SummaryDetail} == keys, group_type
    by_region = call(client, "DescribeBillSummary", Month=MONTH, GroupType="region")
    assert {g.GroupValue for g in by_region.SummaryDetail} == {"华南地区（广州）", "华东地区（上海）"}
    someone = call(client, "DescribeBillSummary", Month=MONTH, GroupType="business",
                   OperateUin="1" + str(billed.uin))
    assert someone.SummaryDetail == []  # every line here was made by the account itself


@pytest.mark.spec("XTR-5", "BIL-1")
def test_pay_types_split_the_month_into_consumption_refunds_and_adjustments(billed):
    rt, client = billed.rt, billed.client
    refresh(rt)
    whole = call(client, "DescribeBillSummaryByProduct", **months())
    parts = {kind: call(client, "DescribeBillSummaryByProduct", **months(PayType=kind))
             for kind in ("consume", "refund", "adjustment")}
    for name in SUMS:
        assert sum(amounts(p.SummaryTotal)[name] for p in parts.values()) == \
            amounts(whole.SummaryTotal)[name]
    assert rated(parts["refund"].SummaryTotal.RealTotalCost) < 0  # the refund and downgrade
    assert parts["adjustment"].SummaryOverview == []


@pytest.mark.spec("XTR-5", "BIL-1")
def test_resource_summary_pages_l2_with_its_total(billed):
    rt, uin, client = billed.rt, billed.uin, billed.client
    refresh(rt)
    with rt.engine.connect() as conn:
        total = expected(service.overview(conn, OPS, uin, MONTH)["total"])
        l2 = service.resource_bills(conn, OPS, uin, MONTH)
    whole = call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=0, Limit=1000,
                 NeedRecordNum=1, PeriodType="byPayTime")
    assert whole.Total == len(l2) == len(whole.ResourceSummarySet)
    paid = SUMS[1:]  # TotalCost is "-" on contract-price and refunded resources (BIL-6)
    assert added(whole.ResourceSummarySet, paid) == {name: total[name] for name in paid}
    assert [r.ResourceId for r in whole.ResourceSummarySet] == [g["resource_id"] for g in l2]
    vm = next(r for r in whole.ResourceSummarySet if r.ResourceId == billed.month["vm"])
    assert (vm.ResourceName, vm.PayModeName, vm.BusinessCode, vm.RegionId) == (
        "web-1", "按量计费", "cvm", 1)
    assert vm.TotalCost == "-" and vm.Discount == "-"  # BIL-6: a contract-price line in it
    assert vm.PayTime.startswith("2026-03-02 ") and vm.PayerUin == str(uin)
    assert vm.ActionTypeName == "按量计费扣费" and vm.BillMonth == MONTH
    disk = next(r for r in whole.ResourceSummarySet if r.ResourceId == billed.month["disk"])
    assert [(t.TagKey, t.TagValue) for t in disk.Tags] == [("env", "prod")]
    assert disk.Discount == "1" and rated(disk.TotalCost) == rated(disk.RealTotalCost)
    refunded = [r for r in whole.ResourceSummarySet if rated(r.RealTotalCost) == 0
                and r.PayModeName == "包年包月"]
    assert refunded and "包年包月退款" in refunded[0].ActionTypeName  # bought and refunded: 0

    pages = [call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=n, Limit=2,
                  NeedRecordNum=1) for n in range(0, len(l2), 2)]
    assert [r.ResourceId for p in pages for r in p.ResourceSummarySet] == \
        [g["resource_id"] for g in l2]
    assert {p.Total for p in pages} == {len(l2)}
    unnumbered = call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=0, Limit=1)
    assert unnumbered.Total is None  # NeedRecordNum 0: not returned
    prepaid = call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=0, Limit=100,
                   NeedRecordNum=1, PayMode="prePay")
    assert {r.PayModeName for r in prepaid.ResourceSummarySet} == {"包年包月"}
    refunds = call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=0, Limit=100,
                   NeedRecordNum=1, ActionType="包年包月退款")
    assert refunds.Total == 1
    tagged = call(client, "DescribeBillResourceSummary", Month=MONTH, Offset=0, Limit=100,
                  NeedRecordNum=1, TagKey="env", TagValue="prod")
    assert [r.ResourceId for r in tagged.ResourceSummarySet] == [billed.month["disk"]]


# ---------------------------------------------------------------- consumption bills (BIL-4)

@pytest.mark.spec("XTR-5", "BIL-4")
def test_cost_summaries_answer_the_consumption_bill(billed):
    rt, uin, client = billed.rt, billed.uin, billed.client
    with rt.engine.connect() as conn:
        bill = consumption.consumption_bill(conn, OPS, uin, MONTH)
    assert 0 < bill["prepaid_total"]
    page = {"BeginTime": MONTH, "EndTime": MONTH, "Offset": 0, "Limit": 100,
            "NeedRecordNum": 1}
    product = call(client, "DescribeCostSummaryByProduct", **page)
    assert product.Ready == 1 and fen(product.Total.RealTotalCost) == bill["total"]
    assert {d.BusinessCode: fen(d.RealTotalCost) for d in product.Data} == {
        p["product"]: p["total"] for p in bill["by_product"]}
    assert product.RecordNum == len(bill["by_product"])
    for item in product.Data:
        assert fen(item.CashPayAmount) + fen(item.IncentivePayAmount) + \
            fen(item.VoucherPayAmount) == fen(item.RealTotalCost)
        assert item.Trend.Type == "none" and item.Trend.Value is None  # nothing in February
    cvm = next(d for d in product.Data if d.BusinessCode == "cvm")
    assert fen(cvm.LeftRealTotalCost) > 0  # the prepaid months still to spread (待分摊)

    for action, key in (("DescribeCostSummaryByProject", "ProjectId"),
                        ("DescribeCostSummaryByRegion", "RegionId")):
        found = call(client, action, **page)
        assert sum(fen(d.RealTotalCost) for d in found.Data) == bill["total"], action
        for item in found.Data:
            assert sum(fen(b.RealTotalCost) for b in item.Business) == fen(item.RealTotalCost)
            assert getattr(item, key) is not None
    region = call(client, "DescribeCostSummaryByRegion", **page)
    assert {d.RegionId for d in region.Data} == {"ap-guangzhou", "ap-shanghai"}

    resources = call(client, "DescribeCostSummaryByResource", **page, NeedConditionValue=1)
    assert sum(fen(d.RealTotalCost) for d in resources.Data) == bill["total"]
    per_resource = {r["resource_id"]: r["total"] for p in bill["by_product"]
                    for r in p["resources"]}
    assert {d.ResourceId: fen(d.RealTotalCost) for d in resources.Data} == per_resource
    assert {b.BusinessCode for b in resources.ConditionValue.Business} == {"cvm", "cbs"}
    assert {p.PayMode for p in resources.ConditionValue.PayMode} == {"prePay", "postPay"}
    vm = next(d for d in resources.Data if d.ResourceId == billed.month["prepaid_vm"])
    assert vm.ConsumptionTypeName == "包年包月按天分摊" and int(vm.DayDiff) >= 28
    shanghai = call(client, "DescribeCostSummaryByResource", **page,
                    Conditions={"RegionIds": [4], "PayModes": ["prePay"]})
    assert [d.RegionId for d in shanghai.Data] == ["ap-shanghai"]
    one = call(client, "DescribeCostSummaryByResource", **page,
               Conditions={"RegionId": 4, "BusinessCode": "cvm"})
    assert [d.ResourceId for d in one.Data] == [d.ResourceId for d in shanghai.Data]
    asc = call(client, "DescribeCostSummaryByResource", **page,
               Conditions={"OrderByCost": "asc", "HideFreeCost": 1})
    costs = [fen(d.RealTotalCost) for d in asc.Data]
    assert costs == sorted(costs) and 0 not in costs


@pytest.mark.spec("XTR-5", "BIL-4")
def test_cost_detail_lists_the_consumption_line_by_line(billed):
    rt, uin, client = billed.rt, billed.uin, billed.client
    with rt.engine.connect() as conn:
        bill = consumption.consumption_bill(conn, OPS, uin, MONTH)
    found = call(client, "DescribeCostDetail", Month=MONTH, Offset=0, Limit=100, NeedRecordNum=1)
    assert found.Total == len(found.DetailSet) > 0
    components = [c for d in found.DetailSet for c in d.ComponentSet]
    assert sum(rated(c.RealCost) for c in components) == bill["total"] * 1_000_000
    for c in components:  # the payments add up to what was consumed
        assert fen(c.CashPayAmount) + fen(c.IncentivePayAmount) + fen(c.VoucherPayAmount) == \
            fen(c.RealCost)
    prepaid = [d for d in found.DetailSet if d.PayModeName == "包年包月"]
    new = next(d for d in prepaid if d.ActionTypeName == "包年包月新购"
               and d.ResourceId == billed.month["prepaid_vm"])
    assert len(new.OrderId) == 18 and new.FeeBeginTime.startswith("2026-03-02")
    assert new.FeeEndTime == "2026-04-01 00:00:00"  # the month's part of its service period
    assert new.ComponentSet[0].UsedAmountUnit == "天"
    refund = next(d for d in prepaid if d.ActionTypeName == "包年包月退款")
    assert rated(refund.ComponentSet[0].RealCost) < 0  # BIL-5: the returned days negative
    page = call(client, "DescribeCostDetail", Month=MONTH, Offset=1, Limit=2)
    assert [d.ResourceId for d in page.DetailSet] == [d.ResourceId for d in found.DetailSet[1:3]]
    assert page.Total == found.Total
    disk = call(client, "DescribeCostDetail", Month=MONTH, Offset=0, Limit=100,
                ResourceId=billed.month["disk"], PayMode="postPay")
    assert {d.ResourceId for d in disk.DetailSet} == {billed.month["disk"]}
    assert [(t.TagKey, t.TagValue) for t in disk.DetailSet[0].Tags] == [("env", "prod")]
    day = call(client, "DescribeCostDetail", BeginTime="2026-03-02 00:00:00",
               EndTime="2026-03-02 23:59:59", Offset=0, Limit=100)
    first_day = sum(rated(c.RealCost) for d in day.DetailSet for c in d.ComponentSet)
    assert 0 < first_day < bill["total"] * 1_000_000  # one day's share only
    assert {d.FeeBeginTime[:10] for d in day.DetailSet} == {"2026-03-02"}


# ---------------------------------------------------------------- bad input

@pytest.mark.spec("XTR-5")
def test_bad_input_is_a_tencent_error_naming_the_parameter(billed):
    client, uin = billed.client, billed.uin
    cases = [
        ("DescribeBillSummaryByProduct", {"BeginTime": "2026-13", "EndTime": "2026-13"},
         "InvalidParameterValue", "BeginTime"),
        ("DescribeBillSummaryByProduct", {"BeginTime": "2026-03", "EndTime": "2026-04"},
         "InvalidParameterValue", "EndTime"),
        ("DescribeBillSummaryByRegion", {"BeginTime": "２０２６-03", "EndTime": "2026-03"},
         "InvalidParameterValue", "BeginTime"),
        ("DescribeBillSummaryByProject", {"EndTime": "2026-03"}, "InvalidParameterValue",
         "BeginTime"),
        ("DescribeBillSummaryByPayMode", {"BeginTime": "0001-01", "EndTime": "0001-01"},
         "InvalidParameterValue", "BeginTime"),
        ("DescribeBillSummaryByProduct", months(PayType="gift"), "InvalidParameterValue",
         "PayType"),
        ("DescribeBillSummaryByProduct", months(PayerUin=str(uin + 1)),
         "UnauthorizedOperation", "PayerUin"),
        ("DescribeBillSummaryByProduct", months(PayerUin="١٢"), "InvalidParameterValue",
         "PayerUin"),
        ("DescribeBillSummaryByTag", months(), "InvalidParameterValue", "TagKey"),
        ("DescribeBillSummary", {"Month": "2026-03", "GroupType": "zone"},
         "InvalidParameterValue", "GroupType"),
        ("DescribeBillSummary", {"Month": "2026-03", "GroupType": "tag"},
         "InvalidParameterValue", "TagKey"),
        ("DescribeBillSummary", {"Month": "2026/03", "GroupType": "business"},
         "InvalidParameterValue", "Month"),
        ("DescribeBillResourceSummary", {"Month": "2026-03", "Offset": 0, "Limit": 1001},
         "InvalidParameterValue", "Limit"),
        ("DescribeBillResourceSummary", {"Month": "2026-03", "Offset": -1, "Limit": 10},
         "InvalidParameterValue", "Offset"),
        ("DescribeBillResourceSummary", {"Month": "2026-03", "Offset": 0, "Limit": 10,
                                         "PeriodType": "byUsedTime"},
         "InvalidParameterValue", "PeriodType"),
        ("DescribeBillResourceSummary", {"Month": "2026-03", "Offset": 0, "Limit": 10,
                                         "PayMode": "free"}, "InvalidParameterValue", "PayMode"),
        ("DescribeCostSummaryByProduct", months(Offset=0, Limit=101), "InvalidParameterValue",
         "Limit"),
        ("DescribeCostSummaryByRegion", {"BeginTime": "2026-02", "EndTime": "2026-03"},
         "InvalidParameterValue", "EndTime"),
        ("DescribeCostSummaryByProject", months(PayerUin=str(uin + 1)),
         "UnauthorizedOperation", "PayerUin"),
        ("DescribeCostSummaryByResource", months(Conditions={"FileIds": ["1"]}),
         "InvalidParameterValue", "Conditions.FileIds"),
        ("DescribeCostSummaryByResource", months(Conditions={"OrderByCost": "up"}),
         "InvalidParameterValue", "Conditions.OrderByCost"),
        ("DescribeCostDetail", {"Offset": 0, "Limit": 10}, "InvalidParameterValue", "Month"),
        ("DescribeCostDetail", {"Month": "2026-03", "Offset": 0, "Limit": 101},
         "InvalidParameterValue", "Limit"),
        ("DescribeCostDetail", {"BeginTime": "2026-03-01 00:00:00",
                                "EndTime": "2026-04-01 00:00:00", "Offset": 0, "Limit": 10},
         "InvalidParameterValue", "EndTime"),
        ("DescribeCostDetail", {"Month": "2026-03", "Offset": 0, "Limit": 10,
                                "ProjectId": "x"}, "InvalidParameterValue", "ProjectId"),
    ]
    for action, params, code, field in cases:
        err = refused(client, action, **params)
        assert (err.get_code(), err.get_message().split(":")[0]) == (code, field), \
            (action, params, err.get_code(), err.get_message())
    # a wrong JSON type is InvalidParameter (the SDK sends what it is given)
    err = refused(client, "DescribeBillResourceSummary", Month="2026-03", Offset=0, Limit="10")
    assert err.get_code() == "InvalidParameter"


@pytest.mark.spec("XTR-5")
def test_a_raw_body_is_checked_to_the_nested_field(compat_shop):
    """What the SDK would not send (it drops unknown model fields): refused by name."""
    this = business_time_text(compat_shop.now)[:7]
    both = {"BeginTime": this, "EndTime": this}
    for body, code, field in (
            ({**both, "Conditions": {"Colour": "red"}}, "UnknownParameter", "Conditions.Colour"),
            ({**both, "Conditions": {"RegionIds": ["4"]}}, "InvalidParameter",
             "Conditions.RegionIds"),
            ({**both, "Conditions": []}, "InvalidParameter", "Conditions"),
            ({**both, "Limit": 0}, "InvalidParameterValue", "Limit")):
        error = compat_shop.call("DescribeCostSummaryByResource", body)["Error"]
        assert (error["Code"], error["Message"].split(":")[0]) == (code, field), error
    fine = compat_shop.call("DescribeCostSummaryByResource", {**both, "Conditions": {}})
    assert "Error" not in fine and fine["RecordNum"] is None


@pytest.mark.spec("XTR-5", "BIL-4")
def test_cost_trend_compares_with_last_month(billed):
    rt, uin, client = billed.rt, billed.uin, billed.client
    with rt.engine.connect() as conn:
        march, april = (consumption.consumption_bill(conn, OPS, uin, m)
                        for m in (MONTH, "2026-04"))
    before = {p["product"]: p["total"] for p in march["by_product"]}
    found = call(client, "DescribeCostSummaryByProduct", BeginTime="2026-04", EndTime="2026-04",
                 Offset=0, Limit=100)
    assert fen(found.Total.RealTotalCost) == april["total"]
    for item in found.Data:  # the prepaid months' rest: less than March
        now, then = fen(item.RealTotalCost), before[item.BusinessCode]
        assert item.Trend.Type == "downward" and now < then
        change = (Decimal(then - now) * 100 / then).quantize(Decimal("0.01"))
        assert Decimal(item.Trend.Value) == change
        assert fen(item.LeftRealTotalCost) >= 0


@pytest.mark.spec("XTR-5", "ACC-2")
def test_a_user_without_the_finance_permission_reads_no_summary(billed, live_server_on_test_clock):
    rt, uin = billed.rt, billed.uin
    _, address = live_server_on_test_clock
    with rt.engine.begin() as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "viewer", "readonly")
    key = make_key(rt, uin, "viewer")
    viewer = sdk(address, key.secret_id, key.secret_key)
    for action, params in (("DescribeBillSummaryByProduct", months()),
                           ("DescribeBillSummary", {"Month": MONTH, "GroupType": "business"}),
                           ("DescribeBillResourceSummary", {"Month": MONTH, "Offset": 0,
                                                            "Limit": 10}),
                           ("DescribeCostSummaryByRegion", months()),
                           ("DescribeCostDetail", {"Month": MONTH, "Offset": 0, "Limit": 10})):
        assert refused(viewer, action, **params).get_code() == "UnauthorizedOperation", action
