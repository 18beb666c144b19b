#!/usr/bin/env python
"""Ledger benchmark: Fee Center's ledger against the raw SQL ceiling of the same rows.

    /work/venv/bin/python benchmarks/ledger.py [--backend sqlite|postgresql|all]
        [--n N] [--batch B] [--batches K] [--json]

For each backend it creates a fresh database (SQLite: a temporary file;
PostgreSQL: a new database on --pg-url, dropped at the end), migrates it with
``feecenter.db.migrate.upgrade`` and measures, in transfers per second:

* single  — ``ledger.transfer`` one transfer per commit
            (``with transaction(engine) as conn: ledger.transfer(conn, clock, spec)``,
            the unit of work every service runs in);
* batched — ``ledger.transfer_batch`` with B transfers per commit;

and, in the same run and database, the raw ceiling of the same rows written
with the plain DB-API driver (sqlite3 / psycopg): the same ledger_transactions
row, the same two ledger_postings rows (balance_after included) and the same
balance UPDATEs, one transaction per commit (single) or executemany per commit
(batched). Both sides run with the project's settings: SQLite ``db.engine.SQLITE_PRAGMAS``
(WAL, synchronous=FULL, 16 MiB page cache), PostgreSQL synchronous_commit=on
(checked and printed).

Each transfer has the realistic shape: two postings between two cached customer
accounts (the source with min_balance=0), a unique idempotency key, a kind, a
uin and a reference. Inputs (keys, amounts, request hashes) are prepared before
the clock starts, for both sides alike; what is timed is the ledger call or the
raw statements, and the commit. Ours and raw take turns (--chunk single
transfers, or one batch, at a time) so that drift in disk latency and table
growth hit both alike.

This is a documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa

from feecenter.clock import FixedClock, db_time
from feecenter.db.engine import SQLITE_PRAGMAS, dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.ledger import service as ledger
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.service import Posting, Transfer

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
TARGETS = {"single": 0.70, "batched": 0.30}
FUNDING_FEN = 10**12  # small enough that sum(balance_after) fits in 64 bits
KIND = "transfer"


# ------------------------------------------------------------------ inputs

@dataclass(frozen=True)
class Pair:
    """Two cached customer accounts: money moves from source to destination."""

    source: int
    destination: int
    uin: int
    source_min: int | None = 0
    destination_min: int | None = None


@dataclass(frozen=True)
class Row:
    """One transfer's inputs, identical for our side and the raw side."""

    key: str
    amount: int
    reference: str
    request_hash: str


def make_rows(prefix: str, count: int, pair: Pair) -> list[Row]:
    rows = []
    for i in range(count):
        amount = 100 + (i * 7919) % 9900
        reference = f"bench:{prefix}:{i}"
        spec = _spec(Row(f"{prefix}-{i}", amount, reference, ""), pair)
        # the hash the ledger stores for this request, for the raw side's identical row
        rows.append(Row(f"{prefix}-{i}", amount, reference, ledger._postings_hash(spec)))
    return rows


def _spec(row: Row, pair: Pair) -> Transfer:
    """The transfer as a caller writes it (request_hash empty: the ledger computes it)."""
    return Transfer(idempotency_key=row.key, kind=KIND, uin=pair.uin, reference=row.reference,
                    postings=(Posting(pair.source, -row.amount),
                              Posting(pair.destination, row.amount)))


# ------------------------------------------------------------------ our side

class Ours:
    def __init__(self, engine: sa.Engine, clock: FixedClock, pair: Pair):
        self.engine, self.clock, self.pair = engine, clock, pair

    def prepare_single(self, rows: list[Row]) -> list[Transfer]:
        return [_spec(row, self.pair) for row in rows]

    def prepare_batches(self, batches: list[list[Row]]) -> list[list[Transfer]]:
        return [[_spec(row, self.pair) for row in batch] for batch in batches]

    def run_single(self, specs: list[Transfer]) -> None:
        engine, clock, transfer = self.engine, self.clock, ledger.transfer
        for spec in specs:
            with transaction(engine) as conn:
                transfer(conn, clock, spec)

    def run_batches(self, batches: list[list[Transfer]]) -> None:
        for specs in batches:
            with transaction(self.engine) as conn:
                ledger.transfer_batch(conn, self.clock, specs)


# ------------------------------------------------------------------ raw side

