"""One compensation request resolved by 8 operators at once credits once (SRV-2, SET-3,
PostgreSQL): the conditional UPDATE processing -> resolved decides, the action runs in
the winner's transaction only; the others get a 409, one ledger transaction and one
收支明细 entry are written, and reconcile is clean."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import operator
from feecenter.db.engine import transaction
from feecenter.errors import Conflict
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.service_requests import service as srv
from tests.helpers import assert_reconciled, balance, new_account, run_threads
from tests.test_service_requests import FEBRUARY, add_lines, file

pytestmark = pytest.mark.postgres_only

THREADS = 8


@pytest.mark.spec("SRV-2", "SET-3")
def test_eight_concurrent_resolves_credit_the_month_once(rt):
    uin = new_account(rt, "race-shop")
    add_lines(rt, uin, [3_000_000, 1_000_000], FEBRUARY)  # 4 fen overpaid
    with transaction(rt.engine) as conn:  # the counterpart exists before the race
        funds.platform_account(conn, rt.clock, "adjustments")
    request = file(rt, uin)
    with transaction(rt.engine) as conn:
        srv.take(conn, rt.clock, operator("first"), request["id"])
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                srv.resolve(conn, rt.clock, operator(f"op{i}"), request["id"])
            outcomes[i] = "resolved"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"resolved": 1, "conflict": THREADS - 1}
    assert balance(rt, uin).cash == 4
    with rt.engine.connect() as conn:
        credits = conn.execute(select(func.count()).select_from(ledger_transactions).where(
            ledger_transactions.c.idempotency_key == f"srv:precision:{uin}:2026-02")).scalar()
        entries = conn.execute(select(func.count()).select_from(statement_entries)
                               .where(statement_entries.c.uin == uin)).scalar()
        final = srv.get_request(conn, rt.clock, operator("x"), request["id"])
    assert (credits, entries) == (1, 1)
    assert [e["event"] for e in final["events"]] == ["submitted", "taken", "resolved"]
    assert final["ended_by"] == f"operator:op{outcomes.index('resolved')}"
    assert_reconciled(rt)
