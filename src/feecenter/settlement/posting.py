"""Posting rated lines (SET-3, SET-5, BAL-3..5): deductions and L3 bill lines, in bulk.

A **transaction** (``ProductCharge``) is one account's deduction for one
product in one period, key ``settle:{cycle}:{period}:{uin}:{product}`` (a late
adjustment's: ``settle:{cycle}:{period}:{uin}:adj{n}:{digest}:{product}``). Its exact
discounted total (1e-8 yuan) is rounded half-up to fen once and shared over
its lines (``rules.round_transaction``). Postpaid coupons may pay part of it
(SET-6, ``extensions``); the balances pay the rest (a monthly-freeze product's charge is
frozen instead, ``monthly_freeze``, FRZ-5; its lines show the freeze) — ``funds.bulk``, with
``funds.spend(postpaid=True)``'s semantics, for every charge of the chunk at
once. Its 收支明细 entry shows the whole of it and what coupons paid of it (BAL-5;
a charge coupons paid in full has the coupon payment's entry, ``record_coupon_paid``).
What paid it (voucher, gift, cash, credit, arrears) is split over its
lines (``rules.split_payment``), and the lines are written with one
``executemany`` on the DB-API cursor (``db.precompiled``: SQLAlchemy's per-row
processing would cost as much as the insert itself).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert

from feecenter.clock import Clock, db_time
from feecenter.db.precompiled import Precompiled
from feecenter.funds import bulk
from feecenter.periods import Period
from feecenter.settlement import extensions, monthly_freeze, rules
from feecenter.settlement.model import ProductCharge, RatedLine, RunContext
from feecenter.settlement.tables import bill_lines

LINE_COLUMNS = (  # the table's column order: the rows go to the driver as they are
    "uin", "resource_id", "resource_name", "product_code", "region", "billing_item",
    "project_id", "project_name", "cycle", "period_key", "period_start", "period_end",
    "quantity", "package_quantity", "price_kind", "unit_price", "list_amount", "discount_bp",
    "discounted_amount",
    "deducted", "rounding_diff", "voucher_paid", "cash_paid", "gift_paid", "credit_paid",
    "arrears", "txn_id", "deducted_at", "kind", "sequence", "adjusts_line_id", "reason",
    "stopped_quantity")


@dataclass
class Posted:
    """Per account: fen deducted and its first ledger transaction; lines written."""

    accounts: dict[int, tuple[int, int | None]] = field(default_factory=dict)
    lines: int = 0


def charges_of(run: RunContext, lines: list[RatedLine]) -> list[ProductCharge]:
    """Group lines (sorted by account, resource, item) into per-product transactions,
    an account's products in name order."""
    by_account: dict[int, dict[str, list[RatedLine]]] = {}
    for line in lines:
        products = by_account.get(line.uin)
        if products is None:
            products = by_account[line.uin] = {}
        own = products.get(line.facts.product)
        if own is None:
            own = products[line.facts.product] = []
        own.append(line)
    return [ProductCharge(uin, product, f"{run.key_prefix}:{uin}{run.key_suffix}:{product}",
                          products[product])
            for uin, products in by_account.items() for product in sorted(products)]


def post_lines(conn: Connection, clock: Clock, run: RunContext, lines: list[RatedLine],
               locked: bulk.LockedAccounts) -> Posted:
    """Round per transaction, let coupons pay, deduct the rest in bulk, write the lines."""
    charges = charges_of(run, lines)
    extensions.pay_with_postpaid_coupons(conn, clock, run, charges)
    for charge in charges:
        if not 0 <= charge.voucher <= charge.total:
            raise ValueError(f"a coupon paid {charge.voucher} fen of {charge.total}")
    frozen = monthly_freeze.to_freeze(conn, run, charges)  # FRZ-5: frozen, not deducted
    held = {id(charge) for charge in frozen}
    owing = [charge for charge in charges if charge.due > 0 and id(charge) not in held]
    results = bulk.spend_postpaid(conn, clock, locked,
                                  [_request(run, charge) for charge in owing])
    bulk.record_coupon_paid(conn, clock, locked, [
        (charge.voucher_txn, _request(run, charge)) for charge in charges
        if charge.due == 0 < charge.total])
    paid = {id(charge): result for charge, result in zip(owing, results)}
    paid.update(monthly_freeze.freeze_charges(conn, clock, run, frozen, locked))
    posted = Posted()
    rows: list[tuple] = []
    stamp = Stamp(conn, run.period, clock.now())
    for charge in charges:
        result = paid.get(id(charge))
        rows += _line_rows(run, charge, result, stamp)
        fen, first = posted.accounts.get(charge.uin, (0, None))
        txn_id = result.txn_id if result is not None else None
        posted.accounts[charge.uin] = (fen + charge.total, first if first is not None else txn_id)
    insert_lines(conn, rows)
    posted.lines = len(rows)
    return posted


