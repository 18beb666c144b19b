"""Issuing invoices (INV-5): applied -> issuing -> issued, each numbered exactly once.
Owns the invoices' issuing columns and the ``invoice_counters`` rows.

Two units of work per invoice:

1. the claim, ``UPDATE invoices SET state = 'issuing' WHERE id = :id AND state =
   'applied'`` (its row count decides; committed: the invoice is being issued);
2. the issue: the invoice locked (``FOR UPDATE``, state still ``issuing``), its
   entity's block and the next sequence of (entity, year) taken from
   ``invoice_counters`` (an ``UPDATE … SET next_value = next_value + 1 … RETURNING``,
   the row created if absent, so concurrent issuers of an entity queue on it), the
   number, code and check code written and the state set ``issued`` with a
   conditional UPDATE — all in one transaction.

A crash after 1 leaves the invoice ``issuing`` without a number; the next run takes
``issuing`` invoices too and does 2, whose lock and condition make it happen once:
the counter moves only in the transaction that writes the number, so a number is
never used twice nor skipped. Red invoices (kind ``red``, made ``applied`` by
reversals) are issued the same way. Invoices still not issued 30 minutes after
applying are flagged (``flagged_at``) for operators.

Entity blocks: each selling entity gets, the first time it issues, a block number
(1–999) kept in ``invoice_counters`` under year 0 (the row of entity "*" holds the
next free block); the block is part of the number's 15-digit counter, so two
entities of one area never share a number (docs/invoices.md, "Numbers")."""

from __future__ import annotations

from sqlalchemy import Connection, Engine, select, update

from feecenter.catalog.tables import selling_entities
from feecenter.clock import BUSINESS_TZ, Clock, db_time
from feecenter.config import Settings, master_key
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.invoices import rules
from feecenter.invoices.service import FLAG_AFTER
from feecenter.invoices.tables import invoice_counters, invoices

BLOCKS = "*"  # the invoice_counters entity whose year-0 row holds the next free block
BATCH = 500  # invoices listed at a time by issue_pending


def claim(conn: Connection, clock: Clock, invoice_id: int) -> bool:
    """applied -> issuing; True for the one caller whose UPDATE changed the row."""
    result = conn.execute(update(invoices).where(invoices.c.id == invoice_id,
                                                 invoices.c.state == "applied")
                          .values(state="issuing", issuing_at=db_time(clock.now())))
    return result.rowcount == 1


def issue_one(engine: Engine, clock: Clock, settings: Settings, invoice_id: int) -> bool:
    """Issue one invoice (claim, then number and issue); True when this call issued
    it, False when it was not waiting (issued already, or by another caller)."""
    with transaction(engine) as conn:
        claim(conn, clock, invoice_id)
    with transaction(engine) as conn:
        return finish(conn, clock, master_key(settings), invoice_id)


def issue_invoices(engine: Engine, clock: Clock, settings: Settings,
                   invoice_ids: list[int]) -> int:
    """Issue the invoices an application just made (the adapters call it after the
    application's unit of work committed, with ``[i["id"] for i in made["invoices"]]``);
    how many this call issued. The hourly sweeper issues whatever it leaves."""
    return sum(issue_one(engine, clock, settings, invoice_id) for invoice_id in invoice_ids)


def finish(conn: Connection, clock: Clock, key: str, invoice_id: int) -> bool:
    """issuing -> issued with its number, code and check code, in the caller's unit."""
    stmt = select(invoices).where(invoices.c.id == invoice_id, invoices.c.state == "issuing")
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        return False
    now = clock.now()
    year = now.astimezone(BUSINESS_TZ).year
    area = rules.entity_area(_entity_name(conn, row["entity"]))
    block = entity_block(conn, row["entity"])
    number = rules.invoice_number(year, area, block, next_sequence(conn, row["entity"], year))
    done = conn.execute(update(invoices).where(invoices.c.id == invoice_id,
                                               invoices.c.state == "issuing",
                                               invoices.c.invoice_number.is_(None))
                        .values(state="issued", issued_at=db_time(now), invoice_number=number,
                                invoice_code=rules.invoice_code(year, area, block, row["kind"]),
                                check_code=rules.check_code(key, number)))
    if done.rowcount != 1:  # the row is locked: only a bug gets here
        raise RuntimeError(f"invoice {invoice_id} changed while it was locked")
    return True


def _entity_name(conn: Connection, entity: str) -> str:
    return conn.execute(select(selling_entities.c.name_zh)
                        .where(selling_entities.c.code == entity)).scalar() or ""


def _counter(conn: Connection, entity: str, year: int) -> int | None:
    c = invoice_counters.c
    return conn.execute(select(c.next_value).where(c.entity == entity, c.year == year)).scalar()


def _increment(conn: Connection, entity: str, year: int) -> int:
    """Take the counter's value (created at 1 if absent) and move it on by one; the
    row stays locked until the caller's transaction ends."""
    conn.execute(insert_if_absent(conn, invoice_counters, ["entity", "year"])
                 .values(entity=entity, year=year, next_value=1))
    c = invoice_counters.c
    after = conn.execute(update(invoice_counters).where(c.entity == entity, c.year == year)
                         .values(next_value=c.next_value + 1)
                         .returning(c.next_value)).scalar_one()
    return int(after) - 1


def entity_block(conn: Connection, entity: str) -> int:
    """The entity's block, given once: the next free one (the "*" row, taken under its
    row lock), kept under (entity, 0); a concurrent first issue of the same entity
    finds the row the other wrote (the free block it took is left unused)."""
    found = _counter(conn, entity, 0)
    if found is not None:
        return int(found)
    block = _increment(conn, BLOCKS, 0)
    if block > rules.MAX_BLOCK:
        raise RuntimeError("no invoice number block left for a new selling entity")
    conn.execute(insert_if_absent(conn, invoice_counters, ["entity", "year"])
                 .values(entity=entity, year=0, next_value=block))
    return int(_counter(conn, entity, 0))


def next_sequence(conn: Connection, entity: str, year: int) -> int:
    """The entity's next sequence number in ``year`` (1, 2, …), never used twice."""
    sequence = _increment(conn, entity, year)
    if sequence > rules.MAX_SEQUENCE:
        raise RuntimeError(f"invoice numbers of {entity} in {year} are used up")
    return sequence


def flag_late(conn: Connection, clock: Clock) -> int:
    """Flag the invoices still not issued 30 minutes after applying (once each)."""
    now = db_time(clock.now())
    i = invoices.c
    return conn.execute(update(invoices).where(
        i.state.in_(("applied", "issuing")), i.flagged_at.is_(None),
        i.applied_at <= now - FLAG_AFTER).values(flagged_at=now)).rowcount


def issue_pending(engine: Engine, clock: Clock, settings: Settings) -> dict:
    """Flag the late ones, then issue every invoice waiting (applied, or issuing after
    a crash), in id order: ``{"issued", "flagged"}``. Safe to run concurrently and to
    rerun: each invoice is issued once."""
    with transaction(engine) as conn:
        flagged = flag_late(conn, clock)
    issued, after = 0, 0
    while True:
        with engine.connect() as conn:
            ids = list(conn.execute(select(invoices.c.id).where(
                invoices.c.state.in_(("applied", "issuing")), invoices.c.id > after)
                .order_by(invoices.c.id).limit(BATCH)).scalars())
        if not ids:
            break
        for invoice_id in ids:
            issued += issue_one(engine, clock, settings, invoice_id)
        after = ids[-1]
    return {"issued": issued, "flagged": flagged}
