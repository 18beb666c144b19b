#!/usr/bin/env python
"""Orders benchmark: paid orders per second, one payment per database transaction,
against the raw SQL ceiling of the same rows measured in the same run.

    /work/venv/bin/python benchmarks/orders.py [--backend sqlite|postgresql|all] [--n N] [--json]

Ours: N unpaid one-month server orders are created first (not timed), then each
is paid with ``orders.pay`` in its own ``engine.begin()`` — the arrears gate,
the payment plan, the freeze (one ledger transaction), the automatic delivery
(the freeze posted to revenue, the resource created) and the 收支明细 entries.

Raw ceiling: every row those N payments wrote (inserts into payments, ledger
transactions, postings, holds, hold legs, statement entries, resources) and
the final values of what they updated (the orders, the customer's balance
rows) are read back and written again with the plain DB-API driver into a
second fresh database of the same schema (foreign-key checks off, indexes and
unique constraints on), the rows of each table split into N equal consecutive
groups, one group of every table per commit. Same rows, same number of
commits, same durability settings (SQLite WAL + synchronous=FULL; PostgreSQL
synchronous_commit=on). Target: ours ≥ 50 % of raw.

A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.auth.service import configure_master_key
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock
from feecenter.db.engine import make_engine
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.orders import service as orders

DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
TARGET = 0.50
OPS = operator("bench")
INSERTED = {  # table -> how to find the rows one run added (column > the max before)
    "payments": "id", "ledger_transactions": "id", "ledger_postings": "id",
    "ledger_holds": "id", "ledger_hold_legs": "hold_id", "statement_entries": "id",
    "resources": "created_at",
}
UPDATED = {"orders": "id", "ledger_accounts": "id"}  # final values written back


def _fresh_databases(backend: str, workdir: Path, pg_url: str):
    """Two fresh migrated databases (ours, raw) and a cleanup function."""
    if backend == "sqlite":
        urls = [f"sqlite:///{workdir / name}.db" for name in ("ours", "raw")]
        return urls, lambda: None
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    names = [f"fc_bench_orders_{side}_{uuid.uuid4().hex[:6]}" for side in ("ours", "raw")]
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    base = sa.engine.make_url(pg_url)

    def cleanup():
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return [base.set(database=n).render_as_string(hide_password=False) for n in names], cleanup


def _prepare(engine, clock, n: int, accounts_count: int) -> list[tuple[int, int]]:
    """Sample catalog, funded accounts and N unpaid orders: (uin, order id)."""
    with engine.begin() as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
        uins = [accounts.create_account(conn, clock, OPS, accounts.NewAccount(name=f"bench-{i}"))
                for i in range(accounts_count)]
        revenue_warmup = funds.platform_account(conn, clock, "revenue", "cn-cloud")
        assert revenue_warmup
        for uin in uins:
            funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=10**11,
                         reason="benchmark funding", key=f"fund-{uin}")
    placed = []
    with engine.begin() as conn:
        for i in range(n):
            uin = uins[i % len(uins)]
            (order_id,) = orders.create_purchase(conn, clock, SYSTEM, uin, [orders.NewPurchase(
                product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4", months=1)])
            placed.append((uin, order_id))
    return placed


def _marks(conn) -> dict[str, object]:
    return {t: conn.exec_driver_sql(f"SELECT max({c}) FROM {t}").scalar()
            for t, c in INSERTED.items()}


def _added_rows(conn, marks) -> dict[str, tuple[list[str], list[tuple]]]:
    rows = {}
    for table, column in INSERTED.items():
        mark = marks[table]
        where = f" WHERE {column} > :m" if mark is not None else ""
        result = conn.execute(sa.text(f"SELECT * FROM {table}{where} ORDER BY {column}"),
                              {"m": mark} if mark is not None else {})
        rows[table] = (list(result.keys()), [tuple(r) for r in result])
    return rows


def _final_values(conn, order_ids: list[int]) -> dict[str, tuple[list[str], list[tuple]]]:
    out = {}
    result = conn.execute(sa.text("SELECT * FROM orders WHERE id IN :ids ORDER BY id").bindparams(
        sa.bindparam("ids", expanding=True)), {"ids": order_ids})
    out["orders"] = (list(result.keys()), [tuple(r) for r in result])
    result = conn.execute(sa.text("SELECT id, balance, uin, kind FROM ledger_accounts "
                                  "WHERE cached AND kind IN ('cash', 'frozen_cash')"))
    out["ledger_accounts"] = (list(result.keys()), [tuple(r) for r in result])
    return out


def _split(rows: list, parts: int) -> list[list]:
    size, extra = divmod(len(rows), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(rows[start:end])
        start = end
    return out


def _raw_ceiling(backend: str, url: str, added, finals, n: int, prior_orders) -> float:
    """Write the same rows with the DB-API driver, one group per commit; seconds."""
    if backend == "sqlite":
        path = sa.engine.make_url(url).database
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=OFF")
        mark = "?"
    else:
        import psycopg

        db = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                             .render_as_string(hide_password=False), autocommit=True)
        db.execute("SET synchronous_commit = on")
        db.execute("SET session_replication_role = replica")  # no FK triggers, as on SQLite
        mark = "%s"
    # The orders as they were before payment, and the balance rows, must exist to be updated.
    _seed(db, mark, "orders", *prior_orders)
    cols, balances = finals["ledger_accounts"]
    _seed(db, mark, "ledger_accounts", ["id", "code", "kind", "cached", "balance", "created_at"],
          [(i, f"acct-{i}", "cash", True, 0, START.replace(tzinfo=None)) for i, *_ in balances])
    inserts = {t: (c, _split(r, n)) for t, (c, r) in added.items()}
    order_cols, order_rows = finals["orders"]
    order_groups = _split(order_rows, n)
    # ours changes cash and frozen_cash twice per order (the freeze, then the delivery)
    rows_of = {}
    for account_id, balance, uin, _kind in balances:
        rows_of.setdefault(uin, []).append((balance, account_id))
    uin_at = order_cols.index("uin")
    statements = {t: f"INSERT INTO {t} ({', '.join(c)}) VALUES ({', '.join([mark] * len(c))})"
                  for t, (c, _) in inserts.items()}
    update_orders = (f"UPDATE orders SET {', '.join(f'{c} = {mark}' for c in order_cols[1:])} "
                     f"WHERE id = {mark}")
    update_balance = f"UPDATE ledger_accounts SET balance = {mark} WHERE id = {mark}"
    began = time.perf_counter()
    for i in range(n):
        cur = db.cursor()
        cur.execute("BEGIN IMMEDIATE" if backend == "sqlite" else "BEGIN")
        for table, (_, groups) in inserts.items():
            if groups[i]:
                cur.executemany(statements[table], groups[i])
        for row in order_groups[i]:
            cur.execute(update_orders, (*row[1:], row[0]))
        for row in order_groups[i]:
            cur.executemany(update_balance, rows_of[row[uin_at]] * 2)
        cur.execute("COMMIT")
    elapsed = time.perf_counter() - began
    db.close()
    return elapsed


def _seed(db, mark, table, cols, rows) -> None:
    cur = db.cursor()
    cur.execute("BEGIN")
    cur.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([mark] * len(cols))})",
                    rows)
    cur.execute("COMMIT")


def run_backend(backend: str, n: int, accounts_count: int, pg_url: str, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="fc-bench-orders-") as workdir:
        (ours_url, raw_url), cleanup = _fresh_databases(backend, Path(workdir), pg_url)
        try:
            ours, raw = make_engine(ours_url), make_engine(raw_url)
            upgrade(ours)
            upgrade(raw)
            raw.dispose()
            clock = FixedClock(START)
            log(f"[{backend}] preparing {n} unpaid orders…")
            placed = _prepare(ours, clock, n, accounts_count)
            with ours.connect() as conn:
                marks = _marks(conn)
                result = conn.execute(sa.text("SELECT * FROM orders ORDER BY id"))
                prior_orders = (list(result.keys()), [tuple(r) for r in result])
            log(f"[{backend}] paying {n} orders, one per transaction…")
            began = time.perf_counter()
            for i, (uin, order_id) in enumerate(placed):
                with ours.begin() as conn:
                    orders.pay(conn, clock, SYSTEM, uin, [order_id], key=f"bench-{i}")
            ours_s = time.perf_counter() - began
            with ours.connect() as conn:
                assert reconcile(conn) == [], "the benchmark left the ledger unreconciled"
                states = conn.exec_driver_sql("SELECT DISTINCT state FROM orders").scalars().all()
                assert states == ["delivered"], states
                added = _added_rows(conn, marks)
                finals = _final_values(conn, [o for _, o in placed])
            ours.dispose()
            log(f"[{backend}] raw ceiling of the same rows…")
            raw_s = _raw_ceiling(backend, raw_url, added, finals, n, prior_orders)
        finally:
            cleanup()
    rows_per_order = sum(len(r) for _, r in added.values()) / n
    ours_rate, raw_rate = n / ours_s, n / raw_s
    return {"backend": backend, "orders": n, "rows_inserted_per_order": round(rows_per_order, 1),
            "ours_per_s": round(ours_rate, 1), "raw_per_s": round(raw_rate, 1),
            "ratio": round(ours_rate / raw_rate, 3), "target": TARGET,
            "met": ours_rate / raw_rate >= TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=1000, help="orders to pay (default 1000)")
    parser.add_argument("--accounts", type=int, default=20, help="paying accounts (default 20)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    configure_master_key(Fernet.generate_key().decode())
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    log = (lambda m: print(m, file=sys.stderr))
    results = [run_backend(b, args.n, args.accounts, args.pg_url, log) for b in backends]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'backend':<11}{'orders':>7}{'rows/order':>11}{'ours/s':>9}{'raw/s':>9}"
              f"{'ratio':>8}{'target':>8}  met")
        for r in results:
            print(f"{r['backend']:<11}{r['orders']:>7}{r['rows_inserted_per_order']:>11}"
                  f"{r['ours_per_s']:>9}{r['raw_per_s']:>9}{r['ratio']:>8.0%}"
                  f"{r['target']:>8.0%}  {'yes' if r['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
