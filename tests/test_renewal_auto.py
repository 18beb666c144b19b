"""Auto-renewal (RNW-1, RNW-2): on the expiry day a resource whose flag is on is
renewed at the price then in force; when it cannot be, the failure is recorded
with its reason, no unpaid order is left, and it is tried again each day until
its stop time, renewed as soon as it can be; once stopped, only a manual renewal
recovers it. Each resource is renewed once per term however often the job runs
or crashes. A simulated quarter checks the whole lifecycle on many resources."""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest
from sqlalchemy import select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from feecenter.orders import service as orders
from feecenter.orders.tables import orders as orders_table
from feecenter.periods import HOURLY, period_containing
from feecenter.jobs import runner
from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import REGISTRY, Registry
from feecenter.notifications.tables import in_site_messages
from feecenter.renewal import auto, jobs, reminders, settings
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, pay)
from tests.test_renewal_lifecycle import bought, renew, resource, run_jobs, sh

MONTH = 178_00  # sample catalog: cvm S5.MEDIUM4 prepaid, one month


def quarter_resources(rt) -> int:
    """The simulated quarter's resources: FEECENTER_QUARTER_RESOURCES, else the
    issue's 1,000 on SQLite under CI (a few minutes) and 96 elsewhere (PostgreSQL
    takes about three times as long; its concurrency has tests of its own)."""
    if "FEECENTER_QUARTER_RESOURCES" in os.environ:
        return int(os.environ["FEECENTER_QUARTER_RESOURCES"])
    sqlite = rt.engine.dialect.name == "sqlite"
    return 1000 if sqlite and os.environ.get("CI") == "true" else 96


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def auto_on(rt, uin: int, resource_ids: list[str], months: int = 1, flag: bool = True) -> None:
    with transaction(rt.engine) as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, resource_ids, auto_renew=flag,
                                months=months)


def renewals(rt, uin: int) -> list[dict]:
    o = orders_table.c
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(orders_table).where(
            o.uin == uin, o.kind == "renew").order_by(o.id)).mappings()]


def attempt(rt, uin: int, resource_id: str) -> dict | None:
    with rt.engine.connect() as conn:
        return auto.attempts(conn, SYSTEM, uin, [resource_id]).get(resource_id)


