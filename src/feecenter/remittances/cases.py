"""Remittance cases after the import (RMT-9, RMT-10, RMT-11): refunding to the payer a
record that cannot be credited, moving a remittance that landed in the wrong account
to the account that claims it, and crediting a legacy transfer (paid to a bare
15-digit platform account) form by form. Owns the rows of ``remittance_refunds``,
``remittance_claims``, ``remittance_legacy_transfers`` and
``remittance_legacy_credits``, and the records' moves to ``refunded`` and ``legacy``.

Customers ask through service requests (service_requests/remittance_kinds.py); an
operator resolving one runs the matching function here, in the resolution's
transaction, under the operator's name (each function ``require_operator``s and
writes its own audit entry). Every function runs in the caller's transaction and
never commits.

Public API (docs/remittance.md, "Refunds, claims and legacy remittances"):

  refundable_record(conn, uin, remittance_id) -> dict
      the account's record if it may be refunded (filing check of RMT-11)
  refund(conn, clock, operator, remittance_id, *, uin, payout, reason, request_id=None) -> dict
      RMT-11: the record -> refunded; remittance_suspense -> bank; arrives_by recorded
  refund_unassigned(conn, clock, operator, remittance_id, *, payout, reason) -> dict
      RMT-11 for money of no account (unassigned, or held without an account)
  refund_legacy_remainder(conn, clock, operator, remittance_id, *, payout, reason) -> dict
      RMT-10/11: what no legacy form claimed of a legacy transfer -> back to its payer, once
  claim(conn, clock, operator, claimant, *, bank_reference, amount, request_id) -> dict
      RMT-9: the other account's record -> refunded, the claimant's new one credited
  credit_legacy_form(conn, clock, operator, uin, *, request_id, amount, payer_name,
                     value_date, bank_reference=None) -> dict
      RMT-10: credit a form's amount from the one legacy transfer it names
  legacy_transfer(conn, actor, remittance_id) -> dict    amount, remaining, credits, refund
  legacy_remainders(conn, actor, remittance_ids) -> {id: {"remaining", "refunded"}}
  refund_of(conn, actor, remittance_id) -> dict | None   the refund of a record
  is_legacy_number(payee_account) -> bool                paid to a bare 15-digit account

Money is claimed before it moves: a conditional UPDATE of the record's state (and,
for legacy transfers, of the remaining amount, ``remaining >= amount``) whose
returned row decides; the ledger keys make a replay harmless.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date

from sqlalchemy import Connection, insert, select, update

from feecenter.accounts.permissions import FINANCE, Actor, require, require_operator
from feecenter.accounts.tables import customers
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, business_date, db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid, not_found
from feecenter.funds import service as funds
from feecenter.inputs import plain_text
from feecenter.ledger import service as ledger
from feecenter.money import format_yuan
from feecenter.remittances import rules, service
from feecenter.remittances.rules import (CNY, CREDITED, HELD, LEGACY, PENDING_CONFIRMATION,
                                         PENDING_SIGNATURE, REFUNDED, REVIEW_FAILED, UNASSIGNED)
from feecenter.remittances.tables import (remittance_claims, remittance_codes,
                                          remittance_legacy_credits, remittance_legacy_transfers, remittance_payers,
                                          remittance_refunds, remittances)
from feecenter.workdays import add_working_days

_R = remittances.c
_L = remittance_legacy_transfers.c
BANK_ACCOUNT = "bank"                        # platform: the platform's bank accounts
SUSPENSE_ACCOUNT = "remittance_suspense"     # platform: received, not yet credited
REFUND_WORKING_DAYS = 15                     # RMT-11: the money arrives within this
# RMT-11: what may be refunded: money received and not credited
REFUNDABLE = (UNASSIGNED, PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED, HELD)
# RMT-9: a record of another account that may be claimed (held ones: an operator first)
CLAIMABLE = (PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED)  # not yet credited
LEGACY_SUB_TYPE = "offline"                  # Tencent's SubPayType of a legacy remittance
CLAIM_ACCOUNT_PREFIX = "claim:"              # receiving_account of a claimant's record
VERIFIED_REALNAME = ("personal", "enterprise")
PAYOUT_FIELDS = {"holder": ("收款户名", "account holder", 200),
                 "bank_account": ("收款银行账号", "bank account", 30),
                 "bank": ("开户银行", "bank", 200), "branch": ("开户支行", "branch", 200),
                 "location": ("开户行所在地", "bank location", 200)}


# ---------------------------------------------------------------- RMT-11 refunds

def refundable_record(conn: Connection, uin: int, remittance_id: object) -> dict:
    """The account's record ``remittance_id`` if it can be refunded (received, not
    credited); another account's is as absent (NotFound), a credited or finished one
    is a ``Conflict`` naming its state."""
    record = _load(conn, remittance_id)
    if record["uin"] != uin:
        raise not_found("remittance_id", "汇款记录", "remittance", remittance_id)
    if record["state"] not in REFUNDABLE:
        raise _not_in_state(record, "退款", "refunded")
    return record


def refund(conn: Connection, clock: Clock, operator: Actor, remittance_id: int, *,
           uin: int | None, payout: dict, reason: str, request_id: int | None = None) -> dict:
    """Refund record ``remittance_id`` of account ``uin`` (None: of no account) to the
    payer (RMT-11): claimed by the conditional UPDATE to ``refunded`` from a refundable
    state, then ``remittance_suspense`` -> ``bank`` (the payout leg; a foreign-currency
    record was never posted and moves nothing), and the refund row with the day the
    money must arrive by: 15 working days after this confirmation. Audited."""
    require_operator(operator)
    payout = _checked_payout(payout)
    reason = _reason(reason)
    _load(conn, remittance_id)  # NotFound first
    now = clock.now()
    owner = _R.uin.is_(None) if uin is None else _R.uin == uin
    claimed = _claim(conn, remittance_id, [_R.state.in_(REFUNDABLE), owner], {
        "state": REFUNDED, "updated_at": db_time(now),
        "reason": f"已退款给付款人 / refunded to the payer: {reason}"})
    if claimed is None:
        raise _not_in_state(_load(conn, remittance_id), "退款", "refunded")
    txn_id = _post_refund(conn, clock, claimed)
    arrives_by = add_working_days(business_date(now), REFUND_WORKING_DAYS)
    conn.execute(insert(remittance_refunds).values(
        remittance_id=remittance_id, uin=uin, request_id=request_id,
        amount=claimed["amount"], currency=claimed["currency"],
        payout=json.dumps(payout, ensure_ascii=False, sort_keys=True), reason=reason,
        confirmed_by=operator.label, confirmed_at=db_time(now), arrives_by=arrives_by,
        txn_id=txn_id))
    record_audit(conn, clock, operator, "remittance_refund", uin, {
        "remittance_id": remittance_id, "bank_reference": claimed["bank_reference"],
        "amount": claimed["amount"], "currency": claimed["currency"],
        "request_id": request_id, "arrives_by": arrives_by.isoformat()})
    return {"remittance_id": remittance_id, "state": REFUNDED,
            "amount": format_yuan(claimed["amount"]), "currency": claimed["currency"],
            "arrives_by": arrives_by.isoformat(), "txn_id": txn_id}


def refund_unassigned(conn: Connection, clock: Clock, operator: Actor, remittance_id: int, *,
                      payout: dict, reason: str) -> dict:
    """RMT-11 for money of no account (unassigned, or held before any account was
    known): there is no account to file a request in, so the operator collects the
    payer's details (by phone or mail) and confirms the refund here directly."""
    return refund(conn, clock, operator, remittance_id, uin=None, payout=payout,
                  reason=reason)


