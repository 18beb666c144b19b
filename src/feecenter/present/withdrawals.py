"""How the withdrawable amount (WDR-1) is shown: the raw value, what may be taken and
every part, each a yuan string."""

from __future__ import annotations

from feecenter.present.text import with_yuan

PART_MONEY = ("cash", "invoice_debt", "unrepaid_advances", "frozen", "gift", "income",
              "transferred_in_unspent", "frozen_cash")


def withdrawable_json(view: dict) -> dict:
    return {**with_yuan(view, ("raw", "takeable")),
            "parts": with_yuan(view["parts"], PART_MONEY)}
