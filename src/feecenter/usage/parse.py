"""Reading and parsing metering records: pure functions, no database.

A record: event_id, uin (account), resource_id, billing_item, quantity (a
decimal string with up to 6 decimals, ≥ 0), usage_start, usage_end
("YYYY-MM-DD HH:MM:SS" in Asia/Shanghai, or ISO 8601 with an offset), and
optionally revision (an integer ≥ 0, default 0: a higher revision of an event
corrects its quantity, SET-9).

This is the hot path of a bulk intake (issue #4: ≥ 100,000 records a second
from a file), so a parsed record is a plain tuple ``(event_id, uin,
resource_id, billing_item, quantity, usage_start, usage_end, revision)``; quantities
are integers in 1e-6 units and times are naive-UTC text in the fixed-width
form "YYYY-MM-DD HH:MM:SS.ffffff" (what SQLite stores for a DateTime, what
PostgreSQL's COPY reads; text order is time order). Metering repeats the same
period boundaries and quantities, so each distinct text is parsed once
(bounded memos); JSON lines are decoded by msgspec straight into the fields.
Input is read as a stream and handed on in chunks, so memory stays bounded
however large the file.
"""

from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from operator import itemgetter

import msgspec

from feecenter.clock import BUSINESS_TZ

QTY_SCALE = 1_000_000
MAX_QUANTITY = 10**15  # in 1e-6 units: a billion units in one record is absurd
MAX_EVENT_ID = 100  # characters (the column's width)
MEMO_LIMIT = 100_000  # distinct texts remembered per memo before it starts afresh
FIELDS = ("event_id", "uin", "resource_id", "billing_item", "quantity", "usage_start",
          "usage_end")
OPTIONAL = "revision"  # absent or blank: 0
MAX_REVISION = 2**31 - 1
FORMATS = ("jsonl", "csv")
_QUANTITY = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$", re.ASCII)


class RecordError(Exception):
    """One record cannot be accepted: the field and the reason in Chinese and English."""

    def __init__(self, field: str, zh: str, en: str):
        super().__init__(en)
        self.field, self.zh, self.en = field, zh, en


@dataclass(frozen=True)
class Rejection:
    line: int
    event_id: str | None
    field: str
    reason_zh: str
    reason_en: str

    def to_dict(self) -> dict:
        return {"line": self.line, "event_id": self.event_id, "field": self.field,
                "reason_zh": self.reason_zh, "reason_en": self.reason_en}


@dataclass
class Chunk:
    """Up to ``size`` parsed records (with their line numbers) and the lines refused
    on the way."""

    records: list[tuple] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


def utc_text(when: datetime) -> str:
    """Naive UTC -> "YYYY-MM-DD HH:MM:SS.ffffff" (fixed width, so text order is time order)."""
    return when.isoformat(" ", "microseconds")


def _utc_of(text: str) -> str:
    """Time text (Shanghai, or with an offset) -> UTC text; ValueError when malformed."""
    try:
        when = datetime.fromisoformat(text.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=BUSINESS_TZ)
        return utc_text(when.astimezone(timezone.utc).replace(tzinfo=None))
    except (OverflowError, TypeError) as exc:  # e.g. year 1 with an eastern offset
        raise ValueError(str(exc)) from None


def _quantity_of(text: str | int) -> int:
    raw = text.strip() if type(text) is str else str(text)  # JSON lines may send an integer
    match = _QUANTITY.match(raw)
    if not match:
        raise RecordError("quantity", f"用量格式错误：{raw!r}（非负数，最多六位小数）",
                          f"malformed quantity {raw!r} (non-negative, at most 6 decimals)")
    value = int(match[1]) * QTY_SCALE + int((match[2] or "").ljust(6, "0"))
    if value > MAX_QUANTITY:
        raise RecordError("quantity", "用量过大", "quantity is too large")
    return value


class Memo(dict):
    """text -> parsed value, each distinct text parsed once (a dict hit is C-fast);
    starts afresh past MEMO_LIMIT entries, so it stays bounded."""

    def __init__(self, parse: Callable[[str], object]):
        super().__init__()
        self._parse = parse

    def __missing__(self, text: str):
        value = self._parse(text)
        if len(self) >= MEMO_LIMIT:
            self.clear()
        self[text] = value
        return value


