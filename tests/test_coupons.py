"""Coupons (CPN-1..6, ARR-5): pure rules, the service on both backends, the REST API."""

from __future__ import annotations

import json
import random
import time
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.audit.service import list_audit
from feecenter.auth import service as auth
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.coupons import rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupon_codes, coupon_uses
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.errors import (AccountInArrears, Conflict, IdempotencyConflict, InvalidInput,
                              NotFound, PermissionDenied)
from feecenter.funds import service as funds
from feecenter.ledger import service as ledger
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_transactions
from tests.helpers import OPS, new_account

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # conftest START
DAY = timedelta(days=1)


# ---------------------------------------------------------------- rule builders

def cp(cid: int, kind: str = rules.VOUCHER, remaining: int | None = 10_000, **kw) -> rules.Coupon:
    kw.setdefault("pay_mode", rules.PREPAID)
    kw.setdefault("valid_from", NOW - DAY)
    kw.setdefault("valid_until", NOW + 30 * DAY)
    if kind == rules.DISCOUNT:
        kw.setdefault("discount_bp", 8000)
    return rules.Coupon(id=cid, kind=kind, remaining=remaining, **kw)


def ln(ref: str = "order:1", product: str = "cvm", amount: int = 10_000, **kw) -> rules.Line:
    kw.setdefault("order_kind", "new")
    kw.setdefault("months", 1)
    return rules.Line(ref, product, amount, **kw)


def plan(cs, lines, mode=rules.PREPAID, **kw) -> rules.Plan:
    return rules.plan(cs, lines, mode=mode, now=kw.pop("now", NOW), **kw)


# ---------------------------------------------------------------- rules: worked examples

@pytest.mark.spec("CPN-1", "CPN-3")
def test_a_voucher_pays_up_to_its_remaining_and_never_more_than_the_line():
    p = plan([cp(1, remaining=3000)], [ln(amount=10_000)])
    assert p.line_paid == (3000,) and p.uses == (rules.Use(1, 0, 3000),) and not p.skipped
    p = plan([cp(1, remaining=30_000)], [ln(amount=10_000)])
    assert p.line_paid == (10_000,) and p.paid_by(1) == 10_000


@pytest.mark.spec("CPN-3")
def test_a_product_list_shares_one_amount_and_an_exclusion_list_keeps_out():
    shared = cp(1, remaining=10_000, product_scope=rules.ONLY, products=frozenset({"cvm", "cdb"}))
    lines = [ln("order:1", "cvm", 6000), ln("order:2", "cdb", 7000), ln("order:3", "cos", 500)]
    p = plan([shared], lines)
    assert p.line_paid == (6000, 4000, 0) and p.total == 10_000
    allbut = cp(2, remaining=50_000, product_scope=rules.ALL_BUT, products=frozenset({"cdb"}))
    p = plan([allbut], lines)
    assert p.line_paid == (6000, 0, 500)
    only = plan([cp(3, product_scope=rules.ONLY, products=frozenset({"cbs"}))], lines)
    assert only.total == 0 and only.skipped[3].code == "product"
    assert "cbs" in only.skipped[3].zh and "cbs" in only.skipped[3].en
    excluded = plan([cp(4, products=frozenset({"cvm"}))], [ln(product="cvm")])
    assert excluded.skipped[4].code == "product" and "排除" in excluded.skipped[4].zh


@pytest.mark.spec("CPN-3")
def test_pay_mode_order_kind_and_duration_are_enforced_with_reasons():
    lines = [ln(order_kind="renew", months=1)]
    p = plan([cp(1, pay_mode=rules.POSTPAID), cp(2, order_kinds=frozenset({"new"})),
              cp(3, min_months=12, max_months=36), cp(4)], lines)
    assert {cid: r.code for cid, r in p.skipped.items()} == {
        1: "pay_mode", 2: "order_kind", 3: "months"}
    assert "续费" in p.skipped[2].zh and "renew" in p.skipped[2].en
    assert "12–36 个月" in p.skipped[3].zh and "1 months" in p.skipped[3].en
    assert p.paid_by(4) == 10_000
    upgrade = plan([cp(5, min_months=1)], [ln(order_kind="upgrade", months=None)])
    assert upgrade.skipped[5].code == "months" and "无购买时长" in upgrade.skipped[5].zh
    post = plan([cp(6), cp(7, pay_mode=rules.POSTPAID)],
                [rules.Line("settle:x", "cvm", 500)], mode=rules.POSTPAID)
    assert post.skipped[6].code == "pay_mode" and post.paid_by(7) == 500


@pytest.mark.spec("CPN-3")
def test_state_and_validity_window():
    cs = [cp(1, state=rules.USED), cp(2, remaining=0), cp(3, state=rules.EXPIRED),
          cp(4, valid_until=NOW), cp(5, valid_from=NOW + DAY), cp(6, valid_until=NOW + 1e-3 * DAY)]
    p = plan(cs, [ln()])
    assert {cid: r.code for cid, r in p.skipped.items()} == {
        1: "used", 2: "used", 3: "expired", 4: "expired", 5: "not_yet_valid"}
    assert p.paid_by(6) == 10_000  # still inside its window: the end is exclusive


@pytest.mark.spec("CPN-3", "ARR-5")
def test_why_a_coupon_is_unusable_now_is_the_reason_a_payment_gives():
    cs = [cp(1, state=rules.USED), cp(2, remaining=0), cp(3, state=rules.EXPIRED),
          cp(4, valid_until=NOW), cp(5, valid_from=NOW + DAY), cp(6),
          cp(7, pay_mode=rules.POSTPAID)]
    shown = {c.id: rules.unusable_reason(c, NOW, in_arrears=False) for c in cs}
    paid = plan(cs, [ln()])
    assert {cid: r for cid, r in shown.items() if r} == {
        cid: r for cid, r in paid.skipped.items() if cid != 7}
    assert shown[6] is None and shown[7] is None  # a postpaid coupon is usable: in settlement
    owing = rules.unusable_reason(cp(6), NOW, in_arrears=True)
    assert owing == plan([cp(6)], [ln()], in_arrears=True).skipped[6]
    assert owing.code == "account_in_arrears"