SQLITE_TIME = "%04d-%02d-%02d %02d:%02d:%02d.%06d"  # how SQLAlchemy stores DateTime on SQLite
TXN_COLUMNS = ("idempotency_key, request_hash, kind, uin, reference, memo, reverses_txn_id, "
               "created_at")
POSTING_COLUMNS = "txn_id, account_id, uin, amount, balance_after"


class RawBase:
    paramstyle = "?"

    def __init__(self, pair: Pair, clock: FixedClock):
        self.pair = pair
        self.clock = clock
        self.accounts = sorted([(pair.source, -1), (pair.destination, +1)])
        self.bounds = {pair.source: pair.source_min, pair.destination: pair.destination_min}
        p = self.paramstyle
        self.sql_update_returning = (f"UPDATE ledger_accounts SET balance = balance + {p} "
                                     f"WHERE id = {p} RETURNING balance")
        self.sql_set_balance = f"UPDATE ledger_accounts SET balance = {p} WHERE id = {p}"
        self.sql_txn = (f"INSERT INTO ledger_transactions ({TXN_COLUMNS}) "
                        f"VALUES ({', '.join([p] * 8)}) RETURNING id")
        self.sql_txn_with_id = (f"INSERT INTO ledger_transactions (id, {TXN_COLUMNS}) "
                                f"VALUES ({', '.join([p] * 9)})")
        self.sql_postings = (f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) "
                             f"VALUES ({', '.join([p] * 5)})")
        # single transfers: both postings in one INSERT (one round trip; executemany
        # takes several on psycopg), so the ceiling is the best plain-driver way
        self.sql_two_postings = (f"INSERT INTO ledger_postings ({POSTING_COLUMNS}) "
                                 f"VALUES ({', '.join([p] * 5)}), ({', '.join([p] * 5)})")

    def now(self):
        return db_time(self.clock.now())

    def check(self, account_id: int, balance: int) -> None:
        low = self.bounds[account_id]
        if low is not None and balance < low:
            raise RuntimeError(f"raw: account {account_id} below its bound")

    def prepare_single(self, rows: list[Row]) -> list[Row]:
        return rows

    def write_single(self, cur, row: Row) -> None:
        """One transfer's statements, in the caller's transaction (same for both drivers)."""
        uin, src, dst = self.pair.uin, self.pair.source, self.pair.destination
        after = {}
        for account_id, sign in self.accounts:  # id order, as the ledger locks them
            cur.execute(self.sql_update_returning, (sign * row.amount, account_id))
            after[account_id] = cur.fetchone()[0]
            self.check(account_id, after[account_id])
        cur.execute(self.sql_txn, (row.key, row.request_hash, KIND, uin, row.reference, None,
                                   None, self.now()))
        txn_id = cur.fetchone()[0]
        cur.execute(self.sql_two_postings, (txn_id, src, uin, -row.amount, after[src],
                                            txn_id, dst, uin, row.amount, after[dst]))

    def prepare_batches(self, batches: list[list[Row]]) -> list[list[Row]]:
        return batches

    def _batch_rows(self, rows: list[Row], balances: dict[int, int], now):
        """Transaction rows, posting rows (txn index, …) and the final balances."""
        uin, src, dst = self.pair.uin, self.pair.source, self.pair.destination
        txns, legs = [], []
        for row in rows:
            balances[src] -= row.amount
            self.check(src, balances[src])
            balances[dst] += row.amount
            self.check(dst, balances[dst])
            txns.append((row.key, row.request_hash, KIND, uin, row.reference, None, None, now))
            legs.append(((src, uin, -row.amount, balances[src]),
                         (dst, uin, row.amount, balances[dst])))
        return txns, legs