class RecordParser:
    """The seven field texts of a record (and the revision's, if sent) -> a parsed
    record tuple, or RecordError."""

    def __init__(self):
        self._times = Memo(_utc_of)
        self._quantities = Memo(_quantity_of)

    def parse(self, values) -> tuple:
        event_id, uin, resource_id, item, quantity, start, end, *revision = values
        if not (event_id and uin and resource_id and item and quantity and start and end):
            missing = next((f for f, v in zip(FIELDS, values) if v is None or v == ""), None)
            if missing:  # (else a JSON integer 0)
                raise RecordError(missing, f"缺少字段 {missing}", f"missing field {missing}")
        event_id = event_id.strip()
        if not event_id or len(event_id) > MAX_EVENT_ID or not event_id.isprintable():
            raise RecordError("event_id", "事件 ID 须为 1–100 个可打印字符",
                              "event_id must be 1 to 100 printable characters")
        try:
            uin = int(uin)
        except ValueError:
            raise RecordError("uin", f"账号 ID 无效：{uin!r}", f"invalid uin {uin!r}") from None
        times = self._times
        try:
            start = times[start]
        except ValueError:
            raise _bad_time("usage_start", start) from None
        try:
            end = times[end]
        except ValueError:
            raise _bad_time("usage_end", end) from None
        if end <= start:
            raise RecordError("usage_end", "用量结束时间必须晚于开始时间",
                              "usage_end must be after usage_start")
        return (event_id, uin, resource_id.strip(), item.strip(), self._quantities[quantity],
                start, end, _revision_of(revision[0]) if revision else 0)


def _revision_of(text: str | int | None) -> int:
    """The optional revision: absent or blank is 0, else an integer 0..MAX_REVISION."""
    if text is None or text == "":
        return 0
    raw = text.strip() if type(text) is str else str(text)
    if not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_REVISION):
        raise RecordError("revision", f"修订号须为 0–{MAX_REVISION} 的整数：{raw!r}",
                          f"revision must be an integer 0-{MAX_REVISION}: {raw!r}")
    return int(raw)


def _bad_time(field: str, text: str) -> RecordError:
    return RecordError(field, f"时间格式错误：{text!r}", f"malformed time {text!r}")


# ---------------------------------------------------------------- readers


def chunks(lines: Iterable[str], fmt: str, size: int) -> Iterator[Chunk]:
    """Parse a stream of lines (a file opened with ``newline=""``) into chunks of at
    most ``size`` records, each from at most ``size`` lines read."""
    lines = iter(lines)
    if fmt == "csv":
        return _csv_chunks(lines, size, RecordParser())
    if fmt == "jsonl":
        return _jsonl_chunks(lines, size, RecordParser())
    raise ValueError(f"unknown format {fmt}")


def _add(chunk: Chunk, number: int, values, parse) -> None:
    """Parse one record into the chunk, or reject it naming the field."""
    try:
        chunk.records.append(parse(values))
        chunk.lines.append(number)
    except RecordError as exc:
        _reject(chunk, number, values[0], exc)


def _reject(chunk: Chunk, number: int, event, exc: RecordError) -> None:
    event = str(event).strip()[:MAX_EVENT_ID] if type(event) in (str, int) else None
    chunk.rejections.append(Rejection(number, event or None, exc.field, exc.zh, exc.en))


def _csv_chunks(lines: Iterator[str], size: int, parser: RecordParser) -> Iterator[Chunk]:
    """CSV with a header row naming the fields (any order, extra columns ignored).

    A line without a quote character is split on commas: that is what the csv
    module reads from it, for about half the cost. A line with a quote goes to
    the csv module, which reads on while a quoted field spans lines.
    """
    number = 0
    for number, line in enumerate(lines, start=1):
        if line.strip():
            break
    else:
        return
    header = [name.strip().lstrip("\ufeff") for name in next(csv.reader([line]))]
    missing = [f for f in FIELDS if f not in header]
    if missing:
        yield Chunk(rejections=[Rejection(number, None, missing[0], f"CSV 表头缺少列 {missing[0]}",
                                          f"the CSV header lacks column {missing[0]}")])
        return
    indexes = [header.index(f) for f in FIELDS]
    if OPTIONAL in header:
        indexes.append(header.index(OPTIONAL))
    while block := list(itertools.islice(lines, size)):
        chunk, number = _csv_block(block, lines, number, indexes, parser)
        yield chunk


