"""SET-9: a usage record corrected (a higher revision of its event) for an hour
already settled becomes adjustment lines naming the original line and the
reason, charged or given back as the original was paid; never an edit."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner

from feecenter.clock import business_time_text
from feecenter.funds.tables import statement_entries
from feecenter.present.bills import bill_line_json
from feecenter.usage import service as usage
from feecenter.usage.tables import usage_records
from tests.conftest import MASTER_KEY
from tests.helpers import (OPS, add_cash, add_gift, assert_reconciled, balance, new_account,
                           run_threads)
from tests.test_settlement import hour, ingest, lines, load, open_, settle

VM = "S5.MEDIUM4"  # 0.50 yuan an hour in the sample catalog


@pytest.fixture
def metered(rt):
    """The sample catalog, an account and its postpaid VM."""
    load(rt)
    uin = new_account(rt)
    return rt, uin, open_(rt, uin, name="web-1")


def send(rt, uin, rid, quantity, revision, event="c0", n=0):
    """Send hour n's record of ``event`` at ``revision``; the intake result."""
    start, end = hour(n)
    text = json.dumps({"event_id": event, "uin": uin, "resource_id": rid, "billing_item": VM,
                       "quantity": quantity, "usage_start": business_time_text(start),
                       "usage_end": business_time_text(end), "revision": revision})
    result = usage.ingest(rt.engine, rt.clock, OPS, text)
    assert result.rejected == 0, result.to_dict()
    return result


def settled_hour_0(rt, uin, rid, quantity="1"):
    """Hour 0 metered (``quantity``) and settled; the clock then in hour 1."""
    s0, e0 = hour(0)
    rt.clock.set(e0)
    ingest(rt, [("c0", uin, rid, VM, quantity, s0, e0)])
    settle(rt, "hour", s0)
    rt.clock.set(e0 + timedelta(minutes=20))
    [original] = lines(rt, uin)
    return original


def next_hour(rt, n=1):
    """Settle hour n (its late pass bills the corrections for hour 0)."""
    start, end = hour(n)
    rt.clock.set(end)
    return settle(rt, "hour", start)


def adjustments(rt, uin):
    return [line for line in lines(rt, uin) if line["kind"] == "adjustment"]


