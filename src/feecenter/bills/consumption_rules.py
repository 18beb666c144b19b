"""Pure consumption-bill rules (BIL-4, BIL-5): spreading a prepaid fee over the
business days of its service period. No database, no clock.

A prepaid fee (fen; negative for a refund or a downgrade) is spread evenly over
the business days (Asia/Shanghai calendar days) its service period touches:
``[service_start, service_end)`` covers every business day from the day of
``service_start`` to the day of the period's last instant, a partly covered
first or last day counting as a whole day. An empty period (its end not after
its start) is one day, the day of ``service_start``.

**The remainder rule.** With ``n`` days and ``|fee| = q * n + r`` (``0 <= r < n``),
every day gets ``q`` fen and the first ``r`` days one fen more; a negative fee is
the mirror image (``spread(-fee) == -spread(fee)``): every day gets ``-q`` and the
first ``r`` days one fen more in magnitude. The days therefore add up exactly to
the fee and no two days differ by more than one fen.

**Refunds and downgrades** are negative orders whose service period is the
time they give back (from the refund or downgrade to the resource's expiry):
they are spread over those remaining days by the same rule, so after a refund
the consumption of the returned days nets towards zero and the total over all
the days nets to what the customer finally paid.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from feecenter.clock import business_date

_INSTANT = timedelta(microseconds=1)


def service_days(start: datetime, end: datetime) -> tuple[date, int]:
    """The first business day of the service period ``[start, end)`` (aware) and how
    many business days it touches (at least one)."""
    first = business_date(start)
    if end <= start:
        return first, 1
    last = business_date(end - _INSTANT)
    return first, (last - first).days + 1


def daily_shares(fee: int, days: int) -> list[int]:
    """The fen of each of ``days`` days (the remainder rule above); sums to ``fee``."""
    if days < 1:
        raise ValueError("a fee is spread over at least one day")
    return [share_of_days(fee, days, index, index + 1) for index in range(days)]


def share_of_days(fee: int, days: int, first: int, stop: int) -> int:
    """The fen days ``first`` .. ``stop - 1`` (0-based, clipped to ``0 .. days``) get of
    ``fee`` spread over ``days`` days, without listing them (a 3-year term is 1,096)."""
    if days < 1:
        raise ValueError("a fee is spread over at least one day")
    first, stop = max(first, 0), min(stop, days)
    if stop <= first:
        return 0
    sign = -1 if fee < 0 else 1
    quotient, remainder = divmod(abs(fee), days)
    extra = max(0, min(stop, remainder) - first)  # of the first ``remainder`` days
    return sign * (quotient * (stop - first) + extra)


def share_in_range(fee: int, start: datetime, end: datetime, range_first: date,
                   range_stop: date) -> int:
    """The fen of ``fee`` (service period ``[start, end)``) that fall on the business
    days ``range_first`` up to, not including, ``range_stop`` (e.g. a month)."""
    first, days = service_days(start, end)
    return share_of_days(fee, days, (range_first - first).days, (range_stop - first).days)


def spread_by_day(fee: int, start: datetime, end: datetime) -> list[tuple[date, int]]:
    """Every business day of the service period with its fen (for display and tests)."""
    first, days = service_days(start, end)
    return [(first + timedelta(days=i), share) for i, share in enumerate(daily_shares(fee, days))]
