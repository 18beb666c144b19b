"""Importing one statement file (RMT-2): parse it (format detected or given) and
hand its transfers to ``service.import_transfers`` in the caller's transaction,
so a file refused anywhere imports nothing. The REST upload and the CLI both
call ``import_statement``; how the service stores the lines is its own affair.

    import_statement(conn, clock, operator, path_or_bytes, *, fmt=None,
                     on_progress=None) -> ImportSummary

``on_progress(bytes_read, size)`` is called while the file is read (for a
progress bar), at most every ``PROGRESS_EVERY`` transfers and once at the end.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.clock import Clock
from feecenter.remittances import service, statements
from feecenter.remittances.statements import Source

PROGRESS_EVERY = 2000
Progress = Callable[[int, int], None]


def import_statement(conn: Connection, clock: Clock, operator: Actor, source: Source, *,
                     fmt: str | None = None, on_progress: Progress | None = None,
                     settings: service.Settings | None = None) -> service.ImportSummary:
    """Parse and import one file, all or nothing (raises ``StatementRefused`` naming
    the line or element, or the service's errors; the caller rolls back)."""
    require_operator(operator)  # before reading a byte
    parsed = statements.parse(source, fmt=fmt)

    def read():  # streamed: the service holds one batch at a time
        for count, transfer in enumerate(parsed.transfers(), 1):
            yield transfer
            if on_progress is not None and count % PROGRESS_EVERY == 0:
                on_progress(parsed.bytes_read, parsed.size)
        if on_progress is not None:
            on_progress(parsed.size, parsed.size)

    return service.import_transfers(conn, clock, operator, read(),
                                    source=parsed.format, digest=parsed.digest,
                                    settings=settings)


__all__ = ["PROGRESS_EVERY", "import_statement"]
