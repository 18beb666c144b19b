"""``feecenter demo``: a fresh SQLite database with sample accounts and keys,
a simulated month of postpaid usage, console passwords (new each run), with
instructions printed for calling it and logging in to the web console at
/console/ (the ``demo`` command in cli/main.py then serves it).

The month (``simulate_month``) ends at the real now, so the served API (whose
signatures use real time) shows it: postpaid resources open on two accounts
30 days back, each day's metering goes through the real intake
(``usage.service.ingest``, one JSON-lines batch per simulated day) and the real
job runner (``jobs.runner.run_until`` on a FixedClock) settles the day's hours
and the day, and escalates arrears: the poorly funded account runs into
arrears and its resources are stopped (ARR-3).

Online recharge (docs/recharge.md): the sandbox payment provider runs beside
the server, in-process on a port of its own (``start_sandbox``), the app's
WeChat Pay adapter (and QQ Wallet, online banking) pointed at it; one sandbox
recharge of acme-cloud is paid and credited, so 收支明细 shows a ``recharge``.

Corporate remittance (docs/remittance.md): ``demo_statement`` writes an MT940
statement with one transfer of each outcome and imports it twice (the second
time every line is a duplicate).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
import socket
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from stdnum.cn import uscc

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import operator
from feecenter.auth import service as auth
from feecenter.catalog import service as catalog
from feecenter.cli.tls import LocalTLS, local_tls
from feecenter.clock import FixedClock, business_time_text
from feecenter.config import Settings, load_settings
from feecenter.db.engine import transaction
from feecenter.funds import service as funds
from feecenter.money import format_yuan
from feecenter.orders import service as orders
from feecenter.periods import DAILY, HOURLY, period_containing
from feecenter.recharges import service as recharges
from feecenter.remittances import service as remittances
from feecenter.remittances import statements
from feecenter.resources import service as resources
from feecenter.resources.tables import resources as resources_table
from feecenter.runtime import Runtime, open_runtime

DEMO_OPERATOR = operator("demo")
DEMO_OPERATOR_NAME = "demo-operator"  # the operator seed() creates, with a key and a console login

SAMPLE_USCC_BASE = "91310115MA1K4LXK2"  # check digit computed below


def _demo_settings() -> Settings:
    settings = load_settings()
    if os.environ.get("FEECENTER_DATABASE_URL"):
        return settings
    path = settings.home / "demo.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return Settings(home=settings.home, database_url=f"sqlite:///{path}",
                    master_key=settings.master_key,
                    signature_window_s=settings.signature_window_s)


def seed(rt: Runtime) -> list[dict]:
    """Sample accounts, money and keys; returns what to print."""
    clock, rows = rt.clock, []
    code = SAMPLE_USCC_BASE + uscc.calc_check_digit(SAMPLE_USCC_BASE)
    samples = [
        ("acme-cloud", accounts.NewAccount(name="acme-cloud", enterprise_name="上海示例云计算有限公司",
                                           uscc=code, email="finance@acme.example"), 20_000_00, 200_00),
        ("zhang-san", accounts.NewAccount(name="zhang-san", personal_name="张三",
                                          phone="+86 138 0000 0000"), 88_88, 10_00),
        ("new-startup", accounts.NewAccount(name="new-startup"), 0, 50_00),
    ]
    with transaction(rt.engine) as conn:
        _, ops_key = auth.create_operator(conn, clock, DEMO_OPERATOR, DEMO_OPERATOR_NAME)
        rows.append({"who": f"operator {DEMO_OPERATOR_NAME}", "uin": "-", **ops_key.__dict__})
        for name, new, cash, gift in samples:
            uin = accounts.create_account(conn, clock, DEMO_OPERATOR, new)
            for sub, amount in (("cash", cash), ("gift", gift)):
                if amount:
                    funds.adjust(conn, clock, DEMO_OPERATOR, uin, sub_account=sub, amount=amount,
                                 reason="演示充值 / demo top-up", key=f"demo:{name}:{sub}")
            key = auth.create_api_key(conn, clock, DEMO_OPERATOR, uin)
            rows.append({"who": f"owner of {name}", "uin": uin, **key.__dict__})
        acme = rows[1]["uin"]
        accounts.add_user(conn, clock, DEMO_OPERATOR, acme, "acme-finance", "finance")
        key = auth.create_api_key(conn, clock, DEMO_OPERATOR, acme, "acme-finance")
        rows.append({"who": "acme-cloud finance sub-user", "uin": acme, **key.__dict__})
        funds.freeze(conn, clock, acme, 300_00, key="demo:acme:freeze",
                     memo="演示冻结 / demo freeze")
        funds.spend(conn, clock, acme, 1_234_56, key="demo:acme:spend", postpaid=False,
                    revenue_account_id=funds.platform_account(conn, clock, "revenue"),
                    product_code="cvm", memo="演示扣费 / demo deduction")
        funds.grant_credit(conn, clock, DEMO_OPERATOR, rows[2]["uin"], credit_limit=1_000_00)
        catalog.load_catalog(conn, clock, DEMO_OPERATOR, catalog.sample_catalog_text(),
                             "sample_catalog.yaml")
        _sample_orders(conn, clock, acme)
    return rows


# who logs in to the web console: (account row index in seed()'s rows, login or None for
# the owner, role to add or None for an existing user)
CONSOLE_USERS = [(1, None, None), (1, "acme-finance", None), (1, "acme-readonly", "readonly"),
                 (2, None, None), (3, None, None)]


def console_logins(rt: Runtime, rows: list[dict]) -> list[dict]:
    """Console passwords (random, new each run) for the owners, acme-cloud's finance
    sub-user and a readonly sub-user that sees the permission message (ACC-2)."""
    from feecenter.auth import sessions

    logins = []
    with transaction(rt.engine) as conn:
        for row, login, role in CONSOLE_USERS:
            uin = rows[row]["uin"]
            if role:
                accounts.add_user(conn, rt.clock, DEMO_OPERATOR, uin, login, role)
            password = secrets.token_urlsafe(9)
            sessions.set_password(conn, rt.clock, DEMO_OPERATOR, uin, login, password)
            user = accounts.find_user(conn, uin, login)
            name = accounts.get_account(conn, DEMO_OPERATOR, uin)["name"]
            logins.append({"account": name, "uin": uin, "login": user["login"],
                           "password": password, "role": user["role"]})
    return logins


def operator_login(rt: Runtime) -> dict:
    """A console password (random, new each run) for the demo's operator."""
    from feecenter.auth import operator_sessions

    password = secrets.token_urlsafe(9)
    with transaction(rt.engine) as conn:
        operator_sessions.set_password(conn, rt.clock, DEMO_OPERATOR, DEMO_OPERATOR_NAME,
                                       password)
    return {"name": DEMO_OPERATOR_NAME, "password": password}


