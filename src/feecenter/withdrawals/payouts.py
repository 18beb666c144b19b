"""The operators' side of paying withdrawals out (WDR-2, WDR-3, WDR-5): the payout
queue of bank legs (remittances paid back, offline withdrawals), payout batches
exported as CSV and settled by importing the bank's result, the failed withdrawals
to review, and their two ways out — pay offline to a bank account, or return the
money to cash. Owns no table (it moves rows of ``withdrawals.tables``).

Every step is operator-only, audited (``audit.service.record_audit``) in the same
transaction, and moves money only through the ledger: a leg's hold is posted
exactly once (``settling``: the withdrawal row locked, then a conditional UPDATE
of the leg on its state). docs/withdrawal.md, "Paying out".
"""

from __future__ import annotations

import csv
import io

from sqlalchemy import Connection, case, func, insert, literal, select, update

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time
from feecenter.errors import Conflict, invalid, not_found
from feecenter.funds import service as funds
from feecenter.money import format_yuan
from feecenter.remittances.tables import remittances
from feecenter.withdrawals import rules, service, settling
from feecenter.withdrawals.tables import payout_batches, withdrawal_legs, withdrawals

_L = withdrawal_legs.c
_W = withdrawals.c
_B = payout_batches.c
RETURN_MEMO = "提现退回"
EXPORT_COLUMNS = ("leg_id", "withdrawal_id", "uin", "holder", "account_no", "bank", "branch",
                  "amount", "reference")
RESULT_COLUMNS = ("leg_id", "result", "reason")
MAX_RESULT_ROWS = 5000
MAX_REASON = 500


# ---------------------------------------------------------------- reading

def _payee_columns() -> tuple:
    """The payee of a bank leg: a remittance goes back to the remitter's account it
    came from; a ``bank`` leg to the withdrawal's bank account (offline route, or the
    one an operator gave when paying a failed leg offline)."""
    def by_source(remitter, bank, name: str):
        return case((_L.source == "remittance", remitter), else_=bank).label(name)
    return (by_source(remittances.c.payer_name, _W.bank_holder, "holder"),
            by_source(remittances.c.payer_account, _W.bank_account_no, "account_no"),
            by_source(remittances.c.payer_bank, _W.bank_name, "bank"),
            by_source(literal(""), _W.bank_branch, "branch"))


def _bank_legs(conn: Connection, *where) -> list[dict]:
    stmt = (select(*withdrawal_legs.c, *_payee_columns())
            .join(withdrawals, _W.id == _L.withdrawal_id)
            .outerjoin(remittances, remittances.c.id == _L.remittance_id)
            .where(_L.source.in_(("bank", "remittance")), *where).order_by(_L.id))
    return [dict(row) for row in conn.execute(stmt).mappings()]


def payout_queue(conn: Connection, actor: Actor) -> list[dict]:
    """Bank legs waiting for a payout batch, oldest first, with their payee."""
    require_operator(actor)
    return _bank_legs(conn, _L.state == "queued")


def failed_reviews(conn: Connection, actor: Actor) -> list[dict]:
    """Withdrawals "failed — needs review", oldest first, each as ``service.get``."""
    require_operator(actor)
    ids = conn.execute(select(_W.id).where(_W.state == "failed").order_by(_W.id)).scalars()
    return [service.get(conn, actor, withdrawal_id) for withdrawal_id in ids]


# ---------------------------------------------------------------- payout batches

def export_batch(conn: Connection, clock: Clock, actor: Actor) -> dict:
    """Put every queued bank leg into a new payout batch and return its CSV
    (``EXPORT_COLUMNS``, amount in yuan). The claim queued -> batched is one
    conditional UPDATE: two exports at once never share a leg."""
    require_operator(actor)
    now = db_time(clock.now())
    batch_id = conn.execute(insert(payout_batches).values(
        created_by=actor.label, created_at=now, legs=0, amount=0).returning(_B.id)).scalar_one()
    claimed = conn.execute(update(withdrawal_legs).where(
        _L.state == "queued", _L.source.in_(("bank", "remittance")))
        .values(state="batched", batch_id=batch_id).returning(_L.id, _L.amount)).all()
    if not claimed:
        raise Conflict("没有待打款的银行打款", "no bank payout is queued", field="batch")
    total = sum(amount for _, amount in claimed)
    conn.execute(update(payout_batches).where(_B.id == batch_id)
                 .values(legs=len(claimed), amount=total))
    record_audit(conn, clock, actor, "withdrawal.payout_batch.export", None,
                 {"batch_id": batch_id, "legs": [leg_id for leg_id, _ in claimed],
                  "amount": total})
    return {"batch_id": batch_id, "legs": len(claimed), "amount": total,
            "csv": batch_csv(conn, actor, batch_id)}


