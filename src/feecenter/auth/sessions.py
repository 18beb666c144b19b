"""Console logins: passwords, server-side sessions, login throttling.

A customer user (the owner or a sub-user) logs in to the web console with its
account (UIN or account name), its login name and a password. Passwords are
stored as Argon2id hashes (argon2-cffi), never in plain form. A login opens a
session: a random token the browser keeps in a cookie, stored here only as
its SHA-256, with a CSRF token of its own, an idle expiry (``IDLE``, renewed
as the user works) and an absolute one (``ABSOLUTE``). After ``MAX_FAILURES``
failed logins of one user (or, for names that are no user, of one account and
login name as typed) within ``FAILURE_WINDOW`` it is refused for ``LOCKOUT``,
right password or not (docs/console.md).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, Engine, delete, insert, or_, select, update

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import Actor, require_manage_user
from feecenter.accounts.tables import customers, users
from feecenter.audit.service import record_audit
from feecenter.auth.tables import console_sessions, login_failures, user_passwords
from feecenter.clock import Clock, db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import AuthFailed, invalid

IDLE = timedelta(minutes=30)
ABSOLUTE = timedelta(hours=12)
TOUCH_AFTER = timedelta(minutes=1)  # last_seen_at is written at most this often
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
MIN_PASSWORD, MAX_PASSWORD = 8, 128

HASHER = PasswordHasher()  # Argon2id with argon2-cffi's defaults (RFC 9106 low-memory)
# verified when the user does not exist, so that a wrong name costs as long as a wrong password
DUMMY_HASH = HASHER.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class NewSession:
    token: str  # goes into the cookie; only its SHA-256 is stored
    csrf_token: str
    actor: Actor
    expires_at: datetime


@dataclass(frozen=True)
class ConsoleSession:
    session_id: str  # SHA-256 of the token
    csrf_token: str
    actor: Actor
    account_name: str

    def csrf_ok(self, sent: str | None) -> bool:
        return bool(sent) and hmac.compare_digest(sent.encode(), self.csrf_token.encode())


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# ---------------------------------------------------------------- passwords

def set_password(conn: Connection, clock: Clock, actor: Actor, uin: int, login: str | None,
                 password: str) -> str:
    """Set the console password of the user ``login`` of account ``uin`` (None: the
    owner); returns the user's login. Who may: ``may_manage_user`` (operators, the owner, an admin for lesser
    roles, every user for itself). Ends the user's open sessions."""
    user = accounts.find_user(conn, uin, login)
    require_manage_user(actor, uin, user["role"], user["id"])
    check_password_length(password)
    hashed, now = HASHER.hash(password), db_time(clock.now())
    done = conn.execute(update(user_passwords).where(user_passwords.c.user_id == user["id"])
                        .values(password_hash=hashed, updated_at=now)).rowcount
    if not done:
        conn.execute(insert(user_passwords).values(user_id=user["id"], password_hash=hashed,
                                                   updated_at=now))
    conn.execute(delete(console_sessions).where(console_sessions.c.user_id == user["id"]))
    record_audit(conn, clock, actor, "set_password", uin, {"login": user["login"]})
    return user["login"]


# ---------------------------------------------------------------- logging in

def log_in(engine: Engine, clock: Clock, account: str, login: str, password: str) -> NewSession:
    """Check the password and open a session; AuthFailed (``LoginFailed``, the same
    for every wrong part, or ``LoginThrottled``) otherwise. A failure is counted in
    a transaction of its own, committed before the error is raised."""
    account, login = (account or "").strip(), (login or "").strip()
    now = db_time(clock.now())
    with transaction(engine) as conn:
        user = _find(conn, account, login)
        # one count per user, whether named by UIN or account name; per text typed otherwise
        key = f"user:{user['id']}" if user else f"name:{account}\n{login}".lower()[:200]
        refuse_if_locked(conn, key, now)
        stored = user and conn.execute(select(user_passwords.c.password_hash).where(
            user_passwords.c.user_id == user["id"])).scalar()
        if stored and verify_password(stored, password):
            refuse_if_cancelled(user)
            if HASHER.check_needs_rehash(stored):
                conn.execute(update(user_passwords).where(
                    user_passwords.c.user_id == user["id"]).values(
                    password_hash=HASHER.hash(password)))
            conn.execute(delete(login_failures).where(login_failures.c.key == key))
            return _open(conn, clock, user)
        if not stored:
            verify_password(DUMMY_HASH, password)
    with transaction(engine) as conn:
        count_failure(conn, key, now)
    raise AuthFailed("LoginFailed", "账号、用户名或密码错误", "wrong account, user name or password")


