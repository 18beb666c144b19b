"""Catalog use cases (ORD-5): load the catalog file, read it, set account prices, quote.

``quote`` is the pricing entry point the order, settlement and bill packages
call: list price (tiered, graduated) × the account's discount, or the
account's contract price (合同价) or fixed price (一口价), in 1e-8 yuan.
Every function runs inside the caller's database transaction; writes are
all or nothing, and operator writes are audited.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from importlib import resources

from sqlalchemy import Connection, and_, insert, or_, select, update

from feecenter.accounts.permissions import (FINANCE, READ_PROFILE, SYSTEM, Actor, require,
                                            require_operator)
from feecenter.accounts.service import get_account
from feecenter.audit.service import record_audit
from feecenter.catalog import rules
from feecenter.catalog.loader import CatalogFile, CatalogProblem, parse_catalog
from feecenter.catalog.rules import BP_SCALE, Span, Tier, TierCharge, Version
from feecenter.catalog.tables import (account_discounts, account_prices, billing_items,
                                      catalog_loads, price_lists, price_tiers, product_classes,
                                      products, regions, selling_entities)
from feecenter.clock import (BUSINESS_TZ, Clock, business_date, business_time_text, db_time,
                             from_db_time, to_utc)
from feecenter.errors import Conflict, InvalidInput, NotFound, invalid, not_found

MAX_RATED_PRICE = 10**13 * 10**8  # 1e13 yuan per unit: above this a price is a typo

_CATALOG_LOCK = 0x0CA7A106  # pg advisory lock: one catalog load at a time
_ACCOUNT_LOCK_BASE = 0x0CA7 << 44  # + uin (12 digits < 2^40): account pricing writes


# ---------------------------------------------------------------- values

@dataclass(frozen=True)
class Product:
    """What other packages need to know about a product."""

    code: str
    name_zh: str
    name_en: str
    entity: str
    tax_category: str
    tax_rate_bp: int
    tax_name: str
    tax_code: str
    pay_modes: tuple[str, ...]
    product_class: str
    operable_balance: int        # fen (ARR-2)
    postpaid_cycle: str | None   # hour | day | month (SET-1)
    freeze_amount: int           # fen frozen when a postpaid resource opens (FRZ-1)
    freeze_release: str          # immediate | next_settlement (FRZ-3)
    delivery_mode: str           # auto | manual
    unpaid_order_days: int       # ORD-2
    prepaid_months: tuple[int, ...]
    refund_window_days: int = 5  # ORD-4: days after the first payment with a full refund
    recovery_days: int = 7       # RNW-6: days an expired resource waits in the recycle bin
    auto_renew_retry_days: int = 3  # RNW-2: days after expiry a failed auto-renewal is retried
    renewal_managed: bool = True  # RNW-7: listed in renewal management
    monthly_freeze: bool = False  # FRZ-5: cycles frozen, the month deducted on the 3rd

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Quote:
    """A priced quantity. Amounts in 1e-8 yuan; quantities in 1e-6 units.

    ``price_kind`` "list": ``unit_price`` is the list price of the tier the
    quantity starts in, ``list_amount`` the graduated list amount (× months
    when prepaid), ``amount`` = ``list_amount`` × ``discount_bp`` / 10000
    (from the exact figure, one rounding).

    "contract" / "fixed": the account's agreed price (``agreed_price``: a
    unit price, or a fixed amount per month) replaces list × discount, and
    ``discount_bp`` is 10000. ``unit_price`` / ``list_amount`` /
    ``price_list_id`` still describe the list price in force, for reference
    (what the customer saves); bills hide list price, discount and original
    price of such lines (BIL-6), so render by ``price_kind``. An item
    may have an agreed price without any list price: then ``price_list_id``
    is None, ``unit_price`` is the agreed price and ``list_amount`` equals
    ``amount``.
    """

    uin: int
    product: str
    item: str
    region: str
    pay_mode: str
    quantity: int
    months: int | None
    at: datetime
    price_kind: str
    price_list_id: int | None
    unit_price: int
    list_amount: int
    discount_bp: int
    discount_id: int | None
    account_price_id: int | None
    agreed_price: int | None
    amount: int
    tiers: tuple[TierCharge, ...]
    entity: str
    tax_category: str
    tax_rate_bp: int
    product_class: str
    spec: bool

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- loading

def load_catalog(conn: Connection, clock: Clock, actor: Actor, text: str, source: str) -> dict:
    """Load a catalog file (operators): validate all of it, then write all of it.

    Any problem refuses the whole file (``InvalidInput`` whose ``details``
    hold every problem as ``FILE:LINE: field: 中文 / English``); nothing is
    written. Loading the same file again changes nothing. A newer file adds
    price-list versions and ends the open-ended ones it supersedes; history
    is kept and never edited. Products, items, regions and classes missing
    from the file are kept.
    """
    require_operator(actor)
    source = (source or "catalog.yaml").strip()[:500] or "catalog.yaml"
    if not isinstance(text, str):
        raise invalid("text", "目录文件必须是 UTF-8 文本", "the catalog file must be UTF-8 text")
    _lock(conn, _CATALOG_LOCK)
    known = {
        "entities": set(conn.execute(select(selling_entities.c.code)).scalars()),
        "classes": set(conn.execute(select(product_classes.c.code)).scalars()),
        "regions": set(conn.execute(select(regions.c.code)).scalars()),
    }
    parsed, problems = parse_catalog(text, source, known)
    if problems:
        raise _refused(source, problems)
    now = db_time(clock.now())
    plan = _Plan(parsed)
    _plan_rows(conn, plan)
    _plan_prices(conn, plan, now, problems)
    _check_covers(conn, parsed, problems)
    _check_invoice_identity(conn, parsed, problems)
    if problems:
        raise _refused(source, problems)
    sha = hashlib.sha256(text.encode()).hexdigest()
    summary = {"source": source, "sha256": sha, "changed": plan.changed(), "load_id": None,
               **plan.counts(), "late_prepaid_prices": _late_prepaid(plan, clock.now())}
    if plan.changed():
        load_id = conn.execute(insert(catalog_loads).values(
            source=source, sha256=sha, actor=actor.label, loaded_at=now,
            summary=json.dumps(plan.counts(), sort_keys=True)).returning(catalog_loads.c.id)
        ).scalar_one()
        summary["load_id"] = load_id
        _write(conn, plan, load_id, now)
    record_audit(conn, clock, actor, "load_catalog", None,
                 {k: summary[k] for k in ("source", "sha256", "changed", "load_id",
                                          "price_lists")})
    return summary


def _late_prepaid(plan: _Plan, now: datetime) -> list[dict]:
    """New prepaid versions starting before 00:00 of the next business day: the daily
    price-change announcement (RNW-1, docs/renewal.md) cannot tell their owners
    before they apply. Listed so the operator knows."""
    next_day = business_date(now) + timedelta(days=1)
    cutoff = db_time(datetime(next_day.year, next_day.month, next_day.day, tzinfo=BUSINESS_TZ))
    return [{"product": product, "item": item, "region": region,
             "starts_at": business_time_text(version.start)}
            for (product, item, region, pay_mode), version in plan.new_versions
            if pay_mode == "prepaid" and version.start < cutoff]


def _refused(source: str, problems: list[CatalogProblem]) -> InvalidInput:
    lines = [p.render(source) for p in problems]
    first = lines[0]
    return invalid("catalog", f"目录文件有 {len(lines)} 处错误，未做任何修改。首个：{first}",
                   f"the catalog file has {len(lines)} problem(s); nothing was changed. "
                   f"First: {first}", errors=lines)


class _Plan:
    """What a load will write, worked out before anything is written."""

    def __init__(self, parsed: CatalogFile):
        self.parsed = parsed
        self.rows: dict[str, dict[str, list]] = {}   # kind -> added/updated/unchanged rows
        self.item_ids: dict[tuple[str, str], int] = {}
        self.new_versions: list[tuple[tuple[str, str, str, str], Version]] = []
        self.closes: dict[int, datetime] = {}
        self.unchanged_versions = 0

    def bucket(self, kind: str) -> dict[str, list]:
        return self.rows.setdefault(kind, {"added": [], "updated": [], "unchanged": []})

    def changed(self) -> bool:
        return bool(self.new_versions or self.closes or any(
            b["added"] or b["updated"] for b in self.rows.values()))

    def counts(self) -> dict:
        out = {kind: {k: len(v) for k, v in self.bucket(kind).items()}
               for kind in ("entities", "product_classes", "regions", "products", "items")}
        out["price_lists"] = {"added": len(self.new_versions), "closed": len(self.closes),
                              "unchanged": self.unchanged_versions}
        return out


def _diff(conn: Connection, plan: _Plan, kind: str, table, key_cols: tuple[str, ...],
          wanted: list[dict]) -> None:
    """Sort the file's rows of one table into added / updated / unchanged."""
    bucket = plan.bucket(kind)
    existing = {tuple(r[c] for c in key_cols): dict(r)
                for r in conn.execute(select(table)).mappings()}
    for row in wanted:
        stored = existing.get(tuple(row[c] for c in key_cols))
        if stored is None:
            bucket["added"].append(row)
        elif any(stored[k] != v for k, v in row.items()):
            bucket["updated"].append(row)
        else:
            bucket["unchanged"].append(stored)


