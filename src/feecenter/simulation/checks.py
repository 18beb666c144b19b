"""The invariants, checked on the database against the model.

Each check returns a list of violations (strings naming the rule); empty is
good. ``check(engine, model, now, uins)`` runs them all for some accounts
(a sample after each step) or all of them (``uins=None``, at the end).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from functools import cache

from sqlalchemy import bindparam, exists, func, select

from feecenter.bills.check import check_bills
from feecenter.accounts.permissions import SYSTEM
from feecenter.balance_warnings.tables import balance_warning_settings
from feecenter.catalog.tables import products
from feecenter.clock import BUSINESS_TZ
from feecenter.invoices.invoiceable import invoiceable
from feecenter.invoices.tables import invoice_lines, invoices
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import (ledger_accounts, ledger_holds, ledger_postings,
                                     ledger_transactions)
from feecenter.money import RATE_PER_FEN, format_yuan, parse_yuan, round_rated_to_fen
from feecenter.notifications.tables import in_site_messages
from feecenter.orders.tables import orders, payments
from feecenter.remittances.tables import remittances
from feecenter.resources.tables import resource_stops, resources
from feecenter.settlement.tables import bill_lines, settled_periods
from feecenter.simulation.model import Model, release_time
from feecenter.withdrawals.tables import withdrawal_legs

MONEY_KINDS = ("cash", "gift", "income", "frozen_cash", "frozen_gift", "arrears", "advance")


def check(engine, model: Model, now, uins: list[int] | None = None, *,
          final: bool = False, lines_after: int | None = None) -> list[str]:
    """With ``lines_after`` (a bill line id), the bill checks judge the lines written
    since (of every account), with every line of their resources and transactions,
    instead of every line of ``uins``: the same rules, on what the step changed."""
    with engine.connect() as conn:
        found = [f"BAL-6 reconcile: {d.kind} {d.subject} expected {d.expected} got {d.actual}"
                 for d in reconcile(conn, uins)]
        for name in CHECKS:
            if name == "bills" and lines_after is not None and uins is not None:
                found += _judge_lines(model, *_new_lines(conn, lines_after))
                continue
            found += CHECKS[name](conn, model, now, uins)
        if final:
            found += all_usage_billed(conn, model)
    return found


_UINS = bindparam("uins", expanding=True)


def _run(conn, build, uins):
    """``build(where)``'s statement, for some accounts or all (``uins=None``). Each is
    built once: building costs more than running it on a few accounts."""
    return conn.execute(_built(build, uins is not None),
                        {} if uins is None else {"uins": list(uins)})


@cache
def _built(build, scoped: bool):
    return build(lambda column: column.in_(_UINS) if scoped else column.is_not(None))


def balances(conn, model, now, uins) -> list[str]:
    """BAL-1/FRZ: every balance within its rule; frozen equals the open holds; the
    money an account holds is what it brought in, less what it paid, plus refunds."""
    held = defaultdict(lambda: defaultdict(int))
    for uin, kind, balance in _run(conn, _BALANCES, uins):
        held[uin][kind] = balance
    holds = dict(_run(conn, _HOLDS, uins).all())
    paid, refunded = _order_money(conn, uins)
    deducted = dict(_run(conn, _DEDUCTED, uins).all())
    found = []
    for uin in (uins if uins is not None else model.uins):
        b = held[uin]
        if b["cash"] < 0 or b["gift"] < 0 or b["arrears"] > 0:
            found.append(f"BAL-1 bounds: {uin} {dict(b)}")
        if b["frozen_cash"] + b["frozen_gift"] != int(holds.get(uin) or 0):
            found.append(f"FRZ frozen != open holds: {uin} frozen "
                         f"{b['frozen_cash'] + b['frozen_gift']} holds {holds.get(uin)}")
        expected = (model.money_in[uin] - paid.get(uin, 0) + refunded.get(uin, 0)
                    - int(deducted.get(uin) or 0))
        if sum(b[k] for k in MONEY_KINDS) != expected:
            found.append(f"model money: {uin} holds {sum(b[k] for k in MONEY_KINDS)}, the model "
                         f"says {expected} (in {model.money_in[uin]}, paid {paid.get(uin, 0)}, "
                         f"refunded {refunded.get(uin, 0)}, deducted {deducted.get(uin)})")
    return found


def _order_money(conn, uins):
    """Fen each account paid for delivered orders and got back from refunds and downgrades."""
    paid, refunded = defaultdict(int), defaultdict(int)
    for row in _run(conn, _ORDER_MONEY, uins):
        if row.kind in ("refund", "downgrade"):
            refunded[row.uin] += row.refunded_gift + row.refunded_cash
        elif row.state in ("delivered", "refunded"):
            paid[row.uin] += row.paid_gift + row.paid_cash + row.paid_credit
    return paid, refunded


def order_states(conn, model, now, uins) -> list[str]:
    """ORD-1..5: each order the model knows has its predicted amount and state; every
    paid order has exactly one payment, and its parts add up to its amount; each
    refund and downgrade gives back what the model says (ORD-4)."""
    rows = {r.id: r for r in _run(conn, _ORDERS, uins)}
    found = []
    ids = model.orders if uins is None else [i for uin in uins for i in model.orders_of[uin]]
    found += _given_back(model, rows, ids)
    for order_id in ids:
        expected = model.orders[order_id]
        row = rows.get(order_id)
        if row is None:
            found.append(f"ORD order {order_id} missing")
            continue
        if row.state not in model.expect_state(expected, now):
            found.append(f"ORD state: order {order_id} is {row.state}, the model says "
                         f"{expected.state}")
        if expected.amount is not None and row.amount != expected.amount:
            found.append(f"ORD-5 amount ({expected.kind}): order {order_id} {row.amount}, "
                         f"the model says {expected.amount}")
        if row.paid_at is not None and row.kind in ("new", "renew", "upgrade") and (
                row.paid_coupon + row.paid_gift + row.paid_cash + row.paid_credit != row.amount):
            found.append(f"ORD-3 parts: order {order_id} parts do not add up to {row.amount}")
    return found + _one_payment_each(conn, rows, uins)


def _given_back(model, rows, ids) -> list[str]:
    """ORD-4: a refund's or downgrade's gift, cash and coupon share (and a refund's
    amount, their negative sum) are the model's, computed from the paying orders'
    amounts and times it predicted and the split the product recorded for each."""
    paid = {r.id: (r.paid_gift, r.paid_cash + r.paid_credit, r.paid_coupon)
            for r in rows.values() if r.kind in ("new", "renew", "upgrade")}
    found = []
    for order_id in ids:
        order, row = model.orders[order_id], rows.get(order_id)
        if order.kind not in ("refund", "downgrade") or row is None:
            continue
        gift, cash, coupon = model.given_back(order_id, paid)
        got = (row.refunded_gift, row.refunded_cash, -row.paid_coupon)
        if got != (gift, cash, coupon) or (
                order.kind == "refund" and row.amount != -(gift + cash + coupon)):
            found.append(f"ORD-4 {order.kind}: order {order_id} gives back (gift, cash, coupon) "
                         f"{got}, amount {row.amount}; the model says {(gift, cash, coupon)}"
                         + (" (no-reason window)" if order.full else ""))
    return found


def _one_payment_each(conn, rows, uins) -> list[str]:
    count = defaultdict(int)
    for (ids,) in _run(conn, _PAYMENTS, uins):
        for order_id in json.loads(ids):
            count[order_id] += 1
    return [f"ORD-3 payments: order {i} paid by {count[i]} payments" for i, r in rows.items()
            if r.kind in ("new", "renew", "upgrade") and (
                count[i] != (1 if r.paid_at is not None else 0))]


def bills(conn, model, now, uins) -> list[str]:
    """SET-2/3/9: one charge line per resource, item and settled period; Σ lines'
    rated amounts equal the model's; each deduction is its lines' total rounded
    half-up once, and Σ deducted = Σ rated + Σ precision difference."""
    return _judge_lines(model, _run(conn, _LINES, uins))


def _new_lines(conn, after: int) -> tuple[list, set]:
    """The lines written after line ``after``, with every line of their resources (so
    each of their keys is whole) and of their deductions' transactions (whole too); a
    key pulled in only by a transaction may be partial, which SET-1 and SET-2 (at most)
    allow, and a transaction pulled in only by a resource is not judged."""
    new = conn.execute(select(_b.resource_id, _b.txn_id).where(_b.id > after)).all()
    if not new:
        return [], set()
    rids = sorted({r.resource_id for r in new})
    txns = sorted({r.txn_id for r in new if r.txn_id is not None})
    return conn.execute(_LINES_OF, {"rids": rids, "txns": txns}).all(), set(txns)


def _judge_lines(model, lines, whole_txns: set | None = None) -> list[str]:
    found, rated, txns = [], defaultdict(int), defaultdict(list)
    charges = defaultdict(int)
    for r in lines:
        key = (r.resource_id, r.billing_item, r.cycle, r.period_key)
        rated[key] += r.discounted_amount + model.line_amount(r.product_code, r.billing_item,
                                                              r.package_quantity)
        charges[key] += r.kind == "charge"
        txns[(r.txn_id, r.uin, r.product_code, r.cycle, r.period_key, r.kind)].append(r)
        if r.deducted * RATE_PER_FEN - r.discounted_amount != r.rounding_diff:
            found.append(f"SET-3 precision difference: line {key} {r.rounding_diff}")
    for key, n in charges.items():
        if n > 1:  # none: all its usage came late, as adjustments (SET-9)
            found.append(f"SET-1 one charge line each: {key} has {n}")
    for key, amount in rated.items():  # late usage is billed by the next run: at most
        if amount > model.rated.get(key, 0):
            found.append(f"SET-2 rated: {key} billed {amount}, the model says "
                         f"{model.rated.get(key, 0)}")
    for key, lines in txns.items():
        if whole_txns is not None and key[0] not in whole_txns:
            continue
        if sum(r.deducted for r in lines) != round_rated_to_fen(
                sum(r.discounted_amount for r in lines)):
            found.append(f"SET-3 one rounding: deduction {key}")
    return found


def all_usage_billed(conn, model) -> list[str]:
    """SET-1/SET-9, at the end: all usage of a settled hour or day is on a bill line
    (late usage is billed by the next run of its cycle: for a month, next month's)."""
    b = bill_lines.c
    settled = set(conn.execute(select(settled_periods.c.cycle, settled_periods.c.period_key)).all())
    rated = defaultdict(int)
    for r in conn.execute(select(b.resource_id, b.billing_item, b.cycle, b.period_key,
                                 b.discounted_amount, b.package_quantity, b.product_code)):
        rated[tuple(r[:4])] += r.discounted_amount + model.line_amount(
            r.product_code, r.billing_item, r.package_quantity)
    return [f"SET-1/2 settled usage billed {rated.get(key)}, the model says {amount}: {key}"
            for key, amount in model.rated.items()
            if key[2:] in settled and (rated.get(key) != amount if key[2] != "month"
                                       else (rated.get(key) or 0) > amount)]


def keys(conn, model, now, uins) -> list[str]:
    """Every idempotency key the model saw take effect produced exactly one ledger
    transaction or payment (its own, or the product's keys derived from it)."""
    if uins is not None:
        return []
    t = ledger_transactions.c
    written = defaultdict(int)  # "adj:<step>" -> the transactions whose key is it or ends ":" it
    for (k,) in conn.execute(select(t.idempotency_key)):
        at = k.rfind("adj:")
        if at == 0 or (at > 0 and k[at - 1] == ":"):
            written[k[at:]] += 1
    found = []
    for key in sorted(model.keys):
        if key.startswith(("adj:",)):
            n = written[key]
            if n != 1:
                found.append(f"BAL idempotency: key {key} has {n} ledger transactions")
    return found


CREATED = ("buy:", "renew:", "up:", "open:")  # the model's keys of creations


def created_once(conn, model, now, uins) -> list[str]:
    """ORD-1 idempotency: each creation key the model saw take effect made exactly one
    keyed row (a purchase's first order, a renewal, an upgrade, a postpaid resource),
    and every order and resource is one the model learned of: a retried or duplicated
    creation made no second order set and no second resource."""
    found, made = [], defaultdict(int)
    for uin, key, kind, order_id in _run(conn, _KEYED_ORDERS, uins):
        if model.renewal_lagging and key and ":auto-renew:" in key:
            continue  # made by a renewal hour the model follows once the earlier one is done
        if kind in ("new", "renew", "upgrade"):
            if order_id not in model.orders:
                found.append(f"ORD-1 idempotency: order {order_id} ({kind}) of {uin} is not "
                             "one the model learned of (a second order set?)")
            if key is not None:
                made[key.split(":", 1)[1]] += 1
    for uin, key, rid in _run(conn, _KEYED_RESOURCES, uins):
        if rid not in model.product_of:
            found.append(f"ORD-1 idempotency: resource {rid} of {uin} is not one the model "
                         "learned of (a second opening?)")
        if key is not None:
            made[key.split(":", 1)[1]] += 1
    found += [f"ORD-1 idempotency: key {key} made a row the model did not see take effect"
              for key in sorted(made) if key not in model.keys]
    if uins is None:  # the model's keys name no account: all of them at once
        found += [f"ORD-1 idempotency: key {key} made {made[key]} orders or resources"
                  for key in sorted(model.keys) if key.startswith(CREATED) and made[key] != 1]
    return found


def postings_balance(conn, model, now, uins) -> list[str]:
    """BAL-6: Σ of all postings is zero."""
    if uins is not None:
        return []
    total = conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))).scalar()
    return [] if total == 0 else [f"BAL-6 Σ postings = {total}"]


