"""Operators' arrears measures (ARR-6): take all of an account's services offline,
reclaim all its resources without keeping data, charge liquidated damages (违约金),
set arrears off against money the platform owes the account.

Owns no table of its own: each measure taken is an account event of the arrears
lifecycle (``arrears.tables.account_events``, kinds ``measure_*``) whose unique
``step_key`` is made from the request's idempotency key — the claim that makes a
repeat (even a concurrent one) return the first result — plus an audit entry and a
notice to the account. Money moves through ``funds`` (``charge_damages``,
``set_off_arrears``) and, for payouts due, ``withdrawals.payouts.return_to_cash``;
resources through ``resources`` (``stop_all``, ``release_all``). Every measure runs
in the caller's unit of work and locks the account's balance rows first (the claim
order, docs/architecture.md; a set-off its failed withdrawals before them), then
the arrears case, then the resources. docs/arrears.md, "Operators' measures".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable

from sqlalchemy import Connection, insert, select

from feecenter.accounts.permissions import Actor, require_operator
from feecenter.arrears import rules
from feecenter.arrears import service as arrears
from feecenter.arrears.tables import account_events
from feecenter.audit.service import record_audit
from feecenter.catalog import service as catalog
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.errors import Conflict, FeeCenterError, IdempotencyConflict, invalid
from feecenter.funds import service as funds
from feecenter.inputs import account_key, plain_text
from feecenter.money import MAX_AMOUNT_FEN, format_yuan
from feecenter.notifications.service import notify
from feecenter.resources import service as resources
from feecenter.usage import service as usage
from feecenter.withdrawals import payouts, settling
from feecenter.withdrawals import service as withdrawals

_E = account_events.c
# measure -> (event kind, notification template, audit action)
MEASURES = {
    "offline": ("measure_offline", "arrears_measure_offline", "arrears_offline"),
    "reclaim": ("measure_reclaim", "arrears_measure_reclaim", "arrears_reclaim"),
    "damages": ("measure_damages", "arrears_measure_damages", "arrears_damages"),
    "set_off": ("measure_set_off", "arrears_measure_set_off", "arrears_set_off"),
}
EVENT_KINDS = tuple(kind for kind, _, _ in MEASURES.values())
MAX_LIST = 500


# ---------------------------------------------------------------- the measures

def take_offline(conn: Connection, clock: Clock, operator: Actor, uin: int, *, reason: str,
                 key: str) -> dict:
    """Stop every running resource of the account in arrears, prepaid and postpaid
    (stop reason ``arrears_measure``): from now on their usage is not charged; data
    kept. They restart when the arrears case closes (paid), as the case's own stops."""
    reason = _reason(reason)

    def act(now, stored: str) -> tuple[dict, dict]:
        owed = _owed(conn, clock, operator, uin)
        arrears.ensure_open_case(conn, clock, uin)
        stopped = resources.stop_all(conn, uin, rules.MEASURE_STOP, now)
        if not stopped:
            raise Conflict(f"账号 {uin} 没有运行中的资源", f"account {uin} has no running resource",
                           field="uin")
        for r in stopped:
            usage.restate_stopped(conn, r["id"], db_time(now))
        result = {"amount": owed, "resources": [r["id"] for r in stopped]}
        return result, {"amount": format_yuan(owed), "resources": _lines(stopped)}

    return _measure(conn, clock, operator, uin, "offline", {"reason": reason}, key, act)


def reclaim_all(conn: Connection, clock: Clock, operator: Actor, uin: int, *, reason: str,
                key: str) -> dict:
    """Release every resource of the account in arrears at once (state recycled,
    ``released_at`` now; no recycle bin, data not kept; reason ``arrears_reclaim`` in
    the event). Prepaid resources get no refund of their unused time; a postpaid
    resource's freeze is released as on any release (FRZ-3)."""
    reason = _reason(reason)

    def act(now, stored: str) -> tuple[dict, dict]:
        owed = _owed(conn, clock, operator, uin)
        arrears.ensure_open_case(conn, clock, uin)
        released = resources.release_all(conn, uin, now)
        if not released:
            raise Conflict(f"账号 {uin} 没有可回收的资源", f"account {uin} has no resource to reclaim",
                           field="uin")
        _schedule_freezes(conn, released, now)
        result = {"amount": owed, "resources": [r["id"] for r in released],
                  "prepaid": [r["id"] for r in released if r["pay_mode"] == "prepaid"],
                  "refund": 0, "stop_reason": rules.MEASURE_RECLAIM}
        return result, {"amount": format_yuan(owed), "resources": _lines(released)}

    return _measure(conn, clock, operator, uin, "reclaim", {"reason": reason}, key, act)


