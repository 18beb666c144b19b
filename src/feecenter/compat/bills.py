"""Billing API 2018-07-09 bill summaries (XTR-5 over BIL-1 and BIL-4): the cost bill's
L1 views ``DescribeBillSummaryByProduct|Project|Region|PayMode|Tag`` and
``DescribeBillSummary`` (L0/L1 from the roll-ups), its L2 ``DescribeBillResourceSummary``,
and the consumption bill (消耗账单) views ``DescribeCostSummaryByProduct|Project|Region|
Resource`` and ``DescribeCostDetail``. Each is a thin call of ``bills.service`` (which
checks FINANCE and the month); the bodies are already checked against ``compat.params``.

Amounts are strings in yuan with 8 decimals, as Tencent gives them: rated costs
(1e-8 yuan) exactly, fen with six zeros. docs/api.md, "Bill summaries".
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from feecenter.accounts.permissions import Actor
from feecenter.bills import service as bills
from feecenter.bills.lines import month_start
from feecenter.catalog import service as catalog
from feecenter.catalog.rules import format_quantity
from feecenter.clock import (
    BUSINESS_TZ,
    add_months,
    business_time_text,
)
from feecenter.compat.params import one_month_range
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.inputs import digits_id
from feecenter.money import format_rated, format_yuan
from feecenter.orders.rules import order_no
from feecenter.runtime import Runtime

FEN = 1_000_000  # 1e-8 yuan in one fen
PAY_MODES = {"prepaid": ("prePay", "包年包月"), "postpaid": ("postPay", "按量计费")}
PAY_MODE_OF = {"prePay": "prepaid", "postPay": "postpaid"}
# a line's (pay mode, kind) -> Tencent's ActionType code and name (交易类型)
ACTION_TYPES = {
    ("prepaid", "new"): ("prepay_purchase", "包年包月新购"),
    ("prepaid", "renew"): ("prepay_renew", "包年包月续费"),
    ("prepaid", "upgrade"): ("prepay_modify", "包年包月配置变更"),
    ("prepaid", "downgrade"): ("prepay_modify", "包年包月配置变更"),
    ("prepaid", "refund"): ("prepay_return", "包年包月退款"),
    ("postpaid", "charge"): ("postpay_deduct", "按量计费扣费"),
    ("postpaid", "adjustment"): ("postpay_adjust", "调账扣费"),  # SET-9: late usage, corrections
}
# DescribeBillResourceSummary's ActionType (a name) -> our line kinds; a name of Tencent's
# list we never produce (线下项目扣费, 竞价实例小时结 …) finds nothing
KINDS_OF_ACTION = {
    "包年包月新购": ("new",), "包年包月续费": ("renew",),
    "包年包月配置变更": ("upgrade", "downgrade"), "包年包月退款": ("refund",),
    "按量计费扣费": ("charge", "adjustment"), "按量计费小时结": ("charge", "adjustment"),
    "按量计费日结": ("charge", "adjustment"), "按量计费月结": ("charge", "adjustment"),
    "调账扣费": ("adjustment",),
}
PERIOD_TYPES = ("byPayTime", "byUsedTime")  # BIL-3
GROUP_TYPES = {"business": "product", "project": "project", "region": "region",
               "payMode": "pay_mode", "tag": "tag"}
# Tencent's numeric region ids (BillResourceSummary.RegionId is an integer); 0: none
REGION_IDS = {"ap-guangzhou": 1, "ap-shanghai": 4, "ap-hongkong": 5, "ap-beijing": 8,
              "ap-singapore": 9, "ap-chengdu": 16, "ap-chongqing": 19, "ap-nanjing": 33}
_MONTH = re.compile(r"([0-9]{4}-[0-9]{2})(-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?)?")


# ---------------------------------------------------------------- parameters

def _customer_uin(actor: Actor) -> int:
    if actor.uin is None:
        raise PermissionDenied("该接口需使用客户账号的密钥调用",
                               "this action needs the key of a customer account")
    return actor.uin


def _own_payer(params: dict, uin: int, name: str = "PayerUin") -> None:
    """PayerUin: a group's payer reads a member's bills at Tencent; here only one's own."""
    if params.get(name) and digits_id(params[name], name) != uin:
        raise PermissionDenied("只能查询本账号的账单", "only the account's own bills can be read",
                               name)


