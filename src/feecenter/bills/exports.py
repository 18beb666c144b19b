"""Bill exports, the download center (下载中心, BIL-7): an account's cost bill of one
month and level — ``overview`` (L0), ``product`` / ``project`` / ``region`` /
``pay_mode`` / ``tag`` (L1), ``resources`` (L2), ``lines`` (L3) — as a CSV or XLSX
file, and the L3 lines also as FinOps FOCUS (``focus``, written by
``bills.focus``). Owns ``bill_exports`` (bills.tables) and the export files.

- ``request_export`` records an export (FINANCE on the account, checked here),
  idempotently per (account, request key); state ``queued``.
- ``process_export`` runs one (``queued`` → ``running`` → ``done`` | ``failed``,
  progress in ``lines_written`` / ``lines_total``); ``process_pending`` runs the
  queued ones (the job ``bills.process_exports``, bills.jobs). Files are written
  row by row (CSV: the stdlib writer, records ending in LF; XLSX: XlsxWriter in
  ``constant_memory`` mode), to a ``.part`` file renamed when complete: memory
  stays flat in the line count. The L3 lines (level ``lines``) come from the
  database already as text (``bills.line_text``); on PostgreSQL their CSV is
  written by the server's COPY, byte for byte the file ``csv.writer`` makes of
  the same rows.
- ``expire_exports`` deletes the files of exports past their retention (default
  7 days) and marks them ``expired``.
- ``download_url`` signs a link (HMAC-SHA256 over export id, account and expiry,
  keyed by a secret derived from the master key); ``open_download`` checks it —
  the signature is the credential, no login.

Amounts as on REST: fen as yuan ("12.34"), 1e-8 yuan with 8 decimals; a line not at
the list price has "-" as list price, discount and original cost (BIL-6).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import hmac
import io
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlencode

from sqlalchemy import Connection, Engine, and_, or_, select, update

from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require
from feecenter.bills import line_text
from feecenter.bills import service as bills
from feecenter.bills.tables import bill_exports
from feecenter.clock import BUSINESS_TZ, Clock, business_date, db_time, from_db_time
from feecenter.config import Settings, master_key
from feecenter.db.engine import is_sqlite, transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import (ConfigurationError, FeeCenterError, IdempotencyConflict,
                              PermissionDenied, invalid, not_found)
from feecenter.money import format_rated, format_yuan

log = logging.getLogger("feecenter.bills.exports")

LEVELS = ("overview", "product", "project", "region", "pay_mode", "tag", "resources", "lines")
FORMATS = {level: ("csv", "xlsx") for level in LEVELS} | {"lines": ("csv", "xlsx", "focus")}
STATES = ("queued", "running", "done", "failed", "expired")
PROGRESS_EVERY = 5_000  # lines between two progress updates
STALE_RUNNING = timedelta(hours=1)  # a "running" export not finished by then was lost: rerun
MAX_PER_PASS = 100  # exports one ``process_pending`` call runs at most
XLSX_MAX_ROWS = 1_048_576  # a worksheet's rows; more lines continue on the next sheet
MAX_LINK_TTL = timedelta(days=7)
LINK_TTL = timedelta(hours=1)  # the links REST and the console hand out
MEDIA_TYPES = {".csv": "text/csv; charset=utf-8",
               ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
DASH = "-"  # BIL-6: no list price, discount or original cost


@dataclass(frozen=True)
class ExportSettings:
    directory: Path | None  # None: neither FEECENTER_EXPORT_DIR nor FEECENTER_HOME set
    retention: timedelta
    link_key: bytes  # HMAC key of the download links
    public_url: str | None = None  # FEECENTER_PUBLIC_URL: links absolute; None: a path


def export_settings(settings: Settings) -> ExportSettings:
    """The export directory (FEECENTER_EXPORT_DIR, default $FEECENTER_HOME/exports), the
    retention, the links' key (derived from the master key, never stored) and the
    public address the links start with (FEECENTER_PUBLIC_URL)."""
    directory = settings.export_dir or (Path(settings.home) / "exports" if settings.home
                                        else None)
    key = hmac.new(master_key(settings).encode(), b"feecenter bill-export download links",
                   hashlib.sha256).digest()
    return ExportSettings(directory and Path(directory),
                          timedelta(days=settings.export_retention_days), key,
                          settings.public_url)


def _directory(settings: ExportSettings) -> Path:
    if settings.directory is None:
        raise ConfigurationError("未配置账单导出目录", "no export directory is configured",
                                 field="FEECENTER_EXPORT_DIR")
    return settings.directory


class LinkExpired(FeeCenterError):
    """A download link past its expiry, or an export whose file is gone."""

    code = "LinkExpired"
    http_status = 410


# ---------------------------------------------------------------- requests

def request_export(conn: Connection, clock: Clock, actor: Actor, uin: int, month: str,
                   level: str, fmt: str, *, tag_key: str | None = None,
                   request_key: str | None = None) -> dict:
    """Record an export of the account's bill (FINANCE); the same ``request_key`` gives
    the same export (another request under it: 409 naming ``request_key``)."""
    require(actor, uin, FINANCE)
    wanted = _checked_request(clock, month, level, fmt, tag_key)
    key = _checked_key(request_key) if request_key is not None else uuid.uuid4().hex
    now = db_time(clock.now())
    conn.execute(insert_if_absent(conn, bill_exports, ["uin", "request_key"]).values(
        uin=uin, request_key=key, requested_by=actor.label[:200], state="queued",
        lines_written=0, created_at=now, **wanted))
    row = _row(conn, and_(bill_exports.c.uin == uin, bill_exports.c.request_key == key))
    if any(row[name] != value for name, value in wanted.items()):
        raise IdempotencyConflict("该请求键已用于另一次导出", "this request key was used for "
                                  "another export", field="request_key")
    return row


def _checked_request(clock: Clock, month, level, fmt, tag_key) -> dict:
    bills.check_month(month)
    if month > business_date(clock.now()).strftime("%Y-%m"):
        raise invalid("month", "不能导出未来月份的账单", "the month must not be in the future")
    if level not in LEVELS:
        raise invalid("level", "账单层级须为 " + "、".join(LEVELS),
                      "level must be one of " + ", ".join(LEVELS))
    if fmt not in FORMATS[level]:
        raise invalid("fmt", f"{level} 层级的文件格式须为 " + "、".join(FORMATS[level]),
                      f"fmt for level {level} must be one of " + ", ".join(FORMATS[level]))
    tag_key = tag_key or None
    if level == "tag":
        if not isinstance(tag_key, str) or not 1 <= len(tag_key) <= 127 \
                or not tag_key.isprintable():
            raise invalid("tag_key", "按标签导出须给出标签键（1–127 个字符）",
                          "level tag needs a tag_key (1-127 characters)")
    elif tag_key is not None:
        raise invalid("tag_key", "只有按标签导出才可给出标签键",
                      "tag_key is only for level tag")
    return {"month": month, "level": level, "fmt": fmt, "tag_key": tag_key}


def _checked_key(key) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= 64 or not key.isascii() \
            or not key.isprintable():
        raise invalid("request_key", "请求键须为 1–64 个可打印 ASCII 字符",
                      "request_key must be 1-64 printable ASCII characters")
    return key


def _row(conn: Connection, *where) -> dict | None:
    found = conn.execute(select(bill_exports).where(*where)).mappings().first()
    return dict(found) if found is not None else None


def get_export(conn: Connection, actor: Actor, uin: int, export_id: int) -> dict:
    """One export of the account (FINANCE); 404 naming ``id`` when it has none such."""
    require(actor, uin, FINANCE)
    row = _row(conn, bill_exports.c.id == export_id, bill_exports.c.uin == uin)
    if row is None:
        raise not_found("id", "账单导出", "bill export", export_id)
    return row


def list_exports(conn: Connection, actor: Actor, uin: int, limit: int = 50) -> list[dict]:
    """The account's exports, newest first (FINANCE)."""
    require(actor, uin, FINANCE)
    e = bill_exports.c
    return [dict(row) for row in conn.execute(
        select(bill_exports).where(e.uin == uin).order_by(e.created_at.desc(), e.id.desc())
        .limit(limit)).mappings()]


