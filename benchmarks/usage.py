#!/usr/bin/env python
"""Usage-intake benchmark: metering records per second imported from a file on
disk, beside the raw ceiling of writing the same rows in the same run.

    .venv/bin/python benchmarks/usage.py [--backend sqlite|postgresql|all] [--n N]
        [--format csv|jsonl|all] [--rounds R] [--profile] [--json]

Ours: ``usage.service.ingest_file`` on a generated file of N records (100
postpaid resources, one record per resource-hour): reading the file, parsing,
per-record validation (resource, owner, billing item, times, quantity),
deduplication by event ID and the write, in chunks of ``usage.service.CHUNK``
records per commit, into a freshly migrated database.

Raw ceiling: the very rows ours stored, read back and written into a second
fresh database of the same schema with the plain DB-API driver, the same
number of rows per commit: binary ``COPY … FROM STDIN`` on PostgreSQL
(psycopg's ``write_row``), ``executemany`` of a plain INSERT on SQLite. The project's
settings on both sides (SQLite ``db.engine.SQLITE_PRAGMAS``: WAL,
``synchronous=FULL``, 16 MiB page cache; PostgreSQL ``synchronous_commit=on``).

Each of ``--rounds`` rounds (default 3) makes fresh databases and runs ours
then raw; the best round of each side is shown (the one least disturbed by
other work on the machine), the median beside it, and the CPU time per
record of ours and of raw: the client process and (PostgreSQL on this
machine, from /proc) the server backends. Target (issue #4): ours ≥ 100,000
records a second, absolute; the ratio ours / raw is printed beside it.
``--profile`` runs ours under cProfile in the first round and prints where
its time goes. A documented command, not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.auth.service import configure_master_key
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock, business_time_text
from feecenter.db.engine import SQLITE_PRAGMAS, dispose, make_engine
from feecenter.db.migrate import upgrade
from feecenter.resources import postpaid
from feecenter.usage import service as usage
from feecenter.usage.store import COLUMNS

TARGET_PER_S = 100_000
RESOURCES = 100
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
OPS = operator("bench")
DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def fresh_databases(backend: str, workdir: Path, pg_url: str):
    """Two fresh migrated databases (ours, raw): their URLs and a cleanup function."""
    if backend == "sqlite":
        urls = [f"sqlite:///{workdir / name}.db" for name in ("ours", "raw")]
        cleanup = lambda: None  # noqa: E731 - the temporary directory goes anyway
    else:
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        names = [f"fc_bench_usage_{side}_{uuid.uuid4().hex[:6]}" for side in ("ours", "raw")]
        with admin.connect() as conn:
            for name in names:
                conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        base = sa.engine.make_url(pg_url)
        urls = [base.set(database=n).render_as_string(hide_password=False) for n in names]

        def cleanup():
            with admin.connect() as conn:
                for name in names:
                    conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
    for url in urls:
        engine = make_engine(url)
        upgrade(engine)
        dispose(engine)
    return urls, cleanup


def setup(engine, clock) -> list[tuple[int, str]]:
    """The sample catalog, one account and its postpaid resources: (uin, resource id)."""
    with engine.begin() as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
        uin = accounts.create_account(conn, clock, OPS, accounts.NewAccount(name="metered"))
        from feecenter.funds import service as funds

        funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=10**10, reason="bench",
                     key="fund")
        return [(uin, postpaid.open_postpaid(conn, clock, SYSTEM, uin, product="cvm",
                                             region="ap-guangzhou", spec_item="S5.MEDIUM4"))
                for _ in range(RESOURCES)]


def write_file(path: Path, resources, n: int, fmt: str) -> None:
    """N records, one per resource-hour, in time order (as metering sends them)."""
    with open(path, "w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            out.write("event_id,uin,resource_id,billing_item,quantity,usage_start,usage_end\n")
        for i in range(n):
            uin, resource_id = resources[i % len(resources)]
            hour = START + timedelta(hours=i // len(resources))
            record = {"event_id": f"ev-{i:09d}", "uin": uin, "resource_id": resource_id,
                      "billing_item": "S5.MEDIUM4", "quantity": "1",
                      "usage_start": business_time_text(hour),
                      "usage_end": business_time_text(hour + timedelta(hours=1))}
            out.write(json.dumps(record) + "\n" if fmt == "jsonl"
                      else ",".join(str(v) for v in record.values()) + "\n")


class CpuMeter:
    """CPU seconds spent by this process and, on a local PostgreSQL, by the server
    backends of one database (from /proc)."""

    def __init__(self, engine):
        self.engine = engine

    def read(self) -> tuple[float, float]:
        return time.process_time(), self._server()

    def _server(self) -> float:
        if self.engine.dialect.name != "postgresql":
            return 0.0
        with self.engine.connect() as conn:
            pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = "
                                        "current_database()")).scalars().all()
        return sum(_proc_cpu(pid) for pid in pids)


def _proc_cpu(pid: int) -> float:
    """CPU seconds of a process on this machine (0 if it is not here)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:  # not on this machine, or just gone
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ours(url: str, path: Path, n: int, fmt: str, profile: bool
         ) -> tuple[float, tuple[float, float], list[tuple]]:
    """Import the file: (seconds, CPU seconds (client, server), the stored rows in
    COLUMNS order with times as UTC text)."""
    engine = make_engine(url)
    clock = FixedClock(START - timedelta(hours=1))
    resources = setup(engine, clock)
    write_file(path, resources, n, fmt)
    clock.set(START + timedelta(days=400))
    meter = CpuMeter(engine)
    profiler = cProfile.Profile() if profile else None
    cpu_before = meter.read()
    began = time.perf_counter()
    if profiler:
        profiler.enable()
    result = usage.ingest_file(engine, clock, OPS, path, fmt)
    if profiler:
        profiler.disable()
    seconds = time.perf_counter() - began
    cpu = tuple(after - before for after, before in zip(meter.read(), cpu_before))
    assert (result.accepted, result.rejected) == (n, 0), result.to_dict()
    if profiler:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(18)
    with engine.connect() as conn:
        stored = conn.execute(sa.text(f"SELECT {', '.join(COLUMNS)} FROM usage_records "
                                      "ORDER BY event_id")).all()
    dispose(engine)
    # as the driver takes them: SQLite's stored text; PostgreSQL's datetimes (binary COPY)
    return seconds, cpu, [tuple(row) for row in stored]


