"""Fee-account use cases: every money movement of a customer goes through here.

Each function runs inside the caller's database transaction, locks the
customer's balance rows first (one writer per account at a time), plans with
the pure rules in ``funds.rules``, writes balanced ledger transactions, and
records each as a 收支明细 entry with the sub-balances after it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import (BigInteger, Connection, String, and_, bindparam, exists,
                        func, insert, literal_column, select, tuple_)

from feecenter.accounts.permissions import FINANCE, Actor, require, require_operator
from feecenter.accounts.tables import customers
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.db import sending
from feecenter.db.precompiled import Precompiled, time_reader
from feecenter.errors import AccountInArrears, Conflict, IdempotencyConflict, invalid, not_found
from feecenter.funds import rules
from feecenter.funds.tables import credit_lines, statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.money import MAX_AMOUNT_FEN, format_yuan

DEFAULT_ENTITY = "default"

# kind -> (min_balance, max_balance) of each customer sub-account
SUB_ACCOUNTS = {
    "cash": (0, None), "gift": (0, None), "income": (0, None),
    "frozen_cash": (0, None), "frozen_gift": (0, None),
    "arrears": (None, 0), "advance": (None, 0),
}

# 收支明细 action types (Tencent's vocabulary, see docs/transaction-types.md)
ACTION_TYPES = ("recharge", "deduct", "return", "block", "unblock", "cash", "agentin",
                "agentout", "advanced", "repay", "repayment", "adj_refund", "adj_deduct",
                "present")


@dataclass(frozen=True)
class BalanceView:
    uin: int
    cash: int
    income: int
    gift: int
    frozen: int
    arrears: int
    available: int          # BAL-2
    credit_limit: int
    temp_credit: int
    credit_amount: int      # limit + temporary credit still in force
    advances: int           # what credit paid and incoming money has not repaid
    credit_balance: int     # BAL-7: cash + income + gift + unused credit - arrears
    real_credit_balance: int  # credit_balance - frozen

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Movement:
    txn_id: int
    created: bool
    entry_ids: tuple[int, ...] = ()


# ---------------------------------------------------------------- accounts

def open_fee_account(conn: Connection, clock: Clock, uin: int) -> dict[str, int]:
    ids = {}
    for kind, (low, high) in SUB_ACCOUNTS.items():
        ids[kind] = ledger.open_account(conn, clock, f"cust:{uin}:{kind}", kind, uin=uin,
                                        min_balance=low, max_balance=high)
    return ids


def platform_account(conn: Connection, clock: Clock, purpose: str,
                     entity: str = DEFAULT_ENTITY) -> int:
    """A platform-wide account per selling entity; uncached, so never a hot row."""
    return ledger.open_account(conn, clock, f"platform:{entity}:{purpose}", purpose,
                               cached=False)


def _account_ids(conn: Connection, uin: int) -> dict[str, int]:
    rows = conn.execute(select(ledger_accounts.c.kind, ledger_accounts.c.id)
                        .where(ledger_accounts.c.uin == uin)).all()
    if not rows:
        raise not_found("uin", "账号", "account", uin)
    return dict(rows)


def _balances(conn: Connection, uin: int, *, lock: bool) -> tuple[dict[str, int], dict[str, int]]:
    """The customer's sub-account ids and balances by kind, in one query; with
    ``lock`` the rows are locked (PostgreSQL, in id order) until the transaction ends."""
    stmt = (select(ledger_accounts.c.kind, ledger_accounts.c.id, ledger_accounts.c.balance)
            .where(ledger_accounts.c.uin == uin).order_by(ledger_accounts.c.id))
    if lock and conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    rows = conn.execute(stmt).all()
    if not rows:
        raise not_found("uin", "账号", "account", uin)
    return {kind: i for kind, i, _ in rows}, {kind: balance for kind, _, balance in rows}


def lock_balances(conn: Connection, uin: int) -> None:
    """Lock the customer's balance rows (PostgreSQL, id order) until the transaction
    ends: the second step of the claim order (docs/architecture.md), for a state
    change that locks what comes after the balances (a resource, coupons) before
    it moves money here."""
    _balances(conn, uin, lock=True)


def _credit(conn: Connection, uin: int, now: datetime) -> tuple[int, int, int]:
    row = conn.execute(select(credit_lines).where(credit_lines.c.uin == uin)).first()
    if row is None:
        return 0, 0, 0
    return row.credit_limit, row.temp_credit, _credit_in_force(row, now)


def _credit_in_force(row, now: datetime) -> int:
    """The credit amount of a ``credit_lines`` row at ``now`` (BAL-7)."""
    end = None if row.temp_credit_end is None else from_db_time(row.temp_credit_end)
    return rules.credit_in_force(row.credit_limit, row.temp_credit, end, now)


def _snapshot(bal: dict[str, int]) -> tuple[int, int, int, int]:
    """(cash, gift, frozen, available) as customers see them (BAL-1, BAL-2):
    frozen money stays inside cash and gift, and is taken off the available."""
    cash = bal["cash"] + bal["frozen_cash"]
    gift = bal["gift"] + bal["frozen_gift"]
    frozen = bal["frozen_cash"] + bal["frozen_gift"]
    return cash, gift, frozen, cash + bal["income"] + gift - frozen + bal["arrears"]


def _view(conn: Connection, clock: Clock, uin: int, bal: dict[str, int]) -> BalanceView:
    cash, gift, frozen, available = _snapshot(bal)
    arrears, advances = -bal["arrears"], -bal["advance"]
    limit, temp, credit_amount = _credit(conn, uin, clock.now())
    unused = rules.credit_left(credit_amount, advances=advances)
    credit_balance = cash + bal["income"] + gift + unused - arrears
    return BalanceView(uin, cash, bal["income"], gift, frozen, arrears, available, limit, temp,
                       credit_amount, advances, credit_balance, credit_balance - frozen)


def balance_view(conn: Connection, clock: Clock, actor: Actor, uin: int) -> BalanceView:
    require(actor, uin, FINANCE)
    _, bal = _balances(conn, uin, lock=False)
    return _view(conn, clock, uin, bal)


# ---------------------------------------------------------------- recording

def _record(conn: Connection, clock: Clock, uin: int, txn_id: int, action_type: str,
            amount: int, *, cash: int = 0, gift: int = 0, credit: int = 0, coupon: int = 0,
            bal: dict[str, int] | None = None, **fields) -> int:
    """Write the 收支明细 entry of a transaction with the sub-balances right after it
    (``bal``: as the caller read them under the lock; None: read here)."""
    if bal is None:
        _, bal = _balances(conn, uin, lock=False)
    cash_after, gift_after, frozen, available = _snapshot(bal)
    return conn.execute(insert(statement_entries).values(
        uin=uin, txn_id=txn_id, action_type=action_type, amount=amount, cash_amount=cash,
        gift_amount=gift, credit_amount=credit, coupon_amount=coupon,
        balance_after=available, cash_after=cash_after, gift_after=gift_after,
        frozen_after=frozen, created_at=db_time(clock.now()), **fields,
    ).returning(statement_entries.c.id)).scalar_one()


def _replayed(conn: Connection, key: str, request: dict) -> Movement | None:
    """The first result if this idempotency key was already used for this request.

    Call it only once the account's balance rows are locked: a concurrent call
    with the same key has then committed and is seen here. Checked before the
    lock, both calls would pass, the second would find the key taken inside
    the ledger and then fail writing a second 收支明细 entry for the same
    transaction (or write one) instead of returning the first result.
    """
    txn_id = ledger.check_idempotency(conn, key, ledger.content_hash(request))
    if txn_id is None:
        return None
    entries = conn.execute(select(statement_entries.c.id).join(
        ledger_transactions, ledger_transactions.c.id == statement_entries.c.txn_id).where(
        ledger_transactions.c.idempotency_key.in_(
            [key, f"{key}:arrears", f"{key}:advance", f"{key}:credit"]))
        .order_by(statement_entries.c.id)).scalars().all()
    return Movement(txn_id, created=False, entry_ids=tuple(entries))


def _transfer(conn, clock, key, request, kind, uin, legs, **kw) -> ledger.TransferResult:
    return ledger.transfer(conn, clock, ledger.Transfer(
        idempotency_key=key, kind=kind, uin=uin, request_hash=ledger.content_hash(request),
        postings=tuple(ledger.Posting(a, amt) for a, amt in legs if amt), **kw))


# ---------------------------------------------------------------- incoming money

def receive(conn: Connection, clock: Clock, uin: int, amount: int, *, key: str,
            source_account_id: int, action_type: str = "recharge", pay_channel: str | None = None,
            sub_type: str | None = None, memo: str | None = None,
            request: dict | None = None) -> Movement:
    """Credit incoming money to cash, then repay arrears and advances from it (ARR-4).

    The whole amount is posted first as its own entry (``sub_type``: its
    Tencent SubPayType, e.g. ``online`` for an online recharge); each repayment
    follows as an entry of its own (RMT-8).
    """
    request = request or {"op": "receive", "uin": uin, "amount": amount, "type": action_type}
    ids, bal = _balances(conn, uin, lock=True)  # lock first: see _replayed
    if (earlier := _replayed(conn, key, request)) is not None:
        return earlier
    first = _transfer(conn, clock, key, request, action_type, uin,
                      [(source_account_id, -amount), (ids["cash"], amount)], memo=memo)
    entries = [_record(conn, clock, uin, first.txn_id, action_type, amount, cash=amount,
                       pay_channel=pay_channel, deduct_mode=sub_type, memo=memo)]
    entries += _repay_from(conn, clock, uin, ids, bal, amount, key, request)
    return Movement(first.txn_id, True, tuple(entries))


def _repay_from(conn: Connection, clock: Clock, uin: int, ids: dict[str, int],
                bal: dict[str, int], amount: int, key: str, request) -> list[int]:
    """ARR-4: ``amount`` just came into cash; it repays arrears, then advances (``bal``:
    the balances read under the lock before it came in). The repayment entries."""
    entries = []
    plan = rules.plan_incoming(amount, arrears=-bal["arrears"], advances=-bal["advance"])
    for part, sub, action in ((plan.to_arrears, "arrears", "repayment"),
                              (plan.to_advances, "advance", "repay")):
        if part:
            result = _transfer(conn, clock, f"{key}:{sub}", [request, sub], action, uin,
                               [(ids["cash"], -part), (ids[sub], part)])
            entries.append(_record(conn, clock, uin, result.txn_id, action, -part, cash=-part))
    return entries


# ---------------------------------------------------------------- spending

def spend(conn: Connection, clock: Clock, uin: int, amount: int, *, key: str, postpaid: bool,
          revenue_account_id: int, deduct_mode: str = "trade", product_code: str | None = None,
          billing_item: str | None = None, order_id: str | None = None,
          storefront: str | None = None, memo: str | None = None) -> Movement:
    """Deduct ``amount``: gift, cash, credit; the rest as arrears if postpaid (BAL-3/4/7).

    What credit pays is first advanced into cash as an entry of its own
    (``advanced``), then deducted with the rest.
    """
    if amount <= 0:
        raise invalid("amount", "扣费金额必须为正数", "deduction amount must be positive")
    request = {"op": "spend", "uin": uin, "amount": amount, "postpaid": postpaid,
               "order": order_id, "product": product_code, "item": billing_item}
    ids, bal = _balances(conn, uin, lock=True)  # lock first: see _replayed
    if (earlier := _replayed(conn, key, request)) is not None:
        return earlier
    if not postpaid:
        _gate(conn, ids, bal, operable_balance=0)
    plan = rules.plan_spend(amount, gift=bal["gift"], cash=bal["cash"],
                            credit_left=_credit_left(conn, clock, uin, bal), allow_arrears=postpaid)
    entries = [_draw_credit(conn, clock, uin, ids, plan.credit, key)] if plan.credit else []
    result = _transfer(conn, clock, key, request, "deduct", uin, [
        (ids["gift"], -plan.gift), (ids["cash"], -plan.cash - plan.credit),
        (ids["arrears"], -plan.arrears), (revenue_account_id, amount)],
        reference=order_id, memo=memo)
    entries.append(_record(conn, clock, uin, result.txn_id, "deduct", -amount,
                           cash=-plan.cash - plan.credit, gift=-plan.gift, credit=-plan.credit,
                           deduct_mode=deduct_mode, product_code=product_code,
                           billing_item=billing_item, order_id=order_id, storefront=storefront,
                           memo=memo))
    return Movement(result.txn_id, True, tuple(entries))


def spend_split(conn: Connection, txn_id: int) -> tuple[int, int, int, int]:
    """What paid a ``spend`` deduction (fen), from its 收支明细 entry: (gift, cash not
    counting what credit advanced, credit, arrears)."""
    s = statement_entries.c
    entry = conn.execute(select(s.amount, s.cash_amount, s.gift_amount, s.credit_amount)
                         .where(s.txn_id == txn_id)).one()
    gift, credit = -entry.gift_amount, -entry.credit_amount
    cash = -entry.cash_amount - credit
    return gift, cash, credit, -entry.amount - gift - cash - credit


def _credit_left(conn: Connection, clock: Clock, uin: int, bal: dict[str, int]) -> int:
    _, _, credit_amount = _credit(conn, uin, clock.now())
    return rules.credit_left(credit_amount, advances=-bal["advance"])


def _draw_credit(conn: Connection, clock: Clock, uin: int, ids: dict[str, int], amount: int,
                 key: str) -> int:
    """Credit pays: the platform advances ``amount`` into cash (垫付, BAL-7)."""
    result = _transfer(conn, clock, f"{key}:credit", {"op": "advance", "of": key, "amount": amount},
                       "advanced", uin, [(ids["advance"], -amount), (ids["cash"], amount)])
    return _record(conn, clock, uin, result.txn_id, "advanced", amount, cash=amount,
                   credit=amount)


# ---------------------------------------------------------------- the arrears gate

def _gate(conn: Connection, ids: dict[str, int], bal: dict[str, int],
          operable_balance: int) -> None:
    """ARR-1/ARR-2: no new purchase in arrears; once arrears have been repaid, not
    below the product class's operable balance either."""
    if bal["arrears"] == 0 and (operable_balance <= 0 or not _ever_in_arrears(conn, ids)):
        return
    _refuse_if_short(bal, operable_balance)


