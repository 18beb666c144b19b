"""Month over month (环比分析, BIL-8): November against December of one account
seeded through the real services — a prepaid CVM bought in November and renewed
in December onto the unified expiry day, a second one bought in December,
postpaid traffic grown at a raised list price, a disk whose discount ended, a
postpaid machine gone and a new one — each category to the fen, the parts
adding up to the difference; the decomposition as a pure function, with a
property test that its parts always sum to the difference; bad input refused
naming the field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.api.app import create_app
from feecenter.bills import month_over_month as mom
from feecenter.bills import month_over_month_rules as rules
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from feecenter.orders import service as orders
from feecenter.periods import HOURLY, period_containing
from feecenter.renewal import settings as renewal_settings
from feecenter.settlement import service as settlement
from tests.helpers import OPS, add_cash, api_key, buy, new_account, pay
from tests.rest_harness import Signed
from tests.test_console import logged_in, shop  # noqa: F401 - shop is a fixture
from tests.test_settlement import ingest, load, open_

PREVIOUS, MONTH = "2026-11", "2026-12"
# the sample catalog with cvm traffic raised from 0.80 to 1.00 a GB on 1 December
RAISED = "      - {item: traffic,      pay_mode: postpaid, regions: *regions3, from: 2026-12-01, price: \"1.00\"}\n"


def local(month, day, hour=10, minute=0):
    return datetime(2026, month, day, hour, minute, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


def _catalog_with_raised_traffic() -> str:
    text = catalog.sample_catalog_text()
    anchor = next(line for line in text.splitlines(keepends=True)
                  if "item: traffic" in line and "postpaid" in line)
    return text.replace(anchor, anchor + RAISED, 1)


def _settle_hour(rt, uin, start, rows):
    """Usage of the business hour starting at ``start``, settled five minutes after."""
    hour = period_containing(HOURLY, start)
    rt.clock.set(hour.end + timedelta(minutes=5))
    ingest(rt, [(event, uin, rid, item, qty, hour.start, hour.end)
                for event, rid, item, qty in rows])
    settlement.settle_period(rt.engine, rt.clock, "hour", hour)


@pytest.fixture
def months(rt):
    """November: cvm P1 bought for a month (178.00); postpaid traffic 10 GB × 0.80 on
    vm A (8.00), a disk B at 80% (10000 GB-hours × 0.00049 × 0.8 = 3.92), a machine D
    for an hour (0.50). December: P1 renewed for a month onto unified day 10
    (178.00 + 126.12 extra days), cvm P2 bought (178.00); A 25 GB × 1.00 (25.00),
    B without discount (4.90), a new machine C for an hour (0.50)."""
    rt.clock.set(local(11, 20, 9))
    load(rt, _catalog_with_raised_traffic())
    uin = new_account(rt, "month-over-month")
    add_cash(rt, uin, 10_000_00)
    with transaction(rt.engine) as conn:
        discount = catalog.set_discount(conn, rt.clock, OPS, uin, 8000, product="cbs",
                                        end=local(12, 1, 0))
    assert discount["discount_bp"] == 8000
    rt.clock.set(local(11, 20, 10))
    (bought,) = buy(rt, uin)
    pay(rt, uin, [bought])
    with rt.engine.connect() as conn:
        p1 = orders.get_order(conn, SYSTEM, uin, bought)["resource_id"]
    vm_a, disk_b, vm_d = open_(rt, uin, name="web"), open_(rt, uin, "cbs", "premium"), open_(rt, uin)
    _settle_hour(rt, uin, local(11, 21, 10), [("a1", vm_a, "traffic", "10"),
                                             ("b1", disk_b, "premium", "10000"),
                                             ("d1", vm_d, "S5.MEDIUM4", "1")])
    rt.clock.set(local(12, 15, 9))
    with transaction(rt.engine) as conn:
        renewal_settings.set_unified_day(conn, rt.clock, SYSTEM, uin, 10)
        renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, p1, 1)
    pay(rt, uin, [renewal])
    (second,) = buy(rt, uin)
    pay(rt, uin, [second])
    with rt.engine.connect() as conn:
        p2 = orders.get_order(conn, SYSTEM, uin, second)["resource_id"]
    vm_c = open_(rt, uin)
    _settle_hour(rt, uin, local(12, 16, 10), [("a2", vm_a, "traffic", "25"),
                                             ("b2", disk_b, "premium", "10000"),
                                             ("c2", vm_c, "S5.MEDIUM4", "1")])
    rt.clock.set(local(12, 20, 9))
    return {"uin": uin, "p1": p1, "p2": p2, "a": vm_a, "b": disk_b, "c": vm_c, "d": vm_d}


@pytest.mark.spec("BIL-8")
def test_a_repeated_renewal_splits_into_price_change_and_expired_discount(rt):
    """Renewed in November at 90% (178.00 × 0.9 = 160.20) and in December at the list
    price raised to 200.00 on 1 December: 39.80 more, 160.20 × 22/178 = 19.80 of
    price change at the old discount and 200.00 - 180.00 = 20.00 of expired
    discount; nothing left under renewals (the same unit-months)."""
    rt.clock.set(local(10, 20, 9))
    raised = ('      - {item: S5.MEDIUM4,   pay_mode: prepaid,  regions: *regions3, '
              'from: 2026-12-01, price: "200.00"}\n')
    text = catalog.sample_catalog_text()
    anchor = next(line for line in text.splitlines(keepends=True)
                  if "item: S5.MEDIUM4" in line and "prepaid" in line)
    load(rt, text.replace(anchor, anchor + raised, 1))
    uin = new_account(rt, "repeated-renewal")
    add_cash(rt, uin, 10_000_00)
    with transaction(rt.engine) as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 9000, product="cvm",
                             start=local(11, 1, 0), end=local(12, 1, 0))
    rt.clock.set(local(10, 20, 10))
    (bought,) = buy(rt, uin)
    pay(rt, uin, [bought])
    with rt.engine.connect() as conn:
        vm = orders.get_order(conn, SYSTEM, uin, bought)["resource_id"]
    amounts = []
    for month in (11, 12):
        rt.clock.set(local(month, 15))
        with transaction(rt.engine) as conn:
            renewal = orders.create_renewal(conn, rt.clock, SYSTEM, uin, vm, 1)
        amounts.append(pay(rt, uin, [renewal])["amount"])
    assert amounts == [160_20, 200_00]
    out = _explain(rt, uin)
    cats = _by_category(out)
    assert out["difference"] == 39_80
    assert _resources(cats["price_changes"]) == {vm: 19_80}
    assert _resources(cats["expired_discounts"]) == {vm: 20_00}
    assert cats["renewals"]["amount"] == 0 and _resources(cats["renewals"]) == {}
    assert "precision_difference" not in cats
    assert sum(c["amount"] for c in out["categories"]) == out["difference"]


def _explain(rt, uin, month=MONTH, previous=None, actor=SYSTEM):
    with rt.engine.connect() as conn:
        return mom.explain(conn, actor, uin, month, previous)


def _by_category(out) -> dict[str, dict]:
    return {c["category"]: c for c in out["categories"]}


def _resources(category) -> dict[str, int]:
    return {entry["resource_id"]: entry["amount"] for entry in category["resources"]}


@pytest.mark.spec("BIL-8")
def test_each_category_to_the_fen_and_the_parts_sum_to_the_difference(rt, months):
    m = months
    out = _explain(rt, m["uin"])
    assert (out["month"], out["previous"]) == (MONTH, PREVIOUS)  # default: the month before
    # November 178.00 + 8.00 + 3.92 + 0.50; December 304.12 + 178.00 + 25.00 + 4.90 + 0.50
    assert (out["previous_deducted"], out["current_deducted"]) == (190_42, 512_52)
    assert out["difference"] == 322_10
    assert out["discounted_cost_difference"] == 322_10 * 1_000_000  # whole fen everywhere
    cats = _by_category(out)
    assert [c["category"] for c in out["categories"]] == [
        "new_purchases", "renewals", "unified_expiry", "expired_discounts", "price_changes",
        "usage_growth", "upgrades", "refunds_downgrades"]  # no rounding, nothing unexplained
    # P2 bought in December, P1's purchase was November's, C new: 178.00 - 178.00 + 0.50
    assert _resources(cats["new_purchases"]) == {m["p1"]: -178_00, m["p2"]: 178_00, m["c"]: 50}
    assert cats["new_purchases"]["amount"] == 50
    # the renewal without its extra days, and the extra days 20 January-10 February:
    # 178.00 × 12/31 + 178.00 × 9/28 = 126.1175… → 126.12 (docs/renewal.md)
    assert _resources(cats["renewals"]) == {m["p1"]: 178_00}
    assert _resources(cats["unified_expiry"]) == {m["p1"]: 126_12}
    # the same 10000 GB-hours at 0.00049 without the 80%: 4.90 - 3.92
    assert _resources(cats["expired_discounts"]) == {m["b"]: 98}
    # 25 GB × (1.00 - 0.80) at the previous discount (none)
    assert _resources(cats["price_changes"]) == {m["a"]: 5_00}
    # 15 GB more × 0.80, and machine D gone (-0.50)
    assert _resources(cats["usage_growth"]) == {m["a"]: 12_00, m["d"]: -50}
    assert cats["usage_growth"]["amount"] == 11_50
    assert cats["upgrades"]["amount"] == cats["refunds_downgrades"]["amount"] == 0
    assert sum(c["amount"] for c in out["categories"]) == out["difference"]
    for category in out["categories"]:
        assert category["amount"] == sum(_resources(category).values())
        assert category["resource_count"] == len(category["resources"])
    assert cats["usage_growth"]["resources"][0]["resource_name"] == "web"  # the customer's name
    assert cats["renewals"]["resources"][0]["product_code"] == "cvm"


@pytest.mark.spec("BIL-8", "BIL-5")
def test_a_refund_and_the_reverse_comparison(rt, months):
    """A refund in December counts under refunds; December against November's
    comparison the other way round is refused (previous must be earlier), and
    November against October holds November's purchase as new."""
    m = months
    with transaction(rt.engine) as conn:
        refund = orders.refund_resource(conn, rt.clock, SYSTEM, m["uin"], m["p2"], key="r")
    with rt.engine.connect() as conn:
        refunded = orders.get_order(conn, SYSTEM, m["uin"], refund)["amount"]
    assert refunded < 0
    out = _explain(rt, m["uin"])
    cats = _by_category(out)
    assert _resources(cats["refunds_downgrades"]) == {m["p2"]: refunded}
    assert out["difference"] == 322_10 + refunded
    assert sum(c["amount"] for c in out["categories"]) == out["difference"]
    november = _explain(rt, m["uin"], PREVIOUS)
    assert november["previous"] == "2026-10" and november["previous_deducted"] == 0
    assert _by_category(november)["new_purchases"]["amount"] == 190_42  # all new


