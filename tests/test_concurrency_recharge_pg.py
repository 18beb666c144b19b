"""A paid recharge is credited exactly once under concurrency (RCH-5, PostgreSQL).

8 real threads deliver the same signed notification at once, through the real
adapter's verification and decryption, while a ninth asks the provider (the
sandbox, where the payer really paid) about the same payment: exactly one of
them claims the recharge (the conditional UPDATE pending -> paid decides),
one ledger transaction and one 收支明细 entry are written, every other caller
sees a duplicate, and reconcile is clean. SQLite serialises writers, so this
runs on PostgreSQL only.
"""

from __future__ import annotations

from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.recharges import service as recharges
from feecenter.recharges.tables import recharge_notifications
from tests.helpers import assert_reconciled, balance, run_threads
from tests.test_recharges import paid_transaction, pay, sandbox  # noqa: F401 - fixtures

pytestmark = pytest.mark.postgres_only

THREADS = 8


@pytest.mark.spec("RCH-5")
def test_eight_notifications_and_a_query_credit_one_recharge_once(pay):  # noqa: F811
    rt = pay.rt
    with rt.engine.begin() as conn:  # the clearing account exists before the race
        funds.platform_account(conn, rt.clock, "gateway_wechat")
    recharge = pay.create(321_00)
    requests.post(recharge["code_url"], data={"action": "pay", "notify": "no"}, timeout=60)
    headers, body = pay.signed_notification(paid_transaction(pay, recharge))
    outcomes: list = [None] * (THREADS + 1)

    def work(i: int) -> None:
        if i == THREADS:
            outcomes[i] = recharges.query(rt.engine, rt.clock, SYSTEM, recharge["id"],
                                          rt.gateways)["state"]
        else:
            outcomes[i] = recharges.handle_notification(rt.engine, rt.clock, pay.gateway,
                                                        headers, body).outcome

    assert run_threads(THREADS + 1, work) == []
    notified = Counter(outcomes[:THREADS])
    assert outcomes[THREADS] == "paid"
    assert notified["credited"] <= 1 and notified["credited"] + notified["duplicate"] == THREADS
    assert balance(rt, pay.uin).cash == 321_00
    with rt.engine.connect() as conn:
        entries = conn.execute(select(func.count()).select_from(statement_entries)
                               .where(statement_entries.c.uin == pay.uin)).scalar()
        credits = conn.execute(select(func.count()).select_from(ledger_transactions).where(
            ledger_transactions.c.idempotency_key == f"recharge:{recharge['id']}")).scalar()
        logged = conn.execute(select(func.count()).select_from(recharge_notifications)).scalar()
    assert (entries, credits, logged) == (1, 1, THREADS)
    assert_reconciled(rt)