class RawSQLite(RawBase):
    paramstyle = "?"

    def __init__(self, path: Path | None, pair: Pair, clock: FixedClock):
        super().__init__(pair, clock)
        if path is None:  # statements only (Floor runs them on the engine's connection)
            return
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                    timeout=30)
        for pragma in SQLITE_PRAGMAS:  # the project's own settings
            self.conn.execute(f"PRAGMA {pragma}")

    def now(self):
        t = super().now()
        return SQLITE_TIME % (t.year, t.month, t.day, t.hour, t.minute, t.second, t.microsecond)

    def run_single(self, rows: list[Row]) -> None:
        cur = self.conn.cursor()
        for row in rows:
            cur.execute("BEGIN IMMEDIATE")
            try:
                self.write_single(cur, row)
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def run_batches(self, batches: list[list[Row]]) -> None:
        cur = self.conn.cursor()
        ids = [a for a, _ in self.accounts]
        for rows in batches:
            cur.execute("BEGIN IMMEDIATE")
            try:
                balances = dict(cur.execute(
                    "SELECT id, balance FROM ledger_accounts WHERE id IN (?, ?)", ids).fetchall())
                txns, legs = self._batch_rows(rows, balances, self.now())
                cur.executemany(self.sql_set_balance, [(v, k) for k, v in balances.items()])
                # One writer holds the lock, so the next rowids are max(id)+1, +2, …
                first = cur.execute(
                    "SELECT coalesce(max(id), 0) + 1 FROM ledger_transactions").fetchone()[0]
                cur.executemany(self.sql_txn_with_id,
                                [(first + i, *txn) for i, txn in enumerate(txns)])
                cur.executemany(self.sql_postings, [
                    (first + i, *leg) for i, pair_legs in enumerate(legs) for leg in pair_legs])
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def settings(self) -> dict:
        return {"journal_mode": self.conn.execute("PRAGMA journal_mode").fetchone()[0],
                "synchronous": {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
                    self.conn.execute("PRAGMA synchronous").fetchone()[0]]}

    def close(self) -> None:
        self.conn.close()


class RawPostgres(RawBase):
    paramstyle = "%s"

    def __init__(self, url: str | None, pair: Pair, clock: FixedClock):
        super().__init__(pair, clock)
        if url is None:  # statements only (Floor runs them on the engine's connection)
            return
        import psycopg

        u = sa.engine.make_url(url)
        self.conn = psycopg.connect(host=u.host, port=u.port or 5432, user=u.username,
                                    password=u.password, dbname=u.database)
        with self.conn.cursor() as cur:
            cur.execute("SET synchronous_commit = on")
            cur.execute("SET TIME ZONE 'UTC'")
        self.conn.commit()

    def run_single(self, rows: list[Row]) -> None:
        conn = self.conn
        cur = conn.cursor()
        for row in rows:
            try:
                self.write_single(cur, row)
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def run_batches(self, batches: list[list[Row]]) -> None:
        conn = self.conn
        cur = conn.cursor()
        ids = [a for a, _ in self.accounts]
        for rows in batches:
            try:
                cur.execute("SELECT id, balance FROM ledger_accounts WHERE id = ANY(%s) "
                            "ORDER BY id FOR UPDATE", (ids,))
                balances = dict(cur.fetchall())
                txns, legs = self._batch_rows(rows, balances, self.now())
                cur.executemany(self.sql_set_balance, [(v, k) for k, v in balances.items()])
                cur.executemany(self.sql_txn, txns, returning=True)
                txn_ids = []
                while True:
                    txn_ids.append(cur.fetchone()[0])
                    if not cur.nextset():
                        break
                cur.executemany(self.sql_postings, [
                    (txn_id, *leg) for txn_id, pair_legs in zip(txn_ids, legs)
                    for leg in pair_legs])
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    def settings(self) -> dict:
        with self.conn.cursor() as cur:
            cur.execute("SHOW synchronous_commit")
            sync = cur.fetchone()[0]
            cur.execute("SHOW fsync")
            fsync = cur.fetchone()[0]
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
        self.conn.rollback()
        return {"synchronous_commit": sync, "fsync": fsync, "server_version": version}

    def close(self) -> None:
        self.conn.close()


class Floor:
    """The raw statements inside ``transaction(engine)``, on its own DB-API connection.

    Not a target: it shows what the unit of work alone costs (SQLite: the
    thread's held connection, BEGIN IMMEDIATE, commit; PostgreSQL: pool
    checkout, commit, checkin), i.e. the best ratio any ledger code run inside ``transaction(engine)``
    could reach.
    """

    def __init__(self, engine: sa.Engine, raw: RawBase):
        self.engine, self.raw = engine, raw

    def prepare_single(self, rows: list[Row]) -> list[Row]:
        return rows

    def run_single(self, rows: list[Row]) -> None:
        for row in rows:
            with transaction(self.engine) as conn:
                cur = conn.connection.dbapi_connection.cursor()
                try:
                    self.raw.write_single(cur, row)
                finally:
                    cur.close()