@pytest.mark.spec("BIL-8")
def test_rest_answers_yuan_strings(rt, months):
    uin = months["uin"]
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, uin))
    answer = rest.send("GET", f"/api/v1/accounts/{uin}/bills/{MONTH}/compare?previous={PREVIOUS}")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["previous_deducted"], body["current_deducted"], body["difference"]) == (
        "190.42", "512.52", "322.10")
    cats = {c["category"]: c for c in body["categories"]}
    assert cats["unified_expiry"]["amount"] == "126.12"
    assert cats["usage_growth"]["resources"][0]["amount"] == "12.00"


@pytest.mark.parametrize("path, field", [
    ("/bills/2026-13/compare", "month"), ("/bills/2026-3/compare", "month"),
    ("/bills/0000-01/compare", "month"), ("/bills/2026-12/compare?previous=2026-00", "previous"),
    ("/bills/2026-12/compare?previous=2026-12", "previous"),
    ("/bills/2026-12/compare?previous=2027-01", "previous"),
    ("/bills/2026-12/compare?previous=nov", "previous")])
def test_bad_input_is_refused_naming_the_field(rt, path, field):
    rt.clock.set(local(12, 2))
    uin = new_account(rt, "bad-input")
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, uin))
    answer = rest.send("GET", f"/api/v1/accounts/{uin}{path}")
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert error["message_zh"] and error["message_en"] and error["message_zh"] != error["message_en"]