def _month_text(params: dict, name: str) -> str:
    """YYYY-MM (or a date or business time in that month) -> YYYY-MM, checked."""
    value = params.get(name)
    if value in (None, ""):
        raise invalid(name, f"缺少参数 {name}", f"missing parameter {name}")
    match = _MONTH.fullmatch(value)
    if match is None:
        raise invalid(name, f"{name} 格式应为 YYYY-MM", f"{name} must be YYYY-MM")
    try:
        return bills.check_month(match[1])
    except FeeCenterError as exc:
        raise _renamed(exc, {"month": name}) from None


def _one_month(params: dict) -> str:
    """BeginTime and EndTime: one month (Tencent: no query across months)."""
    begin, end = _month_text(params, "BeginTime"), _month_text(params, "EndTime")
    if begin != end:
        raise invalid("EndTime", "BeginTime 与 EndTime 须为同一月份（不支持跨月查询）",
                      "BeginTime and EndTime must be in the same month (no query across months)")
    return begin


def _renamed(exc: FeeCenterError, names: dict[str, str]) -> FeeCenterError:
    exc.field = names.get(exc.field, exc.field)
    return exc


def _check_period(rt: Runtime, uin: int, month: str, period_type: str | None) -> None:
    """PeriodType, when given, must name the month's statistic period (BIL-3)."""
    if not period_type:
        return
    if period_type not in PERIOD_TYPES:
        raise invalid("PeriodType", "PeriodType 只能为 byPayTime 或 byUsedTime",
                      "PeriodType must be byPayTime or byUsedTime")
    with rt.engine.connect() as conn:
        switched = bills.usage_time_switch_month(conn, uin)
    expected = "byUsedTime" if switched and month >= switched else "byPayTime"
    if period_type != expected:
        raise invalid("PeriodType", f"该月账单的统计周期为 {expected}",
                      f"the month's statistic period is {expected}")


# ---------------------------------------------------------------- formats

def _rated(value: int) -> str:
    return format_rated(value)


def _fen(value: int) -> str:
    return format_rated(value * FEN)