def _refuse_if_short(bal: dict[str, int], operable_balance: int) -> None:
    available = bal["cash"] + bal["gift"] + bal["income"] + bal["arrears"]
    needed = rules.operable_shortfall(available=available, arrears=-bal["arrears"],
                                      operable_balance=operable_balance)
    if needed:
        owed = format_yuan(-bal["arrears"])
        text = format_yuan(needed)
        raise AccountInArrears(
            f"账号欠费 {owed} 元或余额低于可操作余额，需充值 {text} 元后才能购买",
            f"the account owes {owed} yuan or is below its operable balance: "
            f"recharge {text} yuan before buying", field="uin", arrears=owed, needed=text)


def _ever_in_arrears(conn: Connection, ids: dict[str, int]) -> bool:
    return conn.execute(select(ledger.ledger_postings.c.id).where(
        ledger.ledger_postings.c.account_id == ids["arrears"]).limit(1)).first() is not None


def require_operable(conn: Connection, clock: Clock, uin: int, operable_balance: int = 0) -> None:
    """Refuse a purchase or opening when the account is in arrears, or has repaid
    arrears but is below the operable balance; the error says how much is needed."""
    ids, bal = _balances(conn, uin, lock=False)
    _gate(conn, ids, bal, operable_balance)


# ---------------------------------------------------------------- freezes

