"""Account cancellation (注销, ACC-5): the blocking reasons, and the cancellation itself.
Owns no table: the account's state is ``accounts``', its keys and sessions ``auth``'s,
the money ``funds``'. Depends on accounts, auth, funds, recharges, remittances,
resources and withdrawals; none of them imports this package.

Blocking reasons (each listed, with the amount, count or records it concerns):
arrears, unrepaid credit advances, cash left (withdraw it first), frozen money,
recharges in progress, remittances in progress (pending confirmation, signature,
review, or held by an operator), withdrawals in progress (failed legs included),
resources not yet released. The gift balance does not block: it is forfeited on
cancellation (moved to the platform account ``forfeited_gift``, a 收支明细 entry).

Lock order (docs/cancellation.md): the account's balance rows first
(``funds.lock_balances``), then everything read and written; every movement of the
account's money (a recharge's credit included) takes the same lock first, so a
cancellation and a credit are serialized and a cancelled account never holds cash.
"""

from __future__ import annotations

from sqlalchemy import Connection

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, Actor, require, require_owner
from feecenter.audit.service import record_audit
from feecenter.auth import service as auth
from feecenter.clock import Clock
from feecenter.errors import Conflict
from feecenter.funds import service as funds
from feecenter.inputs import account_key
from feecenter.money import format_yuan
from feecenter.notifications.service import notify
from feecenter.recharges import service as recharges
from feecenter.remittances import service as remittances
from feecenter.resources import service as resources
from feecenter.withdrawals import service as withdrawals

NOTIFY_TEMPLATE = "account_cancelled"
_REMITTANCE_STATES = (
    ("pending_confirmation", "对公汇款待确认（账号未完成实名认证）",
     "remittances pending confirmation (the account has no verified real name)"),
    ("pending_signature", "对公汇款待签署（付款人未登记）",
     "remittances pending signature (the payer is not registered)"),
    ("review_failed", "对公汇款审核不通过，待重新审核或退款",
     "remittances that failed review, to be re-verified or refunded"),
    ("held", "对公汇款待人工处理", "remittances held for an operator"),
)


def _money(code: str, amount: int, zh: str, en: str) -> dict:
    yuan = format_yuan(amount)
    return {"code": code, "zh": f"{zh}：{yuan} 元", "en": f"{en}: {yuan} yuan",
            "amount": amount}


def _records(code: str, ids: list, zh: str, en: str, **extra) -> dict:
    shown = ", ".join(str(i) for i in ids[:10]) + ("…" if len(ids) > 10 else "")
    return {"code": code, "zh": f"{zh}（{len(ids)} 笔：{shown}）",
            "en": f"{en} ({len(ids)}: {shown})", "count": len(ids), "ids": ids, **extra}


def _balance_blockers(conn: Connection, clock: Clock, actor: Actor, uin: int) -> list[dict]:
    view = funds.balance_view(conn, clock, actor, uin)
    found = []
    if view.arrears > 0:
        found.append(_money("arrears", view.arrears, "账号欠费，请先充值结清",
                            "the account is in arrears; recharge to pay them first"))
    if view.advances > 0:
        found.append(_money("advances", view.advances, "信用额度垫付未还清",
                            "credit advances not yet repaid"))
    if view.cash > 0:
        found.append(_money("cash", view.cash, "现金余额未提现，请先提现",
                            "cash balance left; withdraw it first"))
    if view.frozen > 0:
        found.append(_money("frozen", view.frozen, "有冻结金额未解冻（资源或订单占用）",
                            "money still frozen (held for resources or orders)"))
    return found


