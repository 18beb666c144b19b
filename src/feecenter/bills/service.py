"""Cost bills of a month (BIL-1): the L3 lines (``month_lines``, near real time, read
from settlement's and orders' tables; ``month_lines_page`` paged in SQL and
``iter_month_lines`` streamed, for REST and exports), and from the daily roll-ups the L0
overview (``overview``, with ``daily_totals`` by day), L1 summaries (``summary`` by product, project, region,
pay mode or one tag key) and L2 resource bills (``resource_bills``); each
checks FINANCE on the account. A line belongs to the month ``settlement.rules.
statistic_month`` gives it (BIL-3), with the account's switch month from
``usage_time_switch_month``.

For the Tencent-compatible views (XTR-5) it also gives, additively, L1 groups by
product (``summary_with_products``), a page of L2 with its lines' kinds and times
(``resource_bill_page``), the month's lines on the refreshed days
(``refreshed_lines``) and the consumption bill (BIL-4) line by line
(``consumption_lines``, ``consumption_summary``).

Tags are the resource's tags at query time (the roll-ups are kept per resource;
a tag changed today regroups the past months' L1 by tag); the project is the
one at deduction time (SET-7), stored on each line.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, and_, func, or_, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.bills import consumption_rules as rules
from feecenter.bills.consumption import PREPAID_KINDS, PREPAID_STATES
from feecenter.bills.lines import (DEDUCTED_STATES, ORDER_KINDS, day_bounds, line_of, line_order,
                                  lines_query, month_start, prepaid_line, page_rows,
                                  postpaid_lines, prepaid_lines)
from feecenter.bills.tables import bill_rollup_days, bill_rollups
from feecenter.clock import (BUSINESS_TZ, BUSINESS_YEARS, add_months, business_date, db_time,
                             from_db_time, to_utc)
from feecenter.errors import invalid
from feecenter.orders.tables import orders
from feecenter.resources.tables import resources
from feecenter.settlement import service as settlement
from feecenter.settlement.rules import statistic_month
from feecenter.settlement.tables import bill_lines

DIMENSIONS = {"product": "product_code", "project": "project_id", "region": "region",
              "pay_mode": "pay_mode"}
SUMS = ("original_cost", "discounted_cost", "deducted", "voucher_paid", "cash_paid",
        "gift_paid", "precision_diff", "lines")
UNTAGGED = ""  # the group of resources without the tag key


def usage_time_switch_month(conn: Connection, uin: int) -> str | None:
    """BIL-3: the month (YYYY-MM) the account switched to the usage-time statistic
    period, None when it never did (settlement owns the switch)."""
    return settlement.statistic_switch_month(conn, uin)


def check_month(month) -> str:
    """YYYY-MM in ASCII digits, a year in BUSINESS_YEARS, month 01–12; else 400 on month."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month) if isinstance(month, str) else None
    if match is None or int(match[1]) not in BUSINESS_YEARS or not 1 <= int(match[2]) <= 12:
        raise invalid("month", "月份格式应为 YYYY-MM（月份 01–12）",
                      "month must be YYYY-MM (month 01-12)")
    return month


def _next(month: str) -> str:
    return add_months(month_start(month), 1).astimezone(BUSINESS_TZ).strftime("%Y-%m")


# ---------------------------------------------------------------- L3

def month_lines(conn: Connection, actor: Actor, uin: int, month: str) -> list[dict]:
    """BIL-1: the account's L3 lines of ``month``: postpaid bill lines and prepaid
    order lines (refunds and downgrades negative, BIL-5), each with ``bill_month``,
    ``usage_month`` and ``deducted_on``, in deduction time order."""
    require(actor, uin, FINANCE)
    check_month(month)
    return _lines_of_month(conn, uin, month, usage_time_switch_month(conn, uin))


def _lines_of_month(conn: Connection, uin: int, month: str, switched: str | None) -> list[dict]:
    found = []
    for start, end, usage_before, usage_from, postpaid, prepaid in _line_windows(month,
                                                                                 switched):
        if postpaid:
            found += postpaid_lines(conn, uin, start, end, usage_before, usage_from)
        if prepaid:
            found += prepaid_lines(conn, uin, start, end)
    lines = [line for line in (_with_months(line, switched) for line in found)
             if line["bill_month"] == month]
    lines.sort(key=lambda line: (line["deducted_at"], *line_order(line)))
    return lines


