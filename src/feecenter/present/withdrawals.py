"""How withdrawals are shown (WDR-1..6): the withdrawable amount with every part, a
preview, a withdrawal with its legs; fen amounts as yuan strings, stored times as
business time (Asia/Shanghai)."""

from __future__ import annotations

from feecenter.present.text import time_text, with_yuan

PART_MONEY = ("cash", "invoice_debt", "unrepaid_advances", "frozen", "gift", "income",
              "transferred_in_unspent", "frozen_cash")
LEG_TIMES = ("estimate_from", "estimate_to", "settled_at")
WITHDRAWAL_TIMES = ("applied_at", "finished_at")


def withdrawable_json(view: dict) -> dict:
    return {**with_yuan(view, ("raw", "takeable")),
            "parts": with_yuan(view["parts"], PART_MONEY)}


def _times(view: dict, names) -> dict:
    return {**view, **{name: time_text(view[name]) for name in names if name in view}}


def leg_json(leg: dict) -> dict:
    return _times(with_yuan(leg, ("amount",)), LEG_TIMES)


def preview_json(view: dict) -> dict:
    return {**with_yuan(view, ("amount",)), "legs": [leg_json(leg) for leg in view["legs"]],
            "withdrawable": withdrawable_json(view["withdrawable"])}


def withdrawal_json(view: dict) -> dict:
    out = _times(with_yuan(view, ("amount",)), WITHDRAWAL_TIMES)
    out["legs"] = [leg_json(leg) for leg in view["legs"]]
    return out


def payout_leg_json(leg: dict) -> dict:
    """A bank leg in the operators' payout queue, with its payee."""
    return {**leg_json({k: v for k, v in leg.items() if k != "next_attempt_at"}),
            "hold_id": leg["hold_id"]}