_la, _hd, _o, _b = ledger_accounts.c, ledger_holds.c, orders.c, bill_lines.c
_BALANCES = lambda where: select(_la.uin, _la.kind, _la.balance).where(where(_la.uin))  # noqa: E731
_HOLDS = lambda where: (select(_hd.uin, func.sum(_hd.amount))  # noqa: E731
                        .where(_hd.state == "pending", where(_hd.uin),
                               ~exists().where(withdrawal_legs.c.hold_id == _hd.id))
                        .group_by(_hd.uin))  # a withdrawal's hold is no freeze (WDR-4)
_DEDUCTED = lambda where: (select(_b.uin, func.sum(_b.deducted))  # noqa: E731
                           .where(where(_b.uin)).group_by(_b.uin))
_ORDER_MONEY = lambda where: select(  # noqa: E731
    _o.uin, _o.state, _o.kind, _o.paid_gift, _o.paid_cash, _o.paid_credit, _o.refunded_gift,
    _o.refunded_cash).where(where(_o.uin))
_ORDERS = lambda where: select(orders).where(where(_o.uin))  # noqa: E731
_KEYED_ORDERS = lambda where: select(  # noqa: E731
    _o.uin, _o.idempotency_key, _o.kind, _o.id).where(where(_o.uin))
_KEYED_RESOURCES = lambda where: select(  # noqa: E731
    resources.c.uin, resources.c.idempotency_key, resources.c.id).where(where(resources.c.uin))