@pytest.mark.spec("CPN-3", "CPN-6")
def test_threshold_counts_every_order_of_a_merged_payment():
    coupon = cp(1, remaining=2000, threshold=10_000)
    alone = plan([coupon], [ln("order:1", amount=6000)])
    assert alone.total == 0 and alone.skipped[1].code == "threshold"
    assert "60.00" in alone.skipped[1].zh and "100.00" in alone.skipped[1].en
    merged = plan([coupon], [ln("order:1", amount=6000), ln("order:2", amount=5000)])
    assert merged.total == 2000
    # only applicable products count towards the threshold
    only = cp(2, remaining=2000, threshold=10_000, product_scope=rules.ONLY,
              products=frozenset({"cvm"}))
    mixed = plan([only], [ln("order:1", "cvm", 6000), ln("order:2", "cdb", 5000)])
    assert mixed.skipped[2].code == "threshold"


@pytest.mark.spec("CPN-3")
def test_single_use_loses_the_rest_only_when_selected_multi_use_keeps_it():
    single, multi = cp(1, remaining=10_000, single_use=True), cp(2, remaining=10_000,
                                                                 valid_until=NOW + 60 * DAY)
    auto = plan([single, multi], [ln(amount=4000)])
    assert auto.paid_by(2) == 4000 and auto.forfeited == {}
    assert auto.skipped[1].code == "single_use_rest" and "60.00" in auto.skipped[1].zh
    chosen = plan([single, multi], [ln(amount=4000)], selected={1, 2})
    assert chosen.paid_by(1) == 4000 and chosen.forfeited == {1: 6000}
    assert chosen.skipped[2].code == "nothing_left"
    whole = plan([single, multi], [ln("a", amount=7000), ln("b", amount=5000)])
    assert whole.paid_by(1) == 10_000 and whole.paid_by(2) == 2000 and not whole.forfeited
    assert plan([multi], [ln(amount=4000)]).forfeited == {}


@pytest.mark.spec("CPN-4", "ARR-5")
def test_never_arrears_nor_a_postpaid_freeze_nor_a_promo_order_that_refuses():
    lines = [ln("a", purpose=rules.ARREARS), ln("f", purpose=rules.FREEZE),
             ln("p", refuses_coupons=True)]
    p = plan([cp(1, remaining=99_999)], lines)
    assert p.total == 0 and p.skipped[1].code in {"arrears", "freeze", "promo"}
    for line, code in zip(lines, ("arrears", "freeze", "promo")):
        assert plan([cp(1)], [line]).skipped[1].code == code
    ok = plan([cp(1, remaining=99_999)], [*lines, ln("n", amount=700)])
    assert ok.line_paid == (0, 0, 0, 700)
    arrears = plan([cp(1), cp(2, kind=rules.CASH)], [ln()], in_arrears=True)
    assert arrears.total == 0
    assert {r.code for r in arrears.skipped.values()} == {"account_in_arrears"}
    assert "欠费" in arrears.skipped[1].zh and "arrears" in arrears.skipped[1].en


@pytest.mark.spec("CPN-5")
def test_cash_coupons_before_vouchers_all_else_equal_and_sooner_expiry_first():
    p = plan([cp(1, rules.VOUCHER, 5000), cp(2, rules.CASH, 5000)], [ln(amount=6000)])
    assert p.uses == (rules.Use(1, 0, 1000), rules.Use(2, 0, 5000))
    assert [u.coupon_id for u in sorted(p.uses, key=lambda u: -u.amount)] == [2, 1]
    sooner = plan([cp(1, rules.CASH, 5000), cp(2, rules.VOUCHER, 5000,
                                               valid_until=NOW + 2 * DAY)], [ln(amount=6000)])
    assert sooner.paid_by(2) == 5000 and sooner.paid_by(1) == 1000


@pytest.mark.spec("CPN-5")
def test_discount_coupons_never_combine_with_vouchers_or_cash_the_bigger_saving_wins():
    lines = [ln(amount=100_000)]
    discount = cp(1, rules.DISCOUNT, None, discount_bp=8000, single_use=True)  # 200.00 off
    small = [cp(2, rules.VOUCHER, 5000), cp(3, rules.CASH, 5000)]  # 100.00 in all
    p = plan([discount, *small], lines)
    assert p.total == 20_000 and p.coupon_ids() == [1]
    assert {p.skipped[2].code, p.skipped[3].code} == {"stacking"}
    assert "折扣券" in p.skipped[2].zh and "discount coupon is used" in p.skipped[2].en
    big = [cp(2, rules.VOUCHER, 15_000), cp(3, rules.CASH, 5000)]  # 200.00: a tie
    p = plan([discount, *big], lines)
    assert p.coupon_ids() == [2, 3] and p.skipped[1].code == "stacking"


@pytest.mark.spec("CPN-5")
def test_count_limits_are_independent_per_kind():
    cs = [cp(1, rules.VOUCHER, 100), cp(2, rules.VOUCHER, 100), cp(3, rules.CASH, 100),
          cp(4, rules.CASH, 100)]
    p = plan(cs, [ln(amount=10_000)], limits=rules.CountLimits(voucher=1, cash=1))
    assert p.coupon_ids() == [1, 3] and p.total == 200
    assert p.skipped[2].code == p.skipped[4].code == "count_limit"
    assert "代金券" in p.skipped[2].zh and "现金券" in p.skipped[4].zh
    more = plan(cs, [ln(amount=10_000)], limits=rules.CountLimits(voucher=2, cash=0))
    assert more.coupon_ids() == [1, 2]


