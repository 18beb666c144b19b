"""Postpaid settlement use cases (SET-1..5, SET-7..9) and reading bill lines
(``list_bill_lines``, ``bill_detail_page``: the L3 lines with their item,
product and region names, BIL-1; ``monthly_precision_difference``), each
month of lines chosen by the account's statistic period (``statistic_period``,
BIL-3).

``settle_period(engine, clock, cycle, period)`` settles one period of one
cycle (hour | day | month), set-based (docs/settlement.md):

1. Late pass (SET-9): usage received recently whose period of this cycle is
   already settled, and not yet billed, is rated and posted as adjustment
   lines referencing the original lines (never an edit). An account the
   period completed without gets its ``settled_accounts`` row there, so a
   rerun of that period does not charge the usage again (SET-8).
2. One aggregate query (GROUP BY uin, resource, item) reads the period's
   usage of postpaid resources whose product settles on this cycle: records
   with ``period.start < usage_end <= period.end`` (a record belongs to the
   period it closes: 10:00-11:00 usage is the 10:00 hour). One price book
   (``catalog.pricebook``) holds every price in force at the period's start.
3. Accounts not yet settled are taken in chunks (``CHUNK_ACCOUNTS`` accounts,
   ``CHUNK_LINES`` lines at most), one database transaction each: lock the
   chunk's balances, skip accounts a concurrent run settled, read resource
   facts (the project at deduction time, SET-7), leave out the accounts with
   a line the catalog cannot price (``rating.unpriceable``), read the month
   to date, rate every line, round each (account, product) transaction
   once, deduct them all (``funds.bulk``: gift, cash, credit, arrears),
   write the L3 lines and the chunk's ``settled_accounts`` rows. A chunk
   commits whole or not at all; a rerun skips settled accounts, so a crash
   anywhere followed by a rerun gives one clean run's result (SET-8).
4. The period is marked settled (``settled_periods``) — unless an account
   was left out: then ``SettlementIncomplete`` names them and why, the job
   fails and its retries settle them once the catalog prices their usage.

The seam for resource packages (SET-10) and postpaid coupons (SET-6) is
``settlement.extensions``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, and_, bindparam, case, func, insert, select, tuple_

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.catalog import service as catalog
from feecenter.catalog.pricebook import PriceBook
from feecenter.catalog.tables import billing_items, products, regions
from feecenter.clock import (BUSINESS_TZ, BUSINESS_YEARS, Clock, add_months, business_date,
                             db_time, from_db_time, to_utc)
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid
from feecenter.funds import bulk
from feecenter.funds import service as funds
from feecenter.periods import DAILY, HOURLY, MONTHLY, Period, period_containing
from feecenter.resources.tables import resources
from feecenter.settlement import corrections, extensions, rating, rules, statistic
from feecenter.settlement.model import RatedLine, RunContext
from feecenter.settlement.posting import Posted, post_lines
from feecenter.settlement.tables import bill_lines, settled_accounts, settled_periods
from feecenter.usage.tables import usage_records

CYCLES = {"hour": HOURLY, "day": DAILY, "month": MONTHLY}  # product cycle -> job cadence
DEDUCT_MODES = {"hour": "hour_h", "day": "hour_d", "month": "hour_m"}
LATE_LOOKBACK = timedelta(days=2)  # late pass: usage received since period.start - this
CHUNK_ACCOUNTS = 2_000  # accounts per database transaction (<= funds.bulk.MAX_ACCOUNTS)
CHUNK_LINES = 50_000    # bill lines per database transaction (an account is never split)
MAX_LIMIT = 1000
log = logging.getLogger("feecenter.settlement")


# ---------------------------------------------------------------- settling

def settle_period(engine: Engine, clock: Clock, cycle: str, period: Period, *,
                  chunk_accounts: int = CHUNK_ACCOUNTS, chunk_lines: int = CHUNK_LINES) -> dict:
    """Settle ``period`` of ``cycle`` (hour | day | month); idempotent, crash-safe."""
    _check(cycle, period)
    if not 1 <= chunk_accounts <= bulk.MAX_ACCOUNTS:
        raise invalid("chunk_accounts", f"每批账号数须为 1–{bulk.MAX_ACCOUNTS}",
                      f"accounts per chunk must be 1-{bulk.MAX_ACCOUNTS}")
    if chunk_lines < 1:
        raise invalid("chunk_lines", "每批账单行数须为正数", "lines per chunk must be positive")
    adjusted, unpriced = _settle_late(engine, clock, cycle, period)
    with engine.connect() as conn:
        book = PriceBook.load(conn, period.start)
        by_uin = rating.period_usage(conn, cycle, period, book)
        done = set(conn.execute(select(settled_accounts.c.uin).where(
            settled_accounts.c.cycle == cycle,
            settled_accounts.c.period_key == period.key)).scalars())
    pending = [uin for uin in by_uin if uin not in done]
    run = _run(engine, clock, cycle, period, book)
    totals = {"accounts": 0, "skipped": len(by_uin) - len(pending), "lines": 0, "amount_fen": 0}
    chunks = rules.chunk_accounts([(uin, len(by_uin[uin])) for uin in pending], chunk_accounts,
                                  chunk_lines)
    for chunk in chunks:
        accounts = {uin: by_uin.pop(uin) for uin in chunk}  # settled lines are let go
        with transaction(engine) as conn:
            posted, skipped, failed = _settle_chunk(conn, clock, run, accounts)
        unpriced.update(failed)
        totals["accounts"] += len(posted.accounts)
        totals["skipped"] += skipped
        totals["lines"] += posted.lines
        totals["amount_fen"] += sum(fen for fen, _ in posted.accounts.values())
    if unpriced:  # the others are settled; the period stays open for these
        raise SettlementIncomplete(cycle, period, unpriced, totals)
    with transaction(engine) as conn:
        _mark_period(conn, clock, cycle, period)
    return {**totals, "adjustment_lines": adjusted}


class SettlementIncomplete(Conflict):
    """Some accounts had usage the catalog cannot price: every other account of the
    period is settled; these are not, and the period is not marked settled, so
    the job fails and its retries settle them once the catalog prices them."""

    def __init__(self, cycle: str, period: Period, unpriced: dict[int, str], totals: dict):
        names = ", ".join(str(uin) for uin in sorted(unpriced)[:20])
        super().__init__(
            f"{cycle} 结算 {period.key}：{len(unpriced)} 个账号有无法计价的用量，未结算（{names}）",
            f"{cycle} settlement {period.key}: {len(unpriced)} accounts have usage that cannot "
            f"be priced and were not settled ({names})", field="catalog",
            unpriced={str(uin): reason for uin, reason in sorted(unpriced.items())},
            settled=totals)


def _check(cycle: str, period: Period) -> None:
    if cycle not in CYCLES:
        raise invalid("cycle", "结算周期只能为 hour、day、month", "cycle must be hour, day or month")
    if period.cadence != CYCLES[cycle]:
        raise invalid("period", "周期与结算周期不符", f"a {cycle} cycle settles {CYCLES[cycle]} periods")


def _run(engine: Engine, clock: Clock, cycle: str, period: Period, book: PriceBook
         ) -> RunContext:
    """The run's shared facts; revenue accounts are opened first, in their own transaction,
    so no chunk depends on another's writes."""
    entities = sorted({facts.entity for facts in book.products.values()
                       if facts.postpaid_cycle == cycle})
    with transaction(engine) as conn:
        revenue = {entity: funds.platform_account(conn, clock, "revenue", entity)
                   for entity in entities}
    memo = f"按量结算 {period.key} / postpaid settlement {cycle} {period.key}"
    return RunContext(cycle=cycle, period=period, book=book, deduct_mode=DEDUCT_MODES[cycle],
                      revenue=revenue, key_prefix=f"settle:{cycle}:{period.key}", memo=memo)


