"""ARR-3, isolation stops charging: usage of a resource stopped for arrears is stored
and listed as not charged (with the reason), pro-rated at the stop and the restore,
and charging resumes from the restore — seen from the service, the CLI, the
native REST API and the Tencent-compatible API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.arrears import service as arrears
from feecenter.present.bills import bill_line_json
from feecenter.settlement import service as settlement
from feecenter.usage.tables import usage_records
from tests.compat_harness import Shop
from tests.helpers import add_cash, api_key, assert_reconciled, balance, new_account
from tests.rest_harness import Signed
from tests.test_settlement import hour, ingest, load, open_, settle

ITEM = "S5.LARGE8"  # 1.00 yuan an hour
ONE = 1_000_000     # one instance-hour, in 1e-6 units
REASON = "资源因欠费停服，停服期间的用量不计费 / used while the resource was stopped for arrears: not charged"


def tick(rt, uin, rid, n, *, escalate_at=None, metered=True):
    """Hour n is over: its usage arrives (unless not ``metered``) and the hour is
    settled at its end; then the hourly arrears job runs (at ``escalate_at`` if given)."""
    start, end = hour(n)
    rt.clock.set(end)
    if metered:
        ingest(rt, [(f"{rid}-h{n}", uin, rid, ITEM, "1", start, end)])
    settle(rt, "hour", start)
    rt.clock.set(escalate_at or end)
    return arrears.escalate(rt.engine, rt.clock)


def lines_of(rt, uin, rid):
    with rt.engine.connect() as conn:
        page = settlement.list_bill_lines(conn, SYSTEM, uin, {"resource_id": rid}, 0, 1000)
    return {line["period_start"]: line for line in page["items"]}


def into_isolation(rt):
    """2.00 cash pays hours 0-1; hours 2-4 go into arrears (from hour 2's settlement,
    at hour 3's start); the compute protection (2 hours) ends at hour 5's start, when
    the VM is stopped."""
    load(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 2_00)
    rid = open_(rt, uin, spec=ITEM)
    for n in range(5):
        tick(rt, uin, rid, n)
    with rt.engine.connect() as conn:
        assert [e["kind"] for e in arrears.list_events(conn, SYSTEM, uin)] == [
            "dunning", "stop_warning", "stopped"]
    assert balance(rt, uin).arrears == 3_00
    return uin, rid


@pytest.mark.spec("ARR-3")
def test_a_stopped_resource_keeps_reporting_usage_and_is_not_charged(rt):
    uin, rid = into_isolation(rt)
    result = tick(rt, uin, rid, 5)  # hour 5 lies wholly after the stop
    assert result["stopped"] == 0
    assert balance(rt, uin).arrears == 3_00  # not 4.00
    line = lines_of(rt, uin, rid)[hour(5)[0]]
    assert (line["quantity"], line["stopped_quantity"]) == (ONE, ONE)  # stored, listed
    assert (line["discounted_amount"], line["deducted"], line["arrears"], line["txn_id"]) == (
        0, 0, 0, None)
    shown = bill_line_json(line)
    assert (shown["stopped_quantity"], shown["not_charged_reason"]) == ("1.000000", REASON)
    before = lines_of(rt, uin, rid)[hour(4)[0]]  # the hour before the stop: charged
    assert (before["stopped_quantity"], before["deducted"], before["arrears"]) == (0, 100, 100)
    assert bill_line_json(before)["not_charged_reason"] is None
    with rt.engine.connect() as conn:  # the record itself says how much was stopped
        stored = conn.execute(select(usage_records.c.stopped_quantity).where(
            usage_records.c.event_id == f"{rid}-h5")).scalar_one()
    assert stored == ONE
    assert_reconciled(rt, uin)


@pytest.mark.spec("ARR-3", "ARR-4")
def test_isolation_ten_hours_then_repayment_and_restore(rt, cli):
    """Arrears 3.00 for the three hours before the stop, not 13.00: the ten hours the
    VM kept reporting while stopped are listed as not charged; repaying restores it
    and the hour after the restore is charged again."""
    uin, rid = into_isolation(rt)
    for n in range(5, 15):  # ten hours of usage after the stop
        tick(rt, uin, rid, n)
    assert balance(rt, uin).arrears == 3_00
    _, shown = cli.json("balance", "--uin", uin)
    assert (shown["arrears"], shown["cash"]) == ("3.00", "0.00")
    shop = Shop(rt=rt, uin=uin, key=api_key(rt, uin), client=TestClient(create_app(rt)),
                now=rt.clock.now(), orders=[], vouchers=[], resources=[rid])
    assert shop.call("DescribeAccountBalance", {})["OweAmount"] == 3_00  # fen

    rt.clock.set(hour(15)[0])  # (each signed call moved the clock a second)
    add_cash(rt, uin, 103_00)  # incoming money repays the arrears first (ARR-4)
    counts = arrears.escalate(rt.engine, rt.clock)  # at hour 15's start: restored
    assert (counts["closed"], counts["restarted"]) == (1, 1)
    tick(rt, uin, rid, 15)  # the hour after the restore: charged
    assert (balance(rt, uin).arrears, balance(rt, uin).cash) == (0, 99_00)

    lines = lines_of(rt, uin, rid)
    assert [lines[hour(n)[0]]["deducted"] for n in range(16)] == [100] * 5 + [0] * 10 + [100]
    assert [lines[hour(n)[0]]["stopped_quantity"] for n in range(16)] == \
        [0] * 5 + [ONE] * 10 + [0]
    assert sum(lines[hour(n)[0]]["arrears"] for n in range(16)) == 3_00

    _, shown = cli.json("balance", "--uin", uin)
    assert (shown["arrears"], shown["cash"]) == ("0.00", "99.00")
    _, page = cli.json("bills", "lines", "--uin", uin, "--resource-id", rid)
    assert [(i["deducted"], i["stopped_quantity"], i["not_charged_reason"])
            for i in page["items"]] == ([("1.00", "0.000000", None)] * 5
                                        + [("0.00", "1.000000", REASON)] * 10
                                        + [("1.00", "0.000000", None)])
    table = cli("bills", "lines", "--uin", uin, "--resource-id", rid)
    assert "16 of 16 lines" in table.stdout and "stopped = 资源因欠费停服" in table.stdout

    native = Signed(rt, shop.client, shop.key).send(
        "GET", f"/api/v1/accounts/{uin}/bill-lines", query={"resource_id": rid, "limit": 100})
    assert native.status_code == 200, native.text
    assert [(i["deducted"], i["stopped_quantity"], i["not_charged_reason"])
            for i in native.json()["items"]] == [(i["deducted"], i["stopped_quantity"],
                                                  i["not_charged_reason"]) for i in page["items"]]
    owed = shop.call("DescribeAccountBalance", {})
    assert (owed["OweAmount"], owed["CashAccountBalance"]) == (0, 99_00)
    detail = shop.call("DescribeBillDetail", {"Month": "2026-03", "ResourceId": rid,
                                              "Limit": 100})  # the account's period (BIL-3)
    assert detail["Total"] == 16, detail
    rows = [(d["FeeBeginTime"], d["ComponentSet"][0]["RealCost"], d["Formula"])
            for d in detail["DetailSet"]]
    # UsedAmount is what was charged: metered − package-covered − stopped
    assert [(c["RealTotalMeasure"], c["DeductedMeasure"], c["UsedAmount"])
            for d in detail["DetailSet"] for c in d["ComponentSet"]] == (
        [("1", "0", "1")] * 5 + [("1", "0", "0")] * 10 + [("1", "0", "1")])
    not_charged = "资源因欠费停服，停服期间的用量不计费（1）/ used while the resource was " \
                  "stopped for arrears: not charged (1)"
    assert [cost for _, cost, _ in rows] == (["1.00000000"] * 5 + ["0.00000000"] * 10
                                             + ["1.00000000"])
    assert [formula for _, _, formula in rows] == [""] * 5 + [not_charged] * 10 + [""]
    assert_reconciled(rt, uin)


@pytest.mark.spec("ARR-3", "SET-9")
def test_a_stop_and_a_restore_inside_an_hour_split_it_by_time(rt):
    """The boundary rule: a record's quantity is pro-rated by the share of its time
    range in the stop. Stopped at 15:30 (hour 5), restored at 17:20 (hour 7)."""
    load(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 2_00)
    rid = open_(rt, uin, spec=ITEM)
    for n in range(4):
        tick(rt, uin, rid, n)
    stop = hour(5)[0] + timedelta(minutes=30)
    assert tick(rt, uin, rid, 4, escalate_at=stop)["stopped"] == 1  # the job ran late
    tick(rt, uin, rid, 5)
    tick(rt, uin, rid, 6, metered=False)  # hour 6's usage is late (SET-9)
    restore = hour(7)[0] + timedelta(minutes=20)
    rt.clock.set(restore)
    ingest(rt, [(f"{rid}-h6", uin, rid, ITEM, "1", *hour(6))])
    add_cash(rt, uin, 103_50)
    assert arrears.escalate(rt.engine, rt.clock)["restarted"] == 1
    tick(rt, uin, rid, 7)  # the late pass bills hour 6 first: nothing to charge
    tick(rt, uin, rid, 8)

    lines = lines_of(rt, uin, rid)
    assert [(lines[hour(n)[0]]["stopped_quantity"], lines[hour(n)[0]]["deducted"])
            for n in (4, 5, 7, 8)] == [(0, 100), (ONE // 2, 50), (333_333, 67), (0, 100)]
    [late] = [line for line in lines.values() if line["kind"] == "adjustment"]
    assert (late["period_start"], late["quantity"], late["stopped_quantity"],
            late["deducted"]) == (hour(6)[0], ONE, ONE, 0)
    assert (balance(rt, uin).arrears, balance(rt, uin).cash) == (0, 100_00 - 67 - 100)
    assert_reconciled(rt, uin)


@pytest.mark.spec("ARR-3")
def test_usage_stored_before_its_stop_was_written_is_restated_by_the_stop(rt):
    """An import that read the resource just before the stop was written stores its
    record as running; the stop then sets the record's stopped part. The clock set
    back plays that race: the stop's time is before the record's end."""
    load(rt)
    uin = new_account(rt)
    add_cash(rt, uin, 2_00)
    rid = open_(rt, uin, spec=ITEM)
    for n in range(4):
        tick(rt, uin, rid, n)
    tick(rt, uin, rid, 4, escalate_at=hour(4)[1] - timedelta(minutes=1))  # not stopped yet
    rt.clock.set(hour(6)[0])
    ingest(rt, [(f"{rid}-h5", uin, rid, ITEM, "1", *hour(5))])
    rt.clock.set(hour(5)[0] + timedelta(minutes=15))
    assert arrears.escalate(rt.engine, rt.clock)["stopped"] == 1
    with rt.engine.connect() as conn:
        stored = conn.execute(select(usage_records.c.stopped_quantity).where(
            usage_records.c.event_id == f"{rid}-h5")).scalar_one()
    assert stored == 750_000  # 45 of its 60 minutes
    rt.clock.set(hour(6)[0])
    settle(rt, "hour", hour(5)[0])
    assert lines_of(rt, uin, rid)[hour(5)[0]]["deducted"] == 25
    assert balance(rt, uin).arrears == 3_25
    assert_reconciled(rt, uin)
