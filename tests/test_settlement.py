"""Postpaid settlement: rating, rounding, deduction, L3 lines, idempotency (SET-1..5, 7..9)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, FixedClock, business_time_text
from feecenter.db.engine import dispose, make_engine
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_postings
from feecenter.periods import DAILY, HOURLY, MONTHLY, period_containing
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.settlement import rules
from feecenter.settlement import service as settlement
from feecenter.settlement.tables import bill_lines
from feecenter.usage import service as usage
from tests.conftest import START
from tests.helpers import OPS, add_cash, add_gift, balance, new_account

H = 3600


# ---------------------------------------------------------------- pure rules

def test_round_transaction_records_the_difference_per_line():
    total, shares = rules.round_transaction([16_666_650, 9_876_560])
    assert total == 27
    assert sum(s.deducted for s in shares) == 27
    assert sum(s.rounding_diff for s in shares) == 27 * 1_000_000 - 26_543_210
    total, shares = rules.round_transaction([320_000])
    assert (total, shares[0].deducted, shares[0].rounding_diff) == (0, 0, -320_000)
    assert rules.round_transaction([500_000])[0] == 1  # half-up


def test_split_payment_is_exact_both_ways():
    deducted = [17, 10, 1, 0, 33]
    parts = [5, 40, 3, 13]
    out = rules.split_payment(deducted, parts)
    assert [sum(row) for row in out] == deducted
    assert [sum(row[k] for row in out) for k in range(4)] == parts
    assert all(v >= 0 for row in out for v in row)


# ---------------------------------------------------------------- helpers

def load(rt, text=None):
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, text or catalog.sample_catalog_text(),
                             "sample.yaml")


def open_(rt, uin, product="cvm", spec="S5.MEDIUM4", region="ap-guangzhou", name=None):
    with rt.engine.begin() as conn:
        return postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product=product,
                                      region=region, spec_item=spec, name=name)


def ingest(rt, rows):
    """rows: (event, uin, resource, item, quantity text, start, end) aware datetimes."""
    text = "\n".join(json.dumps({
        "event_id": e, "uin": u, "resource_id": r, "billing_item": i, "quantity": q,
        "usage_start": business_time_text(s), "usage_end": business_time_text(t)})
        for e, u, r, i, q, s, t in rows)
    result = usage.ingest(rt.engine, rt.clock, OPS, text)
    assert result.rejected == 0, result.to_dict()
    return result


def hour(n):
    """The n-th business hour after START as (start, end)."""
    return START + timedelta(hours=n), START + timedelta(hours=n + 1)


def settle(rt, cycle, start, **options):
    cadence = {"hour": HOURLY, "day": DAILY, "month": MONTHLY}[cycle]
    return settlement.settle_period(rt.engine, rt.clock, cycle, period_containing(cadence, start),
                                    **options)


def lines(rt, uin=None):
    with rt.engine.connect() as conn:
        stmt = select(bill_lines).order_by(bill_lines.c.id)
        if uin is not None:
            stmt = stmt.where(bill_lines.c.uin == uin)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def clean(rt):
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []


def settle_first_hour(rt, uin, rid, event):
    """Add 10.00 cash, then ingest and settle one VM hour in hour 0 (clock at its end);
    returns hours 0, 1 and 2 as (start, end)."""
    add_cash(rt, uin, 10_00)
    hours = hour(0), hour(1), hour(2)
    s0, e0 = hours[0]
    rt.clock.set(e0)
    ingest(rt, [(event, uin, rid, "S5.MEDIUM4", "1", s0, e0)])
    settle(rt, "hour", s0)
    return hours


@pytest.fixture
def metered(rt):
    load(rt)
    uin = new_account(rt)
    rid = open_(rt, uin, name="web-1")
    return rt, uin, rid


# ---------------------------------------------------------------- SET-1, BAL-3/5

@pytest.mark.spec("SET-1", "SET-2", "BAL-3", "BAL-5")
def test_hourly_settlement_takes_gift_then_cash_and_writes_l3_lines(metered):
    rt, uin, rid = metered
    add_gift(rt, uin, 30)
    add_cash(rt, uin, 10_00)
    s, e = hour(0)
    rt.clock.set(e + timedelta(minutes=5))
    ingest(rt, [("a1", uin, rid, "S5.MEDIUM4", "1", s, e)])
    result = settle(rt, "hour", s)
    assert (result["accounts"], result["lines"], result["amount_fen"]) == (1, 1, 50)
    view = balance(rt, uin)
    assert (view.gift, view.cash, view.arrears) == (0, 10_00 - 20, 0)
    [line] = lines(rt)
    assert line["period_key"] == "2026-03-02T10"
    assert (line["quantity"], line["price_kind"], line["unit_price"]) == (1_000_000, "list",
                                                                         50_000_000)
    assert (line["list_amount"], line["discount_bp"], line["discounted_amount"]) == (
        50_000_000, 10000, 50_000_000)
    assert (line["deducted"], line["gift_paid"], line["cash_paid"], line["arrears"],
            line["rounding_diff"]) == (50, 30, 20, 0, 0)
    assert (line["resource_name"], line["product_code"], line["kind"]) == ("web-1", "cvm",
                                                                         "charge")
    with rt.engine.connect() as conn:
        entry = conn.execute(select(statement_entries).where(
            statement_entries.c.txn_id == line["txn_id"])).mappings().one()
    assert (entry["action_type"], entry["deduct_mode"], entry["amount"], entry["gift_amount"],
            entry["cash_amount"], entry["product_code"]) == ("deduct", "hour_h", -50, -30, -20,
                                                             "cvm")
    clean(rt)


@pytest.mark.spec("SET-5", "BAL-4")
def test_shortfall_becomes_arrears(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 20)
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("a1", uin, rid, "S5.MEDIUM4", "1", s, e)])
    settle(rt, "hour", s)
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.available) == (0, 30, -30)
    [line] = lines(rt)
    assert (line["cash_paid"], line["arrears"], line["deducted"]) == (20, 30, 50)
    clean(rt)


# ---------------------------------------------------------------- SET-8

def snapshot(rt):
    """Ledger and bill lines, independent of ids and account numbers."""
    with rt.engine.connect() as conn:
        postings = sorted(conn.execute(select(ledger_postings.c.amount)).scalars())
    keep = ("resource_name", "product_code", "billing_item", "cycle", "period_key", "quantity",
            "price_kind", "unit_price", "list_amount", "discount_bp", "discounted_amount",
            "deducted", "rounding_diff", "cash_paid", "gift_paid", "credit_paid", "arrears",
            "kind", "sequence", "project_name")
    return postings, sorted(tuple(line[k] for k in keep) for line in lines(rt))


@pytest.mark.spec("SET-8")
def test_settling_a_period_twice_changes_nothing(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 1_00)
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("a1", uin, rid, "S5.MEDIUM4", "1", s, e)])
    first = settle(rt, "hour", s)
    before = snapshot(rt)
    rt.clock.advance(minutes=30)
    again = settle(rt, "hour", s)
    assert (first["accounts"], again["accounts"], again["skipped"]) == (1, 0, 1)
    assert snapshot(rt) == before
    assert balance(rt, uin).cash == 50
    clean(rt)


def _crash_world(url):
    engine = make_engine(url)
    world = SimpleNamespace(engine=engine, clock=FixedClock(START))
    load(world)
    for n in range(3):
        uin = new_account(world, name=f"acct{n}")
        rid = open_(world, uin, name=f"vm{n}")
        add_gift(world, uin, 10 + n)
        add_cash(world, uin, 25 * n + 5)
        s, e = hour(0)
        world.clock.set(e)
        ingest(world, [(f"e{n}a", uin, rid, "S5.MEDIUM4", "1", s, e),
                       (f"e{n}b", uin, rid, "traffic", f"0.12345{n}", s, e)])
        world.clock.set(START)
    world.clock.set(hour(0)[1])
    return world


@pytest.mark.spec("SET-8")
def test_a_crash_mid_period_then_rerun_equals_one_clean_run(database_factory, monkeypatch):
    clean_world = _crash_world(database_factory())
    settle(clean_world, "hour", START)
    expected = snapshot(clean_world)

    world = _crash_world(database_factory())
    real = settlement._settle_chunk
    calls = []

    def crashing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(settlement, "_settle_chunk", crashing)
    with pytest.raises(RuntimeError):
        settle(world, "hour", START, chunk_accounts=1)  # one account per chunk
    assert len(lines(world)) == 2  # the first account committed, lines and all
    monkeypatch.setattr(settlement, "_settle_chunk", real)
    result = settle(world, "hour", START)
    assert (result["accounts"], result["skipped"]) == (2, 1)
    assert snapshot(world) == expected
    assert len(expected[1]) == 6
    clean(world)
    clean(clean_world)
    dispose(world.engine)
    dispose(clean_world.engine)


# ---------------------------------------------------------------- SET-3

@pytest.mark.spec("SET-3")
def test_monthly_precision_difference_is_the_sum_of_line_rounding(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    (s0, e0), (s1, e1), (s2, e2) = hour(0), hour(1), hour(2)
    rt.clock.set(e2)
    ingest(rt, [("p1", uin, rid, "S5.MEDIUM4", "0.333333", s0, e0),   # 0.1666665
                ("p2", uin, rid, "traffic", "0.123457", s0, e0),      # 0.0987656
                ("p3", uin, rid, "traffic", "0.01", s1, e1),          # 0.008 -> 0.01
                ("p4", uin, rid, "traffic", "0.004", s2, e2)])        # 0.0032 -> 0.00
    for s in (s0, s1, s2):
        settle(rt, "hour", s)
    got = lines(rt)
    assert [line["deducted"] for line in got if line["period_key"] == "2026-03-02T10"] and \
        sum(line["deducted"] for line in got if line["period_key"] == "2026-03-02T10") == 27
    assert [(line["deducted"], line["rounding_diff"]) for line in got[2:]] == [
        (1, 200_000), (0, -320_000)]
    assert got[3]["txn_id"] is None
    expected = (27 * 1_000_000 - 26_543_210) + 200_000 - 320_000
    assert sum(line["rounding_diff"] for line in got) == expected
    with rt.engine.connect() as conn:
        month = settlement.monthly_precision_difference(conn, SYSTEM, uin, "2026-03")
        other = settlement.monthly_precision_difference(conn, SYSTEM, uin, "2026-02")
    assert month["difference"] == expected > 0 and month["meaning"] == "customer_overpaid"
    assert month["difference"] == month["deducted_total"] * 1_000_000 - month["discounted_total"]
    assert other["difference"] == 0 and other["lines"] == 0
    assert balance(rt, uin).cash == 10_00 - 28
    clean(rt)


# ---------------------------------------------------------------- SET-2

@pytest.mark.spec("SET-2")
def test_list_price_times_discount_and_contract_price(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 8500)
        catalog.set_contract_price(conn, rt.clock, OPS, uin, product="cvm", item="traffic",
                                   pay_mode="postpaid", unit_price=33_000_000)  # 0.33 / GB
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("d1", uin, rid, "S5.MEDIUM4", "1", s, e),
                ("d2", uin, rid, "traffic", "2", s, e)])
    settle(rt, "hour", s)
    by_item = {line["billing_item"]: line for line in lines(rt)}
    vm, traffic = by_item["S5.MEDIUM4"], by_item["traffic"]
    assert (vm["price_kind"], vm["list_amount"], vm["discount_bp"], vm["discounted_amount"]) == (
        "list", 50_000_000, 8500, 42_500_000)
    assert (traffic["price_kind"], traffic["discounted_amount"], traffic["list_amount"]) == (
        "contract", 66_000_000, 160_000_000)
    assert vm["deducted"] + traffic["deducted"] == 109  # 0.425 + 0.66 = 1.085 -> 1.09
    clean(rt)


# ---------------------------------------------------------------- SET-7

@pytest.mark.spec("SET-7")
def test_a_moved_resource_charges_its_project_at_deduction_time(metered):
    rt, uin, rid = metered
    _, (s1, e1), (s2, e2) = settle_first_hour(rt, uin, rid, "m0")
    with rt.engine.begin() as conn:
        team = resources.create_project(conn, rt.clock, SYSTEM, uin, "Team B")
        resources.move_resources(conn, rt.clock, SYSTEM, uin, [rid], team)
    rt.clock.set(e1)
    ingest(rt, [("m1", uin, rid, "S5.MEDIUM4", "1", s1, e1)])
    settle(rt, "hour", s1)
    with rt.engine.begin() as conn:
        resources.rename_project(conn, rt.clock, SYSTEM, uin, team, "Team Blue")
    rt.clock.set(e2)
    ingest(rt, [("m2", uin, rid, "S5.MEDIUM4", "1", s2, e2)])
    settle(rt, "hour", s2)
    got = [(line["project_id"] == team, line["project_name"]) for line in lines(rt)]
    assert got == [(False, resources.DEFAULT_PROJECT), (True, "Team B"), (True, "Team Blue")]
    with rt.engine.connect() as conn:
        mine = settlement.list_bill_lines(conn, SYSTEM, uin, {"project_id": team})
    assert mine["total"] == 2
    clean(rt)


# ---------------------------------------------------------------- SET-9

@pytest.mark.spec("SET-9")
def test_late_usage_posts_an_adjustment_line_referencing_the_original(metered):
    rt, uin, rid = metered
    (s0, e0), (s1, e1), (s2, e2) = settle_first_hour(rt, uin, rid, "l0")
    [original] = lines(rt)
    rt.clock.set(e1 + timedelta(minutes=10))
    # late: traffic for hour 0 (a new item) and a second VM record for hour 0
    ingest(rt, [("l1", uin, rid, "S5.MEDIUM4", "0.5", s0, e0),
                ("l2", uin, rid, "traffic", "1", s0, e0),
                ("l3", uin, rid, "S5.MEDIUM4", "1", s1, e1)])
    result = settle(rt, "hour", s1)
    assert result["adjustment_lines"] == 2
    got = lines(rt)
    assert got[0] == original  # never edited
    adjustments = [line for line in got if line["kind"] == "adjustment"]
    assert {(a["billing_item"], a["quantity"], a["period_key"], a["adjusts_line_id"])
            for a in adjustments} == {("S5.MEDIUM4", 500_000, "2026-03-02T10", original["id"]),
                                      ("traffic", 1_000_000, "2026-03-02T10", None)}
    assert all(str(original["id"]) in a["reason"] for a in adjustments)
    assert sum(a["deducted"] for a in adjustments) == 25 + 80
    # rerunning either period, or the next one, adds nothing more
    settle(rt, "hour", s1)
    settle(rt, "hour", s0)
    rt.clock.set(e2)
    settle(rt, "hour", s2)
    assert len(lines(rt)) == len(got)
    assert balance(rt, uin).cash == 10_00 - 50 - 105 - 50
    clean(rt)


# ---------------------------------------------------------------- SET-4 through the job runner

def _charges_by_cycle(rt):
    return {line["cycle"]: (line["period_key"], line["kind"],
                            business_time_text(line["deducted_at"]))
            for line in lines(rt)}


@pytest.mark.spec("SET-1", "SET-4")
def test_last_hour_day_and_month_of_january_are_deducted_on_1_february(rt):
    """Metering for January's last hour, day and month arrives at 00:05 on 1 February,
    within each job's metering grace: all three are charge lines, deducted at
    00:15, 01:00 and 02:00 on 1 February."""
    from feecenter.jobs import runner

    jan31 = datetime(2026, 1, 31, 22, 0, tzinfo=BUSINESS_TZ)
    feb1 = datetime(2026, 2, 1, 0, 0, tzinfo=BUSINESS_TZ)
    rt.clock.set(jan31.astimezone(timezone.utc))
    text = catalog.sample_catalog_text().replace(
        "class: network\n    postpaid_cycle: day", "class: network\n    postpaid_cycle: month")
    assert text != catalog.sample_catalog_text()
    load(rt, text)
    with rt.engine.connect() as conn:
        assert catalog.get_product(conn, "cdn").postpaid_cycle == "month"
        assert catalog.get_product(conn, "cos").postpaid_cycle == "day"
    uin = new_account(rt)
    add_cash(rt, uin, 100_00)
    vm = open_(rt, uin)
    bucket = open_(rt, uin, product="cos", spec="storage_std")
    cdn = open_(rt, uin, product="cdn", spec="traffic", region="mainland")
    last_hour = datetime(2026, 1, 31, 23, 0, tzinfo=BUSINESS_TZ)
    rt.clock.set((feb1 + timedelta(minutes=5)).astimezone(timezone.utc))
    ingest(rt, [("j1", uin, vm, "S5.MEDIUM4", "1", last_hour, feb1),
                ("j2", uin, bucket, "storage_std", "10", jan31, feb1),
                ("j3", uin, cdn, "traffic", "100", jan31, feb1)])
    runner.run_pass(rt.engine, rt.clock)  # 00:05: within every grace, nothing is due
    assert lines(rt) == []
    for at in ("00:15", "01:00", "02:00"):
        rt.clock.set(datetime.fromisoformat(f"2026-02-01T{at}:00+08:00").astimezone(timezone.utc))
        runner.run_pass(rt.engine, rt.clock)
    assert _charges_by_cycle(rt) == {
        "hour": ("2026-01-31T23", "charge", "2026-02-01 00:15:00"),
        "day": ("2026-01-31", "charge", "2026-02-01 01:00:00"),
        "month": ("2026-01", "charge", "2026-02-01 02:00:00")}
    with rt.engine.connect() as conn:
        modes = sorted(conn.execute(select(statement_entries.c.deduct_mode).where(
            statement_entries.c.uin == uin, statement_entries.c.action_type == "deduct"))
            .scalars())
    assert modes == ["hour_d", "hour_h", "hour_m"]
    assert {line["cycle"]: line["deducted"] for line in lines(rt)}["month"] == 21_00  # 100 GB x 0.21
    clean(rt)


@pytest.mark.spec("SET-1", "SET-4", "SET-9")
def test_usage_within_the_metering_grace_is_a_charge_and_after_the_run_is_late(metered):
    """Hour H's metering reported at H+1:05 is on H's charge line when the runner
    runs at H+1:15 (nothing of H is settled at H+1:00); what is reported after that
    run is late usage, billed by the next hour's run as an adjustment line."""
    from feecenter.jobs import runner

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    (s0, e0), (_, e1) = hour(0), hour(1)
    rt.clock.set(e0 + timedelta(minutes=5))
    ingest(rt, [("g1", uin, rid, "S5.MEDIUM4", "1", s0, e0)])
    runner.run_pass(rt.engine, rt.clock)
    assert lines(rt) == []  # hour 0 is due at its end + 15 min
    rt.clock.set(e0 + timedelta(minutes=15))
    runner.run_pass(rt.engine, rt.clock)
    [charge] = lines(rt)
    assert (charge["period_key"], charge["kind"], charge["quantity"], charge["deducted"]) == (
        "2026-03-02T10", "charge", 1_000_000, 50)
    rt.clock.set(e0 + timedelta(minutes=20))
    ingest(rt, [("g2", uin, rid, "S5.MEDIUM4", "0.5", s0, e0)])  # after hour 0's run
    rt.clock.set(e1)
    runner.run_pass(rt.engine, rt.clock)
    assert len(lines(rt)) == 1  # hour 1 is not due yet: the late pass has not run
    rt.clock.set(e1 + timedelta(minutes=15))
    runner.run_pass(rt.engine, rt.clock)
    [first, late] = lines(rt)
    assert first == charge  # never edited
    assert (late["period_key"], late["kind"], late["quantity"], late["adjusts_line_id"],
            late["deducted"]) == ("2026-03-02T10", "adjustment", 500_000, charge["id"], 25)
    assert "迟到用量补扣" in late["reason"] and "late usage" in late["reason"]
    assert balance(rt, uin).cash == 10_00 - 50 - 25
    clean(rt)