def refund_legacy_remainder(conn: Connection, clock: Clock, operator: Actor,
                            remittance_id: int, *, payout: dict, reason: str) -> dict:
    """Refund to its payer the part of a legacy transfer (RMT-10) that no legacy form
    claimed (RMT-11), with the payout details the operator collected; once per
    transfer. Taken in the forms' lock order: the record's row first (the same
    conditional UPDATE on ``legacy`` forms use), then ``remaining`` set to 0 by a
    conditional UPDATE on the amount just read (``remaining = :left``, ``> 0``): a
    form and the refund never both take the same fen, and a form resolved after the
    refund finds nothing left (409). The record stays ``legacy`` (its forms'
    credits stand); the payout leg is ``remittance_suspense`` -> ``bank`` of the
    remainder, key ``remittance:{id}:refund``, and the ``remittance_refunds`` row (one
    per record) holds the amount and the day it must arrive by (15 working days).
    An ``unassigned`` legacy transfer no form touched yet is refunded whole by
    ``refund_unassigned``. Audited (``remittance_refund``, ``part``)."""
    require_operator(operator)
    payout = _checked_payout(payout)
    reason = _reason(reason)
    record = _load(conn, remittance_id)
    now = clock.now()
    locked = _claim(conn, remittance_id, [_R.state == LEGACY, _R.uin.is_(None)],
                    {"updated_at": db_time(now)})
    if locked is None:
        raise _not_in_state(record, "退还剩余款项", "refunded in part (only a legacy transfer "
                            "credited by forms has a remainder)")
    left = conn.execute(select(_L.remaining).where(_L.remittance_id == remittance_id)).scalar()
    taken = None if not left else conn.execute(update(remittance_legacy_transfers).where(
        _L.remittance_id == remittance_id, _L.remaining == left, _L.remaining > 0)
        .values(remaining=0, updated_at=db_time(now)).returning(_L.remittance_id)).scalar()
    if taken is None:
        raise Conflict("该笔旧账号汇款已没有未入账的剩余款项可退",
                       "nothing of this legacy transfer is left to refund: the forms credited "
                       "it all, or its remainder was refunded", field="remittance_id",
                       state=LEGACY, remaining=left or 0)
    txn_id = _post_refund(conn, clock, {**locked, "amount": left})
    arrives_by = add_working_days(business_date(now), REFUND_WORKING_DAYS)
    conn.execute(insert(remittance_refunds).values(
        remittance_id=remittance_id, uin=None, request_id=None, amount=left,
        currency=locked["currency"], payout=json.dumps(payout, ensure_ascii=False,
                                                       sort_keys=True),
        reason=reason, confirmed_by=operator.label, confirmed_at=db_time(now),
        arrives_by=arrives_by, txn_id=txn_id))
    conn.execute(update(remittances).where(_R.id == remittance_id).values(
        reason=f"{rules.STATE_NAMES[LEGACY][0]}；未被表单认领的 {format_yuan(left)} 元已退款给付款人"
               f" / {rules.STATE_NAMES[LEGACY][1]}; the {format_yuan(left)} yuan no form "
               f"claimed was refunded to the payer: {reason}"))
    record_audit(conn, clock, operator, "remittance_refund", None, {
        "remittance_id": remittance_id, "bank_reference": locked["bank_reference"],
        "amount": left, "currency": locked["currency"], "part": "legacy_remainder",
        "arrives_by": arrives_by.isoformat()})
    return {"remittance_id": remittance_id, "state": LEGACY, "amount": format_yuan(left),
            "currency": locked["currency"], "arrives_by": arrives_by.isoformat(),
            "txn_id": txn_id}


