"""API keys and request authentication.

Secret keys are needed in plain form to check an HMAC, so they are stored
encrypted (Fernet, master key from configuration) and shown once, at
creation. ``authenticate`` verifies a TC3-HMAC-SHA256 request and returns
the ``Actor`` it acts for: a customer user or an operator. Who may create,
list, enable or disable which keys: ``permissions.may_manage_user``.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from dataclasses import dataclass
from datetime import timedelta

from cryptography.fernet import Fernet
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import (Actor, may_manage_user, require_manage_user,
                                            require_operator)
from feecenter.accounts.tables import customers, users
from feecenter.audit.service import record_audit
from feecenter.auth import tc3
from feecenter.auth.tables import api_keys, console_sessions, operators, used_signatures
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.errors import AuthFailed, Conflict, PermissionDenied, invalid, not_found

_ALPHABET = string.ascii_letters + string.digits
_TIMESTAMP = re.compile(r"^[0-9]{1,10}$", re.ASCII)  # seconds, until the year 2286
_NONCE = re.compile(r"^[A-Za-z0-9_\-]{8,64}$", re.ASCII)


@dataclass(frozen=True)
class NewKey:
    secret_id: str
    secret_key: str


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    body_sha256: str | None = None  # instead of ``body``, for a body streamed to disk


def _new_key() -> NewKey:
    return NewKey("AKID" + "".join(secrets.choice(_ALPHABET) for _ in range(32)),
                  "".join(secrets.choice(_ALPHABET) for _ in range(32)))


def create_operator(conn: Connection, clock: Clock, actor: Actor, name: str) -> tuple[int, NewKey]:
    """A platform staff member with an API key for the operator endpoints."""
    require_operator(actor)
    if not name or not name.strip():
        raise invalid("name", "运营人员名称不能为空", "operator name is required")
    if conn.execute(select(operators.c.id).where(operators.c.name == name)).first():
        raise Conflict(f"运营人员已存在：{name}", f"operator already exists: {name}", field="name")
    op_id = conn.execute(insert(operators).values(name=name, created_at=db_time(clock.now()))
                         .returning(operators.c.id)).scalar_one()
    return op_id, _store_key(conn, clock, cipher_for(conn), operator_id=op_id)


def create_api_key(conn: Connection, clock: Clock, actor: Actor, uin: int,
                   login: str | None = None) -> NewKey:
    """A key for the account owner (default) or a named sub-user (``may_manage_user``)."""
    _require_account_user(actor, uin)
    user = accounts.find_user(conn, uin, login)
    require_manage_user(actor, uin, user["role"], user["id"])
    key = _store_key(conn, clock, cipher_for(conn), uin=uin, user_id=user["id"])
    record_audit(conn, clock, actor, "create_api_key", uin,
                 {"secret_id": key.secret_id, "user": user["login"]})
    return key


def set_key_state(conn: Connection, clock: Clock, actor: Actor, secret_id: str,
                  enabled: bool) -> None:
    """Enable or disable a key: operators' keys by operators, users' by ``may_manage_user``."""
    row = conn.execute(select(api_keys.c.uin, api_keys.c.user_id, users.c.role)
                       .select_from(api_keys.outerjoin(users, users.c.id == api_keys.c.user_id))
                       .where(api_keys.c.secret_id == secret_id)).first()
    if row is None:
        raise not_found("secret_id", "密钥", "API key", secret_id)
    if row.uin is None:
        require_operator(actor)
    else:
        require_manage_user(actor, row.uin, row.role, row.user_id)
    conn.execute(update(api_keys).where(api_keys.c.secret_id == secret_id)
                 .values(state="enabled" if enabled else "disabled"))
    record_audit(conn, clock, actor, "set_key_state", row.uin,
                 {"secret_id": secret_id, "enabled": enabled})


def list_api_keys(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    """The account's keys the actor may manage: all for the owner and operators, an
    admin's own and its readonly users', a finance or readonly user's own."""
    _require_account_user(actor, uin)
    rows = conn.execute(select(api_keys.c.secret_id, api_keys.c.user_id, api_keys.c.state,
                               api_keys.c.created_at, users.c.role)
                        .select_from(api_keys.join(users, users.c.id == api_keys.c.user_id))
                        .where(api_keys.c.uin == uin).order_by(api_keys.c.created_at,
                                                               api_keys.c.secret_id))
    return [{k: v for k, v in r._mapping.items() if k != "role"} for r in rows
            if may_manage_user(actor, uin, r.role, r.user_id)]


def end_account_access(conn: Connection, clock: Clock, actor: Actor, uin: int) -> dict:
    """ACC-5: a cancelled account's access ends: every API key of its users disabled,
    every console session of its users ended. The caller (``cancellation.service``)
    checked who may. Returns ``{"keys_disabled", "sessions_ended"}``; audited."""
    keys = conn.execute(update(api_keys).where(api_keys.c.uin == uin,
                                               api_keys.c.state == "enabled")
                        .values(state="disabled")).rowcount
    user_ids = select(users.c.id).where(users.c.uin == uin).scalar_subquery()
    ended = conn.execute(delete(console_sessions).where(
        console_sessions.c.user_id.in_(user_ids))).rowcount
    record_audit(conn, clock, actor, "end_account_access", uin,
                 {"keys_disabled": keys, "sessions_ended": ended})
    return {"keys_disabled": keys, "sessions_ended": ended}


def _require_account_user(actor: Actor, uin: int) -> None:
    """A user of another account learns nothing of this one's users (not even a 404)."""
    if actor.kind == "user" and actor.uin != uin:
        raise PermissionDenied("无权访问其他账号的数据", "no access to another account's data")