def test_settlement_jobs_wait_a_metering_grace_that_keeps_the_month_on_the_1st():
    """SET-4: each settlement job is due a short grace after its period ends, after the
    hour and still on the 1st for the month (the grace stays inside the next period)."""
    from feecenter.jobs.loader import load_all
    from feecenter.jobs.registry import REGISTRY
    from feecenter.settlement.jobs import METERING_GRACE

    load_all()
    for cycle, cadence in (("hour", HOURLY), ("day", DAILY), ("month", MONTHLY)):
        spec = REGISTRY.get({"hour": "settlement.hourly", "day": "settlement.daily",
                             "month": "settlement.monthly"}[cycle])
        assert spec.cadence == cadence and spec.lag == METERING_GRACE[cycle] > timedelta(0)
    january = period_containing(MONTHLY, datetime(2026, 1, 15, tzinfo=BUSINESS_TZ))
    due = january.due_at(REGISTRY.get("settlement.monthly").lag).astimezone(BUSINESS_TZ)
    assert (due.year, due.month, due.day) == (2026, 2, 1)
    assert METERING_GRACE["hour"] < timedelta(hours=1)


def test_listing_bill_lines_pages_and_filters(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    rt.clock.set(hour(3)[1])
    ingest(rt, [(f"x{n}", uin, rid, "S5.MEDIUM4", "1", *hour(n)) for n in range(3)])
    for n in range(3):
        settle(rt, "hour", hour(n)[0])
    with rt.engine.connect() as conn:
        page = settlement.list_bill_lines(conn, SYSTEM, uin, {"month": "2026-03",
                                                             "product": "cvm"}, 1, 1)
        none = settlement.list_bill_lines(conn, SYSTEM, uin, {"month": "2026-04"})
    assert page["total"] == 3 and len(page["items"]) == 1
    assert page["items"][0]["period_key"] == "2026-03-02T11"
    assert none["total"] == 0
    other = new_account(rt, name="other")
    from feecenter.accounts.permissions import Actor
    from feecenter.errors import PermissionDenied
    stranger = Actor(kind="user", name="x", uin=other, user_id=1, role="owner")
    with rt.engine.connect() as conn, pytest.raises(PermissionDenied):
        settlement.list_bill_lines(conn, stranger, uin)


@pytest.mark.spec("SET-3", "BAL-5")
def test_one_transaction_per_product_each_rounded(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    disk = open_(rt, uin, product="cbs", spec="premium")
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("t1", uin, rid, "S5.MEDIUM4", "1", s, e),
                ("t2", uin, disk, "premium", "100", s, e)])  # 100 x 0.00049 = 0.049
    settle(rt, "hour", s)
    by_product = {line["product_code"]: line for line in lines(rt)}
    assert (by_product["cbs"]["deducted"], by_product["cbs"]["rounding_diff"]) == (5, 100_000)
    assert by_product["cbs"]["txn_id"] != by_product["cvm"]["txn_id"]
    with rt.engine.connect() as conn:
        entries = conn.execute(select(statement_entries.c.product_code, statement_entries.c.amount)
                               .where(statement_entries.c.uin == uin,
                                      statement_entries.c.action_type == "deduct")).all()
    assert sorted(entries) == [("cbs", -5), ("cvm", -50)]
    clean(rt)