def charge_damages(conn: Connection, clock: Clock, operator: Actor, uin: int, *, amount: int,
                   reason: str, key: str) -> dict:
    """Liquidated damages (违约金) as an adjustment: taken from cash, the rest becoming
    arrears, to the platform account ``liquidated_damages`` (``funds.charge_damages``:
    one ``adj_deduct`` transaction and its 收支明细 entry)."""
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT_FEN:
        raise invalid("amount", "违约金金额必须为正数", "the liquidated damages must be a positive amount")
    reason = _reason(reason)

    def act(now, stored: str) -> tuple[dict, dict]:
        charged = funds.charge_damages(conn, clock, uin, amount, key=f"damages:{stored}",
                                       memo=f"违约金 / liquidated damages: {reason}")
        owed = _owed(conn, clock, operator, uin, required=False)
        result = {"amount": amount, "cash": charged["cash"], "arrears": charged["arrears"],
                  "owed_after": owed, "txn_id": charged["txn_id"]}
        return result, {"amount": format_yuan(amount), "cash": format_yuan(charged["cash"]),
                        "arrears": format_yuan(owed)}

    return _measure(conn, clock, operator, uin, "damages", {"amount": amount, "reason": reason},
                    key, act)


def set_off(conn: Connection, clock: Clock, operator: Actor, uin: int, *, key: str) -> dict:
    """Set what the account owes (arrears, then unrepaid advances: ARR-4) off against
    money the platform owes it: first its payouts due — each failed withdrawal is
    returned to cash (``withdrawals.payouts.return_to_cash``: incoming money, so it
    repays arrears and advances first) —, then the cash it holds while owing, e.g. a
    refund or a released freeze credited while in arrears (``funds.set_off_arrears``).
    Refused (field ``uin``) when the account owes nothing."""
    failed: list[int] = []

    def act(now, stored: str) -> tuple[dict, dict]:
        before = funds.balance_view(conn, clock, operator, uin)
        if before.arrears + before.advances <= 0:
            raise Conflict(f"账号 {uin} 没有欠费或未回款的垫付，无可抵扣",
                           f"account {uin} owes no arrears or advances: nothing to set off",
                           field="uin", state="normal")
        returned = sum(payouts.return_to_cash(conn, clock, operator, withdrawal_id,
                                              reason=SET_OFF_REASON)["returned"]
                       for withdrawal_id in failed)
        txn_ids = _set_off_cash(conn, clock, uin, f"setoff:{stored}", returned > 0)
        after = funds.balance_view(conn, clock, operator, uin)
        repaid, advances = before.arrears - after.arrears, before.advances - after.advances
        result = {"amount": repaid + advances, "arrears": repaid, "advances": advances,
                  "withdrawals": failed, "returned": returned, "owed_after": after.arrears,
                  "txn_ids": txn_ids}
        return result, {"amount": format_yuan(repaid + advances), "repaid": format_yuan(repaid),
                        "advances": format_yuan(advances), "arrears": format_yuan(after.arrears)}

    return _measure(conn, clock, operator, uin, "set_off", {}, key, act,
                    before=lambda: failed.extend(_lock_failed_withdrawals(conn, uin)))


SET_OFF_REASON = "欠费抵扣：退回现金以偿还欠款 / set off against arrears (ARR-6)"


def _lock_failed_withdrawals(conn: Connection, uin: int) -> list[int]:
    """The account's failed withdrawals (payouts due, held: WDR-5), locked in id order
    before the balances — the withdrawals' own order (``return_to_cash`` locks the
    withdrawal, then moves money through the balances); those still failed once locked."""
    ids = [w["id"] for w in withdrawals.in_progress(conn, uin) if w["state"] == "failed"]
    return [w["id"] for w in (settling.lock_withdrawal(conn, i) for i in ids)
            if w["state"] == "failed"]


def _set_off_cash(conn: Connection, clock: Clock, uin: int, key: str,
                  returned_some: bool) -> list[int]:
    """The cash part of a set-off; its refusal (nothing owed or no cash left) stands
    only when no withdrawal was returned either (nothing is written before it)."""
    try:
        return funds.set_off_arrears(conn, clock, uin, key=key)["txn_ids"]
    except Conflict:
        if not returned_some:
            raise
        return []


# ---------------------------------------------------------------- the common path

