"""Period arithmetic in business time (Asia/Shanghai). Pure: no database, no clock.

A *period* is a half-open interval ``[start, end)`` of one cadence:

- hourly: one business hour, key ``"2026-01-31T23"``;
- daily: one business day, key ``"2026-01-31"``;
- monthly: one calendar month, key ``"2026-01"``.

``start`` and ``end`` are aware UTC datetimes; the boundaries are business-time
midnights and hours, and keys are written in business time, so they are stable
strings that never depend on the server's zone. A period is *due* once it has
ended plus an optional lag (SET-4): hourly settles after each hour, daily after
each day, monthly on the 1st of the next month. At 2026-02-01 00:00 in
Shanghai, January's last hour (``2026-01-31T23``), its last day
(``2026-01-31``) and the whole month (``2026-01``) are all due.

Every loop here is bounded (TigerBeetle style): listing due periods stops at
``limit`` and says so (``DuePeriods.capped``); the caller continues from the
next period on its next call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone

from feecenter.clock import BUSINESS_TZ, to_utc

HOURLY = "hourly"
DAILY = "daily"
MONTHLY = "monthly"
CADENCES = (HOURLY, DAILY, MONTHLY)

MAX_PERIODS_PER_CALL = 10_000  # > a year of hours; a caller that hits it calls again
_HOUR = timedelta(hours=1)

_KEY_PATTERNS = {
    HOURLY: re.compile(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2})$", re.ASCII),
    DAILY: re.compile(r"^(\d{4})-(\d{2})-(\d{2})$", re.ASCII),
    MONTHLY: re.compile(r"^(\d{4})-(\d{2})$", re.ASCII),
}


@dataclass(frozen=True)
class Period:
    """One period of one cadence: ``[start, end)`` in aware UTC, keyed in business time."""

    cadence: str
    key: str
    start: datetime
    end: datetime

    def due_at(self, lag: timedelta = timedelta(0)) -> datetime:
        return self.end + lag

    def is_due(self, now: datetime, lag: timedelta = timedelta(0)) -> bool:
        return to_utc(now) >= self.due_at(lag)

    def next(self) -> Period:
        return period_containing(self.cadence, self.end)

    def previous(self) -> Period:
        return period_containing(self.cadence, self.start - timedelta(microseconds=1))

    def to_dict(self) -> dict:
        return {"cadence": self.cadence, "key": self.key, "start": self.start.isoformat(),
                "end": self.end.isoformat()}


@dataclass(frozen=True)
class DuePeriods:
    periods: list[Period]
    capped: bool  # True: the limit stopped the list; more periods are due after the last one


def check_cadence(cadence: str) -> str:
    if cadence not in CADENCES:
        raise ValueError(f"unknown cadence {cadence!r}; expected one of {CADENCES}")
    return cadence


def _local_midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


def _first_of_next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def monthly_settlement_day(when: datetime, day: int) -> datetime:
    """FRZ-5: 00:00 (business time, as aware UTC) on ``day`` (1-28) of the month after
    the business month of ``when``: when that month's monthly freezes are settled."""
    if not 1 <= day <= 28:
        raise ValueError(f"a monthly settlement day is 1-28, not {day!r}")
    local = to_utc(when).astimezone(BUSINESS_TZ).date()
    return _local_midnight(_first_of_next_month(local).replace(day=day))


def period_containing(cadence: str, when: datetime) -> Period:
    """The period of ``cadence`` that contains the instant ``when`` (aware)."""
    check_cadence(cadence)
    local = to_utc(when).astimezone(BUSINESS_TZ)
    if cadence == HOURLY:
        start_local = local.replace(minute=0, second=0, microsecond=0)
        start = start_local.astimezone(timezone.utc)
        # Hours are absolute; Asia/Shanghai has had no DST since 1991, and a
        # local-hour key is unambiguous in it.
        return Period(HOURLY, start_local.strftime("%Y-%m-%dT%H"), start, start + _HOUR)
    if cadence == DAILY:
        day = local.date()
        return Period(DAILY, day.isoformat(), _local_midnight(day),
                      _local_midnight(day + timedelta(days=1)))
    first = local.date().replace(day=1)
    return Period(MONTHLY, first.strftime("%Y-%m"), _local_midnight(first),
                  _local_midnight(_first_of_next_month(first)))


def period_from_key(cadence: str, key: str) -> Period:
    """Parse a period key back; refuses anything that is not the canonical key."""
    match = _KEY_PATTERNS[check_cadence(cadence)].match(key or "")
    if not match:
        raise ValueError(f"malformed {cadence} period key {key!r}")
    parts = [int(p) for p in match.groups()]
    try:
        if cadence == HOURLY:
            local = datetime(parts[0], parts[1], parts[2], parts[3], tzinfo=BUSINESS_TZ)
        elif cadence == DAILY:
            local = datetime(parts[0], parts[1], parts[2], tzinfo=BUSINESS_TZ)
        else:
            local = datetime(parts[0], parts[1], 1, tzinfo=BUSINESS_TZ)
    except ValueError as exc:
        raise ValueError(f"malformed {cadence} period key {key!r}: {exc}") from None
    period = period_containing(cadence, local)
    assert period.key == key, (period.key, key)
    return period


def due_periods(cadence: str, first_start: datetime, now: datetime, *,
                lag: timedelta = timedelta(0), limit: int = MAX_PERIODS_PER_CALL) -> DuePeriods:
    """The periods from the one containing ``first_start`` on that are due at ``now``
    (ended, plus ``lag``), oldest first, at most ``limit`` of them."""
    if lag < timedelta(0):
        raise ValueError("lag must not be negative")
    if not 1 <= limit <= MAX_PERIODS_PER_CALL:
        raise ValueError(f"limit must be 1..{MAX_PERIODS_PER_CALL}")
    now = to_utc(now)
    period = period_containing(cadence, first_start)
    found: list[Period] = []
    while period.is_due(now, lag):
        if len(found) == limit:
            return DuePeriods(found, capped=True)
        found.append(period)
        period = period.next()
    return DuePeriods(found, capped=False)


def periods_between(cadence: str, start: datetime, end: datetime, *,
                    limit: int = MAX_PERIODS_PER_CALL) -> DuePeriods:
    """The periods that lie wholly inside ``[start, end)`` — e.g. the hours of a day."""
    first = period_containing(cadence, start)
    if first.start < to_utc(start):
        first = first.next()
    listed = due_periods(cadence, first.start, end, limit=limit)
    return listed


def hour_boundaries(after: datetime, until: datetime, *, limit: int) -> list[datetime]:
    """Business-hour boundaries ``b`` with ``after < b <= until`` (aware UTC), at most
    ``limit`` — more is a ValueError, the caller asked for too long a walk."""
    after, until = to_utc(after), to_utc(until)
    boundary = period_containing(HOURLY, after).end
    found: list[datetime] = []
    while boundary <= until:
        if len(found) == limit:
            raise ValueError(f"more than {limit} hour boundaries between {after} and {until}")
        found.append(boundary)
        boundary += _HOUR
    return found