def month_lines_page(conn: Connection, actor: Actor, uin: int, month: str, offset: int,
                     limit: int) -> tuple[int, list[dict]]:
    """BIL-1: (the number of L3 lines of ``month``, the ``limit`` lines from ``offset``),
    the lines of ``month_lines`` in its order, counted, ordered and paged in SQL."""
    require(actor, uin, FINANCE)
    check_month(month)
    _check_page(offset, limit)
    switched = usage_time_switch_month(conn, uin)
    params, (count, _, page) = _month_query(uin, month, switched)
    total = conn.execute(count, params).scalar_one()
    rows = page_rows(conn, page, params, offset, limit)
    return total, [_with_months(line_of(row), switched) for row in rows]


def _check_page(offset, limit) -> None:
    """offset ≥ 0 and 1 ≤ limit ≤ MAX_PAGE (integers), else 400 naming the field."""
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise invalid("offset", "offset 须为非负整数", "offset must be a non-negative integer")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise invalid("limit", f"limit 须为 1–{MAX_PAGE} 的整数",
                      f"limit must be an integer from 1 to {MAX_PAGE}")


MAX_PAGE = 1000  # lines a page at most (REST allows 100)
STREAM_CHUNK = 1000  # rows fetched at a time by iter_month_lines


def iter_month_lines(conn: Connection, actor: Actor, uin: int, month: str):
    """BIL-1: the lines of ``month_lines``, in its order, streamed with bounded memory
    (a server-side cursor on PostgreSQL, ``STREAM_CHUNK`` rows at a time), for exports.
    The permission and the month are checked at the call, before the first line."""
    require(actor, uin, FINANCE)
    check_month(month)
    switched = usage_time_switch_month(conn, uin)
    params, (_, every, _) = _month_query(uin, month, switched)
    result = conn.execute(every, params, execution_options={"yield_per": STREAM_CHUNK})
    return _streamed(result.mappings(), switched)


def month_lines_statement(conn: Connection, actor: Actor, uin: int, month: str):
    """BIL-1: (the statement, its parameters) of every L3 line of ``month`` in
    ``month_lines``'s order — ``iter_month_lines``'s query, for a caller that
    selects its own columns from it (``bills.line_text``: the lines as export text,
    formatted by the database). Its rows are exactly the lines ``statistic_month``
    puts in ``month`` (``_month_query``). FINANCE and the month checked here."""
    require(actor, uin, FINANCE)
    check_month(month)
    params, (_, every, _) = _month_query(uin, month, usage_time_switch_month(conn, uin))
    return every, params


def _streamed(rows, switched: str | None):
    try:
        for row in rows:
            yield _with_months(line_of(row), switched)
    finally:
        rows.close()


def _with_months(line: dict, switched: str | None) -> dict:
    """``deducted_on``, ``usage_month`` and ``bill_month`` of a line (as ``month_lines``)."""
    line["deducted_on"] = business_date(line["deducted_at"])
    deducted_month = line["deducted_on"].strftime("%Y-%m")
    line["usage_month"] = (deducted_month if line["pay_mode"] == "prepaid"
                           else line["usage_start"].astimezone(BUSINESS_TZ).strftime("%Y-%m"))
    line["bill_month"] = statistic_month(deducted_month, line["usage_month"], switched)
    return line


def _month_query(uin: int, month: str, switched: str | None):
    """The account's lines ``statistic_month`` puts in ``month``, as SQL conditions
    equivalent to ``_line_windows`` + ``statistic_month`` (a prepaid line is always in
    its deduction month; a postpaid line, see the cases)."""
    start, end = db_time(month_start(month)), db_time(month_start(_next(month)))
    far = db_time(month_start(f"{BUSINESS_YEARS.stop - 1}-12"))
    if switched is None or month < switched:  # by deduction time
        postpaid = (start, end, None, None)
    elif month == switched:  # deducted in it or later, for usage up to it
        postpaid = (start, far, None, end)
    else:  # after the switch: deducted since the switch, for usage in the month
        postpaid = (db_time(month_start(switched)), far, start, end)
    return lines_query(uin, postpaid, (start, end))