def _ratio(part: int, whole: int) -> str:
    """A percentage with two decimals, half-up (RealTotalCostRatio); 0 of a 0 total."""
    if whole == 0:
        return "0.00"
    value = Decimal(part) * 100 / Decimal(whole)
    return str(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def _discount(real: int, total: int) -> str:
    """Real / total as Tencent writes a discount ("0.85", "1"); "-" without a total."""
    if total == 0:
        return "-"
    text = f"{(Decimal(real) / Decimal(total)).quantize(Decimal('0.0001'), ROUND_HALF_UP):f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _time(value) -> str:
    return business_time_text(value) if value is not None else ""


def _pays(sums: dict) -> dict:
    """The cost-bill sums (rated costs, fen paid) as Tencent's amount fields."""
    return {"TotalCost": _rated(sums["original_cost"]),
            "RealTotalCost": _rated(sums["discounted_cost"]),
            "CashPayAmount": _fen(sums["cash_paid"]),
            "IncentivePayAmount": _fen(sums["gift_paid"]),
            "VoucherPayAmount": _fen(sums["voucher_paid"]), "TransferPayAmount": _fen(0)}


def _overview_item(sums: dict, total: dict, month: str) -> dict:
    return {"RealTotalCostRatio": _ratio(sums["discounted_cost"], total["discounted_cost"]),
            **_pays(sums), "BillMonth": month}


class _Names:
    """Product, region and billing-item names (Chinese, as Tencent's console shows them),
    read while the connection is open."""

    def __init__(self, conn):
        self.products = {p.code: p.name_zh for p in catalog.list_products(conn)}
        self.regions = {r["code"]: r["name_zh"] for r in catalog.list_regions(conn)}
        self.items = {code: {i["code"]: i for i in catalog.list_items(conn, code)}
                      for code in self.products}

    def product(self, code: str) -> str:
        return self.products.get(code, code)

    def region(self, code: str) -> str:
        return self.regions.get(code, code)

    def item(self, product: str, code: str) -> dict:
        return self.items.get(product, {}).get(code, {"name_zh": code, "unit_zh": ""})


# ---------------------------------------------------------------- L1: DescribeBillSummaryBy*

def _l1(rt: Runtime, actor: Actor, params: dict, by: str, tag_key: str | None = None):
    uin = _customer_uin(actor)
    _own_payer(params, uin)
    month = _one_month(params)
    with rt.engine.connect() as conn:
        try:
            overview = bills.overview(conn, actor, uin, month)
            groups = bills.summary(conn, actor, uin, month, by, tag_key)
        except FeeCenterError as exc:
            raise _renamed(exc, {"month": "BeginTime", "tag_key": "TagKey"}) from None
        return month, overview["total"], groups, _Names(conn)


def describe_bill_summary_by_product(rt: Runtime, actor: Actor, params: dict) -> dict:
    """L1 by product from the roll-ups; ``PayType`` (consume, refund, adjustment: L0's
    categories) sums the month's lines of that category on the refreshed days instead."""
    pay_type = params.get("PayType") or None
    if pay_type is not None and pay_type not in bills.PAY_TYPES:
        raise invalid("PayType", "PayType 只能为 consume、refund 或 adjustment",
                      "PayType must be consume, refund or adjustment")
    month, total, groups, names = _l1(rt, actor, params, "product")
    if pay_type is not None:
        with rt.engine.connect() as conn:
            lines = [line for line in bills.refreshed_lines(conn, actor, actor.uin, month)
                     if bills.pay_type(line) == pay_type]
        by_product = bills.sum_lines(lines, lambda line: line["product_code"])
        total = bills.sum_lines(lines, lambda line: None).get(None, dict.fromkeys(bills.SUMS, 0))
        groups = sorted(({"product": code, **sums} for code, sums in by_product.items()),
                        key=lambda g: (-g["deducted"], g["product"]))
    return {"Ready": 1, "SummaryTotal": _pays(total),
            "SummaryOverview": [{"BusinessCode": g["product"],
                                 "BusinessCodeName": names.product(g["product"]),
                                 **_overview_item(g, total, month)} for g in groups]}


def describe_bill_summary_by_project(rt: Runtime, actor: Actor, params: dict) -> dict:
    month, total, groups, _ = _l1(rt, actor, params, "project")
    return {"Ready": 1, "SummaryOverview": [
        {"ProjectId": str(g["project"]), "ProjectName": g["project_name"],
         **_overview_item(g, total, month)} for g in groups]}


def describe_bill_summary_by_region(rt: Runtime, actor: Actor, params: dict) -> dict:
    month, total, groups, names = _l1(rt, actor, params, "region")
    return {"Ready": 1, "SummaryOverview": [
        {"RegionId": g["region"], "RegionName": names.region(g["region"]),
         **_overview_item(g, total, month)} for g in groups]}


def describe_bill_summary_by_pay_mode(rt: Runtime, actor: Actor, params: dict) -> dict:
    """By pay mode from the roll-ups; ``Detail`` by transaction type (the order kind, or
    a postpaid charge or adjustment) from the month's lines on the refreshed days."""
    month, total, groups, _ = _l1(rt, actor, params, "pay_mode")
    with rt.engine.connect() as conn:
        lines = bills.refreshed_lines(conn, actor, actor.uin, month)
    by_action = bills.sum_lines(lines, lambda line: (line["pay_mode"],
                                                     ACTION_TYPES[(line["pay_mode"],
                                                                   line["kind"])]))
    out = []
    for g in groups:
        code, name = PAY_MODES[g["pay_mode"]]
        detail = sorted(((action, sums) for (mode, action), sums in by_action.items()
                         if mode == g["pay_mode"]), key=lambda a: (-a[1]["deducted"], a[0]))
        out.append({"PayMode": code, "PayModeName": name,
                    "RealTotalCostRatio": _ratio(g["discounted_cost"], total["discounted_cost"]),
                    **_pays(g),
                    "Detail": [{"ActionType": action[0], "ActionTypeName": action[1],
                                **_overview_item(sums, total, month)}
                               for action, sums in detail]})
    return {"Ready": 1, "SummaryOverview": out}


def describe_bill_summary_by_tag(rt: Runtime, actor: Actor, params: dict) -> dict:
    """By the values of ``TagKey`` on the resources now ("" for those without it);
    ``TagValue`` keeps one value's group."""
    if not params.get("TagKey"):
        raise invalid("TagKey", "缺少参数 TagKey", "missing parameter TagKey")
    month, total, groups, _ = _l1(rt, actor, params, "tag", params["TagKey"])
    if "TagValue" in params:
        groups = [g for g in groups if g["tag_value"] == params["TagValue"]]
    return {"Ready": 1,
            "SummaryOverview": [{"TagValue": g["tag_value"],
                                 "RealTotalCostRatio": _ratio(g["discounted_cost"],
                                                              total["discounted_cost"]),
                                 **_pays(g)} for g in groups],
            "SummaryTotal": {"RealTotalCost": _rated(total["discounted_cost"]),
                             "TotalCost": _rated(total["original_cost"])}}


# ---------------------------------------------------------------- DescribeBillSummary

def describe_bill_summary(rt: Runtime, actor: Actor, params: dict) -> dict:
    """One dimension's L1 groups (GroupType), each with its products (``Business``).
    ``GroupKey`` is the group's code (product code, project id, region code, prePay/
    postPay; for a tag, the tag key) and ``GroupValue`` its name (for a tag, the value)."""
    uin = _customer_uin(actor)
    _own_payer(params, uin)
    month = _month_text(params, "Month")
    group_type = params.get("GroupType") or None
    if group_type not in GROUP_TYPES:
        raise invalid("GroupType", "GroupType 只能为 business、project、region、payMode 或 tag",
                      "GroupType must be business, project, region, payMode or tag")
    tag_keys = params.get("TagKey") or []
    if group_type == "tag" and not tag_keys:
        raise invalid("TagKey", "GroupType 为 tag 时须传 TagKey", "GroupType tag needs TagKey")
    if params.get("OperateUin") and digits_id(params["OperateUin"], "OperateUin") != uin:
        return {"Ready": 1, "SummaryDetail": []}  # every line here was made by the account
    by = GROUP_TYPES[group_type]
    with rt.engine.connect() as conn:
        names = _Names(conn)
        try:
            found = ([(key, bills.summary_with_products(conn, actor, uin, month, by, key))
                      for key in tag_keys] if by == "tag"
                     else [(None, bills.summary_with_products(conn, actor, uin, month, by))])
        except FeeCenterError as exc:
            raise _renamed(exc, {"month": "Month", "tag_key": "TagKey"}) from None
    return {"Ready": 1, "SummaryDetail": [
        {**_group_key(by, key, g, names), **_pays(g),
         "Business": [{"BusinessCode": p["product"], "BusinessCodeName": names.product(p["product"]),
                       **_pays(p)} for p in g["products"]]}
        for key, groups in found for g in groups]}


def _group_key(by: str, tag_key: str | None, group: dict, names: _Names) -> dict:
    if by == "product":
        return {"GroupKey": group["product"], "GroupValue": names.product(group["product"])}
    if by == "project":
        return {"GroupKey": str(group["project"]), "GroupValue": group["project_name"]}
    if by == "region":
        return {"GroupKey": group["region"], "GroupValue": names.region(group["region"])}
    if by == "pay_mode":
        code, name = PAY_MODES[group["pay_mode"]]
        return {"GroupKey": code, "GroupValue": name}
    return {"GroupKey": tag_key, "GroupValue": group["tag_value"]}


# ---------------------------------------------------------------- L2: DescribeBillResourceSummary

def describe_bill_resource_summary(rt: Runtime, actor: Actor, params: dict) -> dict:
    """A page of L2 (per resource, largest deduction first) from the roll-ups; the
    transaction types, times and configuration from the resource's lines."""
    uin = _customer_uin(actor)
    _own_payer(params, uin)
    month = _month_text(params, "Month")
    _check_period(rt, uin, month, params.get("PeriodType"))
    pay_mode = params.get("PayMode") or None
    if pay_mode not in (None, *PAY_MODE_OF):
        raise invalid("PayMode", "PayMode 只能为 prePay 或 postPay",
                      "PayMode must be prePay or postPay")
    kinds = None
    if params.get("ActionType"):
        kinds = KINDS_OF_ACTION.get(params["ActionType"], ())
    tag = None
    if params.get("TagKey"):
        tag = (params["TagKey"], params.get("TagValue") or "")
    with rt.engine.connect() as conn:
        names = _Names(conn)
        page = bills.resource_bill_page(
            conn, actor, uin, month, pay_mode=PAY_MODE_OF.get(pay_mode),
            product_code=params.get("BusinessCode") or None,
            resource_id=params.get("ResourceId") or None, kinds=kinds, tag=tag,
            offset=params.get("Offset", 0), limit=params.get("Limit", 20))
    body = {"ResourceSummarySet": [_resource(item, uin, month, names) for item in page["items"]]}
    body["Total"] = page["total"] if params.get("NeedRecordNum") == 1 else None
    return body


def _resource(item: dict, uin: int, month: str, names: _Names) -> dict:
    product = names.product(item["product_code"])
    # BIL-6: a contract or fixed price shows no original cost or discount; nor a refund
    listed = item["price_kinds"] == ["list"] and item["deducted"] >= 0
    actions = sorted({ACTION_TYPES[(item["pay_mode"], kind)][1] for kind in item["kinds"]})
    discount = _discount(item["discounted_cost"], item["original_cost"]) if listed else "-"
    return {
        "BusinessCodeName": product, "ProductCodeName": product,
        "PayModeName": PAY_MODES[item["pay_mode"]][1], "ProjectName": item["project_name"],
        "RegionName": names.region(item["region"]), "ZoneName": "",
        "ResourceId": item["resource_id"], "ResourceName": item["resource_name"] or "",
        "ActionTypeName": "、".join(actions), "OrderId": "",
        "PayTime": _time(item["last_deducted_at"]), "FeeBeginTime": _time(item["first_usage"]),
        "FeeEndTime": _time(item["last_usage_end"]),
        "ConfigDesc": "; ".join(names.item(item["product_code"], code)["name_zh"]
                                for code in item["items"]),
        "ExtendField1": "", "ExtendField2": "", "ExtendField3": "", "ExtendField4": "",
        "ExtendField5": "",
        "TotalCost": _rated(item["original_cost"]) if listed else "-",
        "Discount": discount, "ReduceType": "折扣" if discount not in ("-", "1") else "",
        "RealTotalCost": _rated(item["discounted_cost"]),
        "VoucherPayAmount": _fen(item["voucher_paid"]), "CashPayAmount": _fen(item["cash_paid"]),
        "IncentivePayAmount": _fen(item["gift_paid"]), "TransferPayAmount": _fen(0),
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in sorted(item["tags"].items())],
        "PayerUin": str(uin), "OwnerUin": str(uin), "OperateUin": str(uin),
        "BusinessCode": item["product_code"], "ProductCode": item["product_code"],
        "RegionId": REGION_IDS.get(item["region"], 0), "InstanceType": "",
        "OriginalCostWithRI": "0", "SPDeduction": "0", "OriginalCostWithSP": "0",
        "BillMonth": month,
    }