@pytest.mark.spec("CPN-1")
def test_discount_coupon_half_up_cap_and_proportional_split():
    assert rules.discount_amount(12_345, 8000) == 2469
    assert rules.discount_amount(10, 9500) == 1  # 0.5 fen rounds half-up
    assert rules.discount_amount(9, 9500) == 0  # 0.45 fen rounds down
    capped = cp(1, rules.DISCOUNT, 1000, discount_bp=5000, max_discount=1000)
    p = plan([capped], [ln("a", amount=3000), ln("b", amount=1000)])
    assert p.line_paid == (750, 250)
    p = plan([cp(2, rules.DISCOUNT, None, discount_bp=9000, single_use=True)],
             [ln("a", amount=3333), ln("b", amount=3334)])
    assert p.total == rules.discount_amount(6667, 9000) == 667 and sum(p.line_paid) == 667
    tiny = plan([cp(3, rules.DISCOUNT, None, discount_bp=9999, single_use=True)], [ln(amount=1)])
    assert tiny.total == 0 and tiny.skipped[3].code == "zero_amount"


@pytest.mark.spec("CPN-3")
def test_a_coupon_pays_the_line_fewer_coupons_can_pay_first():
    wide = cp(1, remaining=10_000)
    narrow = cp(2, remaining=10_000, product_scope=rules.ONLY, products=frozenset({"cvm"}),
                valid_until=NOW + 60 * DAY)
    p = plan([wide, narrow], [ln("a", "cvm", 10_000), ln("b", "cdb", 10_000)])
    assert p.line_paid == (10_000, 10_000)
    assert p.uses == (rules.Use(2, 0, 10_000), rules.Use(1, 1, 10_000))


def test_selected_coupons_only():
    p = plan([cp(1), cp(2)], [ln()], selected={2})
    assert p.coupon_ids() == [2] and p.skipped[1].code == "not_selected"


def test_bad_lines_are_refused_naming_the_field():
    for lines, field in (([], "lines"), ([ln(amount=0)], "lines[0].amount"),
                         ([ln(), ln(amount=1.5)], "lines[1].amount"),
                         ([ln(order_kind=None)], "lines[0].order_kind"),
                         ([ln(months=0)], "lines[0].months"),
                         ([ln(product="bad code")], "lines[0].product_code"),
                         ([ln(purpose="tip")], "lines[0].purpose"),
                         ([ln(ref="")], "lines[0].reference")):
        with pytest.raises(InvalidInput) as err:
            plan([cp(1)], lines)
        assert err.value.field == field and err.value.message_zh and err.value.message_en
    with pytest.raises(InvalidInput) as err:
        rules.plan([], [ln()], mode="monthly", now=NOW)
    assert err.value.field == "mode"


def terms(**kw) -> rules.Terms:
    base = {"kind": rules.VOUCHER, "pay_mode": rules.PREPAID, "face_amount": 5000,
            "valid_days": 30}
    base.update(kw)
    return rules.Terms(**base)


@pytest.mark.spec("CPN-1", "CPN-3")
def test_terms_are_validated_naming_the_field():
    cases = [
        ({"kind": "gift"}, "kind"), ({"pay_mode": "monthly"}, "pay_mode"),
        ({"face_amount": 0}, "face_amount"), ({"face_amount": None}, "face_amount"),
        ({"discount_bp": 8000}, "discount_bp"),
        ({"kind": rules.DISCOUNT, "face_amount": None, "discount_bp": 10_000}, "discount_bp"),
        ({"kind": rules.DISCOUNT, "discount_bp": 8000}, "face_amount"),
        ({"kind": rules.DISCOUNT, "face_amount": None, "discount_bp": 8000}, "single_use"),
        ({"product_scope": rules.ONLY}, "products"), ({"products": ("a b",)}, "products"),
        ({"product_scope": "some"}, "product_scope"), ({"order_kinds": ("refund",)}, "order_kinds"),
        ({"min_months": 12, "max_months": 6}, "max_months"), ({"min_months": 0}, "min_months"),
        ({"pay_mode": rules.POSTPAID, "min_months": 1, "order_kinds": ()}, "min_months"),
        ({"threshold": -1}, "threshold"), ({"valid_days": None}, "valid_until"),
        ({"valid_until": NOW + DAY}, "valid_until"), ({"valid_days": 0}, "valid_days"),
        ({"valid_days": None, "valid_from": NOW, "valid_until": NOW}, "valid_until"),
        ({"valid_days": None, "valid_until": datetime(2026, 4, 1)}, "valid_until"),
    ]
    for change, field in cases:
        with pytest.raises(InvalidInput) as err:
            rules.check_terms(terms(**change))
        assert err.value.field == field, (change, err.value.field)
    ok = rules.check_terms(terms(products=("cvm", "cdb", "cvm"), order_kinds=("renew", "new")))
    assert ok.products == ("cdb", "cvm") and ok.order_kinds == ("new", "renew")
    assert rules.Terms.from_json(json.loads(json.dumps(ok.to_json()))) == ok


# ---------------------------------------------------------------- rules: properties

PRODUCTS = ("cvm", "cdb", "cos")


