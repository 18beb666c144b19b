"""Upgrade and renewal orders priced from a resource that changed before they were paid.

An upgrade order is priced from the resource's spec and expiry when it is
created (it records both: ``from_spec_item``, ``service_end``); a renewal from
its spec. If the resource's spec or (for an upgrade) expiry differs when the
order is paid or delivered (a downgrade, another upgrade, a renewal), the
order's price no longer fits: paying or delivering it is refused (409 on
``resource_id``), nothing is written, and a new order prices the resource as it
is. Only the spec and expiry count, never the order's times.
"""

from datetime import timedelta

import pytest
from sqlalchemy import select

from feecenter.accounts.permissions import SYSTEM
from feecenter.errors import Conflict
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_holds, ledger_transactions
from feecenter.orders import rules
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from feecenter.resources import service as resources
from tests import helpers
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, load_sample_catalog,
                           new_account, pay, row_counts)

MEDIUM, LARGE, XLARGE = "S5.MEDIUM4", "S5.LARGE8", "S5.2XLARGE16"  # 178, 356, 712 a month
MONTHLY = {MEDIUM: 178_00, LARGE: 356_00, XLARGE: 712_00}
SSL_OV, SSL_EV = "OV.single", "EV.single"  # 330 and 600 a month, delivered by hand


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def bought(rt, uin, spec=MEDIUM, product="cvm", months=1, region="ap-guangzhou") -> str:
    """A resource bought and paid; its id."""
    (order_id,) = helpers.buy(rt, uin, (product, spec, months, region))
    pay(rt, uin, [order_id], key=f"buy-{order_id}")
    return order_row(rt, order_id)["resource_id"]


def order_row(rt, order_id) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(orders_table).where(orders_table.c.id == order_id))
                    .mappings().one())


def resource(rt, uin, resource_id) -> dict:
    with rt.engine.connect() as conn:
        return resources.get_resource(conn, uin, resource_id)


def upgrade(rt, uin, resource_id, spec) -> int:
    with rt.engine.begin() as conn:
        return orders.create_upgrade(conn, rt.clock, SYSTEM, uin, resource_id, spec)


def renewal(rt, uin, resource_id, months=1) -> int:
    with rt.engine.begin() as conn:
        return orders.create_renewal(conn, rt.clock, SYSTEM, uin, resource_id, months)


def downgrade(rt, uin, resource_id, spec, key) -> int:
    with rt.engine.begin() as conn:
        return orders.downgrade(conn, rt.clock, SYSTEM, uin, resource_id, spec, key=key)


def deliver(rt, order_id) -> None:
    with rt.engine.begin() as conn:
        orders.deliver(conn, rt.clock, OPS, order_id)


def written(rt) -> tuple:
    return row_counts(rt, ledger_transactions, ledger_holds, statement_entries, payments)


def prorated(rt, uin, resource_id, old_spec, new_spec) -> int:
    """The upgrade price from ``old_spec`` now, for the resource's time left."""
    end = resource(rt, uin, resource_id)["period_end"]
    left = end - rt.clock.now().replace(tzinfo=None)
    return rules.prorated_change(MONTHLY[old_spec] * 1_000_000, MONTHLY[new_spec] * 1_000_000,
                                 left)


def assert_stale(exc: Conflict, resource_id: str, order_id: int, kind: str) -> None:
    """The refusal names the resource and the order, and says to order anew (zh, en)."""
    assert exc.field == "resource_id", exc.message
    assert exc.details["resource_id"] == resource_id and exc.details["order_id"] == order_id
    assert resource_id in exc.message_zh and resource_id in exc.message_en
    new_order = {"upgrade": ("升配订单", "new upgrade order"),
                 "renew": ("续费订单", "new renewal order")}[kind]
    assert new_order[0] in exc.message_zh and new_order[1] in exc.message_en, exc.message


