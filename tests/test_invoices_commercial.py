"""A commercial invoice (商业发票, INV-9) takes from what the account may invoice (INV-1),
on SQLite and PostgreSQL: an amount above it is refused naming ``fields.amount`` and
nothing is written; open and resolved requests are their own part of the invoiceable
amount, so a VAT invoice gets only the rest (and the other way round); a rejected or
withdrawn request gives its amount back; a refund after a commercial invoice is invoice
debt (INV-7) that holds the money back from a withdrawal; REST and the console show the
part. The race between VAT applications and commercial requests:
test_concurrency_commercial_invoices_pg.py."""

from __future__ import annotations

import pytest

from feecenter.accounts.permissions import SYSTEM
from feecenter.db.engine import transaction
from feecenter.errors import AccountInArrears, InvalidInput
from feecenter.funds import service as funds
from feecenter.invoices import invoiceable
from feecenter.invoices.requests import COMMERCIAL_INVOICE
from feecenter.invoices.tables import invoice_applications, invoice_settings
from feecenter.orders import service as orders
from feecenter.service_requests.tables import service_request_events, service_requests
from tests.helpers import balance, load_sample_catalog, row_counts
from tests.invoice_seed import (CVM_MONTH, apply, cash_purchase, enterprise, enterprise_title,
                                order_row)
from tests.test_invoices_requests import act, attach, commercial, consuming, file
from tests.test_invoices_reversal import ALICE, owner
from tests.test_withdrawals_apply import BANK
from tests.test_withdrawals_apply import TABLES as WITHDRAWAL_TABLES
from tests.withdrawal_seed import takeable, withdraw

REQUEST_TABLES = (service_requests, service_request_events, invoice_settings)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def shown(rt, uin: int) -> dict:
    with rt.engine.connect() as conn:
        return invoiceable.invoiceable(conn, SYSTEM, uin)


def parts(rt, uin: int) -> tuple[int, int, int, int, int]:
    """(amount, commercial, consumed, invoiced, debt) of the invoiceable view."""
    view = shown(rt, uin)
    return (view["amount"], view["commercial"], view["consumed"], view["invoiced"],
            view["debt"])


def refused_amount(rt, uin: int, amount: str) -> InvalidInput:
    before = row_counts(rt, *REQUEST_TABLES)
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, COMMERCIAL_INVOICE, commercial(uin, amount=amount))
    assert refused.value.field == "fields.amount"
    assert row_counts(rt, *REQUEST_TABLES) == before  # nothing written, not even the lock row
    return refused.value


@pytest.mark.spec("INV-9", "INV-1")
def test_an_amount_above_what_may_be_invoiced_is_refused_naming_it(shop):
    uin = consuming(shop, "hk-above")  # ¥178.00 invoiceable
    error = refused_amount(shop, uin, "178.01")
    assert error.message_zh.startswith("金额（人民币元）") and "178.00" in error.message_zh
    assert error.message_en.startswith("amount (RMB)") and "178.00" in error.message_en
    assert error.details["available"] == "178.00"
    made = file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="178.00"))  # all of it
    assert (made["state"], made["fields"]["amount"]) == ("submitted", CVM_MONTH)
    assert parts(shop, uin) == (0, CVM_MONTH, CVM_MONTH, 0, 0)
    assert refused_amount(shop, uin, "0.01").details["available"] == "0.00"


@pytest.mark.spec("INV-9", "INV-1")
def test_a_commercial_request_leaves_only_the_rest_for_a_vat_invoice(shop):
    uin = consuming(shop, "hk-vat")
    enterprise_title(shop, uin)
    file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="100.00"))
    assert parts(shop, uin) == (78_00, 100_00, CVM_MONTH, 0, 0)
    applications = row_counts(shop, invoice_applications)
    with pytest.raises(InvalidInput) as refused:
        apply(shop, uin, amount="78.01", key="too-much")
    assert refused.value.field == "amount" and "78.00" in refused.value.message_en
    assert row_counts(shop, invoice_applications) == applications
    made = apply(shop, uin, key="the-rest")  # no amount: everything that is left
    assert sum(i["amount"] for i in made["invoices"]) == 78_00
    assert parts(shop, uin) == (0, 100_00, CVM_MONTH, 78_00, 0)
    refused_amount(shop, uin, "0.01")