@pytest.mark.spec("BIL-8")
def test_another_account_is_refused_naming_the_account(rt):
    rt.clock.set(local(12, 2))
    owner, other = new_account(rt, "owner"), new_account(rt, "other")
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, other))
    answer = rest.send("GET", f"/api/v1/accounts/{owner}/bills/{MONTH}/compare")
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["field"] == "uin"
    stranger = Actor("user", "x", uin=other, user_id=1, role="owner")
    with pytest.raises(PermissionDenied) as denied:
        _explain(rt, owner, actor=stranger)
    assert denied.value.field == "uin"
    with pytest.raises(InvalidInput) as bad:
        _explain(rt, owner, previous="2027-01")
    assert bad.value.field == "previous"


# ---------------------------------------------------------------- the pure decomposition

def _usage(q, list_cost, discounted, deducted):
    return rules.UsageSums(q, list_cost, discounted, deducted)


@pytest.mark.spec("BIL-8")
def test_the_chain_splits_usage_price_and_discount_and_rounds_once():
    # 100 units at 0.10 with 10% off (9.00) -> 150 units at 0.12 with no discount (18.00)
    before = _usage(100, 10_00 * 10**6, 9_00 * 10**6, 9_00)
    after = _usage(150, 18_00 * 10**6, 18_00 * 10**6, 18_00)
    parts = rules.item_parts(before, after, resource_had_cost=True)
    # usage 50 × 0.09 = 4.50; price 150 × 0.02 × 0.9 = 2.70; discount 150 × 0.12 × 0.1 = 1.80
    assert parts == {"usage_growth": 4_50, "price_changes": 2_70, "expired_discounts": 1_80,
                     "precision_difference": 0}
    # 3 units at 0.333 (0.999, deducted 1.00) -> 4 units (1.332, deducted 1.34): usage
    # 0.333 -> 0.33 fen-rounded once; the other fen of the 0.34 deducted more is the
    # rounding of the deductions themselves: the precision difference
    small = rules.item_parts(_usage(3, 99_900_000, 99_900_000, 1_00),
                             _usage(4, 133_200_000, 133_200_000, 1_34), True)
    assert small == {"usage_growth": 33, "price_changes": 0, "expired_discounts": 0,
                     "precision_difference": 1}
    # halves away from zero
    assert rules.fraction_to_fen(rules.Fraction(500_000)) == 1
    assert rules.fraction_to_fen(rules.Fraction(-500_000)) == -1
    assert rules.fraction_to_fen(rules.Fraction(499_999)) == 0


