"""The invoice service-request kinds on SQLite and PostgreSQL: the paper invoice copy
(SRV-1: the account's issued invoices, recipient, address, phone; due 7 working days)
and the commercial invoice (INV-9: outside the mainland only, the title never changed
afterwards, resolved with the operator's scan), through the service-request framework.
The amount a commercial invoice takes from the invoiceable amount: test_invoices_commercial.py."""

from __future__ import annotations

from datetime import datetime

import pytest

from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput
from feecenter.invoices.requests import COMMERCIAL_INVOICE, PAPER_INVOICE_COPY, invoice_numbers
from feecenter.service_requests import service as srv
from feecenter.service_requests.tables import service_requests
from tests.helpers import load_sample_catalog, new_account, row_counts
from tests.invoice_seed import cash_purchase, enterprise
from tests.test_invoices_reversal import ALICE, issued_invoice, owner

PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def file(rt, uin, kind, fields, actor=None):
    with transaction(rt.engine) as conn:
        return srv.file_request(conn, rt.clock, actor or owner(uin), uin, kind, fields)


def act(rt, verb, request_id, *args, actor=ALICE):
    with transaction(rt.engine) as conn:
        return getattr(srv, verb)(conn, rt.clock, actor, request_id, *args)


def attach(rt, request_id, actor):
    with transaction(rt.engine) as conn:
        return srv.add_attachment(conn, rt.clock, actor, request_id, srv.Upload("scan.pdf", PDF))


def commercial(uin, **overrides):
    return {"account_id": str(uin), "amount": "100.00", "title": "Acme Trading Limited",
            "address": "1 Queen's Road Central, Hong Kong", "region": "HK"} | overrides


def consuming(rt, name: str) -> int:
    """An enterprise account that paid a month of cvm with cash: ¥178.00 invoiceable
    (the sample catalog must be loaded)."""
    uin = enterprise(rt, name)
    cash_purchase(rt, uin)
    return uin


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return consuming(rt, "copy-shop")


@pytest.mark.spec("SRV-1", "INV-9")
def test_the_kinds_are_offered_with_their_fields_and_seven_working_days():
    kinds = {k["code"]: k for k in srv.list_kinds()}
    assert (kinds[PAPER_INVOICE_COPY]["name_zh"], kinds[PAPER_INVOICE_COPY]["due_working_days"]) == (
        "纸质发票复印件", 7)
    assert [f["name"] for f in kinds[PAPER_INVOICE_COPY]["fields"]] == [
        "invoice_numbers", "recipient", "address", "phone", "note"]
    assert kinds[COMMERCIAL_INVOICE]["due_working_days"] == 7
    assert [f["name"] for f in kinds[COMMERCIAL_INVOICE]["fields"]] == [
        "account_id", "amount", "title", "address", "region"]


# ---------------------------------------------------------------- paper invoice copy

@pytest.mark.spec("SRV-1")
def test_a_paper_copy_of_the_accounts_issued_invoices_is_due_in_seven_working_days(rt, shop):
    first, second = issued_invoice(rt, shop), issued_invoice(rt, shop)
    made = file(rt, shop, PAPER_INVOICE_COPY, {
        "invoice_numbers": f"{first['invoice_number']}，{second['invoice_number']} ",
        "recipient": "张三", "address": "北京市海淀区某路 1 号", "phone": "13800000000"})
    assert made["state"] == "submitted"
    # filed Monday 2 March: 7 working days -> Wednesday 11 March, due at its end
    assert made["due_at"] == datetime(2026, 3, 11, 16, 0)
    act(rt, "take", made["id"])
    done = act(rt, "resolve", made["id"], "顺丰 SF1234567890")
    assert done["state"] == "resolved"
    assert done["result"]["invoice_numbers"] == [first["invoice_number"], second["invoice_number"]]


@pytest.mark.spec("SRV-1")
@pytest.mark.parametrize("numbers", ["", "123", "2611000000000000000x", ",".join(["1" * 20] * 2)
                                     + "," + ",".join(f"{i:020d}" for i in range(10))])
def test_malformed_invoice_numbers_are_refused_naming_the_field(rt, shop, numbers):
    with pytest.raises(InvalidInput) as refused:
        file(rt, shop, PAPER_INVOICE_COPY, {"invoice_numbers": numbers, "recipient": "张三",
                                            "address": "北京", "phone": "13800000000"})
    assert refused.value.field == "fields.invoice_numbers"
    assert row_counts(rt, service_requests) == (0,)