def freeze(conn: Connection, clock: Clock, uin: int, amount: int, *, key: str,
           reference: str | None = None, product_code: str | None = None,
           order_id: str | None = None, memo: str | None = None) -> int:
    """Freeze gift then cash into escrow (FRZ-1/2/4); returns the hold id."""
    if amount <= 0:
        raise invalid("amount", "冻结金额必须为正数", "freeze amount must be positive")
    ids, bal = _balances(conn, uin, lock=True)
    from_gift, from_cash = rules.plan_freeze(amount, gift=bal["gift"], cash=bal["cash"])
    legs = [ledger.HoldLeg(ids["gift"], ids["frozen_gift"], from_gift),
            ledger.HoldLeg(ids["cash"], ids["frozen_cash"], from_cash)]
    hold_id = ledger.create_hold(conn, clock, key, legs, kind="block", uin=uin,
                                 reference=reference, memo=memo)
    hold_txn = conn.execute(select(ledger.ledger_holds.c.hold_txn_id)
                            .where(ledger.ledger_holds.c.id == hold_id)).scalar_one()
    exists = conn.execute(select(statement_entries.c.id)
                          .where(statement_entries.c.txn_id == hold_txn)).scalar()
    if exists is None:
        _record(conn, clock, uin, hold_txn, "block", -amount, cash=-from_cash, gift=-from_gift,
                product_code=product_code, order_id=order_id, memo=memo)
    return hold_id


def freeze_transaction(conn: Connection, hold_id: int) -> int:
    """The ledger transaction that took a freeze (its 收支明细 entry's, BAL-5)."""
    return conn.execute(select(ledger.ledger_holds.c.hold_txn_id)
                        .where(ledger.ledger_holds.c.id == hold_id)).scalar_one()


# ---------------------------------------------------------------- withdrawals (WDR-4)

WITHDRAWALS_IN_FLIGHT = "withdrawals_in_flight"


def withdrawal_balances(conn: Connection, uin: int, *, lock: bool) -> dict[str, int]:
    """The sub-account balances by kind (``cash`` is the unfrozen cash) a withdrawal
    decides from; with ``lock`` the balance rows are locked first (the claim order's
    balances step) and the balances are those under the lock."""
    _, bal = _balances(conn, uin, lock=lock)
    return bal


def hold_for_withdrawal(conn: Connection, clock: Clock, uin: int,
                        legs: list[tuple[str, int, str]], *, key: str, route: str,
                        memo: str | None = None) -> tuple[list[int], int]:
    """Hold a withdrawal's money (WDR-4): each (hold key, amount, reference) one pending
    ledger hold from cash to the platform account "withdrawals_in_flight", all in one
    transaction with one 收支明细 entry ``cash`` (提现, − the total; ``deduct_mode`` =
    the route). Cash drops at once: neither spendable nor withdrawable again. A repeat
    of ``key`` returns the first holds. Returns (hold ids in order, transaction id)."""
    ids, _ = _balances(conn, uin, lock=True)
    escrow = platform_account(conn, clock, WITHDRAWALS_IN_FLIGHT)
    hold_ids, txn_id = ledger.create_holds(
        conn, clock, key, [(hold_key, [ledger.HoldLeg(ids["cash"], escrow, amount)], ref)
                           for hold_key, amount, ref in legs], kind="cash", uin=uin, memo=memo)
    recorded = conn.execute(select(statement_entries.c.id)
                            .where(statement_entries.c.txn_id == txn_id)).scalar()
    if recorded is None:
        total = sum(amount for _, amount, _ in legs)
        _record(conn, clock, uin, txn_id, "cash", -total, cash=-total, deduct_mode=route,
                memo=memo)
    return hold_ids, txn_id


def return_withdrawal(conn: Connection, clock: Clock, uin: int, hold_id: int, *,
                      memo: str | None = None) -> Movement:
    """A withdrawal leg's held money back to cash (提现退回, WDR-5): its hold voided
    (claimed once: a second call is a Conflict), a 收支明细 entry ``cash`` of
    +amount, then, as incoming money, it repays arrears and advances first (ARR-4),
    each an entry of its own."""
    ids, bal = _balances(conn, uin, lock=True)
    held = _hold_for(conn, uin, hold_id)
    result = ledger.void_hold(conn, clock, hold_id, kind="cash", memo=memo)
    entries = [_record(conn, clock, uin, result.txn_id, "cash", held.amount, cash=held.amount,
                       memo=memo)]
    entries += _repay_from(conn, clock, uin, ids, bal, held.amount, f"withdrawal-return:{hold_id}",
                           {"op": "return_withdrawal", "hold": hold_id})
    return Movement(result.txn_id, True, tuple(entries))
def plan_payment(conn: Connection, clock: Clock, uin: int, amounts: list[int],
                 coupons: list[int] | None = None) -> list[rules.Allocation]:
    """Preview (writes nothing): what coupons, gift, cash and credit pay of each amount."""
    _, bal = _balances(conn, uin, lock=False)
    return rules.allocate_payment(amounts, gift=bal["gift"], cash=bal["cash"],
                                  credit_left=_credit_left(conn, clock, uin, bal), coupons=coupons)


_SPENDABLE_PER_QUERY = 500


