"""How a recharge is shown (REST and CLI): amount in yuan, times in business time;
the ledger transaction of its credit, never the provider's raw data."""

from __future__ import annotations

from feecenter.present.text import time_text, with_yuan

FIELDS = ("id", "uin", "amount", "channel", "payer", "out_trade_no", "state", "fail_reason",
          "provider_txn_id", "intl_card", "code_url", "source", "bound_payer", "prepay_id",
          "txn_id", "created_at", "expires_at", "paid_at", "ended_at")
TIMES = ("created_at", "expires_at", "paid_at", "ended_at")


def recharge_json(recharge: dict) -> dict:
    out = with_yuan({k: recharge.get(k) for k in FIELDS}, ("amount",))
    for name in TIMES:
        out[name] = time_text(recharge.get(name))
    return out