_PAYMENTS = lambda where: select(payments.c.order_ids).where(where(payments.c.uin))  # noqa: E731
_LINES = lambda where: select(  # noqa: E731
    _b.uin, _b.resource_id, _b.billing_item, _b.cycle, _b.period_key, _b.kind, _b.product_code,
    _b.quantity, _b.package_quantity, _b.discounted_amount, _b.deducted, _b.rounding_diff,
    _b.txn_id).where(where(_b.uin))

_LINES_OF = _LINES(lambda column: column.is_not(None)).where(  # by resource or transaction
    _b.resource_id.in_(bindparam("rids", expanding=True))
    | _b.txn_id.in_(bindparam("txns", expanding=True)))

def remittance_states(conn, model, now, uins) -> list[str]:
    """RMT-2..6: each transfer is one record, in the state the model predicts (a
    retried or duplicated import changed nothing); the money received and not yet
    credited is exactly what the remittance suspense account holds."""
    found, seen = [], set()
    for ref, uin, state in _run(conn, _REMITTANCES, uins):
        seen.add(ref)
        expected = model.remittances.get(ref)
        if expected is None or (expected.uin, expected.state) != (uin, state):
            found.append(f"RMT remittance {ref} of {uin} is {state}, the model says "
                         f"{expected and (expected.uin, expected.state)}")
    mine = model.remittances if uins is None else {
        ref: model.remittances[ref] for uin in uins for ref in model.remittances_of[uin]}
    found += [f"RMT remittance {ref} of {m.uin} is missing" for ref, m in mine.items()
              if ref not in seen]
    if uins is None:
        waiting = sum(m.fen for m in model.remittances.values() if m.state != "credited")
        held = conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
                            .join(ledger_accounts)
                            .where(ledger_accounts.c.code.like("platform:%:remittance_suspense"))
                            ).scalar_one()
        if held != waiting:
            found.append(f"RMT suspense holds {held}, the model says {waiting} received "
                         "and not credited")
    return found