def _plan_rows(conn: Connection, plan: _Plan) -> None:
    parsed = plan.parsed
    _diff(conn, plan, "entities", selling_entities, ("code",),
          [{"code": e.code, "name_zh": e.name_zh, "name_en": e.name_en} for e in parsed.entities])
    _diff(conn, plan, "product_classes", product_classes, ("code",),
          [{"code": c.code, "name_zh": c.name_zh, "name_en": c.name_en,
            "operable_balance": c.operable_balance} for c in parsed.classes])
    _diff(conn, plan, "regions", regions, ("code",),
          [{"code": r.code, "name_zh": r.name_zh, "name_en": r.name_en} for r in parsed.regions])
    _diff(conn, plan, "products", products, ("code",), [{
        "code": p.code, "name_zh": p.name_zh, "name_en": p.name_en, "entity": p.entity,
        "tax_category": p.tax_category, "allow_prepaid": "prepaid" in p.pay_modes,
        "allow_postpaid": "postpaid" in p.pay_modes, "product_class": p.product_class,
        "postpaid_cycle": p.postpaid_cycle, "freeze_amount": p.freeze_amount,
        "freeze_release": p.freeze_release, "delivery_mode": p.delivery_mode,
        "unpaid_order_days": p.unpaid_order_days, "refund_window_days": p.refund_window_days,
        "recovery_days": p.recovery_days, "auto_renew_retry_days": p.auto_renew_retry_days,
        "renewal_managed": p.renewal_managed, "monthly_freeze": p.monthly_freeze,
        "prepaid_months": ",".join(str(m) for m in p.prepaid_months)} for p in parsed.products])
    _diff(conn, plan, "items", billing_items, ("product_code", "code"), [{
        "product_code": p.code, "code": i.code, "name_zh": i.name_zh, "name_en": i.name_en,
        "unit_zh": i.unit_zh, "unit_en": i.unit_en, "spec": i.spec,
        "postpaid_period": i.postpaid_period, **_covers_columns(i.covers)}
        for p in parsed.products for i in p.items])
    for row in conn.execute(select(billing_items.c.product_code, billing_items.c.code,
                                   billing_items.c.id)):
        plan.item_ids[(row.product_code, row.code)] = row.id


