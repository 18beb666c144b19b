"""``feecenter orders …``: operators inspect orders, expire unpaid ones and record
manual deliveries (issue #3 item 7), on both databases.

The CLI runs on the system clock, so orders are set up here on the system
clock too (through the services, as a storefront would create them).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

import feecenter
from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import SystemClock, db_time
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.present.orders import order_json
from feecenter.runtime import Runtime

SAMPLE = Path(feecenter.__file__).parent / "catalog" / "sample_catalog.yaml"
CVM = dict(product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4")
SSL = dict(product="ssl", region="mainland", spec_item="OV.single", months=12)


@pytest.fixture
def shop(cli, engine, database_url):
    """The sample catalog loaded with the CLI; a runtime on the CLI's (system) clock."""
    cli.json("catalog", "load", SAMPLE)
    return Runtime(engine=engine, clock=SystemClock())


def customer(cli, name: str, cash: str | None = None) -> int:
    _, created = cli.json("account", "create", "--name", name)
    if cash:
        cli.json("adjust", "--uin", created["uin"], "--cash", cash, "--reason", "test top-up",
                 "--idempotency-key", f"top-up-{name}")
    return created["uin"]


def buy(rt, uin, **item) -> int:
    with rt.engine.begin() as conn:
        (order_id,) = orders.create_purchase(conn, rt.clock, SYSTEM, uin,
                                             [orders.NewPurchase(**{**CVM, **item})])
    return order_id


def pay(rt, uin, order_id) -> dict:
    with rt.engine.begin() as conn:
        return orders.pay(conn, rt.clock, SYSTEM, uin, [order_id], key=f"cli-pay-{order_id}")


def stored(rt, uin, order_id) -> dict:
    with rt.engine.connect() as conn:
        return orders.get_order(conn, SYSTEM, uin, order_id)


def ledger_count(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(ledger_transactions)).scalar_one()


# ---------------------------------------------------------------- list and show

@pytest.mark.spec("ORD-1", "ORD-3")
def test_list_and_show_orders_as_json(cli, shop):
    rt = shop
    uin = customer(cli, "cli-orders", cash="500.00")
    paid_id = buy(rt, uin, months=2)
    pay(rt, uin, paid_id)
    unpaid_id = buy(rt, uin, spec_item="S5.LARGE8")

    _, page = cli.json("orders", "list", "--uin", uin)
    assert page["uin"] == uin and page["total"] == 2
    assert [o["id"] for o in page["items"]] == [unpaid_id, paid_id]  # newest first
    assert page["items"] == [order_json(stored(rt, uin, i)) for i in (unpaid_id, paid_id)]
    newest, oldest = page["items"]
    assert (newest["state"], newest["amount"], newest["paid_cash"]) == ("unpaid", "356.00",
                                                                      "0.00")
    assert (oldest["state"], oldest["amount"], oldest["paid_cash"]) == ("delivered", "356.00",
                                                                      "356.00")
    assert len(oldest["order_no"]) == 18 and len(oldest["paid_at"]) == 19  # Shanghai time text

    _, delivered = cli.json("orders", "list", "--uin", uin, "--state", "delivered")
    assert [o["id"] for o in delivered["items"]] == [paid_id] and delivered["total"] == 1
    _, both = cli.json("orders", "list", "--uin", uin, "--state", "delivered", "--state",
                       "unpaid")
    assert both["total"] == 2
    _, paged = cli.json("orders", "list", "--uin", uin, "--limit", "1", "--offset", "1")
    assert paged["total"] == 2 and [o["id"] for o in paged["items"]] == [paid_id]
    resource_id = oldest["resource_id"]
    _, by_resource = cli.json("orders", "list", "--uin", uin, "--resource", resource_id)
    assert [o["id"] for o in by_resource["items"]] == [paid_id]

    _, shown = cli.json("orders", "show", "--uin", uin, "--order", oldest["order_no"])
    assert shown == oldest
    _, by_id = cli.json("orders", "show", "--uin", uin, "--order", paid_id)
    assert by_id == oldest


def test_human_output_is_a_table_with_yuan_amounts(cli, shop):
    rt = shop
    uin = customer(cli, "cli-human", cash="200.00")
    order_id = buy(rt, uin)
    pay(rt, uin, order_id)
    number = order_json(stored(rt, uin, order_id))["order_no"]
    listing = cli("orders", "list", "--uin", uin).stdout
    assert number in listing and "178.00" in listing and "delivered" in listing
    shown = cli("orders", "show", "--uin", uin, "--order", number).stdout
    assert number in shown and "178.00" in shown and "S5.MEDIUM4" in shown


@pytest.mark.parametrize("args, field", [
    (["list", "--uin", "{uin}", "--state", "lost"], "state"),
    (["list", "--uin", "{uin}", "--limit", "0"], "limit"),
    (["show", "--uin", "{uin}", "--order", "12-34"], "order"),
    (["show", "--uin", "{uin}", "--order", "987654"], "order_id"),
    (["list", "--uin", "424242424242"], "uin"),
])
def test_refusals_exit_1_naming_the_field(cli, shop, args, field):
    uin = customer(cli, "cli-refusals")
    code, body = cli.json("orders", *[a.format(uin=uin) for a in args], ok=False)
    assert code == 1 and body["error"]["field"] == field, body
    assert body["error"]["message_zh"] and body["error"]["message_en"]
    plain = cli("orders", *[a.format(uin=uin) for a in args], ok=False)
    assert plain.exit_code == 1 and field in plain.stderr