# ---------------------------------------------------------------- processing

def has_work(engine: Engine, clock: Clock) -> bool:
    """Is any export to run or to expire? (The job looks before reading its settings.)"""
    e = bill_exports.c
    due = or_(_claimable(clock), and_(e.state == "done", e.expires_at <= db_time(clock.now())))
    with engine.connect() as conn:
        return conn.execute(select(e.id).where(due).limit(1)).first() is not None


def process_pending(engine: Engine, clock: Clock, settings: ExportSettings) -> dict:
    """Run the queued exports (and those whose run was lost), oldest first, at most
    MAX_PER_PASS; then expire the old ones. Idempotent: each export is claimed once."""
    e = bill_exports.c
    with engine.connect() as conn:
        ids = list(conn.execute(select(e.id).where(_claimable(clock)).order_by(e.id)
                                .limit(MAX_PER_PASS)).scalars())
    states = [process_export(engine, clock, export_id, settings) for export_id in ids]
    return {"done": states.count("done"), "failed": states.count("failed"),
            "expired": expire_exports(engine, clock, settings)}


def _claimable(clock: Clock):
    e = bill_exports.c
    lost = db_time(clock.now() - STALE_RUNNING)
    return or_(e.state == "queued", and_(e.state == "running", e.started_at < lost))


