"""The mainland China working-day calendar, make-up working days (调休) included.

Backed by the maintained ``chinesecalendar`` package; due times in working
days (remittance review, invoice copies, payouts) are computed here.
"""

from __future__ import annotations

from datetime import date, timedelta

import chinese_calendar


def is_working_day(day: date) -> bool:
    """True on a working day, including a weekend make-up day (调休上班).

    For a year the package does not know yet (the State Council publishes each
    year's schedule late in the year before), Monday to Friday count; upgrading
    chinesecalendar brings the real schedule.
    """
    try:
        return chinese_calendar.is_workday(day)
    except NotImplementedError:
        return day.weekday() < 5


def add_working_days(start: date, days: int) -> date:
    """The date ``days`` working days after ``start`` (start itself not counted)."""
    if days < 0:
        raise ValueError("days must be >= 0")
    current = start
    remaining = days
    while remaining:
        current += timedelta(days=1)
        if is_working_day(current):
            remaining -= 1
    return current
