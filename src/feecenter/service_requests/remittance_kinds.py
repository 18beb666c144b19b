"""The fields, filing checks and resolution actions of the corporate-remittance request
kinds (SRV-1, RMT-9..11), registered in kinds.py: remittance refund, wrong-account
claim, legacy remittance form and legacy form correction. The money moves in
remittances.cases; this module turns a request's fields into those calls and a
filing's bad input into 4xx naming the field (``fields.<name>``).
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import Connection, select
from stdnum.cn import ric

from feecenter.accounts.permissions import Actor
from feecenter.accounts.tables import customers
from feecenter.clock import Clock
from feecenter.errors import Conflict, NotFound, invalid
from feecenter.money import format_yuan
from feecenter.remittances import cases, rules as remittance_rules
from feecenter.service_requests import rules
from feecenter.service_requests.rules import (AMOUNT, BANK_ACCOUNT, BOOLEAN, CHOICE, DATE, PHONE,
                                              RECORD_ID, TEXT, Field)
from feecenter.service_requests.tables import service_requests

REMITTANCE_REFUND = "remittance_refund"
WRONG_ACCOUNT_CLAIM = "wrong_account_claim"
LEGACY_FORM = "legacy_remittance_form"
LEGACY_CORRECTION = "legacy_form_correction"

# ---------------------------------------------------------------- RMT-11 remittance refund

REFUND_REASONS = (
    ("cannot_sign", "付款人无法签署第三方付款协议", "the payer cannot sign the third-party payment agreement"),
    ("paid_by_mistake", "误汇款", "paid by mistake"),
    ("wrong_code", "识别码错误或缺失", "a wrong or missing 10-digit code"),
    ("foreign_currency", "外币汇款", "a foreign-currency remittance"),
    ("other", "其他", "other"),
)
REFUND_FIELDS = (
    Field("remittance_id", "汇款记录编号", "remittance record", RECORD_ID),
    Field("verified_name", "实名认证名称", "verified name"),
    Field("holder", "收款户名", "account holder"),
    Field("bank_account", "收款银行账号", "bank account", BANK_ACCOUNT),
    Field("bank", "开户银行", "bank"),
    Field("branch", "开户支行", "branch"),
    Field("location", "开户行所在地", "bank location"),
    Field("remitted_on", "汇款时间", "remittance date", DATE),
    Field("address", "联系地址", "contact address", max_length=500),
    Field("phone", "联系电话", "contact phone", PHONE),
    Field("id_number", "身份证号（个人账号必填）", "ID number (individual accounts)",
          required=False, max_length=18),
    Field("reason", "退款原因", "reason", CHOICE, choices=REFUND_REASONS),
    Field("detail", "说明", "details", required=False, max_length=500),
    Field("amount", "退款金额", "amount", AMOUNT),
    Field("invoiced", "是否已开票", "invoiced", BOOLEAN),
)


def admit_refund(conn: Connection, clock: Clock, actor: Actor, uin: int, values: dict) -> None:
    """The record is the account's and still refundable, the amount is the whole
    record's, the verified name is the account's, individuals give a valid ID number."""
    try:
        record = cases.refundable_record(conn, uin, values["remittance_id"])
    except (NotFound, Conflict) as exc:
        raise invalid("fields.remittance_id", f"汇款记录编号：{exc.message_zh}",
                      f"remittance record: {exc.message_en}") from None
    if values["amount"] != record["amount"]:
        raise invalid("fields.amount", f"退款金额：须为该笔汇款的全额 {format_yuan(record['amount'])}",
                      f"amount: must be the whole remittance, {format_yuan(record['amount'])}")
    state, entity = conn.execute(select(customers.c.realname_state, customers.c.entity_name)
                                 .where(customers.c.uin == uin)).one()
    if (state in cases.VERIFIED_REALNAME and entity and remittance_rules.normalize_name(entity)
            != remittance_rules.normalize_name(values["verified_name"])):
        raise invalid("fields.verified_name", "实名认证名称：与账号的实名主体不一致",
                      "verified name: differs from the account's verified entity")
    if state == "personal" and not ric.is_valid(values.get("id_number", "")):
        raise invalid("fields.id_number", "身份证号：个人账号须填写有效的身份证号",
                      "ID number: an individual account must give a valid ID number")


def refund_remittance(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    fields = request["fields"]
    reason = dict((v, zh) for v, zh, _ in REFUND_REASONS)[fields["reason"]]
    if fields.get("detail"):
        reason = f"{reason}：{fields['detail']}"
    return cases.refund(conn, clock, operator, fields["remittance_id"], uin=request["uin"],
                        payout={k: fields[k] for k in cases.PAYOUT_FIELDS if fields.get(k)},
                        reason=reason, request_id=request["id"])


# ---------------------------------------------------------------- RMT-9 wrong-account claim

CLAIM_FIELDS = (
    Field("bank_reference", "银行流水号", "bank reference", max_length=64),
    Field("amount", "汇款金额", "amount", AMOUNT),
    Field("remitted_on", "汇款日期", "remittance date", DATE),
    Field("payer_name", "付款人名称", "payer name"),
    Field("payer_account", "付款银行账号", "payer bank account", BANK_ACCOUNT),
    Field("corrected_number", "正确的收款账号", "correct receiving number", max_length=40),
    Field("reason", "原因", "reason", max_length=500),
)


def claim_remittance(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    fields = request["fields"]
    return cases.claim(conn, clock, operator, request["uin"],
                       bank_reference=fields["bank_reference"], amount=fields["amount"],
                       request_id=request["id"], evidence=fields)


# ---------------------------------------------------------------- RMT-10 legacy forms

LEGACY_FIELDS = (
    Field("amount", "入账金额", "amount", AMOUNT),
    Field("payer_name", "付款人名称", "payer name"),
    Field("payer_bank", "付款银行", "payer bank"),
    Field("remitted_on", "汇款日期", "remittance date", DATE),
    Field("bank_reference", "银行流水号", "bank reference", required=False, max_length=64),
)


def credit_legacy(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    fields = request["fields"]
    return cases.credit_legacy_form(
        conn, clock, operator, request["uin"], request_id=request["id"], amount=fields["amount"],
        payer_name=fields["payer_name"], value_date=date.fromisoformat(fields["remitted_on"]),
        bank_reference=fields.get("bank_reference"))


CORRECTION_FIELDS = (
    Field("wrong_request_id", "填错的表单编号", "wrong form", RECORD_ID),
    Field("corrected_request_id", "更正后的表单编号", "corrected form", RECORD_ID),
    Field("reason", "说明", "reason", TEXT, max_length=500),
)


def _legacy_form(conn: Connection, uin: int, request_id: int, name: str) -> dict:
    row = conn.execute(select(service_requests).where(
        service_requests.c.id == request_id)).mappings().first()
    if row is None or row["uin"] != uin or row["kind"] != LEGACY_FORM:
        raise invalid(f"fields.{name}", "表单编号：不是本账号的旧账号汇款表单",
                      "form: not a legacy remittance form of this account")
    return dict(row)


def admit_correction(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     values: dict) -> None:
    """Both are the account's legacy forms; the wrong one still waits for review; the
    corrected one is another, not rejected or withdrawn."""
    wrong = _legacy_form(conn, uin, values["wrong_request_id"], "wrong_request_id")
    corrected = _legacy_form(conn, uin, values["corrected_request_id"], "corrected_request_id")
    if wrong["state"] not in rules.OPEN_STATES:
        raise invalid("fields.wrong_request_id", "填错的表单编号：该表单已不在待审核状态",
                      "wrong form: it no longer waits for review")
    if corrected["id"] == wrong["id"] or corrected["state"] in (rules.REJECTED, rules.WITHDRAWN):
        raise invalid("fields.corrected_request_id",
                      "更正后的表单编号：须为另一张未被驳回或撤销的表单",
                      "corrected form: must be another form, not rejected or withdrawn")


def correct_legacy_form(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    """Reject the wrong form if it still waits (its history names the correction); a
    form credited meanwhile cannot be undone here."""
    from feecenter.service_requests import service  # the framework runs this kind's action

    fields = request["fields"]
    wrong = _legacy_form(conn, request["uin"], fields["wrong_request_id"], "wrong_request_id")
    if wrong["state"] == rules.RESOLVED:
        raise Conflict("填错的表单已入账，不能再驳回；请驳回本更正申请并另行处理",
                       "the wrong form was credited already and cannot be rejected; reject "
                       "this correction and handle it otherwise", field="fields.wrong_request_id")
    if wrong["state"] in rules.OPEN_STATES:
        service.reject(conn, clock, operator, wrong["id"],
                       f"已由表单 {fields['corrected_request_id']} 更正（更正申请 {request['id']}）"
                       f" / corrected by form {fields['corrected_request_id']} "
                       f"(correction {request['id']})")
    return {"rejected_request_id": wrong["id"],
            "corrected_request_id": fields["corrected_request_id"]}