# ------------------------------------------------------------------ databases

class Database:
    """A fresh, migrated database of the benchmark's own, removed on close."""

    def __init__(self, backend: str, pg_url: str, sqlite_dir: str | None):
        self.backend = backend
        self._admin = None
        self._tmp = None
        if backend == "sqlite":
            self._tmp = tempfile.mkdtemp(prefix="fc-bench-", dir=sqlite_dir)
            self.path = Path(self._tmp) / "ledger.db"
            self.url = f"sqlite:///{self.path}"
        else:
            self.name = f"fc_bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            self._admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'CREATE DATABASE "{self.name}"')
            self.url = sa.engine.make_url(pg_url).set(database=self.name).render_as_string(
                hide_password=False)
        self.engine = make_engine(self.url)
        upgrade(self.engine)

    def raw(self, pair: Pair, clock: FixedClock, connect: bool = True) -> RawBase:
        if self.backend == "sqlite":
            return RawSQLite(self.path if connect else None, pair, clock)
        return RawPostgres(self.url if connect else None, pair, clock)

    def close(self) -> None:
        dispose(self.engine)
        if self._admin is not None:
            with self._admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._admin.dispose()
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def open_pair(engine: sa.Engine, clock: FixedClock, name: str, uin: int) -> Pair:
    """Two cached customer accounts, the source funded from an uncached platform account."""
    with engine.begin() as conn:
        bank = ledger.open_account(conn, clock, "platform:bench:bank", "bank", cached=False)
        source = ledger.open_account(conn, clock, f"cust:{uin}:{name}:cash", "cash", uin=uin,
                                     min_balance=0)
        destination = ledger.open_account(conn, clock, f"cust:{uin}:{name}:income", "income",
                                          uin=uin)
        ledger.transfer(conn, clock, Transfer(
            idempotency_key=f"fund:{name}", kind="bench_funding", uin=uin,
            postings=(Posting(bank, -FUNDING_FEN), Posting(source, FUNDING_FEN))))
    return Pair(source, destination, uin)


# ------------------------------------------------------------------ measuring

@dataclass
class Figure:
    backend: str
    mode: str  # single | batched
    transfers: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # side -> total seconds
    pair_ratios: list[float] = field(default_factory=list)  # raw time / our time, per turn

    def tps(self, side: str) -> float:
        return self.transfers / self.seconds[side]

    def ratio_of(self, side: str) -> float:
        return self.tps(side) / self.tps("raw")

    @property
    def ratio(self) -> float:
        return self.ratio_of("ours")

    @property
    def target(self) -> float:
        return TARGETS[self.mode]

    @property
    def met(self) -> bool:
        return self.ratio >= self.target

    def to_dict(self) -> dict:
        ratios = sorted(self.pair_ratios)
        out = {"mode": self.mode, "transfers": self.transfers,
               "ours_tps": round(self.tps("ours"), 1), "raw_tps": round(self.tps("raw"), 1),
               "ratio": round(self.ratio, 3), "target": self.target, "met": self.met,
               "turns": len(ratios),
               "turn_ratio_p10_p50_p90": [round(ratios[int(q * (len(ratios) - 1))], 3)
                                          for q in (0.1, 0.5, 0.9)]}
        if "floor" in self.seconds:
            out.update(floor_tps=round(self.tps("floor"), 1),
                       floor_ratio=round(self.ratio_of("floor"), 3))
        return out


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def run_backend(backend: str, args, log) -> dict:
    db = Database(backend, args.pg_url, args.sqlite_dir)
    try:
        clock = FixedClock(START)
        pairs = {name: open_pair(db.engine, clock, name, 100001 + i)
                 for i, name in enumerate(("ours", "raw", "floor"))}
        ours = Ours(db.engine, clock, pairs["ours"])
        raw = db.raw(pairs["raw"], clock)
        floor = Floor(db.engine, db.raw(pairs["floor"], clock, connect=False))
        try:
            settings = raw.settings()
            settings.update(_engine_settings(db.engine))
            log(f"[bold]{backend}[/]: fresh database {db.url.split('@')[-1]}, {settings}")
            # Warm-up (untimed): connection pools, statement caches, prepared statements.
            for name, side in (("ours", ours), ("raw", raw), ("floor", floor)):
                rows = make_rows(f"{name}-warm", args.warmup, pairs[name])
                side.run_single(side.prepare_single(rows))
                if name != "floor":
                    rows = make_rows(f"{name}-warmb", args.batch, pairs[name])
                    side.run_batches(side.prepare_batches([rows]))

            single = Figure(backend, "single")
            sides = {"ours": ours, "raw": raw}
            if args.floor:
                sides["floor"] = floor
            _take_turns(single, sides, {
                name: _chunks(make_rows(f"{name}-s", args.n, pairs[name]), args.chunk)
                for name in sides}, "run_single", "prepare_single", len)
            log(f"  {backend} single: ours {single.tps('ours'):,.0f}/s, "
                f"raw {single.tps('raw'):,.0f}/s")

            total = args.batch * args.batches
            batched = Figure(backend, "batched")
            _take_turns(batched, {"ours": ours, "raw": raw}, {
                name: [[b] for b in _chunks(make_rows(f"{name}-b", total, pairs[name]),
                                            args.batch)]
                for name in ("ours", "raw")}, "run_batches", "prepare_batches",
                lambda chunk: len(chunk[0]))
            log(f"  {backend} batched: ours {batched.tps('ours'):,.0f}/s, "
                f"raw {batched.tps('raw'):,.0f}/s")
            figures = [single, batched]
        finally:
            raw.close()
        _verify(db.engine, pairs["ours"], pairs["raw"])
        return {"backend": backend, "settings": settings, "batch": args.batch,
                "figures": [f.to_dict() for f in figures], "_figures": figures}
    finally:
        db.close()