_REMITTANCES = lambda where: select(  # noqa: E731
    remittances.c.bank_reference, remittances.c.uin, remittances.c.state).where(
    where(remittances.c.uin))


def resource_states(conn, model, now, uins) -> list[str]:
    """RNW-6: each prepaid resource the model follows is in the state it predicts
    (running, stopped in the recycle bin, recycled) with its expiry, stop and release
    times; skipped while a renewal job of an earlier hour waits for its rerun (the
    model follows only the hours the runner completed)."""
    if model.renewal_until is None or model.renewal_lagging:
        return []
    found = []
    for r in _run(conn, _PREPAID, uins):
        label = model.label_of.get(r.id)
        res = model.resources.get(label) if label else None
        if res is None or res.expires is None:
            continue
        got = (r.state, r.period_end, r.stopped_at if r.state == "stopped" else None,
               r.released_at if r.stopped_at is not None and r.state == "recycled" else None)
        expected = (res.state, _naive(res.expires),
                    _naive(res.stopped_at) if res.state == "stopped" else None,
                    _naive(res.released_at) if res.stopped_at and res.state == "recycled"
                    else None)
        if got != expected:
            found.append(f"RNW-6 resource {r.id} ({label}) is (state, expiry, stopped, released)"
                         f" {got}, the model says {expected}")
    return found


