"""The bill check of ``feecenter reconcile`` (BIL-1, BIL-2): for every account and
month the roll-ups hold, L0 = Σ L1 (each dimension, and each tag key found on
the month's resources) = Σ L2 = Σ L3, on deducted fen, discounted cost and line
count. L3 is recomputed from the lines (settlement's and orders' tables) of the
refreshed days only: lines deducted since the last refresh are not yet in
L0–L2 (T+1) and are no difference. Read-only."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from sqlalchemy import Connection, func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.bills import service
from feecenter.bills.lines import day_aggregates
from feecenter.bills.tables import bill_rollup_days, bill_rollups
from feecenter.settlement.rules import statistic_month

CHECKED = ("deducted", "discounted_cost", "lines")


@dataclass(frozen=True)
class BillDifference:
    kind: str  # bill_level_mismatch
    subject: str  # "uin:… month:… L1:product deducted"
    expected: int  # L0
    actual: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_bills(conn: Connection, uin: int | Iterable[int] | None = None) -> list[BillDifference]:
    """Every level difference, or only those of one account or several."""
    uins = None if uin is None else ({uin} if isinstance(uin, int) else set(uin))
    switched = {}

    def month_of(account: int, deducted_month: str, usage_month: str) -> str:
        if account not in switched:
            switched[account] = service.usage_time_switch_month(conn, account)
        return statistic_month(deducted_month, usage_month, switched[account])

    lines = _l3_totals(conn, uins, month_of)
    found = []
    for (account, month), l3 in sorted(lines.items()):
        found += _check_account_month(conn, account, month, l3)
    return found


def _l3_totals(conn: Connection, uins: set[int] | None, month_of) -> dict:
    """(uin, month) -> sums of the refreshed days' L3 lines, and an empty total for
    every (uin, month) the roll-ups hold (a roll-up row without lines is caught)."""
    totals = defaultdict(lambda: dict.fromkeys(CHECKED, 0))
    r = bill_rollups.c
    held = select(r.uin, r.deducted_month, r.usage_month).distinct()
    if uins is not None:
        held = held.where(r.uin.in_(sorted(uins)))
    for account, deducted_month, usage_month in conn.execute(held):
        totals[(account, month_of(account, deducted_month, usage_month))]
    for day in conn.execute(select(bill_rollup_days.c.day)).scalars():
        day = service.as_date(day)
        rows = day_aggregates(conn, day).subquery()
        stmt = (select(rows.c.uin, rows.c.usage_month,
                       *[func.sum(rows.c[name]).label(name) for name in CHECKED])
                .group_by(rows.c.uin, rows.c.usage_month))
        if uins is not None:
            stmt = stmt.where(rows.c.uin.in_(sorted(uins)))
        for row in conn.execute(stmt).mappings():
            key = (row["uin"], month_of(row["uin"], day.strftime("%Y-%m"), row["usage_month"]))
            for name in CHECKED:
                totals[key][name] += int(row[name])
    return totals


def _check_account_month(conn: Connection, uin: int, month: str, l3: dict
                         ) -> list[BillDifference]:
    l0 = service.overview(conn, SYSTEM, uin, month)["total"]
    levels = {f"L1:{by}": service.summary(conn, SYSTEM, uin, month, by)
              for by in service.DIMENSIONS}
    for key in service.tag_keys(conn, uin, month):
        levels[f"L1:tag:{key}"] = service.summary(conn, SYSTEM, uin, month, "tag", key)
    levels["L2"] = service.resource_bills(conn, SYSTEM, uin, month)
    sums = {level: {name: sum(group[name] for group in groups) for name in CHECKED}
            for level, groups in levels.items()}
    sums["L3"] = l3
    return [BillDifference("bill_level_mismatch", f"uin:{uin} month:{month} {level} {name}",
                           l0[name], total[name])
            for level, total in sums.items() for name in CHECKED if total[name] != l0[name]]
