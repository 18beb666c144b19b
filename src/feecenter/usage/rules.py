"""Usage rules on plain values: may a parsed record be stored, is it new, and how
much of it was used while its resource was stopped (ARR-3: not charged)?

Records are the tuples of ``usage.parse`` (times as fixed-width UTC text, so
comparing texts compares times). ``check`` and ``dedupe`` walk a whole chunk in
one loop: this is the per-record cost of the bulk intake.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from feecenter.usage.parse import Rejection


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """What intake needs to know of a resource (times as UTC text)."""

    uin: int
    postpaid: bool
    created: str
    released: str | None
    product_code: str
    items: frozenset[str]  # the product's billing item codes
    stops: tuple = ()  # (stopped, ended or None) UTC texts: when it was stopped (ARR-3)


def check(records: list[tuple], lines: list[int], facts: dict[str, ResourceFacts],
          now: str) -> tuple[list[tuple], list[int], list[Rejection]]:
    """The rows to store (each record plus its received_at, ``now``, and its stopped
    quantity), their lines, and a rejection naming the field for each record that may
    not be stored."""
    rows, kept, refused = [], [], []
    for record, line in zip(records, lines):
        resource = facts.get(record[2])
        if (resource is not None and resource.uin == record[1] and resource.postpaid
                and record[5] >= resource.created and record[6] <= now
                and (resource.released is None or record[6] <= resource.released)
                and record[3] in resource.items):
            stopped = stopped_part(record[4], record[5], record[6], resource.stops) \
                if resource.stops else 0
            rows.append((*record, now, stopped))
            kept.append(line)
        else:
            refused.append(Rejection(line, record[0], *problem(record, resource, now)))
    return rows, kept, refused


def problem(record: tuple, resource: ResourceFacts | None, now: str) -> tuple[str, str, str]:
    """Why a record may not be stored: (field, zh, en)."""
    _event, uin, resource_id, item, _quantity, start, end, _revision = record
    if resource is None or resource.uin != uin:
        return ("resource_id", f"资源不存在或不属于账号 {uin}：{resource_id}",
                f"unknown resource for account {uin}: {resource_id}")
    if not resource.postpaid:
        return ("resource_id", "只有按量计费资源上报用量", "only postpaid resources report usage")
    if resource.released is not None and end > resource.released:
        return ("resource_id", "资源已释放，释放后的用量不计费",
                "the resource was released before this usage ended")
    if start < resource.created:
        return ("usage_start", "用量早于资源创建时间", "usage starts before the resource existed")
    if end > now:
        return ("usage_end", "用量结束时间在未来", "usage ends in the future")
    if item not in resource.items:
        return ("billing_item", f"产品 {resource.product_code} 没有计费项 {item}",
                f"product {resource.product_code} has no billing item {item}")
    raise AssertionError(f"record {record!r} has no problem")


def stopped_part(quantity: int, start: str, end: str, stops) -> int:
    """ARR-3, the boundary rule: the part of a record's quantity used while its resource
    was stopped — the quantity pro-rated by the share of the record's time range
    [start, end) inside its stops [stopped, ended), counted in microseconds and
    rounded half-up; 0 outside any stop, all of it inside one. Texts or naive UTC
    datetimes."""
    begin, finish = _time(start), _time(end)
    inside = 0
    for stopped, ended in stops:
        low = max(begin, _time(stopped))
        high = finish if ended is None else min(finish, _time(ended))
        if high > low:
            inside += _micro(high - low)
    length = _micro(finish - begin)
    return min(quantity, (2 * quantity * inside + length) // (2 * length))


def _time(when: str | datetime) -> datetime:
    return datetime.fromisoformat(when) if isinstance(when, str) else when


def _micro(delta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


QUANTITY, REVISION = 4, 7  # in a record (and row): usage.parse's tuple
RECEIVED, STOPPED = 8, 9  # in a row only: what ``check`` appends
_IDENTITY = (1, 2, 3, 5, 6)  # uin, resource, item, start, end: what a correction keeps


def dedupe(rows: list[tuple], lines: list[int], known: dict[str, tuple]
           ) -> tuple[list[tuple], list[tuple], int, list[Rejection]]:
    """Each event ID is stored once, at its latest revision (SET-9). Judged against
    ``known`` (the stored records by event ID) and the rows before it: an event not
    seen yet is new; one whose account, resource, item or times differ is refused;
    the same quantity, or a lower revision (superseded), is a duplicate and changes
    nothing; another quantity at the same revision is refused, at a higher one it
    is a correction — its row carries its own stopped quantity (ARR-3), computed by
    ``check`` for the corrected quantity. Returns (new rows, corrections of known
    events, duplicates, rejections)."""
    new: dict[str, tuple] = {}
    corrections: dict[str, tuple] = {}
    duplicates, refused = 0, []
    for row, line in zip(rows, lines):
        event = row[0]
        earlier = new.get(event) or corrections.get(event) or known.get(event)
        if earlier is None:
            new[event] = row
        elif any(row[i] != earlier[i] for i in _IDENTITY):
            refused.append(Rejection(line, event, "event_id", "事件 ID 重复且内容不同",
                                     "duplicate event_id with different content"))
        elif row[QUANTITY] == earlier[QUANTITY] or row[REVISION] < earlier[REVISION]:
            duplicates += 1
        elif row[REVISION] == earlier[REVISION]:
            refused.append(Rejection(line, event, "event_id",
                                     "事件 ID 重复且用量不同（修正用量须提高 revision）",
                                     "duplicate event_id with another quantity (a correction "
                                     "needs a higher revision)"))
        else:
            (new if event in new else corrections)[event] = row
    return list(new.values()), list(corrections.values()), duplicates, refused