def _naive(at):
    return None if at is None else at.replace(tzinfo=None)


def renewals_once(conn, model, now, uins) -> list[str]:
    """RNW-1/RNW-6: no term renewed twice (at most one delivered renewal order per
    resource and the expiry it renews from: a paid one awaiting delivery still shows the
    expiry at its creation); a released resource stayed in the recycle bin its
    product's full recovery period (released no earlier than 00:00 after its last day)."""
    found, terms = [], defaultdict(list)
    for r in _run(conn, _RENEWALS, uins):
        terms[(r.resource_id, r.service_start)].append(r.id)
    found += [f"RNW-1 term renewed twice: {rid} from {start} by orders {ids}"
              for (rid, start), ids in terms.items() if len(ids) > 1]
    for r in _run(conn, _RELEASED, uins):
        stopped = r.stopped_at.replace(tzinfo=timezone.utc)
        if r.released_at.replace(tzinfo=timezone.utc) < release_time(stopped, r.recovery_days):
            found.append(f"RNW-6 released early: {r.id} stopped {r.stopped_at}, released "
                         f"{r.released_at} ({r.recovery_days} recovery days)")
    return found


_rs, _st = resources.c, resource_stops.c
_PREPAID = lambda where: (  # noqa: E731
    select(_rs.id, _rs.state, _rs.period_end, _rs.released_at, _st.stopped_at, _st.reason)
    .select_from(resources.outerjoin(resource_stops, (_st.resource_id == _rs.id)
                                     & (_st.reason == "expired")
                                     & (_st.ended_at.is_(None)
                                        | (_st.ended_at == _rs.released_at))))
    .where(_rs.pay_mode == "prepaid", where(_rs.uin)))
_RENEWALS = lambda where: select(_o.id, _o.resource_id, _o.service_start).where(  # noqa: E731
    _o.kind == "renew", _o.state.in_(("delivered", "refunded")), where(_o.uin))
_RELEASED = lambda where: (  # noqa: E731
    select(_rs.id, _rs.released_at, _st.stopped_at, products.c.recovery_days)
    .select_from(resources.join(resource_stops, _st.resource_id == _rs.id)
                 .join(products, products.c.code == _rs.product_code))
    .where(_rs.state == "recycled", _st.reason == "expired", _st.ended_at == _rs.released_at,
           where(_rs.uin)))


def bill_levels(conn, model, now, uins) -> list[str]:
    """BIL-1/BIL-2, at the checks of every account (every 500 steps and the end): the
    bill check of ``feecenter reconcile`` holds — for every account and month the
    roll-ups hold, L0 = Σ L1 = Σ L2 = Σ L3 over the days the daily job
    ``bills.refresh_rollups`` (run by the tick, killed and rerun like any job)
    refreshed. Not per step: it reads every level of every account's month."""
    if uins is not None:
        return []
    return [f"BIL-2 bill levels: {d.subject}: L0 {d.expected}, found {d.actual}"
            for d in check_bills(conn)]


def invoice_amounts(conn, model, now, uins) -> list[str]:
    """INV-1..7 (docs/simulation.md, "Invoices"): the applications of the step judged
    against the model's prediction; the service's invoiceable amount per bucket agrees
    with the model (invoiced = Σ its applied blue amounts − released reversals; consumed
    − invoiced = available − debt); issued invoices numbered once, per entity and year
    1..n without a gap; a released reversal's red invoice the negative of its blue one."""
    found, model.invoice_findings = model.invoice_findings, []
    scope = uins if uins is not None else model.uins
    consumed, owed = _cash_consumed(conn, model, uins), _owed(conn, uins)
    for uin in scope:
        found += model.judge_applications(uin, consumed.get(uin, {}), owed.get(uin, 0))
    for uin in scope:
        found += _invoiceable_agrees(conn, model, uin, consumed.get(uin, {}))
    if uins is None or model.invoices_dirty:
        found += _numbers(conn, model)
        model.invoices_dirty = False
    return found + _reds(conn, model, scope)


