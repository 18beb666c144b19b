"""`feecenter demo` builds a consistent sample world (the README's main command)."""

import re

import pytest
import requests
from rich.console import Console
from sqlalchemy import text as sql
from starlette.testclient import TestClient

from feecenter.api.app import create_app

from feecenter.db.engine import dispose
from feecenter.cli.demo import run_demo
from feecenter.ledger.reconcile import reconcile
from feecenter.runtime import open_runtime
from tests.conftest import MASTER_KEY


@pytest.mark.slow
def test_demo_seeds_accounts_orders_and_stays_reconciled(database_url, tmp_path, monkeypatch,
                                                        request):
    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    console = Console(record=True, width=200)
    # fewer days than the real demo's month keep the test short; 8 are enough for arrears
    _, tls, sandbox = run_demo(host="127.0.0.1", port=8000, console=console, simulated_days=8,
                               tls=True, sandbox_port=0)
    request.addfinalizer(sandbox.stop)
    text = console.export_text()
    assert "DescribeAccountBalance" in text and "AKID" in text
    # --tls: a local CA in FEECENTER_HOME/tls, and how the SDK and tccli trust it
    assert tls.ca == tmp_path / "tls" / "ca.pem" and tls.key.stat().st_mode & 0o077 == 0
    assert f'certification="{tls.ca}"' in text and "POST https://127.0.0.1:8000/" in text
    assert f'cat {tls.ca} >> "$(TCCLI_VENV/bin/python -m certifi)"' in text
    assert "tccli billing DescribeAccountBalance --endpoint 127.0.0.1:8000" in text
    assert "Simulated month / 模拟一个月 (8 days)" in text
    # an issued invoice for the 发票 page (INV-5)
    assert re.search(r"Invoice / 发票: acme-cloud's ordinary invoice of [0-9]+\.[0-9]{2} yuan "
                     r"issued, number [0-9]{20}", text), text
    # the web console: its URL and a login of each demo user that works
    assert "Web console / 控制台: https://127.0.0.1:8000/console/" in text
    logins = re.findall(r"│ (acme-cloud|zhang-san|new-startup) +│ (\d+) +│ ([\w-]+) +│ (\w+) +│ (\S+) +│",
                        text)
    assert {(a, login, role) for a, _, login, role, _ in logins} == {
        ("acme-cloud", "acme-cloud", "owner"), ("acme-cloud", "acme-finance", "finance"),
        ("acme-cloud", "acme-readonly", "readonly"), ("zhang-san", "zhang-san", "owner"),
        ("new-startup", "new-startup", "owner")}
    rt = open_runtime()
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
        states = dict(conn.exec_driver_sql(
            "SELECT state, count(*) FROM orders GROUP BY state").fetchall())
        # the simulated month: settled postpaid lines, hourly (cvm, cbs) and daily (cos, cdn)
        cycles = dict(conn.exec_driver_sql(
            "SELECT cycle, count(*) FROM bill_lines GROUP BY cycle").fetchall())
        deductions = dict(conn.exec_driver_sql(
            "SELECT deduct_mode, count(*) FROM statement_entries WHERE action_type = 'deduct'"
            " AND deduct_mode IS NOT NULL GROUP BY deduct_mode").fetchall())
        in_arrears = conn.exec_driver_sql(
            "SELECT count(*) FROM bill_lines WHERE arrears > 0").scalar_one()
        # the simulated days' cost-bill roll-ups (BIL-2): every line of a day before
        # today is in them, so 账单概览 shows the month
        rolled, refreshed = conn.exec_driver_sql(
            "SELECT (SELECT coalesce(sum(lines), 0) FROM bill_rollups),"
            " (SELECT count(*) FROM bill_rollup_days)").one()
        names = [row[0] for row in conn.exec_driver_sql(
            "SELECT name FROM customers c WHERE EXISTS (SELECT 1 FROM bill_lines b"
            " WHERE b.uin = c.uin AND b.arrears > 0)").fetchall()]
        resource_states = dict(conn.exec_driver_sql(
            "SELECT state, count(*) FROM resources WHERE pay_mode = 'postpaid'"
            " GROUP BY state").fetchall())
    assert states == {"delivered": 1, "paid": 1, "unpaid": 1}
    assert cycles["hour"] >= 8 * 3 and cycles["day"] >= 7 * 3
    assert deductions.get("hour_h") and deductions.get("hour_d")
    assert in_arrears > 0 and names == ["new-startup"]
    assert refreshed >= 7 and rolled > 0  # and reconcile's bill check held on those days
    assert resource_states.get("running", 0) >= 4  # acme-cloud's keep running
    # the sandbox payment provider runs beside the server; acme-cloud's recharge was paid
    assert f"Sandbox payment provider / 支付沙箱: {sandbox.url}" in text
    assert requests.get(f"{sandbox.url}/v3/certificates", timeout=5).status_code == 401  # unsigned
    with rt.engine.connect() as conn:
        recharged = conn.exec_driver_sql(
            "SELECT r.uin, r.amount, r.state, s.action_type, s.deduct_mode FROM recharges r"
            " JOIN statement_entries s ON s.txn_id = r.txn_id").fetchall()
    acme = int(logins[0][1])  # acme-cloud's owner is the first login printed
    assert [tuple(r) for r in recharged] == [(acme, 100_00, "paid", "recharge", "online")]
    # a bank statement with one transfer of each outcome, imported twice (RMT-2..7)
    assert re.search(r"Bank statement / 银行流水: \S+demo-statement.sta imported \(credited 1, "
                     r"pending 1, held 1, unassigned 1, not ours 1\); imported again: "
                     r"5 duplicates, nothing changed", text)
    with rt.engine.connect() as conn:
        remitted = dict(conn.exec_driver_sql(
            "SELECT bank_reference, state FROM remittances").fetchall())
        credited = conn.execute(sql(
            "SELECT amount, deduct_mode FROM statement_entries WHERE uin = :uin"
            " AND action_type = 'recharge' AND pay_channel = 'bank'"), {"uin": acme}).fetchall()
    assert remitted == {"DEMO0001": "credited", "DEMO0002": "pending_signature",
                        "DEMO0003": "held", "DEMO0004": "unassigned", "DEMO0005": "not_ours"}
    assert [tuple(r) for r in credited] == [(5_000_00, "bank-enterprice")]
    http = TestClient(create_app(rt), base_url="https://127.0.0.1:8000", follow_redirects=False)
    account, _, login, _, password = logins[0]
    form = http.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    logged_in = http.post("/console/login", data={"account": account, "login": login,
                                                  "password": password, "csrf_token": token})
    assert logged_in.status_code == 303 and http.get("/console/").status_code == 200
    # the operator console's login works too
    operator, ops_password = re.search(
        r"Operator console / 运营控制台: https://127.0.0.1:8000/console/ops/  "
        r"\(operator ([\w-]+), password (\S+)\)", text).groups()
    form = http.get("/console/ops/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    ops_in = http.post("/console/ops/login", data={"name": operator, "password": ops_password,
                                                   "csrf_token": token})
    assert ops_in.status_code == 303 and http.get("/console/ops/").status_code == 200
    dispose(rt.engine)
