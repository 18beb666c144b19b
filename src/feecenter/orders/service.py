"""Prepaid order use cases: create, preview and pay, deliver or fail, refund, expire.

Money moves only through ``funds`` (freeze at payment, post at delivery,
release on failure, refund back to gift and cash); prices come only from
``catalog.quote``; resources change only through ``resources``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (Connection, and_, bindparam, exists, func, insert, literal_column,
                        select, update)

from feecenter.accounts import rules as account_rules
from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import (FINANCE, RENEWAL, Actor, holds, require,
                                            require_operator)
from feecenter.accounts.tables import customers
from feecenter.catalog import service as catalog
from feecenter.catalog.rules import QTY_SCALE
from feecenter.catalog.tables import product_classes, products
from feecenter.clock import Clock, add_months, business_time_text, db_time, from_db_time
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.db import sending
from feecenter.db.base import id_sequence
from feecenter.db.precompiled import Precompiled, time_reader
from feecenter.errors import Conflict, invalid, not_found
from feecenter.funds import service as funds
from feecenter.inputs import account_key as _account_key
from feecenter.inputs import plain_text
from feecenter.ledger import service as ledger
from feecenter.ledger.service import content_hash
from feecenter.money import MAX_AMOUNT_FEN, format_yuan, round_rated_to_fen, split_proportionally
from feecenter.orders import rules
from feecenter.orders.tables import orders, payments
from feecenter.renewal import alignment as unified
from feecenter.renewal import rules as renewal_rules
from feecenter.resources import service as resources

KINDS = ("new", "renew", "upgrade", "downgrade", "refund")
STATES = ("unpaid", "paid", "delivered", "delivery_failed", "refunded", "expired", "voided")
MAX_ORDERS_PER_PAYMENT = 100
MAX_MONTHS = 60


@dataclass(frozen=True)
class NewPurchase:
    product: str
    region: str
    spec_item: str
    count: int = 1
    months: int = 1
    project_id: int | None = None
    resource_name: str | None = None
    tags: dict | None = None
    promo_term_days: int | None = None  # promotional orders: their own unpaid term


# ---------------------------------------------------------------- helpers

def _check_months(months: int) -> None:
    if not isinstance(months, int) or isinstance(months, bool) or not 1 <= months <= MAX_MONTHS:
        raise invalid("months", f"购买时长须为 1–{MAX_MONTHS} 个月",
                      f"duration must be 1-{MAX_MONTHS} months")


def _repeated(conn: Connection, uin: int, key: str, kind: str, resource_id: str | None,
              items: list[NewPurchase] | None = None, **same) -> int | None:
    """The order an earlier call with this key made (a purchase: its big deal's first
    order), or None; another use of the key refuses: another kind, another resource
    (a purchase: other items), other ``same`` columns (a renewal's months, a spec)."""
    row = conn.execute(select(orders).where(
        orders.c.idempotency_key == _account_key(uin, key))).mappings().first()
    if row is None:
        return None
    if row["kind"] != kind or (resource_id is not None and row["resource_id"] != resource_id) or (
            items is not None and _bought(conn, row["id"]) != _asked(items)) or any(
            row[column] != value for column, value in same.items()):
        raise Conflict("幂等键已用于其他操作", "idempotency key already used for another request",
                       field="idempotency_key")
    return row["id"]


def _claim_key(conn: Connection, uin: int, key: str | None) -> str | None:
    """A creation's key, checked, with the account's claim on it taken: its balance
    rows locked (the claim order's second step, docs/architecture.md), so two
    requests with one key run one after the other and the second finds the first's
    order (``_repeated``). None without a key: nothing is locked."""
    if key is None:
        return None
    stored = _account_key(uin, key)
    funds.lock_balances(conn, uin)
    return stored


def _bought(conn: Connection, first: int) -> list[tuple]:
    o = orders.c
    return [tuple(r) for r in conn.execute(
        select(o.product_code, o.region, o.spec_item, o.quantity, o.months)
        .where(o.big_deal_id == first).order_by(o.id))]


def _asked(items: list[NewPurchase]) -> list[tuple]:
    return [(i.product, i.region, i.spec_item,
             i.count * QTY_SCALE if isinstance(i.count, int) else None, i.months) for i in items]


def _big_deal(conn: Connection, first: int) -> list[int]:
    """The order ids of the purchase whose first order is ``first``, in order."""
    return list(conn.execute(select(orders.c.id).where(orders.c.big_deal_id == first)
                             .order_by(orders.c.id)).scalars())


def _check_count(count: int) -> None:
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1000:
        raise invalid("count", "购买数量须为 1–1000", "count must be 1-1000")


def _project(conn: Connection, clock: Clock, uin: int, project_id: int | None) -> dict:
    if project_id is None:
        project_id = resources.default_project(conn, clock, uin)
    return resources.get_project(conn, uin, project_id)


def _insert_order(conn: Connection, clock: Clock, actor: Actor, **values) -> int:
    now = clock.now()
    values.setdefault("expires_at", None)
    for money in ("paid_coupon", "paid_gift", "paid_cash", "paid_credit", "refunded_gift",
                  "refunded_cash"):
        values.setdefault(money, 0)
    return conn.execute(insert(orders).values(
        creator=actor.label, created_at=db_time(now), **values).returning(orders.c.id)
    ).scalar_one()


def _unpaid_term(product: catalog.Product, promo_days: int | None) -> timedelta:
    if promo_days is not None:
        if not isinstance(promo_days, int) or not 1 <= promo_days <= 365:
            raise invalid("promo_term_days", "促销订单有效期须为 1–365 天",
                          "promotional order term must be 1-365 days")
        return timedelta(days=promo_days)
    return timedelta(days=product.unpaid_order_days or rules.UNPAID_ORDER_DAYS)


# ---------------------------------------------------------------- creating orders

def create_purchase(conn: Connection, clock: Clock, actor: Actor, uin: int,
                    items: list[NewPurchase], *, key: str | None = None) -> list[int]:
    """New purchases (one big deal); priced now from the price list (ORD-5). With
    ``key``, a repeat returns the big deal's order ids and writes nothing."""
    require(actor, uin, FINANCE)
    stored_key = _claim_key(conn, uin, key)
    if stored_key and (first := _repeated(conn, uin, key, "new", None, items)) is not None:
        return _big_deal(conn, first)
    if not items or len(items) > MAX_ORDERS_PER_PAYMENT:
        raise invalid("items", "一次至少购买一项、至多 100 项", "buy 1-100 items at a time")
    order_ids: list[int] = []
    for item in items:
        _check_months(item.months)
        _check_count(item.count)
        product = catalog.get_product(conn, item.product)
        catalog.check_prepaid_months(product, item.months)
        accounts.purchase_gate(conn, clock, uin, product.operable_balance)
        project = _project(conn, clock, uin, item.project_id)
        quote = catalog.quote(conn, uin, item.product, item.spec_item, item.region, "prepaid",
                              item.count * QTY_SCALE, clock.now(), months=item.months)
        order_ids.append(_insert_order(
            conn, clock, actor, uin=uin, big_deal_id=order_ids[0] if order_ids else None,
            kind="new", state="unpaid", product_code=item.product, region=item.region,
            spec_item=item.spec_item, quantity=item.count * QTY_SCALE, months=item.months,
            resource_id=resources.new_resource_id(item.product), resource_name=item.resource_name,
            tags=json.dumps(item.tags or {}, ensure_ascii=False), project_id=project["id"],
            project_name=project["name"], promo=item.promo_term_days is not None,
            expires_at=db_time(clock.now() + _unpaid_term(product, item.promo_term_days)),
            idempotency_key=None if order_ids else stored_key, **_priced(quote)))
    first = order_ids[0]
    conn.execute(update(orders).where(orders.c.id == first).values(big_deal_id=first))
    return order_ids


def _priced(quote) -> dict:
    """The order's price columns; an order above the money cap is a typo or an attack."""
    list_amount = round_rated_to_fen(quote.list_amount)
    _refuse_above_cap(list_amount, round_rated_to_fen(quote.amount))
    return {"price_kind": quote.price_kind, "unit_price": quote.unit_price,
            "list_amount": list_amount,
            "discount_bp": quote.discount_bp, "amount": round_rated_to_fen(quote.amount)}


def _refuse_above_cap(list_amount: int, amount: int) -> None:
    if max(list_amount, amount) > MAX_AMOUNT_FEN:
        raise invalid("amount", f"订单金额超过上限 {format_yuan(MAX_AMOUNT_FEN)} 元，请减少数量或时长",
                      f"the order exceeds the cap of {format_yuan(MAX_AMOUNT_FEN)} yuan: "
                      "buy fewer units or months")


def _live_resource(conn: Connection, uin: int, resource_id: str, *, lock: bool = False) -> dict:
    return _refuse_released(resources.get_resource(conn, uin, resource_id, lock=lock))


def _refuse_released(resource: dict) -> dict:
    """The prepaid resource, refused once released (refunded)."""
    if resource["pay_mode"] != "prepaid":
        raise invalid("resource_id", "只有包年包月资源可以续费、变配或退订",
                      "only prepaid resources can be renewed, changed or refunded")
    if resource["state"] == "recycled":
        raise Conflict(f"资源 {resource['id']} 状态为 recycled（已退还或销毁）",
                       f"resource {resource['id']} is recycled (released)",
                       field="resource_id", state="recycled")
    return resource


def create_renewal(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
                   months: int, *, key: str | None = None) -> int:
    """A renewal is priced at the price in force now: a price change mid-term
    applies to renewals only. The new term counts from the current expiry; with
    the account's unified expiry day (RNW-5) it ends aligned to that day and the
    extra days are charged too (``renewal_price``). Renewal management (ACC-2:
    owner, admin); paying the order is FINANCE. With ``key``, a repeat returns
    the order it made and writes nothing."""
    require(actor, uin, RENEWAL)
    stored_key = _claim_key(conn, uin, key)
    repeat = stored_key and _repeated(conn, uin, key, "renew", resource_id, months=months)
    if repeat:
        return repeat
    resource = _live_resource(conn, uin, resource_id)
    product, price = _renewal_price(conn, clock, uin, resource, months)
    project = _project(conn, clock, uin, resource["project_id"])
    return _insert_order(
        conn, clock, actor, uin=uin, kind="renew", state="unpaid",
        product_code=resource["product_code"], region=resource["region"],
        spec_item=resource["spec_item"], quantity=resource["quantity"], months=months,
        resource_id=resource_id, project_id=project["id"], project_name=project["name"],
        service_start=db_time(price.start), service_end=db_time(price.end),
        unified_day=price.unified_day, unified_extra=price.unified_extra,
        expires_at=db_time(clock.now() + _unpaid_term(product, None)), promo=False,
        idempotency_key=stored_key, **price.columns)


@dataclass(frozen=True)
class RenewalPrice:
    """A renewal's price and term (RNW-5): ``term_amount`` for the months asked,
    ``unified_extra`` for the days up to the unified day (None without one), in
    fen; the order's amount is their sum. ``columns``: the order's price columns."""

    start: datetime
    term_end: datetime
    end: datetime
    term_amount: int
    unified_day: int | None
    unified_extra: int | None
    extra_days: int
    columns: dict

    @property
    def amount(self) -> int:
        return self.columns["amount"]


def _renewal_price(conn: Connection, clock: Clock, uin: int, resource: dict, months: int
                   ) -> tuple[catalog.Product, RenewalPrice]:
    _check_months(months)
    product = catalog.get_product(conn, resource["product_code"])
    catalog.check_prepaid_months(product, months)
    accounts.purchase_gate(conn, clock, uin, product.operable_balance)
    start = from_db_time(resource["period_end"])

    def priced(span: int):
        return catalog.quote(conn, uin, resource["product_code"], resource["spec_item"],
                             resource["region"], "prepaid", resource["quantity"], clock.now(),
                             months=span)

    quote = priced(months)
    columns = _priced(quote)
    term_amount = columns["amount"]
    alignment = unified.renewal_alignment(conn, uin, start, months)
    if alignment is None:
        return product, RenewalPrice(start, add_months(start, months), add_months(start, months),
                                     term_amount, None, None, 0, columns)
    monthly = priced(1)  # the pricing rule's monthly price (ORD-5), per extra day
    extra = rules.prorated_days(monthly.amount, list(alignment.days_by_month))
    extra_list = rules.prorated_days(monthly.list_amount, list(alignment.days_by_month))
    columns = {**columns, "amount": term_amount + extra,
               "list_amount": columns["list_amount"] + extra_list}
    _refuse_above_cap(columns["list_amount"], columns["amount"])
    return product, RenewalPrice(start, alignment.term_end, alignment.end, term_amount,
                                 alignment.day, extra, alignment.extra_days, columns)


def quote_renewal(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
                  months: int) -> RenewalPrice:
    """What ``create_renewal`` would charge now and the expiry it would give
    (RNW-5's preview); writes nothing. Renewal management (ACC-2)."""
    require(actor, uin, RENEWAL)
    resource = _live_resource(conn, uin, resource_id)
    return _renewal_price(conn, clock, uin, resource, months)[1]


def _spec_change(conn, clock, uin, resource, new_spec) -> tuple[int, object]:
    new_spec = plain_text(new_spec, "spec_item", 64)
    if new_spec == resource["spec_item"]:
        raise invalid("spec_item", "新配置与当前配置相同", "the new spec is the same as the current one")
    now = clock.now()
    common = (conn, uin, resource["product_code"])
    old = catalog.quote(*common, resource["spec_item"], resource["region"], "prepaid",
                        resource["quantity"], now, months=1)
    new = catalog.quote(*common, new_spec, resource["region"], "prepaid", resource["quantity"],
                        now, months=1)
    remaining = from_db_time(resource["period_end"]) - now
    return rules.prorated_change(old.amount, new.amount, remaining), new


def create_upgrade(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
                   new_spec: str, *, key: str | None = None) -> int:
    """Upgrade: pay the prorated difference for the remaining service time.

    Priced from the resource as it is now, whose spec and expiry the order records
    (``from_spec_item``, ``service_end``): if either differs when it is paid or
    delivered, the order is refused (``_checked_resource``). With ``key``, a
    repeat returns the order it made and writes nothing."""
    require(actor, uin, FINANCE)
    stored_key = _claim_key(conn, uin, key)
    repeat = stored_key and _repeated(conn, uin, key, "upgrade", resource_id, spec_item=new_spec)
    if repeat:
        return repeat
    resource = _live_resource(conn, uin, resource_id)
    product = catalog.get_product(conn, resource["product_code"])
    accounts.purchase_gate(conn, clock, uin, product.operable_balance)
    amount, quote = _spec_change(conn, clock, uin, resource, new_spec)
    if amount <= 0:
        raise invalid("spec_item", "新配置不高于当前配置，请使用降配",
                      "the new spec is not more expensive: use a downgrade")
    project = _project(conn, clock, uin, resource["project_id"])
    return _insert_order(
        conn, clock, actor, uin=uin, kind="upgrade", state="unpaid",
        product_code=resource["product_code"], region=resource["region"], spec_item=new_spec,
        from_spec_item=resource["spec_item"], quantity=resource["quantity"], months=None,
        resource_id=resource_id, project_id=project["id"], project_name=project["name"],
        price_kind=quote.price_kind, unit_price=quote.unit_price, list_amount=amount,
        discount_bp=quote.discount_bp, amount=amount, service_start=db_time(clock.now()),
        service_end=resource["period_end"], idempotency_key=stored_key,
        expires_at=db_time(clock.now() + _unpaid_term(product, None)), promo=False)


# ---------------------------------------------------------------- payment

def _check_order_ids(order_ids: list[int]) -> None:
    if not order_ids or len(order_ids) > MAX_ORDERS_PER_PAYMENT:
        raise invalid("order_ids", "一次支付 1–100 个订单", "pay 1-100 orders at a time")
    if len(set(order_ids)) != len(order_ids):
        raise invalid("order_ids", "订单重复", "an order appears twice")


def _refuse_unpayable(rows: dict[int, dict], order_ids: list[int], now: datetime) -> list[dict]:
    """The orders in the order given, refusing the first missing, expired or not unpaid."""
    for order_id in order_ids:
        order = rows.get(order_id)
        if order is None:
            raise not_found("order_ids", "订单", "order", order_id)
        expired = order["expires_at"] is not None and from_db_time(order["expires_at"]) <= now
        if order["state"] == "expired" or (order["state"] == "unpaid" and expired):
            raise Conflict(f"订单 {order_id} 状态为 expired（已过期），不能支付",
                           f"order {order_id} is expired and cannot be paid",
                           field="order_ids", state="expired")
        if order["state"] != "unpaid":
            raise Conflict(f"订单 {order_id} 状态为 {order['state']}，不能支付",
                           f"order {order_id} is {order['state']} and cannot be paid",
                           field="order_ids", state=order["state"])
    return [rows[i] for i in order_ids]


def _coupon_ref(order_id: int) -> str:
    """The coupon uses of an order are named by this (confirm, release, refund)."""
    return f"order:{order_id}"


def _check_coupon_ids(coupon_ids: list[int] | None) -> list[int] | None:
    if coupon_ids is None:
        return None
    if (isinstance(coupon_ids, (str, bytes)) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in coupon_ids)
            or len(coupon_ids) > MAX_ORDERS_PER_PAYMENT):
        raise invalid("coupon_ids", "优惠券 ID 须为至多 100 个整数", "coupon_ids: at most 100 integers")
    if len(set(coupon_ids)) != len(coupon_ids):
        raise invalid("coupon_ids", "优惠券重复", "a coupon appears twice")
    return sorted(coupon_ids)


