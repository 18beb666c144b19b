"""SET-8: a settlement killed (SIGKILL, a real process) at any point and rerun gives
exactly one clean run's result, to the fen: ledger postings and balances, 收支明细,
bill lines, settled accounts — on SQLite and PostgreSQL.

Two databases are built alike (deterministic resource ids): the clean one settles the
period in-process; the other runs it in a subprocess that stops at a chosen point (inside
a chunk's transaction after its ledger writes and lines, at the start of a chunk, or
inside the late-usage pass) and is SIGKILLed there, then the period is settled again
in-process and both databases are compared.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock, business_time_text
from feecenter.db.engine import dispose, make_engine
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.periods import HOURLY, period_containing
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.settlement import service as settlement
from feecenter.settlement.tables import bill_lines, settled_accounts, settled_periods
from feecenter.usage import service as usage
from tests.conftest import START
from tests.helpers import OPS, add_cash, add_gift, new_account

ACCOUNTS = 24
CHUNK = 5  # accounts per chunk: 5 chunks in the period
HOUR0, HOUR1 = START, START + timedelta(hours=1)

KILLED_SETTLEMENT = textwrap.dedent("""
    import sys, time
    from datetime import datetime
    from feecenter.clock import FixedClock
    from feecenter.db.engine import make_engine
    from feecenter.periods import HOURLY, period_containing
    from feecenter.settlement import service

    url, now, start, chunk, target, after, marker = sys.argv[1:8]
    real, calls = getattr(service, target), []

    def park():
        open(marker, "w").write(str(len(calls)))
        time.sleep(120)  # SIGKILLed here

    def stop_here(*args, **kwargs):
        calls.append(1)
        if target == "_settle_chunk" and len(calls) > int(after):
            park()  # the chunk's transaction has begun; nothing written in it yet
        result = real(*args, **kwargs)
        if target == "post_lines" and len(calls) > int(after):
            park()  # ledger, 收支明细 and bill lines written, not committed
        return result

    setattr(service, target, stop_here)
    service.settle_period(make_engine(url), FixedClock(datetime.fromisoformat(now)), "hour",
                          period_containing(HOURLY, datetime.fromisoformat(start)),
                          chunk_accounts=int(chunk))
""")


def ingest(rt, rows):
    text = "\n".join(json.dumps({
        "event_id": e, "uin": u, "resource_id": r, "billing_item": i, "quantity": q,
        "usage_start": business_time_text(s), "usage_end": business_time_text(s + timedelta(hours=1))})
        for e, u, r, i, q, s in rows)
    assert usage.ingest(rt.engine, rt.clock, OPS, text).rejected == 0


def build(url, monkeypatch):
    """Accounts with gift, cash, credit or little money; hour 0 settled; then late usage
    for hour 0 and hour 1's usage arrive. Deterministic: two builds are alike."""
    counter = itertools.count()
    monkeypatch.setattr(resources, "new_resource_id",
                        lambda product: f"{product}-{next(counter):010d}")
    rt = SimpleNamespace(engine=make_engine(url), clock=FixedClock(START))
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    owned = []
    for n in range(ACCOUNTS):
        uin = new_account(rt, name=f"acct{n}")
        if n % 3 == 0:
            add_gift(rt, uin, 35 + n, key=f"g{n}")
        add_cash(rt, uin, [5, 1_00, 40_00][n % 3] + n, key=f"c{n}")
        with rt.engine.begin() as conn:
            if n % 5 == 0:
                funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=60)
            vm = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cvm",
                                        region="ap-guangzhou", spec_item="S5.MEDIUM4")
            disk = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product="cbs",
                                          region="ap-shanghai", spec_item="premium")
        owned.append((n, uin, vm, disk))
    rt.clock.set(HOUR1)
    ingest(rt, [row for n, uin, vm, disk in owned for row in (
        (f"a{n}", uin, vm, "S5.MEDIUM4", "1", HOUR0),
        (f"b{n}", uin, vm, "traffic", f"0.{n + 1:02d}3457", HOUR0),
        (f"c{n}", uin, disk, "premium", str(50 + n), HOUR0))])
    settlement.settle_period(rt.engine, rt.clock, "hour", period_containing(HOURLY, HOUR0))
    rt.clock.set(HOUR1 + timedelta(hours=1, minutes=5))
    ingest(rt, [row for n, uin, vm, disk in owned for row in (
        (f"d{n}", uin, vm, "S5.MEDIUM4", "1", HOUR1),
        (f"e{n}", uin, vm, "traffic", f"1.{n:02d}", HOUR1),
        (f"f{n}", uin, disk, "premium", str(100 + n), HOUR1))]
        + [(f"late{n}", uin, vm, "traffic", "0.5", HOUR0)
           for n, uin, vm, disk in owned if n % 4 == 0])
    return rt