def test_rest_adapter_renders_yuan_and_8_decimal_strings(metered):
    from feecenter.api import bills

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("r1", uin, rid, "S5.MEDIUM4", "0.333333", s, e)])
    settle(rt, "hour", s)
    page = bills.list_bill_lines(uin, rt, SYSTEM, month="2026-03", product="cvm")
    [line] = page["items"]
    assert (line["quantity"], line["unit_price"], line["discounted_amount"], line["deducted"],
            line["rounding_diff"], line["cash_paid"]) == (
        "0.333333", "0.50000000", "0.16666650", "0.17", "0.00333350", "0.17")
    diff = bills.precision_difference(uin, "2026-03", rt, SYSTEM)
    assert (diff["difference"], diff["deducted_total"], diff["meaning"]) == (
        "0.00333350", "0.17", "customer_overpaid")


@pytest.mark.spec("SET-2")
def test_a_fixed_price_is_charged_once_a_month(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 100_00)
    with rt.engine.begin() as conn:
        catalog.set_fixed_price(conn, rt.clock, OPS, uin, product="cvm", item="S5.MEDIUM4",
                                pay_mode="postpaid", amount_per_month=30_00_000_000)  # 30.00
    rt.clock.set(hour(2)[1])
    ingest(rt, [(f"f{n}", uin, rid, "S5.MEDIUM4", "1", *hour(n)) for n in range(2)])
    for n in range(2):
        settle(rt, "hour", hour(n)[0])
    assert [(line["price_kind"], line["deducted"]) for line in lines(rt)] == [
        ("fixed", 30_00), ("fixed", 0)]
    assert balance(rt, uin).cash == 70_00
    clean(rt)


