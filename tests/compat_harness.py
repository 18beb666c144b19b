"""An account to attack through the Tencent-compatible endpoint, in process.

The ``compat_shop`` fixture: a customer with cash, three vouchers, unpaid
orders and a settled hour of a postpaid CVM (so every action has something
to show), another customer's order, and the app behind a Starlette
TestClient. ``Shop.call`` signs a body with the customer's key (TC3, service
``billing``) one second later each time, so no two requests share a
signature, and returns the ``Response`` object.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.auth import tc3
from feecenter.compat.endpoint import VERSION
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.funds.tables import statement_entries
from feecenter.periods import HOURLY, period_containing
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders.rules import order_no
from feecenter.orders.tables import orders as orders_table
from feecenter.orders.tables import payments
from feecenter.settlement import service as settlement
from tests.helpers import OPS, add_cash, api_key, buy, new_account, row_counts
from tests.test_settlement import ingest, load, open_


@dataclass
class Shop:
    rt: object
    uin: int
    key: object
    client: TestClient
    now: datetime
    orders: list[str]       # order numbers: the customer's unpaid ones, then another's
    vouchers: list[str]     # the customer's voucher ids, then one that does not exist
    resources: list[str]
    refs: list[str] = field(default_factory=list)  # every id above, as text

    def __repr__(self) -> str:  # Hypothesis prints the fixture in a failing example
        return f"Shop(uin={self.uin}, orders={self.orders}, vouchers={self.vouchers})"

    def post(self, action: str, body: bytes | dict, *, english: bool = False):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        timestamp = int(self.rt.clock.advance(seconds=1).timestamp())
        headers = tc3.sign(self.key.secret_id, self.key.secret_key, method="POST",
                           host="testserver", path="/", query="", body=data,
                           content_type="application/json", timestamp=timestamp,
                           service="billing")
        headers.update({"X-TC-Action": action, "X-TC-Version": VERSION,
                        "X-TC-Language": "en-US" if english else "zh-CN"})
        return self.client.post("/", content=data, headers=headers)

    def call(self, action: str, body: bytes | dict, *, english: bool = False) -> dict:
        answer = self.post(action, body, english=english)
        assert answer.status_code == 200, (answer.status_code, answer.text)
        return answer.json()["Response"]

    def written(self) -> tuple[int, ...]:
        """Ledger transactions, 收支明细 entries and payments: what a payment writes."""
        return row_counts(self.rt, ledger_transactions, statement_entries, payments)

    def fresh_order(self) -> str:
        """A new unpaid order of the customer: its order number."""
        (order_id,) = buy(self.rt, self.uin)
        return order_no(order_id, self.rt.clock.now())

    def order_state(self, number: str) -> dict:
        with self.rt.engine.connect() as conn:
            return dict(conn.execute(select(orders_table).where(
                orders_table.c.id == int(number[8:]))).mappings().one())


@pytest.fixture
def compat_shop(rt) -> Shop:
    load(rt)
    uin = new_account(rt, "compat-co")
    add_cash(rt, uin, 10_000_000_00)  # enough for every order a long fuzz run buys
    with rt.engine.begin() as conn:
        vouchers = [str(coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID, face_amount=30_00,
            valid_days=30), campaign="compat", key=f"compat-{n}")) for n in range(3)]
    own = [o for _ in range(3) for o in buy(rt, uin)]
    other = buy(rt, new_account(rt, "compat-other"))
    cvm = open_(rt, uin, name="compat-vm")
    period = period_containing(HOURLY, rt.clock.now())
    rt.clock.set(period.end + timedelta(minutes=5))
    ingest(rt, [("compat-h0", uin, cvm, "S5.MEDIUM4", "1", period.start, period.end)])
    settlement.settle_period(rt.engine, rt.clock, "hour", period)
    now = rt.clock.now()
    numbers = [order_no(o, now) for o in own + other]
    with rt.engine.connect() as conn:
        resources = [cvm] + list(conn.execute(select(orders_table.c.resource_id).where(
            orders_table.c.id.in_(own + other))).scalars())
    vouchers.append(str(int(vouchers[-1]) + 1))
    refs = numbers + [str(o) for o in own] + vouchers + resources + [numbers[0][:8] + "9" * 10]
    return Shop(rt=rt, uin=uin, key=api_key(rt, uin), client=TestClient(create_app(rt)),
                now=now, orders=numbers, vouchers=vouchers, resources=resources, refs=refs)
