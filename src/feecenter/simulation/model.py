"""The simulator's model: what the rules say the product must hold, in plain Python.

It learns what was accepted from each operation's result (the product decides
refusals) and predicts, with the rules' own formulas and the world's prices:
the money each account brought in (opening money and top-ups), every prepaid
order's amount (ORD-5: unit price x count x months, one half-up rounding) and
state (ORD-1..4), the amount of every upgrade and downgrade (the prorated
difference for the remaining time) and what every refund and downgrade gives back
to gift, cash and coupons (ORD-4), and the exact rated amount of every settled
(resource, billing item, period) from the usage it reported (SET-2: quantity x
price). For prepaid resources it follows expiry (RNW-1..6, docs/renewal.md):
each resource's auto-renew flag and term and each account's default and
unified day; at each hour the job runner completed, which resources must have
been auto-renewed (flag on, on the expiry day or a retry day; the outcome is
learned from ``renewal_attempts`` and its order checked), which stopped (at
expiry without auto-renewal, after the retry days with it) and which released
(00:00 after the recovery period's last day); and each renewal's amount and new
expiry (from the original expiry, aligned to the unified day with the extra days
prorated per calendar month, rounded once). For invoices (INV-1..7) it keeps
each account's title, what it invoiced per bucket (its own allocation of each
accepted application, less the reversals released), which applications each
request key made, and which invoices were reversed; it judges each application
against the consumption the checks read (``judge_applications``). ``checks``
compares these with the database.

The formulas are the rules' own, written here independently of the product's
(``orders.rules``): exact fractions, rounded once at the end.
"""

from __future__ import annotations

import calendar
import heapq
import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction

from feecenter.clock import BUSINESS_TZ, add_months, business_date
from feecenter.money import MAX_AMOUNT_FEN, RATE_PER_FEN, round_rated_to_fen
from feecenter.periods import DAILY, HOURLY, MONTHLY, period_containing
from feecenter.simulation.world import World

QTY = 1_000_000  # quantities: 1e-6 units
PERIODS = {"hour": HOURLY, "day": DAILY, "month": MONTHLY}
UNPAID_DAYS = 15  # ORD-2: an unpaid order's term
MONTH = timedelta(days=30)  # upgrades and downgrades prorate over a 30-day month (orders.md)
PAYING = ("new", "renew", "upgrade", "downgrade")  # a resource's orders a refund looks at
# why an auto-renewal may fail in the world (no restricted accounts, no real-name issues)
RENEWAL_REFUSALS = ("InsufficientBalance", "AccountInArrears", "PurchaseRefused")


@dataclass
class Order:
    uin: int
    kind: str
    product: str
    spec: str
    count: int
    months: int | None
    amount: int | None  # fen; None: a refund's, predicted from the paid split (checks)
    label: str
    created: datetime
    state: str = "unpaid"
    paid_at: datetime | None = None
    start: datetime | None = None  # the service period it paid for, once delivered
    end: datetime | None = None
    parts: tuple[int, ...] = ()  # refund, downgrade: the resource's paying orders then
    full: bool = False  # refund: inside the no-reason window (ORD-4)
    aligned_end: datetime | None = None  # renewal: the unified day's expiry, fixed at creation


@dataclass
class Remittance:
    """A bank transfer to an account's dedicated number (RMT-2..6), by its bank reference."""
    uin: int
    fen: int
    payer: str   # "entity" (the account's verified name) or "stranger" (not registered)
    memo: str    # "order" or "restricted" (保证金)
    state: str   # what the rules say it must be now


