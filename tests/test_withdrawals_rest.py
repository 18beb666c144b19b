"""Withdrawals over REST (docs/withdrawal.md, "REST"): preview and apply in yuan
strings with business times, the key in the body, a refusal as 4xx naming its field
with nothing written, the account's list and one withdrawal; another account's are
refused (403 by UIN, 404 by id)."""

from __future__ import annotations

import pytest

from tests.helpers import api_key, assert_reconciled, new_account, row_counts
from tests.invoice_seed import COMPANY_A, enterprise
from tests.rest_harness import Signed
from tests.test_console import client
from tests.test_withdrawals_apply import BANK, TABLES
from tests.withdrawal_seed import paid_recharge


@pytest.fixture
def signed(rt):
    uin = enterprise(rt)
    first = paid_recharge(rt, uin, 100_00)
    rt.clock.advance(days=1)
    second = paid_recharge(rt, uin, 50_00)
    return rt, uin, Signed(rt, client(rt), api_key(rt, uin)), (first, second)


@pytest.mark.spec("WDR-2", "WDR-4")
def test_preview_apply_list_and_get_in_yuan(signed):
    rt, uin, http, (first, second) = signed
    shown = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals/preview",
                      {"amount": "120.50", "route": "original"})
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["amount"] == "120.50" and body["withdrawable"]["takeable"] == "150.00"
    assert [(leg["ref_id"], leg["amount"]) for leg in body["legs"]] == [
        (second, "50.00"), (first, "70.50")]
    assert body["legs"][0]["estimate_to"] == "2026-03-03 12:00:00"  # applied 10:00 + 2 h
    made = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals",
                     {"amount": "120.50", "route": "original", "key": "rest-1"})
    assert made.status_code == 201, made.text
    withdrawal = made.json()
    assert (withdrawal["amount"], withdrawal["state"], withdrawal["applied_at"]) == (
        "120.50", "in_progress", "2026-03-03 10:00:00")
    assert [leg["state"] for leg in withdrawal["legs"]] == ["pending", "pending"]
    again = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals",
                      {"amount": "120.50", "route": "original", "key": "rest-1"})
    assert again.status_code == 201 and again.json() == withdrawal
    listed = http.send("GET", f"/api/v1/accounts/{uin}/withdrawals")
    assert listed.status_code == 200 and listed.json()["items"] == [withdrawal]
    one = http.send("GET", f"/api/v1/withdrawals/{withdrawal['id']}")
    assert one.status_code == 200 and one.json() == withdrawal
    assert_reconciled(rt)


@pytest.mark.spec("WDR-3")
def test_offline_with_the_bank_account(signed):
    rt, uin, http, _ = signed
    made = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals",
                     {"amount": "10.00", "route": "offline", "key": "off", "bank": BANK})
    assert made.status_code == 201, made.text
    assert made.json()["bank"] == BANK and made.json()["legs"][0]["source"] == "bank"
    assert made.json()["legs"][0]["estimate_from"] == "2026-03-12 10:00:00"  # 7 working days


@pytest.mark.spec("WDR-1", "WDR-3")
@pytest.mark.parametrize("body, status, field", [
    ({"amount": "150.01", "route": "original", "key": "k"}, 400, "amount"),
    ({"amount": "0.00", "route": "original", "key": "k"}, 400, "amount"),
    ({"amount": "-1.00", "route": "original", "key": "k"}, 400, "amount"),
    ({"amount": "1.00", "route": "wire", "key": "k"}, 400, "route"),
    ({"amount": "1.00", "route": "original"}, 400, "key"),
    ({"amount": "1.00", "route": "offline", "key": "k",
      "bank": {**BANK, "holder": COMPANY_A + "x"}}, 400, "bank.holder"),
    ({"amount": "1.00", "route": "offline", "key": "k",
      "bank": {**BANK, "account_no": "abc45678"}}, 400, "bank.account_no"),
    ({"amount": "1.00", "route": "original", "key": "k", "recharge_ids": [999]}, 400,
     "recharge_ids"),
])
def test_a_refusal_names_its_field_and_writes_nothing(signed, body, status, field):
    rt, uin, http, _ = signed
    before = row_counts(rt, *TABLES)
    refused = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals", body)
    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    assert error["field"] == field
    assert error["message_zh"] and error["message_en"]
    assert row_counts(rt, *TABLES) == before


@pytest.mark.parametrize("body", [
    {"amount": 1, "route": "original", "key": "k"},
    {"amount": "1.00", "route": "original", "key": "k", "fee": "0"},
    {"amount": "1.00", "route": "original", "key": "k", "recharge_ids": ["1"]},
    {"amount": "1.00", "route": "offline", "key": "k", "bank": "6222"},
])
def test_a_malformed_body_is_a_4xx(signed, body):
    rt, uin, http, _ = signed
    refused = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals", body)
    assert 400 <= refused.status_code < 500, refused.text


def test_another_accounts_withdrawals_are_refused(signed):
    rt, uin, http, _ = signed
    made = http.send("POST", f"/api/v1/accounts/{uin}/withdrawals",
                     {"amount": "1.00", "route": "original", "key": "mine"}).json()
    other = new_account(rt, "other")
    theirs = Signed(rt, client(rt), api_key(rt, other))
    assert theirs.send("GET", f"/api/v1/withdrawals/{made['id']}").status_code == 404
    assert theirs.send("GET", f"/api/v1/accounts/{uin}/withdrawals").status_code == 403
    assert theirs.send("POST", f"/api/v1/accounts/{uin}/withdrawals/preview",
                       {"amount": "1.00", "route": "original"}).status_code == 403
    assert theirs.send("POST", f"/api/v1/accounts/{uin}/withdrawals",
                       {"amount": "1.00", "route": "original", "key": "x"}).status_code == 403