def _take_turns(fig: Figure, sides: dict, chunks: dict[str, list], run: str, prepare: str,
                count) -> None:
    """Run the sides chunk by chunk, rotating who goes first, summing each side's time.

    Disk latency drifts over seconds; taking turns in small chunks lets every
    side see the same disk, so the ratio is steadier than either figure.
    """
    names = list(sides)
    fig.seconds = dict.fromkeys(names, 0.0)
    perf = time.perf_counter
    gc.collect()
    gc.freeze()  # the prepared inputs are the harness's: no side pays for scanning them
    for i, turn in enumerate(zip(*(chunks[n] for n in names), strict=True)):
        prepared = {n: getattr(sides[n], prepare)(c) for n, c in zip(names, turn)}
        took = {}
        for n in names[i % len(names):] + names[:i % len(names)]:
            started = perf()
            getattr(sides[n], run)(prepared[n])
            took[n] = perf() - started
        fig.transfers += count(turn[0])
        for n in names:
            fig.seconds[n] += took[n]
        fig.pair_ratios.append(took["raw"] / took["ours"])
    gc.unfreeze()


def _engine_settings(engine: sa.Engine) -> dict:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            return {"ours_journal_mode": conn.exec_driver_sql("PRAGMA journal_mode").scalar(),
                    "ours_synchronous": conn.exec_driver_sql("PRAGMA synchronous").scalar()}
        return {"ours_synchronous_commit":
                conn.exec_driver_sql("SHOW synchronous_commit").scalar()}


def _verify(engine: sa.Engine, ours: Pair, raw: Pair) -> None:
    """Both sides wrote equivalent rows and the ledger reconciles (untimed)."""
    from feecenter.ledger.tables import ledger_accounts, ledger_postings

    with engine.connect() as conn:
        differences = reconcile(conn)
        if differences:
            raise SystemExit(f"reconciliation found differences: {differences[:5]}")

        def shape(pair: Pair):
            balances = [conn.execute(sa.select(ledger_accounts.c.balance)
                                     .where(ledger_accounts.c.id == a)).scalar_one()
                        for a in (pair.source, pair.destination)]
            postings = conn.execute(sa.select(
                sa.func.count(), sa.func.sum(ledger_postings.c.amount),
                sa.func.sum(ledger_postings.c.balance_after))
                .where(ledger_postings.c.account_id.in_([pair.source, pair.destination]))).one()
            return balances, tuple(postings)

        if shape(ours) != shape(raw):
            raise SystemExit(f"ours and raw wrote different rows: {shape(ours)} != {shape(raw)}")


# ------------------------------------------------------------------ output