# ---------------------------------------------------------------- consumption: DescribeCost*

def _consumption(rt: Runtime, actor: Actor, params: dict):
    """The month's consumption lines, and last month's (for the trend)."""
    uin = _customer_uin(actor)
    _own_payer(params, uin)
    month = _one_month(params)
    with rt.engine.connect() as conn:
        names = _Names(conn)
        lines = bills.consumption_lines(conn, actor, uin, month)
        before = _previous_month(month)
        earlier = bills.consumption_lines(conn, actor, uin, before) if before else []
    return month, lines, earlier, names


def _previous_month(month: str) -> str | None:
    previous = add_months(month_start(month), -1).astimezone(BUSINESS_TZ).strftime("%Y-%m")
    try:
        return bills.check_month(previous)
    except FeeCenterError:
        return None


def _trend(now: int, before: int | None) -> dict:
    """upward / downward against last month with the change in percent; none when
    equal or nothing last month (Value null, as Tencent documents)."""
    if not before or now == before:
        return {"Type": "none", "Value": None}
    change = abs(Decimal(now - before) * 100 / Decimal(before))
    return {"Type": "upward" if now > before else "downward",
            "Value": str(change.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))}


def _consumed(sums: dict) -> dict:
    return {"RealTotalCost": _fen(sums["consumed"]), "CashPayAmount": _fen(sums["cash"]),
            "IncentivePayAmount": _fen(sums["gift"]), "VoucherPayAmount": _fen(sums["voucher"]),
            "TransferPayAmount": _fen(0), "LeftRealTotalCost": _fen(sums["left"])}