def _coupon_lines(payable: list[dict]) -> list[coupon_rules.Line]:
    """One coupon line per order with something to pay (``entity``, ``promo`` read)."""
    return [coupon_rules.Line(
        reference=_coupon_ref(o["id"]), product_code=o["product_code"], amount=o["amount"],
        order_kind=o["kind"], months=o["months"], refuses_coupons=bool(o["promo"]),
        entity=o["entity"]) for o in payable if o["amount"] > 0]


def _coupon_allocation(conn: Connection, clock: Clock, uin: int, payable: list[dict],
                       selected: list[int] | None, *, preview_for: Actor | None = None
                       ) -> coupons.Allocation | None:
    """ORD-3's first step: what coupons pay of each order (coupons.allocate, the
    coupons locked; or, for ``preview_for``, coupons.preview). None when no
    coupon is asked: the customer chose none (``[]``), or automatic choice and
    the buyer holds no unused prepaid coupon (the orders read says so)."""
    if selected == [] or (selected is None and not any(o["coupon_held"] for o in payable)):
        return None
    lines = _coupon_lines(payable)
    if not lines:
        return None
    if preview_for is not None:
        return coupons.preview(conn, clock, preview_for, uin, lines, coupon_rules.PREPAID,
                               selected=selected)
    return coupons.allocate(conn, clock, uin, lines, coupon_rules.PREPAID, selected=selected)


