"""Pure month-over-month rules (BIL-8): the difference between two months' deducted
cost broken into its causes, per resource. No database, no clock.

Input: each month's per-resource aggregates (``MonthAggregates``): prepaid
order amounts by kind per resource (``OrderSums``, fen), and postpaid usage per
(resource, billing item) (``UsageSums``: charged quantity, list cost,
discounted cost, deducted fen). Output (``decompose``): the difference of the
deducted totals (fen) and the categories that explain it; **the categories
always sum exactly to the difference** and each category's amount is the sum
of its resources' amounts.

- ``new_purchases``: prepaid ``new`` orders (this month's count positive, the
  previous month's negative), and postpaid resources with no cost at all in
  the previous month (their whole cost).
- ``renewals``: prepaid ``renew`` orders without their unified-expiry extra days.
  A resource renewed in both months (repeated renewals) is compared by the
  chain below over its renewals' terms — unit-months (quantity × months),
  unit price × unit-months, amount: more or fewer unit-months renewed stay
  ``renewals``, the unit price's change goes to ``price_changes`` and the
  discount's to ``expired_discounts`` (a renewal at a fixed price is not
  compared: its whole change stays ``renewals``).
- ``unified_expiry``: the extra days' amounts of renewals aligned to the
  unified expiry day (RNW-5, the orders' ``unified_extra``).
- ``upgrades`` and ``refunds_downgrades``: those prepaid orders (refunds and
  downgrades are negative lines, BIL-5).
- Postpaid (resource, billing item) with a positive charged quantity in both
  months and a previous list cost (the chain below): ``usage_growth``
  (quantity change × the previous effective price), ``price_changes``
  (quantity × unit list price change, at the previous discount) and
  ``expired_discounts`` (quantity × list price × discount change: a discount
  lower or gone costs more, a new one less). An item new on a resource that
  had cost before, or gone from it (a resource gone entirely too), is usage
  growth by its whole cost (negative when gone).
- ``precision_difference``: the fen rounding of the postpaid effects (below)
  and of the deductions themselves (SET-3).
- ``other``: only what cannot be attributed: a postpaid item with cost in both
  months whose previous quantity or list cost, or current quantity, is not
  positive (e.g. only a correction line), by its whole fen difference.

**The chain** (exact fractions, 1e-8 yuan): with charged quantity Q, list cost
L (the discounted cost on contract or fixed-price lines, which have no list
price, BIL-6) and discounted cost D, previous month 0 and this month 1:
usage = D0 × (Q1 − Q0) / Q0; price = D0 × (L1 / L0 − Q1 / Q0);
discount = D1 − L1 × D0 / L0. They add up to D1 − D0 exactly.

**The one rounding.** Each effect of one (resource, item) is rounded to fen
once, half-up (halves away from zero, ``money.round_rated_to_fen``'s rule on
the exact value); the item's deducted difference minus those rounded effects
is its ``precision_difference``; repeated renewals likewise. Other prepaid
amounts are fen already: no rounding.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from feecenter.money import RATE_PER_FEN

CATEGORIES = ("new_purchases", "renewals", "unified_expiry", "expired_discounts",
              "price_changes", "usage_growth", "upgrades", "refunds_downgrades",
              "precision_difference", "other")
# always shown (zero or not); the last two only when some amount falls in them
OPTIONAL = ("precision_difference", "other")
RESOURCE_CAP = 20  # resources listed per category (the count says how many there are)


@dataclass(frozen=True)
class UsageSums:
    """One (resource, billing item)'s postpaid lines of a month: charged quantity
    (1e-6 units), list cost and discounted cost (1e-8 yuan), deducted fen."""

    quantity: int = 0
    list_cost: int = 0
    discounted_cost: int = 0
    deducted: int = 0

    @property
    def empty(self) -> bool:
        return not (self.quantity or self.list_cost or self.discounted_cost or self.deducted)


@dataclass(frozen=True)
class OrderSums:
    """One resource's prepaid order lines of a month, fen by kind; ``unified_extra``:
    the part of ``renew`` that paid the unified-expiry extra days."""

    new: int = 0
    renew: int = 0
    unified_extra: int = 0
    upgrade: int = 0
    refund_downgrade: int = 0
    # the renewals' terms, to compare repeated renewals: Σ quantity × months, and Σ unit
    # price × quantity × months (any fixed scale); 0 when some renewal has no unit price
    # per unit (a fixed price) — then they are not compared
    renew_units: int = 0
    renew_list: int = 0

    @property
    def renew_term(self) -> int:
        """The renewals' amount without the unified-expiry extra days (fen)."""
        return self.renew - self.unified_extra

    def renewal_usage(self) -> UsageSums:
        """The renewals as a usage aggregate for the chain (their terms' amounts)."""
        return UsageSums(self.renew_units, self.renew_list, self.renew_term * RATE_PER_FEN,
                         self.renew_term)


@dataclass
class MonthAggregates:
    """A month of one account: ``orders`` by resource id, ``usage`` by (resource id,
    billing item); the deducted total and the discounted cost total."""

    orders: dict[str, OrderSums] = field(default_factory=dict)
    usage: dict[tuple[str, str], UsageSums] = field(default_factory=dict)

    @property
    def deducted(self) -> int:
        return self.deducted_prepaid + sum(u.deducted for u in self.usage.values())

    @property
    def discounted_cost(self) -> int:
        return (self.deducted_prepaid * RATE_PER_FEN
                + sum(u.discounted_cost for u in self.usage.values()))

    @property
    def deducted_prepaid(self) -> int:
        return sum(o.new + o.renew + o.upgrade + o.refund_downgrade
                   for o in self.orders.values())


