"""Recharge use cases: create a recharge through a payment gateway (a mini-program one
bound to its creator, RCH-4), credit a paid one exactly once (RCH-5, ARR-4), record
every provider notification, expire and recover.

Creating and syncing talk to the provider over the network, so they take the
engine and run their own short units of work around the call, never holding
a database transaction open across it. ``apply_payment`` is the one place a
provider's word changes a recharge: the claim is a conditional UPDATE whose
row count decides (docs/architecture.md, "Claiming a state change"), and the
winner credits the money in the same transaction through ``funds.receive``
(arrears first, then advances, then the balance, each its own 收支明细 entry).
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, func, insert, select, text, update

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, Actor, require, require_operator
from feecenter.clock import BUSINESS_TZ, Clock, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.errors import invalid, not_found
from feecenter.funds import service as funds
from feecenter.inputs import plain_text
from feecenter.recharges import rules
from feecenter.recharges.gateway import (
    GatewayRefused,
    GatewayUnavailable,
    NotificationRefused,
    PaymentGateway,
    ProviderPayment,
)
from feecenter.recharges.rules import CLOSED, FAILED, PAID, PENDING, WECHAT
from feecenter.recharges.tables import (
    recharge_blocks,
    recharge_notifications,
    recharges,
)

_R = recharges.c
Gateways = Mapping[str, PaymentGateway]
SUB_TYPE = "online"  # Tencent's SubPayType of an online recharge (DescribeBillList)
LOGGED_BODY_CHARS = 4096  # of a notification refused before its signature was verified


@dataclass(frozen=True)
class NewRecharge:
    amount: int                 # fen
    channel: str
    payer: str | None = None    # payer identity; None: the caller's own
    intl_card: bool = False     # the payer will pay with an international card (RCH-2)
    source: str = rules.QR      # mini_program: bound to ``payer``, its creator (RCH-4)


@dataclass(frozen=True)
class Settings:
    enabled_channels: tuple[str, ...] = rules.ENABLED_CHANNELS
    frequency: rules.FrequencyControl = rules.FREQUENCY
    term: timedelta = rules.PAYMENT_TERM


# ---------------------------------------------------------------- creating

def create(engine: Engine, clock: Clock, actor: Actor, uin: int, new: NewRecharge,
           gateways: Gateways, settings: Settings = Settings()) -> dict:
    """Admit a recharge (limits, frequency control), then ask the provider for its QR
    code; returns the recharge with its ``code_url``.

    A provider that fails or times out leaves the recharge closed with the reason
    (nobody saw a code to pay); a late payment of it is still credited.
    """
    require(actor, uin, FINANCE)
    channel = rules.check_channel(new.channel, settings.enabled_channels)
    if type(new.amount) is not int:
        raise invalid("amount", "金额必须是整数分", "amount must be integer fen")
    rules.check_amount(new.amount)
    source = rules.check_source(new.source, channel, new.payer)
    payer = plain_text(new.payer if new.payer is not None else actor.label, "payer", 128)
    bound = payer if source == rules.MINI_PROGRAM else None
    gateway = _gateway(gateways, channel)
    with transaction(engine) as conn:
        row = _admit(conn, clock, actor, uin, new, channel, payer, settings,
                     source=source, bound_payer=bound)
    if row is None:
        raise rules.qr_blocked_error()
    expires_at = from_db_time(row["expires_at"])
    try:
        reference = gateway.create_payment(row["out_trade_no"], row["amount"],
                                           f"Fee Center recharge {uin}", expires_at, payer=bound)
    except (GatewayUnavailable, GatewayRefused) as exc:
        with transaction(engine) as conn:
            _end(conn, clock, row["id"], CLOSED, exc.message)
        raise
    made = {"prepay_id": reference} if bound else {"code_url": reference}
    with transaction(engine) as conn:
        conn.execute(update(recharges).where(_R.id == row["id"]).values(**made))
    return {**row, "code_url": None, "prepay_id": None, **made}


def _gateway(gateways: Gateways, channel: str) -> PaymentGateway:
    """The channel's gateway; a channel no provider is configured for is not open here."""
    gateway = gateways.get(channel)
    if gateway is None:
        zh, en = rules.CHANNEL_NAMES[channel]
        raise invalid("channel", f"充值渠道未开通：{zh}（未配置支付服务商）",
                      f"recharge channel is not open: {en} (no payment provider configured)")
    return gateway


