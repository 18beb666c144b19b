"""How a postpaid L3 bill line is shown (BIL-1): fen as yuan ("12.30"), rated
amounts with 8 decimals, the quantities (metered, what resource packages
covered, SET-10, and what was used while the resource was stopped for arrears,
ARR-3) in the billing item's unit with 6 decimals (stored in 1e-6 units), times
in business time; a line not at the list price shows null for list price,
discount and original cost (BIL-6). A stopped part is not charged, and the line
says why (``not_charged_reason``, ARR-3)."""

from __future__ import annotations

from feecenter.clock import business_time_text
from feecenter.money import format_rated
from feecenter.present.text import with_yuan

LINE_FEN = ("deducted", "voucher_paid", "cash_paid", "gift_paid", "credit_paid", "arrears")
LINE_RATED = ("unit_price", "list_amount", "discounted_amount", "rounding_diff")
LINE_TIMES = ("period_start", "period_end", "deducted_at")
LINE_QUANTITIES = ("quantity", "package_quantity", "stopped_quantity")  # 1e-6 units
NOT_CHARGED_STOPPED = ("资源因欠费停服，停服期间的用量不计费",
                       "used while the resource was stopped for arrears: not charged")


def line_quantity(micro: int) -> str:
    """A quantity stored in 1e-6 units, in the item's unit with 6 decimals (SET-10)."""
    return format_rated(micro * 100)[:-2]


def bill_line_json(line: dict) -> dict:
    out = with_yuan(line, LINE_FEN)
    for name in LINE_RATED:
        out[name] = format_rated(line[name])
    for name in LINE_TIMES:
        out[name] = business_time_text(line[name])
    for name in LINE_QUANTITIES:
        out[name] = line_quantity(line[name])
    out["not_charged_reason"] = (" / ".join(NOT_CHARGED_STOPPED) if line["stopped_quantity"]
                                 else None)  # ARR-3
    if line["price_kind"] != "list":  # BIL-6: no list price, discount or original cost
        out["unit_price"] = out["list_amount"] = out["discount_bp"] = None
    return out