def batch_csv(conn: Connection, actor: Actor, batch_id: int) -> str:
    """The batch's payout file again (its legs in any state)."""
    require_operator(actor)
    _batch(conn, batch_id)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    for leg in _bank_legs(conn, _L.batch_id == batch_id):
        writer.writerow([leg["id"], leg["withdrawal_id"], leg["uin"], leg["holder"],
                         leg["account_no"], leg["bank"], leg["branch"],
                         format_yuan(leg["amount"]), leg["out_refund_no"]])
    return out.getvalue()


def _batch(conn: Connection, batch_id: object) -> dict:
    if type(batch_id) is not int:
        raise invalid("batch_id", "批次编号必须是整数", "batch_id must be an integer")
    row = conn.execute(select(payout_batches).where(_B.id == batch_id)).mappings().first()
    if row is None:
        raise not_found("batch_id", "打款批次", "payout batch", batch_id)
    return dict(row)


def parse_result(csv_text: object) -> list[tuple[int, str, str | None]]:
    """The bank's result file: header ``leg_id,result,reason``; result paid | failed,
    a failed row with its reason; each leg once. Bad input names the line."""
    if not isinstance(csv_text, str) or not csv_text.strip():
        raise invalid("csv", "结果文件不能为空", "the result file is empty")
    rows = list(csv.reader(io.StringIO(csv_text.lstrip("\ufeff"))))
    if not rows or tuple(c.strip() for c in rows[0]) != RESULT_COLUMNS:
        raise invalid("csv", f"结果文件第 1 行须为表头 {','.join(RESULT_COLUMNS)}",
                      f"line 1 of the result file must be the header {','.join(RESULT_COLUMNS)}",
                      line=1)
    if len(rows) - 1 > MAX_RESULT_ROWS:
        raise invalid("csv", f"结果文件至多 {MAX_RESULT_ROWS} 行", f"at most {MAX_RESULT_ROWS} rows")
    parsed, seen = [], set()
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        parsed.append(_result_row(number, row, seen))
    if not parsed:
        raise invalid("csv", "结果文件没有数据行", "the result file has no rows")
    return parsed


def _result_row(number: int, row: list[str], seen: set[int]) -> tuple[int, str, str | None]:
    def bad(zh: str, en: str):
        return invalid("csv", f"结果文件第 {number} 行：{zh}", f"line {number} of the result file: {en}",
                       line=number)
    cells = [c.strip() for c in row] + [""] * (3 - len(row))
    if len(row) > 3:
        raise bad("列数过多", "too many columns")
    leg_text, result, reason = cells[:3]
    if not (leg_text.isascii() and leg_text.isdigit() and len(leg_text) <= 18):
        raise bad("leg_id 须为正整数", "leg_id must be a positive integer")
    leg_id = int(leg_text)
    if leg_id in seen:
        raise bad(f"打款 {leg_id} 重复", f"leg {leg_id} appears twice")
    seen.add(leg_id)
    if result not in ("paid", "failed"):
        raise bad("result 只能是 paid 或 failed", "result must be paid or failed")
    if result == "failed" and not reason:
        raise bad("失败须填写原因", "a failed payout needs its reason")
    if len(reason) > MAX_REASON or any(ord(ch) < 32 for ch in reason):
        raise bad(f"原因至多 {MAX_REASON} 个字符，不含控制字符",
                  f"the reason is at most {MAX_REASON} characters, no control characters")
    return leg_id, result, reason or None


