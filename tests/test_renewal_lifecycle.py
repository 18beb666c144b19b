"""The expiry lifecycle (RNW-6): a prepaid resource not renewed is stopped into the
recycle bin at its expiry, released at 00:00 after its recovery period, and a
renewal paid meanwhile restores it with the new term counting from the original
expiry; refused renewals and changes (released, postpaid, another account's, a
term not sold, in arrears — ARR-1 — or without the permission) write nothing.

The jobs run through the job runner (``runner.run_until``) on a registry of the
renewal jobs alone, with the clock moved hour by hour."""

from __future__ import annotations

from datetime import datetime

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, db_time
from feecenter.db.engine import transaction
from feecenter.errors import AccountInArrears, Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.funds import service as funds
from feecenter.jobs import runner
from feecenter.jobs.registry import REGISTRY, Registry
from feecenter.jobs.loader import load_all
from feecenter.ledger.tables import ledger_transactions
from feecenter.notifications.tables import in_site_messages as notification_messages
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.resources.tables import resource_stops
from tests.helpers import (OPS, add_cash, assert_reconciled, buy, load_sample_catalog,
                           new_account, pay, row_counts)


def sh(*parts) -> datetime:
    """A business (Asia/Shanghai) time."""
    return datetime(*parts, tzinfo=BUSINESS_TZ)


def renewal_registry() -> Registry:
    load_all()
    registry = Registry()
    for name in ("renewal.expiry", "renewal.release"):
        registry.add(REGISTRY.get(name))
    return registry


def run_jobs(rt, until: datetime) -> None:
    """The renewal jobs run by the runner for every period due up to ``until``, the
    clock moved hour by hour (it ends at ``until``)."""
    report = runner.run_until(rt.engine, rt.clock, until, registry=renewal_registry())
    failed = [o for o in report.work.runs.outcomes if o.outcome != "done"]
    assert not failed, failed


def bought(rt, uin: int, months: int = 1, region: str = "ap-guangzhou") -> str:
    order_ids = buy(rt, uin, ("cvm", "S5.MEDIUM4", months, region))
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_ids[0])["resource_id"]


def resource(rt, uin: int, resource_id: str) -> dict:
    with rt.engine.connect() as conn:
        return resources.get_resource(conn, uin, resource_id)


def stops(rt, resource_id: str) -> list[tuple]:
    s = resource_stops.c
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            resource_stops.select().with_only_columns(s.reason, s.stopped_at, s.ended_at)
            .where(s.resource_id == resource_id).order_by(s.id))]


def notices(rt, uin: int) -> list[dict]:
    m = notification_messages.c
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(notification_messages.select()
                                              .where(m.uin == uin).order_by(m.id)).mappings()]


def renew(rt, uin: int, resource_id: str, months: int = 1, key: str = "manual") -> dict:
    with transaction(rt.engine) as conn:
        order_id = orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, months)
        return orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=key)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


