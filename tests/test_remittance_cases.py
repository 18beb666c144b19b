"""Remittance cases through service requests, on SQLite and PostgreSQL (RMT-9, RMT-10,
RMT-11, SRV-1, SRV-2): refunds to the payer (suspense -> bank, arrival due in 15
working days), wrong-account claims (the other record refunded, the claimant's
credited, cash taken back only when it is still there), legacy forms credited from
one transfer never beyond it, corrections of a mistyped form, bad input naming the
field and writing nothing, the audit under the operator's name, and reconcile clean."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import operator
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import (Conflict, InvalidInput, NotFound,
                              PermissionDenied)
from feecenter.notifications.tables import in_site_messages
from feecenter.remittances import cases
from feecenter.remittances import service as remittances
from feecenter.remittances.tables import (remittance_claims, remittance_legacy_transfers,
                                          remittance_refunds)
from feecenter.remittances.tables import remittances as remittances_table
from feecenter.service_requests import service as srv
from feecenter.service_requests.tables import service_request_events, service_requests
from tests.helpers import OPS, assert_reconciled, balance, new_account, row_counts
from tests.test_remittances import (P1, SETTINGS, act, company, do_import, entries, line,
                                    owner, platform_balance, record)

ALICE = operator("alice")
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
STRANGER = "上海代付有限公司"
ENTITY_A = "甲方科技有限公司"
ENTITY_B = "乙方贸易有限公司"
USCC = "91110108551385082Q"


# ---------------------------------------------------------------- helpers

def file(rt, uin, kind, fields, actor=None, uploads=None):
    """File a request; ``uploads`` None: one PDF receipt."""
    files = (srv.Upload("receipt.pdf", PDF),) if uploads is None else uploads
    actor = actor or owner(rt, uin)
    with transaction(rt.engine) as conn:
        return srv.file_request(conn, rt.clock, actor, uin, kind, fields, files)


def take_and_resolve(rt, request_id, actor=ALICE):
    with transaction(rt.engine) as conn:
        srv.take(conn, rt.clock, actor, request_id)
    with transaction(rt.engine) as conn:
        return srv.resolve(conn, rt.clock, actor, request_id)


def resolve(rt, request_id, actor=ALICE):
    with transaction(rt.engine) as conn:
        return srv.resolve(conn, rt.clock, actor, request_id)


def take(rt, request_id, actor=ALICE):
    with transaction(rt.engine) as conn:
        return srv.take(conn, rt.clock, actor, request_id)


def request_state(rt, request_id) -> str:
    with rt.engine.connect() as conn:
        return conn.execute(select(service_requests.c.state).where(
            service_requests.c.id == request_id)).scalar_one()


def audits(rt, action: str) -> list[tuple]:
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(audit_log.c.actor, audit_log.c.uin)
                                               .where(audit_log.c.action == action)
                                               .order_by(audit_log.c.id))]


def notices(rt, uin: int) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(in_site_messages).where(
            in_site_messages.c.uin == uin,
            in_site_messages.c.template == "service_request_update")).scalar_one()


def money(rt) -> tuple[int, int]:
    return platform_balance(rt, "bank"), platform_balance(rt, "remittance_suspense")


def pending_company(rt, name="acme", amount=1000_00, ref="W1"):
    """A verified company with one remittance of a stranger pending signature."""
    uin, number, _ = company(rt, name)
    do_import(rt, [line(ref, number, amount, STRANGER)], digest=f"d-{ref}")
    return uin, record(rt, ref)


def refund_fields(rec, **over) -> dict:
    fields = {"remittance_id": rec["id"], "verified_name": "北京示例科技有限公司",
              "holder": STRANGER, "bank_account": "6222020200112233", "bank": "中国银行",
              "branch": "北京分行", "location": "北京市", "remitted_on": "2026-03-02",
              "address": "北京市海淀区中关村大街 1 号", "phone": "13800138000",
              "reason": "cannot_sign", "detail": "付款方无法签署协议",
              "amount": "1000.00", "invoiced": False}
    fields.update(over)
    return {k: v for k, v in fields.items() if v is not None}


# ---------------------------------------------------------------- RMT-11 refunds

@pytest.mark.spec("RMT-11", "SRV-1", "SRV-2")
def test_a_pending_remittance_is_refunded_once_due_in_15_working_days(rt):
    uin, rec = pending_company(rt)
    bank0, suspense0 = money(rt)
    assert suspense0 == 1000_00
    request = file(rt, uin, "remittance_refund", refund_fields(rec))
    assert request["due_at"] == datetime(2026, 3, 23, 16, 0)  # 15 working days, end of day
    done = take_and_resolve(rt, request["id"])
    assert done["state"] == "resolved"
    assert done["result"]["arrives_by"] == "2026-03-23" and done["result"]["amount"] == "1000.00"
    after = record(rt, "W1")
    assert after["state"] == "refunded" and "无法签署" in after["reason"]
    assert money(rt) == (bank0 + 1000_00, suspense0 - 1000_00)
    assert balance(rt, uin).cash == 0 and entries(rt, uin) == []  # never the customer's
    with rt.engine.connect() as conn:
        refund = conn.execute(select(remittance_refunds)).mappings().one()
    assert (refund["remittance_id"], refund["uin"], refund["request_id"]) == (
        rec["id"], uin, request["id"])
    assert refund["arrives_by"] == date(2026, 3, 23) and refund["confirmed_by"] == "operator:alice"
    assert '"bank_account": "6222020200112233"' in refund["payout"]
    assert audits(rt, "remittance_refund") == [("operator:alice", uin)]
    assert audits(rt, "service_request.resolve") == [("operator:alice", uin)]
    assert notices(rt, uin) == 3  # submitted, taken, resolved
    with pytest.raises(Conflict):
        act(rt, cases.refund, OPS, rec["id"], uin=uin, payout={"holder": "x",
            "bank_account": "62220202001122", "bank": "b"}, reason="again")
    assert money(rt) == (bank0 + 1000_00, suspense0 - 1000_00)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-11", "SRV-1")
def test_a_refund_is_filed_once_per_record_and_never_for_credited_money(rt):
    uin, rec = pending_company(rt)
    file(rt, uin, "remittance_refund", refund_fields(rec))
    with pytest.raises(Conflict):
        file(rt, uin, "remittance_refund", refund_fields(rec))
    _, number, _ = company(rt, "paid-co")
    do_import(rt, [line("C1", number, 500_00)], digest="c1")  # credited (the entity pays)
    credited = record(rt, "C1")
    with pytest.raises(InvalidInput) as refused:
        file(rt, credited["uin"], "remittance_refund",
             refund_fields(credited, amount="500.00"))
    assert refused.value.field == "fields.remittance_id" and "已充值" in refused.value.message_zh


@pytest.mark.spec("RMT-11", "SRV-1")
@pytest.mark.parametrize(("over", "field", "zh", "en"), [
    ({"remittance_id": 99_999}, "fields.remittance_id", "汇款记录编号", "remittance record"),
    ({"remittance_id": "abc"}, "fields.remittance_id", "汇款记录编号", "remittance record"),
    ({"verified_name": "别的公司"}, "fields.verified_name", "实名认证名称", "verified name"),
    ({"holder": None}, "fields.holder", "收款户名", "account holder"),
    ({"bank_account": "6222-02"}, "fields.bank_account", "收款银行账号", "bank account"),
    ({"bank": ""}, "fields.bank", "开户银行", "bank"),
    ({"branch": None}, "fields.branch", "开户支行", "branch"),
    ({"location": "x" * 201}, "fields.location", "开户行所在地", "bank location"),
    ({"remitted_on": "2026-02-30"}, "fields.remitted_on", "汇款时间", "remittance date"),
    ({"address": None}, "fields.address", "联系地址", "contact address"),
    ({"phone": "12345"}, "fields.phone", "联系电话", "contact phone"),
    ({"reason": "because"}, "fields.reason", "退款原因", "reason"),
    ({"amount": "999.99"}, "fields.amount", "退款金额", "amount"),
    ({"amount": "1.234"}, "fields.amount", "退款金额", "amount"),
    ({"invoiced": "no"}, "fields.invoiced", "是否已开票", "invoiced"),
    ({"invoiced": None}, "fields.invoiced", "是否已开票", "invoiced"),
    ({"detail": "x" * 501}, "fields.detail", "说明", "details"),
])
def test_bad_refund_input_names_the_field_and_writes_nothing(rt, over, field, zh, en):
    uin, rec = pending_company(rt)
    before = row_counts(rt, service_requests, service_request_events)
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "remittance_refund", refund_fields(rec, **over))
    assert refused.value.field == field
    assert refused.value.message_zh.startswith(zh) and refused.value.message_en.startswith(en)
    assert row_counts(rt, service_requests, service_request_events) == before


@pytest.mark.spec("RMT-11", "SRV-1")
def test_an_individual_gives_a_valid_id_number_and_the_receipt_is_required(rt):
    uin = new_account(rt, "zhang", personal_name="张三")
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin, SETTINGS)[
            "accounts"][0]["number"]
    do_import(rt, [line("I1", number, 200_00, "李四")], digest="i1")
    rec = record(rt, "I1")
    fields = refund_fields(rec, verified_name="张三", amount="200.00")
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "remittance_refund", fields)
    assert refused.value.field == "fields.id_number"
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "remittance_refund", {**fields, "id_number": "110101199003071234"})
    assert refused.value.field == "fields.id_number"  # a bad check digit
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "remittance_refund", {**fields, "id_number": "11010119900307387X"},
             uploads=())
    assert refused.value.field == "attachment"
    made = file(rt, uin, "remittance_refund", {**fields, "id_number": "11010119900307387X"})
    assert made["fields"]["id_number"] == "11010119900307387X"


@pytest.mark.spec("RMT-11")
def test_unassigned_money_is_refunded_by_an_operator_on_the_payers_behalf(rt):
    do_import(rt, [line("U1", P1 + "0000000001", 300_00, STRANGER)], digest="u1")
    rec = record(rt, "U1")
    assert rec["state"] == "unassigned"
    payout = {"holder": STRANGER, "bank_account": "6222020200112233", "bank": "中国银行"}
    uin = new_account(rt, "someone")
    with pytest.raises(PermissionDenied):
        act(rt, cases.refund_unassigned, owner(rt, uin), rec["id"], payout=payout, reason="错号")
    with pytest.raises(InvalidInput) as refused:
        act(rt, cases.refund_unassigned, ALICE, rec["id"], payout={**payout, "bank": " "},
            reason="错号")
    assert refused.value.field == "bank"
    bank0, suspense0 = money(rt)
    result = act(rt, cases.refund_unassigned, ALICE, rec["id"], payout=payout,
                 reason="识别码错误 / wrong code")
    assert result["arrives_by"] == "2026-03-23" and record(rt, "U1")["state"] == "refunded"
    assert money(rt) == (bank0 + 300_00, suspense0 - 300_00)
    assert audits(rt, "remittance_refund") == [("operator:alice", None)]
    with pytest.raises(Conflict):
        act(rt, cases.refund_unassigned, ALICE, rec["id"], payout=payout, reason="again")
    assert_reconciled(rt)


@pytest.mark.spec("RMT-11", "RMT-7")
def test_a_foreign_currency_remittance_is_refunded_without_a_ledger_leg(rt):
    uin, number, _ = company(rt)
    do_import(rt, [line("F1", number, 100_00, currency="USD")], digest="f1")
    rec = record(rt, "F1")
    before = money(rt)
    request = file(rt, uin, "remittance_refund", refund_fields(
        rec, reason="foreign_currency", amount="100.00", holder="北京示例科技有限公司"))
    done = take_and_resolve(rt, request["id"])
    assert done["result"]["currency"] == "USD" and done["result"]["txn_id"] is None
    assert record(rt, "F1")["state"] == "refunded" and money(rt) == before
    assert_reconciled(rt)


# ---------------------------------------------------------------- RMT-9 wrong-account claims

def two_companies(rt):
    """A claimant (entity A) and a wrong account (entity B) with their first numbers;
    ``claim_fields`` is then told the claimant's number (``number_of``)."""
    a = new_account(rt, "claimant", enterprise_name=ENTITY_A, uscc=USCC)
    b = new_account(rt, "wrong-co", enterprise_name=ENTITY_B, uscc=USCC)
    return a, b, number_of(rt, b)


