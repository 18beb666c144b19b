"""Operator console logins: operators' passwords and sessions.

A platform operator (table ``operators``) logs in to the operator console
with its name and a password, an Argon2id hash in ``operator_passwords``. Its
sessions live in ``operator_sessions``, apart from the customers'
``console_sessions``: an operator's token opens no customer page and a
customer's opens no operator page. Expiry (idle and absolute), the throttle
and the hashing are the customers' (``auth.sessions``); the throttle counts
``operator:<id>`` (or ``opname:<name>`` for a name that is no operator) in
the same ``login_failures`` table (docs/console.md, "Operator console").
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from feecenter.accounts.permissions import Actor, operator, require_operator
from feecenter.audit.service import record_audit
from feecenter.auth.sessions import (
    ABSOLUTE,
    DUMMY_HASH,
    HASHER,
    IDLE,
    TOUCH_AFTER,
    check_password_length,
    count_failure,
    refuse_if_locked,
    token_digest,
    verify_password,
)
from feecenter.auth.tables import (
    login_failures,
    operator_passwords,
    operator_sessions,
    operators,
)
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.errors import AuthFailed, not_found


@dataclass(frozen=True)
class OperatorSession:
    session_id: str  # SHA-256 of the token
    csrf_token: str
    actor: Actor  # kind "operator", the operator's name: what its API key acts as
    token: str | None = None  # only right after login, for the cookie

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def set_password(conn: Connection, clock: Clock, actor: Actor, name: str, password: str) -> None:
    """Set operator ``name``'s console password (operators only); ends its sessions."""
    require_operator(actor)
    op_id = conn.execute(select(operators.c.id).where(operators.c.name == name)).scalar()
    if op_id is None:
        raise not_found("name", "运营人员", "operator", name)
    check_password_length(password)
    hashed, now = HASHER.hash(password), db_time(clock.now())
    done = conn.execute(update(operator_passwords).where(
        operator_passwords.c.operator_id == op_id).values(password_hash=hashed,
                                                           updated_at=now)).rowcount
    if not done:
        conn.execute(insert(operator_passwords).values(operator_id=op_id, password_hash=hashed,
                                                       updated_at=now))
    conn.execute(delete(operator_sessions).where(operator_sessions.c.operator_id == op_id))
    record_audit(conn, clock, actor, "set_operator_password", None, {"operator": name})


def log_in(engine: Engine, clock: Clock, name: str, password: str) -> OperatorSession:
    """Check the password and open a session; AuthFailed (``LoginFailed``, the same for a
    wrong name or password, or ``LoginThrottled``) otherwise, as ``sessions.log_in``."""
    name, now = (name or "").strip(), db_time(clock.now())
    with transaction(engine) as conn:
        found = conn.execute(select(operators.c.id, operator_passwords.c.password_hash)
                             .select_from(operators.outerjoin(
                                 operator_passwords,
                                 operator_passwords.c.operator_id == operators.c.id))
                             .where(operators.c.name == name)).first()
        key = f"operator:{found.id}" if found else f"opname:{name}".lower()[:200]
        refuse_if_locked(conn, key, now)
        stored = found.password_hash if found else None
        if stored and verify_password(stored, password):
            if HASHER.check_needs_rehash(stored):
                conn.execute(update(operator_passwords).where(
                    operator_passwords.c.operator_id == found.id).values(
                    password_hash=HASHER.hash(password)))
            conn.execute(delete(login_failures).where(login_failures.c.key == key))
            return _open(conn, now, found.id, name)
        if not stored:
            verify_password(DUMMY_HASH, password)
    with transaction(engine) as conn:
        count_failure(conn, key, now)
    raise AuthFailed("LoginFailed", "运营人员名称或密码错误", "wrong operator name or password")


def _open(conn: Connection, now, op_id: int, name: str) -> OperatorSession:
    s = operator_sessions.c
    conn.execute(delete(operator_sessions).where(or_(s.expires_at <= now,
                                                     s.last_seen_at <= now - IDLE)))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(insert(operator_sessions).values(
        id=token_digest(token), operator_id=op_id, csrf_token=csrf, created_at=now,
        last_seen_at=now, expires_at=now + ABSOLUTE))
    return OperatorSession(token_digest(token), csrf, operator(name), token)


def current_session(engine: Engine, clock: Clock, token: str | None) -> OperatorSession | None:
    """The operator session a cookie's token opens, renewed; None when unknown or expired
    (idle for ``IDLE`` or older than ``ABSOLUTE``; an expired one is deleted)."""
    if not token or len(token) > 200:
        return None
    now, sid, s = db_time(clock.now()), token_digest(token), operator_sessions.c
    with transaction(engine) as conn:
        row = conn.execute(select(operator_sessions, operators.c.name)
                           .join(operators, operators.c.id == s.operator_id)
                           .where(s.id == sid)).mappings().first()
        if row is None:
            return None
        if row["expires_at"] <= now or row["last_seen_at"] <= now - IDLE:
            conn.execute(delete(operator_sessions).where(s.id == sid))
            return None
        if now - row["last_seen_at"] >= TOUCH_AFTER:
            conn.execute(update(operator_sessions).where(s.id == sid).values(last_seen_at=now))
    return OperatorSession(sid, row["csrf_token"], operator(row["name"]))


def log_out(conn: Connection, session: OperatorSession) -> None:
    conn.execute(delete(operator_sessions).where(operator_sessions.c.id == session.session_id))
