#!/usr/bin/env python
"""Statement import benchmark: lines per second of a whole MT940 / camt.053 import
(parse + import + commit) against the bare parse of the same file as the ceiling,
and the peak memory of both at two file sizes.

    .venv/bin/python benchmarks/statements.py [--lines N] [--database URL ...]
                                              [--repeat R] [--rss 100000,1000000]
                                              [--formats mt940,camt.053.001.02] [--json]

The file: one statement of N lines (benchmarks/statement_files.py; every 10th a
debit, which is read and skipped), the credits a realistic mix: 85 % paid by the
verified entity of one of ``--accounts`` known accounts (credited, half of those
accounts owing arrears first: a repayment entry more), 4 % by another payer
(pending signature: the owner notified), 4 % to an unknown code (unassigned), 3 %
to a number that is not ours, 2 % with a restricted memo (held), 2 % in the same
account and payer again (credited).

Bare parse (the ceiling): ``statements.parse(path).transfers()`` read to the end,
nothing stored (the camt XSD compiled before the clock starts). End to end: in
one ``transaction(engine)``, ``remittances.import_transfers(conn, clock, operator,
parsed.transfers(), …)`` and the commit — the parser's generator streamed in
batches of ``--batch`` lines (default 2,000). "Lines" are statement lines
(transactions, debits included, as a bank counts them); the text lines of the
file are printed beside them.

Every measurement runs in a child process of its own, so peak RSS
(``ru_maxrss``) does not mix between them; each import child gets a fresh
schema with the accounts created before the clock starts. ``--database`` takes
``sqlite`` (a temporary file; the default) and/or the URL of an EMPTY database
(PostgreSQL: ``createdb bench_stmt``; the benchmark refuses a database with
tables in it, and drops and recreates the ``public`` schema between runs).
Each rate is the median of ``--repeat`` runs (default 3); the load average is
printed: the machine may be shared.

Target (issue #22): ≥ 50,000 lines/s end to end. Printed, never asserted: a
documented command, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import statement_files  # noqa: E402
import sqlalchemy as sa  # noqa: E402

TARGET = 50_000
FORMATS = ("mt940", "camt.053.001.02")
USCC = "91110108551385082Q"
PAYEE_ENTITY = "示例科技有限公司"


# ---------------------------------------------------------------- the file

def mix(codes: list[str]):
    """``party(index)`` of the realistic mix over the accounts' codes (see the doc)."""
    prefix = statement_files.RECEIVING

    def party(index: int) -> statement_files.Party:
        slot = index % 100
        n = (index * 7919) % len(codes)
        known = prefix + codes[n]
        entity = f"{PAYEE_ENTITY}{n}"
        if slot < 4:
            return statement_files.Party(known, f"其他付款公司{index % 13}", f"货款 {index}")
        if slot < 8:
            return statement_files.Party(prefix + "0000000001", entity, f"货款 {index}")
        if slot < 11:
            return statement_files.Party("6217000000" + f"{index:015d}", entity, f"货款 {index}")
        if slot < 13:
            return statement_files.Party(known, entity, f"保证金 {index}")
        return statement_files.Party(known, entity, f"充值 {index}")
    return party


def codes_for(count: int) -> list[str]:
    from feecenter.remittances import rules
    return [rules.code_from(1_000 + i) for i in range(count)]


def write(fmt: str, path: Path, lines: int, accounts: int) -> None:
    party = mix(codes_for(accounts))
    if fmt == "mt940":
        statement_files.write_mt940(path, lines, party=party)
    else:
        statement_files.write_camt053(path, lines, fmt, party=party)


def text_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


# ---------------------------------------------------------------- children

def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def child_parse(path: Path, fmt: str) -> dict:
    from feecenter.remittances import statements
    from feecenter.remittances.statements import camt_format
    if fmt != "mt940":
        camt_format.schema(fmt)
    started = time.perf_counter()
    credits = sum(1 for _ in statements.parse(path, max_bytes=1 << 40).transfers())
    return {"seconds": time.perf_counter() - started, "credits": credits, "rss_kib": _rss_kib()}


