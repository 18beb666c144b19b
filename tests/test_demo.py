"""`feecenter demo` builds a consistent sample world (the README's main command)."""

from rich.console import Console

from feecenter.demo import run_demo
from feecenter.ledger.reconcile import reconcile
from feecenter.runtime import open_runtime
from tests.conftest import MASTER_KEY


def test_demo_seeds_accounts_orders_and_stays_reconciled(database_url, tmp_path, monkeypatch):
    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    console = Console(record=True, width=200)
    run_demo(host="127.0.0.1", port=8000, serve_api=False, console=console)
    text = console.export_text()
    assert "DescribeAccountBalance" in text and "AKID" in text
    rt = open_runtime()
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
        states = dict(conn.exec_driver_sql(
            "SELECT state, count(*) FROM orders GROUP BY state").fetchall())
    assert states == {"delivered": 1, "paid": 1, "unpaid": 1}
    rt.engine.dispose()