def _sample_orders(conn, clock, uin: int) -> None:
    """A delivered server, a certificate awaiting manual delivery, an unpaid disk."""
    web = resources.create_project(conn, clock, DEMO_OPERATOR, uin, "官网 / website")
    paid = orders.create_purchase(conn, clock, DEMO_OPERATOR, uin, [
        orders.NewPurchase(product="cvm", region="ap-guangzhou", spec_item="S5.MEDIUM4", months=3,
                           project_id=web, resource_name="web-1"),
        orders.NewPurchase(product="ssl", region="mainland", spec_item="OV.single", months=12,
                           project_id=web)])
    orders.pay(conn, clock, DEMO_OPERATOR, uin, paid, key="demo:acme:first-payment")
    orders.create_purchase(conn, clock, DEMO_OPERATOR, uin, [
        orders.NewPurchase(product="cbs", region="ap-guangzhou", spec_item="premium", count=100,
                           months=1)])


SIMULATED_DAYS = 30

# new-startup (row 3: no cash, 50.00 gift) runs into arrears within days; acme-cloud pays.
# (account row index in seed()'s rows, product, region, spec item, name, usage:
#  (billing item, "hour" = a quantity per hour | "day" = per whole day, quantity range));
# quantities are drawn from a seeded random.
POSTPAID = [
    (1, "cvm", "ap-guangzhou", "S5.LARGE8", "api-1",
     [("S5.LARGE8", "hour", (1, 1)), ("traffic", "hour", (0.2, 3.5))]),
    (1, "cbs", "ap-guangzhou", "premium", "api-1-data", [("premium", "hour", (500, 500))]),
    (1, "cos", "ap-guangzhou", "storage_std", "assets",
     [("storage_std", "day", (800, 900)), ("requests", "day", (30, 120))]),
    (3, "cdn", "mainland", "traffic", None, [("traffic", "day", (30, 60))]),
    (3, "cos", "ap-shanghai", "storage_std", "uploads",
     [("storage_std", "day", (200, 300)), ("traffic_out", "day", (5, 15))]),
]


