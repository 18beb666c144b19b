"""Parsing and validating metering records: pure functions, no database.

A record: event_id, uin (account), resource_id, billing_item, quantity (a
decimal string with up to 6 decimals, ≥ 0), usage_start, usage_end
("YYYY-MM-DD HH:MM:SS" in Asia/Shanghai, or ISO 8601 with an offset).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from feecenter.clock import BUSINESS_TZ

QTY_SCALE = 1_000_000
MAX_QUANTITY = 10**15  # in 1e-6 units: a billion units in one record is absurd
_QUANTITY = re.compile(r"^(\d{1,12})(?:\.(\d{1,6}))?$", re.ASCII)
FIELDS = ("event_id", "uin", "resource_id", "billing_item", "quantity", "usage_start",
          "usage_end")


@dataclass(frozen=True)
class Record:
    line: int
    event_id: str
    uin: int
    resource_id: str
    billing_item: str
    quantity: int
    usage_start: datetime  # naive UTC
    usage_end: datetime


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


class RecordError(Exception):
    def __init__(self, field: str, zh: str, en: str):
        super().__init__(en)
        self.field, self.zh, self.en = field, zh, en


def parse_quantity(text: object) -> int:
    raw = str(text).strip() if not isinstance(text, (bool, float)) else "x"
    match = _QUANTITY.match(raw)
    if not match:
        raise RecordError("quantity", f"用量格式错误：{raw!r}（非负数，最多六位小数）",
                          f"malformed quantity {raw!r} (non-negative, at most 6 decimals)")
    value = int(match[1]) * QTY_SCALE + int((match[2] or "").ljust(6, "0"))
    if value > MAX_QUANTITY:
        raise RecordError("quantity", "用量过大", "quantity is too large")
    return value


def parse_time(text: object, field: str) -> datetime:
    """Naive UTC from "YYYY-MM-DD HH:MM:SS" (Shanghai) or ISO 8601 with an offset."""
    try:
        return _utc_of(str(text).strip())
    except ValueError:
        raise RecordError(field, f"时间格式错误：{text!r}", f"malformed time {text!r}") from None


@functools.lru_cache(maxsize=65_536)  # metering repeats the same period boundaries
def _utc_of(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    if when.tzinfo is None:
        when = when.replace(tzinfo=BUSINESS_TZ)
    return when.astimezone(timezone.utc).replace(tzinfo=None)


def to_record(line: int, raw: dict) -> Record:
    if not isinstance(raw, dict):
        raise RecordError("record", "记录必须是 JSON 对象", "a record must be a JSON object")
    missing = [f for f in FIELDS if raw.get(f) in (None, "")]
    if missing:
        raise RecordError(missing[0], f"缺少字段 {missing[0]}", f"missing field {missing[0]}")
    event_id = str(raw["event_id"]).strip()
    if len(event_id) > 100:
        raise RecordError("event_id", "事件 ID 过长（最多 100 个字符）", "event_id is longer than 100")
    try:
        uin = int(str(raw["uin"]).strip())
    except ValueError:
        raise RecordError("uin", f"账号 ID 无效：{raw['uin']!r}", f"invalid uin {raw['uin']!r}") from None
    start = parse_time(raw["usage_start"], "usage_start")
    end = parse_time(raw["usage_end"], "usage_end")
    if end <= start:
        raise RecordError("usage_end", "用量结束时间必须晚于开始时间", "usage_end must be after usage_start")
    return Record(line, event_id, uin, str(raw["resource_id"]).strip(),
                  str(raw["billing_item"]).strip(), parse_quantity(raw["quantity"]), start, end)


def read_rows(text: str, fmt: str):
    """Yield (line number, raw dict or RecordError) from JSON lines or CSV text."""
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError:
                yield number, RecordError("record", "该行不是合法的 JSON", "the line is not valid JSON")
    elif fmt == "csv":
        reader = csv.DictReader(io.StringIO(text))
        missing = [f for f in FIELDS if f not in (reader.fieldnames or [])]
        if missing:
            yield 1, RecordError(missing[0], f"CSV 表头缺少列 {missing[0]}",
                                 f"the CSV header lacks column {missing[0]}")
            return
        for row in reader:
            yield reader.line_num, row
    else:
        raise ValueError(f"unknown format {fmt}")
