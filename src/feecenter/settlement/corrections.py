"""Usage corrections that lower a settled quantity (SET-9): negative adjustment lines,
given back as the adjusted lines were paid.

The late pass (``settlement.service``) finds that a (resource, item) of a settled
period now has less usage than its lines billed: metering sent a higher revision
of a record with a lower quantity. ``credit_back`` writes, per line, a new
``kind = adjustment`` line with the negative difference — never an edit:

- what is given back is the *charged* quantity first: a resource package's
  coverage (SET-10) is not given back to the package, and usage while the
  resource was stopped (ARR-3) was never charged, so of the lowered quantity
  less its stopped part at most the quantity the lines charged
  (``quantity - package_quantity - stopped_quantity``) is priced, at the top of
  what the month charged (tiers continue, in reverse); a fixed price already
  charged this month gives nothing back;
- the amount is rounded half-up to fen once per (account, product) transaction
  (SET-3), and no line gives back more fen than its (resource, item) was
  deducted for the period;
- the fen are split over voucher, gift, cash, credit and arrears in proportion
  to what paid the (resource, item)'s earlier lines of the period
  (``money.split_proportionally``); the coupon share goes back to the cash
  coupons that paid the period's transaction as far as they take it (ORD-4's
  rule: vouchers and discount coupons are not returned); gift goes to gift,
  cash and credit to cash, and the arrears share cancels arrears still owed
  (``funds.return_postpaid``: one ``return`` ledger transaction keyed like an
  adjustment charge, ``settle:{cycle}:{period}:{uin}:adj{n}:{digest}:{product}``);
- its 收支明细 ``return`` entry counts what the cash coupons got back in
  ``amount`` and ``coupon_amount`` (BAL-5); when only coupons get money back the
  entry is on their ``coupon_return`` transaction (``funds.record_coupon_only``).
- a frozen cycle of a month not yet settled (FRZ-5) gives nothing back: what the
  balances would get is taken off the month's cost (``monthly_freeze.month_open``,
  ``lower_month``); a frozen cycle of a settled month gives the balances' share back
  as the settlement day's deduction was paid (``monthly_freeze.settled_split``).
  The lines' ``txn_id`` names the entry's transaction (None when nothing moved).
"""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, func, select

from feecenter.clock import Clock
from feecenter.funds import service as funds
from feecenter.money import RATE_PER_FEN, split_proportionally
from feecenter.settlement import extensions, monthly_freeze, rating, rules
from feecenter.settlement.model import ProductCharge, RatedLine, RunContext
from feecenter.settlement.posting import Stamp, only_item, charges_of, insert_lines
from feecenter.settlement.tables import bill_lines

SOURCES = ("voucher_paid", "gift_paid", "cash_paid", "credit_paid", "arrears")


def credit_back(conn: Connection, clock: Clock, run: RunContext, lines: list[RatedLine]) -> int:
    """Give back the lowered quantity of each line (``line.quantity``, and of it
    ``line.stopped``, the part used while the resource was stopped: ARR-3, never charged
    so never given back; ``line.quantity - line.stopped`` >= 0), in the caller's
    transaction (its account locked); the number of lines written."""
    paid = _paid(conn, run, lines)
    for line in lines:
        line.chargeable = min(line.quantity - line.stopped, max(paid[line.key][0], 0))
    month = rating.month_to_date(conn, run.cycle, run.period, lines, run.book,
                                 include_period=True)
    for line in lines:  # price the top of what the month charged
        if line.key in month.before:
            month.before[line.key] -= line.chargeable
    rating.rate_lines(conn, run.book, lines, month)
    stamp = Stamp(conn, run.period, clock.now())
    rows: list[tuple] = []
    for charge in charges_of(run, lines):
        rows += _give_back(conn, clock, run, charge, paid, stamp)
    insert_lines(conn, rows)
    return len(rows)


