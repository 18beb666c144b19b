"""What an account may invoice (INV-1) and its invoice debt (欠票, INV-7). Read-only.

The amount is kept per bucket, (selling entity, tax category) (INV-4):

- consumed: the cash consumption of the account's cost-bill lines
  (``bills.service.cash_consumed_by_product``: roll-ups plus the lines of the days
  not rolled up; refunds and downgrades negative), each product's put in the bucket
  of its catalog entity and tax category (the product's current ones);
- invoiced: Σ invoice_lines.amount of the account's invoices in any state, blue
  (applied, issuing, issued, reversed) positive and red negative;
- available = max(consumed - invoiced, 0); debt = max(invoiced - consumed, 0): a
  refund or downgrade of invoiced consumption (INV-7).

Commercial invoices (商业发票, INV-9) are no VAT invoice and belong to no bucket: the
amounts of the account's commercial-invoice requests that are open or resolved
(``commercial_requested``; rejected and withdrawn ones give theirs back) are their own
part, taken off the account's amount.

For the account (``net_invoiceable``): the invoiceable amount is Σ consumed -
Σ invoiced - commercial when positive (an application takes it from the buckets'
available amounts), and its negative part is the invoice debt: a bucket's debt lowers
what the other buckets may give, and consumption refunded after a commercial invoice
is a debt as well.

Money transferred in and not yet consumed (agents, groups) would be taken off; no
transfers exist yet, so that part is 0 (docs/invoices.md, "Gaps").
"""

from __future__ import annotations

import json
from collections import defaultdict

from sqlalchemy import Connection, func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require
from feecenter.bills.service import cash_consumed_by_product
from feecenter.catalog.rules import TAX_CATEGORIES
from feecenter.catalog.tables import products, selling_entities
from feecenter.invoices.rules import bucket_order
from feecenter.invoices.tables import invoice_lines
from feecenter.ledger.tables import ledger_accounts
from feecenter.service_requests.rules import OPEN_STATES, RESOLVED
from feecenter.service_requests.tables import service_requests

COMMERCIAL_INVOICE = "commercial_invoice"  # the service-request kind (invoices.requests)
COMMERCIAL_TAKING = (*OPEN_STATES, RESOLVED)  # the states whose amount is taken


def consumed_by_bucket(conn: Connection, uin: int) -> dict[tuple[str, str], int]:
    """(entity, tax category) -> cash consumed, fen."""
    by_product = cash_consumed_by_product(conn, uin)
    if not by_product:
        return {}
    p = products.c
    facts = {code: (entity, category) for code, entity, category in conn.execute(
        select(p.code, p.entity, p.tax_category).where(p.code.in_(sorted(by_product))))}
    missing = sorted(set(by_product) - set(facts))
    if missing:  # a product the catalog never had cannot be in a cost bill
        raise LookupError(f"products without catalog facts: {missing}")
    out: dict[tuple[str, str], int] = defaultdict(int)
    for code, fen in by_product.items():
        out[facts[code]] += fen
    return dict(out)


def invoiced_by_bucket(conn: Connection, uin: int) -> dict[tuple[str, str], int]:
    """(entity, tax category) -> Σ of the account's invoice lines (red ones negative)."""
    i = invoice_lines.c
    return {(entity, category): int(total) for entity, category, total in conn.execute(
        select(i.entity, i.tax_category, func.sum(i.amount)).where(i.uin == uin)
        .group_by(i.entity, i.tax_category))}


def commercial_requested(conn: Connection, uin: int) -> int:
    """INV-9: Σ amount (fen) of the account's commercial-invoice requests that are open
    or resolved; rejected and withdrawn ones take nothing."""
    r = service_requests.c
    found = conn.execute(select(r.fields).where(
        r.uin == uin, r.kind == COMMERCIAL_INVOICE, r.state.in_(COMMERCIAL_TAKING))).scalars()
    return sum(int(json.loads(fields)["amount"]) for fields in found)


def buckets(conn: Connection, uin: int) -> list[dict]:
    """Every bucket with consumption or invoices, in ``rules.bucket_order``."""
    consumed, invoiced = consumed_by_bucket(conn, uin), invoiced_by_bucket(conn, uin)
    names = dict(conn.execute(select(selling_entities.c.code, selling_entities.c.name_zh)).all())
    out = []
    for key in sorted(set(consumed) | set(invoiced), key=bucket_order):
        entity, category = key
        used, billed = consumed.get(key, 0), invoiced.get(key, 0)
        tax = TAX_CATEGORIES[category]
        out.append({"entity": entity, "entity_name": names.get(entity, entity),
                    "tax_category": category, "item_name": tax.name, "rate_bp": tax.rate_bp,
                    "consumed": used, "invoiced": billed, "available": max(used - billed, 0),
                    "debt": max(billed - used, 0)})
    return out


def owed(conn: Connection, uin: int) -> int:
    """What the account owes now, in fen: arrears plus credit advances not repaid
    (its ``arrears`` and ``advance`` ledger balances, read as funds' balance view reads
    them; both are ≤ 0). Money must be paid before it is invoiced (INV-1): applying
    is refused while this is > 0."""
    a = ledger_accounts.c
    rows = conn.execute(select(a.kind, a.balance).where(
        a.uin == uin, a.kind.in_(("arrears", "advance")))).all()
    return -sum(int(balance) for _, balance in rows)


def invoiceable(conn: Connection, actor: Actor, uin: int) -> dict:
    """INV-1: ``amount`` (what may be invoiced now), ``debt`` (INV-7), ``consumed``,
    ``invoiced``, ``commercial`` (open and resolved commercial-invoice requests, INV-9),
    ``transferred_unspent`` (0: no transfers yet), ``in_arrears`` (the account owes
    arrears or unrepaid credit: applying is refused) and the ``buckets``."""
    require(actor, uin, FINANCE)
    accounts.get_account(conn, SYSTEM, uin)  # an unknown UIN: NotFound, not "nothing"
    found = buckets(conn, uin)
    commercial = commercial_requested(conn, uin)
    net = net_invoiceable(found, commercial=commercial)
    return {"amount": max(net, 0), "debt": max(-net, 0),
            "consumed": sum(b["consumed"] for b in found),
            "invoiced": sum(b["invoiced"] for b in found), "commercial": commercial,
            "transferred_unspent": 0, "in_arrears": owed(conn, uin) > 0, "buckets": found}


def net_invoiceable(found: list[dict], *, commercial: int) -> int:
    """INV-1 for the whole account: Σ consumed - Σ invoiced over the buckets, less the
    ``commercial`` requests' amount (INV-9). What may be invoiced is this when positive —
    never the sum of the buckets' available amounts while another bucket is in debt (a
    refunded cloud invoice does not free the same money to be invoiced again as
    software) — and its negative part is the invoice debt (INV-7)."""
    return sum(b["consumed"] - b["invoiced"] for b in found) - commercial


def available_now(conn: Connection, uin: int) -> int:
    """What the account may invoice now, VAT or commercial, in fen (0: nothing). Read it
    under ``titles.lock_account`` to take from it."""
    return max(net_invoiceable(buckets(conn, uin), commercial=commercial_requested(conn, uin)), 0)


def invoice_debt(conn: Connection, uin: int) -> int:
    """INV-7: the account's invoice debt in fen (0: none); blocks withdrawal (#26)."""
    return max(-net_invoiceable(buckets(conn, uin), commercial=commercial_requested(conn, uin)),
               0)
