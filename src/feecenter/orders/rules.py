"""Pure order rules: proration (spec changes, RNW-5's extra days), refund split,
order numbers and references. No database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from fractions import Fraction

from feecenter.clock import business_date
from feecenter.errors import invalid
from feecenter.money import RATE_PER_FEN, split_proportionally

MONTH = timedelta(days=30)  # upgrade/downgrade proration: a month of remaining time
UNPAID_ORDER_DAYS = 15


def order_no(order_id: int, created_at: datetime) -> str:
    """Displayed order number: the business date (Asia/Shanghai) of creation as
    YYYYMMDD + the 10-digit id (e.g. 202611260000000042). ``created_at`` is the
    stored naive-UTC time (or an aware one)."""
    aware = created_at if created_at.tzinfo else created_at.replace(tzinfo=timezone.utc)
    day = business_date(aware)
    return f"{day.year:04d}{day.month:02d}{day.day:02d}{order_id:010d}"


def order_id_from_no(text: str) -> int | None:
    text = str(text).strip()
    if len(text) != 18 or not text.isdigit():
        return None
    return int(text[8:])


def parse_order_ref(value: str | int, field: str = "order_ids") -> int:
    """Accept an order number (18 ASCII digits) or its internal id (up to 12);
    anything else is invalid input naming ``field``."""
    text = str(value).strip()
    if text.isascii():  # str.isdigit() alone takes "²" and "١" for digits
        parsed = order_id_from_no(text)
        if parsed is not None:
            return parsed
        if text.isdigit() and len(text) <= 12:
            return int(text)
    raise invalid(field, f"订单号格式错误：{text}", f"malformed order number: {text}")


def prorated_change(monthly_old: int, monthly_new: int, remaining: timedelta) -> int:
    """Fen to pay (+) or refund (-) for changing spec with ``remaining`` time left.

    Monthly prices are in 1e-8 yuan; the result is rounded once, half-up.
    """
    seconds = max(int(remaining.total_seconds()), 0)
    return _fen_of((monthly_new - monthly_old) * seconds, int(MONTH.total_seconds()))


def prorated_days(monthly: int, days_by_month: list[tuple[int, int]]) -> int:
    """Fen for extra days of a prepaid resource (RNW-5's alignment): each day is
    priced at ``monthly`` (1e-8 yuan) / the number of days of its calendar month.
    ``days_by_month``: (days added in a month, days that month has) per month.
    The exact sum is rounded once, half-up."""
    fraction = sum((Fraction(monthly * days, month_days) for days, month_days in days_by_month),
                   Fraction(0))
    return _fen_of(fraction.numerator, fraction.denominator)


def _fen_of(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` (1e-8 yuan, exact) in fen, rounded half-up once
    (halves away from zero). Not floored to 1e-8 first: that would push a negative
    amount just short of half a fen past it (-80.994999998 yuan to -81.00)."""
    sign = -1 if (numerator < 0) != (denominator < 0) else 1
    numerator, denominator = abs(numerator), abs(denominator)
    return sign * ((2 * numerator + denominator * RATE_PER_FEN)
                   // (2 * denominator * RATE_PER_FEN))


@dataclass(frozen=True)
class PaidPart:
    """One paying order of a resource, as the refund rule sees it. Credit counts as
    cash (the advance is the customer's debt); ``coupon`` is what coupons paid."""

    amount: int  # fen: positive for what was paid, negative for what was refunded already
    gift: int
    cash: int
    start: datetime
    end: datetime
    coupon: int = 0


@dataclass(frozen=True)
class RefundSplit:
    """Who paid the value given back: gift and cash return to the customer; the
    coupon share returns only as far as cash coupons paid it (ORD-4)."""

    gift: int
    cash: int
    coupon: int

    @property
    def total(self) -> int:
        return self.gift + self.cash + self.coupon


def unused_value(part: PaidPart, now: datetime) -> int:
    """Fen of ``part`` not yet consumed at ``now`` (linear over its service period)."""
    total = (part.end - part.start).total_seconds()
    if total <= 0:
        return 0
    unused = (part.end - max(now, part.start)).total_seconds()
    unused = min(max(unused, 0), total)
    return _fen_of(part.amount * RATE_PER_FEN * int(unused), int(total))


def refund_split(parts: list[PaidPart], now: datetime, *, full: bool) -> RefundSplit:
    """What to give back: everything inside the no-reason window, else the unused
    share of each part, split in the proportion gift, cash and coupons paid it."""
    totals = [0, 0, 0]
    for part in parts:
        value = part.amount if full else unused_value(part, now)
        weights = [abs(part.gift), abs(part.cash), abs(part.coupon)]
        if value == 0 or sum(weights) == 0:
            continue
        sign = 1 if value > 0 else -1
        for i, share in enumerate(split_proportionally(abs(value), weights)):
            totals[i] += sign * share
    return RefundSplit(*(max(t, 0) for t in totals))
