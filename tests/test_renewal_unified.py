"""The unified expiry date (RNW-5): a renewal aligned to the account's unified day,
the extra days prorated to the fen, the preview equal to what is delivered, a
changed day applying from the next renewal, and no day: renewals unchanged."""

from datetime import datetime, timezone

import pytest

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.clock import BUSINESS_TZ, from_db_time
from feecenter.errors import Conflict, PermissionDenied
from feecenter.orders import rules
from feecenter.orders import service as orders
from feecenter.renewal import alignment, settings, unified
from feecenter.resources import service as resources
from tests.helpers import add_cash, assert_reconciled, buy, load_sample_catalog, new_account, pay

# bought 20 November 2026 10:00 (Shanghai) for a month: expires 20 December 10:00;
# a month's renewal ends 20 January 2027, a unified day of 10 moves it to 10 February
BOUGHT = datetime(2026, 11, 20, 10, 0, tzinfo=BUSINESS_TZ)
MONTHLY = 178_00  # cvm S5.MEDIUM4 in the sample catalog, fen per month


def local(year, month, day, hour=10):
    return datetime(year, month, day, hour, 0, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


@pytest.fixture
def cvm(rt):
    """(uin, resource id) of a cvm bought for a month at BOUGHT, cash to renew it."""
    load_sample_catalog(rt)
    rt.clock.set(BOUGHT)
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    (order_id,) = buy(rt, uin)
    pay(rt, uin, [order_id])
    with rt.engine.connect() as conn:
        resource_id = orders.get_order(conn, SYSTEM, uin, order_id)["resource_id"]
    rt.clock.set(local(2026, 12, 15))
    return uin, resource_id


def _set_day(rt, uin, day):
    with rt.engine.begin() as conn:
        settings.set_unified_day(conn, rt.clock, SYSTEM, uin, day)


def _renew(rt, uin, resource_id, months=1):
    with rt.engine.begin() as conn:
        return orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, months)


def _order(rt, uin, order_id):
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


def _expiry(rt, uin, resource_id):
    with rt.engine.connect() as conn:
        return from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])


def _preview(rt, uin, resource_ids, months=None, actor=SYSTEM):
    with rt.engine.connect() as conn:
        return unified.preview_renewals(conn, rt.clock, actor, uin, resource_ids, months)


@pytest.mark.spec("RNW-5")
def test_the_rule_aligns_forward_to_the_first_unified_day_at_the_same_time():
    start = local(2026, 12, 20)
    aligned = alignment.align(start, 1, 10)
    assert aligned.term_end == local(2027, 1, 20) and aligned.end == local(2027, 2, 10)
    assert aligned.days_by_month == ((12, 31), (9, 28))  # 20-31 January, 1-9 February
    on_the_day = alignment.align(start, 1, 20)
    assert on_the_day.end == on_the_day.term_end and on_the_day.extra_days == 0
    year_end = alignment.align(local(2027, 11, 30, 23), 1, 1)  # 30 December 23:00 -> 1 January
    assert year_end.end == local(2028, 1, 1, 23) and year_end.days_by_month == ((2, 31),)


@pytest.mark.spec("RNW-5")
def test_extra_days_are_prorated_per_month_and_rounded_once_half_up():
    # 178.00 × 12/31 + 178.00 × 9/28 = 68.903225… + 57.214285… = 126.117511… → 126.12
    # (rounding each month first would give 68.90 + 57.21 = 126.11; flooring 126.11)
    assert rules.prorated_days(MONTHLY * 10**6, [(12, 31), (9, 28)]) == 126_12
    assert rules.prorated_days(MONTHLY * 10**6, [(14, 28)]) == 89_00
    assert rules.prorated_days(MONTHLY * 10**6, []) == 0


@pytest.mark.spec("RNW-5")
def test_a_renewal_aligns_charges_the_difference_and_delivers_the_previewed_expiry(rt, cvm):
    uin, resource_id = cvm
    _set_day(rt, uin, 10)
    (shown,) = _preview(rt, uin, [resource_id])["items"]
    assert shown["current_expiry"] == local(2026, 12, 20)
    assert shown["new_expiry"] == local(2027, 2, 10) and shown["extra_days"] == 21
    assert (shown["term_amount"], shown["unified_extra"], shown["amount"]) == (
        MONTHLY, 126_12, MONTHLY + 126_12)
    order_id = _renew(rt, uin, resource_id)
    order = _order(rt, uin, order_id)
    assert (order["amount"], order["unified_day"], order["unified_extra"]) == (
        MONTHLY + 126_12, 10, 126_12)
    assert from_db_time(order["service_end"]) == shown["new_expiry"]
    paid = pay(rt, uin, [order_id])
    assert paid["amount"] == shown["amount"]
    assert _expiry(rt, uin, resource_id) == shown["new_expiry"]
    assert from_db_time(_order(rt, uin, order_id)["service_end"]) == shown["new_expiry"]
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-5")
def test_a_changed_day_applies_from_the_next_renewal(rt, cvm):
    uin, resource_id = cvm
    _set_day(rt, uin, 10)
    first = _renew(rt, uin, resource_id)
    _set_day(rt, uin, 20)  # after the order was priced: it keeps the day it was priced for
    pay(rt, uin, [first])
    assert _expiry(rt, uin, resource_id) == local(2027, 2, 10)
    (shown,) = _preview(rt, uin, [resource_id])["items"]
    # 10 March + 10 days of March (31 days): 178.00 × 10/31 = 57.419… → 57.42
    assert shown["new_expiry"] == local(2027, 3, 20) and shown["unified_extra"] == 57_42
    pay(rt, uin, [_renew(rt, uin, resource_id)])
    assert _expiry(rt, uin, resource_id) == local(2027, 3, 20)
    _set_day(rt, uin, None)  # turned off: the next renewal is a plain month again
    (plain,) = _preview(rt, uin, [resource_id], months=2)["items"]
    assert (plain["new_expiry"], plain["unified_day"], plain["unified_extra"]) == (
        local(2027, 5, 20), None, 0)
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-5")
def test_without_a_unified_day_renewals_are_unchanged(rt, cvm):
    uin, resource_id = cvm
    order_id = _renew(rt, uin, resource_id, months=2)
    order = _order(rt, uin, order_id)
    assert (order["amount"], order["unified_day"], order["unified_extra"]) == (
        2 * MONTHLY, None, None)
    pay(rt, uin, [order_id])
    assert _expiry(rt, uin, resource_id) == local(2027, 2, 20)


@pytest.mark.spec("RNW-5")
def test_an_aligned_order_is_refused_once_another_renewal_moved_the_expiry(rt, cvm):
    uin, resource_id = cvm
    _set_day(rt, uin, 10)
    aligned = _renew(rt, uin, resource_id)
    pay(rt, uin, [_renew(rt, uin, resource_id)])  # priced later, paid first
    with pytest.raises(Conflict) as stale:
        pay(rt, uin, [aligned])
    assert stale.value.field == "resource_id"
    assert _expiry(rt, uin, resource_id) == local(2027, 2, 10)  # only the first one delivered
    assert_reconciled(rt, uin)


def test_the_preview_is_renewal_management_and_writes_nothing(rt, cvm):
    uin, resource_id = cvm
    _set_day(rt, uin, 10)
    finance = Actor("user", "fin", uin=uin, user_id=9, role="finance")
    with pytest.raises(PermissionDenied):
        _preview(rt, uin, [resource_id], actor=finance)
    _preview(rt, uin, [resource_id])
    with rt.engine.connect() as conn:
        assert orders.list_orders(conn, SYSTEM, uin, orders.OrderQuery())["total"] == 1
