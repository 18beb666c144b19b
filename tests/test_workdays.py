"""feecenter.workdays: the mainland China calendar, make-up working days (调休) included."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from feecenter.workdays import add_working_days, is_working_day


# 2025 National Day + Mid-Autumn: off 1-8 October, make-up working days
# Sunday 28 September and Saturday 11 October.
NATIONAL_DAY_2025 = [date(2025, 10, d) for d in range(1, 9)]


def test_make_up_working_days_on_weekends_are_working_days():
    assert date(2025, 9, 28).weekday() == 6  # a Sunday
    assert is_working_day(date(2025, 9, 28))
    assert date(2025, 10, 11).weekday() == 5  # a Saturday
    assert is_working_day(date(2025, 10, 11))
    assert is_working_day(date(2026, 2, 14))  # Saturday before the 2026 Spring Festival


@pytest.mark.parametrize("day", NATIONAL_DAY_2025)
def test_public_holidays_are_not_working_days(day):
    assert not is_working_day(day)


def test_ordinary_weeks():
    assert is_working_day(date(2025, 9, 26))  # Friday
    assert not is_working_day(date(2025, 9, 27))  # plain Saturday
    assert not is_working_day(date(2025, 10, 12))  # plain Sunday after the make-up Saturday
    assert is_working_day(date(2025, 10, 9))  # Thursday after the holiday


def test_add_working_days_skips_holidays():
    # Tuesday 30 September + 1 working day: the whole holiday is skipped.
    assert add_working_days(date(2025, 9, 30), 1) == date(2025, 10, 9)
    # Thursday 9, Friday 10, Saturday 11 (make-up) are the 1st, 2nd and 3rd.
    assert add_working_days(date(2025, 9, 30), 3) == date(2025, 10, 11)
    assert add_working_days(date(2025, 9, 30), 4) == date(2025, 10, 13)


def test_add_working_days_counts_a_make_up_sunday():
    # Friday 26 September + 1 is Sunday 28 (make-up), not Monday 29.
    assert add_working_days(date(2025, 9, 26), 1) == date(2025, 9, 28)
    assert add_working_days(date(2025, 9, 26), 2) == date(2025, 9, 29)


def test_add_working_days_from_a_holiday_does_not_count_the_start():
    assert add_working_days(date(2025, 10, 3), 1) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 9), 0) == date(2025, 10, 9)
    assert add_working_days(date(2025, 10, 3), 0) == date(2025, 10, 3)


def test_three_working_days_of_remittance_review_over_the_holiday():
    # RMT-10: a form filed on Sunday 28 September (a working day) is due 3
    # working days later: 29, 30 September and 9 October.
    assert add_working_days(date(2025, 9, 28), 3) == date(2025, 10, 9)


def test_fifteen_working_days_match_a_day_by_day_count():
    start = date(2025, 9, 20)
    due = add_working_days(start, 15)
    counted = [start + timedelta(days=i) for i in range(1, (due - start).days + 1)]
    assert sum(is_working_day(d) for d in counted) == 15
    assert is_working_day(due)
    assert due == date(2025, 10, 16)


def test_negative_days_are_refused():
    with pytest.raises(ValueError):
        add_working_days(date(2025, 9, 30), -1)


def test_a_year_the_calendar_does_not_know_falls_back_to_weekdays():
    from datetime import date

    from feecenter.workdays import add_working_days, is_working_day

    assert is_working_day(date(2031, 3, 3))  # a Monday
    assert not is_working_day(date(2031, 3, 1))  # a Saturday
    assert add_working_days(date(2026, 12, 30), 5) == date(2027, 1, 6)