@dataclass
class BlueInvoice:
    """An invoice the model applied for: its account, entity and amount per tax
    category (the model's own allocation); issued once the product shows it issued,
    reversed (with its red invoice) when a reversal was released (INV-5, INV-6)."""
    uin: int
    entity: str
    lines: dict[str, int]
    issued: bool = False
    red_id: int | None = None

    @property
    def amount(self) -> int:
        return sum(self.lines.values())


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
    state: str = "running"  # prepaid: running | stopped (recycle bin) | recycled
    stopped_at: datetime | None = None  # in the recycle bin since (RNW-6)
    released_at: datetime | None = None


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
    label_of: dict[str, str] = field(default_factory=dict)  # resource id -> label
    awaiting: set[int] = field(default_factory=set)  # paid orders awaiting manual delivery
    remittances: dict[str, Remittance] = field(default_factory=dict)  # by bank reference
    remittances_of: dict[int, list[str]] = field(default_factory=lambda: defaultdict(list))
    # renewal (RNW-1..6): settings, and the hours of renewal jobs the model has followed
    auto_own: dict[str, tuple[bool, int]] = field(default_factory=dict)  # label -> flag, months
    auto_default: dict[int, bool] = field(default_factory=dict)
    unified: dict[int, int | None] = field(default_factory=dict)
    tried: dict[tuple, date] = field(default_factory=dict)  # (label, expiry) -> day tried
    # so that an hour costs the resources near their expiry, not all of them
    by_expiry: list = field(default_factory=list)  # heap of (expiry, label), stale ones too
    expiring: set[str] = field(default_factory=set)  # running, their expiry day has come
    in_bin: set[str] = field(default_factory=set)  # stopped for expiry
    renewal_until: datetime | None = None  # renewal jobs followed up to here
    renewal_lagging: bool = False  # a renewal job of an earlier hour is not done yet
    renewal_touched: set[int] = field(default_factory=set)  # accounts the jobs changed
    # invoices (INV-1..7, docs/invoices.md): what the model applied, issued and reversed
    titles: dict[int, tuple[str, bool]] = field(default_factory=dict)  # kind, special ready
    invoiced: dict[int, dict] = field(default_factory=lambda: defaultdict(
        lambda: defaultdict(int)))  # uin -> bucket -> fen invoiced (blue - released red)
    applications: dict[tuple, tuple] = field(default_factory=dict)  # (uin, key) -> made
    invoice_requests: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    pending_invoices: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    blue: dict[int, BlueInvoice] = field(default_factory=dict)  # by invoice id
    must_issue: set[int] = field(default_factory=set)  # waiting when an `issue` op ran
    available_seen: dict[int, int] = field(default_factory=dict)  # the plan's hint only
    invoice_findings: list[str] = field(default_factory=list)  # found while applying
    invoice_counts: Counter = field(default_factory=Counter)  # for the summary
    invoices_dirty: bool = False  # numbers may have changed since the last check
    invoice_rng: random.Random | None = None  # the plan's invoice operations (None: none)
    # withdrawals (WDR-1..5, docs/withdrawal.md): what each key made, the money each
    # account has held in withdrawals under way, what its remittances gave back already
    withdrawal_rng: random.Random | None = None  # the plan's withdrawal operations
    withdrawals_made: dict[tuple, tuple] = field(default_factory=dict)  # (uin, key) -> id, fen
    withdraw_requests: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    held: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # fen in flight
    remitted_out: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    takeable_seen: dict[int, int] = field(default_factory=dict)  # the plan's hint only
    withdrawal_findings: list[str] = field(default_factory=list)
    withdrawal_counts: Counter = field(default_factory=Counter)  # for the summary
    # balance warnings (XTR-2, docs/balance-warning.md): each account's settings as they
    # changed, [(from, days or None, amount or None)], none: the default (5 days, no amount)
    warning_rng: random.Random | None = None  # the plan's warning operations (None: none)
    warning_settings: dict[int, list] = field(default_factory=lambda: defaultdict(list))
    warnings_judged: set[int] = field(default_factory=set)  # balance_warning notices (ids)
    warning_findings: list[str] = field(default_factory=list)
    warning_counts: Counter = field(default_factory=Counter)  # for the summary

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

    def spec_change(self, res: Resource, spec: str, at: datetime) -> int:
        """Upgrade (+) or downgrade (-): (new monthly - old monthly) x remaining / 30
        days, both at the price list's prepaid price for the resource's count, rounded
        once (docs/orders.md, "Upgrades and downgrades")."""
        item = self.world.product(res.product).item
        difference = (item(spec).prepaid - item(res.spec).prepaid) * res.count
        remaining = max(res.expires - at, timedelta(0))
        return _fen(Fraction(difference * _us(remaining), _us(MONTH)))

    def given_back(self, order_id: int, paid: dict[int, tuple[int, int, int]]
                   ) -> tuple[int, int, int]:
        """ORD-4: the (gift, cash, coupon) a refund or downgrade gives back. ``paid``:
        each paying order's (gift, cash + credit, coupon), the product's record of its
        payment (checked to add up to the amount the model predicts)."""
        order = self.orders[order_id]
        return (self._refund_split(order, paid) if order.kind == "refund"
                else self._downgrade_split(order, paid))

    def _refund_split(self, refund: Order, paid) -> tuple[int, int, int]:
        """Inside the window each paying order's whole amount, else its unused share
        (linear in time over its service period), split between gift, cash and coupons
        in the proportion it was paid; a downgrade counts negative (docs/orders.md)."""
        totals = [0, 0, 0]
        for part_id in refund.parts:
            part = self.orders[part_id]
            value = part.amount if refund.full else _unused(part, refund.created)
            weights = [abs(w) for w in self._paid_by(part_id, paid)]
            if value == 0 or not sum(weights):
                continue
            sign = 1 if value > 0 else -1
            for i, share in enumerate(_split(abs(value), weights)):
                totals[i] += sign * share
        return tuple(max(t, 0) for t in totals)

    def _downgrade_split(self, down: Order, paid) -> tuple[int, int, int]:
        """The prorated difference split in the proportion the resource was paid: what
        its paying orders paid, less what earlier downgrades gave back; all to cash
        when nothing was paid (docs/orders.md)."""
        weights = [max(sum(self._paid_by(i, paid)[k] for i in down.parts), 0) for k in range(3)]
        if not sum(weights):
            return 0, -down.amount, 0
        return tuple(_split(-down.amount, weights))

    def _paid_by(self, order_id: int, paid) -> tuple[int, int, int]:
        """(gift, cash, coupon) that paid an order; a downgrade's count negative."""
        if self.orders[order_id].kind == "downgrade":
            return tuple(-x for x in self.given_back(order_id, paid))
        return paid[order_id]

    def line_amount(self, product: str, item: str, quantity: int) -> int:
        """SET-2: quantity (1e-6) x price (1e-8 yuan); exact for the world's prices."""
        price = self.world.product(product).item(item).postpaid
        assert quantity * price % QTY == 0, "the world's quantities and prices are exact"
        return quantity * price // QTY

    # ---------------------------------------------------------------- learning from results

    def apply(self, op, result: dict) -> None:
        if op.kind in ("invoice", "reverse", "issue", "tick"):
            self.invoices_dirty = True
        if op.kind in ("invoice", "reverse", "invoice_title", "withdraw",
                       "balance_warning"):  # predicted refusals
            getattr(self, f"_{op.kind}")(op, result)
            return
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

    def _remit(self, op, result):
        """RMT-3..6: a restricted memo is held for an operator; otherwise the account's
        own verified name is credited at once and anyone else waits for signature."""
        a = op.args
        state = ("held" if a["memo"] == "restricted" else
                 "credited" if a["payer"] == "entity" else "pending_signature")
        self.remittances[a["ref"]] = Remittance(op.uin, a["fen"], a["payer"], a["memo"], state)
        self.remittances_of[op.uin].append(a["ref"])
        if state == "credited":
            self.money_in[op.uin] += a["fen"]

    def _reverify(self, op, result):
        """RMT-5: the payer registered, a re-verification credits the waiting transfer."""
        remittance = self.remittances[op.args["ref"]]
        if remittance.state == "pending_signature":
            remittance.state = "credited"
            self.money_in[op.uin] += remittance.fen

    def waiting_remittances(self, uin: int) -> list[str]:
        return [ref for ref in self.remittances_of[uin]
                if self.remittances[ref].state == "pending_signature"]

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
        self.label_of[res.rid] = res.label

    def _renew(self, op, result):
        res = self.resources[op.args["label"]]
        self._order(result["order_ids"][0], self.renewal(res, op.args["months"],
                                                         datetime.fromisoformat(op.args["at"])))

    def renewal(self, res: Resource, months: int, at: datetime) -> Order:
        """RNW-5/6: a renewal order of ``res`` now: the term from the current expiry at
        the price in force, and with the account's unified day the extra days to it."""
        amount = self.prepaid_amount(res.product, res.spec, res.count, months)
        day, end = self.unified.get(res.uin), None
        if day is not None:
            monthly = self.world.product(res.product).item(res.spec).prepaid * res.count
            term_end = add_months(res.expires, months)
            end = aligned_end(term_end, day)
            amount += _fen(sum((Fraction(monthly * days, month_days) for days, month_days
                                in days_by_month(term_end, end)), Fraction(0)))
        return Order(res.uin, "renew", res.product, res.spec, res.count, months, amount,
                     res.label, at, aligned_end=end)

    # ---------------------------------------------------------------- renewal settings

    def _auto_renew(self, op, result):
        a = op.args
        if a.get("rid") is None:
            self.auto_default[op.uin] = a["on"]
            return
        _flag, months = self.auto_flag(self.resources[a["label"]])
        self.auto_own[a["label"]] = (a["on"], a.get("months") or months)

    def _unified_day(self, op, result):
        self.unified[op.uin] = op.args["day"]

    def auto_flag(self, res: Resource) -> tuple[bool, int]:
        """The flag and term in force: the resource's own, else the account's default, 1."""
        return self.auto_own.get(res.label, (self.auto_default.get(res.uin, False), 1))

    # ---------------------------------------------------------------- the expiry lifecycle

    def expiry_hour(self, start: datetime, end: datetime, attempts: dict) -> list[str]:
        """The renewal.expiry run of the hour [start, end): auto-renewals of its business
        day (RNW-1/2: flag on, the expiry day or a retry day, once a day), then the stops
        due before ``end`` (RNW-6). ``attempts``: (resource id, expiry naive UTC) -> the
        product's ``renewal_attempts`` row with its order (amount, times, key), from which
        the model learns only whether the balance paid. Returns violations."""
        day, found = business_date(start), []
        next_day = start_of_day(day + timedelta(days=1))
        while self.by_expiry and self.by_expiry[0][0] < next_day:
            self.expiring.add(heapq.heappop(self.by_expiry)[1])
        for label in sorted(self.expiring):
            res = self.resources[label]
            if res.state != "running" or res.expires >= next_day:
                self.expiring.discard(label)  # renewed, refunded or stopped meanwhile
                continue
            flag, months = self.auto_flag(res)
            retry = self.world.product(res.product).retry_days
            first = business_date(res.expires)
            stop = stop_time(res.expires, flag, retry)
            stopping = res.expires < end and stop < end  # this run stops it: a last try first
            if flag and (stopping or first <= day <= first + timedelta(days=retry)
                         and self.tried.get((label, res.expires)) != day):
                found += self._auto_renewed(res, months, day, start, attempts)
                if res.state != "running" or res.expires >= next_day:
                    continue  # renewed: not stopped
            if stopping:  # never recorded before the hour being run
                res.state, res.stopped_at = "stopped", max(stop, start)
                self.renewal_touched.add(res.uin)
                self.expiring.discard(label)
                self.in_bin.add(label)
        return found

    def _auto_renewed(self, res, months, day, at, attempts) -> list[str]:
        key = (res.rid, res.expires.replace(tzinfo=None))
        row = attempts.get(key)
        self.tried[(res.label, res.expires)] = day
        self.renewal_touched.add(res.uin)
        if row is None or row["last_tried_on"] != day:
            return [f"RNW-1 auto-renewal: {res.rid} (expires {res.expires}) not tried on {day}"]
        if row["state"] != "renewed":
            return ([] if row["reason_code"] in RENEWAL_REFUSALS else
                    [f"RNW-2 auto-renewal of {res.rid} failed: {row['reason_code']}"])
        order = self.renewal(res, months, at)
        order.state, order.paid_at = "delivered", at
        expected_key = f"auto-renew:{res.rid}:{res.expires.strftime('%Y%m%dT%H%M%S')}"
        self.keys.add(expected_key)
        self._order(row["order_id"], order)
        self._delivered(order, at)
        found = []
        if row["key"] != expected_key:
            found.append(f"RNW-1 auto-renewal key of {res.rid}: {row['key']}, the model "
                         f"says {expected_key}")
        if (row["service_start"], row["service_end"]) != (order.start.replace(tzinfo=None),
                                                          order.end.replace(tzinfo=None)):
            found.append(f"RNW-6 auto-renewal term of {res.rid}: {row['service_start']} to "
                         f"{row['service_end']}, the model says {order.start} to {order.end}")
        return found

    def release_day(self, end: datetime) -> None:
        """The renewal.release run of the business day ending at ``end`` (00:00)."""
        for label in sorted(self.in_bin):
            res = self.resources[label]
            if res.state != "stopped":  # restored by a renewal
                self.in_bin.discard(label)
            elif (at := release_time(res.stopped_at,
                                     self.world.product(res.product).recovery_days)) <= end:
                res.state, res.released_at, res.live = "recycled", at, False
                self.renewal_touched.add(res.uin)
                self.in_bin.discard(label)

    def _upgrade(self, op, result):
        res, at = self.resources[op.args["label"]], datetime.fromisoformat(op.args["at"])
        self._order(result["order_ids"][0], Order(
            op.uin, "upgrade", res.product, op.args["spec"], res.count, None,
            self.spec_change(res, op.args["spec"], at), res.label, at))

    def _pay(self, op, result):
        self.keys.add(op.args["key"])
        at = datetime.fromisoformat(op.args["at"])
        for order_id in op.args["order_ids"]:
            order = self.orders[order_id]
            order.paid_at = at
            manual = self.world.product(order.product).manual
            order.state = "paid" if manual else "delivered"
            if manual:
                self.awaiting.add(order_id)
            else:
                self._delivered(order, at)

    def _delivered(self, order: Order, at: datetime) -> None:
        """The resource changes; the order's service period is the time it paid for: a
        renewal counts from the old expiry (RNW-6), an upgrade from now to the expiry."""
        res = self.resources[order.label]
        if order.kind == "new":
            res.live, res.expires = True, add_months(at, order.months)
            order.start, order.end = at, res.expires
            heapq.heappush(self.by_expiry, (res.expires, res.label))
        elif order.kind == "renew":  # aligned: to the end priced at creation (RNW-5)
            order.start = res.expires
            res.expires = order.aligned_end or add_months(res.expires, order.months)
            order.end, res.state, res.stopped_at = res.expires, "running", None
            heapq.heappush(self.by_expiry, (res.expires, res.label))
        else:
            res.spec, order.start, order.end = order.spec, at, res.expires

    def _deliver(self, op, result):
        order = self.orders[op.args["order_id"]]
        order.state = "delivered"
        self.awaiting.discard(op.args["order_id"])
        self._delivered(order, datetime.fromisoformat(op.args["at"]))

    def _fail(self, op, result):
        self.orders[op.args["order_id"]].state = "delivery_failed"
        self.awaiting.discard(op.args["order_id"])

    def _paying(self, res: Resource) -> tuple[int, ...]:
        """The resource's delivered orders that paid for it or gave money back."""
        return tuple(i for i in self.orders_of[res.uin] if (o := self.orders[i]).label == res.label
                     and o.kind in PAYING and o.state == "delivered")

    def _refund(self, op, result):
        """ORD-4: the window counts from the resource's first payment (its new order's),
        its last instant included; the resource is released, its orders refunded."""
        self.keys.add(op.args["key"])
        res, at = self.resources[op.args["label"]], datetime.fromisoformat(op.args["at"])
        parts = self._paying(res)
        days = self.world.product(res.product).refund_days
        first_paid = min((self.orders[i].paid_at for i in parts), default=at)
        self._order(result["order_id"], Order(
            op.uin, "refund", res.product, res.spec, res.count, None, None, res.label, at,
            state="refunded", paid_at=at, parts=parts,
            full=days > 0 and at - first_paid <= timedelta(days=days)))
        res.live, res.state, res.released_at = False, "recycled", at
        for order_id in parts:
            self.orders[order_id].state = "refunded"

    def _downgrade(self, op, result):
        """Executed at once: a delivered negative order for the prorated difference."""
        self.keys.add(op.args["key"])
        res, at = self.resources[op.args["label"]], datetime.fromisoformat(op.args["at"])
        self._order(result["order_id"], Order(
            op.uin, "downgrade", res.product, op.args["spec"], res.count, None,
            self.spec_change(res, op.args["spec"], at), res.label, at, state="delivered",
            paid_at=at, start=at, end=res.expires, parts=self._paying(res)))
        res.spec = op.args["spec"]

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

    # ---------------------------------------------------------------- invoices

    def _invoice_title(self, op, result):
        """INV-3: every simulated account is verified; its entity as title is taken (an
        enterprise's special-ready with the details), any other title refused."""
        enterprise = self.world.accounts[self.uins.index(op.uin)].enterprise
        if op.args.get("wrong"):
            if "refused" not in result:
                self.invoice_findings.append(
                    f"INV-3 title: {op.uin} took a title that is not its verified entity")
            return
        expected = ("enterprise" if enterprise else "personal",
                    enterprise and bool(op.args.get("special")))
        if "refused" in result or (result["title_kind"], result["special_ready"]) != expected:
            self.invoice_findings.append(f"INV-3 title: {op.uin} got {result}, the model "
                                         f"says (kind, special ready) {expected}")
            return
        self.titles[op.uin] = expected

    def _invoice(self, op, result):
        """Judged by ``checks.invoices`` right after the step, when the consumption the
        application was decided on is read (it cannot change within the step)."""
        self.pending_invoices[op.uin].append((op, result))

    def _issue(self, op, result):
        """INV-5: the sweeper issues every invoice waiting when it runs."""
        self.must_issue.update(i for i, b in self.blue.items() if not b.issued)
        self.must_issue.update(b.red_id for b in self.blue.values()
                               if b.red_id is not None and b.red_id > 0)

    def _reverse(self, op, result):
        """INV-6: a reversal of an invoice the model knows issued is accepted; released,
        the blue invoice's amount is invoiceable again (its red lines count negative)."""
        blue = self.blue[op.args["invoice_id"]]
        if "refused" in result:
            self.invoice_findings.append(f"INV-6 reversal of issued invoice "
                                         f"{op.args['invoice_id']} refused: {result}")
            return
        expected = "released" if op.args["decision"] == "release" else "rejected"
        if result["state"] != expected:
            self.invoice_findings.append(f"INV-6 reversal {result}, the model says {expected}")
        self.invoice_counts[f"reversal {expected}"] += 1
        if expected == "released" and result["red_invoice_id"] is not None:
            blue.red_id = result["red_invoice_id"]
            for category, fen in blue.lines.items():
                self.invoiced[op.uin][(blue.entity, category)] -= fen

    # ---------------------------------------------------------------- withdrawals (WDR)

    def routable(self, uin: int) -> int:
        """WDR-2 in this world: the original route takes back only credited remittances
        (no online recharges), less what earlier withdrawals took of them and did not
        give back; every remittance of a run is inside its 360-day window."""
        credited = sum(self.remittances[ref].fen for ref in self.remittances_of[uin]
                       if self.remittances[ref].state == "credited")
        return credited - self.remitted_out[uin]

    def _withdraw(self, op, result):
        """WDR-1..4: accepted exactly when the amount is at most the takeable amount
        read just before and, by the original route, what the remittances have left;
        then the money is held (it leaves the account's cash at once). A key again:
        the first withdrawal."""
        a, uin = op.args, op.uin
        made = self.withdrawals_made.get((uin, a["key"]))
        if made is not None:
            if result.get("id") != made[0]:
                self.withdrawal_findings.append(f"WDR idempotency: key {a['key']} of {uin} "
                                                f"answered {result}, it made {made[0]}")
            self.withdrawal_counts["key repeated"] += 1
            return
        predicted = self._withdraw_refusal(uin, a, result["takeable"])
        if result.get("replayed"):  # a killed attempt committed it: judged on its own read
            predicted = None
        if "refused" in result:
            if predicted is None:
                self.withdrawal_findings.append(
                    f"WDR-1 withdrawal {a} of {uin} refused ({result['refused']}), the model "
                    f"says it fits (takeable {result['takeable']}, routable {self.routable(uin)})")
            self.withdrawal_counts[f"refused: {predicted}"] += 1
            return
        if predicted is not None:
            self.withdrawal_findings.append(
                f"WDR-1 withdrawal {a} of {uin} accepted, more than {predicted} "
                f"(takeable {result['takeable']}, routable {self.routable(uin)})")
        if result["amount"] != a["fen"]:
            self.withdrawal_findings.append(f"WDR withdrawal {result['id']} holds "
                                            f"{result['amount']}, asked {a['fen']}")
        self.withdrawals_made[(uin, a["key"])] = (result["id"], a["fen"])
        self.withdraw_requests[uin].append({k: v for k, v in a.items() if k != "at"})
        self.keys.add(a["key"])
        self.money_in[uin] -= a["fen"]
        self.held[uin] += a["fen"]
        self.remitted_out[uin] += sum(fen for source, fen in result["legs"]
                                      if source == "remittance")
        self.withdrawal_counts[f"applied {a['route']}"] += 1

    def _withdraw_refusal(self, uin: int, a: dict, takeable: int) -> str | None:
        if a["fen"] > takeable:
            return "over takeable"
        if a["route"] == "original" and a["fen"] > self.routable(uin):
            return "over the original route"
        return None

    def _balance_warning(self, op, result):
        """XTR-2 settings: refused exactly when days is not None or a whole number 1-30,
        or the amount not None or 1 fen up to the limit (days checked first: the field
        named); otherwise the given ones change from the op's time on."""
        a, uin = op.args, op.uin
        bad_days = "days" in a and not _valid(a["days"], WARN_MIN_DAYS, WARN_MAX_DAYS)
        bad_amount = "amount" in a and not _valid(a["amount"], 1, MAX_AMOUNT_FEN)
        field_ = "days" if bad_days else "amount" if bad_amount else None
        if result.get("field") != field_ or ("refused" in result) != (field_ is not None):
            self.warning_findings.append(f"XTR-2 settings {a} of {uin}: answered {result}, "
                                         f"the model says refused for {field_}")
        for name, n in (result.get("run") or {}).items():
            self.warning_counts[f"run {name}"] += n
        if field_ is not None:
            self.warning_counts[f"refused: {field_}"] += 1
            return
        days, amount = self.warning_at(uin, datetime.max.replace(tzinfo=timezone.utc))
        self.warning_settings[uin].append((datetime.fromisoformat(a["at"]),
                                           a.get("days", days), a.get("amount", amount)))
        self.warning_counts["settings set"] += 1

    def warning_at(self, uin: int, at: datetime) -> tuple[int | None, int | None]:
        """(days, amount) of ``uin``'s warning settings in effect at ``at``."""
        found = (WARN_DEFAULT_DAYS, None)
        for since, days, amount in self.warning_settings.get(uin, ()):
            if since <= at:
                found = (days, amount)
        return found

    def _payout(self, op, result):
        """WDR-3/5: a bank leg paid leaves the held money; a failed withdrawal returned
        to cash brings its failed legs' money back (and what they took of remittances
        may go back that way again); paid offline instead, it stays held."""
        for uin, fen in result["paid"]:
            self.held[uin] -= fen
        for _id, uin, fen, remitted in result["returned"]:
            self.held[uin] -= fen
            self.money_in[uin] += fen
            self.remitted_out[uin] -= remitted
        counts = self.withdrawal_counts
        counts["legs paid"] += len(result["paid"])
        counts["returned to cash"] += len(result["returned"])
        counts["paid offline instead"] += len(result["rerouted"])

    def reversible(self, uin: int) -> list[int]:
        return sorted(i for i, b in self.blue.items()
                      if b.uin == uin and b.issued and b.red_id is None)

    def judge_applications(self, uin: int, consumed: dict, owed: int) -> list[str]:
        """Each application attempt of ``uin`` since the last check, against the
        model's own prediction from ``consumed`` (per bucket, read independently of
        invoices) and what it invoiced before: accepted exactly when a title allows
        the kind, nothing is owed and the amount is at most what is available; then
        split over the buckets in their fixed order, one invoice per entity, each
        line's tax half-up (INV-1, INV-2, INV-4); a repeated key the first one."""
        found = []
        for op, result in self.pending_invoices.pop(uin, []):
            found += self._judge(op, result, consumed, owed)
        return found

    def _judge(self, op, result, consumed, owed) -> list[str]:
        a, uin = op.args, op.uin
        first = self.applications.get((uin, a["key"]))
        if first is not None:  # (d): one application per request key
            self.invoice_counts["key repeated"] += 1
            got = "refused" not in result and _made(result)
            return [] if got == first else [
                f"INV request key {a['key']} of {uin} repeated gave {result}, the first {first}"]
        buckets = set(consumed) | set(self.invoiced[uin])
        available = {b: max(consumed.get(b, 0) - self.invoiced[uin][b], 0) for b in buckets}
        # INV-1 for the account: Σ consumed - Σ invoiced (a bucket's debt lowers the rest)
        total = max(sum(consumed.get(b, 0) - self.invoiced[uin][b] for b in buckets), 0)
        wanted = total if a["amount"] is None else _yuan_fen(a["amount"])
        title = self.titles.get(uin)
        why = ("no title" if title is None else
               "special without details" if a["kind"] == "special" and not title[1] else
               "owed" if owed > 0 else "nothing available" if total <= 0 else
               "over available" if wanted > total else None)
        allowed = why is None
        self.invoice_counts[f"refused: {why}" if why else "applied"] += 1
        if "refused" in result:
            return [] if not allowed else [
                f"INV-1 application {a} of {uin} refused ({result['refused']}), the model "
                f"says {total} available, title {title}, owed {owed}"]
        if not allowed:  # (b): never more than available, never without a title
            return [f"INV-1/2 application {a} of {uin} accepted ({result['application_id']}), "
                    f"the model says {total} available, title {title}, owed {owed}"]
        predicted = invoices_of(allocate(wanted, available))
        got = [(i["entity"], sorted((c, f, t) for c, f, t in i["lines"]))
               for i in result["invoices"]]
        self.applications[(uin, a["key"])] = _made(result)
        self.invoice_requests[uin].append(dict(a))
        for invoice in result["invoices"]:
            self.blue[invoice["id"]] = BlueInvoice(uin, invoice["entity"], {
                c: f for c, f, _t in invoice["lines"]})
        for (entity, lines) in predicted:  # the model's own amounts, whatever was written
            for category, fen, _tax in lines:
                self.invoiced[uin][(entity, category)] += fen
        if got != predicted:
            return [f"INV-4 application {result['application_id']} of {uin} ({a}) made "
                    f"{got}, the model says {predicted} from available {available}"]
        return []

    def expect_state(self, order: Order, now: datetime) -> set[str]:
        """The states an order may be in now: an unpaid one past its term may have
        been expired by the hourly job (ORD-2)."""
        if order.state == "unpaid" and now >= order.created + timedelta(days=UNPAID_DAYS):
            return {"unpaid", "expired"}
        return {order.state}


