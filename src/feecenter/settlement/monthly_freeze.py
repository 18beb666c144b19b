"""Monthly freeze settlement (FRZ-5): owns ``monthly_freezes`` and
``monthly_freeze_settlements``.

A legacy per-product option (catalog ``monthly_freeze``, off by default). For
such a product a settlement charge (a cycle's, or a late adjustment's, SET-9)
is not deducted: its cost (after postpaid coupons) is frozen, gift then cash
(``funds.freeze``, FRZ-1), and one ``monthly_freezes`` row records it under the
business month of its period. When gift and cash cannot cover it, what they
hold is frozen and the rest recorded as the row's shortfall (the deduction on
the settlement day takes it, as arrears if need be). A correction down
(``corrections``) of a cycle that was itself frozen lowers the month's cost by
a negative row instead of giving money back (``month_open``, ``lower_month``);
a cycle deducted before the option was turned on is given back at once. Once a
month is settled, its later charges and corrections move money at once, as for
any product; a correction of a frozen cycle then gives back in the proportions
the settlement deduction was paid (``settled_split``).

On the settlement day of the next month (``config.monthly_freeze_day``, the
3rd by default) ``settle_due`` releases every freeze of the month
(``funds.unfreeze``) and deducts the month's actual cost, the sum of its rows'
costs (``funds.spend(postpaid=True)``), one database transaction per account:
the balances are locked first, then each (account, product, month) is
claimed by finding no ``monthly_freeze_settlements`` row (written in the same
transaction, unique), so reruns and concurrent runs deduct it once. An
account whose transaction fails is rolled back, logged, counted (``failed``)
and retried by the next run; the other accounts are settled.
Freezes are not tied to resources: a resource released during the month keeps
its cycles' freezes until that day.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date

from sqlalchemy import Connection, Engine, case, exists, func, insert, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.catalog import service as catalog
from feecenter.clock import Clock, business_date, db_time
from feecenter.config import monthly_freeze_day
from feecenter.db.engine import transaction
from feecenter.funds import bulk
from feecenter.funds import rules as funds_rules
from feecenter.funds import service as funds
from feecenter.periods import Period
from feecenter.settlement import rules
from feecenter.settlement.model import ProductCharge, RunContext
from feecenter.settlement.tables import monthly_freeze_settlements, monthly_freezes

log = logging.getLogger(__name__)

DEDUCT_MODE = "hour_m"  # 收支明细: the month's deduction is a monthly settlement (按月结)


def month_of(period: Period) -> str:
    """The business month (YYYY-MM) a period's charge is frozen under."""
    return business_date(period.start).strftime("%Y-%m")


# ---------------------------------------------------------------- freezing a cycle

def to_freeze(conn: Connection, run: RunContext, charges: list[ProductCharge]
              ) -> list[ProductCharge]:
    """The charges of ``run`` that are frozen instead of deducted: a monthly-freeze
    product, something for the balances to pay, its month not settled. Call it with
    the accounts' balances locked."""
    wanted = [c for c in charges
              if c.due > 0 and run.book.products[c.product].monthly_freeze]
    if not wanted:
        return []
    s = monthly_freeze_settlements.c
    settled = set(conn.execute(select(s.uin, s.product_code).where(
        s.month == month_of(run.period), s.uin.in_(sorted({c.uin for c in wanted})))).all())
    return [c for c in wanted if (c.uin, c.product) not in settled]


def month_open(conn: Connection, run: RunContext, uin: int, product: str, amount: int
               ) -> bool:
    """May a correction of ``amount`` fen of ``run``'s cycle lower its month's cost
    (``lower_month``) instead of giving money back? Only when that cycle itself was
    frozen (its own ``monthly_freezes`` rows, whatever the product's flag is now: a
    cycle deducted before a catalog reload turned the option on was not), what its
    rows still count covers ``amount`` (so a month's cost never goes below 0), and its
    month is not settled. Call it with the account's balances locked."""
    f, s = monthly_freezes.c, monthly_freeze_settlements.c
    month = month_of(run.period)
    if conn.execute(select(s.id).where(s.uin == uin, s.product_code == product,
                                       s.month == month)).first() is not None:
        return False
    counted = conn.execute(select(func.count(), func.coalesce(func.sum(f.cost), 0)).where(
        f.uin == uin, f.product_code == product, f.month == month, f.cycle == run.cycle,
        f.period_key == run.period.key)).one()
    return counted[0] > 0 and int(counted[1]) >= amount


