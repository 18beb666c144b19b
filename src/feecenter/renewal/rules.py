"""Pure rules of renewal and expiry (RNW-2, RNW-3, RNW-6): when an expired
prepaid resource is stopped, when it is released, and the reminder window.
Times are aware UTC in and out; days are business days (Asia/Shanghai).

- A resource without auto-renewal (or whose product retries 0 days) is stopped
  at its expiry time.
- With auto-renewal on, a renewal that fails on the expiry day is retried daily
  on the ``retry_days`` days after it; the resource keeps running meanwhile and
  is stopped at 00:00 of the day after the last retry. A renewal that succeeds
  late still counts from the original expiry, so those days are paid for.
- A stopped resource waits in the recycle bin ``recovery_days`` days: it is
  released at 00:00 of the day after the day on which that many days from
  the stop have passed (stopped 1 January 15:00, 7 days → the last day is
  8 January, released 9 January 00:00). Never before: at least the full
  recovery period.
- Reminders run from 7 days before the expiry day to 6 days after it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from feecenter.clock import BUSINESS_TZ, business_date

EXPIRED = "expired"  # the reason of a recycle-bin stop (resource_stops.reason)
REMIND_BEFORE_DAYS = 7
REMIND_AFTER_DAYS = 6


def start_of_day(day: date) -> datetime:
    """00:00 of a business day, aware UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


def stop_at(expiry: datetime, auto_renew: bool, retry_days: int) -> datetime:
    """When a resource that was not renewed is stopped."""
    if not auto_renew or retry_days <= 0:
        return expiry
    return start_of_day(business_date(expiry) + timedelta(days=retry_days + 1))


def release_at(stopped_at: datetime, recovery_days: int) -> datetime:
    """When a resource stopped at ``stopped_at`` leaves the recycle bin, released."""
    last_day = business_date(stopped_at + timedelta(days=recovery_days))
    return start_of_day(last_day + timedelta(days=1))


def in_reminder_window(expiry: datetime, day: date) -> bool:
    """Is ``day`` within the reminders of a resource expiring at ``expiry`` (RNW-3)?"""
    offset = (day - business_date(expiry)).days
    return -REMIND_BEFORE_DAYS <= offset <= REMIND_AFTER_DAYS
