"""Monthly freeze settlement (FRZ-5): a legacy per-product option, off by default.
Each cycle's cost is frozen as it accrues; on the settlement day of the next month
(the 3rd, configurable) the month's freezes are released and its actual cost
deducted, once; a released resource keeps its freeze until that day."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.catalog.loader import parse_catalog
from feecenter.clock import BUSINESS_TZ, to_utc
from feecenter.config import monthly_freeze_day
from feecenter.db.engine import transaction
from feecenter.funds.tables import statement_entries
from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import REGISTRY
from feecenter.periods import DAILY, HOURLY, monthly_settlement_day, period_containing
from feecenter.resources import postpaid
from feecenter.settlement import monthly_freeze, rules
from feecenter.settlement.tables import bill_lines, monthly_freeze_settlements, monthly_freezes
from tests.helpers import add_cash, add_gift, assert_reconciled, balance, new_account
from tests.test_settlement import ingest, load, open_, settle

pytestmark = pytest.mark.spec("FRZ-5")

VM = "S5.MEDIUM4"  # 0.50 yuan an hour in the sample catalog (cvm, hourly)


def shanghai(month: int, day: int, hour: int = 0) -> datetime:
    return to_utc(datetime(2026, month, day, hour, tzinfo=BUSINESS_TZ))


def monthly_catalog(freeze_amount: str | None = None) -> str:
    """The sample catalog with cvm on monthly freeze settlement (and an opening freeze)."""
    extra = "    monthly_freeze: true\n"
    if freeze_amount is not None:
        extra += f'    freeze_amount: "{freeze_amount}"\n'
    text = catalog.sample_catalog_text()
    assert text.count("    class: compute\n") == 1
    return text.replace("    class: compute\n", "    class: compute\n" + extra)


def begin(rt, text: str | None = None) -> None:
    """The clock in February (resources open before March's usage), the catalog loaded."""
    rt.clock.set(shanghai(2, 27, 9))
    load(rt, text)


def use_hours(rt, uin, rid, hours: list[tuple[datetime, str]], tag: str = "") -> None:
    """Meter and settle each (hour start, quantity) in turn, the clock just after it."""
    for n, (start, quantity) in enumerate(hours):
        end = start + timedelta(hours=1)
        rt.clock.set(end + timedelta(minutes=5))
        ingest(rt, [(f"{tag}{uin}-{n}", uin, rid, VM, quantity, start, end)])
        settle(rt, "hour", start)


def due(rt, today: date, day: int | None = 3) -> dict:
    return monthly_freeze.settle_due(rt.engine, rt.clock, today, day)


def deductions(rt, uin) -> list[int]:
    with rt.engine.connect() as conn:
        e = statement_entries.c
        return list(conn.execute(select(e.amount).where(
            e.uin == uin, e.action_type == "deduct").order_by(e.id)).scalars())


def frozen_gift(rt, uin) -> int:
    """What the freezes took from gift (their 收支明细 entries, FRZ-4)."""
    with rt.engine.connect() as conn:
        e = statement_entries.c
        return -conn.execute(select(func.coalesce(func.sum(e.gift_amount), 0)).where(
            e.uin == uin, e.action_type == "block")).scalar_one()


def line_total(rt, uin) -> int:
    with rt.engine.connect() as conn:
        b = bill_lines.c
        return conn.execute(select(func.coalesce(func.sum(b.deducted), 0))
                            .where(b.uin == uin)).scalar_one()


def platform_revenue(rt) -> int:
    """What every selling entity's revenue account received."""
    from feecenter.ledger.tables import ledger_accounts, ledger_postings

    with rt.engine.connect() as conn:
        p, a = ledger_postings.c, ledger_accounts.c
        return conn.execute(select(func.coalesce(func.sum(p.amount), 0))
                            .join(ledger_accounts, a.id == p.account_id)
                            .where(a.code.like("platform:%:revenue"))).scalar_one()


# March 2026 in Shanghai: the first hour, hours in the middle, fractions, the last hour
MARCH = [(shanghai(3, 1, 0), "1"), (shanghai(3, 2, 10), "1"), (shanghai(3, 9, 14), "0.333333"),
         (shanghai(3, 17, 3), "2"), (shanghai(3, 24, 22), "0.5"), (shanghai(3, 31, 23), "1")]
# each hour's charge, rounded half-up once: 0.50, 0.50, 0.1666665 -> 0.17, 1.00, 0.25, 0.50
MARCH_COST = 50 + 50 + 17 + 100 + 25 + 50


# ---------------------------------------------------------------- pure rules and settings

def test_the_due_month_and_the_settlement_day():
    assert rules.monthly_freeze_due(date(2026, 4, 2), 3) == "2026-02"
    assert rules.monthly_freeze_due(date(2026, 4, 3), 3) == "2026-03"
    assert rules.monthly_freeze_due(date(2026, 1, 28), 28) == "2025-12"
    assert rules.monthly_freeze_due(date(2026, 1, 27), 28) == "2025-11"
    assert rules.monthly_freeze_due(date(2026, 1, 1), 1) == "2025-12"
    for bad in (0, 29, True, "3"):
        with pytest.raises(ValueError):
            rules.monthly_freeze_due(date(2026, 4, 3), bad)
    assert monthly_settlement_day(shanghai(3, 31, 23), 3) == shanghai(4, 3)
    assert monthly_settlement_day(shanghai(12, 15), 1) == to_utc(
        datetime(2027, 1, 1, tzinfo=BUSINESS_TZ))


def test_the_day_is_a_setting_of_1_to_28_default_3(monkeypatch):
    monkeypatch.delenv("FEECENTER_MONTHLY_FREEZE_DAY", raising=False)
    assert monthly_freeze_day() == 3
    monkeypatch.setenv("FEECENTER_MONTHLY_FREEZE_DAY", "28")
    assert monthly_freeze_day() == 28
    for bad in ("0", "29", "3.5", "three", "-1"):
        monkeypatch.setenv("FEECENTER_MONTHLY_FREEZE_DAY", bad)
        with pytest.raises(ValueError, match="FEECENTER_MONTHLY_FREEZE_DAY"):
            monthly_freeze_day()


def test_the_catalog_option_is_a_postpaid_boolean_off_by_default():
    parsed, problems = parse_catalog(catalog.sample_catalog_text(), "s.yaml", {})
    assert problems == [] and not any(p.monthly_freeze for p in parsed.products)
    parsed, problems = parse_catalog(monthly_catalog(), "m.yaml", {})
    assert problems == []
    assert [p.code for p in parsed.products if p.monthly_freeze] == ["cvm"]
    _, problems = parse_catalog(catalog.sample_catalog_text().replace(
        "    class: compute\n", "    class: compute\n    monthly_freeze: maybe\n"), "b.yaml", {})
    assert [p.field for p in problems] == ["products[cvm].monthly_freeze"]
    prepaid_only = catalog.sample_catalog_text().replace(
        "    class: security\n", "    class: security\n    monthly_freeze: true\n")
    _, problems = parse_catalog(prepaid_only, "p.yaml", {})
    assert [p.field for p in problems] == ["products[ssl].monthly_freeze"]
    assert "postpaid" in problems[0].en and problems[0].zh


# ---------------------------------------------------------------- off by default

def test_off_by_default_each_cycle_is_deducted_as_before(rt):
    begin(rt)
    with rt.engine.connect() as conn:
        assert not any(p.monthly_freeze for p in catalog.list_products(conn))
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 10_00)
    use_hours(rt, uin, rid, MARCH[1:3])
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (10_00 - 67, 0)
    assert deductions(rt, uin) == [-50, -17]
    assert due(rt, date(2026, 4, 3)) == {"through": "2026-03", "settled": 0, "skipped": 0,
                                         "failed": 0, "released_fen": 0, "deducted_fen": 0}
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monthly_freezes)).scalar_one() == 0
    assert balance(rt, uin).cash == 10_00 - 67
    assert_reconciled(rt)