def process_export(engine: Engine, clock: Clock, export_id: int,
                   settings: ExportSettings) -> str | None:
    """Write one export's file; its new state, or None when it was not claimable
    (done already, or being run by another worker)."""
    e = bill_exports.c
    with transaction(engine) as conn:
        claimed = conn.execute(update(bill_exports).where(e.id == export_id, _claimable(clock))
                               .values(state="running", started_at=db_time(clock.now()),
                                       lines_written=0, lines_total=None, error=None))
        if claimed.rowcount != 1:
            return None
        export = _row(conn, e.id == export_id)
    name, part = _file_name(export), None
    try:
        directory = _directory(settings)
        directory.mkdir(parents=True, exist_ok=True)
        part = directory / f"{name}.part"
        written = _write(engine, export, part)
        os.replace(part, directory / name)
    except Exception as exc:  # recorded on the export, which the user sees failed
        log.exception("bill export %s failed", export_id)
        if part is not None:
            part.unlink(missing_ok=True)
        _finish(engine, export_id, state="failed", error=_reason(exc),
                finished_at=db_time(clock.now()))
        return "failed"
    now = clock.now()
    _finish(engine, export_id, state="done", lines_written=written, lines_total=written,
            file_name=name, size_bytes=(directory / name).stat().st_size,
            finished_at=db_time(now), expires_at=db_time(now + settings.retention))
    return "done"


def _reason(exc: Exception) -> str:
    if isinstance(exc, FeeCenterError):
        return exc.message
    return f"导出失败 / export failed: {type(exc).__name__}: {exc}"[:2000]


def _finish(engine: Engine, export_id: int, **values) -> None:
    with transaction(engine) as conn:
        conn.execute(update(bill_exports).where(bill_exports.c.id == export_id).values(**values))


def _progress(engine: Engine, export_id: int) -> Callable[[int, int | None], None]:
    def record(written: int, total: int | None) -> None:
        values = {"lines_written": written} | ({"lines_total": total} if total is not None
                                               else {})
        _finish(engine, export_id, **values)
    return record


def _file_name(export: dict) -> str:
    suffix = "-focus.csv" if export["fmt"] == "focus" else f".{export['fmt']}"
    return f"bill-{export['uin']}-{export['month']}-{export['level']}-{export['id']}{suffix}"


@contextlib.contextmanager
def _reading(engine: Engine) -> Iterator[Connection]:
    """A connection that only reads: on SQLite a deferred transaction (a WAL snapshot
    that blocks no writer, while the progress is written beside it), not the
    engine's BEGIN IMMEDIATE."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn.connection.dbapi_connection.execute("BEGIN DEFERRED")
        try:
            yield conn
        finally:
            conn.rollback()


def _write(engine: Engine, export: dict, path: Path) -> int:
    """Write the export's rows to ``path``; the number of data rows (lines) written."""
    progress = _progress(engine, export["id"])
    with _reading(engine) as conn:
        if export["fmt"] == "focus":
            return _write_focus(conn, export, path, progress)
        if export["level"] == "lines":
            return _write_lines(conn, export, path, progress)
        header, rows, total = _table(conn, export)
        if total is not None:
            progress(0, total)
        with contextlib.closing(_counting(rows, progress)) as counted:  # a failure ends the read
            if export["fmt"] == "xlsx":
                return write_xlsx(path, header, counted,
                                  sheet=f"{export['month']} {export['level']}")
            return write_csv(path, header, counted)