def _line_windows(month: str, switched: str | None):
    """(deducted from, deducted before, usage before, usage from, postpaid?, prepaid?)
    windows (naive UTC) holding every line ``statistic_month`` may put in
    ``month`` (it then decides each line); a prepaid line's usage month is its
    deduction month, so prepaid lines come from the month's deductions only."""
    start, end = db_time(month_start(month)), db_time(month_start(_next(month)))
    if switched is None or month < switched:
        return [(start, end, None, None, True, True)]
    far = db_time(month_start(f"{BUSINESS_YEARS.stop - 1}-12"))
    if month == switched:  # deducted in it, or later for usage up to it
        return [(start, end, None, None, True, True), (end, far, end, None, True, False)]
    since = db_time(month_start(switched))  # after it: postpaid by usage month
    return [(since, far, end, start, True, False), (start, end, None, None, False, True)]


# ---------------------------------------------------------------- L0–L2 from the roll-ups

def _in_month(month: str, switched: str | None) -> list:
    """SQL conditions on bill_rollups equivalent to ``statistic_month(deducted_month,
    usage_month, switched) == month`` (tests/test_bills_rollup.py compares them)."""
    r = bill_rollups.c
    if switched is None or month < switched:
        return [r.deducted_month == month]
    if month == switched:
        return [r.deducted_month >= switched, r.usage_month <= switched]
    return [r.deducted_month >= switched, r.usage_month == month]


def _sums():
    r = bill_rollups.c
    return [func.coalesce(func.sum(r[name]), 0).label(name) for name in SUMS]


def _amounts(row) -> dict:
    return {name: int(row[name]) for name in SUMS}


def overview(conn: Connection, actor: Actor, uin: int, month: str) -> dict:
    """L0: the month's totals, by pay mode, and the precision difference (SET-3) as its
    own category; ``refreshed_through``: the last day the roll-ups hold (T+1)."""
    require(actor, uin, FINANCE)
    check_month(month)
    r = bill_rollups.c
    where = [r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin))]
    total = _amounts(conn.execute(select(*_sums()).where(*where)).mappings().one())
    by_mode = {row["pay_mode"]: _amounts(row) for row in conn.execute(
        select(r.pay_mode, *_sums()).where(*where).group_by(r.pay_mode)).mappings()}
    last = conn.execute(select(func.max(bill_rollup_days.c.day))).scalar()
    return {"uin": uin, "month": month, "total": total,
            "by_pay_mode": [{"pay_mode": mode, **by_mode[mode]} for mode in sorted(by_mode)],
            "precision_difference": total["precision_diff"],
            "refreshed_through": as_date(last)}


def daily_totals(conn: Connection, actor: Actor, uin: int, month: str) -> list[dict]:
    """The month's roll-ups by business day of deduction (the cost-by-day chart):
    ``{"day": date, **SUMS}`` for each day with lines, in day order. On usage time
    (BIL-3) a month may hold days deducted after it (its usage billed later)."""
    require(actor, uin, FINANCE)
    check_month(month)
    r = bill_rollups.c
    rows = conn.execute(select(r.deducted_on, *_sums())
                        .where(r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin)))
                        .group_by(r.deducted_on).order_by(r.deducted_on)).mappings()
    return [{"day": as_date(row["deducted_on"]), **_amounts(row)} for row in rows]


def as_date(value) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def summary(conn: Connection, actor: Actor, uin: int, month: str, by: str,
            tag_key: str | None = None) -> list[dict]:
    """L1: the month's roll-ups grouped by ``by`` (product, project, region, pay_mode,
    or tag: the values of ``tag_key`` on the resources now, "" for resources
    without it), largest deduction first."""
    require(actor, uin, FINANCE)
    check_month(month)
    if by == "tag":
        return _by_tag(conn, uin, month, _check_tag_key(tag_key))
    if by not in DIMENSIONS:
        raise invalid("by", "汇总维度须为 product、project、region、pay_mode 或 tag",
                      "by must be product, project, region, pay_mode or tag")
    r = bill_rollups.c
    keys = [r[DIMENSIONS[by]]] + ([r.project_name] if by == "project" else [])
    rows = conn.execute(select(*keys, func.max(r.deducted_on).label("last_day"), *_sums())
                        .where(r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin)))
                        .group_by(*keys)).mappings().all()
    groups = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    names = {}
    for row in sorted(rows, key=lambda row: str(row["last_day"])):
        key = row[DIMENSIONS[by]]
        for name in SUMS:
            groups[key][name] += int(row[name])
        if by == "project":  # renamed within the month: one group, the latest name
            names[key] = row["project_name"]
    out = [{by: key, **({"project_name": names[key]} if by == "project" else {}), **sums}
           for key, sums in groups.items()]
    return sorted(out, key=lambda g: (-g["deducted"], str(g[by])))