def _coupon_paid(payable: list[dict], allocation: coupons.Allocation | None) -> list[int]:
    """Fen of each order that coupons pay (0 each without an allocation)."""
    if allocation is None:
        return [0] * len(payable)
    paid = {line.reference: amount for line, amount in zip(allocation.lines,
                                                           allocation.line_paid)}
    return [paid.get(_coupon_ref(o["id"]), 0) for o in payable]


def preview_payment(conn: Connection, clock: Clock, actor: Actor, uin: int,
                    order_ids: list[int], coupon_ids: list[int] | None = None) -> dict:
    """What each source would pay (coupons, gift, cash, credit), and why each coupon
    that pays nothing does not apply; writes nothing, locks nothing."""
    require(actor, uin, FINANCE)
    _check_order_ids(order_ids)
    selected = _check_coupon_ids(coupon_ids)
    rows = {r["id"]: dict(r) for r in conn.execute(
        select(orders).where(orders.c.id.in_(order_ids), orders.c.uin == uin)).mappings()}
    payable = _refuse_unpayable(rows, order_ids, clock.now())
    products: dict[str, catalog.Product] = {}
    for order in payable:  # each product read, and its gate checked, once
        if order["product_code"] not in products:
            products[order["product_code"]] = product = catalog.get_product(
                conn, order["product_code"])
            accounts.purchase_gate(conn, clock, uin, product.operable_balance)
        order.update(entity=products[order["product_code"]].entity,
                     coupon_held=True)  # preview always asks coupons
    allocation = _coupon_allocation(conn, clock, uin, payable, selected, preview_for=actor)
    plan = funds.plan_payment(conn, clock, uin, [o["amount"] for o in payable],
                              coupons=_coupon_paid(payable, allocation))
    return _plan_dict(payable, plan, allocation)


def _plan_dict(payable, plan, allocation: coupons.Allocation | None = None) -> dict:
    lines = [{"order_id": o["id"], "amount": a.amount, "coupon": a.coupon, "gift": a.gift,
              "cash": a.cash, "credit": a.credit} for o, a in zip(payable, plan)]
    totals = {k: sum(line[k] for line in lines) for k in ("amount", "coupon", "gift", "cash",
                                                          "credit")}
    uses, skipped = [], {}
    if allocation is not None:
        order_of = {_coupon_ref(o["id"]): o["id"] for o in payable}
        uses = [{"coupon_id": u.coupon_id, "amount": u.amount,
                 "order_id": order_of[allocation.lines[u.line_index].reference]}
                for u in allocation.plan.uses]
        skipped = {cid: r.to_dict() for cid, r in allocation.plan.skipped.items()}
    return {"orders": lines, "totals": totals, "coupon_uses": uses, "coupons_skipped": skipped}


# The fast path's statements (docs/orders.md, "Payment"): built once, run on the driver.
_O = orders.c
_REVENUE, _REVENUE_ON, _REVENUE_COLUMNS = funds.platform_account_join(products.c.entity, "revenue")
_PAYABLE_COLUMNS = (
    _O.id, _O.uin, _O.kind, _O.state, _O.product_code, _O.region, _O.spec_item, _O.quantity,
    _O.months, _O.resource_id, _O.resource_name, _O.tags, _O.project_id, _O.amount,
    _O.created_at, _O.expires_at, _O.service_start, _O.service_end, _O.unified_day, _O.promo,
    _O.from_spec_item,
    products.c.delivery_mode, products.c.entity, product_classes.c.operable_balance,
    customers.c.status, customers.c.realname_state,
    coupons.held(_O.uin, coupon_rules.PREPAID).label("coupon_held"))
_PAYABLE_NAMES = tuple(c.key for c in _PAYABLE_COLUMNS)


@functools.cache  # one statement per number of orders, at most MAX_ORDERS_PER_PAYMENT
def _payable_statement(count: int) -> Precompiled:
    """The orders with their product's facts, the buyer's state and the revenue
    account's metadata, in one read; on PostgreSQL the order rows are locked in id
    order (FOR UPDATE OF orders), so two payments of one order run one after the
    other. Catalog and account rows are only read here: their owners' functions
    would cost a statement (a round trip) each. By id alone, so that the primary
    key is the only index to choose (with the buyer's UIN as well, a planner
    without statistics may scan the buyer's orders): rows of another account are
    dropped by the caller, as if missing."""
    ids = [bindparam(f"id_{i}", type_=_O.id.type) for i in range(count)]
    return Precompiled(
        select(*_PAYABLE_COLUMNS, *_REVENUE_COLUMNS)
        .select_from(orders.join(products, products.c.code == _O.product_code)
                     .join(product_classes, product_classes.c.code == products.c.product_class)
                     .join(customers, customers.c.uin == _O.uin)
                     .outerjoin(_REVENUE, _REVENUE_ON))
        .where(_O.id.in_(ids)).order_by(_O.id).with_for_update(of=orders))