def _post_refund(conn: Connection, clock: Clock, record: dict) -> int | None:
    """The payout leg of ``record["amount"]``: suspense -> bank, once per record (its key)."""
    if record["currency"] != CNY:
        return None  # never posted on arrival: not fen
    bank, suspense = _platform_accounts(conn, clock)
    return ledger.transfer(conn, clock, ledger.Transfer(
        idempotency_key=f"remittance:{record['id']}:refund", kind="remittance_refund",
        uin=record["uin"], reference=f"remittance:{record['id']}",
        memo=record["bank_reference"][:200],
        postings=(ledger.Posting(suspense, -record["amount"]),
                  ledger.Posting(bank, record["amount"])))).txn_id


def _checked_payout(payout: object) -> dict:
    """Where the refund goes: holder, bank account (8-30 digits), bank required;
    branch and location optional text."""
    if not isinstance(payout, dict):
        raise invalid("payout", "退款收款信息须为对象", "payout details must be an object")
    checked = {}
    for name, (zh, en, limit) in PAYOUT_FIELDS.items():
        value = payout.get(name)
        text = plain_text(value, name, limit).strip() if isinstance(value, str) else ""
        if not text and name in ("holder", "bank_account", "bank"):
            raise invalid(name, f"请填写{zh}", f"the {en} is required")
        if name == "bank_account" and not (text.isascii() and text.isdigit() and len(text) >= 8):
            raise invalid(name, "收款银行账号应为 8–30 位数字", "a bank account number is 8-30 digits")
        if text:
            checked[name] = text
    return checked


