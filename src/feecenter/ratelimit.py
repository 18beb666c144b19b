"""The one rate limiter: attempts counted per client and minute, shared by the
actions that limit their callers — public invoice verification (INV-8,
``invoices.verification``) and failed pushes to the bank's signed push endpoint
(RMT-2, ``remittances.push_log``). Owns ``invoice_verifications`` (the name the
table got in migration 0032 from its first user; each action keys its rows
with its own ``scope`` prefix, invoice verification with none).

``claim_attempt`` counts one attempt with one upsert whose conditional UPDATE
stops at the limit (the row count decides, so concurrent attempts cannot pass
it) and raises ``TooManyRequests`` (HTTP 429) beyond it; every client's past
minutes are deleted first, so the table holds the current minute's clients
only. ``client_key`` makes the key of a client: an IPv6 address counts by its
/64 (one subscriber's network).
"""

from __future__ import annotations

import ipaddress
from datetime import datetime

from sqlalchemy import Column, Connection, DateTime, Integer, String, Table, delete
from sqlalchemy.dialects import postgresql, sqlite

from feecenter.clock import Clock, db_time
from feecenter.db.base import metadata
from feecenter.errors import TooManyRequests, invalid

KEY_CHARS = 64  # the column

invoice_verifications = Table(
    "invoice_verifications", metadata,
    Column("client", String(KEY_CHARS), primary_key=True),  # scope + the client's key
    Column("minute", DateTime, primary_key=True),
    Column("attempts", Integer, nullable=False),
)
_T = invoice_verifications.c


OTHER = "other"  # the one key of every client whose address is not an IP address


def client_key(value: object, *, max_chars: int = KEY_CHARS) -> str:
    """The rate limit's key of a client address (1..``max_chars`` characters, else
    ``InvalidInput`` naming ``client``): an IPv4 address as it is, an IPv4-mapped one
    as its IPv4 address, an IPv6 address by its /64 (rotating addresses inside it
    gains nothing), and anything that is not an IP address (a test client's name, a
    forwarded-address header's free text) as one shared key ``OTHER``: text a client
    chooses never opens a bucket of its own."""
    if not isinstance(value, str) or not value.strip() or len(value) > max_chars:
        raise invalid("client", f"客户端标识必须是 1–{max_chars} 个字符",
                      f"the client must be 1-{max_chars} characters")
    text = value.strip()
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return OTHER
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:  # ::ffff:192.0.2.1 is 192.0.2.1
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


def claim_attempt(conn: Connection, clock: Clock, key: str, *, limit: int, message_zh: str,
                  message_en: str, scope: str = "") -> int:
    """Count one attempt of ``scope + key`` in the current minute: INSERT, or on the
    existing row UPDATE attempts + 1 only while under ``limit``; no row back = over
    it: ``TooManyRequests`` with the messages, field ``client`` and
    ``retry_after_s``. Returns the attempts counted this minute."""
    stored = scope + key
    if not stored or len(stored) > KEY_CHARS:
        raise invalid("client", f"客户端标识必须是 1–{KEY_CHARS} 个字符",
                      f"the client must be 1-{KEY_CHARS} characters")
    minute = _minute(clock.now())
    conn.execute(delete(invoice_verifications).where(_T.minute < minute))
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(invoice_verifications).values(client=stored, minute=minute, attempts=1)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_T.client, _T.minute],
        set_={"attempts": _T.attempts + 1},
        where=_T.attempts < limit)
    claimed = conn.execute(stmt.returning(_T.attempts)).scalar()
    if claimed is None:
        raise TooManyRequests(message_zh, message_en, field="client",
                              retry_after_s=60 - clock.now().second)
    return claimed


def _minute(now: datetime) -> datetime:
    return db_time(now).replace(second=0, microsecond=0)


__all__ = ["KEY_CHARS", "claim_attempt", "client_key", "invoice_verifications"]
