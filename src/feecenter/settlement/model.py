"""The values a settlement run passes between its steps (rating, the extensions,
posting), in one place so that every step imports them from here and none
imports another step for a type:

- ``RunContext``: what every chunk of one run (a period, or a late adjustment) shares;
- ``ResourceFacts``: a resource as its bill line shows it, read at deduction time;
- ``RatedLine``: one resource × billing item of the period, its quantities and price;
- ``ProductCharge``: one account's deduction for one product (one ledger transaction).

The steps fill them in: ``rating`` creates the lines and prices them,
``extensions`` lets packages and coupons act on them, ``posting`` groups them
into charges, deducts and writes the L3 lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from feecenter.catalog.pricebook import PriceBook, Rate
from feecenter.periods import Period
from feecenter.settlement import rules


@dataclass(frozen=True)
class RunContext:
    """What every chunk of one settlement run (a period, or one late adjustment) shares."""

    cycle: str
    period: Period
    book: PriceBook                # prices in force at the period's start
    deduct_mode: str               # 收支明细 deduct mode: hour_h | hour_d | hour_m
    revenue: dict[str, int]        # selling entity -> its revenue ledger account
    key_prefix: str                # a transaction's key: {key_prefix}:{uin}{key_suffix}:{product}
    memo: str
    key_suffix: str = ""             # late adjustments: :adj{sequence}:{digest}
    kind: str = "charge"           # charge | adjustment (SET-9)
    sequence: int = 0
    originals: dict[tuple[str, str], int] = field(default_factory=dict)  # adjusted lines
    reason: str | None = None


class ResourceFacts(NamedTuple):
    """A resource as a bill line shows it, read at deduction time (SET-7)."""

    name: str | None
    product: str
    region: str
    project_id: int
    project_name: str


class RatedLine:
    """A resource × billing item of a period, priced; becomes one L3 bill line."""

    __slots__ = ("uin", "resource_id", "item", "facts", "quantity", "stopped", "chargeable",
                 "covered", "rate")

    def __init__(self, uin: int, resource_id: str, item: str, quantity: int, stopped: int = 0):
        self.uin = uin
        self.resource_id = resource_id
        self.item = item
        self.facts: ResourceFacts | None = None  # set by rating.attach_facts, at deduction time
        self.quantity = quantity      # metered in the period (1e-6 units)
        self.stopped = stopped        # of which used while the resource was stopped (ARR-3)
        self.chargeable = quantity - stopped  # what is priced: less what packages cover
        self.covered: tuple = ()      # (package, quantity) traces, filled by SET-10
        self.rate: Rate | None = None  # set by rating.rate_lines

    @property
    def product(self) -> str:
        return self.facts.product

    @property
    def key(self) -> tuple[str, str]:
        return self.resource_id, self.item


class ProductCharge:
    """One ledger transaction: an account's deduction for one product (SET-3)."""

    __slots__ = ("uin", "product", "key", "lines", "total", "shares", "voucher", "voucher_txn")

    def __init__(self, uin: int, product: str, key: str, lines: list[RatedLine]):
        self.uin = uin
        self.product = product
        self.key = key
        self.lines = lines
        self.total, self.shares = rules.round_transaction([line.rate.amount for line in lines])
        self.voucher = 0  # fen paid by postpaid coupons (SET-6)
        self.voucher_txn: int | None = None  # the ledger transaction of the coupon payment

    @property
    def due(self) -> int:
        """What the balances pay (fen)."""
        return self.total - self.voucher