def raw(url: str, rows: list[tuple]) -> tuple[float, tuple[float, float]]:
    """The same rows with the plain driver, usage.service.CHUNK per commit: (seconds,
    CPU seconds (client, server))."""
    columns = ", ".join(COLUMNS)
    if url.startswith("sqlite"):
        db = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:  # the project's own settings
            db.execute(f"PRAGMA {pragma}")
        insert = f"INSERT INTO usage_records ({columns}) VALUES ({', '.join('?' * len(COLUMNS))})"
        server = lambda: 0.0  # noqa: E731 - SQLite works in this process

        def write(part):
            db.execute("BEGIN IMMEDIATE")
            db.executemany(insert, part)
            db.execute("COMMIT")
    else:
        import psycopg

        db = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                             .render_as_string(hide_password=False))
        db.execute("SET synchronous_commit = on")
        db.commit()
        server = lambda: _proc_cpu(db.info.backend_pid)  # noqa: E731

        def write(part):
            with db.cursor() as cur, cur.copy(f"COPY usage_records ({columns}) FROM STDIN "
                                              "(FORMAT BINARY)") as cp:
                # COLUMNS' types: ..., usage_end, revision, received_at, stopped_quantity
                cp.set_types(["text", "int8", "text", "text", "int8", "timestamp", "timestamp",
                              "int4", "timestamp", "int8"])
                for row in part:
                    cp.write_row(row)
            db.commit()
    cpu_before = (time.process_time(), server())
    began = time.perf_counter()
    for start in range(0, len(rows), usage.CHUNK):
        write(rows[start:start + usage.CHUNK])
    seconds = time.perf_counter() - began
    cpu = (time.process_time() - cpu_before[0], server() - cpu_before[1])
    db.close()
    return seconds, cpu


