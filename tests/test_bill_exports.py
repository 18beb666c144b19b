"""The download center (BIL-7, bills/exports.py): an export of every level of a
month's cost bill, as CSV and XLSX, holds the bill's amounts (Σ each level = L0;
L3 line by line, "-" for a contract line's list price, BIL-6); requests are
idempotent; progress is recorded while the file is written; files expire after
the retention; signed download links expire and refuse tampering; another
account's bill is refused; bad input is refused naming the field, nothing
written."""

from __future__ import annotations

import csv
import dataclasses
import io
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.api.app import create_app
from feecenter.bills import exports, service
from feecenter.bills.tables import bill_exports
from feecenter.clock import BUSINESS_TZ
from feecenter.db.engine import transaction
from feecenter.errors import IdempotencyConflict, InvalidInput, PermissionDenied
from feecenter.money import parse_rated, parse_yuan
from tests.compat_harness import compat_shop  # noqa: F401 - a fixture
from tests.helpers import OPS, api_key, new_account
from tests.rest_harness import Signed
from tests.test_bills_rollup import MONTH, _refresh_all, at
from tests.test_bills_rollup import month as one_month  # noqa: F401 - a fixture


DEDUCTED = "扣费（元） Deducted (CNY)"
DISCOUNTED = "折后价（元） Discounted cost (CNY)"
LINES = "明细条数 Lines"


@pytest.fixture
def month(one_month):  # noqa: F811 - the fixture imported above
    """test_bills_rollup's March: postpaid (a contract line), prepaid, refund, downgrade."""
    return one_month


@pytest.fixture
def settings(rt, tmp_path) -> exports.ExportSettings:
    rt.settings = dataclasses.replace(rt.settings, export_dir=tmp_path / "exports")
    return exports.export_settings(rt.settings)


def export(rt, settings, uin, level, fmt="csv", tag_key=None, key=None) -> dict:
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, uin, MONTH, level, fmt,
                                     tag_key=tag_key, request_key=key)
    assert exports.process_export(rt.engine, rt.clock, row["id"], settings) == "done"
    return stored(rt, row["id"])


def stored(rt, export_id) -> dict:
    with rt.engine.connect() as conn:
        return exports.get_export(conn, OPS, conn.execute(select(bill_exports.c.uin).where(
            bill_exports.c.id == export_id)).scalar_one(), export_id)