_P = payments.c
_EARLIER_NAMES = ("id", "request_hash", "order_ids", "amount", "coupon", "gift", "cash", "credit")


def _payment_key_statement(postgres: bool) -> Precompiled:
    """The id a new payment takes (as ledger.reserve_ids: the sequence on PostgreSQL,
    SQLite's max + 1 under its write lock) and the payment made earlier with the key,
    if any (its columns NULL otherwise): one row."""
    if postgres:
        next_id = func.nextval(literal_column(id_sequence(payments.name)))
    else:
        next_id = (select(func.coalesce(func.max(_P.id), literal_column("0")))
                   .scalar_subquery() + literal_column("1"))
    one = select(next_id.label("next_id")).subquery("one")
    return Precompiled(
        select(one.c.next_id, *(_P[n] for n in _EARLIER_NAMES))
        .select_from(one.outerjoin(payments, _P.idempotency_key == bindparam(
            "key", type_=_P.idempotency_key.type))))


_PAYMENT_KEY = {True: _payment_key_statement(True), False: _payment_key_statement(False)}
_PAYMENT_COLUMNS = ("id", "uin", "idempotency_key", "request_hash", "order_ids", "amount",
                    "coupon", "gift", "cash", "credit", "created_at")
_INSERT_PAYMENT = Precompiled(insert(payments).values(
    {n: bindparam(n, type_=payments.c[n].type) for n in _PAYMENT_COLUMNS}))
_PAID_COLUMNS = ("state", "hold_id", "payment_id", "paid_at", "paid_coupon", "paid_gift",
                 "paid_cash", "paid_credit")
_DELIVERED_COLUMNS = _PAID_COLUMNS + ("closed_at", "service_start", "service_end")


def _mark_statement(columns: tuple[str, ...]) -> Precompiled:
    return Precompiled(update(orders).where(
        _O.id == bindparam("o_id", type_=_O.id.type),
        _O.state == bindparam("from_state", type_=_O.state.type))
        .values({n: bindparam(n, type_=_O[n].type) for n in columns}))


_MARK_PAID, _MARK_DELIVERED = _mark_statement(_PAID_COLUMNS), _mark_statement(_DELIVERED_COLUMNS)


@dataclass
class _Reads:
    """What pay() reads before it writes: sent together (one round trip on PostgreSQL)."""

    orders: sending.Sent
    funds: Callable[[], funds.LockedFunds]
    ids: ledger.Reservation
    payment: sending.Sent  # the next payment id, and the earlier payment with the key


def _send_reads(conn: Connection, clock: Clock, uin: int, order_ids: list[int],
                key: str) -> _Reads:
    """Lock the orders (first, in id order), then the balances, then reserve ids and
    read the key's earlier payment. On PostgreSQL this is one statement, one
    snapshot: a payment with the key committed while the locks were awaited is
    not seen here (``_payable_or_repeat`` and the writes' key check catch it)."""
    params = {f"id_{i}": order_id for i, order_id in enumerate(order_ids)}
    count = len(order_ids)
    postgres = conn.dialect.name == "postgresql"
    return _Reads(
        sending.send(conn, _payable_statement(count), params, returns=True),
        funds.lock_for_payment(conn, clock, uin),
        ledger.reserve_ids(conn, txns=count + 2, holds=count),  # advance + hold + each post
        sending.send(conn, _PAYMENT_KEY[postgres], {"key": key}, returns=True))


def _payable_rows(conn: Connection, clock: Clock, sent: sending.Sent, uin: int
                  ) -> dict[int, dict]:
    """The buyer's orders read, by id (another account's are left out)."""
    read_time = time_reader(conn.dialect)
    found = {}
    width = len(_PAYABLE_NAMES)
    for row in sent.rows():
        order = dict(zip(_PAYABLE_NAMES, row))
        if order["uin"] != uin:
            continue
        order["created_at"] = read_time(order["created_at"])
        order["expires_at"] = read_time(order["expires_at"])
        order["service_start"] = read_time(order["service_start"])
        order["service_end"] = read_time(order["service_end"])
        order["revenue"] = (funds.platform_meta(conn, clock, order["entity"], "revenue",
                                                row[width:])
                            if _delivered_at_once(order) else None)
        found[order["id"]] = order
    return found


def _earlier_payment(key_row: tuple, request_hash: str) -> dict | None:
    """The payment made earlier with the key (a row of _PAYMENT_KEY), if any; refused
    if it paid other orders."""
    earlier = dict(zip(_EARLIER_NAMES, key_row[1:]))
    if earlier["id"] is None:
        return None
    if earlier["request_hash"] != request_hash:
        raise Conflict("幂等键已用于不同的支付", "idempotency key already used for another payment",
                       field="idempotency_key")
    return earlier


def _payable_or_repeat(conn: Connection, clock: Clock, found: dict[int, dict],
                       order_ids: list[int], key: str, request_hash: str):
    """The orders to pay, or the earlier payment when an order is paid already by
    this key: the reads' snapshot predates the order locks on PostgreSQL, so the
    key is looked up again (after them) before an order is refused as paid."""
    try:
        return _refuse_unpayable(found, order_ids, clock.now()), None
    except Conflict:
        postgres = conn.dialect.name == "postgresql"
        fresh = _PAYMENT_KEY[postgres].rows(conn, {"key": key})[0]
        if (earlier := _earlier_payment(fresh, request_hash)) is None:
            raise
        return None, earlier


def pay(conn: Connection, clock: Clock, actor: Actor, uin: int, order_ids: list[int], *,
        key: str, coupon_ids: list[int] | None = None) -> dict:
    """Pay one order or several merged (ORD-3): freeze, then deliver auto-delivered ones.

    The fast path (docs/orders.md): the reads sent together — the orders locked
    with their product facts and the buyer's state, the balances locked, the
    payment key, ids reserved; gate and plan in Python; then the writes sent
    together — the ledger batch, the 收支明细 entries, the payment, the
    resources and the orders. On PostgreSQL: one round trip for the reads, and the
    writes go with the unit of work's COMMIT when nothing runs after them
    (``sending.writes(with_commit=True)``: their errors are raised at the commit).
    Repeating the idempotency key returns the first payment and writes nothing.
    ``coupon_ids``: the coupons the customer picked; None: the best of the
    account's (ORD-3: coupons pay first); []: no coupon. Coupons cost statements
    only when the buyer holds an unused prepaid coupon or picked some.
    """
    require(actor, uin, FINANCE)
    key = _account_key(uin, key)
    _check_order_ids(order_ids)
    selected = _check_coupon_ids(coupon_ids)
    with sending.reads(conn):
        reads = _send_reads(conn, clock, uin, order_ids, key)
    found = _payable_rows(conn, clock, reads.orders, uin)
    if len(found) != len(order_ids):
        _refuse_unpayable(found, order_ids, clock.now())  # names the missing order
    locked = reads.funds()
    request = {"uin": uin, "orders": sorted(order_ids)}
    request_hash = content_hash(request if selected is None else {**request, "coupons": selected})
    earlier = _earlier_payment(reads.payment.rows()[0], request_hash)
    if earlier is None:
        payable, earlier = _payable_or_repeat(conn, clock, found, order_ids, key, request_hash)
    if earlier is not None:
        return _payment_result(conn, earlier, created=False)
    account_rules.refuse_buyer(payable[0]["status"], payable[0]["realname_state"])
    funds.require_payable(locked, max(o["operable_balance"] for o in payable))
    spans = _change_resources(conn, clock, payable)  # the resources before the coupons
    allocation = _coupon_allocation(conn, clock, uin, payable, selected)
    plan = funds.plan_locked_payment(locked, [o["amount"] for o in payable],
                                     _coupon_paid(payable, allocation))
    payment_id = reads.payment.rows()[0][0]
    totals = _totals(plan)
    with sending.writes(conn, with_commit=allocation is None):  # the payment's last step
        states = _write_payment(conn, clock, locked, payable, plan, reads.ids.ids(),
                                {"id": payment_id, "idempotency_key": key,
                                 "request_hash": request_hash, **totals}, spans)
    if allocation is not None:
        _use_coupons(conn, clock, uin, allocation, key, payable, plan)
    return {"payment_id": payment_id, "created": True, "order_ids": list(order_ids),
            "states": states, "resource_ids": [o["resource_id"] for o in payable], **totals}