def _business(products: list[dict], before: dict, names: _Names, region: str = "") -> list[dict]:
    return [{"BusinessCode": p["product"], "BusinessCodeName": names.product(p["product"]),
             "Trend": _trend(p["consumed"], before.get(p["product"])), **_consumed(p),
             "RegionName": region} for p in products]


def _paged(params: dict, items: list) -> tuple[list, int | None]:
    offset, limit = params.get("Offset", 0), params.get("Limit", 20)
    return (items[offset:offset + limit],
            len(items) if params.get("NeedRecordNum") == 1 else None)


def _total(lines: list[dict]) -> dict:
    return {"RealTotalCost": _fen(sum(line["consumed"] for line in lines))}


def describe_cost_summary_by_product(rt: Runtime, actor: Actor, params: dict) -> dict:
    month, lines, earlier, names = _consumption(rt, actor, params)
    before = {g["product_code"]: g["consumed"] for g in bills.consumption_summary(earlier, "product")}
    groups = bills.consumption_summary(lines, "product")
    data = [{"BusinessCode": g["product_code"], "BusinessCodeName": names.product(g["product_code"]),
             "Trend": _trend(g["consumed"], before.get(g["product_code"])), **_consumed(g),
             "RegionName": ""} for g in groups]
    page, count = _paged(params, data)
    return {"Ready": 1, "Total": _total(lines), "Data": page, "RecordNum": count}


