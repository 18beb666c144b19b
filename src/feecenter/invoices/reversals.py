"""Reversals (退票, INV-6): owns the rows of ``invoice_reversals`` and the red invoices
they produce.

A customer submits a reversal of an issued blue invoice (never of one still applied or
being issued), saying how it was treated — deducted (已抵扣), booked (入账) or neither —
with the red-letter confirmation number (红字确认单编号) the first two need, a reason
and an explanation. A submitted reversal cannot be withdrawn (there is no such
function). A deducted invoice whose number does not exist yet waits as
``red_letter_pending`` (红字待发起) until the customer sets it.

Operators work the queue (due 3 working days after submission, the CN calendar):
``release`` makes the red invoice (kind "red", state "applied" for the issuing job,
negative amounts and lines, the blue one's title snapshot) and marks the blue one
"reversed" — the amount is invoiceable again because invoiced sums include the red
lines; ``reject`` ends it with a reason. Each decision is claimed by a conditional
UPDATE on the state, so of concurrent releases and rejections exactly one wins.
Submission, release and rejection are notified to the account; decisions are audited.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone

from sqlalchemy import Connection, func, insert, select, update

from feecenter.accounts.permissions import FINANCE, Actor, require, require_operator
from feecenter.audit.service import record_audit
from feecenter.clock import BUSINESS_TZ, Clock, business_date, db_time, from_db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, LedgerInvariantBroken, invalid, not_found
from feecenter.inputs import plain_text
from feecenter.invoices.tables import invoice_lines, invoice_reversals, invoices
from feecenter.money import format_yuan
from feecenter.notifications.service import notify
from feecenter.workdays import add_working_days

_V = invoice_reversals.c
_I = invoices.c
_L = invoice_lines.c

SUBMITTED, RED_LETTER_PENDING, RELEASED, REJECTED = (
    "submitted", "red_letter_pending", "released", "rejected")
STATES = (SUBMITTED, RED_LETTER_PENDING, RELEASED, REJECTED)
OPEN_STATES = (SUBMITTED, RED_LETTER_PENDING)
STATE_NAMES = {SUBMITTED: ("待处理", "submitted"),
               RED_LETTER_PENDING: ("红字待发起", "red letter pending"),
               RELEASED: ("已退票", "released"), REJECTED: ("已驳回", "rejected")}
TREATMENTS = {"deducted": ("已抵扣", "deducted"), "booked": ("已入账", "booked"),
              "none": ("未抵扣未入账", "neither deducted nor booked")}
REASONS = {"wrong_details": ("开票信息有误", "wrong details"),
           "invoice_debt": ("退款或降配产生欠票", "invoice debt after a refund or downgrade")}
NEEDS_RED_LETTER = ("deducted", "booked")
DUE_WORKING_DAYS = 3  # INV-6: released within 1-3 working days
BLUE_KINDS = ("ordinary", "special")
MAX_EXPLANATION = 1000
MAX_REJECT_REASON = 500
_RED_LETTER_NO = re.compile(r"^[0-9A-Za-z]{8,30}$", re.ASCII)
NOTIFY_TEMPLATE = "invoice_reversal_update"


# ---------------------------------------------------------------- input

def _choice(value: object, allowed: dict, field: str, zh: str, en: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        names = ", ".join(allowed)
        raise invalid(field, f"{zh}：只能是 {names} 之一", f"{en}: must be one of {names}")
    return value


def _red_letter_no(value: object) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or not _RED_LETTER_NO.fullmatch(value.strip()):
        raise invalid("red_letter_no", "红字确认单编号：应为 8–30 位字母或数字",
                      "red-letter confirmation number: 8-30 letters or digits")
    return value.strip()


def _text(value: object, field: str, zh: str, en: str, max_len: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise invalid(field, f"{zh}：必填", f"{en}: required")
    if len(value) > max_len:
        raise invalid(field, f"{zh}：不超过 {max_len} 个字符", f"{en}: at most {max_len} characters")
    return plain_text(value, field, max_len).strip()


def _initial_state(treatment: str, red_letter_no: str | None) -> str:
    """deducted without its number waits (红字待发起); booked needs it now; none takes none."""
    if treatment == "none" and red_letter_no is not None:
        raise invalid("red_letter_no", "红字确认单编号：未抵扣未入账的发票无需填写",
                      "red-letter confirmation number: not needed when neither deducted nor booked")
    if treatment == "booked" and red_letter_no is None:
        raise invalid("red_letter_no", "红字确认单编号：已入账的发票必须填写",
                      "red-letter confirmation number: required for a booked invoice")
    if treatment == "deducted" and red_letter_no is None:
        return RED_LETTER_PENDING
    return SUBMITTED


# ---------------------------------------------------------------- customers

def submit(conn: Connection, clock: Clock, actor: Actor, uin: int, invoice_id: int, *,
           treatment: object, red_letter_no: object, reason: object,
           explanation: object) -> dict:
    """Ask to reverse issued blue invoice ``invoice_id``: at most one reversal per
    invoice (the unique key decides a race), never withdrawn once submitted."""
    require(actor, uin, FINANCE)
    treatment = _choice(treatment, TREATMENTS, "treatment", "处理方式", "treatment")
    number = _red_letter_no(red_letter_no)
    reason = _choice(reason, REASONS, "reason", "退票原因", "reason")
    explanation = _text(explanation, "explanation", "退票说明", "explanation", MAX_EXPLANATION)
    state = _initial_state(treatment, number)
    invoice = _reversible_invoice(conn, uin, invoice_id)
    now = clock.now()
    row = conn.execute(insert_if_absent(conn, invoice_reversals, ["invoice_id"]).values(
        uin=uin, invoice_id=invoice["id"], state=state, treatment=treatment,
        red_letter_no=number, reason=reason, explanation=explanation,
        submitted_by=actor.label, submitted_at=db_time(now))
        .returning(*invoice_reversals.c)).mappings().first()
    if row is None:
        raise _already_submitted(conn, invoice["id"])
    if actor.kind in ("operator", "system"):  # on the customer's behalf: audited
        record_audit(conn, clock, actor, "invoice_reversal.submit", uin,
                     {"reversal_id": row["id"], "invoice_id": invoice["id"]})
    _notify(conn, clock, row, invoice, "submitted", None)
    return view(row, clock, invoice)


def _reversible_invoice(conn: Connection, uin: int, invoice_id: object) -> dict:
    if type(invoice_id) is not int or invoice_id <= 0:
        raise invalid("invoice_id", "发票编号必须是正整数", "the invoice id must be a positive integer")
    invoice = conn.execute(select(invoices).where(_I.id == invoice_id, _I.uin == uin)
                           ).mappings().first()
    if invoice is None:
        raise not_found("invoice_id", "发票", "invoice", invoice_id)
    if invoice["kind"] not in BLUE_KINDS:
        raise Conflict("红字发票不能退票", "a red invoice cannot be reversed", field="invoice_id")
    if invoice["state"] in ("applied", "issuing"):
        raise Conflict("发票正在开具中，不能退票（不能阻止正在开具的发票）",
                       "cannot stop an invoice being issued: only an issued invoice can be "
                       "reversed", field="invoice_id", state=invoice["state"])
    if invoice["state"] != "issued":
        raise Conflict("该发票已红冲，不能再退票", "the invoice was reversed already",
                       field="invoice_id", state=invoice["state"])
    return dict(invoice)


def _already_submitted(conn: Connection, invoice_id: int) -> Conflict:
    earlier = conn.execute(select(_V.id, _V.state).where(_V.invoice_id == invoice_id)).one()
    zh, en = STATE_NAMES[earlier.state]
    return Conflict(f"该发票已提交过退票申请（编号 {earlier.id}，{zh}），不能再次提交",
                    f"a reversal of this invoice was submitted already (no. {earlier.id}, "
                    f"{en}); it cannot be submitted again", field="invoice_id",
                    reversal_id=earlier.id)


def set_red_letter_no(conn: Connection, clock: Clock, actor: Actor, uin: int, reversal_id: int,
                      red_letter_no: object) -> dict:
    """Give the red-letter confirmation number a deducted invoice waits for: the
    reversal leaves 红字待发起 for the operators' queue (a conditional UPDATE)."""
    require(actor, uin, FINANCE)
    number = _red_letter_no(red_letter_no)
    if number is None:
        raise invalid("red_letter_no", "红字确认单编号：必填", "red-letter confirmation number: required")
    row = conn.execute(update(invoice_reversals).where(
        _V.id == reversal_id, _V.uin == uin, _V.state == RED_LETTER_PENDING)
        .values(state=SUBMITTED, red_letter_no=number)
        .returning(*invoice_reversals.c)).mappings().first()
    if row is None:
        raise _state_conflict(_load(conn, reversal_id, uin))
    return view(row, clock, _invoice(conn, row["invoice_id"]))