def _cash_consumed(conn, model, uins) -> dict:
    """uin -> bucket -> cash consumed, read NOT as ``invoices.invoiceable`` reads it
    (``bills.service.cash_consumed_by_product``: roll-ups plus the unrolled days' lines
    and orders by ``closed_at``): every L3 bill line (deducted − voucher − gift), and
    every delivered or refunded order's cash and credit part (paid_cash + paid_credit;
    refunds and downgrades −refunded_cash), mapped to buckets by the world's catalog."""
    out = defaultdict(lambda: defaultdict(int))
    for uin, code, fen in _run(conn, _LINE_CASH, uins):
        out[uin][model.world.product(code).bucket] += int(fen or 0)
    for r in _run(conn, _ORDER_CASH, uins):
        cash = (-r.refunded_cash if r.kind in ("refund", "downgrade")
                else r.paid_cash + r.paid_credit)
        out[r.uin][model.world.product(r.product_code).bucket] += cash
    return out


def _owed(conn, uins) -> dict:
    """Arrears and unrepaid credit advances (both ≤ 0 in the ledger): applying waits."""
    return {uin: -int(total) for uin, total in _run(conn, _OWED, uins)}


def _invoiceable_agrees(conn, model, uin, consumed) -> list[str]:
    shown = invoiceable(conn, SYSTEM, uin)
    mine = model.invoiced[uin]
    expected = {}
    for bucket in set(consumed) | set(mine):
        c, i = consumed.get(bucket, 0), mine.get(bucket, 0)
        if c or i:
            expected[bucket] = (c, i, max(c - i, 0), max(i - c, 0))
    got = {(b["entity"], b["tax_category"]): (b["consumed"], b["invoiced"], b["available"],
                                              b["debt"])
           for b in shown["buckets"] if b["consumed"] or b["invoiced"]}
    net = sum(v[0] - v[1] for v in expected.values())  # INV-1 for the account
    model.available_seen[uin] = max(net, 0)
    if net < 0:
        model.invoice_counts[f"in invoice debt: {uin}"] = 1  # INV-7, for the summary
    found = []
    if got != expected:
        found.append(f"INV-1 invoiceable of {uin}: (consumed, invoiced, available, debt) "
                     f"{got}, the model says {expected}")
    # the model files no commercial invoices (INV-9): their part must be 0 for the amount
    # and debt to agree with the model's net
    if (shown["consumed"] - shown["invoiced"] - shown["commercial"]
            != shown["amount"] - shown["debt"]
            or (shown["amount"], shown["debt"]) != (max(net, 0), max(-net, 0))):
        found.append(f"INV-1/7 invoiceable of {uin}: amount {shown['amount']} debt "
                     f"{shown['debt']} consumed {shown['consumed']} invoiced "
                     f"{shown['invoiced']} commercial {shown['commercial']}")
    return found


def _numbers(conn, model) -> list[str]:
    """INV-5: an invoice is numbered exactly when it is issued (or reversed after), each
    number once, and per (entity, year) the sequences are 1..n; one number block per
    entity; every invoice waiting when an ``issue`` op ran is issued. The model learns
    which of its invoices are issued (its reversals pick from them)."""
    found, numbers, sequences, blocks = [], defaultdict(list), defaultdict(list), {}
    for r in conn.execute(_INVOICES):
        numbered = (r.invoice_number, r.invoice_code, r.check_code)
        done = r.state in ("issued", "reversed")
        if done != all(numbered) or (not done and any(numbered)):
            found.append(f"INV-5 invoice {r.id} is {r.state} with number {numbered}")
            continue
        if r.kind != "red":
            blue = model.blue.get(r.id)
            if blue is None:
                found.append(f"INV invoice {r.id} of {r.uin} is not one the model applied for")
                continue
            blue.issued = blue.issued or done
            if (r.state == "reversed") != (blue.red_id is not None):
                found.append(f"INV-6 invoice {r.id} is {r.state}, the model "
                             f"{'reversed' if blue.red_id else 'did not reverse'} it")
        if not done:
            if r.id in model.must_issue:
                found.append(f"INV-5 invoice {r.id} still {r.state} after issuing ran")
            continue
        model.must_issue.discard(r.id)
        numbers[r.invoice_number].append(r.id)
        year = r.issued_at.replace(tzinfo=timezone.utc).astimezone(BUSINESS_TZ).year
        if r.invoice_number[:2] != f"{year % 100:02d}":
            found.append(f"INV-5 number {r.invoice_number} of invoice {r.id}: not year {year}")
        sequences[(r.entity, year)].append(int(r.invoice_number[-12:]))
        blocks.setdefault(r.entity, set()).add(r.invoice_number[5:8])
    found += [f"INV-5 number {n} given to invoices {ids}" for n, ids in numbers.items()
              if len(ids) > 1]
    for (entity, year), seq in sequences.items():
        if sorted(seq) != list(range(1, len(seq) + 1)):
            found.append(f"INV-5 numbers of {entity} in {year} are not 1..{len(seq)}: "
                         f"{sorted(seq)[:5]}…{sorted(seq)[-5:]}")
    used = [b for entity_blocks in blocks.values() for b in entity_blocks]
    if any(len(b) != 1 for b in blocks.values()) or len(used) != len(set(used)):
        found.append(f"INV-5 number blocks per entity: {blocks}")
    return found


