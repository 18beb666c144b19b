#!/usr/bin/env python
"""Renewal reminder benchmark: one day's reminders over many prepaid resources.

    .venv/bin/python benchmarks/reminders.py [--backend sqlite|postgresql|all]
        [--resources 100000] [--accounts 10000] [--json]

Seeds a freshly migrated database (not timed): the sample catalog, ``--accounts``
accounts (``accounts.create_account``; every third with some cash) and
``--resources`` running prepaid cvm servers spread over them, all expiring
within the reminder window of the day measured (their rows written directly,
as orders would leave them), half of them with auto-renewal on. Then times
``renewal.reminders.remind`` for that day (ours: the window query, settings,
open stops, balances, pricing, one ``notify_many`` per 500 accounts), and a
second run of the same day, which must send nothing more (idempotency). Prints
resources and messages per second and the statements issued. A documented
command, not a test; no target (issue #23 asks for "set-based enough for
100,000 resources").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import sqlalchemy as sa

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import operator
from feecenter.catalog import service as catalog
from feecenter.clock import FixedClock, business_date, db_time
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.notifications.tables import in_site_messages, notification_outbox
from feecenter.renewal import reminders, rules
from feecenter.renewal.tables import renewal_settings
from feecenter.resources import service as resources_service
from feecenter.resources.tables import resources

START = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)
OPS = operator("bench")
DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def fresh_database(backend: str, workdir: Path, pg_url: str):
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'renewal.db'}", lambda: None
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"fc_bench_renewal_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)

    def drop():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()
    return url, drop


def seed(engine, clock, n_accounts: int, n_resources: int, day) -> None:
    with transaction(engine) as conn:
        catalog.load_catalog(conn, clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    uins, projects = [], []
    for start in range(0, n_accounts, 500):
        with transaction(engine) as conn:
            for i in range(start, min(start + 500, n_accounts)):
                uin = accounts.create_account(conn, clock, OPS, accounts.NewAccount(
                    name=f"bench-{i}", email=f"b{i}@example.cn"))
                uins.append(uin)
                projects.append(resources_service.default_project(conn, clock, uin))
                if i % 3 == 0:
                    funds.adjust(conn, clock, OPS, uin, sub_account="cash", amount=200_00,
                                 reason="bench", key=f"bench-cash-{uin}")
    now = db_time(clock.now())
    first_expiry = rules.start_of_day(day - timedelta(days=6)) + timedelta(hours=10)
    rows, flags = [], []
    for i in range(n_resources):
        uin, project = uins[i % n_accounts], projects[i % n_accounts]
        end = first_expiry + timedelta(days=i % 14)
        rid = f"ins-bench{i:08d}"
        rows.append({"id": rid, "uin": uin, "name": None, "product_code": "cvm",
                     "region": "ap-guangzhou", "project_id": project, "tags": "{}",
                     "pay_mode": "prepaid", "spec_item": "S5.MEDIUM4", "quantity": 1_000_000,
                     "state": "running", "period_start": db_time(end - timedelta(days=30)),
                     "period_end": db_time(end), "created_at": now})
        if i % 2 == 0:
            flags.append({"resource_id": rid, "uin": uin, "auto_renew": True, "months": 1,
                          "updated_at": now})
    with transaction(engine) as conn:
        for start in range(0, len(rows), 5000):
            conn.execute(sa.insert(resources), rows[start:start + 5000])
        for start in range(0, len(flags), 5000):
            conn.execute(sa.insert(renewal_settings), flags[start:start + 5000])


def count_statements(engine):
    counter = {"n": 0}

    def before(*_args, **_kw):
        counter["n"] += 1
    sa.event.listen(engine, "before_cursor_execute", before)
    return counter, lambda: sa.event.remove(engine, "before_cursor_execute", before)


def run(backend: str, args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url, drop = fresh_database(backend, Path(tmp), args.pg_url)
        try:
            engine = make_engine(url)
            upgrade(engine)
            clock = FixedClock(START)
            day = business_date(START) + timedelta(days=1)
            t0 = time.perf_counter()
            seed(engine, clock, args.accounts, args.resources, day)
            seeded = time.perf_counter() - t0
            clock.set(rules.start_of_day(day) + timedelta(minutes=5))
            counter, stop = count_statements(engine)
            t0 = time.perf_counter()
            result = reminders.remind(engine, clock, day)
            first = time.perf_counter() - t0
            statements = counter["n"]
            t0 = time.perf_counter()
            again = reminders.remind(engine, clock, day)
            second = time.perf_counter() - t0
            stop()
            with engine.connect() as conn:
                messages = conn.execute(sa.select(sa.func.count())
                                        .select_from(in_site_messages)).scalar()
                outbox = conn.execute(sa.select(sa.func.count())
                                      .select_from(notification_outbox)).scalar()
            dispose(engine)
        finally:
            drop()
    assert again == result, (again, result)
    return {"backend": backend, "resources": args.resources, "accounts": args.accounts,
            "seed_s": round(seeded, 1), "remind_s": round(first, 2),
            "rerun_s": round(second, 2), "statements": statements,
            "resources_per_s": round(args.resources / first), "messages": messages,
            "outbox_rows": outbox, "counts": result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "all"), default="all")
    parser.add_argument("--resources", type=int, default=100_000)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--pg-url", default=DEFAULT_PG_URL)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    backends = ("sqlite", "postgresql") if args.backend == "all" else (args.backend,)
    results = []
    for backend in backends:
        print(f"{backend}: seeding {args.accounts} accounts, {args.resources} resources …",
              file=sys.stderr)
        results.append(run(backend, args))
        print(json.dumps(results[-1]), file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            print(f"{r['backend']:>10}: {r['resources']} resources, {r['accounts']} accounts: "
                  f"reminders in {r['remind_s']} s ({r['resources_per_s']}/s, "
                  f"{r['statements']} statements, {r['messages']} messages, "
                  f"{r['outbox_rows']} outbox rows); rerun {r['rerun_s']} s, nothing new")
    return 0


if __name__ == "__main__":
    sys.exit(main())
