"""Pure money rules of the fee account: no database, plain integers in fen."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from feecenter.errors import InsufficientBalance
from feecenter.money import format_yuan


@dataclass(frozen=True)
class SpendPlan:
    gift: int
    cash: int
    credit: int   # paid by credit: becomes an advance (垫付, BAL-7)
    arrears: int  # shortfall of postpaid settlement (SET-5, BAL-4)


def plan_spend(amount: int, *, gift: int, cash: int, credit_left: int,
               allow_arrears: bool) -> SpendPlan:
    """Gift first, then cash (BAL-3), then credit (BAL-7); only postpaid may overdraw (BAL-4)."""
    if amount <= 0:
        raise ValueError("amount must be positive")
    from_gift = min(amount, max(gift, 0))
    from_cash = min(amount - from_gift, max(cash, 0))
    from_credit = min(amount - from_gift - from_cash, max(credit_left, 0))
    short = amount - from_gift - from_cash - from_credit
    if short and not allow_arrears:
        raise InsufficientBalance(
            f"余额不足，还需 {format_yuan(short)} 元", f"insufficient balance: {format_yuan(short)} "
            "yuan more is needed", field="amount", shortfall=format_yuan(short))
    return SpendPlan(from_gift, from_cash, from_credit, short)


def credit_in_force(credit_limit: int, temp_credit: int, temp_credit_end: datetime | None,
                    now: datetime) -> int:
    """The credit amount (BAL-7): the limit plus temporary credit not yet ended at ``now``."""
    temp_in_force = temp_credit_end is None or temp_credit_end > now
    return credit_limit + (temp_credit if temp_in_force else 0)


def credit_left(credit_amount: int, *, advances: int) -> int:
    """Unused credit (BAL-7): the credit amount less unrepaid advances, never negative."""
    return max(credit_amount - advances, 0)


@dataclass(frozen=True)
class IncomingPlan:
    to_arrears: int
    to_advances: int
    to_balance: int


def plan_incoming(amount: int, *, arrears: int, advances: int) -> IncomingPlan:
    """Incoming money pays arrears, then unrepaid advances, then the balance (ARR-4)."""
    to_arrears = min(amount, arrears)
    to_advances = min(amount - to_arrears, advances)
    return IncomingPlan(to_arrears, to_advances, amount - to_arrears - to_advances)


def plan_freeze(amount: int, *, gift: int, cash: int) -> tuple[int, int]:
    """A freeze takes gift then cash, never coupons (FRZ-1); refuses what is not there."""
    from_gift = min(amount, gift)
    from_cash = amount - from_gift
    if from_cash > cash:
        short = from_cash - cash
        raise InsufficientBalance(f"可用余额不足以冻结，还需 {format_yuan(short)} 元",
                                  f"available balance too low to freeze: {format_yuan(short)} "
                                  "yuan more is needed", field="amount")
    return from_gift, from_cash


def operable_shortfall(*, available: int, arrears: int, operable_balance: int) -> int:
    """How much must come in before the account may buy again (ARR-1/ARR-2).

    ``available`` excludes frozen money. In arrears the arrears must be paid
    and the operable balance reached; otherwise only the operable balance.
    """
    if arrears > 0:
        return arrears + max(operable_balance, 0)
    return max(operable_balance - available, 0)


@dataclass(frozen=True)
class Allocation:
    """What each source pays of one order in a (possibly merged) payment."""

    amount: int
    coupon: int
    gift: int
    cash: int
    credit: int


def allocate_payment(amounts: list[int], *, gift: int, cash: int, credit_left: int,
                     coupons: list[int] | None = None) -> list[Allocation]:
    """Coupons first (already decided per order), then gift, cash, credit (ORD-3).

    Orders are served in the given order from the running balances; a
    prepaid payment never overdraws (BAL-4): any shortfall refuses the whole.
    """
    coupons = coupons or [0] * len(amounts)
    needed = sum(a - c for a, c in zip(amounts, coupons))
    short = needed - max(gift, 0) - max(cash, 0) - max(credit_left, 0)
    if short > 0:
        raise InsufficientBalance(
            f"余额不足，还需 {format_yuan(short)} 元", f"insufficient balance: {format_yuan(short)} "
            "yuan more is needed", field="balance", shortfall=format_yuan(short))
    left = {"gift": max(gift, 0), "cash": max(cash, 0), "credit": max(credit_left, 0)}
    result = []
    for amount, coupon in zip(amounts, coupons):
        due, parts = amount - coupon, {}
        for source in ("gift", "cash", "credit"):
            parts[source] = min(due, left[source])
            left[source] -= parts[source]
            due -= parts[source]
        result.append(Allocation(amount, coupon, parts["gift"], parts["cash"], parts["credit"]))
    return result
