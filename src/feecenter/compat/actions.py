"""Billing API 2018-07-09 actions, each a thin call of one domain service.

Every action gets a body already checked against its documented parameters
(``compat.params``: JSON types, bounds, storable strings) and decides what the
values mean. Amounts are fen, as Tencent's API has them. See docs/api.md.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from feecenter.accounts.permissions import Actor
from feecenter.catalog.rules import div_half_up, format_quantity
from feecenter.clock import business_time_text, parse_business_time
from feecenter.compat import bill_exports, bills, renewal
from feecenter.compat.params import one_month_range
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.funds import service as funds
from feecenter.inputs import digits_id
from feecenter.money import format_rated, format_yuan
from feecenter.orders import service as orders
from feecenter.orders.rules import order_no, parse_order_ref
from feecenter.present.bills import NOT_CHARGED_STOPPED
from feecenter.runtime import Runtime
from feecenter.settlement import service as settlement

# DescribeBillList totals: response field -> our action types
BILL_LIST_TOTALS = {
    "ReturnAmount": ("return",), "RechargeAmount": ("recharge", "adj_refund", "present"),
    "BlockAmount": ("block",), "UnblockAmount": ("unblock",), "DeductAmount": ("deduct",),
    "AgentInAmount": ("agentin",), "AdvanceRechargeAmount": ("advanced",),
    "WithdrawAmount": ("cash",), "AgentOutAmount": ("agentout",),
    "AdvancePayAmount": ("repay",),
}


def _customer_uin(actor: Actor) -> int:
    if actor.uin is None:
        raise PermissionDenied("该接口需使用客户账号的密钥调用",
                               "this action needs the key of a customer account")
    return actor.uin


def describe_account_balance(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    with rt.engine.connect() as conn:
        view = funds.balance_view(conn, rt.clock, actor, uin)
    return {
        "Balance": view.available, "Uin": uin, "RealBalance": view.available,
        "CashAccountBalance": view.cash, "IncomeIntoAccountBalance": view.income,
        "PresentAccountBalance": view.gift, "FreezeAmount": view.frozen,
        "OweAmount": view.arrears, "IsAllowArrears": False, "IsCreditLimited": False,
        "CreditAmount": view.credit_amount, "CreditBalance": view.credit_balance,
        "RealCreditBalance": view.real_credit_balance,
        "TempCredit": view.temp_credit if params.get("TempCredit") else 0,
        "TempAmountInfoList": [],
    }


def _required(params: dict, *names: str) -> None:
    for name in names:
        if name not in params:
            raise invalid(name, f"缺少参数 {name}", f"missing parameter {name}")


def _str_list(params: dict, name: str) -> tuple[str, ...]:
    return tuple(v for v in params.get(name, []) if v != "all")


def describe_bill_list(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    _required(params, "StartTime", "EndTime")
    start = parse_business_time(params["StartTime"], "StartTime")
    end = parse_business_time(params["EndTime"], "EndTime")
    if end < start or end - start > timedelta(days=186):
        raise invalid("EndTime", "结束时间须不早于开始时间，且相差不超过六个月",
                      "EndTime must not precede StartTime and be at most six months later")
    query = funds.StatementQuery(
        start=start, end=end, action_types=_str_list(params, "PayType"),
        deduct_modes=_str_list(params, "SubPayType"),
        offset=params.get("Offset", 0), limit=params.get("Limit", 20),
        with_zero=params.get("WithZeroAmount") == 1)
    with rt.engine.connect() as conn:
        page = funds.list_transactions(conn, actor, uin, query)
    body = {"TransactionList": [_bill_item(e) for e in page["items"]], "Total": page["total"]}
    for field, types in BILL_LIST_TOTALS.items():
        body[field] = sum(page["totals"].get(t, 0) for t in types)
    return body


def _bill_item(entry: dict) -> dict:
    created = entry["created_at"]
    return {
        "ActionType": entry["action_type"], "Amount": entry["amount"],
        "Balance": entry["balance_after"],
        "BillId": f"{created:%Y%m%d%H%M%S}{entry['txn_id']:018d}",
        "OperationInfo": entry["memo"] or "",
        "OperationTime": business_time_text(created) + f".{created.microsecond // 1000:03d}",
        "Cash": entry["cash_after"], "Incentive": entry["gift_after"],
        "Freezing": entry["frozen_after"], "PayChannel": entry["pay_channel"] or "",
        "DeductMode": (entry["deduct_mode"] or "").replace("_", ""),
        # ours (BAL-5): what cash (credit included), gift, credit and coupons carried of Amount
        "CashAmount": entry["cash_amount"], "IncentiveAmount": entry["gift_amount"],
        "CreditAmount": entry["credit_amount"], "VoucherAmount": entry["coupon_amount"],
    }


# Tencent Deal.Status codes <-> our order states
DEAL_STATUS = {"unpaid": 1, "paid": 2, "delivered": 4, "delivery_failed": 5, "refunded": 6,
               "voided": 7, "expired": 8}
DEAL_ACTION = {"new": "purchase", "renew": "renew", "upgrade": "upgrade",
               "downgrade": "downgrade", "refund": "refund"}


def describe_deals_by_cond(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    _required(params, "StartTime", "EndTime")
    field = "StatusSet" if params.get("StatusSet") else "Status"
    codes = params.get("StatusSet") or ([params["Status"]] if "Status" in params else [])
    by_code = {v: k for k, v in DEAL_STATUS.items()}
    if any(c not in by_code for c in codes):
        raise invalid(field, "订单状态取值无效", "invalid order status")
    query = orders.OrderQuery(
        start=parse_business_time(params["StartTime"], "StartTime"),
        end=parse_business_time(params["EndTime"], "EndTime"),
        states=tuple(by_code[c] for c in codes),
        order_id=parse_order_ref(params["OrderId"], "OrderId") if params.get("OrderId") else None,
        big_deal_id=(parse_order_ref(params["BigDealId"], "BigDealId")
                     if params.get("BigDealId") else None),
        resource_id=params.get("ResourceId") or None,
        offset=params.get("Offset", 0), limit=params.get("Limit", 20))
    with rt.engine.connect() as conn:
        page = orders.list_orders(conn, actor, uin, query)
    return {"Deals": [_deal(o) for o in page["items"]], "TotalCount": page["total"]}


def _deal(order: dict) -> dict:
    number = order_no(order["id"], order["created_at"])
    big = order_no(order["big_deal_id"] or order["id"], order["created_at"])
    return {
        "OrderId": number, "Status": DEAL_STATUS[order["state"]], "Payer": str(order["uin"]),
        "CreateTime": business_time_text(order["created_at"]), "Creator": order["creator"],
        "RealTotalCost": order["amount"] - order["paid_coupon"],
        "VoucherDecline": order["paid_coupon"], "ProjectId": order["project_id"],
        "GoodsCategoryId": 0,
        "ProductInfo": [{"Name": "spec", "Value": order["spec_item"]},
                        {"Name": "region", "Value": order["region"]}],
        "TimeSpan": float(order["months"] or 0), "TimeUnit": "m", "Currency": "CNY",
        "Policy": order["discount_bp"] / 100, "Price": float(order["unit_price"] or 0) / 10**6,
        "TotalCost": float(order["list_amount"]), "ProductCode": order["product_code"],
        "SubProductCode": order["spec_item"], "BigDealId": big, "Formula": "",
        "RefReturnDeals": "", "PayMode": "prePay", "Action": DEAL_ACTION[order["kind"]],
        "ProductName": order["product_code"], "SubProductName": order["spec_item"],
        "ResourceId": [order["resource_id"]], "ZoneCode": order["region"],
    }


def _voucher_choice(params: dict) -> list[int] | None:
    """PayDeals' coupons: ``VoucherIds`` the ones picked, ``AutoVoucher=1`` the best
    of the account's (None), neither: none (Tencent's default, AutoVoucher 0)."""
    picked = params.get("VoucherIds")
    if picked:
        return [digits_id(v, "VoucherIds") for v in picked]
    return None if params.get("AutoVoucher", 0) == 1 else []


def pay_deals(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    order_refs, big_refs = params.get("OrderIds") or [], params.get("BigDealIds") or []
    if bool(order_refs) == bool(big_refs):
        raise invalid("OrderIds", "OrderIds 与 BigDealIds 必须且只能传一个",
                      "pass exactly one of OrderIds and BigDealIds")
    if params.get("AgentPay", 0) != 0:
        raise invalid("AgentPay", "仅支持 AgentPay 0（本账号支付，非代理代付）",
                      "only AgentPay 0 is supported (the account pays, no agent)")
    coupon_ids = _voucher_choice(params)
    with transaction(rt.engine) as conn:
        if order_refs:
            ids = [parse_order_ref(r, "OrderIds") for r in order_refs]
        else:
            ids = []
            for ref in big_refs:
                page = orders.list_orders(conn, actor, uin, orders.OrderQuery(
                    big_deal_id=parse_order_ref(ref, "BigDealIds"), states=("unpaid",),
                    limit=100))
                ids += [o["id"] for o in page["items"]]
            if not ids:
                raise invalid("BigDealIds", "大订单下没有待支付的订单",
                              "no unpaid order under these big deals")
        # without a token the orders are the key (a repeat returns the first payment),
        # hashed: a hundred order ids would not fit a key
        key = params.get("ClientToken") or "paydeals:" + hashlib.sha256(
            ",".join(str(i) for i in sorted(ids)).encode()).hexdigest()
        try:  # the payment's writes go before the reads after it: their errors come here
            result = orders.pay(conn, rt.clock, actor, uin, ids, key=key, coupon_ids=coupon_ids)
            rows = [orders.get_order(conn, actor, uin, i) for i in result["order_ids"]]
        except FeeCenterError as exc:
            if exc.field == "order_ids":  # name the parameter the caller sent
                exc.field = "OrderIds" if order_refs else "BigDealIds"
            elif exc.field == "coupon_ids":
                exc.field = "VoucherIds"
            raise
    return {"OrderIds": [order_no(r["id"], r["created_at"]) for r in rows],
            "ResourceIds": [r["resource_id"] for r in rows],
            "BigDealIds": sorted({order_no(r["big_deal_id"] or r["id"], r["created_at"])
                                  for r in rows})}


# ---------------------------------------------------------------- DescribeBillDetail (BIL-1 L3)

# bill-line cycle -> (ActionType code as DescribeBillList's DeductMode, ActionTypeName)
DETAIL_ACTIONS = {"hour": ("hourh", "按量计费小时结"), "day": ("hourd", "按量计费日结"),
                  "month": ("hourm", "按量计费月结")}
TIME_UNITS = {"hour": "小时", "day": "天", "month": "月"}
PERIOD_TYPES = {"byPayTime": "deduction_time", "byUsedTime": "usage_time"}  # BIL-3
PAY_MODES = {None: None, "prePay": "prepaid", "postPay": "postpaid"}


def _detail_month(params: dict) -> str:
    """Month (YYYY-MM), or BeginTime/EndTime of one month (the whole month is returned)."""
    times = one_month_range(params)
    if times is not None:
        return business_time_text(times[0])[:7]
    month = params.get("Month")
    if not month:
        raise invalid("Month", "Month 与 BeginTime/EndTime 必须传一个",
                      "pass Month or BeginTime and EndTime")
    return month


def _own_payer(params: dict, uin: int) -> None:
    """PayerUin: a group's payer reads a member's bills at Tencent; here only one's own."""
    if params.get("PayerUin") and digits_id(params["PayerUin"], "PayerUin") != uin:
        raise PermissionDenied("只能查询本账号的账单", "only the account's own bills can be read",
                               "PayerUin")