@st.composite
def coupons_st(draw, cid: int) -> rules.Coupon:
    kind = draw(st.sampled_from(rules.KINDS))
    single = draw(st.booleans())
    cap = draw(st.one_of(st.none(), st.integers(1, 50_000)))
    if kind == rules.DISCOUNT:
        remaining = cap if (cap is not None or not single) else None
        if remaining is None:
            single = True
        extra = {"discount_bp": draw(st.integers(1, 9999)), "max_discount": cap}
    else:
        remaining, extra = draw(st.integers(0, 50_000)), {}
    low = draw(st.one_of(st.none(), st.integers(1, 12)))
    return rules.Coupon(
        id=cid, kind=kind, pay_mode=draw(st.sampled_from(rules.PAY_MODES)), remaining=remaining,
        valid_from=NOW - draw(st.integers(-2, 5)) * DAY,
        valid_until=NOW + draw(st.integers(-2, 30)) * DAY,
        state=draw(st.sampled_from((rules.UNUSED, rules.UNUSED, rules.USED, rules.EXPIRED))),
        product_scope=draw(st.sampled_from((rules.ONLY, rules.ALL_BUT))),
        products=frozenset(draw(st.sets(st.sampled_from(PRODUCTS), min_size=1))),
        order_kinds=frozenset(draw(st.sets(st.sampled_from(rules.PREPAID_ORDER_KINDS),
                                           min_size=1))),
        min_months=low, max_months=None if low is None else low + draw(st.integers(0, 24)),
        threshold=draw(st.sampled_from((0, 0, 1000, 20_000))), single_use=single, **extra)


@st.composite
def payments_st(draw):
    n = draw(st.integers(0, 8))
    cs = [draw(coupons_st(i + 1)) for i in range(n)]
    lines = [rules.Line(
        f"order:{i}", draw(st.sampled_from(PRODUCTS)), draw(st.integers(1, 30_000)),
        order_kind=draw(st.sampled_from(("new", "renew", "upgrade"))),
        months=draw(st.one_of(st.none(), st.integers(1, 36))),
        refuses_coupons=draw(st.booleans()) and draw(st.booleans()),
        purpose=draw(st.sampled_from((rules.CHARGE, rules.CHARGE, rules.ARREARS, rules.FREEZE))))
        for i in range(draw(st.integers(1, 5)))]
    mode = draw(st.sampled_from(rules.PAY_MODES))
    limits = rules.CountLimits(*(draw(st.one_of(st.none(), st.integers(0, 3))) for _ in range(3)))
    selected = draw(st.one_of(st.none(), st.sets(st.integers(1, n + 1))))
    return cs, lines, mode, limits, draw(st.booleans()) and draw(st.booleans()), selected


def _applies(c: rules.Coupon, line: rules.Line, mode: str) -> bool:
    if line.purpose != rules.CHARGE or line.refuses_coupons or not c.covers(line.product_code):
        return False
    if mode == rules.POSTPAID:
        return True
    if line.order_kind not in c.order_kinds:
        return False
    if c.min_months is None and c.max_months is None:
        return True
    return line.months is not None and c.min_months <= line.months <= c.max_months


@pytest.mark.slow
@pytest.mark.spec("CPN-3", "CPN-4", "CPN-5", "ARR-5")
@settings(max_examples=300, deadline=None)
@given(payments_st())
def test_plan_properties(payment):
    cs, lines, mode, limits, in_arrears, selected = payment
    p = rules.plan(cs, lines, mode=mode, now=NOW, in_arrears=in_arrears, limits=limits,
                   selected=selected)
    by_id = {c.id: c for c in cs}
    # never over-pays a line; line totals agree with the uses
    for i, line in enumerate(lines):
        assert 0 <= p.line_paid[i] <= line.amount
        assert p.line_paid[i] == sum(u.amount for u in p.uses if u.line_index == i)
    used = set(p.coupon_ids())
    # every coupon either pays or has a reason, never both
    assert used | set(p.skipped) == set(by_id) and not used & set(p.skipped)
    for r in p.skipped.values():
        assert r.code and r.zh and r.en
    for cid in used:
        c, paid = by_id[cid], p.paid_by(cid)
        assert all(u.amount > 0 for u in p.uses)
        assert c.remaining is None or paid + p.forfeited.get(cid, 0) <= c.remaining
        assert c.state == rules.UNUSED and c.valid_from <= NOW < c.valid_until
        assert c.pay_mode == mode and not in_arrears
        assert selected is None or cid in selected
        assert all(_applies(c, lines[u.line_index], mode) for u in p.uses if u.coupon_id == cid)
        base = sum(line.amount for line in lines if _applies(c, line, mode))
        assert base >= c.threshold
        if c.kind == rules.DISCOUNT:
            assert paid <= rules.discount_amount(base, c.discount_bp)
            assert c.max_discount is None or paid <= c.max_discount
    kinds = [by_id[cid].kind for cid in used]
    # stacking: discount coupons never with vouchers or cash coupons
    assert not (rules.DISCOUNT in kinds and set(kinds) - {rules.DISCOUNT})
    for kind in rules.KINDS:
        assert limits.of(kind) is None or kinds.count(kind) <= limits.of(kind)
    for cid, lost in p.forfeited.items():
        assert by_id[cid].single_use and lost == by_id[cid].remaining - p.paid_by(cid) > 0
        # automatic choice never throws away part of a voucher or cash coupon
        assert selected is not None or by_id[cid].kind == rules.DISCOUNT
    # deterministic whatever the order the coupons come in
    shuffled = list(cs)
    random.Random(len(cs)).shuffle(shuffled)
    assert rules.plan(shuffled, lines, mode=mode, now=NOW, in_arrears=in_arrears,
                      limits=limits, selected=selected) == p


# ---------------------------------------------------------------- service helpers

def grant(rt, uin, key=None, campaign="spring-2026", **kw) -> int:
    with rt.engine.begin() as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, terms(**kw), campaign=campaign, key=key)


def coupon_row(rt, coupon_id):
    with rt.engine.connect() as conn:
        return conn.execute(select(coupons_table).where(coupons_table.c.id == coupon_id)).one()


def platform(rt, purpose, entity="default") -> int:
    with rt.engine.begin() as conn:
        return ledger.balance_of(conn, funds.platform_account(conn, rt.clock, purpose, entity))


