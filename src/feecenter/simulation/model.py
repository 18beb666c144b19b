"""The simulator's model: what the rules say the product must hold, in plain Python.

It learns what was accepted from each operation's result (the product decides
refusals) and predicts, with the rules' own formulas and the world's prices:
the money each account brought in (opening money and top-ups), every prepaid
order's amount (ORD-5: unit price x count x months, one half-up rounding) and
state (ORD-1..4), and the exact rated amount of every settled (resource,
billing item, period) from the usage it reported (SET-2: quantity x price).
``checks`` compares these with the database.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feecenter.clock import add_months
from feecenter.money import round_rated_to_fen
from feecenter.periods import DAILY, HOURLY, MONTHLY, period_containing
from feecenter.simulation.world import World

QTY = 1_000_000  # quantities: 1e-6 units
PERIODS = {"hour": HOURLY, "day": DAILY, "month": MONTHLY}
UNPAID_DAYS = 15  # ORD-2: an unpaid order's term


@dataclass
class Order:
    uin: int
    kind: str
    product: str
    spec: str
    count: int
    months: int | None
    amount: int | None  # fen; None: the model does not predict it (upgrades)
    label: str
    created: datetime
    state: str = "unpaid"


@dataclass
class Resource:
    uin: int
    label: str
    product: str
    spec: str
    count: int
    pay_mode: str
    rid: str | None = None  # known once created (postpaid: at opening; prepaid: on delivery)
    live: bool = True
    expires: datetime | None = None
    since: datetime | None = None  # when it was created: usage may not start earlier


@dataclass
class Model:
    world: World
    uins: list[int]
    money_in: dict[int, int] = field(default_factory=dict)  # fen each account brought in
    orders: dict[int, Order] = field(default_factory=dict)
    resources: dict[str, Resource] = field(default_factory=dict)  # by label
    rated: dict[tuple, int] = field(default_factory=lambda: defaultdict(int))  # 1e-8 yuan
    quantity: dict[tuple, int] = field(default_factory=lambda: defaultdict(int))  # 1e-6
    keys: set[str] = field(default_factory=set)  # idempotency keys that took effect
    events: set[str] = field(default_factory=set)
    rerun_settled: bool = True  # the plan settles earlier periods again (else the last only)
    # indexes, so that a step costs the same at 50 accounts as at 10,000
    orders_of: dict[int, list[int]] = field(default_factory=lambda: defaultdict(list))
    labels_of: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    product_of: dict[str, str] = field(default_factory=dict)  # resource id -> product
    awaiting: set[int] = field(default_factory=set)  # paid orders awaiting manual delivery

    @classmethod
    def opening(cls, world: World, uins: list[int]) -> Model:
        model = cls(world, uins)
        for uin, account in zip(uins, world.accounts):
            model.money_in[uin] = account.cash + account.gift
        return model

    # ---------------------------------------------------------------- the rules' formulas

    def prepaid_amount(self, product: str, spec: str, count: int, months: int) -> int:
        """ORD-5: unit price x count x months, rounded half-up once to fen."""
        return round_rated_to_fen(self.world.product(product).item(spec).prepaid * count * months)

    def line_amount(self, product: str, item: str, quantity: int) -> int:
        """SET-2: quantity (1e-6) x price (1e-8 yuan); exact for the world's prices."""
        price = self.world.product(product).item(item).postpaid
        assert quantity * price % QTY == 0, "the world's quantities and prices are exact"
        return quantity * price // QTY

    # ---------------------------------------------------------------- learning from results

    def apply(self, op, result: dict) -> None:
        if "refused" in result:
            return
        if "key" in op.args:  # every keyed operation that took effect (checks.created_once)
            self.keys.add(op.args["key"])
        getattr(self, f"_{op.kind}", lambda op, result: None)(op, result)

    # Each operation is applied once, whichever attempt wrote (a retry's ``created``
    # is False when a killed attempt committed): a second effect shows as a mismatch.

    def _adjust(self, op, result):
        self.money_in[op.uin] += op.args["fen"]
        self.keys.add(op.args["key"])

    def _buy(self, op, result):
        at = datetime.fromisoformat(op.args["at"])
        for order_id, rid, (product, spec, count, months, label) in zip(
                result["order_ids"], result["rids"], op.args["items"]):
            self._order(order_id, Order(op.uin, "new", product, spec, count, months,
                                        self.prepaid_amount(product, spec, count, months),
                                        label, at))
            self._resource(Resource(op.uin, label, product, spec, count, "prepaid", rid=rid,
                                    live=False))

    def _order(self, order_id: int, order: Order) -> None:
        self.orders[order_id] = order
        self.orders_of[order.uin].append(order_id)

    def _resource(self, res: Resource) -> None:
        self.resources[res.label] = res
        self.labels_of[res.uin].append(res.label)
        self.product_of[res.rid] = res.product

    def _renew(self, op, result):
        res = self.resources[op.args["label"]]
        self._order(result["order_ids"][0], Order(
            op.uin, "renew", res.product, res.spec, res.count, op.args["months"],
            self.prepaid_amount(res.product, res.spec, res.count, op.args["months"]),
            res.label, datetime.fromisoformat(op.args["at"])))

    def _upgrade(self, op, result):
        res = self.resources[op.args["label"]]
        self._order(result["order_ids"][0], Order(
            op.uin, "upgrade", res.product, op.args["spec"], res.count, None, None, res.label,
            datetime.fromisoformat(op.args["at"])))

    def _pay(self, op, result):
        self.keys.add(op.args["key"])
        at = datetime.fromisoformat(op.args["at"])
        for order_id in op.args["order_ids"]:
            order = self.orders[order_id]
            manual = self.world.product(order.product).manual
            order.state = "paid" if manual else "delivered"
            if manual:
                self.awaiting.add(order_id)
            else:
                self._delivered(order, at)

    def _delivered(self, order: Order, at: datetime) -> None:
        res = self.resources[order.label]
        if order.kind == "new":
            res.live, res.expires = True, add_months(at, order.months)
        elif order.kind == "renew":
            res.expires = add_months(res.expires, order.months)
        else:
            res.spec = order.spec

    def _deliver(self, op, result):
        order = self.orders[op.args["order_id"]]
        order.state = "delivered"
        self.awaiting.discard(op.args["order_id"])
        self._delivered(order, datetime.fromisoformat(op.args["at"]))

    def _fail(self, op, result):
        self.orders[op.args["order_id"]].state = "delivery_failed"
        self.awaiting.discard(op.args["order_id"])

    def _refund(self, op, result):
        self.keys.add(op.args["key"])
        res = self.resources[op.args["label"]]
        res.live = False
        for order in (self.orders[i] for i in self.orders_of[op.uin]):
            if order.label == res.label and order.state == "delivered":
                order.state = "refunded"

    def _downgrade(self, op, result):
        self.keys.add(op.args["key"])
        self.resources[op.args["label"]].spec = op.args["spec"]

    def _coupon(self, op, result):
        self.keys.add(op.args["key"])

    def _open(self, op, result):
        a = op.args
        self._resource(Resource(op.uin, a["label"], a["product"], a["spec"], a["count"],
                                "postpaid", rid=result["rid"],
                                since=datetime.fromisoformat(a["at"])))

    def _usage(self, op, result):
        product, rejected = self.product_of, set(result.get("rejected_ids", ()))
        for event, rid, item, quantity, _start, end in op.args["records"]:
            if event in self.events or event in rejected:
                continue
            self.events.add(event)
            cycle = self.world.product(product[rid]).cycle
            key = (rid, item, cycle, _period_key(cycle, datetime.fromisoformat(end)))
            micro = _micro(quantity)
            self.quantity[key] += micro
            self.rated[key] += self.line_amount(product[rid], item, micro)

    def expect_state(self, order: Order, now: datetime) -> set[str]:
        """The states an order may be in now: an unpaid one past its term may have
        been expired by the hourly job (ORD-2)."""
        if order.state == "unpaid" and now >= order.created + timedelta(days=UNPAID_DAYS):
            return {"unpaid", "expired"}
        return {order.state}


def _period_key(cycle: str, end: datetime) -> str:
    """A record belongs to the period its end closes (usage.md)."""
    return period_containing(PERIODS[cycle], end - timedelta(microseconds=1)).key


def _micro(quantity: str) -> int:
    whole, _, frac = quantity.partition(".")
    return int(whole) * QTY + int(frac.ljust(6, "0"))
