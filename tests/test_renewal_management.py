"""Renewal settings and management (RNW-1's flag, RNW-4, RNW-7): what the lists
show, the batch settings, and the batch manual renewal paid in one payment."""

import pytest

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.orders import service as orders
from feecenter.renewal import management, settings
from feecenter.renewal.management import RenewalQuery
from tests.helpers import add_cash, assert_reconciled, buy, load_sample_catalog, new_account, pay


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def _bought(rt, uin, *items):
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


def _listed(rt, uin, **query):
    with rt.engine.connect() as conn:
        return management.list_renewables(conn, rt.clock, SYSTEM, uin, RenewalQuery(**query))


@pytest.mark.spec("RNW-7")
def test_lists_only_running_prepaid_non_package_resources(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    short, long_, package = _bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                                    ("cvm", "S5.MEDIUM4", 12, "ap-guangzhou"),
                                    ("cospack", "std-100GB", 1, "ap-guangzhou"))
    listed = _listed(rt, uin)
    assert [i["resource_id"] for i in listed["items"]] == [short, long_]  # by expiry
    assert listed["total"] == 2 and listed["items"][0]["auto_renew"] is False
    assert [i["resource_id"] for i in _listed(rt, uin, packages=True)["items"]] == [package]
    assert [i["resource_id"] for i in _listed(rt, uin, expiring_within_days=40)["items"]] == [short]
    with rt.engine.begin() as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [long_], auto_renew=True, months=3)
    on = _listed(rt, uin, auto_renew=True)["items"]
    assert [(i["resource_id"], i["months"]) for i in on] == [(long_, 3)]
    with rt.engine.begin() as conn:
        settings.set_account_default(conn, rt.clock, SYSTEM, uin, True)
    assert _listed(rt, uin, auto_renew=False)["total"] == 0  # the default now covers the rest


@pytest.mark.spec("RNW-7")
def test_batch_renewal_is_one_merged_payment(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    first, second = _bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                            ("cvm", "S5.MEDIUM4", 1, "ap-shanghai"))
    before = {i["resource_id"]: i["period_end"] for i in _listed(rt, uin)["items"]}
    with rt.engine.begin() as conn:
        order_ids = management.renew_batch(conn, rt.clock, SYSTEM, uin, [first, second], 2,
                                           key="batch-1")
        again = management.renew_batch(conn, rt.clock, SYSTEM, uin, [first, second], 2,
                                       key="batch-1")
    assert again == order_ids and len(order_ids) == 2
    result = pay(rt, uin, order_ids)
    assert len(result["order_ids"]) == 2 and result["payment_id"]
    after = {i["resource_id"]: i["period_end"] for i in _listed(rt, uin)["items"]}
    for resource_id in (first, second):
        assert (after[resource_id] - before[resource_id]).days in (59, 60, 61, 62)
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-7")
def test_batch_refuses_packages_postpaid_and_strangers(shop):
    rt = shop
    uin, other = new_account(rt), new_account(rt, "other")
    add_cash(rt, uin, 5_000_00)
    add_cash(rt, other, 5_000_00)
    cvm, package = _bought(rt, uin, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),
                           ("cospack", "std-100GB", 1, "ap-guangzhou"))
    (foreign,) = _bought(rt, other, ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"))
    for ids in ([package], [foreign], [cvm, cvm], []):
        with rt.engine.begin() as conn, pytest.raises(FeeCenterError) as refused:
            management.renew_batch(conn, rt.clock, SYSTEM, uin, ids)
        assert refused.value.field == "resource_ids"
    finance = Actor("user", "fin", uin=uin, user_id=9, role="finance")
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        settings.set_auto_renew(conn, rt.clock, finance, uin, [cvm], auto_renew=True)
    with rt.engine.begin() as conn:
        for bad in ({"auto_renew": "yes"}, {"months": 0}, {"months": 1000}, {}):
            with pytest.raises(FeeCenterError):
                settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [cvm], **bad)
        for day in (0, 29, "3", True):
            with pytest.raises(FeeCenterError) as refused:
                settings.set_unified_day(conn, rt.clock, SYSTEM, uin, day)
            assert refused.value.field == "unified_day"