@pytest.mark.spec("SET-9")
def test_a_correction_up_is_a_charged_adjustment_naming_the_original(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    original = settled_hour_0(rt, uin, rid)
    assert send(rt, uin, rid, "3", 1).corrected == 1
    assert next_hour(rt)["adjustment_lines"] == 1
    [adjustment] = adjustments(rt, uin)
    assert lines(rt, uin)[0] == original  # never edited
    assert (adjustment["period_key"], adjustment["quantity"], adjustment["deducted"],
            adjustment["cash_paid"], adjustment["adjusts_line_id"]) == (
        original["period_key"], 2_000_000, 1_00, 1_00, original["id"])
    reason = adjustment["reason"]
    assert "usage correction" in reason and str(original["id"]) in reason
    assert balance(rt, uin).cash == 10_00 - 50 - 1_00
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9")
def test_a_correction_down_gives_back_gift_and_cash_as_they_paid(metered):
    rt, uin, rid = metered
    add_gift(rt, uin, 20)
    add_cash(rt, uin, 10_00)
    original = settled_hour_0(rt, uin, rid, "2")  # 1.00: gift 0.20, cash 0.80
    assert (original["gift_paid"], original["cash_paid"]) == (20, 80)
    send(rt, uin, rid, "1", 1)
    next_hour(rt, 1)  # hour 1 has no usage: only the late pass writes
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["quantity"], adjustment["discounted_amount"], adjustment["deducted"],
            adjustment["gift_paid"], adjustment["cash_paid"], adjustment["adjusts_line_id"]) == (
        -1_000_000, -50_000_000, -50, -10, -40, original["id"])
    assert "usage correction" in adjustment["reason"]
    view = balance(rt, uin)
    assert (view.gift, view.cash) == (10, 10_00 - 80 + 40)
    with rt.engine.connect() as conn:
        entry = conn.execute(select(statement_entries).where(
            statement_entries.c.txn_id == adjustment["txn_id"])).mappings().one()
    assert (entry["action_type"], entry["amount"], entry["gift_amount"], entry["cash_amount"],
            entry["deduct_mode"], entry["product_code"]) == ("return", 50, 10, 40, "hour_h", "cvm")
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "SET-5")
def test_a_correction_down_cancels_the_arrears_its_original_left(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 20)
    original = settled_hour_0(rt, uin, rid)  # 0.50: cash 0.20, arrears 0.30
    assert (original["cash_paid"], original["arrears"], balance(rt, uin).arrears) == (20, 30, 30)
    send(rt, uin, rid, "0", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["deducted"], adjustment["cash_paid"], adjustment["arrears"]) == (
        -50, -20, -30)
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (20, 0)
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9")
def test_a_correction_of_a_correction_adjusts_from_the_latest_quantity(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    original = settled_hour_0(rt, uin, rid)
    send(rt, uin, rid, "3", 1)
    next_hour(rt, 1)
    send(rt, uin, rid, "2", 2)
    send(rt, uin, rid, "5", 1)  # a superseded revision, re-sent: changes nothing
    next_hour(rt, 2)
    got = adjustments(rt, uin)
    assert [(a["sequence"], a["quantity"], a["deducted"], a["adjusts_line_id"]) for a in got] == [
        (1, 2_000_000, 1_00, original["id"]), (2, -1_000_000, -50, original["id"])]
    every = lines(rt, uin)
    # original + adjustments = the latest quantity and its charge, to the fen
    assert sum(line["quantity"] for line in every) == 2_000_000
    assert sum(line["deducted"] for line in every) == 1_00
    assert balance(rt, uin).cash == 10_00 - 1_00
    with rt.engine.connect() as conn:
        assert conn.execute(select(usage_records.c.quantity, usage_records.c.revision)).one() == (
            2_000_000, 2)
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "SET-8")
def test_the_same_correction_twice_adds_nothing(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    settled_hour_0(rt, uin, rid)
    assert send(rt, uin, rid, "0.5", 1).corrected == 1
    next_hour(rt, 1)
    before = (lines(rt, uin), balance(rt, uin))
    again = send(rt, uin, rid, "0.5", 1)
    assert (again.corrected, again.duplicates) == (0, 1)
    next_hour(rt, 2)
    settle(rt, "hour", hour(0)[0])
    assert (lines(rt, uin), balance(rt, uin)) == before
    assert len(adjustments(rt, uin)) == 1
    assert_reconciled(rt, uin)


@pytest.mark.postgres_only
@pytest.mark.spec("SET-9")
def test_eight_threads_sending_and_billing_one_correction_give_back_once(metered):
    from feecenter.periods import HOURLY, period_containing
    from feecenter.settlement import service as settlement

    rt, uin, rid = metered
    add_gift(rt, uin, 20)
    add_cash(rt, uin, 10_00)
    settled_hour_0(rt, uin, rid, "2")

    def correct(i):
        if i % 2:
            send(rt, uin, rid, "1", 1)
        else:
            settlement.settle_late_usage(rt.engine, rt.clock, "hour",
                                         period_containing(HOURLY, hour(1)[0]))

    assert run_threads(8, correct) == []
    next_hour(rt, 1)  # whatever the threads missed
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["deducted"], adjustment["gift_paid"], adjustment["cash_paid"]) == (
        -50, -10, -40)
    assert (balance(rt, uin).gift, balance(rt, uin).cash) == (10, 10_00 - 80 + 40)
    assert_reconciled(rt, uin)


# ---------------------------------------------------------------- seen by the adapters

@pytest.fixture
def corrected_down(metered):
    """Hour 0 settled at 1 unit, then corrected to 0.5 and the correction billed."""
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    settled_hour_0(rt, uin, rid)
    send(rt, uin, rid, "0.5", 1)
    next_hour(rt)
    return rt, uin, rid


@pytest.mark.spec("SET-9")
def test_rest_bill_lines_show_the_negative_adjustment(corrected_down):
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.api import bills

    rt, uin, _ = corrected_down
    page = bills.list_bill_lines(uin, rt, SYSTEM, month="2026-03", kind="adjustment")
    [line] = page["items"]
    assert (line["quantity"], line["discounted_amount"], line["deducted"], line["cash_paid"]) == (
        "-0.500000", "-0.25000000", "-0.25", "-0.25")
    assert line["reason"].startswith("用量修正")


@pytest.mark.spec("SET-9")
def test_cli_bill_lines_show_the_negative_adjustment(corrected_down, database_url, monkeypatch,
                                                     tmp_path):
    from feecenter.cli.bills import bills_app

    rt, uin, _ = corrected_down
    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    app = typer.Typer()
    app.add_typer(bills_app, name="bills")
    result = CliRunner().invoke(app, ["bills", "lines", "--uin", str(uin), "--kind",
                                      "adjustment", "--json"])
    assert result.exit_code == 0, result.output
    [item] = json.loads(result.stdout)["items"]
    assert (item["quantity"], item["deducted"], item["kind"]) == ("-0.500000", "-0.25",
                                                                  "adjustment")


