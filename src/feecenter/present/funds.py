"""How balances (BAL-1/2/7), 收支明细 entries (BAL-5) and money movements are shown:
every amount a yuan string, entry times in business time."""

from __future__ import annotations

from feecenter.funds.service import BalanceView, Movement
from feecenter.present.text import time_text, with_yuan

MONEY_FIELDS = ("cash", "income", "gift", "frozen", "arrears", "available", "credit_limit",
                "temp_credit", "credit_amount", "advances", "credit_balance",
                "real_credit_balance")
ENTRY_MONEY = ("amount", "cash_amount", "gift_amount", "coupon_amount", "credit_amount",
               "balance_after", "cash_after", "gift_after", "frozen_after")


def balance_json(view: BalanceView) -> dict:
    return with_yuan(view.to_dict(), MONEY_FIELDS)


def entry_json(entry: dict) -> dict:
    out = with_yuan(entry, ENTRY_MONEY)
    out["created_at"] = time_text(entry["created_at"])
    return out


def movement_json(movement: Movement) -> dict:
    return {"txn_id": movement.txn_id, "created": movement.created,
            "entry_ids": list(movement.entry_ids)}
