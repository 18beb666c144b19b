"""``feecenter demo``: a fresh SQLite database with sample accounts and keys,
served on the API, with instructions printed for calling it."""

from __future__ import annotations

import os
from pathlib import Path

from rich.console import Console
from rich.table import Table
from stdnum.cn import uscc

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import operator
from feecenter.auth import service as auth
from feecenter.catalog import service as catalog
from feecenter.config import Settings, load_settings
from feecenter.funds import service as funds
from feecenter.orders import service as orders
from feecenter.resources import service as resources
from feecenter.runtime import Runtime, open_runtime

DEMO_OPERATOR = operator("demo")
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
    with rt.engine.begin() as conn:
        _, ops_key = auth.create_operator(conn, clock, DEMO_OPERATOR, "demo-operator")
        rows.append({"who": "operator demo-operator", "uin": "-", **ops_key.__dict__})
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


def run_demo(*, host: str, port: int, serve_api: bool, console: Console) -> None:
    settings = _demo_settings()
    rt = open_runtime(settings)
    rows = seed(rt)
    table = Table(title="演示账号与密钥 / demo accounts and API keys")
    for col in ("who", "uin", "secret_id", "secret_key"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["who"], str(row["uin"]), row["secret_id"], row["secret_key"])
    console.print(table)
    owner = rows[1]
    console.print(f"""
Database / 数据库: {settings.database_url}
API: http://{host}:{port}/api/v1   OpenAPI: http://{host}:{port}/docs
Tencent-compatible endpoint / 腾讯云兼容接口: POST http://{host}:{port}/  (X-TC-Version 2018-07-09)

Call it with the official SDK (pip install tencentcloud-sdk-python-billing):
  from tencentcloud.common import credential
  from tencentcloud.common.profile.client_profile import ClientProfile
  from tencentcloud.common.profile.http_profile import HttpProfile
  from tencentcloud.billing.v20180709 import billing_client, models
  http = HttpProfile(protocol="http", endpoint="{host}:{port}")
  client = billing_client.BillingClient(credential.Credential("{owner['secret_id']}", "{owner['secret_key']}"), "", ClientProfile(httpProfile=http))
  print(client.DescribeAccountBalance(models.DescribeAccountBalanceRequest()).to_json_string())

Or the native API with the bundled signed client:
  from feecenter.client import FeeCenterClient
  FeeCenterClient("http://{host}:{port}", "{owner['secret_id']}", "{owner['secret_key']}").get("/api/v1/accounts/{owner['uin']}/balance")

Or the operator CLI on the same database:
  FEECENTER_DATABASE_URL={settings.database_url} feecenter balance --uin {owner['uin']}
""", soft_wrap=True, highlight=False, markup=False)
    if serve_api:
        import uvicorn

        from feecenter.api.app import create_app

        uvicorn.run(create_app(rt), host=host, port=port)
