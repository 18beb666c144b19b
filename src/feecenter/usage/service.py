"""Usage intake use cases: metering records from a batch (the HTTP endpoint's JSON
lines or CSV body) or a file (the CLI: CSV or JSON lines), through one path.

The input is read as a stream, in chunks of CHUNK records, each chunk its own
database transaction (so memory stays bounded, and a re-sent or resumed file
adds only what is missing):
1. parse (``usage.parse``, before the transaction): a bad record is rejected
   with the field and the reason;
2. check (``usage.rules.check``) against the chunk's resources, loaded with
   one query per 1,000 ids, and their products' billing items;
3. keep each event's first record (``usage.rules.dedupe``) and write the
   new ones set-based (``usage.store``: COPY on PostgreSQL, executemany on
   SQLite). Stored event IDs are looked up only when the write finds one.
On PostgreSQL steps 2-3 of a chunk run in a writer thread while the next
chunk is parsed.
The valid records of a batch are kept whatever else it holds. docs/usage.md.

A record's ``stopped_quantity`` — what it used while its resource was stopped
for arrears (ARR-3), not charged — is set at intake (``rules.stopped_part``),
set again for the new quantity when a higher revision corrects the record
(SET-9, ``store.correct``), and by ``restate_stopped`` when a stop begins or ends.
"""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Connection, Engine, bindparam, select, update

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, invalid
from feecenter.resources import service as resources
from feecenter.usage import rules, store
from feecenter.usage.parse import FORMATS, Chunk, Rejection, chunks, utc_text
from feecenter.usage.tables import usage_records

CHUNK = 20_000  # records per database transaction
MAX_REJECTIONS_REPORTED = 1_000
MAX_WRITE_ATTEMPTS = 5  # a chunk is written again only when another import wrote its events


@dataclass
class IntakeResult:
    accepted: int = 0
    corrected: int = 0  # stored events whose quantity a higher revision replaced (SET-9)
    duplicates: int = 0
    rejected: int = 0
    rejections: list[Rejection] = field(default_factory=list)  # the first ones, by line

    def reject(self, rejections: list[Rejection]) -> None:
        self.rejected += len(rejections)
        room = MAX_REJECTIONS_REPORTED - len(self.rejections)
        self.rejections.extend(sorted(rejections, key=lambda r: r.line)[:max(room, 0)])

    def to_dict(self) -> dict:
        return {"accepted": self.accepted, "corrected": self.corrected,
                "duplicates": self.duplicates,
                "rejected": self.rejected, "rejections": [r.to_dict() for r in self.rejections]}


def ingest(engine: Engine, clock: Clock, actor: Actor, source: str | Iterable[str],
           fmt: str = "jsonl") -> IntakeResult:
    """Ingest metering records from text or a stream of lines (a file opened with
    ``newline=""``); each bad record is rejected with its reason, the rest kept."""
    require_operator(actor)
    _check_format(fmt)
    if isinstance(source, str):
        source = io.StringIO(source.removeprefix("\ufeff"), newline="")
    return _ingest_chunks(engine, clock, chunks(source, fmt, CHUNK))


def ingest_file(engine: Engine, clock: Clock, actor: Actor, path: Path,
                fmt: str | None = None) -> IntakeResult:
    """Ingest a UTF-8 file (a leading byte-order mark is fine) as ``ingest`` does, read
    as a stream; the format is told by ``fmt`` or the suffix (.csv, else JSON lines)."""
    require_operator(actor)
    fmt = fmt or ("csv" if Path(path).suffix.lower() == ".csv" else "jsonl")
    _check_format(fmt)
    try:
        with open(path, encoding="utf-8-sig", newline="") as stream:
            return _ingest_chunks(engine, clock, chunks(stream, fmt, CHUNK))
    except UnicodeDecodeError:
        raise invalid("file", "文件不是 UTF-8 编码；此前的记录已导入，修正后重新导入即可",
                      "the file is not UTF-8; the records before the bad bytes were "
                      "imported: import the fixed file again") from None


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise invalid("format", "格式只能为 jsonl 或 csv", "format must be jsonl or csv")