# ---------------------------------------------------------------- on

@pytest.fixture
def frozen_month(rt):
    """cvm on monthly freeze; an account with 1.00 gift and 20.00 cash and a VM used
    in six hours of March, each settled (frozen) after its hour."""
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_gift(rt, uin, 1_00)
    add_cash(rt, uin, 20_00)
    use_hours(rt, uin, rid, MARCH)
    return rt, uin, rid


def test_a_month_of_usage_is_frozen_as_it_accrues_and_nothing_deducted(rt):
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_gift(rt, uin, 1_00)
    add_cash(rt, uin, 20_00)
    frozen = 0
    for n, (start, quantity) in enumerate(MARCH):
        use_hours(rt, uin, rid, [(start, quantity)], tag=f"h{n}-")
        frozen += [50, 50, 17, 100, 25, 50][n]
        view = balance(rt, uin)
        assert view.frozen == frozen                        # the frozen total grows
        assert view.available == 21_00 - frozen             # and is not available
        assert view.cash + view.gift == 21_00               # frozen, not deducted
        assert frozen_gift(rt, uin) == min(frozen, 1_00)    # gift is frozen first (FRZ-1)
    assert deductions(rt, uin) == []
    assert platform_revenue(rt) == 0
    assert line_total(rt, uin) == MARCH_COST  # the L3 lines still bill each hour
    with rt.engine.connect() as conn:
        status = monthly_freeze.monthly_freeze_status(conn, SYSTEM, uin)
    assert status == [{"product": "cvm", "month": "2026-03", "cost": MARCH_COST,
                       "frozen": MARCH_COST, "shortfall": 0, "cycles": 6, "settled": False,
                       "deducted": 0}]
    assert_reconciled(rt)