@pytest.mark.spec("SET-9", "BIL-1")
def test_describe_bill_detail_shows_a_correction_as_a_negative_line(compat_shop):
    from feecenter.periods import HOURLY, period_containing
    from feecenter.settlement import service as settlement

    shop = compat_shop
    rt, uin, cvm = shop.rt, shop.uin, shop.resources[0]
    hour_0 = period_containing(HOURLY, shop.now - timedelta(hours=1))
    text = json.dumps({"event_id": "compat-h0", "uin": uin, "resource_id": cvm,
                       "billing_item": VM, "quantity": "0.5",
                       "usage_start": business_time_text(hour_0.start),
                       "usage_end": business_time_text(hour_0.end), "revision": 1})
    assert usage.ingest(rt.engine, rt.clock, OPS, text).corrected == 1
    next_period = period_containing(HOURLY, hour_0.end)
    rt.clock.set(next_period.end + timedelta(minutes=5))
    settlement.settle_period(rt.engine, rt.clock, "hour", next_period)
    answer = shop.call("DescribeBillDetail", {"Month": business_time_text(hour_0.start)[:7],
                                              "Offset": 0, "Limit": 100})
    [correction] = [d for d in answer["DetailSet"] if "用量修正" in d["ActionTypeName"]]
    [component] = correction["ComponentSet"]
    assert (correction["ResourceId"], component["UsedAmount"], component["RealCost"],
            component["CashPayAmount"]) == (cvm, "-0.5", "-0.25000000", "-0.25")


@pytest.mark.spec("SET-9", "SET-6")
def test_a_correction_down_gives_a_cash_coupons_share_back_to_the_coupon(metered):
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.coupons import rules as coupon_rules
    from feecenter.coupons import service as coupons

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    with rt.engine.begin() as conn:
        coupon_id = coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=coupon_rules.CASH, pay_mode=coupon_rules.POSTPAID, face_amount=30,
            order_kinds=(), valid_days=30), campaign="set9", key="set9-coupon")
    original = settled_hour_0(rt, uin, rid, "2")  # 1.00: coupon 0.30, cash 0.70
    assert (original["voucher_paid"], original["cash_paid"]) == (30, 70)
    send(rt, uin, rid, "1", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["deducted"], adjustment["voucher_paid"], adjustment["cash_paid"]) == (
        -50, -15, -35)
    assert balance(rt, uin).cash == 10_00 - 70 + 35
    with rt.engine.connect() as conn:
        coupon = coupons.get_coupon(conn, rt.clock, SYSTEM, uin, coupon_id)
    assert coupon["remaining"] == 15
    assert_reconciled(rt, uin)


# ---------------------------------------------------------------- ARR-3: usage while stopped

def stopped_between(rt, rid, stop, restart):
    """The resource was stopped for arrears from ``stop`` until ``restart`` (ARR-3)."""
    from feecenter.resources import service as resources

    with rt.engine.begin() as conn:
        resources.stop_resource(conn, rid, stop, "arrears")
        resources.end_stop(conn, rid, restart, state="running")


def stored(rt):
    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(usage_records.c.quantity, usage_records.c.revision,
                                         usage_records.c.stopped_quantity)).one())