def _check_tag_key(tag_key) -> str:
    if not isinstance(tag_key, str) or not 1 <= len(tag_key) <= 127 or not tag_key.isprintable():
        raise invalid("tag_key", "按标签汇总须给出标签键（1–127 个字符）",
                      "by=tag needs a tag_key (1-127 characters)")
    return tag_key


def _by_tag(conn: Connection, uin: int, month: str, tag_key: str) -> list[dict]:
    groups = defaultdict(lambda: dict.fromkeys(SUMS, 0))
    per_resource = _per_resource(conn, uin, month)
    tags = _tags(conn, list(per_resource))
    for resource_id, sums in per_resource.items():
        value = tags.get(resource_id, {}).get(tag_key, UNTAGGED)
        for name in SUMS:
            groups[value][name] += sums[name]
    return sorted(({"tag_key": tag_key, "tag_value": value, **sums}
                   for value, sums in groups.items()),
                  key=lambda g: (-g["deducted"], g["tag_value"]))


def _per_resource(conn: Connection, uin: int, month: str) -> dict[str, dict]:
    r = bill_rollups.c
    rows = conn.execute(select(r.resource_id, *_sums())
                        .where(r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin)))
                        .group_by(r.resource_id)).mappings()
    return {row["resource_id"]: _amounts(row) for row in rows}


def _tags(conn: Connection, resource_ids: list[str]) -> dict[str, dict]:
    """The resources' tags now (JSON objects; a value that is not one counts as none)."""
    found = {}
    for chunk in range(0, len(resource_ids), 1000):
        for rid, text in conn.execute(select(resources.c.id, resources.c.tags).where(
                resources.c.id.in_(resource_ids[chunk:chunk + 1000]))):
            try:
                value = json.loads(text) if text else {}
            except ValueError:
                value = {}
            found[rid] = {str(k): str(v) for k, v in value.items()} if isinstance(
                value, dict) else {}
    return found


def resource_bills(conn: Connection, actor: Actor, uin: int, month: str) -> list[dict]:
    """L2: the month's roll-ups per resource, with the resource's name where the
    customer set one and its tags now, largest deduction first."""
    require(actor, uin, FINANCE)
    check_month(month)
    per_resource = _per_resource(conn, uin, month)
    names = {rid: name for rid, name in conn.execute(select(resources.c.id, resources.c.name)
                                                         .where(resources.c.id.in_(list(per_resource))))}
    tags = _tags(conn, list(per_resource))
    out = [{"resource_id": rid, "resource_name": names.get(rid), "tags": tags.get(rid, {}),
            **sums} for rid, sums in per_resource.items()]
    return sorted(out, key=lambda g: (-g["deducted"], g["resource_id"]))


def tag_keys(conn: Connection, uin: int, month: str) -> list[str]:
    """The tag keys on the resources of the account's month (for the bill check)."""
    tags = _tags(conn, list(_per_resource(conn, uin, month)))
    return sorted({key for found in tags.values() for key in found})



# ---------------------------------------------------------------- views for the compat API (XTR-5)
# Additive: L1 groups broken down by product, a page of L2 resources with the times and
# kinds of their lines, the month's lines on the refreshed days (the breakdowns the
# roll-ups do not keep), and the consumption bill (BIL-4) line by line.

PAY_TYPES = ("consume", "refund", "adjustment")  # L0's categories: 消费, 退款, 调账


def pay_type(line: dict) -> str:
    """A line's L0 category: a refund or a downgrade is a refund (BIL-5), a postpaid
    adjustment (SET-9) an adjustment, everything else consumption."""
    if line["pay_mode"] == "prepaid" and line["kind"] in ("refund", "downgrade"):
        return "refund"
    return "adjustment" if line["kind"] == "adjustment" else "consume"


