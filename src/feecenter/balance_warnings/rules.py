"""Pure rules of the balance warning (XTR-2): no database, plain integers in fen.

- ``days_left``: how many whole days the available balance lasts at the last
  24 hours' postpaid spending (floor of available / spending); None without
  spending (no estimate); 0 when nothing is available.
- ``decide``: warn when the days left are under the threshold (default 5, the
  owner may set 1-30 or turn it off) and, separately, when the available
  balance is under the owner's amount (optional). Integer arithmetic only:
  ``days_left < threshold`` holds exactly when ``available < threshold * spent``.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_DAYS = 5
MIN_DAYS, MAX_DAYS = 1, 30


@dataclass(frozen=True)
class Verdict:
    days_left: int | None  # None: nothing spent in the last 24 hours, no estimate
    by_days: bool  # the days left are under the threshold
    by_amount: bool  # the available balance is under the owner's amount

    @property
    def warn(self) -> bool:
        return self.by_days or self.by_amount


def days_left(available: int, spent: int) -> int | None:
    """Whole days ``available`` fen last at ``spent`` fen a day; None when ``spent`` <= 0."""
    if spent <= 0:
        return None
    if available <= 0:
        return 0
    return available // spent


def decide(available: int, spent: int, *, days: int | None = DEFAULT_DAYS,
           amount: int | None = None) -> Verdict:
    """The warning for an account with ``available`` fen and ``spent`` fen of postpaid
    spending in the last 24 hours; ``days``: the threshold (None: off), ``amount``:
    the owner's warning amount in fen (None: none)."""
    left = days_left(available, spent)
    by_days = days is not None and left is not None and left < days
    by_amount = amount is not None and available < amount
    return Verdict(left, by_days, by_amount)