def _settle_chunk(conn: Connection, clock: Clock, run: RunContext,
                  accounts: dict[int, list[RatedLine]]) -> tuple[Posted, int, dict[int, str]]:
    """Settle a chunk of accounts (their unpriced lines) in the caller's transaction:
    (Posted, accounts skipped, accounts left unsettled with a line that cannot be
    priced and why: an account is settled whole or not at all)."""
    locked = bulk.lock_accounts(conn, accounts)
    s = settled_accounts.c
    already = set(conn.execute(select(s.uin).where(
        s.cycle == run.cycle, s.period_key == run.period.key,
        s.uin.in_(bindparam("uins", expanding=True))), {"uins": sorted(accounts)}).scalars())
    lines = [line for uin, own in accounts.items() if uin not in already  # settled meanwhile
             for line in own]
    rating.attach_facts(conn, lines)
    failed = rating.unpriceable(conn, run.book, lines)
    if failed:
        log.warning("usage that cannot be priced: accounts left unsettled",
                    extra={"cycle": run.cycle, "period": run.period.key, "unpriced": failed})
        lines = [line for line in lines if line.uin not in failed]
    extensions.cover_with_resource_packages(conn, clock, run, lines)
    month = rating.month_to_date(conn, run.cycle, run.period, lines, run.book)
    rating.rate_lines(conn, run.book, lines, month)
    posted = post_lines(conn, clock, run, lines, locked)
    if posted.accounts:
        now = db_time(clock.now())
        conn.execute(insert(settled_accounts), [
            {"uin": uin, "cycle": run.cycle, "period_key": run.period.key, "amount": fen,
             "txn_id": txn_id, "settled_at": now}
            for uin, (fen, txn_id) in posted.accounts.items()])
    return posted, len(already), failed