# ---------------------------------------------------------------- the SET-6 / SET-10 seam

def test_the_seam_prices_what_packages_leave_and_splits_what_coupons_pay(metered, monkeypatch):
    """What the two hooks may do is honoured: a covered quantity is not priced, a
    voucher pays part of a transaction and the balances the rest (the features
    themselves are not built; the fakes stand in for them)."""
    from feecenter.settlement import extensions

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    seen = {}

    def cover(conn, clock, run, lines):
        seen["lines"] = [(line.item, line.quantity) for line in lines]
        for line in lines:
            if line.item == "traffic":
                line.chargeable = line.quantity - 1_500_000  # 1.5 GB covered
                line.covered = (("pkg-1", 1_500_000),)

    def pay(conn, clock, run, charges):
        seen["charges"] = [(c.uin, c.product, c.total) for c in charges]
        charges[0].voucher = 30

    monkeypatch.setattr(extensions, "cover_with_resource_packages", cover)
    monkeypatch.setattr(extensions, "pay_with_postpaid_coupons", pay)
    s, e = hour(0)
    rt.clock.set(e)
    ingest(rt, [("v1", uin, rid, "S5.MEDIUM4", "1", s, e),
                ("v2", uin, rid, "traffic", "2", s, e)])
    settle(rt, "hour", s)
    assert seen == {"lines": [("S5.MEDIUM4", 1_000_000), ("traffic", 2_000_000)],
                    "charges": [(uin, "cvm", 90)]}  # 0.50 + 0.5 GB x 0.80
    by_item = {line["billing_item"]: line for line in lines(rt)}
    assert (by_item["traffic"]["quantity"], by_item["traffic"]["discounted_amount"]) == (
        2_000_000, 40_000_000)
    assert sum(line["voucher_paid"] for line in by_item.values()) == 30
    assert [line["voucher_paid"] + line["cash_paid"] for line in by_item.values()] == [
        line["deducted"] for line in by_item.values()]
    assert balance(rt, uin).cash == 10_00 - 60
    clean(rt)


