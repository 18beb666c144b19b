"""Refunds and their query through the real WeChat Pay v3 adapter against the sandbox
provider (WDR-2, WDR-5): a refund is idempotent by its out_refund_no, a query finds
it (or answers None for a number the provider never took), and a refund to a payer
whose channel account was closed ends ABNORMAL.
"""

from __future__ import annotations

import uuid

import requests

from tests.test_recharges import pay, sandbox  # noqa: F401 - fixtures


def _paid(pay, fen: int, payer: str) -> dict:  # noqa: F811
    recharge = pay.create(fen)
    pay.payer_acts(recharge, payer=payer, notify="no")
    return recharge


def _no() -> str:
    """A refund number the (module-wide) sandbox has not seen."""
    return f"WDRT{uuid.uuid4().hex[:20].upper()}"


def test_a_refund_is_idempotent_by_its_number_and_found_by_query(pay):  # noqa: F811
    recharge, no1 = _paid(pay, 50_00, "payer-refund-ok"), _no()
    assert pay.gateway.query_refund(_no()) is None
    first = pay.gateway.refund(recharge["out_trade_no"], no1, 20_00, 50_00, "提现")
    again = pay.gateway.refund(recharge["out_trade_no"], no1, 20_00, 50_00, "提现")
    assert first.status == "SUCCESS" and first.amount == 20_00
    assert again == first  # the provider answered the first refund again, nothing more
    found = pay.gateway.query_refund(no1)
    assert found == first
    refunded = sum(r["amount"]["refund"] for r in pay.provider.refunds.values()
                   if r["out_trade_no"] == recharge["out_trade_no"])
    assert refunded == 20_00


def test_a_refund_to_a_closed_payer_account_ends_abnormal(pay):  # noqa: F811
    recharge, no2, no3 = _paid(pay, 30_00, "payer-closed"), _no(), _no()
    closed = requests.post(f"{pay.url}/sandbox/payers/payer-closed/close", timeout=30)
    assert closed.json() == {"payer": "payer-closed", "account": "closed"}
    refund = pay.gateway.refund(recharge["out_trade_no"], no2, 30_00, 30_00, "提现")
    assert refund.status == "ABNORMAL"
    assert pay.gateway.query_refund(no2).status == "ABNORMAL"
    requests.post(f"{pay.url}/sandbox/payers/payer-closed/open", timeout=30)
    # the abnormal refund gave nothing back: the whole payment may be refunded anew
    assert pay.gateway.refund(recharge["out_trade_no"], no3, 30_00, 30_00,
                              "提现").status == "SUCCESS"


def test_a_slow_refund_stays_processing_until_the_provider_finishes_it(pay):  # noqa: F811
    recharge, no4 = _paid(pay, 10_00, "payer-slow"), _no()
    requests.post(f"{pay.url}/sandbox/payers/payer-slow/slow", timeout=30)
    assert pay.gateway.refund(recharge["out_trade_no"], no4, 10_00, 10_00,
                              "提现").status == "PROCESSING"
    finished = requests.post(f"{pay.url}/sandbox/refunds/{no4}/finish",
                             data={"status": "SUCCESS"}, timeout=30)
    assert finished.status_code == 200
    assert pay.gateway.query_refund(no4).status == "SUCCESS"
