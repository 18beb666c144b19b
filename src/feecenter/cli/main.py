"""The operator CLI (Typer + Rich): the ``feecenter`` app, its wiring, and the
account, API key, operator, money, credit, reconciliation, database, serve and
demo commands. ``--json`` prints exactly one JSON object.

The commands below are a scripting contract (see docs/cli.md); keep them
stable. The database comes from FEECENTER_DATABASE_URL (default: the SQLite
file in FEECENTER_HOME). Exit code 0 on success, 1 on a refused operation
(the error names the field, in Chinese and English), 2 on bad usage.

Startup: this module and the command modules import only Typer, Rich and
``cli.common`` at the top; a command imports the services it calls inside its
function, so ``feecenter --help`` loads no SQLAlchemy, FastAPI or domain code
(tests/test_cli_startup.py).
"""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from feecenter.cli.bills import bills_app
from feecenter.cli.catalog import catalog_app
from feecenter.cli.common import JsonOpt, emit as _emit, err, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime
from feecenter.cli.jobs import jobs_app, worker_command
from feecenter.cli.orders import orders_app
from feecenter.cli.recharges import recharge_app, sandbox_pay_command
from feecenter.cli.remittances import remittance_app, statement_app
from feecenter.cli.renewal import renewal_app
from feecenter.cli.simulate import simulate_command
from feecenter.cli.usage import usage_app

app = typer.Typer(help="Fee Center 费用中心 — operator CLI", no_args_is_help=True,
                  pretty_exceptions_enable=False)