def spendable_many(conn: Connection, clock: Clock, uins: list[int]) -> dict[int, int]:
    """uin -> what a prepaid payment could use now, in fen, read without locks (a
    preview, as ``plan_payment``): gift + cash + unused credit (ORD-3's sources,
    coupons left out); 0 for an account in arrears, whose purchases the gate
    refuses (ARR-1). A few queries per 500 accounts; unknown accounts are left out."""
    found: dict[int, int] = {}
    wanted = sorted(set(uins))
    for start in range(0, len(wanted), _SPENDABLE_PER_QUERY):
        chunk = wanted[start:start + _SPENDABLE_PER_QUERY]
        balances: dict[int, dict[str, int]] = {}
        for uin, kind, balance in conn.execute(
                select(_LA.uin, _LA.kind, _LA.balance).where(
                    _LA.uin.in_(chunk), _LA.kind.in_(("cash", "gift", "arrears", "advance")))):
            balances.setdefault(uin, {})[kind] = balance
        credit = {row.uin: _credit_in_force(row, clock.now())
                  for row in conn.execute(select(credit_lines).where(_CL.uin.in_(chunk)))}
        for uin, bal in balances.items():
            if bal.get("arrears", 0) < 0:
                found[uin] = 0
                continue
            unused = rules.credit_left(credit.get(uin, 0), advances=-bal.get("advance", 0))
            found[uin] = max(bal.get("gift", 0), 0) + max(bal.get("cash", 0), 0) + unused
    return found


def available_many(conn: Connection, uins: list[int]) -> dict[int, int]:
    """uin -> the available balance (BAL-2, as ``balance_view`` gives it: cash + income
    + gift - frozen - arrears), in fen, read without locks; a few queries per 500
    accounts; unknown accounts are left out."""
    found: dict[int, int] = {}
    wanted = sorted(set(uins))
    for start in range(0, len(wanted), _SPENDABLE_PER_QUERY):
        chunk = wanted[start:start + _SPENDABLE_PER_QUERY]
        for uin, total in conn.execute(
                select(_LA.uin, func.sum(_LA.balance)).where(
                    _LA.uin.in_(chunk), _LA.kind.in_(("cash", "income", "gift", "arrears")))
                .group_by(_LA.uin)):
            found[uin] = int(total)
    return found


def freeze_for_payment(conn: Connection, clock: Clock, uin: int,
                       orders: list[tuple[str, int, str | None]], *, key: str,
                       operable_balance: int = 0, memo: str | None = None
                       ) -> list[tuple[int, rules.Allocation]]:
    """Pay prepaid orders by freezing them: one ledger transaction for the whole payment.

    ``orders`` are (hold key, amount, reference). Gate (ARR-1/2) and plan run
    under the account's row locks; the credit part is advanced into cash first.
    Returns (hold id, allocation) per order.
    """
    ids, bal = _balances(conn, uin, lock=True)
    _gate(conn, ids, bal, operable_balance)
    allocations = rules.allocate_payment([amount for _, amount, _ in orders], gift=bal["gift"],
                                         cash=bal["cash"],
                                         credit_left=_credit_left(conn, clock, uin, bal))
    credit = sum(a.credit for a in allocations)
    if credit:
        _draw_credit(conn, clock, uin, ids, credit, key)
    holds = [(hold_key, [ledger.HoldLeg(ids["gift"], ids["frozen_gift"], a.gift),
                         ledger.HoldLeg(ids["cash"], ids["frozen_cash"], a.cash + a.credit)],
              reference) for (hold_key, _, reference), a in zip(orders, allocations)]
    hold_ids, txn_id = ledger.create_holds(conn, clock, key, holds, kind="block", uin=uin,
                                           memo=memo)
    total = sum(a.amount for a in allocations)
    _record(conn, clock, uin, txn_id, "block", -total, cash=-sum(a.cash + a.credit for a in allocations),
            gift=-sum(a.gift for a in allocations), credit=-credit, memo=memo,
            order_id=orders[0][2] if len(orders) == 1 else None)
    return list(zip(hold_ids, allocations))


# ---------------------------------------------------------------- the payment fast path
# orders.pay (docs/orders.md): one locked read of the customer's sub-accounts, the
# gate and the plan in Python, then the ledger batch and the 收支明细 entries.

@dataclass(frozen=True)
class LockedFunds:
    """A customer's sub-accounts read (and locked) for a payment, in one statement."""

    uin: int
    ids: dict[str, int]              # kind -> ledger account id
    balances: dict[str, int]         # kind -> balance
    accounts: dict[int, ledger.LockedAccount]
    ever_in_arrears: bool            # the arrears account has any posting (ARR-2)
    credit_amount: int               # limit + temporary credit in force (BAL-7)

    @property
    def credit_left(self) -> int:
        return rules.credit_left(self.credit_amount, advances=-self.balances["advance"])


@dataclass(frozen=True)
class PaymentPart:
    """One order of a payment: its freeze key, what each source pays, its order
    number; ``deliver_to`` (a revenue account) posts the freeze at once."""

    hold_key: str
    allocation: rules.Allocation
    reference: str | None = None
    deliver_to: ledger.AccountMeta | None = None
    product_code: str | None = None
    delivery_memo: str | None = None


_LA, _CL = ledger_accounts.c, credit_lines.c
_LOCK_FOR_PAYMENT = Precompiled(
    select(_LA.id, _LA.code, _LA.uin, _LA.kind, _LA.min_balance, _LA.max_balance, _LA.cached,
           _LA.balance,
           exists(select(ledger_postings.c.id).where(
               ledger_postings.c.account_id == _LA.id,
               _LA.kind == literal_column("'arrears'"))).label("owed"),
           _CL.credit_limit, _CL.temp_credit, _CL.temp_credit_end)
    .select_from(ledger_accounts.outerjoin(credit_lines, _CL.uin == _LA.uin))
    .where(_LA.uin == bindparam("uin", type_=BigInteger))
    .order_by(_LA.id).with_for_update(of=ledger_accounts))


def lock_for_payment(conn: Connection, clock: Clock, uin: int) -> Callable[[], LockedFunds]:
    """Send the one read of the customer's sub-accounts, credit and arrears history
    (on PostgreSQL the balance rows locked in id order until the transaction
    ends); call the result for the figures (inside ``sending.reads``: after it)."""
    sent = sending.send(conn, _LOCK_FOR_PAYMENT, {"uin": uin}, returns=True)
    return functools.partial(_locked_funds, conn.dialect, uin, sent, clock.now())


def _locked_funds(dialect, uin: int, sent: sending.Sent, now: datetime) -> LockedFunds:
    rows = sent.rows()
    if not rows:
        raise not_found("uin", "账号", "account", uin)
    accounts = {row[0]: ledger.LockedAccount(ledger.AccountMeta(*row[:7]), row[7])
                for row in rows}
    owed = any(row[8] for row in rows if row[3] == "arrears")
    limit, temp, end = rows[0][9:12]
    credit = 0
    if limit is not None:  # a credit line: what it grants now (BAL-7)
        end = None if end is None else from_db_time(time_reader(dialect)(end))
        credit = rules.credit_in_force(limit, temp, end, now)
    return LockedFunds(uin, {row[3]: row[0] for row in rows}, {row[3]: row[7] for row in rows},
                       accounts, owed, credit)


def require_payable(locked: LockedFunds, operable_balance: int = 0) -> None:
    """The arrears gate (ARR-1/2) on the locked figures; the error says what is needed."""
    bal = locked.balances
    if bal["arrears"] == 0 and (operable_balance <= 0 or not locked.ever_in_arrears):
        return
    _refuse_if_short(bal, operable_balance)