def refused_payment(rt, uin, order_ids, resource_id, stale_id, kind="upgrade") -> None:
    """Paying ``order_ids`` is refused as stale and writes nothing."""
    before, view = written(rt), balance(rt, uin)
    spec = resource(rt, uin, resource_id)
    with pytest.raises(Conflict) as err:
        pay(rt, uin, order_ids, key=f"stale-{'-'.join(map(str, order_ids))}")
    assert_stale(err.value, resource_id, stale_id, kind)
    assert written(rt) == before
    assert balance(rt, uin) == view
    assert resource(rt, uin, resource_id) == spec
    assert all(order_row(rt, i)["state"] == "unpaid" for i in order_ids)


# ---------------------------------------------------------------- upgrades

@pytest.mark.spec("ORD-1")
def test_a_downgrade_makes_an_older_upgrade_order_stale(shop):
    """B→C priced as C−B; downgraded to A meanwhile, paying would move A→C for C−B."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, LARGE)  # 2 March to 2 April
    rt.clock.advance(days=10)  # 21 days left: 0.7 of a 30-day month
    stale = upgrade(rt, uin, resource_id, XLARGE)
    assert order_row(rt, stale)["amount"] == 249_20  # (712 − 356) × 0.7
    assert order_row(rt, stale)["from_spec_item"] == LARGE
    downgrade(rt, uin, resource_id, MEDIUM, key="down")
    refused_payment(rt, uin, [stale], resource_id, stale)
    fresh = upgrade(rt, uin, resource_id, XLARGE)  # the same instant: priced from MEDIUM
    assert order_row(rt, fresh)["amount"] == 373_80 == prorated(rt, uin, resource_id, MEDIUM,
                                                                XLARGE)
    cash = balance(rt, uin).cash
    pay(rt, uin, [fresh])
    assert balance(rt, uin).cash == cash - 373_80
    assert resource(rt, uin, resource_id)["spec_item"] == XLARGE
    assert order_row(rt, stale)["state"] == "unpaid"  # left to expire (or be voided)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
@pytest.mark.parametrize("first, second", [(LARGE, XLARGE), (XLARGE, LARGE), (LARGE, LARGE)])
def test_of_two_upgrade_orders_from_one_spec_only_the_first_paid_applies(shop, first, second):
    """A→first paid, then A→second: it would charge second−A to move first→second (or,
    from XLARGE to LARGE, charge for a downgrade)."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    rt.clock.advance(days=10)
    one, two = upgrade(rt, uin, resource_id, first), upgrade(rt, uin, resource_id, second)
    pay(rt, uin, [one])
    assert resource(rt, uin, resource_id)["spec_item"] == first
    refused_payment(rt, uin, [two], resource_id, two)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_paying_the_newer_upgrade_order_first_makes_the_older_stale(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    rt.clock.advance(days=10)
    older, newer = upgrade(rt, uin, resource_id, XLARGE), upgrade(rt, uin, resource_id, LARGE)
    pay(rt, uin, [newer])
    refused_payment(rt, uin, [older], resource_id, older)
    fresh = upgrade(rt, uin, resource_id, XLARGE)  # the same instant the newer took effect
    assert order_row(rt, fresh)["amount"] == prorated(rt, uin, resource_id, LARGE, XLARGE)
    cash = balance(rt, uin).cash
    pay(rt, uin, [fresh])
    assert balance(rt, uin).cash == cash - order_row(rt, fresh)["amount"]
    assert resource(rt, uin, resource_id)["spec_item"] == XLARGE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_two_upgrades_of_one_resource_in_one_payment_are_refused(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    one, two = upgrade(rt, uin, resource_id, LARGE), upgrade(rt, uin, resource_id, XLARGE)
    refused_payment(rt, uin, [one, two], resource_id, two)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_a_renewal_paid_first_makes_an_upgrade_order_stale(shop):
    """The upgrade is priced up to the expiry it saw; renewed meanwhile, it would give
    the bigger spec for the renewed months at the smaller spec's price."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    rt.clock.advance(days=10)
    stale = upgrade(rt, uin, resource_id, LARGE)
    pay(rt, uin, [renewal(rt, uin, resource_id)])
    refused_payment(rt, uin, [stale], resource_id, stale)
    fresh = upgrade(rt, uin, resource_id, LARGE)
    assert order_row(rt, fresh)["amount"] == prorated(rt, uin, resource_id, MEDIUM, LARGE)
    assert order_row(rt, fresh)["amount"] > order_row(rt, stale)["amount"]
    pay(rt, uin, [fresh])
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_an_upgrade_order_created_after_another_was_applied_pays(shop):
    """Created at the very instant the other took effect: only the spec and expiry it
    was priced from count, and they are the resource's."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    pay(rt, uin, [upgrade(rt, uin, resource_id, LARGE)])
    later = upgrade(rt, uin, resource_id, XLARGE)
    assert order_row(rt, later)["from_spec_item"] == LARGE
    assert order_row(rt, later)["amount"] == prorated(rt, uin, resource_id, LARGE, XLARGE)
    pay(rt, uin, [later])
    assert resource(rt, uin, resource_id)["spec_item"] == XLARGE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_an_upgrade_order_priced_from_the_spec_and_expiry_the_resource_has_again_pays(shop):
    """LARGE→XLARGE priced, then a downgrade to MEDIUM and an upgrade back to LARGE:
    the resource has the spec and expiry the older order was priced from, so its
    price is still right and it pays it."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, LARGE)
    rt.clock.advance(days=10)
    older = upgrade(rt, uin, resource_id, XLARGE)
    end = resource(rt, uin, resource_id)["period_end"]
    rt.clock.advance(days=1)
    downgrade(rt, uin, resource_id, MEDIUM, key="down")
    pay(rt, uin, [upgrade(rt, uin, resource_id, LARGE)])
    assert (resource(rt, uin, resource_id)["spec_item"],
            resource(rt, uin, resource_id)["period_end"]) == (LARGE, end)
    amount, cash = order_row(rt, older)["amount"], balance(rt, uin).cash
    assert amount == 249_20  # (712 − 356) × 21/30, as priced
    pay(rt, uin, [older])
    assert balance(rt, uin).cash == cash - amount
    assert order_row(rt, older)["state"] == "delivered"
    assert resource(rt, uin, resource_id)["spec_item"] == XLARGE
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_an_upgrade_order_is_stale_whatever_the_clocks_say(shop):
    """An older upgrade applied with a clock behind the one that created a newer order
    from the same spec: the newer is still refused (its spec is not the resource's)."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    rt.clock.advance(days=10)
    older, newer = upgrade(rt, uin, resource_id, LARGE), upgrade(rt, uin, resource_id, XLARGE)
    rt.clock.advance(seconds=-5)  # another application server, its clock behind
    pay(rt, uin, [older])
    assert order_row(rt, older)["service_start"] < order_row(rt, newer)["created_at"]
    refused_payment(rt, uin, [newer], resource_id, newer)
    assert_reconciled(rt)


def priced_before_0009(rt, order_id) -> None:
    """The order as an upgrade order created before revision 0009: no from_spec_item."""
    with rt.engine.begin() as conn:
        conn.execute(orders_table.update().where(orders_table.c.id == order_id)
                     .values(from_spec_item=None))


@pytest.mark.spec("ORD-1")
def test_an_upgrade_order_from_before_the_column_is_refused_as_stale(shop):
    """Its priced-from spec is unknown: refused (a new order is priced as usual), even
    though the resource did not change."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    old = upgrade(rt, uin, resource_id, LARGE)
    priced_before_0009(rt, old)
    refused_payment(rt, uin, [old], resource_id, old)
    fresh = upgrade(rt, uin, resource_id, LARGE)
    pay(rt, uin, [fresh])
    assert resource(rt, uin, resource_id)["spec_item"] == LARGE
    assert_reconciled(rt)


# ---------------------------------------------------------------- renewals

@pytest.mark.spec("ORD-1", "ORD-5")
def test_an_upgrade_paid_first_makes_a_renewal_order_stale(shop):
    """A renewal priced for MEDIUM, paid after an upgrade to XLARGE, would renew the
    bigger spec at the smaller's price."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    stale = renewal(rt, uin, resource_id)
    assert order_row(rt, stale)["amount"] == 178_00
    pay(rt, uin, [upgrade(rt, uin, resource_id, XLARGE)])
    refused_payment(rt, uin, [stale], resource_id, stale, kind="renew")
    fresh = renewal(rt, uin, resource_id)
    assert order_row(rt, fresh)["amount"] == 712_00
    end = resource(rt, uin, resource_id)["period_end"]
    pay(rt, uin, [fresh])
    assert resource(rt, uin, resource_id)["period_end"] > end
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_two_renewals_of_one_spec_both_pay(shop):
    """A renewal counts from the expiry at payment (RNW-6): another renewal paid first
    does not change what it is worth."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    one, two = renewal(rt, uin, resource_id), renewal(rt, uin, resource_id, months=2)
    end = resource(rt, uin, resource_id)["period_end"]
    pay(rt, uin, [one])
    pay(rt, uin, [two])
    assert resource(rt, uin, resource_id)["period_end"] - end >= timedelta(days=89)
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_an_upgrade_and_a_renewal_in_one_payment_are_refused(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 5_000_00)
    resource_id = bought(rt, uin, MEDIUM)
    renew, up = renewal(rt, uin, resource_id), upgrade(rt, uin, resource_id, LARGE)
    refused_payment(rt, uin, [renew, up], resource_id, up)
    refused_payment(rt, uin, [up, renew], resource_id, renew, kind="renew")
    assert_reconciled(rt)


# ---------------------------------------------------------------- delivery by hand

def ssl_bought(rt, uin) -> str:
    """An OV certificate bought, paid and delivered; its resource id."""
    (order_id,) = helpers.buy(rt, uin, ("ssl", SSL_OV, 12, "mainland"))
    pay(rt, uin, [order_id], key=f"ssl-{order_id}")
    deliver(rt, order_id)
    return order_row(rt, order_id)["resource_id"]


@pytest.mark.spec("ORD-1", "FRZ-3")
def test_delivering_a_stale_upgrade_is_refused_and_its_freeze_can_be_released(shop):
    """Two upgrades paid (frozen) before either is delivered: the second delivery
    finds the resource changed, is refused and writes nothing; failing it gives the
    money back."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 20_000_00)
    resource_id = ssl_bought(rt, uin)
    rt.clock.advance(days=10)
    one, two = upgrade(rt, uin, resource_id, SSL_EV), upgrade(rt, uin, resource_id, SSL_EV)
    pay(rt, uin, [one])
    pay(rt, uin, [two])
    deliver(rt, one)
    assert resource(rt, uin, resource_id)["spec_item"] == SSL_EV
    before, view = written(rt), balance(rt, uin)
    with pytest.raises(Conflict) as err:
        deliver(rt, two)
    assert_stale(err.value, resource_id, two, "upgrade")
    assert (written(rt), balance(rt, uin)) == (before, view)
    assert order_row(rt, two)["state"] == "paid"
    with rt.engine.begin() as conn:
        orders.fail_delivery(conn, rt.clock, OPS, two, "resource changed")
    assert balance(rt, uin).frozen == 0
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "FRZ-3")
def test_delivering_an_upgrade_paid_before_the_column_is_refused(shop):
    """Paid (frozen) before revision 0009, awaiting delivery by hand: the delivery is
    refused as stale and the operator's failed delivery gives the money back."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 20_000_00)
    resource_id = ssl_bought(rt, uin)
    old = upgrade(rt, uin, resource_id, SSL_EV)
    pay(rt, uin, [old])
    priced_before_0009(rt, old)
    with pytest.raises(Conflict) as err:
        deliver(rt, old)
    assert_stale(err.value, resource_id, old, "upgrade")
    assert resource(rt, uin, resource_id)["spec_item"] == SSL_OV
    with rt.engine.begin() as conn:
        orders.fail_delivery(conn, rt.clock, OPS, old, "priced before revision 0009")
    assert balance(rt, uin).frozen == 0
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1", "FRZ-3")
def test_paying_an_upgrade_delivered_by_hand_checks_the_resource(shop):
    """Products delivered by hand are only frozen at payment: a stale upgrade is refused
    then, before any money is frozen."""
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, 20_000_00)
    resource_id = ssl_bought(rt, uin)
    one, two = upgrade(rt, uin, resource_id, SSL_EV), upgrade(rt, uin, resource_id, SSL_EV)
    pay(rt, uin, [one])
    deliver(rt, one)
    refused_payment(rt, uin, [two], resource_id, two)
    assert_reconciled(rt)
