#!/usr/bin/env python
"""Console benchmark: how long each customer page of the web console takes to
render on the server, on one big account, and how many SQL queries it sends.

    .venv/bin/python benchmarks/console.py [--backend sqlite|postgresql|all]
                                           [--entries 100000] [--lines 10000]
                                           [--n 60] [--warmup 5] [--json]

One account holds ``--entries`` 收支明细 entries (each with its ledger
transaction, over the 100 days before the clock) and ``--lines`` L3 bill lines
(this month, hour by hour over 16 resources of five products), seeded with bulk
inserts into the domain tables (executemany in batches of 5,000; not through
the services, whose rules are not what is measured here), and a few orders made
through the orders service. Then every customer page is requested ``--n`` times
(after ``--warmup`` untimed ones) through Starlette's TestClient with a logged-in
session, in the page's full path — session check, services, template — and the
time of each request is recorded: p50 and p95 per page, and the SQL statements
one request sends (an SQLAlchemy ``before_cursor_execute`` listener), so that an
N+1 shows. Target: p95 ≤ 100 ms per page; the ratio printed is p95 / target
(≤ 100 % meets it).

The seeded balances are not those of the seeded entries (the ledger is not
reconciled): only the pages' reads are measured. Fresh databases, removed
afterwards, as in the other benchmarks (``--pg-url`` or FEECENTER_BENCH_PG_URL).
A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.api.app import create_app
from feecenter.auth import sessions
from feecenter.auth.service import configure_master_key
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock
from feecenter.config import Settings
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.orders import service as orders
from feecenter.runtime import Runtime
from feecenter.settlement.tables import bill_lines

DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
NOW = datetime(2026, 3, 28, 4, 0, tzinfo=UTC)  # 12:00 on 28 March in Shanghai
TARGET_MS = 100.0
OPS = operator("bench")
PASSWORD = "benchmark-console-1"
PRODUCTS = ("cvm", "cbs", "cos", "cdn", "cdb")
BATCH = 5_000


def _fresh_database(backend: str, workdir: Path, pg_url: str):
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'console.db'}", lambda: None
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"fc_bench_console_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def cleanup():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False), \
        cleanup


def _prepare(engine, clock) -> tuple[int, list[int]]:
    """The sample catalog, the account (funded, with its owner's password) and 30
    unpaid orders; returns (uin, order ids)."""
    with transaction(engine) as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
        uin = accounts.create_account(conn, clock, OPS, accounts.NewAccount(name="big-shop"))
        funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=10**9,
                     reason="benchmark funding", key="bench-fund")
        sessions.set_password(conn, clock, OPS, uin, None, PASSWORD)
        ids = [orders.create_purchase(conn, clock, SYSTEM, uin, [orders.NewPurchase(
            product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4", months=1)])[0]
            for _ in range(30)]
    return uin, ids


def _seed_entries(engine, uin: int, count: int) -> None:
    """``count`` 收支明细 entries with their ledger transactions, newest at the clock."""
    with transaction(engine) as conn:
        first = (conn.execute(sa.select(sa.func.max(ledger_transactions.c.id))).scalar() or 0) + 1
    step = timedelta(days=100) / count
    for start in range(0, count, BATCH):
        txns, entries = [], []
        for n in range(start, min(count, start + BATCH)):
            at = (NOW - step * (count - n)).replace(tzinfo=None)
            recharge = n % 50 == 0
            amount = 500_00 if recharge else -(n % 997 + 1)
            txns.append({"id": first + n, "idempotency_key": f"bench:{n}", "request_hash": "0" * 64,
                         "kind": "recharge" if recharge else "deduct", "uin": uin,
                         "reference": None, "memo": None, "reverses_txn_id": None,
                         "created_at": at})
            entries.append({"uin": uin, "txn_id": first + n,
                            "action_type": "recharge" if recharge else "deduct",
                            "deduct_mode": None if recharge else "postpaid", "pay_channel": None,
                            "amount": amount, "cash_amount": amount, "gift_amount": 0,
                            "coupon_amount": 0, "credit_amount": 0, "balance_after": 10**9 - n,
                            "cash_after": 10**9 - n, "gift_after": 0, "frozen_after": 0,
                            "product_code": None if recharge else PRODUCTS[n % len(PRODUCTS)],
                            "billing_item": None, "order_id": None, "storefront": None,
                            "memo": None, "created_at": at})
        with transaction(engine) as conn:
            conn.execute(ledger_transactions.insert(), txns)
            conn.execute(statement_entries.insert(), entries)


def _seed_lines(engine, uin: int, count: int) -> None:
    """``count`` hourly L3 lines of this month (16 resources, five products)."""
    month_start = datetime(2026, 2, 28, 16, 0)  # 1 March 00:00 in Shanghai, naive UTC
    rows = []
    for n in range(count):
        resource, hour = n % 16, n // 16
        start = month_start + timedelta(hours=hour)
        rows.append({
            "uin": uin, "resource_id": f"ins-{resource:02d}", "resource_name": None,
            "product_code": PRODUCTS[resource % len(PRODUCTS)], "region": "ap-guangzhou",
            "billing_item": "S5.MEDIUM4", "project_id": 0, "project_name": "默认项目",
            "cycle": "hour", "period_key": start.strftime("%Y-%m-%d %H"),
            "period_start": start, "period_end": start + timedelta(hours=1),
            "quantity": 1_000_000, "package_quantity": 0, "stopped_quantity": 0,
            "price_kind": "list", "unit_price": 50_000_000, "list_amount": 50_000_000,
            "discount_bp": 10_000, "discounted_amount": 50_000_000, "deducted": 50,
            "rounding_diff": 0, "voucher_paid": 0, "cash_paid": 50, "gift_paid": 0,
            "credit_paid": 0, "arrears": 0, "txn_id": None,
            "deducted_at": min(start + timedelta(hours=1), NOW.replace(tzinfo=None)),
            "kind": "charge", "sequence": 0, "adjusts_line_id": None, "reason": None})
    for start in range(0, count, BATCH):
        with transaction(engine) as conn:
            conn.execute(bill_lines.insert(), rows[start:start + BATCH])


def _pages(engine, uin: int, order_ids: list[int], entries: int, lines: int) -> dict[str, str]:
    """The pages, each deep page both by the keyset link the console makes (``after``
    the last row of the page before) and by offset (an old ``?page=N`` link)."""
    deep_entries, deep_lines = max(2, entries // 20 // 2), max(2, lines // 20 // 2)
    s, b = statement_entries.c, bill_lines.c
    with engine.connect() as conn:
        entry = conn.execute(sa.select(s.id).where(s.uin == uin)
                             .order_by(s.created_at.desc(), s.id.desc())
                             .offset((deep_entries - 1) * 20 - 1).limit(1)).scalar_one()
        line = conn.execute(sa.select(b.id).where(b.uin == uin).order_by(b.period_start, b.id)
                            .offset((deep_lines - 1) * 20 - 1).limit(1)).scalar_one()
    return {
        "overview": "/console/",
        "transactions p1": "/console/transactions",
        f"transactions p{deep_entries}": f"/console/transactions?page={deep_entries}&after={entry}",
        f"transactions p{deep_entries} offset": f"/console/transactions?page={deep_entries}",
        "transactions filter": "/console/transactions?type=deduct&product=cvm",
        "bills p1": "/console/bills",
        f"bills p{deep_lines}": f"/console/bills?page={deep_lines}&after={line}",
        f"bills p{deep_lines} offset": f"/console/bills?page={deep_lines}",
        "bills filter": "/console/bills?month=2026-03&product=cbs",
        "orders": "/console/orders",
        "order": f"/console/orders/{order_ids[0]}",
        "payment preview": "/console/orders/pay?" + "&".join(f"order_id={i}" for i in order_ids[:5]),
        "resources": "/console/resources",
        "coupons": "/console/coupons",
        "arrears": "/console/arrears",
        "users": "/console/users",
        "messages": "/console/messages",
    }


def _log_in(http: TestClient) -> None:
    form = http.get("/console/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
    done = http.post("/console/login", data={"account": "big-shop", "login": "big-shop",
                                             "password": PASSWORD, "csrf_token": token,
                                             "next": "/console/"})
    assert done.status_code == 303, done.text


def _measure(http: TestClient, engine, path: str, n: int, warmup: int) -> dict:
    statements = []

    def count(*_args):
        statements.append(1)

    for _ in range(warmup):
        assert http.get(path).status_code == 200, path
    times = []
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for _ in range(n):
            statements.clear()
            began = time.perf_counter()
            response = http.get(path)
            times.append((time.perf_counter() - began) * 1000)
            assert response.status_code == 200, (path, response.status_code)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"p50_ms": round(statistics.median(times), 1), "p95_ms": round(p95, 1),
            "queries": len(statements), "ratio": round(p95 / TARGET_MS, 3),
            "met": p95 <= TARGET_MS}


def run_backend(backend: str, entries: int, lines: int, n: int, warmup: int, pg_url: str,
                log) -> dict:
    with tempfile.TemporaryDirectory(prefix="fc-bench-console-") as workdir:
        url, cleanup = _fresh_database(backend, Path(workdir), pg_url)
        try:
            engine = make_engine(url)
            upgrade(engine)
            clock = FixedClock(NOW)
            uin, order_ids = _prepare(engine, clock)
            log(f"[{backend}] seeding {entries:,} 收支明细 entries and {lines:,} bill lines…")
            began = time.perf_counter()
            _seed_entries(engine, uin, entries)
            _seed_lines(engine, uin, lines)
            if backend == "postgresql":  # as autovacuum leaves it: statistics, visibility map
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                    conn.exec_driver_sql("VACUUM ANALYZE")
            else:  # the seeding's write-ahead log folded into the database file
                engine.dispose()
                with closing(sqlite3.connect(sa.engine.make_url(url).database)) as db:
                    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            log(f"[{backend}] seeded in {time.perf_counter() - began:.1f} s; "
                f"{n} requests a page after {warmup}…")
            runtime = Runtime(engine=engine, clock=clock, settings=Settings(
                home=None, database_url=url, master_key=os.environ["FEECENTER_MASTER_KEY"]))
            with TestClient(create_app(runtime), follow_redirects=False) as http:
                _log_in(http)
                pages = {name: {"path": path, **_measure(http, engine, path, n, warmup)}
                         for name, path in _pages(engine, uin, order_ids, entries, lines).items()}
            dispose(engine)
        finally:
            cleanup()
    return {"backend": backend, "entries": entries, "bill_lines": lines, "requests": n,
            "target_p95_ms": TARGET_MS, "pages": pages,
            "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--n", type=int, default=60, help="timed requests a page (default 60)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    os.environ["FEECENTER_MASTER_KEY"] = Fernet.generate_key().decode()
    configure_master_key(os.environ["FEECENTER_MASTER_KEY"])
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    log = (lambda m: print(m, file=sys.stderr))
    results = [run_backend(b, args.entries, args.lines, args.n, args.warmup, args.pg_url, log)
               for b in backends]
    if args.json:
        print(json.dumps(results, ensure_ascii=False))
        return 0
    for r in results:
        print(f"\n{r['backend']}: {r['entries']:,} entries, {r['bill_lines']:,} bill lines, "
              f"{r['requests']} requests a page, load {r['load_average']}")
        print(f"{'page':<28}{'p50 ms':>8}{'p95 ms':>8}{'queries':>9}{'p95/target':>12}  met")
        for name, p in r["pages"].items():
            print(f"{name:<28}{p['p50_ms']:>8}{p['p95_ms']:>8}{p['queries']:>9}"
                  f"{p['ratio']:>12.0%}  {'yes' if p['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