def read_csv(settings, row) -> list[dict]:
    with open(settings.directory / row["file_name"], encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def read_xlsx(settings, row) -> list[dict]:
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.load_workbook(settings.directory / row["file_name"], read_only=True)
    cells = [list(r) for sheet in book.worksheets for r in sheet.iter_rows(values_only=True)]
    header = cells[0]
    return [dict(zip(header, ["" if v is None else v for v in r])) for r in cells[1:]]


def fen(text: str) -> int:
    return parse_yuan(text, allow_negative=True, allow_zero=True)


def export_count(rt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(bill_exports)).scalar_one()


@pytest.mark.spec("BIL-7", "BIL-1")
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_every_level_exported_adds_up_to_the_months_bill(rt, month, settings, fmt):
    uin = month["uin"]
    _refresh_all(rt)
    with rt.engine.connect() as conn:
        total = service.overview(conn, OPS, uin, MONTH)["total"]
        l3 = service.month_lines(conn, OPS, uin, MONTH)
    read = read_xlsx if fmt == "xlsx" else read_csv
    for level in exports.LEVELS:
        row = export(rt, settings, uin, level, fmt, tag_key="env" if level == "tag" else None)
        rows = read(settings, row)
        assert row["state"] == "done" and row["lines_written"] == row["lines_total"] == len(rows)
        assert row["size_bytes"] == (settings.directory / row["file_name"]).stat().st_size
        if level == "overview":
            assert rows[0]["类别 Category"] == "合计 Total"
            assert fen(rows[0][DEDUCTED]) == total["deducted"]
            assert sorted(r["类别 Category"] for r in rows[1:]) == ["包年包月 Prepaid", "按量计费 Postpaid"]
            assert sum(fen(r[DEDUCTED]) for r in rows[1:]) \
                == total["deducted"]
            continue
        counted = sum(fen(r[DEDUCTED]) for r in rows)
        assert counted == total["deducted"], level
        assert sum(parse_rated(r[DISCOUNTED]) for r in rows) == total["discounted_cost"], level
        if level == "lines":
            assert len(rows) == len(l3) == total["lines"]
            assert [r["明细 ID Line ID"] for r in rows] == [line["line_id"] for line in l3]
        else:
            assert sum(int(r[LINES]) for r in rows) == total["lines"], level
    tags = {r["标签值 Tag value"]: r for r in read(settings, stored(rt, _id_of(rt, uin, "tag",
                                                                               fmt)))}
    assert set(tags) == {"prod", ""}


def _id_of(rt, uin, level, fmt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(bill_exports.c.id).where(
            bill_exports.c.uin == uin, bill_exports.c.level == level,
            bill_exports.c.fmt == fmt)).scalar_one()


@pytest.mark.spec("BIL-7", "BIL-6")
def test_lines_show_components_and_a_dash_where_no_list_price_applies(rt, month, settings):
    uin = month["uin"]
    csv_rows = read_csv(settings, export(rt, settings, uin, "lines", "csv"))
    xlsx_rows = read_xlsx(settings, export(rt, settings, uin, "lines", "xlsx"))
    assert xlsx_rows == csv_rows  # the same cells in both formats
    by_item = {(r["资源 ID Resource ID"], r["计费项 Billing item"]): r for r in csv_rows}
    contract = by_item[(month["vm"], "traffic")]
    assert contract["价格类型 Price kind"] == "contract"
    assert (contract["单价（元） Unit price (CNY)"], contract["折扣 Discount"],
            contract["原价（元） Original cost (CNY)"]) == ("-", "-", "-")
    assert contract[DISCOUNTED] == "0.99000000" and contract[DEDUCTED] == "0.99"
    listed = by_item[(month["disk"], "premium")]
    assert listed["折扣 Discount"] == "1.0000" and listed["原价（元） Original cost (CNY)"] != "-"
    assert listed["资源名称 Resource name"] == "" and by_item[(month["vm"], "traffic")][
        "资源名称 Resource name"] == "web-1"
    refund = next(r for r in csv_rows if r["类型 Kind"] == "refund")
    assert refund[DEDUCTED].startswith("-")  # BIL-5
    assert all(r["账单月份 Bill month"] == MONTH for r in csv_rows)


@pytest.mark.spec("BIL-7")
def test_the_same_request_key_gives_the_same_export(rt, month, settings):
    uin = month["uin"]
    with transaction(rt.engine) as conn:
        first = exports.request_export(conn, rt.clock, OPS, uin, MONTH, "product", "csv",
                                       request_key="k-1")
        again = exports.request_export(conn, rt.clock, OPS, uin, MONTH, "product", "csv",
                                       request_key="k-1")
        other = exports.request_export(conn, rt.clock, OPS, uin, MONTH, "product", "csv")
    assert again["id"] == first["id"] != other["id"]
    assert first["state"] == "queued" and first["lines_written"] == 0
    with pytest.raises(IdempotencyConflict) as refused, transaction(rt.engine) as conn:
        exports.request_export(conn, rt.clock, OPS, uin, MONTH, "region", "csv",
                               request_key="k-1")
    assert refused.value.field == "request_key"
    assert export_count(rt) == 2
    assert exports.process_export(rt.engine, rt.clock, first["id"], settings) == "done"
    assert exports.process_export(rt.engine, rt.clock, first["id"], settings) is None  # once


@pytest.mark.spec("BIL-7")
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_progress_is_recorded_while_the_lines_are_written(rt, month, settings, monkeypatch,
                                                          fmt):
    uin = month["uin"]
    _refresh_all(rt)
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)
    seen = []
    real_finish = exports._finish

    def watching(engine, export_id, **values):
        with rt.engine.connect() as conn:  # the export as others see it meanwhile
            seen.append((conn.execute(select(bill_exports.c.state)).scalar_one(), values))
        real_finish(engine, export_id, **values)

    monkeypatch.setattr(exports, "_finish", watching)
    row = export(rt, settings, uin, "lines", fmt)
    total = row["lines_total"]
    assert total == row["lines_written"] >= 6
    *during, last = seen
    assert {state for state, _ in during} == {"running"} and last[1]["state"] == "done"
    assert during[0][1] == {"lines_written": 0, "lines_total": total}  # the roll-ups' count
    assert [values for _, values in during[1:]] == [
        {"lines_written": n} for n in range(2, total + 1, 2)]  # every second line