def _within(earlier: list[dict], by: str) -> tuple[dict, dict]:
    """Last month's consumption per group and per (group, product)."""
    groups = bills.consumption_summary(earlier, by)
    key = bills.CONSUMPTION_KEYS[by][0]
    return ({g[key]: g["consumed"] for g in groups},
            {g[key]: {p["product"]: p["consumed"] for p in g["products"]} for g in groups})


def describe_cost_summary_by_project(rt: Runtime, actor: Actor, params: dict) -> dict:
    month, lines, earlier, names = _consumption(rt, actor, params)
    before, before_products = _within(earlier, "project")
    data = [{"ProjectId": str(g["project_id"]), "ProjectName": g["project_name"],
             "Trend": _trend(g["consumed"], before.get(g["project_id"])),
             "Business": _business(g["products"], before_products.get(g["project_id"], {}), names),
             **_consumed(g)} for g in bills.consumption_summary(lines, "project")]
    page, count = _paged(params, data)
    return {"Ready": 1, "Total": _total(lines), "Data": page, "RecordNum": count}


def describe_cost_summary_by_region(rt: Runtime, actor: Actor, params: dict) -> dict:
    month, lines, earlier, names = _consumption(rt, actor, params)
    before, before_products = _within(earlier, "region")
    data = []
    for g in bills.consumption_summary(lines, "region"):
        region = names.region(g["region"])
        data.append({"RegionId": g["region"], "RegionName": region,
                     "Trend": _trend(g["consumed"], before.get(g["region"])),
                     "Business": _business(g["products"], before_products.get(g["region"], {}),
                                           names, region), **_consumed(g)})
    page, count = _paged(params, data)
    return {"Ready": 1, "Total": _total(lines), "Data": page, "RecordNum": count}


CONDITIONS = ("ResourceKeyword", "ProjectIds", "RegionIds", "PayModes", "HideFreeCost",
              "OrderByCost", "BusinessCodes")


def describe_cost_summary_by_resource(rt: Runtime, actor: Actor, params: dict) -> dict:
    """Per resource (and pay mode) consumption; ``Conditions`` filter on ResourceKeyword
    (id or name contains), ProjectIds, RegionIds (Tencent's numeric ids), PayModes,
    BusinessCodes (or one ProjectId, RegionId, PayMode, BusinessCode), HideFreeCost and
    order by OrderByCost (desc default); ``TagKey`` /
    ``TagValue`` keep the resources with that tag value now ("" for without the key)."""
    conditions = dict(params.get("Conditions") or {})
    for one, many in (("ProjectId", "ProjectIds"), ("RegionId", "RegionIds"),
                      ("PayMode", "PayModes"), ("BusinessCode", "BusinessCodes")):
        if conditions.get(one) not in (None, ""):  # a single value: a list of one
            conditions[many] = [*(conditions.get(many) or []), conditions.pop(one)]
        conditions.pop(one, None)
    for name in conditions:
        if name not in CONDITIONS:
            raise invalid(f"Conditions.{name}", "不支持该过滤条件",
                          "this filter is not supported here")
    order = conditions.get("OrderByCost") or "desc"
    if order not in ("desc", "asc"):
        raise invalid("Conditions.OrderByCost", "排序规则只能为 desc 或 asc",
                      "OrderByCost must be desc or asc")
    for mode in conditions.get("PayModes") or ():
        if mode not in PAY_MODE_OF:
            raise invalid("Conditions.PayModes", "付费模式只能为 prePay 或 postPay",
                          "PayModes must be prePay or postPay")
    month, lines, _, names = _consumption(rt, actor, params)
    groups = bills.consumption_summary(lines, "resource")
    condition_value = _condition_value(groups, names) if params.get("NeedConditionValue") == 1 \
        else None
    kept = [g for g in groups if _kept(g, conditions, params)]
    kept.sort(key=lambda g: (g["consumed"] if order == "asc" else -g["consumed"],
                             g["resource_id"]))
    page, count = _paged(params, [_consumed_resource(g, actor.uin, names) for g in kept])
    return {"Ready": 1, "Total": _total(lines), "ConditionValue": condition_value,
            "RecordNum": count, "Data": page}