def _check_covers(conn: Connection, parsed, problems: list[CatalogProblem]) -> None:
    """A package must cover a billing item that exists (in the file or stored)."""
    known = {(p.code, i.code) for p in parsed.products for i in p.items}
    known |= set(conn.execute(select(billing_items.c.product_code, billing_items.c.code)).all())
    for p in parsed.products:
        for i in p.items:
            if i.covers and (i.covers.product, i.covers.item) not in known:
                what = f"{i.covers.product}/{i.covers.item}"
                problems.append(CatalogProblem(
                    i.ref.line, f"{i.ref.field}.covers", f"资源包覆盖的计费项不存在：{what}",
                    f"the package covers an unknown billing item: {what}"))


def _check_invoice_identity(conn: Connection, parsed, problems: list[CatalogProblem]) -> None:
    """A product's selling entity and tax category never change (INV-1, INV-4): its past
    consumption is invoiced by them, so moving it would free invoiced money to invoice
    again under the new ones. Another entity or category is another product code."""
    stored = {row.code: row for row in conn.execute(
        select(products.c.code, products.c.entity, products.c.tax_category))}
    for p in parsed.products:
        before = stored.get(p.code)
        for field, now in (("entity", p.entity), ("tax_category", p.tax_category)):
            if before is not None and getattr(before, field) != now:
                problems.append(CatalogProblem(
                    p.ref.line, f"{p.ref.field}.{field}",
                    f"产品 {p.code} 的{'签约主体' if field == 'entity' else '税收分类'}不能修改"
                    f"（{getattr(before, field)} → {now}）：已消耗的金额按原值开票，请使用新的产品编码",
                    f"the {field} of product {p.code} cannot change ({getattr(before, field)} -> "
                    f"{now}): its consumption is invoiced by it; use a new product code"))


def _covers_columns(covers) -> dict:
    return {"covers_product": covers.product if covers else None,
            "covers_item": covers.item if covers else None,
            "covers_quantity": covers.quantity if covers else None,
            "covers_per": covers.per if covers else None}


def _plan_prices(conn: Connection, plan: _Plan, now: datetime,
                 problems: list[CatalogProblem]) -> None:
    codes = {p.code for p in plan.parsed.products}
    stored: dict[tuple[str, str, str, str], list[Version]] = {}
    if codes:
        tiers = _tiers_by_list(conn, price_lists.c.product_code.in_(codes))
        rows = conn.execute(select(price_lists, billing_items.c.code.label("item_code"))
                            .join(billing_items, billing_items.c.id == price_lists.c.item_id)
                            .where(price_lists.c.product_code.in_(codes))).mappings()
        for row in rows:
            key = (row["product_code"], row["item_code"], row["region_code"], row["pay_mode"])
            stored.setdefault(key, []).append(
                Version(row["starts_at"], row["ends_at"], tiers.get(row["id"], ()), id=row["id"]))
    for key, incoming in plan.parsed.prices.items():
        result = rules.plan_versions(stored.get(key, []), incoming, now)
        for problem in result.problems:
            ref = problem.ref or incoming[0].ref
            problems.append(CatalogProblem(ref.line, ref.field, problem.zh, problem.en))
        plan.new_versions.extend((key, v) for v in result.new)
        plan.closes.update(result.closes)
        plan.unchanged_versions += result.unchanged
    problems.sort(key=lambda p: p.line)


