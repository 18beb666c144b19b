"""The withdrawable amount (WDR-1, WDR-7; docs/withdrawal.md): the pure rule on
SPEC-shaped worked examples to the fen, a negative raw value and its takeable part;
end to end, an invoiced purchase refunded leaves invoice debt (INV-7) that the
withdrawable amount subtracts; REST (yuan strings, every part) and the console's
提现 page show it; another account's amount is refused."""

from __future__ import annotations

import re

import pytest

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.db.engine import transaction
from feecenter.errors import NotFound, PermissionDenied
from feecenter.funds import service as funds
from feecenter.invoices import invoiceable, issuing
from feecenter.orders import service as orders
from feecenter.withdrawals import rules, service
from tests.helpers import OPS, add_cash, add_gift, api_key, load_sample_catalog, new_account
from tests.invoice_seed import (CVM_MONTH, apply, cash_purchase, enterprise, enterprise_title,
                                order_row)
from tests.rest_harness import Signed
from tests.test_console import client, logged_in, set_password

P = rules.WithdrawableParts


# ---------------------------------------------------------------- the rule (pure)

@pytest.mark.spec("WDR-1")
@pytest.mark.parametrize("parts, raw", [
    # nothing owed, nothing frozen: all the cash
    (P(cash=1_000_00, invoice_debt=0, unrepaid_advances=0, frozen=0, gift=0, income=0), 1_000_00),
    # every part: 1,234.56 − 17.89 − 50.00 − (300.01 − 100.00 − 0.00) = 966.66
    (P(cash=1_234_56, invoice_debt=17_89, unrepaid_advances=50_00, frozen=300_01, gift=100_00,
       income=0), 966_66),
    # income covers part of the frozen money: 200.00 − (50.00 − 20.00 − 10.00) = 180.00
    (P(cash=200_00, invoice_debt=0, unrepaid_advances=0, frozen=50_00, gift=20_00,
       income=10_00), 180_00),
    # gift covers all of the frozen money: the bracket is 0, gift is not added to cash
    (P(cash=500_00, invoice_debt=0, unrepaid_advances=0, frozen=80_00, gift=100_00, income=0),
     500_00),
    # an invoiced refund: cash back, the same amount owed in invoices (INV-7)
    (P(cash=178_00, invoice_debt=178_00, unrepaid_advances=0, frozen=0, gift=0, income=0), 0),
    # negative: debts above the cash, shown as computed
    (P(cash=100_00, invoice_debt=178_00, unrepaid_advances=0, frozen=0, gift=0, income=0),
     -78_00),
    (P(cash=0, invoice_debt=0, unrepaid_advances=30_01, frozen=10_00, gift=0, income=0), -40_01),
    # WDR-7: money an agent transferred in and not yet spent is never withdrawable
    (P(cash=300_00, invoice_debt=0, unrepaid_advances=0, frozen=0, gift=0, income=0,
       transferred_in_unspent=120_50), 179_50),
])
def test_withdrawable_worked_examples_to_the_fen(parts, raw):
    assert rules.withdrawable(parts) == raw
    assert rules.takeable(raw) == max(raw, 0)


@pytest.mark.spec("WDR-1")
def test_only_a_positive_amount_is_takeable():
    assert rules.takeable(-78_00) == 0
    assert rules.takeable(0) == 0
    assert rules.takeable(1) == 1
    assert rules.frozen_cash(P(cash=0, invoice_debt=0, unrepaid_advances=0, frozen=80_00,
                               gift=100_00, income=0)) == 0


def test_parts_are_non_negative_integers_of_fen():
    with pytest.raises(TypeError):
        P(cash=1.5, invoice_debt=0, unrepaid_advances=0, frozen=0, gift=0, income=0)
    with pytest.raises(ValueError):
        P(cash=0, invoice_debt=-1, unrepaid_advances=0, frozen=0, gift=0, income=0)


# ---------------------------------------------------------------- end to end

@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def _withdrawable(rt, uin: int, actor=SYSTEM) -> dict:
    with rt.engine.connect() as conn:
        return service.withdrawable(conn, rt.clock, actor, uin)


def _invoiced_and_refunded(rt) -> tuple[int, int, dict]:
    """acme bought a month of cvm with cash (¥500.00 topped up), invoiced and issued it,
    then refunded it inside the no-reason window; (uin, debt, before the refund)."""
    uin = enterprise(rt)
    enterprise_title(rt, uin)
    (order_id,) = cash_purchase(rt, uin, top_up=500_00)
    made = apply(rt, uin)
    assert issuing.issue_invoices(rt.engine, rt.clock, rt.settings,
                                  [i["id"] for i in made["invoices"]]) == 1
    before = _withdrawable(rt, uin)
    rt.clock.advance(days=1)
    resource_id = order_row(rt, uin, order_id)["resource_id"]
    with transaction(rt.engine) as conn:
        refund_id = orders.refund_resource(conn, rt.clock, SYSTEM, uin, resource_id, key="refund")
    assert order_row(rt, uin, refund_id)["refunded_cash"] == CVM_MONTH
    with rt.engine.connect() as conn:
        debt = invoiceable.invoice_debt(conn, uin)
    return uin, debt, before


