"""The unified expiry date's rule (RNW-5): where a renewal aligned to the
account's unified day ends, and which extra days it adds, month by month.
Used by ``orders.create_renewal`` (every renewal, manual or automatic); owns no
table (the day is ``renewal.settings``'). docs/renewal.md, "Unified expiry date".

- The term is counted as without a unified day: ``add_months(start, months)``
  from the current expiry (RNW-6), the *term end*.
- The aligned end is the first unified day on or after the term end's business
  date (Asia/Shanghai), at the term end's time of day. Alignment only extends:
  the customer always gets at least the term paid for, never a credit.
- The extra days (0 to 30) are whole days; each is priced at the monthly price
  / the days of the calendar month it falls in (``orders.rules.prorated_days``).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import Connection

from feecenter.clock import BUSINESS_TZ, add_months, to_utc
from feecenter.renewal.settings import account_renewal


@dataclass(frozen=True)
class Alignment:
    day: int  # the unified day aligned to
    term_end: datetime  # start + months, aware UTC
    end: datetime  # the aligned end, aware UTC
    days_by_month: tuple[tuple[int, int], ...]  # (extra days in a month, days of that month)

    @property
    def extra_days(self) -> int:
        return sum(days for days, _ in self.days_by_month)


def aligned_end(term_end: datetime, day: int) -> datetime:
    """The first ``day`` of a month on or after ``term_end``'s business date, at its
    time of day (aware UTC)."""
    local = to_utc(term_end).astimezone(BUSINESS_TZ)
    if local.day > day:
        year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
        local = local.replace(year=year, month=month, day=day)
    else:
        local = local.replace(day=day)
    return local.astimezone(timezone.utc)


def days_by_month(term_end: datetime, end: datetime) -> tuple[tuple[int, int], ...]:
    """The whole days from ``term_end`` to ``end`` grouped by the calendar month
    (business time) each begins in: (days, days of that month), in order."""
    first = to_utc(term_end).astimezone(BUSINESS_TZ).date()
    count = (to_utc(end).astimezone(BUSINESS_TZ).date() - first).days
    groups: dict[tuple[int, int], int] = {}
    for offset in range(count):
        day = first + timedelta(days=offset)
        groups[(day.year, day.month)] = groups.get((day.year, day.month), 0) + 1
    return tuple((days, calendar.monthrange(year, month)[1])
                 for (year, month), days in groups.items())


def align(start: datetime, months: int, day: int) -> Alignment:
    term_end = add_months(start, months)
    end = aligned_end(term_end, day)
    return Alignment(day, term_end, end, days_by_month(term_end, end))


def renewal_alignment(conn: Connection, uin: int, start: datetime, months: int
                      ) -> Alignment | None:
    """The alignment of a renewal from ``start`` for ``months``, under the account's
    unified day as it is now (a changed day applies from the next renewal); None
    without one."""
    day = account_renewal(conn, uin).unified_day
    return None if day is None else align(start, months, day)
