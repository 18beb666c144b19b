"""Native REST routes for projects, resources, orders, payment and delivery
(api/orders.py) and the catalog (api/catalog.py), served for real and called
with the signed ``FeeCenterClient``. Amounts are yuan strings.

The server runs on the test's FixedClock and the clients sign with it
(``Client``): no test here depends on the real date. Every request carries a
fresh signed nonce, so a retry is a new request, as a real client's must be.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from feecenter.auth import service as auth
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.money import parse_yuan
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from tests.helpers import (OPS, add_cash, add_gift, api_key, assert_reconciled, load_sample_catalog,
                           new_account, row_counts)

CVM = {"product": "cvm", "region": "ap-guangzhou", "spec_item": "S5.MEDIUM4"}
SSL = {"product": "ssl", "region": "mainland", "spec_item": "OV.single", "months": 12}


class Client(FeeCenterClient):
    """Signs every request with the time of the test's clock (the server's); waits up to
    60 s for an answer, as the other live-server tests do (a loaded CI machine)."""

    def __init__(self, rt, *args):
        super().__init__(*args, clock=lambda: rt.clock.now().timestamp(), timeout_s=60)


@pytest.fixture
def shop(live_server_on_test_clock):
    rt, _ = live_server_on_test_clock
    load_sample_catalog(rt)
    return live_server_on_test_clock


def customer(rt, address, uin) -> Client:
    key = api_key(rt, uin)
    return Client(rt, f"http://{address}", key.secret_id, key.secret_key)


def operator(rt, address) -> Client:
    with transaction(rt.engine) as conn:
        _, key = auth.create_operator(conn, rt.clock, OPS, f"ops-{time.monotonic_ns()}")
    return Client(rt, f"http://{address}", key.secret_id, key.secret_key)


def refused(call, status: int, field: str | None) -> dict:
    with pytest.raises(ApiError) as err:
        call()
    assert err.value.status == status, err.value.body
    error = err.value.body["error"]
    if field is not None:
        assert error["field"] == field, error
    assert error["message_zh"] and error["message_en"]
    return error


def written(rt) -> tuple[int, ...]:
    return row_counts(rt, ledger_transactions, statement_entries, payments, orders_table)


def fen(yuan: str) -> int:
    return parse_yuan(yuan, allow_negative=True, allow_zero=True)


def shanghai(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


class Shopper:
    """A customer account with money and a signed client, and its URLs."""

    def __init__(self, rt, address, name, cash_fen=0, gift_fen=0):
        self.uin = new_account(rt, name)
        if cash_fen:
            add_cash(rt, self.uin, cash_fen)
        if gift_fen:
            add_gift(rt, self.uin, gift_fen)
        self.api = customer(rt, address, self.uin)
        self.base = f"/api/v1/accounts/{self.uin}"

    def buy(self, **item) -> list[dict]:
        return self.api.post(f"{self.base}/orders", {"items": [{**CVM, **item}]})["orders"]

    def pay(self, *order_nos, key) -> dict:
        return self.api.post(f"{self.base}/payments", {"order_ids": list(order_nos)},
                             Idempotency_Key=key)

    def order(self, ref) -> dict:
        return self.api.get(f"{self.base}/orders/{ref}")

    def balance(self) -> dict:
        return self.api.get(f"{self.base}/balance")

    def resource(self, resource_id) -> dict:
        (found,) = [r for r in self.api.get(f"{self.base}/resources")
                    if r["id"] == resource_id]
        return found

    def change(self, resource_id, **body) -> dict:
        return self.api.post(f"{self.base}/resources/{resource_id}/orders", body)


# ---------------------------------------------------------------- buying and paying

@pytest.mark.spec("ORD-1", "ORD-2", "ORD-3", "BAL-3")
def test_purchase_preview_then_pay_once_with_an_idempotency_key(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-buyer", cash_fen=500_00, gift_fen=20_00)
    (order,) = me.buy(months=2, resource_name="web-1", tags={"team": "a"})
    assert (order["kind"], order["state"], order["amount"], order["list_amount"]) == (
        "new", "unpaid", "356.00", "356.00")
    # a price per month with the catalog's 8 decimals, a quantity in the item's unit
    assert (order["unit_price"], order["quantity"], order["months"]) == ("178.00000000", "1", 2)
    number = order["order_no"]
    assert len(number) == 18 and number.isdigit() and number.endswith(f"{order['id']:010d}")
    term = shanghai(order["expires_at"]) - shanghai(order["created_at"])
    assert abs(term - timedelta(days=15)) < timedelta(seconds=2)  # ORD-2

    before = written(rt)
    plan = me.api.post(f"{me.base}/payments/preview", {"order_ids": [number]})
    assert plan["totals"] == {"amount": "356.00", "coupon": "0.00", "gift": "20.00",
                              "cash": "336.00", "credit": "0.00"}
    assert plan["orders"][0]["order_id"] == order["id"]
    assert written(rt) == before  # a preview writes nothing
    assert me.order(number)["state"] == "unpaid"

    paid = me.pay(number, key="checkout-1")
    assert paid["created"] is True and paid["order_ids"] == [order["id"]]
    assert (paid["amount"], paid["gift"], paid["cash"], paid["credit"]) == (
        "356.00", "20.00", "336.00", "0.00")
    assert paid["states"] == {str(order["id"]): "delivered"}
    after_first = written(rt)
    again = me.pay(number, key="checkout-1")  # a retry, re-signed a second later
    assert again["payment_id"] == paid["payment_id"] and again["created"] is False
    assert written(rt) == after_first
    assert (me.balance()["cash"], me.balance()["gift"]) == ("164.00", "0.00")

    refused(lambda: me.pay(number, key="checkout-2"), 409, "order_ids")  # paid already
    (second,) = me.buy()
    refused(lambda: me.pay(second["order_no"], key="checkout-1"), 409, "idempotency_key")

    shown = me.order(number)
    assert (shown["state"], shown["paid_gift"], shown["paid_cash"]) == ("delivered", "20.00",
                                                                       "336.00")
    assert me.order(order["id"])["order_no"] == number  # the internal id works too
    page = me.api.get(f"{me.base}/orders", "state=delivered")
    assert page["total"] == 1 and page["items"][0]["order_no"] == number
    assert me.api.get(f"{me.base}/orders", "state=unpaid")["items"][0]["id"] == second["id"]
    assert me.api.get(f"{me.base}/orders")["total"] == 2
    resource = me.resource(shown["resource_id"])
    assert (resource["name"], resource["tags"], resource["state"]) == ("web-1", {"team": "a"},
                                                                       "running")
    assert resource["period_start"] == shown["service_start"]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-3")
def test_merged_purchase_paid_in_one_payment(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-merged", cash_fen=1_000_00)
    first, second = me.api.post(f"{me.base}/orders", {"items": [
        CVM, {**CVM, "spec_item": "S5.LARGE8", "region": "ap-beijing"}]})["orders"]
    assert first["big_deal_id"] == second["big_deal_id"] == first["id"]
    plan = me.api.post(f"{me.base}/payments/preview",
                       {"order_ids": [first["order_no"], second["order_no"]]})
    assert plan["totals"]["amount"] == "534.00"
    paid = me.pay(first["order_no"], second["order_no"], key="merged")
    assert paid["amount"] == "534.00" and set(paid["states"].values()) == {"delivered"}
    blocks = me.api.get(f"{me.base}/transactions", "type=block")
    assert blocks["total"] == 1 and blocks["items"][0]["amount"] == "-534.00"
    assert me.balance()["cash"] == "466.00"


@pytest.mark.spec("ORD-3")
def test_preview_shows_the_coupons_and_pay_takes_the_customers_pick(shop):
    from feecenter.coupons import rules as coupon_rules
    from feecenter.coupons import service as coupons

    rt, address = shop
    me = Shopper(rt, address, "rest-coupons", cash_fen=1_000_00)
    with transaction(rt.engine) as conn:
        voucher = coupons.grant(conn, rt.clock, OPS, me.uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=25_00,
            valid_days=30), campaign="rest")
    (first,) = me.buy()
    (second,) = me.buy()
    plan = me.api.post(f"{me.base}/payments/preview", {"order_ids": [first["order_no"]]})
    assert plan["totals"]["coupon"] == "25.00" and plan["totals"]["cash"] == "153.00"
    assert plan["coupon_uses"] == [{"coupon_id": voucher, "order_id": first["id"],
                                    "amount": "25.00"}]
    none = me.api.post(f"{me.base}/payments/preview",
                       {"order_ids": [first["order_no"]], "coupon_ids": []})
    assert none["totals"]["coupon"] == "0.00" and none["coupon_uses"] == []
    paid = me.api.post(f"{me.base}/payments", {"order_ids": [first["order_no"]],
                                               "coupon_ids": []}, Idempotency_Key="no-coupon")
    assert (paid["coupon"], paid["cash"]) == ("0.00", "178.00")
    paid = me.api.post(f"{me.base}/payments", {"order_ids": [second["order_no"]],
                                               "coupon_ids": [voucher]}, Idempotency_Key="picked")
    assert (paid["coupon"], paid["cash"]) == ("25.00", "153.00")
    assert me.order(second["order_no"])["paid_coupon"] == "25.00"
    assert me.balance()["cash"] == "669.00"
    assert_reconciled(rt)


@pytest.mark.spec("BAL-4")
def test_paying_beyond_the_balance_is_refused(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-short", cash_fen=100_00)
    (order,) = me.buy()
    before = written(rt)
    error = refused(lambda: me.pay(order["order_no"], key="short"), 402, None)
    assert error["code"] == "InsufficientBalance"
    assert written(rt) == before and me.balance()["cash"] == "100.00"


@pytest.mark.spec("ORD-1", "ORD-4")
def test_renew_upgrade_downgrade_and_refund_a_resource(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-lifecycle", cash_fen=5_000_00)
    (order,) = me.buy()
    me.pay(order["order_no"], key="buy")
    resource_id = me.order(order["order_no"])["resource_id"]
    first_end = me.resource(resource_id)["period_end"]

    renewal = me.change(resource_id, action="renew", months=2)
    assert (renewal["kind"], renewal["state"], renewal["amount"]) == ("renew", "unpaid", "356.00")
    assert renewal["service_start"] == first_end
    me.pay(renewal["order_no"], key="renew")
    renewed = me.resource(resource_id)
    assert shanghai(renewed["period_end"]) - shanghai(first_end) >= timedelta(days=59)

    upgrade = me.change(resource_id, action="upgrade", spec_item="S5.LARGE8")
    assert upgrade["kind"] == "upgrade" and upgrade["state"] == "unpaid"
    # the prorated difference of 178.00 a month over about three months left
    assert 500_00 < fen(upgrade["amount"]) < 560_00
    me.pay(upgrade["order_no"], key="upgrade")
    assert me.resource(resource_id)["spec_item"] == "S5.LARGE8"
    cash_before = me.balance()["cash"]

    refused(lambda: me.change(resource_id, action="downgrade", spec_item="S5.MEDIUM4"),
            400, "idempotency_key")
    down = me.api.post(f"{me.base}/resources/{resource_id}/orders",
                       {"action": "downgrade", "spec_item": "S5.MEDIUM4"},
                       Idempotency_Key="down-1")
    assert down["kind"] == "downgrade" and down["state"] == "delivered"
    back = -fen(down["amount"])
    assert 0 < back and abs(back - fen(upgrade["amount"])) <= 1  # seconds later: same money
    assert fen(me.balance()["cash"]) == fen(cash_before) + back
    assert me.resource(resource_id)["spec_item"] == "S5.MEDIUM4"

    refund = me.change(resource_id, action="refund", idempotency_key="refund-1")
    assert (refund["kind"], refund["state"]) == ("refund", "refunded")
    assert refund["amount"].startswith("-")
    assert me.resource(resource_id)["state"] == "recycled"
    assert me.order(order["order_no"])["state"] == "refunded"
    # inside the no-reason window (ORD-4): everything paid comes back
    assert me.balance()["cash"] == "5000.00"
    refused(lambda: me.change(resource_id, action="refund", idempotency_key="refund-2"),
            409, "resource_id")
    refused(lambda: me.change(resource_id, action="renew", months=1), 409, "resource_id")
    listed = me.api.get(f"{me.base}/orders", f"resource_id={resource_id}&limit=10")
    assert [o["kind"] for o in listed["items"]] == ["refund", "downgrade", "upgrade", "renew",
                                                    "new"]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-1")
def test_an_upgrade_order_made_stale_by_a_downgrade_is_refused(shop):
    """Priced LARGE8→2XLARGE16; downgraded to MEDIUM4 meanwhile: paying it is a 409
    naming the resource, nothing is written, and a new upgrade order pays."""
    rt, address = shop
    me = Shopper(rt, address, "rest-stale", cash_fen=5_000_00)
    (order,) = me.buy(spec_item="S5.LARGE8")
    me.pay(order["order_no"], key="buy")
    resource_id = me.order(order["order_no"])["resource_id"]
    stale = me.change(resource_id, action="upgrade", spec_item="S5.2XLARGE16")
    me.change(resource_id, action="downgrade", spec_item="S5.MEDIUM4", idempotency_key="down")
    before, cash = written(rt), me.balance()["cash"]
    error = refused(lambda: me.pay(stale["order_no"], key="stale"), 409, "resource_id")
    assert resource_id in error["message_zh"] and "升配订单" in error["message_zh"]
    assert resource_id in error["message_en"] and "new upgrade order" in error["message_en"]
    assert error["details"]["resource_id"] == resource_id
    assert (written(rt), me.balance()["cash"]) == (before, cash)
    fresh = me.change(resource_id, action="upgrade", spec_item="S5.2XLARGE16")
    assert fen(fresh["amount"]) > fen(stale["amount"])  # from MEDIUM4 now
    me.pay(fresh["order_no"], key="fresh")
    assert fen(me.balance()["cash"]) == fen(cash) - fen(fresh["amount"])
    assert me.resource(resource_id)["spec_item"] == "S5.2XLARGE16"
    assert_reconciled(rt)


@pytest.mark.spec("SET-7")
def test_projects_create_rename_and_move(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-projects", cash_fen=1_000_00)
    web = me.api.post(f"{me.base}/projects", {"name": "web"})["project_id"]
    data = me.api.post(f"{me.base}/projects", {"name": "data"})["project_id"]
    refused(lambda: me.api.post(f"{me.base}/projects", {"name": "web"}), 409, "name")
    refused(lambda: me.api.post(f"{me.base}/projects", {"name": "  "}), 400, "name")
    (order,) = me.buy(project_id=web)
    assert (order["project_id"], order["project_name"]) == (web, "web")
    me.pay(order["order_no"], key="projects")
    resource_id = me.order(order["order_no"])["resource_id"]

    assert me.api.put(f"{me.base}/projects/{web}", {"name": "website"})["name"] == "website"
    names = {p["id"]: p["name"] for p in me.api.get(f"{me.base}/projects")}
    assert names[web] == "website" and names[data] == "data" and "默认项目" in names.values()
    renewal = me.change(resource_id, action="renew", months=1)
    assert renewal["project_name"] == "website"
    assert me.order(order["order_no"])["project_name"] == "web"  # the name at the time

    moved = me.api.post(f"{me.base}/resources/move",
                        {"resource_ids": [resource_id], "project_id": data})
    assert moved == {"moved": [resource_id], "project_id": data}
    in_data = me.api.get(f"{me.base}/resources", f"project_id={data}")
    assert [r["id"] for r in in_data] == [resource_id]
    assert me.api.get(f"{me.base}/resources", f"project_id={web}") == []
    later = me.change(resource_id, action="renew", months=1)
    assert (later["project_id"], later["project_name"]) == (data, "data")
    refused(lambda: me.api.post(f"{me.base}/resources/move",
                                {"resource_ids": ["cvm-nosuchthing"], "project_id": data}),
            404, "resource_id")
    refused(lambda: me.api.post(f"{me.base}/resources/move",
                                {"resource_ids": [resource_id], "project_id": 999999}),
            404, "project_id")
    refused(lambda: me.buy(project_id=999999), 404, "project_id")


# ---------------------------------------------------------------- operators

@pytest.mark.spec("FRZ-2", "FRZ-3", "FRZ-4")
def test_operator_records_manual_delivery_success_and_failure(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-ssl", cash_fen=12_000_00)
    ops = operator(rt, address)
    ok, bad, spare = (me.buy(**SSL)[0] for _ in range(3))
    assert ok["amount"] == "3960.00"
    for order in (ok, bad, spare):
        paid = me.pay(order["order_no"], key=f"ssl-{order['id']}")
        assert paid["states"] == {str(order["id"]): "paid"}  # waits for the CA
    view = me.balance()
    assert (view["cash"], view["frozen"], view["available"]) == ("12000.00", "11880.00",
                                                                 "120.00")

    refused(lambda: me.api.post(f"/api/v1/ops/orders/{ok['order_no']}/delivery",
                                {"uin": me.uin}), 403, None)
    delivered = ops.post(f"/api/v1/ops/orders/{ok['order_no']}/delivery", {"uin": me.uin})
    assert delivered["state"] == "delivered" and delivered["service_end"]
    failed = ops.post(f"/api/v1/ops/orders/{bad['order_no']}/delivery",
                      {"uin": me.uin, "success": False, "reason": "CA 拒绝签发"})
    assert (failed["state"], failed["failure_reason"]) == ("delivery_failed", "CA 拒绝签发")
    refused(lambda: ops.post(f"/api/v1/ops/orders/{spare['order_no']}/delivery",
                             {"uin": me.uin, "success": False}), 400, "reason")
    refused(lambda: ops.post(f"/api/v1/ops/orders/{bad['order_no']}/delivery",
                             {"uin": me.uin}), 409, "order_id")
    refused(lambda: ops.post("/api/v1/ops/orders/not-an-order/delivery", {"uin": me.uin}),
            400, "order")
    assert me.order(spare["order_no"])["state"] == "paid"

    view = me.balance()
    assert (view["cash"], view["frozen"]) == ("8040.00", "3960.00")  # spare still frozen
    types = [e["action_type"] for e in me.api.get(f"{me.base}/transactions")["items"]]
    assert types[:2] == ["unblock", "deduct"]  # newest first
    resources = me.api.get(f"{me.base}/resources", "product=ssl")
    assert [r["id"] for r in resources] == [delivered["resource_id"]]
    assert_reconciled(rt)


@pytest.mark.spec("ORD-2")
def test_operator_expires_unpaid_orders_past_their_term(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-expire", cash_fen=1_000_00)
    ops = operator(rt, address)
    (old,) = me.buy()
    (fresh,) = me.buy()
    with transaction(rt.engine) as conn:  # 15 days went by for the first one
        conn.execute(update(orders_table).where(orders_table.c.id == old["id"]).values(
            expires_at=db_time(rt.clock.now() - timedelta(seconds=1))))
    refused(lambda: me.pay(old["order_no"], key="too-late"), 409, "order_ids")
    refused(lambda: me.api.post("/api/v1/ops/orders/expire"), 403, None)
    assert ops.post("/api/v1/ops/orders/expire") == {"expired": 1}
    assert ops.post("/api/v1/ops/orders/expire") == {"expired": 0}
    assert me.order(old["order_no"])["state"] == "expired"
    assert me.order(fresh["order_no"])["state"] == "unpaid"
    assert me.api.get(f"{me.base}/orders", "state=expired")["total"] == 1
    refused(lambda: me.pay(old["order_no"], key="still-too-late"), 409, "order_ids")
    assert me.balance()["cash"] == "1000.00"


# ---------------------------------------------------------------- refusals

@pytest.mark.parametrize("item, status, field", [
    ({"months": 0}, 400, "items.0.months"),
    ({"months": -3}, 400, "items.0.months"),
    ({"count": 0}, 400, "items.0.count"),
    ({"count": 1001}, 400, "items.0.count"),
    ({"product": "nope"}, 404, "product"),
    ({"region": "mars-1"}, 404, "region"),
    ({"spec_item": "S9.HUGE"}, 404, "item"),
    ({**SSL, "months": 1}, 400, "months"),  # certificates are sold by the year
    ({"months": "two"}, 400, "items.0.months"),
    ({"months": "1"}, 400, "items.0.months"),  # a string is not an integer (docs/api.md, "Strict input")
    ({"months": True}, 400, "items.0.months"),
    ({"months": 1.0}, 400, "items.0.months"),
    ({"colour": "red"}, 400, "items.0.colour"),  # unknown fields are refused, not ignored
])
def test_bad_purchases_name_the_field_and_write_nothing(shop, item, status, field):
    rt, address = shop
    me = Shopper(rt, address, "rest-bad-buy")
    before = written(rt)
    refused(lambda: me.buy(**item), status, field)
    assert written(rt) == before


def test_bad_requests_name_the_field(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-bad", cash_fen=1_000_00)
    (order,) = me.buy()
    me.pay(order["order_no"], key="bad-setup")
    resource_id = me.order(order["order_no"])["resource_id"]
    (unpaid,) = me.buy()
    before = written(rt)
    refused(lambda: me.api.post(f"{me.base}/orders", {"items": []}), 400, "items")
    refused(lambda: me.api.post(f"{me.base}/payments", {"order_ids": [unpaid["order_no"]]}),
            400, "idempotency_key")
    refused(lambda: me.pay("12ab", key="bad-ref"), 400, "order_ids")
    refused(lambda: me.pay(unpaid["order_no"], unpaid["order_no"], key="twice"), 400,
            "order_ids")
    refused(lambda: me.pay("202601010000999999", key="unknown"), 404, "order_ids")
    refused(lambda: me.api.post(f"{me.base}/payments/preview", {"order_ids": []}), 400,
            "order_ids")
    refused(lambda: me.api.get(f"{me.base}/orders", "state=lost"), 400, "state")
    refused(lambda: me.api.get(f"{me.base}/orders", "start=yesterday"), 400, "start")
    refused(lambda: me.api.get(f"{me.base}/orders", "limit=0"), 400, "limit")
    refused(lambda: me.order("2026-01-01"), 400, "order")
    refused(lambda: me.order(987654), 404, "order_id")
    refused(lambda: me.change(resource_id, action="renew"), 400, "months")
    refused(lambda: me.change(resource_id, action="renew", months=0), 400, "months")
    refused(lambda: me.change(resource_id, action="upgrade", spec_item="S5.MEDIUM4"), 400,
            "spec_item")
    refused(lambda: me.change(resource_id, action="upgrade"), 400, "spec_item")
    refused(lambda: me.change(resource_id, action="downgrade", spec_item="S5.LARGE8",
                              idempotency_key="d"), 400, "spec_item")
    refused(lambda: me.change(resource_id, action="explode"), 400, "action")
    refused(lambda: me.change("cvm-nosuchthing", action="renew", months=1), 404, "resource_id")
    refused(lambda: me.pay(unpaid["order_no"], key="k" * 300), 400, "idempotency_key")
    assert written(rt) == before


@pytest.mark.spec("ACC-2")
def test_another_account_cannot_see_or_pay_my_orders(shop):
    rt, address = shop
    owner = Shopper(rt, address, "rest-owner", cash_fen=1_000_00)
    stranger = Shopper(rt, address, "rest-stranger", cash_fen=1_000_00)
    (order,) = owner.buy()
    refused(lambda: stranger.api.get(f"{owner.base}/orders"), 403, None)
    refused(lambda: stranger.api.get(f"{owner.base}/orders/{order['order_no']}"), 403, None)
    refused(lambda: stranger.api.post(f"{owner.base}/payments",
                                      {"order_ids": [order["order_no"]]},
                                      Idempotency_Key="steal"), 403, None)
    refused(lambda: stranger.pay(order["order_no"], key="steal-2"), 404, "order_ids")
    refused(lambda: stranger.order(order["order_no"]), 404, "order_id")
    assert owner.order(order["order_no"])["state"] == "unpaid"
    assert stranger.balance()["cash"] == "1000.00"


@pytest.mark.spec("ORD-3")
def test_idempotency_keys_belong_to_one_account(shop):
    """Two customers who happen to pick the same key each get their own payment."""
    rt, address = shop
    alice = Shopper(rt, address, "rest-alice", cash_fen=1_000_00)
    bob = Shopper(rt, address, "rest-bob", cash_fen=1_000_00)
    (hers,) = alice.buy()
    (his,) = bob.buy()
    first = alice.pay(hers["order_no"], key="checkout-1")
    second = bob.pay(his["order_no"], key="checkout-1")
    assert second["created"] is True and second["payment_id"] != first["payment_id"]
    assert bob.order(his["order_no"])["state"] == "delivered"
    assert (alice.balance()["cash"], bob.balance()["cash"]) == ("822.00", "822.00")
    assert alice.pay(hers["order_no"], key="checkout-1")["payment_id"] == first["payment_id"]


@pytest.mark.parametrize("action, body", [
    ("refund", {}),
    ("downgrade", {"spec_item": "S5.MEDIUM4"}),
])
def test_retrying_a_refund_or_downgrade_with_its_key_returns_the_first_result(shop, action,
                                                                               body):
    rt, address = shop
    me = Shopper(rt, address, f"rest-retry-{action}", cash_fen=1_000_00)
    (order,) = me.buy(spec_item="S5.LARGE8")
    me.pay(order["order_no"], key="buy")
    resource_id = me.order(order["order_no"])["resource_id"]
    first = me.change(resource_id, action=action, idempotency_key="once", **body)
    before = written(rt)
    again = me.change(resource_id, action=action, idempotency_key="once", **body)  # re-signed
    assert again["id"] == first["id"]
    assert written(rt) == before


def test_order_number_carries_the_business_date():
    from feecenter.orders.rules import order_no

    created = datetime(2026, 3, 1, 23, 30)  # stored naive UTC: 07:30 on 2 March in Shanghai
    assert order_no(42, created) == "202603020000000042"


# ---------------------------------------------------------------- catalog

@pytest.mark.spec("ORD-5")
def test_catalog_products_are_listed_to_any_signed_caller(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-catalog")
    products = {p["code"]: p for p in me.api.get("/api/v1/catalog/products")}
    assert set(products) >= {"cvm", "cbs", "cos", "cdn", "cdb", "ssl"}
    ssl = products["ssl"]
    assert (ssl["tax_category"], ssl["tax_rate_bp"], ssl["delivery_mode"]) == (
        "software", 1300, "manual")
    assert ssl["prepaid_months"] == [12, 24, 36] and ssl["pay_modes"] == ["prepaid"]
    assert products["cvm"]["tax_rate_bp"] == 600
    assert "prepaid" in products["cvm"]["pay_modes"]
    refused(lambda: Client(rt, me.api.base_url, me.api.secret_id, "x" * 32).get(
        "/api/v1/catalog/products"), 401, None)


@pytest.mark.spec("ORD-5")
def test_quote_prices_what_an_order_then_charges(shop):
    rt, address = shop
    me = Shopper(rt, address, "rest-quote", cash_fen=1_000_00)
    query = "product=cvm&item=S5.MEDIUM4&region=ap-guangzhou&pay_mode=prepaid&months=2"
    quote = me.api.get(f"{me.base}/quote", query)
    assert (quote["amount"], quote["list_amount"], quote["discount_bp"]) == (
        "356.00000000", "356.00000000", 10000)
    assert quote["price_kind"] == "list" and quote["quantity"] == "1"
    (order,) = me.buy(months=2)
    assert order["amount"] == "356.00"
    refused(lambda: me.api.get(f"{me.base}/quote", query.replace("ap-guangzhou", "mars-1")),
            404, "region")
    refused(lambda: me.api.get(f"{me.base}/quote", query.replace("months=2", "months=0")),
            400, "months")
    other = Shopper(rt, address, "rest-quote-other")
    refused(lambda: other.api.get(f"{me.base}/quote", query), 403, None)
