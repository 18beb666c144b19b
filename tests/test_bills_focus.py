"""BIL-7: the FinOps FOCUS 1.3 export of the L3 lines (bills/focus.py): one row per
line with the line's amounts exactly (fen and 1e-8 yuan as decimal strings), refunds
and downgrades negative, contract lines without a list price of their own, the header
FOCUS_COLUMNS; and the FinOps Foundation's validator passing on the file (skipped
without .venv-focus, except under CI=true, where it must run)."""

from __future__ import annotations

import csv
import io
import os
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest

from feecenter.bills import focus, service
from tests.focus_seed import MONTH, seed_focus_month
from tests.helpers import OPS

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def exported(rt):
    uin = seed_focus_month(rt)
    with rt.engine.connect() as conn:
        lines = list(focus.focus_lines(conn, OPS, uin, MONTH))
        context = focus.focus_context(conn, uin, MONTH)
        assert [dict(line, quantity=None) for line in lines] == [
            dict(line, quantity=None) for line in service.month_lines(conn, OPS, uin, MONTH)]
    out = io.StringIO()
    count = focus.write_focus_csv(iter(lines), context, out)
    text = out.getvalue()
    rows = list(csv.DictReader(io.StringIO(text)))
    return {"uin": uin, "lines": lines, "rows": rows, "count": count, "text": text}


def _yuan(fen: int) -> Decimal:
    return Decimal(fen) / 100


@pytest.mark.spec("BIL-7")
def test_each_line_is_one_row_with_its_amounts_exactly(exported):
    lines, rows = exported["lines"], exported["rows"]
    assert exported["count"] == len(rows) == len(lines) >= 9
    assert {line["pay_mode"] for line in lines} == {"prepaid", "postpaid"}
    assert sum(Decimal(r["BilledCost"]) for r in rows) == _yuan(sum(ln["deducted"] for ln in lines))
    for line, row in zip(lines, rows):
        assert row["x_LineId"] == line["line_id"]
        assert Decimal(row["BilledCost"]) == _yuan(line["deducted"])
        assert Decimal(row["ContractedCost"]) == Decimal(line["discounted_cost"]) / 10**8
        assert Decimal(row["x_PrecisionDifference"]) == Decimal(line["precision_diff"]) / 10**8
        assert Decimal(row["x_VoucherPaid"]) + Decimal(row["x_CashPaid"]) + \
            Decimal(row["x_GiftPaid"]) == _yuan(line["voucher_paid"] + line["cash_paid"]
                                                 + line["gift_paid"])
        assert row["BillingAccountId"] == f"uin-{exported['uin']}"
        assert row["BillingAccountName"] == "focus-export"
        assert row["BillingCurrency"] == "CNY"
        assert (row["BillingPeriodStart"], row["BillingPeriodEnd"]) == (
            "2026-02-28T16:00:00Z", "2026-03-31T16:00:00Z")  # March, Asia/Shanghai, in UTC
        assert row["SubAccountId"] == f"project-{line['project_id']}"
        assert row["SubAccountName"] == line["project_name"]
        assert row["RegionId"] == line["region"] and row["ResourceId"] == line["resource_id"]
        assert "e" not in row["BilledCost"].lower() and "." in row["BilledCost"]  # no floats


@pytest.mark.spec("BIL-7", "BIL-5")
def test_refunds_and_downgrades_are_negative_purchases(exported):
    given_back = [r for r in exported["rows"] if r["x_LineKind"] in ("refund", "downgrade")]
    assert {r["x_LineKind"] for r in given_back} == {"refund", "downgrade"}
    for row in given_back:
        assert row["ChargeCategory"] == "Purchase" and row["ChargeFrequency"] == "One-Time"
        assert Decimal(row["BilledCost"]) < 0 and Decimal(row["ContractedCost"]) < 0
        assert row["PricingQuantity"] == "-1.000000"
        assert Decimal(row["ListUnitPrice"]) > 0  # unit prices are never negative
        assert Decimal(row["ContractedUnitPrice"]) * Decimal(row["PricingQuantity"]) == \
            Decimal(row["ContractedCost"])


@pytest.mark.spec("BIL-7", "BIL-6")
def test_contract_lines_have_no_list_price_of_their_own(exported):
    """FOCUS forbids a null ListCost, and a null ListUnitPrice on Usage/Purchase rows:
    a contract line's list columns are its contracted cost; our list price, discount
    and original cost stay null (x_ columns), as BIL-6 has them."""
    contract = [r for r in exported["rows"] if r["x_PriceKind"] == "contract"]
    listed = [r for r in exported["rows"] if r["x_PriceKind"] == "list"]
    assert contract and listed
    for row in contract:
        assert row["x_OriginalCost"] == row["x_ListUnitPricePerBillingUnit"] == ""
        assert row["x_DiscountBasisPoints"] == ""
        assert row["ListCost"] == row["ContractedCost"]
        assert row["SkuPriceId"].endswith(".contract")
    for row in listed:
        assert Decimal(row["ListCost"]) == Decimal(row["x_OriginalCost"])
        assert Decimal(row["ListCost"]) >= Decimal(row["ContractedCost"])