def number_of(rt, uin: int) -> str:
    with transaction(rt.engine) as conn:
        return remittances.receiving_details(conn, rt.clock, OPS, uin, SETTINGS)[
            "accounts"][0]["number"]


def original(rt, ref: str) -> dict:
    """The record the statement made (a claim adds a ``claim:…`` copy of it)."""
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(remittances_table).where(
            remittances_table.c.bank_reference == ref,
            remittances_table.c.receiving_account == P1)).mappings().one())


def claim_fields(ref="X1", amount="800.00", **over) -> dict:
    return {"bank_reference": ref, "amount": amount, "remitted_on": "2026-03-02",
            "payer_name": ENTITY_A, "payer_account": "6222020200112233",
            "corrected_number": "7559123456000010000000000", "reason": "付款时填错了收款账号", **over}


@pytest.mark.spec("RMT-9", "SRV-1", "SRV-2")
def test_a_claim_of_money_not_yet_credited_moves_it_to_the_claimant(rt):
    a, b, number_b = two_companies(rt)
    do_import(rt, [line("X1", number_b, 800_00, ENTITY_A)], digest="x1")
    assert original(rt, "X1")["state"] == "pending_signature"
    request = file(rt, a, "wrong_account_claim", claim_fields(corrected_number=number_of(rt, a)))
    done = take_and_resolve(rt, request["id"])
    with rt.engine.connect() as conn:
        rows = conn.execute(select(remittances_table).where(
            remittances_table.c.bank_reference == "X1").order_by(remittances_table.c.id)
            ).mappings().all()
        claim = conn.execute(select(remittance_claims)).mappings().one()
    assert [(r["uin"], r["state"]) for r in rows] == [(b, "refunded"), (a, "credited")]
    assert rows[1]["receiving_account"] == f"claim:{request['id']}"
    assert (claim["from_uin"], claim["to_uin"]) == (b, a)
    assert done["result"]["claim_remittance_id"] == rows[1]["id"]
    assert balance(rt, a).cash == 800_00 and balance(rt, b).cash == 0
    assert entries(rt, a) == [("recharge", 800_00, "bank", "bank-enterprice")]
    assert entries(rt, b) == []
    assert audits(rt, "remittance_claim") == [("operator:alice", a)]
    with rt.engine.connect() as conn:  # the wrong account still sees its record, refunded
        listed = remittances.list_remittances(conn, owner(rt, b), b)["items"]
    assert [(r["bank_reference"], r["state"]) for r in listed] == [("X1", "refunded")]
    assert do_import(rt, [line("X1", number_b, 800_00, ENTITY_A)], digest="x1").duplicates == 1
    assert_reconciled(rt)