def _mark_period(conn: Connection, clock: Clock, cycle: str, period: Period) -> None:
    """Mark the period settled, unless it is: insert-if-absent, so runs of one period
    finishing at once all succeed (the first mark stays; SET-8)."""
    conn.execute(insert_if_absent(conn, settled_periods, ["cycle", "period_key"]).values(
        cycle=cycle, period_key=period.key, period_start=db_time(period.start),
        period_end=db_time(period.end), completed_at=db_time(clock.now())))


# ---------------------------------------------------------------- late usage (SET-9)

def settle_late_usage(engine: Engine, clock: Clock, cycle: str, period: Period) -> int:
    """Bill usage that arrived after its (earlier) period of ``cycle`` was settled;
    the number of adjustment lines written (``_settle_late``). An account whose
    late usage cannot be priced is left out: SettlementIncomplete names it after
    the others are billed."""
    _check(cycle, period)
    written, unpriced = _settle_late(engine, clock, cycle, period)
    if unpriced:
        raise SettlementIncomplete(cycle, period, unpriced, {"adjustment_lines": written})
    return written


def _settle_late(engine: Engine, clock: Clock, cycle: str, period: Period
                 ) -> tuple[int, dict[int, str]]:
    """Bill usage that arrived after its (earlier) period of ``cycle`` was settled.

    Candidates: records received since ``period.start - LATE_LOOKBACK`` that end
    at or before ``period.start``. For each (resource, item, earlier period) they
    touch, the period's whole usage is compared with what its lines (charges and
    adjustments) billed; if the account was settled for that period (or the
    period completed without it), the missing quantity is rated at that period
    and posted as an adjustment line naming the reason and the original line.
    One database transaction per (account, earlier period); returns the number
    of adjustment lines written and the accounts left out (a line that cannot
    be priced), with why.
    """
    with engine.connect() as conn:
        touched, periods = _late_candidates(conn, cycle, period)
        books = {key: PriceBook.load(conn, earlier.start) for key, earlier in periods.items()}
    runs = {key: _run(engine, clock, cycle, earlier, books[key])
            for key, earlier in periods.items()}
    written, unpriced = 0, {}
    for (uin, key), pairs in sorted(touched.items()):
        with transaction(engine) as conn:
            count, why = _adjust_account(conn, clock, runs[key], uin, sorted(pairs))
        written += count
        if why:
            unpriced[uin] = f"{key} {why}"
    return written, unpriced


def _late_candidates(conn: Connection, cycle: str, period: Period):
    """(uin, earlier period key) -> {(resource, item)} of usage that may be late, and the
    earlier periods by key."""
    u, r = usage_records.c, resources.c
    # Only what arrived since this cycle's previous run can be late: anything
    # older was billed in its own period or by an earlier late pass. The previous
    # run is the latest earlier period's, not the one completed last: an older
    # period settled for the first time out of order (a backfill, a retry that
    # completed late) says nothing about what arrived since the latest run.
    since = db_time(period.start - LATE_LOOKBACK)
    p = settled_periods.c
    previous = conn.execute(select(p.completed_at).where(
        p.cycle == cycle, p.period_start < db_time(period.start))
        .order_by(p.period_start.desc()).limit(1)).scalar()
    if previous is not None:
        since = max(since, previous)
    codes = [p.code for p in catalog.list_products(conn) if p.postpaid_cycle == cycle]
    rows = conn.execute(
        select(u.uin, u.resource_id, u.billing_item, u.usage_end).distinct()
        .join(resources, r.id == u.resource_id)
        .where(u.usage_end <= db_time(period.start), u.received_at >= since,
               r.pay_mode == "postpaid", r.product_code.in_(codes))).all()
    touched: dict[tuple[int, str], set[tuple[str, str]]] = defaultdict(set)
    periods: dict[str, Period] = {}
    for row in rows:
        earlier = period_containing(CYCLES[cycle], from_db_time(row.usage_end)
                                    - timedelta(microseconds=1))
        periods[earlier.key] = earlier
        touched[(row.uin, earlier.key)].add((row.resource_id, row.billing_item))
    return touched, periods


