"""Renewal edge cases a review found (RNW-1, RNW-2, RNW-6): a renewal awaiting
delivery by hand, money arriving after the day's try, auto-renewal turned off
during the retry days, and a restore paid after the release time."""

from __future__ import annotations

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.db.engine import transaction
from feecenter.errors import Conflict
from feecenter.orders import service as orders
from feecenter.renewal import recycle_bin
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay)
from tests.test_renewal_auto import MONTH, attempt, auto_on, renewals
from tests.test_renewal_lifecycle import bought, resource, run_jobs, sh, stops

SSL_YEAR = 3960_00  # sample catalog: ssl OV.single, sold by the year, delivered by hand


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


@pytest.mark.spec("RNW-1", "RNW-6")
def test_a_renewal_awaiting_delivery_is_neither_renewed_again_nor_stopped(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 4 * SSL_YEAR)
    (first,) = buy(rt, uin, ("ssl", "OV.single", 12, "mainland"))
    pay(rt, uin, [first])
    with transaction(rt.engine) as conn:
        orders.deliver(conn, rt.clock, OPS, first)
        resource_id = orders.get_order(conn, SYSTEM, uin, first)["resource_id"]
    auto_on(rt, uin, [resource_id], months=12)
    rt.clock.set(sh(2027, 3, 1, 12, 0))  # the day before expiry: renewed by hand
    with transaction(rt.engine) as conn:
        manual = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 12)
        orders.pay(conn, rt.clock, SYSTEM, uin, [manual], key="manual-renew")
    run_jobs(rt, sh(2027, 3, 20, 1, 0))  # past the retry days and a recovery period
    assert [o["id"] for o in renewals(rt, uin)] == [manual]  # no second term bought
    assert resource(rt, uin, resource_id)["state"] == "running"  # neither stopped nor released
    assert balance(rt, uin).frozen == SSL_YEAR
    with transaction(rt.engine) as conn:  # the CA issues: delivered, the term extended
        orders.deliver(conn, rt.clock, OPS, manual)
    assert resource(rt, uin, resource_id)["period_end"].year == 2028
    assert balance(rt, uin).frozen == 0
    assert_reconciled(rt, uin)


def _retry_days_zero(rt) -> None:
    months = "    prepaid_months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36]"
    text = catalog.sample_catalog_text().replace(
        "    postpaid_cycle: hour\n" + months,
        "    postpaid_cycle: hour\n    auto_renew_retry_days: 0\n" + months, 1)
    assert "auto_renew_retry_days: 0" in text
    with transaction(rt.engine) as conn:
        catalog.load_catalog(conn, rt.clock, OPS, text, "retry0.yaml")


@pytest.mark.spec("RNW-1", "RNW-2")
def test_money_that_arrives_after_the_days_try_counts_before_the_stop(shop):
    rt = shop
    _retry_days_zero(rt)
    uin = new_account(rt)
    add_cash(rt, uin, MONTH)
    resource_id = bought(rt, uin)  # expires 2 April 10:00; nothing left
    auto_on(rt, uin, [resource_id])
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 2, 8, 0))
    assert attempt(rt, uin, resource_id)["reason_code"] == "InsufficientBalance"  # 01:00
    add_cash(rt, uin, MONTH, key="recharge-before-expiry")  # 08:00, expiry 10:00
    run_jobs(rt, sh(2026, 4, 2, 11, 0))
    assert resource(rt, uin, resource_id)["state"] == "running"
    assert len(renewals(rt, uin)) == 1 and balance(rt, uin).cash == 0
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6")
def test_turning_auto_renewal_off_during_the_retries_stops_now_not_at_expiry(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, MONTH)
    resource_id = bought(rt, uin)  # expires 2 April 10:00, nothing left
    auto_on(rt, uin, [resource_id])
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 4, 12, 0))
    assert resource(rt, uin, resource_id)["state"] == "running"  # the retry days
    auto_on(rt, uin, [resource_id], flag=False)  # 4 April 12:00
    run_jobs(rt, sh(2026, 4, 4, 13, 0))
    assert resource(rt, uin, resource_id)["state"] == "stopped"
    with rt.engine.connect() as conn:
        (item,) = recycle_bin.list_recycle_bin(conn, rt.clock, SYSTEM, uin)["items"]
    assert item["release_at"] == sh(2026, 4, 12, 0, 0)  # 7 full days from the real stop
    assert [s[0] for s in stops(rt, resource_id)] == ["expired"]


@pytest.mark.spec("RNW-6")
def test_a_restore_paid_after_the_release_time_is_refused(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5 * MONTH)
    resource_id = bought(rt, uin)  # expires 2 April 10:00, released 10 April 00:00
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 9, 23, 0))
    rt.clock.set(sh(2026, 4, 9, 23, 50))
    with transaction(rt.engine) as conn:
        order_id = recycle_bin.restore(conn, rt.clock, SYSTEM, uin, resource_id, 1, key="r")
    rt.clock.set(sh(2026, 4, 10, 0, 20))  # the release job has not run yet
    with transaction(rt.engine) as conn, pytest.raises(Conflict) as refused:
        orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key="late")
    assert refused.value.field == "resource_id"
    assert resource(rt, uin, resource_id)["state"] == "stopped"
    assert balance(rt, uin).cash == 4 * MONTH
    assert_reconciled(rt, uin)
