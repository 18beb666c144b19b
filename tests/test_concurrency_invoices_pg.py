"""Invoices under 8 concurrent requests (PostgreSQL): applications for the whole
available amount make exactly one (the account's settings row locked FOR UPDATE,
available re-read under it), one request key makes one application, and concurrent
issuers issue an invoice once and give invoices of one entity distinct numbers in
sequence (INV-1, INV-2, INV-5)."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput
from feecenter.invoices import invoiceable, issuing, rules, service
from feecenter.invoices.tables import invoice_applications, invoice_counters, invoices
from tests.helpers import load_sample_catalog, run_threads
from tests.invoice_seed import CVM_MONTH, cash_purchase, enterprise, enterprise_title

pytestmark = pytest.mark.postgres_only

THREADS = 8


@pytest.fixture
def ready(rt):
    load_sample_catalog(rt)
    uin = enterprise(rt)
    enterprise_title(rt, uin)
    cash_purchase(rt, uin)
    return rt, uin


def _apply(rt, uin, key, amount=None):
    with transaction(rt.engine) as conn:
        return service.apply(conn, rt.clock, SYSTEM, uin, kind="ordinary", amount=amount,
                             email=None, request_key=key)


@pytest.mark.spec("INV-1", "INV-2")
def test_eight_applications_for_the_whole_amount_make_one(ready):
    rt, uin = ready
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            _apply(rt, uin, f"race-{i}", amount="178.00")
            outcomes[i] = "applied"
        except InvalidInput as exc:
            outcomes[i] = exc.field

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"applied": 1, "amount": THREADS - 1}
    with rt.engine.connect() as conn:
        found = invoiceable.invoiceable(conn, SYSTEM, uin)
        count = conn.execute(select(func.count()).select_from(invoices)).scalar()
    assert (found["amount"], found["invoiced"], found["debt"], count) == (0, CVM_MONTH, 0, 1)


@pytest.mark.spec("INV-1", "INV-2")
def test_eight_applications_for_parts_never_exceed_the_available_amount(ready):
    rt, uin = ready
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            _apply(rt, uin, f"part-{i}", amount="50.00")  # 3 fit in 178.00
            outcomes[i] = "applied"
        except InvalidInput as exc:
            outcomes[i] = exc.field

    assert run_threads(THREADS, work) == []
    assert Counter(outcomes) == {"applied": 3, "amount": THREADS - 3}
    with rt.engine.connect() as conn:
        assert invoiceable.invoiceable(conn, SYSTEM, uin)["amount"] == CVM_MONTH - 150_00


@pytest.mark.spec("INV-2")
def test_eight_applications_with_one_request_key_make_one(ready):
    rt, uin = ready
    results: list = [None] * THREADS

    def work(i: int) -> None:
        results[i] = _apply(rt, uin, "same-key")["application_id"]

    assert run_threads(THREADS, work) == []
    assert len(set(results)) == 1
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(invoice_applications)).scalar() == 1


@pytest.mark.spec("INV-5")
def test_eight_issuers_of_one_invoice_issue_it_once(ready):
    rt, uin = ready
    (made,) = _apply(rt, uin, "one")["invoices"]
    results: list = [None] * THREADS

    def work(i: int) -> None:
        results[i] = issuing.issue_one(rt.engine, rt.clock, rt.settings, made["id"])

    assert run_threads(THREADS, work) == []
    assert results.count(True) == 1
    with rt.engine.connect() as conn:
        row = conn.execute(select(invoices).where(invoices.c.id == made["id"])).mappings().one()
        counter = conn.execute(select(invoice_counters.c.next_value).where(
            invoice_counters.c.entity == "cn-cloud", invoice_counters.c.year == 2026)).scalar()
    assert (row["state"], row["invoice_number"]) == ("issued",
                                                    rules.invoice_number(2026, "11", 1, 1))
    assert counter == 2


@pytest.mark.spec("INV-5")
def test_eight_issuers_number_eight_invoices_in_sequence(ready):
    rt, uin = ready
    ids = [_apply(rt, uin, f"piece-{i}", amount="10.00")["invoices"][0]["id"]
           for i in range(THREADS)]

    def work(i: int) -> None:
        issuing.issue_pending(rt.engine, rt.clock, rt.settings)

    assert run_threads(THREADS, work) == []
    with rt.engine.connect() as conn:
        numbers = conn.execute(select(invoices.c.invoice_number).where(
            invoices.c.id.in_(ids), invoices.c.state == "issued")).scalars().all()
    assert sorted(numbers) == [rules.invoice_number(2026, "11", 1, n)
                               for n in range(1, THREADS + 1)]
