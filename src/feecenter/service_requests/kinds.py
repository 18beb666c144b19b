"""The kinds of service request (SRV-1): each a code, zh/en names, typed fields,
attachment rules, a due time in working days and the action that resolves it, kept in
one registry. Adding a kind = one ``register(Kind(...))`` with its action function.

This module also holds the precision-difference compensation kind (SET-3): the
customer claims a month's positive precision difference; resolving it credits that
amount through ``funds.adjust`` under the operator's name, once per month. It
registers the corporate-remittance kinds (RMT-9..11: remittance refund, wrong-account
claim, legacy remittance form and its correction), whose fields and actions are in
``remittance_kinds``, and the invoice kinds (SRV-1 paper invoice copy, INV-9
commercial invoice), whose fields and actions are in ``invoices.requests``, and the
failed-payout kind (WDR-5), whose fields and action are in ``withdrawals.requests``.

An action is a plain function ``(conn, clock, operator, request) -> dict`` run in the
same transaction as the claim of the state change; what it returns is stored as the
request's result. The dependency goes service_requests -> other domains, never back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, update

from feecenter.accounts.permissions import FINANCE, Actor
from feecenter.clock import BUSINESS_TZ, Clock, db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid
from feecenter.funds import service as funds
from feecenter.invoices import requests as invoice_requests
from feecenter.money import format_yuan, round_rated_to_fen
from feecenter.service_requests import remittance_kinds
from feecenter.service_requests.rules import MONTH, TEXT, Field
from feecenter.service_requests.tables import precision_compensations
from feecenter.settlement import service as settlement
from feecenter.withdrawals import requests as withdrawal_requests

Action = Callable[[Connection, Clock, Actor, dict], dict]
Admit = Callable[[Connection, Clock, Actor, int, dict], None]


@dataclass(frozen=True)
class Attachments:
    required: bool = False
    max_count: int = 5  # at most rules.MAX_ATTACHMENTS


@dataclass(frozen=True)
class Kind:
    """``subject``: what one request is about (None: any number may be open); a second
    open or resolved request of the same kind, account and subject is refused.
    ``admit``: checks at filing beyond the fields' own (may raise); ``permission``:
    what the filer needs on the account."""

    code: str
    zh: str
    en: str
    fields: tuple[Field, ...]
    due_working_days: int
    action: Action
    attachments: Attachments = field(default_factory=Attachments)
    subject: Callable[[dict], str] | None = None
    admit: Admit | None = None
    permission: str = FINANCE

    def describe(self) -> dict:
        return {"code": self.code, "name_zh": self.zh, "name_en": self.en,
                "fields": [f.describe() for f in self.fields],
                "attachments": {"required": self.attachments.required,
                                "max_count": self.attachments.max_count},
                "due_working_days": self.due_working_days}


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    if kind.code in KINDS:
        raise ValueError(f"service request kind registered twice: {kind.code}")
    KINDS[kind.code] = kind
    return kind


def get_kind(code: object) -> Kind:
    kind = KINDS.get(code) if isinstance(code, str) else None
    if kind is None:
        raise invalid("kind", "不支持的工单类型", "unknown service request kind")
    return kind


# ---------------------------------------------------------------- SET-3 compensation

PRECISION_COMPENSATION = "precision_compensation"


def _month_claim(conn: Connection, clock: Clock, actor: Actor, uin: int, month: str) -> dict:
    """The month's precision difference and the fen it pays back (half-up, the one
    rounding rule); refused unless the month is over and the customer paid more."""
    now_month = clock.now().astimezone(BUSINESS_TZ).strftime("%Y-%m")
    if month >= now_month:
        raise invalid("fields.month", "月份：只能申请已结束月份的精度差异补偿",
                      "month: only a month that has ended can be claimed")
    diff = settlement.monthly_precision_difference(conn, actor, uin, month)["difference"]
    amount = round_rated_to_fen(diff) if diff > 0 else 0
    if amount <= 0:
        raise invalid("fields.month", "月份：该月没有可申请补偿的正向精度差异（不足 0.01 元）",
                      "month: the month has no positive precision difference to claim "
                      "(under 0.01 yuan)")
    return {"difference": diff, "amount": amount}


def _admit_compensation(conn: Connection, clock: Clock, actor: Actor, uin: int,
                        values: dict) -> None:
    _month_claim(conn, clock, actor, uin, values["month"])


def compensate_precision(conn: Connection, clock: Clock, operator: Actor,
                         request: dict) -> dict:
    """Credit the month's positive precision difference to cash (SET-3), once: the
    (account, month) row is inserted first and its primary key decides; the credit is
    ``funds.adjust`` (incoming money: arrears first, ARR-4; audited under the operator)
    with an idempotency key of the month."""
    uin, month = request["uin"], request["fields"]["month"]
    claim = _month_claim(conn, clock, operator, uin, month)
    key = f"srv:precision:{uin}:{month}"
    inserted = conn.execute(insert_if_absent(conn, precision_compensations).values(
        uin=uin, month=month, request_id=request["id"], amount=claim["amount"],
        difference=claim["difference"], txn_id=0, created_at=db_time(clock.now()))
        .returning(precision_compensations.c.uin)).first()
    if inserted is None:
        raise Conflict(f"{month} 的精度差异已补偿过", f"the precision difference of {month} "
                       "was compensated already", field="fields.month")
    movement = funds.adjust(conn, clock, operator, uin, sub_account="cash",
                            amount=claim["amount"],
                            reason=f"月度计费精度差异补偿 {month} / precision difference {month}",
                            key=key)
    conn.execute(update(precision_compensations).where(
        precision_compensations.c.uin == uin, precision_compensations.c.month == month)
        .values(txn_id=movement.txn_id))
    return {"month": month, "amount": format_yuan(claim["amount"]),
            "difference": claim["difference"], "txn_id": movement.txn_id}


register(Kind(
    code=PRECISION_COMPENSATION, zh="精度差异补偿", en="Precision difference compensation",
    fields=(Field("month", "月份", "month", MONTH),
            Field("note", "说明", "note", TEXT, required=False, max_length=500)),
    due_working_days=5, action=compensate_precision,
    attachments=Attachments(required=False, max_count=3),
    subject=lambda values: values["month"], admit=_admit_compensation))


# ---------------------------------------------------------------- corporate remittance (RMT-9..11)

register(Kind(
    code=remittance_kinds.REMITTANCE_REFUND, zh="汇款退款", en="Remittance refund",
    fields=remittance_kinds.REFUND_FIELDS, due_working_days=15,
    action=remittance_kinds.refund_remittance,
    attachments=Attachments(required=True, max_count=3),  # the bank's receipt
    subject=lambda values: str(values["remittance_id"]), admit=remittance_kinds.admit_refund))

register(Kind(
    code=remittance_kinds.WRONG_ACCOUNT_CLAIM, zh="汇错账号认领", en="Wrong-account claim",
    fields=remittance_kinds.CLAIM_FIELDS, due_working_days=5,
    action=remittance_kinds.claim_remittance,
    attachments=Attachments(required=True, max_count=3),  # the payer's proof
    subject=lambda values: f"{values['bank_reference']}:{values['amount']}"))

register(Kind(
    code=remittance_kinds.LEGACY_FORM, zh="旧账号汇款表单", en="Legacy remittance form",
    fields=remittance_kinds.LEGACY_FIELDS, due_working_days=3,
    action=remittance_kinds.credit_legacy,
    attachments=Attachments(required=True, max_count=3)))  # the bank's receipt

register(Kind(
    code=remittance_kinds.LEGACY_CORRECTION, zh="旧账号汇款表单更正",
    en="Legacy form correction", fields=remittance_kinds.CORRECTION_FIELDS,
    due_working_days=3, action=remittance_kinds.correct_legacy_form,
    attachments=Attachments(required=False, max_count=2),
    subject=lambda values: str(values["wrong_request_id"]),
    admit=remittance_kinds.admit_correction))


# ---------------------------------------------------------------- invoices (SRV-1, INV-9)

register(Kind(
    code=invoice_requests.PAPER_INVOICE_COPY, zh="纸质发票复印件", en="Paper invoice copy",
    fields=invoice_requests.PAPER_COPY_FIELDS,
    due_working_days=invoice_requests.DUE_WORKING_DAYS, action=invoice_requests.post_paper_copy,
    attachments=Attachments(required=False, max_count=2),
    admit=invoice_requests.admit_paper_copy))

register(Kind(
    code=invoice_requests.COMMERCIAL_INVOICE, zh="商业发票（境外客户）",
    en="Commercial invoice (outside the mainland)", fields=invoice_requests.COMMERCIAL_FIELDS,
    due_working_days=invoice_requests.DUE_WORKING_DAYS,
    action=invoice_requests.send_commercial_invoice,
    attachments=Attachments(required=False, max_count=3),  # the operator's scan
    admit=invoice_requests.admit_commercial))


# ---------------------------------------------------------------- withdrawals (WDR-5)

register(Kind(
    code=withdrawal_requests.FAILED_PAYOUT, zh="提现打款失败", en="Failed payout",
    fields=withdrawal_requests.FIELDS, due_working_days=withdrawal_requests.DUE_WORKING_DAYS,
    action=withdrawal_requests.resolve,
    # proof: closure certificate, console screenshot, recharge voucher
    attachments=Attachments(required=True, max_count=5),
    subject=lambda values: str(values["withdrawal_id"]), admit=withdrawal_requests.admit))