def _admit(conn: Connection, clock: Clock, actor: Actor, uin: int, new: NewRecharge,
           channel: str, payer: str, settings: Settings, **origin) -> dict | None:
    """Check RCH-2/RCH-3 and write the pending recharge; None: the WeChat QR code is
    blocked (the block itself is written and committed)."""
    funds.lock_balances(conn, uin)  # one admission per account at a time (RCH-3)
    if accounts.is_cancelled(conn, uin):  # ACC-5, read under the balance lock
        raise rules.RechargeRefused("账号已注销，不能充值", "the account is cancelled and cannot "
                                    "be recharged", field="uin")
    _lock_payer(conn, payer)        # one per payer at a time (RCH-2 counts per payer)
    now = clock.now()
    if channel == WECHAT and _blocked(conn, uin, now):
        return None
    if _frequency_exceeded(conn, uin, payer, now, settings.frequency) and channel == WECHAT:
        return None
    today, month = _used(conn, uin, payer, channel, new.intl_card, now)
    rules.check_limits(channel, new.intl_card, new.amount, used_today=today, used_month=month)
    values = {"uin": uin, "amount": new.amount, "channel": channel, "payer": payer,
              "out_trade_no": f"FC{uuid.uuid4().hex[:28].upper()}", "state": PENDING,
              "intl_card": bool(new.intl_card), "created_by": actor.label, **origin,
              "created_at": db_time(now), "expires_at": db_time(now + settings.term)}
    new_id = conn.execute(insert(recharges).values(**values).returning(_R.id)).scalar_one()
    return {"id": new_id, **values}


def _lock_payer(conn: Connection, payer: str) -> None:
    if conn.dialect.name == "postgresql":
        lock_key = int.from_bytes(hashlib.sha256(payer.encode()).digest()[:8], "big", signed=True)
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key})


def _blocked(conn: Connection, uin: int, now: datetime) -> bool:
    until = conn.execute(select(recharge_blocks.c.blocked_until)
                         .where(recharge_blocks.c.uin == uin)).scalar()
    return until is not None and from_db_time(until) > now


def _frequency_exceeded(conn: Connection, uin: int, payer: str, now: datetime,
                        control: rules.FrequencyControl) -> bool:
    """RCH-3: too many distinct payers of this account in the window starts a block."""
    recent = set(conn.execute(select(_R.payer).distinct().where(
        _R.uin == uin, _R.created_at >= db_time(now - control.window))).scalars())
    if not rules.too_many_payers(recent, payer, control):
        return False
    values = {"blocked_until": db_time(now + control.block), "payers": len(recent | {payer}),
              "updated_at": db_time(now)}
    if conn.execute(update(recharge_blocks).where(recharge_blocks.c.uin == uin)
                    .values(**values)).rowcount == 0:
        conn.execute(insert(recharge_blocks).values(uin=uin, **values))
    return True


def _used(conn: Connection, uin: int, payer: str, channel: str, intl_card: bool,
          now: datetime) -> tuple[int, int]:
    """What the payer's live (pending or paid) recharges of the channel into this
    account hold today and this month (business time). Counted within the account:
    the payer is what the caller says, so one account must not use up another's."""
    local = now.astimezone(BUSINESS_TZ)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)

    def since(start: datetime) -> int:
        return int(conn.execute(select(func.coalesce(func.sum(_R.amount), 0)).where(
            _R.uin == uin, _R.payer == payer, _R.channel == channel, _R.intl_card == bool(intl_card),
            _R.state.in_((PENDING, PAID)), _R.created_at >= db_time(start))).scalar())

    return since(day), since(month)


# ---------------------------------------------------------------- the provider's word

def apply_payment(conn: Connection, clock: Clock, recharge: dict,
                  payment: ProviderPayment) -> str:
    """Apply what the provider reports about ``recharge``; returns the outcome:
    ``credited`` (this call claimed it and credited the money), ``duplicate`` (paid
    already), ``failed``, ``closed``, ``pending``, or refused: ``amount_mismatch``,
    ``payer_mismatch`` (a bound recharge paid by another payer: RCH-4, it fails).

    The provider's word that money was taken wins over a local close or failure:
    a payment that completes after its recharge was closed is still credited.
    """
    if payment.state == PAID:
        if payment.amount != recharge["amount"]:
            return "amount_mismatch"
        if recharge.get("bound_payer") and payment.payer != recharge["bound_payer"]:
            _end(conn, clock, recharge["id"], FAILED,
                 f"{rules.PAYER_MISMATCH} (payer {str(payment.payer)[:64]})")
            return "payer_mismatch"
        return _claim_paid(conn, clock, recharge, payment)
    if payment.state in (FAILED, CLOSED):
        ended = _end(conn, clock, recharge["id"], payment.state, payment.reason)
        return payment.state if ended else "duplicate"
    return "pending"