def _usage_lines(opened: list, running: set[str], rng: random.Random, start: datetime,
                 end: datetime, whole_day: bool) -> list[str]:
    """JSON lines of the metering records of [start, end) (a day, or the part of
    today that has passed), one per resource and billing item, for the resources
    still running (arrears may have stopped or destroyed some, ARR-3). Hourly
    quantities are summed over the hours: the meter reports once a day, and an
    hourly-settled record is billed in the hour it ends (the day's last)."""
    hours = (end - start) // timedelta(hours=1)
    out = []
    for uin, rid, usage in opened:
        if rid not in running:
            continue
        for item, per, (low, high) in usage:
            if per == "day" and not whole_day:
                continue
            draws = hours if per == "hour" else 1
            quantity = sum(low if low == high else rng.uniform(low, high) for _ in range(draws))
            out.append(json.dumps({
                "event_id": f"demo:{rid}:{item}:{business_time_text(start)}", "uin": uin,
                "resource_id": rid, "billing_item": item, "quantity": f"{quantity:.3f}",
                "usage_start": business_time_text(start), "usage_end": business_time_text(end)}))
    return out


def _refresh_bill_rollups(rt: Runtime, clock: FixedClock, start: datetime, end: datetime) -> None:
    """The cost-bill roll-ups (BIL-2) of the simulated days before ``end``'s day. The
    daily job starts at the day of the first line it saw, which was today's prepaid
    orders, made before this month was simulated into the past."""
    from feecenter.bills.rollups import refresh_day
    from feecenter.clock import business_date

    day, last = business_date(start), business_date(end)
    while day < last:
        refresh_day(rt.engine, clock, day)
        day += timedelta(days=1)


def simulate_month(rt: Runtime, rows: list[dict], *, days: int = SIMULATED_DAYS,
                   now: datetime | None = None) -> dict:
    """Open postpaid resources ``days`` back (from the business midnight before), feed
    each day's usage through the real intake and run the real job runner on a
    FixedClock ending at the last whole hour before ``now`` (the real now by default:
    what is served lies in the past, never in the future). Returns counts."""
    from feecenter.jobs.runner import run_until
    from feecenter.resources.postpaid import open_postpaid
    from feecenter.settlement.jobs import METERING_GRACE
    from feecenter.usage.service import ingest

    started = time.monotonic()
    now = now or rt.clock.now()
    end = period_containing(HOURLY, now).start  # the last whole business hour
    start = period_containing(DAILY, end - timedelta(days=days)).start
    clock = FixedClock(start)
    opened = []  # (uin, resource id, usage)
    with transaction(rt.engine) as conn:
        for row, product, region, spec, name, usage in POSTPAID:
            uin = rows[row]["uin"]
            rid = open_postpaid(conn, clock, DEMO_OPERATOR, uin, product=product, region=region,
                                spec_item=spec, name=name)
            opened.append((uin, rid, usage))
    rng = random.Random(20260101)
    records = 0
    day = period_containing(DAILY, start)
    while day.start < end:
        stop = min(day.end, end)
        with rt.engine.connect() as conn:
            running = set(conn.execute(select(resources_table.c.id).where(
                resources_table.c.id.in_([rid for _, rid, _ in opened]),
                resources_table.c.state == "running")).scalars())
        batch = _usage_lines(opened, running, rng, day.start, stop, stop == day.end)
        clock.set(stop)
        result = ingest(rt.engine, clock, DEMO_OPERATOR, "\n".join(batch))
        if result.rejected:
            raise RuntimeError(f"demo usage rejected: {result.to_dict()['rejections'][:3]}")
        records += result.accepted
        # the worker's passes from the day's end to its settlement grace (the day's
        # hours, the day itself, arrears), never past the real now
        run_until(rt.engine, clock, min(stop + METERING_GRACE["day"], now))
        day = period_containing(DAILY, day.end)
    _refresh_bill_rollups(rt, clock, start, end)
    with rt.engine.connect() as conn:
        lines, fen = conn.exec_driver_sql(
            "SELECT count(*), coalesce(sum(deducted), 0) FROM bill_lines").one()
        arrears = {r["uin"]: funds.balance_view(conn, rt.clock, DEMO_OPERATOR, r["uin"]).arrears
                   for r in rows[1:4]}
    return {"start": start, "end": end, "resources": len(opened), "records": records,
            "bill_lines": int(lines), "deducted_fen": int(fen),
            "in_arrears": {uin: fen for uin, fen in arrears.items() if fen},
            "seconds": round(time.monotonic() - started, 1)}