def _adjust_account(conn: Connection, clock: Clock, run: RunContext, uin: int,
                    pairs: list[tuple[str, str]]) -> tuple[int, str | None]:
    """Late or corrected usage of one account for one earlier period, in the caller's
    transaction: (adjustment lines written, why none were when a line cannot be priced).
    Late usage, corrections up and corrections down are separate transactions, each
    with its reason (``ADJUSTMENTS``)."""
    locked = bulk.lock_accounts(conn, [uin])
    period = run.period
    s, p = settled_accounts.c, settled_periods.c
    account_settled = conn.execute(select(s.id).where(
        s.uin == uin, s.cycle == run.cycle, s.period_key == period.key)).first() is not None
    if not account_settled and conn.execute(select(p.id).where(
            p.cycle == run.cycle, p.period_key == period.key)).first() is None:
        return 0, None  # not settled yet: the period's own run will bill it
    differences, originals, sequence = _unbilled(conn, run.cycle, period, uin, pairs)
    if not differences:
        return 0, None
    lines = [_difference_line(uin, difference) for difference in differences]
    rating.attach_facts(conn, lines)
    if failed := rating.unpriceable(conn, run.book, lines):
        return 0, failed[uin]
    groups: dict[str, list[tuple[RatedLine, object]]] = defaultdict(list)
    for line, (_, _, quantity, stopped, corrected) in zip(lines, differences):
        kind = ("lowered" if _lowered(quantity, stopped) else "corrected" if corrected
                else "late")
        groups[kind].append((line, (quantity, stopped) if stopped else quantity))
    written = 0
    for kind in ADJUSTMENTS:
        if groups[kind]:
            adjustment = _adjustment_run(run, kind, groups[kind], originals, sequence)
            own = [line for line, _ in groups[kind]]
            written += _post_adjustment(conn, clock, adjustment, own, locked,
                                        lowered=kind == "lowered")
    if written and not account_settled:
        _settled_by_late_pass(conn, clock, run, uin)
    return written, None


def _settled_by_late_pass(conn: Connection, clock: Clock, run: RunContext, uin: int) -> None:
    """Record the account as settled for the run's period, in the transaction that billed
    its usage as adjustments: the period completed without it (no usage then), so a rerun
    of the period would otherwise charge the same usage again (SET-8). The row carries
    what the account's lines of the period deducted and their first transaction."""
    b = bill_lines.c
    billed = conn.execute(select(b.deducted, b.txn_id).where(
        b.uin == uin, b.cycle == run.cycle, b.period_key == run.period.key)
        .order_by(b.id)).all()
    conn.execute(insert(settled_accounts).values(
        uin=uin, cycle=run.cycle, period_key=run.period.key,
        amount=sum(row.deducted for row in billed),
        txn_id=next((row.txn_id for row in billed if row.txn_id is not None), None),
        settled_at=db_time(clock.now())))


def _lowered(quantity: int, stopped: int) -> bool:
    """Whether a difference (usage less billed, and of it the stopped part) is given back:
    its chargeable part (ARR-3: never the stopped part) went down — or, all of it
    stopped, its quantity did (a line that gives back nothing)."""
    chargeable = quantity - stopped
    return chargeable < 0 or (chargeable == 0 and quantity < 0)


def _difference_line(uin: int, difference: tuple) -> RatedLine:
    """The line of a difference: for a charge, its quantity and stopped part as they are
    (the chargeable part, ``quantity - stopped``, is >= 0); for a credit, both negated
    (``settlement.corrections`` gives back ``quantity - stopped`` at most)."""
    resource_id, item, quantity, stopped, _ = difference
    if _lowered(quantity, stopped):
        return RatedLine(uin, resource_id, item, -quantity, -stopped)
    return RatedLine(uin, resource_id, item, quantity, stopped)


