"""Usage intake use cases: ingest a batch (HTTP JSON lines) or a file (CSV, JSON lines).

Set-based: records are parsed and validated in Python against a per-chunk
lookup of their resources, known event IDs are found with one query per
chunk, and the new records are written with one multi-row INSERT per chunk.
Each chunk is its own database transaction, so a re-sent or resumed file
adds only what is missing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from sqlalchemy import Engine, select

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.catalog.tables import billing_items
from feecenter.clock import Clock, db_time
from feecenter.resources.tables import resources
from feecenter.usage.parse import Record, RecordError, Rejection, read_rows, to_record
from feecenter.usage.tables import usage_records

CHUNK = 5_000
IN_LIST = 500  # ids per IN (...) lookup
MAX_REJECTIONS_REPORTED = 1_000


@dataclass
class IntakeResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)

    refused_events: set[str] = field(default_factory=set)

    def reject(self, rejection: Rejection) -> None:
        self.rejected += 1
        if rejection.event_id:
            self.refused_events.add(rejection.event_id)
        if len(self.rejections) < MAX_REJECTIONS_REPORTED:
            self.rejections.append(rejection)

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "duplicates": self.duplicates,
                "rejected": self.rejected, "rejections": [r.to_dict() for r in self.rejections]}


def ingest(engine: Engine, clock: Clock, actor: Actor, text: str, fmt: str = "jsonl") -> IntakeResult:
    """Ingest metering records; each bad record is rejected with its reason."""
    require_operator(actor)
    if fmt not in ("jsonl", "csv"):
        from feecenter.errors import invalid

        raise invalid("format", "格式只能为 jsonl 或 csv", "format must be jsonl or csv")
    result = IntakeResult()
    chunk: list[Record] = []
    seen: dict[str, Record] = {}
    repeats: list[Record] = []  # the same event_id again in this batch: judged at the end
    items_of: dict[str, set[str]] = {}
    for line, raw in read_rows(text, fmt):
        try:
            if isinstance(raw, RecordError):
                raise raw
            record = to_record(line, raw)
        except RecordError as exc:
            event = raw.get("event_id") if isinstance(raw, dict) else None
            result.reject(Rejection(line, event, exc.field, exc.zh, exc.en))
            continue
        if record.event_id in seen:
            repeats.append(record)
            continue
        seen[record.event_id] = record
        chunk.append(record)
        if len(chunk) >= CHUNK:
            _store_chunk(engine, clock, chunk, result, items_of)
            chunk = []
    if chunk:
        _store_chunk(engine, clock, chunk, result, items_of)
    for record in repeats:
        if record.event_id in result.refused_events:
            result.reject(Rejection(record.line, record.event_id, "event_id",
                                    "同一事件 ID 的记录已被拒绝", "a record with this event_id was rejected"))
        else:
            _same_or_reject(result, seen[record.event_id], record)
    result.rejections.sort(key=lambda r: r.line)
    return result


def _content(record) -> tuple:
    return (record.uin, record.resource_id, record.billing_item, record.quantity,
            record.usage_start, record.usage_end)


def _same_or_reject(result: IntakeResult, earlier, record: Record) -> None:
    if _content(earlier) == _content(record):
        result.duplicates += 1
    else:
        result.reject(Rejection(record.line, record.event_id, "event_id",
                                "事件 ID 重复且内容不同", "duplicate event_id with different content"))


def _store_chunk(engine: Engine, clock: Clock, chunk: list[Record], result: IntakeResult,
                 items_of: dict[str, set[str]]) -> None:
    now = db_time(clock.now())
    with engine.begin() as conn:
        known = _known_events(conn, [r.event_id for r in chunk])
        owners = _resources(conn, {r.resource_id for r in chunk})
        rows = []
        for record in chunk:
            if record.event_id in known:
                _same_or_reject(result, known[record.event_id], record)
                continue
            problem = _problem(conn, record, owners.get(record.resource_id), now, items_of)
            if problem:
                result.reject(Rejection(record.line, record.event_id, *problem))
                continue
            rows.append((record.event_id, record.uin, record.resource_id, record.billing_item,
                         record.quantity, record.usage_start, record.usage_end, now))
        if rows:
            _insert_rows(conn, rows)
        result.accepted += len(rows)


_COLUMNS = ("event_id", "uin", "resource_id", "billing_item", "quantity", "usage_start",
            "usage_end", "received_at")


def _insert_rows(conn, rows: list[tuple]) -> None:
    """One executemany straight to the driver: the bulk path skips SQLAlchemy's
    per-value processing. SQLite stores times in SQLAlchemy's own text format."""
    if conn.dialect.name == "sqlite":
        rows = [(*row[:5], _sqlite_time(row[5]), _sqlite_time(row[6]), _sqlite_time(row[7]))
                for row in rows]
        marks = ", ".join("?" * len(_COLUMNS))
    else:
        marks = ", ".join(["%s"] * len(_COLUMNS))
    conn.exec_driver_sql(f"INSERT INTO {usage_records.name} ({', '.join(_COLUMNS)}) "
                         f"VALUES ({marks})", rows)


@functools.lru_cache(maxsize=65_536)  # period boundaries repeat
def _sqlite_time(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _known_events(conn, event_ids: list[str]) -> dict:
    u = usage_records.c
    known = {}
    for start in range(0, len(event_ids), IN_LIST):
        for row in conn.execute(select(u.event_id, u.uin, u.resource_id, u.billing_item,
                                       u.quantity, u.usage_start, u.usage_end)
                                .where(u.event_id.in_(event_ids[start:start + IN_LIST]))):
            known[row.event_id] = row
    return known


def _resources(conn, ids: set[str]) -> dict:
    r = resources.c
    ordered = sorted(ids)
    found = {}
    for start in range(0, len(ordered), IN_LIST):
        for row in conn.execute(select(r.id, r.uin, r.product_code, r.pay_mode, r.created_at,
                                       r.released_at).where(r.id.in_(ordered[start:start + IN_LIST]))):
            found[row.id] = row
    return found


def _problem(conn, record: Record, resource, now, items_of) -> tuple[str, str, str] | None:
    """Why a record cannot be accepted: (field, zh, en), or None."""
    if resource is None or resource.uin != record.uin:
        return ("resource_id", f"资源不存在或不属于账号 {record.uin}：{record.resource_id}",
                f"unknown resource for account {record.uin}: {record.resource_id}")
    if resource.pay_mode != "postpaid":
        return ("resource_id", "只有按量计费资源上报用量", "only postpaid resources report usage")
    if resource.released_at is not None and record.usage_end > resource.released_at:
        return ("resource_id", "资源已释放，释放后的用量不计费",
                "the resource was released before this usage ended")
    if record.usage_start < resource.created_at:
        return ("usage_start", "用量早于资源创建时间", "usage starts before the resource existed")
    if record.usage_end > now:
        return ("usage_end", "用量结束时间在未来", "usage ends in the future")
    items = items_of.get(resource.product_code)
    if items is None:
        items = set(conn.execute(select(billing_items.c.code).where(
            billing_items.c.product_code == resource.product_code)).scalars())
        items_of[resource.product_code] = items
    if record.billing_item not in items:
        return ("billing_item", f"产品 {resource.product_code} 没有计费项 {record.billing_item}",
                f"product {resource.product_code} has no billing item {record.billing_item}")
    return None