CATEGORY_ORDER = ("cloud_service", "software")  # docs/invoices.md: buckets' fixed order
RATE_BP = {"cloud_service": 600, "software": 1300}  # INV-4: 6 %, 13 %


def allocate(amount: int, available: dict) -> list[tuple[tuple[str, str], int]]:
    """``amount`` taken from the buckets in order (entity code, then cloud services
    before software), each as far as it is available."""
    takes, left = [], amount
    for bucket in sorted(available, key=lambda b: (b[0], CATEGORY_ORDER.index(b[1]))):
        take = min(left, available[bucket])
        if take > 0:
            takes.append((bucket, take))
            left -= take
    return takes


def invoices_of(takes) -> list[tuple[str, list]]:
    """One invoice per entity, one line per category: (category, amount, tax), tax =
    amount x rate / (1 + rate) rounded half-up once."""
    by_entity: dict[str, list] = defaultdict(list)
    for (entity, category), fen in takes:
        rate = RATE_BP[category]
        by_entity[entity].append((category, fen, _fen(Fraction(fen * rate * RATE_PER_FEN,
                                                                10_000 + rate))))
    return [(entity, sorted(lines)) for entity, lines in sorted(by_entity.items())]


def _made(result: dict) -> tuple:
    return (result["application_id"], tuple((i["id"], i["entity"], i["amount"])
                                            for i in result["invoices"]))