# kind of adjustment -> (memo, reason with {ids}: the original lines), zh / en
ADJUSTMENTS = {
    "late": ("按量结算补扣 {period} / late usage adjustment",
             "迟到用量补扣（原账单行 {ids}） / late usage for a settled period "
             "(original lines: {ids})"),
    "corrected": ("按量结算用量修正 {period} / usage correction",
                  "用量修正补扣（原账单行 {ids}） / usage correction (original lines: {ids})"),
    "lowered": ("按量结算用量修正退还 {period} / usage correction credit",
                "用量修正退还（原账单行 {ids}） / usage correction (original lines: {ids})"),
}


def _adjustment_run(run: RunContext, kind: str, group: list[tuple[RatedLine, object]],
                    originals: dict[tuple[str, str], int], sequence: int) -> RunContext:
    """The RunContext of one adjustment transaction: its key names the adjustment's
    sequence number and a digest of its (resource, item, signed quantity — with the
    signed stopped part when there is one, ARR-3)s."""
    signed = sorted((line.resource_id, line.item, quantity) for line, quantity in group)
    digest = hashlib.sha256(repr(signed).encode()).hexdigest()[:12]
    own = {line.key: originals[line.key] for line, _ in group if line.key in originals}
    ids = ", ".join(str(i) for i in sorted(own.values())) or "none"
    memo, reason = ADJUSTMENTS[kind]
    return RunContext(
        cycle=run.cycle, period=run.period, book=run.book, deduct_mode=run.deduct_mode,
        revenue=run.revenue, key_prefix=run.key_prefix, key_suffix=f":adj{sequence}:{digest}",
        memo=memo.format(period=run.period.key), kind="adjustment", sequence=sequence,
        originals=own, reason=reason.format(ids=ids))


def _post_adjustment(conn: Connection, clock: Clock, run: RunContext, lines: list[RatedLine],
                     locked: bulk.LockedAccounts, *, lowered: bool) -> int:
    """Rate and post one adjustment transaction (a lowered quantity is given back,
    ``settlement.corrections``); the lines written."""
    if lowered:
        return corrections.credit_back(conn, clock, run, lines)
    extensions.cover_with_resource_packages(conn, clock, run, lines)
    month = rating.month_to_date(conn, run.cycle, run.period, lines, run.book,
                                 include_period=True)
    rating.rate_lines(conn, run.book, lines, month)
    return post_lines(conn, clock, run, lines, locked).lines


def _unbilled(conn: Connection, cycle: str, period: Period, uin: int,
              pairs: list[tuple[str, str]]):
    """Per (resource, item) whose usage in the period differs from what its lines billed,
    in quantity or in the part used while the resource was stopped (ARR-3):
    (resource, item, usage less billed — negative when a correction lowered it —, its
    stopped part less the lines' stopped part, whether a record of it was corrected);
    the original charge lines; the next adjustment sequence number."""
    u, b = usage_records.c, bill_lines.c
    differences: list[tuple[str, str, int, int, bool]] = []
    originals: dict[tuple[str, str], int] = {}
    sequence = 1
    for resource_id, item in pairs:
        used, stopped, revision = conn.execute(select(
            func.coalesce(func.sum(u.quantity), 0), func.coalesce(func.sum(u.stopped_quantity), 0),
            func.coalesce(func.max(u.revision), 0)).where(
            u.resource_id == resource_id, u.billing_item == item,
            u.usage_end > db_time(period.start), u.usage_end <= db_time(period.end))).one()
        lines = conn.execute(select(b.id, b.kind, b.sequence, b.quantity, b.stopped_quantity)
                             .where(b.resource_id == resource_id, b.billing_item == item,
                                    b.cycle == cycle, b.period_key == period.key)
                             .order_by(b.id)).all()
        billed = sum(line.quantity for line in lines)
        billed_stopped = sum(line.stopped_quantity for line in lines)
        if used != billed or stopped != billed_stopped:
            differences.append((resource_id, item, int(used) - billed,
                                int(stopped) - billed_stopped, revision > 0))
            charge = next((line.id for line in lines if line.kind == "charge"), None)
            if charge is not None:
                originals[(resource_id, item)] = charge
            sequence = max([sequence] + [line.sequence + 1 for line in lines
                                         if line.kind == "adjustment"])
    return differences, originals, sequence


