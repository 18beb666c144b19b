"""Withdrawal rules, pure (plain values, no database): the withdrawable amount
(WDR-1, WDR-7), the original route's windows and its LIFO plan (WDR-2), and when
each leg's money is expected (WDR-2, WDR-3). Amounts are integers of fen.

WDR-1: withdrawable = cash − invoice debt − unrepaid advances
                      − (frozen − gift − income)

How the bracket is read (docs/withdrawal.md): it is the frozen money that gift and
income do not cover, so the part of cash that is frozen. Frozen money is drawn from
gift first (BAL-3) and the shown cash and gift both include their frozen parts
(BAL-1), so ``frozen − gift − income`` is what of the frozen total must be cash.
When gift and income cover all of it the bracket is 0, never negative: a negative
bracket would add gift and income to the withdrawable amount, and promotional
gift money is never paid out. WDR-7: money an agent or group admin transferred in
and not yet spent is taken off too (0 until agents and groups exist).

The raw value is shown as computed, even negative; a withdrawal may take only
``takeable(raw)``, its positive part.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone

from feecenter.clock import BUSINESS_TZ, business_date
from feecenter.workdays import add_working_days


@dataclass(frozen=True)
class WithdrawableParts:
    """Everything WDR-1 subtracts from cash, each ≥ 0, in fen."""

    cash: int                 # 现金账户, frozen cash included (BAL-1)
    invoice_debt: int         # 欠发票金额 (INV-7)
    unrepaid_advances: int    # 未还垫付 (BAL-7)
    frozen: int               # 冻结金额, cash and gift
    gift: int                 # 赠送账户, frozen gift included
    income: int               # 分成账户 / 收益转入
    transferred_in_unspent: int = 0  # WDR-7: agents and groups do not exist yet

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int:
                raise TypeError(f"{name} must be an int of fen, not {type(value).__name__}")
            if value < 0:
                raise ValueError(f"{name} must not be negative: {value}")


def frozen_cash(parts: WithdrawableParts) -> int:
    """The bracket ``(frozen − gift − income)``: the frozen money gift and income do
    not cover, 0 when they cover all of it."""
    return max(parts.frozen - parts.gift - parts.income, 0)


def withdrawable(parts: WithdrawableParts) -> int:
    """WDR-1's raw value, fen; negative when debts and frozen cash exceed cash."""
    return (parts.cash - parts.invoice_debt - parts.unrepaid_advances - frozen_cash(parts)
            - parts.transferred_in_unspent)


def takeable(raw: int) -> int:
    """What a withdrawal may take: only a positive amount (WDR-1)."""
    return max(raw, 0)


# ---------------------------------------------------------------- windows (WDR-2)

WINDOW_MAX_DAYS = 360
# what a window is set for: each recharge channel (an international card is its own)
# and corporate remittances (the paying bank's transfers)
WINDOW_CHANNELS = ("wechat", "qq", "netbank", "intl_card", "remittance")


@dataclass(frozen=True)
class Windows:
    """Days a source stays refundable by the original route, per channel; a channel
    not named has ``WINDOW_MAX_DAYS``. Each window is 0..360 days (WDR-2)."""

    days: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for channel, days in self.days.items():
            if channel not in WINDOW_CHANNELS:
                raise ValueError(f"unknown withdrawal window channel {channel!r}")
            if type(days) is not int or not 0 <= days <= WINDOW_MAX_DAYS:
                raise ValueError(f"the {channel} window must be 0..{WINDOW_MAX_DAYS} days")

    def of(self, channel: str) -> int:
        return min(self.days.get(channel, WINDOW_MAX_DAYS), WINDOW_MAX_DAYS)


def parse_windows(text: str | None) -> Windows:
    """``"wechat=180,netbank=90"`` -> Windows; empty or None: every window 360 days."""
    days: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        channel, sep, value = part.partition("=")
        if not sep or not value.strip().isascii() or not value.strip().isdigit():
            raise ValueError(f"a withdrawal window is channel=days, not {part!r}")
        days[channel.strip()] = int(value.strip())
    return Windows(days)


def window_channel(channel: str, intl_card: bool) -> str:
    """Which window a source falls under: an international card's is its own."""
    return "intl_card" if intl_card else channel


def in_window(paid_on: date, today: date, window_days: int) -> bool:
    """Inside the window iff at most ``window_days`` business days have passed since
    the paid date (day 360 in, day 361 out); never above 360 days."""
    return 0 <= (today - paid_on).days <= min(window_days, WINDOW_MAX_DAYS)


# ---------------------------------------------------------------- the route (WDR-2)

@dataclass(frozen=True)
class RouteSource:
    """Money that came in and may go back the way it came: a paid recharge or a
    credited remittance, with what is still refundable (its amount − its legs not
    returned)."""

    source: str          # recharge | remittance
    ref_id: int
    channel: str         # the recharge's channel | remittance
    intl_card: bool
    paid_at: datetime    # aware
    refundable: int

    @property
    def window(self) -> str:
        return window_channel(self.channel, self.intl_card)


@dataclass(frozen=True)
class RouteLeg:
    source: str
    ref_id: int
    channel: str
    intl_card: bool
    amount: int


def usable(candidates: list[RouteSource], today: date, windows: Windows) -> list[RouteSource]:
    """The sources the original route may take now: inside their window, money left."""
    return [c for c in candidates if c.refundable > 0
            and in_window(business_date(c.paid_at), today, windows.of(c.window))]


def plan_route(amount: int, candidates: list[RouteSource]) -> list[RouteLeg]:
    """LIFO: the newest paid source first, each for what it has left, until ``amount``
    is covered; fewer fen than ``amount`` when the candidates hold less."""
    legs, left = [], amount
    for c in sorted(candidates, key=lambda c: (c.paid_at, c.source, c.ref_id), reverse=True):
        if left <= 0:
            break
        take = min(left, c.refundable)
        if take > 0:
            legs.append(RouteLeg(c.source, c.ref_id, c.channel, c.intl_card, take))
            left -= take
    return legs


# ---------------------------------------------------------------- estimates (WDR-2, WDR-3)

ONLINE_CHANNELS = ("wechat", "qq", "netbank")
ONLINE_WITHIN = timedelta(hours=2)
BANK_WORKING_DAYS = (7, 15)


def is_online(channel: str, intl_card: bool) -> bool:
    return channel in ONLINE_CHANNELS and not intl_card


def estimate(channel: str, intl_card: bool, applied_at: datetime) -> tuple[datetime, datetime]:
    """When a leg's money is expected, aware UTC: online channels within 2 hours;
    an international card, a remittance and a bank payout 7 to 15 working days
    (Asia/Shanghai calendar, same time of day)."""
    if is_online(channel, intl_card):
        return applied_at, applied_at + ONLINE_WITHIN
    local = applied_at.astimezone(BUSINESS_TZ)
    day, at = local.date(), local.timetz().replace(tzinfo=None)
    first, last = (add_working_days(day, n) for n in BANK_WORKING_DAYS)
    return _at(first, at), _at(last, at)


def _at(day: date, at: time) -> datetime:
    return datetime.combine(day, at, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)
