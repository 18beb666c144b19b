"""BIL-3, the statistic period: owns ``statistic_period_switches``, the one-way
switch of an account from the deduction-time period (the default) to the
usage-time period, and the SQL conditions that put a bill line in a month on
an account's period (the rule itself is ``rules.statistic_month``).

A switch is one row per account, inserted once and never updated or deleted:
a second switch, or a switch back, is refused. It takes effect in the business
month it is made (``switched_in``), for a customer (FINANCE, with explicit
acknowledgement of the rules shown: ``ACKNOWLEDGEMENT_VERSION``) and for an
operator switching on the customer's request alike: an operator's switch made
before the month ends takes effect that month, so always before the next
calendar month. Concurrent switches insert-if-absent on the account's unique
key: one row, the others are refused. docs/bills.md, "Statistic period".
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, and_, case, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require, require_operator
from feecenter.audit.service import record_audit
from feecenter.clock import BUSINESS_TZ, Clock, db_time, from_db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid
from feecenter.inputs import plain_text
from feecenter.settlement.tables import bill_lines, statistic_period_switches

DEDUCTION_TIME, USAGE_TIME = "deduction_time", "usage_time"
PERIOD_NAMES = {DEDUCTION_TIME: ("按扣费时间", "deduction time"),
                USAGE_TIME: ("按使用时间", "usage time")}

# The rules a customer acknowledges before switching; a new text gets a new version.
ACKNOWLEDGEMENT_VERSION = "BIL-3.1"
ACKNOWLEDGEMENT_ZH = (
    "账单统计周期将从“按扣费时间”切换为“按使用时间”，自本月起生效：本月承接差异——"
    "上月用量在本月扣费的费用与本月用量在下月扣费的费用都计入本月账单；本月之前各月"
    "账单保持不变；之后各月按使用时间统计。切换只能进行一次，且不可撤销。")
ACKNOWLEDGEMENT_EN = (
    "The bills' statistic period switches from deduction time to usage time, effective "
    "this month, which absorbs the difference: last month's usage deducted this month and "
    "this month's usage deducted next month both count in this month's bill; earlier "
    "months stay as they were; later months count by usage time. The switch is made once "
    "and can never be undone.")
MAX_NOTE = 500


def switch_month(conn: Connection, uin: int) -> str | None:
    """The business month (YYYY-MM) the account switched to usage time; None: it is on
    deduction time."""
    s = statistic_period_switches.c
    return conn.execute(select(s.switched_in).where(s.uin == uin)).scalar()


def period_of_month(switched_in: str | None, month: str) -> str:
    """The period a month's bill is counted on: deduction time before the switch month."""
    return DEDUCTION_TIME if switched_in is None or month < switched_in else USAGE_TIME


def current_period(switched_in: str | None) -> str:
    """The account's period from now on: usage time once it has switched."""
    return USAGE_TIME if switched_in is not None else DEDUCTION_TIME


def month_start(month: str) -> datetime:
    """The start of a YYYY-MM business month (already checked), aware."""
    return datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=BUSINESS_TZ)


def in_month(switched_in: str | None, month: str, start: datetime, end: datetime) -> list:
    """SQL conditions putting a bill line in ``month`` ([start, end) in UTC) for an
    account switched in ``switched_in`` (None: never), ``rules.statistic_month`` as SQL
    on the line's deduction month D and usage month U (of ``period_start``):
    before the switch month, D == month; the switch month, D >= it and U <= it;
    after it, D >= the switch month and U == month."""
    b = bill_lines.c
    if period_of_month(switched_in, month) == DEDUCTION_TIME:
        return [b.deducted_at >= db_time(start), b.deducted_at < db_time(end)]
    switched = db_time(month_start(switched_in))
    if month == switched_in:
        return [b.deducted_at >= switched, b.period_start < db_time(end)]
    return [b.deducted_at >= switched, b.period_start >= db_time(start),
            b.period_start < db_time(end)]


def statistic_time(switched_in: str | None, month: str, start: datetime, end: datetime):
    """SQL: the time that puts a line of ``month`` in it — its deduction time on the
    deduction-time period; on usage time its usage start, or for earlier usage its
    deduction time when in the month (the switch month's overlap), else the month's
    start (late usage from before the switch, counted in the switch month)."""
    b = bill_lines.c
    if period_of_month(switched_in, month) == DEDUCTION_TIME:
        return b.deducted_at
    return case((b.period_start >= db_time(start), b.period_start),
                (and_(b.deducted_at >= db_time(start), b.deducted_at < db_time(end)),
                 b.deducted_at), else_=db_time(start))