@pytest.mark.spec("BIL-7")
def test_categories_classes_and_tags(exported):
    rows = exported["rows"]
    usage = [r for r in rows if r["x_PayMode"] == "postpaid"]
    assert {r["ChargeCategory"] for r in usage} == {"Usage"}
    assert {r["ChargeFrequency"] for r in usage} == {"Usage-Based"}
    assert all(Decimal(r["EffectiveCost"]) == Decimal(r["BilledCost"]) for r in usage)
    purchases = [r for r in rows if r["x_PayMode"] == "prepaid"]
    assert {r["ChargeCategory"] for r in purchases} == {"Purchase"}
    assert all(Decimal(r["EffectiveCost"]) == 0 for r in purchases)
    # the late usage of February billed in March corrects a previous period
    late = [r for r in rows if r["x_LineKind"] == "adjustment"]
    assert late and all(r["ChargeClass"] == "Correction" and r["x_UsageMonth"] == "2026-02"
                        for r in late)
    assert all(r["ChargeClass"] == "" for r in rows if r["x_LineKind"] != "adjustment")
    disk = [r for r in rows if r["ServiceName"] == "Cloud Block Storage" or
            r["SkuId"].startswith("cbs.")]
    assert disk and all(r["Tags"] == '{"env": "prod"}' for r in disk)
    assert all(r["Tags"] == "" for r in rows if not r["SkuId"].startswith("cbs."))
    assert {r["ContractApplied"] for r in rows} == {""}
    assert {r["AllocatedMethodId"] for r in rows} == {""}


@pytest.mark.spec("BIL-7")
def test_usage_rows_carry_the_metered_quantity_and_unit(exported):
    by_id = {r["x_LineId"]: r for r in exported["rows"]}
    usage = [ln for ln in exported["lines"] if ln["pay_mode"] == "postpaid"]
    assert usage and all(isinstance(ln["quantity"], int) for ln in usage)
    for line in usage:
        row = by_id[line["line_id"]]
        assert Decimal(row["ConsumedQuantity"]) == Decimal(line["quantity"]) / 10**6
        assert row["ConsumedUnit"] == {"traffic": "GB", "premium": "GB"}.get(line["item"],
                                                                            "instance")
    disk = [r for r in exported["rows"] if r["x_BillingItem"] == "premium"]
    assert [r["ConsumedQuantity"] for r in disk] == ["100.000000"]
    assert all(r["ConsumedQuantity"] == r["ConsumedUnit"] == "" for r in exported["rows"]
               if r["ChargeCategory"] == "Purchase")


@pytest.mark.spec("BIL-7")
def test_the_header_is_focus_columns_and_rows_stream(exported):
    header = exported["text"].splitlines()[0].split(",")
    assert header == focus.FOCUS_COLUMNS
    custom = [c for c in header if not c[0].isupper()]
    assert custom and all(c.startswith("x_") for c in custom)
    empty = io.StringIO()
    assert focus.write_focus_csv(iter([]), focus.FocusContext("uin-1", "a", "s", "e"), empty) == 0
    assert empty.getvalue().splitlines() == [",".join(focus.FOCUS_COLUMNS)]


def _validator_ready() -> bool:
    return (ROOT / ".venv-focus" / "bin" / "focus-validator").exists()


@pytest.mark.spec("BIL-7")
@pytest.mark.slow
def test_the_finops_validator_passes_on_the_export(exported, tmp_path):
    if not _validator_ready() and os.environ.get("CI") != "true":
        pytest.skip("no .venv-focus (scripts/focus-validate creates it)")
    good = tmp_path / "focus.csv"
    good.write_text(exported["text"], encoding="utf-8")
    run = subprocess.run([str(ROOT / "scripts" / "focus-validate"), str(good)],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert " 0 failed" in run.stdout
    # and it can fail: a numeric BillingAccountId is not the String FOCUS requires
    bad = tmp_path / "bad.csv"
    bad.write_text(exported["text"].replace(f"uin-{exported['uin']}", str(exported["uin"])),
                   encoding="utf-8")
    failing = subprocess.run([str(ROOT / "scripts" / "focus-validate"), str(bad)],
                             capture_output=True, text=True, timeout=900)
    assert failing.returncode == 1, failing.stdout + failing.stderr
    assert "BillingAccountId-C-002-M" in failing.stdout