def assert_traced(rt):
    """Every coupon's value is remaining + forfeited + pending + confirmed - returned."""
    with rt.engine.connect() as conn:
        for row in conn.execute(select(coupons_table)).all():
            sums = dict(conn.execute(select(coupon_uses.c.state, func.sum(coupon_uses.c.amount))
                                     .where(coupon_uses.c.coupon_id == row.id)
                                     .group_by(coupon_uses.c.state)).all())
            out = sum(int(sums.get(s) or 0) for s in ("pending", "confirmed")) \
                - int(sums.get("returned") or 0)
            value = row.face_amount if row.kind != rules.DISCOUNT else row.max_discount
            if value is not None:
                assert row.remaining + row.forfeited + out == value, dict(row._mapping)
        assert reconcile(conn) == []


def pay(rt, uin, lines, key, mode=rules.PREPAID, **kw):
    with rt.engine.begin() as conn:
        allocation = coupons.allocate(conn, rt.clock, uin, lines, mode, **kw)
        return allocation, coupons.reserve(conn, rt.clock, uin, allocation, key=key)


def txn_count(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ledger_transactions)).scalar()


# ---------------------------------------------------------------- service: operators

@pytest.mark.spec("CPN-1", "CPN-2")
def test_operator_grants_audited_idempotent_and_customer_lists(rt):
    uin = new_account(rt)
    first = grant(rt, uin, key="g1")
    assert grant(rt, uin, key="g1") == first  # a repeat grants nothing more
    with pytest.raises(IdempotencyConflict):
        grant(rt, uin, key="g1", face_amount=9999)
    grant(rt, uin, kind=rules.CASH, face_amount=2000, pay_mode=rules.POSTPAID, order_kinds=())
    grant(rt, uin, kind=rules.DISCOUNT, face_amount=None, discount_bp=8500, max_discount=3000,
          product_scope=rules.ONLY, products=("cdb",))
    with rt.engine.connect() as conn:
        page = coupons.list_coupons(conn, rt.clock, SYSTEM, uin)
        audit = list_audit(conn, OPS, uin)
    assert page["total"] == 3 and [c["kind"] for c in page["items"]] == ["discount", "cash",
                                                                         "voucher"]
    voucher = page["items"][2]
    assert voucher["remaining"] == voucher["face_amount"] == 5000 and voucher["state"] == "unused"
    assert voucher["source"] == "spring-2026" and voucher["source_kind"] == "campaign"
    assert voucher["valid_until"] - voucher["valid_from"] == 30 * DAY
    assert [a["action"] for a in audit].count("grant_coupon") == 3
    assert page["items"][0]["remaining"] == 3000  # a capped discount coupon: its cap


def test_bad_grants_name_the_field_and_write_nothing(rt):
    uin = new_account(rt)
    customer = Actor(kind="user", name="acme", uin=uin, role="owner")
    with rt.engine.begin() as conn:
        with pytest.raises(PermissionDenied):
            coupons.grant(conn, rt.clock, customer, uin, terms(), campaign="x")
        with pytest.raises(NotFound) as err:
            coupons.grant(conn, rt.clock, OPS, 999, terms(), campaign="x")
        assert err.value.field == "uin"
        with pytest.raises(InvalidInput) as err:
            coupons.grant(conn, rt.clock, OPS, uin, terms(), campaign=" ")
        assert err.value.field == "campaign"
        with pytest.raises(InvalidInput) as err:
            coupons.grant(conn, rt.clock, OPS, uin, terms(valid_days=None,
                                                          valid_until=NOW - DAY),
                          campaign="x")
        assert err.value.field == "valid_until"
    with rt.engine.connect() as conn:
        assert coupons.list_coupons(conn, rt.clock, SYSTEM, uin)["total"] == 0


@pytest.mark.spec("CPN-2")
def test_codes_redeem_once_with_clear_errors(rt):
    uin, other = new_account(rt), new_account(rt, "other-co")
    with rt.engine.begin() as conn:
        wallet = coupons.create_codes(conn, rt.clock, OPS, terms(), campaign="card wallet",
                                      count=3, key="b1")
        printed = coupons.create_codes(conn, rt.clock, OPS, terms(face_amount=800),
                                       campaign="expo flyer", count=2, fmt="printed",
                                       redeem_until=NOW + DAY)
        again = coupons.create_codes(conn, rt.clock, OPS, terms(), campaign="card wallet",
                                     count=3, key="b1")
    assert again.batch_id == wallet.batch_id and again.codes == () and not again.created
    assert all(len(c) == 8 and c.isalpha() and c.isupper() for c in wallet.codes)
    assert all(len(c) == 19 and c.count("-") == 3 for c in printed.codes)
    with rt.engine.connect() as conn:  # only hashes are stored
        stored = set(conn.execute(select(coupon_codes.c.code_hash)).scalars())
    assert not stored & set(wallet.codes) and len(stored) == 5
    with rt.engine.connect() as conn:
        hints = set(conn.execute(select(coupon_codes.c.hint)).scalars())
    assert {c[-4:] for c in wallet.codes} <= hints
    owner = Actor(kind="user", name="acme", uin=uin, role="owner")
    with rt.engine.begin() as conn:
        first = coupons.redeem(conn, rt.clock, owner, uin, wallet.codes[0].lower())
        second = coupons.redeem(conn, rt.clock, owner, uin, printed.codes[0].replace("-", " "))
    row = coupon_row(rt, first)
    assert (row.uin, row.source_kind, row.source, row.remaining) == (uin, "code", "card wallet",
                                                                     5000)
    assert coupon_row(rt, second).remaining == 800
    failures = [(wallet.codes[0], Conflict), ("ABCDEFG", InvalidInput), ("ABCDEFG1", InvalidInput),
                ("ZZZZZZZZ", NotFound), (12345678, InvalidInput)]
    for code, error in failures:
        with rt.engine.begin() as conn, pytest.raises(error) as err:
            coupons.redeem(conn, rt.clock, owner, uin, code)
        assert err.value.field == "code" and err.value.message_zh and err.value.message_en
    intruder = Actor(kind="user", name="other-co", uin=other, role="owner")
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        coupons.redeem(conn, rt.clock, intruder, uin, wallet.codes[1])
    rt.clock.advance(days=2)
    with rt.engine.begin() as conn, pytest.raises(Conflict) as err:
        coupons.redeem(conn, rt.clock, owner, uin, printed.codes[1])
    assert err.value.field == "code" and "兑换期限" in err.value.message_zh
    with rt.engine.connect() as conn:
        assert coupons.list_coupons(conn, rt.clock, SYSTEM, uin)["total"] == 2


