#!/usr/bin/env python
"""Usage-intake benchmark: metering records per second imported from a file,
beside the raw ceiling of inserting the same rows in the same run.

    /work/venv/bin/python benchmarks/usage.py [--backend sqlite|postgresql|all] [--n N] [--format jsonl|csv]

Ours: ``usage.service.ingest`` on the file's text — parsing, per-record
validation (resource, owner, billing item, times, quantity), deduplication
against stored event IDs, and the insert, in chunks of 5,000 per commit.
Raw: the same rows (as ours stored them) inserted with the DB-API driver's
executemany into a second fresh database, 5,000 per commit. Target (issue #4):
≥ 100,000 records a second from a file. A documented command, not a test.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).parent))
from orders import DEFAULT_PG_URL, OPS, START, _fresh_databases  # noqa: E402

from feecenter.accounts import service as accounts  # noqa: E402
from feecenter.accounts.permissions import SYSTEM  # noqa: E402
from feecenter.auth.service import configure_master_key  # noqa: E402
from feecenter.catalog import service as catalog  # noqa: E402
from feecenter.clock import FixedClock, business_time_text  # noqa: E402
from feecenter.db.engine import make_engine  # noqa: E402
from feecenter.db.migrate import upgrade  # noqa: E402
from feecenter.funds import service as funds  # noqa: E402
from feecenter.resources import postpaid  # noqa: E402
from feecenter.usage import service as usage  # noqa: E402

TARGET_PER_S = 100_000
CHUNK = usage.CHUNK


def _setup(engine, clock, resources_count: int) -> list[tuple[int, str]]:
    with engine.begin() as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
        uin = accounts.create_account(conn, clock, OPS, accounts.NewAccount(name="metered"))
        funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=10**10, reason="bench",
                     key="fund")
        return [(uin, postpaid.open_postpaid(conn, clock, SYSTEM, uin, product="cvm",
                                             region="ap-guangzhou", spec_item="S5.MEDIUM4"))
                for _ in range(resources_count)]


def _file(resources, n: int, fmt: str) -> str:
    records = []
    for i in range(n):
        uin, resource_id = resources[i % len(resources)]
        hour = START + timedelta(hours=i // len(resources))
        records.append({"event_id": f"ev-{i:09d}", "uin": uin, "resource_id": resource_id,
                        "billing_item": "S5.MEDIUM4", "quantity": "1",
                        "usage_start": business_time_text(hour),
                        "usage_end": business_time_text(hour + timedelta(hours=1))})
    if fmt == "jsonl":
        return "\n".join(json.dumps(r) for r in records)
    header = list(records[0])
    return "\n".join([",".join(header)] + [",".join(str(r[k]) for k in header) for r in records])


def _raw(backend: str, url: str, columns: list[str], rows: list[tuple]) -> float:
    if backend == "sqlite":
        db = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        mark = "?"
    else:
        import psycopg

        db = psycopg.connect(sa.engine.make_url(url).set(drivername="postgresql")
                             .render_as_string(hide_password=False), autocommit=True)
        db.execute("SET synchronous_commit = on")
        mark = "%s"
    statement = (f"INSERT INTO usage_records ({', '.join(columns)}) "
                 f"VALUES ({', '.join([mark] * len(columns))})")
    began = time.perf_counter()
    for start in range(0, len(rows), CHUNK):
        cur = db.cursor()
        cur.execute("BEGIN")
        cur.executemany(statement, rows[start:start + CHUNK])
        cur.execute("COMMIT")
    elapsed = time.perf_counter() - began
    db.close()
    return elapsed


def run_backend(backend: str, n: int, fmt: str, pg_url: str, log) -> dict:
    with tempfile.TemporaryDirectory(prefix="fc-bench-usage-") as workdir:
        (ours_url, raw_url), cleanup = _fresh_databases(backend, Path(workdir), pg_url)
        try:
            ours, raw = make_engine(ours_url), make_engine(raw_url)
            upgrade(ours)
            upgrade(raw)
            raw.dispose()
            clock = FixedClock(START - timedelta(hours=1))
            resources = _setup(ours, clock, 100)
            text = _file(resources, n, fmt)
            path = Path(workdir) / f"usage.{fmt}"
            path.write_text(text)
            clock.set(START + timedelta(days=400))
            log(f"[{backend}] importing {n} records from {path.name}…")
            began = time.perf_counter()
            result = usage.ingest(ours, clock, OPS, path.read_text(), fmt)
            ours_s = time.perf_counter() - began
            assert (result.accepted, result.rejected) == (n, 0), result.to_dict()
            with ours.connect() as conn:
                stored = conn.execute(sa.text("SELECT * FROM usage_records ORDER BY id"))
                columns = [c for c in stored.keys() if c != "id"]
                rows = [tuple(r)[1:] for r in stored]
            ours.dispose()
            log(f"[{backend}] raw ceiling…")
            raw_s = _raw(backend, raw_url, columns, rows)
        finally:
            cleanup()
    return {"backend": backend, "records": n, "format": fmt, "ours_per_s": round(n / ours_s),
            "raw_per_s": round(n / raw_s), "ratio": round(raw_s / ours_s, 3),
            "target_per_s": TARGET_PER_S, "met": n / ours_s >= TARGET_PER_S}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--format", choices=["jsonl", "csv"], default="csv")
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from cryptography.fernet import Fernet

    configure_master_key(Fernet.generate_key().decode())
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results = [run_backend(b, args.n, args.format, args.pg_url,
                           lambda m: print(m, file=sys.stderr)) for b in backends]
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'backend':<11}{'records':>9}{'format':>7}{'ours/s':>10}{'raw/s':>10}{'ratio':>7}"
              f"{'target/s':>10}  met")
        for r in results:
            print(f"{r['backend']:<11}{r['records']:>9}{r['format']:>7}{r['ours_per_s']:>10}"
                  f"{r['raw_per_s']:>10}{r['ratio']:>7.0%}{r['target_per_s']:>10}  "
                  f"{'yes' if r['met'] else 'NO'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
