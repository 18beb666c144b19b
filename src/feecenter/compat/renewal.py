"""Billing API 2018-07-09 renewal actions (XTR-5 over RNW-1, RNW-6, RNW-7, ORD-4):
``DescribeRenewInstances`` (renewal management's list), ``SetRenewal`` (one
instance's auto-renew flag and period), ``RenewInstance`` (a renewal paid from
the balance at once) and ``RefundInstance`` (退订). Each is a thin call of the
renewal and orders services; the bodies are already checked against
``compat.params``. docs/api.md, "Renewal actions".
"""

from __future__ import annotations

from datetime import timedelta

from feecenter.accounts.permissions import Actor
from feecenter.clock import business_time_text, parse_business_time
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.orders import service as orders
from feecenter.orders.rules import order_no
from feecenter.renewal import management, settings
from feecenter.resources import service as resources
from feecenter.runtime import Runtime

AUTO, MANUAL, DISABLED = ("NOTIFY_AND_AUTO_RENEW", "NOTIFY_AND_MANUAL_RENEW",
                          "DISABLE_NOTIFY_AND_MANUAL_RENEW")
FLAGS = (AUTO, MANUAL, DISABLED)
UNITS = {"m": 1, "y": 12}


def _customer_uin(actor: Actor) -> int:
    if actor.uin is None:
        raise PermissionDenied("该接口需使用客户账号的密钥调用",
                               "this action needs the key of a customer account")
    return actor.uin


def _required(params: dict, *names: str) -> None:
    for name in names:
        if name not in params or params[name] in ("", None):
            raise invalid(name, f"缺少参数 {name}", f"missing parameter {name}")


def _renamed(exc: FeeCenterError, names: dict[str, str]) -> FeeCenterError:
    """The error naming the parameter the caller sent, not our field."""
    exc.field = names.get(exc.field, exc.field)
    return exc


# ---------------------------------------------------------------- DescribeRenewInstances

def _offset(params: dict) -> int:
    token = params.get("NextToken") or "0"
    if not (token.isascii() and token.isdigit() and len(token) <= 10):
        raise invalid("NextToken", "NextToken 无效，请使用上一页返回的值",
                      "invalid NextToken: pass the one the previous page returned")
    return int(token)


def _flags_wanted(params: dict) -> set[bool]:
    """RenewFlagList as the auto-renew values it asks for (none given: both);
    "到期不续" is never a resource's state here, so it adds none."""
    flags = set(params.get("RenewFlagList") or ())
    if flags - set(FLAGS):
        raise invalid("RenewFlagList", "续费标识取值无效", "invalid renew flag")
    return {flag == AUTO for flag in flags if flag != DISABLED} if flags else {True, False}


def describe_renew_instances(rt: Runtime, actor: Actor, params: dict) -> dict:
    """Renewal management's list (RNW-7: running prepaid resources of products it
    manages, no resource package), by expiry; paged with an opaque NextToken."""
    uin = _customer_uin(actor)
    offset, limit = _offset(params), params.get("MaxResults", 20)
    wanted = _flags_wanted(params)
    if not wanted:  # only 到期不续 asked: no resource is in that state here
        return {"InstanceList": [], "NextToken": None}
    start = (parse_business_time(params["ExpireTimeStart"], "ExpireTimeStart")
             if params.get("ExpireTimeStart") else None)
    end = (parse_business_time(params["ExpireTimeEnd"], "ExpireTimeEnd")
           if params.get("ExpireTimeEnd") else None)
    if end is not None:  # the whole second the text names (ExpireTime is shown to the second)
        end += timedelta(seconds=1) - timedelta(microseconds=1)
    if start and end and end < start:
        raise invalid("ExpireTimeEnd", "ExpireTimeEnd 不能早于 ExpireTimeStart",
                      "ExpireTimeEnd must not precede ExpireTimeStart")
    query = management.RenewalQuery(
        auto_renew=wanted.pop() if len(wanted) == 1 else None,
        resource_ids=tuple(params.get("InstanceIdList") or ()),
        expires_from=start, expires_to=end, latest_first=params.get("Reverse", False),
        offset=offset, limit=limit)
    try:
        with rt.engine.connect() as conn:
            page = management.list_renewables(conn, rt.clock, actor, uin, query)
    except FeeCenterError as exc:
        raise _renamed(exc, {"resource_ids": "InstanceIdList", "resource_id": "InstanceIdList",
                             "offset": "NextToken"}) from None
    after = offset + len(page["items"])
    return {"InstanceList": [_instance(item) for item in page["items"]],
            "NextToken": str(after) if after < page["total"] else None}


def _instance(item: dict) -> dict:
    return {"InstanceId": item["resource_id"], "ProductCode": item["product_code"],
            "SubProductCode": item["spec_item"] or "", "RegionCode": item["region"],
            "Status": "NORMAL", "RenewFlag": AUTO if item["auto_renew"] else MANUAL,
            "ExpireTime": business_time_text(item["period_end"]),
            "InstanceName": item["name"] or "", "ProductName": item["product_name_zh"],
            "ProjectName": item["project_name"], "RenewPeriod": item["months"],
            "RenewPeriodUnit": "m"}


# ---------------------------------------------------------------- the instance's own fields