def refreshed_lines(conn: Connection, actor: Actor, uin: int, month: str) -> list[dict]:
    """The month's L3 lines deducted on business days the roll-ups hold (refreshed): the
    lines L0–L2 add up (the bill check keeps them equal), for the breakdowns the
    roll-ups do not keep (order kind, L0 category, a resource's times)."""
    require(actor, uin, FINANCE)
    check_month(month)
    lines = _lines_of_month(conn, uin, month, usage_time_switch_month(conn, uin))
    days = sorted({line["deducted_on"] for line in lines})
    refreshed = set()
    for chunk in range(0, len(days), 500):
        refreshed |= {as_date(day) for day in conn.execute(select(bill_rollup_days.c.day).where(
            bill_rollup_days.c.day.in_(days[chunk:chunk + 500]))).scalars()}
    return [line for line in lines if line["deducted_on"] in refreshed]


def sum_lines(lines: list[dict], key) -> dict:
    """``key(line)`` -> the sums (SUMS) of the lines with that key, in first-seen order."""
    groups: dict = {}
    for line in lines:
        sums = groups.setdefault(key(line), dict.fromkeys(SUMS, 0))
        for name in SUMS:
            if name == "lines":
                sums[name] += 1
            elif name == "original_cost":  # BIL-6: a contract line counts at its discounted cost
                sums[name] += (line["original_cost"] if line["original_cost"] is not None
                               else line["discounted_cost"])
            else:
                sums[name] += line[name]
    return groups


def summary_with_products(conn: Connection, actor: Actor, uin: int, month: str, by: str,
                          tag_key: str | None = None) -> list[dict]:
    """L1 groups as ``summary`` gives them, each with ``products``: the group's sums per
    product code, largest deduction first (the roll-ups)."""
    groups = summary(conn, actor, uin, month, by, tag_key)  # checks FINANCE, month and by
    r = bill_rollups.c
    where = [r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin))]
    column = r.resource_id if by == "tag" else r[DIMENSIONS[by]]
    rows = conn.execute(select(column, r.product_code, *_sums()).where(*where)
                        .group_by(column, r.product_code)).mappings().all()
    tags = _tags(conn, sorted({row["resource_id"] for row in rows})) if by == "tag" else {}
    products: dict = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(SUMS, 0)))
    for row in rows:
        key = (tags.get(row["resource_id"], {}).get(tag_key, UNTAGGED) if by == "tag"
               else row[DIMENSIONS[by]])
        for name in SUMS:
            products[key][row["product_code"]][name] += int(row[name])
    key_of = "tag_value" if by == "tag" else by
    for group in groups:
        found = products[group[key_of]]
        group["products"] = sorted(({"product": code, **sums} for code, sums in found.items()),
                                   key=lambda g: (-g["deducted"], g["product"]))
    return groups


def resource_bill_page(conn: Connection, actor: Actor, uin: int, month: str, *,
                       pay_mode: str | None = None, product_code: str | None = None,
                       resource_id: str | None = None, kinds: tuple[str, ...] | None = None,
                       tag: tuple[str, str] | None = None, offset: int = 0,
                       limit: int = 100) -> dict:
    """A page of L2 (``{items, total}``, largest deduction first): per resource the
    roll-ups' sums with its product, region, pay mode, project (of its latest line,
    SET-7), name where the customer set one and tags now; and from its lines on the
    refreshed days ``kinds`` (the order kinds, or charge/adjustment), ``items`` (billing
    items), ``first_usage``, ``last_usage_end`` and ``last_deducted_at``. Filters: pay
    mode, product, resource, a line kind among ``kinds``, a tag (key, value; "" for
    resources without the key)."""
    require(actor, uin, FINANCE)
    check_month(month)
    r = bill_rollups.c
    where = [r.uin == uin, *_in_month(month, usage_time_switch_month(conn, uin))]
    where += [r.pay_mode == pay_mode] if pay_mode else []
    where += [r.product_code == product_code] if product_code else []
    where += [r.resource_id == resource_id] if resource_id else []
    rows = conn.execute(select(r.resource_id, r.product_code, r.region, r.pay_mode, *_sums())
                        .where(*where).group_by(r.resource_id, r.product_code, r.region,
                                                r.pay_mode)).mappings().all()
    lines_of = defaultdict(list)
    for line in refreshed_lines(conn, actor, uin, month):
        lines_of[line["resource_id"]].append(line)
    tags = _tags(conn, sorted({row["resource_id"] for row in rows}))
    items = []
    for row in rows:
        rid, own = row["resource_id"], lines_of[row["resource_id"]]
        if kinds is not None and not any(line["kind"] in kinds for line in own):
            continue
        if tag is not None and tags.get(rid, {}).get(tag[0], UNTAGGED) != tag[1]:
            continue
        items.append({"resource_id": rid, "product_code": row["product_code"],
                      "region": row["region"], "pay_mode": row["pay_mode"],
                      "tags": tags.get(rid, {}), **_amounts(row), **_line_facts(own)})
    items.sort(key=lambda g: (-g["deducted"], g["resource_id"]))
    page = items[offset:offset + limit]
    _with_project(conn, uin, month, page)
    names = dict(conn.execute(select(resources.c.id, resources.c.name).where(
        resources.c.id.in_([item["resource_id"] for item in page]))).all()) if page else {}
    for item in page:
        item["resource_name"] = names.get(item["resource_id"])
    return {"items": page, "total": len(items)}