def plan_locked_payment(locked: LockedFunds, amounts: list[int],
                        coupons: list[int]) -> list[rules.Allocation]:
    """Coupons (decided per order by the caller) first, then gift, cash, credit (ORD-3)."""
    bal = locked.balances
    return rules.allocate_payment(amounts, gift=bal["gift"], cash=bal["cash"],
                                  credit_left=locked.credit_left, coupons=coupons)


_META_NAMES = ("id", "code", "uin", "kind", "min_balance", "max_balance", "cached")


def platform_account_join(entity, purpose: str) -> tuple:
    """(alias, ON clause, columns) for a caller's own read to LEFT JOIN the metadata
    of ``platform_account(entity, purpose)`` (``entity`` a column; NULLs until the
    account is opened). Read it back with ``platform_meta``."""
    if not purpose.replace("_", "").isalpha():
        raise invalid("purpose", "平台账户用途无效", "invalid platform account purpose")
    account = ledger_accounts.alias(f"platform_{purpose}")
    code = (literal_column("'platform:'", type_=String) + entity
            + literal_column(f"':{purpose}'", type_=String))
    return account, account.c.code == code, [account.c[n] for n in _META_NAMES]


def platform_meta(conn: Connection, clock: Clock, entity: str, purpose: str,
                  values) -> ledger.AccountMeta:
    """The account read through ``platform_account_join``, opened first if it is not yet."""
    if values[0] is not None:
        return ledger.AccountMeta(*values)
    account_id = platform_account(conn, clock, purpose, entity)
    return ledger.account_meta(conn, [account_id])[account_id]


def pay_by_freezing(conn: Connection, clock: Clock, locked: LockedFunds,
                    parts: list[PaymentPart], *, key: str,
                    reserved: tuple[list[int], list[int]], memo: str | None = None
                    ) -> list[int]:
    """Freeze every order of a payment as ONE ledger transaction (the credit part
    advanced into cash first), post at once the parts delivered at once, and
    write the 收支明细 entries (advanced, block, deduct per delivery): the same
    rows as freeze_for_payment followed by deduct_frozen, in a few statements
    (``ledger.reserve_ids`` gave the ids). Returns the hold ids."""
    ids = locked.ids
    credit = sum(p.allocation.credit for p in parts)
    first = None
    if credit:
        first = ledger.Transfer(
            idempotency_key=f"{key}:credit", kind="advanced", uin=locked.uin,
            request_hash=ledger.content_hash({"op": "advance", "of": key, "amount": credit}),
            postings=(ledger.Posting(ids["advance"], -credit), ledger.Posting(ids["cash"], credit)))
    holds = tuple(ledger.BatchHold(
        p.hold_key, (ledger.HoldLeg(ids["gift"], ids["frozen_gift"], p.allocation.gift),
                     ledger.HoldLeg(ids["cash"], ids["frozen_cash"],
                                    p.allocation.cash + p.allocation.credit)),
        p.reference, post_to=p.deliver_to.id if p.deliver_to else None, post_kind="deduct",
        post_memo=p.delivery_memo) for p in parts)
    others = {p.deliver_to.id: p.deliver_to for p in parts if p.deliver_to}
    written = ledger.write_hold_batch(conn, clock, ledger.HoldBatch(
        key, locked.uin, holds, kind="block", memo=memo, first=first), locked.accounts, others,
        reserved)
    _record_payment(conn, clock, locked, parts, written, memo)
    return list(written.hold_ids)


def _record_payment(conn: Connection, clock: Clock, locked: LockedFunds,
                    parts: list[PaymentPart], written: ledger.HoldBatchResult,
                    memo: str | None) -> None:
    kinds = {account_id: kind for kind, account_id in locked.ids.items()}
    running = dict(locked.balances)
    now = db_time(clock.now())

    def entry(txn: ledger.BatchTxn, action_type: str, amount: int, **fields) -> dict:
        for account_id, value in txn.balances_after.items():
            running[kinds[account_id]] = value
        cash_after, gift_after, frozen, available = _snapshot(running)
        row = dict.fromkeys(_ENTRY_COLUMNS)
        row.update(uin=locked.uin, txn_id=txn.txn_id, action_type=action_type, amount=amount,
                   cash_amount=0, gift_amount=0, coupon_amount=0, credit_amount=0,
                   balance_after=available, cash_after=cash_after, gift_after=gift_after,
                   frozen_after=frozen, created_at=now)
        row.update(fields)
        return row

    allocations = [p.allocation for p in parts]
    credit = sum(a.credit for a in allocations)
    rows = []
    if written.first:
        rows.append(entry(written.first, "advanced", credit, cash_amount=credit,
                          credit_amount=credit))
    rows.append(entry(written.hold_txn, "block", -sum(a.amount for a in allocations),
                      cash_amount=-sum(a.cash + a.credit for a in allocations),
                      gift_amount=-sum(a.gift for a in allocations), credit_amount=-credit,
                      coupon_amount=-sum(a.coupon for a in allocations), memo=memo,
                      order_id=parts[0].reference if len(parts) == 1 else None))
    for part, post in zip(parts, written.posts):
        if post is not None:
            paid = part.allocation
            rows.append(entry(post, "deduct", -(paid.amount - paid.coupon),
                              cash_amount=-(paid.cash + paid.credit), gift_amount=-paid.gift,
                              deduct_mode="trade", product_code=part.product_code,
                              order_id=part.reference, memo=part.delivery_memo))
    sending.send_rows(conn, statement_entries, _ENTRY_COLUMNS, rows)


_ENTRY_COLUMNS = tuple(c.name for c in statement_entries.c if c.name != "id")


def refund(conn: Connection, clock: Clock, uin: int, *, key: str, gift: int, cash: int,
           revenue_account_id: int, coupon: int = 0, product_code: str | None = None,
           order_id: str | None = None, memo: str | None = None) -> Movement:
    """Give money back to gift and cash from revenue (退费, ORD-4): a ``return`` entry.

    ``coupon``: what the same refund gave back to cash coupons (their own ledger
    movement, ``coupons.refund``); the entry counts it in ``amount`` and shows it in
    ``coupon_amount`` (BAL-5), as the payment's ``block`` entry did."""
    if gift < 0 or cash < 0 or gift + cash == 0:
        raise invalid("amount", "退款金额必须为正数", "refund amount must be positive")
    request = {"op": "refund", "uin": uin, "gift": gift, "cash": cash, "order": order_id}
    return _give_back(conn, clock, uin, key, request, gift=gift, cash=cash, arrears=0,
                      coupon=coupon, revenue_account_id=revenue_account_id,
                      reference=order_id, deduct_mode="trade", product_code=product_code,
                      order_id=order_id, memo=memo)


