"""The pure expiry rules (RNW-2, RNW-3, RNW-6), without a database."""

from datetime import date, datetime, timezone

import pytest

from feecenter.clock import BUSINESS_TZ
from feecenter.renewal import rules


def local(*parts) -> datetime:
    return datetime(*parts, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


@pytest.mark.spec("RNW-6")
def test_released_at_midnight_after_the_recovery_periods_last_day():
    stopped = local(2027, 1, 1, 15, 0)
    assert rules.release_at(stopped, 7) == local(2027, 1, 9)
    assert rules.release_at(local(2027, 1, 1, 0, 0), 7) == local(2027, 1, 9)
    assert rules.release_at(local(2027, 1, 1, 23, 59), 7) == local(2027, 1, 9)
    assert rules.release_at(stopped, 0) == local(2027, 1, 2)


@pytest.mark.spec("RNW-2", "RNW-6")
def test_stopped_at_expiry_or_after_the_retry_days():
    expiry = local(2027, 1, 1, 15, 0)
    assert rules.stop_at(expiry, False, 3) == expiry
    assert rules.stop_at(expiry, True, 0) == expiry
    assert rules.stop_at(expiry, True, 3) == local(2027, 1, 5)


@pytest.mark.spec("RNW-3")
def test_reminder_window_is_seven_days_before_to_six_after():
    expiry = local(2027, 1, 10, 9, 0)
    assert not rules.in_reminder_window(expiry, date(2027, 1, 2))
    assert rules.in_reminder_window(expiry, date(2027, 1, 3))
    assert rules.in_reminder_window(expiry, date(2027, 1, 16))
    assert not rules.in_reminder_window(expiry, date(2027, 1, 17))
