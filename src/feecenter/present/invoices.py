"""How invoices (INV-1..9, feecenter.invoices) are shown on REST and in the console:
fen amounts as yuan strings, stored times as business time; the invoiceable amount
with its parts and buckets, an invoice with its lines, a reversal, a preview."""

from __future__ import annotations

from datetime import date, datetime

from feecenter.money import format_yuan
from feecenter.present.text import time_text, with_yuan

INVOICE_MONEY = ("amount", "net_amount", "tax_amount")
INVOICEABLE_MONEY = ("amount", "debt", "consumed", "invoiced", "commercial",
                     "transferred_unspent")
BUCKET_MONEY = ("consumed", "invoiced", "available", "debt")
INVOICE_TIMES = ("applied_at", "issued_at")
REVERSAL_TIMES = ("submitted_at", "due_at", "decided_at")


def _time(value) -> str | None:
    if isinstance(value, datetime):
        return time_text(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def invoiceable_json(view: dict) -> dict:
    out = with_yuan(view, INVOICEABLE_MONEY)
    out["buckets"] = [with_yuan(b, BUCKET_MONEY) for b in view.get("buckets", [])]
    return out


def line_json(line: dict) -> dict:
    return with_yuan(line, INVOICE_MONEY)


def invoice_json(view: dict) -> dict:
    out = with_yuan(view, INVOICE_MONEY)
    out.update({name: _time(view.get(name)) for name in INVOICE_TIMES if name in view})
    out["lines"] = [line_json(line) for line in view.get("lines", [])]
    return out


def preview_json(preview: dict) -> dict:
    return {**with_yuan(preview, ("amount",)),
            "invoices": [{**with_yuan(i, INVOICE_MONEY),
                          "lines": [line_json(line) for line in i.get("lines", [])]}
                         for i in preview.get("invoices", [])]}


def reversal_json(view: dict) -> dict:
    out = with_yuan(view, ("amount",)) if view.get("amount") is not None else dict(view)
    out.update({name: _time(view.get(name)) for name in REVERSAL_TIMES if name in view})
    return out


def verification_json(result: dict) -> dict:
    """A verification's answer: amounts (fen) as yuan when the invoice matched."""
    return with_yuan(result, [k for k in INVOICE_MONEY if k in result])


def title_json(view: dict | None) -> dict | None:
    if view is None:
        return None
    return {**view, "updated_at": _time(view.get("updated_at"))}


def yuan(fen: int | None) -> str | None:
    return None if fen is None else format_yuan(fen)