def import_batch_result(conn: Connection, clock: Clock, actor: Actor, batch_id: object,
                        csv_text: object) -> dict:
    """Settle a batch's legs from the bank's result: paid -> the hold posted to the
    platform account "bank_payouts"; failed -> the leg failed with the reason, its
    money held, the withdrawal failed — needs review, notified. A leg already settled
    (an earlier import, a concurrent one) is counted as ``already`` and not touched
    again. Every line must name a leg of this batch, else nothing is written."""
    require_operator(actor)
    batch = _batch(conn, batch_id)
    results = parse_result(csv_text)
    legs = {row.id: row for row in conn.execute(
        select(_L.id, _L.withdrawal_id).where(_L.batch_id == batch["id"]))}
    strangers = [leg_id for leg_id, _, _ in results if leg_id not in legs]
    if strangers:
        raise invalid("csv", f"结果文件中的打款不属于批次 {batch['id']}：{strangers[:10]}",
                      f"legs not in batch {batch['id']}: {strangers[:10]}", legs=strangers[:10])
    counts = {"paid": 0, "failed": 0, "already": 0}
    bank = funds.platform_account(conn, clock, settling.BANK_PAYOUTS)
    # the withdrawal rows are locked in id order: concurrent imports never deadlock
    for leg_id, result, reason in sorted(results, key=lambda r: (legs[r[0]].withdrawal_id, r[0])):
        counts[_settle_bank_leg(conn, clock, legs[leg_id].withdrawal_id, leg_id, result,
                                reason, bank)] += 1
    conn.execute(update(payout_batches).where(_B.id == batch["id"]).values(
        result_imported_by=actor.label, result_imported_at=db_time(clock.now())))
    record_audit(conn, clock, actor, "withdrawal.payout_batch.import", None,
                 {"batch_id": batch["id"], **counts,
                  "results": [[leg_id, result, reason] for leg_id, result, reason in results]})
    return {"batch_id": batch["id"], **counts}


def _settle_bank_leg(conn: Connection, clock: Clock, withdrawal_id: int, leg_id: int,
                     result: str, reason: str | None, bank_account_id: int) -> str:
    withdrawal = settling.lock_withdrawal(conn, withdrawal_id)
    if result == "paid":
        done = settling.mark_paid(conn, clock, leg_id, ("batched",), bank_account_id)
    else:
        done = settling.mark_failed(conn, clock, leg_id, ("batched",), reason or "-")
    if done is None:
        return "already"
    state = settling.refresh(conn, clock, withdrawal, done["reason"])
    if result == "failed" and state == "failed":
        settling.notify_failed(conn, clock, withdrawal, done)
    return result


# ---------------------------------------------------------------- failed withdrawals (WDR-5)

def _claim_failed(conn: Connection, withdrawal_id: object, new_state: str) -> tuple[dict, list]:
    """Lock a failed withdrawal and move its failed legs to ``new_state`` (the
    conditional UPDATE's row count decides): (withdrawal, claimed legs)."""
    if type(withdrawal_id) is not int:
        raise invalid("withdrawal_id", "提现编号必须是整数", "withdrawal_id must be an integer")
    withdrawal = settling.lock_withdrawal(conn, withdrawal_id)
    legs = [] if withdrawal["state"] != "failed" else [dict(row) for row in conn.execute(
        update(withdrawal_legs).where(_L.withdrawal_id == withdrawal_id, _L.state == "failed")
        .values(state=new_state).returning(*withdrawal_legs.c)).mappings()]
    if not legs:
        raise Conflict(f"提现 {withdrawal_id} 不是待审核的失败状态（当前：{withdrawal['state']}）",
                       f"withdrawal {withdrawal_id} is not failed — needs review "
                       f"(it is {withdrawal['state']})", field="state", state=withdrawal["state"])
    return withdrawal, sorted(legs, key=lambda leg: leg["seq"])


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise invalid("reason", f"须填写原因（至多 {MAX_REASON} 个字符）",
                      f"a reason is required (at most {MAX_REASON} characters)")
    return reason.strip()