def _measure(conn: Connection, clock: Clock, operator: Actor, uin: int, measure: str,
             request: dict, key: str, act: Callable, *, before: Callable | None = None) -> dict:
    """Claim the key, act, then record the event, the audit entry and the notice.

    A repeat of the key returns the first result (``created`` False) and writes
    nothing; the key used for another measure or other input: IdempotencyConflict.
    ``before``: locks taken ahead of the balances (their owners' order)."""
    require_operator(operator)
    stored = account_key(uin, key)
    if before is not None:
        before()
    funds.lock_balances(conn, uin)  # NotFound (uin) for an unknown account; serializes
    step_key = "measure:" + hashlib.sha256(stored.encode()).hexdigest()[:48]
    request = {"measure": measure, **request}
    earlier = conn.execute(select(account_events).where(_E.step_key == step_key)).mappings().first()
    if earlier is not None:
        return _replay(dict(earlier), request)
    kind, template, action = MEASURES[measure]
    now = clock.now()
    result, params = act(now, stored)
    case = arrears.ensure_open_case(conn, clock, uin)
    notification_key = f"arrears:{step_key}"
    detail = {"request": request, "result": result, "operator": operator.label,
              "key": key}
    event_id = conn.execute(insert(account_events).values(
        uin=uin, case_id=case["id"] if case else None, kind=kind, resource_id=None,
        at=db_time(now), detail=_json(detail), step_key=step_key,
        notification_key=notification_key).returning(_E.id)).scalar_one()
    record_audit(conn, clock, operator, action, uin, {**request, **result, "key": key,
                                                     "event_id": event_id})
    notify(conn, clock, uin, template, {**params, "reason": request.get("reason", "-")},
           key=notification_key)
    return _shown(uin, measure, event_id, now, detail, created=True)


def _replay(event: dict, request: dict) -> dict:
    detail = json.loads(event["detail"])
    if detail["request"] != request:
        raise IdempotencyConflict("幂等键已用于另一项欠费处置", "idempotency key already used for "
                                  "another arrears measure", field="idempotency_key")
    measure = request["measure"]
    return _shown(event["uin"], measure, event["id"], from_db_time(event["at"]), detail,
                  created=False)


def _shown(uin: int, measure: str, event_id: int, at, detail: dict, *, created: bool) -> dict:
    return {"id": event_id, "uin": uin, "measure": measure, "at": at, "created": created,
            "operator": detail["operator"], "reason": detail["request"].get("reason"),
            **detail["result"]}


def _json(value: dict) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def _reason(reason: object) -> str:
    text = plain_text(reason, "reason", 200).strip()
    if not text:
        raise invalid("reason", "必须填写处置原因", "a reason is required")
    return text


def _owed(conn: Connection, clock: Clock, operator: Actor, uin: int, *,
          required: bool = True) -> int:
    """The arrears the account owes now (fen); with ``required``, Conflict (field uin)
    when it owes nothing: offline and reclaim are measures against arrears."""
    owed = funds.balance_view(conn, clock, operator, uin).arrears
    if required and owed <= 0:
        raise Conflict(f"账号 {uin} 未欠费，不能采取欠费处置",
                       f"account {uin} is not in arrears: no arrears measure applies",
                       field="uin", state="normal")
    return owed


def _schedule_freezes(conn: Connection, released: list[dict], now) -> None:
    """A released postpaid resource's freeze follows its product's rule (FRZ-3), as a
    destroyed one's: ``resources.release_due_freezes`` releases it when due."""
    for r in released:
        if r["pay_mode"] == "postpaid" and r["freeze_hold_id"]:
            try:
                facts = catalog.get_product(conn, r["product_code"])
            except FeeCenterError:
                facts = None  # the product left the catalog: at once
            release_at = arrears.freeze_release_time(facts, now)
            resources.update_resource(conn, r["id"], freeze_release_at=db_time(release_at))


def _lines(rows: list[dict]) -> str:
    return "\n".join(f"- {r['id']}{' ' + r['name'] if r.get('name') else ''} "
                     f"({r['product_code']}, {r['region']})" for r in rows)


# ---------------------------------------------------------------- reading

def list_measures(conn: Connection, actor: Actor, uin: int | None = None, *,
                  limit: int = 100) -> list[dict]:
    """The measures taken, newest first (one account's, or every account's); operators."""
    require_operator(actor)
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIST:
        raise invalid("limit", f"条数须为 1–{MAX_LIST}", f"limit must be 1-{MAX_LIST}")
    stmt = (select(account_events).where(_E.kind.in_(EVENT_KINDS))
            .order_by(_E.id.desc()).limit(limit))
    if uin is not None:
        stmt = stmt.where(_E.uin == uin)
    by_kind = {kind: measure for measure, (kind, _, _) in MEASURES.items()}
    out = []
    for row in conn.execute(stmt).mappings():
        detail = json.loads(row["detail"])
        out.append(_shown(row["uin"], by_kind[row["kind"]], row["id"], from_db_time(row["at"]),
                          detail, created=False))
    return out
