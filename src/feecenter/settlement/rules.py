"""Pure settlement rules: rounding a transaction, the precision difference, splits,
chunking accounts.

Amounts: rated (discounted) amounts in 1e-8 yuan, deductions in fen.
A settlement transaction is one account's deduction for one product in one
period (all its lines). Its exact discounted total is rounded half-up to fen once
(``money.round_rated_to_fen``, SET-3); the fen are shared over the lines in
proportion to their discounted amounts (largest remainder), and each line
records ``rounding_diff = deducted * 1e6 - discounted`` (1e-8 yuan). The
lines' differences therefore add up exactly to the transaction's rounding:
positive means the customer paid more than the exact amount.
"""

from __future__ import annotations

from datetime import date
from typing import NamedTuple

from feecenter.money import RATE_PER_FEN, round_rated_to_fen, split_proportionally


class LineShare(NamedTuple):  # a NamedTuple: one per bill line, cheap to make
    deducted: int  # fen
    rounding_diff: int  # 1e-8 yuan


def round_transaction(discounted: list[int]) -> tuple[int, list[LineShare]]:
    """Round the transaction total once; share the fen over lines; per-line difference."""
    if any(d < 0 for d in discounted):
        raise ValueError("discounted amounts must not be negative")
    total = round_rated_to_fen(sum(discounted))
    if total == 0 or sum(discounted) == 0:
        shares = [0] * len(discounted)
    else:
        shares = split_proportionally(total, discounted)
    return total, [LineShare(s, s * RATE_PER_FEN - d) for s, d in zip(shares, discounted)]


def split_payment(deducted: list[int], parts: list[int]) -> list[list[int]]:
    """Split the sources of one deduction (e.g. [gift, cash, credit, arrears] in fen,
    summing to sum(deducted)) over the lines: each source in proportion to what the
    lines still lack, in order. Returns per line the amount of each source; every
    line's parts sum to its ``deducted`` and every source's shares to its total."""
    if sum(parts) != sum(deducted) or any(p < 0 for p in parts) or any(d < 0 for d in deducted):
        raise ValueError("parts must be non-negative and sum to the deducted total")
    remaining = list(deducted)
    out = [[0] * len(parts) for _ in deducted]
    for k, part in enumerate(parts):
        if part == 0:
            continue
        # part <= sum(remaining): each share stays within its line's remainder
        shares = split_proportionally(part, remaining)
        for i, share in enumerate(shares):
            out[i][k] = share
            remaining[i] -= share
    return out


def precision_meaning(total_diff: int) -> str:
    """SET-3: positive, the customer paid more and may claim it; negative, waived."""
    if total_diff > 0:
        return "customer_overpaid"
    if total_diff < 0:
        return "platform_waived"
    return "none"


def chunk_accounts(line_counts: list[tuple[int, int]], max_accounts: int,
                   max_lines: int) -> list[list[int]]:
    """Consecutive accounts ((uin, lines) in order) in chunks of at most ``max_accounts``
    accounts and ``max_lines`` lines; an account is never split, so an account with more
    lines than ``max_lines`` is a chunk of its own."""
    if max_accounts < 1 or max_lines < 1:
        raise ValueError("chunks must allow at least one account and one line")
    chunks: list[list[int]] = []
    current: list[int] = []
    lines = 0
    for uin, count in line_counts:
        if current and (len(current) >= max_accounts or lines + count > max_lines):
            chunks.append(current)
            current, lines = [], 0
        current.append(uin)
        lines += count
    if current:
        chunks.append(current)
    return chunks


def statistic_month(deducted_month: str, usage_month: str, switched_in: str | None) -> str:
    """BIL-3: the bill month (YYYY-MM) of a line deducted in ``deducted_month`` for
    usage in ``usage_month`` (a prepaid order: its deduction month), for an account
    that switched to the usage-time period in ``switched_in`` (None: never; deduction
    time). Months before the switch stay by deduction time; the switch month takes
    what is deducted in it and its own usage deducted later (switched in July: June's
    usage deducted 1 July and July's usage deducted 1 August are both July's); after
    it, by usage time, usage from before the switch month deducted late going to the
    switch month (earlier months never change)."""
    if switched_in is None or deducted_month < switched_in:
        return deducted_month
    return max(usage_month, switched_in)


def monthly_freeze_due(today: date, day: int) -> str:
    """FRZ-5: the latest month (YYYY-MM) whose monthly freezes are due by business date
    ``today`` when they are settled on ``day`` (1-28) of the next month: last month
    from that day on, the month before it until then."""
    if not (isinstance(day, int) and not isinstance(day, bool) and 1 <= day <= 28):
        raise ValueError(f"a monthly settlement day is 1-28, not {day!r}")
    back = 1 if today.day >= day else 2
    index = today.year * 12 + today.month - 1 - back
    return f"{index // 12:04d}-{index % 12 + 1:02d}"