@pytest.mark.spec("BIL-7")
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_failed_export_is_marked_failed_and_leaves_no_file(rt, month, settings, monkeypatch,
                                                             fmt):
    monkeypatch.setattr(exports, "PROGRESS_EVERY", 2)
    real_progress = exports._progress

    def failing(engine, export_id):
        record = real_progress(engine, export_id)

        def progress(written, total):
            if written >= 4:  # the disk fills while the lines are written
                raise RuntimeError("disk full")
            record(written, total)
        return progress

    monkeypatch.setattr(exports, "_progress", failing)
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, month["uin"], MONTH, "lines", fmt)
    assert exports.process_export(rt.engine, rt.clock, row["id"], settings) == "failed"
    failed = stored(rt, row["id"])
    assert failed["state"] == "failed" and "disk full" in failed["error"]
    assert failed["lines_written"] == 2
    assert list(settings.directory.iterdir()) == []


@pytest.mark.spec("BIL-7")
def test_files_expire_after_the_retention(rt, month, settings):
    row = export(rt, settings, month["uin"], "product")
    path = settings.directory / row["file_name"]
    rt.clock.advance(days=7, seconds=-1)
    assert exports.process_pending(rt.engine, rt.clock, settings)["expired"] == 0
    assert path.is_file()
    rt.clock.advance(seconds=1)
    assert exports.process_pending(rt.engine, rt.clock, settings) == {
        "done": 0, "failed": 0, "expired": 1}
    assert not path.exists() and stored(rt, row["id"])["state"] == "expired"


@pytest.mark.spec("BIL-7")
def test_rest_request_progress_and_signed_download(rt, month, settings):
    uin = month["uin"]
    http = TestClient(create_app(rt))
    rest = Signed(rt, http, api_key(rt, uin))
    answer = rest.send("POST", f"/api/v1/accounts/{uin}/bill-exports",
                       {"month": MONTH, "level": "lines", "fmt": "csv", "request_key": "r1"})
    assert answer.status_code == 202, answer.text
    export_id = answer.json()["id"]
    # the request started it right after answering
    one = rest.send("GET", f"/api/v1/accounts/{uin}/bill-exports/{export_id}").json()
    assert one["state"] == "done" and one["progress_percent"] == 100
    assert one["lines_written"] == one["lines_total"] > 0
    listed = rest.send("GET", f"/api/v1/accounts/{uin}/bill-exports").json()["items"]
    assert [item["id"] for item in listed] == [export_id]
    link = one["download_url"]
    assert link.startswith(f"/api/v1/bill-exports/{export_id}/download?expires=")
    got = http.get(link)  # no login: the signature is the credential
    assert got.status_code == 200, got.text
    assert got.content == (settings.directory / one["file_name"]).read_bytes()
    assert got.headers["content-type"].startswith("text/csv")

    def refused(url, status, field):
        answer = http.get(url)
        assert answer.status_code == status, answer.text
        error = answer.json()["error"]
        assert error["field"] == field and error["message_zh"] and error["message_en"]

    refused(link[:-4] + ("0000" if not link.endswith("0000") else "1111"), 403, "signature")
    expires = int(link.split("expires=")[1].split("&")[0])
    refused(link.replace(f"expires={expires}", f"expires={expires + 3600}"), 403, "signature")
    second = rest.send("POST", f"/api/v1/accounts/{uin}/bill-exports",
                       {"month": MONTH, "level": "product", "fmt": "xlsx"}).json()
    refused(link.replace(f"/bill-exports/{export_id}/", f"/bill-exports/{second['id']}/"),
            403, "signature")  # another export's link
    rt.clock.advance(hours=1, seconds=1)
    refused(link, 410, "expires")
    fresh = rest.send("GET", f"/api/v1/accounts/{uin}/bill-exports/{second['id']}").json()
    got = http.get(fresh["download_url"])
    assert got.status_code == 200 and got.content[:2] == b"PK"  # a zip: the xlsx