def _counting(rows: Iterable, progress: Callable[[int, int | None], None]) -> Iterator:
    """``rows`` with the progress recorded every PROGRESS_EVERY; closed, it closes
    ``rows`` too (a streamed read's cursor)."""
    written = 0
    try:
        for row in rows:
            yield row
            written += 1
            if written % PROGRESS_EVERY == 0:
                progress(written, None)
    finally:
        if hasattr(rows, "close"):
            rows.close()


def _write_lines(conn: Connection, export: dict, path: Path, progress) -> int:
    """Level ``lines``: the L3 lines as text from the database (``bills.line_text``),
    the progress's total the roll-ups' count. CSV on PostgreSQL: BOM and header
    written here, the records by the server's COPY; elsewhere the text rows into
    ``write_csv`` / ``write_xlsx``."""
    uin, month = export["uin"], export["month"]
    progress(0, _expected_lines(conn, uin, month))
    if export["fmt"] == "csv" and conn.dialect.name == "postgresql":
        with open(path, "wb") as out:
            out.write(csv_header_bytes(list(LINE_COLUMNS)))
            return line_text.copy_line_csv(conn, SYSTEM, uin, month, out,
                                           lambda written: progress(written, None),
                                           PROGRESS_EVERY)
    rows = line_text.iter_line_text(conn, SYSTEM, uin, month)
    with contextlib.closing(_counting(rows, progress)) as counted:  # a failure ends the read
        if export["fmt"] == "xlsx":
            return write_xlsx(path, list(LINE_COLUMNS), counted,
                              sheet=f"{export['month']} {export['level']}")
        return write_csv(path, list(LINE_COLUMNS), counted)


CSV_LINE_END = "\n"  # what PostgreSQL's COPY ends a record with: one ending in every CSV


def csv_header_bytes(header: list[str]) -> bytes:
    """The BOM and the header record, as ``write_csv`` begins a file."""
    text = io.StringIO()
    csv.writer(text, lineterminator=CSV_LINE_END).writerow(header)
    return ("\ufeff" + text.getvalue()).encode("utf-8")


def write_csv(path: Path, header: list[str], rows: Iterable[list[str]]) -> int:
    """UTF-8 with a BOM (Excel opens the Chinese headers right), one row at a time,
    records ending in LF (as PostgreSQL's COPY writes them)."""
    written = 0
    with open(path, "w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, lineterminator=CSV_LINE_END)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            written += 1
    return written


def write_xlsx(path: Path, header: list[str], rows: Iterable[list[str]], sheet: str) -> int:
    """XlsxWriter in constant_memory mode (each row flushed once written); amounts are
    text cells, exact as on REST; past a sheet's last row a new sheet begins."""
    import xlsxwriter

    written = 0
    book = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                           "strings_to_formulas": False, "strings_to_urls": False})
    try:
        bold = book.add_format({"bold": True})
        page, row_number = None, XLSX_MAX_ROWS
        for row in rows:
            if row_number == XLSX_MAX_ROWS:
                page = book.add_worksheet(sheet if page is None else f"{sheet} ({written + 1}-)")
                page.write_row(0, 0, header, bold)
                row_number = 1
            page.write_row(row_number, 0, row)
            row_number += 1
            written += 1
        if page is None:
            book.add_worksheet(sheet).write_row(0, 0, header, bold)
    finally:
        book.close()
    return written


def _write_focus(conn: Connection, export: dict, path: Path, progress) -> int:
    """FinOps FOCUS from the L3 lines, written by ``bills.focus`` (its own header)."""
    from feecenter.bills import focus

    context = focus.focus_context(conn, export["uin"], export["month"])
    lines = _counting(focus.focus_lines(conn, SYSTEM, export["uin"], export["month"]), progress)
    with contextlib.closing(lines), open(path, "w", encoding="utf-8", newline="") as out:
        return focus.write_focus_csv(lines, context, out)


# ---------------------------------------------------------------- the levels as tables