# ---------------------------------------------------------------- a bank statement (RMT-2..7)

def _statement_line(ref: str, fen: int, payee: str, payer: str, memo: str) -> str:
    return (f":61:2612011201C{fen // 100},{fen % 100:02d}NTRFNONREF//{ref}\n"
            f":86:/PAYEE/{payee}/PAYER/{payer}/PACC/6222020200112233/PBNK/中国工商银行上海分行"
            f"/MEMO/{memo}\n")


def demo_invoice(rt: Runtime, uin: int) -> dict | None:
    """acme-cloud's invoice title (its verified company, with the special-invoice
    details) and one ordinary invoice of everything it may invoice, issued: the
    console's 发票 page shows it with its PDF and XML (docs/invoices.md). None when
    the simulated month left nothing invoiceable or the account owing money."""
    from feecenter.invoices import invoiceable, issuing, service, titles

    with transaction(rt.engine) as conn:
        company = accounts.get_account(conn, DEMO_OPERATOR, uin)
        titles.set_title(conn, rt.clock, DEMO_OPERATOR, uin, {
            "title_kind": "enterprise", "title": company["entity_name"],
            "tax_id": company["uscc"], "address": "上海市浦东新区示例路 88 号",
            "phone": "021-12345678", "bank": "示例银行上海分行",
            "bank_account": "6222020200098765432"})
        found = invoiceable.invoiceable(conn, DEMO_OPERATOR, uin)
        if found["amount"] <= 0 or found["in_arrears"]:
            return None
        made = service.apply(conn, rt.clock, DEMO_OPERATOR, uin, kind="ordinary", amount=None,
                             email=None, request_key="demo:invoice")
    ids = [invoice["id"] for invoice in made["invoices"]]
    issuing.issue_invoices(rt.engine, rt.clock, rt.settings, ids)
    with rt.engine.connect() as conn:
        return {"amount": sum(i["amount"] for i in made["invoices"]),
                "numbers": [service.get_invoice(conn, DEMO_OPERATOR, uin, i)["invoice_number"]
                            for i in ids]}


def demo_statement(rt: Runtime, rows: list[dict], home: Path) -> tuple[Path, list]:
    """An MT940 statement with one transfer of each outcome — credited (acme-cloud's
    own name), pending signature (a payer acme-cloud has not registered), held (the
    restricted memo 保证金), unassigned (our prefix, an unknown code) and not ours —
    imported, then imported again (every line a harmless duplicate). Returns the
    file and both summaries."""
    with transaction(rt.engine) as conn:
        numbers = [remittances.receiving_details(conn, rt.clock, DEMO_OPERATOR, rows[i]["uin"])
                   ["accounts"][0]["number"] for i in (1, 2)]
    acme, zhang = numbers
    lines = [("DEMO0001", 5_000_00, acme, "上海示例云计算有限公司", "12月云服务费"),
             ("DEMO0002", 1_200_00, acme, "北京代付商贸有限公司", "代付 acme-cloud 货款"),
             ("DEMO0003", 800_00, zhang, "张三", "保证金"),
             ("DEMO0004", 300_00, acme[:15] + "0000000000", "杭州某某科技有限公司", "充值"),
             ("DEMO0005", 99_00, "6222020200998877665", "深圳误转有限公司", "货款")]
    opening, total = 100_000_00, sum(line[1] for line in lines)
    text = (f":20:DEMO1201\n:25:{acme[:15]}\n:28C:1/1\n:60F:C261201CNY{opening // 100},00\n"
            + "".join(_statement_line(*line) for line in lines)
            + f":62F:C261201CNY{(opening + total) // 100},00\n-\n")
    path = home / "demo-statement.sta"
    path.write_text(text, encoding="utf-8")
    summaries = []
    for _ in range(2):
        parsed = statements.parse(path)
        with transaction(rt.engine) as conn:
            summaries.append(remittances.import_transfers(
                conn, rt.clock, DEMO_OPERATOR, list(parsed.transfers()), source=parsed.format,
                digest=parsed.digest))
    return path, summaries