def _reset(url: str) -> str:
    """A fresh schema on ``url`` (sqlite: a new temporary file); returns the URL to use."""
    if url == "sqlite":
        folder = tempfile.mkdtemp(prefix="fc-bench-stmt-")
        return f"sqlite:///{folder}/bench.db"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    return url


def _accounts(engine, clock, count: int) -> None:
    """``count`` verified companies, the i-th with code ``codes_for(count)[i]``; every
    other one owes arrears (a credit's first repayment)."""
    from feecenter.accounts import service as accounts
    from feecenter.accounts.permissions import operator
    from feecenter.db.engine import transaction
    from feecenter.funds import service as funds
    from feecenter.clock import db_time
    from feecenter.remittances.tables import remittance_codes
    ops = operator("bench")
    codes = codes_for(count)
    with transaction(engine) as conn:
        revenue = funds.platform_account(conn, clock, "revenue")
        for i in range(count):
            uin = accounts.create_account(conn, clock, ops, accounts.NewAccount(
                name=f"bench-{i}", enterprise_name=f"{PAYEE_ENTITY}{i}", uscc=USCC))
            # the code the file pays to: written as receiving_details would allocate it
            conn.execute(sa.insert(remittance_codes).values(
                uin=uin, code=codes[i], created_at=db_time(clock.now())))
            if i % 2:
                funds.spend(conn, clock, uin, 10_00, key=f"owed:{uin}", postpaid=True,
                            revenue_account_id=revenue)


def child_import(path: Path, fmt: str, url: str, accounts_count: int, batch: int) -> dict:
    from feecenter.accounts.permissions import operator
    from feecenter.clock import FixedClock
    from feecenter.db.engine import dispose, make_engine, transaction
    from feecenter.db.migrate import upgrade
    from feecenter.ledger.reconcile import reconcile
    from feecenter.remittances import service as remittances
    from feecenter.remittances import statements
    from feecenter.remittances.statements import camt_format
    engine = make_engine(_reset(url))
    upgrade(engine)
    clock = FixedClock(datetime.now(UTC))
    settings = remittances.Settings(
        banks=(remittances.ReceivingBank(statement_files.RECEIVING, "示例银行", "示例支行"),))
    _accounts(engine, clock, accounts_count)
    if fmt != "mt940":
        camt_format.schema(fmt)
    started = time.perf_counter()
    with transaction(engine) as conn:
        parsed = statements.parse(path, max_bytes=1 << 40)
        summary = remittances.import_transfers(
            conn, clock, operator("bench"), parsed.transfers(), source=parsed.format[:40],
            digest=parsed.digest, settings=settings, batch_size=batch)
    seconds = time.perf_counter() - started
    rss = _rss_kib()
    with engine.connect() as conn:
        broken = reconcile(conn)
    dispose(engine)
    if url == "sqlite":
        shutil.rmtree(Path(engine.url.database).parent)
    return {"seconds": seconds, "rss_kib": rss, "reconciled": broken == [],
            "summary": {k: getattr(summary, k) for k in (
                "lines", "credited", "pending", "unassigned", "held", "not_ours", "duplicates")}}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- the run

def _check_empty(url: str) -> None:
    if url == "sqlite":
        return
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        tables = sa.inspect(conn).get_table_names()
    engine.dispose()
    if tables:
        sys.exit(f"{url}: not an empty database ({len(tables)} tables): give an empty one, "
                 "it is dropped and recreated between runs")


def _label(url: str) -> str:
    return "sqlite" if url == "sqlite" else sa.engine.make_url(url).get_backend_name()


