"""The withdrawable amount (WDR-1, WDR-7), pure: plain integers in fen, no database.

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

from dataclasses import dataclass


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