def _instance_of(conn, uin: int, params: dict) -> dict:
    """The resource ``InstanceId`` names; ProductCode, SubProductCode and RegionCode,
    when given, must be its own."""
    _required(params, "InstanceId")
    try:
        resource = resources.get_resource(conn, uin, params["InstanceId"])
    except FeeCenterError as exc:
        raise _renamed(exc, {"resource_id": "InstanceId"}) from None
    for name, column in (("ProductCode", "product_code"), ("SubProductCode", "spec_item"),
                         ("RegionCode", "region")):
        if params.get(name) and params[name] != resource[column]:
            raise invalid(name, f"{name} 与实例不符", f"{name} does not match the instance")
    return resource


def _months(params: dict, period: str, unit: str, *, default: int | None) -> int | None:
    """A period and its unit (m, y) in months; None when neither is given and no default."""
    value = params.get(period)
    if value in (None, ""):
        if params.get(unit):
            raise invalid(period, f"缺少参数 {period}", f"missing parameter {period}")
        return default
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= 3):
            raise invalid(period, f"{period} 须为正整数", f"{period} must be a positive integer")
        value = int(value)
    factor = UNITS.get(params.get(unit) or "m")
    if factor is None or value < 1:
        field = unit if factor is None else period
        raise invalid(field, f"{field} 取值无效（时长单位为 m 或 y）",
                      f"invalid {field} (the unit is m or y)")
    return value * factor


# ---------------------------------------------------------------- SetRenewal

def set_renewal(rt: Runtime, actor: Actor, params: dict) -> dict:
    """One instance's auto-renew flag (and period). 到期不续 (no reminders either) is
    not offered: turning auto-renew off keeps the expiry reminders (RNW-4)."""
    uin = _customer_uin(actor)
    _required(params, "InstanceId", "RenewFlag")
    flag = params["RenewFlag"]
    if flag not in FLAGS:
        raise invalid("RenewFlag", "续费标识取值无效", "invalid RenewFlag")
    if flag == DISABLED:
        raise invalid("RenewFlag", "不支持到期不续：关闭自动续费后仍会发送到期提醒",
                      "DISABLE_NOTIFY_AND_MANUAL_RENEW is not offered: without auto-renewal "
                      "the expiry reminders are still sent")
    months = _months(params, "RenewPeriod", "RenewPeriodUnit", default=None)
    try:
        with transaction(rt.engine) as conn:
            resource = _instance_of(conn, uin, params)
            settings.set_auto_renew(conn, rt.clock, actor, uin, [resource["id"]],
                                    auto_renew=flag == AUTO, months=months)
    except FeeCenterError as exc:
        raise _renamed(exc, {"resource_ids": "InstanceId", "resource_id": "InstanceId",
                             "months": "RenewPeriod"}) from None
    return {"InstanceList": []}  # the instances that failed: none (all or nothing)


# ---------------------------------------------------------------- RenewInstance

def renew_instance(rt: Runtime, actor: Actor, params: dict) -> dict:
    """A renewal order for the instance, paid from the balance in the same unit of
    work (ORD-3's rules: coupons none, gift then cash then credit). A stopped
    instance in the recycle bin is restored by it (RNW-6). With ``ClientToken``
    a repeat returns the same order, paid once."""
    uin = _customer_uin(actor)
    months = _months(params, "Period", "PeriodUnit", default=1)
    token = params.get("ClientToken")
    try:
        with transaction(rt.engine) as conn:
            resource = _instance_of(conn, uin, params)
            order_id = orders.create_renewal(conn, rt.clock, actor, uin, resource["id"], months,
                                             key=f"renewinstance:{token}" if token else None)
            orders.pay(conn, rt.clock, actor, uin, [order_id], coupon_ids=[],
                       key=f"renewinstance-pay:{token}" if token else f"renewinstance:{order_id}")
            made = orders.get_order(conn, actor, uin, order_id)
    except FeeCenterError as exc:
        raise _renamed(exc, {"resource_id": "InstanceId", "months": "Period",
                             "order_ids": "InstanceId"}) from None
    return {"OrderIdList": [order_no(made["id"], made["created_at"])]}


# ---------------------------------------------------------------- RefundInstance

def refund_instance(rt: Runtime, actor: Actor, params: dict) -> dict:
    """退订 (ORD-4): the refund to gift and cash, the instance released. Without a
    ClientToken the instance is the key: it can be refunded only once anyway."""
    uin = _customer_uin(actor)
    try:
        with transaction(rt.engine) as conn:
            resource = _instance_of(conn, uin, params)
            key = params.get("ClientToken") or f"refundinstance:{resource['id']}"
            refund_id = orders.refund_resource(conn, rt.clock, actor, uin, resource["id"],
                                               key=f"refundinstance:{key}")
            made = orders.get_order(conn, actor, uin, refund_id)
    except FeeCenterError as exc:
        raise _renamed(exc, {"resource_id": "InstanceId"}) from None
    return {"OrderIdList": [order_no(made["id"], made["created_at"])]}


ACTIONS = {
    "DescribeRenewInstances": describe_renew_instances,
    "SetRenewal": set_renewal,
    "RenewInstance": renew_instance,
    "RefundInstance": refund_instance,
}