def _paid(conn: Connection, run: RunContext, lines: list[RatedLine]) -> dict[tuple, list[int]]:
    """Per (resource, item) of the lines: [charged quantity, deducted, *SOURCES] of the
    period's lines so far."""
    b = bill_lines.c
    uin = lines[0].uin
    sums = [func.sum(b.quantity - b.package_quantity - b.stopped_quantity), func.sum(b.deducted),
            *(func.sum(b[name]) for name in SOURCES)]
    rows = conn.execute(select(b.resource_id, b.billing_item, *sums).where(
        b.uin == uin, b.cycle == run.cycle, b.period_key == run.period.key,
        b.resource_id.in_(bindparam("ids", expanding=True)))
        .group_by(b.resource_id, b.billing_item),
        {"ids": sorted({line.resource_id for line in lines})})
    found = {(row[0], row[1]): [int(value or 0) for value in row[2:]] for row in rows}
    return {line.key: found.get(line.key, [0] * (2 + len(SOURCES))) for line in lines}


def _give_back(conn: Connection, clock: Clock, run: RunContext, charge: ProductCharge,
               paid: dict[tuple, list[int]], stamp: Stamp) -> list[tuple]:
    """Move one transaction's money back and return its negative lines as rows."""
    credits = [min(share.deducted, max(paid[line.key][1], 0))
               for line, share in zip(charge.lines, charge.shares)]
    weights = [sum(max(paid[line.key][2 + k], 0) for line in charge.lines)
               for k in range(len(SOURCES))]
    total = sum(credits)
    parts = split_proportionally(total, weights) if total else [0] * len(SOURCES)
    voucher, gift, cash, credit, arrears = parts = _as_settled(conn, run, charge, parts)
    returned = (extensions.return_to_postpaid_coupons(conn, clock, run, charge, voucher)
                if voucher else None)
    coupon = returned.amount if returned is not None else 0
    entry = {"deduct_mode": run.deduct_mode, "product_code": charge.product,
             "billing_item": only_item(charge), "memo": run.memo}
    txn_id = None
    lowered = gift + cash + credit + arrears
    if lowered and monthly_freeze.month_open(conn, run, charge.uin, charge.product, lowered):
        monthly_freeze.lower_month(conn, clock, run, charge, lowered)  # FRZ-5: nothing paid yet
        lowered = 0
    if lowered:  # one return entry, the coupons' share in it (BAL-5)
        txn_id = funds.return_postpaid(
            conn, clock, charge.uin, key=charge.key, gift=gift, cash=cash + credit,
            arrears=arrears, coupon=coupon,
            revenue_account_id=run.revenue[run.book.products[charge.product].entity],
            **entry).txn_id
    elif coupon:  # only coupons get money back: the entry is their return's (BAL-5)
        txn_id = returned.txn_id
        if returned.created:
            funds.record_coupon_only(conn, clock, charge.uin, txn_id, "return", coupon,
                                     **entry)
    split = rules.split_payment(credits, parts)
    return [_row(run, line, fen, line_parts, txn_id, stamp)
            for line, fen, line_parts in zip(charge.lines, credits, split)]


def _as_settled(conn: Connection, run: RunContext, charge: ProductCharge,
                parts: list[int]) -> list[int]:
    """FRZ-5: a frozen cycle of a settled month gives the balances' share back as the
    settlement day's deduction took it (its lines show the freeze's split)."""
    split = monthly_freeze.settled_split(conn, run, charge.uin, charge.product)
    balances = sum(parts[1:])
    if split is None or not balances:
        return parts
    return [parts[0], *split_proportionally(balances, list(split))]


def _row(run: RunContext, line: RatedLine, fen: int, parts: list[int], txn_id: int | None,
         stamp: Stamp) -> tuple:
    """A negative adjustment line in posting.LINE_COLUMNS order."""
    facts, rate = line.facts, line.rate
    voucher, gift, cash, credit, arrears = (-part for part in parts)
    return (line.uin, line.resource_id, facts.name, facts.product, facts.region, line.item,
            facts.project_id, facts.project_name, run.cycle, run.period.key, stamp.period_start,
            stamp.period_end, -line.quantity, line.chargeable + line.stopped - line.quantity,
            rate.price_kind, rate.unit_price, -rate.list_amount, rate.discount_bp, -rate.amount,
            -fen, rate.amount - fen * RATE_PER_FEN, voucher, cash, gift, credit, arrears, txn_id,
            stamp.now, run.kind, run.sequence, run.originals.get(line.key), run.reason,
            -line.stopped)