def list_reversals(conn: Connection, clock: Clock, actor: Actor, uin: int) -> list[dict]:
    """The account's reversals, newest first."""
    require(actor, uin, FINANCE)
    rows = conn.execute(select(invoice_reversals).where(_V.uin == uin)
                        .order_by(_V.id.desc())).mappings().all()
    found = _invoices(conn, [r["invoice_id"] for r in rows])
    return [view(r, clock, found.get(r["invoice_id"])) for r in rows]


def get_reversal(conn: Connection, clock: Clock, actor: Actor, reversal_id: int) -> dict:
    """One reversal, for its account or an operator."""
    row = _load(conn, reversal_id)
    require(actor, row["uin"], FINANCE)
    return view(row, clock, _invoice(conn, row["invoice_id"]))


# ---------------------------------------------------------------- operators

def queue(conn: Connection, clock: Clock, actor: Actor, *, state: str | None = None,
          offset: int = 0, limit: int = 50) -> dict:
    """The operators' queue, oldest (most urgent) first; ``state`` None: the open ones
    (submitted and red letter pending)."""
    require_operator(actor)
    if state is not None and state not in STATES:
        raise invalid("state", "退票状态无效", "unknown reversal state")
    where = [_V.state == state] if state is not None else [_V.state.in_(OPEN_STATES)]
    rows = conn.execute(select(invoice_reversals).where(*where).order_by(_V.submitted_at, _V.id)
                        .offset(max(offset, 0)).limit(min(max(limit, 1), 200))).mappings().all()
    total = conn.execute(select(func.count()).select_from(invoice_reversals)
                         .where(*where)).scalar_one()
    found = _invoices(conn, [r["invoice_id"] for r in rows])
    return {"total": total, "items": [view(r, clock, found.get(r["invoice_id"])) for r in rows]}