def print_table(console, result: dict) -> None:
    from rich.table import Table

    table = Table(title=f"Ledger — {result['backend']}  ({_settings_text(result['settings'])})",
                  caption="floor: the raw statements run inside transaction(engine) — the best "
                          "ratio any ledger code could reach there (not a target). "
                          "turns: the ratio per turn; a wide spread means a noisy machine")
    table.add_column("per\ncommit", justify="right", no_wrap=True)
    table.add_column("ours\ntransfers/s", justify="right", no_wrap=True)
    table.add_column("raw\ntransfers/s", justify="right", no_wrap=True)
    table.add_column("ratio", justify="right")
    table.add_column("target", justify="right", no_wrap=True)
    table.add_column("met", justify="center")
    table.add_column("floor\nratio", justify="right", style="dim")
    table.add_column("turns\np10–p90", justify="right", style="dim", no_wrap=True)
    for fig in result["_figures"]:
        label = "1" if fig.mode == "single" else f"{result['batch']:,}"
        table.add_row(label, f"{fig.tps('ours'):,.0f}", f"{fig.tps('raw'):,.0f}",
                      f"{fig.ratio:.0%}", f"≥ {fig.target:.0%}",
                      "[green]yes[/]" if fig.met else "[red]no[/]",
                      f"{fig.ratio_of('floor'):.0%}" if "floor" in fig.seconds else "—",
                      "{:.0%}–{:.0%}".format(*fig.to_dict()["turn_ratio_p10_p50_p90"][::2]))
    console.print(table)


def _settings_text(settings: dict) -> str:
    keys = ("journal_mode", "synchronous", "synchronous_commit", "fsync")
    return ", ".join(f"{k}={settings[k]}" for k in keys if k in settings)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=5000, help="single transfers (one per commit)")
    parser.add_argument("--batch", type=int, default=1000, help="transfers per batch commit")
    parser.add_argument("--batches", type=int, default=20, help="number of batches")
    parser.add_argument("--chunk", type=int, default=50,
                        help="single transfers per turn when ours and raw alternate")
    parser.add_argument("--warmup", type=int, default=50, help="untimed single transfers first")
    parser.add_argument("--pg-url", default=os.environ.get("FEECENTER_BENCH_PG_URL",
                                                           DEFAULT_PG_URL),
                        help="admin URL of a PostgreSQL server (a fresh database is made on it)")
    parser.add_argument("--sqlite-dir", default=None,
                        help="directory for the SQLite file (default: the system temp dir)")
    parser.add_argument("--no-floor", dest="floor", action="store_false",
                        help="skip the transaction(engine) floor measurement (single transfers)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if min(args.n, args.batch, args.batches, args.chunk, args.warmup) < 1:
        parser.error("--n, --batch, --batches, --chunk and --warmup must be positive")

    from rich.console import Console

    console = Console(stderr=args.json, width=None if sys.stdout.isatty() else 100)
    log = console.log
    load = os.getloadavg()[0]
    if load > 0.5:
        log(f"[yellow]load average {load:.2f}: other work on this machine skews the figures "
            f"(ours more than raw, as ours needs more CPU per transfer)[/]")
    backends = ["sqlite", "postgresql"] if args.backend == "all" else [args.backend]
    results = []
    started = time.perf_counter()
    for backend in backends:
        result = run_backend(backend, args, log)
        results.append(result)
        if not args.json:
            print_table(console, result)
    elapsed = time.perf_counter() - started
    all_met = all(f.met for r in results for f in r["_figures"])
    if args.json:
        print(json.dumps({
            "machine": {"cpus": os.cpu_count(), "load_average_1m_at_start": round(load, 2),
                        "python": sys.version.split()[0],
                        "sqlite": sqlite3.sqlite_version, "sqlalchemy": sa.__version__},
            "params": {"n": args.n, "batch": args.batch, "batches": args.batches,
                       "chunk": args.chunk, "floor": args.floor},
            "results": [{k: v for k, v in r.items() if not k.startswith("_")} for r in results],
            "all_targets_met": all_met, "elapsed_seconds": round(elapsed, 1)}, indent=2))
    else:
        console.print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, SQLite "
                      f"{sqlite3.sqlite_version}, SQLAlchemy {sa.__version__}; "
                      f"{elapsed:.0f} s in all. Targets "
                      + ("[green]all met[/]" if all_met else "[red]not all met[/]"))
    return 1 if args.check and not all_met else 0


if __name__ == "__main__":
    sys.exit(main())
