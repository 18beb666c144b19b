"""Crash injection: run one operation in a real child process (``os.fork``) that
SIGKILLs itself at a chosen point inside its unit of work.

Kill points: ``stmt`` before the k-th statement the driver executes (SQLite: the
connection's trace callback, which sees every statement, COMMIT included;
PostgreSQL: psycopg's cursors, pipelined sends included), ``commit`` as the
COMMIT is issued, ``after`` once the operation has returned and committed, before
anyone learns its result. A child that ends before its kill point reports its
result through a pipe. The parent then retries the operation with the same
idempotency key, as a client whose request died would.
"""

from __future__ import annotations

import json
import os
import signal

from sqlalchemy import event

from feecenter.clock import FixedClock
from feecenter.db.engine import make_engine
from feecenter.simulation.ops import Op, execute
from feecenter.simulation.world import START

KILL_MODES = ("stmt", "stmt", "commit", "after")


class _Sim:
    def __init__(self, engine, clock):
        self.engine, self.clock = engine, clock


def run_killed(url: str, op: Op, mode: str, k: int) -> dict | None:
    """Run ``op`` in a child killed at (``mode``, ``k``); its result if it was not killed."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read)
        try:
            _child(url, op, mode, k, write)
        finally:
            os._exit(1)
    os.close(write)
    with os.fdopen(read) as pipe:
        text = pipe.read()
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    if killed:
        return None
    if not text:
        raise RuntimeError(f"the crash child of step {op.step} failed (status {status})")
    return json.loads(text)


def _child(url: str, op: Op, mode: str, k: int, write: int) -> None:
    engine = make_engine(url)
    _arm(engine, mode, k)
    result = execute(_Sim(engine, FixedClock(START)), op)
    if mode == "after":
        _die()
    os.write(write, json.dumps(result).encode())
    os._exit(0)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _arm(engine, mode: str, k: int) -> None:
    seen = [0]

    def statement(sql: str) -> None:
        seen[0] += 1
        if (mode == "stmt" and seen[0] == k) or (
                mode == "commit" and sql.lstrip().upper().startswith("COMMIT")):
            _die()

    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda dbapi, record: dbapi.set_trace_callback(statement))
    else:
        _arm_psycopg(statement, mode)


def _arm_psycopg(statement, mode: str) -> None:
    """The child's own psycopg classes count its statements (it is about to die)."""
    import psycopg

    def counting(real):
        def run(self, query, *args, **kwargs):
            statement(query if isinstance(query, str) else str(query))
            return real(self, query, *args, **kwargs)
        return run

    for cls in (psycopg.Cursor, psycopg.RawCursor):
        cls.execute = counting(cls.execute)
        cls.executemany = counting(cls.executemany)
    real_commit = psycopg.Connection.commit

    def commit(self):
        statement("COMMIT")
        return real_commit(self)

    psycopg.Connection.commit = commit