def release(conn: Connection, clock: Clock, actor: Actor, reversal_id: int) -> dict:
    """Release a submitted reversal: claim it (submitted -> released, the row count
    decides), make the red invoice for the issuing job, mark the blue one reversed."""
    require_operator(actor)
    now = db_time(clock.now())
    row = _claim(conn, reversal_id, (SUBMITTED,), state=RELEASED, decided_by=actor.label,
                 decided_at=now)
    blue = _invoice(conn, row["invoice_id"])
    red_id = _make_red_invoice(conn, blue, now)
    marked = conn.execute(update(invoices).where(_I.id == blue["id"], _I.state == "issued")
                          .values(state="reversed")).rowcount
    if marked != 1:  # only release moves an issued blue invoice on, and it is claimed once
        raise LedgerInvariantBroken("退票的蓝字发票不是已开具状态",
                                    "the reversed blue invoice was not issued")
    row = conn.execute(update(invoice_reversals).where(_V.id == reversal_id)
                       .values(red_invoice_id=red_id)
                       .returning(*invoice_reversals.c)).mappings().one()
    record_audit(conn, clock, actor, "invoice_reversal.release", row["uin"],
                 {"reversal_id": row["id"], "invoice_id": blue["id"], "red_invoice_id": red_id,
                  "amount": blue["amount"]})
    _notify(conn, clock, row, blue, "released", None)
    return view(row, clock, blue)


def reject(conn: Connection, clock: Clock, actor: Actor, reversal_id: int,
           reason: object) -> dict:
    """Reject an open reversal with a reason the customer sees; the invoice stays issued."""
    require_operator(actor)
    reason = _text(reason, "reason", "驳回原因", "reason", MAX_REJECT_REASON)
    row = _claim(conn, reversal_id, OPEN_STATES, state=REJECTED, decided_by=actor.label,
                 decided_at=db_time(clock.now()), reject_reason=reason)
    blue = _invoice(conn, row["invoice_id"])
    record_audit(conn, clock, actor, "invoice_reversal.reject", row["uin"],
                 {"reversal_id": row["id"], "invoice_id": blue["id"], "reason": reason})
    _notify(conn, clock, row, blue, "rejected", reason)
    return view(row, clock, blue)


def _claim(conn: Connection, reversal_id: int, leaves: tuple[str, ...], **values) -> dict:
    row = conn.execute(update(invoice_reversals).where(
        _V.id == reversal_id, _V.state.in_(leaves)).values(**values)
        .returning(*invoice_reversals.c)).mappings().first()
    if row is None:
        raise _state_conflict(_load(conn, reversal_id))
    return dict(row)


