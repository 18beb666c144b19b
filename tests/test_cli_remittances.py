"""``feecenter statement import|imports`` and ``feecenter remittance queue|assign|release|
refund-unassigned|refund-remainder``
through Typer's CliRunner on both backends (RMT-2, RMT-3): the summary table and
--json, a refused file naming its line with exit 1 and nothing imported."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from feecenter.cli.main import app
from feecenter.db.engine import transaction
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import remittance_imports, remittances as remittances_table
from tests.conftest import MASTER_KEY
from tests.helpers import OPS, balance, new_account
from tests.test_rest_remittances import ENTITY, P1, USCC, mt940


@pytest.fixture
def run(rt, database_url, monkeypatch, tmp_path):
    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    runner = CliRunner()

    def invoke(*args):
        result = runner.invoke(app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return invoke


@pytest.fixture
def company(rt) -> tuple[int, str]:
    uin = new_account(rt, "cli-co", enterprise_name=ENTITY, uscc=USCC)
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin)["accounts"][0]["number"]
    return uin, number


def statement(tmp_path, number: str, name: str = "day.sta"):
    path = tmp_path / name
    path.write_bytes(mt940([("C-1", number, 500_00, ENTITY, "货款"),
                            ("C-2", number, 70_00, "代付公司", "货款"),
                            ("C-3", P1 + "0000000000", 30_00, ENTITY, "货款"),
                            ("C-4", "621700000000000099999", 9_00, ENTITY, "货款")]))
    return path


def counts(rt) -> tuple[int, int]:
    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (remittance_imports, remittances_table))


@pytest.mark.spec("RMT-2", "RMT-3")
def test_statement_import_prints_the_summary_table_and_imports_once(rt, run, company, tmp_path):
    uin, number = company
    path = statement(tmp_path, number)
    result = run("statement", "import", path)
    assert result.exit_code == 0, result.output
    for label, count in (("已充值 / credited", 1), ("待分配 / unassigned", 1),
                         ("待签署或待确认 / pending", 1), ("非本平台账号 / not ours", 1),
                         ("重复 / duplicates", 0)):
        assert any(label in line and line.rstrip(" │").endswith(str(count))
                   for line in result.stdout.splitlines()), (label, result.stdout)
    assert "500.00" in result.stdout and "609.00" in result.stdout  # credited, new (CNY)
    assert "C-4" in result.stdout  # the not-ours reference is reported
    size = path.stat().st_size  # under 1 kB: Rich shows it in bytes
    assert f"{size}/{size} bytes" in result.stderr and "writing" in result.stderr  # on stderr
    assert balance(rt, uin).cash == 500_00
    again = run("statement", "import", path, "--format", "mt940", "--json")
    assert again.exit_code == 0, again.output
    payload = json.loads(again.stdout)
    assert (payload["duplicates"], payload["credited"], payload["credited_amount"]) == (4, 0, "0.00")
    assert balance(rt, uin).cash == 500_00
    listed = json.loads(run("statement", "imports", "--json").stdout)["items"]
    assert [(i["lines"], i["credited"], i["duplicates"]) for i in listed] == [(4, 0, 4), (4, 1, 0)]
    assert "statement imports" in run("statement", "imports").stdout


@pytest.mark.spec("RMT-2")
def test_a_refused_file_names_its_line_exits_1_and_imports_nothing(rt, run, company, tmp_path):
    _, number = company
    path = tmp_path / "bad.sta"
    path.write_bytes(mt940([("B-1", number, 100_00, ENTITY, "x")]).replace(
        b":86:", b":61:garbage\n:86:", 1))
    result = run("statement", "import", path)
    assert result.exit_code == 1
    assert "line 6" in result.stderr and ":61:" in result.stderr
    assert counts(rt) == (0, 0)
    as_json = run("statement", "import", path, "--json")
    assert as_json.exit_code == 1
    error = json.loads(as_json.stdout)["error"]
    assert error["code"] == "StatementRefused" and error["details"]["line"] == 6
    unknown = run("statement", "import", statement(tmp_path, number), "--format", "csv")
    assert unknown.exit_code == 1 and "unknown statement format" in unknown.stderr
    assert counts(rt) == (0, 0)


@pytest.mark.spec("RMT-3")
def test_an_operator_works_a_queue_from_the_cli(rt, run, company, tmp_path):
    uin, number = company
    run("statement", "import", statement(tmp_path, number))
    listed = json.loads(run("remittance", "queue", "unassigned", "--json").stdout)
    [item] = listed["items"]
    assert (listed["total"], item["amount"], item["uin"]) == (1, "30.00", None)
    assert "待分配" in run("remittance", "queue", "unassigned").stdout
    assigned = run("remittance", "assign", item["id"], uin, "--json")
    assert assigned.exit_code == 0, assigned.output
    assert json.loads(assigned.stdout)["state"] == "credited"
    assert balance(rt, uin).cash == 530_00
    again = run("remittance", "assign", item["id"], uin)
    assert again.exit_code == 1 and "credited" in again.stderr
    not_held = run("remittance", "release", item["id"])
    assert not_held.exit_code == 1 and "released" in not_held.stderr
    bad_queue = run("remittance", "queue", "everything")
    assert bad_queue.exit_code == 1 and "unknown queue" in bad_queue.stderr


@pytest.mark.spec("RMT-11")
def test_an_operator_refunds_unassigned_money_to_its_payer_from_the_cli(rt, run, company,
                                                                     tmp_path):
    _, number = company
    run("statement", "import", statement(tmp_path, number))
    [item] = json.loads(run("remittance", "queue", "unassigned", "--json").stdout)["items"]
    payout = ("--holder", ENTITY, "--bank", "招商银行", "--reason", "无法识别收款账号")
    bad = run("remittance", "refund-unassigned", item["id"], *payout, "--bank-account", "12ab")
    assert bad.exit_code == 1 and "bank account" in bad.stderr
    with rt.engine.connect() as conn:
        state = conn.execute(select(remittances_table.c.state).where(
            remittances_table.c.id == item["id"])).scalar_one()
    assert state == "unassigned"  # the refused refund wrote nothing
    done = run("remittance", "refund-unassigned", item["id"], *payout,
               "--bank-account", "6225880112345678", "--json")
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert (result["state"], result["amount"]) == ("refunded", "30.00")
    again = run("remittance", "refund-unassigned", item["id"], *payout,
                "--bank-account", "6225880112345678")
    assert again.exit_code == 1  # refunded once only
    assert json.loads(run("remittance", "queue", "unassigned", "--json").stdout)["total"] == 0


def test_import_progress_is_reported_by_bytes_read_up_to_the_size(rt, tmp_path):
    from benchmarks import statement_files
    from feecenter.remittances.statement_import import PROGRESS_EVERY, import_statement

    path = tmp_path / "big.sta"
    expected = statement_files.write_mt940(path, 2 * PROGRESS_EVERY + 500, debit_every=0)
    seen: list[tuple[int, int]] = []
    with transaction(rt.engine) as conn:
        summary = import_statement(conn, rt.clock, OPS, path,
                                   on_progress=lambda done, size: seen.append((done, size)))
    size = path.stat().st_size
    assert summary.lines == expected.credit_count
    assert len(seen) == 3 and seen[-1] == (size, size)
    assert all(total == size for _, total in seen)
    assert 0 < seen[0][0] < seen[1][0] < size  # grows while reading


@pytest.mark.spec("RMT-10", "RMT-11")
def test_an_operator_refunds_the_remainder_of_a_legacy_transfer_from_the_cli(rt, run, tmp_path):
    from datetime import date

    from feecenter.remittances import cases
    path = tmp_path / "legacy.sta"
    path.write_bytes(mt940([("L-1", P1, 100_00, "丙方实业有限公司", "货款")]))
    run("statement", "import", path)
    [item] = json.loads(run("remittance", "queue", "unassigned", "--json").stdout)["items"]
    form_co = new_account(rt, "form-co")
    with transaction(rt.engine) as conn:
        cases.credit_legacy_form(conn, rt.clock, OPS, form_co, request_id=1,
                                 amount=60_00, payer_name="丙方实业有限公司",
                                 value_date=date(2026, 12, 1))
    payout = ("--holder", "丙方实业有限公司", "--bank", "招商银行", "--reason", "多付")
    bad = run("remittance", "refund-remainder", item["id"], *payout, "--bank-account", "12ab")
    assert bad.exit_code == 1 and "bank account" in bad.stderr
    done = run("remittance", "refund-remainder", item["id"], *payout,
               "--bank-account", "6225880112345678", "--json")
    assert done.exit_code == 0, done.output
    assert (json.loads(done.stdout)["amount"], json.loads(done.stdout)["state"]) == (
        "40.00", "legacy")
    again = run("remittance", "refund-remainder", item["id"], *payout,
                "--bank-account", "6225880112345678")
    assert again.exit_code == 1  # refunded once only
