"""Remittance cases under concurrency (RMT-9, RMT-10, RMT-11, SRV-2; PostgreSQL).

Eight operators resolve at once: one refund request (the payout leg written once),
one wrong-account claim (taken back and credited once), and eight legacy forms of
several accounts on one transfer whose sum exceeds it (credited only while the
transfer's remaining amount covers the form: never more than the transfer); and
legacy forms racing refunds of the same transfer's remainder (refunded once, forms
and the refund never both take the same fen). The
conditional UPDATEs decide; the losers get a 409; reconcile stays clean. SQLite
serialises writers, so this runs on PostgreSQL only.
"""

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
from feecenter.remittances import cases
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import remittance_legacy_transfers, remittance_refunds
from feecenter.service_requests import service as srv
from tests.helpers import assert_reconciled, balance, new_account, run_threads
from tests.test_remittance_cases import (ENTITY_A, USCC, claim_fields, file, form_fields,
                                         legacy_transfer, original, pending_company,
                                         number_of, refund_fields, take, two_companies)
from tests.test_remittances import do_import, line, platform_balance, record

pytestmark = pytest.mark.postgres_only

THREADS = 8


def race_resolves(rt, request_ids: list[int]) -> list[str]:
    """Operator i resolves request_ids[i], all at once; each outcome."""
    outcomes: list = [None] * len(request_ids)

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                srv.resolve(conn, rt.clock, operator(f"op{i}"), request_ids[i])
            outcomes[i] = "resolved"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(len(request_ids), work) == []
    return outcomes


def prepare_platform_accounts(rt) -> None:
    with transaction(rt.engine) as conn:  # opened before the race, as in production
        funds.platform_account(conn, rt.clock, "bank")
        funds.platform_account(conn, rt.clock, "remittance_suspense")


def count_txns(rt, **where) -> int:
    with rt.engine.connect() as conn:
        stmt = select(func.count()).select_from(ledger_transactions)
        for name, value in where.items():
            stmt = stmt.where(getattr(ledger_transactions.c, name) == value)
        return conn.execute(stmt).scalar_one()


@pytest.mark.spec("RMT-11", "SRV-2")
def test_eight_resolutions_of_one_refund_pay_it_out_once(rt):
    uin, rec = pending_company(rt)
    prepare_platform_accounts(rt)
    request = file(rt, uin, "remittance_refund", refund_fields(rec))
    take(rt, request["id"])
    bank, suspense = platform_balance(rt, "bank"), platform_balance(rt, "remittance_suspense")
    outcomes = race_resolves(rt, [request["id"]] * THREADS)
    assert Counter(outcomes) == {"resolved": 1, "conflict": THREADS - 1}
    assert count_txns(rt, kind="remittance_refund") == 1
    assert (platform_balance(rt, "bank"), platform_balance(rt, "remittance_suspense")) == (
        bank + 1000_00, suspense - 1000_00)
    assert record(rt, "W1")["state"] == "refunded"
    assert_reconciled(rt)