def _csv_block(block: list[str], lines: Iterator[str], number: int, indexes: list[int],
               parser: RecordParser) -> tuple[Chunk, int]:
    """A block of lines read line by line (a quoted field may read on into ``lines``);
    returns the chunk and the last line number read."""
    chunk, parse, pick = Chunk(), parser.parse, itemgetter(*indexes)
    records, numbers = chunk.records, chunk.lines
    rest = iter(block)
    for line in rest:
        number += 1
        first = number
        if '"' in line:
            row, number = _quoted_row(line, itertools.chain(rest, lines), number)
            if isinstance(row, RecordError):
                _reject(chunk, first, None, row)
                continue
        else:
            line = line.rstrip("\r\n")
            if not line:
                continue
            row = line.split(",")
        try:
            values = pick(row)
        except IndexError:  # a short row: its missing fields are reported
            values = [row[i] if i < len(row) else None for i in indexes]
        try:  # (what _add does, in line: this loop runs for every record)
            records.append(parse(values))
            numbers.append(first)
        except RecordError as exc:
            _reject(chunk, first, values[0], exc)
    return chunk, number


def _quoted_row(line: str, lines: Iterator[str], number: int) -> tuple[object, int]:
    """The csv module reads one record from ``line`` and, if a quoted field spans
    lines, the lines after it. Returns (fields or RecordError, last line number)."""
    reader = csv.reader(itertools.chain((line,), lines))
    try:
        row = next(reader, [])
    except csv.Error as exc:
        row = RecordError("record", f"CSV 行格式错误：{exc}", f"malformed CSV line: {exc}")
    return row, number + max(reader.line_num - 1, 0)


class _JsonRecord(msgspec.Struct):
    """A JSON line as the fast decoder takes it: texts, or integers for uin and quantity;
    anything else (extra fields aside) goes to the standard library's slower reading."""

    event_id: str | None = None
    uin: str | int | None = None
    resource_id: str | None = None
    billing_item: str | None = None
    quantity: str | int | None = None
    usage_start: str | None = None
    usage_end: str | None = None
    revision: str | int | None = None


def _jsonl_chunks(lines: Iterator[str], size: int, parser: RecordParser) -> Iterator[Chunk]:
    """JSON lines: one JSON object per line; blank lines are skipped.

    msgspec decodes a line straight into the eight fields (~6x faster than the
    json module); a line it refuses (not an object, a float, bad JSON, …) is
    read again with the json module, whose reading names the problem.
    """
    decode = msgspec.json.Decoder(_JsonRecord).decode
    astuple, parse = msgspec.structs.astuple, parser.parse
    number = 0
    while block := list(itertools.islice(lines, size)):
        chunk = Chunk()
        for number, line in enumerate(block, start=number + 1):
            try:
                values = astuple(decode(line))
            except msgspec.DecodeError:
                _add_json_line(chunk, number, line, parse)
            else:
                _add(chunk, number, values, parse)
        yield chunk


def _add_json_line(chunk: Chunk, number: int, line: str, parse) -> None:
    """One line read with the json module: a record, a rejection, or (blank) nothing."""
    try:
        raw = json.loads(line)
    except ValueError:
        if line.strip():
            _reject(chunk, number, None, RecordError("record", "该行不是合法的 JSON",
                                                     "the line is not valid JSON"))
        return
    try:
        values = _json_values(raw)
    except RecordError as exc:
        _reject(chunk, number, raw.get("event_id") if type(raw) is dict else None, exc)
        return
    _add(chunk, number, values, parse)


def _json_values(raw) -> list:
    """A decoded line -> its field values in FIELDS order (texts); RecordError if not."""
    if type(raw) is not dict:
        raise RecordError("record", "记录必须是 JSON 对象", "a record must be a JSON object")
    texts = []
    for name in (*FIELDS, OPTIONAL):
        value = raw.get(name)
        kind = type(value)
        if kind is str or value is None:
            texts.append(value)
        elif kind is int:
            texts.append(str(value))
        else:
            raise RecordError(name, f"字段 {name} 必须是字符串或整数",
                              f"field {name} must be a string or an integer")
    return texts