def _reason(reason: object) -> str:
    text = plain_text(reason, "reason", 500).strip() if isinstance(reason, str) else ""
    if not text:
        raise invalid("reason", "必须填写原因", "a reason is required")
    return text


# ---------------------------------------------------------------- RMT-9 wrong-account claims

def claim(conn: Connection, clock: Clock, operator: Actor, claimant: int, *,
          bank_reference: str, amount: int, request_id: int, evidence: Mapping) -> dict:
    """Move the remittance ``bank_reference`` of ``amount`` that landed in another
    account, not credited there, to ``claimant`` (RMT-9). What the claimant says of
    it (``evidence``: payer_account, remitted_on, corrected_number) must be the bank's
    record and the claimant's own receiving number, and the bank-side payer the
    claimant's verified entity or a registered payer (RMT-4). The other account's
    record becomes ``refunded`` (claimed by the conditional UPDATE on its state);
    then a record of the claimant is credited from suspense. Money already credited
    to the other account is refused: SPEC moves it by group fund allocation (GRP-1)
    or that account's withdrawal (WDR), neither of which exists yet. A cancelled
    claimant is refused (ACC-5, 409 naming ``uin``): nothing is credited to it."""
    require_operator(operator)
    _require_account(conn, claimant)
    _refuse_cancelled(conn, claimant)
    record = _claimable(conn, claimant, bank_reference, amount)
    _check_evidence(conn, claimant, record, evidence)
    verdict, why = rules.verify_payer(record["payer_name"], _payers_of(conn, claimant))
    if verdict != CREDITED:
        raise Conflict(f"认领的汇款付款人须为本账号的实名主体或已登记的付款人：{why}",
                       f"the payer of a claimed remittance must be the claimant's verified "
                       f"entity or a registered payer: {why}", field="payer_name")
    now = db_time(clock.now())
    claimed = _claim(conn, record["id"], [_R.state == record["state"], _R.uin == record["uin"]], {
        "state": REFUNDED, "updated_at": now,
        "reason": "已由其他账号认领 / claimed by another account"})
    if claimed is None:
        raise _not_in_state(_load(conn, record["id"]), "认领", "claimed")
    suspense = _platform_accounts(conn, clock)[1]
    new_id = _claimant_record(conn, claimed, claimant, request_id, now)
    credit = _credit(conn, clock, new_id, claimant, claimed["amount"], claimed["bank_reference"],
                     suspense, rules.SUB_PAY_TYPE)
    conn.execute(insert(remittance_claims).values(
        request_id=request_id, remittance_id=record["id"], from_uin=record["uin"],
        to_uin=claimant, claim_remittance_id=new_id, credit_txn_id=credit,
        operator=operator.label, created_at=now))
    record_audit(conn, clock, operator, "remittance_claim", claimant, {
        "remittance_id": record["id"], "from_uin": record["uin"], "claim_remittance_id": new_id,
        "bank_reference": record["bank_reference"], "amount": record["amount"],
        "request_id": request_id})
    return {"remittance_id": record["id"], "claim_remittance_id": new_id,
            "amount": format_yuan(record["amount"]), "txn_id": credit}


def _claimable(conn: Connection, claimant: int, bank_reference: str, amount: int) -> dict:
    """The one record of another account with this reference and amount, in CNY, not
    credited there (credited: refused with the way SPEC moves it instead)."""
    mine = [_R.bank_reference == bank_reference, _R.amount == amount, _R.currency == CNY,
            _R.uin.is_not(None), _R.uin != claimant]
    rows = conn.execute(select(remittances).where(*mine, _R.state.in_(CLAIMABLE))
                        .order_by(_R.id).limit(2)).mappings().all()
    if not rows and conn.execute(select(_R.id).where(*mine, _R.state == CREDITED)).first():
        raise Conflict(
            "该汇款已充值到另一账号：需由该账号通过集团资金调拨或提现转出（尚未提供），不能认领",
            "the remittance was credited to the other account: that account has to move it by "
            "group fund allocation or a withdrawal (neither exists yet); it cannot be claimed",
            field="bank_reference", state=CREDITED)
    if len(rows) != 1:
        zh = "没有" if not rows else "有多笔"
        raise Conflict(f"{zh}可认领的汇款与该银行流水号和金额相符",
                       f"{'no' if not rows else 'more than one'} claimable remittance matches "
                       "this bank reference and amount", field="bank_reference")
    return dict(rows[0])


