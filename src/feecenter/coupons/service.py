"""Coupon use cases (CPN-1..6, ARR-5; SET-6 and ORD-3's coupon step).

Every function runs inside the caller's database transaction and never
commits. Operators grant coupons and create redemption codes (audited);
customers redeem codes and list their coupons (FINANCE permission, ACC-2).

Payment and settlement use coupons in two phases, like a ledger hold:

- ``allocate`` locks the account's unused coupons and plans with the pure
  rules (``rules.plan``): what each coupon pays of each line, and why every
  other coupon pays nothing. It writes nothing.
- ``reserve`` writes the plan as pending uses and takes the amounts off the
  coupons (idempotent by key). ``confirm(reference)`` makes a line's
  pending uses final and moves their money in the ledger from the platform's
  coupon funding account to revenue; ``release(reference)`` gives it back to
  the coupons. ``use_now`` is all three at once for postpaid settlement.
- ``refund(reference)`` returns the cash coupons a refunded order used
  (ORD-4); vouchers and discount coupons are not returned.

Coupon money is the platform's, never the customer's (CPN-2): granting a
coupon writes no ledger entry; only a confirmed use does (docs/coupons.md).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Connection, case, exists, func, insert, literal_column, select, update

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require, require_operator
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.coupons import rules
from feecenter.coupons.tables import coupon_code_batches, coupon_codes, coupon_uses, coupons
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import (Conflict, IdempotencyConflict, LedgerInvariantBroken, NotFound,
                              invalid, not_found)
from feecenter.funds import service as funds
from feecenter.ledger import service as ledger

DEFAULT_LIMITS = rules.CountLimits()
FUNDING = "coupon_funding"  # platform:{entity}:coupon_funding — marketing expense, may go negative
MAX_CODES = 10_000
MAX_PAGE = 100
WALLET_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"  # 8-letter card-wallet codes: no I or O
PRINTED_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # 16-character printed codes: no 0/O/1/I
CODE_FORMATS = {"wallet": (8, WALLET_LETTERS), "printed": (16, PRINTED_CHARS)}
PENDING, CONFIRMED, RELEASED, RETURNED = "pending", "confirmed", "released", "returned"

_C = coupons.c
_U = coupon_uses.c
_K = coupon_codes.c
_B = coupon_code_batches.c


# ---------------------------------------------------------------- results

@dataclass(frozen=True)
class Allocation:
    """A plan for one payment: what each coupon pays of each line; nothing written yet."""

    uin: int
    mode: str
    lines: tuple[rules.Line, ...]
    plan: rules.Plan
    coupons: tuple[rules.Coupon, ...]

    @property
    def line_paid(self) -> tuple[int, ...]:
        return self.plan.line_paid

    @property
    def total(self) -> int:
        return self.plan.total

    def to_dict(self) -> dict:
        return {"mode": self.mode, "total": self.total,
                "lines": [{"reference": line.reference, "product_code": line.product_code,
                           "amount": line.amount, "coupon": paid}
                          for line, paid in zip(self.lines, self.line_paid)],
                "uses": [{"coupon_id": u.coupon_id, "line_index": u.line_index,
                          "amount": u.amount} for u in self.plan.uses],
                "forfeited": dict(self.plan.forfeited),
                "skipped": {cid: r.to_dict() for cid, r in self.plan.skipped.items()}}


@dataclass(frozen=True)
class Reservation:
    """Pending uses written for one payment (or, replayed, the first call's)."""

    key: str
    created: bool  # False: the key was used before, nothing written
    line_paid: tuple[int, ...]
    uses: tuple[dict, ...]  # id, coupon_id, line_index, reference, amount, state
    line_txn: tuple[int | None, ...] = ()  # use_now: each line's coupon payment transaction

    @property
    def total(self) -> int:
        return sum(self.line_paid)


@dataclass(frozen=True)
class Settled:
    """A confirm or a refund: the amount and the ledger transactions it wrote."""

    reference: str
    amount: int
    txn_ids: tuple[int, ...]
    created: bool  # False: nothing was pending (confirmed before, or no coupon paid it)

    @property
    def txn_id(self) -> int:
        """The one ledger transaction of a confirm or refund that wrote one: one
        payment's reservation is confirmed, and a refund moves its money, in one."""
        if len(self.txn_ids) != 1:
            raise LedgerInvariantBroken(
                f"优惠券 {self.reference} 的支付或退还应为一笔交易",
                f"coupons {self.reference}: one transaction expected, got {len(self.txn_ids)}")
        return self.txn_ids[0]


@dataclass(frozen=True)
class CodeBatch:
    batch_id: int
    codes: tuple[str, ...]  # shown once: empty when a repeated key returns the batch
    created: bool


@dataclass(frozen=True)
class CouponQuery:
    state: str | None = None  # unused | used | expired (as of now)
    kind: str | None = None
    pay_mode: str | None = None
    product: str | None = None  # coupons that cover this product
    offset: int = 0
    limit: int = 20


# ---------------------------------------------------------------- helpers

def _lock(conn: Connection, stmt, of=None):
    """FOR UPDATE on PostgreSQL (of ``of`` only, if given); SQLite has one writer anyway."""
    if conn.dialect.name != "postgresql":
        return stmt
    return stmt.with_for_update(of=of) if of is not None else stmt.with_for_update()


def _check_key(key: str, field: str = "idempotency_key") -> str:
    if not isinstance(key, str) or not 1 <= len(key.strip()) <= 150:
        raise invalid(field, "幂等键须为 1–150 个字符", "idempotency key must be 1-150 characters")
    return key.strip()


def _check_campaign(campaign: str) -> str:
    if not isinstance(campaign, str) or not 1 <= len(campaign.strip()) <= 120:
        raise invalid("campaign", "活动名称须为 1–120 个字符", "campaign must be 1-120 characters")
    return campaign.strip()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


def _to_rule(row) -> rules.Coupon:
    kinds = frozenset(row.order_kinds.split(",")) if row.order_kinds else frozenset()
    return rules.Coupon(
        id=row.id, kind=row.kind, pay_mode=row.pay_mode, remaining=row.remaining,
        valid_from=from_db_time(row.valid_from), valid_until=from_db_time(row.valid_until),
        state=row.state, discount_bp=row.discount_bp, max_discount=row.max_discount,
        product_scope=row.product_scope, products=frozenset(json.loads(row.products)),
        order_kinds=kinds, min_months=row.min_months, max_months=row.max_months,
        threshold=row.threshold, single_use=row.single_use)


def _coupon_values(uin: int, terms: rules.Terms, now: datetime, **source) -> dict:
    start, end = rules.window(terms, now)
    if end <= now:
        raise invalid("valid_until", "有效期已结束，不能发放", "the validity period is already over")
    return {"uin": uin, "kind": terms.kind, "pay_mode": terms.pay_mode,
            "face_amount": terms.face_amount, "discount_bp": terms.discount_bp,
            "max_discount": terms.max_discount, "remaining": rules.initial_remaining(terms),
            "forfeited": 0, "product_scope": terms.product_scope,
            "products": json.dumps(list(terms.products)),
            "order_kinds": ",".join(terms.order_kinds) or None,
            "min_months": terms.min_months, "max_months": terms.max_months,
            "threshold": terms.threshold, "valid_from": db_time(start),
            "valid_until": db_time(end), "single_use": terms.single_use, "state": rules.UNUSED,
            "created_at": db_time(now), **source}


# ---------------------------------------------------------------- operators

def grant(conn: Connection, clock: Clock, actor: Actor, uin: int, terms: rules.Terms, *,
          campaign: str, key: str | None = None) -> int:
    """Give an account a coupon from a campaign (operator, audited); returns its id.

    A repeat with the same ``key`` for the account returns the first coupon. A
    cancelled account gets none (ACC-5, 409 naming ``uin``).
    """
    require_operator(actor)
    campaign = _check_campaign(campaign)
    terms = rules.check_terms(terms)
    funds.lock_balances(conn, uin)  # a cancellation (which takes it too) is seen or waits
    _refuse_cancelled(accounts.get_account(conn, SYSTEM, uin))
    full_key = f"{uin}:{_check_key(key)}" if key is not None else None
    if full_key is not None and (earlier := _granted(conn, full_key, terms, campaign)):
        return earlier
    values = _coupon_values(uin, terms, clock.now(), source_kind="campaign", source=campaign,
                            idempotency_key=full_key, created_by=actor.label)
    coupon_id = conn.execute(insert_if_absent(conn, coupons, ["idempotency_key"])
                             .values(**values).returning(_C.id)).scalar()
    if coupon_id is None:  # the same grant sent twice at once: the other one committed first
        return _granted(conn, full_key, terms, campaign)
    record_audit(conn, clock, actor, "grant_coupon", uin,
                 {"coupon_id": coupon_id, "campaign": campaign, **terms.to_json()})
    return coupon_id


def _refuse_cancelled(account: dict) -> None:
    """ACC-5: a cancelled account gets no coupon (nobody could use it)."""
    if account["status"] == "cancelled":
        raise Conflict(f"账号 {account['uin']} 已注销，不能发放或兑换优惠券",
                       f"account {account['uin']} is cancelled: no coupon can be granted or "
                       "redeemed to it", field="uin", state="cancelled")


def _granted(conn: Connection, full_key: str, terms: rules.Terms, campaign: str) -> int | None:
    """The coupon granted earlier under ``full_key``, if any; refused if it was another grant."""
    earlier = conn.execute(select(_C.id, _C.kind, _C.face_amount, _C.discount_bp, _C.source)
                           .where(_C.idempotency_key == full_key)).first()
    if earlier is None:
        return None
    if (earlier.kind, earlier.face_amount, earlier.discount_bp, earlier.source) != (
            terms.kind, terms.face_amount, terms.discount_bp, campaign):
        key = full_key.split(":", 1)[1]
        raise IdempotencyConflict(f"幂等键已用于不同的发券：{key}",
                                  f"idempotency key already used for another grant: {key}",
                                  field="idempotency_key")
    return earlier.id


def normalize_code(code: object) -> str:
    """Upper case, spaces and dashes dropped; refused unless a wallet or a printed code."""
    text = "".join(str(code).split()).replace("-", "").upper() if isinstance(code, str) else ""
    for length, alphabet in CODE_FORMATS.values():
        if len(text) == length and all(ch in alphabet for ch in text):
            return text
    raise invalid("code", "兑换码格式错误：应为卡包的 8 位字母或 16 位印刷兑换码",
                  "malformed code: an 8-letter card-wallet code or a 16-character printed code")


def _code_hash(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


def _new_codes(conn: Connection, fmt: str, count: int) -> list[str]:
    length, alphabet = CODE_FORMATS[fmt]
    codes: set[str] = set()
    for _ in range(100):  # collisions are rare; this bounds the loop
        while len(codes) < count:
            codes.add("".join(secrets.choice(alphabet) for _ in range(length)))
        ordered = sorted(codes)
        taken = set()
        for start in range(0, len(ordered), 500):
            chunk = {_code_hash(c): c for c in ordered[start:start + 500]}
            taken |= {chunk[h] for h in conn.execute(
                select(_K.code_hash).where(_K.code_hash.in_(list(chunk)))).scalars()}
        if not taken:
            return ordered
        codes -= taken
    raise Conflict("兑换码空间不足，请改用印刷码", "ran out of codes: use printed codes", field="count")


def create_codes(conn: Connection, clock: Clock, actor: Actor, terms: rules.Terms, *,
                 campaign: str, count: int, fmt: str = "wallet",
                 redeem_until: datetime | None = None, key: str | None = None) -> CodeBatch:
    """Create ``count`` redemption codes for one coupon (operator, audited).

    The codes are returned once, here: only their hashes are stored. A
    repeat with the same ``key`` returns the batch id and no codes.
    """
    require_operator(actor)
    campaign = _check_campaign(campaign)
    terms = rules.check_terms(terms)
    if fmt not in CODE_FORMATS:
        raise invalid("format", "兑换码格式须为 wallet（8 位字母）或 printed（16 位印刷码）",
                      "format must be wallet (8 letters) or printed (16 characters)")
    if not rules.is_int(count) or not 1 <= count <= MAX_CODES:
        raise invalid("count", f"数量须为 1–{MAX_CODES}", f"count must be 1-{MAX_CODES}")
    now = clock.now()
    if redeem_until is not None and (redeem_until.tzinfo is None or redeem_until <= now):
        raise invalid("redeem_until", "兑换截止时间须晚于现在", "redeem_until must be in the future")
    full_key = f"{actor.label}:{_check_key(key)}" if key is not None else None
    if full_key is not None:
        earlier = conn.execute(select(_B.id).where(_B.idempotency_key == full_key)).scalar()
        if earlier is not None:
            return CodeBatch(earlier, (), created=False)
    codes = _new_codes(conn, fmt, count)
    batch_id = conn.execute(insert(coupon_code_batches).values(
        campaign=campaign, format=fmt, terms=json.dumps(terms.to_json(), sort_keys=True),
        count=count, redeem_until=db_time(redeem_until) if redeem_until else None,
        created_by=actor.label, created_at=db_time(now), idempotency_key=full_key,
    ).returning(_B.id)).scalar_one()
    conn.execute(insert(coupon_codes), [
        {"batch_id": batch_id, "code_hash": _code_hash(c), "hint": c[-4:], "state": "unused",
         "uin": None, "redeemed_at": None} for c in codes])
    record_audit(conn, clock, actor, "create_coupon_codes", None,
                 {"batch_id": batch_id, "campaign": campaign, "count": count,
                  "format": fmt, **terms.to_json()})
    shown = tuple(c if fmt == "wallet" else "-".join(c[i:i + 4] for i in range(0, 16, 4))
                  for c in codes)
    return CodeBatch(batch_id, shown, created=True)


# ---------------------------------------------------------------- customers

def redeem(conn: Connection, clock: Clock, actor: Actor, uin: int, code: str) -> int:
    """Redeem a code into a coupon of the account (once); returns the coupon id. A
    cancelled account redeems none (ACC-5, 409 naming ``uin``): the code stays unused."""
    require(actor, uin, FINANCE)
    normalized = normalize_code(code)
    funds.lock_balances(conn, uin)  # a cancellation (which takes it too) is seen or waits
    _refuse_cancelled(accounts.get_account(conn, SYSTEM, uin))
    row = conn.execute(_lock(conn, select(coupon_codes, _B.campaign, _B.terms, _B.redeem_until)
                             .join(coupon_code_batches, _B.id == _K.batch_id)
                             .where(_K.code_hash == _code_hash(normalized)),
                             of=coupon_codes)).first()
    if row is None:
        raise NotFound("兑换码无效", "no such code", field="code")
    now = clock.now()
    if row.state != "unused":
        raise Conflict("兑换码已被使用", "this code has already been redeemed", field="code")
    if row.redeem_until is not None and now >= from_db_time(row.redeem_until):
        raise Conflict("兑换码已过兑换期限", "this code can no longer be redeemed", field="code")
    terms = rules.Terms.from_json(json.loads(row.terms))
    values = _coupon_values(uin, terms, now, source_kind="code", source=row.campaign,
                            code_id=row.id, idempotency_key=None, created_by=actor.label)
    claimed = conn.execute(update(coupon_codes).where(_K.id == row.id, _K.state == "unused")
                           .values(state="redeemed", uin=uin, redeemed_at=db_time(now))).rowcount
    if claimed != 1:
        raise Conflict("兑换码已被使用", "this code has already been redeemed", field="code")
    return conn.execute(insert(coupons).values(**values).returning(_C.id)).scalar_one()


def _state_filter(state: str, now: datetime):
    at = db_time(now)
    if state == rules.UNUSED:
        return (_C.state == rules.UNUSED) & (_C.valid_until > at)
    if state == rules.EXPIRED:
        return (_C.state == rules.EXPIRED) | ((_C.state == rules.UNUSED) & (_C.valid_until <= at))
    return _C.state == rules.USED


def _check_query(q: CouponQuery) -> None:
    for name, allowed in (("state", rules.STATES), ("kind", rules.KINDS),
                          ("pay_mode", rules.PAY_MODES)):
        value = getattr(q, name)
        if value is not None and value not in allowed:
            raise invalid(name, f"{name} 须为 {' / '.join(allowed)}",
                          f"{name} must be one of {', '.join(allowed)}")
    if not 0 <= q.offset <= 1_000_000:
        raise invalid("offset", "offset 超出范围", "offset out of range")
    if not 1 <= q.limit <= MAX_PAGE:
        raise invalid("limit", f"limit 须为 1–{MAX_PAGE}", f"limit must be 1-{MAX_PAGE}")


def list_coupons(conn: Connection, clock: Clock, actor: Actor, uin: int,
                 query: CouponQuery = CouponQuery()) -> dict:
    """The account's coupons, newest first, with state (as of now) and amounts used and left."""
    require(actor, uin, FINANCE)
    _check_query(query)
    now = clock.now()
    where = [_C.uin == uin]
    for name in ("kind", "pay_mode"):
        if getattr(query, name) is not None:
            where.append(_C[name] == getattr(query, name))
    if query.state is not None:
        where.append(_state_filter(query.state, now))
    stmt = select(coupons).where(*where).order_by(_C.id.desc())
    if query.product is None:
        total = conn.execute(select(func.count()).select_from(coupons).where(*where)).scalar()
        page = conn.execute(stmt.offset(query.offset).limit(query.limit)).all()
    else:  # product lists are JSON: filtered here (an account holds few coupons)
        rows = [r for r in conn.execute(stmt).all() if _to_rule(r).covers(query.product)]
        total, page = len(rows), rows[query.offset:query.offset + query.limit]
    used = _used_amounts(conn, [r.id for r in page])
    return {"total": total,
            "items": [_coupon_dict(r, now, *used.get(r.id, (0, 0))) for r in page]}


def _used_amounts(conn: Connection, coupon_ids: list[int]) -> dict[int, tuple[int, int]]:
    """coupon id -> (used: confirmed less returned, pending)."""
    if not coupon_ids:
        return {}
    signed = case((_U.state == RETURNED, -_U.amount), else_=_U.amount)
    out: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for coupon_id, state, total in conn.execute(
            select(_U.coupon_id, _U.state, func.sum(signed)).where(
                _U.coupon_id.in_(coupon_ids), _U.state.in_([CONFIRMED, RETURNED, PENDING]))
            .group_by(_U.coupon_id, _U.state)):
        out[coupon_id][1 if state == PENDING else 0] += int(total)
    return {k: (v[0], v[1]) for k, v in out.items()}


def effective_state(row, now: datetime) -> str:
    if row.state == rules.UNUSED and now >= from_db_time(row.valid_until):
        return rules.EXPIRED
    return row.state


def _coupon_dict(row, now: datetime, used: int, pending: int) -> dict:
    zh, en = rules.KIND_NAMES[row.kind]
    return {"id": row.id, "uin": row.uin, "kind": row.kind, "kind_zh": zh, "kind_en": en,
            "pay_mode": row.pay_mode, "face_amount": row.face_amount,
            "discount_bp": row.discount_bp, "max_discount": row.max_discount,
            "remaining": row.remaining, "used": used, "pending": pending,
            "forfeited": row.forfeited, "product_scope": row.product_scope,
            "products": json.loads(row.products),
            "order_kinds": row.order_kinds.split(",") if row.order_kinds else [],
            "min_months": row.min_months, "max_months": row.max_months,
            "threshold": row.threshold, "single_use": row.single_use,
            "valid_from": from_db_time(row.valid_from),
            "valid_until": from_db_time(row.valid_until),
            "state": effective_state(row, now), "source_kind": row.source_kind,
            "source": row.source, "created_at": from_db_time(row.created_at)}


def get_coupon(conn: Connection, clock: Clock, actor: Actor, uin: int, coupon_id: int) -> dict:
    """One coupon with every use of it (each coupon-paid fen traced to its reference)."""
    require(actor, uin, FINANCE)
    row = conn.execute(select(coupons).where(_C.id == coupon_id, _C.uin == uin)).first()
    if row is None:
        raise not_found("coupon_id", "优惠券", "coupon", coupon_id)
    used, pending = _used_amounts(conn, [coupon_id]).get(coupon_id, (0, 0))
    uses = conn.execute(select(_U.id, _U.reference, _U.product_code, _U.amount, _U.state,
                               _U.returns_use_id, _U.txn_id, _U.created_at, _U.settled_at)
                        .where(_U.coupon_id == coupon_id).order_by(_U.id)).mappings().all()
    return {**_coupon_dict(row, clock.now(), used, pending), "uses": [
        {**u, "created_at": from_db_time(u["created_at"]),
         "settled_at": from_db_time(u["settled_at"]) if u["settled_at"] else None}
        for u in uses]}


def unusable_reasons(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     coupon_ids: list[int]) -> dict[int, rules.Reason]:
    """coupon id -> why it can pay nothing now (``rules.unusable_reason``), for those of
    ``coupon_ids`` that are the account's and cannot; FINANCE (ACC-2)."""
    require(actor, uin, FINANCE)
    if not coupon_ids:
        return {}
    in_arrears = funds.balance_view(conn, clock, SYSTEM, uin).arrears > 0
    now = clock.now()
    rows = conn.execute(select(coupons).where(_C.uin == uin, _C.id.in_(list(coupon_ids)))).all()
    reasons = {r.id: rules.unusable_reason(_to_rule(r), now, in_arrears=in_arrears)
               for r in rows}
    return {coupon_id: reason for coupon_id, reason in reasons.items() if reason is not None}


# ---------------------------------------------------------------- expiry

def expire(conn: Connection, clock: Clock) -> int:
    """Mark unused coupons past their validity expired; the rest is lost (never extended)."""
    return conn.execute(update(coupons).where(
        _C.state == rules.UNUSED, _C.valid_until <= db_time(clock.now()))
        .values(state=rules.EXPIRED)).rowcount


# ---------------------------------------------------------------- payment and settlement

def held(uin_column, mode: str):
    """A boolean column for a caller's own read: the account in ``uin_column`` holds
    an unused ``mode`` coupon (validity not judged: ``allocate`` does). Lets a
    payment skip coupons without a statement of its own when there are none."""
    if mode not in rules.PAY_MODES:
        raise invalid("mode", "付费模式须为 prepaid 或 postpaid", "mode must be prepaid or postpaid")
    return exists(select(_C.id).where(  # constants inlined: the caller's read is precompiled
        _C.uin == uin_column, _C.state == literal_column(f"'{rules.UNUSED}'"),
        _C.pay_mode == literal_column(f"'{mode}'")))


def holders(conn: Connection, clock: Clock, uins: list[int], mode: str) -> set[int]:
    """Which of ``uins`` hold an unused ``mode`` coupon valid now (one query): settlement
    asks coupons to plan only for those (SET-6)."""
    if not uins:
        return set()
    now = db_time(clock.now())
    return set(conn.execute(select(_C.uin).distinct().where(
        _C.uin.in_(sorted(set(uins))), _C.state == rules.UNUSED, _C.pay_mode == mode,
        _C.valid_from <= now, _C.valid_until > now)).scalars())


def allocate(conn: Connection, clock: Clock, uin: int, lines: list[rules.Line], mode: str, *,
             selected: list[int] | None = None,
             limits: rules.CountLimits = DEFAULT_LIMITS) -> Allocation:
    """Lock the account's unused coupons and plan which pay which line; writes nothing.

    For payment and settlement, which check permissions themselves.
    ``selected``: the coupon ids the customer picked (None: any). A selected
    id that is not the account's coupon is refused (field ``coupon_ids``).
    """
    return _allocate(conn, clock, uin, lines, mode, selected, limits, lock=True)


def preview(conn: Connection, clock: Clock, actor: Actor, uin: int, lines: list[rules.Line],
            mode: str, *, selected: list[int] | None = None,
            limits: rules.CountLimits = DEFAULT_LIMITS) -> Allocation:
    """What coupons would pay, with reasons, for the customer (FINANCE); locks nothing."""
    require(actor, uin, FINANCE)
    return _allocate(conn, clock, uin, lines, mode, selected, limits, lock=False)


def _allocate(conn: Connection, clock: Clock, uin: int, lines: list[rules.Line], mode: str,
              selected: list[int] | None, limits: rules.CountLimits, *,
              lock: bool) -> Allocation:
    rules.check_lines(lines, mode)
    if selected is not None and (isinstance(selected, (str, bytes))
                                 or not all(rules.is_int(i) for i in selected)):
        raise invalid("coupon_ids", "优惠券 ID 须为整数列表", "coupon_ids must be a list of integers")
    view = funds.balance_view(conn, clock, SYSTEM, uin)  # NotFound for an unknown account
    where = _C.state == rules.UNUSED
    if selected is not None:
        where = where | _C.id.in_(list(selected))
    stmt = select(coupons).where(_C.uin == uin, where).order_by(_C.id)
    rows = conn.execute(_lock(conn, stmt) if lock else stmt).all()
    missing = set(selected or ()) - {r.id for r in rows}
    if missing:
        raise not_found("coupon_ids", "优惠券", "coupon", min(missing))
    found = tuple(_to_rule(r) for r in rows)
    plan = rules.plan(found, lines, mode=mode, now=clock.now(), in_arrears=view.arrears > 0,
                      limits=limits, selected=set(selected) if selected is not None else None)
    return Allocation(uin, mode, tuple(lines), plan, found)


def _request_hash(allocation: Allocation) -> str:
    return ledger.content_hash({"uin": allocation.uin, "mode": allocation.mode, "lines": [
        [line.reference, line.product_code, line.amount, line.order_kind, line.months,
         line.refuses_coupons, line.purpose, line.entity] for line in allocation.lines]})


def _reservation(key: str, rows, n_lines: int, created: bool) -> Reservation:
    paid = [0] * n_lines
    for r in rows:
        paid[r["line_index"]] += r["amount"]
    return Reservation(key, created, tuple(paid), tuple(
        {k: r[k] for k in ("id", "coupon_id", "line_index", "reference", "amount", "state")}
        for r in rows))


def reserve(conn: Connection, clock: Clock, uin: int, allocation: Allocation, *,
            key: str) -> Reservation:
    """Write the allocation as pending uses and take the amounts off the coupons.

    Idempotent by ``key`` (per account): a repeat for the same lines returns
    the first reservation and writes nothing; for other lines it is an
    IdempotencyConflict. A coupon changed since ``allocate`` is a Conflict:
    allocate again.
    """
    key = _check_key(key)
    stored_key = f"use:{key}"  # reservations and refunds never share a key
    if allocation.uin != uin:
        raise invalid("uin", "分配方案属于其他账号", "the allocation belongs to another account")
    request_hash = _request_hash(allocation)
    earlier = conn.execute(select(coupon_uses).where(_U.uin == uin,
                                                     _U.idempotency_key == stored_key)
                           .order_by(_U.seq)).mappings().all()
    if earlier:
        if earlier[0]["request_hash"] != request_hash:
            raise IdempotencyConflict(f"幂等键已用于不同的支付：{key}",
                                      f"idempotency key already used for another payment: {key}",
                                      field="idempotency_key")
        return _reservation(key, earlier, len(allocation.lines), created=False)
    now = clock.now()
    by_id = {c.id: c for c in allocation.coupons}
    for coupon_id in allocation.plan.coupon_ids():
        _take(conn, now, uin, by_id[coupon_id], allocation.plan.paid_by(coupon_id),
              allocation.plan.forfeited.get(coupon_id, 0))
    rows = [_use_row(uin, stored_key, seq, request_hash, allocation.lines[u.line_index], u, now)
            for seq, u in enumerate(allocation.plan.uses)]
    if rows:
        conn.execute(insert(coupon_uses), rows)
    written = conn.execute(select(coupon_uses).where(_U.uin == uin,
                                                     _U.idempotency_key == stored_key)
                           .order_by(_U.seq)).mappings().all()
    return _reservation(key, written, len(allocation.lines), created=True)


def _use_row(uin: int, key: str, seq: int, request_hash: str, line: rules.Line, use: rules.Use,
             now: datetime) -> dict:
    return {"uin": uin, "coupon_id": use.coupon_id, "reference": line.reference,
            "idempotency_key": key, "seq": seq, "line_index": use.line_index,
            "request_hash": request_hash, "product_code": line.product_code,
            "entity": line.entity, "amount": use.amount, "state": PENDING,
            "returns_use_id": None, "txn_id": None, "created_at": db_time(now),
            "settled_at": None}


def _take(conn: Connection, now: datetime, uin: int, coupon: rules.Coupon, amount: int,
          forfeited: int) -> None:
    """Take ``amount`` (and a single-use coupon's lost rest) off the coupon, atomically."""
    take = amount + forfeited
    stmt = update(coupons).where(_C.id == coupon.id, _C.uin == uin, _C.state == rules.UNUSED,
                                 _C.valid_from <= db_time(now), _C.valid_until > db_time(now))
    if coupon.remaining is None:  # an uncapped discount coupon: single use
        stmt = stmt.where(_C.remaining.is_(None)).values(state=rules.USED)
    else:
        enough = (_C.remaining == take) if coupon.single_use else (_C.remaining >= take)
        stmt = stmt.where(enough).values(
            remaining=_C.remaining - take, forfeited=_C.forfeited + forfeited,
            state=case((_C.remaining - take <= 0, rules.USED), else_=rules.UNUSED))
    if conn.execute(stmt).rowcount != 1:
        raise Conflict(f"优惠券 {coupon.id} 已变化，请重新选择优惠券",
                       f"coupon {coupon.id} has changed: allocate again", field="coupon_ids",
                       coupon_id=coupon.id)


def _pending(conn: Connection, uin: int, reference: str) -> list:
    return conn.execute(_lock(conn, select(coupon_uses).where(
        _U.uin == uin, _U.reference == reference, _U.state == PENDING).order_by(_U.id))).all()


def confirm(conn: Connection, clock: Clock, uin: int, reference: str) -> Settled:
    """Make a line's pending uses final: coupon funding → revenue in the ledger.

    One balanced ledger transaction per reservation, with a key derived from
    it (per selling entity: ``platform:{entity}:coupon_funding`` debited,
    ``platform:{entity}:revenue`` credited). Nothing pending (confirmed
    before, or no coupon paid the line): returns what was confirmed, created=False.
    """
    pending = _pending(conn, uin, reference)
    if not pending:
        done = conn.execute(select(_U.amount, _U.txn_id).where(
            _U.uin == uin, _U.reference == reference, _U.state == CONFIRMED)).all()
        return Settled(reference, sum(r.amount for r in done),
                       tuple(sorted({r.txn_id for r in done})), created=False)
    groups: dict[str, list] = defaultdict(list)
    for r in pending:
        groups[r.idempotency_key].append(r)
    txn_ids = []
    for reservation_key, rows in sorted(groups.items()):
        txn_id = _post(conn, clock, uin, reference, rows, direction=1,
                       key=f"coupon:confirm:{uin}:{_digest(reservation_key, reference)}")
        _settle_rows(conn, clock, [r.id for r in rows], CONFIRMED, txn_id)
        txn_ids.append(txn_id)
    return Settled(reference, sum(r.amount for r in pending), tuple(txn_ids), created=True)


def _post(conn: Connection, clock: Clock, uin: int, reference: str, rows, *, direction: int,
          key: str) -> int:
    """One ledger transaction moving the rows' amounts between funding and revenue.

    direction 1: funding → revenue (a use confirmed); -1: back (a cash coupon returned).
    """
    by_entity: dict[str, int] = defaultdict(int)
    for r in rows:
        by_entity[r.entity] += r.amount
    legs = []
    for entity, amount in sorted(by_entity.items()):
        legs.append(ledger.Posting(funds.platform_account(conn, clock, FUNDING, entity),
                                   -direction * amount))
        legs.append(ledger.Posting(funds.platform_account(conn, clock, "revenue", entity),
                                   direction * amount))
    kind = "coupon_pay" if direction == 1 else "coupon_return"
    result = ledger.transfer(conn, clock, ledger.Transfer(
        idempotency_key=key, postings=tuple(legs), kind=kind, uin=uin,
        reference=f"coupon:{reference}"[:200],
        memo="优惠券抵扣 / coupon payment" if direction == 1 else "退还现金券 / cash coupon returned"))
    return result.txn_id


def _settle_rows(conn: Connection, clock: Clock, ids: list[int], state: str,
                 txn_id: int | None) -> None:
    done = conn.execute(update(coupon_uses).where(_U.id.in_(ids), _U.state == PENDING).values(
        state=state, txn_id=txn_id, settled_at=db_time(clock.now()))).rowcount
    if done != len(ids):
        raise Conflict("优惠券使用记录已被处理", "coupon uses were settled concurrently",
                       field="reference")


def release(conn: Connection, clock: Clock, uin: int, reference: str) -> int:
    """Undo a line's pending uses (payment failed, delivery failed); returns fen released.

    A multi-use coupon gets the amount back. A single-use coupon gets back
    its whole value (the rest it lost included) only once none of its uses is
    pending or confirmed any more; until then the released amount is lost
    with the rest. A coupon whose validity has ended stays expired: the
    validity is never extended.
    """
    pending = _pending(conn, uin, reference)
    if not pending:
        return 0
    _settle_rows(conn, clock, [r.id for r in pending], RELEASED, None)
    per_coupon: dict[int, int] = defaultdict(int)
    for r in pending:
        per_coupon[r.coupon_id] += r.amount
    for coupon_id, amount in sorted(per_coupon.items()):
        _give_back(conn, clock, coupon_id, amount, release=True)
    return sum(per_coupon.values())


def _give_back(conn: Connection, clock: Clock, coupon_id: int, amount: int, *,
               release: bool) -> None:
    row = conn.execute(_lock(conn, select(coupons).where(_C.id == coupon_id))).one()
    active = conn.execute(select(_U.id).where(
        _U.coupon_id == coupon_id, _U.state.in_([PENDING, CONFIRMED])).limit(1)).first()
    remaining, forfeited = row.remaining, row.forfeited
    if release and row.single_use:
        forfeited += amount if remaining is not None else 0
        if active is None and remaining is not None:
            remaining, forfeited = remaining + forfeited, 0
    elif remaining is not None:
        remaining += amount
    now = clock.now()
    state = rules.state_after(remaining, active is not None, from_db_time(row.valid_until), now)
    conn.execute(update(coupons).where(_C.id == coupon_id).values(
        remaining=remaining, forfeited=forfeited, state=state))


def use_now(conn: Connection, clock: Clock, uin: int, lines: list[rules.Line], *, key: str,
            selected: list[int] | None = None,
            limits: rules.CountLimits = DEFAULT_LIMITS) -> Reservation:
    """Postpaid settlement (SET-6): allocate, reserve and confirm at once.

    Returns the reservation (``line_paid``: coupon money per line;
    ``line_txn``: the ledger transaction that paid it, None where no coupon
    did); the caller deducts ``line.amount - line_paid[i]`` from the balance.
    """
    allocation = allocate(conn, clock, uin, lines, rules.POSTPAID, selected=selected,
                          limits=limits)
    reservation = reserve(conn, clock, uin, allocation, key=key)
    txns = {reference: confirm(conn, clock, uin, reference).txn_ids[0]
            for reference in sorted({u["reference"] for u in reservation.uses})}
    return replace(reservation, line_txn=tuple(txns.get(line.reference) for line in lines))


def refund(conn: Connection, clock: Clock, uin: int, reference: str, *, key: str,
           amount: int | None = None) -> Settled:
    """ORD-4: give back the cash coupons a refunded line used (at most ``amount``; None: all).

    Vouchers and discount coupons are not returned. The money goes back
    revenue → coupon funding in one ledger transaction; the coupon's
    remaining grows again (an expired coupon stays expired). Idempotent by key.
    """
    key = f"refund:{_check_key(key)}"
    if amount is not None and (not rules.is_int(amount) or amount < 0):
        raise invalid("amount", "退还金额须为非负整数（分）", "amount must be a non-negative integer (fen)")
    earlier = conn.execute(select(_U.amount, _U.txn_id, _U.reference).where(
        _U.uin == uin, _U.idempotency_key == key)).all()
    if earlier and earlier[0].reference != reference:
        raise IdempotencyConflict(f"幂等键已用于其他订单的退还：{key}",
                                  f"idempotency key already used for another refund: {key}",
                                  field="idempotency_key")
    if earlier:
        return Settled(reference, sum(r.amount for r in earlier),
                       tuple(sorted({r.txn_id for r in earlier})), created=False)
    parts = _returnable(conn, uin, reference, amount)
    if not parts:
        return Settled(reference, 0, (), created=False)
    txn_id = _post(conn, clock, uin, reference, [p for p, _ in parts], direction=-1,
                   key=f"coupon:return:{uin}:{_digest(key)}")
    now = db_time(clock.now())
    conn.execute(insert(coupon_uses), [
        {"uin": uin, "coupon_id": use.coupon_id, "reference": reference, "idempotency_key": key,
         "seq": seq, "line_index": use.line_index, "request_hash": _digest(reference),
         "product_code": use.product_code, "entity": use.entity, "amount": back,
         "state": RETURNED, "returns_use_id": use.id, "txn_id": txn_id, "created_at": now,
         "settled_at": now} for seq, (use, back) in enumerate(parts)])
    for use, back in parts:
        _give_back(conn, clock, use.coupon_id, back, release=False)
    return Settled(reference, sum(back for _, back in parts), (txn_id,), created=True)


def returnable(conn: Connection, uin: int, reference: str, limit: int | None = None, *,
               lock: bool = True) -> int:
    """Fen ``refund`` would give back now for the reference (at most ``limit``): its
    cash-coupon uses less what came back. ``lock=False`` for a preview."""
    return sum(back for _, back in _returnable(conn, uin, reference, limit, lock=lock))


@dataclass(frozen=True)
class _Part:
    id: int
    coupon_id: int
    line_index: int
    product_code: str
    entity: str
    amount: int


def _returnable(conn: Connection, uin: int, reference: str, limit: int | None, *,
                lock: bool = True) -> list[tuple[_Part, int]]:
    """Confirmed cash-coupon uses of the reference less what came back; newest first."""
    stmt = (select(coupon_uses).join(coupons, _C.id == _U.coupon_id)
            .where(_U.uin == uin, _U.reference == reference, _U.state == CONFIRMED,
                   _C.kind == rules.CASH).order_by(_U.id.desc()))
    uses = conn.execute(_lock(conn, stmt) if lock else stmt).all()
    back = dict(conn.execute(select(_U.returns_use_id, func.sum(_U.amount)).where(
        _U.uin == uin, _U.reference == reference, _U.state == RETURNED)
        .group_by(_U.returns_use_id)).all())
    left = limit
    parts = []
    for u in uses:
        open_amount = u.amount - int(back.get(u.id) or 0)
        give = open_amount if left is None else min(open_amount, left)
        if give > 0:
            parts.append((_Part(u.id, u.coupon_id, u.line_index, u.product_code, u.entity,
                                give), give))
            left = None if left is None else left - give
    return parts
