#!/usr/bin/env python
"""Recharge benchmark: payment notifications processed per second (verify, decrypt,
credit), against the raw ledger credit of the same amounts as the ceiling, measured
in the same run on the same database.

    .venv/bin/python benchmarks/recharge.py [--backend sqlite|postgresql|all] [--n N]
                                            [--chunk C] [--warmup W] [--json]

Ours: N pending recharges are written first (not timed; the provider call that
creates them is not what is measured), and their notifications are made as the
sandbox provider makes them (the resource encrypted with AES-256-GCM under the
API v3 key, signed with the platform key; ``sandbox.protocol``), not timed. Then
each goes through ``recharges.handle_notification`` with the real WeChat Pay v3
adapter (``gateways.wechatpay``): the RSA signature verified against the platform
certificate, the timestamp checked, the resource decrypted and its merchant
checked; in one transaction the recharge found, claimed by its conditional
UPDATE, credited through ``funds.receive`` (the 收支明细 entry), and the
notification recorded.

Ceiling: ``funds.receive`` alone for the same amounts, accounts and source, one
per transaction — the ledger credit every notification ends in, without the
protocol (no signature, no decryption, no recharge row, no log).

Both take turns, C notifications each (default 50), on the same database, so a
drift in disk latency or in the other work on the machine hits them alike; W
(default 20) warm them up first and are not counted. Target: ours ≥ 50 % of the
raw credit (the RSA verification is the protocol's own price).

A documented command, not a test: nothing here runs under pytest.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import operator
from feecenter.auth.service import configure_master_key
from feecenter.clock import FixedClock, db_time
from feecenter.db.engine import dispose, make_engine, transaction
from feecenter.db.migrate import upgrade
from feecenter.funds import service as funds
from feecenter.gateways.wechatpay import WeChatPayConfig, WeChatPayGateway
from feecenter.ledger.reconcile import reconcile
from feecenter.recharges import service as recharges
from feecenter.recharges.tables import recharges as recharges_table
from feecenter.sandbox import keys as sandbox_keys
from feecenter.sandbox import protocol

DEFAULT_PG_URL = os.environ.get("FEECENTER_BENCH_PG_URL",
                                "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
TARGET = 0.50
OPS = operator("bench")
AMOUNT = 100_00


def _fresh_database(backend: str, workdir: Path, pg_url: str):
    if backend == "sqlite":
        return f"sqlite:///{workdir / 'recharge.db'}", lambda: None
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    name = f"fc_bench_recharge_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')

    def cleanup():
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    url = sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    return url, cleanup


def _prepare(engine, clock, keys, total: int, accounts_count: int):
    """Accounts, ``total`` pending recharges and their signed notifications; the uins
    the raw credits go to."""
    with transaction(engine) as conn:
        uins = [accounts.create_account(conn, clock, OPS, accounts.NewAccount(name=f"bench-{i}"))
                for i in range(accounts_count)]
        source = funds.platform_account(conn, clock, "gateway_wechat")
        now = clock.now()
        rows = [{"uin": uins[i % accounts_count], "amount": AMOUNT, "channel": "wechat",
                 "payer": f"payer-{i}", "out_trade_no": f"FCBENCH{i:020d}", "state": "pending",
                 "intl_card": False, "created_by": "bench", "created_at": db_time(now),
                 "expires_at": db_time(now + timedelta(minutes=30))} for i in range(total)]
        conn.execute(sa.insert(recharges_table), rows)
    notes = []
    for i, row in enumerate(rows):
        body = protocol.notification_body(keys.apiv3_key, {
            "appid": keys.appid, "mchid": keys.mchid, "out_trade_no": row["out_trade_no"],
            "transaction_id": f"42{i:026d}", "trade_type": "NATIVE", "trade_state": "SUCCESS",
            "trade_state_desc": "支付成功", "bank_type": "CMB_DEBIT",
            "success_time": "2026-03-02T10:00:00+08:00", "payer": {"openid": f"o-{i}"},
            "amount": {"total": AMOUNT, "payer_total": AMOUNT, "currency": "CNY",
                       "payer_currency": "CNY"}})
        headers = protocol.signed_headers(keys.platform_key, keys.platform_serial, body)
        notes.append((headers, body.encode()))
    return uins, source, notes


def _turn_ours(engine, clock, gateway, notes) -> float:
    started = time.perf_counter()
    for headers, body in notes:
        result = recharges.handle_notification(engine, clock, gateway, headers, body)
        assert result.outcome == "credited", result
    return time.perf_counter() - started


def _turn_raw(engine, clock, uins, source, start: int, count: int) -> float:
    started = time.perf_counter()
    for i in range(start, start + count):
        with transaction(engine) as conn:
            funds.receive(conn, clock, uins[i % len(uins)], AMOUNT, key=f"raw:{i}",
                          source_account_id=source, pay_channel="wechat", sub_type="online")
    return time.perf_counter() - started


def run_backend(backend: str, n: int, chunk: int, warmup: int, accounts_count: int,
                pg_url: str, log) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        url, cleanup = _fresh_database(backend, workdir, pg_url)
        try:
            engine = make_engine(url)
            upgrade(engine)
            keys = sandbox_keys.load_or_create(workdir / "sandbox")
            gateway = WeChatPayGateway(WeChatPayConfig.from_env(sandbox_keys.merchant_env(
                keys, "http://127.0.0.1:9", "https://bench.invalid/notify")))
            clock = FixedClock(datetime.now(UTC))  # the notifications are signed at wall time
            uins, source, notes = _prepare(engine, clock, keys, warmup + n, accounts_count)
            _turn_ours(engine, clock, gateway, notes[:warmup])
            _turn_raw(engine, clock, uins, source, 0, warmup)
            ours_s = raw_s = 0.0
            for start in range(warmup, warmup + n, chunk):
                count = min(chunk, warmup + n - start)
                ours_s += _turn_ours(engine, clock, gateway, notes[start:start + count])
                raw_s += _turn_raw(engine, clock, uins, source, start, count)
                log(f"{backend}: {start + count - warmup}/{n}")
            with engine.connect() as conn:
                assert reconcile(conn) == []
            dispose(engine)
        finally:
            cleanup()
    ours_rate, raw_rate = n / ours_s, n / raw_s
    return {"backend": backend, "notifications": n, "ours_per_s": round(ours_rate),
            "raw_credit_per_s": round(raw_rate), "ratio": round(ours_rate / raw_rate, 3),
            "target": TARGET, "met": ours_rate / raw_rate >= TARGET,
            "load_average": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--n", type=int, default=1000, help="notifications (default 1000)")
    parser.add_argument("--chunk", type=int, default=50, help="per turn (default 50)")
    parser.add_argument("--warmup", type=int, default=20, help="before the timing (default 20)")
    parser.add_argument("--accounts", type=int, default=20, help="accounts (default 20)")
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
        print(f"{'backend':<11}{'notices':>8}{'ours/s':>9}{'raw credit/s':>14}{'ratio':>8}"
              f"{'target':>8}  met  load")
        for r in results:
            print(f"{r['backend']:<11}{r['notifications']:>8}{r['ours_per_s']:>9}"
                  f"{r['raw_credit_per_s']:>14}{r['ratio']:>8.0%}{r['target']:>8.0%}  "
                  f"{'yes' if r['met'] else 'NO ':<3}  {r['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
