"""Public invoice verification (查验, INV-8) on SQLite and PostgreSQL: all five fields
must match an issued (or reversed) invoice, from the business day after issue; every
failure is the same generic answer; malformed input names its field and counts no
attempt; at most 10 attempts a minute per client, then TooManyRequests (HTTP 429)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import select, update

from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, TooManyRequests
from feecenter.invoices import reversals, verification
from feecenter.invoices.tables import invoice_verifications, invoices
from tests.helpers import new_account, row_counts
from tests.test_invoices_reversal import ALICE, issued_invoice, submit

CLIENT = "198.51.100.20"
# issued at 2026-03-02 23:30 Shanghai (15:30 UTC): the issue date is 2 March
ISSUED = datetime(2026, 3, 2, 15, 30, tzinfo=timezone.utc)


def check(rt, blue, client=CLIENT, **overrides):
    args = {"invoice_code": blue["invoice_code"], "invoice_number": blue["invoice_number"],
            "issued_on": "2026-03-02", "amount": "1173.00",
            "check_last6": blue["check_code"][-6:]} | overrides
    with transaction(rt.engine) as conn:
        return verification.verify(conn, rt.clock, client, **args)


@pytest.fixture
def blue(rt):
    invoice = issued_invoice(rt, new_account(rt, "verify-shop"), issued_at=ISSUED)
    rt.clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc))  # 3 March 00:00 Shanghai
    return invoice


@pytest.mark.spec("INV-8")
def test_an_issued_invoice_verifies_from_the_day_after_issue(rt, blue):
    rt.clock.set(datetime(2026, 3, 2, 15, 59, tzinfo=timezone.utc))  # still 2 March
    assert check(rt, blue) == verification.NOT_VERIFIED
    rt.clock.set(datetime(2026, 3, 2, 16, 0, tzinfo=timezone.utc))
    found = check(rt, blue)
    assert found == {"valid": True, "state": "issued", "state_zh": "正常", "state_en": "valid",
                     "kind": "ordinary", "entity": "tencent-cloud-bj",
                     "title": "北京某某科技有限公司", "issued_on": "2026-03-02", "amount": 117_300,
                     "net_amount": 110_000, "tax_amount": 7_300}
    assert "check_code" not in found and "uin" not in found


@pytest.mark.spec("INV-8")
@pytest.mark.parametrize("overrides", [
    {"invoice_code": "011002600112"}, {"invoice_number": "26110999999999999999"},
    {"issued_on": "2026-03-01"}, {"amount": "1173.01"}, {"amount": "-1173.00"},
    {"check_last6": "000000"}])
def test_any_mismatch_gets_the_one_generic_answer(rt, blue, overrides):
    assert check(rt, blue, **overrides) == verification.NOT_VERIFIED


@pytest.mark.spec("INV-8")
@pytest.mark.parametrize("state", ["applied", "issuing"])
def test_an_invoice_not_yet_issued_does_not_verify(rt, state):
    """Even were it numbered already, an invoice being issued is not verifiable."""
    pending = issued_invoice(rt, new_account(rt, "pending-shop"), state=state, issued_at=ISSUED)
    numbers = {"invoice_code": "011002600111", "invoice_number": "26110000000000000999",
               "check_code": "00000000000000123456", "issued_at": ISSUED.replace(tzinfo=None)}
    with transaction(rt.engine) as conn:
        conn.execute(update(invoices).where(invoices.c.id == pending["id"]).values(**numbers))
    rt.clock.advance(days=2)
    assert check(rt, numbers) == verification.NOT_VERIFIED
    with transaction(rt.engine) as conn:  # the same row issued: it verifies
        conn.execute(update(invoices).where(invoices.c.id == pending["id"]).values(state="issued"))
    assert check(rt, numbers)["valid"] is True


@pytest.mark.spec("INV-6", "INV-8")
def test_a_reversed_invoice_verifies_as_reversed(rt, blue):
    made = submit(rt, blue["uin"], blue["id"])
    with transaction(rt.engine) as conn:
        reversals.release(conn, rt.clock, ALICE, made["id"])
    found = check(rt, blue)
    assert (found["valid"], found["state"], found["state_zh"]) == (True, "reversed", "已红冲（作废）")


@pytest.mark.spec("INV-8")
@pytest.mark.parametrize("overrides, field", [
    ({"invoice_code": "01100260011"}, "invoice_code"),
    ({"invoice_code": "０１１００２６００１１１"}, "invoice_code"),
    ({"invoice_number": "2611000000000000000"}, "invoice_number"),
    ({"invoice_number": 26110000000000000001}, "invoice_number"),
    ({"issued_on": "2026-02-30"}, "issued_on"), ({"issued_on": "20260302"}, "issued_on"),
    ({"amount": "1173.001"}, "amount"), ({"amount": 1173.0}, "amount"),
    ({"check_last6": "12345"}, "check_last6"), ({"check_last6": "12345a"}, "check_last6")])
def test_malformed_input_names_the_field_and_counts_no_attempt(rt, blue, overrides, field):
    with pytest.raises(InvalidInput) as refused:
        check(rt, blue, **overrides)
    assert refused.value.field == field
    assert row_counts(rt, invoice_verifications) == (0,)


def test_the_client_is_required(rt, blue):
    for client in ("", None, "x" * 65):
        with pytest.raises(InvalidInput) as refused:
            check(rt, blue, client=client)
        assert refused.value.field == "client"


@pytest.mark.spec("INV-8")
def test_ten_attempts_a_minute_per_client_then_429(rt, blue):
    for _ in range(verification.MAX_ATTEMPTS_PER_MINUTE - 1):
        assert check(rt, blue, check_last6="999999")["valid"] is False
    assert check(rt, blue)["valid"] is True
    with pytest.raises(TooManyRequests) as limited:
        check(rt, blue)
    assert limited.value.http_status == 429 and limited.value.field == "client"
    assert check(rt, blue, client="192.0.2.1")["valid"] is True  # another client
    rt.clock.advance(minutes=1)
    assert check(rt, blue)["valid"] is True  # the next minute
    with rt.engine.connect() as conn:
        rows = conn.execute(select(invoice_verifications.c.client, invoice_verifications.c.attempts)
                            .order_by(invoice_verifications.c.client)).all()
    assert rows == [(CLIENT, 1)]  # every client's past minutes are gone


@pytest.mark.spec("INV-8")
def test_an_ipv6_network_counts_as_one_client(rt, blue):
    for host in range(verification.MAX_ATTEMPTS_PER_MINUTE):  # rotating inside one /64
        assert check(rt, blue, client=f"2001:db8:1:2::{host + 1:x}")["valid"] is True
    with pytest.raises(TooManyRequests):
        check(rt, blue, client="2001:db8:1:2:ffff::1")
    assert check(rt, blue, client="2001:db8:1:3::1")["valid"] is True  # another network