def _make_red_invoice(conn: Connection, blue: dict, now: datetime) -> int:
    """The red invoice: the blue one's snapshot with every amount negated, state
    applied (the issuing job numbers and issues it), one negative line per blue line."""
    copied = ("uin", "entity", "title_kind", "title", "tax_id", "address", "phone", "bank",
              "bank_account", "email")
    red_id = conn.execute(insert(invoices).values(
        **{k: blue[k] for k in copied}, application_id=None, kind="red", state="applied",
        amount=-blue["amount"], net_amount=-blue["net_amount"], tax_amount=-blue["tax_amount"],
        original_id=blue["id"], applied_at=now).returning(_I.id)).scalar_one()
    lines = conn.execute(select(invoice_lines).where(_L.invoice_id == blue["id"])
                         .order_by(_L.id)).mappings().all()
    if not lines:
        raise LedgerInvariantBroken("蓝字发票没有明细行", "the blue invoice has no lines")
    conn.execute(insert(invoice_lines), [
        {"invoice_id": red_id, "uin": line["uin"], "entity": line["entity"],
         "tax_category": line["tax_category"], "item_name": line["item_name"],
         "tax_code": line["tax_code"], "rate_bp": line["rate_bp"], "amount": -line["amount"],
         "net_amount": -line["net_amount"], "tax_amount": -line["tax_amount"]}
        for line in lines])
    return red_id


# ---------------------------------------------------------------- reading

def _load(conn: Connection, reversal_id: object, uin: int | None = None) -> dict:
    where = [_V.id == reversal_id] + ([_V.uin == uin] if uin is not None else [])
    row = (conn.execute(select(invoice_reversals).where(*where)).mappings().first()
           if type(reversal_id) is int else None)
    if row is None:
        raise not_found("reversal_id", "退票申请", "reversal", reversal_id)
    return dict(row)


def _invoice(conn: Connection, invoice_id: int) -> dict:
    return dict(conn.execute(select(invoices).where(_I.id == invoice_id)).mappings().one())


def _invoices(conn: Connection, ids: list[int]) -> dict[int, dict]:
    if not ids:
        return {}
    rows = conn.execute(select(invoices).where(_I.id.in_(set(ids)))).mappings().all()
    return {r["id"]: dict(r) for r in rows}


def _state_conflict(row: dict) -> Conflict:
    zh, en = STATE_NAMES[row["state"]]
    return Conflict(f"退票申请当前状态为「{zh}」，不能执行此操作",
                    f"the reversal is {en}; this cannot be done now", field="state",
                    state=row["state"])


def due_at(submitted_at: datetime) -> datetime:
    """The end of the business day 3 working days after the submission's business date
    (the CN calendar, make-up days included), aware UTC."""
    due_day = add_working_days(business_date(submitted_at), DUE_WORKING_DAYS)
    end = datetime.combine(due_day + timedelta(days=1), time(0), tzinfo=BUSINESS_TZ)
    return end.astimezone(timezone.utc)


def view(row, clock: Clock, invoice: dict | None) -> dict:
    """What services return; the due time counts from submission, and only a reversal
    waiting for the operators (submitted) can be overdue — 红字待发起 waits for the
    customer."""
    submitted = from_db_time(row["submitted_at"])
    due = due_at(submitted)
    state_zh, state_en = STATE_NAMES[row["state"]]
    return {"id": row["id"], "uin": row["uin"], "invoice_id": row["invoice_id"],
            "state": row["state"], "state_zh": state_zh, "state_en": state_en,
            "treatment": row["treatment"], "red_letter_no": row["red_letter_no"],
            "reason": row["reason"], "explanation": row["explanation"],
            "submitted_by": row["submitted_by"], "submitted_at": submitted, "due_at": due,
            "overdue": row["state"] == SUBMITTED and clock.now() >= due,
            "decided_by": row["decided_by"],
            "decided_at": from_db_time(row["decided_at"]) if row["decided_at"] else None,
            "reject_reason": row["reject_reason"], "red_invoice_id": row["red_invoice_id"],
            "invoice_number": invoice["invoice_number"] if invoice else None,
            "amount": invoice["amount"] if invoice else None}


def _notify(conn: Connection, clock: Clock, row, invoice: dict, event: str,
            note: str | None) -> None:
    state_zh, state_en = STATE_NAMES[row["state"]]
    notify(conn, clock, row["uin"], NOTIFY_TEMPLATE,
           {"reversal_id": row["id"], "invoice_number": invoice["invoice_number"] or "-",
            "amount": format_yuan(invoice["amount"]), "state_zh": state_zh,
            "state_en": state_en, "note": note or "-"},
           key=f"inv-reversal:{row['id']}:{event}")