def describe_bill_detail(rt: Runtime, actor: Actor, params: dict) -> dict:
    """L3 bill lines with their components (BIL-1). Our lines are all postpaid
    (按量计费): PayMode prePay finds none. The month is on the account's statistic
    period (BIL-3); PeriodType, as at Tencent, must name that period when given."""
    uin = _customer_uin(actor)
    _own_payer(params, uin)
    period_type = params.get("PeriodType") or None
    if period_type not in (None, *PERIOD_TYPES):
        raise invalid("PeriodType", "PeriodType 只能为 byPayTime 或 byUsedTime",
                      "PeriodType must be byPayTime or byUsedTime")
    pay_mode = params.get("PayMode") or None
    if pay_mode not in (None, "prePay", "postPay"):
        raise invalid("PayMode", "PayMode 只能为 prePay 或 postPay",
                      "PayMode must be prePay or postPay")
    cycles = None
    if params.get("ActionType"):
        cycles = tuple(c for c, (_, name) in DETAIL_ACTIONS.items()
                       if name == params["ActionType"])
    query = settlement.BillDetailQuery(
        month=_detail_month(params), period=PERIOD_TYPES.get(period_type),
        product_codes=tuple(params[name] for name in ("ProductCode", "BusinessCode")
                            if params.get(name)),
        resource_id=params.get("ResourceId") or None, project_id=params.get("ProjectId"),
        cycles=cycles, pay_mode=PAY_MODES[pay_mode],
        offset=params.get("Offset", 0), limit=params.get("Limit", 20))
    try:
        with rt.engine.connect() as conn:
            page = settlement.bill_detail_page(conn, actor, uin, query)
    except FeeCenterError as exc:  # name the parameter the caller sent
        exc.field = {"month": "Month", "period": "PeriodType"}.get(exc.field, exc.field)
        raise
    # Total is always counted (one indexed COUNT), whatever NeedRecordNum says
    return {"DetailSet": [_bill_detail(line) for line in page["items"]], "Total": page["total"],
            "Context": ""}