@pytest.mark.spec("SET-1", "SET-8")
def test_usage_that_cannot_be_priced_leaves_its_account_unsettled_and_the_rest_settled(rt):
    load(rt)
    priced, unpriced = new_account(rt, "priced"), new_account(rt, "unpriced")
    here = open_(rt, priced)
    there = open_(rt, unpriced, region="ap-beijing")
    for uin in (priced, unpriced):
        add_cash(rt, uin, 10_00)
    s0, e0 = hour(0)
    rt.clock.set(e0)
    ingest(rt, [("p-0", priced, here, "S5.MEDIUM4", "1", s0, e0),
                ("u-0", unpriced, there, "S5.MEDIUM4", "1", s0, e0)])
    beijing = ("UPDATE price_lists SET starts_at = :at WHERE region_code = 'ap-beijing' "
               "AND pay_mode = 'postpaid'")
    with rt.engine.begin() as conn:  # an operator's mistake: no Beijing price in force
        conn.execute(text(beijing), {"at": datetime(2030, 1, 1)})
    with pytest.raises(settlement.SettlementIncomplete) as refused:
        settle(rt, "hour", s0)
    assert list(refused.value.details["unpriced"]) == [str(unpriced)]
    assert there in refused.value.details["unpriced"][str(unpriced)]
    assert {line["uin"] for line in lines(rt)} == {priced}
    assert balance(rt, priced).cash == 10_00 - 50 and balance(rt, unpriced).cash == 10_00
    with rt.engine.begin() as conn:  # the price restored: the retry settles the rest
        conn.execute(text(beijing), {"at": datetime(2026, 1, 1)})
    assert settle(rt, "hour", s0)["accounts"] == 1
    assert {line["uin"] for line in lines(rt)} == {priced, unpriced}
    assert balance(rt, unpriced).cash == 10_00 - 50
    assert settle(rt, "hour", s0)["accounts"] == 0  # and the period is settled once
    clean(rt)


