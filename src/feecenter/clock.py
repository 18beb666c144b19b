"""Time: the injectable clock and the business time zone.

No domain code reads the wall clock: services take a ``Clock``. Stored
timestamps are naive UTC (the same on SQLite and PostgreSQL); business dates
are Asia/Shanghai.
"""

from __future__ import annotations

import re
import threading
from datetime import date, datetime, timedelta, timezone
from typing import Protocol
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
# Years a business time may name: from the epoch, with room left for a month's
# arithmetic before datetime's year 9999 ends
BUSINESS_YEARS = range(1970, 9999)
_BUSINESS_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?")


class Clock(Protocol):
    def now(self) -> datetime:
        """Current instant, timezone-aware UTC."""


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


class FixedClock:
    """A clock the tests, demo and simulator move by hand. Thread-safe."""

    def __init__(self, start: datetime):
        self._now = to_utc(start)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> None:
        with self._lock:
            self._now = to_utc(when)

    def advance(self, **delta) -> datetime:
        with self._lock:
            self._now += timedelta(**delta)
            return self._now


def to_utc(when: datetime) -> datetime:
    if when.tzinfo is None:
        raise ValueError("naive datetime: say which time zone it is in")
    return when.astimezone(timezone.utc)


def db_time(when: datetime) -> datetime:
    """Aware datetime -> naive UTC for storage."""
    if when.tzinfo is timezone.utc:  # the clocks' own: no conversion
        return when.replace(tzinfo=None)
    return to_utc(when).replace(tzinfo=None)


def from_db_time(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc)


def business_date(when: datetime) -> date:
    return to_utc(when).astimezone(BUSINESS_TZ).date()


def business_time_text(value: datetime) -> str:
    """Stored naive-UTC or aware datetime -> "YYYY-MM-DD HH:MM:SS" in Asia/Shanghai."""
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return aware.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M:%S")


def parse_business_time(text: str, field: str) -> datetime:
    """Parse "YYYY-MM-DD HH:MM:SS" (or a date) given in Asia/Shanghai; aware UTC out.
    ASCII digits only (strptime takes "２０２６" for 2026), years in BUSINESS_YEARS."""
    from feecenter.errors import invalid

    stripped = text.strip() if isinstance(text, str) else ""
    if _BUSINESS_TIME.fullmatch(stripped):
        fmt = "%Y-%m-%d %H:%M:%S" if " " in stripped else "%Y-%m-%d"
        try:
            local = datetime.strptime(stripped, fmt)
        except ValueError:  # 2026-02-30, 25:00:00
            local = None
        if local is not None and local.year in BUSINESS_YEARS:
            return local.replace(tzinfo=BUSINESS_TZ).astimezone(timezone.utc)
    raise invalid(field, f"时间格式错误：{text!r}，应为 YYYY-MM-DD HH:MM:SS",
                  f"malformed time {text!r}, expected YYYY-MM-DD HH:MM:SS")


def add_months(when: datetime, months: int) -> datetime:
    """Calendar months in business time; a day past the month's end is clamped
    (31 January + 1 month = 28/29 February). Aware UTC in and out."""
    import calendar

    local = to_utc(when).astimezone(BUSINESS_TZ)
    month_index = local.month - 1 + months
    year, month = local.year + month_index // 12, month_index % 12 + 1
    day = min(local.day, calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(timezone.utc)