def _line_facts(lines: list[dict]) -> dict:
    ends = [line["usage_end"] for line in lines if line["usage_end"] is not None]
    return {"kinds": sorted({line["kind"] for line in lines}),
            "price_kinds": sorted({line["price_kind"] for line in lines}),
            "items": sorted({line["item"] for line in lines if line["item"]}),
            "first_usage": min((line["usage_start"] for line in lines), default=None),
            "last_usage_end": max(ends, default=None),
            "last_deducted_at": max((line["deducted_at"] for line in lines), default=None)}


def _with_project(conn: Connection, uin: int, month: str, page: list[dict]) -> None:
    """Each item's project: the one of its latest roll-up row (frozen per line, SET-7)."""
    if not page:
        return
    r = bill_rollups.c
    rows = conn.execute(select(r.resource_id, r.deducted_on, r.project_id, r.project_name)
                        .where(r.uin == uin, r.resource_id.in_([i["resource_id"] for i in page]),
                               *_in_month(month, usage_time_switch_month(conn, uin))))
    latest = {}
    for rid, day, project_id, project_name in sorted(rows, key=lambda row: str(row[1])):
        latest[rid] = (project_id, project_name)
    for item in page:
        item["project_id"], item["project_name"] = latest.get(item["resource_id"], (0, ""))


# ---------------------------------------------------------------- consumption bill lines (BIL-4)

def consumption_lines(conn: Connection, actor: Actor, uin: int, month: str,
                      first_day: date | None = None, stop_day: date | None = None) -> list[dict]:
    """The consumption bill (BIL-4, ``bills.consumption``) line by line: each prepaid
    order whose service days meet the month's days ``first_day`` .. ``stop_day`` (default:
    the whole month) with the fen those days get (``consumed``) and of it what voucher
    and gift paid (each spread by the same rule; cash is the rest), ``left`` the fen its
    later days still get (待分摊), ``days`` the days in range; and each postpaid L3
    line whose usage began in those days, whole. Summed, the month's lines are
    ``consumption_bill``'s totals."""
    require(actor, uin, FINANCE)
    start, end = settlement.month_bounds(month)
    first, stop = business_date(start), business_date(end)
    first_day, stop_day = max(first_day or first, first), min(stop_day or stop, stop)
    out = [_consumed_order(row, first_day, stop_day)
           for row in conn.execute(_consumed_orders(uin, first_day, stop_day)).mappings()]
    far = db_time(month_start(f"{BUSINESS_YEARS.stop - 1}-12"))
    lo, hi = _day_start(first_day), _day_start(stop_day)
    for line in postpaid_lines(conn, uin, db_time(lo), far, db_time(hi), db_time(lo)):
        voucher, gift = line["voucher_paid"], line["gift_paid"]
        out.append({**line, "consumed": line["deducted"], "voucher": voucher, "gift": gift,
                    "cash": line["deducted"] - voucher - gift, "left": 0, "days": 1,
                    "fee_begin": line["usage_start"], "fee_end": line["usage_end"],
                    "order_id": None, "order_created_at": None})
    _with_quantities(conn, out)
    tags = _tags(conn, sorted({line["resource_id"] for line in out}))
    for line in out:
        line["tags"] = tags.get(line["resource_id"], {})
    out.sort(key=lambda line: (line["fee_begin"], line["line_id"]))
    return out


