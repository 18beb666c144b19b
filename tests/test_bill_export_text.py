"""The L3 lines as text formatted by the database (BIL-7, issue #24, bills/line_text.py):
the rows of ``line_text`` are ``exports.line_row`` of every line ``iter_month_lines``
gives — postpaid list and contract lines, negative corrections, prepaid new, refund
and downgrade orders, a statistic-period switch (lines whose bill month is not their
deduction month), names with commas, quotes, line breaks, leading spaces and
Chinese, times at business midnight and in Shanghai's summer time of 1986-1991;
a CSV export's bytes are those of ``csv.writer`` over those rows (PostgreSQL:
written by COPY), an XLSX export's cells those of the same rows; amounts, discounts
and times through the SQL formatting equal ``money.format_yuan`` /
``format_rated`` and the export's own formatting."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import BigInteger, DateTime, Integer, literal, select

from feecenter.bills import exports, line_text, service
from feecenter.clock import BUSINESS_TZ, BUSINESS_YEARS, business_date, db_time
from feecenter.db.engine import transaction
from feecenter.money import format_rated, format_yuan
from feecenter.orders.tables import orders
from feecenter.settlement.tables import bill_lines
from tests.helpers import OPS, new_account

MONTHS = ("2026-02", "2026-03", "2026-04")
SWITCHES = (None, "2026-03")
NAMES = (None, "", "a,b", 'say "hi"', "two\nlines", "cr\rlf\r\n", " leading space",
         "trailing ", "中文名称，全角", "\\.", "=1+2", '"', ",")
LARGE = 10 ** 15  # fen: the 1e15 range of the fen columns


def _local(month: int, day: int, hour: int, minute: int = 0, second: int = 0,
           micro: int = 0) -> datetime:
    return db_time(datetime(2026, month, day, hour, minute, second, micro, tzinfo=BUSINESS_TZ))


def _postpaid(uin: int, n: int, start: datetime, deducted_at: datetime) -> dict:
    listed = n % 3 != 0
    sign = -1 if n % 7 == 3 else 1  # a correction: negative
    discounted = sign * (1_234_567 * n + n % 100)
    deducted = sign * ((abs(discounted) + 500_000) // 1_000_000)
    voucher = sign * min(abs(deducted), n % 4)
    gift = sign * min(abs(deducted) - abs(voucher), n % 3)
    return {"uin": uin, "resource_id": f"ins-{n % 5}", "resource_name": NAMES[n % len(NAMES)],
            "product_code": "cvm", "region": "ap-guangzhou",
            "billing_item": "traffic,out" if n % 2 else "S5.MEDIUM4", "project_id": n % 3,
            "project_name": NAMES[(n + 3) % len(NAMES)] or "默认项目", "cycle": "hour",
            "period_key": f"k{n}", "period_start": start,
            "period_end": start + timedelta(hours=1), "quantity": 1_000_000,
            "package_quantity": 0, "stopped_quantity": 0,
            "price_kind": "list" if listed else ("contract", "fixed")[n % 2],
            "unit_price": 41_152_223 * n, "list_amount": discounted + sign * n,
            "discount_bp": (10_000, 8_000, 7_555, 1)[n % 4], "discounted_amount": discounted,
            "deducted": deducted, "rounding_diff": deducted * 1_000_000 - discounted,
            "voucher_paid": voucher, "cash_paid": deducted - voucher - gift - sign * (n % 2),
            "gift_paid": gift, "credit_paid": sign * (n % 2), "arrears": 0, "txn_id": None,
            "deducted_at": deducted_at, "kind": "correction" if sign < 0 else "charge",
            "sequence": 1 if sign < 0 else 0, "adjusts_line_id": None, "reason": None}


def _order(uin: int, n: int, closed_at: datetime, kind: str) -> dict:
    negative = kind in ("refund", "downgrade")
    amount = -(n * 37 + 1) if negative else n * 1_001
    return {"uin": uin, "kind": kind, "state": "refunded" if kind == "refund" else "delivered",
            "product_code": "cvm", "region": "ap-guangzhou", "spec_item": "S5.LARGE8",
            "quantity": 1_000_000, "months": 1, "resource_id": f"ins-p{n}",
            "resource_name": NAMES[n % len(NAMES)], "project_id": 0,
            "project_name": "项目, \"A\"", "price_kind": "list" if n % 2 else "contract",
            "unit_price": None if n % 5 == 0 else 100_000_000_000, "list_amount": amount - n,
            "discount_bp": 8_333, "amount": amount, "paid_coupon": 0,
            "paid_gift": 0 if negative else 100, "paid_cash": 0 if negative else amount - 100,
            "paid_credit": 0, "refunded_gift": 0, "refunded_cash": -amount if negative else 0,
            "promo": False, "creator": "test", "created_at": closed_at, "closed_at": closed_at}


@pytest.fixture
def seeded(rt):
    """One account's lines from late February to late April: hourly usage deducted
    minutes after its hour, some a month late (late usage: another bill month after
    a switch), some at 23:59:59.999999 and 00:00:00 business time; prepaid new,
    refund and downgrade orders; the names of NAMES."""
    rt.clock.set(datetime(2026, 5, 20, tzinfo=BUSINESS_TZ))
    uin = new_account(rt, "export-text")
    lines, made = [], []
    for n in range(1, 160):
        start = _local(2, 20, 0) + timedelta(hours=11 * n)
        late = timedelta(days=31) if n % 13 == 0 else timedelta()
        deducted = start + timedelta(hours=1, minutes=5) + late
        lines.append(_postpaid(uin, n, start, deducted))
    for n, (day, hour, minute, second, micro) in enumerate(
            [(10, 23, 59, 59, 999_999), (11, 0, 0, 0, 0), (31, 23, 59, 59, 999_500)], 500):
        at = _local(3, day, hour, minute, second, micro)
        lines.append(_postpaid(uin, n, at - timedelta(hours=1), at))
    for n in range(1, 25):
        closed = _local(2, 25, 12) + timedelta(days=2 * n, seconds=n)
        made.append(_order(uin, n, closed, ("new", "refund", "downgrade", "renew")[n % 4]))
    made.append(_order(uin, 90, _local(3, 31, 23, 59, 59, 999_999), "upgrade"))
    with transaction(rt.engine) as conn:
        conn.execute(bill_lines.insert(), lines)
        conn.execute(orders.insert(), made)
    return uin


def _switched(monkeypatch, switched):
    monkeypatch.setattr(service, "usage_time_switch_month", lambda conn, uin: switched)


def _reference(rt, uin: int, month: str) -> list[list[str]]:
    with rt.engine.connect() as conn:
        return [exports.line_row(line) for line in service.iter_month_lines(conn, OPS, uin,
                                                                            month)]


@pytest.mark.spec("BIL-7", "BIL-3", "BIL-5", "BIL-6")
@pytest.mark.parametrize("switched", SWITCHES)
def test_database_text_is_line_row_of_every_line(rt, seeded, monkeypatch, switched):
    _switched(monkeypatch, switched)
    monkeypatch.setattr(line_text, "STREAM_CHUNK", 7)
    months_differ = False
    for month in MONTHS:
        expected = _reference(rt, seeded, month)
        with rt.engine.connect() as conn:
            got = [list(row) for row in line_text.iter_line_text(conn, OPS, seeded, month)]
        assert len(got) > 10, (switched, month)
        assert got == expected, (switched, month)
        assert {row[5] for row in got} == {"postpaid", "prepaid"}
        months_differ |= any(row[3] != row[2][:7] for row in got)
    assert months_differ == (switched is not None)  # late usage in the switch month
    every = [c for month in MONTHS for row in _reference(rt, seeded, month) for c in row]
    for name in NAMES[2:]:
        assert name in every, name  # each awkward name made it into a cell
    assert "-" in every and any(c.startswith("-0.") for c in every)


def _export(rt, settings, uin, month, fmt) -> tuple[dict, bytes]:
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, uin, month, "lines", fmt)
    assert exports.process_export(rt.engine, rt.clock, row["id"], settings) == "done"
    with rt.engine.connect() as conn:
        done = exports.get_export(conn, OPS, uin, row["id"])
    return done, (settings.directory / done["file_name"]).read_bytes()


@pytest.fixture
def settings(rt, tmp_path) -> exports.ExportSettings:
    rt.settings = dataclasses.replace(rt.settings, export_dir=tmp_path / "exports")
    return exports.export_settings(rt.settings)


@pytest.mark.spec("BIL-7")
@pytest.mark.parametrize("switched", SWITCHES)
def test_a_csv_export_is_csv_writer_over_the_reference_rows(rt, seeded, settings, monkeypatch,
                                                            switched):
    _switched(monkeypatch, switched)
    for month in MONTHS:
        expected = _reference(rt, seeded, month)
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(exports.LINE_COLUMNS)
        writer.writerows(expected)
        done, got = _export(rt, settings, seeded, month, "csv")
        assert got == ("\ufeff" + text.getvalue()).encode("utf-8"), (switched, month)
        assert done["lines_written"] == done["lines_total"] == len(expected)
        assert done["size_bytes"] == len(got)
        parsed = list(csv.reader(io.StringIO(got.decode("utf-8-sig"), newline="")))
        assert parsed == [list(exports.LINE_COLUMNS), *expected]  # read back: the same cells


def _xlsx_cells(data: bytes) -> list[list]:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return [list(r) for sheet in book.worksheets for r in sheet.iter_rows(values_only=True)]


@pytest.mark.spec("BIL-7")
def test_an_xlsx_export_holds_the_reference_rows(rt, seeded, settings, monkeypatch, tmp_path):
    _switched(monkeypatch, "2026-03")
    expected = _reference(rt, seeded, "2026-03")
    done, got = _export(rt, settings, seeded, "2026-03", "xlsx")
    assert done["lines_written"] == len(expected)
    reference = tmp_path / "reference.xlsx"
    exports.write_xlsx(reference, list(exports.LINE_COLUMNS), expected, sheet="2026-03 lines")
    cells = _xlsx_cells(got)
    assert cells == _xlsx_cells(reference.read_bytes())
    assert cells[0] == list(exports.LINE_COLUMNS) and len(cells) == len(expected) + 1
    texts = [["" if v is None else v for v in row] for row in cells[1:]]
    assert [row[0] for row in texts] == [row[0] for row in expected]
    assert [row[19:] for row in texts] == [row[19:] for row in expected]  # amounts as text


# ---------------------------------------------------------------- the formatting, value by value

def _select_one(rt, *columns):
    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(*columns)).one())


AMOUNTS = (0, 1, -1, 5, -5, 99, -99, 100, -100, 101, -101, 12_345, -12_345, 99_999_999,
           -99_999_999, 100_000_000, -100_000_000, LARGE, -LARGE, LARGE + 99, -LARGE - 99,
           2 ** 63 - 1, -(2 ** 63) + 1)  # the 64-bit columns' ends (1e-8 yuan: ~9.2e12 fen)


@pytest.mark.spec("BIL-7")
def test_amounts_through_sql_equal_format_yuan_and_format_rated(rt):
    for value in AMOUNTS:
        number = literal(value, BigInteger)
        assert _select_one(rt, line_text.yuan_text(number), line_text.rated_text(number)) == (
            format_yuan(value), format_rated(value)), value
    for bp in (0, 1, 8_000, 9_999, 10_000, 12_345):
        assert _select_one(rt, line_text.discount_text(literal(bp, Integer))) == (
            exports._discount(bp),), bp


@pytest.mark.spec("BIL-7")
@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.integers(min_value=-(2 ** 63) + 1, max_value=2 ** 63 - 1)
       | st.integers(min_value=-10_000, max_value=10_000))
def test_any_amount_through_sql_equals_the_python_formatting(rt, value):
    number = literal(value, BigInteger)
    assert _select_one(rt, line_text.yuan_text(number), line_text.rated_text(number)) == (
        format_yuan(value), format_rated(value))


def _python_times(value: datetime) -> tuple[str, str, str]:
    text = exports._time(value)
    day = business_date(value.replace(tzinfo=timezone.utc))
    return text, day.isoformat(), day.strftime("%Y-%m")


def _sql_times(rt, value: datetime) -> tuple:
    stamp = literal(value, DateTime)
    return _select_one(rt, line_text.business_datetime(stamp), line_text.business_date(stamp),
                       line_text.business_month(stamp))


TIMES = [
    datetime(2026, 3, 31, 15, 59, 59, 999_999), datetime(2026, 3, 31, 16, 0),
    datetime(2026, 3, 31, 15, 59, 59, 999_500), datetime(2026, 12, 31, 16, 0, 0, 1),
    datetime(1969, 12, 31, 16, 0), datetime(1969, 12, 31, 15, 59, 59),
    # Asia/Shanghai's summer time (UTC+9), 1986-1991, and its edges
    datetime(1986, 5, 3, 17, 59, 59), datetime(1986, 5, 3, 18, 0), datetime(1986, 7, 1, 12, 0),
    datetime(1986, 9, 13, 16, 59, 59), datetime(1986, 9, 13, 17, 0),
    datetime(1991, 9, 14, 16, 59, 59, 999_999), datetime(1991, 9, 14, 17, 0),
    datetime(1991, 9, 30, 15, 30), datetime(9998, 12, 31, 15, 59, 59),
]


@pytest.mark.spec("BIL-7")
def test_business_times_through_sql_equal_the_python_formatting(rt):
    for value in TIMES:
        assert _sql_times(rt, value) == _python_times(value), value
    assert _select_one(rt, line_text.business_datetime(literal(None, DateTime))) == (None,)


@pytest.mark.spec("BIL-7")
@hypothesis_settings(max_examples=150, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.datetimes(min_value=datetime(1969, 12, 31, 16), max_value=datetime(2100, 1, 1))
       | st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 1, 2))
       | st.datetimes(min_value=datetime(1986, 1, 1), max_value=datetime(1992, 1, 1)))
def test_any_time_through_sql_equals_the_python_formatting(rt, value):
    assert _sql_times(rt, value) == _python_times(value)


@pytest.mark.spec("BIL-7")
def test_shanghai_is_utc_plus_8_outside_the_spans_to_the_last_business_year():
    spans = line_text.offset_changes()
    assert [(start.year, end.year, offset) for start, end, offset in spans] == [
        (year, year, timedelta(hours=9)) for year in range(1986, 1992)]
    for year in range(2030, BUSINESS_YEARS.stop, 7):  # past the scan: the zone's rule
        for month in (1, 7):
            when = datetime(year, month, 1, tzinfo=timezone.utc)
            assert when.astimezone(BUSINESS_TZ).utcoffset() == timedelta(hours=8), year