@pytest.mark.spec("CPN-3", "ACC-2")
def test_list_filters_state_permissions_and_expiry_job(rt):
    from feecenter.jobs.loader import load_all

    uin = new_account(rt)
    soon = grant(rt, uin, valid_days=1)
    later = grant(rt, uin, kind=rules.CASH, face_amount=300, pay_mode=rules.POSTPAID,
                  order_kinds=(), product_scope=rules.ONLY, products=("cos",))
    with rt.engine.begin() as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "viewer", "readonly")
        accounts.add_user(conn, rt.clock, OPS, uin, "money", "finance")
    rt.clock.advance(days=2)

    def ids(**q):
        with rt.engine.connect() as conn:
            return [c["id"] for c in coupons.list_coupons(conn, rt.clock, finance, uin,
                                                          coupons.CouponQuery(**q))["items"]]

    with rt.engine.connect() as conn:
        finance = accounts.user_actor(conn, accounts.find_user(conn, uin, "money")["id"])
        viewer = accounts.user_actor(conn, accounts.find_user(conn, uin, "viewer")["id"])
    assert ids(state="expired") == [soon] and ids(state="unused") == [later]
    assert ids(kind="cash") == [later] and ids(pay_mode="prepaid") == [soon]
    assert ids(product="cos") == [later, soon] and ids(product="cvm") == [soon]
    assert ids(limit=1, offset=1) == [soon]
    with rt.engine.connect() as conn:
        with pytest.raises(PermissionDenied):
            coupons.list_coupons(conn, rt.clock, viewer, uin)
        with pytest.raises(InvalidInput) as err:
            coupons.list_coupons(conn, rt.clock, finance, uin, coupons.CouponQuery(state="old"))
        assert err.value.field == "state"
    assert "coupons.expire" in load_all()
    job = load_all().get("coupons.expire")
    assert job.func(rt.engine, rt.clock, None) == {"expired": 1}
    assert job.func(rt.engine, rt.clock, None) == {"expired": 0}
    assert coupon_row(rt, soon).state == "expired" and coupon_row(rt, later).state == "unused"


# ---------------------------------------------------------------- service: payment

@pytest.mark.spec("ORD-3", "CPN-2", "BAL-6")
def test_prepaid_reserve_confirm_moves_coupon_funding_to_revenue(rt):
    uin = new_account(rt)
    voucher = grant(rt, uin, face_amount=5000)
    cash = grant(rt, uin, kind=rules.CASH, face_amount=1000)
    lines = [ln("order:1", "cvm", 4000, entity="cn-cloud"),
             ln("order:2", "cdb", 3000, entity="cn-software")]
    allocation, reservation = pay(rt, uin, lines, "pay-1")
    assert reservation.created and reservation.line_paid == (4000, 2000) == allocation.line_paid
    assert coupon_row(rt, cash).state == "used" and coupon_row(rt, voucher).remaining == 0
    assert platform(rt, "revenue", "cn-cloud") == 0  # nothing in the ledger while pending
    _, replay = pay(rt, uin, lines, "pay-1")
    assert not replay.created and replay.uses == reservation.uses
    with pytest.raises(IdempotencyConflict):
        pay(rt, uin, [ln("order:1", "cvm", 4100)], "pay-1")
    before = txn_count(rt)
    with rt.engine.begin() as conn:
        one = coupons.confirm(conn, rt.clock, uin, "order:1")
        again = coupons.confirm(conn, rt.clock, uin, "order:1")
        none = coupons.confirm(conn, rt.clock, uin, "order:9")
    assert (one.amount, one.created, len(one.txn_ids)) == (4000, True, 1)
    assert (again.amount, again.created, again.txn_ids) == (4000, False, one.txn_ids)
    assert (none.amount, none.created) == (0, False)
    assert txn_count(rt) == before + 1
    assert platform(rt, "revenue", "cn-cloud") == 4000
    assert platform(rt, "coupon_funding", "cn-cloud") == -4000
    assert platform(rt, "revenue", "cn-software") == 0
    with rt.engine.begin() as conn:
        assert coupons.confirm(conn, rt.clock, uin, "order:2").amount == 2000
    assert platform(rt, "coupon_funding", "cn-software") == -2000
    with rt.engine.connect() as conn:
        assert funds.balance_view(conn, rt.clock, SYSTEM, uin).cash == 0  # customer money untouched
        detail = coupons.get_coupon(conn, rt.clock, SYSTEM, uin, voucher)
    assert detail["used"] == 5000 and detail["pending"] == 0
    assert {(u["reference"], u["amount"], u["state"]) for u in detail["uses"]} == {
        ("order:1", 3000, "confirmed"), ("order:2", 2000, "confirmed")}
    assert_traced(rt)


