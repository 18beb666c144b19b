"""The request parameters of each compat action and the check of a body against them.

Owns which names an action accepts and their JSON types, as the Billing API
2018-07-09 documents them (the official SDK's request models: ``int``,
``str``, ``bool``, ``list of str``, ``list of int``), with every integer
bounded and every string storable (``feecenter.inputs``). A body is refused
whole before the action runs: an unknown name is ``UnknownParameter``, a
value of the wrong JSON type (or a body that is not one JSON object, or
repeats a key) ``InvalidParameter``, a well-typed value out of bounds
``InvalidParameterValue``. What a value means — an order number, a time, a
status code — the action decides.
"""

from __future__ import annotations

from dataclasses import dataclass

from feecenter import inputs
from feecenter.clock import business_time_text, parse_business_time
from feecenter.errors import InvalidInput, invalid


class ParameterTypeError(InvalidInput):
    """A body or a parameter of the wrong JSON shape (Tencent: InvalidParameter)."""

    tencent_code = "InvalidParameter"


class UnknownParameter(InvalidInput):
    """A parameter the action does not document (Tencent: UnknownParameter)."""

    tencent_code = "UnknownParameter"


def _wrong_type(name: str, zh: str, en: str) -> ParameterTypeError:
    return ParameterTypeError(f"{name} 必须是{zh}", f"{name} must be {en}", name)


@dataclass(frozen=True)
class Int:
    low: int = 0
    high: int = inputs.BIGINT_MAX
    zh, en = "整数", "a JSON integer"

    def check(self, name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _wrong_type(name, self.zh, self.en)
        inputs.bounded_int(value, name, self.low, self.high)


@dataclass(frozen=True)
class Text:
    max_len: int = 256
    zh, en = "字符串", "a JSON string"

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, str):
            raise _wrong_type(name, self.zh, self.en)
        inputs.plain_text(value, name, self.max_len)


@dataclass(frozen=True)
class Bool:
    zh, en = "布尔值", "a JSON boolean"

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, bool):
            raise _wrong_type(name, self.zh, self.en)


@dataclass(frozen=True)
class ListOf:
    item: Int | Text
    max_items: int = 100

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, list):
            raise _wrong_type(name, f"{self.item.zh}数组", f"a JSON array of {self.item.en[2:]}s")
        if len(value) > self.max_items:
            raise invalid(name, f"{name} 至多 {self.max_items} 项",
                                 f"{name} takes at most {self.max_items} items")
        for item in value:
            self.item.check(name, item)


OFFSET = Int(0, 10**9)
DETAIL_MAX_LIMIT = 300  # DescribeBillDetail: the SDK's documented maximum
STATUS = Int(1, 99)     # DescribeDealsByCond: Tencent's status codes are 1-30

PARAMS: dict[str, dict[str, Int | Text | Bool | ListOf]] = {
    "DescribeAccountBalance": {"TempCredit": Bool()},
    "DescribeBillDetail": {
        "Offset": OFFSET, "Limit": Int(1, DETAIL_MAX_LIMIT), "PeriodType": Text(),
        "Month": Text(), "BeginTime": Text(), "EndTime": Text(), "NeedRecordNum": Int(0, 1),
        "ProductCode": Text(), "PayMode": Text(), "ResourceId": Text(), "ActionType": Text(),
        "ProjectId": Int(), "BusinessCode": Text(), "Context": Text(4096),
        "PayerUin": Text()},
    "DescribeBillList": {
        "StartTime": Text(), "EndTime": Text(), "Offset": OFFSET, "Limit": Int(1, 100),
        "PayType": ListOf(Text(), 20), "SubPayType": ListOf(Text(), 20),
        "WithZeroAmount": Int(0, 1)},
    "DescribeDealsByCond": {
        "StartTime": Text(), "EndTime": Text(), "Limit": Int(1, 1000), "Offset": OFFSET,
        "Status": STATUS, "OrderId": Text(), "BigDealId": Text(), "ResourceId": Text(),
        "StatusSet": ListOf(STATUS, 20)},
    "PayDeals": {
        "OrderIds": ListOf(Text()), "AutoVoucher": Int(0, 1), "VoucherIds": ListOf(Text()),
        "BigDealIds": ListOf(Text()), "AgentPay": Int(0, 4), "CpsUin": Text(),
        "ClientToken": Text(64)},  # ClientToken: ours, the payment's idempotency key
    "DescribeRenewInstances": {
        "MaxResults": Int(1, 100), "NextToken": Text(64), "Reverse": Bool(),
        "RenewFlagList": ListOf(Text(40), 10), "InstanceIdList": ListOf(Text(40), 100),
        "ExpireTimeStart": Text(), "ExpireTimeEnd": Text()},
    "SetRenewal": {
        "ProductCode": Text(40), "RegionCode": Text(40), "InstanceId": Text(40),
        "RenewFlag": Text(40), "RenewPeriod": Text(8), "RenewPeriodUnit": Text(8)},
    "RenewInstance": {
        "ClientToken": Text(64), "ProductCode": Text(40), "SubProductCode": Text(64),
        "RegionCode": Text(40), "InstanceId": Text(40), "Period": Int(1, 36),
        "PeriodUnit": Text(8)},
    "DescribeBillDownloadUrl": {
        "FileType": Text(20), "Month": Text(20), "ChildUin": ListOf(Text(20), 100)},
    "RefundInstance": {
        "ClientToken": Text(64), "ProductCode": Text(40), "SubProductCode": Text(64),
        "InstanceId": Text(40), "RegionCode": Text(40)},
}