def one_round(backend: str, n: int, fmt: str, pg_url: str, profile: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="fc-bench-usage-") as workdir:
        (ours_url, raw_url), cleanup = fresh_databases(backend, Path(workdir), pg_url)
        try:
            path = Path(workdir) / f"usage.{fmt}"
            ours_s, cpu, rows = ours(ours_url, path, n, fmt, profile)
            raw_s, raw_cpu = raw(raw_url, rows)
            return {"ours_s": ours_s, "raw_s": raw_s, "cpu": cpu, "raw_cpu": raw_cpu,
                    "bytes": path.stat().st_size}
        finally:
            cleanup()


def run(backend: str, n: int, fmt: str, pg_url: str, rounds: int, profile: bool, log) -> dict:
    """``rounds`` rounds of (ours, raw), each on fresh databases; the best of each side
    (the run least disturbed by other work on the machine) and the median."""
    results = []
    for number in range(1, rounds + 1):
        log(f"[{backend} {fmt}] round {number}/{rounds}: ours from usage.{fmt}, then raw…")
        results.append(one_round(backend, n, fmt, pg_url, profile and number == 1))
    best = min(results, key=lambda r: r["ours_s"])
    raw_round = min(results, key=lambda r: r["raw_s"])
    ours_best, raw_best = best["ours_s"], raw_round["raw_s"]
    return {"backend": backend, "records": n, "format": fmt, "chunk": usage.CHUNK,
            "rounds": rounds, "file_bytes": best["bytes"],
            "ours_per_s": round(n / ours_best), "raw_per_s": round(n / raw_best),
            "ours_median_per_s": round(n / statistics.median(r["ours_s"] for r in results)),
            "raw_median_per_s": round(n / statistics.median(r["raw_s"] for r in results)),
            "raw_method": "executemany" if backend == "sqlite" else "COPY",
            "ratio": round(raw_best / ours_best, 3),
            "cpu_us_per_record": {side: round(seconds / n * 1e6, 2)
                                  for side, seconds in zip(("client", "server"), best["cpu"])},
            "raw_cpu_us_per_record": {side: round(seconds / n * 1e6, 2) for side, seconds
                                      in zip(("client", "server"), raw_round["raw_cpu"])},
            "target_per_s": TARGET_PER_S, "met": n / ours_best >= TARGET_PER_S}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--format", choices=["csv", "jsonl", "all"], default="all")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of (ours, raw) on fresh databases; the best of each is shown")
    parser.add_argument("--profile", action="store_true", help="cProfile ours (to stderr)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    configure_master_key(Fernet.generate_key().decode())
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    formats = ["csv", "jsonl"] if args.format == "all" else [args.format]
    results = [run(b, args.n, f, args.pg_url, args.rounds, args.profile,
                   lambda m: print(m, file=sys.stderr))
               for b in backends for f in formats]
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"best of {args.rounds} rounds (median in brackets); load average at the end "
          f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"{'backend':<11}{'records':>8}{'format':>7}{'ours/s':>18}{'raw/s':>18}"
          f"{'raw by':>12}{'ratio':>6}{'target/s':>9}  met  CPU µs/record client+server: ours | raw")
    for r in results:
        cpu, raw_cpu = r["cpu_us_per_record"], r["raw_cpu_us_per_record"]
        print(f"{r['backend']:<11}{r['records']:>8}{r['format']:>7}"
              f"{r['ours_per_s']:>9} ({r['ours_median_per_s']:>6})"
              f"{r['raw_per_s']:>9} ({r['raw_median_per_s']:>6}){r['raw_method']:>12}"
              f"{r['ratio']:>6.0%}{r['target_per_s']:>9}  {'yes' if r['met'] else 'NO ':<4} "
              f"{cpu['client']:.1f}+{cpu['server']:.1f} | "
              f"{raw_cpu['client']:.1f}+{raw_cpu['server']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
