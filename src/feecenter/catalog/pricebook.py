"""The price book: every price in force at one instant, loaded once, for bulk rating.

``catalog.quote`` answers one question with several queries; settling a
period asks it a million times. ``PriceBook.load(conn, at, pay_mode)`` reads
what ``quote`` would read, for every product, item, region and account at
once, in seven queries: products (with their class), billing items, regions,
the price-list versions in force at ``at`` and their tiers, the account
discounts and the contract / fixed prices (合同价 / 一口价) in force at ``at``.

``book.quote(conn, uin, product, item, region, quantity, before=…)`` then
returns exactly the ``Quote`` that ``catalog.quote(conn, uin, product, item,
region, pay_mode, quantity, at, before=…)`` returns (tests/test_pricebook.py
compares them on both databases). Whatever the book cannot price — an
unknown product, item or region, a pay mode the product is not sold in, a
malformed quantity, no price in force — it hands to ``catalog.quote``
itself, which raises its own error (or prices it, if the catalog changed
since the book was loaded); ``conn`` is used for nothing else.

``book.rate(...)`` is the same price without the quote's descriptive fields
(a ``Rate``: price kind, unit price, list amount, discount, amount), memoised
by (price terms, quantity, position in the tiers), which is what a bulk path
needs. The choices are ``catalog.quote``'s: an account's contract or fixed
price for the item (region-specific first, then all regions; newest first)
replaces list × discount; otherwise the account's discount for the product
(else for all products; newest first) applies to the graduated list price.
Amounts in 1e-8 yuan, quantities in 1e-6 units.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, or_, select

from feecenter.catalog import rules
from feecenter.catalog import service as catalog
from feecenter.catalog.rules import BP_SCALE, QTY_SCALE, Tier, TierCharge, div_half_up
from feecenter.catalog.tables import (account_discounts, account_prices, billing_items,
                                      price_lists, price_tiers, regions)
from feecenter.clock import to_utc

MAX_MEMO = 200_000  # memoised rates kept before the memo starts over (bounded memory)


class Rate(NamedTuple):
    """What a bill line needs of a quote (see ``catalog.Quote`` for the meaning)."""

    price_kind: str       # list | contract | fixed
    unit_price: int       # 1e-8 yuan per unit
    list_amount: int      # 1e-8 yuan
    discount_bp: int
    amount: int           # 1e-8 yuan: what is charged (SET-2)


@dataclass(frozen=True)
class Terms:
    """How one account's quantity of one item in one region is priced at the book's instant."""

    kind: str                        # list | contract | fixed
    list_id: int | None              # the price-list version in force (None: none)
    tiers: tuple[Tier, ...] | None   # its graduated tiers
    discount_id: int | None
    discount_bp: int
    account_price_id: int | None
    agreed_price: int | None         # contract unit price, or fixed amount per month

    @property
    def tiered(self) -> bool:
        """More than one tier: the price depends on the quantity already used (``before``)."""
        return self.tiers is not None and len(self.tiers) > 1

    @property
    def needs_month_to_date(self) -> bool:
        """Rating needs what the month already billed: tiers continue, a fixed price is
        charged once a month."""
        return self.tiered or self.kind == "fixed"


@dataclass(frozen=True)
class _Item:
    id: int
    spec: bool


@dataclass(frozen=True)
class _Priced:
    list_id: int | None
    unit_price: int
    list_amount: int
    amount: int
    charges: tuple[TierCharge, ...]


class PriceBook:
    """Prices of one pay mode in force at one instant (``at``), for every account."""

    def __init__(self, at: datetime, pay_mode: str):
        self.at = at
        self.pay_mode = pay_mode
        self.products: dict[str, catalog.Product] = {}
        self._items: dict[tuple[str, str], _Item] = {}
        self._regions: set[str] = set()
        self._lists: dict[tuple[int, str], tuple[int, tuple[Tier, ...]]] = {}
        self._discounts: dict[int, list[tuple[int, str | None, int]]] = {}
        self._agreed: dict[tuple[int, int], list[tuple[int, str, int, str | None]]] = {}
        self._terms: dict[tuple[int, str, str, str], tuple[int, Terms, bool] | None] = {}
        self._tiered_keys: set[tuple[str, str, str]] = set()  # (product, item, region)
        self._fixed_uins: set[int] = set()
        self._tokens: dict[Terms, int] = {}
        self._memo: dict[tuple[int, int, int], Rate] = {}

    # ------------------------------------------------------------ loading

    @classmethod
    def load(cls, conn: Connection, at: datetime, pay_mode: str = "postpaid") -> PriceBook:
        """Everything ``catalog.quote`` reads for ``pay_mode`` at ``at``, in seven queries."""
        when = catalog._at(at)  # the catalog's own check: an aware datetime
        book = cls(at, pay_mode)
        book.products = {p.code: p for p in catalog.list_products(conn)}
        b = billing_items.c
        book._items = {(row.product_code, row.code): _Item(row.id, row.spec)
                       for row in conn.execute(select(b.id, b.product_code, b.code, b.spec))}
        book._regions = set(conn.execute(select(regions.c.code)).scalars())
        book._load_lists(conn, when)
        book._load_account_terms(conn, when)
        return book

    def _load_lists(self, conn: Connection, when: datetime) -> None:
        p, t = price_lists.c, price_tiers.c
        in_force = (p.pay_mode == self.pay_mode, p.starts_at <= when,
                    or_(p.ends_at.is_(None), p.ends_at > when))
        tiers: dict[int, list[Tier]] = {}
        for row in conn.execute(select(t.price_list_id, t.lower_qty, t.upper_qty, t.unit_price)
                                .join(price_lists, p.id == t.price_list_id).where(*in_force)
                                .order_by(t.price_list_id, t.lower_qty)):
            tiers.setdefault(row.price_list_id, []).append(
                Tier(row.lower_qty, row.upper_qty, row.unit_price))
        # versions of one key never overlap; should data say otherwise, the lowest id wins
        for row in conn.execute(select(p.id, p.item_id, p.region_code).where(*in_force)
                                .order_by(p.id.desc())):
            self._lists[(row.item_id, row.region_code)] = (row.id, tuple(tiers.get(row.id, ())))
        codes = {item.id: key for key, item in self._items.items()}
        self._tiered_keys = {(*codes[item_id], region)
                             for (item_id, region), (_, levels) in self._lists.items()
                             if len(levels) > 1 and item_id in codes}

    def _load_account_terms(self, conn: Connection, when: datetime) -> None:
        d, a = account_discounts.c, account_prices.c
        for row in conn.execute(select(d.id, d.uin, d.product_code, d.discount_bp).where(
                d.starts_at <= when, or_(d.ends_at.is_(None), d.ends_at > when))):
            self._discounts.setdefault(row.uin, []).append(
                (row.id, row.product_code, row.discount_bp))
        for row in conn.execute(select(a.id, a.uin, a.item_id, a.kind, a.price, a.region_code)
                                .where(a.pay_mode == self.pay_mode, a.starts_at <= when,
                                       or_(a.ends_at.is_(None), a.ends_at > when))):
            self._agreed.setdefault((row.uin, row.item_id), []).append(
                (row.id, row.kind, row.price, row.region_code))
            if row.kind == "fixed":
                self._fixed_uins.add(row.uin)

    # ------------------------------------------------------------ terms

    def terms(self, uin: int, product: str, item: str, region: str) -> Terms | None:
        """The price terms of this account's item in this region; None: the book cannot
        price it (``catalog.quote`` raises why)."""
        found = self._lookup(uin, product, item, region)
        return found[1] if found is not None else None

    def _lookup(self, uin: int, product: str, item: str, region: str
                ) -> tuple[int, Terms, bool] | None:
        """(token, terms, tiered) of the price terms, cached; tokens number distinct terms."""
        key = (uin, product, item, region)
        try:
            return self._terms[key]
        except KeyError:
            pass
        terms = self._resolve(uin, product, item, region)
        found = None
        if terms is not None:
            token = self._tokens.setdefault(terms, len(self._tokens))
            found = (token, terms, terms.tiered)
        self._terms[key] = found
        return found

    def _resolve(self, uin: int, product: str, item: str, region: str) -> Terms | None:
        facts = self.products.get(product)
        item_row = self._items.get((product, item))
        if (facts is None or region not in self._regions or item_row is None
                or self.pay_mode not in facts.pay_modes):
            return None
        listed = self._lists.get((item_row.id, region))
        list_id, tiers = listed if listed is not None else (None, None)
        agreed = self._agreed_price(uin, item_row.id, region)
        if agreed is not None:
            agreed_id, kind, price, _ = agreed
            return Terms(kind, list_id, tiers, None, BP_SCALE, agreed_id, price)
        if listed is None:
            return None
        discount_id, discount_bp = self._discount(uin, product)
        return Terms("list", list_id, tiers, discount_id, discount_bp, None, None)

    def _agreed_price(self, uin: int, item_id: int, region: str):
        rows = [r for r in self._agreed.get((uin, item_id), ()) if r[3] in (region, None)]
        if not rows:
            return None
        return min(rows, key=lambda r: (r[3] is None, -r[0]))  # region-specific, newest

    def _discount(self, uin: int, product: str) -> tuple[int | None, int]:
        rows = [r for r in self._discounts.get(uin, ()) if r[1] in (product, None)]
        if not rows:
            return None, BP_SCALE
        best = min(rows, key=lambda r: (r[1] is None, -r[0]))  # product-specific, newest
        return best[0], best[2]

    def fixed_price_accounts(self) -> set[int]:
        """Accounts holding a fixed price (一口价) in force for some item."""
        return set(self._fixed_uins)

    def needs_month_to_date(self, uin: int, product: str, item: str, region: str) -> bool:
        """``terms(...).needs_month_to_date``, answered from two sets for most lines."""
        if (product, item, region) in self._tiered_keys:
            return True
        if uin not in self._fixed_uins:
            return False
        terms = self.terms(uin, product, item, region)
        return terms is not None and terms.kind == "fixed"

    # ------------------------------------------------------------ pricing

    def rate(self, conn: Connection, uin: int, product: str, item: str, region: str,
             quantity: int, before: int = 0) -> Rate:
        """The price of ``quantity`` used after ``before`` in the tier period: exactly
        ``catalog.quote``'s figures, memoised."""
        found = self._terms.get((uin, product, item, region)) or self._lookup(
            uin, product, item, region)
        if (found is None or type(quantity) is not int or type(before) is not int
                or not 0 <= quantity <= rules.MAX_QTY or not 0 <= before <= rules.MAX_QTY
                or self.pay_mode != "postpaid"):
            return _rate_of(self._delegate(conn, uin, product, item, region, quantity, before))
        token, terms, tiered = found
        key = (token, quantity, before if tiered else 0)  # one tier: before is moot
        rate = self._memo.get(key)
        if rate is None:
            rate = _rate(terms, quantity, before)
            if len(self._memo) >= MAX_MEMO:
                self._memo.clear()
            self._memo[key] = rate
        return rate

    def quote(self, conn: Connection, uin: int, product: str, item: str, region: str,
              quantity: int, before: int = 0, months: int | None = None) -> catalog.Quote:
        """Exactly ``catalog.quote(conn, uin, product, item, region, pay_mode, quantity,
        at, months, before=before)`` for the book's pay mode and instant."""
        found = self._lookup(uin, product, item, region)
        if found is None or not _valid_quantities(quantity, before, self.pay_mode, months):
            return self._delegate(conn, uin, product, item, region, quantity, before, months)
        terms = found[1]
        facts = self.products[product]
        priced = _price(terms, quantity, before, months or 1)
        return catalog.Quote(
            uin=uin, product=product, item=item, region=region, pay_mode=self.pay_mode,
            quantity=quantity, months=months, at=to_utc(self.at), price_kind=terms.kind,
            price_list_id=priced.list_id, unit_price=priced.unit_price,
            list_amount=priced.list_amount, discount_bp=terms.discount_bp,
            discount_id=terms.discount_id, account_price_id=terms.account_price_id,
            agreed_price=terms.agreed_price, amount=priced.amount, tiers=priced.charges,
            entity=facts.entity, tax_category=facts.tax_category,
            tax_rate_bp=facts.tax_rate_bp, product_class=facts.product_class,
            spec=self._items[(product, item)].spec)

    def _delegate(self, conn: Connection, uin: int, product: str, item: str, region: str,
                  quantity: int, before: int, months: int | None = None) -> catalog.Quote:
        """What the book cannot price: catalog.quote raises its own error (or prices it)."""
        return catalog.quote(conn, uin, product, item, region, self.pay_mode, quantity,
                             self.at, months, before=before)