def _yuan_fen(text: str) -> int:
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int(cents.ljust(2, "0"))


WARN_DEFAULT_DAYS, WARN_MIN_DAYS, WARN_MAX_DAYS = 5, 1, 30  # docs/balance-warning.md


def _valid(value, low: int, high: int) -> bool:
    """None, or a whole number (not a bool) from ``low`` to ``high``."""
    return value is None or (type(value) is int and low <= value <= high)


def start_of_day(day: date) -> datetime:
    """00:00 of a business day (Asia/Shanghai), aware UTC."""
    return datetime(day.year, day.month, day.day, tzinfo=BUSINESS_TZ).astimezone(timezone.utc)


def stop_time(expiry: datetime, auto_renew: bool, retry_days: int) -> datetime:
    """RNW-6: without auto-renewal at the expiry; with it, at 00:00 after the last retry
    day (the expiry day + ``retry_days``)."""
    if not auto_renew or retry_days <= 0:
        return expiry
    return start_of_day(business_date(expiry) + timedelta(days=retry_days + 1))


def release_time(stopped_at: datetime, recovery_days: int) -> datetime:
    """RNW-6: 00:00 of the day after the day on which ``recovery_days`` have passed."""
    return start_of_day(business_date(stopped_at + timedelta(days=recovery_days))
                        + timedelta(days=1))