# ---------------------------------------------------------------- reading



# BIL-3: the statistic periods (settlement.statistic owns the one-way switch)
PERIOD_NAMES = statistic.PERIOD_NAMES
ACKNOWLEDGEMENT_VERSION = statistic.ACKNOWLEDGEMENT_VERSION
describe_statistic_period = statistic.describe
switch_statistic_period = statistic.switch_by_customer
switch_statistic_period_for = statistic.switch_by_operator


def statistic_switch_month(conn: Connection, uin: int) -> str | None:
    """BIL-3: the business month (YYYY-MM) the account switched to the usage-time
    period; None while it is on deduction time (the default). A line's bill month is
    ``rules.statistic_month(deduction month, usage month, this)``."""
    return statistic.switch_month(conn, uin)


def statistic_period(conn: Connection, uin: int) -> str:
    """BIL-3: the account's statistic period now, "deduction_time" (the default) or
    "usage_time" (after its one-way switch; months before the switch month stay on
    deduction time: ``_month_period``)."""
    return statistic.current_period(statistic_switch_month(conn, uin))


@dataclass(frozen=True)
class _Month:
    """One month of an account's bill lines on its statistic period (BIL-3)."""

    month: str
    switched_in: str | None
    period: str          # the month's period: deduction time before the switch month
    where: list          # SQL conditions putting a line in the month
    time: object         # SQL: the time that puts a line in the month


def _month_period(conn: Connection, uin: int, month: str) -> _Month:
    start, end = _month_bounds(month)
    switched_in = statistic_switch_month(conn, uin)
    return _Month(month, switched_in, statistic.period_of_month(switched_in, month),
                  statistic.in_month(switched_in, month, start, end),
                  statistic.statistic_time(switched_in, month, start, end))


def _month_bounds(month: str) -> tuple[datetime, datetime]:
    """YYYY-MM in ASCII digits (int() reads "２０２６" and "2_026"), a year in BUSINESS_YEARS."""
    match = re.fullmatch(r"([0-9]{4})-([0-9]{2})", month) if isinstance(month, str) else None
    if (match is None or int(match[1]) not in BUSINESS_YEARS
            or not 1 <= int(match[2]) <= 12):
        raise invalid("month", "月份格式应为 YYYY-MM", "month must be YYYY-MM")
    start = datetime(int(match[1]), int(match[2]), 1, tzinfo=BUSINESS_TZ)
    return to_utc(start), to_utc(add_months(start, 1))


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """A bill month "YYYY-MM" (business time) as its ``[start, end)`` in aware UTC, the
    one month parser every bill shares; anything else is invalid input on ``month``."""
    return _month_bounds(month)


def list_bill_lines(conn: Connection, actor: Actor, uin: int, filters: dict | None = None,
                    offset: int = 0, limit: int = 100, *, after_id: int | None = None,
                    before_id: int | None = None) -> dict:
    """L3 bill lines of an account (FINANCE); filters: month (YYYY-MM in business
    time, on the account's statistic period, BIL-3), product, resource_id,
    project_id, kind. The page states the period: ``statistic_period``. Paged by
    ``offset``, or by keyset: the lines after (or before) the line ``after_id``
    (``before_id``) in (period start, id) order, as cheap however deep."""
    require(actor, uin, FINANCE)
    filters = filters or {}
    _check_page(offset, limit)
    b = bill_lines.c
    if filters.get("month"):
        chosen = _month_period(conn, uin, filters["month"])
        period, switched_in, where = chosen.period, chosen.switched_in, [b.uin == uin,
                                                                          *chosen.where]
    else:
        switched_in = statistic_switch_month(conn, uin)
        period, where = statistic.current_period(switched_in), [b.uin == uin]
    for name, column in (("product", b.product_code), ("resource_id", b.resource_id),
                         ("project_id", b.project_id), ("kind", b.kind)):
        if filters.get(name) is not None:
            where.append(column == filters[name])
    total = conn.execute(select(func.count()).select_from(bill_lines).where(*where)).scalar_one()
    rows = conn.execute(_lines_page(conn, uin, where, offset, limit, after_id, before_id)
                        ).mappings().all()
    if before_id is not None:
        rows = rows[::-1]
    return {"total": total, "items": [_line(row) for row in rows], "statistic_period": period,
            "switched_in": switched_in}


