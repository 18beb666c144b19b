"""The consumption bill's spreading rule (BIL-4; negative fees, BIL-5), pure: a
prepaid fee over the business days of its service period, the remainder fen on
the first days, a negative fee the mirror image."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feecenter.bills import consumption_rules as rules
from feecenter.clock import BUSINESS_TZ

FEES = st.integers(min_value=-10**12, max_value=10**12)
DAYS = st.integers(min_value=1, max_value=4000)


def local(*args) -> datetime:
    return datetime(*args, tzinfo=BUSINESS_TZ)


@pytest.mark.spec("BIL-4", "BIL-5")
@given(fee=FEES, days=DAYS)
def test_the_days_sum_exactly_to_the_fee_and_differ_by_one_fen_at_most(fee, days):
    shares = rules.daily_shares(fee, days)
    assert len(shares) == days
    assert sum(shares) == fee
    assert max(shares) - min(shares) <= 1
    # the remainder fen sit on the first days: magnitudes never grow along the days
    magnitudes = [abs(s) for s in shares]
    assert magnitudes == sorted(magnitudes, reverse=True)


@pytest.mark.spec("BIL-5")
@given(fee=FEES, days=DAYS)
def test_a_negative_fee_is_the_mirror_of_the_positive_one(fee, days):
    assert rules.daily_shares(-fee, days) == [-s for s in rules.daily_shares(fee, days)]


@pytest.mark.spec("BIL-4")
@given(fee=FEES, days=DAYS, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=5))
def test_any_split_of_the_days_into_ranges_adds_up_to_the_fee(fee, days, cuts):
    bounds = sorted({0, days, *(c for c in cuts if c < days)})
    parts = [rules.share_of_days(fee, days, a, b) for a, b in zip(bounds, bounds[1:])]
    assert sum(parts) == fee
    shares = rules.daily_shares(fee, days)
    assert parts == [sum(shares[a:b]) for a, b in zip(bounds, bounds[1:])]


@pytest.mark.spec("BIL-4")
def test_the_first_days_take_the_remainder():
    assert rules.daily_shares(10, 3) == [4, 3, 3]
    assert rules.daily_shares(-10, 3) == [-4, -3, -3]
    assert rules.daily_shares(2, 5) == [1, 1, 0, 0, 0]
    assert rules.daily_shares(0, 2) == [0, 0]
    with pytest.raises(ValueError):
        rules.daily_shares(5, 0)


@pytest.mark.spec("BIL-4")
def test_service_days_are_business_days_a_partial_day_counting_whole():
    # a month bought at 10:30 on 15 January runs to 10:30 on 15 February: 32 days
    first, days = rules.service_days(local(2026, 1, 15, 10, 30), local(2026, 2, 15, 10, 30))
    assert (first, days) == (date(2026, 1, 15), 32)
    # midnight to midnight: the end day is not touched
    assert rules.service_days(local(2026, 1, 1), local(2026, 2, 1)) == (date(2026, 1, 1), 31)
    # 16:30 UTC on 31 December is already 00:30 on 1 January in Shanghai
    eve = datetime(2025, 12, 31, 16, 30, tzinfo=timezone.utc)
    assert rules.service_days(eve, eve + timedelta(hours=1)) == (date(2026, 1, 1), 1)
    # an empty period (a refund at the expiry instant) is its start day
    assert rules.service_days(local(2026, 3, 1), local(2026, 3, 1)) == (date(2026, 3, 1), 1)


@pytest.mark.spec("BIL-4")
@given(fee=FEES, start_day=st.integers(min_value=0, max_value=800),
       length=st.integers(min_value=0, max_value=1200), hour=st.integers(0, 23))
def test_months_of_a_service_period_add_up_to_the_fee(fee, start_day, length, hour):
    start = local(2025, 1, 1, hour) + timedelta(days=start_day)
    end = start + timedelta(days=length, hours=hour)
    months, day = [], date(2024, 12, 1)
    while day < date(2031, 1, 1):  # past the latest end (2025 + 800 + 1200 days)
        following = date(day.year + day.month // 12, day.month % 12 + 1, 1)
        months.append(rules.share_in_range(fee, start, end, day, following))
        day = following
    assert sum(months) == fee
    by_day = rules.spread_by_day(fee, start, end)
    assert sum(fen for _, fen in by_day) == fee
    assert by_day[0][0] == start.date()
