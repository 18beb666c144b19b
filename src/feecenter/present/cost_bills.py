"""How cost bills are shown (BIL-1, BIL-6): the roll-up sums of L0–L2 with fen as
yuan ("12.30") and costs and the precision difference in 1e-8 yuan with 8
decimals; an L3 line with its components, where a contract- or fixed-price line
has null list price, discount and original cost (rendered "-", BIL-6)."""

from __future__ import annotations

from feecenter.present.text import rated, time_text, with_yuan

SUM_FEN = ("deducted", "voucher_paid", "cash_paid", "gift_paid")
SUM_RATED = ("original_cost", "discounted_cost", "precision_diff")
LINE_RATED = ("unit_price", "original_cost", "discounted_cost", "precision_diff")


def sums_json(group: dict) -> dict:
    """A group of roll-up sums (or an L3 line's amounts) rendered."""
    out = with_yuan(group, SUM_FEN)
    for name in SUM_RATED:
        if name in out:
            out[name] = rated(out[name])
    return out


def line_json(line: dict) -> dict:
    """An L3 line: amounts as strings, times in business time, days as ISO dates."""
    out = sums_json(line)
    out["unit_price"] = rated(line["unit_price"])
    for name in ("deducted_at", "usage_start", "usage_end"):
        out[name] = time_text(line[name])
    out["deducted_on"] = line["deducted_on"].isoformat()
    return out
