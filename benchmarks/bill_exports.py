#!/usr/bin/env python
"""Bill export benchmark (BIL-7, bills/exports.py): one account-month of N L3 lines
exported as CSV and XLSX, time and peak memory, beside the raw ceiling of the same
rows measured in the same run.

    .venv/bin/python benchmarks/bill_exports.py [--backend sqlite|postgresql|all]
        [--sizes 100000,1000000] [--formats csv,xlsx] [--sides ours,python,raw]
        [--pg-url URL] [--json]

Setup (not timed), per backend and size, on a fresh migrated database: N postpaid
``bill_lines`` rows of one account, bulk-inserted directly (10,000 a statement),
deducted evenly over March 2026 (business time), every tenth at a contract price;
then ``ANALYZE``.

Each measurement runs in a fresh subprocess, so its peak resident set (``VmHWM``,
which starts afresh at exec) is its own:

- ours: ``exports.request_export`` + ``exports.process_export`` of level
  ``lines``, the export as it runs — the lines formatted as text by the database
  (``bills.line_text``: yuan strings, 8-decimal costs, "-" for contract lines,
  business times) and written (CSV on PostgreSQL: the server's COPY; CSV on
  SQLite: the stdlib writer over the text rows; XLSX: XlsxWriter in
  constant_memory mode), with the progress updates;
- python (optional): the same lines formatted in Python — ``exports.line_row``
  of each line of ``bills.service.iter_month_lines`` into ``write_csv`` /
  ``write_xlsx`` (the export's path before ``bills.line_text``; the reference
  the tests compare the database's text with);
- raw: the plain driver (sqlite3 / psycopg, a server-side cursor on PostgreSQL)
  selecting the same rows in the same order, written unformatted by
  ``csv.writer`` (CSV) or XlsxWriter constant_memory ``write_row`` (XLSX).

Printed per (backend, format, size): seconds for each side, side / raw, peak
RSS of each (and a side's growth over its RSS after imports), against the targets:
CSV 1M lines ≤ 10 s, XLSX 1M ≤ 90 s, peak < 200 MiB, flat between sizes (ours's
growth at the largest size at most 32 MiB above the smallest's).

A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
MONTH = "2026-03"
UIN = 100_000_001
CHUNK = 10_000
TARGET_SECONDS = {"csv": 10.0, "xlsx": 90.0}  # at 1,000,000 lines
TARGET_PEAK = 200 * 2**20
FLAT_SLACK = 32 * 2**20
MIB = 2**20
SIDES = ("ours", "python", "raw")  # raw last: the ceiling the others are compared with


# ---------------------------------------------------------------- setup

def _database(backend: str, pg_url: str, tmp: str) -> tuple[str, callable]:
    """A fresh database URL and a function that drops it."""
    if backend == "sqlite":
        path = Path(tmp) / f"bench-{uuid.uuid4().hex[:6]}.db"
        return f"sqlite:///{path}", lambda: [p.unlink(missing_ok=True) for p in
                                             Path(tmp).glob(path.name + "*")]
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"fc_bench_exports_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return url, drop


def _lines(n: int):
    from feecenter.clock import BUSINESS_TZ, db_time

    start = db_time(datetime(2026, 3, 1, tzinfo=BUSINESS_TZ))
    span = int((db_time(datetime(2026, 4, 1, tzinfo=BUSINESS_TZ)) - start).total_seconds())
    for i in range(n):
        deducted = start + timedelta(seconds=60 + i * (span - 120) // n)
        contract = i % 10 == 0
        discounted = 1_234_567 + i % 1000
        deducted_fen = (discounted + 500_000) // 1_000_000
        yield {"uin": UIN, "resource_id": f"ins-{i:08d}", "resource_name": None,
               "product_code": "cvm", "region": "ap-guangzhou", "billing_item": "traffic",
               "project_id": 0, "project_name": "默认项目", "cycle": "hour",
               "period_key": f"{i}", "period_start": deducted - timedelta(hours=1),
               "period_end": deducted, "quantity": 3_000_000, "package_quantity": 0,
               "price_kind": "contract" if contract else "list", "unit_price": 41_152_223,
               "list_amount": discounted, "discount_bp": 10000,
               "discounted_amount": discounted, "deducted": deducted_fen,
               "rounding_diff": deducted_fen * 1_000_000 - discounted, "voucher_paid": 0,
               "cash_paid": deducted_fen, "gift_paid": 0, "credit_paid": 0, "arrears": 0,
               "txn_id": None, "deducted_at": deducted, "kind": "charge", "sequence": 0,
               "adjusts_line_id": None, "reason": None, "stopped_quantity": 0}


def setup(url: str, n: int) -> float:
    from feecenter.db.engine import make_engine
    from feecenter.db.migrate import upgrade
    from feecenter.settlement.tables import bill_lines

    engine = make_engine(url)
    upgrade(engine)
    began = time.perf_counter()
    batch = []
    for row in _lines(n):
        batch.append(row)
        if len(batch) == CHUNK:
            with engine.begin() as conn:
                conn.execute(sa.insert(bill_lines), batch)
            batch = []
    if batch:
        with engine.begin() as conn:
            conn.execute(sa.insert(bill_lines), batch)
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return time.perf_counter() - began


# ---------------------------------------------------------------- the measured sides (children)

def peak_resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def child_ours(url: str, fmt: str, out_dir: str) -> dict:
    from cryptography.fernet import Fernet

    from feecenter.accounts.permissions import SYSTEM
    from feecenter.bills import exports
    from feecenter.clock import BUSINESS_TZ, FixedClock
    from feecenter.config import Settings
    from feecenter.db.engine import make_engine, transaction

    settings = exports.export_settings(Settings(home=Path(out_dir), database_url=url,
                                                master_key=Fernet.generate_key().decode(),
                                                export_dir=Path(out_dir)))
    engine = make_engine(url)
    clock = FixedClock(datetime(2026, 4, 2, 9, tzinfo=BUSINESS_TZ))
    rss_start = current_resident_bytes()
    began = time.perf_counter()
    with transaction(engine) as conn:
        row = exports.request_export(conn, clock, SYSTEM, UIN, MONTH, "lines", fmt)
    state = exports.process_export(engine, clock, row["id"], settings)
    seconds = time.perf_counter() - began
    with engine.connect() as conn:
        done = exports.get_export(conn, SYSTEM, UIN, row["id"])
    if state != "done":
        raise SystemExit(f"export {state}: {done['error']}")
    (settings.directory / done["file_name"]).unlink()
    return {"seconds": seconds, "peak": peak_resident_bytes(), "rss_start": rss_start,
            "lines": done["lines_written"], "bytes": done["size_bytes"]}


def child_python(url: str, fmt: str, out_dir: str) -> dict:
    """The lines formatted in Python: ``exports.line_row`` of each line of
    ``bills.service.iter_month_lines`` (streamed) into ``write_csv`` / ``write_xlsx``
    — the export's path before ``bills.line_text``, without the progress updates."""
    from feecenter.accounts.permissions import SYSTEM
    from feecenter.bills import exports, service
    from feecenter.db.engine import make_engine

    engine = make_engine(url)
    path = Path(out_dir) / f"python.{fmt}"
    rss_start = current_resident_bytes()
    began = time.perf_counter()

    def lines(conn):
        for line in service.iter_month_lines(conn, SYSTEM, UIN, MONTH):
            yield exports.line_row(line)

    with engine.connect() as conn:
        header = list(exports.LINE_COLUMNS)
        written = (exports.write_xlsx(path, header, lines(conn), sheet=MONTH) if fmt == "xlsx"
                   else exports.write_csv(path, header, lines(conn)))
    seconds = time.perf_counter() - began
    size = path.stat().st_size
    path.unlink()
    return {"seconds": seconds, "peak": peak_resident_bytes(), "rss_start": rss_start,
            "lines": written, "bytes": size}