def _kept(group: dict, conditions: dict, params: dict) -> bool:
    word = conditions.get("ResourceKeyword")
    if word and word not in group["resource_id"] and word not in (group["resource_name"] or ""):
        return False
    if conditions.get("ProjectIds") and group["project_id"] not in conditions["ProjectIds"]:
        return False
    if conditions.get("RegionIds") and REGION_IDS.get(group["region"], 0) not in \
            conditions["RegionIds"]:
        return False
    if conditions.get("PayModes") and PAY_MODES[group["pay_mode"]][0] not in conditions["PayModes"]:
        return False
    if conditions.get("BusinessCodes") and group["product_code"] not in conditions["BusinessCodes"]:
        return False
    if conditions.get("HideFreeCost") == 1 and group["consumed"] == 0:
        return False
    if params.get("TagKey"):
        tags = group.get("tags", {})
        if tags.get(params["TagKey"], "") != (params.get("TagValue") or ""):
            return False
    return True


def _condition_value(groups: list[dict], names: _Names) -> dict:
    products = sorted({g["product_code"] for g in groups})
    projects = sorted({(g["project_id"], g["project_name"]) for g in groups})
    regions = sorted({g["region"] for g in groups})
    modes = sorted({g["pay_mode"] for g in groups})
    return {"Business": [{"BusinessCode": c, "BusinessCodeName": names.product(c)}
                         for c in products],
            "Project": [{"ProjectId": str(i), "ProjectName": n} for i, n in projects],
            "Region": [{"RegionId": c, "RegionName": names.region(c)} for c in regions],
            "PayMode": [{"PayMode": PAY_MODES[m][0], "PayModeName": PAY_MODES[m][1]}
                        for m in modes]}


def _consumed_resource(g: dict, uin: int, names: _Names) -> dict:
    product = names.product(g["product_code"])
    code, mode_name = PAY_MODES[g["pay_mode"]]
    daily = (Decimal(g["consumed"]) / Decimal(g["days"] or 1) / 100).quantize(
        Decimal("1e-8"), rounding=ROUND_HALF_UP)
    return {
        "ResourceId": g["resource_id"], "ResourceName": g["resource_name"] or "",
        **_consumed(g), "RealCost": _fen(g["consumed"]),
        "ProjectId": str(g["project_id"]), "ProjectName": g["project_name"],
        "RegionId": g["region"], "RegionName": names.region(g["region"]),
        "PayMode": code, "PayModeName": mode_name,
        "BusinessCode": g["product_code"], "BusinessCodeName": product,
        "ConsumptionTypeName": "包年包月按天分摊" if g["pay_mode"] == "prepaid" else "按量计费",
        "FeeBeginTime": _time(g["fee_begin"]), "FeeEndTime": _time(g["fee_end"]),
        "DayDiff": str(g["days"]), "DailyTotalCost": f"{daily:f}", "OrderId": "",
        "PayerUin": str(uin), "OwnerUin": str(uin), "OperateUin": str(uin),
        "ProductCode": g["product_code"], "ProductCodeName": product,
        "RegionType": "0", "RegionTypeName": "中国大陆",
        "Extend1": "", "Extend2": "", "Extend3": "", "Extend4": "", "Extend5": "",
        "InstanceType": "", "InstanceTypeName": "", "PayTime": _time(g["last_deducted_at"]),
        "ZoneName": "",
        "ComponentConfig": "; ".join(names.item(g["product_code"], i)["name_zh"]
                                     for i in g["items"]),
        "Tags": "; ".join(f"{k}:{v}" for k, v in sorted(g.get("tags", {}).items())),
    }


# ---------------------------------------------------------------- DescribeCostDetail

def _detail_days(params: dict):
    """Month, or BeginTime/EndTime (business times of one month; the days they touch)."""
    times = one_month_range(params)
    if times is not None:
        start, stop = times
        first, last = (start.astimezone(BUSINESS_TZ).date(), stop.astimezone(BUSINESS_TZ).date())
        return _month_text({"BeginTime": business_time_text(start)[:7]}, "BeginTime"), first, \
            last + timedelta(days=1)
    return _month_text(params, "Month"), None, None


def describe_cost_detail(rt: Runtime, actor: Actor, params: dict) -> dict:
    """The consumption bill line by line (BIL-4): each prepaid order's share of the days
    asked (Month, or the days BeginTime..EndTime touch) and each postpaid L3 line whose
    usage began in them; filters ProductCode/BusinessCode, PayMode, ResourceId,
    ProjectId, RegionId (our region code); paged, ``Total`` always counted."""
    uin = _customer_uin(actor)
    month, first, stop = _detail_days(params)
    pay_mode = params.get("PayMode") or None
    if pay_mode not in (None, *PAY_MODE_OF):
        raise invalid("PayMode", "PayMode 只能为 prePay 或 postPay",
                      "PayMode must be prePay or postPay")
    project = params.get("ProjectId") or None
    if project is not None:
        project = digits_id(project, "ProjectId") if project != "0" else 0
    with rt.engine.connect() as conn:
        names = _Names(conn)
        lines = bills.consumption_lines(conn, actor, uin, month, first, stop)
    wanted = [line for line in lines if _detail_kept(line, params, pay_mode, project)]
    offset, limit = params.get("Offset", 0), params.get("Limit", 20)
    return {"DetailSet": [_cost_detail(line, uin, names)
                          for line in wanted[offset:offset + limit]],
            "Total": len(wanted)}