def _claim_paid(conn: Connection, clock: Clock, recharge: dict, payment: ProviderPayment) -> str:
    """The claim, under the account's balance lock taken first (the lock order of
    ACC-5: balances, then the recharge), so that a cancellation and a credit of
    the same account are serialized: a payment for a cancelled account is not
    credited; the recharge fails with the reason, to be refunded to the payer."""
    funds.lock_balances(conn, recharge["uin"])
    if accounts.is_cancelled(conn, recharge["uin"]):
        conn.execute(update(recharges).where(_R.id == recharge["id"], _R.state != PAID)
                     .values(state=FAILED, fail_reason=rules.ACCOUNT_CANCELLED,
                             ended_at=db_time(clock.now())))
        return "account_cancelled"
    now = clock.now()
    claimed = conn.execute(update(recharges).where(_R.id == recharge["id"], _R.state != PAID)
                           .values(state=PAID, paid_at=db_time(now), fail_reason=None,
                                   provider_txn_id=payment.provider_txn_id,
                                   provider_payer=payment.payer,
                                   intl_card=bool(payment.intl_card))
                           .returning(_R.id, _R.uin, _R.amount, _R.channel, _R.out_trade_no)
                           ).first()
    if claimed is None:
        return "duplicate"
    source = funds.platform_account(conn, clock, f"gateway_{claimed.channel}")
    movement = funds.receive(
        conn, clock, claimed.uin, claimed.amount, key=f"recharge:{claimed.id}",
        source_account_id=source, action_type="recharge", pay_channel=claimed.channel,
        sub_type=SUB_TYPE, memo=claimed.out_trade_no,
        request={"op": "recharge", "id": claimed.id, "amount": claimed.amount})
    conn.execute(update(recharges).where(_R.id == claimed.id).values(txn_id=movement.txn_id))
    return "credited"


def _end(conn: Connection, clock: Clock, recharge_id: int, state: str,
         reason: str | None) -> bool:
    """pending -> failed or closed; False when it was no longer pending."""
    return conn.execute(update(recharges).where(_R.id == recharge_id, _R.state == PENDING)
                        .values(state=state, fail_reason=reason,
                                ended_at=db_time(clock.now()))).rowcount == 1


# ---------------------------------------------------------------- notifications

@dataclass(frozen=True)
class NotificationResult:
    accepted: bool           # acknowledge to the provider (it stops retrying)
    outcome: str
    reason: str | None = None


def handle_notification(engine: Engine, clock: Clock, gateway: PaymentGateway,
                        headers: Mapping[str, str], body: bytes) -> NotificationResult:
    """Verify, decrypt and apply a provider notification; every one is recorded
    (RCH-5). Refused: a bad signature, a stale or future timestamp, another
    merchant, an unknown payment, an amount that differs from the recharge, a bound
    recharge paid by another payer (RCH-4)."""
    raw = body.decode("utf-8", "replace").replace("\x00", "\ufffd")  # storable as text
    try:
        note = gateway.parse_notification(headers, body, clock.now())
    except NotificationRefused as refused:
        with transaction(engine) as conn:
            _log(conn, clock, gateway.channel, _clipped(raw), "refused", refused.reason)
        return NotificationResult(False, "refused", refused.reason)
    payment = note.payment
    with transaction(engine) as conn:
        row = conn.execute(select(recharges).where(
            _R.out_trade_no == payment.out_trade_no)).mappings().first()
        outcome = "unknown_payment" if row is None else apply_payment(conn, clock, dict(row), payment)
        refused = outcome in ("unknown_payment", "amount_mismatch", "payer_mismatch",
                              "account_cancelled")
        _log(conn, clock, gateway.channel, raw, "refused" if refused else outcome,
             outcome if refused else None, notification_id=note.notification_id[:64],
             out_trade_no=payment.out_trade_no[:64], recharge_id=row["id"] if row else None)
    return NotificationResult(not refused, "refused" if refused else outcome,
                              outcome if refused else None)


def _clipped(raw: str) -> str:
    """What is kept of an unverified body: its first 4 KiB, its length and digest
    (anyone can post one, so the log must not grow by what they send)."""
    if len(raw) <= LOGGED_BODY_CHARS:
        return raw
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return f"{raw[:LOGGED_BODY_CHARS]}… ({len(raw)} characters, sha256 {digest})"


def _log(conn: Connection, clock: Clock, channel: str, body: str, outcome: str,
         reason: str | None, **fields) -> None:
    conn.execute(insert(recharge_notifications).values(
        channel=channel, body=body, outcome=outcome, reason=reason,
        received_at=db_time(clock.now()), **fields))


# ---------------------------------------------------------------- querying, expiry, recovery

