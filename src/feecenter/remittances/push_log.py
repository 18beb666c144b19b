"""The signed push of one transfer by the platform bank (RMT-2 "pushed one by one"):
receive it, record it, import it. Owns ``remittance_pushes``.

Every push is recorded with its outcome, its reason and the sha256 of its body:
``accepted`` (a new transfer, imported through ``service.import_transfers``),
``duplicate`` (the bank reference was imported before: nothing changed),
``forged`` (bad or malformed signature), ``late`` (timestamp outside the window),
``replayed`` (a nonce already used, even with a valid signature), ``malformed``
(signed, but the body is not a valid transfer) and ``refused`` (signed and well
formed, but the import refused it, e.g. the reference with other content).
Nothing is credited unless the push is accepted.

The nonce of a push whose signature verified is claimed by the unique
``remittance_pushes.nonce`` in the same transaction as its import: of two
identical pushes at once, the INSERT that wins the nonce imports, the other is
recorded as replayed. A refusal is recorded in a transaction of its own.

Failed pushes are limited per client address (``ratelimit``, the limiter invoice
verification uses, scope ``push ``): each refusal counts one attempt of its
client in the current minute, in the transaction that records it; beyond
``MAX_FAILED_PER_MINUTE`` the push is ``limited`` — answered 429, **not
recorded** — so a flood of forged, late or replayed pushes writes at most that
many rows a minute per address (an IPv6 address counts by its /64). A push
that verifies and imports is never limited. What is stored of a refused push
is bounded: the sha256 of its body (never the body), the nonce as presented cut
to 80 characters, the bank reference cut to 64, the reason cut to
``MAX_REASON`` characters.

    receive_push(engine, clock, body, client=…, timestamp=…, nonce=…, signature=…)
        -> PushResult
    list_pushes(conn, actor, *, outcome=None, offset=0, limit=50) -> {"items", "total"}
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, func, select, update

from feecenter import ratelimit
from feecenter.accounts.permissions import Actor, require_operator
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import AuthFailed, FeeCenterError, TooManyRequests, invalid
from feecenter.remittances import service
from feecenter.remittances.statements import push
from feecenter.remittances.statements.common import StatementRefused
from feecenter.remittances.tables import remittance_pushes, remittances

_T = remittance_pushes.c
ACCEPTED, DUPLICATE, FORGED, LATE, REPLAYED, MALFORMED, REFUSED = (
    "accepted", "duplicate", "forged", "late", "replayed", "malformed", "refused")
OUTCOMES = (ACCEPTED, DUPLICATE, FORGED, LATE, REPLAYED, MALFORMED, REFUSED)  # recorded
LIMITED = "limited"  # over the failed-push limit: answered 429, not recorded
BANK = Actor(kind="operator", name="bank-push")  # whom the import and its audit name
SOURCE = "push"
MAX_FAILED_PER_MINUTE = 10   # refused pushes recorded per client address and minute
LIMIT_SCOPE = "push "        # the limiter's key prefix (invoice verification: none)
MAX_REASON = 500             # characters of a refusal's reason stored


class PushNotConfigured(FeeCenterError):
    """The push endpoint is off: no secret is configured (503, not 500)."""

    code = "PushNotConfigured"
    http_status = 503


@dataclass(frozen=True)
class PushResult:
    push_id: int | None                     # None: limited, not recorded
    outcome: str
    reason: str | None = None
    remittance: dict | None = None          # the record, when accepted or a duplicate
    error: FeeCenterError | None = None     # why it was refused

    @property
    def accepted(self) -> bool:
        return self.outcome in (ACCEPTED, DUPLICATE)


def push_secret(environ: Mapping[str, str] | None = None) -> bytes:
    """The shared secret, or ``PushNotConfigured`` when it is unset or too short."""
    try:
        return push.secret_from_env(environ)
    except FeeCenterError as error:
        raise PushNotConfigured(
            f"银行推送接口未启用：{push.SECRET_ENV} 未设置或短于 32 字节",
            f"the bank push endpoint is off: {push.SECRET_ENV} is unset or shorter than 32 bytes",
            field=push.SECRET_ENV) from error


def receive_push(engine: Engine, clock: Clock, body: bytes, *, client: str, timestamp: str,
                 nonce: str, signature: str, secret: bytes | None = None,
                 settings: service.Settings | None = None) -> PushResult:
    """Verify, record and (when accepted) import one pushed transfer. ``client``: the
    address it came from, whose failed pushes are limited (``LIMITED``: not
    recorded, the error a ``TooManyRequests``)."""
    secret = push_secret() if secret is None else secret
    digest = hashlib.sha256(body).hexdigest()
    seen = _Received(clock, digest, (nonce or "")[:80],
                     ratelimit.client_key(client, max_chars=ratelimit.KEY_CHARS - len(LIMIT_SCOPE)))
    try:
        pushed = push.verify_push(body, timestamp=timestamp, nonce=nonce, signature=signature,
                                  secret=secret, clock=clock)
    except AuthFailed as error:
        outcome = LATE if error.reason == "SignatureExpire" else FORGED
        claim = nonce if outcome == LATE else None  # signed by the bank: the nonce is spent
        return _refused(engine, seen, outcome, error, claim)
    except StatementRefused as error:
        signed = hmac.compare_digest(push.sign(secret, timestamp, nonce, body), signature)
        return _refused(engine, seen, MALFORMED if signed else FORGED, error,
                        nonce if signed else None)
    try:
        with transaction(engine) as conn:
            push_id = _claim(conn, seen, nonce, ACCEPTED)
            if push_id is None:
                raise _replay(nonce)
            record, duplicate = _import(conn, clock, pushed.transfer, digest, settings)
            outcome = DUPLICATE if duplicate else ACCEPTED
            conn.execute(update(remittance_pushes).where(_T.id == push_id).values(
                outcome=outcome, remittance_id=record["id"],
                bank_reference=record["bank_reference"]))
        return PushResult(push_id, outcome, remittance=record)
    except _Replayed as error:
        return _refused(engine, seen, REPLAYED, error.cause, None)
    except FeeCenterError as error:
        return _refused(engine, seen, REFUSED, error, nonce,
                        bank_reference=pushed.transfer.bank_reference[:64])


@dataclass(frozen=True)
class _Received:
    clock: Clock
    digest: str
    presented: str
    client: str     # the limiter's key of the address


class _Replayed(Exception):
    def __init__(self, cause: FeeCenterError):
        super().__init__(cause.message)
        self.cause = cause


def _replay(nonce: str) -> _Replayed:
    return _Replayed(AuthFailed("NonceReplayed", f"随机串已使用过（重放）：{nonce}",
                                f"the nonce was used before (a replay): {nonce}"))


def _claim(conn: Connection, seen: _Received, nonce: str | None, outcome: str,
           reason: str | None = None, bank_reference: str | None = None) -> int | None:
    """Insert the push's row; with a nonce, only if nobody holds it (None: taken)."""
    values = {"received_at": db_time(seen.clock.now()), "nonce": nonce,
              "presented_nonce": seen.presented, "outcome": outcome, "reason": reason,
              "body_digest": seen.digest, "bank_reference": bank_reference}
    stmt = insert_if_absent(conn, remittance_pushes, [_T.nonce]) if nonce else \
        remittance_pushes.insert()
    return conn.execute(stmt.values(**values).returning(_T.id)).scalar()


