"""Bulk reads and writes of usage intake, straight to the DB-API driver.

The write is optimistic: the chunk's new rows go in as if no event were
stored yet — PostgreSQL: binary ``COPY`` into ``usage_records``; SQLite: one
``executemany`` of ``INSERT … ON CONFLICT (event_id) DO NOTHING``. If an
event turns out to be stored already (a re-sent batch, or another importer
just now), ``insert_new`` says so and the caller rolls back to its savepoint,
looks the chunk's events up with ``known_events`` and writes again. The
common case, new usage, costs no lookup at all. Corrections (a higher revision
of a stored event, SET-9) are rare and written one conditional UPDATE each
(``correct``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from feecenter.catalog.tables import billing_items
from feecenter.resources import service as resources_service
from feecenter.resources.tables import resources
from feecenter.usage.parse import Memo, utc_text
from feecenter.usage.rules import QUANTITY, RECEIVED, REVISION, STOPPED, ResourceFacts
from feecenter.usage.tables import EVENT_ID_CONSTRAINT, usage_records

IN_LIST = 1_000  # ids per IN (...) lookup
COLUMNS = ("event_id", "uin", "resource_id", "billing_item", "quantity", "usage_start",
           "usage_end", "revision", "received_at", "stopped_quantity")
_COLUMN_LIST = ", ".join(COLUMNS)
_SQLITE_INSERT = (f"INSERT INTO {usage_records.name} ({_COLUMN_LIST}) "
                  f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (event_id) DO NOTHING")
# Binary COPY: the server takes the times and integers as they are instead of
# parsing text (~2.5 µs a record less of server CPU, docs/usage.md).
_PG_COPY = f"COPY {usage_records.name} ({_COLUMN_LIST}) FROM STDIN (FORMAT BINARY)"
_PG_TYPES = ("text", "int8", "text", "text", "int8", "timestamp", "timestamp", "int4",
             "timestamp", "int8")


def insert_new(conn: Connection, rows: list[tuple]) -> bool:
    """Write ``rows`` (in COLUMNS order, times as UTC text). False when one of their
    events is stored already: then some rows may be written, and the caller must
    roll back to a savepoint taken before."""
    if not rows:
        return True
    driver = conn.connection.driver_connection
    if conn.dialect.name == "sqlite":
        return driver.executemany(_SQLITE_INSERT, rows).rowcount == len(rows)
    return _copy(driver, rows)


def _copy(driver, rows: list[tuple]) -> bool:
    from psycopg.errors import UniqueViolation

    times = Memo(datetime.fromisoformat)  # UTC text -> naive datetime, once per text
    try:
        with driver.cursor() as cursor, cursor.copy(_PG_COPY) as copy:
            copy.set_types(_PG_TYPES)
            write = copy.write_row
            for (event_id, uin, resource_id, item, quantity, start, end, revision, received,
                 stopped) in rows:
                write((event_id, uin, resource_id, item, quantity, times[start], times[end],
                       revision, times[received], stopped))
    except UniqueViolation as exc:
        if exc.diag.constraint_name != EVENT_ID_CONSTRAINT:
            raise
        return False
    return True


def correct(conn: Connection, rows: list[tuple]) -> bool:
    """Write corrections (rows in COLUMNS order): each replaces its stored record's
    quantity, revision, received_at and stopped quantity (ARR-3: the new quantity's,
    from ``rules.check``) only while the stored revision is lower — the conditional
    UPDATE's row count decides. False when one was not written (another import
    stored that event or a later revision meanwhile): the caller rolls back to its
    savepoint and judges again."""
    u = usage_records.c
    stmt = (update(usage_records)
            .where(u.event_id == bindparam("e"), u.revision < bindparam("r"))
            .values(quantity=bindparam("q"), revision=bindparam("r"),
                    received_at=bindparam("at"), stopped_quantity=bindparam("s")))
    for row in rows:
        written = conn.execute(stmt, {"e": row[0], "q": row[QUANTITY], "r": row[REVISION],
                                      "at": datetime.fromisoformat(row[RECEIVED]),
                                      "s": row[STOPPED]}).rowcount
        if written != 1:
            return False
    return True


def known_events(conn: Connection, event_ids: list[str]) -> dict[str, tuple]:
    """Stored records of these events: event_id -> (event_id, uin, resource_id,
    billing_item, quantity, usage_start, usage_end, revision), times as UTC text."""
    u = usage_records.c
    known = {}
    for start in range(0, len(event_ids), IN_LIST):
        for row in conn.execute(select(u.event_id, u.uin, u.resource_id, u.billing_item,
                                       u.quantity, u.usage_start, u.usage_end, u.revision)
                                .where(u.event_id.in_(event_ids[start:start + IN_LIST]))):
            known[row.event_id] = (row.event_id, row.uin, row.resource_id, row.billing_item,
                                   row.quantity, utc_text(row.usage_start),
                                   utc_text(row.usage_end), row.revision)
    return known


def resource_facts(conn: Connection, ids: set[str],
                   items_of: dict[str, frozenset[str]]) -> dict[str, ResourceFacts]:
    """The facts of these resources (those that exist), with their stops (ARR-3);
    ``items_of`` caches each product's billing item codes across chunks."""
    r = resources.c
    ordered = sorted(ids)
    facts = {}
    for start in range(0, len(ordered), IN_LIST):
        some = ordered[start:start + IN_LIST]
        spans = resources_service.stop_spans(conn, some)
        for row in conn.execute(select(r.id, r.uin, r.product_code, r.pay_mode, r.created_at,
                                       r.released_at).where(r.id.in_(some))):
            facts[row.id] = ResourceFacts(
                uin=row.uin, postpaid=row.pay_mode == "postpaid", created=utc_text(row.created_at),
                released=_text_or_none(row.released_at), product_code=row.product_code,
                items=_items(conn, row.product_code, items_of),
                stops=tuple((utc_text(stopped), _text_or_none(ended))
                            for stopped, ended in spans.get(row.id, ())))
    return facts


def _items(conn: Connection, product_code: str, items_of: dict[str, frozenset[str]]
           ) -> frozenset[str]:
    if product_code not in items_of:
        items_of[product_code] = frozenset(conn.execute(select(billing_items.c.code).where(
            billing_items.c.product_code == product_code)).scalars())
    return items_of[product_code]


def _text_or_none(when: datetime | None) -> str | None:
    return None if when is None else utc_text(when)