def _use_coupons(conn: Connection, clock: Clock, uin: int, allocation: coupons.Allocation,
                 key: str, payable: list[dict], plan) -> None:
    """The coupons' part of a payment, after its writes (their ledger transactions
    take ids after the ones the writes reserved): the uses written pending, and
    confirmed at once for orders delivered at once (FRZ-3's freeze and post, for
    coupon money). An order coupons pay in full is in none of the writes' entries:
    its coupon payment gets its own (``_coupon_paid_entry``)."""
    coupons.reserve(conn, clock, uin, allocation, key=f"pay:{content_hash(key)[:40]}")
    for order, paid in zip(payable, plan):
        if _delivered_at_once(order):
            settled = coupons.confirm(conn, clock, uin, _coupon_ref(order["id"]))
            if paid.coupon == paid.amount > 0:
                _coupon_paid_entry(conn, clock, order, settled)


def _coupon_paid_entry(conn: Connection, clock: Clock, order: dict,
                       settled: coupons.Settled) -> None:
    """The 收支明细 entry of an order coupons paid in full, delivered now (BAL-5): a
    ``deduct`` of − the price, all of it coupon, on the coupon payment's ledger
    transaction (``funds.record_coupon_only``). Nothing confirmed now: no entry."""
    if not settled.created:
        return
    funds.record_coupon_only(conn, clock, order["uin"], settled.txn_id, "deduct",
                             settled.amount, product_code=order["product_code"],
                             order_id=rules.order_no(order["id"], order["created_at"]),
                             memo=f"{order['kind']} {order['resource_id']}")


def _totals(plan) -> dict[str, int]:
    return {k: sum(getattr(a, k) for a in plan) for k in ("amount", "coupon", "gift", "cash",
                                                          "credit")}


def _change_resources(conn: Connection, clock: Clock, payable: list[dict]
                      ) -> dict[int, tuple[datetime, datetime]]:
    """Renewals and upgrades read their resource locked (after the orders and the
    balances, before the coupons: the claim order of docs/architecture.md) and are
    refused when it changed since they were priced (``_stale``); those delivered
    at once change it now, so before the writes. New resources are created inside
    the writes (one INSERT each). The service period of each change delivered at
    once, by order id; a released resource refuses the payment, and so does a
    second change of one resource when either is an upgrade (each was priced from
    the resource before the other)."""
    spans, kinds = {}, {}
    for order in payable:
        if order["kind"] == "new":
            continue
        earlier = kinds.setdefault(order["resource_id"], set())
        if earlier and "upgrade" in earlier | {order["kind"]}:
            raise _stale_conflict(order)
        earlier.add(order["kind"])
        if _delivered_at_once(order):
            spans[order["id"]] = _apply_to_resource(conn, clock, order)
        else:
            _checked_resource(conn, order)
    return spans


def _delivered_at_once(order: dict) -> bool:
    """Automatic delivery: paid and delivered in the payment's transaction (FRZ-3)."""
    return order["delivery_mode"] == "auto"


def _write_payment(conn: Connection, clock: Clock, locked, payable: list[dict], plan,
                   reserved, payment: dict, spans: dict[int, tuple[datetime, datetime]]
                   ) -> dict[int, str]:
    """Send the writes: the payment row, the ledger batch and 收支明细 (funds), the
    resources and the orders. ``payment``: its id, key, request hash and totals.
    On PostgreSQL the reads' snapshot predates their locks: a payment with the
    key committed meanwhile (for other orders of the account) is met here, as
    the key's unique violation (IdempotencyConflict: ``sending.writes``)."""
    sending.send(conn, _INSERT_PAYMENT, {
        **payment, "uin": locked.uin, "order_ids": json.dumps([o["id"] for o in payable]),
        "created_at": db_time(clock.now())})
    numbers = [rules.order_no(o["id"], o["created_at"]) for o in payable]
    frozen = [(o, allocation, number) for o, allocation, number in zip(payable, plan, numbers)
              if allocation.amount > allocation.coupon]  # coupons alone: nothing to freeze
    parts = [funds.PaymentPart(f"order:{o['id']}", allocation, number,
                               deliver_to=o["revenue"], product_code=o["product_code"],
                               delivery_memo=f"{o['kind']} {o['resource_id']}")
             for o, allocation, number in frozen]
    hold_ids = funds.pay_by_freezing(conn, clock, locked, parts,
                                     key=f"pay:{payment['idempotency_key']}", reserved=reserved,
                                     memo="订单支付 / order payment " + " ".join(numbers)
                                     ) if parts else []
    hold_of = {o["id"]: hold_id for (o, _, _), hold_id in zip(frozen, hold_ids)}
    return {o["id"]: _mark_paid(conn, clock, o, allocation, hold_of.get(o["id"]), payment["id"],
                                spans) for o, allocation in zip(payable, plan)}


def _mark_paid(conn: Connection, clock: Clock, order: dict, allocation, hold_id: int | None,
               payment_id: int, spans: dict[int, tuple[datetime, datetime]]) -> str:
    """The order paid, and delivered at once when its product delivers automatically
    (the resource created or changed); returns its new state."""
    now = db_time(clock.now())
    values = {"o_id": order["id"], "from_state": "unpaid", "hold_id": hold_id,
              "payment_id": payment_id, "paid_at": now, "paid_coupon": allocation.coupon,
              "paid_gift": allocation.gift, "paid_cash": allocation.cash,
              "paid_credit": allocation.credit}
    if _delivered_at_once(order):
        start, end = spans.get(order["id"]) or _apply_to_resource(conn, clock, order)
        values.update(state="delivered", closed_at=now, service_start=db_time(start),
                      service_end=db_time(end))
        statement = _MARK_DELIVERED
    else:
        values["state"], statement = "paid", _MARK_PAID

    def paid_already() -> Conflict:  # the rows are locked: a bug if it happens
        return Conflict(f"订单 {order['id']} 已被支付", f"order {order['id']} was paid already",
                        field="order_ids")

    sending.send(conn, statement, values, expect=sending.Expect(1, paid_already))
    return values["state"]


def _payment_result(conn: Connection, payment, *, created: bool) -> dict:
    ids = json.loads(payment["order_ids"])
    rows = conn.execute(select(orders.c.id, orders.c.state, orders.c.resource_id)
                        .where(orders.c.id.in_(ids))).all()
    by_id = {r.id: r for r in rows}
    return {"payment_id": payment["id"], "created": created, "order_ids": ids,
            "states": {i: by_id[i].state for i in ids},
            "resource_ids": [by_id[i].resource_id for i in ids],
            **{k: payment[k] for k in ("amount", "coupon", "gift", "cash", "credit")}}


# ---------------------------------------------------------------- delivery

_CLAIMS = {"delivered": ("发货", "delivered"),
           "delivery_failed": ("标记发货失败", "marked as failed"), "voided": ("作废", "voided")}