@pytest.mark.spec("BIL-7")
def test_another_accounts_bill_is_refused(rt, month, settings):
    owner = month["uin"]
    other = new_account(rt, "other")
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, other))
    answer = rest.send("POST", f"/api/v1/accounts/{owner}/bill-exports",
                       {"month": MONTH, "level": "lines", "fmt": "csv"})
    assert answer.status_code == 403, answer.text
    assert export_count(rt) == 0
    mine = export(rt, settings, owner, "product")
    assert rest.send("GET", f"/api/v1/accounts/{owner}/bill-exports").status_code == 403
    assert rest.send("GET", f"/api/v1/accounts/{owner}/bill-exports/{mine['id']}"
                     ).status_code == 403
    answer = rest.send("GET", f"/api/v1/accounts/{other}/bill-exports/{mine['id']}")
    assert answer.status_code == 404 and answer.json()["error"]["field"] == "id"
    with pytest.raises(PermissionDenied), rt.engine.connect() as conn:
        readonly = dataclasses.replace(OPS, kind="user", uin=owner, role="readonly")
        exports.request_export(conn, rt.clock, readonly, owner, MONTH, "lines", "csv")


@pytest.mark.spec("BIL-7")
@pytest.mark.parametrize("body, field", [
    ({"month": "2026-13", "level": "lines"}, "month"),
    ({"month": "2026-3", "level": "lines"}, "month"),
    ({"month": "0000-01", "level": "lines"}, "month"),
    ({"month": "2026-04", "level": "lines"}, "month"),  # the future (it is March)
    ({"month": MONTH, "level": "colour"}, "level"),
    ({"month": MONTH, "level": "lines", "fmt": "pdf"}, "fmt"),
    ({"month": MONTH, "level": "product", "fmt": "focus"}, "fmt"),
    ({"month": MONTH, "level": "tag"}, "tag_key"),
    ({"month": MONTH, "level": "product", "tag_key": "env"}, "tag_key"),
    ({"month": MONTH, "level": "lines", "request_key": ""}, "request_key"),
    ({"month": 202603, "level": "lines"}, "month"),
])
def test_bad_input_is_refused_naming_the_field(rt, settings, body, field):
    rt.clock.set(at(20, 9))
    uin = new_account(rt, "bad-input")
    rest = Signed(rt, TestClient(create_app(rt)), api_key(rt, uin))
    answer = rest.send("POST", f"/api/v1/accounts/{uin}/bill-exports", body)
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["field"] == field
    assert error["message_zh"] and error["message_en"] and error["message_zh"] != error["message_en"]
    assert export_count(rt) == 0
    assert not settings.directory.exists()


@pytest.mark.spec("BIL-7")
def test_a_link_of_an_unfinished_or_unknown_export_is_refused(rt, month, settings):
    uin = month["uin"]
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, uin, MONTH, "lines", "csv")
    with pytest.raises(InvalidInput) as refused:
        exports.download_url(row, timedelta(hours=1), now=rt.clock.now(), settings=settings)
    assert refused.value.field == "id"
    http = TestClient(create_app(rt))
    answer = http.get("/api/v1/bill-exports/999999/download?expires=99999999999&signature=ab")
    assert answer.status_code == 403 and answer.json()["error"]["field"] == "signature"
    answer = http.get(f"/api/v1/bill-exports/{row['id']}/download?expires=x1&signature=ab")
    assert answer.status_code == 400 and answer.json()["error"]["field"] == "expires"


@pytest.mark.spec("BIL-7")
def test_lines_as_focus(rt, month, settings):
    focus = pytest.importorskip("feecenter.bills.focus")
    assert focus.write_focus_csv  # the contract: focus_context and write_focus_csv
    row = export(rt, settings, month["uin"], "lines", "focus")
    with rt.engine.connect() as conn:
        lines = service.month_lines(conn, OPS, month["uin"], MONTH)
    with open(settings.directory / row["file_name"], encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))
    assert row["file_name"].endswith("-focus.csv")
    assert row["lines_written"] == len(rows) - 1 == len(lines)