@pytest.mark.spec("RNW-1")
def test_renewed_on_the_expiry_day_at_the_price_then_in_force(shop):
    rt = shop
    text = catalog.sample_catalog_text()
    line = ('      - {item: S5.MEDIUM4,   pay_mode: prepaid,  regions: &regions3 '
            '[ap-guangzhou, ap-shanghai, ap-beijing], from: 2026-01-01, price: "178.00"}\n')
    assert line in text
    later = line + ('      - {item: S5.MEDIUM4,   pay_mode: prepaid,  regions: *regions3, '
                    'from: 2026-04-01, price: "200.00"}\n')
    with transaction(rt.engine) as conn:  # the April price, loaded in March
        catalog.load_catalog(conn, rt.clock, OPS, text.replace(line, later), "april.yaml")
    uin = new_account(rt)
    add_cash(rt, uin, 1_000_00)
    resource_id = bought(rt, uin)  # 2 March: 178.00, expires 2 April 10:00
    auto_on(rt, uin, [resource_id], months=2)
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 2, 0, 59))
    assert renewals(rt, uin) == []  # not before the expiry day's first run
    run_jobs(rt, sh(2026, 4, 2, 1, 0))
    [order] = renewals(rt, uin)
    assert (order["state"], order["amount"], order["months"]) == ("delivered", 400_00, 2)
    assert order["creator"] == "system:auto-renewal"
    assert resource(rt, uin, resource_id)["period_end"] == db_time(sh(2026, 6, 2, 10, 0))
    assert balance(rt, uin).cash == 1_000_00 - MONTH - 400_00
    assert attempt(rt, uin, resource_id)["state"] == "renewed"
    assert attempt(rt, uin, resource_id)["order_id"] == order["id"]
    run_jobs(rt, sh(2026, 4, 5, 0, 0))  # later runs: nothing more
    assert len(renewals(rt, uin)) == 1
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-2")
def test_short_balance_is_retried_daily_and_renewed_when_cash_arrives(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, MONTH)
    resource_id = bought(rt, uin)  # the balance is now 0
    auto_on(rt, uin, [resource_id])
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 2, 12, 0))
    failed = attempt(rt, uin, resource_id)
    assert (failed["state"], failed["reason_code"], failed["tries"]) == (
        "failed", "InsufficientBalance", 1)
    assert failed["reason"] and failed["term_end"] == sh(2026, 4, 2, 10, 0)
    assert renewals(rt, uin) == []  # no unpaid order left behind
    assert resource(rt, uin, resource_id)["state"] == "running"  # kept during the retries
    run_jobs(rt, sh(2026, 4, 3, 12, 0))
    assert attempt(rt, uin, resource_id)["tries"] == 2  # once a day, not once an hour
    add_cash(rt, uin, MONTH, key="cash-arrives")
    run_jobs(rt, sh(2026, 4, 3, 23, 59))
    assert renewals(rt, uin) == []  # the next daily scan renews it
    run_jobs(rt, sh(2026, 4, 4, 1, 0))
    [order] = renewals(rt, uin)
    assert order["state"] == "delivered" and order["amount"] == MONTH
    assert resource(rt, uin, resource_id)["period_end"] == db_time(sh(2026, 5, 2, 10, 0))
    done = attempt(rt, uin, resource_id)
    assert (done["state"], done["tries"], done["reason"]) == ("renewed", 3, None)
    assert balance(rt, uin).cash == 0
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-2")
def test_after_the_retry_days_it_stops_and_only_a_manual_renewal_recovers_it(shop):
    rt = shop
    uin = new_account(rt)
    add_cash(rt, uin, MONTH)
    resource_id = bought(rt, uin)
    auto_on(rt, uin, [resource_id])
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 5, 23, 59))  # expiry day and 3 retry days (the product's)
    assert resource(rt, uin, resource_id)["state"] == "running"
    assert attempt(rt, uin, resource_id)["tries"] == 4
    run_jobs(rt, sh(2026, 4, 6, 1, 0))
    assert resource(rt, uin, resource_id)["state"] == "stopped"
    add_cash(rt, uin, MONTH, key="cash-too-late")
    run_jobs(rt, sh(2026, 4, 8, 2, 0))
    assert resource(rt, uin, resource_id)["state"] == "stopped"  # auto-renewal no longer
    # the 4 daily tries and a last one in the run that stopped it, none after
    assert renewals(rt, uin) == [] and attempt(rt, uin, resource_id)["tries"] == 5
    renew(rt, uin, resource_id)
    restored = resource(rt, uin, resource_id)
    assert (restored["state"], restored["period_end"]) == ("running",
                                                           db_time(sh(2026, 5, 2, 10, 0)))
    assert_reconciled(rt, uin)


@pytest.mark.spec("RNW-2")
def test_refusals_are_recorded_with_their_reason_and_readable_only_with_renewal(shop):
    rt = shop
    restricted, abnormal = new_account(rt, "restricted"), new_account(rt, "abnormal")
    ids = {}
    for uin in (restricted, abnormal):
        add_cash(rt, uin, 1_000_00)
        ids[uin] = bought(rt, uin)
        auto_on(rt, uin, [ids[uin]])
    with transaction(rt.engine) as conn:
        accounts.set_status(conn, rt.clock, OPS, restricted, "restricted")
        accounts.set_realname(conn, rt.clock, OPS, abnormal, "abnormal")
        finance = accounts.user_actor(conn, accounts.add_user(conn, rt.clock, OPS, restricted,
                                                              "fin", "finance"))
    rt.clock.set(sh(2026, 4, 1, 23, 0))
    run_jobs(rt, sh(2026, 4, 2, 2, 0))
    for uin in (restricted, abnormal):
        found = attempt(rt, uin, ids[uin])
        assert (found["state"], found["reason_code"]) == ("failed", "PurchaseRefused")
        assert renewals(rt, uin) == []
    assert "实名" in attempt(rt, abnormal, ids[abnormal])["reason"]
    with rt.engine.connect() as conn, pytest.raises(PermissionDenied):
        auto.attempts(conn, finance, restricted, [ids[restricted]])
    for bad in ("cvm-1", [], [None], ["x" * 41]):
        with rt.engine.connect() as conn, pytest.raises(InvalidInput) as err:
            auto.attempts(conn, SYSTEM, restricted, bad)
        assert err.value.field in ("resource_ids", "resource_id")


