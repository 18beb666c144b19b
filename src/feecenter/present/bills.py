"""How a postpaid L3 bill line is shown (BIL-1): fen as yuan ("12.30"), rated
amounts with 8 decimals, the quantities (metered, and what resource packages
covered, SET-10) in the billing item's unit with 6 decimals (stored in 1e-6
units), times in business time; a line not at the list price shows null for
list price, discount and original cost (BIL-6)."""

from __future__ import annotations

from feecenter.clock import business_time_text
from feecenter.money import format_rated
from feecenter.present.text import with_yuan

LINE_FEN = ("deducted", "voucher_paid", "cash_paid", "gift_paid", "credit_paid", "arrears")
LINE_RATED = ("unit_price", "list_amount", "discounted_amount", "rounding_diff")
LINE_TIMES = ("period_start", "period_end", "deducted_at")
LINE_QUANTITIES = ("quantity", "package_quantity")  # 1e-6 units


def bill_line_json(line: dict) -> dict:
    out = with_yuan(line, LINE_FEN)
    for name in LINE_RATED:
        out[name] = format_rated(line[name])
    for name in LINE_TIMES:
        out[name] = business_time_text(line[name])
    for name in LINE_QUANTITIES:
        out[name] = format_rated(line[name] * 100)[:-2]  # 1e-6 units: 6 decimals
    if line["price_kind"] != "list":  # BIL-6: no list price, discount or original cost
        out["unit_price"] = out["list_amount"] = out["discount_bp"] = None
    return out