def _valid_quantities(quantity, before, pay_mode: str, months) -> bool:
    """The inputs ``catalog.quote`` accepts (it explains any other)."""
    for value in (quantity, before):
        if isinstance(value, bool) or not isinstance(value, int) \
                or not 0 <= value <= rules.MAX_QTY:
            return False
    if pay_mode == "postpaid":
        return months is None
    return (not isinstance(months, bool) and isinstance(months, int)
            and 1 <= months <= rules.MAX_MONTHS)


def _price(terms: Terms, quantity: int, before: int, span: int) -> _Priced:
    """catalog.quote's arithmetic on resolved terms (one rounding step each, SET-2)."""
    if terms.kind != "list":
        amount = (rules.contract_amount(terms.agreed_price, quantity, span)
                  if terms.kind == "contract" else rules.fixed_amount(terms.agreed_price, span))
        if terms.tiers is None:  # an agreed price without any list price in force
            return _Priced(None, terms.agreed_price, amount, amount, ())
        listed = rules.list_price_amount(terms.tiers, quantity, months=span, before=before)
        return _Priced(terms.list_id, rules.price_at(terms.tiers, before), listed.list_amount,
                       amount, listed.charges)
    priced = rules.list_price_amount(terms.tiers, quantity, months=span,
                                     discount_bp=terms.discount_bp, before=before)
    return _Priced(terms.list_id, rules.price_at(terms.tiers, before), priced.list_amount,
                   priced.amount, priced.charges)


def _rate(terms: Terms, quantity: int, before: int) -> Rate:
    """_price without the tier detail; a flat list price (one tier) computed directly with
    the same arithmetic (list_price_amount of one tier: one product, one rounding each)."""
    tiers = terms.tiers
    if terms.kind == "list" and len(tiers) == 1:
        unit_price = tiers[0].unit_price
        exact = quantity * unit_price  # 1e-14 yuan
        return Rate("list", unit_price, div_half_up(exact, QTY_SCALE), terms.discount_bp,
                    div_half_up(exact * terms.discount_bp, QTY_SCALE * BP_SCALE))
    priced = _price(terms, quantity, before, 1)
    return Rate(terms.kind, priced.unit_price, priced.list_amount, terms.discount_bp,
                priced.amount)


def _rate_of(quote: catalog.Quote) -> Rate:
    return Rate(quote.price_kind, quote.unit_price, quote.list_amount, quote.discount_bp,
                quote.amount)


__all__ = ["PriceBook", "Rate", "Terms"]
