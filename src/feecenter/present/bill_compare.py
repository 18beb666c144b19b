"""The month-over-month explainer (BIL-8) as plain JSON values: fen as yuan strings,
the discounted cost (1e-8 yuan) as 8-decimal strings. No database, no I/O."""

from __future__ import annotations

from feecenter.money import format_rated, format_yuan

FEN = ("previous_deducted", "current_deducted", "difference")
RATED = ("previous_discounted_cost", "current_discounted_cost", "discounted_cost_difference")


def comparison_json(out: dict) -> dict:
    """``bills.month_over_month.explain``'s answer for REST."""
    return {**out, **{name: format_yuan(out[name]) for name in FEN},
            **{name: format_rated(out[name]) for name in RATED},
            "categories": [_category(category) for category in out["categories"]]}


def _category(category: dict) -> dict:
    return {**category, "amount": format_yuan(category["amount"]),
            "resources": [{**entry, "amount": format_yuan(entry["amount"])}
                          for entry in category["resources"]]}