def _yuan8(micro: int) -> str:
    return format_rated(micro)


def _blended(line: dict) -> str:
    """RealCost / Cost with 8 decimals, rounded half-up (exact: no float)."""
    if not line["list_amount"]:
        return ""
    ratio = Decimal(line["discounted_amount"]) / Decimal(line["list_amount"])
    return str(ratio.quantize(Decimal("1e-8"), rounding=ROUND_HALF_UP))


def _discount_text(discount_bp: int) -> str:
    """A discount in basis points as Tencent writes it: 8500 -> "0.85", 10000 -> "1"."""
    text = f"{Decimal(discount_bp) / 10_000:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _formula(line: dict) -> str:
    """The line's notes: why it adjusts (SET-9); that usage while stopped is not charged
    (ARR-3), with how much (in the item's unit)."""
    notes = [line["reason"]] if line["reason"] else []
    if line["stopped_quantity"]:
        stopped = format_quantity(line["stopped_quantity"])
        notes.append(f"{NOT_CHARGED_STOPPED[0]}（{stopped}）/ {NOT_CHARGED_STOPPED[1]} "
                     f"({stopped})")
    return "; ".join(notes)


def _bill_detail(line: dict) -> dict:
    deducted_at = line["deducted_at"]
    period_start, period_end = line["period_start"], line["period_end"]
    action, action_name = DETAIL_ACTIONS[line["cycle"]]
    if line["kind"] == "adjustment":  # SET-9: the reason says late usage or a correction
        correction = (line["reason"] or "").startswith("用量修正")
        action_name += "（用量修正）" if correction else "（迟到用量补扣）"
    listed = line["price_kind"] == "list"  # BIL-6: contract / fixed prices show list fields "-"
    unit = line["unit"]
    time_unit = TIME_UNITS.get(line["postpaid_period"] or "", "")
    # 1e-6 units: metered, what resource packages covered (SET-10), what was used while
    # the resource was stopped for arrears (ARR-3: not charged)
    metered, covered = line["quantity"], line["package_quantity"]
    stopped = line["stopped_quantity"]
    component = {
        "ComponentCodeName": line["item_name"], "ItemCodeName": line["item_name"],
        "ComponentCode": line["billing_item"], "ItemCode": line["billing_item"],
        "SinglePrice": _yuan8(line["unit_price"]) if listed else "-",
        "SpecifiedPrice": "",
        "ContractPrice": _yuan8(div_half_up(line["unit_price"] * line["discount_bp"], 10_000))
        if listed else "-",  # list price x discount, half-up: no such price here
        "PriceUnit": f"元/{unit}" + (f"/{time_unit}" if time_unit else ""),
        # in the item's unit (SET-10): used = what was charged: metered − what resource
        # packages covered − what was used while stopped (ARR-3, in Formula)
        "UsedAmount": format_quantity(metered - covered - stopped), "UsedAmountUnit": unit,
        "RealTotalMeasure": format_quantity(metered), "DeductedMeasure": format_quantity(covered),
        "TimeSpan": "1" if time_unit else "", "TimeUnitName": time_unit,
        "Cost": _yuan8(line["list_amount"]) if listed else "-",
        "Discount": _discount_text(line["discount_bp"]) if listed else "-",
        "ReduceType": "折扣" if listed and line["discount_bp"] < 10_000 else "",
        "RealCost": _yuan8(line["discounted_amount"]),
        "VoucherPayAmount": format_yuan(line["voucher_paid"]),
        # as at Tencent, a postpaid deduction the balance cannot cover is paid from cash
        # going negative: cash here is cash + credit advanced + the arrears (SET-5)
        "CashPayAmount": format_yuan(line["cash_paid"] + line["credit_paid"] + line["arrears"]),
        "IncentivePayAmount": format_yuan(line["gift_paid"]),
        "TransferPayAmount": "0.00",
        "InstanceType": "", "RiTimeSpan": "0", "OriginalCostWithRI": "0",
        "SPDeductionRate": "0", "SPDeduction": "0", "OriginalCostWithSP": "0",
        "BlendedDiscount": _blended(line) if listed else "-",  # RealCost / Cost
        "ComponentConfig": [],
    }
    return {
        "BusinessCodeName": line["product_name"], "ProductCodeName": line["product_name"],
        "PayModeName": "按量计费", "ProjectName": line["project_name"],
        "RegionName": line["region_name"] or line["region"], "ZoneName": "",
        "ResourceId": line["resource_id"], "ResourceName": line["resource_name"] or "",
        "ActionTypeName": action_name, "OrderId": "",
        "BillId": (f"{deducted_at:%Y%m%d%H%M%S}{line['txn_id']:018d}"
                   if line["txn_id"] else ""),
        "PayTime": business_time_text(deducted_at),
        "FeeBeginTime": business_time_text(period_start),
        "FeeEndTime": business_time_text(period_end),
        "ComponentSet": [component],
        "PayerUin": str(line["uin"]), "OwnerUin": str(line["uin"]), "OperateUin": str(line["uin"]),
        "Tags": [], "BusinessCode": line["product_code"], "ProductCode": line["product_code"],
        "ActionType": action, "RegionId": line["region"], "ProjectId": line["project_id"],
        "PriceInfo": [], "Formula": _formula(line), "FormulaUrl": "",
        # 账单归属日/月 on the account's statistic period (BIL-3)
        "BillDay": business_time_text(line["statistic_time"])[8:10],
        "BillMonth": business_time_text(line["statistic_time"])[:7],
        "Id": str(line["id"]), "RegionType": "0", "RegionTypeName": "中国大陆",
        "ReserveDetail": "", "DiscountObject": "", "DiscountType": "", "DiscountContent": "",
        "ExtendField": "",
    }


ACTIONS = {
    "DescribeAccountBalance": describe_account_balance,
    "DescribeBillDetail": describe_bill_detail,
    "DescribeBillList": describe_bill_list,
    "DescribeDealsByCond": describe_deals_by_cond,
    "PayDeals": pay_deals,
    **renewal.ACTIONS,  # DescribeRenewInstances, SetRenewal, RenewInstance, RefundInstance
    **bills.ACTIONS,  # DescribeBillSummary*, DescribeBillResourceSummary, DescribeCost*
    **bill_exports.ACTIONS,  # DescribeBillDownloadUrl (BIL-7)
}