def _write(conn: Connection, plan: _Plan, load_id: int, now: datetime) -> None:
    for kind, table, key in (("entities", selling_entities, ("code",)),
                             ("product_classes", product_classes, ("code",)),
                             ("regions", regions, ("code",)),
                             ("products", products, ("code",)),
                             ("items", billing_items, ("product_code", "code"))):
        bucket = plan.bucket(kind)
        stamp = {"updated_at": now} if kind == "products" else {}
        if bucket["added"]:
            conn.execute(insert(table), [{**row, **stamp} for row in bucket["added"]])
        for row in bucket["updated"]:
            values = {k: v for k, v in row.items() if k not in key}
            conn.execute(update(table).where(and_(*(table.c[c] == row[c] for c in key)))
                         .values(**values, **stamp))
    for row in conn.execute(select(billing_items.c.product_code, billing_items.c.code,
                                   billing_items.c.id)):
        plan.item_ids[(row.product_code, row.code)] = row.id
    for list_id, end in plan.closes.items():
        conn.execute(update(price_lists).where(price_lists.c.id == list_id,
                                               price_lists.c.ends_at.is_(None))
                     .values(ends_at=end))
    for (product, item, region, pay_mode), version in plan.new_versions:
        list_id = conn.execute(insert(price_lists).values(
            product_code=product, item_id=plan.item_ids[(product, item)], region_code=region,
            pay_mode=pay_mode, starts_at=version.start, ends_at=version.end, load_id=load_id,
            created_at=now).returning(price_lists.c.id)).scalar_one()
        conn.execute(insert(price_tiers), [
            {"price_list_id": list_id, "lower_qty": t.lower, "upper_qty": t.upper,
             "unit_price": t.unit_price} for t in version.tiers])


def _tiers_by_list(conn: Connection, where) -> dict[int, tuple[Tier, ...]]:
    rows = conn.execute(select(price_tiers).join(price_lists, price_lists.c.id ==
                                                 price_tiers.c.price_list_id)
                        .where(where).order_by(price_tiers.c.price_list_id,
                                               price_tiers.c.lower_qty)).mappings()
    out: dict[int, list[Tier]] = {}
    for row in rows:
        out.setdefault(row["price_list_id"], []).append(
            Tier(row["lower_qty"], row["upper_qty"], row["unit_price"]))
    return {k: tuple(v) for k, v in out.items()}


def _lock(conn: Connection, key: int) -> None:
    """One writer at a time: SQLite already has one (BEGIN IMMEDIATE); PostgreSQL takes
    a transaction-scoped advisory lock."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)" % int(key))


def sample_catalog_text() -> str:
    """The sample catalog shipped with the package (compute, storage, CDN, database, SSL)."""
    return resources.files("feecenter.catalog").joinpath("sample_catalog.yaml").read_text(
        encoding="utf-8")


# ---------------------------------------------------------------- reading the catalog

def _product_row(conn: Connection, code: str):
    row = conn.execute(select(products, product_classes.c.operable_balance)
                       .join(product_classes, product_classes.c.code == products.c.product_class)
                       .where(products.c.code == code)).mappings().first()
    if row is None:
        raise not_found("product", "产品", "product", code)
    return row


def _product(row) -> Product:
    tax = rules.TAX_CATEGORIES[row["tax_category"]]
    modes = tuple(m for m, allowed in (("prepaid", row["allow_prepaid"]),
                                       ("postpaid", row["allow_postpaid"])) if allowed)
    months = tuple(int(m) for m in row["prepaid_months"].split(",") if m)
    return Product(row["code"], row["name_zh"], row["name_en"], row["entity"],
                   row["tax_category"], tax.rate_bp, tax.name, tax.tax_code, modes,
                   row["product_class"], row["operable_balance"], row["postpaid_cycle"],
                   row["freeze_amount"], row["freeze_release"], row["delivery_mode"],
                   row["unpaid_order_days"], months, row["refund_window_days"],
                   row["recovery_days"], row["auto_renew_retry_days"],
                   bool(row["renewal_managed"]), bool(row["monthly_freeze"]))


def get_product(conn: Connection, code: str) -> Product:
    """A product's facts (entity, tax category, class, freeze, delivery, terms)."""
    return _product(_product_row(conn, code))


def list_products(conn: Connection) -> list[Product]:
    rows = conn.execute(select(products, product_classes.c.operable_balance)
                        .join(product_classes, product_classes.c.code == products.c.product_class)
                        .order_by(products.c.code)).mappings()
    return [_product(r) for r in rows]


def list_regions(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(select(regions).order_by(regions.c.code)).mappings()]


def list_entities(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(select(selling_entities)
                                          .order_by(selling_entities.c.code)).mappings()]


def list_product_classes(conn: Connection) -> list[dict]:
    return [dict(r) for r in conn.execute(select(product_classes)
                                          .order_by(product_classes.c.code)).mappings()]


def list_items(conn: Connection, product: str) -> list[dict]:
    _product_row(conn, product)
    rows = conn.execute(select(billing_items).where(billing_items.c.product_code == product)
                        .order_by(billing_items.c.id)).mappings()
    return [dict(r) for r in rows]