def _give_back(conn: Connection, clock: Clock, uin: int, key: str, request: dict, *,
               gift: int, cash: int, arrears: int, coupon: int, revenue_account_id: int,
               reference: str | None = None, memo: str | None = None, **fields) -> Movement:
    """One ``return`` transaction from revenue and its 收支明细 entry (``refund``,
    ``return_postpaid``): ``gift`` to gift, ``cash`` to cash, ``arrears`` cancels
    arrears still owed (what was repaid since goes to cash). ``coupon``: what cash
    coupons got back of the same return (their own ledger movement): the entry counts
    it in ``amount`` and shows it in ``coupon_amount`` (BAL-5)."""
    if coupon < 0:
        raise invalid("coupon", "优惠券退还金额不能为负", "the coupon part cannot be negative")
    if coupon:  # absent when 0: a key used before coupons were shown keeps its hash
        request = {**request, "coupon": coupon}
    ids, bal = _balances(conn, uin, lock=True)  # lock first: see _replayed
    if (earlier := _replayed(conn, key, request)) is not None:
        return earlier
    owed = min(arrears, -bal["arrears"]) if arrears else 0
    to_cash = cash + arrears - owed
    legs = [(revenue_account_id, -(gift + cash + arrears)), (ids["gift"], gift),
            (ids["cash"], to_cash)]
    if owed:
        legs.append((ids["arrears"], owed))
    result = _transfer(conn, clock, key, request, "return", uin, legs, reference=reference,
                       memo=memo)
    entry = _record(conn, clock, uin, result.txn_id, "return", gift + cash + arrears + coupon,
                    cash=to_cash, gift=gift, coupon=coupon, memo=memo, **fields)
    return Movement(result.txn_id, True, (entry,))


_COUPON_ONLY = {"deduct": ("coupon_pay", -1), "return": ("coupon_return", 1)}


def record_coupon_only(conn: Connection, clock: Clock, uin: int, txn_id: int, action_type: str,
                       coupon: int, *, deduct_mode: str = "trade",
                       product_code: str | None = None, billing_item: str | None = None,
                       order_id: str | None = None, memo: str | None = None) -> int:
    """The 收支明细 entry of a prepaid movement coupons alone made (BAL-5): a ``deduct``
    when an order they paid in full is delivered (on its ``coupon_pay`` transaction,
    − ``coupon``), a ``return`` when a refund with no gift or cash gives ``coupon``
    back to cash coupons (on their ``coupon_return`` transaction, +). No money of
    the customer moves: all of ``amount`` is ``coupon_amount``, with the balances as
    they stand (the rows locked: the claim order's balances step, taken before the
    coupons by the callers). Returns the entry's id."""
    if action_type not in _COUPON_ONLY:
        raise invalid("action_type", "只记录优惠券的扣费或退还", "only a coupon deduct or return")
    if not isinstance(coupon, int) or isinstance(coupon, bool) or coupon <= 0:
        raise invalid("amount", "优惠券金额必须为正数", "the coupon amount must be positive")
    kind, sign = _COUPON_ONLY[action_type]
    txn = conn.execute(select(ledger_transactions.c.kind, ledger_transactions.c.uin).where(
        ledger_transactions.c.id == txn_id)).first()
    if txn is None or (txn.kind, txn.uin) != (kind, uin):
        raise invalid("txn_id", f"交易 {txn_id} 不是该账号的优惠券{'支付' if sign < 0 else '退还'}",
                      f"transaction {txn_id} is not the account's {kind}")
    _, bal = _balances(conn, uin, lock=True)
    return _record(conn, clock, uin, txn_id, action_type, sign * coupon, coupon=sign * coupon,
                   bal=bal, deduct_mode=deduct_mode, product_code=product_code,
                   billing_item=billing_item, order_id=order_id, memo=memo)


def return_postpaid(conn: Connection, clock: Clock, uin: int, *, key: str, gift: int,
                    cash: int, arrears: int, revenue_account_id: int, deduct_mode: str,
                    coupon: int = 0, product_code: str | None = None,
                    billing_item: str | None = None, memo: str | None = None) -> Movement:
    """Give back part of a postpaid deduction (a usage correction, SET-9) as it was paid:
    ``gift`` to gift, ``cash`` (what cash and credit paid) to cash, and the share that
    became arrears cancels arrears still owed (what was repaid since goes to cash).
    One ``return`` transaction from revenue and its 收支明细 entry, which counts
    ``coupon`` too: what cash coupons got back of the same correction (BAL-5)."""
    if min(gift, cash, arrears) < 0 or gift + cash + arrears == 0:
        raise invalid("amount", "退还金额必须为正数", "the amount given back must be positive")
    request = {"op": "return_postpaid", "uin": uin, "gift": gift, "cash": cash,
               "arrears": arrears, "product": product_code, "item": billing_item}
    return _give_back(conn, clock, uin, key, request, gift=gift, cash=cash, arrears=arrears,
                      coupon=coupon, revenue_account_id=revenue_account_id,
                      deduct_mode=deduct_mode, product_code=product_code,
                      billing_item=billing_item, memo=memo)


def unfreeze(conn: Connection, clock: Clock, uin: int, hold_id: int, *,
             memo: str | None = None) -> Movement:
    """Release a freeze in full back to gift and cash (FRZ-3); the entry shows both parts."""
    ids, _ = _balances(conn, uin, lock=True)
    held = _hold_for(conn, uin, hold_id)
    cash, gift = _held_split(conn, ids, hold_id)
    result = ledger.void_hold(conn, clock, hold_id, kind="unblock", memo=memo)
    entry = _record(conn, clock, uin, result.txn_id, "unblock", held.amount, cash=cash,
                    gift=gift, memo=memo)
    return Movement(result.txn_id, True, (entry,))


def deduct_frozen(conn: Connection, clock: Clock, uin: int, hold_id: int, *,
                  revenue_account_id: int, deduct_mode: str = "trade",
                  product_code: str | None = None, order_id: str | None = None,
                  memo: str | None = None) -> Movement:
    """Pay a whole freeze to revenue (FRZ-3); the entry shows the cash and gift it took."""
    ids, _ = _balances(conn, uin, lock=True)
    held = _hold_for(conn, uin, hold_id)
    cash, gift = _held_split(conn, ids, hold_id)
    result = ledger.post_hold(conn, clock, hold_id, revenue_account_id, kind="deduct",
                              memo=memo)
    entry = _record(conn, clock, uin, result.txn_id, "deduct", -held.amount, cash=-cash,
                    gift=-gift, deduct_mode=deduct_mode, product_code=product_code,
                    order_id=order_id, memo=memo)
    return Movement(result.txn_id, True, (entry,))


def _hold_for(conn: Connection, uin: int, hold_id: int):
    held = conn.execute(select(ledger.ledger_holds).where(
        ledger.ledger_holds.c.id == hold_id, ledger.ledger_holds.c.uin == uin)).first()
    if held is None:
        raise not_found("hold_id", "冻结记录", "freeze", hold_id)
    return held


def _held_split(conn: Connection, ids: dict[str, int], hold_id: int) -> tuple[int, int]:
    """(cash, gift) a freeze holds: its ledger legs by the sub-account they came from."""
    legs = ledger.hold_legs(conn, hold_id)
    return (sum(leg.amount for leg in legs if leg.source_account_id == ids["cash"]),
            sum(leg.amount for leg in legs if leg.source_account_id == ids["gift"]))


# ---------------------------------------------------------------- operator actions