def test_on_the_3rd_the_freeze_is_released_and_the_actual_cost_deducted_once(frozen_month):
    rt, uin, _ = frozen_month
    before = balance(rt, uin)
    assert before.frozen == MARCH_COST
    rt.clock.set(shanghai(4, 2, 12))
    assert due(rt, date(2026, 4, 2))["settled"] == 0  # the 2nd: not yet
    assert balance(rt, uin) == before
    rt.clock.set(shanghai(4, 3, 3))
    result = due(rt, date(2026, 4, 3))
    assert result == {"through": "2026-03", "settled": 1, "skipped": 0, "failed": 0,
                      "released_fen": MARCH_COST, "deducted_fen": MARCH_COST}
    after = balance(rt, uin)
    assert after.frozen == 0
    assert after.gift == 0 and after.cash == 21_00 - MARCH_COST  # to the fen
    assert after.arrears == 0
    assert deductions(rt, uin) == [-MARCH_COST]
    assert platform_revenue(rt) == MARCH_COST
    assert due(rt, date(2026, 4, 3))["settled"] == 0  # a rerun deducts nothing more
    assert due(rt, date(2026, 4, 20))["settled"] == 0
    assert balance(rt, uin) == after and deductions(rt, uin) == [-MARCH_COST]
    with rt.engine.connect() as conn:
        status = monthly_freeze.monthly_freeze_status(conn, SYSTEM, uin)
        entries = conn.execute(select(statement_entries.c.action_type)
                               .where(statement_entries.c.uin == uin)).scalars().all()
    assert status[0]["settled"] and status[0]["deducted"] == MARCH_COST
    assert entries.count("block") == 6 and entries.count("unblock") == 6
    assert_reconciled(rt)


def test_a_missed_day_is_settled_on_a_later_day_and_april_waits_for_may(frozen_month):
    rt, uin, rid = frozen_month
    use_hours(rt, uin, rid, [(shanghai(4, 1, 8), "1")], tag="april-")
    assert balance(rt, uin).frozen == MARCH_COST + 50
    rt.clock.set(shanghai(4, 9))
    assert due(rt, date(2026, 4, 9))["deducted_fen"] == MARCH_COST  # March only
    view = balance(rt, uin)
    assert view.frozen == 50 and deductions(rt, uin) == [-MARCH_COST]
    rt.clock.set(shanghai(5, 3, 3))
    assert due(rt, date(2026, 5, 3))["deducted_fen"] == 50
    assert balance(rt, uin).frozen == 0 and deductions(rt, uin) == [-MARCH_COST, -50]
    assert_reconciled(rt)


def test_a_cycle_settled_after_its_month_was_settled_is_deducted_at_once(rt):
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 10_00)
    use_hours(rt, uin, rid, MARCH[1:2])
    rt.clock.set(shanghai(4, 3, 3))
    due(rt, date(2026, 4, 3))
    start = shanghai(3, 31, 22)  # an hour of March settled late (a backfill)
    ingest(rt, [("late", uin, rid, VM, "1", start, start + timedelta(hours=1))])
    settle(rt, "hour", start)
    view = balance(rt, uin)
    assert view.frozen == 0 and view.cash == 10_00 - 100
    assert deductions(rt, uin) == [-50, -50]
    assert_reconciled(rt)