def _reds(conn, model, scope) -> list[str]:
    """INV-6: the red invoice of each reversal the model released: kind red, the blue
    one's negative in amount and in every line, pointing at it."""
    mine = {b.red_id: (i, b) for i, b in model.blue.items()
            if b.red_id is not None and b.uin in set(scope)}
    if not mine:
        return []
    rows = {r.id: r for r in conn.execute(select(invoices).where(invoices.c.id.in_(mine)))}
    lines = defaultdict(dict)
    for r in conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id.in_(mine))):
        lines[r.invoice_id][r.tax_category] = r.amount
    found = []
    for red_id, (blue_id, blue) in mine.items():
        row = rows.get(red_id)
        negated = {c: -f for c, f in blue.lines.items()}
        if row is None or (row.kind, row.original_id, row.amount, row.uin) != (
                "red", blue_id, -blue.amount, blue.uin) or lines[red_id] != negated:
            found.append(f"INV-6 red invoice {red_id} of blue {blue_id}: "
                         f"{row and (row.kind, row.original_id, row.amount)} lines "
                         f"{lines[red_id]}, the model says amount {-blue.amount} {negated}")
    return found


_i = invoices.c
_INVOICES = select(_i.id, _i.uin, _i.kind, _i.state, _i.entity, _i.invoice_number,
                   _i.invoice_code, _i.check_code, _i.issued_at).order_by(_i.id)
_LINE_CASH = lambda where: (  # noqa: E731
    select(_b.uin, _b.product_code, func.sum(_b.deducted - _b.voucher_paid - _b.gift_paid))
    .where(where(_b.uin)).group_by(_b.uin, _b.product_code))
_ORDER_CASH = lambda where: select(  # noqa: E731
    _o.uin, _o.kind, _o.product_code, _o.paid_cash, _o.paid_credit, _o.refunded_cash).where(
    _o.state.in_(("delivered", "refunded")), where(_o.uin))
_OWED = lambda where: (  # noqa: E731
    select(_la.uin, func.sum(_la.balance))
    .where(_la.kind.in_(("arrears", "advance")), where(_la.uin)).group_by(_la.uin))


def withdrawals_held(conn, model, now, uins) -> list[str]:
    """WDR-1..5 (docs/simulation.md, "Withdrawals"): each withdrawal judged as the model
    predicts (never more than the takeable amount read before it, nor by the original
    route more than the remittances have left); per account, the money in flight — Σ
    legs neither paid, returned nor paid another way — is the model's held money and
    Σ the pending ledger holds of those legs; overall the platform account
    "withdrawals_in_flight" holds exactly the pending withdrawal holds."""
    found, model.withdrawal_findings = model.withdrawal_findings, []
    legs = dict(_run(conn, _LEGS_HELD, uins).all())
    holds = dict(_run(conn, _WITHDRAWAL_HOLDS, uins).all())
    for uin in (uins if uins is not None else model.uins):
        in_legs, in_holds = int(legs.get(uin) or 0), int(holds.get(uin) or 0)
        if not in_legs == in_holds == model.held[uin]:
            found.append(f"WDR-4 held: {uin} legs in flight {in_legs}, pending holds "
                         f"{in_holds}, the model says {model.held[uin]}")
    if uins is None:
        found += _in_flight_account(conn)
    return found


def _in_flight_account(conn) -> list[str]:
    balance = int(conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0))
                               .join(ledger_accounts, _la.id == ledger_postings.c.account_id)
                               .where(_la.kind == "withdrawals_in_flight")).scalar_one())
    pending = int(conn.execute(select(func.coalesce(func.sum(_hd.amount), 0)).where(
        _hd.state == "pending", exists().where(withdrawal_legs.c.hold_id == _hd.id))
    ).scalar_one())
    return [] if balance == pending else [
        f"WDR-4 withdrawals_in_flight holds {balance}, the pending withdrawal holds {pending}"]


_wl = withdrawal_legs.c
_LEGS_HELD = lambda where: (select(_wl.uin, func.sum(_wl.amount))  # noqa: E731
                            .where(_wl.state.not_in(("paid", "returned", "rerouted")),
                                   where(_wl.uin)).group_by(_wl.uin))
