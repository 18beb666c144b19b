"""How corporate remittances are shown (REST and CLI): a record (amount in its
currency's units as a decimal string, "12.30" yuan for CNY; state with its zh/en
names; times in business time; operators' labels only when the row carries them),
an import's summary and record, a payer name, a legacy transfer with its forms and
refund, and a received push."""

from __future__ import annotations

from decimal import Decimal

from feecenter.money import format_yuan
from feecenter.present.text import time_text
from feecenter.remittances.rules import STATE_NAMES
from feecenter.remittances.statements.common import minor_digits

RECORD_FIELDS = ("id", "uin", "state", "reason", "currency", "bank_reference",
                 "receiving_account", "payee_account", "payer_name", "payer_account",
                 "payer_bank", "memo", "import_id", "line", "reviews", "assigned_by",
                 "released_by", "txn_id")
RECORD_TIMES = ("arrived_at", "flagged_at", "credited_at", "updated_at")
COUNTS = ("lines", "credited", "unassigned", "pending", "held", "not_ours", "duplicates")


def amount_text(minor: int, currency: str) -> str:
    """Minor units of ``currency`` as a decimal string: CNY 1230 -> "12.30", JPY 500 -> "500"."""
    if currency == "CNY":
        return format_yuan(minor)
    digits = minor_digits(currency)
    return str(Decimal(minor).scaleb(-digits)) if digits else str(minor)


OPERATOR_LABELS = {"assigned_by": "assigned", "released_by": "released"}


def remittance_json(row: dict) -> dict:
    """A record; one as a customer sees it (``service.as_seen_by``: no ``assigned_by``
    / ``released_by``) keeps them out, and every record says ``assigned`` and
    ``released`` (bool)."""
    out = {k: row.get(k) for k in RECORD_FIELDS if k in row or k not in OPERATOR_LABELS}
    for label, done in OPERATOR_LABELS.items():
        out[done] = bool(row[done]) if done in row else row.get(label) is not None
    out["amount"] = amount_text(row["amount"], row["currency"])
    out["value_date"] = row["value_date"].isoformat() if row.get("value_date") else None
    out["state_zh"], out["state_en"] = STATE_NAMES.get(row["state"], (row["state"], row["state"]))
    out["flagged"] = row.get("flagged_at") is not None
    for name in RECORD_TIMES:
        out[name] = time_text(row.get(name))
    return out


def legacy_json(view: dict) -> dict:
    """``cases.legacy_transfer``: a legacy transfer, what no form credited yet, the forms
    credited from it and the refund of its remainder (RMT-10, RMT-11)."""
    currency = view["currency"]
    refund = view["refund"]
    return {"remittance_id": view["remittance_id"], "state": view["state"],
            "currency": currency, "amount": amount_text(view["amount"], currency),
            "remaining": amount_text(view["remaining"], currency),
            "credits": [{"request_id": c["request_id"], "uin": c["uin"],
                         "amount": amount_text(c["amount"], currency), "txn_id": c["txn_id"],
                         "operator": c["operator"], "created_at": time_text(c["created_at"])}
                        for c in view["credits"]],
            "refund": None if refund is None else {
                "amount": amount_text(refund["amount"], refund["currency"]),
                "reason": refund["reason"], "confirmed_by": refund["confirmed_by"],
                "confirmed_at": time_text(refund["confirmed_at"]),
                "arrives_by": refund["arrives_by"].isoformat(), "txn_id": refund["txn_id"]}}


def summary_json(summary) -> dict:
    """An ``ImportSummary``: the counts, the CNY totals in yuan, the not-ours references."""
    return {"import_id": summary.import_id, **{k: getattr(summary, k) for k in COUNTS},
            "new_amount": format_yuan(summary.new_fen),
            "credited_amount": format_yuan(summary.credited_fen),
            "not_ours_references": list(summary.not_ours_references)}


def import_json(row: dict) -> dict:
    """A ``remittance_imports`` row."""
    return {"id": row["id"], "source": row["source"], "digest": row["digest"],
            "operator": row["operator"], "imported_at": time_text(row["imported_at"]),
            **{k: row[k] for k in COUNTS},
            "new_amount": format_yuan(row["new_fen"]),
            "credited_amount": format_yuan(row["credited_fen"])}


def payer_json(row: dict) -> dict:
    return {"id": row["id"], "uin": row["uin"], "name": row["name"],
            "signed_by": row["signed_by"], "signed_at": time_text(row["signed_at"]),
            "removed_by": row.get("removed_by"), "removed_at": time_text(row.get("removed_at"))}


def push_json(row: dict) -> dict:
    """A ``remittance_pushes`` row."""
    return {"id": row["id"], "received_at": time_text(row["received_at"]),
            "outcome": row["outcome"], "reason": row["reason"],
            "nonce": row["presented_nonce"], "body_digest": row["body_digest"],
            "bank_reference": row["bank_reference"], "remittance_id": row["remittance_id"]}