def settled_split(conn: Connection, run: RunContext, uin: int, product: str
                  ) -> tuple[int, int, int, int] | None:
    """When ``run``'s cycle was frozen and its month is settled with a deduction: what
    paid that deduction (gift, cash, credit, arrears; ``funds.spend_split``). Its lines
    show the freeze's split, but the settlement day drew gift first afresh, so a later
    correction gives back in these proportions. None otherwise."""
    f, s = monthly_freezes.c, monthly_freeze_settlements.c
    month = month_of(run.period)
    frozen = conn.execute(select(f.id).where(
        f.uin == uin, f.product_code == product, f.month == month, f.cycle == run.cycle,
        f.period_key == run.period.key)).first()
    txn_id = None if frozen is None else conn.execute(select(s.txn_id).where(
        s.uin == uin, s.product_code == product, s.month == month)).scalar()
    return None if txn_id is None else funds.spend_split(conn, txn_id)


def lower_month(conn: Connection, clock: Clock, run: RunContext, charge: ProductCharge,
                amount: int) -> None:
    """A correction down (SET-9) of an open month: ``amount`` fen off the month's cost,
    nothing given back now (nothing was deducted); the settlement day deducts less."""
    conn.execute(insert(monthly_freezes).values(
        uin=charge.uin, product_code=charge.product, month=month_of(run.period),
        cycle=run.cycle, period_key=run.period.key, kind="correction", charge_key=charge.key,
        cost=-amount, frozen=0, shortfall=0, hold_id=None, created_at=db_time(clock.now())))


def freeze_charges(conn: Connection, clock: Clock, run: RunContext,
                   charges: list[ProductCharge], locked: bulk.LockedAccounts
                   ) -> dict[int, bulk.SpendResult]:
    """Freeze each charge's cost in the caller's transaction (balances locked), record
    it; by ``id(charge)`` what the freeze took, as the L3 lines show it: gift and cash
    frozen, the shortfall under arrears, the freeze's ledger transaction."""
    month, now = month_of(run.period), db_time(clock.now())
    taken: dict[int, bulk.SpendResult] = {}
    rows = []
    for charge in charges:
        bal = locked.balances[charge.uin]
        amount = min(charge.due, bal["gift"] + bal["cash"])
        gift, cash, hold_id, txn_id = 0, 0, None, None
        if amount > 0:
            gift, cash = funds_rules.plan_freeze(amount, gift=bal["gift"], cash=bal["cash"])
            hold_id = funds.freeze(
                conn, clock, charge.uin, amount, key=f"{charge.key}:freeze",
                product_code=charge.product,
                memo=f"按月冻结结算 {run.period.key} / monthly freeze {run.period.key}")
            txn_id = funds.freeze_transaction(conn, hold_id)
            _follow(bal, gift, cash)
        taken[id(charge)] = bulk.SpendResult(txn_id, True, gift, cash, 0, charge.due - amount)
        rows.append({"uin": charge.uin, "product_code": charge.product, "month": month,
                     "cycle": run.cycle, "period_key": run.period.key, "kind": run.kind,
                     "charge_key": charge.key, "cost": charge.due,
                     "frozen": amount, "shortfall": charge.due - amount, "hold_id": hold_id,
                     "created_at": now})
    if rows:
        conn.execute(insert(monthly_freezes), rows)
    return taken


def _follow(bal: dict[str, int], gift: int, cash: int) -> None:
    """Keep the chunk's locked balances true after a freeze."""
    bal["gift"] -= gift
    bal["cash"] -= cash
    bal["frozen_gift"] = bal.get("frozen_gift", 0) + gift
    bal["frozen_cash"] = bal.get("frozen_cash", 0) + cash


# ---------------------------------------------------------------- the settlement day

def settle_due(engine: Engine, clock: Clock, today: date, day: int | None = None) -> dict:
    """Settle every month whose settlement day (``day``, default the configured one)
    has come by business date ``today`` and is not settled: per account, in one
    transaction each, release the month's freezes and deduct its actual cost.
    Idempotent and crash-safe: a settled (account, product, month) is skipped; a
    failed account is counted in ``failed`` and left for the next run."""
    day = monthly_freeze_day() if day is None else day
    last = rules.monthly_freeze_due(today, day)
    with engine.connect() as conn:
        pending = _pending(conn, last)
    revenue = {}  # product -> its selling entity's revenue account
    with transaction(engine) as conn:  # opened first: no account waits on another
        for code in sorted({product for pairs in pending.values() for product, _ in pairs}):
            entity = catalog.get_product(conn, code).entity
            revenue[code] = funds.platform_account(conn, clock, "revenue", entity)
    totals = {"through": last, "settled": 0, "skipped": 0, "failed": 0, "released_fen": 0,
              "deducted_fen": 0}
    for uin, pairs in sorted(pending.items()):
        _settle_isolated(engine, clock, uin, pairs, revenue, totals)
    return totals