def _claim(conn: Connection, order_id: int, from_state: str, to_state: str, clock: Clock,
           **values) -> dict:
    """Move an order from ``from_state`` to ``to_state`` exactly once: one conditional
    UPDATE whose row count decides the winner, returning the row it changed (the
    values the winner acts on are the claimed row's, never an earlier read). The
    loser gets a Conflict naming the state it found."""
    claimed = conn.execute(update(orders).where(orders.c.id == order_id,
                                                orders.c.state == from_state)
                           .values(state=to_state, closed_at=db_time(clock.now()), **values)
                           .returning(*orders.c)).mappings().first()
    if claimed is not None:
        return dict(claimed)
    state = conn.execute(select(orders.c.state).where(orders.c.id == order_id)).scalar()
    if state is None:
        raise not_found("order_id", "订单", "order", order_id)
    verb_zh, verb_en = _CLAIMS[to_state]
    raise Conflict(f"订单 {order_id} 状态为 {state}，不能{verb_zh}",
                   f"order {order_id} is {state}, not {from_state}: it cannot be {verb_en}",
                   field="order_id", state=state)


def deliver(conn: Connection, clock: Clock, actor: Actor, order_id: int) -> None:
    """Delivery succeeded: the freeze is posted to revenue and the resource changes (FRZ-3).
    In the claim order: the order, the balances, the resource, the coupon uses."""
    require_operator(actor)
    order = _claim(conn, order_id, "paid", "delivered", clock)
    product = catalog.get_product(conn, order["product_code"])
    coupon_only = order["hold_id"] is None and order["paid_coupon"] > 0
    if order["hold_id"] is not None:  # None: coupons paid it all (or it cost nothing)
        funds.deduct_frozen(conn, clock, order["uin"], order["hold_id"],
                            revenue_account_id=funds.platform_account(conn, clock, "revenue",
                                                                      product.entity),
                            product_code=order["product_code"],
                            order_id=rules.order_no(order["id"], order["created_at"]),
                            memo=f"{order['kind']} {order['resource_id']}")
    elif coupon_only:  # its entry comes after the coupons: lock the balances in their turn
        funds.lock_balances(conn, order["uin"])
    start, end = _apply_to_resource(conn, clock, order)
    settled = coupons.confirm(conn, clock, order["uin"], _coupon_ref(order_id))
    if coupon_only:
        _coupon_paid_entry(conn, clock, order, settled)
    conn.execute(update(orders).where(orders.c.id == order_id).values(
        service_start=db_time(start), service_end=db_time(end)))


def _apply_to_resource(conn: Connection, clock: Clock, order: dict) -> tuple[datetime, datetime]:
    if order["kind"] == "new":
        return _create_resource(conn, clock, order)
    resource = _checked_resource(conn, order)
    now = clock.now()
    current_end = from_db_time(resource["period_end"])
    if order["kind"] == "renew":  # counts from the old expiry (RNW-6); aligned: as priced
        end = (add_months(current_end, order["months"]) if order["unified_day"] is None
               else from_db_time(order["service_end"]))
        if resource["state"] == "stopped":  # in the recycle bin: restored (RNW-6)
            _refuse_past_recovery(conn, resource, now)
            resources.end_stop(conn, order["resource_id"], now, period_end=end, state="running")
        else:
            resources.update_resource(conn, order["resource_id"], period_end=end,
                                      state="running")
        return current_end, end
    resources.update_resource(conn, order["resource_id"], spec_item=order["spec_item"])
    return now, current_end


def _refuse_past_recovery(conn: Connection, resource: dict, now: datetime) -> None:
    """A resource in the recycle bin is restored only before its release time (RNW-6),
    even when the release job has not run yet."""
    stop = resources.open_stops(conn, [resource["id"]]).get(resource["id"])
    if stop is None or stop["reason"] != renewal_rules.EXPIRED:
        return
    recovery = catalog.get_product(conn, resource["product_code"]).recovery_days
    release = renewal_rules.release_at(from_db_time(stop["stopped_at"]), recovery)
    if now >= release:
        raise Conflict(f"资源 {resource['id']} 已过回收期（{business_time_text(release)} 释放），不能恢复",
                       f"resource {resource['id']} is past its recovery period (released at "
                       f"{business_time_text(release)}): it cannot be restored",
                       field="resource_id", state="released")


def renewal_awaiting_delivery(resource_id):
    """SQL condition: the resource has a renewal paid and not delivered yet (a product
    delivered by hand, FRZ-3). Its next term is bought: it is not auto-renewed again,
    nor stopped, nor released while it waits (RNW-6)."""
    o = orders.c
    return exists().where(o.resource_id == resource_id, o.kind == "renew", o.state == "paid")


def awaits_renewal_delivery(conn: Connection, resource_id: str) -> bool:
    return conn.execute(select(renewal_awaiting_delivery(resource_id))).scalar_one()


def _create_resource(conn: Connection, clock: Clock, order: dict) -> tuple[datetime, datetime]:
    now = clock.now()
    end = add_months(now, order["months"])
    resources.create_resource(
        conn, clock, uin=order["uin"], product_code=order["product_code"],
        region=order["region"], project_id=order["project_id"], pay_mode="prepaid",
        spec_item=order["spec_item"], quantity=order["quantity"], period_start=now,
        period_end=end, name=order["resource_name"],
        tags=json.loads(order["tags"] or "{}"), resource_id=order["resource_id"])
    return now, end


def _checked_resource(conn: Connection, order: dict) -> dict:
    """The resource of a renewal or an upgrade, locked (the claim order's last step),
    refused when released or when it changed since the order was priced from it."""
    resource = _live_resource(conn, order["uin"], order["resource_id"], lock=True)
    if _stale(order, resource):
        raise _stale_conflict(order)
    return resource


def _stale(order: dict, resource: dict) -> bool:
    """Whether ``order`` was priced from another state of ``resource`` (read under its
    lock). A renewal is priced from the spec (its ``spec_item``); it counts from the
    expiry at payment, so another renewal first does not change its worth, unless
    it was aligned to a unified day (RNW-5): its extra days were priced from the
    expiry it recorded (``service_start``), which must still be the resource's. An
    upgrade is priced from the spec and the time left up to the expiry it recorded
    (``from_spec_item``, and ``service_end`` until delivered): it is stale when
    either differs, whatever changed the resource meanwhile. One created before
    revision 0009 has no ``from_spec_item`` and is refused: its spec is unknown."""
    if order["kind"] == "renew":
        return resource["spec_item"] != order["spec_item"] or (
            order["unified_day"] is not None and resource["period_end"] != order["service_start"])
    return (order["from_spec_item"] is None or resource["spec_item"] != order["from_spec_item"]
            or resource["period_end"] != order["service_end"])


def _stale_conflict(order: dict) -> Conflict:
    resource_id, order_id = order["resource_id"], order["id"]
    kind_zh, kind_en = (("续费订单", "renewal order") if order["kind"] == "renew"
                        else ("升配订单", "upgrade order"))
    return Conflict(
        f"资源 {resource_id} 在订单 {order_id} 创建后已变更（配置或到期时间），"
        f"订单价格已不适用，请重新创建{kind_zh}",
        f"resource {resource_id} changed (spec or expiry) after order {order_id} was "
        f"created, so its price no longer applies: create a new {kind_en}",
        field="resource_id", resource_id=resource_id, order_id=order_id)


def fail_delivery(conn: Connection, clock: Clock, actor: Actor, order_id: int,
                  reason: str) -> None:
    """Delivery failed: the whole freeze is released, and the coupons get back what
    they were to pay (FRZ-3)."""
    require_operator(actor)
    if not reason or not reason.strip():
        raise invalid("reason", "必须说明发货失败原因", "a failure reason is required")
    order = _claim(conn, order_id, "paid", "delivery_failed", clock, failure_reason=reason)
    if order["hold_id"] is not None:
        funds.unfreeze(conn, clock, order["uin"], order["hold_id"],
                       memo=f"发货失败 / delivery failed: {reason}")
    coupons.release(conn, clock, order["uin"], _coupon_ref(order_id))