def describe(conn: Connection, actor: Actor, uin: int) -> dict:
    """The account's period, its switch if any, and the rules a switch acknowledges
    (FINANCE)."""
    require(actor, uin, FINANCE)
    s = statistic_period_switches.c
    row = conn.execute(select(statistic_period_switches).where(s.uin == uin)).mappings().first()
    out = {"uin": uin, "statistic_period": current_period(row and row["switched_in"]),
           "switched_in": None, "switched_at": None, "requested_by": None,
           "acknowledgement": {"version": ACKNOWLEDGEMENT_VERSION, "text_zh": ACKNOWLEDGEMENT_ZH,
                               "text_en": ACKNOWLEDGEMENT_EN}}
    if row:
        out.update(switched_in=row["switched_in"], switched_at=from_db_time(row["switched_at"]),
                   requested_by=row["requested_by"])
    return out


def switch_by_customer(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                       period: object, acknowledged: object,
                       acknowledgement_version: object) -> dict:
    """The customer's switch to usage time (FINANCE), effective this business month:
    only with ``acknowledged`` true for the rules of the version shown."""
    require(actor, uin, FINANCE)
    _check_target(period)
    if acknowledged is not True:
        raise invalid("acknowledged", "切换统计周期须明确确认已阅读并同意切换规则",
                      "switching the statistic period needs explicit acknowledgement of its "
                      "rules (acknowledged: true)")
    if acknowledgement_version != ACKNOWLEDGEMENT_VERSION:
        raise invalid("acknowledgement_version",
                      f"确认的规则版本须为当前版本 {ACKNOWLEDGEMENT_VERSION}，请重新阅读规则",
                      f"the acknowledged rules must be the current version "
                      f"{ACKNOWLEDGEMENT_VERSION}; read them again")
    return _switch(conn, clock, actor, uin, "customer", None)


def switch_by_operator(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                       period: object, request_note: object) -> dict:
    """An operator's switch on the customer's request (``request_note``: the request,
    e.g. its ticket), effective this business month — before the next calendar month."""
    require_operator(actor)
    _check_target(period)
    note = plain_text(request_note, "request_note", MAX_NOTE).strip()
    if not note:
        raise invalid("request_note", "请填写客户的切换申请（如工单号）",
                      "give the customer's request (e.g. its ticket)")
    return _switch(conn, clock, actor, uin, "operator", note)


def _check_target(period: object) -> None:
    if period != USAGE_TIME:
        raise invalid("period", "统计周期只能从按扣费时间切换为按使用时间，切换后不可撤销",
                      "the statistic period switches one way only, from deduction_time to "
                      "usage_time, and can never be undone")


def _switch(conn: Connection, clock: Clock, actor: Actor, uin: int, requested_by: str,
            note: str | None) -> dict:
    """Insert the account's one switch row if absent; the row count decides: a switch
    already made (or made concurrently) is refused. Audited with the switch."""
    _check_account(conn, uin)
    now = clock.now()
    month = now.astimezone(BUSINESS_TZ).strftime("%Y-%m")
    s = statistic_period_switches.c
    inserted = conn.execute(insert_if_absent(conn, statistic_period_switches, ["uin"]).values(
        uin=uin, switched_in=month, switched_at=db_time(now), requested_by=requested_by,
        actor=actor.label, acknowledgement_version=ACKNOWLEDGEMENT_VERSION,
        request_note=note).returning(s.id)).first()
    if inserted is None:
        before = switch_month(conn, uin)
        raise Conflict(f"账单统计周期已于 {before} 切换为按使用时间，不可再次切换或撤销",
                       f"the statistic period was switched to usage time in {before}; it "
                       "cannot be switched again or undone", field="period", switched_in=before)
    record_audit(conn, clock, actor, "switch_statistic_period", uin,
                 {"switched_in": month, "requested_by": requested_by,
                  "acknowledgement_version": ACKNOWLEDGEMENT_VERSION, "request_note": note})
    return {"uin": uin, "statistic_period": USAGE_TIME, "switched_in": month,
            "switched_at": now, "requested_by": requested_by}


def _check_account(conn: Connection, uin: int) -> None:
    accounts.get_account(conn, SYSTEM, uin)  # not found: refused on uin