# ---------------------------------------------------------------- the sandbox provider

DEMO_RECHARGE_FEN = 100_00


@dataclass
class Sandbox:
    """The sandbox payment provider served in a thread beside the demo's server."""

    url: str
    server: object  # uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_sandbox(home: Path, host: str, port: int, notify_url: str) -> tuple[Sandbox, dict]:
    """Serve the sandbox (keys in ``home``/sandbox-pay) on ``port`` (0: a free one);
    returns it and the gateways of Fee Center's WeChat Pay adapter pointed at it
    (QQ Wallet and online banking go to it too)."""
    import uvicorn

    from feecenter.gateways import configured
    from feecenter.sandbox import keys as sandbox_keys
    from feecenter.sandbox.app import create_app

    keys = sandbox_keys.load_or_create(home / "sandbox-pay")
    if port == 0:
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(keys), host=host, port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, name="sandbox-pay", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the sandbox payment provider could not listen on {host}:{port}")
        time.sleep(0.02)
    url = f"http://{host}:{port}"
    env = {**sandbox_keys.merchant_env(keys, url, notify_url),
           "FEECENTER_SANDBOX_CHANNELS": "qq,netbank"}
    return Sandbox(url, server, thread), configured(env)


def sandbox_recharge(rt: Runtime, uin: int) -> dict:
    """A recharge paid in the sandbox and credited (the demo's server is not up yet,
    so the payer's page pays without notifying and a query credits it, as the
    recovery job would)."""
    import requests

    made = recharges.create(rt.engine, rt.clock, DEMO_OPERATOR, uin,
                            recharges.NewRecharge(DEMO_RECHARGE_FEN, "wechat", "demo-payer"),
                            rt.gateways)
    requests.post(made["code_url"], data={"action": "pay", "notify": "no"},
                  timeout=10).raise_for_status()
    return recharges.query(rt.engine, rt.clock, DEMO_OPERATOR, made["id"], rt.gateways)