def aligned_end(term_end: datetime, day: int) -> datetime:
    """RNW-5: the first ``day`` of a month on or after the term end's business date, at
    the term end's time of day."""
    local = term_end.astimezone(BUSINESS_TZ)
    if local.day > day:
        year, month = divmod(local.year * 12 + local.month, 12)
        local = local.replace(year=year, month=month + 1, day=day)
    else:
        local = local.replace(day=day)
    return local.astimezone(timezone.utc)


def days_by_month(term_end: datetime, end: datetime) -> list[tuple[int, int]]:
    """The extra days from the term end to the aligned end, per calendar month of each
    day: (days, days that month has)."""
    first = term_end.astimezone(BUSINESS_TZ).date()
    count: dict[tuple[int, int], int] = defaultdict(int)
    for n in range((end.astimezone(BUSINESS_TZ).date() - first).days):
        d = first + timedelta(days=n)
        count[(d.year, d.month)] += 1
    return [(days, calendar.monthrange(y, m)[1]) for (y, m), days in sorted(count.items())]


def _us(span: timedelta) -> int:
    return span // timedelta(microseconds=1)


def _fen(rated: Fraction) -> int:
    """An exact amount in 1e-8 yuan to fen, half-up (halves away from zero): the one
    rounding, applied once to the exact value."""
    return (1 if rated >= 0 else -1) * math.floor(abs(rated) / RATE_PER_FEN + Fraction(1, 2))