def _ingest_chunks(engine: Engine, clock: Clock, parsed: Iterable[Chunk]) -> IntakeResult:
    result = IntakeResult()
    items_of: dict[str, frozenset[str]] = {}
    if engine.dialect.name == "postgresql":
        _store_overlapped(engine, clock, parsed, result, items_of)
        return result
    for chunk in parsed:
        _store_chunk(engine, clock, chunk, result, items_of)
    return result


def _store_overlapped(engine: Engine, clock: Clock, parsed: Iterable[Chunk],
                      result: IntakeResult, items_of: dict[str, frozenset[str]]) -> None:
    """PostgreSQL: chunk N is written by a worker thread while this thread parses
    chunk N+1. The worker spends most of a chunk waiting for the server to take the
    COPY (the GIL released), so parsing fills that time, on the core the server
    does not use; chunks are written in order, one at a time (docs/usage.md).
    SQLite gains nothing: its writes run in this process and take the GIL back
    for every row."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="usage-writer") as writer:
        pending = None
        for chunk in parsed:
            if pending is not None:
                pending.result()  # the one before is written (or raises) before the next
            pending = writer.submit(_store_chunk, engine, clock, chunk, result, items_of)
        if pending is not None:
            pending.result()


def _store_chunk(engine: Engine, clock: Clock, chunk: Chunk, result: IntakeResult,
                 items_of: dict[str, frozenset[str]]) -> None:
    if not chunk.records:  # nothing parsed: nothing to check or write
        result.reject(chunk.rejections)
        return
    with transaction(engine) as conn:
        now = utc_text(db_time(clock.now()))
        facts = store.resource_facts(conn, {record[2] for record in chunk.records}, items_of)
        rows, lines, refused = rules.check(chunk.records, chunk.lines, facts, now)
        new, corrected, duplicates, repeated = _write(conn, rows, lines)
    result.accepted += len(new)
    result.corrected += len(corrected)
    result.duplicates += duplicates
    result.reject(chunk.rejections + refused + repeated)


def _write(conn: Connection, rows: list[tuple], lines: list[int]
           ) -> tuple[list[tuple], list[tuple], int, list[Rejection]]:
    """Write the new rows optimistically under a savepoint; if an event was stored
    already, roll back, look the chunk's events up and judge again (a higher
    revision of a stored event then corrects it, SET-9)."""
    known: dict[str, tuple] = {}
    for _attempt in range(MAX_WRITE_ATTEMPTS):
        new, corrected, duplicates, repeated = rules.dedupe(rows, lines, known)
        savepoint = conn.begin_nested()
        if store.insert_new(conn, new) and store.correct(conn, corrected):
            savepoint.commit()
            return new, corrected, duplicates, repeated
        savepoint.rollback()
        known = store.known_events(conn, [row[0] for row in rows])
    raise Conflict("其他导入正在写入相同的事件，请稍后重试（此前的记录已导入）",
                   "another import keeps writing the same events: retry later "
                   "(the records before were imported)", field="event_id")


def restate_stopped(conn: Connection, resource_id: str, since) -> int:
    """Set again the stopped quantity of the resource's records ending after ``since``
    (naive UTC), from its stops as they are now; the number changed. A stop or restart
    calls it in its own transaction: a record of those hours can only be stored already
    if its import read the resource just before the stop or restart was written."""
    u = usage_records.c
    spans = resources.stop_spans(conn, [resource_id]).get(resource_id, [])
    changed = [{"event": row.event_id, "stopped": stopped} for row in conn.execute(
        select(u.event_id, u.quantity, u.usage_start, u.usage_end, u.stopped_quantity)
        .where(u.usage_end > since, u.resource_id == resource_id))
        if (stopped := rules.stopped_part(row.quantity, row.usage_start, row.usage_end, spans))
        != row.stopped_quantity]
    if changed:
        conn.execute(update(usage_records).where(u.event_id == bindparam("event"))
                     .values(stopped_quantity=bindparam("stopped")), changed)
    return len(changed)
