"""Balance warning use cases (XTR-2): the owner's settings, the current estimate, and
the daily notices.

- ``account_settings`` / ``update_settings``: the days threshold (1-30, or off;
  default 5) and the warning amount (fen, or none). Reading them with the
  estimate needs the finance permission (it states the balance, ACC-2);
  changing them is the owner's (``require_owner``), checked here.
- ``estimate``: the available balance (BAL-2, ``funds.available_many``), the
  postpaid spending of the last 24 hours and the days it lasts
  (``rules.days_left``).
- ``warn``: once a business day, for every account with postpaid spending in the
  24 hours before ``end`` or a warning amount set, decide (``rules.decide``) and
  send one ``balance_warning`` notice per account and day, keyed
  ``balance_warning:{uin}:{day}``: a rerun, or a run after a crash (each batch of
  accounts commits on its own), sends nothing twice.

Postpaid spending: what settlement's L3 lines deducted (``bill_lines.deducted``
less what postpaid coupons paid, ``voucher_paid``) with ``deducted_at`` in the
window, hourly and daily cycles only: a monthly cycle's line is a whole month
deducted on one day, no estimate of a day's spending (docs/balance-warning.md).
Corrections down (negative lines) count against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select, update

from feecenter.accounts.permissions import FINANCE, Actor, require, require_owner
from feecenter.accounts.tables import customers
from feecenter.audit.service import record_audit
from feecenter.balance_warnings import rules
from feecenter.balance_warnings.tables import balance_warning_settings as _T
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import invalid, not_found
from feecenter.funds import service as funds
from feecenter.money import MAX_AMOUNT_FEN, format_yuan
from feecenter.notifications import service as notifications
from feecenter.notifications.service import Notice
from feecenter.settlement.tables import bill_lines

TEMPLATE = "balance_warning"
WINDOW = timedelta(hours=24)
CYCLES = ("hour", "day")  # a monthly line is a month's spending on one day: left out
ACCOUNTS_PER_BATCH = 500  # one transaction, one notify_many
KEEP = object()  # ``update_settings``: leave this setting as it is
_B = bill_lines.c


@dataclass(frozen=True)
class WarningSettings:
    days: int | None = rules.DEFAULT_DAYS  # None: the days warning is off
    amount: int | None = None  # fen; None: no amount warning

    def to_dict(self) -> dict:
        return {"days": self.days, "amount": self.amount}


def _settings_many(conn: Connection, uins: list[int]) -> dict[int, WarningSettings]:
    rows = conn.execute(select(_T).where(_T.c.uin.in_(uins))) if uins else []
    return {r.uin: WarningSettings(r.days if r.days_on else None, r.amount) for r in rows}


def settings_of(conn: Connection, uin: int) -> WarningSettings:
    return _settings_many(conn, [uin]).get(uin, WarningSettings())


def _check_days(days: object) -> int | None:
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)
                             or not rules.MIN_DAYS <= days <= rules.MAX_DAYS):
        raise invalid("days", f"预警天数须为 {rules.MIN_DAYS}–{rules.MAX_DAYS} 的整数，或留空（关闭）",
                      f"days must be a whole number {rules.MIN_DAYS}-{rules.MAX_DAYS}, "
                      "or empty (null) to turn it off")
    return days


def _check_amount(amount: object) -> int | None:
    if amount is not None and (not isinstance(amount, int) or isinstance(amount, bool)
                               or not 0 < amount <= MAX_AMOUNT_FEN):
        raise invalid("amount", "预警金额须大于 0 元且不超过上限，或留空（不设置）",
                      "the warning amount must be above 0 yuan and within the limit, or empty "
                      "(null) for none")
    return amount


def update_settings(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                    days: object = KEEP, amount: object = KEEP) -> WarningSettings:
    """The owner sets the days threshold (1-30; None: off) and/or the warning amount
    (fen; None: none); ``KEEP`` leaves one as it is. Bad input: ``InvalidInput``
    naming the field, nothing written."""
    require_owner(actor, uin)
    if uin not in funds.available_many(conn, [uin]):
        raise not_found("uin", "账号", "account", uin)
    current = settings_of(conn, uin)
    new = WarningSettings(current.days if days is KEEP else _check_days(days),
                          current.amount if amount is KEEP else _check_amount(amount))
    row = {"days_on": new.days is not None, "days": new.days or rules.DEFAULT_DAYS,
           "amount": new.amount, "updated_at": db_time(clock.now())}
    conn.execute(insert_if_absent(conn, _T, ["uin"]).values(uin=uin, **row))
    conn.execute(update(_T).where(_T.c.uin == uin).values(**row))
    record_audit(conn, clock, actor, "set_balance_warning", uin, new.to_dict())
    return new


def spent_many(conn: Connection, uins: list[int] | None, end: datetime) -> dict[int, int]:
    """uin -> postpaid spending (fen) deducted in the 24 hours before ``end``; ``uins``
    None: every account with lines then (those whose sum is not above 0 left out)."""
    where = [_B.deducted_at >= db_time(end - WINDOW), _B.deducted_at < db_time(end),
             _B.cycle.in_(CYCLES)]
    if uins is not None:
        if not uins:
            return {}
        where.append(_B.uin.in_(uins))
    total = func.sum(_B.deducted - _B.voucher_paid)
    return {uin: int(spent) for uin, spent in conn.execute(
        select(_B.uin, total).where(*where).group_by(_B.uin).having(total > 0))}


def estimate(conn: Connection, clock: Clock, actor: Actor, uin: int) -> dict:
    """The settings and what they give now (fen): the available balance, the last 24
    hours' postpaid spending, the days it lasts (None: no spending, no estimate) and
    which warnings hold."""
    require(actor, uin, FINANCE)
    available = funds.balance_view(conn, clock, actor, uin).available
    spent = spent_many(conn, [uin], clock.now()).get(uin, 0)
    found = settings_of(conn, uin)
    decided = rules.decide(available, spent, days=found.days, amount=found.amount)
    return {**found.to_dict(), "available": available, "spent_24h": spent,
            "days_left": decided.days_left, "by_days": decided.by_days,
            "by_amount": decided.by_amount}


# ---------------------------------------------------------------- the daily notices

def key(uin: int, day: date) -> str:
    return f"balance_warning:{uin}:{day.isoformat()}"


def warn(engine: Engine, clock: Clock, day: date, end: datetime) -> dict:
    """Send business day ``day``'s warnings, spending counted over the 24 hours before
    ``end``. Idempotent. Returns counts: accounts checked, warned (a rerun counts
    them again but sends nothing), by days, by amount."""
    with transaction(engine) as conn:
        spent = spent_many(conn, None, end)
        with_amount = set(conn.execute(select(_T.c.uin).where(_T.c.amount.is_not(None)))
                          .scalars())
        cancelled = set(conn.execute(select(customers.c.uin).where(
            customers.c.status == "cancelled")).scalars())
    uins = sorted((set(spent) | with_amount) - cancelled)  # ACC-5: a cancelled one, never
    counts = {"accounts": len(uins), "warned": 0, "by_days": 0, "by_amount": 0}
    for start in range(0, len(uins), ACCOUNTS_PER_BATCH):
        with transaction(engine) as conn:
            batch = warn_accounts(conn, clock, day, uins[start:start + ACCOUNTS_PER_BATCH],
                                  spent)
        for name, value in batch.items():
            counts[name] += value
    return counts


def warn_accounts(conn: Connection, clock: Clock, day: date, uins: list[int],
                  spent: dict[int, int]) -> dict:
    """The warnings of ``day`` for some accounts, in the caller's transaction."""
    available = funds.available_many(conn, uins)
    found = _settings_many(conn, uins)
    counts = {"warned": 0, "by_days": 0, "by_amount": 0}
    notices = []
    for uin in uins:
        if uin not in available:
            continue
        mine = found.get(uin, WarningSettings())
        decided = rules.decide(available[uin], spent.get(uin, 0), days=mine.days,
                               amount=mine.amount)
        if not decided.warn:
            continue
        counts["warned"] += 1
        counts["by_days"] += decided.by_days
        counts["by_amount"] += decided.by_amount
        notices.append(Notice(uin, TEMPLATE, notice_params(
            day, available[uin], spent.get(uin, 0), decided, mine), key(uin, day)))
    notifications.notify_many(conn, clock, notices)
    return counts


DASH = "—"  # not set / no estimate


def notice_params(day: date, available: int, spent: int, decided: rules.Verdict,
                  mine: WarningSettings) -> dict:
    return {"day": day.isoformat(), "available": format_yuan(available),
            "spent": format_yuan(spent),
            "days": DASH if decided.days_left is None else decided.days_left,
            "threshold_days": DASH if mine.days is None else mine.days,
            "threshold": DASH if mine.amount is None else format_yuan(mine.amount)}