# ---------------------------------------------------------------- refunds and downgrades

def _claim_resource(conn: Connection, uin: int, resource_id: str) -> dict:
    """A refund's or a downgrade's claim, in the claim order (docs/architecture.md):
    the resource's orders locked (id order), then the customer's balances, then the
    resource; returns the resource read under the locks. All the caller decides
    on (the key's earlier use, the state, the paid parts) is read after this: two
    of the account's refunds or downgrades, even of different resources, run one
    after the other (the balances), so a key is never taken twice."""
    resource_id = resources.resource_ref(resource_id)
    if conn.dialect.name == "postgresql":  # SQLite: one writer at a time
        conn.execute(select(orders.c.id).where(orders.c.resource_id == resource_id,
                                               orders.c.uin == uin)
                     .order_by(orders.c.id).with_for_update())
    funds.lock_balances(conn, uin)
    return resources.get_resource(conn, uin, resource_id, lock=True)


def _paid_parts(conn: Connection, resource_id: str) -> list[dict]:
    rows = conn.execute(select(orders).where(
        orders.c.resource_id == resource_id,
        orders.c.state.in_(("delivered",)),
        orders.c.kind.in_(("new", "renew", "upgrade", "downgrade")))
        .order_by(orders.c.id)).mappings()
    return [dict(r) for r in rows]


def _as_part(order: dict) -> rules.PaidPart:
    if order["kind"] == "downgrade":
        gift, cash = -order["refunded_gift"], -order["refunded_cash"]
    else:
        gift, cash = order["paid_gift"], order["paid_cash"] + order["paid_credit"]
    return rules.PaidPart(order["amount"], gift, cash, from_db_time(order["service_start"]),
                          from_db_time(order["service_end"]), coupon=order["paid_coupon"])


def _coupon_returns(conn: Connection, uin: int, parts: list[dict], share: int, *,
                    lock: bool = True) -> list[tuple[int, int]]:
    """ORD-4: (order id, fen) of the coupon share that goes back to the cash coupons
    that paid the resource's orders, newest order first; vouchers and discount
    coupons are not returned, so the sum may be less than ``share``."""
    left, planned = share, []
    for order in sorted(parts, key=lambda o: o["id"], reverse=True):
        if left <= 0:
            break
        if order["kind"] != "downgrade" and order["paid_coupon"] > 0:
            amount = coupons.returnable(conn, uin, _coupon_ref(order["id"]), left, lock=lock)
            if amount:
                left -= amount
                planned.append((order["id"], amount))
    return planned


def _return_coupons(conn: Connection, clock: Clock, uin: int, parts: list[dict], share: int,
                    key: str) -> list[coupons.Settled]:
    """Give the coupon share back as ``_coupon_returns`` plans it (each return its
    ledger transaction); the returns made."""
    return [coupons.refund(conn, clock, uin, _coupon_ref(order_id), key=f"{key}:{order_id}",
                           amount=amount)
            for order_id, amount in _coupon_returns(conn, uin, parts, share)]


def _pay_back(conn: Connection, clock: Clock, uin: int, *, key: str, gift: int, cash: int,
              returned: list[coupons.Settled], entity: str, product_code: str, order_id: str,
              memo: str) -> None:
    """Give a refund's or downgrade's gift and cash back from revenue (``funds.refund``),
    its ``return`` entry showing what cash coupons got back too (BAL-5); with no gift
    or cash, each coupon return gets its own ``return`` entry."""
    if gift + cash:
        funds.refund(conn, clock, uin, key=key, gift=gift, cash=cash,
                     coupon=sum(s.amount for s in returned),
                     revenue_account_id=funds.platform_account(conn, clock, "revenue", entity),
                     product_code=product_code, order_id=order_id, memo=memo)
        return
    for settled in returned:
        funds.record_coupon_only(conn, clock, uin, settled.txn_id, "return",
                                 settled.amount, product_code=product_code,
                                 order_id=order_id, memo=memo)


def _coupon_key(kind: str, account_key: str) -> str:
    """A refund's key for coupons.refund (150 characters at most)."""
    return f"{kind}:{content_hash(account_key)[:40]}"


def _within_refund_window(product: catalog.Product, first_paid: datetime, now: datetime) -> bool:
    """ORD-4: the product's no-reason window (catalog ``refund_window_days``, default
    5) counts from the resource's first payment, its last instant included; 0: none."""
    days = product.refund_window_days
    return days > 0 and now - first_paid <= timedelta(days=days)


@dataclass(frozen=True)
class _RefundPlan:
    """What a refund of a resource gives back, decided once for the refund and its preview."""

    resource: dict
    product: catalog.Product
    parts: list[dict]  # the delivered orders that paid the resource
    first_paid: datetime
    full: bool  # inside the no-reason window: everything; else the unused time
    split: rules.RefundSplit


def _refund_plan(conn: Connection, clock: Clock, resource: dict) -> _RefundPlan:
    _refuse_released(resource)
    product = catalog.get_product(conn, resource["product_code"])
    parts = _paid_parts(conn, resource["id"])
    if not parts:
        raise invalid("resource_id", "资源没有可退的订单", "the resource has no paid order to refund")
    now = clock.now()
    first_paid = from_db_time(parts[0]["paid_at"])
    full = _within_refund_window(product, first_paid, now)
    split = rules.refund_split([_as_part(p) for p in parts], now, full=full)
    return _RefundPlan(resource, product, parts, first_paid, full, split)


def preview_refund(conn: Connection, clock: Clock, actor: Actor, uin: int,
                   resource_id: str) -> dict:
    """退订 (ORD-4) as a dry run: what ``refund_resource`` would give back now to gift,
    cash and cash coupons, what coupons paid that does not come back (vouchers,
    discount coupons), and why it is a full or an unused-time refund. Writes and
    locks nothing; refused as the refund is (FINANCE, prepaid, not released)."""
    require(actor, uin, FINANCE)
    plan = _refund_plan(conn, clock, resources.get_resource(conn, uin, resource_id))
    coupon = sum(amount for _, amount in _coupon_returns(conn, uin, plan.parts, plan.split.coupon,
                                                         lock=False))
    days = plan.product.refund_window_days
    return {"resource_id": resource_id, "full": plan.full, "window_days": days,
            "first_paid_at": plan.first_paid,
            "window_ends_at": plan.first_paid + timedelta(days=days) if days > 0 else None,
            "service_end": from_db_time(plan.resource["period_end"]),
            "gift": plan.split.gift, "cash": plan.split.cash, "coupon": coupon,
            "coupon_kept": plan.split.coupon - coupon,
            "total": plan.split.gift + plan.split.cash + coupon}


def refund_resource(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str, *,
                    key: str) -> int:
    """退订 (ORD-4): full refund inside the product's no-reason window, else the unused
    time, back to gift and cash in the proportion they paid; the resource is released."""
    require(actor, uin, FINANCE)
    _account_key(uin, key)
    resource = _claim_resource(conn, uin, resource_id)
    if (repeat := _repeated(conn, uin, key, "refund", resource_id)) is not None:
        return repeat
    plan = _refund_plan(conn, clock, resource)
    product, parts, split, full = plan.product, plan.parts, plan.split, plan.full
    now = clock.now()
    gift, cash = split.gift, split.cash
    project = _project(conn, clock, uin, resource["project_id"])
    refund_id = _insert_order(
        conn, clock, actor, uin=uin, kind="refund", state="refunded",
        product_code=resource["product_code"], region=resource["region"],
        spec_item=resource["spec_item"], quantity=resource["quantity"], months=None,
        resource_id=resource_id, project_id=project["id"], project_name=project["name"],
        price_kind="list", unit_price=None, list_amount=-split.total, discount_bp=10000,
        amount=-split.total, paid_coupon=-split.coupon, refunded_gift=gift, refunded_cash=cash,
        promo=False, service_start=db_time(now), service_end=resource["period_end"],
        paid_at=db_time(now), closed_at=db_time(now), idempotency_key=_account_key(uin, key))
    returned = _return_coupons(conn, clock, uin, parts, split.coupon,
                               _coupon_key("refund", _account_key(uin, key)))
    _pay_back(conn, clock, uin, key=f"refund:{_account_key(uin, key)}", gift=gift, cash=cash,
              returned=returned, entity=product.entity, product_code=resource["product_code"],
              order_id=rules.order_no(refund_id, now.replace(tzinfo=None)),
              memo=f"退订 / refund {resource_id}" + (" (无理由 / no-reason)" if full else ""))
    conn.execute(update(orders).where(orders.c.id.in_([p["id"] for p in parts]))
                 .values(state="refunded"))
    resources.update_resource(conn, resource_id, state="recycled", released_at=now)
    return refund_id