def price_lists_of(conn: Connection, product: str, *, item: str | None = None,
                   region: str | None = None, pay_mode: str | None = None,
                   at: datetime | None = None) -> list[dict]:
    """Price-list versions of a product, oldest first, with their tiers.

    With ``at`` only the versions in force then (the current price list);
    without it the whole history. Each: id, product, item, region, pay_mode,
    starts_at, ends_at (naive UTC; None = open), load_id, source, tiers
    [{lower, upper, unit_price}].
    """
    _product_row(conn, product)
    conditions = [price_lists.c.product_code == product]
    if item is not None:
        conditions.append(billing_items.c.code == item)
    if region is not None:
        conditions.append(price_lists.c.region_code == region)
    if pay_mode is not None:
        conditions.append(price_lists.c.pay_mode == pay_mode)
    if at is not None:
        when = _at(at)
        conditions += [price_lists.c.starts_at <= when,
                       or_(price_lists.c.ends_at.is_(None), price_lists.c.ends_at > when)]
    rows = conn.execute(
        select(price_lists, billing_items.c.code.label("item"), catalog_loads.c.source)
        .join(billing_items, billing_items.c.id == price_lists.c.item_id)
        .join(catalog_loads, catalog_loads.c.id == price_lists.c.load_id)
        .where(*conditions)
        .order_by(billing_items.c.id, price_lists.c.region_code, price_lists.c.pay_mode,
                  price_lists.c.starts_at)).mappings().all()
    tiers = _tiers_by_list(conn, price_lists.c.id.in_([r["id"] for r in rows])) if rows else {}
    return [{"id": r["id"], "product": r["product_code"], "item": r["item"],
             "region": r["region_code"], "pay_mode": r["pay_mode"], "starts_at": r["starts_at"],
             "ends_at": r["ends_at"], "load_id": r["load_id"], "source": r["source"],
             "tiers": [{"lower": t.lower, "upper": t.upper, "unit_price": t.unit_price}
                       for t in tiers.get(r["id"], ())]}
            for r in rows]


def product_detail(conn: Connection, code: str, at: datetime) -> dict:
    """{"product": Product, "items": [...], "prices": the versions in force at ``at``}."""
    return {"product": get_product(conn, code), "items": list_items(conn, code),
            "prices": price_lists_of(conn, code, at=at)}


def list_loads(conn: Connection, limit: int = 50) -> list[dict]:
    rows = conn.execute(select(catalog_loads).order_by(catalog_loads.c.id.desc())
                        .limit(min(max(limit, 1), 1000))).mappings()
    return [{**r, "summary": json.loads(r["summary"])} for r in rows]


# ---------------------------------------------------------------- quoting

def _at(at: datetime, field: str = "at") -> datetime:
    if not isinstance(at, datetime):
        raise invalid(field, "时间必须是日期时间", "a datetime is required")
    try:
        return db_time(at)
    except ValueError:
        raise invalid(field, "时间必须带时区", "the time must be timezone-aware") from None


def _item_row(conn: Connection, product: str, item: str):
    row = conn.execute(select(billing_items).where(billing_items.c.product_code == product,
                                                   billing_items.c.code == item)).first()
    if row is None:
        raise not_found("item", "计费项", "billing item", f"{product}/{item}")
    return row


def _require_region(conn: Connection, region: str) -> None:
    if conn.execute(select(regions.c.code).where(regions.c.code == region)).first() is None:
        raise not_found("region", "地域", "region", region)


def _check_pay_mode(product: Product, pay_mode: str) -> None:
    if pay_mode not in rules.PAY_MODES:
        raise invalid("pay_mode", f"付费模式只能为 prepaid / postpaid：{pay_mode!r}",
                      f"pay_mode must be prepaid or postpaid: {pay_mode!r}")
    if pay_mode not in product.pay_modes:
        raise invalid("pay_mode", f"产品 {product.code} 不支持{_MODE_ZH[pay_mode]}",
                      f"product {product.code} cannot be bought {pay_mode}")


_MODE_ZH = {"prepaid": "包年包月（预付费）", "postpaid": "按量计费（后付费）"}


def _check_months(pay_mode: str, months: int | None) -> None:
    if pay_mode == "postpaid":
        if months is not None:
            raise invalid("months", "按量计费不按月数计价，请不要传 months",
                          "postpaid usage is not priced by months: omit months")
        return
    if isinstance(months, bool) or not isinstance(months, int) \
            or not 1 <= months <= rules.MAX_MONTHS:
        raise invalid("months", f"包年包月必须给出购买时长（1–{rules.MAX_MONTHS} 的整数月）",
                      f"prepaid needs a duration in whole months (1-{rules.MAX_MONTHS})")