@pytest.mark.spec("RMT-9")
def test_money_already_credited_to_the_wrong_account_cannot_be_claimed(rt):
    """SPEC moves it by group fund allocation or the receiving account's withdrawal,
    neither of which exists yet: the claim is refused and nothing moves."""
    a, b, number_b = two_companies(rt)
    act(rt, remittances.register_payer, owner(rt, b), b, ENTITY_A)  # B signed for A by mistake
    do_import(rt, [line("X1", number_b, 800_00, ENTITY_A)], digest="x1")
    assert original(rt, "X1")["state"] == "credited" and balance(rt, b).cash == 800_00
    request = file(rt, a, "wrong_account_claim", claim_fields(corrected_number=number_of(rt, a)))
    take(rt, request["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, request["id"])
    assert "集团资金调拨或提现" in refused.value.message_zh
    assert "group fund allocation" in refused.value.message_en
    assert request_state(rt, request["id"]) == "processing"  # rolled back, nothing moved
    assert original(rt, "X1")["state"] == "credited"
    assert (balance(rt, a).cash, balance(rt, b).cash) == (0, 800_00)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-9")
@pytest.mark.parametrize("field", ["payer_account", "remitted_on", "corrected_number"])
def test_a_claim_whose_facts_are_not_the_banks_record_is_refused(rt, field):
    """A payer name anyone can register is not enough: the payer's account, the date
    and the claimant's own receiving number must be right."""
    a, b, number_b = two_companies(rt)
    do_import(rt, [line("X1", number_b, 800_00, ENTITY_A)], digest="x1")
    wrong = {"payer_account": "6222020200999999", "remitted_on": "2026-03-03",
             "corrected_number": number_b}[field]
    fields = claim_fields(corrected_number=number_of(rt, a)) | {field: wrong}
    request = file(rt, a, "wrong_account_claim", fields)
    take(rt, request["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, request["id"])
    assert refused.value.field == field
    assert original(rt, "X1")["state"] == "pending_signature" and balance(rt, a).cash == 0
    assert_reconciled(rt)


@pytest.mark.spec("RMT-9", "RMT-4")
def test_a_claim_needs_the_payer_to_be_the_claimants_and_one_matching_record(rt):
    a, b, number_b = two_companies(rt)
    do_import(rt, [line("X1", number_b, 800_00, STRANGER)], digest="x1")
    request = file(rt, a, "wrong_account_claim", claim_fields(corrected_number=number_of(rt, a)))
    take(rt, request["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, request["id"])
    assert refused.value.field == "payer_name"
    act(rt, remittances.register_payer, owner(rt, a), a, STRANGER)
    other = file(rt, a, "wrong_account_claim",
                 claim_fields(amount="800.01", corrected_number=number_of(rt, a)))
    take(rt, other["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, other["id"])
    assert refused.value.field == "bank_reference"
    resolve(rt, request["id"])  # the payer is registered now
    assert original(rt, "X1")["state"] == "refunded" and balance(rt, a).cash == 800_00


@pytest.mark.spec("RMT-9", "SRV-1")
@pytest.mark.parametrize(("over", "field", "zh"), [
    ({"bank_reference": ""}, "fields.bank_reference", "银行流水号"),
    ({"bank_reference": "x" * 65}, "fields.bank_reference", "银行流水号"),
    ({"amount": "-1"}, "fields.amount", "汇款金额"),
    ({"remitted_on": "02/03/2026"}, "fields.remitted_on", "汇款日期"),
    ({"payer_name": None}, "fields.payer_name", "付款人名称"),
    ({"payer_account": "abc"}, "fields.payer_account", "付款银行账号"),
    ({"corrected_number": "x" * 41}, "fields.corrected_number", "正确的收款账号"),
    ({"reason": ""}, "fields.reason", "原因"),
])
def test_bad_claim_input_names_the_field_and_writes_nothing(rt, over, field, zh):
    a = new_account(rt, "claimant")
    before = row_counts(rt, service_requests, service_request_events)
    fields = {k: v for k, v in claim_fields(**over).items() if v is not None}
    with pytest.raises(InvalidInput) as refused:
        file(rt, a, "wrong_account_claim", fields)
    assert refused.value.field == field and refused.value.message_zh.startswith(zh)
    assert row_counts(rt, service_requests, service_request_events) == before


# ---------------------------------------------------------------- RMT-10 legacy forms

PAYER_C = "丙方实业有限公司"


def legacy_transfer(rt, ref="L1", amount=1000_00, payer=PAYER_C):
    do_import(rt, [line(ref, P1, amount, payer)], digest=f"d-{ref}")  # the bare 15 digits
    return record(rt, ref)


def form_fields(amount="600.00", **over) -> dict:
    fields = {"amount": amount, "payer_name": PAYER_C, "payer_bank": "中国银行北京分行",
              "remitted_on": "2026-03-02", **over}
    return {k: v for k, v in fields.items() if v is not None}


@pytest.mark.spec("RMT-10", "SRV-1", "SRV-2")
def test_forms_of_several_accounts_share_one_transfer_never_beyond_it(rt):
    rec = legacy_transfer(rt)
    assert rec["state"] == "unassigned" and cases.is_legacy_number(rec["payee_account"])
    x, y, z = (new_account(rt, n) for n in ("xco", "yco", "zco"))
    fx = file(rt, x, "legacy_remittance_form", form_fields("600.00"))
    fy = file(rt, y, "legacy_remittance_form", form_fields("400.00"))
    fz = file(rt, z, "legacy_remittance_form", form_fields("0.01"))
    assert fx["due_at"] == datetime(2026, 3, 5, 16, 0)  # 3 working days
    assert take_and_resolve(rt, fx["id"])["result"]["remaining"] == "400.00"
    assert take_and_resolve(rt, fy["id"])["result"]["remaining"] == "0.00"
    take(rt, fz["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, fz["id"])
    assert refused.value.field == "amount" and "超过" in refused.value.message_zh
    assert request_state(rt, fz["id"]) == "processing"
    assert (balance(rt, x).cash, balance(rt, y).cash, balance(rt, z).cash) == (600_00, 400_00, 0)
    assert entries(rt, x) == [("recharge", 600_00, "bank", "offline")]
    assert record(rt, "L1")["state"] == "legacy"
    with rt.engine.connect() as conn:
        view = cases.legacy_transfer(conn, ALICE, rec["id"])
    assert view["remaining"] == 0 and [c["uin"] for c in view["credits"]] == [x, y]
    with pytest.raises(Conflict):  # credited by forms: never assigned or refunded on top
        act(rt, remittances.assign, OPS, rec["id"], z)
    with pytest.raises(Conflict):
        act(rt, cases.refund_unassigned, OPS, rec["id"], payout={
            "holder": PAYER_C, "bank_account": "6222020200112233", "bank": "b"}, reason="x")
    assert platform_balance(rt, "remittance_suspense") == 0
    assert audits(rt, "remittance_legacy_credit") == [("operator:alice", x), ("operator:alice", y)]
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10")
def test_a_form_matching_no_transfer_or_several_is_refused_with_the_reason(rt):
    legacy_transfer(rt, "L1", 500_00)
    legacy_transfer(rt, "L2", 500_00)
    uin = new_account(rt, "xco")
    wrong_day = file(rt, uin, "legacy_remittance_form", form_fields(remitted_on="2026-03-01"))
    take(rt, wrong_day["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, wrong_day["id"])
    assert "可能填写有误" in refused.value.message_zh
    both = file(rt, uin, "legacy_remittance_form", form_fields("100.00"))
    take(rt, both["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, both["id"])
    assert refused.value.field == "bank_reference"
    named = file(rt, uin, "legacy_remittance_form", form_fields("100.00", bank_reference="L2"))
    take_and_resolve(rt, named["id"])
    assert (record(rt, "L1")["state"], record(rt, "L2")["state"]) == ("unassigned", "legacy")
    assert balance(rt, uin).cash == 100_00
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10", "SRV-2")
def test_forms_still_pending_after_3_working_days_are_flagged(rt):
    legacy_transfer(rt)
    uin = new_account(rt, "xco")
    form = file(rt, uin, "legacy_remittance_form", form_fields())
    rt.clock.advance(days=3)  # Thursday 5 March: still due
    with transaction(rt.engine) as conn:
        assert srv.flag_overdue(conn, rt.clock) == 0
    rt.clock.advance(days=1)
    with transaction(rt.engine) as conn:
        assert srv.flag_overdue(conn, rt.clock) == 1
    with rt.engine.connect() as conn:
        flagged = srv.queue(conn, rt.clock, ALICE, kind="legacy_remittance_form", overdue=True)
    assert [r["id"] for r in flagged["items"]] == [form["id"]]


@pytest.mark.spec("RMT-10", "SRV-1")
@pytest.mark.parametrize(("over", "field", "zh"), [
    ({"amount": "abc"}, "fields.amount", "入账金额"),
    ({"amount": "0"}, "fields.amount", "入账金额"),
    ({"payer_name": None}, "fields.payer_name", "付款人名称"),
    ({"payer_bank": "\x00"}, "fields.payer_bank", "付款银行"),
    ({"remitted_on": "2026-13-01"}, "fields.remitted_on", "汇款日期"),
    ({"bank_reference": "r" * 65}, "fields.bank_reference", "银行流水号"),
])
def test_bad_legacy_form_input_names_the_field_and_writes_nothing(rt, over, field, zh):
    uin = new_account(rt, "xco")
    before = row_counts(rt, service_requests, service_request_events)
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "legacy_remittance_form", form_fields(**over))
    assert refused.value.field == field and refused.value.message_zh.startswith(zh)
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "legacy_remittance_form", form_fields(), uploads=())
    assert refused.value.field == "attachment"
    assert row_counts(rt, service_requests, service_request_events) == before


@pytest.mark.spec("RMT-10", "SRV-1", "SRV-2")
def test_a_correction_rejects_the_mistyped_form_and_the_corrected_one_is_credited(rt):
    legacy_transfer(rt)
    uin = new_account(rt, "xco")
    wrong = file(rt, uin, "legacy_remittance_form", form_fields("6000.00"))
    right = file(rt, uin, "legacy_remittance_form", form_fields("600.00"))
    correction = file(rt, uin, "legacy_form_correction", {
        "wrong_request_id": wrong["id"], "corrected_request_id": str(right["id"]),
        "reason": "金额多写了一个零"}, uploads=())
    done = take_and_resolve(rt, correction["id"])
    assert done["result"] == {"rejected_request_id": wrong["id"],
                              "corrected_request_id": right["id"]}
    with rt.engine.connect() as conn:
        rejected = srv.get_request(conn, rt.clock, ALICE, wrong["id"])
    assert rejected["state"] == "rejected" and f"更正申请 {correction['id']}" in rejected["reason"]
    take_and_resolve(rt, right["id"])
    assert balance(rt, uin).cash == 600_00
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10", "SRV-1")
def test_a_correction_must_name_the_accounts_waiting_legacy_forms(rt):
    legacy_transfer(rt)
    uin, other = new_account(rt, "xco"), new_account(rt, "yco")
    mine = file(rt, uin, "legacy_remittance_form", form_fields("100.00"))
    theirs = file(rt, other, "legacy_remittance_form", form_fields("100.00"))
    before = row_counts(rt, service_requests)
    for fields, field in (
            ({"wrong_request_id": theirs["id"], "corrected_request_id": mine["id"]},
             "fields.wrong_request_id"),
            ({"wrong_request_id": mine["id"], "corrected_request_id": mine["id"]},
             "fields.corrected_request_id"),
            ({"wrong_request_id": "x", "corrected_request_id": mine["id"]},
             "fields.wrong_request_id")):
        with pytest.raises(InvalidInput) as refused:
            file(rt, uin, "legacy_form_correction", {**fields, "reason": "r"}, uploads=())
        assert refused.value.field == field
    assert row_counts(rt, service_requests) == before
    take_and_resolve(rt, mine["id"])  # credited: no longer waiting, cannot be corrected
    again = file(rt, uin, "legacy_remittance_form", form_fields("100.00"))
    with pytest.raises(InvalidInput) as refused:
        file(rt, uin, "legacy_form_correction", {
            "wrong_request_id": mine["id"], "corrected_request_id": again["id"],
            "reason": "r"}, uploads=())
    assert refused.value.field == "fields.wrong_request_id"


@pytest.mark.spec("SRV-1")
def test_the_remittance_kinds_are_listed_with_their_due_days():
    kinds = {k["code"]: k for k in srv.list_kinds()}
    assert {code: (kinds[code]["name_zh"], kinds[code]["due_working_days"],
                   kinds[code]["attachments"]["required"]) for code in (
        "remittance_refund", "wrong_account_claim", "legacy_remittance_form",
        "legacy_form_correction")} == {
        "remittance_refund": ("汇款退款", 15, True),
        "wrong_account_claim": ("汇错账号认领", 5, True),
        "legacy_remittance_form": ("旧账号汇款表单", 3, True),
        "legacy_form_correction": ("旧账号汇款表单更正", 3, False)}
    refund_fields_listed = [f["name"] for f in kinds["remittance_refund"]["fields"]]
    assert refund_fields_listed == [
        "remittance_id", "verified_name", "holder", "bank_account", "bank", "branch",
        "location", "remitted_on", "address", "phone", "id_number", "reason", "detail",
        "amount", "invoiced"]


def test_a_customer_cannot_run_the_operators_actions(rt):
    uin, rec = pending_company(rt)
    with pytest.raises(PermissionDenied):
        act(rt, cases.refund, owner(rt, uin), rec["id"], uin=uin, payout={
            "holder": "x", "bank_account": "62220202001122", "bank": "b"}, reason="r")
    with pytest.raises(PermissionDenied):
        act(rt, cases.claim, owner(rt, uin), uin, bank_reference="W1", amount=1, request_id=1,
            evidence={})
    with pytest.raises(NotFound):
        act(rt, cases.refund, OPS, 99_999, uin=uin, payout={
            "holder": "x", "bank_account": "62220202001122", "bank": "b"}, reason="r")
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(
            remittance_legacy_transfers)).scalar() == 0


@pytest.mark.spec("SRV-1")
@pytest.mark.parametrize("value", ["0", "-3", "1.5", "１２", "9" * 20, "9" * 5000, True, 2 ** 63])
def test_a_record_number_field_refuses_anything_but_a_positive_whole_number(value):
    from feecenter.service_requests import rules

    field = rules.Field("ref", "编号", "record", rules.RECORD_ID)
    with pytest.raises(InvalidInput) as refused:
        rules.validate_fields((field,), {"ref": value})
    assert refused.value.field == "fields.ref" and refused.value.message_en.startswith("record")
    assert rules.validate_fields((field,), {"ref": " 0042 "}) == {"ref": 42}


@pytest.mark.spec("RMT-10", "RMT-11")
def test_operators_see_legacy_and_refunded_records_in_their_queues(rt):
    uin, rec = pending_company(rt)
    act(rt, cases.refund, ALICE, rec["id"], uin=uin, payout={
        "holder": STRANGER, "bank_account": "6222020200112233", "bank": "中国银行"}, reason="误汇")
    legacy = legacy_transfer(rt)
    x = new_account(rt, "xco")
    take_and_resolve(rt, file(rt, x, "legacy_remittance_form", form_fields("10.00"))["id"])
    me = owner(rt, uin)
    with rt.engine.connect() as conn:
        refunded = remittances.operator_queue(conn, ALICE, "refunded")["items"]
        legacies = remittances.operator_queue(conn, ALICE, "legacy")["items"]
        with pytest.raises(PermissionDenied):
            remittances.operator_queue(conn, me, "legacy")
        mine = cases.refund_of(conn, me, rec["id"])
    assert [r["id"] for r in refunded] == [rec["id"]]
    assert [r["id"] for r in legacies] == [legacy["id"]]
    assert mine["arrives_by"] == date(2026, 3, 23) and mine["uin"] == uin


# ---------------------------------------------------------------- RMT-10/11: the remainder

REMAINDER_PAYOUT = {"holder": PAYER_C, "bank_account": "6222020200112233", "bank": "中国银行",
                    "branch": "北京分行", "location": "北京市"}


def credit_form(rt, uin, amount: str) -> dict:
    return take_and_resolve(rt, file(rt, uin, "legacy_remittance_form", form_fields(amount))["id"])


@pytest.mark.spec("RMT-10", "RMT-11")
def test_what_no_form_claims_of_a_legacy_transfer_is_refunded_once_to_its_payer(rt):
    rec = legacy_transfer(rt, amount=1000_00)
    x = new_account(rt, "xco")
    credit_form(rt, x, "600.00")
    bank0, suspense0 = money(rt)
    assert suspense0 == 400_00
    done = act(rt, cases.refund_legacy_remainder, ALICE, rec["id"], payout=REMAINDER_PAYOUT,
               reason="付款人要求退回多付部分")
    assert (done["amount"], done["state"], done["arrives_by"]) == ("400.00", "legacy",
                                                                    "2026-03-23")
    assert money(rt) == (bank0 + 400_00, 0)
    with rt.engine.connect() as conn:
        view = cases.legacy_transfer(conn, ALICE, rec["id"])
        refund = conn.execute(select(remittance_refunds)).mappings().one()
    assert (view["remaining"], view["refund"]["amount"], view["state"]) == (0, 400_00, "legacy")
    assert (refund["uin"], refund["confirmed_by"], refund["txn_id"]) == (
        None, "operator:alice", done["txn_id"])
    assert "400.00" in record(rt, "L1")["reason"]
    assert audits(rt, "remittance_refund") == [("operator:alice", None)]
    # once: a second refund finds nothing left; a later form finds nothing to credit
    with pytest.raises(Conflict) as again:
        act(rt, cases.refund_legacy_remainder, OPS, rec["id"], payout=REMAINDER_PAYOUT,
            reason="again")
    assert again.value.field == "remittance_id"
    y = new_account(rt, "yco")
    late = file(rt, y, "legacy_remittance_form", form_fields("0.01"))
    take(rt, late["id"])
    with pytest.raises(Conflict) as refused:
        resolve(rt, late["id"])
    assert refused.value.field == "amount"
    assert (balance(rt, x).cash, balance(rt, y).cash) == (600_00, 0)
    assert row_counts(rt, remittance_refunds) == (1,)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-10")
def test_a_remainder_is_refunded_only_of_a_legacy_transfer_with_something_left(rt):
    whole = legacy_transfer(rt, "L1", 500_00)
    with pytest.raises(Conflict) as refused:  # no form yet: refund_unassigned refunds it whole
        act(rt, cases.refund_legacy_remainder, ALICE, whole["id"], payout=REMAINDER_PAYOUT,
            reason="x")
    assert (refused.value.field, refused.value.details["state"]) == ("remittance_id",
                                                                      "unassigned")
    uin, pending = pending_company(rt)
    with pytest.raises(Conflict):
        act(rt, cases.refund_legacy_remainder, ALICE, pending["id"], payout=REMAINDER_PAYOUT,
            reason="x")
    x = new_account(rt, "xco")
    take_and_resolve(rt, file(rt, x, "legacy_remittance_form",
                              form_fields("500.00", bank_reference="L1"))["id"])
    with pytest.raises(Conflict) as empty:  # the forms took it all
        act(rt, cases.refund_legacy_remainder, ALICE, whole["id"], payout=REMAINDER_PAYOUT,
            reason="x")
    assert empty.value.details["remaining"] == 0
    with pytest.raises(PermissionDenied):
        act(rt, cases.refund_legacy_remainder, owner(rt, uin), whole["id"],
            payout=REMAINDER_PAYOUT, reason="x")
    assert row_counts(rt, remittance_refunds) == (0,)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-11")
@pytest.mark.parametrize("payout, reason, field", [
    ({**REMAINDER_PAYOUT, "holder": " "}, "r", "holder"),
    ({**REMAINDER_PAYOUT, "bank_account": "12ab"}, "r", "bank_account"),
    ({**REMAINDER_PAYOUT, "bank": ""}, "r", "bank"),
    ("not an object", "r", "payout"),
    (REMAINDER_PAYOUT, "  ", "reason"),
])
def test_a_remainder_refund_with_bad_details_names_the_field_and_writes_nothing(
        rt, payout, reason, field):
    rec = legacy_transfer(rt, amount=1000_00)
    credit_form(rt, new_account(rt, "xco"), "600.00")
    before = money(rt)
    with pytest.raises(InvalidInput) as refused:
        act(rt, cases.refund_legacy_remainder, ALICE, rec["id"], payout=payout, reason=reason)
    assert refused.value.field == field
    assert money(rt) == before and row_counts(rt, remittance_refunds) == (0,)
    with rt.engine.connect() as conn:
        assert cases.legacy_transfer(conn, ALICE, rec["id"])["remaining"] == 400_00