account_app = typer.Typer(help="Customer accounts / 客户账号", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys / API 密钥", no_args_is_help=True)
operator_app = typer.Typer(help="Platform operators / 运营人员", no_args_is_help=True)
credit_app = typer.Typer(help="Credit control (BAL-7) / 信控", no_args_is_help=True)
db_app = typer.Typer(help="Database / 数据库", no_args_is_help=True)
for sub, name in ((account_app, "account"), (apikey_app, "apikey"), (operator_app, "operator"),
                  (credit_app, "credit"), (db_app, "db"), (catalog_app, "catalog"),
                  (usage_app, "usage"), (jobs_app, "jobs"), (bills_app, "bills"),
                  (orders_app, "orders"), (recharge_app, "recharge"),
                  (statement_app, "statement"), (remittance_app, "remittance"),
                  (renewal_app, "renewal")):
    app.add_typer(sub, name=name)
app.command("worker", help="Run due scheduled jobs on the wall clock / 定时任务执行器")(worker_command)
app.command("simulate", help="Simulate a small cloud from a seed / 确定性模拟")(simulate_command)
app.command("sandbox-pay", help="The sandbox payment provider (WeChat Pay v3) / 支付沙箱")(
    sandbox_pay_command)



# ---------------------------------------------------------------- accounts

@account_app.command("create")
def account_create(
    name: Annotated[str, typer.Option(help="account name (unique)")],
    personal: Annotated[Optional[str], typer.Option(help="verified personal real name")] = None,
    enterprise: Annotated[Optional[str], typer.Option(help="verified enterprise name")] = None,
    uscc: Annotated[Optional[str], typer.Option(help="unified social credit code")] = None,
    email: Optional[str] = None, phone: Optional[str] = None, as_json: JsonOpt = False,
) -> None:
    """Create a customer account; prints its UIN."""
    from feecenter.accounts import service as accounts
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid

    with _refusals(as_json):
        if uscc and not enterprise:
            raise invalid("enterprise", "提供统一社会信用代码时必须提供企业名称 --enterprise",
                          "--uscc needs --enterprise")
        rt = _runtime()
        with transaction(rt.engine) as conn:
            uin = accounts.create_account(conn, rt.clock, _actor(), accounts.NewAccount(
                name=name, personal_name=personal, enterprise_name=enterprise, uscc=uscc,
                email=email, phone=phone))
    _emit(as_json, {"uin": uin})


@account_app.command("show")
def account_show(uin: Annotated[int, typer.Option()], as_json: JsonOpt = False) -> None:
    """Show an account's profile and state (ACC-1, ACC-4)."""
    from feecenter.accounts import service as accounts
    from feecenter.clock import business_time_text

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            row = accounts.get_account(conn, _actor(), uin)
            row["state"] = accounts.account_state(conn, rt.clock, uin)
    row["created_at"] = business_time_text(row["created_at"])
    _emit(as_json, row)


@account_app.command("add-user")
def account_add_user(uin: Annotated[int, typer.Option()], login: Annotated[str, typer.Option()],
                     role: Annotated[str, typer.Option(help="finance | admin | readonly")],
                     email: Annotated[Optional[str], typer.Option(help="its own email")] = None,
                     phone: Annotated[Optional[str], typer.Option(help="its own phone")] = None,
                     as_json: JsonOpt = False) -> None:
    """Add a sub-user with a role (ACC-2), and where it receives notifications."""
    from feecenter.accounts import service as accounts
    from feecenter.db.engine import transaction

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            user_id = accounts.add_user(conn, rt.clock, _actor(), uin, login, role,
                                        email=email, phone=phone)
    _emit(as_json, {"user_id": user_id, "login": login, "role": role})


@account_app.command("set-password")
def account_set_password(
    uin: Annotated[int, typer.Option()],
    login: Annotated[Optional[str], typer.Option(help="the user's login (default: the owner)")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a user's web console password (read from a prompt, or the first line of stdin
    when it is not a terminal); ends the user's open console sessions."""
    from feecenter.auth import sessions
    from feecenter.db.engine import transaction

    password = _read_password()
    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            user = sessions.set_password(conn, rt.clock, _actor(), uin, login, password)
    _emit(as_json, {"uin": uin, "login": user, "password_set": True})


def _read_password() -> str:
    """From a prompt (twice), or the first line of stdin when it is not a terminal."""
    if sys.stdin.isatty():
        return typer.prompt("Password / 密码", hide_input=True,
                            confirmation_prompt="Repeat / 再次输入")
    return sys.stdin.readline().rstrip("\r\n")


# ---------------------------------------------------------------- keys and operators

@apikey_app.command("create")
def apikey_create(uin: Annotated[int, typer.Option()],
                  user: Annotated[Optional[str], typer.Option(help="sub-user login")] = None,
                  as_json: JsonOpt = False) -> None:
    """Create an API key for the owner or a sub-user; the secret key is shown once."""
    from feecenter.auth import service as auth
    from feecenter.db.engine import transaction

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            key = auth.create_api_key(conn, rt.clock, _actor(), uin, user)
    _emit(as_json, {"secret_id": key.secret_id, "secret_key": key.secret_key})


@operator_app.command("create")
def operator_create(name: Annotated[str, typer.Option()], as_json: JsonOpt = False) -> None:
    """Create a platform operator with an API key for the operator endpoints."""
    from feecenter.auth import service as auth
    from feecenter.db.engine import transaction

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            op_id, key = auth.create_operator(conn, rt.clock, _actor(), name)
    _emit(as_json, {"operator_id": op_id, "secret_id": key.secret_id,
                    "secret_key": key.secret_key})


@operator_app.command("set-password")
def operator_set_password(name: Annotated[str, typer.Option(help="the operator's name")],
                          as_json: JsonOpt = False) -> None:
    """Set an operator's console password (read from a prompt, or the first line of stdin
    when it is not a terminal); ends its open operator console sessions."""
    from feecenter.auth import operator_sessions
    from feecenter.db.engine import transaction

    password = _read_password()
    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            operator_sessions.set_password(conn, rt.clock, _actor(), name, password)
    _emit(as_json, {"operator": name, "password_set": True})


# ---------------------------------------------------------------- money

@app.command()
def adjust(uin: Annotated[int, typer.Option()],
           reason: Annotated[str, typer.Option(help="why (kept in the audit log)")],
           cash: Annotated[Optional[str], typer.Option(help='yuan, e.g. "100.00" or "-5.00"')] = None,
           gift: Annotated[Optional[str], typer.Option(help='yuan, e.g. "20.00"')] = None,
           idempotency_key: Annotated[Optional[str], typer.Option()] = None,
           as_json: JsonOpt = False) -> None:
    """Adjust an account's cash or gift balance (operator, audited)."""
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid
    from feecenter.funds import service as funds
    from feecenter.money import parse_yuan
    from feecenter.present.funds import balance_json

    with _refusals(as_json):
        if (cash is None) == (gift is None):
            raise invalid("cash", "必须且只能指定 --cash 或 --gift 之一",
                          "give exactly one of --cash or --gift")
        sub, text = ("cash", cash) if cash is not None else ("gift", gift)
        amount = parse_yuan(text, sub, allow_negative=True)
        rt = _runtime()
        with transaction(rt.engine) as conn:
            movement = funds.adjust(conn, rt.clock, _actor(), uin, sub_account=sub, amount=amount,
                                    reason=reason, key=idempotency_key or f"cli:{uuid.uuid4()}")
        with rt.engine.connect() as conn:
            view = funds.balance_view(conn, rt.clock, _actor(), uin)
    _emit(as_json, {"txn_id": movement.txn_id, "created": movement.created,
                    "balance": balance_json(view)})


@app.command()
def balance(uin: Annotated[int, typer.Option()], as_json: JsonOpt = False) -> None:
    """Every BAL-1 sub-balance and the available balance (BAL-2), in yuan."""
    from feecenter.funds import service as funds
    from feecenter.present.funds import balance_json

    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            view = funds.balance_view(conn, rt.clock, _actor(), uin)
    _emit(as_json, balance_json(view), _render_balance)


def _render_balance(data: dict) -> None:
    table = Table(title=f"账户余额 / Balance — UIN {data['uin']}")
    table.add_column("项目 / item")
    table.add_column("金额（元）/ yuan", justify="right")
    labels = {"cash": "现金账户 cash", "income": "收益转入 income", "gift": "赠送账户 gift",
              "frozen": "冻结金额 frozen", "arrears": "欠费金额 arrears",
              "available": "可用余额 available", "credit_amount": "信用额度 credit",
              "advances": "垫付未回款 advances", "real_credit_balance": "可用信用额度 credit available"}
    for key, label in labels.items():
        table.add_row(label, data[key])
    out.print(table)


@app.command()
def transactions(uin: Annotated[int, typer.Option()],
                 type: Annotated[Optional[list[str]], typer.Option(help="action type")] = None,  # noqa: A002
                 start: Optional[str] = None, end: Optional[str] = None,
                 product: Optional[str] = None, offset: int = 0, limit: int = 20,
                 as_json: JsonOpt = False) -> None:
    """The transaction list (收支明细, BAL-5), newest first."""
    from feecenter.clock import parse_business_time
    from feecenter.funds import service as funds
    from feecenter.present.funds import entry_json

    with _refusals(as_json):
        query = funds.StatementQuery(
            start=parse_business_time(start, "start") if start else None,
            end=parse_business_time(end, "end") if end else None,
            action_types=tuple(type or ()), product_code=product, offset=offset, limit=limit)
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = funds.list_transactions(conn, _actor(), uin, query)
    payload = {"total": page["total"], "items": [entry_json(e) for e in page["items"]]}
    _emit(as_json, payload, _render_transactions)


def _render_transactions(data: dict) -> None:
    table = Table(title=f"收支明细 / Transactions ({data['total']})")
    columns = ("created_at", "action_type", "amount", "cash_amount", "gift_amount",
               "coupon_amount", "balance_after", "memo")
    for col in columns:
        table.add_column(col)
    for item in data["items"]:
        table.add_row(*(str(item[c] or "") for c in columns))
    out.print(table)


@credit_app.command("set")
def credit_set(uin: Annotated[int, typer.Option()], limit: Annotated[str, typer.Option()],
               temp: str = "0.00", temp_end: Optional[str] = None,
               as_json: JsonOpt = False) -> None:
    """Grant credit and temporary credit (BAL-7)."""
    from feecenter.clock import parse_business_time
    from feecenter.db.engine import transaction
    from feecenter.funds import service as funds
    from feecenter.money import parse_yuan
    from feecenter.present.funds import balance_json

    with _refusals(as_json):
        end = parse_business_time(temp_end, "temp_end") if temp_end else None
        rt = _runtime()
        with transaction(rt.engine) as conn:
            view = funds.grant_credit(conn, rt.clock, _actor(), uin,
                                      credit_limit=parse_yuan(limit, "limit", allow_zero=True),
                                      temp_credit=parse_yuan(temp, "temp", allow_zero=True),
                                      temp_credit_end=end)
    _emit(as_json, balance_json(view))


@app.command()
def reconcile(uin: Annotated[Optional[int], typer.Option()] = None,
              as_json: JsonOpt = False) -> None:
    """Recompute every balance from its postings (BAL-6) and check the cost bills'
    levels, L0 = Σ L1 = Σ L2 = Σ L3 (BIL-1); exit 0 only when all agree."""
    from feecenter.bills.check import check_bills
    from feecenter.ledger.reconcile import reconcile as reconcile_ledger

    rt = _runtime()
    with rt.engine.connect() as conn:
        differences = reconcile_ledger(conn, uin) + check_bills(conn, uin)
    payload = {"clean": not differences, "differences": [d.to_dict() for d in differences]}
    if as_json:
        print(json.dumps(payload))
    elif differences:
        for d in differences:
            err.print(f"{d.kind} {d.subject}: expected {d.expected}, found {d.actual}",
                      style="red", markup=False)
    else:
        out.print("[green]对账无差异 / reconciliation clean[/green]")
    raise typer.Exit(0 if not differences else 1)


# ---------------------------------------------------------------- running

@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the schema to the newest revision."""
    from feecenter.config import load_settings
    from feecenter.db.engine import make_engine
    from feecenter.db.migrate import head_revision, upgrade

    engine = make_engine(load_settings().database_url)
    upgrade(engine)
    out.print(f"schema at revision {head_revision()}")


def serve_app(rt, host: str, port: int, tls: tuple[str, str] | None = None) -> None:
    """The composition root: the one place in cli/ that imports ``feecenter.api``,
    to build the ASGI app (the native REST API with the compat endpoint) and serve it,
    over TLS when ``tls`` is (certificate file, key file)."""
    import uvicorn

    from feecenter.api.app import create_app

    cert, key = tls or (None, None)
    uvicorn.run(create_app(rt), host=host, port=port, ssl_certfile=cert, ssl_keyfile=key)


def _tls_files(cert: Optional[Path], key: Optional[Path]) -> tuple[str, str] | None:
    """--tls-cert and --tls-key: both or neither, each a readable file."""
    from feecenter.errors import invalid

    if cert is None and key is None:
        return None
    for field, path in (("tls_cert", cert), ("tls_key", key)):
        if path is None:
            raise invalid(field, "--tls-cert 与 --tls-key 必须同时提供",
                          "give --tls-cert and --tls-key together")
        if not path.is_file():
            raise invalid(field, f"找不到文件：{path}", f"no such file: {path}")
    return str(cert), str(key)


TlsCertOpt = Annotated[Optional[Path], typer.Option(
    help="PEM certificate (chain) to serve HTTPS with / HTTPS 证书文件")]
TlsKeyOpt = Annotated[Optional[Path], typer.Option(
    help="PEM private key of --tls-cert / 证书私钥文件")]


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8000, tls_cert: TlsCertOpt = None,
          tls_key: TlsKeyOpt = None) -> None:
    """Serve the native REST API (/api/v1, /docs) and the compat endpoint (POST /),
    over HTTPS with --tls-cert and --tls-key."""
    with _refusals(False):  # a payment setting that cannot work refuses to start
        tls = _tls_files(tls_cert, tls_key)
        rt = _runtime()
    serve_app(rt, host, port, tls)


@app.command()
def demo(host: str = "127.0.0.1", port: int = 8000,
         serve_api: Annotated[bool, flag("--serve/--no-serve")] = True,
         tls: Annotated[bool, flag("--tls", help="serve HTTPS with a local CA made in "
                                   "FEECENTER_HOME/tls / 用本地 CA 提供 HTTPS")] = False,
         sandbox_port: Annotated[int, typer.Option(
             help="port of the sandbox payment provider / 支付沙箱端口")] = 8090) -> None:
    """Create a demo database with sample accounts and keys, start the sandbox payment
    provider, then serve the API."""
    from feecenter.cli.demo import run_demo

    wide = out if out.is_terminal else Console(width=200)  # keys must not be cut off in logs
    rt, files, sandbox = run_demo(host=host, port=port, console=wide, tls=tls,
                                  sandbox_port=sandbox_port)
    try:
        if serve_api:
            serve_app(rt, host, port, files and (str(files.cert), str(files.key)))
    finally:
        sandbox.stop()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
