#!/usr/bin/env python
"""Settlement benchmark: postpaid resource-hours settled per second, against the raw
batched ceiling of the same rows measured in the same run (issue #4).

    .venv/bin/python benchmarks/settlement.py [--backend sqlite|postgresql|all]
        [--n 1000000] [--hours 4] [--resources 25] [--json]

For each backend it makes a fresh database (SQLite: a temporary file; PostgreSQL:
a new database on --pg-url, dropped at the end), migrates it, loads the sample
catalog and creates accounts with a realistic mix (most funded, some paying with
gift, some with credit, some running into arrears; a fifth with a discount, a few
with a contract price) and ``--resources`` hourly postpaid resources each (cloud
servers, a third of them with public traffic as a second billing item; disks;
databases with storage). ``--n`` resource-hours of hourly usage over ``--hours``
hours are inserted straight into ``usage_records`` (setup, not timed).

Ours: each hour is settled by the real ``settlement.service.settle_period`` (the
late-usage pass, the aggregate usage query, the price book, rating, rounding,
the bulk deduction with ledger transactions, postings, balance updates and 收支明细
entries, the L3 bill lines and settled accounts, chunk by chunk), in a child
process that does nothing else, so its peak resident memory (``VmHWM``,
interpreter and libraries included) is the settlement's.

Raw ceiling: right after ours settles an hour, the rows it wrote — bill lines,
ledger transactions, postings, balance updates, 收支明细 entries, settled accounts,
the settled period — are read back (not timed) and written again with the plain
DB-API driver (sqlite3 / psycopg) into a second database that is a copy of the
first as it was before settlement: the same chunks of accounts, one transaction
each (the chunk's balance rows read — ``FOR UPDATE`` on PostgreSQL — then one
``executemany`` per table). Same rows, same indexes and constraints, the
project's settings (SQLite ``db.engine.SQLITE_PRAGMAS``: WAL, ``synchronous=FULL``,
16 MiB page cache; PostgreSQL ``synchronous_commit=on``). Hours alternate between ours and raw, so drift in
disk latency hits both.

Afterwards both databases must reconcile and hold the same rows (counts and sums
of every table written, every balance). Target (issue #4): ours ≥ 25 % of the raw
ceiling, and peak memory under 1 GiB.

A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import operator
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock, db_time
from feecenter.db.engine import SQLITE_PRAGMAS, make_engine
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.periods import HOURLY, period_containing
from feecenter.resources import service as resources_service
from feecenter.settlement import rules
from feecenter.settlement import service as settlement
from feecenter.settlement.posting import LINE_COLUMNS

DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)  # 10:00 in Shanghai
SETUP_AT = START - timedelta(days=1)
TARGET_RATIO = 0.25
TARGET_PEAK_BYTES = 1 << 30
OPS = operator("bench")
# (product, main item, region, share of resources, second item or None, its share)
MIX = [("cvm", "S5.MEDIUM4", "ap-guangzhou", 0.40, "traffic", 0.33),
       ("cvm", "S5.LARGE8", "ap-shanghai", 0.20, "traffic", 0.33),
       ("cbs", "premium", "ap-guangzhou", 0.20, None, 0),
       ("cbs", "ssd", "ap-beijing", 0.10, None, 0),
       ("cdb", "MYSQL.2C4G", "ap-guangzhou", 0.10, "storage", 1.0)]
SEED = 20260302


# ------------------------------------------------------------------ databases

class Databases:
    """Ours (fresh, migrated) and, after setup, raw: a copy of ours before settlement."""

    def __init__(self, backend: str, pg_url: str, sqlite_dir: str | None):
        self.backend = backend
        self._admin = None
        self._tmp = tempfile.mkdtemp(prefix="fc-bench-settle-", dir=sqlite_dir)
        if backend == "sqlite":
            self.ours_url = f"sqlite:///{self._tmp}/ours.db"
            self.raw_url = f"sqlite:///{self._tmp}/raw.db"
        else:
            self._admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
            tag = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
            self.names = [f"fc_bench_settle_ours_{tag}", f"fc_bench_settle_raw_{tag}"]
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.names[0]}"')
            base = sa.engine.make_url(pg_url)
            self.ours_url, self.raw_url = (base.set(database=n).render_as_string(
                hide_password=False) for n in self.names)
        self.engine = make_engine(self.ours_url)
        upgrade(self.engine)

    def copy_for_raw(self) -> None:
        """The raw side starts from exactly ours' state before settlement."""
        self.engine.dispose()  # SQLite: checkpoints the WAL; PostgreSQL: no session left
        if self.backend == "sqlite":
            shutil.copy(sa.engine.make_url(self.ours_url).database,
                        sa.engine.make_url(self.raw_url).database)
        else:
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.names[1]}" '
                                     f'TEMPLATE "{self.names[0]}"')

    def close(self) -> None:
        self.engine.dispose()
        if self._admin is not None:
            with self._admin.connect() as conn:
                for name in self.names:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            self._admin.dispose()
        shutil.rmtree(self._tmp, ignore_errors=True)