def test_what_the_balances_cannot_cover_is_recorded_and_becomes_arrears(rt):
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 30)
    use_hours(rt, uin, rid, [(shanghai(3, 5, 9), "1"), (shanghai(3, 6, 9), "1")])
    view = balance(rt, uin)
    assert (view.cash, view.frozen, view.available, view.arrears) == (30, 30, 0, 0)
    with rt.engine.connect() as conn:
        status = monthly_freeze.monthly_freeze_status(conn, SYSTEM, uin)
    assert (status[0]["cost"], status[0]["frozen"], status[0]["shortfall"]) == (100, 30, 70)
    rt.clock.set(shanghai(4, 3, 3))
    assert due(rt, date(2026, 4, 3))["deducted_fen"] == 100
    view = balance(rt, uin)
    assert (view.cash, view.frozen, view.arrears) == (0, 0, 70)  # SET-5: arrears owed
    assert_reconciled(rt)


def test_a_resource_released_mid_month_keeps_its_freeze_until_the_3rd(rt):
    begin(rt, monthly_catalog(freeze_amount="5.00"))
    uin = new_account(rt)
    add_cash(rt, uin, 20_00)
    rid = open_(rt, uin)
    assert balance(rt, uin).frozen == 5_00  # the opening freeze (FRZ-1)
    use_hours(rt, uin, rid, MARCH[1:4])
    rt.clock.set(shanghai(3, 18, 9))
    with transaction(rt.engine) as conn:
        done = postpaid.release_postpaid(conn, rt.clock, SYSTEM, uin, rid)
    assert done["freeze_release_at"] == shanghai(4, 3)
    frozen = 5_00 + 50 + 17 + 100
    assert balance(rt, uin).frozen == frozen
    for when in (shanghai(3, 18, 10), shanghai(4, 1, 5), shanghai(4, 2, 23)):
        rt.clock.set(when)
        with transaction(rt.engine) as conn:
            assert postpaid.release_due_freezes(conn, rt.clock) == 0
        due(rt, when.astimezone(BUSINESS_TZ).date())
        assert balance(rt, uin).frozen == frozen  # nothing released earlier
    rt.clock.set(shanghai(4, 3, 3))
    with transaction(rt.engine) as conn:
        assert postpaid.release_due_freezes(conn, rt.clock) == 1
    assert due(rt, date(2026, 4, 3))["released_fen"] == 167
    view = balance(rt, uin)
    assert view.frozen == 0 and view.cash == 20_00 - 167
    assert_reconciled(rt)


def test_the_job_settles_on_the_configured_day(frozen_month, monkeypatch):
    rt, uin, _ = frozen_month
    load_all()
    spec = REGISTRY.get("settlement.monthly_freeze")
    assert spec.cadence == DAILY
    april_2nd = period_containing(DAILY, shanghai(4, 2, 12))  # its run acts as of the 3rd
    assert spec.lag == timedelta(hours=3)
    assert april_2nd.due_at(spec.lag) == shanghai(4, 3, 3)
    monkeypatch.setenv("FEECENTER_MONTHLY_FREEZE_DAY", "5")
    rt.clock.set(shanghai(4, 3, 3))
    assert spec.func(rt.engine, rt.clock, april_2nd)["settled"] == 0  # the 3rd: not on day 5
    assert balance(rt, uin).frozen == MARCH_COST
    rt.clock.set(shanghai(4, 5, 3))
    april_4th = period_containing(DAILY, shanghai(4, 4, 12))
    assert spec.func(rt.engine, rt.clock, april_4th)["deducted_fen"] == MARCH_COST
    assert balance(rt, uin).frozen == 0
    assert spec.func(rt.engine, rt.clock, april_4th)["settled"] == 0
    assert deductions(rt, uin) == [-MARCH_COST]
    assert_reconciled(rt)


def test_the_hourly_cycle_of_a_monthly_freeze_product_is_still_settled_once(frozen_month):
    rt, uin, _ = frozen_month
    settle(rt, "hour", MARCH[2][0])  # a rerun of a settled hour
    assert balance(rt, uin).frozen == MARCH_COST
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(monthly_freezes)).scalar_one() == 6
        assert conn.execute(select(func.count()).select_from(
            monthly_freeze_settlements)).scalar_one() == 0
    assert period_containing(HOURLY, MARCH[-1][0]).key == "2026-03-31T23"