@pytest.mark.spec("WDR-1", "INV-7")
def test_an_invoiced_refund_leaves_debt_the_withdrawable_amount_subtracts(shop):
    uin, debt, before = _invoiced_and_refunded(shop)
    assert before == {"raw": 322_00, "takeable": 322_00, "parts": {
        "cash": 322_00, "invoice_debt": 0, "unrepaid_advances": 0, "frozen": 0, "gift": 0,
        "income": 0, "transferred_in_unspent": 0, "arrears": 0, "frozen_cash": 0}}
    assert debt == CVM_MONTH
    after = _withdrawable(shop, uin)
    assert after["parts"]["cash"] == 500_00  # the refund gave the cash back ...
    assert after["parts"]["invoice_debt"] == debt
    assert after["raw"] == after["parts"]["cash"] - debt == 322_00  # ... the debt holds it
    assert after["takeable"] == 322_00


@pytest.mark.spec("WDR-1")
def test_frozen_cash_comes_off_frozen_gift_does_not(shop):
    uin = new_account(shop, "frozen-co")
    add_cash(shop, uin, 100_00)
    add_gift(shop, uin, 20_00)
    with transaction(shop.engine) as conn:  # gift first (FRZ-1): 20.00 gift, 30.00 cash
        funds.freeze(conn, shop.clock, uin, 50_00, key="freeze")
    shown = _withdrawable(shop, uin)
    assert shown["parts"] == {"cash": 100_00, "invoice_debt": 0, "unrepaid_advances": 0,
                              "frozen": 50_00, "gift": 20_00, "income": 0,
                              "transferred_in_unspent": 0, "arrears": 0,
                              "frozen_cash": 30_00}
    assert shown["raw"] == shown["takeable"] == 70_00


@pytest.mark.spec("WDR-1")
def test_unrepaid_advances_come_off_and_the_raw_value_may_be_negative(shop):
    uin = new_account(shop, "credit-co")
    with transaction(shop.engine) as conn:
        funds.grant_credit(conn, shop.clock, OPS, uin, credit_limit=1_000_00)
    cash_purchase(shop, uin, top_up=0)  # no cash: credit advances all of it (BAL-7)
    shown = _withdrawable(shop, uin)
    assert shown["parts"]["unrepaid_advances"] == CVM_MONTH
    assert shown["parts"]["cash"] == 0
    assert shown["raw"] == -CVM_MONTH and shown["takeable"] == 0


def test_an_unknown_account_is_not_found(shop):
    with pytest.raises(NotFound):
        _withdrawable(shop, 999_999_999)


def test_another_accounts_withdrawable_amount_is_refused(shop):
    mine, theirs = new_account(shop, "mine"), new_account(shop, "theirs")
    with pytest.raises(PermissionDenied):
        _withdrawable(shop, theirs, Actor(kind="user", name="mine", uin=mine, role="owner"))


# ---------------------------------------------------------------- REST and console

@pytest.mark.spec("WDR-1", "INV-7")
def test_rest_shows_every_part_in_yuan_and_refuses_another_account(shop):
    uin, _, _ = _invoiced_and_refunded(shop)
    other = new_account(shop, "other")
    http = client(shop)
    signed = Signed(shop, http, api_key(shop, uin))
    response = signed.send("GET", f"/api/v1/accounts/{uin}/withdrawable")
    assert response.status_code == 200, response.text
    assert response.json() == {"raw": "322.00", "takeable": "322.00", "parts": {
        "cash": "500.00", "invoice_debt": "178.00", "unrepaid_advances": "0.00",
        "frozen": "0.00", "gift": "0.00", "income": "0.00", "transferred_in_unspent": "0.00",
        "arrears": "0.00", "frozen_cash": "0.00"}}
    refused = signed.send("GET", f"/api/v1/accounts/{other}/withdrawable")
    assert refused.status_code == 403, refused.text


@pytest.mark.spec("WDR-1")
def test_the_console_shows_the_amount_with_its_parts(shop):
    uin, _, _ = _invoiced_and_refunded(shop)
    set_password(shop, uin, None)
    http = logged_in(shop, "acme", "acme")
    page = http.get("/console/withdrawals")
    assert page.status_code == 200
    assert "可提现金额" in page.text and "data-apply-form" in page.text
    for field, shown in (("raw", "¥322.00"), ("takeable", "¥322.00"), ("cash", "¥500.00"),
                         ("invoice_debt", "¥178.00"), ("frozen_cash", "¥0.00"),
                         ("held", "¥0.00")):
        assert f'data-field="{field}"' in page.text
        assert re.search(f'data-field="{field}"[^>]*>{re.escape(shown)}<', page.text), field
    http.cookies.set("fc_lang", "en", path="/console")
    assert "Withdrawable amount" in http.get("/console/withdrawals").text


def test_the_console_page_refuses_a_readonly_user(shop):
    uin = new_account(shop, "ro-co")
    with transaction(shop.engine) as conn:
        accounts.add_user(conn, shop.clock, OPS, uin, "ro-co-readonly", "readonly")
    set_password(shop, uin, "ro-co-readonly")
    page = logged_in(shop, "ro-co-readonly", "ro-co").get("/console/withdrawals")
    assert page.status_code == 403 and "data-withdrawable" not in page.text