@pytest.mark.spec("SET-9", "ARR-3")
def test_a_correction_up_of_usage_while_stopped_charges_nothing(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    stopped_between(rt, rid, hour(0)[0], hour(1)[0])  # the whole of hour 0
    original = settled_hour_0(rt, uin, rid)
    assert (original["quantity"], original["stopped_quantity"], original["deducted"]) == (
        1_000_000, 1_000_000, 0)
    assert send(rt, uin, rid, "3", 1).corrected == 1
    assert stored(rt) == (3_000_000, 1, 3_000_000)  # the correction restates the stopped part
    assert next_hour(rt)["adjustment_lines"] == 1
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["quantity"], adjustment["stopped_quantity"],
            adjustment["package_quantity"], adjustment["discounted_amount"],
            adjustment["deducted"], adjustment["txn_id"], adjustment["adjusts_line_id"]) == (
        2_000_000, 2_000_000, 0, 0, 0, None, original["id"])
    assert "usage correction" in adjustment["reason"]
    shown = bill_line_json(adjustment)
    assert (shown["quantity"], shown["stopped_quantity"], shown["deducted"]) == (
        "2.000000", "2.000000", "0.00")
    assert shown["not_charged_reason"].startswith("资源因欠费停服")
    assert balance(rt, uin).cash == 10_00
    next_hour(rt, 2)  # the lines now match the usage, stopped part included: nothing more
    assert len(adjustments(rt, uin)) == 1
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "ARR-3")
def test_a_correction_down_of_usage_half_stopped_gives_back_only_the_charged_half(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    stopped_between(rt, rid, hour(0)[0] + timedelta(minutes=30), hour(1)[0])
    original = settled_hour_0(rt, uin, rid, "2")  # 1 stopped, 1 charged: 0.50
    assert (original["stopped_quantity"], original["deducted"]) == (1_000_000, 50)
    send(rt, uin, rid, "1", 1)
    assert stored(rt) == (1_000_000, 1, 500_000)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    # of the 1 unit less, 0.5 was stopped (never charged): only 0.5 is given back
    assert (adjustment["quantity"], adjustment["stopped_quantity"],
            adjustment["package_quantity"], adjustment["discounted_amount"],
            adjustment["deducted"], adjustment["cash_paid"]) == (
        -1_000_000, -500_000, 0, -25_000_000, -25, -25)
    assert adjustment["reason"].startswith("用量修正退还")
    assert balance(rt, uin).cash == 10_00 - 50 + 25
    every = lines(rt, uin)
    assert (sum(line["quantity"] for line in every),
            sum(line["stopped_quantity"] for line in every),
            sum(line["deducted"] for line in every)) == (1_000_000, 500_000, 25)
    next_hour(rt, 2)
    assert len(adjustments(rt, uin)) == 1
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "ARR-3")
def test_a_correction_up_of_usage_half_stopped_charges_only_the_chargeable_half(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    stopped_between(rt, rid, hour(0)[0] + timedelta(minutes=30), hour(1)[0])
    settled_hour_0(rt, uin, rid, "2")  # 0.50
    send(rt, uin, rid, "4", 1)  # 2 stopped, 2 chargeable: 0.50 more
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["quantity"], adjustment["stopped_quantity"], adjustment["deducted"],
            adjustment["cash_paid"]) == (2_000_000, 1_000_000, 50, 50)
    assert balance(rt, uin).cash == 10_00 - 1_00
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "ARR-3")
def test_a_correction_down_of_usage_wholly_stopped_gives_nothing_back(metered):
    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    stopped_between(rt, rid, hour(0)[0], hour(1)[0])
    settled_hour_0(rt, uin, rid, "2")
    send(rt, uin, rid, "0.5", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["quantity"], adjustment["stopped_quantity"], adjustment["deducted"],
            adjustment["txn_id"]) == (-1_500_000, -1_500_000, 0, None)
    assert balance(rt, uin).cash == 10_00
    next_hour(rt, 2)
    assert len(adjustments(rt, uin)) == 1


# ---------------------------------------------------------------- coupons in the 收支明细 (BAL-5)

def postpaid_coupon(rt, uin, face, kind=None) -> int:
    """A postpaid coupon (a cash coupon unless ``kind``) of ``face`` fen for any product."""
    from feecenter.coupons import rules as coupon_rules
    from feecenter.coupons import service as coupons

    with rt.engine.begin() as conn:
        return coupons.grant(conn, rt.clock, OPS, uin, coupon_rules.Terms(
            kind=kind or coupon_rules.CASH, pay_mode=coupon_rules.POSTPAID, face_amount=face,
            order_kinds=(), valid_days=30), campaign="set9", key=f"set9-{kind}-{face}")


def remaining(rt, uin, coupon_id) -> int:
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.coupons import service as coupons

    with rt.engine.connect() as conn:
        return coupons.get_coupon(conn, rt.clock, SYSTEM, uin, coupon_id)["remaining"]


def bill_ids(rt, uin) -> tuple[str, str]:
    """The BillId of the correction's line in DescribeBillDetail, and of the account's
    one ``return`` entry in DescribeBillList."""
    from tests.test_statement_split import compat

    rt.clock.advance(minutes=1)
    shop = compat(rt, uin)
    detail = shop.call("DescribeBillDetail", {"Month": "2026-03", "Limit": 100})["DetailSet"]
    [line] = [d for d in detail if "用量修正" in d["ActionTypeName"]]
    listed = shop.call("DescribeBillList", {
        "StartTime": "2026-01-01 00:00:00", "EndTime": "2026-06-30 00:00:00", "Limit": 100,
        "PayType": ["return"]})["TransactionList"]
    [entry] = listed
    return line["BillId"], entry["BillId"]


