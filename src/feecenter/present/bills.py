"""How a postpaid L3 bill line is shown (BIL-1): fen as yuan ("12.30"), rated
amounts with 8 decimals, the quantity with 6 (1e-6 units), times in business
time; a line not at the list price shows "-" for list price, discount and
original cost (BIL-6). Usage of a resource stopped for arrears is shown as not
charged, with the reason (ARR-3)."""

from __future__ import annotations

from feecenter.clock import business_time_text
from feecenter.money import format_rated
from feecenter.present.text import with_yuan

LINE_FEN = ("deducted", "voucher_paid", "cash_paid", "gift_paid", "credit_paid", "arrears")
LINE_RATED = ("unit_price", "list_amount", "discounted_amount", "rounding_diff")
LINE_TIMES = ("period_start", "period_end", "deducted_at")
NOT_CHARGED_STOPPED = ("资源因欠费停服，停服期间的用量不计费",
                       "used while the resource was stopped for arrears: not charged")


def quantity_text(micro_units: int) -> str:
    """A quantity in 1e-6 units with 6 decimals."""
    return format_rated(micro_units * 100)[:-2]


def bill_line_json(line: dict) -> dict:
    out = with_yuan(line, LINE_FEN)
    for name in LINE_RATED:
        out[name] = format_rated(line[name])
    for name in LINE_TIMES:
        out[name] = business_time_text(line[name])
    out["quantity"] = quantity_text(line["quantity"])
    out["stopped_quantity"] = quantity_text(line["stopped_quantity"])  # ARR-3: not charged
    out["not_charged_reason"] = (" / ".join(NOT_CHARGED_STOPPED) if line["stopped_quantity"]
                                 else None)
    if line["price_kind"] != "list":  # BIL-6: list price, discount and original cost show "-"
        out["unit_price"] = out["list_amount"] = out["discount_bp"] = "-"
    return out
