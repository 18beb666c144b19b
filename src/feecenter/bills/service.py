"""Cost bills of a month (BIL-1): the L3 lines (``month_lines``, near real time, read
from settlement's and orders' tables; ``month_lines_page`` paged in SQL and
``iter_month_lines`` streamed, for REST and exports), and from the daily roll-ups the L0
overview (``overview``), L1 summaries (``summary`` by product, project, region,
pay mode or one tag key) and L2 resource bills (``resource_bills``); each
checks FINANCE on the account. A line belongs to the month ``settlement.rules.
statistic_month`` gives it (BIL-3), with the account's switch month from
``usage_time_switch_month``.

Tags are the resource's tags at query time (the roll-ups are kept per resource;
a tag changed today regroups the past months' L1 by tag); the project is the
one at deduction time (SET-7), stored on each line.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import date

from sqlalchemy import Connection, func, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.bills.lines import (line_of, line_order, lines_query, month_start, page_rows,
                                  postpaid_lines, prepaid_lines)
from feecenter.bills.tables import bill_rollup_days, bill_rollups
from feecenter.clock import BUSINESS_TZ, BUSINESS_YEARS, add_months, business_date, db_time
from feecenter.errors import invalid
from feecenter.resources.tables import resources
from feecenter.settlement import service as settlement
from feecenter.settlement.rules import statistic_month

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


__all__ = ["DIMENSIONS", "SUMS", "usage_time_switch_month", "check_month", "month_lines",
           "month_lines_page", "iter_month_lines",
           "overview", "summary", "resource_bills", "tag_keys"]