def _with_quantities(conn: Connection, lines: list[dict]) -> None:
    """A postpaid line's charged quantity (1e-6 units: metered less what packages covered
    and what was used while stopped); a prepaid line's is its days in range."""
    ids = [int(line["line_id"].split(":")[1]) for line in lines if line["pay_mode"] == "postpaid"]
    b, charged = bill_lines.c, {}
    for chunk in range(0, len(ids), 500):
        charged.update({f"postpaid:{row[0]}": int(row[1]) for row in conn.execute(
            select(b.id, b.quantity - b.package_quantity - b.stopped_quantity)
            .where(b.id.in_(ids[chunk:chunk + 500])))})
    for line in lines:
        line["quantity"] = charged.get(line["line_id"], line["days"] * 1_000_000)


def _day_start(day: date) -> datetime:
    return to_utc(datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ))


def _consumed_orders(uin: int, first_day: date, stop_day: date):
    o = orders.c
    lo, hi = db_time(_day_start(first_day)), db_time(_day_start(stop_day))
    return (select(orders).where(
        o.uin == uin, o.kind.in_(PREPAID_KINDS), o.state.in_(PREPAID_STATES),
        o.service_start.is_not(None), o.service_end.is_not(None), o.service_start < hi,
        or_(o.service_end > lo, and_(o.service_end <= o.service_start, o.service_start >= lo)))
        .order_by(o.service_start, o.id))


def _consumed_order(row, first_day: date, stop_day: date) -> dict:
    s, e = from_db_time(row["service_start"]), from_db_time(row["service_end"])
    begin, days = rules.service_days(s, e)

    def share(fen: int) -> int:
        return rules.share_in_range(int(fen), s, e, first_day, stop_day)

    line = prepaid_line(row)
    consumed = share(row["amount"])
    line["original_share"] = share(row["list_amount"]) if row["price_kind"] == "list" else None
    voucher, gift = share(line["voucher_paid"]), share(line["gift_paid"])
    in_range = max(0, (min(stop_day, begin + timedelta(days=days)) - max(first_day, begin)).days)
    return {**line, "consumed": consumed, "voucher": voucher, "gift": gift,
            "cash": consumed - voucher - gift,
            "left": int(row["amount"]) - rules.share_in_range(int(row["amount"]), s, e, begin,
                                                              stop_day),
            "days": in_range, "fee_begin": max(s, _day_start(first_day)),
            "fee_end": min(e, _day_start(stop_day)) if e > s else s,
            "order_id": row["id"], "order_created_at": from_db_time(row["created_at"])}


CONSUMPTION_SUMS = ("consumed", "voucher", "gift", "cash", "left")
CONSUMPTION_KEYS = {"product": ("product_code",), "project": ("project_id",),
                    "region": ("region",), "resource": ("resource_id", "pay_mode")}


def consumption_summary(lines: list[dict], by: str) -> list[dict]:
    """``consumption_lines`` grouped by product, project, region or resource (with pay
    mode), each group with its sums, ``products`` (the same per product code) and its
    descriptive fields of the latest line; largest consumption first."""
    keys = CONSUMPTION_KEYS[by]
    groups: dict = {}
    for line in lines:
        key = tuple(line[k] for k in keys)
        group = groups.setdefault(key, {**{k: line[k] for k in keys}, "days": 0,
                                        **dict.fromkeys(CONSUMPTION_SUMS, 0), "products": {}})
        group.update({k: line[k] for k in ("project_name", "region", "product_code",
                                           "resource_name", "project_id", "pay_mode", "tags")
                      if k not in keys})
        product = group["products"].setdefault(line["product_code"],
                                               dict.fromkeys(CONSUMPTION_SUMS, 0))
        for name in CONSUMPTION_SUMS:
            group[name] += line[name]
            product[name] += line[name]
        group["days"] = max(group["days"], line["days"])
        group.setdefault("fee_begin", line["fee_begin"])
        group["fee_begin"] = min(group["fee_begin"], line["fee_begin"])
        group["fee_end"] = max(group.get("fee_end") or line["fee_end"], line["fee_end"])
        group["last_deducted_at"] = max(group.get("last_deducted_at") or line["deducted_at"],
                                        line["deducted_at"])
        group.setdefault("items", set()).add(line["item"])
    out = []
    for group in groups.values():
        group["products"] = sorted(({"product": code, **sums}
                                    for code, sums in group["products"].items()),
                                   key=lambda g: (-g["consumed"], g["product"]))
        group["items"] = sorted(i for i in group["items"] if i)
        out.append(group)
    return sorted(out, key=lambda g: (-g["consumed"], tuple(str(g[k]) for k in keys)))