def driver(url: str):
    """A plain DB-API connection with the project's durability settings; its marker."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None,
                               timeout=60)
        for pragma in (*SQLITE_PRAGMAS, "busy_timeout=60000"):  # the project's settings
            conn.execute(f"PRAGMA {pragma}")
        return conn, "?"
    import psycopg

    conn = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                           .render_as_string(hide_password=False), autocommit=True)
    conn.execute("SET synchronous_commit = on")
    conn.execute("SET TIME ZONE 'UTC'")
    return conn, "%s"


def begin(conn) -> None:
    conn.execute("BEGIN IMMEDIATE" if isinstance(conn, sqlite3.Connection) else "BEGIN")


def insert_sql(table: str, columns, mark: str) -> str:
    return (f"INSERT INTO {table} ({', '.join(columns)}) "
            f"VALUES ({', '.join([mark] * len(columns))})")


# ------------------------------------------------------------------ setup (not timed)

@dataclass
class World:
    accounts: int
    resource_hours: int = 0
    usage_rows: int = 0
    hours: list = field(default_factory=list)


def build_world(engine: sa.Engine, n: int, hours: int, per_account: int, log) -> World:
    clock = FixedClock(SETUP_AT)
    rnd = random.Random(SEED)
    count = max(n // (hours * per_account), 1)
    world = World(count, hours=[START + timedelta(hours=h) for h in range(hours)])
    with engine.begin() as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
        for entity in sorted({p.entity for p in catalog.list_products(conn)}):
            funds.platform_account(conn, clock, "revenue", entity)  # a live system has them
    log(f"  {count:,} accounts …")
    owners = _accounts(engine, clock, rnd, count)
    log(f"  {count * per_account:,} resources, {n:,} resource-hours of usage …")
    resources = _resources(engine, clock, rnd, owners, per_account)
    world.resource_hours, world.usage_rows = _usage(engine, rnd, resources, world.hours, n)
    with engine.begin() as conn:  # statistics, as a live database has (autovacuum)
        conn.exec_driver_sql("ANALYZE")
    return world


def _accounts(engine: sa.Engine, clock: FixedClock, rnd: random.Random,
              count: int) -> list[tuple[int, int]]:
    """(uin, default project) of ``count`` accounts with a realistic money mix."""
    owners = []
    for start in range(0, count, 500):
        with engine.begin() as conn:
            for i in range(start, min(start + 500, count)):
                uin = accounts.create_account(conn, clock, OPS,
                                              accounts.NewAccount(name=f"bench-{i:07d}"))
                _fund(conn, clock, rnd, uin)
                owners.append((uin, resources_service.default_project(conn, clock, uin)))
    return owners


def _fund(conn, clock: FixedClock, rnd: random.Random, uin: int) -> None:
    """60 % well funded, 15 % gift and cash, 15 % little cash (arrears), 5 % credit,
    5 % nothing; 20 % with a discount, 2 % with a contract price for traffic."""
    kind = rnd.random()
    cash = (rnd.randint(10_000_00, 100_000_00) if kind < 0.60 else
            rnd.randint(50_00, 500_00) if kind < 0.75 else
            rnd.randint(1_00, 20_00) if kind < 0.95 else 0)
    if cash:
        funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=cash, reason="bench",
                     key=f"cash-{uin}")
    if 0.60 <= kind < 0.75:
        funds.adjust(conn, clock, OPS, uin, sub_account="gift", amount=rnd.randint(5_00, 50_00),
                     reason="bench", key=f"gift-{uin}")
    if 0.90 <= kind < 0.95:
        funds.grant_credit(conn, clock, OPS, uin, credit_limit=rnd.randint(10_00, 100_00))
    if rnd.random() < 0.20:
        catalog.set_discount(conn, clock, OPS, uin, rnd.choice((8000, 8500, 9000, 9500)))
    if rnd.random() < 0.02:
        catalog.set_contract_price(conn, clock, OPS, uin, product="cvm", item="traffic",
                                   pay_mode="postpaid", unit_price=55_000_000)


def _resources(engine: sa.Engine, clock: FixedClock, rnd: random.Random,
               owners: list[tuple[int, int]], per_account: int) -> list[tuple]:
    """Postpaid resources inserted in bulk: (id, uin, product, items, region)."""
    made, rows, serial = [], [], 0
    now = db_time(clock.now())
    weights = [m[3] for m in MIX]
    for uin, project in owners:
        for _ in range(per_account):
            product, item, region, _, extra, extra_share = rnd.choices(MIX, weights)[0]
            resource_id = f"{product}-b{serial:09d}"
            serial += 1
            items = (item, extra) if extra and rnd.random() < extra_share else (item,)
            made.append((resource_id, uin, product, items, region))
            rows.append((resource_id, uin, f"{product}-{serial}" if serial % 4 else None,
                         product, region, project, "{}", "postpaid", item, 1_000_000, "running",
                         now))
    columns = ("id", "uin", "name", "product_code", "region", "project_id", "tags", "pay_mode",
               "spec_item", "quantity", "state", "created_at")
    _bulk(engine, "resources", columns, rows, datetimes=(11,))
    return made


def _usage(engine: sa.Engine, rnd: random.Random, made: list[tuple], hours: list,
           n: int) -> tuple[int, int]:
    """Hourly usage of every resource for each hour, up to ``n`` resource-hours; inserted
    hour by hour."""
    quantity = {"S5.MEDIUM4": 1_000_000, "S5.LARGE8": 1_000_000, "MYSQL.2C4G": 1_000_000}
    columns = ("event_id", "uin", "resource_id", "billing_item", "quantity", "usage_start",
               "usage_end", "received_at")
    resource_hours = records = 0
    received = db_time(SETUP_AT)
    for hour in hours:
        start, end = db_time(hour), db_time(hour + timedelta(hours=1))
        rows = []
        for resource_id, uin, _, items, _ in made[:n - resource_hours]:
            resource_hours += 1
            for item in items:
                amount = quantity.get(item) or (
                    rnd.randint(20, 2_000) * 1_000_000 if item in ("premium", "ssd", "storage")
                    else rnd.randint(1, 5_000_000))  # traffic: up to 5 GB, 1e-6 GB steps
                rows.append((f"{resource_id}-{hour:%H}-{item}", uin, resource_id, item, amount,
                             start, end, received))
        _bulk(engine, "usage_records", columns, rows, datetimes=(5, 6, 7))
        records += len(rows)
    return resource_hours, records


def _bulk(engine: sa.Engine, table: str, columns, rows: list[tuple], datetimes=()) -> None:
    """Setup rows with executemany on the driver, 20,000 per commit (datetimes stored as
    SQLAlchemy stores them)."""
    process = sa.DateTime().dialect_impl(engine.dialect).bind_processor(engine.dialect)
    if process:
        rows = [tuple(process(v) if i in datetimes else v for i, v in enumerate(row))
                for row in rows]
    mark = "?" if engine.dialect.name == "sqlite" else "%s"
    for start in range(0, len(rows), 20_000):
        with engine.begin() as conn:
            cursor = conn.connection.dbapi_connection.cursor()
            cursor.executemany(insert_sql(table, columns, mark), rows[start:start + 20_000])
            cursor.close()


# ------------------------------------------------------------------ ours (child process)

def child_main(url: str) -> int:
    """Settle the hours asked on stdin (one JSON command per line); answer each with the
    seconds it took; at the end, the process's peak resident memory."""
    engine = make_engine(url)
    for line in sys.stdin:
        command = json.loads(line)
        period = period_containing(HOURLY, datetime.fromisoformat(command["start"]))
        clock = FixedClock(datetime.fromisoformat(command["now"]))
        began = time.perf_counter()
        result = settlement.settle_period(engine, clock, "hour", period,
                                          chunk_accounts=command["chunk_accounts"],
                                          chunk_lines=command["chunk_lines"])
        seconds = time.perf_counter() - began
        print(json.dumps({"seconds": seconds, "result": result}), flush=True)
    engine.dispose()
    print(json.dumps({"peak_bytes": peak_resident_bytes()}), flush=True)
    return 0