def _unused(part: Order, at: datetime) -> int:
    """Fen of ``part`` not yet used at ``at``: its amount x the share of its service
    period still ahead, rounded once."""
    total = part.end - part.start
    if total <= timedelta(0):
        return 0
    unused = min(max(part.end - max(at, part.start), timedelta(0)), total)
    return _fen(Fraction(part.amount * RATE_PER_FEN * _us(unused), _us(total)))


def _split(total: int, weights: list[int]) -> list[int]:
    """``total`` fen in proportion to ``weights``, the parts adding up to it: each part
    its exact share rounded down, and the fen left over one each to the largest
    remainders, ties to the earlier part (gift, then cash, then coupons). The rules
    leave this rounding open; it is the project's, documented in docs/orders.md."""
    exact = [Fraction(total * w, sum(weights)) for w in weights]
    parts = [math.floor(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (parts[i] - exact[i], i))
    for i in order[:total - sum(parts)]:
        parts[i] += 1
    return parts


def _period_key(cycle: str, end: datetime) -> str:
    """A record belongs to the period its end closes (usage.md)."""
    return period_containing(PERIODS[cycle], end - timedelta(microseconds=1)).key


def _micro(quantity: str) -> int:
    whole, _, frac = quantity.partition(".")
    return int(whole) * QTY + int(frac.ljust(6, "0"))