@pytest.mark.spec("INV-9", "INV-1")
def test_a_vat_invoice_leaves_only_the_rest_for_a_commercial_request(shop):
    uin = consuming(shop, "hk-vat-first")
    enterprise_title(shop, uin)
    apply(shop, uin, amount="150.00", key="first")
    assert refused_amount(shop, uin, "28.01").details["available"] == "28.00"
    file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="28.00"))
    assert parts(shop, uin) == (0, 28_00, CVM_MONTH, 150_00, 0)


@pytest.mark.spec("INV-9", "INV-1")
def test_a_rejected_or_withdrawn_request_gives_its_amount_back(shop):
    uin = consuming(shop, "hk-back")
    first = file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="178.00"))
    refused_amount(shop, uin, "0.01")
    act(shop, "take", first["id"])
    assert parts(shop, uin)[:2] == (0, CVM_MONTH)  # taken: still open, still taken off
    act(shop, "reject", first["id"], "金额有误")
    assert parts(shop, uin)[:2] == (CVM_MONTH, 0)
    second = file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="178.00"))
    assert parts(shop, uin)[:2] == (0, CVM_MONTH)
    act(shop, "withdraw", second["id"], actor=owner(uin))
    assert parts(shop, uin)[:2] == (CVM_MONTH, 0)
    third = file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="178.00"))
    act(shop, "take", third["id"])
    attach(shop, third["id"], ALICE)
    assert act(shop, "resolve", third["id"], "已发送扫描件")["state"] == "resolved"
    assert parts(shop, uin)[:2] == (0, CVM_MONTH)  # resolved: taken for good


@pytest.mark.spec("INV-9", "INV-1")
def test_a_commercial_request_waits_while_the_account_owes_money(shop):
    uin = enterprise(shop, "hk-owing")
    cash_purchase(shop, uin, top_up=CVM_MONTH)
    with transaction(shop.engine) as conn:
        funds.spend(conn, shop.clock, uin, 5_00, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, shop.clock, "revenue"))
    before = row_counts(shop, *REQUEST_TABLES)
    with pytest.raises(AccountInArrears) as caught:
        file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="1.00"))
    assert caught.value.field == "uin" and "5.00" in caught.value.message_en
    assert row_counts(shop, *REQUEST_TABLES) == before


@pytest.mark.spec("INV-9", "INV-7")
def test_a_refund_after_a_commercial_invoice_is_debt_that_holds_the_money_back(shop):
    """acme (outside the mainland) bought a month of cvm with cash (¥500.00 topped up),
    got a commercial invoice for it, then refunded it inside the no-reason window: the
    cash is back, the same amount is owed in invoices and cannot be withdrawn."""
    uin = enterprise(shop, "hk-refund")
    (order_id,) = cash_purchase(shop, uin, top_up=500_00)
    made = file(shop, uin, COMMERCIAL_INVOICE, commercial(uin, amount="178.00"))
    act(shop, "take", made["id"])
    attach(shop, made["id"], ALICE)
    act(shop, "resolve", made["id"], "已发送扫描件")
    assert takeable(shop, uin) == 500_00 - CVM_MONTH
    shop.clock.advance(days=1)
    resource_id = order_row(shop, uin, order_id)["resource_id"]
    with transaction(shop.engine) as conn:
        refund_id = orders.refund_resource(conn, shop.clock, SYSTEM, uin, resource_id,
                                           key="refund")
    assert order_row(shop, uin, refund_id)["refunded_cash"] == CVM_MONTH
    assert parts(shop, uin) == (0, CVM_MONTH, 0, 0, CVM_MONTH)
    with shop.engine.connect() as conn:
        assert invoiceable.invoice_debt(conn, uin) == CVM_MONTH
    assert balance(shop, uin).cash == 500_00
    assert takeable(shop, uin) == 322_00  # the debt holds the refunded cash back
    before = row_counts(shop, *WITHDRAWAL_TABLES)
    with pytest.raises(InvalidInput) as refused:
        withdraw(shop, uin, 322_01, route="offline", bank=BANK)
    assert refused.value.field == "amount" and "322.00" in refused.value.message_en
    assert row_counts(shop, *WITHDRAWAL_TABLES) == before
    assert withdraw(shop, uin, 322_00, route="offline", bank=BANK)["amount"] == 322_00
    assert takeable(shop, uin) == 0 and balance(shop, uin).cash == CVM_MONTH  # debt's cash stays