@pytest.mark.spec("BIL-7")
def test_the_hourly_job_runs_queued_exports(rt, month, settings, monkeypatch):
    from feecenter.jobs.loader import load_all
    from feecenter.periods import HOURLY, period_containing
    from tests.conftest import MASTER_KEY

    monkeypatch.setenv("FEECENTER_EXPORT_DIR", str(settings.directory))
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    job = load_all().get("bills.process_exports")
    period = period_containing(HOURLY, rt.clock.now())
    assert job.func(rt.engine, rt.clock, period) == {"done": 0, "failed": 0, "expired": 0}
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, month["uin"], MONTH, "region", "xlsx")
    assert job.func(rt.engine, rt.clock, period) == {"done": 1, "failed": 0, "expired": 0}
    assert job.func(rt.engine, rt.clock, period)["done"] == 0  # a rerun: nothing more
    assert (settings.directory / stored(rt, row["id"])["file_name"]).is_file()


@pytest.mark.spec("BIL-7", "XTR-5")
def test_describe_bill_download_url_gives_the_link_once_ready(compat_shop, tmp_path):  # noqa: F811
    import time as wall

    shop = compat_shop
    shop.rt.settings = dataclasses.replace(shop.rt.settings, export_dir=tmp_path / "exports")
    month = shop.rt.clock.now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    body = {"FileType": "billDetail", "Month": month, "ChildUin": [str(shop.uin)]}
    answer = shop.call("DescribeBillDownloadUrl", body)
    for _ in range(100):  # the export is written beside the answers
        if answer.get("Ready") == 1:
            break
        assert answer["Ready"] == 0 and answer["DownloadUrl"] is None, answer
        wall.sleep(0.1)
        answer = shop.call("DescribeBillDownloadUrl", body)
    assert answer["Ready"] == 1, answer
    assert export_count(shop.rt) == 1  # every call of the day found the same export
    got = shop.client.get(answer["DownloadUrl"])
    assert got.status_code == 200, got.text
    rows = list(csv.DictReader(io.StringIO(got.content.decode("utf-8-sig"))))
    with shop.rt.engine.connect() as conn:
        lines = service.month_lines(conn, OPS, shop.uin, month)
    assert [r["明细 ID Line ID"] for r in rows] == [line["line_id"] for line in lines] != []
    for body, code in (({"FileType": "billPack", "Month": month}, "InvalidParameterValue"),
                       ({"FileType": "billDetail", "Month": "2026-13"}, "InvalidParameterValue"),
                       ({"FileType": "billDetail", "Month": month, "ChildUin": ["1"]},
                        "UnauthorizedOperation")):
        error = shop.call("DescribeBillDownloadUrl", body)["Error"]
        assert error["Code"] == code, error
    assert export_count(shop.rt) == 1


@pytest.mark.spec("BIL-7")
def test_links_are_absolute_with_a_public_address(rt, month, settings):
    from urllib.parse import urlsplit

    public = dataclasses.replace(settings, public_url="https://billing.example.com")
    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, month["uin"], MONTH, "product", "csv")
    exports.process_pending(rt.engine, rt.clock, public)
    done = stored(rt, row["id"])
    link = exports.download_url(done, exports.LINK_TTL, now=rt.clock.now(), settings=public)
    path = exports.download_url(done, exports.LINK_TTL, now=rt.clock.now(), settings=settings)
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("https", "billing.example.com")
    assert link == "https://billing.example.com" + path and path.startswith("/api/v1/")


@pytest.mark.spec("BIL-7")
def test_a_run_lost_for_an_hour_is_run_again(rt, month, settings):
    from sqlalchemy import update

    from feecenter.clock import db_time

    with transaction(rt.engine) as conn:
        row = exports.request_export(conn, rt.clock, OPS, month["uin"], MONTH, "product", "csv")
        conn.execute(update(bill_exports).values(state="running", started_at=db_time(
            rt.clock.now() - timedelta(minutes=59))))
    assert exports.process_pending(rt.engine, rt.clock, settings)["done"] == 0  # still running
    rt.clock.advance(minutes=2)  # its worker is gone
    assert exports.process_pending(rt.engine, rt.clock, settings)["done"] == 1
    assert stored(rt, row["id"])["state"] == "done"