@pytest.mark.spec("SET-9")
def test_late_usage_that_cannot_be_priced_waits_and_the_period_still_settles_the_rest(rt):
    load(rt)
    priced, unpriced = new_account(rt, "priced"), new_account(rt, "unpriced")
    here, there = open_(rt, priced), open_(rt, unpriced, region="ap-beijing")
    for uin in (priced, unpriced):
        add_cash(rt, uin, 10_00)
    (s0, e0), (s1, e1) = hour(0), hour(1)
    rt.clock.set(e0)
    ingest(rt, [("p-0", priced, here, "S5.MEDIUM4", "1", s0, e0),
                ("u-0", unpriced, there, "S5.MEDIUM4", "1", s0, e0)])
    settle(rt, "hour", s0)
    beijing = ("UPDATE price_lists SET starts_at = :at WHERE region_code = 'ap-beijing' "
               "AND pay_mode = 'postpaid'")
    with rt.engine.begin() as conn:
        conn.execute(text(beijing), {"at": datetime(2030, 1, 1)})
    rt.clock.set(e1)
    ingest(rt, [("u-late", unpriced, there, "S5.MEDIUM4", "1", s0, e0),  # late, for hour 0
                ("p-1", priced, here, "S5.MEDIUM4", "1", s1, e1)])
    with pytest.raises(settlement.SettlementIncomplete) as refused:
        settle(rt, "hour", s1)
    assert list(refused.value.details["unpriced"]) == [str(unpriced)]
    assert balance(rt, priced).cash == 10_00 - 100  # its hour 1 is settled all the same
    with rt.engine.begin() as conn:
        conn.execute(text(beijing), {"at": datetime(2026, 1, 1)})
    assert settle(rt, "hour", s1)["adjustment_lines"] == 1
    assert balance(rt, unpriced).cash == 10_00 - 100
    clean(rt)