def send(rt, uin, rid, start, quantity, revision, event):
    """A (re)metered record of the hour at ``start`` (SET-9 corrections)."""
    import json

    from feecenter.clock import business_time_text
    from feecenter.usage import service as usage
    from tests.helpers import OPS

    text = json.dumps({"event_id": event, "uin": uin, "resource_id": rid, "billing_item": VM,
                       "quantity": quantity, "usage_start": business_time_text(start),
                       "usage_end": business_time_text(start + timedelta(hours=1)),
                       "revision": revision})
    assert usage.ingest(rt.engine, rt.clock, OPS, text).rejected == 0


@pytest.mark.spec("FRZ-5", "SET-9")
def test_late_usage_and_corrections_of_an_open_month_change_its_cost_not_the_balance(rt):
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 10_00)
    first, second = shanghai(3, 10, 9), shanghai(3, 10, 10)
    use_hours(rt, uin, rid, [(first, "2")], tag="a-")  # 1.00 frozen, event a-{uin}-0
    send(rt, uin, rid, first, "1", 1, f"a-{uin}-0")    # corrected down to 0.50
    # and traffic of that hour that arrives late (0.80 yuan a GB)
    ingest(rt, [("late", uin, rid, "traffic", "1", first, first + timedelta(hours=1))])
    use_hours(rt, uin, rid, [(second, "1")], tag="b-")  # its late pass bills both
    with rt.engine.connect() as conn:
        b = bill_lines.c
        adjusted = sorted(conn.execute(select(b.deducted).where(
            b.uin == uin, b.kind == "adjustment")).scalars())
        [status] = monthly_freeze.monthly_freeze_status(conn, SYSTEM, uin)
    assert adjusted == [-50, 80]
    assert (status["cost"], status["frozen"], status["cycles"]) == (100 - 50 + 80 + 50, 230, 3)
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (10_00, 230)  # nothing given back, nothing deducted
    assert deductions(rt, uin) == []
    rt.clock.set(shanghai(4, 3, 3))
    assert due(rt, date(2026, 4, 3))["deducted_fen"] == 180 == line_total(rt, uin)
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (10_00 - 180, 0)
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-5", "SET-9")
def test_a_correction_after_the_month_is_settled_gives_money_back_at_once(frozen_month):
    rt, uin, rid = frozen_month
    rt.clock.set(shanghai(4, 3, 3))
    due(rt, date(2026, 4, 3))
    cash = balance(rt, uin).cash
    send(rt, uin, rid, MARCH[3][0], "1", 1, f"{uin}-3")  # 2 hours corrected to 1
    use_hours(rt, uin, rid, [(shanghai(4, 3, 4), "1")], tag="april-")  # April: frozen
    view = balance(rt, uin)
    # 0.50 back as the settlement's 2.92 was paid (1.00 gift, 1.92 cash): 0.17 gift,
    # 0.33 cash; April's 0.50 frozen (the view's gift and cash count what is frozen)
    assert (view.gift, view.cash, view.frozen) == (17, cash + 33, 50)
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-5", "SET-8")
def test_a_crash_mid_run_then_a_rerun_deducts_each_account_once(rt, monkeypatch, caplog):
    """The second account's transaction fails after its freezes were released: it rolls
    back whole (still frozen, nothing deducted), the first stays settled, the run counts
    and logs the failure; the rerun settles only the second."""
    from feecenter.funds import service as funds

    begin(rt, monthly_catalog())
    first, second = new_account(rt, name="one"), new_account(rt, name="two")
    vms = {uin: open_(rt, uin) for uin in (first, second)}
    for uin in vms:
        add_cash(rt, uin, 10_00)
    for uin, rid in vms.items():
        use_hours(rt, uin, rid, MARCH[1:3], tag=f"{uin}-")
    spend = funds.spend

    def crash_on_second(conn, clock, uin, *args, **kwargs):
        if uin == second:
            raise RuntimeError("the worker died")
        return spend(conn, clock, uin, *args, **kwargs)

    monkeypatch.setattr(funds, "spend", crash_on_second)
    rt.clock.set(shanghai(4, 3, 3))
    result = due(rt, date(2026, 4, 3))
    assert (result["settled"], result["failed"]) == (1, 1)
    assert any(str(second) in r.getMessage() and r.exc_info for r in caplog.records)
    assert (balance(rt, first).frozen, balance(rt, second).frozen) == (0, 67)
    assert (deductions(rt, first), deductions(rt, second)) == ([-67], [])
    monkeypatch.setattr(funds, "spend", spend)
    result = due(rt, date(2026, 4, 3))
    assert (result["settled"], result["failed"]) == (1, 0)
    for uin in vms:
        view = balance(rt, uin)
        assert (view.cash, view.frozen) == (10_00 - 67, 0)
        assert deductions(rt, uin) == [-67]
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-5", "SET-8")
def test_one_account_failing_does_not_stop_the_later_accounts(rt, monkeypatch, caplog):
    """The first account (by uin) fails: the accounts after it are still settled."""
    begin(rt, monthly_catalog())
    uins = [new_account(rt, name=f"f{i}") for i in range(3)]
    vms = {uin: open_(rt, uin) for uin in uins}
    for uin, rid in vms.items():
        add_cash(rt, uin, 10_00)
        use_hours(rt, uin, rid, MARCH[1:2], tag=f"{uin}-")
    settle_one = monthly_freeze._settle_one

    def fail_first(conn, clock, uin, *args):
        if uin == min(uins):
            raise ValueError("a broken month")
        return settle_one(conn, clock, uin, *args)

    monkeypatch.setattr(monthly_freeze, "_settle_one", fail_first)
    rt.clock.set(shanghai(4, 3, 3))
    result = due(rt, date(2026, 4, 3))
    assert (result["settled"], result["failed"], result["deducted_fen"]) == (2, 1, 100)
    assert [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert [balance(rt, uin).frozen for uin in sorted(uins)] == [50, 0, 0]


@pytest.mark.spec("FRZ-5", "SET-9")
def test_a_cycle_deducted_before_the_switch_is_corrected_by_giving_back(rt):
    """cvm switched to monthly freeze by a catalog reload after a cycle was deducted
    normally: a correction of that cycle gives money back at once (nothing of it is
    frozen), the month's cost is not lowered, and the settlement day runs for all."""
    begin(rt)  # monthly freeze off
    uin, other = new_account(rt, "aa-co"), new_account(rt, "bb-co")
    rid, rid2 = open_(rt, uin), open_(rt, other)
    add_cash(rt, uin, 10_00)
    add_cash(rt, other, 10_00)
    hour = shanghai(3, 10, 9)
    use_hours(rt, uin, rid, [(hour, "2")], tag="a-")  # 1.00 deducted
    load(rt, monthly_catalog())  # the operator turns monthly freeze on
    use_hours(rt, uin, rid, [(shanghai(3, 20, 9), "1")], tag="x-")  # uin: 0.50 frozen
    use_hours(rt, other, rid2, [(shanghai(3, 20, 9), "1")], tag="b-")  # other: 0.50 frozen
    send(rt, uin, rid, hour, "1", 1, f"a-{uin}-0")  # the deducted hour corrected to 1
    use_hours(rt, uin, rid, [(shanghai(3, 21, 9), "0")], tag="c-")  # its late pass
    view = balance(rt, uin)
    assert (view.cash, view.frozen) == (10_00 - 100 + 50, 50)  # 0.50 given back at once
    with rt.engine.connect() as conn:
        f = monthly_freezes.c
        assert conn.execute(select(func.count()).select_from(monthly_freezes).where(
            f.uin == uin, f.kind == "correction")).scalar_one() == 0
    rt.clock.set(shanghai(4, 3, 3))
    result = due(rt, date(2026, 4, 3))
    assert (result["settled"], result["failed"], result["deducted_fen"]) == (2, 0, 100)
    for who, cash in ((uin, 10_00 - 100 + 50 - 50), (other, 10_00 - 50)):
        view = balance(rt, who)
        assert (view.cash, view.frozen) == (cash, 0)
    assert line_total(rt, uin) == 100 - 50 + 50
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-5", "SET-9")
def test_a_correction_after_settlement_gives_back_what_the_settlement_took(rt):
    """The freeze took cash; gift granted before the 3rd is what the settlement day
    deducts (gift first). A correction after that gives gift back, not cash."""
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    add_cash(rt, uin, 1_00)
    hour = shanghai(3, 10, 9)
    use_hours(rt, uin, rid, [(hour, "2")], tag="a-")  # 1.00 frozen, all cash
    add_gift(rt, uin, 1_00)
    rt.clock.set(shanghai(4, 3, 3))
    assert due(rt, date(2026, 4, 3))["deducted_fen"] == 100
    view = balance(rt, uin)
    assert (view.cash, view.gift, view.frozen) == (1_00, 0, 0)  # the gift paid it
    send(rt, uin, rid, hour, "1", 1, f"a-{uin}-0")  # corrected to 1 hour: 0.50 back
    use_hours(rt, uin, rid, [(shanghai(4, 3, 4), "0")], tag="april-")  # its late pass
    view = balance(rt, uin)
    assert (view.cash, view.gift) == (1_00, 50)  # back to gift, as the settlement took it
    with rt.engine.connect() as conn:
        b = bill_lines.c
        [line] = conn.execute(select(b.deducted, b.gift_paid, b.cash_paid).where(
            b.uin == uin, b.kind == "adjustment")).all()
    assert tuple(line) == (-50, -50, 0)
    assert_reconciled(rt)


@pytest.mark.spec("FRZ-5", "SET-9", "ARR-4")
def test_a_shortfall_paid_by_a_later_gift_is_given_back_to_gift(rt):
    """Nothing to freeze (the whole cost a shortfall); gift granted; the settlement day
    deducts it from the gift; a correction after that gives gift back, not cash."""
    begin(rt, monthly_catalog())
    uin = new_account(rt)
    rid = open_(rt, uin)
    hour = shanghai(3, 10, 9)
    use_hours(rt, uin, rid, [(hour, "2")], tag="a-")  # 1.00 shortfall
    add_gift(rt, uin, 2_00)
    rt.clock.set(shanghai(4, 3, 3))
    assert due(rt, date(2026, 4, 3))["deducted_fen"] == 100
    send(rt, uin, rid, hour, "1", 1, f"a-{uin}-0")
    use_hours(rt, uin, rid, [(shanghai(4, 3, 4), "0")], tag="april-")
    view = balance(rt, uin)
    assert (view.cash, view.gift, view.arrears) == (0, 1_50, 0)
    assert_reconciled(rt)


# ---------------------------------------------------------------- concurrency (PostgreSQL)

@pytest.mark.postgres_only
@pytest.mark.spec("FRZ-5", "BAL-6")
def test_eight_runs_of_the_settlement_day_at_once_deduct_once(rt):
    """Three accounts' March, settled by eight runs released together: each account's
    month is claimed once (balances locked, then the settlement row looked for), so
    one deduction each, every freeze released once, reconcile clean."""
    from tests.helpers import run_threads

    begin(rt, monthly_catalog())
    uins = [new_account(rt, name=f"m{i}") for i in range(3)]
    vms = {uin: open_(rt, uin) for uin in uins}
    for uin in uins:
        add_cash(rt, uin, 10_00)
    for start, quantity in MARCH[:3]:
        for uin, rid in vms.items():
            use_hours(rt, uin, rid, [(start, quantity)], tag=start.isoformat())
    cost = 50 + 50 + 17
    rt.clock.set(shanghai(4, 3, 3))
    results = []
    errors = run_threads(8, lambda _: results.append(due(rt, date(2026, 4, 3))))
    assert errors == [] and sum(r["failed"] for r in results) == 0
    assert sum(r["settled"] for r in results) == len(uins)
    assert sum(r["deducted_fen"] for r in results) == cost * len(uins)
    for uin in uins:
        view = balance(rt, uin)
        assert (view.cash, view.frozen, view.arrears) == (10_00 - cost, 0, 0)
        assert deductions(rt, uin) == [-cost]
    with rt.engine.connect() as conn:
        e = statement_entries.c
        assert conn.execute(select(func.count()).select_from(statement_entries).where(
            e.action_type == "unblock")).scalar_one() == 3 * len(uins)
        assert conn.execute(select(func.count()).select_from(
            monthly_freeze_settlements)).scalar_one() == len(uins)
    assert platform_revenue(rt) == cost * len(uins)
    assert_reconciled(rt)