def peak_resident_bytes() -> int:
    """This process's peak resident set: VmHWM on Linux (it starts afresh at exec, where
    ru_maxrss keeps the high-water mark of the forking parent), else ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


class Ours:
    def __init__(self, url: str):
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", url], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)

    def settle(self, hour: datetime, chunk_accounts: int, chunk_lines: int) -> dict:
        now = hour + timedelta(hours=1, minutes=5)
        self.proc.stdin.write(json.dumps({"start": hour.isoformat(), "now": now.isoformat(),
                                          "chunk_accounts": chunk_accounts,
                                          "chunk_lines": chunk_lines}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"the settling process failed (exit {self.proc.wait()})")
        return json.loads(answer)

    def stop(self) -> None:
        """On failure: end the child (it started no other process)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def finish(self) -> int:
        self.proc.stdin.close()
        peak = json.loads(self.proc.stdout.readline())["peak_bytes"]
        if self.proc.wait() != 0:
            raise SystemExit("the settling process failed")
        return peak


# ------------------------------------------------------------------ raw ceiling

TXN_COLUMNS = ("id", "idempotency_key", "request_hash", "kind", "uin", "reference", "memo",
               "reverses_txn_id", "created_at")
POSTING_COLUMNS = ("txn_id", "account_id", "uin", "amount", "balance_after")
ENTRY_COLUMNS = ("uin", "txn_id", "action_type", "deduct_mode", "pay_channel", "amount",
                 "cash_amount", "gift_amount", "coupon_amount", "credit_amount", "balance_after",
                 "cash_after", "gift_after", "frozen_after", "product_code", "billing_item",
                 "order_id", "storefront", "memo", "created_at")