def _settle_isolated(engine: Engine, clock: Clock, uin: int, pairs: list[tuple[str, str]],
                     revenue: dict[str, int], totals: dict) -> None:
    """One account's transaction; its failure rolls it back whole (still frozen, not
    settled: the next run retries it), is logged with its traceback and counted in
    ``failed``, and does not stop the other accounts."""
    counted = dict(totals)
    try:
        with transaction(engine) as conn:
            _settle_account(conn, clock, uin, pairs, revenue, counted)
    except Exception:
        log.exception("monthly freeze settlement of account %s failed (%s); retried next run",
                      uin, ", ".join(f"{product} {month}" for product, month in pairs))
        totals["failed"] += 1
        return
    totals.update(counted)


def _pending(conn: Connection, last: str) -> dict[int, list[tuple[str, str]]]:
    """uin -> [(product, month)] with freezes of a month up to ``last`` not settled."""
    f, s = monthly_freezes.c, monthly_freeze_settlements.c
    settled = exists().where(s.uin == f.uin, s.product_code == f.product_code,
                             s.month == f.month)
    rows = conn.execute(select(f.uin, f.product_code, f.month).distinct()
                        .where(f.month <= last, ~settled)
                        .order_by(f.uin, f.month, f.product_code)).all()
    pending: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for uin, product, month in rows:
        pending[uin].append((product, month))
    return pending


def _settle_account(conn: Connection, clock: Clock, uin: int, pairs: list[tuple[str, str]],
                    revenue: dict[str, int], totals: dict) -> None:
    """One account's due months, in the caller's transaction: balances locked first
    (the claim order), then each (product, month) claimed by its missing settlement row."""
    funds.lock_balances(conn, uin)
    s = monthly_freeze_settlements.c
    for product, month in pairs:
        if conn.execute(select(s.id).where(s.uin == uin, s.product_code == product,
                                           s.month == month)).first() is not None:
            totals["skipped"] += 1  # a concurrent or earlier run settled it
            continue
        released, cost, txn_id = _settle_one(conn, clock, uin, product, month, revenue[product])
        conn.execute(insert(monthly_freeze_settlements).values(
            uin=uin, product_code=product, month=month, cost=cost, released=released,
            txn_id=txn_id, settled_at=db_time(clock.now())))
        totals["settled"] += 1
        totals["released_fen"] += released
        totals["deducted_fen"] += cost


def _settle_one(conn: Connection, clock: Clock, uin: int, product: str, month: str,
                revenue_account_id: int) -> tuple[int, int, int | None]:
    """Release the month's freezes, deduct its cost: (released, deducted, txn id; None
    when corrections brought the cost to 0)."""
    f = monthly_freezes.c
    rows = conn.execute(select(f.hold_id, f.frozen, f.cost).where(
        f.uin == uin, f.product_code == product, f.month == month).order_by(f.id)).all()
    released = 0
    for row in rows:
        if row.hold_id is not None:
            funds.unfreeze(conn, clock, uin, row.hold_id,
                           memo=f"按月冻结解冻 {month} / monthly freeze released {month}")
            released += row.frozen
    cost = sum(row.cost for row in rows)
    if cost < 0:  # a correction gives back at most what its period was charged
        raise ValueError(f"monthly freeze {uin} {product} {month}: cost {cost} below 0")
    if cost == 0:
        return released, 0, None
    movement = funds.spend(conn, clock, uin, cost, key=f"monthly_freeze:{uin}:{product}:{month}",
                           postpaid=True, revenue_account_id=revenue_account_id,
                           deduct_mode=DEDUCT_MODE, product_code=product,
                           memo=f"按月冻结结算扣费 {month} / monthly freeze settlement {month}")
    return released, cost, movement.txn_id


# ---------------------------------------------------------------- reading

def monthly_freeze_status(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    """An account's monthly freezes by product and month (FINANCE), newest month first:
    the cost so far (corrections taken off), what is frozen, the shortfall, the
    charges frozen, and whether (and what) the settlement day deducted."""
    require(actor, uin, FINANCE)
    f, s = monthly_freezes.c, monthly_freeze_settlements.c
    rows = conn.execute(
        select(f.product_code, f.month, func.sum(f.cost), func.sum(f.frozen),
               func.sum(f.shortfall),
               func.sum(case((f.kind == "correction", 0), else_=1)))
        .where(f.uin == uin).group_by(f.product_code, f.month)
        .order_by(f.month.desc(), f.product_code)).all()
    settled = {(r.product_code, r.month): r for r in conn.execute(
        select(s.product_code, s.month, s.cost, s.txn_id).where(s.uin == uin))}
    return [{"product": product, "month": month, "cost": int(cost), "frozen": int(frozen),
             "shortfall": int(short), "cycles": int(count),
             "settled": (product, month) in settled,
             "deducted": int(settled[(product, month)].cost) if (product, month) in settled
             else 0}
            for product, month, cost, frozen, short, count in rows]