def downgrade(conn: Connection, clock: Clock, actor: Actor, uin: int, resource_id: str,
              new_spec: str, *, key: str) -> int:
    """Downgrade now: the prorated difference goes back to gift and cash (a negative order)."""
    require(actor, uin, FINANCE)
    _account_key(uin, key)
    resource = _claim_resource(conn, uin, resource_id)
    if (repeat := _repeated(conn, uin, key, "downgrade", resource_id, spec_item=new_spec)) is not None:
        return repeat
    _refuse_released(resource)
    funds.require_operable(conn, clock, uin)  # RNW-6, ARR-1: no change while in arrears
    if new_spec == resource["spec_item"]:  # e.g. a concurrent downgrade to it came first
        raise Conflict(f"资源 {resource_id} 的配置已是 {new_spec}",
                       f"resource {resource_id} is already {new_spec}", field="spec_item",
                       spec_item=new_spec)
    product = catalog.get_product(conn, resource["product_code"])
    amount, quote = _spec_change(conn, clock, uin, resource, new_spec)
    if amount >= 0:
        raise invalid("spec_item", "新配置不低于当前配置，请使用升配",
                      "the new spec is not cheaper: use an upgrade")
    paid = _paid_parts(conn, resource_id)
    parts = [_as_part(p) for p in paid]
    weights = [max(sum(getattr(p, k) for p in parts), 0) for k in ("gift", "cash", "coupon")]
    gift, cash, coupon = (split_proportionally(-amount, weights) if sum(weights)
                          else (0, -amount, 0))
    now = clock.now()
    project = _project(conn, clock, uin, resource["project_id"])
    order_id = _insert_order(
        conn, clock, actor, uin=uin, kind="downgrade", state="delivered",
        product_code=resource["product_code"], region=resource["region"], spec_item=new_spec,
        quantity=resource["quantity"], months=None, resource_id=resource_id,
        project_id=project["id"], project_name=project["name"], price_kind=quote.price_kind,
        unit_price=quote.unit_price, list_amount=amount, discount_bp=quote.discount_bp,
        amount=amount, paid_coupon=-coupon, refunded_gift=gift, refunded_cash=cash,
        promo=False, service_start=db_time(now), service_end=resource["period_end"],
        paid_at=db_time(now), closed_at=db_time(now), idempotency_key=_account_key(uin, key))
    returned = _return_coupons(conn, clock, uin, paid, coupon,
                               _coupon_key("downgrade", _account_key(uin, key)))
    _pay_back(conn, clock, uin, key=f"downgrade:{_account_key(uin, key)}", gift=gift, cash=cash,
              returned=returned, entity=product.entity, product_code=resource["product_code"],
              order_id=rules.order_no(order_id, now.replace(tzinfo=None)),
              memo=f"降配 / downgrade {resource_id} → {new_spec}")
    resources.update_resource(conn, resource_id, spec_item=new_spec)
    return order_id


# ---------------------------------------------------------------- closing unpaid orders

def void_order(conn: Connection, clock: Clock, actor: Actor, uin: int, order_id: int) -> None:
    """Close an unpaid order: whoever may read it (``get_order``)."""
    get_order(conn, actor, uin, order_id)
    _claim(conn, order_id, "unpaid", "voided", clock)


def expire_unpaid(conn: Connection, clock: Clock) -> int:
    """Scheduled: unpaid orders past their term become expired (ORD-2). Set-based, one
    conditional UPDATE; on PostgreSQL it skips the orders a payment (or another run)
    holds locked instead of waiting for them, so it never waits in a lock order of
    its own: a payment refuses an order past its term anyway, and a later run
    expires what a failed payment left unpaid."""
    now = db_time(clock.now())
    due = select(orders.c.id).where(orders.c.state == "unpaid", orders.c.expires_at <= now)
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    return conn.execute(update(orders).where(orders.c.id.in_(due), orders.c.state == "unpaid")
                        .values(state="expired", closed_at=now)).rowcount


# ---------------------------------------------------------------- reading

def get_order(conn: Connection, actor: Actor, uin: int, order_id: int) -> dict:
    """One order: FINANCE; a renewal order also with RENEWAL (ACC-2: renewal management
    reads and voids the renewal orders it makes)."""
    if not holds(actor, uin, RENEWAL):
        require(actor, uin, FINANCE)  # refused before anything is read
    row = conn.execute(select(orders).where(orders.c.id == order_id, orders.c.uin == uin)
                       ).mappings().first()
    if row is None:
        raise not_found("order_id", "订单", "order", order_id)
    if row["kind"] != "renew":
        require(actor, uin, FINANCE)
    return dict(row)


def get_orders(conn: Connection, actor: Actor, uin: int, order_ids: list[int]) -> list[dict]:
    """Several orders, in the order of ``order_ids``, as ``get_order`` reads each (the
    same permissions and not-found error), in one query."""
    if not holds(actor, uin, RENEWAL):
        require(actor, uin, FINANCE)
    rows = {row["id"]: dict(row) for row in conn.execute(
        select(orders).where(orders.c.id.in_(order_ids), orders.c.uin == uin)).mappings()}
    for order_id in order_ids:
        if order_id not in rows:
            raise not_found("order_id", "订单", "order", order_id)
        if rows[order_id]["kind"] != "renew":
            require(actor, uin, FINANCE)
    return [rows[order_id] for order_id in order_ids]


@dataclass(frozen=True)
class OrderQuery:
    start: datetime | None = None
    end: datetime | None = None
    states: tuple[str, ...] = ()
    order_id: int | None = None
    big_deal_id: int | None = None
    resource_id: str | None = None
    offset: int = 0
    limit: int = 20


def list_orders(conn: Connection, actor: Actor, uin: int, query: OrderQuery) -> dict:
    require(actor, uin, FINANCE)
    accounts.get_account(conn, accounts.SYSTEM_ACTOR, uin)  # a mistyped UIN is not "no orders"
    if query.offset < 0 or not 1 <= query.limit <= 1000:
        raise invalid("limit", "每页条数须为 1–1000", "limit must be 1-1000")
    unknown = set(query.states) - set(STATES)
    if unknown:
        raise invalid("state", f"未知的订单状态：{sorted(unknown)}", f"unknown state: {sorted(unknown)}")
    o = orders.c
    conditions = [o.uin == uin]
    for column, value in ((o.id, query.order_id), (o.big_deal_id, query.big_deal_id),
                          (o.resource_id, query.resource_id)):
        if value is not None:
            conditions.append(column == value)
    if query.start:
        conditions.append(o.created_at >= db_time(query.start))
    if query.end:
        conditions.append(o.created_at <= db_time(query.end))
    if query.states:
        conditions.append(o.state.in_(query.states))
    where = and_(*conditions)
    total = conn.execute(select(func.count()).select_from(orders).where(where)).scalar_one()
    rows = conn.execute(select(orders).where(where).order_by(o.created_at.desc(), o.id.desc())
                        .offset(query.offset).limit(query.limit)).mappings()
    return {"total": total, "items": [dict(r) for r in rows]}