@pytest.mark.spec("BIL-8")
@pytest.mark.spec("BIL-8")
def test_repeated_renewals_compare_their_terms():
    # November: 1 unit-month at 100 (list 1:1) for 90.00; December: 2 unit-months at 110
    # for 220.00 (discount gone). renewals (more unit-months) 90.00; price 2 × 10 × 0.9
    # = 18.00; discount 220.00 - 198.00 = 22.00
    before = rules.OrderSums(renew=90_00, renew_units=1, renew_list=100)
    after = rules.OrderSums(renew=220_00 + 30_00, unified_extra=30_00, renew_units=2,
                            renew_list=220)
    assert rules.renewal_parts(before, after) == {
        "renewals": 90_00, "price_changes": 18_00, "expired_discounts": 22_00,
        "precision_difference": 0}
    # a fixed-price renewal (no list) or a renewal in one month only: all renewals
    assert rules.renewal_parts(before, rules.OrderSums(renew=99_00, renew_units=1)) == {
        "renewals": 9_00}
    assert rules.renewal_parts(rules.OrderSums(), after) == {"renewals": 220_00}


def test_new_gone_and_unexplainable_items():
    nothing = rules.UsageSums()
    used = _usage(10, 5 * 10**6, 5 * 10**6, 5)
    assert rules.item_parts(nothing, used, resource_had_cost=False) == {"new_purchases": 5}
    assert rules.item_parts(nothing, used, resource_had_cost=True) == {"usage_growth": 5}
    assert rules.item_parts(used, nothing, resource_had_cost=True) == {"usage_growth": -5}
    correction = _usage(0, -2 * 10**6, -2 * 10**6, -2)  # only a correction line
    assert rules.item_parts(correction, used, resource_had_cost=True) == {"other": 7}


