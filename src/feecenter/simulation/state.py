"""The final state and its hash: what two runs of one seed must agree on, byte
for byte, on either backend.

Surrogate ids (sequences differ after a rolled-back or killed transaction, and
between SQLite and PostgreSQL) and random resource ids are left out: resources
are named by their simulation label, keys have their digits and digests replaced.
"""

from __future__ import annotations

import hashlib
import json
import re

from sqlalchemy import select

from feecenter.arrears.tables import arrears_cases
from feecenter.coupons.tables import coupons
from feecenter.invoices.tables import invoice_applications, invoices
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.orders.tables import orders
from feecenter.renewal.tables import renewal_accounts, renewal_attempts, renewal_settings
from feecenter.resources.tables import resource_stops, resources
from feecenter.settlement.tables import bill_lines

_DIGITS = re.compile(r"\d+")
_DIGEST = re.compile(r":adj(\d+):[0-9a-f]{12}")  # late-usage keys hash their resource ids
# coupon confirmations and returns hash their reference or key, which hold surrogate ids
_CONFIRM = re.compile(r"(coupon:(?:confirm|return):\d+:)[0-9a-f]{40}")


def snapshot(engine) -> dict:
    with engine.connect() as conn:
        label = dict(conn.execute(select(resources.c.id, resources.c.name)).all())
        rid = re.compile("|".join(map(re.escape, label))) if label else None

        def canon(text):
            text = rid.sub(lambda m: label[m.group(0)] or "?", text) if rid and text else text
            if not text:
                return text
            return _DIGITS.sub("#", _DIGEST.sub(r":adj\1:", _CONFIRM.sub(r"\1", text)))

        t, a, p = ledger_transactions.c, ledger_accounts.c, ledger_postings.c
        key = dict(conn.execute(select(t.id, t.idempotency_key)).all())
        code = dict(conn.execute(select(a.id, a.code)).all())
        return {
            "balances": sorted(conn.execute(select(a.code, a.balance).where(a.cached)).all()),
            "postings": sorted((canon(key[r.txn_id]), code[r.account_id], r.amount)
                               for r in conn.execute(select(p.txn_id, p.account_id, p.amount))),
            "resources": sorted((r.name, r.uin, r.product_code, r.spec_item, r.state, r.pay_mode,
                                 str(r.period_end)) for r in conn.execute(select(resources))),
            "orders": sorted((r.uin, label_of(label, r.resource_id), r.kind, r.state, r.amount,
                              r.paid_coupon, r.paid_gift, r.paid_cash, r.paid_credit,
                              r.refunded_gift, r.refunded_cash) for r in conn.execute(select(orders))),
            "bill_lines": sorted((r.uin, label_of(label, r.resource_id), r.billing_item, r.cycle,
                                  r.period_key, r.kind, r.sequence, r.quantity,
                                  r.package_quantity, r.discounted_amount, r.deducted,
                                  r.cash_paid, r.gift_paid, r.credit_paid, r.arrears)
                                 for r in conn.execute(select(bill_lines))),
            "coupons": sorted((r.uin, r.kind, r.face_amount, r.state) for r in
                              conn.execute(select(coupons))),
            "arrears": sorted((r.uin, r.state) for r in conn.execute(select(arrears_cases))),
            "stops": sorted((label_of(label, r.resource_id), r.reason, str(r.stopped_at),
                             str(r.ended_at)) for r in conn.execute(select(resource_stops))),
            "renewal_settings": sorted((label_of(label, r.resource_id), r.auto_renew, r.months)
                                       for r in conn.execute(select(renewal_settings))),
            "renewal_accounts": sorted((r.uin, r.auto_renew_default, r.unified_day)
                                       for r in conn.execute(select(renewal_accounts))),
            "renewal_attempts": sorted((label_of(label, r.resource_id), str(r.term_end), r.state,
                                        r.reason_code, r.tries, str(r.last_tried_on))
                                       for r in conn.execute(select(renewal_attempts))),
            "invoices": _invoices(conn),
        }


def _invoices(conn) -> list:
    """Each invoice by its application's request key (red ones by their blue one's), with
    its entity, kind, state, amount and number; surrogate ids and check codes left out."""
    a = invoice_applications.c
    key = dict(conn.execute(select(a.id, a.request_key)).all())
    rows = conn.execute(select(invoices)).all()
    blue = {r.id: key.get(r.application_id) for r in rows}
    return sorted((r.uin, key.get(r.application_id) or f"red of {blue.get(r.original_id)}",
                   r.entity, r.kind, r.state, r.amount, r.tax_amount, r.invoice_number or "")
                  for r in rows)


def label_of(label: dict, resource_id: str) -> str:
    return label.get(resource_id) or "?"


def state_hash(engine) -> str:
    text = json.dumps(snapshot(engine), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()