def check_prepaid_months(product: Product, months: int) -> None:
    """Is ``months`` one of the durations the product is sold for (ssl: 12, 24, 36)?

    ``quote`` prices any whole number of months (a renewal aligned to a
    unified expiry date, a prorated upgrade); what a customer may order is
    checked here.
    """
    _check_months("prepaid", months)
    if months not in product.prepaid_months:
        allowed = ", ".join(str(m) for m in product.prepaid_months)
        raise invalid("months", f"产品 {product.code} 可购买的时长（月）为：{allowed}",
                      f"product {product.code} is sold for these months: {allowed}")


def quote(conn: Connection, uin: int, product: str, item: str, region: str, pay_mode: str,
          quantity: int, at: datetime, months: int | None = None, *,
          before: int = 0) -> Quote:
    """Price ``quantity`` (1e-6 units) of a billing item for account ``uin`` at ``at``.

    Prepaid: prices are per unit per month, ``months`` (1-120; what may be
    ordered is ``check_prepaid_months``) multiplies. Postpaid: prices are per unit of usage;
    ``before`` is the quantity already used in the current tier period, so
    graduated tiers continue where it stopped. An account's contract or fixed
    price for the item (region-specific first, then all regions) replaces
    list × discount; otherwise the account's discount for the product (or
    else for all products) applies to the list price.
    """
    when = _at(at)
    facts = get_product(conn, product)
    _require_region(conn, region)
    item_row = _item_row(conn, product, item)
    _check_pay_mode(facts, pay_mode)
    _check_months(pay_mode, months)
    for name, value in (("quantity", quantity), ("before", before)):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= rules.MAX_QTY:
            raise invalid(name, "数量必须为非负整数（单位 1e-6）",
                          "quantity must be a non-negative integer in 1e-6 units")
    span = months or 1
    common = dict(uin=uin, product=product, item=item, region=region, pay_mode=pay_mode,
                  quantity=quantity, months=months, at=to_utc(at), entity=facts.entity,
                  tax_category=facts.tax_category, tax_rate_bp=facts.tax_rate_bp,
                  product_class=facts.product_class, spec=item_row.spec)
    agreed = _agreed_price(conn, uin, item_row.id, region, pay_mode, when)
    if agreed is not None:
        amount = (rules.contract_amount(agreed.price, quantity, span) if agreed.kind == "contract"
                  else rules.fixed_amount(agreed.price, span))
        try:
            list_id, tiers = _list_price(conn, product, item_row.id, item, region, pay_mode, when)
        except (InvalidInput, NotFound):
            list_id, unit_price, list_amount, charges = None, agreed.price, amount, ()
        else:
            listed = rules.list_price_amount(tiers, quantity, months=span, before=before)
            unit_price, list_amount = rules.price_at(tiers, before), listed.list_amount
            charges = listed.charges
        return Quote(**common, price_kind=agreed.kind, price_list_id=list_id,
                     unit_price=unit_price, list_amount=list_amount, discount_bp=BP_SCALE,
                     discount_id=None, account_price_id=agreed.id, agreed_price=agreed.price,
                     amount=amount, tiers=charges)
    list_id, tiers = _list_price(conn, product, item_row.id, item, region, pay_mode, when)
    discount_id, discount_bp = _discount(conn, uin, product, when)
    priced = rules.list_price_amount(tiers, quantity, months=span, discount_bp=discount_bp,
                                     before=before)
    return Quote(**common, price_kind="list", price_list_id=list_id,
                 unit_price=rules.price_at(tiers, before), list_amount=priced.list_amount,
                 discount_bp=discount_bp, discount_id=discount_id, account_price_id=None,
                 agreed_price=None, amount=priced.amount, tiers=priced.charges)


def quote_for(conn: Connection, actor: Actor, uin: int, product: str, item: str, region: str,
              pay_mode: str, quantity: int, at: datetime, months: int | None = None) -> Quote:
    """``quote`` for a caller: any user of the account (询价), or an operator."""
    require(actor, uin, READ_PROFILE)
    _require_account(conn, uin)
    return quote(conn, uin, product, item, region, pay_mode, quantity, at, months)


def _list_price(conn: Connection, product: str, item_id: int, item: str, region: str,
                pay_mode: str, when: datetime) -> tuple[int, tuple[Tier, ...]]:
    key = (price_lists.c.item_id == item_id, price_lists.c.region_code == region,
           price_lists.c.pay_mode == pay_mode)
    row = conn.execute(select(price_lists.c.id).where(
        *key, price_lists.c.starts_at <= when,
        or_(price_lists.c.ends_at.is_(None), price_lists.c.ends_at > when))).first()
    if row is None:
        if conn.execute(select(price_lists.c.id).where(*key).limit(1)).first() is None:
            raise not_found("region", f"{product}/{item} 在此地域的{_MODE_ZH[pay_mode]}价格",
                            f"{pay_mode} price of {product}/{item} in this region", region)
        shown = business_time_text(when)
        raise invalid("at", f"{product}/{item} 在 {region} 于 {shown} 没有生效的价格",
                      f"no {pay_mode} price of {product}/{item} in {region} is in force at "
                      f"{shown}")
    tiers = _tiers_by_list(conn, price_lists.c.id == row.id)[row.id]
    return row.id, tiers


