"""Withdrawals (提现, WDR-1..6): the withdrawable amount, previewing and applying
(the money held at once, WDR-4), reading them. Owns ``withdrawals`` and
``withdrawal_legs`` (tables.py); the payout of the legs (the online sender, the
operators' bank payout batches, failed reviews) is ``payout``'s.

Applying is race-free: the account's balance rows are locked first
(``funds.withdrawal_balances``, the claim order's balances step); the request key's
earlier use, the withdrawable amount and what each source has left are all read
under that lock, so concurrent applications never take more than is withdrawable.
Idempotent per (uin, request key). Views: amounts int fen, times naive UTC as
stored (adapters format them); docs/withdrawal.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict
from datetime import datetime

from sqlalchemy import Connection, func, insert, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.clock import Clock, business_date, db_time, from_db_time
from feecenter.errors import ConfigurationError, IdempotencyConflict, invalid, not_found
from feecenter.funds import service as funds
from feecenter.invoices.invoiceable import invoice_debt
from feecenter.money import MAX_AMOUNT_FEN, format_yuan
from feecenter.recharges.tables import recharges
from feecenter.remittances.tables import remittances
from feecenter.withdrawals import rules
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals

WITHDRAWAL_STATES = ("in_progress", "failed", "paid", "returned")  # failed = needs review
UNFINISHED_STATES = ("in_progress", "failed")
LEG_STATES = ("pending", "sending", "queued", "batched", "paid", "failed", "returned")
ROUTES = ("original", "offline")
SOURCES = ("recharge", "remittance", "bank")
MAX_PICKED = 50
MAX_PAGE = 100
_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces
_ACCOUNT_NO = re.compile(r"^[0-9]{8,30}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
BANK_FIELDS = {"holder": 200, "account_no": 30, "bank": 100, "branch": 100}
_W, _L = withdrawals.c, withdrawal_legs.c


# ---------------------------------------------------------------- the withdrawable amount

def parts_of(conn: Connection, clock: Clock, actor: Actor, uin: int) -> rules.WithdrawableParts:
    """WDR-1's parts for ``uin`` now; an unknown UIN raises NotFound."""
    view = funds.balance_view(conn, clock, actor, uin)
    return rules.WithdrawableParts(
        cash=view.cash, invoice_debt=invoice_debt(conn, uin), unrepaid_advances=view.advances,
        frozen=view.frozen, gift=view.gift, income=view.income, transferred_in_unspent=0)


def withdrawable(conn: Connection, clock: Clock, actor: Actor, uin: int) -> dict:
    """``{"raw", "takeable", "parts"}`` in fen: the raw value even when negative, what a
    withdrawal may take, and every part, the bracket's value as ``frozen_cash``."""
    require(actor, uin, FINANCE)
    parts = parts_of(conn, clock, actor, uin)
    raw = rules.withdrawable(parts)
    return {"raw": raw, "takeable": rules.takeable(raw),
            "parts": {**asdict(parts), "frozen_cash": rules.frozen_cash(parts)}}


def _takeable_now(conn: Connection, clock: Clock, actor: Actor, uin: int,
                  unfrozen_cash: int) -> tuple[dict, int]:
    """The withdrawable view and what may be taken: WDR-1's takeable, and never more
    than the unfrozen cash less the debts (the ledger's exact frozen cash: the
    formula's bracket is smaller when gift came in after a freeze took cash)."""
    view = withdrawable(conn, clock, actor, uin)
    parts = view["parts"]
    exact = unfrozen_cash - parts["invoice_debt"] - parts["unrepaid_advances"] \
        - parts["transferred_in_unspent"]
    return view, max(min(view["raw"], exact), 0)


# ---------------------------------------------------------------- inputs

def windows_from_env() -> rules.Windows:
    """FEECENTER_WITHDRAWAL_WINDOWS, e.g. "wechat=180,netbank=90" (days, at most 360;
    a channel not named: 360)."""
    try:
        return rules.parse_windows(os.environ.get("FEECENTER_WITHDRAWAL_WINDOWS"))
    except ValueError as exc:
        raise ConfigurationError("FEECENTER_WITHDRAWAL_WINDOWS 设置有误",
                                 f"FEECENTER_WITHDRAWAL_WINDOWS is wrong: {exc}") from None