def pay_offline(conn: Connection, clock: Clock, actor: Actor, withdrawal_id: object,
                bank: object, *, reason: object) -> dict:
    """Pay a failed withdrawal's failed legs to a bank account instead (WDR-5): each
    becomes "rerouted" and a new bank leg of the same amount, on the same ledger hold
    (the money stays held until the bank pays it), is queued for a payout batch. The
    holder must be the account's verified entity. Returns ``service.get``."""
    require_operator(actor)
    reason = _reason(reason)
    if type(withdrawal_id) is int:  # checked before anything moves (bad input: 4xx)
        uin = settling.lock_withdrawal(conn, withdrawal_id)["uin"]
        service._check_bank(conn, actor, uin, bank, "offline")
    withdrawal, legs = _claim_failed(conn, withdrawal_id, "rerouted")
    account = service._check_bank(conn, actor, withdrawal["uin"], bank, "offline")
    seq = conn.execute(select(func.max(_L.seq)).where(_L.withdrawal_id == withdrawal["id"])
                       ).scalar_one()
    start, end = rules.estimate("bank", False, clock.now())
    new_legs = [{"withdrawal_id": withdrawal["id"], "uin": withdrawal["uin"], "seq": seq + i,
                 "source": "bank", "channel": "bank", "intl_card": False,
                 "amount": leg["amount"], "hold_id": leg["hold_id"], "state": "queued",
                 "out_refund_no": service.out_refund_no(withdrawal["id"], seq + i),
                 "estimate_from": db_time(start), "estimate_to": db_time(end), "attempts": 0,
                 "reason": f"改为线下打款（原打款 {leg['id']}） / paid offline instead of leg {leg['id']}"}
                for i, leg in enumerate(legs, start=1)]
    conn.execute(insert(withdrawal_legs), new_legs)
    conn.execute(update(withdrawals).where(_W.id == withdrawal["id"]).values(
        bank_holder=account["holder"], bank_account_no=account["account_no"],
        bank_name=account["bank"], bank_branch=account["branch"]))
    settling.refresh(conn, clock, withdrawal)
    record_audit(conn, clock, actor, "withdrawal.pay_offline", withdrawal["uin"], {
        "withdrawal_id": withdrawal["id"], "reason": reason, "bank": account,
        "earlier_bank": _bank_of(withdrawal), "legs": [leg["id"] for leg in legs],
        "amount": sum(leg["amount"] for leg in legs)})
    return service.get(conn, actor, withdrawal["id"])


def _bank_of(withdrawal: dict) -> dict | None:
    if withdrawal["bank_holder"] is None:
        return None
    return {"holder": withdrawal["bank_holder"], "account_no": withdrawal["bank_account_no"],
            "bank": withdrawal["bank_name"], "branch": withdrawal["bank_branch"]}


def return_to_cash(conn: Connection, clock: Clock, actor: Actor, withdrawal_id: object, *,
                   reason: object) -> dict:
    """Give a failed withdrawal's failed legs back to the customer (WDR-5): each leg's
    hold is voided back to cash by ``funds.return_withdrawal`` — a 收支明细 entry
    "cash" of +amount (提现退回), then, as incoming money, arrears and advances repaid
    first (ARR-4). Returns ``service.get`` with ``returned`` (fen)."""
    require_operator(actor)
    reason = _reason(reason)
    withdrawal, legs = _claim_failed(conn, withdrawal_id, "returned")
    now = db_time(clock.now())
    txns = []
    for leg in legs:
        movement = funds.return_withdrawal(
            conn, clock, withdrawal["uin"], leg["hold_id"],
            memo=f"{RETURN_MEMO} / withdrawal returned {leg['out_refund_no']}")
        txns.append(movement.txn_id)
        conn.execute(update(withdrawal_legs).where(_L.id == leg["id"]).values(
            settled_at=now, reason=f"{leg['reason'] or '-'}；{RETURN_MEMO}：{reason}"[:2000]))
    total = sum(leg["amount"] for leg in legs)
    settling.refresh(conn, clock, withdrawal)
    record_audit(conn, clock, actor, "withdrawal.return_to_cash", withdrawal["uin"], {
        "withdrawal_id": withdrawal["id"], "reason": reason, "amount": total,
        "legs": [leg["id"] for leg in legs], "txn_ids": txns})
    return {**service.get(conn, actor, withdrawal["id"]), "returned": total}