@dataclass(frozen=True)
class Obj:
    """A JSON object of documented fields (an SDK model as a parameter, e.g. Conditions);
    an unknown field is named with its parent (``Conditions.Colour``)."""
    fields: dict
    zh, en = "对象", "a JSON object"

    def check(self, name: str, value: object) -> None:
        if not isinstance(value, dict):
            raise _wrong_type(name, self.zh, self.en)
        for key, item in value.items():
            if key not in self.fields:
                raise UnknownParameter("接口没有这个参数", "the action has no such parameter",
                                       f"{name}.{key}"[:64])
            self.fields[key].check(f"{name}.{key}", item)


# Bill summaries and the consumption bill (compat.bills)
_MONTHS = {"BeginTime": Text(), "EndTime": Text(), "PayerUin": Text()}
_COST_PAGE = {**_MONTHS, "Limit": Int(1, 100), "Offset": OFFSET, "NeedRecordNum": Int(0, 1)}
CONDITIONS = Obj({
    "TimeRange": Int(0, 12), "BusinessCode": Text(), "ProjectId": Int(), "RegionId": Int(),
    "PayMode": Text(), "ResourceKeyword": Text(), "BusinessCodes": ListOf(Text()),
    "ProductCodes": ListOf(Text()), "RegionIds": ListOf(Int()), "ProjectIds": ListOf(Int()),
    "PayModes": ListOf(Text(), 2), "ActionTypes": ListOf(Text()), "HideFreeCost": Int(0, 1),
    "OrderByCost": Text(8), "BillIds": ListOf(Text()), "ComponentCodes": ListOf(Text()),
    "FileIds": ListOf(Text()), "FileTypes": ListOf(Text()), "Status": ListOf(Int())})
PARAMS.update({
    "DescribeBillSummaryByProduct": {**_MONTHS, "PayType": Text(16)},
    "DescribeBillSummaryByProject": dict(_MONTHS),
    "DescribeBillSummaryByRegion": dict(_MONTHS),
    "DescribeBillSummaryByPayMode": dict(_MONTHS),
    "DescribeBillSummaryByTag": {**_MONTHS, "TagKey": Text(127), "TagValue": Text()},
    "DescribeBillSummary": {
        "Month": Text(), "GroupType": Text(16), "TagKey": ListOf(Text(127), 20),
        "OperateUin": Text(), "PayerUin": Text()},
    "DescribeBillResourceSummary": {
        "Offset": OFFSET, "Limit": Int(1, 1000), "Month": Text(), "PeriodType": Text(),
        "NeedRecordNum": Int(0, 1), "ActionType": Text(), "ResourceId": Text(),
        "PayMode": Text(), "BusinessCode": Text(), "PayerUin": Text(), "TagKey": Text(127),
        "TagValue": Text()},
    "DescribeCostSummaryByProduct": dict(_COST_PAGE),
    "DescribeCostSummaryByProject": dict(_COST_PAGE),
    "DescribeCostSummaryByRegion": dict(_COST_PAGE),
    "DescribeCostSummaryByResource": {
        **_COST_PAGE, "NeedConditionValue": Int(0, 1), "Conditions": CONDITIONS,
        "TagKey": Text(127), "TagValue": Text()},
    "DescribeCostDetail": {
        "Limit": Int(1, 100), "Offset": OFFSET, "BeginTime": Text(), "EndTime": Text(),
        "NeedRecordNum": Int(0, 1), "Month": Text(), "ProductCode": Text(), "PayMode": Text(),
        "ResourceId": Text(), "BusinessCode": Text(), "ProjectId": Text(), "RegionId": Text()},
})


def parse_body(action: str, body: bytes) -> dict:
    """The body of ``action`` as a dict whose every value has its documented type."""
    try:
        params = inputs.loads(body or b"{}")
    except InvalidInput as exc:  # not JSON, or a key twice: the body's format
        raise ParameterTypeError(exc.message_zh, exc.message_en, exc.field) from None
    if not isinstance(params, dict):
        raise ParameterTypeError("请求体必须是 JSON 对象", "the body must be a JSON object", "body")
    declared = PARAMS[action]
    for name, value in params.items():
        if name not in declared:
            raise UnknownParameter("接口没有这个参数", "the action has no such parameter",
                                   name[:64])
        declared[name].check(name, value)
    return params


def one_month_range(params: dict):
    """BeginTime and EndTime (business times, in order, within one month) as aware
    datetimes, or None when neither is passed; one without the other is refused."""
    begin, end = params.get("BeginTime"), params.get("EndTime")
    if not (begin or end):
        return None
    if not (begin and end):
        raise invalid("BeginTime", "BeginTime 与 EndTime 须一起传",
                      "BeginTime and EndTime go together")
    start = parse_business_time(begin, "BeginTime")
    stop = parse_business_time(end, "EndTime")
    if stop < start or business_time_text(start)[:7] != business_time_text(stop)[:7]:
        raise invalid("EndTime", "BeginTime 与 EndTime 须在同一月份，且不早于开始时间",
                      "BeginTime and EndTime must be in the same month, in order")
    return start, stop
