"""``feecenter renewal …`` (RNW-5, RNW-7): the list, the auto-renew settings, the
account's default and unified day, and the batch renewal with its preview, on
both databases. The CLI runs on the system clock, so resources are bought here
on the system clock too (through the services, as a storefront would)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

import feecenter
from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import SystemClock, add_months, business_time_text, from_db_time
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.resources import service as resources
from feecenter.runtime import Runtime

SAMPLE = Path(feecenter.__file__).parent / "catalog" / "sample_catalog.yaml"


@pytest.fixture
def shop(cli, engine):
    """An account with 5,000 yuan and two cvm bought for a month; (rt, uin, ids)."""
    cli.json("catalog", "load", SAMPLE)
    rt = Runtime(engine=engine, clock=SystemClock())
    _, created = cli.json("account", "create", "--name", "renewer")
    uin = created["uin"]
    cli.json("adjust", "--uin", uin, "--cash", "5000.00", "--reason", "test top-up",
             "--idempotency-key", "top-up-renewer")
    with rt.engine.begin() as conn:
        order_ids = orders.create_purchase(conn, rt.clock, SYSTEM, uin, [
            orders.NewPurchase(product="cvm", region=region, spec_item="S5.MEDIUM4")
            for region in ("ap-guangzhou", "ap-shanghai")])
        orders.pay(conn, rt.clock, SYSTEM, uin, order_ids, key="cli-renewal-buy")
        ids = [o["resource_id"] for o in orders.get_orders(conn, SYSTEM, uin, order_ids)]
    return rt, uin, ids


def _expiry(rt, uin, resource_id):
    with rt.engine.connect() as conn:
        return from_db_time(resources.get_resource(conn, uin, resource_id)["period_end"])


def _order_count(rt):
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(orders_table)).scalar_one()


@pytest.mark.spec("RNW-7")
def test_list_and_set_auto_renew(cli, shop):
    rt, uin, (first, second) = shop
    _, listed = cli.json("renewal", "list", "--uin", uin)
    assert listed["total"] == 2 and {i["resource_id"] for i in listed["items"]} == {first, second}
    assert all(i["auto_renew"] is False and i["months"] == 1 for i in listed["items"])
    _, done = cli.json("renewal", "set", "--uin", uin, "--resource", second, "--on",
                       "--months", "3")
    assert done["updated"] == 1
    _, on = cli.json("renewal", "list", "--uin", uin, "--auto-renew")
    assert [(i["resource_id"], i["months"]) for i in on["items"]] == [(second, 3)]
    _, default = cli.json("renewal", "default", "--uin", uin, "--on")
    assert default["auto_renew_default"] is True
    _, off = cli.json("renewal", "list", "--uin", uin, "--no-auto-renew")
    assert off["total"] == 0
    table = cli("renewal", "list", "--uin", uin).stdout
    assert "Renewals" in table and first[:10] in table
    code, refused = cli.json("renewal", "set", "--uin", uin, "--resource", first, "--months",
                             "0", ok=False)
    assert code == 1 and refused["error"]["field"] == "months"
    code, refused = cli.json("renewal", "list", "--uin", uin, "--limit", "0", ok=False)
    assert code == 1 and refused["error"]["field"] == "limit"


@pytest.mark.spec("RNW-5")
def test_unified_day_preview_then_renew_delivers_the_previewed_expiry(cli, shop):
    rt, uin, (first, second) = shop
    _, shown = cli.json("renewal", "unified-day", "--uin", uin)
    assert shown["unified_day"] is None
    code, refused = cli.json("renewal", "unified-day", "--uin", uin, "--day", "29", ok=False)
    assert code == 1 and refused["error"]["field"] == "unified_day"
    _, shown = cli.json("renewal", "unified-day", "--uin", uin, "--day", "28")
    assert shown["unified_day"] == 28
    before = _expiry(rt, uin, first)
    _, preview = cli.json("renewal", "renew", "--uin", uin, "--resource", first, "--preview")
    (item,) = preview["items"]
    assert item["current_expiry"] == business_time_text(before)
    assert item["term_end"] == business_time_text(add_months(before, 1))
    assert item["new_expiry"][8:10] == "28" and item["new_expiry"][10:] == item["term_end"][10:]
    assert _order_count(rt) == 2  # the preview wrote nothing
    table = cli("renewal", "renew", "--uin", uin, "--resource", first, "--preview").stdout
    assert "unified day: 28" in table and item["amount"] in table
    _, made = cli.json("renewal", "renew", "--uin", uin, "--resource", first,
                       "--idempotency-key", "cli-r-1")
    (order,) = made["orders"]
    assert order["amount"] == item["amount"] and order["state"] == "unpaid"
    assert made["payment_preview"]["amount"] == item["amount"]
    _, paid = cli.json("renewal", "renew", "--uin", uin, "--resource", first, "--pay",
                       "--idempotency-key", "cli-r-1")  # the same order, paid now
    assert [o["order_no"] for o in paid["orders"]] == [order["order_no"]]
    assert paid["payment"]["amount"] == item["amount"] and paid["payment"]["created"] is True
    assert business_time_text(_expiry(rt, uin, first)) == item["new_expiry"]
    _, off = cli.json("renewal", "unified-day", "--uin", uin, "--off")
    assert off["unified_day"] is None


def test_renew_refusals_name_the_field_and_write_nothing(cli, shop):
    rt, uin, (first, _) = shop
    before = _order_count(rt)
    for args, field in ((("--pay",), "idempotency_key"),
                        (("--pay", "--preview", "--idempotency-key", "k"), "pay"),
                        (("--months", "61"), "months")):
        code, refused = cli.json("renewal", "renew", "--uin", uin, "--resource", first, *args,
                                 ok=False)
        assert code == 1 and refused["error"]["field"] == field, refused
    code, refused = cli.json("renewal", "renew", "--uin", uin, "--resource", first,
                             "--resource", first, ok=False)
    assert code == 1 and refused["error"]["field"] == "resource_ids"
    assert _order_count(rt) == before