def _request(run: RunContext, charge: ProductCharge) -> bulk.SpendRequest:
    """The charge as ``funds.bulk`` deducts it (and shows it in the 收支明细, BAL-5): the
    balances pay ``due``, coupons the rest."""
    return bulk.SpendRequest(
        uin=charge.uin, amount=charge.due, key=charge.key,
        revenue_account_id=run.revenue[run.book.products[charge.product].entity],
        deduct_mode=run.deduct_mode, product_code=charge.product,
        billing_item=only_item(charge), memo=run.memo, coupon=charge.voucher)


def only_item(charge: ProductCharge) -> str | None:
    """The 收支明细 entry names the billing item when the transaction has one (BAL-5)."""
    items = {line.item for line in charge.lines}
    return items.pop() if len(items) == 1 else None


class Stamp:
    """The times every line of a chunk carries, converted for the driver once."""

    def __init__(self, conn: Connection, period: Period, now: datetime):
        dialect = conn.dialect
        process = bill_lines.c.period_start.type.dialect_impl(dialect).bind_processor(dialect)
        convert = process or (lambda value: value)
        self.period_start = convert(db_time(period.start))
        self.period_end = convert(db_time(period.end))
        self.now = convert(db_time(now))


def _line_rows(run: RunContext, charge: ProductCharge, result: bulk.SpendResult | None,
               stamp: Stamp) -> list[tuple]:
    """The charge's L3 lines as rows in LINE_COLUMNS order; sources split over lines."""
    if result is None:  # coupons paid it all (or it rounded to 0: no transaction)
        sources = [charge.voucher, 0, 0, 0, 0]
        txn_id = charge.voucher_txn  # the coupon payment's, as its 收支明细 entry (BAL-5)
    else:
        sources = [charge.voucher, result.gift, result.cash, result.credit, result.arrears]
        txn_id = result.txn_id
    parts = rules.split_payment([share.deducted for share in charge.shares], sources)
    cycle, period, kind, sequence = run.cycle, run.period, run.kind, run.sequence
    originals, reason = run.originals, run.reason
    rows = []
    for line, share, (voucher, gift, cash, credit, arrears) in zip(charge.lines, charge.shares,
                                                                   parts):
        facts, rate = line.facts, line.rate
        rows.append((
            line.uin, line.resource_id, facts.name, facts.product, facts.region, line.item,
            facts.project_id, facts.project_name, cycle, period.key, stamp.period_start,
            stamp.period_end, line.quantity, line.quantity - line.stopped - line.chargeable,
            rate.price_kind,
            rate.unit_price, rate.list_amount,
            rate.discount_bp, rate.amount, share.deducted, share.rounding_diff, voucher, cash,
            gift, credit, arrears, txn_id, stamp.now, kind, sequence,
            originals.get((line.resource_id, line.item)), reason, line.stopped))
    return rows


_INSERT_LINES = Precompiled(insert(bill_lines).values(
    {name: bindparam(name, type_=bill_lines.c[name].type) for name in LINE_COLUMNS}))


def insert_lines(conn: Connection, rows: list[tuple]) -> None:
    """INSERT the bill lines (DB-ready tuples in LINE_COLUMNS order) with one
    executemany on the driver, in the caller's transaction."""
    _INSERT_LINES.many_ready(conn, LINE_COLUMNS, rows)