__all__ = ["DIMENSIONS", "SUMS", "usage_time_switch_month", "check_month", "month_lines",
           "month_lines_page", "iter_month_lines", "month_lines_statement", "overview", "daily_totals", "summary", "resource_bills", "tag_keys",
           "PAY_TYPES", "pay_type", "refreshed_lines", "sum_lines", "summary_with_products",
           "resource_bill_page", "consumption_lines", "consumption_summary",
           "cash_consumed_by_product"]


# ---------------------------------------------------------------- cash consumed (INV-1, for invoices)

def cash_consumed_by_product(conn: Connection, uin: int) -> dict[str, int]:
    """The account's cash consumption per product code, in fen, all time: what its
    cost-bill lines were paid with other than vouchers and gift (``deducted −
    voucher_paid − gift_paid``: cash, credit, and postpaid arrears, which only
    repaid cash clears); refunds and downgrades negative (BIL-5). Read from the
    roll-ups for the business days they hold and from the L3 lines of the other days
    (since the last refresh, or a day never refreshed), so a request reads the
    account's roll-up rows and a day or two of lines, never its whole line history.

    The prepaid lines are orders in ``lines.DEDUCTED_STATES`` (delivered, or
    refunded after delivery): paid and delivered; a paid order waiting for a
    manual delivery holds a freeze and is no line yet (INV-1: paid and delivered
    before invoiced). Postpaid lines are deductions already made."""
    r = bill_rollups.c
    totals: dict[str, int] = defaultdict(int)
    for code, fen in conn.execute(
            select(r.product_code, func.sum(r.deducted - r.voucher_paid - r.gift_paid))
            .where(r.uin == uin).group_by(r.product_code)):
        totals[code] += int(fen or 0)
    for start, end in _unrefreshed_windows(conn):
        for code, fen in _lines_cash(conn, uin, start, end):
            totals[code] += int(fen or 0)
    return {code: fen for code, fen in sorted(totals.items()) if fen != 0}


def _unrefreshed_windows(conn: Connection) -> list[tuple[datetime | None, datetime | None]]:
    """[start, end) windows (naive UTC, None: open) not covered by a refreshed business
    day: before the first, the gaps, after the last (one row per day: a short read)."""
    days = [as_date(d) for d in conn.execute(
        select(bill_rollup_days.c.day).order_by(bill_rollup_days.c.day)).scalars()]
    if not days:
        return [(None, None)]
    windows, since = [], None
    for day in days:
        start, end = day_bounds(day)
        if since is None or start > since:
            windows.append((since, start))
        since = end
    windows.append((since, None))
    return [(s, e) for s, e in windows if s is None or e is None or s < e]


def _lines_cash(conn: Connection, uin: int, start: datetime | None, end: datetime | None):
    """(product, cash fen) of the account's L3 lines deducted in [start, end)."""
    b, o = bill_lines.c, orders.c
    postpaid = [b.uin == uin]
    prepaid = [o.uin == uin, o.state.in_(DEDUCTED_STATES), o.kind.in_(ORDER_KINDS),
               o.closed_at.is_not(None)]
    if start is not None:
        postpaid.append(b.deducted_at >= start)
        prepaid.append(o.closed_at >= start)
    if end is not None:
        postpaid.append(b.deducted_at < end)
        prepaid.append(o.closed_at < end)
    yield from conn.execute(select(b.product_code, func.sum(b.deducted - b.voucher_paid
                                                            - b.gift_paid))
                            .where(*postpaid).group_by(b.product_code))
    yield from conn.execute(select(o.product_code, func.sum(
        o.amount - o.paid_coupon - o.paid_gift + o.refunded_gift))
        .where(*prepaid).group_by(o.product_code))