def snapshot(rt):
    """Everything settlement wrote, with ids replaced by idempotency keys."""
    t, a = ledger_transactions.c, ledger_accounts.c
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
        key = dict(conn.execute(select(t.id, t.idempotency_key)).all())
        code = dict(conn.execute(select(a.id, a.code)).all())
        postings = sorted((key[row.txn_id], code[row.account_id], row.amount, row.balance_after)
                          for row in conn.execute(select(ledger_postings)))
        balances = sorted(conn.execute(select(a.code, a.balance)).all())
        entries = sorted((_keyed(row, key) for row in conn.execute(select(statement_entries))),
                         key=repr)
        line_of = {row.id: (row.resource_id, row.billing_item, row.period_key)
                   for row in conn.execute(select(bill_lines))}
        lines = sorted((_keyed(row, key, adjusts_line_id=line_of)
                        for row in conn.execute(select(bill_lines))), key=repr)
        settled = sorted((_keyed(row, key) for row in conn.execute(select(settled_accounts))),
                         key=repr)
        periods = sorted(conn.execute(select(settled_periods.c.cycle,
                                             settled_periods.c.period_key)).all())
    return {"postings": postings, "balances": balances, "entries": entries, "lines": lines,
            "settled": settled, "periods": periods}


def _keyed(row, key, **references) -> tuple:
    values = dict(row._mapping)
    values.pop("id")
    values["txn_id"] = key.get(values["txn_id"])
    for name, table in references.items():
        values[name] = table.get(values[name])
    return tuple(sorted(values.items(), key=lambda kv: kv[0]))


def settled_count(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(settled_accounts).where(
            settled_accounts.c.period_key == "2026-03-02T11")).scalar_one()


def run_until_killed(url: str, rt, target: str, after: int, tmp_path: Path) -> None:
    marker = tmp_path / f"parked-{target}-{after}"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SETTLEMENT, url, rt.clock.now().isoformat(),
         HOUR1.isoformat(), str(CHUNK), target, str(after), str(marker)],
        cwd=Path(__file__).parent.parent)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the settlement ended before its kill point"
            assert time.monotonic() < deadline, "the settlement never reached its kill point"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.spec("SET-8", "SET-9")
@pytest.mark.parametrize("target, after, settled_before_rerun", [
    ("post_lines", 6 + 2, 2 * CHUNK),   # inside the 3rd chunk, after its ledger writes
    ("_settle_chunk", 3, 3 * CHUNK),    # at the start of the 4th chunk
    ("post_lines", 3, 0),               # inside the late-usage pass, 4th account
])
def test_a_killed_settlement_rerun_equals_one_clean_run(database_factory, monkeypatch, tmp_path,
                                                        target, after, settled_before_rerun):
    clean = build(database_factory(), monkeypatch)
    first = settlement.settle_period(clean.engine, clean.clock, "hour",
                                     period_containing(HOURLY, HOUR1), chunk_accounts=CHUNK)
    assert (first["accounts"], first["adjustment_lines"]) == (ACCOUNTS, 6)
    expected = snapshot(clean)

    url = database_factory()
    crashed = build(url, monkeypatch)
    before = snapshot(crashed)
    run_until_killed(url, crashed, target, after, tmp_path)
    assert settled_count(crashed) == settled_before_rerun  # whole chunks only
    partial = snapshot(crashed)  # reconciles: nothing half-written
    assert partial != expected and len(partial["lines"]) >= len(before["lines"])

    rerun = settlement.settle_period(crashed.engine, crashed.clock, "hour",
                                     period_containing(HOURLY, HOUR1), chunk_accounts=CHUNK)
    assert rerun["accounts"] == ACCOUNTS - settled_before_rerun
    assert snapshot(crashed) == expected
    again = settlement.settle_period(crashed.engine, crashed.clock, "hour",
                                     period_containing(HOURLY, HOUR1))
    assert (again["accounts"], again["adjustment_lines"], again["skipped"]) == (0, 0, ACCOUNTS)
    assert snapshot(crashed) == expected
    for world in (clean, crashed):
        dispose(world.engine)
