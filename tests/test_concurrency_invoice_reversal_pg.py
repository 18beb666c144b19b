"""Invoice reversals, verification and commercial-invoice titles under 8 concurrent
threads (INV-6, INV-8, INV-9, PostgreSQL): the conditional UPDATE on the reversal's
state decides one release (one red invoice, the blue one reversed once) and one winner
between releases and rejections; the unique key decides one reversal per invoice; the
verification upsert stops at the per-minute limit exactly; the account's invoice lock
(``titles.lock_account``) lets one first commercial-invoice title in."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import operator
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, TooManyRequests
from feecenter.invoices import reversals, verification
from feecenter.invoices.requests import COMMERCIAL_INVOICE
from feecenter.invoices.tables import invoice_lines, invoice_reversals, invoices
from feecenter.service_requests import service as srv
from feecenter.service_requests.tables import service_requests
from tests.helpers import load_sample_catalog, new_account, run_threads
from tests.test_invoices_requests import consuming
from tests.test_invoices_reversal import issued_invoice, owner, submit

pytestmark = pytest.mark.postgres_only

THREADS = 8


def _count(rt, table, *where) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


@pytest.mark.spec("INV-6")
def test_eight_concurrent_releases_make_one_red_invoice(rt):
    uin = new_account(rt, "race-rev")
    blue = issued_invoice(rt, uin)
    made = submit(rt, uin, blue["id"])
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                reversals.release(conn, rt.clock, operator(f"op{i}"), made["id"])
            outcomes[i] = "released"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"released": 1, "conflict": THREADS - 1}
    assert _count(rt, invoices, invoices.c.kind == "red") == 1
    assert _count(rt, invoice_lines, invoice_lines.c.amount < 0) == 2
    assert _count(rt, audit_log, audit_log.c.action == "invoice_reversal.release") == 1
    with rt.engine.connect() as conn:
        assert conn.execute(select(invoices.c.state).where(
            invoices.c.id == blue["id"])).scalar() == "reversed"
        winner = conn.execute(select(invoice_reversals.c.decided_by)).scalar()
        assert conn.execute(select(func.sum(invoice_lines.c.amount))).scalar() == 0
    assert winner == f"operator:op{outcomes.index('released')}"


@pytest.mark.spec("INV-6")
def test_releases_and_rejections_racing_have_one_winner(rt):
    uin = new_account(rt, "race-rej")
    made = submit(rt, uin, issued_invoice(rt, uin)["id"])
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                if i % 2:
                    reversals.reject(conn, rt.clock, operator(f"op{i}"), made["id"], "不予退票")
                else:
                    reversals.release(conn, rt.clock, operator(f"op{i}"), made["id"])
            outcomes[i] = "won"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"won": 1, "conflict": THREADS - 1}
    winner = outcomes.index("won")
    with rt.engine.connect() as conn:
        state = conn.execute(select(invoice_reversals.c.state)).scalar()
    assert state == ("rejected" if winner % 2 else "released")
    assert _count(rt, invoices, invoices.c.kind == "red") == (0 if winner % 2 else 1)
    assert _count(rt, audit_log, audit_log.c.action.like("invoice_reversal.%")) == 1


@pytest.mark.spec("INV-6")
def test_eight_concurrent_submissions_of_one_invoice_make_one_reversal(rt):
    uin = new_account(rt, "race-sub")
    blue = issued_invoice(rt, uin)
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            submit(rt, uin, blue["id"], explanation=f"第 {i} 次")
            outcomes[i] = "submitted"
        except Conflict:
            outcomes[i] = "conflict"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"submitted": 1, "conflict": THREADS - 1}
    assert _count(rt, invoice_reversals) == 1


@pytest.mark.spec("INV-8")
def test_concurrent_verifications_stop_exactly_at_the_limit(rt):
    uin = new_account(rt, "race-verify")
    blue = issued_invoice(rt, uin)
    rt.clock.advance(days=1)
    outcomes: list = [None] * (THREADS * 2)

    def work(i: int) -> None:
        for j in (2 * i, 2 * i + 1):
            try:
                with transaction(rt.engine) as conn:
                    outcomes[j] = verification.verify(
                        conn, rt.clock, "203.0.113.7", invoice_code=blue["invoice_code"],
                        invoice_number=blue["invoice_number"], issued_on="2026-03-02",
                        amount="1173.00", check_last6=blue["check_code"][-6:])["valid"]
            except TooManyRequests:
                outcomes[j] = "limited"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {True: verification.MAX_ATTEMPTS_PER_MINUTE,
                                 "limited": 2 * THREADS - verification.MAX_ATTEMPTS_PER_MINUTE}


@pytest.mark.spec("INV-9")
def test_concurrent_first_commercial_invoice_requests_keep_one_title(rt):
    load_sample_catalog(rt)
    uin = consuming(rt, "race-title")  # ¥178.00 invoiceable: the amount passes
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                srv.file_request(conn, rt.clock, owner(uin), uin, COMMERCIAL_INVOICE, {
                    "account_id": str(uin), "amount": "100.00", "title": f"Acme {i} Ltd",
                    "address": "1 Queen's Road, Hong Kong", "region": "HK"})
            outcomes[i] = "filed"
        except InvalidInput as exc:
            assert exc.field == "fields.title"
            outcomes[i] = "refused"

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"filed": 1, "refused": THREADS - 1}
    assert _count(rt, service_requests, service_requests.c.kind == COMMERCIAL_INVOICE) == 1