def child_raw(url: str, fmt: str, out_dir: str) -> dict:
    import csv

    from feecenter.clock import BUSINESS_TZ, db_time

    start = db_time(datetime(2026, 3, 1, tzinfo=BUSINESS_TZ))
    end = db_time(datetime(2026, 4, 1, tzinfo=BUSINESS_TZ))
    query = ("SELECT * FROM bill_lines WHERE uin = {p} AND deducted_at >= {p} "
             "AND deducted_at < {p} ORDER BY deducted_at, id")
    rss_start = current_resident_bytes()
    began = time.perf_counter()
    if url.startswith("sqlite"):
        import sqlite3
        db = sqlite3.connect(sa.engine.make_url(url).database)
        cursor = db.execute(query.format(p="?"), (UIN, start.isoformat(" "), end.isoformat(" ")))
    else:
        import psycopg
        raw_url = sa.engine.make_url(url).set(drivername="postgresql")
        db = psycopg.connect(raw_url.render_as_string(hide_password=False))
        cursor = db.cursor(name="export")  # server-side: streamed
        cursor.itersize = 2000
        cursor.execute(query.format(p="%s"), (UIN, start, end))
    path = Path(out_dir) / f"raw.{fmt}"
    lines = 0
    if fmt == "csv":
        with open(path, "w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            for row in cursor:
                writer.writerow(row)
                lines += 1
    else:
        import xlsxwriter
        book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
        sheet = book.add_worksheet()
        for row in cursor:
            sheet.write_row(lines, 0, [v if isinstance(v, (int, str)) or v is None else str(v)
                                       for v in row])
            lines += 1
        book.close()
    seconds = time.perf_counter() - began
    size = path.stat().st_size
    path.unlink()
    db.close()
    return {"seconds": seconds, "peak": peak_resident_bytes(), "rss_start": rss_start,
            "lines": lines, "bytes": size}


def measure(side: str, url: str, fmt: str, out_dir: str) -> dict:
    answer = subprocess.run([sys.executable, __file__, "--child", side, url, fmt, out_dir],
                            capture_output=True, text=True, cwd=ROOT)
    if answer.returncode != 0:
        raise SystemExit(f"{side} {fmt} failed:\n{answer.stderr[-4000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- driver

def run(backend: str, sizes: list[int], formats: list[str], pg_url: str,
        sides: tuple[str, ...]) -> list[dict]:
    results = []
    with tempfile.TemporaryDirectory(prefix="fc-bench-exports-") as tmp:
        for n in sizes:
            url, drop = _database(backend, pg_url, tmp)
            try:
                loaded = setup(url, n)
                print(f"# {backend}: {n:,} lines loaded in {loaded:.1f} s", file=sys.stderr)
                for fmt in formats:
                    measured = {side: measure(side, url, fmt, tmp) if side in sides else None
                                for side in SIDES}
                    measured["raw"] = measured["raw"] or measure("raw", url, fmt, tmp)
                    for side, m in measured.items():
                        assert m is None or m["lines"] == n, (side, m)
                    results.append({"backend": backend, "format": fmt, "lines": n,
                                    **measured})
                    print(_line(results[-1]), file=sys.stderr)
            finally:
                drop()
    return results


def _line(r: dict) -> str:
    raw = r["raw"]
    out = [f"{r['backend']:10} {r['format']:4} {r['lines']:>9,} lines: raw "
           f"{raw['seconds']:7.2f} s, peak {raw['peak'] / MIB:6.1f} MiB"]
    for side in SIDES[:-1]:
        m = r[side]
        if m is not None:
            out.append(f"{side:6} {m['seconds']:7.2f} s ({r['lines'] / m['seconds']:8,.0f} /s, "
                       f"{m['seconds'] / raw['seconds']:5.2f}x raw), peak "
                       f"{m['peak'] / MIB:6.1f} MiB (+{(m['peak'] - m['rss_start']) / MIB:.1f}); "
                       f"file {m['bytes'] / MIB:.1f} MiB")
    return "\n    ".join(out)


def verdicts(results: list[dict]) -> list[str]:
    out = []
    for side in SIDES[:-1]:
        for r in (r for r in results if r[side] is not None):
            m, what = r[side], f"{side} {r['backend']} {r['format']} {r['lines']:,}"
            if r["lines"] == 1_000_000:
                target = TARGET_SECONDS[r["format"]]
                out.append(f"{what}: {m['seconds']:.1f} s (target ≤ {target:.0f} s): "
                           f"{'met' if m['seconds'] <= target else 'NOT met'}")
            out.append(f"{what}: peak {m['peak'] / MIB:.1f} MiB (target < 200 MiB): "
                       f"{'met' if m['peak'] < TARGET_PEAK else 'NOT met'}")
        for backend in {r["backend"] for r in results}:
            for fmt in {r["format"] for r in results}:
                runs = sorted((r for r in results if r["backend"] == backend
                               and r["format"] == fmt and r[side] is not None),
                              key=lambda r: r["lines"])
                if len(runs) > 1:
                    grow = [r[side]["peak"] - r[side]["rss_start"] for r in runs]
                    flat = grow[-1] - grow[0] <= FLAT_SLACK
                    out.append(f"{side} {backend} {fmt} flat {runs[0]['lines']:,} -> "
                               f"{runs[-1]['lines']:,}: growth {grow[0] / MIB:.1f} -> "
                               f"{grow[-1] / MIB:.1f} MiB: {'met' if flat else 'NOT met'}")
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        side, url, fmt, out_dir = sys.argv[2:6]
        sys.path.insert(0, str(ROOT / "src"))
        child = {"ours": child_ours, "python": child_python, "raw": child_raw}[side]
        print(json.dumps(child(url, fmt, out_dir)))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="sqlite")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--formats", default="csv,xlsx")
    parser.add_argument("--pg-url", default=os.environ.get(
        "FEECENTER_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--sides", default="ours,raw",
                        help="ours (the export as it runs), python (the lines formatted by "
                             "exports.line_row), raw (the plain cursor; always runs)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "all" else (args.backend,)
    sizes = [int(s) for s in args.sizes.split(",")]
    formats = args.formats.split(",")
    sides = tuple(args.sides.split(","))
    results = [r for b in backends for r in run(b, sizes, formats, args.pg_url, sides)]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        print(_line(r))
    for verdict in verdicts(results):
        print(verdict)


if __name__ == "__main__":
    main()