def _check_route(route: object) -> str:
    if route not in ROUTES:
        raise invalid("route", "提现方式须为 original（原路提现）或 offline（线下提现）",
                      "route must be original or offline")
    return route


def _check_amount(amount: object) -> int:
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= MAX_AMOUNT_FEN:
        raise invalid("amount", "提现金额必须大于 0", "the amount must be more than 0")
    return amount


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise invalid("key", "幂等键须为 1–64 个可打印 ASCII 字符（不含空格）",
                      "key must be 1-64 printable ASCII characters without spaces")
    return key


def _check_picked(recharge_ids: object, route: str) -> list[int] | None:
    if recharge_ids is None:
        return None
    if route != "original":
        raise invalid("recharge_ids", "只有原路提现可以选择充值记录",
                      "only an original-route withdrawal picks recharges")
    if (not isinstance(recharge_ids, list | tuple) or not 1 <= len(recharge_ids) <= MAX_PICKED
            or any(isinstance(i, bool) or not isinstance(i, int) or i < 1 for i in recharge_ids)
            or len(set(recharge_ids)) != len(recharge_ids)):
        raise invalid("recharge_ids", f"充值记录须为 1–{MAX_PICKED} 个不重复的编号",
                      f"recharge_ids must be 1-{MAX_PICKED} distinct ids")
    return list(recharge_ids)


def _check_bank(conn: Connection, actor: Actor, uin: int, bank: object,
                route: str) -> dict | None:
    """The offline route's bank account, its holder the account's verified entity."""
    if route != "offline":
        if bank is not None:
            raise invalid("bank", "只有线下提现填写银行账户",
                          "only an offline withdrawal gives a bank account")
        return None
    if not isinstance(bank, dict) or set(bank) != set(BANK_FIELDS):
        raise invalid("bank", "线下提现须填写收款银行账户：holder、account_no、bank、branch",
                      "an offline withdrawal needs the bank account: holder, account_no, "
                      "bank, branch")
    clean = {name: _bank_text(bank[name], name, limit) for name, limit in BANK_FIELDS.items()}
    if not _ACCOUNT_NO.match(clean["account_no"]):
        raise invalid("bank.account_no", "银行账号须为 8–30 位数字",
                      "the account number must be 8-30 digits")
    entity = (accounts.get_account(conn, actor, uin)["entity_name"] or "").strip()
    if not entity:
        raise invalid("bank.holder", "账号未完成实名认证，不能线下提现",
                      "the account has no verified entity: no offline withdrawal")
    if clean["holder"] != entity:
        raise invalid("bank.holder", f"收款户名须与实名认证主体一致：{entity}",
                      f"the holder must be the verified entity: {entity}")
    return clean


def _bank_text(value: object, name: str, limit: int) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text or len(text) > limit or _CONTROL.search(text):
        raise invalid(f"bank.{name}", f"{name} 不能为空，至多 {limit} 个字符，不含控制字符",
                      f"{name} must be 1-{limit} characters without control characters")
    return text


def _digest(amount: int, route: str, picked: list[int] | None, bank: dict | None) -> str:
    request = {"amount": amount, "route": route, "recharge_ids": picked, "bank": bank}
    return hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------- sources and the plan

def _left_by_source(conn: Connection, uin: int, column) -> dict[int, int]:
    """Per source id, what the account's legs not returned took of it."""
    rows = conn.execute(select(column, func.sum(_L.amount)).where(
        _L.uin == uin, column.is_not(None), _L.state != "returned").group_by(column)).all()
    return {ref: int(total) for ref, total in rows}