@pytest.mark.spec("CPN-3", "FRZ-3")
def test_release_restores_multi_use_and_single_use_only_when_wholly_unused(rt):
    uin = new_account(rt)
    multi = grant(rt, uin, face_amount=5000, valid_until=NOW + 10 * DAY, valid_days=None)
    single = grant(rt, uin, kind=rules.CASH, face_amount=10_000, single_use=True)
    lines = [ln("order:1", amount=3000), ln("order:2", amount=4000)]
    pay(rt, uin, lines, "pay-1", selected=[single])
    row = coupon_row(rt, single)
    assert (row.remaining, row.forfeited, row.state) == (0, 3000, "used")
    with rt.engine.begin() as conn:
        assert coupons.release(conn, rt.clock, uin, "order:1") == 3000
    row = coupon_row(rt, single)  # order:2 still pending: the single use stands
    assert (row.remaining, row.forfeited, row.state) == (0, 6000, "used")
    with rt.engine.begin() as conn:
        assert coupons.release(conn, rt.clock, uin, "order:2") == 4000
        assert coupons.release(conn, rt.clock, uin, "order:2") == 0
    row = coupon_row(rt, single)
    assert (row.remaining, row.forfeited, row.state) == (10_000, 0, "unused")
    pay(rt, uin, [ln("order:3", amount=2000)], "pay-2", selected=[multi])
    assert coupon_row(rt, multi).remaining == 3000
    rt.clock.advance(days=11)  # expired meanwhile: the amount comes back, the coupon stays dead
    with rt.engine.begin() as conn:
        assert coupons.release(conn, rt.clock, uin, "order:3") == 2000
    row = coupon_row(rt, multi)
    assert (row.remaining, row.state) == (5000, "expired")
    assert_traced(rt)


@pytest.mark.spec("CPN-3")
def test_a_stale_allocation_is_refused_and_writes_nothing(rt):
    uin = new_account(rt)
    grant(rt, uin, face_amount=5000)
    with rt.engine.begin() as conn:
        stale = coupons.allocate(conn, rt.clock, uin, [ln("order:1", amount=4000)],
                                 rules.PREPAID)
    pay(rt, uin, [ln("order:2", amount=3000)], "pay-2")
    with rt.engine.begin() as conn, pytest.raises(Conflict) as err:
        coupons.reserve(conn, rt.clock, uin, stale, key="pay-1")
    assert err.value.field == "coupon_ids"
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(coupon_uses)).scalar() == 1
    with rt.engine.begin() as conn:
        with pytest.raises(NotFound) as err:
            coupons.allocate(conn, rt.clock, uin, [ln()], rules.PREPAID, selected=[424242])
        assert err.value.field == "coupon_ids"
        with pytest.raises(InvalidInput) as err:
            coupons.allocate(conn, rt.clock, uin, [ln()], rules.PREPAID, selected=["1"])
        assert err.value.field == "coupon_ids"
        owner = Actor(kind="user", name="acme", uin=uin, role="owner")
        assert coupons.preview(conn, rt.clock, owner, uin, [ln()], rules.PREPAID).total == 2000
        with pytest.raises(PermissionDenied):
            coupons.preview(conn, rt.clock, Actor(kind="user", name="x", uin=uin,
                                                  role="readonly"), uin, [ln()], rules.PREPAID)
        with pytest.raises(InvalidInput):
            coupons.reserve(conn, rt.clock, uin + 1, stale, key="k")
    assert_traced(rt)


@pytest.mark.spec("SET-6", "ARR-5", "CPN-4", "BAL-6")
def test_postpaid_use_now_and_no_coupons_in_arrears(rt):
    uin = new_account(rt)
    post = grant(rt, uin, kind=rules.CASH, face_amount=1500, pay_mode=rules.POSTPAID,
                 order_kinds=())
    grant(rt, uin, face_amount=9999)  # prepaid: not for settlement
    lines = [rules.Line("settle:h:1:cvm", "cvm", 1000), rules.Line("settle:h:1:cdb", "cdb", 800),
             rules.Line("freeze:r1", "cvm", 5000, purpose=rules.FREEZE)]
    with rt.engine.begin() as conn:
        used = coupons.use_now(conn, rt.clock, uin, lines, key="settle:h:1")
    assert used.line_paid == (1000, 500, 0)
    with rt.engine.connect() as conn:
        states = set(conn.execute(select(coupon_uses.c.state)).scalars())
    assert states == {"confirmed"} and platform(rt, "revenue") == 1500
    assert coupon_row(rt, post).state == "used"
    # go into arrears: postpaid settlement overdraws
    post2 = grant(rt, uin, kind=rules.CASH, face_amount=1500, pay_mode=rules.POSTPAID,
                  order_kinds=())
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 700, key="s2", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
        allocation = coupons.allocate(conn, rt.clock, uin, [rules.Line("s3", "cvm", 500)],
                                      rules.POSTPAID)
        assert allocation.total == 0
        assert allocation.plan.skipped[post2].code == "account_in_arrears"
        assert allocation.to_dict()["skipped"][post2]["code"] == "account_in_arrears"
        with pytest.raises(AccountInArrears):
            funds.require_operable(conn, rt.clock, uin)
    assert_traced(rt)


@pytest.mark.spec("ORD-4", "BAL-6")
def test_refund_returns_cash_coupons_not_vouchers(rt):
    uin = new_account(rt)
    cash = grant(rt, uin, kind=rules.CASH, face_amount=1000)
    voucher = grant(rt, uin, face_amount=2000)
    pay(rt, uin, [ln("order:1", amount=2500)], "pay-1")
    with rt.engine.begin() as conn:
        coupons.confirm(conn, rt.clock, uin, "order:1")
    assert platform(rt, "revenue") == 2500
    with rt.engine.begin() as conn:
        part = coupons.refund(conn, rt.clock, uin, "order:1", key="r1", amount=400)
        replay = coupons.refund(conn, rt.clock, uin, "order:1", key="r1", amount=400)
        rest = coupons.refund(conn, rt.clock, uin, "order:1", key="r2")
        nothing = coupons.refund(conn, rt.clock, uin, "order:1", key="r3")
    assert (part.amount, part.created) == (400, True)
    assert (replay.amount, replay.created, replay.txn_ids) == (400, False, part.txn_ids)
    assert (rest.amount, nothing.amount, nothing.created) == (600, 0, False)
    with rt.engine.begin() as conn, pytest.raises(IdempotencyConflict):
        coupons.refund(conn, rt.clock, uin, "order:2", key="r1")
    with rt.engine.begin() as conn:  # a refund key may equal a payment key: separate spaces
        assert coupons.refund(conn, rt.clock, uin, "order:1", key="pay-1").amount == 0
    row = coupon_row(rt, cash)
    assert (row.remaining, row.state) == (1000, "unused")
    assert coupon_row(rt, voucher).remaining == 500
    assert platform(rt, "revenue") == 1500 and platform(rt, "coupon_funding") == -1500
    assert_traced(rt)