SETTLED_COLUMNS = ("uin", "cycle", "period_key", "amount", "txn_id", "settled_at")
PERIOD_COLUMNS = ("cycle", "period_key", "period_start", "period_end", "completed_at")


class Raw:
    """Writes what ours wrote for an hour again, with the driver, chunk by chunk."""

    def __init__(self, ours_url: str, raw_url: str):
        self.source, self.mark_source = driver(ours_url)
        self.target, self.mark = driver(raw_url)
        self.pg = self.mark == "%s"
        m = self.mark
        self.sql = {
            "lock": (f"SELECT id, balance FROM ledger_accounts WHERE id = ANY({m}) "
                     "ORDER BY id FOR UPDATE") if self.pg else None,
            "balance": f"UPDATE ledger_accounts SET balance = {m} WHERE id = {m}",
            "txns": insert_sql("ledger_transactions", TXN_COLUMNS, m),
            "postings": insert_sql("ledger_postings", POSTING_COLUMNS, m),
            "entries": insert_sql("statement_entries", ENTRY_COLUMNS, m),
            "lines": insert_sql("bill_lines", LINE_COLUMNS, m),
            "settled": insert_sql("settled_accounts", SETTLED_COLUMNS, m),
            "period": insert_sql("settled_periods", PERIOD_COLUMNS, m)}

    def write_hour(self, period_key: str, chunk_accounts: int, chunk_lines: int) -> float:
        """Seconds spent writing (reading ours' rows back is not timed)."""
        counts = self._read("SELECT uin, count(*) FROM bill_lines WHERE period_key = {m} "
                            "GROUP BY uin ORDER BY uin", (period_key,))
        took = 0.0
        for chunk in rules.chunk_accounts(counts, chunk_accounts, chunk_lines):
            rows = self._chunk_rows(period_key, chunk[0], chunk[-1])
            began = time.perf_counter()
            self._write_chunk(rows)
            took += time.perf_counter() - began
        period = self._read("SELECT " + ", ".join(PERIOD_COLUMNS) + " FROM settled_periods "
                            "WHERE cycle = 'hour' AND period_key = {m}", (period_key,))
        began = time.perf_counter()
        begin(self.target)
        self.target.cursor().executemany(self.sql["period"], period)
        self.target.execute("COMMIT")
        return took + time.perf_counter() - began

    def _read(self, sql: str, params) -> list[tuple]:
        return self.source.execute(sql.replace("{m}", self.mark_source), params).fetchall()

    def _chunk_rows(self, period_key: str, first: int, last: int) -> dict[str, list]:
        where = "uin >= {m} AND uin <= {m}"
        span = (first, last)
        prefix = f"settle:hour:{period_key}:%"
        txns = self._read(f"SELECT {', '.join(TXN_COLUMNS)} FROM ledger_transactions WHERE "
                          f"idempotency_key LIKE {{m}} AND {where} ORDER BY id",
                          (prefix, *span))
        low, high = (txns[0][0], txns[-1][0]) if txns else (0, -1)
        postings = self._read(f"SELECT {', '.join(POSTING_COLUMNS)} FROM ledger_postings WHERE "
                              "txn_id >= {m} AND txn_id <= {m} ORDER BY id", (low, high))
        return {
            "txns": txns, "postings": postings,
            "entries": self._read(f"SELECT {', '.join(ENTRY_COLUMNS)} FROM statement_entries "
                                  "WHERE txn_id >= {m} AND txn_id <= {m} ORDER BY id",
                                  (low, high)),
            "lines": self._read(f"SELECT {', '.join(LINE_COLUMNS)} FROM bill_lines WHERE "
                                f"period_key = {{m}} AND {where} ORDER BY id",
                                (period_key, *span)),
            "settled": self._read(f"SELECT {', '.join(SETTLED_COLUMNS)} FROM settled_accounts "
                                  f"WHERE period_key = {{m}} AND {where} ORDER BY id",
                                  (period_key, *span)),
            "balances": list({row[1]: (row[4], row[1]) for row in postings
                              if row[4] is not None}.values())}  # last balance_after each

    def _write_chunk(self, rows: dict[str, list]) -> None:
        cur, sql = self.target.cursor(), self.sql
        begin(self.target)
        try:
            ids = sorted(account for _, account in rows["balances"])
            if self.pg:
                cur.execute(sql["lock"], (ids,))
            else:
                cur.execute(f"SELECT id, balance FROM ledger_accounts WHERE id IN "
                            f"({', '.join('?' * len(ids))}) ORDER BY id", ids)
            cur.fetchall()
            cur.executemany(sql["balance"], rows["balances"])
            for table in ("txns", "postings", "entries", "lines", "settled"):
                cur.executemany(sql[table], rows[table])
        except BaseException:
            self.target.execute("ROLLBACK")
            raise
        self.target.execute("COMMIT")

    def close(self) -> None:
        self.source.close()
        self.target.close()