def _discount(conn: Connection, uin: int, product: str, when: datetime) -> tuple[int | None, int]:
    d = account_discounts.c
    rows = conn.execute(select(d.id, d.product_code, d.discount_bp).where(
        d.uin == uin, or_(d.product_code == product, d.product_code.is_(None)),
        d.starts_at <= when, or_(d.ends_at.is_(None), d.ends_at > when))).all()
    if not rows:
        return None, BP_SCALE
    best = min(rows, key=lambda r: (r.product_code is None, -r.id))  # product-specific first
    return best.id, best.discount_bp


def _agreed_price(conn: Connection, uin: int, item_id: int, region: str, pay_mode: str,
                  when: datetime):
    p = account_prices.c
    rows = conn.execute(select(p.id, p.kind, p.price, p.region_code).where(
        p.uin == uin, p.item_id == item_id, p.pay_mode == pay_mode,
        or_(p.region_code == region, p.region_code.is_(None)),
        p.starts_at <= when, or_(p.ends_at.is_(None), p.ends_at > when))).all()
    if not rows:
        return None
    return min(rows, key=lambda r: (r.region_code is None, -r.id))  # region-specific first


# ---------------------------------------------------------------- account prices (operators)

def _require_account(conn: Connection, uin: int) -> None:
    get_account(conn, SYSTEM, uin)


def _range(clock: Clock, start: datetime | None, end: datetime | None) -> tuple[datetime,
                                                                              datetime | None]:
    now = db_time(clock.now())
    begin = _at(start, "start") if start is not None else now
    finish = _at(end, "end") if end is not None else None
    if begin < now:
        raise invalid("start", "生效时间不能早于当前时间（已计费的用量不会重算）",
                      "start cannot be in the past (usage already charged is not re-priced)")
    if finish is not None and finish <= begin:
        raise invalid("end", "失效时间必须晚于生效时间", "end must be later than start")
    return begin, finish


def _supersede(conn: Connection, table, conditions, value_cols: dict, begin: datetime,
               finish: datetime | None) -> tuple[dict[int, datetime], dict | None]:
    """Work out which stored rows of one key a new setting ends; refuse other overlaps.

    Returns (closes, the stored row to keep instead when the same setting is
    already in force open-ended).
    """
    rows = conn.execute(select(table).where(*conditions)).mappings().all()
    for row in rows:
        if (row["ends_at"] is None and finish is None and row["starts_at"] <= begin
                and all(row[k] == v for k, v in value_cols.items())):
            return {}, dict(row)
    closes, conflict = rules.plan_supersede(
        [Span(r["id"], r["starts_at"], r["ends_at"]) for r in rows], begin, finish)
    if conflict is not None:
        shown = f"[{business_time_text(conflict.start)}, " + (
            business_time_text(conflict.end) if conflict.end else "∞") + ")"
        raise Conflict(f"与已有设置 {shown} 时间重叠", f"overlaps the existing setting {shown}",
                       field="start", existing_id=conflict.id)
    for row_id, end in closes.items():
        conn.execute(update(table).where(table.c.id == row_id).values(ends_at=end))
    return closes, None


def set_discount(conn: Connection, clock: Clock, actor: Actor, uin: int, discount_bp: int, *,
                 product: str | None = None, start: datetime | None = None,
                 end: datetime | None = None, note: str | None = None) -> dict:
    """Set an account's discount (basis points, 8500 = 85%) for one product or all.

    It applies from ``start`` (default now, never in the past) to ``end``
    (default open); an open-ended discount of the same scope in force is
    ended at ``start``; any other overlap is refused. Audited.
    """
    require_operator(actor)
    _require_account(conn, uin)
    rules.check_discount_bp(discount_bp)
    if product is not None:
        get_product(conn, product)
    begin, finish = _range(clock, start, end)
    _lock(conn, _ACCOUNT_LOCK_BASE + uin)
    d = account_discounts.c
    scope = d.product_code == product if product is not None else d.product_code.is_(None)
    closes, same = _supersede(conn, account_discounts, (d.uin == uin, scope),
                              {"discount_bp": discount_bp}, begin, finish)
    row = same or _insert(conn, account_discounts, uin=uin, product_code=product,
                          discount_bp=discount_bp, starts_at=begin, ends_at=finish, note=note,
                          created_by=actor.label, created_at=db_time(clock.now()))
    record_audit(conn, clock, actor, "set_discount", uin,
                 {"id": row["id"], "product": product, "discount_bp": discount_bp,
                  "start": begin, "end": finish, "ended": sorted(closes),
                  "unchanged": bool(same)})
    return {**row, "created": same is None}


def set_contract_price(conn: Connection, clock: Clock, actor: Actor, uin: int, *, product: str,
                       item: str, pay_mode: str, unit_price: int, region: str | None = None,
                       start: datetime | None = None, end: datetime | None = None,
                       note: str | None = None) -> dict:
    """合同价: a negotiated unit price (1e-8 yuan per unit; per unit per month if
    prepaid) replacing list × discount for one item. Audited."""
    return _set_agreed(conn, clock, actor, uin, "contract", product, item, pay_mode, unit_price,
                       region, start, end, note)