def adjust(conn: Connection, clock: Clock, actor: Actor, uin: int, *, sub_account: str,
           amount: int, reason: str, key: str) -> Movement:
    """Operator adjustment of cash or gift (signed fen), audited.

    A positive cash adjustment is incoming money (ARR-4: arrears and advances
    first); a negative one may not take a sub-balance below zero. A positive one for
    a cancelled account is refused (ACC-5: a cancelled account holds no cash nor
    gift; 409 naming ``uin``), read under the balance lock the cancellation takes.
    """
    require_operator(actor)
    if sub_account not in ("cash", "gift"):
        raise invalid("sub_account", "只能调整现金或赠送账户", "only cash or gift can be adjusted")
    if not reason or not reason.strip():
        raise invalid("reason", "必须填写调账原因", "a reason is required")
    if amount == 0 or abs(amount) > MAX_AMOUNT_FEN:
        raise invalid("amount", "调账金额无效", "invalid adjustment amount")
    request = {"op": "adjust", "uin": uin, "sub": sub_account, "amount": amount,
               "reason": reason}
    _balances(conn, uin, lock=True)  # lock first: see _replayed
    if (earlier := _replayed(conn, key, request)) is not None:
        return earlier
    if amount > 0:
        refuse_cancelled(conn, uin)
    counterpart = platform_account(conn, clock, "adjustments")
    if sub_account == "cash" and amount > 0:
        movement = receive(conn, clock, uin, amount, key=key, source_account_id=counterpart,
                           action_type="adj_refund", memo=reason, request=request)
    else:
        movement = _adjust_simple(conn, clock, uin, sub_account, amount, reason, key, request,
                                  counterpart)
    record_audit(conn, clock, actor, "adjust", uin, {**request, "txn_id": movement.txn_id})
    return movement


def _adjust_simple(conn, clock, uin, sub_account, amount, reason, key, request, counterpart):
    ids, _ = _balances(conn, uin, lock=True)
    action = "present" if amount > 0 else "adj_deduct"
    result = _transfer(conn, clock, key, request, action, uin,
                       [(counterpart, -amount), (ids[sub_account], amount)], memo=reason)
    parts = {"cash": amount} if sub_account == "cash" else {"gift": amount}
    entry = _record(conn, clock, uin, result.txn_id, action, amount, memo=reason, **parts)
    return Movement(result.txn_id, True, (entry,))


def refuse_cancelled(conn: Connection, uin: int) -> None:
    """ACC-5: no money comes into a cancelled account. Read the account's state (call
    it after the balance lock, which the cancellation takes too, so a cancellation
    that committed is seen and one that comes later waits and then finds the money);
    cancelled: a ``Conflict`` naming ``uin``, before anything is written."""
    if conn.execute(select(customers.c.status).where(
            customers.c.uin == uin)).scalar() == "cancelled":
        raise Conflict(f"账号 {uin} 已注销，不能再入账（现金、赠送金或信用额度）",
                       f"account {uin} is cancelled: no cash, gift or credit can be given to it",
                       field="uin", state="cancelled")


# ---------------------------------------------------------------- arrears measures (ARR-6)

DAMAGES_ACCOUNT = "liquidated_damages"


def charge_damages(conn: Connection, clock: Clock, uin: int, amount: int, *, key: str,
                   memo: str) -> dict:
    """Liquidated damages (违约金, ARR-6) as an adjustment: taken from cash, the rest
    becoming arrears, paid to the platform account ``liquidated_damages``: one
    ``adj_deduct`` transaction and its 收支明细 entry (gift, frozen money and credit
    are not touched). Idempotent by ``key``. Returns {"txn_id", "created", "entry_id",
    "cash", "arrears"}: what cash paid and what became arrears."""
    if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT_FEN:
        raise invalid("amount", "违约金金额必须为正数", "the liquidated damages must be a positive amount")
    request = {"op": "damages", "uin": uin, "amount": amount, "memo": memo}
    ids, bal = _balances(conn, uin, lock=True)  # lock first: see _replayed
    if (earlier := _replayed(conn, key, request)) is not None:
        return _charged(conn, earlier.txn_id, created=False)
    from_cash = min(amount, max(bal["cash"], 0))
    counterpart = platform_account(conn, clock, DAMAGES_ACCOUNT)
    result = _transfer(conn, clock, key, request, "adj_deduct", uin,
                       [(ids["cash"], -from_cash), (ids["arrears"], -(amount - from_cash)),
                        (counterpart, amount)], memo=memo)
    _record(conn, clock, uin, result.txn_id, "adj_deduct", -amount, cash=-from_cash, memo=memo)
    return _charged(conn, result.txn_id, created=True)


def _charged(conn: Connection, txn_id: int, *, created: bool) -> dict:
    s = statement_entries.c
    entry = conn.execute(select(s.id, s.amount, s.cash_amount).where(s.txn_id == txn_id)).one()
    return {"txn_id": txn_id, "created": created, "entry_id": entry.id,
            "cash": -entry.cash_amount, "arrears": entry.cash_amount - entry.amount}


_SET_OFF = (("arrears", "repayment"), ("advance", "repay"))


def set_off_arrears(conn: Connection, clock: Clock, uin: int, *, key: str) -> dict:
    """ARR-6 set-off: cash the account holds while it owes (a refund or a released freeze
    credited while in arrears) repays what it owes as incoming money would (ARR-4):
    arrears, then unrepaid advances; a ``repayment`` and a ``repay`` transaction with
    their 收支明细 entries, keys ``{key}:arrears`` and ``{key}:advance``. Idempotent
    by ``key``: a repeat returns what the first did (``created`` False), however the
    balances moved since. Refused (Conflict) when the account owes nothing (field
    ``uin``) or holds no cash (field ``cash``). Returns {"arrears", "advances",
    "txn_ids", "entry_ids", "created"}."""
    ids, bal = _balances(conn, uin, lock=True)  # lock first: see _replayed
    keys = {f"{key}:{sub}": sub for sub, _ in _SET_OFF}
    t = ledger_transactions.c
    done = conn.execute(select(t.id, t.uin, t.idempotency_key).where(
        t.idempotency_key.in_(list(keys))).order_by(t.id)).all()
    if done:
        if any(row.uin != uin for row in done):
            raise IdempotencyConflict("幂等键已用于其他账号", "idempotency key already used "
                                      "for another account", field="idempotency_key")
        return _set_off_result(conn, [row.id for row in done], created=False)
    owed = -bal["arrears"] - bal["advance"]
    if owed <= 0:
        raise Conflict(f"账号 {uin} 没有欠费或未回款的垫付，无可抵扣",
                       f"account {uin} owes no arrears or advances: nothing to set off",
                       field="uin", state="normal")
    if bal["cash"] <= 0:
        raise Conflict(f"账号 {uin} 没有可用于抵扣的现金余额",
                       f"account {uin} holds no cash to set off against what it owes",
                       field="cash")
    plan = rules.plan_incoming(bal["cash"], arrears=-bal["arrears"], advances=-bal["advance"])
    memo = "欠费抵扣 / arrears set off"
    txn_ids = []
    for (sub, action), part in zip(_SET_OFF, (plan.to_arrears, plan.to_advances)):
        if part:
            request = {"op": "set_off", "uin": uin, "sub": sub, "amount": part}
            result = _transfer(conn, clock, f"{key}:{sub}", request, action, uin,
                               [(ids["cash"], -part), (ids[sub], part)], memo=memo)
            _record(conn, clock, uin, result.txn_id, action, -part, cash=-part, memo=memo)
            txn_ids.append(result.txn_id)
    return _set_off_result(conn, txn_ids, created=True)