SUM_COLUMNS = (
    ("原价（元） Original cost (CNY)", "original_cost", format_rated),
    ("折后价（元） Discounted cost (CNY)", "discounted_cost", format_rated),
    ("扣费（元） Deducted (CNY)", "deducted", format_yuan),
    ("代金券支付（元） Voucher paid (CNY)", "voucher_paid", format_yuan),
    ("现金支付（元） Cash paid (CNY)", "cash_paid", format_yuan),
    ("赠送金支付（元） Gift paid (CNY)", "gift_paid", format_yuan),
    ("精度差（元） Precision difference (CNY)", "precision_diff", format_rated),
    ("明细条数 Lines", "lines", str),
)
GROUP_COLUMNS = {
    "overview": ("类别 Category",),
    "product": ("产品 Product",),
    "project": ("项目 ID Project ID", "项目 Project"),
    "region": ("地域 Region",),
    "pay_mode": ("计费模式 Pay mode",),
    "tag": ("标签键 Tag key", "标签值 Tag value"),
    "resources": ("资源 ID Resource ID", "资源名称 Resource name", "标签 Tags"),
}
OVERVIEW_ROWS = {"total": "合计 Total", "prepaid": "包年包月 Prepaid",
                 "postpaid": "按量计费 Postpaid"}


def _sums(group: dict) -> list[str]:
    return [show(group[name]) for _, name, show in SUM_COLUMNS]


def _table(conn: Connection, export: dict) -> tuple[list[str], Iterable[list[str]], int | None]:
    """(header, rows, number of rows if known) of the export's level."""
    uin, month, level = export["uin"], export["month"], export["level"]
    header = [*GROUP_COLUMNS[level], *(title for title, _, _ in SUM_COLUMNS)]
    if level == "overview":
        found = bills.overview(conn, SYSTEM, uin, month)
        rows = [[OVERVIEW_ROWS["total"], *_sums(found["total"])]] + [
            [OVERVIEW_ROWS.get(g["pay_mode"], g["pay_mode"]), *_sums(g)]
            for g in found["by_pay_mode"]]
    elif level == "resources":
        rows = [[g["resource_id"], g["resource_name"] or "",
                 "; ".join(f"{k}={v}" for k, v in sorted(g["tags"].items())), *_sums(g)]
                for g in bills.resource_bills(conn, SYSTEM, uin, month)]
    else:
        groups = bills.summary(conn, SYSTEM, uin, month, level, export["tag_key"])
        keys = {"project": ("project", "project_name"), "tag": ("tag_key", "tag_value")}.get(
            level, (level,))
        rows = [[str(g[k]) for k in keys] + _sums(g) for g in groups]
    return header, rows, len(rows)


def _expected_lines(conn: Connection, uin: int, month: str) -> int:
    """The month's line count as the roll-ups hold it (T+1): the progress's total
    until the export ends, when it becomes the lines written."""
    return bills.overview(conn, SYSTEM, uin, month)["total"]["lines"]


def _discount(bp: int | None) -> str:
    """8000 basis points -> "0.8000" (the share of the list price paid); None -> "-"."""
    return DASH if bp is None else f"{bp // 10_000}.{bp % 10_000:04d}"


def _time(value: datetime | None) -> str:
    """Business time "YYYY-MM-DD HH:MM:SS" (as ``time_text``, without strftime: the
    export formats millions of them); None -> ""."""
    if value is None:
        return ""
    local = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).astimezone(
        BUSINESS_TZ)
    return local.replace(tzinfo=None).isoformat(" ", "seconds")


LINE_COLUMNS = (
    "明细 ID Line ID", "扣费时间 Deducted at", "扣费日期 Deduction day", "账单月份 Bill month",
    "用量月份 Usage month", "计费模式 Pay mode", "类型 Kind", "产品 Product", "地域 Region",
    "项目 ID Project ID", "项目 Project", "资源 ID Resource ID", "资源名称 Resource name",
    "计费项 Billing item", "价格类型 Price kind", "用量开始 Usage start", "用量结束 Usage end",
    "单价（元） Unit price (CNY)", "折扣 Discount", "原价（元） Original cost (CNY)",
    "折后价（元） Discounted cost (CNY)", "扣费（元） Deducted (CNY)",
    "代金券支付（元） Voucher paid (CNY)", "现金支付（元） Cash paid (CNY)",
    "赠送金支付（元） Gift paid (CNY)", "精度差（元） Precision difference (CNY)",
)


