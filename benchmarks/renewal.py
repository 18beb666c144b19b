#!/usr/bin/env python
"""Renewal benchmark: the daily renewal scan and the renewals of N prepaid
resources expiring on one day, then the stop of those not renewed, in resources
per second, each beside the raw ceiling of the same writes measured in the same run.

    .venv/bin/python benchmarks/renewal.py [--backend sqlite|postgresql|all] [--n 100000]
                                           [--accounts 1000] [--pg-url URL] [--json]

Setup (not timed), on a fresh migrated database: the sample catalog, ``--accounts``
funded accounts, each buying one one-month server through ``orders.create_purchase``
and ``orders.pay`` (a real purchase); the rest of the N resources are created in
bulk through ``resources.create_resource`` as copies of their account's purchased
one (same product, spec, project, period: prepaid, running, one expiry). Nine
accounts in ten turn auto-renewal on (``renewal.settings.set_account_default``),
so 90 % of the resources renew and 10 % expire. Then ``ANALYZE``, as a live
database has statistics, and the database is copied for the raw side (SQLite:
the file; PostgreSQL: ``CREATE DATABASE … TEMPLATE``).

Ours, timed, as the hourly ``renewal.expiry`` job runs them:
1. renewals: ``renewal.auto.renew_due(expiry day)`` at 01:00 of that day — the
   scan in batches of 500 and, per resource, ``create_renewal`` + ``pay`` in a
   transaction of its own (one commit per resource);
2. stops: ``renewal.lifecycle.stop_due(the hour after the expiry)`` — the
   resources not renewed, stopped 1,000 per transaction with their notices.

Raw ceiling, per phase: what ours wrote is found by comparing every table
before and after (rows added; the final values of rows changed), read back, and
written with the plain DB-API driver (sqlite3 / psycopg, one psycopg pipeline
per commit on PostgreSQL, as benchmarks/orders.py) into the copy, with the same
number of commits: one per renewal (its share of each table's added rows, its
resource's UPDATE and the UPDATE of its account's changed balance rows), one
per stop batch. The raw phase runs right after ours's. Same schema,
constraints and settings (``db.engine.SQLITE_PRAGMAS``; synchronous_commit=on).
No target is set (issue #23): the ratio ours / raw is printed.

Peak RSS: the process's resident high-water mark during each of ours's phases
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``; what the
benchmark itself holds — its snapshot of every table, the memory Python kept
from earlier phases — is included), and its growth over the RSS at the
phase's start (what the phase itself added).

A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent))
import orders as orders_bench  # noqa: E402  (benchmarks/orders.py)
from settlement import Databases, peak_resident_bytes  # noqa: E402

from feecenter.accounts.permissions import SYSTEM  # noqa: E402
from feecenter.auth.service import configure_master_key  # noqa: E402
from feecenter.clock import FixedClock, business_date, from_db_time  # noqa: E402
from feecenter.db.engine import dispose, make_engine, transaction  # noqa: E402
from feecenter.ledger.reconcile import reconcile  # noqa: E402
from feecenter.orders import service as orders  # noqa: E402
from feecenter.renewal import auto, lifecycle, rules, settings  # noqa: E402
from feecenter.resources import service as resources  # noqa: E402
from feecenter.resources.tables import resources as resources_table  # noqa: E402

BULK = 5000  # resources created per setup transaction
COPIED = ("uin", "product_code", "region", "project_id", "pay_mode", "spec_item", "quantity",
          "period_start", "period_end")  # a bulk resource copies its account's purchased one
_R = resources_table.c
BY_ACCOUNT = {"ledger_accounts"}  # changed rows written at each commit of their account


# ------------------------------------------------------------------ setup

def build_world(engine, n: int, accounts_count: int, log) -> dict:
    """Funded accounts with one real purchase each, the rest of N resources copied
    from it in bulk, auto-renewal on for 9 accounts in 10. Returns the expiry and the accounts."""
    clock = FixedClock(orders_bench.START)
    log(f"  {accounts_count} accounts, one real purchase each…")
    placed = orders_bench._prepare(engine, clock, accounts_count, accounts_count)
    for uin, order_id in placed:
        with transaction(engine) as conn:
            orders.pay(conn, clock, SYSTEM, uin, [order_id], key=f"buy-{order_id}")
    with engine.connect() as conn:
        bought = [dict(r) for r in conn.execute(sa.select(*(_R[c] for c in COPIED))
                                                .order_by(_R.uin)).mappings()]
    log(f"  {n - len(bought)} more resources in bulk…")
    for first in range(0, n - len(bought), BULK):
        with engine.begin() as conn:
            for i in range(first, min(first + BULK, n - len(bought))):
                made = {**bought[i % len(bought)]}
                for key in ("period_start", "period_end"):
                    made[key] = from_db_time(made[key])
                resources.create_resource(conn, clock, **made)
    with engine.begin() as conn:
        for i, row in enumerate(bought):
            settings.set_account_default(conn, clock, orders_bench.OPS, row["uin"], i % 10 != 0)
        conn.exec_driver_sql("ANALYZE")
        ends = conn.execute(sa.select(_R.period_end).distinct()).scalars().all()
    assert len(ends) == 1, ends
    return {"expiry": from_db_time(ends[0]), "uins": [r["uin"] for r in bought]}


# ------------------------------------------------------------------ what ours wrote

@dataclass
class Table:
    name: str
    columns: list[str]
    key: list[str]


@dataclass
class Writes:
    """Rows a phase added (final values) and rows it changed (final values), by table."""
    added: dict[str, list[tuple]] = field(default_factory=dict)
    changed: dict[str, list[tuple]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(map(len, self.added.values())) + sum(map(len, self.changed.values()))


def schema(engine) -> list[Table]:
    """The tables in foreign-key order (referenced first), with their primary keys."""
    reflected = sa.MetaData()
    reflected.reflect(engine)
    tables = [Table(t.name, [c.name for c in t.columns], [c.name for c in t.primary_key.columns])
              for t in reflected.sorted_tables if t.name != "alembic_version"]
    keyless = [t.name for t in tables if not t.key]
    assert not keyless, f"tables without a primary key: {keyless}"
    return tables


def _read(conn, table: Table):
    return conn.exec_driver_sql(f'SELECT {_names(table.columns, "")} FROM "{table.name}"'
                                f' ORDER BY {_names(table.key, "")}')


def snapshot(engine, tables: list[Table]) -> dict[str, dict[tuple, int]]:
    """table -> primary key -> hash of the row."""
    at = {t.name: [t.columns.index(c) for c in t.key] for t in tables}
    with engine.connect() as conn:
        return {t.name: {tuple(row[i] for i in at[t.name]): hash(repr(tuple(row)))
                         for row in _read(conn, t)} for t in tables}


def written(engine, tables: list[Table], before: dict) -> tuple[Writes, dict]:
    """What was written since ``before``, and the new snapshot."""
    writes, after = Writes(), {}
    with engine.connect() as conn:
        for t in tables:
            at = [t.columns.index(c) for c in t.key]
            old, now = before[t.name], {}
            for row in _read(conn, t):
                row = tuple(row)
                pk, digest = tuple(row[i] for i in at), hash(repr(row))
                now[pk] = digest
                if pk not in old:
                    writes.added.setdefault(t.name, []).append(row)
                elif old[pk] != digest:
                    writes.changed.setdefault(t.name, []).append(row)
            gone = old.keys() - now.keys()
            assert not gone, f"rows deleted from {t.name}: the raw side does not replay deletes"
            after[t.name] = now
    return writes, after


# ------------------------------------------------------------------ the raw side

def _names(columns: list[str], suffix: str, sep: str = ", ") -> str:
    return sep.join(f'"{c}"{suffix}' for c in columns)


def plan(tables: list[Table], writes: Writes, commits: int, mark: str,
         commit_uins: list[int] | None = None) -> list[list[tuple[str, list]]]:
    """The statements of each commit: every added table's rows split evenly, in
    foreign-key order, then the changed rows' UPDATEs (split evenly; those of
    ``BY_ACCOUNT`` tables at each commit of their account)."""
    out: list[list[tuple[str, list]]] = [[] for _ in range(commits)]
    for t in tables:
        rows = writes.added.get(t.name)
        if rows:
            sql = (f'INSERT INTO "{t.name}" ({_names(t.columns, "")})'
                   f' VALUES ({", ".join([mark] * len(t.columns))})')
            for i, part in enumerate(orders_bench._split(rows, commits)):
                if part:
                    out[i].append((sql, part))
    for t in tables:
        rows = writes.changed.get(t.name)
        if not rows:
            continue
        rest = [c for c in t.columns if c not in t.key]
        sql = (f'UPDATE "{t.name}" SET {_names(rest, f" = {mark}")}'
               f' WHERE {_names(t.key, f" = {mark}", " AND ")}')
        params = [(*(r[t.columns.index(c)] for c in rest), *(r[t.columns.index(c)] for c in t.key))
                  for r in rows]
        if t.name in BY_ACCOUNT and commit_uins:
            uin_at, mine = t.columns.index("uin"), defaultdict(list)
            for row, p in zip(rows, params):
                mine[row[uin_at]].append(p)
            known = set(commit_uins)
            everywhere = [p for u, ps in mine.items() if u not in known for p in ps]
            groups = [mine.get(u, []) + everywhere for u in commit_uins]
        else:
            groups = orders_bench._split(params, commits)
        for i, part in enumerate(groups):
            if part:
                out[i].append((sql, part))
    return out


class PlanWriter(orders_bench.RawWriter):
    """benchmarks/orders.py's raw connection (the project's settings, foreign keys
    on), writing a plan: one transaction per commit, one pipeline on PostgreSQL."""

    def run(self, commits: list[list[tuple[str, list]]]) -> float:
        began = time.perf_counter()
        for statements in commits:
            cur = self.db.cursor()
            if self.backend == "sqlite":
                cur.execute("BEGIN IMMEDIATE")
                for sql, rows in statements:
                    cur.executemany(sql, rows)
                cur.execute("COMMIT")
            else:
                with self.db.pipeline():
                    cur.execute("BEGIN")
                    for sql, rows in statements:
                        cur.executemany(sql, rows)
                    cur.execute("COMMIT")
        return time.perf_counter() - began


# ------------------------------------------------------------------ the run

def reset_peak_rss() -> None:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    except OSError:
        pass


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def timed(work) -> tuple[object, float, tuple[int, int]]:
    """``work``'s result, seconds, and (peak resident bytes, growth over the start)."""
    reset_peak_rss()
    start = resident_bytes()
    began = time.perf_counter()
    result = work()
    seconds, peak = time.perf_counter() - began, peak_resident_bytes()
    return result, seconds, (peak, peak - start)