def measure(args, folder: Path, log) -> dict:
    results: dict = {"lines": args.lines, "target": TARGET, "batch": args.batch,
                     "accounts": args.accounts, "rates": [], "rss": [],
                     "load_average_start": [round(x, 2) for x in os.getloadavg()]}
    for fmt in args.formats:
        path = folder / f"{fmt}.{args.lines}"
        write(fmt, path, args.lines, args.accounts)
        size = {"bytes": path.stat().st_size, "text_lines": text_lines(path)}
        parses = [run_child("parse", str(path), fmt) for _ in range(args.repeat)]
        parse_s = statistics.median(p["seconds"] for p in parses)
        log(f"{fmt}: parse {parse_s:.2f} s")
        for url in args.database:
            runs = [run_child("import", str(path), fmt, url, str(args.accounts), str(args.batch))
                    for _ in range(args.repeat)]
            import_s = statistics.median(r["seconds"] for r in runs)
            log(f"{fmt} {_label(url)}: import {[round(r['seconds'], 2) for r in runs]} s")
            results["rates"].append({
                "format": fmt, "backend": _label(url), **size,
                "credits": parses[0]["credits"], "summary": runs[0]["summary"],
                "reconciled": all(r["reconciled"] for r in runs),
                "parse_s": round(parse_s, 2), "import_s": round(import_s, 2),
                "parse_lines_per_s": round(args.lines / parse_s),
                "import_lines_per_s": round(args.lines / import_s),
                "ratio": round(parse_s / import_s, 3),
                "parse_rss_mib": round(max(p["rss_kib"] for p in parses) / 1024),
                "import_rss_mib": round(max(r["rss_kib"] for r in runs) / 1024),
                "met": args.lines / import_s >= TARGET})
        path.unlink()
    for lines in args.rss:
        for fmt in args.formats:
            path = folder / f"{fmt}.rss.{lines}"
            write(fmt, path, lines, args.accounts)
            row = {"format": fmt, "lines": lines,
                   "parse_rss_mib": round(run_child("parse", str(path), fmt)["rss_kib"] / 1024)}
            for url in args.database:
                done = run_child("import", str(path), fmt, url, str(args.accounts), str(args.batch))
                row[f"import_rss_mib_{_label(url)}"] = round(done["rss_kib"] / 1024)
                row[f"import_s_{_label(url)}"] = round(done["seconds"], 1)
            log(f"rss {row}")
            results["rss"].append(row)
            path.unlink()
    results["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def show(results: dict) -> None:
    print(f"{results['lines']:,} statement lines, batch {results['batch']:,}, "
          f"{results['accounts']} accounts; target {TARGET:,} lines/s end to end; load average "
          f"{results['load_average_start'][0]} -> {results['load_average_end'][0]}")
    print(f"{'format':<17}{'backend':<12}{'text lines':>11}{'parse/s':>9}{'import/s':>10}"
          f"{'import/parse':>13}{'RSS MiB parse/import':>22}  met")
    for r in results["rates"]:
        print(f"{r['format']:<17}{r['backend']:<12}{r['text_lines']:>11,}"
              f"{r['parse_lines_per_s']:>9,}{r['import_lines_per_s']:>10,}{r['ratio']:>13.0%}"
              f"{r['parse_rss_mib']:>15}/{r['import_rss_mib']:<6}  "
              f"{'yes' if r['met'] else 'no'}")
    for row in results["rss"]:
        print("peak RSS " + ", ".join(f"{k} {v}" for k, v in row.items()))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        kind, path, fmt, *rest = argv[1:]
        if kind == "parse":
            print(json.dumps(child_parse(Path(path), fmt)))
        else:
            url, accounts_count, batch = rest
            print(json.dumps(child_import(Path(path), fmt, url, int(accounts_count), int(batch))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--database", action="append",
                        help="'sqlite' (default) or the URL of an empty database; repeatable")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rss", default="100000,1000000", help="sizes for peak RSS ('' for none)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--accounts", type=int, default=500)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.database = args.database or ["sqlite"]
    args.formats = [f for f in args.formats.split(",") if f]
    args.rss = [int(s) for s in args.rss.split(",") if s]
    for url in args.database:
        _check_empty(url)
    with tempfile.TemporaryDirectory() as folder:
        results = measure(args, Path(folder), lambda m: print(m, file=sys.stderr))
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        show(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