@pytest.mark.spec("SET-9", "SET-6", "BAL-5", "BIL-1")
def test_a_correction_down_of_an_hour_a_coupon_paid_has_a_return_entry(metered, cli):
    from tests.test_statement_split import (SPLIT, entries, same_on_rest_cli_and_compat, split,
                                            txn_kind)

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    coupon_id = postpaid_coupon(rt, uin, 1_00)
    original = settled_hour_0(rt, uin, rid)  # 0.50, the coupon paid all of it
    assert (original["voucher_paid"], original["cash_paid"]) == (50, 0)
    send(rt, uin, rid, "0.5", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["deducted"], adjustment["voucher_paid"], adjustment["cash_paid"]) == (
        -25, -25, 0)
    assert remaining(rt, uin, coupon_id) == 1_00 - 50 + 25
    [entry] = entries(rt, uin, "return")
    assert split(entry) == (25, 0, 0, 0, 25)
    assert (entry["deduct_mode"], entry["product_code"], entry["billing_item"]) == (
        "hour_h", "cvm", VM)
    assert txn_kind(rt, entry["txn_id"]) == "coupon_return"
    assert adjustment["txn_id"] == entry["txn_id"]
    assert (entry["balance_after"], entry["cash_after"]) == (10_00, 10_00)  # no money moved
    [shown] = [e for e in same_on_rest_cli_and_compat(rt, cli, uin)
               if e["action_type"] == "return"]
    assert [shown[n] for n in SPLIT] == ["0.25", "0.00", "0.00", "0.00", "0.25"]
    detail_id, list_id = bill_ids(rt, uin)
    assert detail_id == list_id and detail_id.endswith(f"{entry['txn_id']:018d}")
    next_hour(rt, 2)  # the correction is billed once: no second entry
    assert len(entries(rt, uin, "return")) == 1
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "SET-6", "BAL-5", "BIL-1")
def test_a_correction_down_shows_the_coupons_share_in_its_return_entry(metered, cli):
    from tests.test_statement_split import (SPLIT, entries, same_on_rest_cli_and_compat, split,
                                            txn_kind)

    rt, uin, rid = metered
    add_gift(rt, uin, 20)
    add_cash(rt, uin, 10_00)
    coupon_id = postpaid_coupon(rt, uin, 30)
    original = settled_hour_0(rt, uin, rid, "2")  # 1.00: coupon 0.30, gift 0.20, cash 0.50
    assert (original["voucher_paid"], original["gift_paid"], original["cash_paid"]) == (
        30, 20, 50)
    send(rt, uin, rid, "1", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)
    assert (adjustment["deducted"], adjustment["voucher_paid"], adjustment["gift_paid"],
            adjustment["cash_paid"]) == (-50, -15, -10, -25)
    assert remaining(rt, uin, coupon_id) == 15
    [entry] = entries(rt, uin, "return")
    assert split(entry) == (50, 25, 10, 0, 15)
    assert txn_kind(rt, entry["txn_id"]) == "return"
    assert adjustment["txn_id"] == entry["txn_id"]
    view = balance(rt, uin)
    assert (view.gift, view.cash) == (10, 10_00 - 50 + 25)
    [shown] = [e for e in same_on_rest_cli_and_compat(rt, cli, uin)
               if e["action_type"] == "return"]
    assert [shown[n] for n in SPLIT] == ["0.50", "0.25", "0.10", "0.00", "0.15"]
    detail_id, list_id = bill_ids(rt, uin)
    assert detail_id == list_id
    assert_reconciled(rt, uin)


@pytest.mark.spec("SET-9", "SET-6", "BAL-5")
def test_a_correction_down_of_an_hour_a_voucher_paid_moves_nothing_and_has_no_entry(metered):
    from feecenter.coupons import rules as coupon_rules
    from tests.test_statement_split import entries

    rt, uin, rid = metered
    add_cash(rt, uin, 10_00)
    voucher_id = postpaid_coupon(rt, uin, 1_00, kind=coupon_rules.VOUCHER)
    settled_hour_0(rt, uin, rid)  # 0.50, the voucher paid all of it
    before = entries(rt, uin)
    send(rt, uin, rid, "0.5", 1)
    next_hour(rt)
    [adjustment] = adjustments(rt, uin)  # a voucher is not given back (ORD-4)
    assert (adjustment["deducted"], adjustment["voucher_paid"], adjustment["txn_id"]) == (
        -25, -25, None)
    assert remaining(rt, uin, voucher_id) == 50
    assert entries(rt, uin) == before
    assert_reconciled(rt, uin)
