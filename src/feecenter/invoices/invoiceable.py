"""What an account may invoice (INV-1) and its invoice debt (欠票, INV-7). Read-only.

The amount is kept per bucket, (selling entity, tax category) (INV-4):

- consumed: the cash consumption of the account's cost-bill lines
  (``bills.service.cash_consumed_by_product``: roll-ups plus the lines of the days
  not rolled up; refunds and downgrades negative), each product's put in the bucket
  of its catalog entity and tax category (the product's current ones);
- invoiced: Σ invoice_lines.amount of the account's invoices in any state, blue
  (applied, issuing, issued, reversed) positive and red negative;
- available = max(consumed − invoiced, 0); debt = max(invoiced − consumed, 0): a
  refund or downgrade of invoiced consumption (INV-7). A bucket's debt does not
  reduce another bucket's available amount.

Money transferred in and not yet consumed (agents, groups) would be taken off; no
transfers exist yet, so that part is 0 (docs/invoices.md, "Gaps").
"""

from __future__ import annotations

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
    """INV-1: ``amount`` (Σ available), ``debt`` (Σ debt, INV-7), ``consumed``,
    ``invoiced``, ``transferred_unspent`` (0: no transfers yet), ``in_arrears`` (the
    account owes arrears or unrepaid credit: applying is refused) and the
    ``buckets``."""
    require(actor, uin, FINANCE)
    accounts.get_account(conn, SYSTEM, uin)  # an unknown UIN: NotFound, not "nothing"
    found = buckets(conn, uin)
    return {"amount": sum(b["available"] for b in found), "debt": sum(b["debt"] for b in found),
            "consumed": sum(b["consumed"] for b in found),
            "invoiced": sum(b["invoiced"] for b in found), "transferred_unspent": 0,
            "in_arrears": owed(conn, uin) > 0, "buckets": found}


def invoice_debt(conn: Connection, uin: int) -> int:
    """INV-7: the account's invoice debt in fen (0: none); blocks withdrawal (#26)."""
    return sum(b["debt"] for b in buckets(conn, uin))