@pytest.mark.spec("RMT-9", "SRV-2")
def test_eight_resolutions_of_one_claim_credit_it_once(rt):
    a, b, number_b = two_companies(rt)
    do_import(rt, [line("X1", number_b, 800_00, ENTITY_A)], digest="x1")  # pending at B
    prepare_platform_accounts(rt)
    request = file(rt, a, "wrong_account_claim", claim_fields(corrected_number=number_of(rt, a)))
    take(rt, request["id"])
    outcomes = race_resolves(rt, [request["id"]] * THREADS)
    assert Counter(outcomes) == {"resolved": 1, "conflict": THREADS - 1}
    assert (balance(rt, a).cash, balance(rt, b).cash) == (800_00, 0)
    with rt.engine.connect() as conn:
        kinds = Counter(conn.execute(select(statement_entries.c.action_type).where(
            statement_entries.c.uin.in_((a, b)))).scalars())
    assert kinds == {"recharge": 1}
    assert original(rt, "X1")["state"] == "refunded"
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10", "SRV-2")
def test_eight_legacy_forms_racing_on_one_transfer_never_over_credit_it(rt):
    rec = legacy_transfer(rt, amount=1000_00)
    prepare_platform_accounts(rt)
    accounts = [new_account(rt, f"legacy-{i}") for i in range(THREADS)]
    forms = [file(rt, uin, "legacy_remittance_form", form_fields("300.00")) for uin in accounts]
    for form in forms:
        take(rt, form["id"])
    outcomes = race_resolves(rt, [f["id"] for f in forms])
    assert Counter(outcomes) == {"resolved": 3, "conflict": THREADS - 3}  # 3 x 300 <= 1000
    cash = [balance(rt, uin).cash for uin in accounts]
    assert sorted(cash) == [0] * (THREADS - 3) + [300_00] * 3
    with rt.engine.connect() as conn:
        remaining = conn.execute(select(remittance_legacy_transfers.c.remaining).where(
            remittance_legacy_transfers.c.remittance_id == rec["id"])).scalar_one()
    assert remaining == 100_00 and platform_balance(rt, "remittance_suspense") == 100_00
    assert count_txns(rt, kind="recharge") == 3
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10", "RMT-3")
def test_forms_racing_an_assignment_of_the_same_transfer_credit_it_once(rt):
    """Four operators resolve legacy forms while four assign the transfer to an account:
    whichever claims the record first decides; the money credited never passes it."""
    rec = legacy_transfer(rt, amount=1000_00)
    prepare_platform_accounts(rt)
    target = new_account(rt, "assigned-to", enterprise_name="丙方实业有限公司", uscc=USCC)
    accounts = [new_account(rt, f"legacy-{i}") for i in range(4)]
    forms = [file(rt, uin, "legacy_remittance_form", form_fields("100.00")) for uin in accounts]
    for form in forms:
        take(rt, form["id"])
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                if i < 4:
                    srv.resolve(conn, rt.clock, operator(f"op{i}"), forms[i]["id"])
                else:
                    remittances.assign(conn, rt.clock, operator(f"op{i}"), rec["id"], target)
            outcomes[i] = "done"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    credited = sum(balance(rt, uin).cash for uin in [target, *accounts])
    assigned = outcomes[4:].count("done")
    assert assigned <= 1
    if assigned:
        assert outcomes[:4] == ["conflict"] * 4 and balance(rt, target).cash == 1000_00
    else:
        assert outcomes[:4] == ["done"] * 4 and credited == 400_00
    assert credited <= 1000_00
    assert platform_balance(rt, "remittance_suspense") == 1000_00 - credited
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10", "RMT-11")
def test_legacy_forms_racing_refunds_of_the_remainder_never_take_the_same_money(rt):
    """Six operators resolve legacy forms of 200 yuan while two refund what the forms
    leave of the transfer (1000 yuan, 100 credited before): one refund, of exactly
    what no form took; the forms that came after it find nothing left."""
    rec = legacy_transfer(rt, amount=1000_00)
    prepare_platform_accounts(rt)
    first = new_account(rt, "legacy-first")
    form = file(rt, first, "legacy_remittance_form", form_fields("100.00"))
    take(rt, form["id"])
    assert race_resolves(rt, [form["id"]]) == ["resolved"]  # the transfer is now ``legacy``
    accounts = [new_account(rt, f"legacy-{i}") for i in range(6)]
    forms = [file(rt, uin, "legacy_remittance_form", form_fields("200.00")) for uin in accounts]
    for f in forms:
        take(rt, f["id"])
    bank = platform_balance(rt, "bank")
    payout = {"holder": "丙方实业有限公司", "bank_account": "6222020200112233", "bank": "中国银行"}
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                if i < 6:
                    srv.resolve(conn, rt.clock, operator(f"op{i}"), forms[i]["id"])
                else:
                    cases.refund_legacy_remainder(conn, rt.clock, operator(f"op{i}"), rec["id"],
                                                  payout=payout, reason="退回剩余款项")
            outcomes[i] = "done"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    assert sorted(outcomes[6:]) == ["conflict", "done"]  # refunded once
    credited = sum(balance(rt, uin).cash for uin in accounts)
    assert credited == 200_00 * outcomes[:6].count("done") and credited <= 800_00
    with rt.engine.connect() as conn:
        refunded = conn.execute(select(remittance_refunds.c.amount)).scalar_one()
        remaining = conn.execute(select(remittance_legacy_transfers.c.remaining).where(
            remittance_legacy_transfers.c.remittance_id == rec["id"])).scalar_one()
    assert 100_00 + credited + refunded == 1000_00 and remaining == 0
    assert platform_balance(rt, "bank") == bank + refunded
    assert platform_balance(rt, "remittance_suspense") == 0
    assert count_txns(rt, kind="remittance_refund") == 1
    assert_reconciled(rt)