def _check_evidence(conn: Connection, claimant: int, record: dict, evidence: Mapping) -> None:
    """The claim's facts are the bank's record, and the corrected number is the
    claimant's own: a claim cannot take a transfer on a payer name alone."""
    numbers = {prefix + code for (code,) in conn.execute(
        select(remittance_codes.c.code).where(remittance_codes.c.uin == claimant))
        for prefix in (bank.prefix for bank in service.Settings.from_env().banks)}
    facts = {"payer_account": (evidence.get("payer_account"), record["payer_account"]),
             "remitted_on": (evidence.get("remitted_on"), record["value_date"])}
    for field, (said, known) in facts.items():
        if str(said) != str(known):
            raise Conflict(f"认领信息与银行流水不符：{field}", f"the claim's {field} is not the "
                           "bank's record of the transfer", field=field)
    if evidence.get("corrected_number") not in numbers:
        raise Conflict("正确的收款账号须为认领账号自己的 25 位收款账号",
                       "the correct receiving number must be the claimant's own 25-digit number",
                       field="corrected_number")


def _claimant_record(conn: Connection, original: dict, claimant: int, request_id: int,
                     now) -> int:
    """The claimant's own record of the same transfer, credited: a copy keyed
    ``claim:{request}`` as its receiving account, so a re-import of the statement still
    finds the original (a duplicate) and never this one."""
    row = {k: v for k, v in original.items() if k != "id"}
    row.update(receiving_account=f"{CLAIM_ACCOUNT_PREFIX}{request_id}", uin=claimant,
               state=CREDITED, reason="认领自其他账号 / claimed from another account", reviews=0, flagged_at=None, assigned_by=None,
               released_by=None, credited_at=now, arrival_txn_id=None, txn_id=None,
               updated_at=now)
    return conn.execute(insert(remittances).values(**row).returning(_R.id)).scalar_one()


# ---------------------------------------------------------------- RMT-10 legacy remittances

def credit_legacy_form(conn: Connection, clock: Clock, operator: Actor, uin: int, *,
                       request_id: int, amount: int, payer_name: str, value_date: date,
                       bank_reference: str | None = None) -> dict:
    """Credit a legacy form's ``amount`` to ``uin`` from the one legacy transfer it names
    (paid to a bare 15-digit platform account on ``value_date`` by ``payer_name``; the
    bank reference, if given, decides between several). The transfer's record moves to
    ``legacy`` (no longer assignable or refundable), then its remaining amount falls by
    a conditional UPDATE (``remaining >= amount``): the forms never credit more than
    the transfer, and it is credited once in total. A ``recharge`` entry, sub-type
    ``offline``. Audited. A cancelled account is refused (ACC-5, 409 naming ``uin``)."""
    require_operator(operator)
    _require_account(conn, uin)
    _refuse_cancelled(conn, uin)
    record = _legacy_match(conn, payer_name, value_date, bank_reference)
    now = db_time(clock.now())
    if _claim(conn, record["id"], [_R.state.in_((UNASSIGNED, LEGACY)), _R.uin.is_(None)], {
            "state": LEGACY, "updated_at": now, "reason": rules.STATE_NAMES[LEGACY][0]
            + " / " + rules.STATE_NAMES[LEGACY][1]}) is None:
        raise _not_in_state(_load(conn, record["id"]), "按表单入账", "credited by forms")
    conn.execute(insert_if_absent(conn, remittance_legacy_transfers).values(
        remittance_id=record["id"], amount=record["amount"], remaining=record["amount"],
        updated_at=now))
    left = conn.execute(update(remittance_legacy_transfers).where(
        _L.remittance_id == record["id"], _L.remaining >= amount)
        .values(remaining=_L.remaining - amount, updated_at=now)
        .returning(_L.remaining)).scalar()
    if left is None:
        remaining = conn.execute(select(_L.remaining).where(
            _L.remittance_id == record["id"])).scalar_one()
        raise Conflict(f"申请金额 {format_yuan(amount)} 元超过该笔汇款尚未入账的 "
                       f"{format_yuan(remaining)} 元",
                       f"the form's {format_yuan(amount)} yuan exceeds the "
                       f"{format_yuan(remaining)} yuan of the transfer not yet credited",
                       field="amount", remaining=remaining)
    txn_id = _credit(conn, clock, f"legacy:{request_id}", uin, amount, record["bank_reference"],
                     _platform_accounts(conn, clock)[1], LEGACY_SUB_TYPE)
    conn.execute(insert(remittance_legacy_credits).values(
        request_id=request_id, remittance_id=record["id"], uin=uin, amount=amount,
        txn_id=txn_id, operator=operator.label, created_at=now))
    record_audit(conn, clock, operator, "remittance_legacy_credit", uin, {
        "remittance_id": record["id"], "bank_reference": record["bank_reference"],
        "amount": amount, "request_id": request_id, "remaining": left})
    return {"remittance_id": record["id"], "amount": format_yuan(amount),
            "remaining": format_yuan(left), "txn_id": txn_id}