def candidates(conn: Connection, uin: int, recharge_ids: list[int] | None = None
               ) -> list[rules.RouteSource]:
    """The account's paid recharges and credited CNY remittances with what each has
    left to refund (only the picked recharges when ``recharge_ids`` is given)."""
    r, m = recharges.c, remittances.c
    taken = _left_by_source(conn, uin, _L.recharge_id)
    where = [r.uin == uin, r.state == "paid", r.paid_at.is_not(None)]
    if recharge_ids is not None:
        where.append(r.id.in_(recharge_ids))
    found = [rules.RouteSource("recharge", row.id, row.channel, bool(row.intl_card),
                               from_db_time(row.paid_at), row.amount - taken.get(row.id, 0))
             for row in conn.execute(select(r.id, r.channel, r.intl_card, r.paid_at, r.amount)
                                     .where(*where))]
    if recharge_ids is not None:
        return found
    taken = _left_by_source(conn, uin, _L.remittance_id)
    return found + [
        rules.RouteSource("remittance", row.id, "remittance", False,
                          from_db_time(row.credited_at), row.amount - taken.get(row.id, 0))
        for row in conn.execute(select(m.id, m.credited_at, m.amount).where(
            m.uin == uin, m.state == "credited", m.currency == "CNY",
            m.credited_at.is_not(None)))]


def _plan(conn: Connection, clock: Clock, uin: int, amount: int, route: str,
          picked: list[int] | None, windows: rules.Windows) -> list[rules.RouteLeg]:
    if route == "offline":
        return [rules.RouteLeg("bank", 0, "bank", False, amount)]
    today = business_date(clock.now())
    found = candidates(conn, uin, picked)
    if picked is not None:
        _refuse_bad_picks(picked, found, today, windows)
    usable = rules.usable(found, today, windows)
    routable = sum(c.refundable for c in usable)
    if amount > routable:
        _refuse_beyond_route(amount, routable, found, usable, picked is not None)
    return rules.plan_route(amount, usable)


def _refuse_bad_picks(picked: list[int], found: list[rules.RouteSource], today, windows) -> None:
    known = {c.ref_id: c for c in found}
    missing = [i for i in picked if i not in known]
    if missing:
        raise invalid("recharge_ids", f"不是本账号已支付的充值记录：{missing}",
                      f"not paid recharges of this account: {missing}")
    late = [c.ref_id for c in found
            if not rules.in_window(business_date(c.paid_at), today, windows.of(c.window))]
    if late:
        raise invalid("recharge_ids", f"充值记录 {late} 已超过原路提现期限，只能线下提现",
                      f"recharges {late} are past the original route's window: "
                      "withdraw them offline")
    spent = [c.ref_id for c in found if c.refundable <= 0]
    if spent:
        raise invalid("recharge_ids", f"充值记录 {spent} 已无可原路退回的金额",
                      f"recharges {spent} have nothing left to refund")


def _refuse_beyond_route(amount: int, routable: int, found, usable, picked: bool) -> None:
    late = sum(c.refundable for c in found if c.refundable > 0 and c not in usable)
    text = format_yuan(routable)
    zh = f"原路最多可提现 {text} 元" + ("（所选充值记录）" if picked else "")
    en = f"the original route can take at most {text} yuan" + (
        " (the picked recharges)" if picked else "")
    if late:
        zh += f"；{format_yuan(late)} 元超过 {rules.WINDOW_MAX_DAYS} 天或原路期限，只能线下提现"
        en += (f"; {format_yuan(late)} yuan is past its window (money older than "
               f"{rules.WINDOW_MAX_DAYS} days leaves only offline)")
    raise invalid("amount", zh, en, routable=text)


def _refuse_above_takeable(amount: int, takeable: int) -> None:
    if amount > takeable:
        text = format_yuan(takeable)
        raise invalid("amount", f"提现金额超过可提现金额 {text} 元",
                      f"the amount is more than the withdrawable {text} yuan", withdrawable=text)


def _legs_view(plan: list[rules.RouteLeg], applied_at: datetime) -> list[dict]:
    out = []
    for leg in plan:
        start, end = rules.estimate(leg.channel, leg.intl_card, applied_at)
        out.append({"source": leg.source, "ref_id": leg.ref_id or None, "channel": leg.channel,
                    "intl_card": leg.intl_card, "amount": leg.amount,
                    "estimate_from": db_time(start), "estimate_to": db_time(end)})
    return out


# ---------------------------------------------------------------- preview and apply

