"""VAT applications and commercial-invoice requests (INV-9) racing for one account's
invoiceable amount (INV-1) under 8 concurrent threads on PostgreSQL: both read it under
``titles.lock_account``, so of eight asking for the whole amount exactly one wins, and
of eight asking for part of it never more than the amount is taken."""

from __future__ import annotations

from collections import Counter

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput
from feecenter.invoices import invoiceable, service
from feecenter.invoices.requests import COMMERCIAL_INVOICE
from feecenter.service_requests import service as srv
from tests.helpers import load_sample_catalog, run_threads
from tests.invoice_seed import CVM_MONTH, enterprise_title
from tests.test_invoices_requests import commercial, consuming
from tests.test_invoices_reversal import owner

pytestmark = pytest.mark.postgres_only

THREADS = 8


def race(rt, uin: int, amount: str) -> list:
    """Even threads request a commercial invoice of ``amount``, odd ones apply for a VAT
    invoice of it; each outcome "commercial", "vat" or "refused" (naming the amount)."""
    outcomes: list = [None] * THREADS

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                if i % 2:
                    service.apply(conn, rt.clock, SYSTEM, uin, kind="ordinary", amount=amount,
                                  email=None, request_key=f"race-{i}")
                    outcomes[i] = "vat"
                else:
                    srv.file_request(conn, rt.clock, owner(uin), uin, COMMERCIAL_INVOICE,
                                     commercial(uin, amount=amount))
                    outcomes[i] = "commercial"
        except InvalidInput as exc:
            assert exc.field in ("amount", "fields.amount"), exc
            outcomes[i] = "refused"

    assert run_threads(THREADS, work) == []
    return outcomes


def taken(rt, uin: int) -> tuple[int, int, int]:
    """(invoiced, commercial, what may still be invoiced)."""
    with rt.engine.connect() as conn:
        view = invoiceable.invoiceable(conn, SYSTEM, uin)
    assert view["debt"] == 0
    return view["invoiced"], view["commercial"], view["amount"]


@pytest.mark.spec("INV-9", "INV-1")
def test_eight_racing_for_the_whole_amount_one_wins(rt):
    load_sample_catalog(rt)
    uin = consuming(rt, "race-whole")  # ¥178.00 invoiceable
    enterprise_title(rt, uin)
    outcomes = race(rt, uin, "178.00")
    assert outcomes.count("refused") == THREADS - 1
    invoiced, requested, left = taken(rt, uin)
    assert invoiced + requested == CVM_MONTH and left == 0


@pytest.mark.spec("INV-9", "INV-1")
def test_eight_racing_for_part_of_it_never_take_more_than_the_amount(rt):
    load_sample_catalog(rt)
    uin = consuming(rt, "race-part")
    enterprise_title(rt, uin)
    outcomes = race(rt, uin, "50.00")  # three fit in ¥178.00, a fourth would not
    winners = Counter(o for o in outcomes if o != "refused")
    assert sum(winners.values()) == 3 and outcomes.count("refused") == THREADS - 3
    invoiced, requested, left = taken(rt, uin)
    assert (invoiced, requested) == (winners["vat"] * 50_00, winners["commercial"] * 50_00)
    assert invoiced + requested == 150_00 and left == 28_00
