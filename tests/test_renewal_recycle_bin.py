"""The recycle bin (RNW-6): which resources it lists, their release time and days
left, and restoring one by a renewal order whose new term counts from the
original expiry."""

from __future__ import annotations

from datetime import timedelta

import pytest

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.clock import from_db_time
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, FeeCenterError, NotFound, PermissionDenied
from feecenter.orders import service as orders
from feecenter.renewal import recycle_bin, rules
from feecenter.resources import service as resources
from tests.helpers import add_cash, assert_reconciled, buy, load_sample_catalog, new_account, pay


def bought(rt, uin, *items) -> list[str]:
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


def expire(rt, uin, resource_id: str, reason: str = "expired"):
    """Move the clock to the resource's expiry and stop it there; returns the expiry."""
    with transaction(rt.engine) as conn:
        end = from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])
        if rt.clock.now() < end:
            rt.clock.set(end)
        resources.stop_resource(conn, resource_id, end, reason)
    return end


def listed(rt, uin, actor=SYSTEM) -> dict:
    with rt.engine.connect() as conn:
        return recycle_bin.list_recycle_bin(conn, rt.clock, actor, uin)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    return rt, uin


@pytest.mark.spec("RNW-6")
def test_lists_resources_stopped_for_expiry_with_release_time_and_days_left(shop):
    rt, uin = shop
    gone, arrears, running = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                                    ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"),
                                    ("cvm", "S5.MEDIUM4", 12, "ap-guangzhou"))
    end = expire(rt, uin, gone)
    expire(rt, uin, arrears, reason="arrears")  # stopped for arrears: not the bin's
    found = listed(rt, uin)
    assert found["total"] == 1
    (item,) = found["items"]
    assert item["resource_id"] == gone and item["region"] == "ap-guangzhou"
    assert item["spec_item"] == "S5.MEDIUM4" and item["product_name_zh"] and item["product_name_en"]
    assert item["period_end"] == end and item["stopped_at"] == end
    assert item["release_at"] == rules.release_at(end, 7) and item["recovery_days"] == 7
    assert item["days_left"] == 8  # stopped today, 7 days kept: today and 7 more
    rt.clock.set(item["release_at"] - timedelta(minutes=1))
    assert listed(rt, uin)["items"][0]["days_left"] == 1
    rt.clock.set(item["release_at"])
    assert listed(rt, uin) == {"total": 0, "items": []}  # due for release: the job's
    assert running not in [i["resource_id"] for i in found["items"]]


@pytest.mark.spec("RNW-6")
def test_restore_is_a_renewal_counting_from_the_original_expiry(shop):
    rt, uin = shop
    (gone,) = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    end = expire(rt, uin, gone)
    rt.clock.advance(days=2)  # restored two days later
    with transaction(rt.engine) as conn:
        order_id = recycle_bin.restore(conn, rt.clock, SYSTEM, uin, gone, 1, key="restore-1")
        again = recycle_bin.restore(conn, rt.clock, SYSTEM, uin, gone, 1, key="restore-1")
    assert again == order_id
    pay(rt, uin, [order_id])
    with rt.engine.connect() as conn:
        order = orders.get_order(conn, SYSTEM, uin, order_id)
        resource = resources.get_resource(conn, uin, gone)
    assert order["kind"] == "renew" and order["state"] == "delivered"
    new_end = from_db_time(resource["period_end"])
    assert new_end.month == (end.month % 12) + 1 and new_end.day == end.day  # a month on
    assert new_end.time() == end.time()
    assert_reconciled(rt, uin)


def test_restore_refuses_what_is_not_in_the_bin(shop):
    rt, uin = shop
    other = new_account(rt, "other")
    add_cash(rt, other, 1_000_00)
    running, gone = bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                           ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"))
    (foreign,) = bought(rt, other, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    expire(rt, uin, gone)
    with transaction(rt.engine) as conn:
        with pytest.raises(Conflict):
            recycle_bin.restore(conn, rt.clock, SYSTEM, uin, running, 1)
        with pytest.raises(NotFound):
            recycle_bin.restore(conn, rt.clock, SYSTEM, uin, foreign, 1)
        for months in (0, "1", True, 1000):
            with pytest.raises(FeeCenterError) as refused:
                recycle_bin.restore(conn, rt.clock, SYSTEM, uin, gone, months)
            assert refused.value.field == "months"
        with pytest.raises(FeeCenterError):
            recycle_bin.restore(conn, rt.clock, SYSTEM, uin, "a\x00b", 1)
    rt.clock.set(listed(rt, uin)["items"][0]["release_at"])
    with transaction(rt.engine) as conn, pytest.raises(Conflict):
        recycle_bin.restore(conn, rt.clock, SYSTEM, uin, gone, 1)


def test_the_bin_needs_renewal_permission(shop):
    rt, uin = shop
    finance = Actor("user", "fin", uin=uin, user_id=9, role="finance")
    with pytest.raises(PermissionDenied):
        listed(rt, uin, finance)
    admin = Actor("user", "adm", uin=uin, user_id=10, role="admin")
    assert listed(rt, uin, admin)["total"] == 0
    with rt.engine.connect() as conn:
        for bad in ({"offset": -1}, {"limit": 0}, {"limit": 10**6}):
            with pytest.raises(FeeCenterError):
                recycle_bin.list_recycle_bin(conn, rt.clock, SYSTEM, uin, **bad)