def check_password_length(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise invalid("password", f"密码须为 {MIN_PASSWORD}–{MAX_PASSWORD} 个字符",
                      f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def refuse_if_locked(conn: Connection, key: str, now: datetime) -> None:
    """AuthFailed (``LoginThrottled``) while ``key`` is locked out."""
    locked = conn.execute(select(login_failures.c.locked_until).where(
        login_failures.c.key == key)).scalar()
    if locked is not None and locked > now:
        minutes = max(1, -(-int((locked - now).total_seconds()) // 60))
        raise AuthFailed("LoginThrottled", f"登录失败次数过多，请 {minutes} 分钟后再试",
                         f"too many failed logins; try again in {minutes} minutes")


def _find(conn: Connection, account: str, login: str) -> dict | None:
    where = customers.c.uin == int(account) if account.isdigit() and len(account) < 19 \
        else customers.c.name == account
    row = conn.execute(select(users, customers.c.status).join(
        customers, customers.c.uin == users.c.uin).where(where, users.c.login == login)
    ).mappings().first()
    return dict(row) if row is not None else None


def refuse_if_cancelled(user: dict) -> None:
    """ACC-5: a cancelled account's users may not log in; said only to whoever gave the
    right password (anyone else gets ``LoginFailed``, which tells nothing)."""
    if user["status"] == "cancelled":
        raise AuthFailed("AccountCancelled", "该账号已注销，不能登录",
                         "this account is cancelled and cannot log in")


def verify_password(stored: str, password: str) -> bool:
    try:
        return HASHER.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def count_failure(conn: Connection, key: str, now: datetime) -> None:
    """One more failure of ``key``; the row is made first (concurrent first failures
    make one), then locked and counted."""
    fresh = {"key": key, "failures": 0, "window_start": now, "locked_until": None}
    conn.execute(insert_if_absent(conn, login_failures).values(**fresh))
    row = conn.execute(select(login_failures).where(login_failures.c.key == key)
                       .with_for_update()).mappings().one()
    if row["window_start"] <= now - FAILURE_WINDOW:
        failures, start = 1, now
    else:
        failures, start = row["failures"] + 1, row["window_start"]
    conn.execute(update(login_failures).where(login_failures.c.key == key).values(
        failures=failures, window_start=start,
        locked_until=now + LOCKOUT if failures >= MAX_FAILURES else None))


def _open(conn: Connection, clock: Clock, user: dict) -> NewSession:
    now = db_time(clock.now())
    conn.execute(delete(console_sessions).where(or_(
        console_sessions.c.expires_at <= now, console_sessions.c.last_seen_at <= now - IDLE)))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    conn.execute(insert(console_sessions).values(
        id=token_digest(token), user_id=user["id"], csrf_token=csrf, created_at=now,
        last_seen_at=now, expires_at=now + ABSOLUTE))
    actor = Actor(kind="user", name=user["login"], uin=user["uin"], user_id=user["id"],
                  role=user["role"])
    return NewSession(token, csrf, actor, now + ABSOLUTE)


# ---------------------------------------------------------------- using a session

def current_session(engine: Engine, clock: Clock, token: str | None) -> ConsoleSession | None:
    """The session a cookie's token opens, renewed; None when it is unknown, idle for
    ``IDLE`` or older than ``ABSOLUTE`` (an expired one is deleted)."""
    if not token or len(token) > 200:
        return None
    now, sid = db_time(clock.now()), token_digest(token)
    with transaction(engine) as conn:
        row = conn.execute(select(console_sessions, users.c.login, users.c.uin, users.c.role,
                                  customers.c.name.label("account_name"), customers.c.status)
                           .join(users, users.c.id == console_sessions.c.user_id)
                           .join(customers, customers.c.uin == users.c.uin)
                           .where(console_sessions.c.id == sid)).mappings().first()
        if row is None:
            return None
        if row["status"] == "cancelled" or row["expires_at"] <= now or row["last_seen_at"] <= now - IDLE:
            conn.execute(delete(console_sessions).where(console_sessions.c.id == sid))
            return None
        if now - row["last_seen_at"] >= TOUCH_AFTER:
            conn.execute(update(console_sessions).where(console_sessions.c.id == sid)
                         .values(last_seen_at=now))
    actor = Actor(kind="user", name=row["login"], uin=row["uin"], user_id=row["user_id"],
                  role=row["role"])
    return ConsoleSession(sid, row["csrf_token"], actor, row["account_name"])


def log_out(conn: Connection, session: ConsoleSession) -> None:
    conn.execute(delete(console_sessions).where(console_sessions.c.id == session.session_id))