def _detail_kept(line: dict, params: dict, pay_mode: str | None, project) -> bool:
    products = {params[n] for n in ("ProductCode", "BusinessCode") if params.get(n)}
    return ((not products or line["product_code"] in products)
            and (pay_mode is None or line["pay_mode"] == PAY_MODE_OF[pay_mode])
            and (not params.get("ResourceId") or line["resource_id"] == params["ResourceId"])
            and (project is None or line["project_id"] == project)
            and (not params.get("RegionId") or line["region"] == params["RegionId"]))


def _cost_detail(line: dict, uin: int, names: _Names) -> dict:
    product = names.product(line["product_code"])
    item = names.item(line["product_code"], line["item"])
    prepaid = line["pay_mode"] == "prepaid"
    listed = line["price_kind"] == "list" and line["original_cost"] is not None
    if prepaid:  # the days' share of the order's original cost, by the same rule
        original = line["original_share"] * FEN if listed else None
    else:
        original = line["original_cost"] if listed else None
    component = {
        "ComponentCodeName": item["name_zh"], "ItemCodeName": item["name_zh"],
        "SinglePrice": _rated(line["unit_price"]) if listed and line["unit_price"] is not None
        else "-",
        "PriceUnit": (f"元/{item['unit_zh']}/月" if prepaid else f"元/{item['unit_zh']}")
        if item["unit_zh"] else "元",
        "UsedAmount": _quantity(line["quantity"]), "UsedAmountUnit": "天" if prepaid
        else item["unit_zh"],
        "Cost": _rated(original) if original is not None else "-",
        "Discount": _discount(line["consumed"] * FEN, original) if original else "-",
        "RealCost": _fen(line["consumed"]),
        "VoucherPayAmount": format_yuan(line["voucher"]),
        "CashPayAmount": format_yuan(line["cash"]),
        "IncentivePayAmount": format_yuan(line["gift"]),
        "ComponentCode": line["item"], "ItemCode": line["item"],
    }
    code, action = ACTION_TYPES[(line["pay_mode"], line["kind"])]
    return {
        "PayerUin": str(uin), "BusinessCodeName": product, "ProductCodeName": product,
        "PayModeName": PAY_MODES[line["pay_mode"]][1], "ProjectName": line["project_name"],
        "RegionName": names.region(line["region"]), "ZoneName": "",
        "ResourceId": line["resource_id"], "ResourceName": line["resource_name"] or "",
        "ActionTypeName": action,
        "OrderId": order_no(line["order_id"], line["order_created_at"]) if prepaid else "",
        "BillId": "", "FeeBeginTime": _time(line["fee_begin"]),
        "FeeEndTime": _time(line["fee_end"]), "ComponentSet": [component],
        "ProductCode": line["product_code"],
        "Tags": [{"TagKey": k, "TagValue": v} for k, v in sorted(line["tags"].items())],
        "OperateUin": str(uin), "OwnerUin": str(uin), "PayTime": _time(line["deducted_at"]),
        "BusinessCode": line["product_code"],
    }


def _quantity(micro: int) -> str:
    return format_quantity(micro)


ACTIONS = {
    "DescribeBillSummaryByProduct": describe_bill_summary_by_product,
    "DescribeBillSummaryByProject": describe_bill_summary_by_project,
    "DescribeBillSummaryByRegion": describe_bill_summary_by_region,
    "DescribeBillSummaryByPayMode": describe_bill_summary_by_pay_mode,
    "DescribeBillSummaryByTag": describe_bill_summary_by_tag,
    "DescribeBillSummary": describe_bill_summary,
    "DescribeBillResourceSummary": describe_bill_resource_summary,
    "DescribeCostSummaryByProduct": describe_cost_summary_by_product,
    "DescribeCostSummaryByProject": describe_cost_summary_by_project,
    "DescribeCostSummaryByRegion": describe_cost_summary_by_region,
    "DescribeCostSummaryByResource": describe_cost_summary_by_resource,
    "DescribeCostDetail": describe_cost_detail,
}