def run_demo(*, host: str, port: int, console: Console, simulated_days: int = SIMULATED_DAYS,
             tls: bool = False, sandbox_port: int = 8090,
             ) -> tuple[Runtime, LocalTLS | None, Sandbox]:
    """Seed a fresh demo database, simulate the month, start the sandbox payment
    provider with one paid recharge, and print how to call it; returns the runtime
    for ``feecenter demo`` to serve (cli/main.py), with ``tls`` the local CA and
    server certificate to serve HTTPS with, and the running sandbox."""
    settings = _demo_settings()
    files = local_tls(settings.home / "tls") if tls else None
    scheme = "https" if files else "http"
    rt = open_runtime(settings)
    rows = seed(rt)
    logins = console_logins(rt, rows)
    ops_login = operator_login(rt)
    month = simulate_month(rt, rows, days=simulated_days)
    sandbox, rt.gateways = start_sandbox(settings.home, host, sandbox_port,
                                         f"{scheme}://{host}:{port}/api/v1/recharges/notify/wechat")
    if rt.settings.public_url is None:  # download links (DescribeBillDownloadUrl) absolute
        rt.settings = dataclasses.replace(rt.settings, public_url=f"{scheme}://{host}:{port}")
    recharged = sandbox_recharge(rt, rows[1]["uin"])
    statement, (imported, again) = demo_statement(rt, rows, settings.home)
    invoiced = demo_invoice(rt, rows[1]["uin"])
    invoice_text = (f"acme-cloud's ordinary invoice of {format_yuan(invoiced['amount'])} yuan "
                    f"issued, number {', '.join(invoiced['numbers'])} (发票 page: PDF and XML)"
                    if invoiced else "acme-cloud has nothing to invoice after the month")
    table = Table(title="演示账号与密钥 / demo accounts and API keys")
    for col in ("who", "uin", "secret_id", "secret_key"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["who"], str(row["uin"]), row["secret_id"], row["secret_key"])
    console.print(table)
    owner = rows[1]
    debtors = ", ".join(f"{uin} owes {format_yuan(fen)}" for uin, fen in
                        month["in_arrears"].items()) or "none"
    console.print(
        f"Simulated month / 模拟一个月 ({simulated_days} days): "
        f"{business_time_text(month['start'])} → {business_time_text(month['end'])}, "
        f"{month['resources']} postpaid resources, "
        f"{month['records']} usage records through the intake, {month['bill_lines']} bill "
        f"lines settled by the job runner, {format_yuan(month['deducted_fen'])} yuan deducted; "
        f"in arrears / 欠费: {debtors} ({month['seconds']} s)",
        soft_wrap=True, highlight=False, markup=False)
    bin_dir = Path(sys.executable).parent  # the venv's: commands work without activating it
    sdk_profile = (f'endpoint="{host}:{port}", certification="{files.ca}"' if files
                   else f'protocol="http", endpoint="{host}:{port}"')
    console_table = Table(title=f"控制台登录 / web console logins: {scheme}://{host}:{port}/console/")
    for col in ("account", "uin", "login", "role", "password"):
        console_table.add_column(col)
    for login in logins:
        console_table.add_row(login["account"], str(login["uin"]), login["login"], login["role"],
                              login["password"])
    console.print(console_table)
    console.print(f"""
Web console / 控制台: {scheme}://{host}:{port}/console/  (log in with an account, user name and password above)
Sandbox payment provider / 支付沙箱: {sandbox.url}  (WeChat Pay v3; 在线充值's QR codes open its payer page; acme-cloud's recharge {recharged['out_trade_no']} of {format_yuan(recharged['amount'])} yuan is {recharged['state']})
Bank statement / 银行流水: {statement} imported (credited {imported.credited}, pending {imported.pending}, held {imported.held}, unassigned {imported.unassigned}, not ours {imported.not_ours}); imported again: {again.duplicates} duplicates, nothing changed (对公汇款 pages; docs/remittance.md)
Invoice / 发票: {invoice_text}
Operator console / 运营控制台: {scheme}://{host}:{port}/console/ops/  (operator {ops_login['name']}, password {ops_login['password']})
Database / 数据库: {settings.database_url}  (a rerun replaces it and its keys / 重新运行会替换数据库与密钥)
API: {scheme}://{host}:{port}/api/v1   OpenAPI: {scheme}://{host}:{port}/docs
Tencent-compatible endpoint / 腾讯云兼容接口: POST {scheme}://{host}:{port}/  (X-TC-Version 2018-07-09)

Call it with the official SDK (installed in this venv; run the lines below in {bin_dir}/python):
  from tencentcloud.common import credential
  from tencentcloud.common.profile.client_profile import ClientProfile
  from tencentcloud.common.profile.http_profile import HttpProfile
  from tencentcloud.billing.v20180709 import billing_client, models
  http = HttpProfile({sdk_profile})
  client = billing_client.BillingClient(credential.Credential("{owner['secret_id']}", "{owner['secret_key']}"), "", ClientProfile(httpProfile=http))
  print(client.DescribeAccountBalance(models.DescribeAccountBalanceRequest()).to_json_string())
{_tccli_lines(host, port, owner, files) if files else ""}
Or the native API with the bundled signed client (in {bin_dir}/python):
  from feecenter.cli.client import FeeCenterClient
  FeeCenterClient("{scheme}://{host}:{port}", "{owner['secret_id']}", "{owner['secret_key']}"{f', cafile="{files.ca}"' if files else ""}).get("/api/v1/accounts/{owner['uin']}/balance")

Or the operator CLI on the same database:
  FEECENTER_HOME={settings.home} FEECENTER_DATABASE_URL={settings.database_url} {bin_dir}/feecenter balance --uin {owner['uin']}
""", soft_wrap=True, highlight=False, markup=False)
    return rt, files, sandbox


def _tccli_lines(host: str, port: int, owner: dict, files: LocalTLS) -> str:
    """How to call the demo with tccli, which trusts only its own certifi bundle."""
    return f"""
Or tccli (pip install tccli into a venv of its own; it trusts only that venv's certifi bundle,
so append the demo CA to it once, with that venv's python):
  cat {files.ca} >> "$(TCCLI_VENV/bin/python -m certifi)"
  TENCENTCLOUD_SECRET_ID={owner['secret_id']} TENCENTCLOUD_SECRET_KEY={owner['secret_key']} TCCLI_VENV/bin/tccli billing DescribeAccountBalance --endpoint {host}:{port} --region ap-guangzhou
"""