def figure(phase: str, count: int, commits: int, ours_s: float, raw_s: float,
           rss: tuple[int, int], writes: Writes) -> dict:
    return {"phase": phase, "resources": count, "commits": commits,
            "rows_written_per_resource": round(writes.count() / count, 1),
            "ours_s": round(ours_s, 2), "raw_s": round(raw_s, 2),
            "ours_per_s": round(count / ours_s, 1), "raw_per_s": round(count / raw_s, 1),
            "ratio": round(raw_s / ours_s, 3), "target": None,
            "peak_rss_mib": round(rss[0] / 2**20), "rss_growth_mib": round(rss[1] / 2**20),
            "rows": {**{f"+{t}": len(r) for t, r in writes.added.items()},
                     **{f"~{t}": len(r) for t, r in writes.changed.items()}}}


def run_backend(backend: str, n: int, accounts_count: int, pg_url: str, log) -> dict:
    dbs = Databases(backend, pg_url, None)
    try:
        log(f"[{backend}] setup: {n} resources expiring on one day…")
        began = time.perf_counter()
        world = build_world(dbs.engine, n, min(accounts_count, n), log)
        setup_s = time.perf_counter() - began
        tables = schema(dbs.engine)
        before = snapshot(dbs.engine, tables)
        dispose(dbs.engine)  # the thread's held connection too: SQLite checkpoints its WAL
        dbs.copy_for_raw()
        ours = make_engine(dbs.ours_url)
        raw = PlanWriter(backend, dbs.raw_url, {})
        expiry, day = world["expiry"], business_date(world["expiry"])

        log(f"[{backend}] renewals: renew_due({day})…")
        run_at = rules.start_of_day(day) + timedelta(hours=1)
        counts, ours_s, rss = timed(lambda: auto.renew_due(ours, FixedClock(run_at), day))
        writes, before = written(ours, tables, before)
        renewed = sorted(writes.changed.get("resources", []))
        uin_at = tables[[t.name for t in tables].index("resources")].columns.index("uin")
        assert counts == {"renewed": len(renewed), "failed": 0, "skipped": 0}, counts
        log(f"[{backend}] raw: the same writes, {len(renewed)} commits…")
        raw_s = raw.run(plan(tables, writes, len(renewed), raw.mark,
                             [row[uin_at] for row in renewed]))
        results = [figure("renewals", len(renewed), len(renewed), ours_s, raw_s, rss, writes)]
        del writes, renewed  # the read-back is the benchmark's, not the stops' memory
        gc.collect()

        until = expiry.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        log(f"[{backend}] stops: stop_due({until:%Y-%m-%d %H:%M} UTC)…")
        stopped, ours_s, rss = timed(lambda: lifecycle.stop_due(ours, FixedClock(until), until))
        writes, before = written(ours, tables, before)
        renewing = results[0]["resources"]
        assert stopped == len(writes.changed.get("resources", [])) == n - renewing
        batches = -(-stopped // lifecycle.BATCH)
        raw_s = raw.run(plan(tables, writes, batches, raw.mark))
        results.append(figure("stops", stopped, batches, ours_s, raw_s, rss, writes))

        raw.db.close()
        with ours.connect() as conn:
            assert reconcile(conn) == [], "the benchmark left the ledger unreconciled"
            states = dict(conn.exec_driver_sql(
                "SELECT state, count(*) FROM resources GROUP BY state").all())
        assert states == {"running": renewing, "stopped": stopped}, states
        dispose(ours)
    finally:
        dbs.close()
    return {"backend": backend, "n": n, "accounts": min(accounts_count, n),
            "expiry": expiry.isoformat(), "setup_s": round(setup_s, 1), "phases": results,
            "load_average": round(os.getloadavg()[0], 2)}


# ------------------------------------------------------------------ output

def print_tables(console, results: list[dict]) -> None:
    from rich.table import Table as Grid

    grid = Grid(title="Renewal — the day's renewals and stops",
                caption="ratio = ours / raw (resources per second); no target is set (issue "
                        "#23). Peak RSS: the process during ours's phase (what the benchmark "
                        "holds included); growth: above the RSS at the phase's start.")
    for name, justify in (("backend", "left"), ("phase", "left"), ("resources", "right"),
                          ("commits", "right"), ("rows\nper res.", "right"),
                          ("ours\nres./s", "right"), ("raw\nres./s", "right"),
                          ("ratio", "right"), ("target", "center"), ("ours s", "right"),
                          ("raw s", "right"), ("peak RSS\n(+growth) MiB", "right"), ("load", "right")):
        grid.add_column(name, justify=justify, no_wrap=True)
    for r in results:
        for f in r["phases"]:
            grid.add_row(r["backend"], f["phase"], f"{f['resources']:,}", f"{f['commits']:,}",
                         f"{f['rows_written_per_resource']}", f"{f['ours_per_s']:,.0f}",
                         f"{f['raw_per_s']:,.0f}", f"{f['ratio']:.0%}", "no target",
                         f"{f['ours_s']:,.1f}", f"{f['raw_s']:,.1f}", f"{f['peak_rss_mib']} (+{f['rss_growth_mib']})",
                         f"{r['load_average']}")
    console.print(grid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=100_000,
                        help="resources expiring on the day (default 100000)")
    parser.add_argument("--accounts", type=int, default=1000,
                        help="accounts owning them (default 1000)")
    parser.add_argument("--pg-url", default=orders_bench.DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    if args.n < 10 or args.accounts < 10:
        parser.error("--n and --accounts must be at least 10")
    from cryptography.fernet import Fernet
    from rich.console import Console

    configure_master_key(Fernet.generate_key().decode())
    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 150)
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results = [run_backend(b, args.n, args.accounts, args.pg_url, console.log) for b in backends]
    if args.json:
        print(json.dumps(results))
    else:
        print_tables(console, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