def _legacy_match(conn: Connection, payer_name: str, value_date: date,
                  bank_reference: str | None) -> dict:
    """The one legacy transfer (ours, paid to a bare 15-digit account, CNY, not yet
    given to an account) from this payer on this value date."""
    where = [_R.state.in_((UNASSIGNED, LEGACY)), _R.uin.is_(None), _R.currency == CNY,
             _R.value_date == value_date]
    if bank_reference:
        where.append(_R.bank_reference == bank_reference)
    payer = rules.normalize_name(payer_name)
    found = [dict(r) for r in conn.execute(select(remittances).where(*where).order_by(_R.id))
             .mappings() if is_legacy_number(r["payee_account"])
             and rules.normalize_name(r["payer_name"]) == payer]
    if not found:
        raise Conflict("没有与该表单（付款人、汇款日期）相符的旧账号汇款，可能填写有误",
                       "no legacy transfer matches the form (payer, date); it is probably "
                       "mistyped", field="payer_name")
    if len(found) > 1:
        raise Conflict("有多笔旧账号汇款与该表单相符，请填写银行流水号",
                       "several legacy transfers match the form; give the bank reference",
                       field="bank_reference")
    return found[0]


def is_legacy_number(payee_account: str) -> bool:
    """Paid to the platform's bare 15-digit account, no 10-digit code (RMT-10)."""
    digits = "".join(ch for ch in payee_account if ch not in " -\u3000")
    return len(digits) == rules.PREFIX_DIGITS and digits.isascii() and digits.isdigit()


def legacy_transfer(conn: Connection, actor: Actor, remittance_id: int) -> dict:
    """A legacy transfer (operators): its amount, what forms have not credited yet, each
    form credited from it, and the refund of its remainder (None: not refunded)."""
    require_operator(actor)
    record = _load(conn, remittance_id)
    row = conn.execute(select(remittance_legacy_transfers).where(
        _L.remittance_id == remittance_id)).mappings().first()
    credits = conn.execute(select(remittance_legacy_credits).where(
        remittance_legacy_credits.c.remittance_id == remittance_id)
        .order_by(remittance_legacy_credits.c.request_id)).mappings().all()
    refund_row = conn.execute(select(remittance_refunds).where(
        remittance_refunds.c.remittance_id == remittance_id)).mappings().first()
    return {"remittance_id": remittance_id, "state": record["state"],
            "amount": record["amount"], "currency": record["currency"],
            "remaining": row["remaining"] if row else record["amount"],
            "credits": [dict(c) for c in credits],
            "refund": dict(refund_row) if refund_row else None}


def legacy_remainders(conn: Connection, actor: Actor, remittance_ids: list[int]) -> dict:
    """Operators: per legacy transfer among ``remittance_ids`` (the queue's page), what
    forms have not credited yet and whether it was refunded: ``{id: {"remaining",
    "refunded"}}``; ids without a legacy row are left out."""
    require_operator(actor)
    if not remittance_ids:
        return {}
    refunded = set(conn.execute(select(remittance_refunds.c.remittance_id).where(
        remittance_refunds.c.remittance_id.in_(remittance_ids))).scalars())
    return {rid: {"remaining": left, "refunded": rid in refunded} for rid, left in
            conn.execute(select(_L.remittance_id, _L.remaining).where(
                _L.remittance_id.in_(remittance_ids)))}


# ---------------------------------------------------------------- shared

