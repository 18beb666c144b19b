#!/usr/bin/env python
"""Orders benchmark: paid orders per second, one payment per database transaction,
against the raw SQL ceiling of the same rows measured in the same run.

    .venv/bin/python benchmarks/orders.py [--backend sqlite|postgresql|all] [--n N]
                                          [--chunk C] [--warmup W] [--json]

Ours: N unpaid one-month server orders are created first (not timed), then each
is paid with ``orders.pay`` in its own ``transaction(engine)``: the locked reads, the
arrears gate, the payment plan, the freeze (one ledger transaction with its
hold), the automatic delivery (the hold posted to revenue, the resource
created), the 收支明细 entries, the payment and the order.

Raw ceiling: the rows those payments inserted (payments, ledger transactions,
postings, holds, hold legs, statement entries, resources) and the final values
of what they updated (the order; the balance rows that changed) are read back
and written again with the plain DB-API driver into a second fresh database of
the same schema, seeded with the rows they update or refer to (the ledger
accounts, projects and unpaid orders as they were): one payment's rows per
commit, an executemany per table, an UPDATE of the order, an UPDATE per
changed balance row. On PostgreSQL each commit's statements go in one psycopg
pipeline (one round trip; ours sends its reads, with the BEGIN, as one
statement, and its writes as another with the COMMIT: two). Same rows, same
number of commits, same schema with its constraints (indexes, unique
constraints, foreign keys), the project's settings (SQLite
``db.engine.SQLITE_PRAGMAS``: WAL, synchronous=FULL, foreign keys on, 16 MiB page
cache; PostgreSQL synchronous_commit=on), as in benchmarks/ledger.py.

Beside it, for comparison, a third database takes the same rows with its
foreign-key checks off (``raw no FK``: SQLite ``foreign_keys=OFF``, PostgreSQL
``session_replication_role = replica``), the ceiling this benchmark used up to
session 7: a ceiling the schema cannot reach, since its checks are the
database's own work for these rows, not the application's (docs/benchmarks.md).

The three take turns, C payments each (default 50), so a drift in disk latency
or in the other work on the machine hits them alike; W payments (default 20)
warm them up first and are not counted. Target: ours ≥ 50 % of raw.

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
from feecenter.db.engine import SQLITE_PRAGMAS, dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.orders import service as orders

DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
TARGET = 0.50
OPS = operator("bench")
RAW_SIDES = {"raw": True, "raw_nofk": False}  # raw database -> foreign-key checks on?
SIDES = ("ours", *RAW_SIDES)
SEEDED = ("ledger_accounts", "projects", "orders")  # what payments update or refer to
INSERTED = {  # table -> how to find the rows a turn added (column > its max before)
    "payments": "id", "ledger_transactions": "id", "ledger_postings": "id",
    "ledger_holds": "id", "ledger_hold_legs": "hold_id", "statement_entries": "id",
}  # resources: by the ids the turn's orders name (their ids are not ordered)


def _fresh_databases(backend: str, workdir: Path, pg_url: str):
    """Fresh databases (ours, raw, raw without foreign-key checks) and a cleanup
    function."""
    if backend == "sqlite":
        urls = [f"sqlite:///{workdir / name}.db" for name in SIDES]
        return urls, lambda: None
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    names = [f"fc_bench_orders_{side}_{uuid.uuid4().hex[:6]}" for side in SIDES]
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


def _balances(conn) -> dict[int, tuple[int, int]]:
    """Cached balance rows: id -> (uin, balance)."""
    return {i: (uin, balance) for i, uin, balance in conn.exec_driver_sql(
        "SELECT id, uin, balance FROM ledger_accounts WHERE cached")}


def _rows(conn, sql: str, **params) -> tuple[list[str], list[tuple]]:
    statement = sa.text(sql)
    for name, value in params.items():
        if isinstance(value, list):
            statement = statement.bindparams(sa.bindparam(name, expanding=True))
    result = conn.execute(statement, params)
    return list(result.keys()), [tuple(r) for r in result]


def _written(conn, marks, order_ids: list[int], before) -> dict:
    """What a turn wrote: the inserted rows of each table, the orders as paid, and
    the balance rows that changed (id, balance, uin)."""
    added = {}
    for table, column in INSERTED.items():
        mark = marks[table]
        where = f" WHERE {column} > :m" if mark is not None else ""
        added[table] = _rows(conn, f"SELECT * FROM {table}{where} ORDER BY {column}",
                             **({"m": mark} if mark is not None else {}))
    paid = _rows(conn, "SELECT * FROM orders WHERE id IN :ids ORDER BY id", ids=order_ids)
    resource_at = paid[0].index("resource_id")
    added["resources"] = _rows(conn, "SELECT * FROM resources WHERE id IN :ids",
                               ids=[row[resource_at] for row in paid[1]])
    changed = [(i, balance, uin) for i, (uin, balance) in _balances(conn).items()
               if before[i][1] != balance]
    return {"added": added, "orders": paid, "balances": changed}


def _split(rows: list, parts: int) -> list[list]:
    size, extra = divmod(len(rows), parts)
    out, start = [], 0
    for i in range(parts):
        end = start + size + (1 if i < extra else 0)
        out.append(rows[start:end])
        start = end
    return out


class RawWriter:
    """The same rows with the DB-API driver, one payment's worth per commit, into the
    same schema with the project's settings; ``foreign_keys=False`` turns the
    foreign-key checks off (the figure beside the ceiling, for comparison)."""

    def __init__(self, backend: str, url: str, seeds: dict, *, foreign_keys: bool = True):
        self.backend = backend
        if backend == "sqlite":
            db = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
            for pragma in (*SQLITE_PRAGMAS, f"foreign_keys={'ON' if foreign_keys else 'OFF'}"):
                db.execute(f"PRAGMA {pragma}")
            self.mark = "?"
        else:
            import psycopg

            db = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False), autocommit=True)
            db.execute("SET synchronous_commit = on")
            if not foreign_keys:
                db.execute("SET session_replication_role = replica")  # no FK triggers
            self.mark = "%s"
        self.db = db
        for table, (cols, rows) in seeds.items():  # what the payments update or refer to
            self._seed(table, cols, rows)

    def _insert_sql(self, table: str, cols: list[str]) -> str:
        return f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join([self.mark] * len(cols))})"

    def _seed(self, table: str, cols: list[str], rows: list[tuple]) -> None:
        cur = self.db.cursor()
        cur.execute("BEGIN")
        cur.executemany(self._insert_sql(table, cols), rows)
        cur.execute("COMMIT")

    def write(self, written: dict, count: int) -> float:
        """Write ``count`` payments' rows, one payment per commit; seconds taken."""
        mark = self.mark
        inserts = {t: (self._insert_sql(t, c), _split(r, count))
                   for t, (c, r) in written["added"].items()}
        order_cols, order_rows = written["orders"]
        update_order = (f"UPDATE orders SET {', '.join(f'{c} = {mark}' for c in order_cols[1:])}"
                        f" WHERE id = {mark}")
        update_balance = f"UPDATE ledger_accounts SET balance = {mark} WHERE id = {mark}"
        changed: dict[int, list[tuple[int, int]]] = {}
        for account_id, balance, uin in written["balances"]:
            changed.setdefault(uin, []).append((balance, account_id))
        uin_at = order_cols.index("uin")

        def one_payment(cur, i: int) -> None:
            for sql, groups in inserts.values():
                if groups[i]:
                    cur.executemany(sql, groups[i])
            order = order_rows[i]
            cur.execute(update_order, (*order[1:], order[0]))
            cur.executemany(update_balance, changed.get(order[uin_at], []))

        began = time.perf_counter()
        for i in range(count):
            cur = self.db.cursor()
            if self.backend == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
                one_payment(cur, i)
                cur.execute("COMMIT")
            else:
                with self.db.pipeline():
                    cur.execute("BEGIN")
                    one_payment(cur, i)
                    cur.execute("COMMIT")
        return time.perf_counter() - began