def preview(conn: Connection, clock: Clock, actor: Actor, uin: int, *, amount: object,
            route: object, recharge_ids: object = None,
            windows: rules.Windows | None = None) -> dict:
    """What applying would do, read-only: ``{"amount", "route", "legs", "withdrawable"}``
    (refused as ``apply`` refuses, bank details aside)."""
    require(actor, uin, FINANCE)
    route, amount = _check_route(route), _check_amount(amount)
    picked = _check_picked(recharge_ids, route)
    unfrozen = funds.withdrawal_balances(conn, uin, lock=False)["cash"]
    view, takeable = _takeable_now(conn, clock, actor, uin, unfrozen)
    _refuse_above_takeable(amount, takeable)
    plan = _plan(conn, clock, uin, amount, route, picked, windows or windows_from_env())
    return {"amount": amount, "route": route, "legs": _legs_view(plan, clock.now()),
            "withdrawable": view}


def apply(conn: Connection, clock: Clock, actor: Actor, uin: int, *, amount: object,
          route: object, key: object, recharge_ids: object = None, bank: object = None,
          windows: rules.Windows | None = None) -> dict:
    """提现: hold ``amount`` now (WDR-4) and pay it out by ``route`` (original: the
    recharges and remittances it came from, LIFO inside their windows or the picked
    recharges, WDR-2; offline: the bank account given, WDR-3). No fee (WDR-6). The
    same ``key`` again returns the first withdrawal (another request under it:
    IdempotencyConflict). Returns ``get`` of the withdrawal."""
    require(actor, uin, FINANCE)
    route, amount, key = _check_route(route), _check_amount(amount), _check_key(key)
    picked = _check_picked(recharge_ids, route)
    account = _check_bank(conn, actor, uin, bank, route)
    digest = _digest(amount, route, picked, account)
    balances = funds.withdrawal_balances(conn, uin, lock=True)  # the claim: all below under it
    earlier = conn.execute(select(_W.id, _W.request_digest).where(
        _W.uin == uin, _W.request_key == key)).first()
    if earlier is not None:
        if earlier.request_digest != digest:
            raise IdempotencyConflict("该幂等键已用于另一笔提现申请",
                                      "key was used for another withdrawal", field="key")
        return get(conn, actor, earlier.id)
    _, takeable = _takeable_now(conn, clock, actor, uin, balances["cash"])
    _refuse_above_takeable(amount, takeable)
    plan = _plan(conn, clock, uin, amount, route, picked, windows or windows_from_env())
    withdrawal_id = _insert(conn, clock, actor, uin, key, digest, amount, route, account)
    _hold_and_record_legs(conn, clock, uin, withdrawal_id, route, plan)
    return get(conn, actor, withdrawal_id)


def _insert(conn: Connection, clock: Clock, actor: Actor, uin: int, key: str, digest: str,
            amount: int, route: str, account: dict | None) -> int:
    bank = {} if account is None else {
        "bank_holder": account["holder"], "bank_account_no": account["account_no"],
        "bank_name": account["bank"], "bank_branch": account["branch"]}
    return conn.execute(insert(withdrawals).values(
        uin=uin, request_key=key, request_digest=digest, route=route, amount=amount,
        state="in_progress", applied_by=actor.label, applied_at=db_time(clock.now()), **bank)
        .returning(_W.id)).scalar_one()


def out_refund_no(withdrawal_id: int, seq: int) -> str:
    """Our reference of a leg at the provider or bank (WeChat: ≤ 64 of [0-9A-Za-z])."""
    return f"WDR{withdrawal_id:012d}L{seq:02d}"


def _hold_and_record_legs(conn: Connection, clock: Clock, uin: int, withdrawal_id: int,
                          route: str, plan: list[rules.RouteLeg]) -> None:
    refs = [out_refund_no(withdrawal_id, seq) for seq in range(1, len(plan) + 1)]
    hold_ids, _ = funds.hold_for_withdrawal(
        conn, clock, uin, [(f"withdrawal:{ref}", leg.amount, ref) for leg, ref in zip(plan, refs)],
        key=f"withdrawal:{withdrawal_id}", route=route, memo=f"withdrawal {withdrawal_id}")
    applied_at = clock.now()
    rows = []
    for seq, (leg, ref, hold_id, view) in enumerate(
            zip(plan, refs, hold_ids, _legs_view(plan, applied_at)), start=1):
        rows.append({
            "withdrawal_id": withdrawal_id, "uin": uin, "seq": seq, "source": leg.source,
            "recharge_id": leg.ref_id if leg.source == "recharge" else None,
            "remittance_id": leg.ref_id if leg.source == "remittance" else None,
            "channel": leg.channel, "intl_card": leg.intl_card, "amount": leg.amount,
            "hold_id": hold_id, "state": "pending" if leg.source == "recharge" else "queued",
            "out_refund_no": ref, "estimate_from": view["estimate_from"],
            "estimate_to": view["estimate_to"], "attempts": 0})
    conn.execute(insert(withdrawal_legs), rows)