@pytest.mark.spec("RNW-1")
def test_reruns_and_a_run_killed_half_way_renew_each_resource_once(shop, monkeypatch):
    rt = shop
    first, second = new_account(rt, "first"), new_account(rt, "second")
    ids = {}
    for uin in (first, second):
        add_cash(rt, uin, 2_000_00)
        ids[uin] = [bought(rt, uin, region=r) for r in ("ap-guangzhou", "ap-shanghai",
                                                          "ap-beijing")]
    auto_on(rt, first, ids[first])
    with transaction(rt.engine) as conn:  # the second: the account's default flag
        settings.set_account_default(conn, rt.clock, SYSTEM, second, True)
    rt.clock.set(sh(2026, 4, 2, 1, 0))
    period = period_containing(HOURLY, sh(2026, 4, 2, 0, 0))
    real_pay, calls = orders.pay, []

    def pay_then_die(*args, **kw):  # the fourth renewal's process dies before it commits
        calls.append(1)
        if len(calls) == 4:
            raise RuntimeError("killed")
        return real_pay(*args, **kw)

    monkeypatch.setattr(auto.orders, "pay", pay_then_die)
    with pytest.raises(RuntimeError):
        jobs.expiry(rt.engine, rt.clock, period)
    monkeypatch.setattr(auto.orders, "pay", real_pay)
    assert sum(len(renewals(rt, uin)) for uin in (first, second)) == 3
    rerun = jobs.expiry(rt.engine, rt.clock, period)
    assert (rerun["renewed"], rerun["failed"]) == (3, 0)
    again = jobs.expiry(rt.engine, rt.clock, period)
    assert (again["renewed"], again["failed"], again["stopped"]) == (0, 0, 0)
    run_jobs(rt, sh(2026, 4, 3, 2, 0))  # the runner's own runs of the day: nothing more
    for uin in (first, second):
        made = renewals(rt, uin)
        assert Counter(o["resource_id"] for o in made) == Counter(ids[uin])
        assert {o["state"] for o in made} == {"delivered"}
        assert balance(rt, uin).cash == 2_000_00 - 6 * MONTH
    assert_reconciled(rt)


# ---------------------------------------------------------------- a simulated quarter

def quarter_registry() -> Registry:
    """The renewal jobs with the daily reminders and price announcements."""
    load_all()
    registry = Registry()
    for name in ("renewal.expiry", "renewal.release", "renewal.remind",
                 "renewal.announce_prices"):
        registry.add(REGISTRY.get(name))
    return registry


def simulate(rt, until, on_hour) -> None:
    """Move the clock hour by hour to ``until``; at each hour ``on_hour(now)`` (the
    customers' actions), then the job runner runs what is due (the renewal jobs,
    the reminders and the price announcements)."""
    registry = quarter_registry()
    period = period_containing(HOURLY, rt.clock.now())
    while period.end <= until:
        rt.clock.set(period.end)
        on_hour(period.end)
        report = runner.run_until(rt.engine, rt.clock, period.end, registry=registry)
        assert not [o for o in report.work.runs.outcomes if o.outcome != "done"]
        period = period.next()


def reminders_by_account_and_day(rt) -> Counter:
    m = in_site_messages.c
    with rt.engine.connect() as conn:
        rows = conn.execute(select(m.uin, m.params).where(m.template.in_(
            (reminders.RECHARGE, reminders.EXPIRY, reminders.COMBINED)))).all()
    return Counter((uin, json.loads(params)["day"]) for uin, params in rows)


