"""Month over month (环比分析, BIL-8): why an account's cost bill of one month differs
from another's. Read-only; owns no table.

``explain`` checks FINANCE and the two months, reads each month's L3 lines
(``bills.service.month_lines``: the lines the statistic period puts in the
month, BIL-3) into per-resource aggregates (``month_aggregates``: prepaid
orders by kind with their unified-expiry extra days, postpaid lines by
resource and billing item with their charged quantity; renewals with their
terms), and hands both to the pure ``month_over_month_rules.decompose``,
which owns the method (docs/bills.md, "Month over month").
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.bills import month_over_month_rules as rules
from feecenter.bills import service as bills
from feecenter.bills.lines import month_start
from feecenter.clock import BUSINESS_TZ, add_months
from feecenter.errors import InvalidInput, PermissionDenied, invalid
from feecenter.orders.tables import orders
from feecenter.settlement.tables import bill_lines

CHUNK = 1000  # ids per IN (...) query


def explain(conn: Connection, actor: Actor, uin: int, month: str, previous: str | None = None,
            cap: int = rules.RESOURCE_CAP) -> dict:
    """BIL-8: the account's cost of ``month`` against ``previous`` (YYYY-MM, earlier;
    default the month before): both totals, the difference and the categories
    explaining it (``rules.decompose``), each resource with its name (where the
    customer set one) and product. FINANCE on the account."""
    _require_finance(actor, uin)
    month = bills.check_month(month)
    previous = _check_previous(month, previous)
    before = month_aggregates(conn, actor, uin, previous)
    after = month_aggregates(conn, actor, uin, month)
    out = rules.decompose(before.sums, after.sums, cap)
    labels = {**before.resources, **after.resources}  # the later month's name wins
    for category in out["categories"]:
        for entry in category["resources"]:
            entry.update(labels.get(entry["resource_id"], {}))
    return {"uin": uin, "month": month, "previous": previous, **out}


def _require_finance(actor: Actor, uin: int) -> None:
    try:
        require(actor, uin, FINANCE)
    except PermissionDenied as denied:
        if denied.field or actor.uin == uin:
            raise
        # another account's bills: the account asked for is the field refused
        raise PermissionDenied(denied.message_zh, denied.message_en, field="uin",
                               **denied.details) from denied


def month_before(month: str) -> str:
    return add_months(month_start(month), -1).astimezone(BUSINESS_TZ).strftime("%Y-%m")


def _check_previous(month: str, previous: str | None) -> str:
    """``previous`` checked like ``month`` (400 naming ``previous``) and before it."""
    if previous is None:
        try:
            return bills.check_month(month_before(month))
        except InvalidInput:
            raise invalid("month", "该月份没有上一个月可比较", "this month has no month before it"
                          ) from None
    try:
        bills.check_month(previous)
    except InvalidInput:
        raise invalid("previous", "比较月份格式应为 YYYY-MM（月份 01–12）",
                      "previous must be YYYY-MM (month 01-12)") from None
    if previous >= month:
        raise invalid("previous", "比较月份须早于所分析的月份",
                      "previous must be a month before month")
    return previous


class _Month:
    """A month's aggregates (``sums``) and its resources' labels."""

    def __init__(self, sums: rules.MonthAggregates, resources: dict[str, dict]):
        self.sums, self.resources = sums, resources


def month_aggregates(conn: Connection, actor: Actor, uin: int, month: str) -> _Month:
    """The month's L3 lines as ``rules.MonthAggregates`` (prepaid by resource,
    postpaid by resource and billing item) and each resource's name and product."""
    lines = bills.month_lines(conn, actor, uin, month)
    ids = {mode: [int(line["line_id"].split(":")[1]) for line in lines
                  if line["pay_mode"] == mode] for mode in ("prepaid", "postpaid")}
    charged = _charged_quantities(conn, ids["postpaid"])
    facts = _order_facts(conn, ids["prepaid"])
    prepaid: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    postpaid: dict[tuple, dict] = defaultdict(lambda: defaultdict(int))
    resources = {}
    for line in lines:
        rid, line_id = line["resource_id"], int(line["line_id"].split(":")[1])
        resources[rid] = {"resource_name": line["resource_name"],
                          "product_code": line["product_code"], "pay_mode": line["pay_mode"]}
        if line["pay_mode"] == "prepaid":
            kind = line["kind"] if line["kind"] in ("new", "renew", "upgrade") else "refund_downgrade"
            prepaid[rid][kind] += line["deducted"]
            if kind == "renew":
                _add_renewal(prepaid[rid], facts[line_id])
        else:
            sums = postpaid[(rid, line["item"])]
            sums["quantity"] += charged[line_id]
            sums["list_cost"] += (line["original_cost"] if line["original_cost"] is not None
                                  else line["discounted_cost"])  # BIL-6: no list price
            sums["discounted_cost"] += line["discounted_cost"]
            sums["deducted"] += line["deducted"]
    for sums in prepaid.values():
        if sums.pop("fixed", 0):  # a renewal at a fixed price: not compared
            sums["renew_list"] = 0
    return _Month(rules.MonthAggregates(
        orders={rid: rules.OrderSums(**sums) for rid, sums in prepaid.items()},
        usage={key: rules.UsageSums(**sums) for key, sums in postpaid.items()}), resources)


def _charged_quantities(conn: Connection, ids: list[int]) -> dict[int, int]:
    """Postpaid line id -> its charged quantity (what packages and a stop left, SET-10,
    ARR-3), read from settlement's ``bill_lines``."""
    b = bill_lines.c
    found = {}
    for at in range(0, len(ids), CHUNK):
        rows = conn.execute(select(b.id, b.quantity - b.package_quantity - b.stopped_quantity)
                            .where(b.id.in_(ids[at:at + CHUNK])))
        found.update((line_id, int(quantity)) for line_id, quantity in rows)
    return found


def _add_renewal(sums: dict, order) -> None:
    """A renewal's unified-expiry extra days (RNW-5) and its term (unit-months, unit
    price × unit-months) for comparing repeated renewals."""
    sums["unified_extra"] += order.unified_extra or 0
    units = order.quantity * (order.months or 0)
    sums["renew_units"] += units
    if order.price_kind == "fixed" or order.unit_price is None:
        sums["fixed"] = 1
    else:
        sums["renew_list"] += order.unit_price * units


def _order_facts(conn: Connection, ids: list[int]) -> dict[int, object]:
    """Order id -> its unified_extra, quantity, months, price kind and unit price."""
    o = orders.c
    found = {}
    for at in range(0, len(ids), CHUNK):
        rows = conn.execute(select(o.id, o.unified_extra, o.quantity, o.months, o.price_kind,
                                   o.unit_price).where(o.id.in_(ids[at:at + CHUNK])))
        found.update((row.id, row) for row in rows)
    return found


__all__ = ["explain", "month_aggregates", "month_before"]