def _set_off_result(conn: Connection, txn_ids: list[int], *, created: bool) -> dict:
    s = statement_entries.c
    rows = conn.execute(select(s.id, s.action_type, s.amount).where(s.txn_id.in_(txn_ids))
                        .order_by(s.id)).all()
    parts = {action: -row.amount for row in rows for action in [row.action_type]}
    return {"arrears": parts.get("repayment", 0), "advances": parts.get("repay", 0),
            "txn_ids": list(txn_ids), "entry_ids": [row.id for row in rows], "created": created}
def forfeit_gift(conn: Connection, clock: Clock, uin: int, *, key: str, reason: str) -> Movement | None:
    """ACC-5: the gift balance left (not frozen) is forfeited to the platform account
    ``forfeited_gift`` as an ``adj_deduct`` entry; None when there is none. The caller
    (an account's cancellation) has checked who may; the balances are locked here."""
    ids, bal = _balances(conn, uin, lock=True)
    request = {"op": "forfeit_gift", "uin": uin}
    if (earlier := _replayed(conn, key, request)) is not None:
        return earlier
    if bal["gift"] <= 0:
        return None
    counterpart = platform_account(conn, clock, "forfeited_gift")
    return _adjust_simple(conn, clock, uin, "gift", -bal["gift"], reason, key, request,
                          counterpart)


def grant_credit(conn: Connection, clock: Clock, actor: Actor, uin: int, *, credit_limit: int,
                 temp_credit: int = 0, temp_credit_end: datetime | None = None) -> BalanceView:
    """Set an account's credit amount and temporary credit (BAL-7), audited. A cancelled
    account gets no credit (ACC-5, 409 naming ``uin``); setting it to zero is allowed."""
    require_operator(actor)
    _balances(conn, uin, lock=True)  # a cancellation (which takes it too) is seen or waits
    for name, value in (("credit_limit", credit_limit), ("temp_credit", temp_credit)):
        if value < 0 or value > MAX_AMOUNT_FEN:
            raise invalid(name, "信用额度必须为非负金额", "credit must be a non-negative amount")
    if temp_credit and temp_credit_end is None:
        raise invalid("temp_credit_end", "临时额度必须有结束时间", "temporary credit needs an end time")
    if credit_limit or temp_credit:
        refuse_cancelled(conn, uin)
    values = {"credit_limit": credit_limit, "temp_credit": temp_credit,
              "temp_credit_end": db_time(temp_credit_end) if temp_credit_end else None,
              "updated_at": db_time(clock.now())}
    if conn.execute(select(credit_lines.c.uin).where(credit_lines.c.uin == uin)).first():
        conn.execute(credit_lines.update().where(credit_lines.c.uin == uin).values(**values))
    else:
        conn.execute(insert(credit_lines).values(uin=uin, **values))
    record_audit(conn, clock, actor, "grant_credit", uin,
                 {k: str(v) for k, v in values.items()})
    _, bal = _balances(conn, uin, lock=False)
    return _view(conn, clock, uin, bal)


def end_credit_line(conn: Connection, clock: Clock, uin: int) -> int:
    """ACC-5: a cancelled account's credit line ends (its limit and temporary credit
    set to 0); the credit limit it had. The caller (the cancellation) holds the
    balance lock."""
    had = conn.execute(select(credit_lines.c.credit_limit).where(
        credit_lines.c.uin == uin)).scalar() or 0
    conn.execute(credit_lines.update().where(credit_lines.c.uin == uin).values(
        credit_limit=0, temp_credit=0, temp_credit_end=None, updated_at=db_time(clock.now())))
    return int(had)


# ---------------------------------------------------------------- transaction list

@dataclass(frozen=True)
class StatementQuery:
    start: datetime | None = None
    end: datetime | None = None
    action_types: tuple[str, ...] = ()
    deduct_modes: tuple[str, ...] = ()
    product_code: str | None = None
    offset: int = 0
    limit: int = 20
    with_zero: bool = True
    # keyset paging (newest first): the page after (older than) or before (newer than)
    # the entry of this id, by (time, id); ``offset`` is then not used
    after_id: int | None = None
    before_id: int | None = None
    with_totals: bool = True  # the sums per type (a scan of every matching entry)


def list_transactions(conn: Connection, actor: Actor, uin: int, query: StatementQuery):
    """收支明细 (BAL-5): newest first, filtered and paged, with totals per type (empty
    when not ``query.with_totals``)."""
    require(actor, uin, FINANCE)
    _account_ids(conn, uin)
    if query.offset < 0 or not 1 <= query.limit <= 1000:
        raise invalid("limit", "每页条数必须为 1–1000，偏移量不能为负",
                      "limit must be 1-1000 and offset non-negative")
    unknown = set(query.action_types) - set(ACTION_TYPES)
    if unknown:
        raise invalid("action_type", f"未知的收支类型：{sorted(unknown)}",
                      f"unknown transaction type: {sorted(unknown)}")
    s = statement_entries.c
    conditions = [s.uin == uin]
    if query.start:
        conditions.append(s.created_at >= db_time(query.start))
    if query.end:
        conditions.append(s.created_at <= db_time(query.end))
    if query.action_types:
        conditions.append(s.action_type.in_(query.action_types))
    if query.deduct_modes:
        conditions.append(s.deduct_mode.in_(query.deduct_modes))
    if query.product_code:
        conditions.append(s.product_code == query.product_code)
    if not query.with_zero:
        conditions.append(s.amount != 0)
    where = and_(*conditions)
    total = conn.execute(select(func.count()).select_from(statement_entries).where(where)).scalar_one()
    totals = dict(conn.execute(select(s.action_type, func.sum(s.amount)).where(where)
                               .group_by(s.action_type)).all()) if query.with_totals else {}
    rows = conn.execute(_statement_page(conn, uin, query, where)).mappings().all()
    if query.before_id is not None:
        rows = rows[::-1]
    return {"total": total, "totals": {k: int(v) for k, v in totals.items()},
            "items": [dict(row) for row in rows]}


def _statement_page(conn: Connection, uin: int, query: StatementQuery, where):
    """One page newest first: by offset, or by keyset after / before an entry's
    (time, id), which costs the same however deep (ix_statement_entries_uin_created)."""
    s = statement_entries.c
    stmt = select(statement_entries).where(where).limit(query.limit)
    newest_first = (s.created_at.desc(), s.id.desc())
    if query.after_id is None and query.before_id is None:
        return stmt.order_by(*newest_first).offset(query.offset)
    field = "after_id" if query.after_id is not None else "before_id"
    cursor = query.after_id if query.after_id is not None else query.before_id
    at = None
    if query.after_id is None or query.before_id is None:
        at = conn.execute(select(s.created_at).where(s.id == cursor, s.uin == uin)).scalar()
    if at is None:
        raise invalid(field, "翻页位置无效", "unknown page position")
    key, mark = tuple_(s.created_at, s.id), tuple_(at, cursor)
    if field == "after_id":
        return stmt.where(key < mark).order_by(*newest_first)
    return stmt.where(key > mark).order_by(s.created_at, s.id)