def fraction_to_fen(amount: Fraction) -> int:
    """An exact amount in 1e-8 yuan to fen, half-up (halves away from zero)."""
    sign = -1 if amount < 0 else 1
    fen = abs(amount) / RATE_PER_FEN
    return sign * ((2 * fen.numerator + fen.denominator) // (2 * fen.denominator))


def usage_chain(before: UsageSums, after: UsageSums) -> dict[str, Fraction] | None:
    """The exact usage, price and discount effects (1e-8 yuan) of one item, summing to
    the change of its discounted cost; None when the chain is undefined."""
    if before.quantity <= 0 or after.quantity <= 0 or before.list_cost <= 0:
        return None
    d0, q_ratio = Fraction(before.discounted_cost), Fraction(after.quantity, before.quantity)
    l_ratio = Fraction(after.list_cost, before.list_cost)
    return {"usage_growth": d0 * (q_ratio - 1), "price_changes": d0 * (l_ratio - q_ratio),
            "expired_discounts": after.discounted_cost - d0 * l_ratio}


def _order_parts(before: OrderSums, after: OrderSums) -> dict[str, int]:
    return {"new_purchases": after.new - before.new,
            **renewal_parts(before, after),
            "unified_expiry": after.unified_extra - before.unified_extra,
            "upgrades": after.upgrade - before.upgrade,
            "refunds_downgrades": after.refund_downgrade - before.refund_downgrade}


def renewal_parts(before: OrderSums, after: OrderSums) -> dict[str, int]:
    """A resource's renewals (without unified-expiry days): renewed in both months
    (repeated renewals, each month's terms positive), the chain splits the change
    into more or fewer unit-months renewed (``renewals``), the unit price
    (``price_changes``) and the discount (``expired_discounts``), rounded once
    like postpaid items; else the whole change is ``renewals``."""
    change = after.renew_term - before.renew_term
    chain = None
    if before.renew_term > 0 and after.renew_term > 0 and after.renew_list > 0:
        chain = usage_chain(before.renewal_usage(), after.renewal_usage())
    if chain is None:
        return {"renewals": change}
    parts = {"renewals" if name == "usage_growth" else name: fraction_to_fen(effect)
             for name, effect in chain.items()}
    parts["precision_difference"] = change - sum(parts.values())
    return parts


def item_parts(before: UsageSums, after: UsageSums, resource_had_cost: bool) -> dict[str, int]:
    """One postpaid (resource, item)'s deducted difference (fen) by category, summing
    exactly to ``after.deducted - before.deducted``. ``resource_had_cost``: the
    resource had postpaid cost in the previous month (else the item is new)."""
    change = after.deducted - before.deducted
    if before.empty:
        return {"usage_growth" if resource_had_cost else "new_purchases": change}
    if after.empty:
        return {"usage_growth": change}
    chain = usage_chain(before, after)
    if chain is None:
        return {"other": change}
    parts = {name: fraction_to_fen(effect) for name, effect in chain.items()}
    parts["precision_difference"] = change - sum(parts.values())
    return parts


def _had_cost(month: MonthAggregates) -> set[str]:
    return {rid for (rid, _item), sums in month.usage.items() if not sums.empty}


def resource_parts(previous: MonthAggregates, current: MonthAggregates
                   ) -> dict[str, dict[str, int]]:
    """category -> resource id -> fen (zeros left out): every resource's part of the
    difference in every category."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for rid in previous.orders.keys() | current.orders.keys():
        parts = _order_parts(previous.orders.get(rid, OrderSums()),
                             current.orders.get(rid, OrderSums()))
        for name, amount in parts.items():
            out[name][rid] += amount
    had_cost = _had_cost(previous)
    for key in previous.usage.keys() | current.usage.keys():
        parts = item_parts(previous.usage.get(key, UsageSums()),
                           current.usage.get(key, UsageSums()), key[0] in had_cost)
        for name, amount in parts.items():
            out[name][key[0]] += amount
    return {name: {rid: fen for rid, fen in by_resource.items() if fen}
            for name, by_resource in out.items()}


def decompose(previous: MonthAggregates, current: MonthAggregates,
              cap: int = RESOURCE_CAP) -> dict:
    """The two months' totals (deducted fen, discounted cost 1e-8), their differences,
    and ``categories``: each with ``category``, ``amount`` (fen), ``resource_count``
    and ``resources`` (``resource_id``, ``amount``; largest magnitude first, at
    most ``cap``). The categories' amounts add up exactly to ``difference``."""
    parts = resource_parts(previous, current)
    categories = []
    for name in CATEGORIES:
        by_resource = parts.get(name, {})
        amount = sum(by_resource.values())
        if name in OPTIONAL and not by_resource and not amount:
            continue
        ranked = sorted(by_resource.items(), key=lambda item: (-abs(item[1]), item[0]))
        categories.append({"category": name, "amount": amount,
                           "resource_count": len(ranked),
                           "resources": [{"resource_id": rid, "amount": fen}
                                         for rid, fen in ranked[:cap]]})
    return {"previous_deducted": previous.deducted, "current_deducted": current.deducted,
            "difference": current.deducted - previous.deducted,
            "previous_discounted_cost": previous.discounted_cost,
            "current_discounted_cost": current.discounted_cost,
            "discounted_cost_difference": current.discounted_cost - previous.discounted_cost,
            "categories": categories}