def _refused(engine: Engine, seen: _Received, outcome: str, error: FeeCenterError,
             nonce: str | None, bank_reference: str | None = None) -> PushResult:
    """Record a refusal, counted against its client's failed pushes first (beyond the
    limit: ``LIMITED``, nothing recorded); a spent nonce is claimed too (a later
    replay of it is refused), unless another push holds it already."""
    reason = error.message[:MAX_REASON]
    try:
        with transaction(engine) as conn:
            ratelimit.claim_attempt(
                conn, seen.clock, seen.client, scope=LIMIT_SCOPE, limit=MAX_FAILED_PER_MINUTE,
                message_zh=f"失败的推送过多：每个地址每分钟最多 {MAX_FAILED_PER_MINUTE} 次，请稍后再试",
                message_en=f"too many failed pushes: at most {MAX_FAILED_PER_MINUTE} a minute "
                           "per address; try again later")
            push_id = _claim(conn, seen, nonce, outcome, reason, bank_reference)
            if push_id is None:
                push_id = _claim(conn, seen, None, outcome, reason, bank_reference)
    except TooManyRequests as limited:
        return PushResult(None, LIMITED, reason=limited.message, error=limited)
    return PushResult(push_id, outcome, reason=reason, error=error)


def _import(conn: Connection, clock: Clock, transfer, digest: str,
            settings: service.Settings | None) -> tuple[dict, bool]:
    summary = service.import_transfers(conn, clock, BANK, [transfer], source=SOURCE,
                                       digest=digest, settings=settings)
    record = conn.execute(select(remittances).where(
        remittances.c.receiving_account == transfer.receiving_account,
        remittances.c.bank_reference == transfer.bank_reference)).mappings().one()
    return dict(record), summary.duplicates > 0


def list_pushes(conn: Connection, actor: Actor, *, outcome: str | None = None,
                offset: int = 0, limit: int = 50) -> dict:
    """The pushes as received, newest first (operators)."""
    require_operator(actor)
    if outcome is not None and outcome not in OUTCOMES:
        raise invalid("outcome", f"未知的推送结果：{outcome}", f"unknown push outcome: {outcome}",
                      allowed=list(OUTCOMES))
    if type(offset) is not int or offset < 0:
        raise invalid("offset", "offset 须为非负整数", "offset must be a non-negative integer")
    if type(limit) is not int or not 1 <= limit <= service.MAX_PAGE:
        raise invalid("limit", f"limit 须为 1–{service.MAX_PAGE}", f"limit must be 1-{service.MAX_PAGE}")
    where = [_T.outcome == outcome] if outcome else []
    total = conn.execute(select(func.count()).select_from(remittance_pushes)
                         .where(*where)).scalar_one()
    rows = conn.execute(select(remittance_pushes).where(*where).order_by(_T.id.desc())
                        .offset(offset).limit(limit)).mappings()
    return {"items": [dict(r) for r in rows], "total": total}


__all__ = ["LIMITED", "MAX_FAILED_PER_MINUTE", "OUTCOMES", "PushNotConfigured", "PushResult", "list_pushes", "push_secret",
           "receive_push"]