# ---------------------------------------------------------------- reading

_LEG_VIEW = ("id", "seq", "source", "channel", "intl_card", "amount", "state", "estimate_from",
             "estimate_to", "settled_at", "reason", "out_refund_no")


def _view(row, legs: list) -> dict:
    bank = None if row.bank_holder is None else {
        "holder": row.bank_holder, "account_no": row.bank_account_no, "bank": row.bank_name,
        "branch": row.bank_branch}
    return {"id": row.id, "uin": row.uin, "amount": row.amount, "route": row.route,
            "state": row.state, "applied_at": row.applied_at, "applied_by": row.applied_by,
            "finished_at": row.finished_at, "failure_reason": row.failure_reason,
            "legs": [{**{name: leg[name] for name in _LEG_VIEW},
                      "ref_id": leg["recharge_id"] or leg["remittance_id"]} for leg in legs],
            "bank": bank}


def _legs_of(conn: Connection, ids: list[int]) -> dict[int, list]:
    by: dict[int, list] = {i: [] for i in ids}
    if ids:
        for leg in conn.execute(select(withdrawal_legs).where(_L.withdrawal_id.in_(ids))
                                .order_by(_L.withdrawal_id, _L.seq)).mappings():
            by[leg["withdrawal_id"]].append(leg)
    return by


def get(conn: Connection, actor: Actor, withdrawal_id: int) -> dict:
    """One withdrawal with its legs and bank account; another account's is NotFound
    for a customer's user (no probing ids)."""
    row = conn.execute(select(withdrawals).where(_W.id == withdrawal_id)).first()
    if row is None or (actor.kind == "user" and actor.uin != row.uin):
        raise not_found("withdrawal_id", "提现记录", "withdrawal", withdrawal_id)
    require(actor, row.uin, FINANCE)
    return _view(row, _legs_of(conn, [row.id])[row.id])


def list_withdrawals(conn: Connection, actor: Actor, uin: int, *, state: str | None = None,
                     limit: int = 50, offset: int = 0) -> list[dict]:
    """The account's withdrawals, newest first, each as ``get`` shows it."""
    require(actor, uin, FINANCE)
    if state is not None and state not in WITHDRAWAL_STATES:
        raise invalid("state", f"未知的提现状态：{state}", f"unknown withdrawal state: {state}",
                      allowed=list(WITHDRAWAL_STATES))
    if not 1 <= limit <= MAX_PAGE or offset < 0:
        raise invalid("limit", f"每页 1–{MAX_PAGE} 条", f"limit must be 1-{MAX_PAGE}")
    where = [_W.uin == uin] + ([_W.state == state] if state else [])
    rows = conn.execute(select(withdrawals).where(*where).order_by(_W.id.desc())
                        .offset(offset).limit(limit)).all()
    legs = _legs_of(conn, [r.id for r in rows])
    return [_view(row, legs[row.id]) for row in rows]


def in_progress(conn: Connection, uin: int) -> list[dict]:
    """The account's withdrawals not finished (in progress or failed — needs review),
    oldest first: ``[{"id", "amount", "state", "applied_at"}]``. No permission check:
    for other domains (cancellation, arrears) deciding on the account."""
    rows = conn.execute(
        select(_W.id, _W.amount, _W.state, _W.applied_at)
        .where(_W.uin == uin, _W.state.in_(UNFINISHED_STATES)).order_by(_W.id)).mappings()
    return [dict(row) for row in rows]


def owed(conn: Connection, uin: int) -> int:
    """Fen held in the account's failed legs (a failed payout keeps its money held,
    WDR-5): what an operator may set off (ARR-6). No permission check."""
    return int(conn.execute(
        select(func.coalesce(func.sum(_L.amount), 0))
        .where(_L.uin == uin, _L.state == "failed")).scalar_one())
