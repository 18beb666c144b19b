"""The price book (catalog/pricebook.py) prices exactly as catalog.quote does (SET-2, ORD-5):
over the sample catalog, tiers, discounts, contract and fixed prices, errors included."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone

import pytest

from feecenter.catalog import service as catalog
from feecenter.catalog.pricebook import PriceBook, Rate
from feecenter.catalog.rules import QTY_SCALE
from feecenter.clock import BUSINESS_TZ
from feecenter.errors import FeeCenterError, InvalidInput
from tests.helpers import OPS, new_account

UNIT = QTY_SCALE
QUANTITIES = (1_500_000, 3_000 * UNIT + 7)
BEFORES = (0, 2_047 * UNIT + 500_000)  # the second straddles CDN's first tier bound


def outcome(call):
    """("ok", value) or ("error", type, field, message): what a caller would see."""
    try:
        return ("ok", call())
    except FeeCenterError as exc:
        return ("error", type(exc), exc.field, exc.message_en)


def project(result):
    """A quote outcome as a rate outcome."""
    if result[0] != "ok":
        return result
    q = result[1]
    return ("ok", Rate(q.price_kind, q.unit_price, q.list_amount, q.discount_bp, q.amount))


def every_key(conn):
    """(product, item, region) for every product, item and region of the catalog."""
    regions = [r["code"] for r in catalog.list_regions(conn)]
    for product in catalog.list_products(conn):
        for item in catalog.list_items(conn, product.code):
            for region in regions:
                yield product.code, item["code"], region


def compare(conn, book, uins, keys, at, *, months_options):
    compared = 0
    befores = BEFORES if book.pay_mode == "postpaid" else (0,)  # prepaid has no tier period
    for uin, (product, item, region), quantity, before in itertools.product(
            uins, keys, QUANTITIES, befores):
        for months in months_options:
            expected = outcome(lambda: catalog.quote(conn, uin, product, item, region,
                                                     book.pay_mode, quantity, at, months,
                                                     before=before))
            got = outcome(lambda: book.quote(conn, uin, product, item, region, quantity,
                                             before, months))
            assert got == expected, (uin, product, item, region, quantity, before, months)
            if months_options == (None,):
                rated = outcome(lambda: book.rate(conn, uin, product, item, region, quantity,
                                                  before))
                assert rated == project(expected), (uin, product, item, region, quantity)
            compared += expected[0] == "ok"
        terms = book.terms(uin, product, item, region)
        if terms is not None:
            assert book.needs_month_to_date(uin, product, item, region) == (
                terms.tiered or terms.kind == "fixed"), (uin, product, item, region)
    return compared


@pytest.fixture
def priced_accounts(rt):
    """The sample catalog and accounts with every kind of account pricing, set at START."""
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    plain, discounted, contract, fixed, lapsed = (
        new_account(rt, name) for name in ("plain", "discounted", "contract", "fixed", "lapsed"))
    now = rt.clock.now()
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, discounted, 8500)
        catalog.set_discount(conn, rt.clock, OPS, discounted, 9000, product="cdn")
        catalog.set_discount(conn, rt.clock, OPS, contract, 7000)  # contract prices win
        for pay_mode, price in (("postpaid", 33_000_000), ("prepaid", 150 * 10**8)):
            item = "traffic" if pay_mode == "postpaid" else "S5.MEDIUM4"
            catalog.set_contract_price(conn, rt.clock, OPS, contract, product="cvm", item=item,
                                       pay_mode=pay_mode, unit_price=price)
            catalog.set_contract_price(conn, rt.clock, OPS, contract, product="cvm", item=item,
                                       pay_mode=pay_mode, unit_price=price - 1_000_000,
                                       region="ap-shanghai")  # region-specific first
        # an agreed price where the region has no list price at all
        catalog.set_contract_price(conn, rt.clock, OPS, contract, product="cdn", item="traffic",
                                   pay_mode="postpaid", unit_price=19_000_000)
        catalog.set_fixed_price(conn, rt.clock, OPS, fixed, product="cvm", item="S5.MEDIUM4",
                                pay_mode="postpaid", amount_per_month=30 * 10**8)
        catalog.set_fixed_price(conn, rt.clock, OPS, fixed, product="cdn", item="traffic",
                                pay_mode="postpaid", amount_per_month=99 * 10**8)
        catalog.set_fixed_price(conn, rt.clock, OPS, fixed, product="cbs", item="premium",
                                pay_mode="prepaid", amount_per_month=12 * 10**8)
        # not in force an hour from now: ended already, or starting later
        catalog.set_discount(conn, rt.clock, OPS, lapsed, 7000, end=now + timedelta(minutes=30))
        catalog.set_discount(conn, rt.clock, OPS, lapsed, 6000, product="cvm",
                             start=now + timedelta(hours=2))
        catalog.set_fixed_price(conn, rt.clock, OPS, lapsed, product="cvm", item="traffic",
                                pay_mode="postpaid", amount_per_month=10**8,
                                start=now + timedelta(hours=2))
    return rt, [plain, discounted, contract, fixed, lapsed, 999_999_999]  # last: no account


@pytest.mark.slow
@pytest.mark.spec("SET-2", "ORD-5")
@pytest.mark.parametrize("pay_mode, months_options", [("postpaid", (None,)),
                                                      ("prepaid", (1, 12))])
def test_the_book_quotes_exactly_what_quote_gives(priced_accounts, pay_mode, months_options):
    rt, uins = priced_accounts
    at = rt.clock.now() + timedelta(hours=1)
    with rt.engine.connect() as conn:
        book = PriceBook.load(conn, at, pay_mode)
        keys = list(every_key(conn))
        compared = compare(conn, book, uins, keys, at, months_options=months_options)
    assert compared > 300  # most keys priced; the rest compared as errors


@pytest.mark.spec("SET-2")
def test_tiers_continue_from_before_across_every_bound(priced_accounts):
    rt, uins = priced_accounts
    at = rt.clock.now()
    bounds = [0, 2_048 * UNIT, 10_240 * UNIT, 51_200 * UNIT, 102_400 * UNIT]
    with rt.engine.connect() as conn:
        book = PriceBook.load(conn, at)
        for uin, bound, delta in itertools.product(uins[:2], bounds, (-1, 0, 1)):
            before = max(bound + delta, 0)
            for quantity in (0, 1, UNIT, 60_000 * UNIT):
                expected = catalog.quote(conn, uin, "cdn", "traffic", "mainland", "postpaid",
                                         quantity, at, before=before)
                assert book.quote(conn, uin, "cdn", "traffic", "mainland", quantity,
                                  before) == expected
                assert book.rate(conn, uin, "cdn", "traffic", "mainland", quantity,
                                 before) == project(("ok", expected))[1]
        terms = book.terms(uins[0], "cdn", "traffic", "mainland")
        assert terms.tiered and terms.needs_month_to_date
        flat = book.terms(uins[0], "cvm", "S5.MEDIUM4", "ap-guangzhou")
        assert not flat.needs_month_to_date
        assert book.terms(uins[3], "cvm", "S5.MEDIUM4", "ap-guangzhou").needs_month_to_date
        assert book.fixed_price_accounts() == {uins[3]}


@pytest.mark.spec("SET-2", "ORD-5")
def test_the_book_uses_the_version_in_force_at_its_instant(priced_accounts):
    rt, uins = priced_accounts
    cut = datetime(2026, 7, 1, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)
    with rt.engine.connect() as conn:
        for at in (cut - timedelta(microseconds=1), cut):
            book = PriceBook.load(conn, at)
            got = book.quote(conn, uins[1], "cdn", "traffic", "mainland", 100 * UNIT)
            assert got == catalog.quote(conn, uins[1], "cdn", "traffic", "mainland",
                                        "postpaid", 100 * UNIT, at)
        assert got.unit_price == 19_000_000  # the July price cut, at its first instant
        early = PriceBook.load(conn, datetime(2025, 12, 31, tzinfo=timezone.utc))
        with pytest.raises(InvalidInput) as err:
            early.rate(conn, uins[0], "cvm", "S5.MEDIUM4", "ap-guangzhou", UNIT)
        assert err.value.field == "at"  # catalog.quote's own error: no price in force
        with pytest.raises(InvalidInput) as err:
            PriceBook.load(conn, datetime(2026, 4, 1))
        assert err.value.field == "at"