_WITHDRAWAL_HOLDS = lambda where: (select(_hd.uin, func.sum(_hd.amount))  # noqa: E731
                                   .where(_hd.state == "pending", where(_hd.uin),
                                          exists().where(_wl.hold_id == _hd.id))
                                   .group_by(_hd.uin))


def balance_warnings(conn, model, now, uins) -> list[str]:
    """XTR-2 (docs/simulation.md, "Balance warnings"): each account's settings row is
    the model's (a refused change wrote nothing); at most one ``balance_warning`` notice
    per account and business day, sent on that day from 02:00; and each notice not
    judged yet was due: the spending of the 24 hours before 02:00 recomputed here from
    the bill lines, the settings the model says were in effect then, and the notice's
    own available balance give a warning by days or by amount, and the notice states
    them (days left = ⌊available ÷ spending⌋ in integers, no rules module)."""
    found, model.warning_findings = model.warning_findings, []
    rows = {r.uin: r for r in _run(conn, _WARNING_SETTINGS, uins)}
    for uin in (uins if uins is not None else model.uins):
        expected = model.warning_at(uin, now)
        row = rows.get(uin)
        got = ((row.days if row.days_on else None, row.amount) if row is not None
               else (5, None))
        if got != expected:
            found.append(f"XTR-2 settings of {uin}: (days, amount) {got}, the model says "
                         f"{expected}")
    per_day = defaultdict(list)
    for r in _run(conn, _WARNING_NOTICES, uins):
        params = json.loads(r.params)
        per_day[(r.uin, params["day"])].append(r.id)
        if r.id not in model.warnings_judged:  # once: its verdict does not change later
            model.warnings_judged.add(r.id)
            found += _judge_warning(conn, model, r, params)
    return found + [f"XTR-2 one notice a day: {uin} got {len(ids)} on {day} ({ids})"
                    for (uin, day), ids in sorted(per_day.items()) if len(ids) > 1]


def _judge_warning(conn, model, r, params) -> list[str]:
    day = date.fromisoformat(params["day"])
    end = datetime.combine(day, datetime.min.time(), BUSINESS_TZ) + timedelta(hours=2)
    sent = r.created_at.replace(tzinfo=timezone.utc)
    where = f"XTR-2 notice {r.id} of {r.uin} for {day}"
    if not end <= sent < end + timedelta(hours=22):
        return [f"{where}: sent at {sent}, not on that day from 02:00"]
    spent = int(conn.execute(select(func.coalesce(func.sum(_b.deducted - _b.voucher_paid), 0))
                             .where(_b.uin == r.uin, _b.cycle.in_(("hour", "day")),
                                    _b.deducted_at >= _naive_utc(end - timedelta(days=1)),
                                    _b.deducted_at < _naive_utc(end))).scalar_one())
    days, amount = model.warning_at(r.uin, sent)
    available = parse_yuan(params["available"], allow_negative=True, allow_zero=True)
    left = None if spent <= 0 else 0 if available <= 0 else available // spent
    by_days = days is not None and left is not None and available < days * spent
    by_amount = amount is not None and available < amount
    stated = (params["spent"], params["days"], params["threshold_days"], params["threshold"])
    expected = (format_yuan(max(spent, 0)), "—" if left is None else left,
                "—" if days is None else days, "—" if amount is None else format_yuan(amount))
    found = []
    if not (by_days or by_amount):
        found.append(f"{where}: not due (available {available}, spent {spent}, settings "
                     f"{days, amount})")
    if stated != expected:
        found.append(f"{where}: states (spent, days left, days, amount) {stated}, the model "
                     f"says {expected}")
    model.warning_counts["notices judged"] += 1
    if by_days or by_amount:
        model.warning_counts["by days" if by_days else "by amount only"] += 1
    return found


def _naive_utc(at: datetime) -> datetime:
    return at.astimezone(timezone.utc).replace(tzinfo=None)


_bw, _msg = balance_warning_settings.c, in_site_messages.c
_WARNING_SETTINGS = lambda where: select(  # noqa: E731
    _bw.uin, _bw.days_on, _bw.days, _bw.amount).where(where(_bw.uin))
_WARNING_NOTICES = lambda where: select(  # noqa: E731
    _msg.id, _msg.uin, _msg.params, _msg.created_at).where(
    _msg.template == "balance_warning", where(_msg.uin)).order_by(_msg.id)


CHECKS = {"balances": balances, "orders": order_states, "bills": bills, "keys": keys,
          "created": created_once, "postings": postings_balance, "remittances": remittance_states,
          "resources": resource_states, "renewals": renewals_once, "bill_levels": bill_levels,
          "invoices": invoice_amounts, "withdrawals": withdrawals_held,
          "balance_warnings": balance_warnings}