@pytest.mark.spec("SRV-1")
def test_only_issued_invoices_of_the_account_are_copied(rt, shop):
    other = new_account(rt, "other")
    theirs = issued_invoice(rt, other)
    issuing = issued_invoice(rt, shop, state="issuing")
    for number in (theirs["invoice_number"], "26110999999999999999"):
        with pytest.raises(InvalidInput, match=number) as refused:
            file(rt, shop, PAPER_INVOICE_COPY, {"invoice_numbers": number, "recipient": "张三",
                                                "address": "北京", "phone": "13800000000"})
        assert refused.value.field == "fields.invoice_numbers"
    assert issuing["invoice_number"] is None
    assert invoice_numbers("26110000000000000001 26110000000000000001") == [
        "26110000000000000001"]


# ---------------------------------------------------------------- commercial invoice (INV-9)

@pytest.mark.spec("INV-9")
@pytest.mark.parametrize("region", ["HK", "MO", "TW", "SG", "US"])
def test_customers_outside_the_mainland_request_a_commercial_invoice(rt, shop, region):
    made = file(rt, shop, COMMERCIAL_INVOICE, commercial(shop, region=region))
    assert (made["state"], made["fields"]["amount"], made["fields"]["region"]) == (
        "submitted", 100_00, region)


@pytest.mark.spec("INV-9")
@pytest.mark.parametrize("overrides, field", [
    ({"region": "CN"}, "fields.region"), ({"region": "hk"}, "fields.region"),
    ({"region": "XX"}, "fields.region"), ({"region": "EU"}, "fields.region"),
    ({"region": "HKG"}, "fields.region"), ({"account_id": "100000000999"}, "fields.account_id"),
    ({"amount": "12.345"}, "fields.amount"), ({"amount": "178.01"}, "fields.amount"),
    ({"title": ""}, "fields.title"),
    ({"address": None}, "fields.address")])
def test_bad_commercial_requests_are_refused_naming_the_field(rt, shop, overrides, field):
    with pytest.raises(InvalidInput) as refused:
        file(rt, shop, COMMERCIAL_INVOICE, commercial(shop, **overrides))
    assert refused.value.field == field
    assert row_counts(rt, service_requests) == (0,)


@pytest.mark.spec("INV-9")
def test_the_title_cannot_be_changed_afterwards(rt, shop):
    first = file(rt, shop, COMMERCIAL_INVOICE, commercial(shop))
    with pytest.raises(InvalidInput, match="Acme Trading Limited") as refused:
        file(rt, shop, COMMERCIAL_INVOICE, commercial(shop, title="Other Co Ltd"))
    assert refused.value.field == "fields.title"
    again = file(rt, shop, COMMERCIAL_INVOICE, commercial(shop, title="acme  trading limited",
                                                          amount="10.00"))
    assert again["state"] == "submitted"  # the same title, spacing and case aside
    other = consuming(rt, "other-hk")  # another account has its own title
    assert file(rt, other, COMMERCIAL_INVOICE, commercial(other, title="Other Co Ltd"))
    act(rt, "reject", first["id"], "金额有误")
    act(rt, "reject", again["id"], "金额有误")
    # nothing open or resolved: no title was given yet, another may be
    assert file(rt, shop, COMMERCIAL_INVOICE, commercial(shop, title="Acme HK Ltd"))


@pytest.mark.spec("INV-9")
def test_the_operator_resolves_it_by_attaching_the_scan(rt, shop):
    made = file(rt, shop, COMMERCIAL_INVOICE, commercial(shop))
    attach(rt, made["id"], owner(shop))  # the customer's file is not the scan
    act(rt, "take", made["id"])
    with pytest.raises(Conflict, match="scan") as refused:
        act(rt, "resolve", made["id"])
    assert refused.value.field == "attachment"
    with pytest.raises(Conflict):  # the customer cannot attach once it is processed
        attach(rt, made["id"], owner(shop))
    scan = attach(rt, made["id"], ALICE)
    done = act(rt, "resolve", made["id"], "已发送扫描件")
    assert done["state"] == "resolved"
    assert done["result"] == {"scan_attachment_ids": [scan["id"]], "title": "Acme Trading Limited",
                              "amount": "100.00", "region": "HK"}
    with rt.engine.connect() as conn:  # the customer downloads the scan
        assert bytes(srv.get_attachment(conn, owner(shop), made["id"], scan["id"])["content"]) == PDF
    assert [e["event"] for e in done["events"]] == [
        "submitted", "attached", "taken", "attached", "resolved"]
    with pytest.raises(Conflict):  # nobody attaches to a resolved request
        attach(rt, made["id"], ALICE)
