"""Consumption bills (消耗账单, BIL-4): what an account consumed in a month. Read-only;
owns no table.

- Prepaid fees: every delivered order (purchase, renewal, upgrade) and every
  refund or downgrade (negative, BIL-5) spread evenly over the business days of
  its service period (``consumption_rules``); the month gets the days of it that
  fall in the month. Orders later refunded (state ``refunded``) still count:
  their refund order is the negative that takes the returned days back.
- Postpaid fees: the L3 bill lines (settlement) by usage time, the business
  month of ``period_start``, their deducted fen, late adjustments included.

Grouped by product and, within a product, by resource; with totals. Cost bills
(费用账单) put a prepaid fee wholly in the month it was deducted, so the two do not
reconcile line by line (docs/bills.md, "Consumption bills"); on the usage-time
statistic period a month's postpaid total is the same in both.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.engine import Connection

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.bills import consumption_rules as rules
from feecenter.clock import business_date, db_time, from_db_time
from feecenter.orders.tables import orders
from feecenter.settlement.service import month_bounds
from feecenter.settlement.tables import bill_lines

PREPAID_KINDS = ("new", "renew", "upgrade", "downgrade", "refund")
# a delivered order, or one whose resource was refunded since (its fee was consumed until then)
PREPAID_STATES = ("delivered", "refunded")
# what the console shows beside the bill (docs/bills.md quotes it), Chinese first
WHY_NOT_LINE_BY_LINE = {
    "zh": "消耗账单按资源实际使用的时间统计费用：包年包月的费用平均分摊到服务期内的每一天，"
          "按量计费的费用计入用量发生的月份。费用账单按扣费时间统计：包年包月的费用在扣费的月份"
          "一次性全额计入。因此两者无法逐行对账。例如 3 月购买 3 个月的云服务器，费用账单在 3 月"
          "显示全部费用，消耗账单则在 3 月至 6 月逐日分摊；整个服务期的合计相同。按量计费部分："
          "当费用账单的统计周期为“按使用时间”时，同一月份的按量计费合计在两种账单中相同。",
    "en": "A consumption bill counts fees by when resources were used: a prepaid (monthly or "
          "yearly) fee is spread evenly over the days of its service period, and postpaid fees "
          "count in the month the usage happened. A cost bill counts fees by when they were "
          "deducted: a prepaid fee counts in full in the month it was paid. The two therefore "
          "do not reconcile line by line. Buy three months of a CVM in March: the cost bill "
          "shows the whole fee in March, the consumption bill spreads it day by day from March "
          "to June; over the service period both total the same. For postpaid fees, when the "
          "cost bill's statistic period is \"by usage time\", a month's postpaid total is the "
          "same in both bills.",
}


def consumption_bill(conn: Connection, actor: Actor, uin: int, month: str) -> dict:
    """The account's consumption bill for ``month`` (YYYY-MM, business time; FINANCE):
    ``prepaid_total``, ``postpaid_total`` and ``total`` in fen, and ``by_product``
    (product code order), each product with its totals and its ``resources``
    (resource id order), and ``why_not_line_by_line`` (zh, en), the console's
    explanation of why it does not match the cost bill. A malformed or out-of-range
    month is invalid input on ``month``; an unknown account is not found."""
    require(actor, uin, FINANCE)
    start, end = month_bounds(month)
    accounts.get_account(conn, accounts.SYSTEM_ACTOR, uin)  # a mistyped UIN is not "no fees"
    fees: dict[tuple[str, str], dict] = defaultdict(lambda: {"prepaid": 0, "postpaid": 0})
    for key, fen in _prepaid_in_month(conn, uin, start, end):
        fees[key]["prepaid"] += fen
    for key, fen in _postpaid_in_month(conn, uin, start, end):
        fees[key]["postpaid"] += fen
    return _bill(uin, month, fees)


def _prepaid_in_month(conn: Connection, uin: int, start: datetime, end: datetime):
    """((product, resource), fen) of each prepaid order whose service days meet the month."""
    o = orders.c
    first_day, stop_day = business_date(start), business_date(end)
    rows = conn.execute(
        select(o.product_code, o.resource_id, o.amount, o.service_start, o.service_end)
        .where(o.uin == uin, o.kind.in_(PREPAID_KINDS), o.state.in_(PREPAID_STATES),
               o.service_start.is_not(None), o.service_end.is_not(None),
               o.service_start < db_time(end),
               or_(o.service_end > db_time(start),  # an empty period: its start day
                   and_(o.service_end <= o.service_start, o.service_start >= db_time(start)))))
    for row in rows:
        yield (row.product_code, row.resource_id), _month_share(row, first_day, stop_day)


def _month_share(row, first_day: date, stop_day: date) -> int:
    return rules.share_in_range(int(row.amount), from_db_time(row.service_start),
                                from_db_time(row.service_end), first_day, stop_day)


def _postpaid_in_month(conn: Connection, uin: int, start: datetime, end: datetime):
    """((product, resource), fen) deducted for the month's usage, adjustments included."""
    b = bill_lines.c
    rows = conn.execute(
        select(b.product_code, b.resource_id, func.sum(b.deducted).label("fen"))
        .where(b.uin == uin, b.period_start >= db_time(start), b.period_start < db_time(end))
        .group_by(b.product_code, b.resource_id))
    for row in rows:
        yield (row.product_code, row.resource_id), int(row.fen)


def _bill(uin: int, month: str, fees: dict[tuple[str, str], dict]) -> dict:
    products: dict[str, list[dict]] = defaultdict(list)
    for (product, resource), fen in sorted(fees.items()):
        products[product].append({"resource_id": resource, **_totals(fen["prepaid"],
                                                                     fen["postpaid"])})
    by_product = [{"product": product,
                   **_totals(sum(r["prepaid"] for r in resources),
                             sum(r["postpaid"] for r in resources)),
                   "resources": resources}
                  for product, resources in products.items()]
    return {"uin": uin, "month": month,
            "prepaid_total": sum(p["prepaid"] for p in by_product),
            "postpaid_total": sum(p["postpaid"] for p in by_product),
            "total": sum(p["total"] for p in by_product), "by_product": by_product,
            "why_not_line_by_line": WHY_NOT_LINE_BY_LINE}


def _totals(prepaid: int, postpaid: int) -> dict:
    return {"prepaid": prepaid, "postpaid": postpaid, "total": prepaid + postpaid}


__all__ = ["consumption_bill", "WHY_NOT_LINE_BY_LINE", "PREPAID_KINDS", "PREPAID_STATES"]