def line_row(x: dict) -> list[str]:
    """An L3 line as the export's cells, in LINE_COLUMNS order (BIL-6: "-" where no list
    price applies), formatted in Python: the reference the database's formatting
    (``bills.line_text``, which the export uses) is tested against."""
    unit, original = x["unit_price"], x["original_cost"]
    return [x["line_id"], _time(x["deducted_at"]), x["deducted_on"].isoformat(),
            x["bill_month"], x["usage_month"], x["pay_mode"], x["kind"], x["product_code"],
            x["region"], str(x["project_id"]), x["project_name"], x["resource_id"],
            x["resource_name"] or "", x["item"], x["price_kind"], _time(x["usage_start"]),
            _time(x["usage_end"]), DASH if unit is None else format_rated(unit),
            _discount(x["discount_bp"]), DASH if original is None else format_rated(original),
            format_rated(x["discounted_cost"]), format_yuan(x["deducted"]),
            format_yuan(x["voucher_paid"]), format_yuan(x["cash_paid"]),
            format_yuan(x["gift_paid"]), format_rated(x["precision_diff"])]


# ---------------------------------------------------------------- retention

def expire_exports(engine: Engine, clock: Clock, settings: ExportSettings) -> int:
    """Delete the files of done exports past ``expires_at``, mark them expired; how many."""
    e = bill_exports.c
    now = db_time(clock.now())
    with engine.connect() as conn:
        due = conn.execute(select(e.id, e.file_name).where(e.state == "done",
                                                           e.expires_at <= now)).all()
    for export_id, name in due:
        if name:
            (_directory(settings) / name).unlink(missing_ok=True)
        with transaction(engine) as conn:
            conn.execute(update(bill_exports).where(e.id == export_id, e.state == "done")
                         .values(state="expired"))
    return len(due)


# ---------------------------------------------------------------- download links

def media_type(file_name: str) -> str:
    return MEDIA_TYPES[Path(file_name).suffix]


def download_url(export: dict, ttl: timedelta, *, now: datetime,
                 settings: ExportSettings) -> str:
    """The export's signed download link, valid ``ttl`` from ``now`` (at most its
    retention's end and MAX_LINK_TTL): absolute when FEECENTER_PUBLIC_URL is set (as
    Tencent's DescribeBillDownloadUrl gives it), else a path on this server."""
    if export["state"] != "done":
        raise invalid("id", "导出尚未完成，无下载链接", "the export is not done: no link yet")
    until = min(now + min(ttl, MAX_LINK_TTL), from_db_time(export["expires_at"]))
    expires = int(until.timestamp())
    query = urlencode({"expires": expires,
                       "signature": _signature(settings, export["id"], export["uin"], expires)})
    return f"{settings.public_url or ''}/api/v1/bill-exports/{export['id']}/download?{query}"


def _signature(settings: ExportSettings, export_id: int, uin: int, expires: int) -> str:
    message = f"bill-export:{export_id}:{uin}:{expires}".encode()
    return hmac.new(settings.link_key, message, hashlib.sha256).hexdigest()


def open_download(conn: Connection, clock: Clock, export_id: int, expires: str,
                  signature: str, settings: ExportSettings) -> tuple[Path, str]:
    """Check a download link: (the file, the name to save it as). A tampered link or
    one of another export: 403 naming ``signature``; past its expiry: 410 naming
    ``expires``; an export expired or not done: 410 naming ``id``."""
    if not (isinstance(expires, str) and expires.isascii() and expires.isdigit()
            and len(expires) <= 12):
        raise invalid("expires", "链接的 expires 参数格式错误", "the link's expires is malformed")
    export = _row(conn, bill_exports.c.id == export_id)
    expected = _signature(settings, export_id, export["uin"] if export else 0, int(expires))
    if export is None or not hmac.compare_digest(expected, str(signature)):
        raise PermissionDenied("下载链接的签名无效", "the download link's signature is invalid",
                               field="signature")
    if int(expires) < clock.now().timestamp():
        raise LinkExpired("下载链接已过期，请重新获取", "the download link has expired; get a new one",
                          field="expires")
    path = _directory(settings) / (export["file_name"] or "")
    if export["state"] != "done" or not export["file_name"] or not path.is_file():
        raise LinkExpired("该导出文件已过期或不存在", "the export's file has expired or does not "
                          "exist", field="id")
    return path, export["file_name"]


__all__ = ["LEVELS", "FORMATS", "STATES", "ExportSettings", "export_settings", "LinkExpired",
           "request_export", "get_export", "list_exports", "has_work", "process_pending", "process_export",
           "expire_exports", "download_url", "open_download", "media_type", "LINK_TTL", "write_csv", "write_xlsx",
           "line_row"]