# ------------------------------------------------------------------ verifying (not timed)

SUMS = {"bill_lines": "count(*), sum(deducted), sum(discounted_amount), sum(rounding_diff), "
                      "sum(gift_paid), sum(cash_paid), sum(credit_paid), sum(arrears)",
        "ledger_transactions": "count(*), max(id)",
        "ledger_postings": "count(*), sum(amount), sum(balance_after)",
        "statement_entries": "count(*), sum(amount), sum(balance_after), sum(cash_after)",
        "settled_accounts": "count(*), sum(amount)",
        "settled_periods": "count(*)",
        "ledger_accounts": "count(*), sum(balance), sum(balance * id)"}


def verify(ours_url: str, raw_url: str, world: World) -> dict:
    """Both databases reconcile and hold the same rows; what ours settled adds up."""
    shapes = []
    for url in (ours_url, raw_url):
        engine = make_engine(url)
        with engine.connect() as conn:
            differences = reconcile(conn)
            if differences:
                raise SystemExit(f"{url}: reconciliation found differences: {differences[:3]}")
            shapes.append({table: tuple(int(v or 0) for v in conn.exec_driver_sql(
                f"SELECT {sums} FROM {table}").one()) for table, sums in SUMS.items()})
            arrears = conn.exec_driver_sql(
                "SELECT count(*) FROM ledger_accounts WHERE kind = 'arrears' AND balance < 0"
            ).scalar_one()
        engine.dispose()
    if shapes[0] != shapes[1]:
        raise SystemExit(f"ours and raw differ: {shapes[0]} != {shapes[1]}")
    return {"bill_lines": shapes[0]["bill_lines"][0], "accounts_in_arrears": arrears,
            "deducted_fen": shapes[0]["bill_lines"][1]}