def _credit(conn: Connection, clock: Clock, key_id: object, uin: int, amount: int,
            reference: str, suspense: int, sub_type: str) -> int:
    """suspense -> the customer's cash, arrears and advances repaid after (ARR-4)."""
    return funds.receive(
        conn, clock, uin, amount, key=f"remittance:{key_id}", source_account_id=suspense,
        action_type="recharge", pay_channel=rules.PAY_CHANNEL, sub_type=sub_type,
        memo=reference[:200],
        request={"op": "remittance", "id": key_id, "amount": amount}).txn_id


def _claim(conn: Connection, remittance_id: int, where: list, values: dict) -> dict | None:
    """The conditional UPDATE whose returned row decides (docs/architecture.md)."""
    row = conn.execute(update(remittances).where(_R.id == remittance_id, *where)
                       .values(**values).returning(*remittances.c)).mappings().first()
    return dict(row) if row else None


def _load(conn: Connection, remittance_id: object) -> dict:
    if type(remittance_id) is not int or remittance_id <= 0:
        raise invalid("remittance_id", "汇款记录编号无效", "invalid remittance id")
    row = conn.execute(select(remittances).where(_R.id == remittance_id)).mappings().first()
    if row is None:
        raise not_found("remittance_id", "汇款记录", "remittance", remittance_id)
    return dict(row)


def _not_in_state(record: dict | None, zh_action: str, en_action: str) -> Conflict:
    state = record["state"] if record else None
    zh, en = rules.STATE_NAMES.get(state, (str(state), str(state)))
    rid = record["id"] if record else None
    return Conflict(f"汇款记录 {rid} 当前为「{zh}」，不能{zh_action}",
                    f"remittance {rid} is {en}; it cannot be {en_action}",
                    field="remittance_id", state=state)


def _require_account(conn: Connection, uin: int) -> None:
    if conn.execute(select(customers.c.uin).where(customers.c.uin == uin)).scalar() is None:
        raise not_found("uin", "账号", "account", uin)


def _refuse_cancelled(conn: Connection, uin: int) -> None:
    """ACC-5: nothing is credited to a cancelled account. The account's balance rows
    are locked first (the cancellation's lock order), then its state read: a
    cancellation that committed before is seen; one that comes after waits, then
    finds the cash."""
    funds.lock_balances(conn, uin)
    if conn.execute(select(customers.c.status).where(
            customers.c.uin == uin)).scalar() == "cancelled":
        raise Conflict(f"账号 {uin} 已注销，不能入账：汇款须退款给付款人",
                       f"account {uin} is cancelled and cannot be credited: the remittance "
                       "has to be refunded to the payer", field="uin", state="cancelled")


def _payers_of(conn: Connection, uin: int) -> rules.AccountPayers:
    """The account's verified entity name and registered payer names (RMT-4)."""
    state, entity = conn.execute(select(customers.c.realname_state, customers.c.entity_name)
                                 .where(customers.c.uin == uin)).one()
    names = conn.execute(select(remittance_payers.c.normalized).where(
        remittance_payers.c.uin == uin, remittance_payers.c.removed_at.is_(None))).scalars()
    verified = entity if state in VERIFIED_REALNAME and entity else None
    return rules.AccountPayers(verified, frozenset(names))


def _platform_accounts(conn: Connection, clock: Clock) -> tuple[int, int]:
    return (funds.platform_account(conn, clock, BANK_ACCOUNT),
            funds.platform_account(conn, clock, SUSPENSE_ACCOUNT))


def refund_of(conn: Connection, actor: Actor, remittance_id: int) -> dict | None:
    """The refund of a record (its payout details, the day the money arrives by, and
    for operators who confirmed it), or None; for the account (FINANCE) or operators.
    A customer never sees the operator's name (``confirmed_by`` left out)."""
    record = _load(conn, remittance_id)
    if record["uin"] is None:
        require_operator(actor)
    else:
        require(actor, record["uin"], FINANCE)
    row = conn.execute(select(remittance_refunds).where(
        remittance_refunds.c.remittance_id == remittance_id)).mappings().first()
    if row is None:
        return None
    return {k: v for k, v in row.items() if k != "confirmed_by" or actor.kind != "user"}


__all__ = ["CLAIMABLE", "REFUNDABLE", "REFUND_WORKING_DAYS", "claim", "credit_legacy_form",
           "is_legacy_number", "legacy_remainders", "legacy_transfer", "refund",
           "refund_legacy_remainder", "refund_of", "refund_unassigned",
           "refundable_record"]
