"""A month of L3 lines of every kind for the FOCUS export (BIL-7), made through the
services as a customer's month would be: March 2026 of one account with postpaid
charges (a list-price line and a contract-price line), a late-usage adjustment of
February's last hour billed in March, a named and tagged disk, and prepaid orders
bought, upgraded, downgraded and refunded (negative lines).

Used by tests/test_bills_focus.py and scripts/focus-sample (the CI's validator run)."""

from __future__ import annotations

from datetime import datetime, timedelta

from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ
from feecenter.db.engine import transaction
from feecenter.orders import service as orders
from feecenter.periods import HOURLY, period_containing
from feecenter.resources import service as resources
from feecenter.settlement import service as settlement
from tests.helpers import OPS, add_cash, add_gift, buy, new_account, pay
from tests.test_settlement import ingest, load, open_

MONTH = "2026-03"


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=BUSINESS_TZ)


def _settle_hour(rt, start: datetime) -> None:
    settlement.settle_period(rt.engine, rt.clock, "hour", period_containing(HOURLY, start))


def postpaid_account(rt, name: str) -> tuple[int, str, str]:
    """A funded account (5,000 cash, 100 gift) with a contract price on cvm traffic
    (0.33 / GB), a postpaid CVM named web-1 and a postpaid premium disk tagged
    env=prod: (uin, vm, disk). Loads the sample catalog first."""
    load(rt)
    uin = new_account(rt, name)
    add_cash(rt, uin, 5_000_00)
    add_gift(rt, uin, 100_00)
    with transaction(rt.engine) as conn:
        catalog.set_contract_price(conn, rt.clock, OPS, uin, product="cvm", item="traffic",
                                   pay_mode="postpaid", unit_price=33_000_000)  # 0.33 / GB
    vm = open_(rt, uin, name="web-1")
    disk = open_(rt, uin, product="cbs", spec="premium")
    with transaction(rt.engine) as conn:
        resources.rename_resource(conn, rt.clock, OPS, uin, disk, None, {"env": "prod"})
    return uin, vm, disk


def seed_focus_month(rt) -> int:
    """Seed March 2026 of a new account on ``rt`` (a FixedClock runtime); its UIN."""
    rt.clock.set(at(2, 28, 22))
    uin, vm, disk = postpaid_account(rt, "focus-export")

    # February's last hour, deducted on 1 March; its late usage an adjustment in March
    last_feb = period_containing(HOURLY, at(2, 28, 23, 30))
    rt.clock.set(last_feb.end + timedelta(minutes=5))
    ingest(rt, [("f1", uin, vm, "S5.MEDIUM4", "1", last_feb.start, last_feb.end)])
    _settle_hour(rt, last_feb.start)
    first_mar = period_containing(HOURLY, at(3, 1, 0, 30))
    rt.clock.set(first_mar.end + timedelta(minutes=10))
    ingest(rt, [("f2", uin, vm, "traffic", "2", last_feb.start, last_feb.end),
                ("m1", uin, vm, "S5.MEDIUM4", "1", first_mar.start, first_mar.end)])
    _settle_hour(rt, first_mar.start)

    # a March hour: list price (VM, disk) and contract price (traffic)
    rt.clock.set(at(3, 2, 9))
    (bought,) = buy(rt, uin)
    pay(rt, uin, [bought])
    prepaid_vm = _order(rt, uin, bought)["resource_id"]
    hour = period_containing(HOURLY, at(3, 2, 10))
    rt.clock.set(hour.end + timedelta(minutes=5))
    ingest(rt, [("t1", uin, vm, "traffic", "3", hour.start, hour.end),
                ("c1", uin, vm, "S5.MEDIUM4", "1", hour.start, hour.end),
                ("d1", uin, disk, "premium", "100", hour.start, hour.end)])
    _settle_hour(rt, hour.start)

    # prepaid: an upgrade, a second VM bought, then a downgrade and a refund (negative)
    rt.clock.set(at(3, 3, 11))
    with transaction(rt.engine) as conn:
        upgrade = orders.create_upgrade(conn, rt.clock, OPS, uin, prepaid_vm, "S5.LARGE8")
    pay(rt, uin, [upgrade])
    (second,) = buy(rt, uin)
    pay(rt, uin, [second])
    second_vm = _order(rt, uin, second)["resource_id"]
    rt.clock.set(at(3, 4, 15))
    with transaction(rt.engine) as conn:
        orders.downgrade(conn, rt.clock, OPS, uin, prepaid_vm, "S5.MEDIUM4", key="down")
        orders.refund_resource(conn, rt.clock, OPS, uin, second_vm, key="refund")
    rt.clock.set(at(3, 5, 4))
    return uin


def _order(rt, uin, order_id) -> dict:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, OPS, uin, order_id)