def _in_progress(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    found = []
    pending = recharges.list_recharges(conn, actor, uin, state="pending", limit=100)["items"]
    if pending:
        found.append(_records("recharges_pending", [r["id"] for r in pending],
                              "充值进行中，请完成支付或等待其超时关闭",
                              "recharges in progress; pay them or wait until they close"))
    waiting = remittances.in_progress(conn, uin)
    for state, zh, en in _REMITTANCE_STATES:
        ids = [r["id"] for r in waiting if r["state"] == state]
        if ids:
            found.append(_records(f"remittances_{state}", ids, zh, en))
    running = withdrawals.in_progress(conn, uin)
    if running:
        amount = sum(w["amount"] for w in running)
        found.append(_records("withdrawals_in_progress", [w["id"] for w in running],
                              f"提现进行中（共 {format_yuan(amount)} 元）",
                              f"withdrawals in progress ({format_yuan(amount)} yuan)",
                              amount=amount))
    held = [r["id"] for r in resources.list_resources(conn, actor, uin) if r["state"] != "recycled"]
    if held:
        found.append(_records("resources", held, "仍有未释放的资源，请先退订或释放",
                              "resources not yet released; refund or release them first"))
    return found


def blockers(conn: Connection, clock: Clock, actor: Actor, uin: int) -> list[dict]:
    """Every reason that blocks cancelling ``uin`` now (ACC-5), in a fixed order; empty:
    it may be cancelled. Each ``{"code", "zh", "en"}`` with ``amount`` (fen) or
    ``count`` and ``ids``. Who may see: the owner and finance users (ACC-2)."""
    require(actor, uin, FINANCE)
    return _balance_blockers(conn, clock, actor, uin) + _in_progress(conn, actor, uin)


def status(conn: Connection, clock: Clock, actor: Actor, uin: int) -> dict:
    """The page's view: ``{"uin", "cancelled", "blockers", "gift"}`` (the gift that
    would be forfeited)."""
    require(actor, uin, FINANCE)
    if accounts.is_cancelled(conn, uin):
        return {"uin": uin, "cancelled": True, "blockers": [], "gift": 0}
    gift = funds.balance_view(conn, clock, actor, uin).gift
    return {"uin": uin, "cancelled": False, "blockers": blockers(conn, clock, actor, uin),
            "gift": gift}


def blocked_error(found: list[dict]) -> Conflict:
    """One error listing every reason, in both languages, naming ``uin``."""
    zh = "；".join(f"{n}. {b['zh']}" for n, b in enumerate(found, 1))
    en = "; ".join(f"{n}. {b['en']}" for n, b in enumerate(found, 1))
    return Conflict(f"账号不能注销：{zh}", f"the account cannot be cancelled: {en}",
                    field="uin", blockers=[b["code"] for b in found])


def cancel(conn: Connection, clock: Clock, actor: Actor, uin: int, *, key: str) -> dict:
    """Cancel account ``uin`` (ACC-5): the owner only (or an operator on its behalf).
    Under the balance lock the blockers are read again; any refuses the whole
    (one Conflict listing them all). Otherwise the account becomes cancelled (the
    conditional UPDATE decides), the gift is forfeited, every API key disabled and
    console session ended, audited and notified. A repeat (any key) changes nothing
    and returns ``{"uin", "cancelled": True, "created": False, ...}``."""
    require_owner(actor, uin)
    key = account_key(uin, key)  # validated and recorded; the state makes repeats idempotent
    funds.lock_balances(conn, uin)  # step 2 of the claim order; everything below after it
    if accounts.is_cancelled(conn, uin):
        return {"uin": uin, "cancelled": True, "created": False, "gift_forfeited": 0}
    found = blockers(conn, clock, actor, uin)
    if found:
        raise blocked_error(found)
    if not accounts.mark_cancelled(conn, uin):
        return {"uin": uin, "cancelled": True, "created": False, "gift_forfeited": 0}
    gift = funds.balance_view(conn, clock, actor, uin).gift  # nothing frozen: not blocked
    funds.forfeit_gift(conn, clock, uin, key=f"cancel:{uin}:gift",
                       reason="账号注销，赠送金作废 / gift forfeited on cancellation")
    credit_ended = funds.end_credit_line(conn, clock, uin)
    access = auth.end_account_access(conn, clock, actor, uin)
    record_audit(conn, clock, actor, "cancel_account", uin,
                 {"key": key, "gift_forfeited": gift, "credit_limit_ended": credit_ended,
                  **access})
    notify(conn, clock, uin, NOTIFY_TEMPLATE, {"gift": format_yuan(gift)},
           key=f"cancel:{uin}")
    return {"uin": uin, "cancelled": True, "created": True, "gift_forfeited": gift, **access}