# ------------------------------------------------------------------ a backend

def run_backend(backend: str, args, log) -> dict:
    dbs = Databases(backend, args.pg_url, args.sqlite_dir)
    try:
        log(f"[{backend}] setup (not timed) …")
        world = build_world(dbs.engine, args.n, args.hours, args.resources, log)
        dbs.copy_for_raw()
        ours, raw = Ours(dbs.ours_url), Raw(dbs.ours_url, dbs.raw_url)
        ours_s = raw_s = 0.0
        lines = 0
        try:
            for hour in world.hours:
                answer = ours.settle(hour, args.chunk_accounts, args.chunk_lines)
                ours_s += answer["seconds"]
                lines += answer["result"]["lines"]
                key = period_containing(HOURLY, hour).key
                took = raw.write_hour(key, args.chunk_accounts, args.chunk_lines)
                raw_s += took
                log(f"  {key}: {answer['result']['accounts']:,} accounts, "
                    f"{answer['result']['lines']:,} lines — ours {answer['seconds']:.1f} s, "
                    f"raw {took:.1f} s")
            peak = ours.finish()
        finally:
            ours.stop()
            raw.close()
        checked = verify(dbs.ours_url, dbs.raw_url, world)
    finally:
        dbs.close()
    rh = world.resource_hours
    ratio = raw_s / ours_s
    return {"backend": backend, "accounts": world.accounts, "resource_hours": rh,
            "usage_rows": world.usage_rows, "bill_lines": lines, "hours": len(world.hours),
            "chunk_accounts": args.chunk_accounts, "chunk_lines": args.chunk_lines,
            "ours_seconds": round(ours_s, 2), "raw_seconds": round(raw_s, 2),
            "ours_resource_hours_per_s": round(rh / ours_s), "raw_resource_hours_per_s":
            round(rh / raw_s), "ours_lines_per_s": round(lines / ours_s), "ratio": round(ratio, 3),
            "peak_rss_bytes": peak, "target_ratio": TARGET_RATIO,
            "met": ratio >= TARGET_RATIO and peak < TARGET_PEAK_BYTES, **checked}


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child_main(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=1_000_000, help="resource-hours to settle")
    parser.add_argument("--hours", type=int, default=4, help="hourly periods they spread over")
    parser.add_argument("--resources", type=int, default=25, help="resources per account")
    parser.add_argument("--chunk-accounts", type=int, default=settlement.CHUNK_ACCOUNTS)
    parser.add_argument("--chunk-lines", type=int, default=settlement.CHUNK_LINES)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--sqlite-dir", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if min(args.n, args.hours, args.resources, args.chunk_accounts, args.chunk_lines) < 1:
        parser.error("--n, --hours, --resources and the chunk sizes must be positive")
    log = (lambda message: print(message, file=sys.stderr, flush=True))
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"load average {load:.2f}: other work on this machine skews the figures")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results = [run_backend(b, args, log) for b in backends]
    if args.json:
        print(json.dumps({"cpus": os.cpu_count(), "load_average_1m_at_start": round(load, 2),
                          "peak_memory": "VmHWM (peak resident set) of the settling process",
                          "results": results}, indent=2))
        return 0
    print(f"{'backend':<11}{'res-hours':>10}{'lines':>10}{'ours rh/s':>11}{'raw rh/s':>10}"
          f"{'ratio':>7}{'peak RSS':>10}  met (≥ {TARGET_RATIO:.0%}, < 1 GiB)")
    for r in results:
        print(f"{r['backend']:<11}{r['resource_hours']:>10,}{r['bill_lines']:>10,}"
              f"{r['ours_resource_hours_per_s']:>11,}{r['raw_resource_hours_per_s']:>10,}"
              f"{r['ratio']:>7.0%}{r['peak_rss_bytes'] / 2**20:>7.0f} MiB  "
              f"{'yes' if r['met'] else 'NO'}")
    print("peak RSS: VmHWM of the process that only settles (interpreter and libraries "
          "included); ratio: ours resource-hours/s ÷ raw ceiling's, same rows, same run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