def test_the_resources_of_a_category_are_capped_largest_first():
    before = rules.MonthAggregates()
    after = rules.MonthAggregates(orders={f"r{i}": rules.OrderSums(new=i * 100)
                                          for i in range(1, 6)})
    out = rules.decompose(before, after, cap=3)
    new = out["categories"][0]
    assert new["category"] == "new_purchases" and new["amount"] == 15_00
    assert new["resource_count"] == 5
    assert [e["resource_id"] for e in new["resources"]] == ["r5", "r4", "r3"]


money = st.integers(-10**12, 10**12)
usage_sums = st.builds(rules.UsageSums, st.integers(-10**9, 10**9), money, money,
                       st.integers(-10**6, 10**6))
order_sums = st.builds(rules.OrderSums, *[st.integers(-10**7, 10**7)] * 5,
                       st.integers(-10**9, 10**9), st.integers(-10**15, 10**15))
resource_ids = st.sampled_from(["r1", "r2", "r3", "r4"])
month_aggregates = st.builds(
    rules.MonthAggregates,
    orders=st.dictionaries(resource_ids, order_sums, max_size=4),
    usage=st.dictionaries(st.tuples(resource_ids, st.sampled_from(["a", "b"])), usage_sums,
                          max_size=6))


@pytest.mark.spec("BIL-8")
@settings(max_examples=300, deadline=None)
@given(month_aggregates, month_aggregates)
def test_the_parts_always_sum_to_the_difference(previous, current):
    out = rules.decompose(previous, current, cap=2)
    assert out["difference"] == current.deducted - previous.deducted
    assert sum(c["amount"] for c in out["categories"]) == out["difference"]
    parts = rules.resource_parts(previous, current)
    for category in out["categories"]:
        by_resource = parts.get(category["category"], {})
        assert category["amount"] == sum(by_resource.values())
        assert category["resource_count"] == len(by_resource)
        assert len(category["resources"]) == min(2, len(by_resource))


# ---------------------------------------------------------------- the console page

def test_the_console_page_refuses_a_readonly_user_and_names_a_bad_month(rt, shop):  # noqa: F811
    http = logged_in(rt)  # the owner
    assert 'href="/console/bills/compare"' in http.get("/console/bills").text  # linked
    page = http.get("/console/bills/compare")
    assert page.status_code == 200 and "data-total=\"difference\"" in page.text
    bad = http.get("/console/bills/compare?month=2026-13")
    assert bad.status_code == 400 and 'data-error-field="month"' in bad.text
    after = http.get("/console/bills/compare?month=2026-03&previous=2026-04")
    assert after.status_code == 400 and 'data-error-field="previous"' in after.text
    readonly = logged_in(rt, "acme-readonly").get("/console/bills/compare")
    assert readonly.status_code == 403 and "data-category" not in readonly.text
    assert "缺少" in readonly.text  # the service's refusal, in the page's language