@pytest.mark.spec("RNW-1", "RNW-2", "RNW-3", "RNW-6")
def test_a_simulated_quarter(shop):
    """Eight accounts, one buying on each of eight days from 2 March: rich ones (0, 4),
    poor ones (1, 5), ones short at expiry that top up two days later and renew their
    stopped resources by hand for two months (2, 6), and rich ones whose flag comes
    from the account default (3, 7). Every third resource has auto-renew off. Until
    1 June: what is renewed, stopped, restored and released is exactly the rules'."""
    rt = shop
    per_account = max(quarter_resources(rt) // 8, 3)
    accounts_by_day: dict[int, int] = {}
    owned: dict[int, list[str]] = {}
    first_expiry: dict[int, object] = {}

    def auto_of(i: int) -> bool:
        return i % 3 != 0

    def buy_for(k: int) -> None:
        uin = accounts_by_day[k]
        made = []
        for start in range(0, per_account, 100):
            count = min(100, per_account - start)
            order_ids = buy(rt, uin, *[("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")] * count)
            pay(rt, uin, order_ids, key=f"quarter-{k}-{start}")
            with rt.engine.connect() as conn:
                made += [o["resource_id"] for o in orders.get_orders(conn, SYSTEM, uin, order_ids)]
        owned[k] = made
        first_expiry[k] = resource(rt, uin, made[0])["period_end"]
        on = [r for i, r in enumerate(made) if auto_of(i)]
        off = [r for i, r in enumerate(made) if not auto_of(i)]
        if k % 4 == 3:
            with transaction(rt.engine) as conn:
                settings.set_account_default(conn, rt.clock, SYSTEM, uin, True)
            for chunk in range(0, len(off), 500):
                auto_on(rt, uin, off[chunk:chunk + 500], flag=False)
        else:
            for chunk in range(0, len(on), 500):
                auto_on(rt, uin, on[chunk:chunk + 500])

    for k in range(8):
        uin = accounts_by_day[k] = new_account(rt, f"quarter-{k}")
        poor = k % 4 in (1, 2)
        add_cash(rt, uin, per_account * MONTH * (1 if poor else 3))
    top_up_at = {}

    def on_hour(now) -> None:
        for k in range(8):
            if k not in owned and now == sh(2026, 3, 2 + k, 10, 0):
                buy_for(k)
                top_up_at[k] = sh(2026, 4, 4 + k, 12, 0)
            elif k % 4 == 2 and top_up_at.get(k) == now:
                uin = accounts_by_day[k]
                add_cash(rt, uin, per_account * MONTH * 4, key=f"top-up-{k}")
                with transaction(rt.engine) as conn:
                    for i, resource_id in enumerate(owned[k]):
                        if not auto_of(i):  # stopped since expiry: restored by hand
                            order_id = orders.create_renewal(conn, rt.clock, SYSTEM, uin,
                                                             resource_id, 2)
                            orders.pay(conn, rt.clock, SYSTEM, uin, [order_id],
                                       key=f"restore-{resource_id}")

    rt.clock.set(sh(2026, 3, 2, 9, 0))
    simulate(rt, sh(2026, 6, 1, 0, 0), on_hour)

    for k, uin in accounts_by_day.items():
        made = renewals(rt, uin)
        by_resource = Counter(o["resource_id"] for o in made)
        assert {o["state"] for o in made} <= {"delivered"}
        e1 = first_expiry[k]
        for i, resource_id in enumerate(owned[k]):
            now = resource(rt, uin, resource_id)
            kind = k % 4
            if kind == 1 or not auto_of(i) and kind in (0, 3):  # never renewed: released
                assert now["state"] == "recycled", (k, i)
                assert by_resource[resource_id] == 0
                failed = attempt(rt, uin, resource_id)
                if auto_of(i):  # the expiry day, the 3 retry days, a last try at the stop
                    assert (failed["state"], failed["tries"], failed["reason_code"]) == (
                        "failed", 5, "InsufficientBalance")
                else:
                    assert failed is None
            else:  # renewed twice automatically, or restored by hand for 2 months
                assert now["state"] == "running", (k, i, now)
                assert now["period_end"] == db_time(sh(2026, 6, 2 + k, 10, 0)), (k, i)
                assert by_resource[resource_id] == (2 if auto_of(i) else 1), (k, i)
        if k % 4 == 2:  # the auto ones: renewed on the day after the top-up
            auto_renewed = [o for o in made if o["creator"] == "system:auto-renewal"]
            assert len(auto_renewed) == 2 * sum(1 for i in range(per_account) if auto_of(i))
        paid = sum(o["amount"] for o in made) + per_account * MONTH
        topped = per_account * MONTH * (5 if k % 4 == 2 else 1 if k % 4 == 1 else 3)
        assert balance(rt, uin).cash == topped - paid, k
        assert e1 == db_time(sh(2026, 4, 2 + k, 10, 0))
    reminded = reminders_by_account_and_day(rt)
    assert max(reminded.values()) == 1  # one reminder per account and day at most (RNW-3)
    for k, uin in accounts_by_day.items():  # each account had resources to be reminded of
        assert any(u == uin for u, _ in reminded), k
    assert_reconciled(rt)