def set_fixed_price(conn: Connection, clock: Clock, actor: Actor, uin: int, *, product: str,
                    item: str, pay_mode: str, amount_per_month: int, region: str | None = None,
                    start: datetime | None = None, end: datetime | None = None,
                    note: str | None = None) -> dict:
    """一口价: a fixed amount per month (1e-8 yuan) for one item, whatever the
    quantity. Audited."""
    return _set_agreed(conn, clock, actor, uin, "fixed", product, item, pay_mode,
                       amount_per_month, region, start, end, note)


def _set_agreed(conn, clock, actor, uin, kind, product, item, pay_mode, price, region, start,
                end, note) -> dict:
    require_operator(actor)
    _require_account(conn, uin)
    facts = get_product(conn, product)
    if region is not None:
        _require_region(conn, region)
    item_row = _item_row(conn, product, item)
    _check_pay_mode(facts, pay_mode)
    name = "unit_price" if kind == "contract" else "amount_per_month"
    if isinstance(price, bool) or not isinstance(price, int) or not 0 <= price <= MAX_RATED_PRICE:
        raise invalid(name, "价格必须为非负金额", "the price must be a non-negative amount")
    begin, finish = _range(clock, start, end)
    _lock(conn, _ACCOUNT_LOCK_BASE + uin)
    p = account_prices.c
    scope = p.region_code == region if region is not None else p.region_code.is_(None)
    closes, same = _supersede(conn, account_prices,
                              (p.uin == uin, p.item_id == item_row.id, p.pay_mode == pay_mode,
                               scope), {"kind": kind, "price": price}, begin, finish)
    row = same or _insert(conn, account_prices, uin=uin, kind=kind, product_code=product,
                          item_id=item_row.id, region_code=region, pay_mode=pay_mode,
                          price=price, starts_at=begin, ends_at=finish, note=note,
                          created_by=actor.label, created_at=db_time(clock.now()))
    record_audit(conn, clock, actor, f"set_{kind}_price", uin,
                 {"id": row["id"], "product": product, "item": item, "region": region,
                  "pay_mode": pay_mode, "price": price, "start": begin, "end": finish,
                  "ended": sorted(closes), "unchanged": bool(same)})
    return {**row, "item": item, "created": same is None}


def end_discount(conn: Connection, clock: Clock, actor: Actor, uin: int, discount_id: int,
                 at: datetime | None = None) -> dict:
    """End a discount at ``at`` (default now; never in the past). Audited."""
    return _end(conn, clock, actor, uin, account_discounts, discount_id, at, "end_discount")


def end_account_price(conn: Connection, clock: Clock, actor: Actor, uin: int, price_id: int,
                      at: datetime | None = None) -> dict:
    """End a contract or fixed price at ``at`` (default now). Audited."""
    return _end(conn, clock, actor, uin, account_prices, price_id, at, "end_account_price")


def _end(conn, clock, actor, uin, table, row_id, at, action) -> dict:
    require_operator(actor)
    _lock(conn, _ACCOUNT_LOCK_BASE + uin)
    row = conn.execute(select(table).where(table.c.id == row_id, table.c.uin == uin)
                       ).mappings().first()
    if row is None:
        raise not_found("id", "账号价格设置", "account price setting", row_id)
    when, _ = _range(clock, at, None)
    if row["ends_at"] is not None and row["ends_at"] <= when:
        raise invalid("at", "该设置在此之前已失效", "the setting already ends before that")
    when = max(when, row["starts_at"])
    conn.execute(update(table).where(table.c.id == row_id).values(ends_at=when))
    record_audit(conn, clock, actor, action, uin, {"id": row_id, "end": when})
    return {**row, "ends_at": when}


def _insert(conn: Connection, table, **values) -> dict:
    new_id = conn.execute(insert(table).values(**values).returning(table.c.id)).scalar_one()
    return {"id": new_id, **values}


def account_pricing(conn: Connection, actor: Actor, uin: int) -> dict:
    """An account's discounts and contract / fixed prices, history included (newest first)."""
    require(actor, uin, FINANCE)
    _require_account(conn, uin)
    d, p = account_discounts.c, account_prices.c
    discounts = conn.execute(select(account_discounts).where(d.uin == uin)
                             .order_by(d.starts_at.desc(), d.id.desc())).mappings()
    prices = conn.execute(select(account_prices, billing_items.c.code.label("item"))
                          .join(billing_items, billing_items.c.id == p.item_id)
                          .where(p.uin == uin)
                          .order_by(p.starts_at.desc(), p.id.desc())).mappings()
    return {"discounts": [dict(r) for r in discounts], "prices": [dict(r) for r in prices]}


def time_text(value: datetime | None) -> str | None:
    """Stored naive UTC -> "YYYY-MM-DD HH:MM:SS" in Asia/Shanghai (None stays None)."""
    return business_time_text(from_db_time(value)) if value is not None else None
