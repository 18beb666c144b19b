"""The seam where resource packages (SET-10) and postpaid coupons (SET-6) plug in.

Settling a chunk of accounts runs, in one database transaction
(``service._settle_chunk``; late adjustments run the same steps)::

    usage per resource × item ──► RatedLine(quantity = chargeable)        rating.py
        cover_with_resource_packages(conn, clock, run, lines)       ◄── SET-10
    price each line's chargeable quantity (PriceBook)                     rating.py
    ProductCharge per (account, product): total rounded once (SET-3)      posting.py
        pay_with_postpaid_coupons(conn, clock, run, charges)        ◄── SET-6
    deduct each charge's ``due`` (gift, cash, credit, arrears)            funds/bulk.py
    split voucher, gift, cash, credit, arrears over the lines; L3 lines   posting.py

Packages act on **quantities**, before pricing, so graduated tiers price
only what is left; coupons act on the **rounded amount in fen** of one
product transaction, before the balances pay the rest. Both hooks get all
of the chunk's lines or charges at once (so they can read and write
set-based, one query per chunk) and the connection of the chunk's
transaction: whatever they write commits, or rolls back, with the
deductions and the lines — a crash and rerun stays exact (SET-8). They must
be deterministic given the database state. ``run.kind`` says whether the
lines are a period's charges or late adjustments (SET-9).

Both ask one question per chunk first (which of its accounts hold a package
in force, or an unused postpaid coupon) and do nothing more for the others,
so a chunk without packages or coupons costs two indexed queries.
"""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import Connection

from feecenter.clock import Clock
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.packages import rules as package_rules
from feecenter.packages import service as packages
from feecenter.settlement.model import ProductCharge, RatedLine, RunContext


def cover_with_resource_packages(conn: Connection, clock: Clock, run: RunContext,
                                 lines: list[RatedLine]) -> None:
    """SET-10: let prepaid resource packages cover usage before it is charged.

    A covered line's ``chargeable`` drops by what its packages cover (its
    ``quantity`` stays the metered one) and ``covered`` lists (package,
    quantity); every covered quantity is written to ``package_uses`` in this
    transaction. The lines are then priced on what is chargeable.
    """
    if not lines:
        return
    period = run.period
    found = packages.in_force(conn, sorted({line.uin for line in lines}), period.start,
                              cycle=run.cycle, period_key=period.key)
    if not found:
        return
    by_uin: dict[int, list[RatedLine]] = defaultdict(list)
    for line in lines:
        if line.uin in found:
            by_uin[line.uin].append(line)
    month = packages.month_of(period.start)
    for uin, own in by_uin.items():
        needs = [package_rules.Need(line.resource_id, line.facts.product, line.item,
                                    line.facts.region, line.chargeable) for line in own]
        covers = package_rules.cover(needs, found[uin], period.start)
        if not covers:
            continue
        traces: dict[tuple[str, str], list] = defaultdict(list)
        for cover in covers:
            traces[(cover.resource_id, cover.item)].append((cover.package_id, cover.quantity))
        for line in own:
            line.covered = tuple(traces.get((line.resource_id, line.item), ()))
            line.chargeable -= sum(quantity for _, quantity in line.covered)
        packages.record_uses(conn, clock, uin, covers, cycle=run.cycle, period_key=period.key,
                             month=month, kind=run.kind, sequence=run.sequence)


def pay_with_postpaid_coupons(conn: Connection, clock: Clock, run: RunContext,
                              charges: list[ProductCharge]) -> None:
    """SET-6: let postpaid coupons pay part of each product transaction.

    An account's charges of the run are one payment to the coupons (a
    threshold counts them all, CPN-6); ``coupons.use_now`` plans, takes and
    confirms the coupons, writing their ledger movement (coupon funding →
    revenue) in this transaction. ``charge.voucher`` is what coupons paid
    (``charge.voucher_txn`` that movement); the balances pay ``charge.due``.
    Coupons never pay in arrears (ARR-5).
    """
    holders = coupons.holders(conn, clock, [c.uin for c in charges if c.total > 0],
                              coupon_rules.POSTPAID)
    if not holders:
        return
    by_uin: dict[int, list[ProductCharge]] = defaultdict(list)
    for charge in charges:
        if charge.uin in holders and charge.total > 0:
            by_uin[charge.uin].append(charge)
    for uin, own in sorted(by_uin.items()):
        lines = [coupon_rules.Line(reference=charge.key, product_code=charge.product,
                                   amount=charge.total,
                                   entity=run.book.products[charge.product].entity)
                 for charge in own]
        paid = coupons.use_now(conn, clock, uin, lines,
                               key=f"{run.key_prefix}:{uin}{run.key_suffix}:coupons")
        for charge, fen, txn_id in zip(own, paid.line_paid, paid.line_txn):
            charge.voucher, charge.voucher_txn = fen, txn_id


def return_to_postpaid_coupons(conn: Connection, clock: Clock, run: RunContext,
                               charge: ProductCharge, amount: int) -> coupons.Settled:
    """SET-9: a lowered quantity's coupon share (fen) goes back to the cash coupons that
    paid the period's transaction of the product, as far as they take it (ORD-4's
    rule: vouchers and discount coupons are not returned); the return made (its
    ``amount``, and its ledger transaction when it moved any)."""
    reference = f"{run.key_prefix}:{charge.uin}:{charge.product}"  # the period's charge
    return coupons.refund(conn, clock, charge.uin, reference, key=f"{charge.key}:coupons",
                          amount=amount)