def _lines_page(conn: Connection, uin: int, where: list, offset: int, limit: int,
                after_id: int | None, before_id: int | None):
    b = bill_lines.c
    stmt = select(bill_lines).where(*where).limit(limit)
    if after_id is None and before_id is None:
        return stmt.order_by(b.period_start, b.id).offset(offset)
    field, cursor = ("after_id", after_id) if after_id is not None else ("before_id", before_id)
    start = None
    if after_id is None or before_id is None:
        start = conn.execute(select(b.period_start).where(b.id == cursor, b.uin == uin)).scalar()
    if start is None:
        raise invalid(field, "翻页位置无效", "unknown page position")
    key, mark = tuple_(b.period_start, b.id), tuple_(start, cursor)
    if field == "after_id":
        return stmt.where(key > mark).order_by(b.period_start, b.id)
    return stmt.where(key < mark).order_by(b.period_start.desc(), b.id.desc())


def _check_page(offset: int, limit: int) -> None:
    if not (isinstance(offset, int) and offset >= 0):
        raise invalid("offset", "offset 必须为非负整数", "offset must be a non-negative integer")
    if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT):
        raise invalid("limit", f"limit 须为 1–{MAX_LIMIT}", f"limit must be 1-{MAX_LIMIT}")


def _line(row) -> dict:
    item = dict(row)
    for name in ("period_start", "period_end", "deducted_at"):
        item[name] = from_db_time(item[name])
    return item


@dataclass(frozen=True)
class BillDetailQuery:
    """Which L3 lines of one month ``bill_detail_page`` reads (BIL-1, BIL-3)."""

    month: str                              # YYYY-MM in business time
    period: str | None = None               # the caller's statistic period (None: the account's)
    product_codes: tuple[str, ...] = ()     # a line's product must equal each of these
    resource_id: str | None = None
    project_id: int | None = None
    cycles: tuple[str, ...] | None = None   # settlement cycles; None: any, (): none
    pay_mode: str | None = None             # "prepaid" finds none: L3 lines are postpaid
    offset: int = 0
    limit: int = 20


def bill_detail_page(conn: Connection, actor: Actor, uin: int, query: BillDetailQuery) -> dict:
    """A page of an account's L3 lines of one month on its statistic period (FINANCE,
    BIL-3), each with its billing item's name, unit and postpaid period, its
    product's and region's names and ``statistic_time`` (the time that puts it in
    the month), in that time's order, then id; the total count of the filtered
    lines; ``statistic_period`` (the month's: deduction time before the account's
    switch month) and ``switched_in``. A malformed or out-of-range month is invalid
    input on ``month``; a ``query.period`` other than the month's on ``period``."""
    require(actor, uin, FINANCE)
    chosen = _month_period(conn, uin, query.month)
    period = chosen.period
    if query.period is not None and query.period != period:
        zh, en = PERIOD_NAMES[period]
        raise invalid("period", f"统计周期须与账户的账单统计周期一致：{zh}",
                      f"the statistic period must be the account's: {en}")
    if query.pay_mode not in (None, "prepaid", "postpaid"):
        raise invalid("pay_mode", "pay_mode 只能为 prepaid 或 postpaid",
                      "pay_mode must be prepaid or postpaid")
    _check_page(query.offset, query.limit)
    b = bill_lines.c
    column = chosen.time.label("statistic_time")
    where = [b.uin == uin, *chosen.where]
    where += [b.product_code == code for code in query.product_codes]
    if query.resource_id is not None:
        where.append(b.resource_id == query.resource_id)
    if query.project_id is not None:
        where.append(b.project_id == query.project_id)
    if query.cycles is not None:
        where.append(b.cycle.in_(query.cycles))
    if query.pay_mode == "prepaid":
        where.append(b.id.is_(None))
    bi, pr, rg = billing_items.c, products.c, regions.c
    stmt = (select(bill_lines, bi.name_zh.label("item_name"), bi.unit_zh.label("unit"),
                   bi.postpaid_period, pr.name_zh.label("product_name"),
                   rg.name_zh.label("region_name"), column)
            .join(billing_items, and_(bi.product_code == b.product_code,
                                      bi.code == b.billing_item))
            .join(products, pr.code == b.product_code)
            .outerjoin(regions, rg.code == b.region)
            .where(*where).order_by(chosen.time, b.id).offset(query.offset).limit(query.limit))
    rows = conn.execute(stmt).mappings().all()
    total = conn.execute(select(func.count()).select_from(bill_lines).where(*where)).scalar_one()
    items = [_line(row) for row in rows]
    for item in items:
        item["statistic_time"] = from_db_time(item["statistic_time"])
    return {"total": total, "items": items, "statistic_period": period,
            "switched_in": chosen.switched_in}


