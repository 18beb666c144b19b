"""``feecenter bills lines``: an account's L3 bill lines from the operator CLI (BIL-1)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import typer
from typer.testing import CliRunner

from feecenter.cli.bills import bills_app
from tests.conftest import MASTER_KEY
from tests.helpers import add_cash, add_gift, new_account
from tests.test_settlement import hour, ingest, load, open_, settle


@pytest.fixture
def run(rt, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    app = typer.Typer()
    app.add_typer(bills_app, name="bills")  # as cli/main.py wires it
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, ["bills", *[str(a) for a in args]])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.mark.spec("BIL-1")
def test_bills_lines_lists_an_accounts_l3_lines(rt, run):
    load(rt)
    uin = new_account(rt)
    add_gift(rt, uin, 30)
    add_cash(rt, uin, 10_00)
    rid = open_(rt, uin, name="web-1")
    s, e = hour(0)
    rt.clock.set(e + timedelta(minutes=5))
    ingest(rt, [("a1", uin, rid, "S5.MEDIUM4", "1", s, e)])
    settle(rt, "hour", s)

    result = run("lines", "--uin", uin, "--month", "2026-03", "--json")
    assert result.exit_code == 0, result.output
    [line] = result.stdout.strip().splitlines()
    payload = json.loads(line)
    assert payload["total"] == 1
    assert payload["statistic_period"] == "deduction_time"  # the month's basis (BIL-3)
    [item] = payload["items"]
    assert (item["resource_id"], item["billing_item"], item["quantity"]) == (
        rid, "S5.MEDIUM4", "1.000000")
    assert (item["unit_price"], item["discounted_amount"], item["deducted"]) == (
        "0.50000000", "0.50000000", "0.50")
    assert (item["gift_paid"], item["cash_paid"], item["arrears"]) == ("0.30", "0.20", "0.00")

    table = run("lines", "--uin", uin)
    assert table.exit_code == 0 and "1 of 1 lines" in table.stdout  # (narrow terminal)
    empty = json.loads(run("lines", "--uin", uin, "--month", "2025-01", "--json").stdout)
    assert empty["total"] == 0 and empty["items"] == []


def test_bills_lines_refuses_a_bad_month(rt, run):
    uin = new_account(rt)
    result = run("lines", "--uin", uin, "--month", "March", "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["field"] == "month"
    too_many = run("lines", "--uin", uin, "--limit", 5000)
    assert too_many.exit_code == 2


@pytest.mark.spec("BIL-3")
def test_bills_statistic_period_switches_once_with_the_acknowledgement(rt, run):
    uin = new_account(rt)
    shown = json.loads(run("statistic-period", "--uin", uin, "--json").stdout)
    assert (shown["statistic_period"], shown["switched_in"]) == ("deduction_time", None)
    assert shown["acknowledgement"]["version"]
    no_ack = run("statistic-period", "--uin", uin, "--switch", "--request-note", "T-1", "--json")
    assert no_ack.exit_code == 1
    assert json.loads(no_ack.stdout)["error"]["field"] == "acknowledged"
    no_note = run("statistic-period", "--uin", uin, "--switch", "--acknowledge", "--json")
    assert json.loads(no_note.stdout)["error"]["field"] == "request_note"
    done = run("statistic-period", "--uin", uin, "--switch", "--acknowledge",
               "--request-note", "T-1", "--json")
    assert done.exit_code == 0, done.stdout
    switched = json.loads(done.stdout)
    assert (switched["statistic_period"], switched["requested_by"]) == ("usage_time", "operator")
    assert len(switched["switched_in"]) == 7
    again = run("statistic-period", "--uin", uin, "--switch", "--acknowledge",
                "--request-note", "T-2", "--json")
    assert again.exit_code == 1 and json.loads(again.stdout)["error"]["field"] == "period"
    table = run("statistic-period", "--uin", uin)
    assert table.exit_code == 0 and "usage time since" in table.stdout
