"""Invoices, the core (INV-1..4, INV-7): the tax split to the fen, titles equal to the
verified entity, emails and settings, the invoiceable amount per bucket from the
cost bill, applying (kinds, amount, arrears, idempotency) and the invoice debt a
refund of invoiced consumption leaves."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.bills import service as bills
from feecenter.bills.rollups import refresh_day
from feecenter.clock import business_date, db_time
from feecenter.db.engine import transaction
from feecenter.errors import (AccountInArrears, Conflict, IdempotencyConflict, InvalidInput,
                              NotFound, PermissionDenied)
from feecenter.funds import service as funds
from feecenter.invoices import invoiceable, rules, service, titles
from feecenter.invoices.tables import (invoice_applications, invoice_emails, invoice_lines,
                                       invoice_settings, invoice_titles, invoices)
from feecenter.orders import service as orders
from feecenter.settlement.tables import bill_lines
from tests.helpers import OPS, add_gift, load_sample_catalog, new_account, row_counts
from tests.invoice_seed import (COMPANY_A, CVM_MONTH, SPECIAL, USCC_A, USCC_B, apply,
                                cash_purchase, enterprise, enterprise_title, order_row, personal,
                                personal_title)

SSL_YEAR = 3960_00  # ssl OV.single, 12 months (software, cn-software)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


# ---------------------------------------------------------------- rules (pure)

@pytest.mark.spec("INV-4")
@pytest.mark.parametrize("amount, rate, net, tax", [
    (1_060_00, 600, 1_000_00, 60_00),     # the worked example at 6 %
    (1_130_00, 1300, 1_000_00, 130_00),   # the worked example at 13 %
    (100_00, 600, 94_34, 5_66),           # 566.04 fen of tax -> 566
    (100_00, 1300, 88_50, 11_50),         # 1150.44 -> 1150
    (178_00, 600, 167_92, 10_08),         # 1007.55 -> 1008 (half-up, not down)
    (3960_00, 1300, 3504_42, 455_58),     # 45557.52 -> 45558
    (1, 600, 1, 0),                       # 0.057 -> 0
    (9, 600, 8, 1),                       # 0.509 -> 1
    (-1_060_00, 600, -1_000_00, -60_00),  # a red line: the negative of its blue one
    (-178_00, 600, -167_92, -10_08),
])
def test_tax_split_to_the_fen(amount, rate, net, tax):
    assert rules.split_tax(amount, rate) == (net, tax)
    assert net + tax == amount


@pytest.mark.spec("INV-4")
def test_tax_split_rounds_an_exact_half_up_once():
    # 6 % and 13 % never give an exact half; a 100 % rate shows the tie rule
    assert rules.split_tax(1, 10_000) == (0, 1)
    assert rules.split_tax(3, 10_000) == (1, 2)
    assert rules.split_tax(-1, 10_000) == (0, -1)
    with pytest.raises(TypeError):
        rules.split_tax(1.5, 600)


@pytest.mark.spec("INV-4")
def test_allocation_fills_buckets_in_entity_then_category_order():
    available = {("cn-software", "software"): 500, ("cn-cloud", "software"): 300,
                 ("cn-cloud", "cloud_service"): 200}
    takes = rules.allocate(600, available)
    assert [(t.entity, t.tax_category, t.amount) for t in takes] == [
        ("cn-cloud", "cloud_service", 200), ("cn-cloud", "software", 300),
        ("cn-software", "software", 100)]
    invoices_made = rules.invoices_of(takes)
    assert [(i["entity"], i["amount"], len(i["lines"])) for i in invoices_made] == [
        ("cn-cloud", 500, 2), ("cn-software", 100, 1)]
    cloud = invoices_made[0]
    assert cloud["tax_amount"] == sum(line["tax_amount"] for line in cloud["lines"])
    assert cloud["lines"][0]["item_name"] == "信息技术服务*云服务费"
    assert cloud["lines"][0]["tax_code"] == "3040205"
    assert cloud["lines"][1]["tax_code"] == "10603010101"
    with pytest.raises(ValueError):
        rules.allocate(1001, available)


@pytest.mark.spec("INV-5", "INV-8")
def test_numbers_codes_and_check_codes_have_their_formats():
    assert rules.entity_area("示例云计算（北京）有限责任公司") == "11"
    assert rules.entity_area("示例软件（深圳）有限公司") == "44"
    assert rules.entity_area("Example Ltd.") == "99"
    number = rules.invoice_number(2026, "11", 7, 42)
    assert number == "26111007000000000042" and len(number) == 20
    assert rules.invoice_code(2026, "44", 2, "special") == "442600212000"
    code = rules.check_code("key-1", number)
    assert len(code) == 20 and code.isdigit()
    assert code == rules.check_code("key-1", number)
    assert code != rules.check_code("key-2", number)
    assert code != rules.check_code("key-1", rules.invoice_number(2026, "11", 7, 43))


# ---------------------------------------------------------------- titles (INV-3, INV-2)

@pytest.mark.spec("INV-3", "INV-2")
def test_enterprise_title_equals_the_verified_company(shop):
    uin = enterprise(shop)
    title = enterprise_title(shop, uin, special=False)
    assert (title["title_kind"], title["title"], title["tax_id"]) == ("enterprise", COMPANY_A,
                                                                      USCC_A)
    assert title["special_ready"] is False
    title = enterprise_title(shop, uin)
    assert title["special_ready"] is True and title["bank_account"] == SPECIAL["bank_account"]
    with shop.engine.connect() as conn:
        assert titles.get_title(conn, SYSTEM, uin)["special_ready"] is True


def _refused(rt, uin, fields) -> InvalidInput:
    before = row_counts(rt, invoice_titles)
    with pytest.raises(InvalidInput) as caught, transaction(rt.engine) as conn:
        titles.set_title(conn, rt.clock, SYSTEM, uin, fields)
    assert row_counts(rt, invoice_titles) == before
    assert caught.value.message_zh and caught.value.message_en
    return caught.value


@pytest.mark.spec("INV-3", "INV-2")
def test_titles_not_equal_to_the_verified_entity_are_refused(shop):
    company = enterprise(shop)
    base = {"title_kind": "enterprise", "title": COMPANY_A, "tax_id": USCC_A}
    assert _refused(shop, company, {**base, "title": "示例乙公司"}).field == "title"  # A for B
    assert _refused(shop, company, {**base, "tax_id": USCC_B}).field == "tax_id"
    assert _refused(shop, company, {**base, "tax_id": USCC_A[:-1] + "0"}).field == "tax_id"
    assert _refused(shop, company, {"title_kind": "personal", "title": COMPANY_A}
                    ).field == "title_kind"
    assert _refused(shop, company, {**base, "phone": "abc"}).field == "phone"
    assert _refused(shop, company, {**base, "bank_account": "12-34"}).field == "bank_account"
    assert _refused(shop, company, {**base, "address": "x\x00y"}).field == "address"
    assert _refused(shop, company, {**base, "bank": "x"}).field == "bank"
    assert _refused(shop, company, {**base, "color": "red"}).field == "color"
    person = personal(shop)
    assert _refused(shop, person, {**base, "title": "张三"}).field == "title_kind"
    assert _refused(shop, person, {"title_kind": "personal", "title": "李四"}).field == "title"
    assert _refused(shop, person, {"title_kind": "personal", "title": "张三",
                                   "tax_id": USCC_A}).field == "tax_id"
    unverified = new_account(shop, "nobody")
    assert _refused(shop, unverified, {"title_kind": "personal", "title": "x"}
                    ).field == "title_kind"
    assert personal_title(shop, person)["title"] == "张三"


# ---------------------------------------------------------------- emails and settings (INV-5)

@pytest.mark.spec("INV-5")
def test_invoice_emails_default_to_the_contact_email(shop):
    uin = enterprise(shop)
    with shop.engine.connect() as conn:
        assert titles.list_emails(conn, SYSTEM, uin) == [
            {"id": None, "email": "finance@acme.example", "is_default": True, "contact": True}]
    with transaction(shop.engine) as conn:
        first = titles.add_email(conn, shop.clock, SYSTEM, uin, "a@acme.example")
        second = titles.add_email(conn, shop.clock, SYSTEM, uin, "b@acme.example",
                                  make_default=True)
    with shop.engine.connect() as conn:
        listed = titles.list_emails(conn, SYSTEM, uin)
        assert [(e["email"], e["is_default"]) for e in listed] == [
            ("a@acme.example", False), ("b@acme.example", True)]
        assert titles.default_email(conn, uin) == "b@acme.example"
    with transaction(shop.engine) as conn:
        titles.set_default_email(conn, shop.clock, SYSTEM, uin, first["id"])
    with shop.engine.connect() as conn:
        assert titles.default_email(conn, uin) == "a@acme.example"
    with transaction(shop.engine) as conn:
        titles.remove_email(conn, shop.clock, SYSTEM, uin, first["id"])
    with shop.engine.connect() as conn:
        assert titles.default_email(conn, uin) == "finance@acme.example"
        assert [e["contact"] for e in titles.list_emails(conn, SYSTEM, uin)] == [True, False]
    before = row_counts(shop, invoice_emails)
    with pytest.raises(Conflict) as dup, transaction(shop.engine) as conn:
        titles.add_email(conn, shop.clock, SYSTEM, uin, "B@acme.example")
    assert dup.value.field == "email"
    with pytest.raises(InvalidInput) as bad, transaction(shop.engine) as conn:
        titles.add_email(conn, shop.clock, SYSTEM, uin, "not-an-email")
    assert bad.value.field == "email"
    with pytest.raises(NotFound) as gone, transaction(shop.engine) as conn:
        titles.remove_email(conn, shop.clock, SYSTEM, uin, second["id"] + 100)
    assert gone.value.field == "email_id"
    assert row_counts(shop, invoice_emails) == before


@pytest.mark.spec("INV-5", "INV-2")
def test_automatic_issuing_needs_a_title_and_special_needs_its_details(shop):
    uin = enterprise(shop)
    with shop.engine.connect() as conn:
        assert titles.get_settings(conn, SYSTEM, uin) == {"auto_issue": False,
                                                          "auto_issue_kind": "ordinary"}
    for value, kind, field in ((True, "ordinary", "auto_issue"), ("yes", "ordinary", "auto_issue"),
                               (True, "paper", "auto_issue_kind")):
        with pytest.raises(InvalidInput) as caught, transaction(shop.engine) as conn:
            titles.set_settings(conn, shop.clock, SYSTEM, uin, value, kind)
        assert caught.value.field == field
    enterprise_title(shop, uin, special=False)
    with pytest.raises(InvalidInput) as caught, transaction(shop.engine) as conn:
        titles.set_settings(conn, shop.clock, SYSTEM, uin, True, "special")
    assert caught.value.field == "auto_issue_kind"
    assert row_counts(shop, invoice_settings) == (0,)
    enterprise_title(shop, uin)
    with transaction(shop.engine) as conn:
        assert titles.set_settings(conn, shop.clock, SYSTEM, uin, True, "special") == {
            "auto_issue": True, "auto_issue_kind": "special"}


# ---------------------------------------------------------------- invoiceable (INV-1)

def _invoiceable(rt, uin) -> dict:
    with rt.engine.connect() as conn:
        return invoiceable.invoiceable(conn, SYSTEM, uin)


@pytest.mark.spec("INV-1", "INV-4")
def test_cash_consumption_is_invoiceable_gift_and_unspent_cash_are_not(shop):
    uin = enterprise(shop)
    add_gift(shop, uin, 50_00)
    cash_purchase(shop, uin)  # 178.00: 50.00 gift + 128.00 cash; 9,872.00 cash unspent
    found = _invoiceable(shop, uin)
    assert found["amount"] == CVM_MONTH - 50_00 == found["consumed"]
    assert (found["debt"], found["invoiced"], found["transferred_unspent"]) == (0, 0, 0)
    assert found["in_arrears"] is False
    assert [(b["entity"], b["tax_category"], b["rate_bp"], b["available"])
            for b in found["buckets"]] == [("cn-cloud", "cloud_service", 600, 128_00)]


@pytest.mark.spec("INV-1", "INV-4")
def test_paid_but_undelivered_orders_are_not_invoiceable_until_delivered(shop):
    uin = enterprise(shop)
    (ssl,) = cash_purchase(shop, uin, ("ssl", "OV.single", 12, "mainland"))
    assert order_row(shop, uin, ssl)["state"] == "paid"  # manual delivery: a freeze
    assert _invoiceable(shop, uin)["amount"] == 0
    with transaction(shop.engine) as conn:
        orders.deliver(conn, shop.clock, OPS, ssl)
    found = _invoiceable(shop, uin)
    assert found["amount"] == SSL_YEAR
    assert [(b["entity"], b["tax_category"]) for b in found["buckets"]] == [
        ("cn-software", "software")]


@pytest.mark.spec("INV-1")
def test_cash_consumed_reads_roll_ups_and_the_lines_of_days_not_rolled_up(shop):
    uin = enterprise(shop)
    cash_purchase(shop, uin)
    first_day = business_date(shop.clock.now())
    shop.clock.advance(days=1)
    cash_purchase(shop, uin, top_up=0)
    with shop.engine.connect() as conn:
        before = bills.cash_consumed_by_product(conn, uin)
    assert before == {"cvm": 2 * CVM_MONTH}
    refresh_day(shop.engine, shop.clock, first_day)  # day one now from the roll-ups
    with shop.engine.connect() as conn:
        assert bills.cash_consumed_by_product(conn, uin) == before
    refresh_day(shop.engine, shop.clock, business_date(shop.clock.now()))
    with shop.engine.connect() as conn:
        assert bills.cash_consumed_by_product(conn, uin) == before


# ---------------------------------------------------------------- applying (INV-2, INV-4)

@pytest.mark.spec("INV-2", "INV-4")
def test_apply_makes_one_invoice_per_entity_and_one_line_per_category(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    cash_purchase(shop, uin)
    (ssl,) = cash_purchase(shop, uin, ("ssl", "OV.single", 12, "mainland"), top_up=0)
    with transaction(shop.engine) as conn:
        orders.deliver(conn, shop.clock, OPS, ssl)
    with shop.engine.connect() as conn:
        preview = service.preview(conn, SYSTEM, uin, kind="special", amount=None)
    assert preview["amount"] == CVM_MONTH + SSL_YEAR
    made = apply(shop, uin, kind="special")
    assert [(i["entity"], i["amount"], i["tax_amount"]) for i in made["invoices"]] == [
        (i["entity"], i["amount"], i["tax_amount"]) for i in preview["invoices"]]
    by_entity = {i["entity"]: i for i in made["invoices"]}
    cloud, soft = by_entity["cn-cloud"], by_entity["cn-software"]
    assert (cloud["amount"], cloud["net_amount"], cloud["tax_amount"]) == (178_00, 167_92, 10_08)
    assert (soft["amount"], soft["net_amount"], soft["tax_amount"]) == (3960_00, 3504_42, 455_58)
    assert soft["lines"] == [{"tax_category": "software", "item_name": "软件*软件产品销售",
                              "tax_code": "10603010101", "rate_bp": 1300, "amount": 3960_00,
                              "net_amount": 3504_42, "tax_amount": 455_58}]
    assert cloud["entity_name"] == "示例云计算（北京）有限责任公司"
    assert (cloud["state"], cloud["kind"], cloud["title"], cloud["tax_id"]) == (
        "applied", "special", COMPANY_A, USCC_A)
    assert cloud["email"] == "finance@acme.example" and cloud["flagged"] is False
    assert cloud["invoice_number"] is None
    found = _invoiceable(shop, uin)
    assert (found["amount"], found["invoiced"]) == (0, CVM_MONTH + SSL_YEAR)


@pytest.mark.spec("INV-1", "INV-2")
def test_apply_part_of_the_amount_and_refusals_write_nothing(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin, special=False)
    cash_purchase(shop, uin)

    def refused(error=InvalidInput, **kw) -> str:
        before = row_counts(shop, invoice_applications, invoices, invoice_lines)
        with pytest.raises(error) as caught:
            apply(shop, uin, **{"key": "bad", **kw})
        assert row_counts(shop, invoice_applications, invoices, invoice_lines) == before
        return caught.value.field

    assert refused(amount="178.01") == "amount"
    assert refused(amount="0") == "amount"
    assert refused(amount="1.001") == "amount"
    assert refused(kind="special") == "kind"  # details missing
    assert refused(kind="paper") == "kind"
    assert refused(key="has space") == "request_key"
    assert refused(email="nope") == "email"
    made = apply(shop, uin, amount="100.00", email="other@acme.example")
    assert [i["amount"] for i in made["invoices"]] == [100_00]
    assert made["invoices"][0]["email"] == "other@acme.example"
    assert _invoiceable(shop, uin)["amount"] == 78_00
    assert refused(amount="78.01") == "amount"
    apply(shop, uin, key="k2")
    assert refused() == "amount"  # nothing left


@pytest.mark.spec("INV-2", "INV-3")
def test_personal_accounts_get_ordinary_invoices_only(shop):
    uin = personal(shop)
    cash_purchase(shop, uin)
    with pytest.raises(InvalidInput) as caught:
        apply(shop, uin)
    assert caught.value.field == "title"
    personal_title(shop, uin)
    with pytest.raises(InvalidInput) as caught:
        apply(shop, uin, kind="special")
    assert caught.value.field == "kind"
    made = apply(shop, uin)
    assert (made["invoices"][0]["title_kind"], made["invoices"][0]["title"],
            made["invoices"][0]["tax_id"]) == ("personal", "张三", None)


@pytest.mark.spec("INV-1", "INV-2")
def test_apply_is_refused_while_the_account_is_in_arrears(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    cash_purchase(shop, uin, top_up=CVM_MONTH)
    with transaction(shop.engine) as conn:
        funds.spend(conn, shop.clock, uin, 5_00, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, shop.clock, "revenue"))
    assert _invoiceable(shop, uin)["in_arrears"] is True
    with pytest.raises(AccountInArrears) as caught:
        apply(shop, uin)
    assert caught.value.field == "uin"
    with shop.engine.connect() as conn, pytest.raises(AccountInArrears):
        service.preview(conn, SYSTEM, uin, kind="ordinary", amount=None)


@pytest.mark.spec("INV-2")
def test_apply_is_idempotent_per_request_key(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    cash_purchase(shop, uin)
    first = apply(shop, uin, amount="10.00", key="same")
    assert apply(shop, uin, amount="10.00", key="same") == first
    assert apply(shop, uin, amount=None, key="same") == first
    with pytest.raises(IdempotencyConflict) as caught:
        apply(shop, uin, amount="11.00", key="same")
    assert caught.value.field == "request_key"
    assert row_counts(shop, invoice_applications, invoices) == (1, 1)


@pytest.mark.spec("INV-2")
def test_invoices_are_read_by_their_account_with_finance_only(shop):
    uin = enterprise(shop)
    other = enterprise(shop, "other", "示例乙公司", USCC_B, None)
    enterprise_title(shop, uin)
    cash_purchase(shop, uin)
    (made,) = apply(shop, uin)["invoices"]
    with shop.engine.connect() as conn:
        listed = service.list_invoices(conn, SYSTEM, uin)
        assert listed["total"] == 1 and listed["items"][0] == made
        assert service.get_invoice(conn, SYSTEM, uin, str(made["id"])) == made
        with pytest.raises(NotFound):
            service.get_invoice(conn, SYSTEM, other, made["id"])
        reader = Actor(kind="user", name="r", uin=uin, user_id=99, role="readonly")
        with pytest.raises(PermissionDenied):
            service.list_invoices(conn, reader, uin)
        stranger = Actor(kind="user", name="s", uin=other, user_id=98, role="owner")
        with pytest.raises(PermissionDenied):
            service.get_invoice(conn, stranger, uin, made["id"])
        with pytest.raises(PermissionDenied):
            service.ops_invoices(conn, shop.clock, stranger)
        ops = service.ops_invoices(conn, shop.clock, OPS, state="applied")
        assert ops["total"] == 1
        assert service.ops_invoices(conn, shop.clock, OPS, flagged=True)["total"] == 0
        with pytest.raises(InvalidInput) as caught:
            service.ops_invoices(conn, shop.clock, OPS, state="lost")
        assert caught.value.field == "state"
    shop.clock.advance(minutes=31)
    with shop.engine.connect() as conn:
        late = service.ops_invoices(conn, shop.clock, OPS, flagged=True)
    assert late["total"] == 1 and late["items"][0]["flagged"] is True


# ---------------------------------------------------------------- invoice debt (INV-7)

@pytest.mark.spec("INV-7", "INV-1")
def test_refunding_invoiced_consumption_leaves_invoice_debt(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    (order_id,) = cash_purchase(shop, uin, top_up=CVM_MONTH)
    apply(shop, uin)
    shop.clock.advance(days=1)  # inside the no-reason window: all of it comes back
    resource_id = order_row(shop, uin, order_id)["resource_id"]
    with transaction(shop.engine) as conn:
        refund_id = orders.refund_resource(conn, shop.clock, SYSTEM, uin, resource_id,
                                           key="refund")
    refunded_cash = order_row(shop, uin, refund_id)["refunded_cash"]
    assert refunded_cash == CVM_MONTH
    found = _invoiceable(shop, uin)
    assert found["debt"] == CVM_MONTH - (CVM_MONTH - refunded_cash) == refunded_cash
    assert (found["amount"], found["consumed"], found["invoiced"]) == (0, 0, CVM_MONTH)
    with shop.engine.connect() as conn:
        assert invoiceable.invoice_debt(conn, uin) == refunded_cash
    with pytest.raises(InvalidInput):
        apply(shop, uin, key="again")
    cash_purchase(shop, uin, top_up=CVM_MONTH)  # later consumption clears it (INV-7)
    with shop.engine.connect() as conn:
        assert invoiceable.invoice_debt(conn, uin) == 0
    assert _invoiceable(shop, uin)["amount"] == 0


@pytest.mark.spec("INV-7")
def test_a_partial_refund_leaves_debt_of_the_refunded_cash_only(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    (order_id,) = cash_purchase(shop, uin, ("cvm", "S5.MEDIUM4", 4, "ap-guangzhou"),
                                top_up=4 * CVM_MONTH)
    apply(shop, uin, amount="300.00")
    placed = order_row(shop, uin, order_id)
    shop.clock.advance(seconds=(placed["service_end"] - placed["service_start"]).total_seconds() / 2)
    with transaction(shop.engine) as conn:
        refund_id = orders.refund_resource(conn, shop.clock, SYSTEM, uin, placed["resource_id"],
                                           key="half")
    refunded = order_row(shop, uin, refund_id)["refunded_cash"]
    consumed = placed["amount"] - refunded
    expected_debt = max(300_00 - consumed, 0)
    with shop.engine.connect() as conn:
        assert invoiceable.invoice_debt(conn, uin) == expected_debt
    assert _invoiceable(shop, uin)["amount"] == max(consumed - 300_00, 0)


@pytest.mark.spec("INV-1")
def test_unknown_invoices_and_bad_ids(shop):
    uin = enterprise(shop)
    with shop.engine.connect() as conn:
        with pytest.raises(NotFound):
            service.get_invoice(conn, SYSTEM, uin, 12345)
        with pytest.raises(InvalidInput) as caught:
            service.get_invoice(conn, SYSTEM, uin, "12a")
        assert caught.value.field == "invoice_id"
        with pytest.raises(InvalidInput) as caught:
            service.list_invoices(conn, SYSTEM, uin, limit=0)
        assert caught.value.field == "limit"
        assert conn.execute(select(func.count()).select_from(invoices)).scalar() == 0


@pytest.mark.spec("INV-1", "INV-2")
def test_an_unknown_account_is_not_found_and_nothing_is_written(shop):
    missing = enterprise(shop) + 999
    tables = (invoice_settings, invoice_emails, invoice_applications)
    with shop.engine.connect() as conn:
        for read in (lambda: invoiceable.invoiceable(conn, SYSTEM, missing),
                     lambda: titles.get_title(conn, SYSTEM, missing),
                     lambda: service.preview(conn, SYSTEM, missing, kind="ordinary", amount=None)):
            with pytest.raises(NotFound) as caught:
                read()
            assert caught.value.field == "uin"
    for write in (lambda conn: titles.add_email(conn, shop.clock, SYSTEM, missing, "a@b.example"),
                  lambda conn: service.apply(conn, shop.clock, SYSTEM, missing, kind="ordinary",
                                             amount=None, email=None, request_key="k")):
        with pytest.raises(NotFound), transaction(shop.engine) as conn:
            write(conn)
    assert row_counts(shop, *tables) == (0, 0, 0)


def _postpaid_line(uin: int, when, *, deducted, voucher=0, gift=0, cash=0, credit=0, arrears=0):
    assert deducted == voucher + gift + cash + credit + arrears  # as settlement splits it
    return {"uin": uin, "resource_id": f"ins-{uin}-{deducted}", "product_code": "cdn",
            "region": "ap-guangzhou", "billing_item": "traffic", "project_id": 0,
            "project_name": "默认项目", "cycle": "day", "period_key": f"{when:%Y%m%d}",
            "period_start": db_time(when), "period_end": db_time(when + timedelta(days=1)),
            "quantity": 1_000_000, "price_kind": "list", "unit_price": 1, "list_amount": 1,
            "discount_bp": 10000, "discounted_amount": deducted * 1_000_000,
            "deducted": deducted, "rounding_diff": 0, "voucher_paid": voucher,
            "cash_paid": cash, "gift_paid": gift, "credit_paid": credit, "arrears": arrears,
            "deducted_at": db_time(when), "kind": "charge", "sequence": 0}


@pytest.mark.spec("INV-1")
def test_postpaid_cash_credit_and_repaid_arrears_count_vouchers_and_gift_do_not(shop):
    uin = enterprise(shop)
    when = shop.clock.now()
    with transaction(shop.engine) as conn:
        conn.execute(insert(bill_lines), [
            _postpaid_line(uin, when, deducted=100_00, voucher=10_00, gift=20_00, cash=70_00),
            _postpaid_line(uin, when, deducted=50_00, credit=30_00, arrears=20_00)])
    with shop.engine.connect() as conn:
        assert bills.cash_consumed_by_product(conn, uin) == {"cdn": 70_00 + 30_00 + 20_00}
    refresh_day(shop.engine, shop.clock, business_date(when))
    found = _invoiceable(shop, uin)
    assert (found["consumed"], found["amount"]) == (120_00, 120_00)
    assert [(b["entity"], b["tax_category"]) for b in found["buckets"]] == [
        ("cn-cloud", "cloud_service")]


@pytest.mark.spec("INV-7")
def test_a_downgrade_of_invoiced_consumption_leaves_invoice_debt(shop):
    uin = enterprise(shop)
    enterprise_title(shop, uin)
    (order_id,) = cash_purchase(shop, uin, ("cvm", "S5.LARGE8", 12, "ap-guangzhou"))
    placed = order_row(shop, uin, order_id)
    apply(shop, uin)
    shop.clock.advance(days=30)
    with transaction(shop.engine) as conn:
        down_id = orders.downgrade(conn, shop.clock, SYSTEM, uin, placed["resource_id"],
                                   "S5.MEDIUM4", key="down")
    down = order_row(shop, uin, down_id)
    assert down["amount"] < 0 and down["refunded_cash"] == -down["amount"]
    with shop.engine.connect() as conn:
        assert invoiceable.invoice_debt(conn, uin) == down["refunded_cash"]