@pytest.mark.spec("RNW-6")
def test_spec_example_expired_1_january_renewed_3_january_expires_1_february(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    rt.clock.set(sh(2026, 12, 1, 10, 0))
    resource_id = bought(rt, uin)
    expiry = sh(2027, 1, 1, 10, 0)
    assert resource(rt, uin, resource_id)["period_end"] == db_time(expiry)
    rt.clock.set(sh(2027, 1, 1, 9, 0))
    run_jobs(rt, sh(2027, 1, 1, 10, 0))  # the hour before expiry: still running
    assert resource(rt, uin, resource_id)["state"] == "running"
    run_jobs(rt, sh(2027, 1, 1, 11, 0))
    assert resource(rt, uin, resource_id)["state"] == "stopped"  # in the recycle bin
    assert stops(rt, resource_id) == [("expired", db_time(expiry), None)]
    stopped = [n for n in notices(rt, uin) if n["template"] == "renewal_stopped"]
    assert len(stopped) == 1 and resource_id in stopped[0]["body"]
    assert "2027-01-09 00:00:00" in stopped[0]["body"]  # its release time, told
    run_jobs(rt, sh(2027, 1, 3, 10, 0))
    renew(rt, uin, resource_id)  # renewed on 3 January, a monthly term
    restored = resource(rt, uin, resource_id)
    assert restored["state"] == "running"
    assert restored["period_end"] == db_time(sh(2027, 2, 1, 10, 0))  # from the original expiry
    assert stops(rt, resource_id) == [("expired", db_time(expiry), db_time(sh(2027, 1, 3, 10)))]
    run_jobs(rt, sh(2027, 1, 12, 0, 0))  # past the old release time: nothing happens to it
    assert resource(rt, uin, resource_id)["state"] == "running"
    assert [n["template"] for n in notices(rt, uin)] == ["renewal_stopped"]
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6")
def test_released_at_00_00_after_the_recovery_period_not_at_23_59(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    resource_id = bought(rt, uin)  # 2 March 10:00 → expires 2 April 10:00
    rt.clock.set(sh(2026, 4, 2, 9, 0))
    run_jobs(rt, sh(2026, 4, 2, 12, 0))
    assert resource(rt, uin, resource_id)["state"] == "stopped"
    run_jobs(rt, sh(2026, 4, 9, 23, 59))  # 7 days: the last day is 9 April
    assert resource(rt, uin, resource_id)["state"] == "stopped"
    run_jobs(rt, sh(2026, 4, 10, 0, 0))
    released = resource(rt, uin, resource_id)
    assert (released["state"], released["released_at"]) == ("recycled",
                                                             db_time(sh(2026, 4, 10, 0, 0)))
    assert stops(rt, resource_id)[0][2] == db_time(sh(2026, 4, 10, 0, 0))
    assert [n["template"] for n in notices(rt, uin)] == ["renewal_stopped", "renewal_released"]
    counts = row_counts(rt, orders_table, payments, ledger_transactions)
    with transaction(rt.engine) as conn, pytest.raises(Conflict) as err:
        orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    assert err.value.details["state"] == "recycled"
    assert row_counts(rt, orders_table, payments, ledger_transactions) == counts
    run_jobs(rt, sh(2026, 4, 11, 1, 0))  # reruns find nothing more
    assert len(notices(rt, uin)) == 2
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6")
def test_product_recovery_days_and_a_renewal_order_made_before_the_stop(shop):
    """A longer recovery period (catalog recovery_days) keeps it longer; an order created
    while it ran and paid while it waits in the recycle bin restores it too."""
    rt = shop
    months = "    prepaid_months: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36]"
    text = catalog.sample_catalog_text().replace(  # the first product: cvm
        "    postpaid_cycle: hour\n" + months,
        "    postpaid_cycle: hour\n    recovery_days: 15\n" + months, 1)
    assert "recovery_days: 15" in text
    with transaction(rt.engine) as conn:
        catalog.load_catalog(conn, rt.clock, OPS, text, "longer.yaml")
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    kept, other = bought(rt, uin), bought(rt, uin, region="ap-shanghai")
    rt.clock.set(sh(2026, 4, 2, 9, 0))
    with transaction(rt.engine) as conn:
        early = orders.create_renewal(conn, rt.clock, SYSTEM, uin, kept, 2)
    run_jobs(rt, sh(2026, 4, 11, 0, 0))  # past 7 days: kept for 15
    assert {resource(rt, uin, r)["state"] for r in (kept, other)} == {"stopped"}
    pay(rt, uin, [early])
    assert resource(rt, uin, kept)["period_end"] == db_time(sh(2026, 6, 2, 10, 0))
    run_jobs(rt, sh(2026, 4, 17, 23, 59))  # 2 April + 15 days: the last day is 17 April
    assert resource(rt, uin, other)["state"] == "stopped"
    run_jobs(rt, sh(2026, 4, 18, 0, 0))
    assert resource(rt, uin, other)["state"] == "recycled"
    assert resource(rt, uin, kept)["state"] == "running"
    assert_reconciled(rt, uin)


def _in_arrears(rt, uin: int, owed: int) -> None:
    with rt.engine.connect() as conn:
        available = funds.balance_view(conn, rt.clock, SYSTEM, uin).available
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, available + owed, key=f"usage-{uin}", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))


@pytest.mark.spec("RNW-6", "ARR-1")
def test_refused_renewals_and_changes_write_nothing(shop):
    rt = shop
    uin, stranger = new_account(rt), new_account(rt, "stranger")
    add_cash(rt, uin, 1_000_00)
    resource_id = bought(rt, uin)
    with transaction(rt.engine) as conn:
        vm = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cvm",
                                    region="ap-guangzhou", spec_item="S5.MEDIUM4")
        finance = accounts.user_actor(conn, accounts.add_user(conn, rt.clock, OPS, uin, "fin",
                                                              "finance"))
    tables = (orders_table, payments, ledger_transactions, resource_stops)
    counts = row_counts(rt, *tables)

    def refused(error, call):
        with transaction(rt.engine) as conn, pytest.raises(error) as err:
            call(conn)
        assert row_counts(rt, *tables) == counts
        return err.value

    assert refused(InvalidInput, lambda c: orders.create_renewal(
        c, rt.clock, SYSTEM, uin, vm, 1)).field == "resource_id"  # postpaid
    refused(NotFound, lambda c: orders.create_renewal(c, rt.clock, SYSTEM, stranger,
                                                      resource_id, 1))  # another account's
    assert refused(InvalidInput, lambda c: orders.create_renewal(
        c, rt.clock, SYSTEM, uin, resource_id, 13)).field == "months"  # not sold
    refused(PermissionDenied, lambda c: orders.create_renewal(c, rt.clock, finance, uin,
                                                              resource_id, 1))
    _in_arrears(rt, uin, 12_34)
    counts = row_counts(rt, *tables)
    for call in (lambda c: orders.create_renewal(c, rt.clock, SYSTEM, uin, resource_id, 1),
                 lambda c: orders.create_upgrade(c, rt.clock, SYSTEM, uin, resource_id,
                                                 "S5.LARGE8")):
        error = refused(AccountInArrears, call)
        assert "12.34" in error.message_zh and "12.34" in error.message_en
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-6", "ARR-1")
def test_a_downgrade_in_arrears_is_refused_with_the_amount(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    order_ids = buy(rt, uin, ("cvm", "S5.LARGE8", 1, "ap-guangzhou"))
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        resource_id = orders.get_order(conn, SYSTEM, uin, order_ids[0])["resource_id"]
    _in_arrears(rt, uin, 5_00)
    counts = row_counts(rt, orders_table, ledger_transactions)
    with transaction(rt.engine) as conn, pytest.raises(AccountInArrears) as err:
        orders.downgrade(conn, rt.clock, SYSTEM, uin, resource_id, "S5.MEDIUM4", key="down")
    assert "5.00" in err.value.message_zh and "5.00" in err.value.message_en
    assert row_counts(rt, orders_table, ledger_transactions) == counts
    assert resource(rt, uin, resource_id)["spec_item"] == "S5.LARGE8"