def _store_key(conn, clock, cipher: Fernet, **owner) -> NewKey:
    key = _new_key()
    conn.execute(insert(api_keys).values(
        secret_id=key.secret_id, secret_enc=cipher.encrypt(key.secret_key.encode()).decode(),
        state="enabled", created_at=db_time(clock.now()), **owner))
    return key


_CIPHERS: dict[str, Fernet] = {}


def configure_master_key(master_key: str) -> None:
    """Set the process's master key (called once by every entry point)."""
    _CIPHERS["default"] = Fernet(master_key.encode())


def cipher_for(_conn: Connection | None = None) -> Fernet:
    if "default" not in _CIPHERS:
        from feecenter.config import load_settings, master_key

        configure_master_key(master_key(load_settings()))
    return _CIPHERS["default"]


# ---------------------------------------------------------------- verification

def _fail(reason: str, zh: str, en: str) -> AuthFailed:
    return AuthFailed(reason, zh, en)


def authenticate(engine: Engine, clock: Clock, request: SignedRequest, *,
                 window_s: int = 300) -> Actor:
    """Verify a TC3-HMAC-SHA256 signed request and return the actor it acts for.

    Identical requests inside the window are accepted, as Tencent's server
    does (TC3 has no nonce); a request carrying a signed X-FC-Nonce is
    accepted once per key and nonce.
    """
    parsed, timestamp, row = _checked_headers(engine, clock, request.headers, window_s)
    secret_key = cipher_for().decrypt(row.secret_enc.encode()).decode()
    canonical = tc3.canonical_request(request.method, request.path, request.query,
                                      request.headers, parsed.signed_headers, request.body,
                                      request.body_sha256)
    expected = tc3.signature(secret_key, parsed.date, parsed.service, timestamp, canonical)
    if not secrets.compare_digest(expected, parsed.signature):
        raise _fail("SignatureFailure", "签名验证失败", "signature verification failed")
    nonce = request.headers.get(tc3.NONCE_HEADER)
    if nonce is not None:
        _claim_nonce(engine, clock, parsed.secret_id, nonce, window_s)
    return _actor_for(engine, row)


def check_headers(engine: Engine, clock: Clock, headers: dict[str, str], *,
                  window_s: int = 300) -> None:
    """What ``authenticate`` checks before the body: the Authorization header, the
    timestamp window, the scope, the signed headers and an enabled key. A route
    that streams a large body calls it first, so that an unsigned request is
    refused before a byte of its body is stored (``headers``: lower-case names)."""
    _checked_headers(engine, clock, headers, window_s)


def _checked_headers(engine: Engine, clock: Clock, headers: dict[str, str], window_s: int):
    parsed = tc3.parse_authorization(headers.get("authorization", ""))
    if parsed is None:
        raise _fail("InvalidAuthorization", "缺少或无法解析 Authorization 签名头",
                    "missing or malformed Authorization header")
    timestamp = _timestamp(headers.get("x-tc-timestamp", ""))
    if abs(int(clock.now().timestamp()) - timestamp) > window_s:
        raise _fail("SignatureExpire", "签名已过期，请检查本机时间",
                    "signature expired: check the request timestamp")
    tc3.check_scope(parsed, timestamp)
    tc3.check_signed_headers(parsed, headers)
    return parsed, timestamp, _enabled_key(engine, parsed.secret_id)


def _timestamp(value: str) -> int:
    if not _TIMESTAMP.match(value):
        raise _fail("InvalidAuthorization", "X-TC-Timestamp 必须是十进制秒数（ASCII 数字）",
                    "X-TC-Timestamp is missing or not a number of seconds in ASCII digits")
    return int(value)


def _enabled_key(engine: Engine, secret_id: str):
    with engine.connect() as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.secret_id == secret_id)).first()
    if row is None:
        raise _fail("SecretIdNotFound", "密钥不存在", "SecretId not found")
    if row.uin is not None and _cancelled(engine, row.uin):
        raise _fail("UnauthorizedOperation", f"账号 {row.uin} 已注销，不能再调用 API",
                    f"account {row.uin} is cancelled: its API calls are refused")
    if row.state != "enabled":
        raise _fail("SecretIdNotFound", "密钥已停用", "the key is disabled")
    return row


def _cancelled(engine: Engine, uin: int) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(customers.c.status).where(
            customers.c.uin == uin)).scalar() == "cancelled"


def _claim_nonce(engine: Engine, clock: Clock, secret_id: str, nonce: str,
                 window_s: int) -> None:
    """Record (key, nonce) for twice the window (a timestamp is good for ±window); a second
    use inside it is a replay. Rows are keyed by a digest: no schema of their own."""
    if not _NONCE.match(nonce):
        raise _fail("InvalidAuthorization", "X-FC-Nonce 须为 8–64 个字母、数字、- 或 _",
                    "X-FC-Nonce must be 8-64 letters, digits, - or _")
    digest = hashlib.sha256(f"nonce\n{secret_id}\n{nonce}".encode()).hexdigest()
    now = clock.now()
    try:
        with transaction(engine) as conn:
            conn.execute(delete(used_signatures).where(
                used_signatures.c.seen_at < db_time(now - timedelta(seconds=2 * window_s))))
            conn.execute(insert(used_signatures).values(signature=digest, seen_at=db_time(now)))
    except IntegrityError:
        raise _fail("SignatureFailure", "X-FC-Nonce 已使用过（重放的请求）",
                    "replayed request: this X-FC-Nonce was already used with this key") from None


def _actor_for(engine: Engine, row) -> Actor:
    with engine.connect() as conn:
        if row.operator_id is not None:
            name = conn.execute(select(operators.c.name)
                                .where(operators.c.id == row.operator_id)).scalar_one()
            return Actor(kind="operator", name=name)
        return accounts.user_actor(conn, row.user_id)