# ---------------------------------------------------------------- REST API

def _client(rt, address, *, uin=None):
    with rt.engine.begin() as conn:
        if uin is None:
            _, key = auth.create_operator(conn, rt.clock, OPS, f"ops-{time.time_ns()}")
        else:
            key = auth.create_api_key(conn, rt.clock, OPS, uin, None)
    return FeeCenterClient(f"http://{address}", key.secret_id, key.secret_key)


@pytest.mark.spec("CPN-1", "CPN-2", "ACC-2")
def test_rest_grant_codes_redeem_and_list(live_server):
    rt, address = live_server
    ops = _client(rt, address)
    uin, other = new_account(rt, "rest-co"), new_account(rt, "rest-other")
    customer, outsider = _client(rt, address, uin=uin), _client(rt, address, uin=other)
    body = {"kind": "voucher", "pay_mode": "prepaid", "face_amount": "50.00", "valid_days": 30,
            "campaign": "新春活动", "products": ["cvm"], "product_scope": "only"}
    granted = ops.post(f"/api/v1/ops/accounts/{uin}/coupons", body, Idempotency_Key="g-1")
    assert granted["face_amount"] == granted["remaining"] == "50.00"
    assert granted["state"] == "unused" and len(granted["valid_until"]) == 19
    with pytest.raises(ApiError) as err:
        ops.post(f"/api/v1/ops/accounts/{uin}/coupons", {**body, "face_amount": "0.001"})
    assert err.value.status == 400 and err.value.body["error"]["field"] == "face_amount"
    with pytest.raises(ApiError) as err:
        ops.post(f"/api/v1/ops/accounts/{uin}/coupons", {**body, "kind": "gift"})
    assert err.value.body["error"]["field"] == "kind"
    batch = ops.post("/api/v1/ops/coupon-codes",
                     {"kind": "discount", "pay_mode": "postpaid", "discount_bp": 9000,
                      "max_discount": "20.00", "valid_days": 7, "campaign": "卡包", "count": 2})
    assert batch["created"] and len(batch["codes"]) == 2
    redeemed = customer.post(f"/api/v1/accounts/{uin}/coupons/redeem", {"code": batch["codes"][0]})
    assert redeemed["kind"] == "discount" and redeemed["max_discount"] == "20.00"
    with pytest.raises(ApiError) as err:
        customer.post(f"/api/v1/accounts/{uin}/coupons/redeem",
                      {"code": batch["codes"][0].lower()})  # another body: not a replay
    assert err.value.status == 409 and err.value.body["error"]["field"] == "code"
    with pytest.raises(ApiError) as err:
        customer.post(f"/api/v1/accounts/{uin}/coupons/redeem", {"code": "nope"})
    assert err.value.status == 400 and err.value.body["error"]["field"] == "code"
    page = customer.get(f"/api/v1/accounts/{uin}/coupons", "state=unused")
    assert page["total"] == 2 and {c["kind"] for c in page["items"]} == {"voucher", "discount"}
    assert customer.get(f"/api/v1/accounts/{uin}/coupons", "kind=voucher")["total"] == 1
    one = customer.get(f"/api/v1/accounts/{uin}/coupons/{granted['id']}")
    assert one["uses"] == [] and one["products"] == ["cvm"]
    for call in (lambda: outsider.get(f"/api/v1/accounts/{uin}/coupons"),
                 lambda: outsider.post(f"/api/v1/accounts/{uin}/coupons/redeem",
                                       {"code": batch["codes"][1]}),
                 lambda: customer.post(f"/api/v1/ops/accounts/{uin}/coupons", body),
                 lambda: customer.post("/api/v1/ops/coupon-codes", {**body, "count": 1})):
        with pytest.raises(ApiError) as err:
            call()
        assert err.value.status == 403


# ---------------------------------------------------------------- concurrency (PostgreSQL)

@pytest.mark.postgres_only
@pytest.mark.spec("CPN-3", "BAL-6")
def test_concurrent_payments_never_spend_a_coupon_twice(rt):
    import threading

    uin = new_account(rt)
    grant(rt, uin, face_amount=5000)
    grant(rt, uin, kind=rules.CASH, face_amount=2000)
    grant(rt, uin, face_amount=3000, single_use=True)
    errors: list[BaseException] = []
    paid: list[int] = []
    start = threading.Barrier(6)

    def worker(n: int) -> None:
        try:
            start.wait(timeout=30)
            for k in range(5):
                ref = f"order:{n}:{k}"
                with rt.engine.begin() as conn:
                    allocation = coupons.allocate(conn, rt.clock, uin, [ln(ref, amount=700)],
                                                  rules.PREPAID)
                    coupons.reserve(conn, rt.clock, uin, allocation, key=ref)
                    paid.append(coupons.confirm(conn, rt.clock, uin, ref).amount)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and len(paid) == 30
    # 30 payments of 7.00 ask 210.00; the coupons hold 100.00, less what a single use loses
    with rt.engine.connect() as conn:
        left = conn.execute(select(func.sum(coupons_table.c.remaining)
                                   + func.sum(coupons_table.c.forfeited))).scalar()
    assert sum(paid) + left == 10_000 and sum(paid) == platform(rt, "revenue")
    assert_traced(rt)