def query(engine: Engine, clock: Clock, actor: Actor, recharge_id: int,
          gateways: Gateways) -> dict:
    """Ask the provider about a recharge and apply the answer (a missed notification
    is recovered here); returns the recharge."""
    with engine.connect() as conn:
        row = get(conn, actor, recharge_id)
    if row["state"] == PENDING or row["state"] == CLOSED:
        _sync_one(engine, clock, _gateway(gateways, row["channel"]), row)
    with engine.connect() as conn:
        return get(conn, actor, recharge_id)


def sync_pending(engine: Engine, clock: Clock, gateways: Gateways, *,
                 older_than: timedelta = rules.RECOVERY_AFTER, limit: int = 500) -> dict:
    """Query every pending recharge older than ``older_than`` (a missed notification
    is credited), and close those past their term, at the provider too."""
    counts = {"checked": 0, "credited": 0, "failed": 0, "closed": 0, "unreachable": 0}
    cutoff = db_time(clock.now() - older_than)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(recharges).where(
            _R.state == PENDING, _R.created_at <= cutoff).order_by(_R.id).limit(limit)).mappings()]
    for row in rows:
        gateway = gateways.get(row["channel"])
        counts["checked"] += 1
        try:
            if gateway is None:
                raise GatewayUnavailable("未配置支付服务商", "no provider configured")
            outcome = _sync_one(engine, clock, gateway, row)
        except (GatewayUnavailable, GatewayRefused):
            counts["unreachable"] += 1
            continue
        if outcome in counts:
            counts[outcome] += 1
    return counts


def _sync_one(engine: Engine, clock: Clock, gateway: PaymentGateway, row: dict) -> str:
    payment = gateway.query(row["out_trade_no"])
    expired = from_db_time(row["expires_at"]) <= clock.now()
    if payment.state == PENDING and expired and row["state"] == PENDING:
        try:
            gateway.close(row["out_trade_no"])
        except GatewayRefused:  # paid meanwhile: the next query sees it
            payment = gateway.query(row["out_trade_no"])
        else:
            payment = ProviderPayment(row["out_trade_no"], CLOSED, None,
                                      reason="支付超时关闭 / expired")
    with transaction(engine) as conn:
        outcome = apply_payment(conn, clock, row, payment)
    return "credited" if outcome == "credited" else outcome


# ---------------------------------------------------------------- reading

def get(conn: Connection, actor: Actor, recharge_id: int) -> dict:
    row = conn.execute(select(recharges).where(_R.id == recharge_id)).mappings().first()
    if row is None or (actor.kind == "user" and actor.uin != row["uin"]):  # no probing ids
        raise not_found("recharge_id", "充值记录", "recharge", recharge_id)
    require(actor, row["uin"], FINANCE)
    return dict(row)


def list_recharges(conn: Connection, actor: Actor, uin: int, *, state: str | None = None,
                   offset: int = 0, limit: int = 20) -> dict:
    require(actor, uin, FINANCE)
    if state is not None and state not in rules.STATES:
        raise invalid("state", f"未知的充值状态：{state}", f"unknown recharge state: {state}",
                      allowed=list(rules.STATES))
    where = [_R.uin == uin] + ([_R.state == state] if state else [])
    total = conn.execute(select(func.count()).select_from(recharges).where(*where)).scalar_one()
    rows = conn.execute(select(recharges).where(*where).order_by(_R.id.desc())
                        .offset(offset).limit(limit)).mappings()
    return {"items": [dict(r) for r in rows], "total": total}


def search_recharges(conn: Connection, actor: Actor, *, uin: int | None = None,
                     state: str | None = None, provider_txn_id: str | None = None,
                     limit: int = 100) -> list[dict]:
    """Recharges across accounts, newest first, by account, state or the provider's
    transaction id (operators)."""
    require_operator(actor)
    if state is not None and state not in rules.STATES:
        raise invalid("state", f"未知的充值状态：{state}", f"unknown recharge state: {state}",
                      allowed=list(rules.STATES))
    where = ([_R.uin == uin] if uin is not None else []) \
        + ([_R.state == state] if state else []) \
        + ([_R.provider_txn_id == provider_txn_id] if provider_txn_id else [])
    stmt = select(recharges).where(*where).order_by(_R.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def list_notifications(conn: Connection, actor: Actor, *, recharge_id: int | None = None,
                       limit: int = 100) -> list[dict]:
    """The provider's raw notification log, newest first (operators)."""
    require_operator(actor)
    stmt = select(recharge_notifications).order_by(recharge_notifications.c.id.desc()).limit(limit)
    if recharge_id is not None:
        stmt = stmt.where(recharge_notifications.c.recharge_id == recharge_id)
    return [dict(r) for r in conn.execute(stmt).mappings()]