def monthly_precision_difference(conn: Connection, actor: Actor, uin: int, month: str) -> dict:
    """SET-3: the month's billing precision difference (月度计费精度差异): the sum of
    the rounding of its lines (on the account's statistic period, BIL-3), 1e-8 yuan;
    positive = the customer paid more than the exact amount and may claim it back,
    negative = waived."""
    require(actor, uin, FINANCE)
    chosen = _month_period(conn, uin, month)
    b = bill_lines.c
    row = conn.execute(select(func.coalesce(func.sum(b.rounding_diff), 0),
                              func.coalesce(func.sum(b.discounted_amount), 0),
                              func.coalesce(func.sum(b.deducted), 0), func.count())
                       .where(b.uin == uin, *chosen.where)).one()
    diff = int(row[0])
    return {"uin": uin, "month": month, "statistic_period": chosen.period,
            "switched_in": chosen.switched_in, "difference": diff,
            "discounted_total": int(row[1]),
            "deducted_total": int(row[2]), "lines": int(row[3]),
            "meaning": rules.precision_meaning(diff)}


def month_cost(conn: Connection, actor: Actor, uin: int, month: str) -> dict:
    """A month's cost (the fen its L3 lines deducted, BIL-1) by business day and by
    product, on the account's statistic period (FINANCE, BIL-3): ``by_day`` has
    every day of the month in order, ``by_product`` the products with lines,
    largest first, each with its Chinese and English name (its code when the
    catalog has none). One pass over the month's lines, grouped by day and
    product, and the products' names."""
    require(actor, uin, FINANCE)
    chosen = _month_period(conn, uin, month)
    b, pr = bill_lines.c, products.c
    days = _business_days(*_month_bounds(month))
    day = case(*[(chosen.time < db_time(bound), n)
                 for n, bound in enumerate(days[1:])], else_=len(days) - 1).label("day")
    by_day, by_product = defaultdict(int), defaultdict(int)
    for n, code, deducted in conn.execute(
            select(day, b.product_code, func.sum(b.deducted))
            .where(b.uin == uin, *chosen.where).group_by(day, b.product_code)):
        by_day[n] += int(deducted)
        by_product[code] += int(deducted)
    names = {row.code: row for row in conn.execute(
        select(pr.code, pr.name_zh, pr.name_en).where(pr.code.in_(list(by_product))))}
    return {"month": month, "statistic_period": chosen.period,
            "switched_in": chosen.switched_in,
            "by_day": [{"day": business_date(when).isoformat(), "deducted": by_day[n]}
                       for n, when in enumerate(days)],
            "by_product": [{"product": code, "deducted": total,
                            "name_zh": names[code].name_zh if code in names else code,
                            "name_en": names[code].name_en if code in names else code}
                           for code, total in sorted(by_product.items(),
                                                     key=lambda item: (-item[1], item[0]))]}


def _business_days(start: datetime, end: datetime) -> list[datetime]:
    """The starts (UTC) of the business days from ``start`` until ``end``."""
    first, days = start.astimezone(BUSINESS_TZ), []
    while to_utc(first + timedelta(days=len(days))) < end:
        days.append(to_utc(first + timedelta(days=len(days))))
    return days


def earliest_usage(conn: Connection, clock: Clock) -> datetime | None:
    """Where settlement jobs begin: the earliest usage recorded (None: none yet)."""
    first = conn.execute(select(func.min(usage_records.c.usage_start))).scalar()
    return from_db_time(first) if first is not None else None


__all__ = ["CYCLES", "settle_period", "settle_late_usage", "statistic_period",
           "statistic_switch_month", "describe_statistic_period", "switch_statistic_period",
           "switch_statistic_period_for", "list_bill_lines",
           "BillDetailQuery", "bill_detail_page", "monthly_precision_difference",
           "earliest_usage"]