def test_another_accounts_order_is_not_found(cli, shop):
    rt = shop
    owner, other = customer(cli, "cli-owner"), customer(cli, "cli-other")
    order_id = buy(rt, owner)
    code, body = cli.json("orders", "show", "--uin", other, "--order", order_id, ok=False)
    assert code == 1 and body["error"]["field"] == "order_id"
    _, page = cli.json("orders", "list", "--uin", other)
    assert page["total"] == 0


def test_bad_usage_exits_2(cli, shop):
    assert cli("orders", "list", ok=False).exit_code == 2  # --uin is required
    assert cli("orders", "show", "--uin", "1", ok=False).exit_code == 2  # --order too
    assert cli("orders", "list", "--uin", "abc", ok=False).exit_code == 2


# ---------------------------------------------------------------- expire

@pytest.mark.spec("ORD-2")
def test_expire_closes_unpaid_orders_past_their_term(cli, shop):
    rt = shop
    uin = customer(cli, "cli-expire", cash="1000.00")
    old, fresh = buy(rt, uin), buy(rt, uin)
    with rt.engine.begin() as conn:  # its 15 days are over
        conn.execute(update(orders_table).where(orders_table.c.id == old).values(
            expires_at=db_time(rt.clock.now() - timedelta(seconds=1))))
    assert cli.json("orders", "expire") == (0, {"expired": 1})
    assert cli.json("orders", "expire") == (0, {"expired": 0})
    assert "expired: 0" in cli("orders", "expire").stdout
    _, shown = cli.json("orders", "show", "--uin", uin, "--order", old)
    assert shown["state"] == "expired" and shown["closed_at"]
    assert stored(rt, uin, fresh)["state"] == "unpaid"
    _, page = cli.json("orders", "list", "--uin", uin, "--state", "expired")
    assert [o["id"] for o in page["items"]] == [old]


# ---------------------------------------------------------------- manual delivery

@pytest.mark.spec("FRZ-3", "FRZ-4")
def test_deliver_posts_the_freeze_and_fail_releases_it(cli, shop):
    rt = shop
    uin = customer(cli, "cli-ssl", cash="10000.00")
    ok, bad = buy(rt, uin, **SSL), buy(rt, uin, **SSL)
    for order_id in (ok, bad):
        assert pay(rt, uin, order_id)["states"] == {order_id: "paid"}
    _, money = cli.json("balance", "--uin", uin)
    assert (money["cash"], money["frozen"]) == ("10000.00", "7920.00")

    number = order_json(stored(rt, uin, ok))["order_no"]
    _, delivered = cli.json("orders", "deliver", "--order", number, "--uin", uin)
    assert delivered["state"] == "delivered" and delivered["service_start"]
    assert delivered == order_json(stored(rt, uin, ok))
    _, failed = cli.json("orders", "deliver", "--order", bad, "--uin", uin, "--fail",
                         "--reason", "CA 拒绝签发")
    assert (failed["state"], failed["failure_reason"]) == ("delivery_failed", "CA 拒绝签发")
    _, money = cli.json("balance", "--uin", uin)
    assert (money["cash"], money["frozen"]) == ("6040.00", "0.00")
    _, transactions = cli.json("transactions", "--uin", uin, "--type", "deduct", "--type",
                               "unblock")
    assert [e["action_type"] for e in transactions["items"]] == ["unblock", "deduct"]
    assert cli.json("reconcile") == (0, {"clean": True, "differences": []})


def test_deliver_refusals_write_nothing(cli, shop):
    rt = shop
    uin = customer(cli, "cli-ssl-bad", cash="10000.00")
    other = customer(cli, "cli-ssl-other")
    order_id = buy(rt, uin, **SSL)
    pay(rt, uin, order_id)
    unpaid = buy(rt, uin, **SSL)
    before = ledger_count(rt)
    for account, extra, field in (
        (uin, ["--fail"], "reason"),           # a failure needs its reason
        (uin, ["--reason", "why"], "reason"),  # a reason needs --fail
        (other, [], "order_id"),               # not that account's order
    ):
        code, body = cli.json("orders", "deliver", "--order", order_id, "--uin", account, *extra,
                              ok=False)
        assert code == 1 and body["error"]["field"] == field, body
    code, body = cli.json("orders", "deliver", "--order", unpaid, "--uin", uin, ok=False)
    assert code == 1 and body["error"]["code"] == "Conflict"  # unpaid: nothing to deliver
    assert ledger_count(rt) == before
    assert stored(rt, uin, order_id)["state"] == "paid"
    _, money = cli.json("balance", "--uin", uin)
    assert money["frozen"] == "3960.00"
    cli.json("orders", "deliver", "--order", order_id, "--uin", uin)
    code, body = cli.json("orders", "deliver", "--order", order_id, "--uin", uin, "--fail",
                          "--reason", "late", ok=False)
    assert code == 1 and (body["error"]["code"], body["error"]["field"]) == ("Conflict", "order_id")