def _turn(ours, probe, clock, raws: list[RawWriter], placed: list[tuple[int, int]],
          first: int) -> tuple:
    """Ours pays ``placed``, then each raw writer writes the same rows: (ours s,
    [each raw's s], rows inserted).
    What the turn wrote is read through ``probe``, an engine of its own on ours's
    database, so that those reads leave ours's connection as the payments left it
    (on PostgreSQL a rollback there would deallocate its prepared statements)."""
    with probe.connect() as conn:
        marks, before = _marks(conn), _balances(conn)
    began = time.perf_counter()
    for i, (uin, order_id) in enumerate(placed, start=first):
        with transaction(ours) as conn:
            orders.pay(conn, clock, SYSTEM, uin, [order_id], key=f"bench-{i}")
    ours_s = time.perf_counter() - began
    with probe.connect() as conn:
        written = _written(conn, marks, [o for _, o in placed], before)
    inserted = sum(len(rows) for _, rows in written["added"].values())
    return ours_s, [raw.write(written, len(placed)) for raw in raws], inserted


def run_backend(backend: str, n: int, chunk: int, warmup: int, accounts_count: int,
                pg_url: str, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="fc-bench-orders-") as workdir:
        (ours_url, *raw_urls), cleanup = _fresh_databases(backend, Path(workdir), pg_url)
        try:
            ours = make_engine(ours_url)
            for url in (ours_url, *raw_urls):
                engine = make_engine(url)
                upgrade(engine)
                dispose(engine)
            clock = FixedClock(START)
            log(f"[{backend}] preparing {warmup + n} unpaid orders…")
            placed = _prepare(ours, clock, warmup + n, accounts_count)
            probe = make_engine(ours_url)  # the benchmark's own reads (_turn)
            with probe.connect() as conn:
                seeds = {t: _rows(conn, f"SELECT * FROM {t} ORDER BY id") for t in SEEDED}
            raws = [RawWriter(backend, url, seeds, foreign_keys=fks)
                    for url, fks in zip(raw_urls, RAW_SIDES.values())]
            log(f"[{backend}] paying {n} orders, one per transaction, in turns of {chunk} "
                f"with the raw ceiling…")
            if warmup:
                _turn(ours, probe, clock, raws, placed[:warmup], 0)
            ours_s, raw_s, inserted = 0, [0] * len(raws), 0
            for start in range(warmup, warmup + n, chunk):
                o, r, rows = _turn(ours, probe, clock, raws, placed[start:start + chunk], start)
                ours_s, inserted = ours_s + o, inserted + rows
                raw_s = [total + s for total, s in zip(raw_s, r)]
            for raw in raws:
                raw.db.close()
            with ours.connect() as conn:
                assert reconcile(conn) == [], "the benchmark left the ledger unreconciled"
                states = conn.exec_driver_sql("SELECT DISTINCT state FROM orders").scalars().all()
                assert states == ["delivered"], states
            dispose(probe)
            dispose(ours)
        finally:
            cleanup()
    ours_rate, raw_rate, unchecked_rate = n / ours_s, n / raw_s[0], n / raw_s[1]
    return {"backend": backend, "orders": n, "rows_inserted_per_order": round(inserted / n, 1),
            "ours_per_s": round(ours_rate, 1), "raw_per_s": round(raw_rate, 1),
            "ratio": round(ours_rate / raw_rate, 3), "target": TARGET,
            "raw_no_fk_per_s": round(unchecked_rate, 1),
            "ratio_no_fk": round(ours_rate / unchecked_rate, 3),
            "met": ours_rate / raw_rate >= TARGET, "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=1000, help="orders to pay (default 1000)")
    parser.add_argument("--chunk", type=int, default=50, help="payments per turn (default 50)")
    parser.add_argument("--warmup", type=int, default=20,
                        help="payments before the timing (default 20)")
    parser.add_argument("--accounts", type=int, default=20, help="paying accounts (default 20)")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    configure_master_key(Fernet.generate_key().decode())
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    log = (lambda m: print(m, file=sys.stderr))
    results = [run_backend(b, args.n, args.chunk, args.warmup, args.accounts, args.pg_url, log)
               for b in backends]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'backend':<11}{'orders':>7}{'rows/order':>11}{'ours/s':>9}{'raw/s':>9}"
              f"{'ratio':>8}{'target':>8}  met {'raw no FK/s':>12}{'ratio':>7}  load")
        for r in results:
            print(f"{r['backend']:<11}{r['orders']:>7}{r['rows_inserted_per_order']:>11}"
                  f"{r['ours_per_s']:>9}{r['raw_per_s']:>9}{r['ratio']:>8.0%}"
                  f"{r['target']:>8.0%}  {'yes' if r['met'] else 'NO ':<3}"
                  f"{r['raw_no_fk_per_s']:>12}{r['ratio_no_fk']:>7.0%}  {r['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
