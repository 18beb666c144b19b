"""Billing API 2018-07-09 actions, each a thin call of one domain service.

Amounts are fen, as Tencent's API has them. See docs/compat-api.md.
"""

from __future__ import annotations

from datetime import timedelta

from feecenter.accounts.permissions import Actor
from feecenter.clock import business_time_text, parse_business_time
from feecenter.errors import PermissionDenied, invalid
from feecenter.funds import service as funds
from feecenter.runtime import Runtime

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


def _int_param(params: dict, name: str, default: int, low: int, high: int) -> int:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise invalid(name, f"{name} 必须是 {low}–{high} 的整数",
                      f"{name} must be an integer from {low} to {high}")
    return value


def _str_list(params: dict, name: str) -> tuple[str, ...]:
    value = params.get(name) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise invalid(name, f"{name} 必须是字符串数组", f"{name} must be a list of strings")
    return tuple(v for v in value if v != "all")


def describe_bill_list(rt: Runtime, actor: Actor, params: dict) -> dict:
    uin = _customer_uin(actor)
    for name in ("StartTime", "EndTime"):
        if not isinstance(params.get(name), str):
            raise invalid(name, f"缺少参数 {name}", f"missing parameter {name}")
    start = parse_business_time(params["StartTime"], "StartTime")
    end = parse_business_time(params["EndTime"], "EndTime")
    if end < start or end - start > timedelta(days=186):
        raise invalid("EndTime", "结束时间须不早于开始时间，且相差不超过六个月",
                      "EndTime must not precede StartTime and be at most six months later")
    query = funds.StatementQuery(
        start=start, end=end, action_types=_str_list(params, "PayType"),
        deduct_modes=_str_list(params, "SubPayType"),
        offset=_int_param(params, "Offset", 0, 0, 10**9),
        limit=_int_param(params, "Limit", 20, 1, 100),
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
    }


ACTIONS = {
    "DescribeAccountBalance": describe_account_balance,
    "DescribeBillList": describe_bill_list,
}
