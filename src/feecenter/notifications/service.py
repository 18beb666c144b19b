"""Notification use cases (the notification rule, docs/notifications.md; ARR-3's dunning notice and escalation steps).

- ``notify`` runs inside the caller's transaction (the event and its
  notification commit together, or neither does): it always writes an
  in-site message (both languages) and one outbox row per email / SMS
  address of the recipients the kind names (``recipients.RECIPIENTS``).
  Idempotent by key.
- ``notify_many`` writes what ``notify`` writes for many events at once (a
  statement import's pending lines), with one executemany per table.
- ``list_messages`` / ``mark_read``: the customer's in-site messages, each
  user seeing the kinds addressed to its role.
- ``deliver_pending`` sends the outbox: claim a row (short transaction), send
  it with no transaction open, record the result (short transaction).
  Failures are retried with backoff up to ``max_attempts``, then the row is
  failed. Two workers never send one row at once: on PostgreSQL a claim
  takes the row with ``FOR UPDATE SKIP LOCKED`` and puts its due time a
  lease ahead; on SQLite claims are serialised by ``BEGIN IMMEDIATE``.
  Delivery is at-least-once only across a crash between sending and
  recording (the row is sent again after its lease); the email Message-ID is
  stable per row so a receiver can drop the copy.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Connection, Engine, func, insert, select, update

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import READ_PROFILE, Actor, require, require_operator
from feecenter.clock import Clock, business_time_text, db_time
from feecenter.db.engine import transaction
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import IdempotencyConflict, InvalidInput, invalid, not_found
from feecenter.notifications.recipients import addresses, readable_by
from feecenter.notifications.senders import OutgoingMessage, PermanentSendError, Sender
from feecenter.notifications.tables import in_site_messages as _M
from feecenter.notifications.tables import notification_outbox as _O
from feecenter.notifications.templates import DEFAULT_LOCALE, render, render_bilingual

log = logging.getLogger("feecenter.notifications")

MAX_KEY_CHARS = 200
MAX_PAGE = 100
MAX_MARK_IDS = 1000
DEFAULT_MAX_ATTEMPTS = 5
LEASE_S = 600  # a claimed row is due again after this long if its worker died
RETRY_BASE_S = 300  # 5, 10, 20, 40 minutes … between attempts
RETRY_MAX_S = 3600
MAX_ERROR_CHARS = 2000


# ---------------------------------------------------------------- notify

def notify(conn: Connection, clock: Clock, uin: int, template: str, params: Mapping, *,
           key: str, locale: str = DEFAULT_LOCALE) -> list[int]:
    """Notify account ``uin``: an in-site message always, plus email and SMS to every
    address of the recipients the kind names (``recipients.RECIPIENTS``: the account's
    contacts, the owner, finance users …), each address once.

    ``key`` identifies the event: a repeat with the same key writes nothing and
    returns the first result. Returns ``[message_id, *outbox_ids]`` (the
    in-site message first, then one outbox row per email/SMS recipient).
    ``params`` are the template's named params; ``uin``, ``account_name`` and
    ``at`` (now, business time) are filled in when missing. Email and SMS are
    rendered in ``locale``; the in-site message carries zh-CN then en.
    """
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_CHARS:
        raise invalid("key", f"幂等键必须为 1–{MAX_KEY_CHARS} 个字符",
                      f"the idempotency key must be 1-{MAX_KEY_CHARS} characters")
    contacts = accounts.contacts(conn, uin)
    values = {"uin": uin, "account_name": contacts["name"],
              "at": business_time_text(clock.now()), **params}
    title, body = render_bilingual(template, values)  # raises before anything is written
    rendered = render(template, locale, values)

    first = _existing(conn, key, uin, template)
    if first is not None:
        return first
    now = db_time(clock.now())
    message_id = conn.execute(
        insert_if_absent(conn, _M, ["idempotency_key"]).values(
            uin=uin, idempotency_key=key, template=template, title=title[:400], body=body,
            params=json.dumps(values, ensure_ascii=False, sort_keys=True, default=str),
            created_at=now)
        .returning(_M.c.id)).scalar()
    if message_id is None:  # a concurrent notify with the same key committed first
        return _existing(conn, key, uin, template)

    rows = [{"uin": uin, "message_id": message_id, "channel": channel, "recipient": recipient,
             "idempotency_key": f"{key}|{channel}|{recipient}", "template": template,
             "locale": locale, "subject": rendered.subject[:400],
             "body": rendered.body if channel == "email" else rendered.sms,
             "state": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now}
            for channel, recipient in addresses(template, contacts)]
    outbox_ids = []
    if rows:
        outbox_ids = list(conn.execute(
            insert(_O).returning(_O.c.id, sort_by_parameter_order=True), rows).scalars())
    return [message_id, *outbox_ids]


@dataclass(frozen=True)
class Notice:
    """One event to tell account ``uin`` about, as ``notify`` takes it."""

    uin: int
    template: str
    params: Mapping
    key: str


_KEYS_PER_QUERY = 500


def notify_many(conn: Connection, clock: Clock, notices: Sequence[Notice], *,
                locale: str = DEFAULT_LOCALE) -> None:
    """``notify`` for each notice, in order: the same in-site messages and outbox rows,
    written with one executemany per table (each account's contacts read once). A
    key used before for the same account and template writes nothing again; for
    another one it is an ``IdempotencyConflict``. Everything is rendered before
    anything is written."""
    if len({n.key for n in notices}) != len(notices):
        raise invalid("key", "同一批次中幂等键重复", "duplicate idempotency key in batch")
    for notice in notices:
        if not isinstance(notice.key, str) or not notice.key or len(notice.key) > MAX_KEY_CHARS:
            raise invalid("key", f"幂等键必须为 1–{MAX_KEY_CHARS} 个字符",
                          f"the idempotency key must be 1-{MAX_KEY_CHARS} characters")
    earlier = _earlier_keys(conn, notices)
    fresh = [n for n in notices if n.key not in earlier]
    if not fresh:
        return
    people = {uin: accounts.contacts(conn, uin) for uin in sorted({n.uin for n in fresh})}
    at = business_time_text(clock.now())
    now = db_time(clock.now())
    messages, outboxes = [], {}
    for notice in fresh:
        contacts = people[notice.uin]
        values = {"uin": notice.uin, "account_name": contacts["name"], "at": at, **notice.params}
        title, body = render_bilingual(notice.template, values)
        rendered = render(notice.template, locale, values)
        messages.append({"uin": notice.uin, "idempotency_key": notice.key,
                         "template": notice.template, "title": title[:400], "body": body,
                         "params": json.dumps(values, ensure_ascii=False, sort_keys=True,
                                              default=str), "created_at": now})
        outboxes[notice.key] = [
            {"uin": notice.uin, "channel": channel, "recipient": recipient,
             "idempotency_key": f"{notice.key}|{channel}|{recipient}",
             "template": notice.template, "locale": locale,
             "subject": rendered.subject[:400],
             "body": rendered.body if channel == "email" else rendered.sms,
             "state": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now}
            for channel, recipient in addresses(notice.template, contacts)]
    # a concurrent notify with the same key may win one: it wrote that message's outbox
    won = dict(conn.execute(insert_if_absent(conn, _M, ["idempotency_key"])
                            .returning(_M.c.idempotency_key, _M.c.id), messages).all())
    rows = [{**row, "message_id": won[m["idempotency_key"]]}
            for m in messages if m["idempotency_key"] in won
            for row in outboxes[m["idempotency_key"]]]
    if rows:
        conn.execute(insert(_O), rows)


def _earlier_keys(conn: Connection, notices: Sequence[Notice]) -> set[str]:
    """Keys used before (refusing one used for another account or template)."""
    wanted = {n.key: (n.uin, n.template) for n in notices}
    keys = list(wanted)
    found = set()
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        for key, uin, template in conn.execute(select(_M.c.idempotency_key, _M.c.uin, _M.c.template)
                                               .where(_M.c.idempotency_key.in_(
                                                   keys[start:start + _KEYS_PER_QUERY]))):
            if (uin, template) != wanted[key]:
                raise IdempotencyConflict(
                    f"幂等键 {key} 已用于另一通知（账号 {uin}，模板 {template}）",
                    f"key {key} was used for another notification (account {uin}, "
                    f"template {template})", field="key")
            found.add(key)
    return found


def _existing(conn: Connection, key: str, uin: int, template: str) -> list[int] | None:
    first = conn.execute(select(_M.c.id, _M.c.uin, _M.c.template)
                         .where(_M.c.idempotency_key == key)).first()
    if first is None:
        return None
    if (first.uin, first.template) != (uin, template):
        raise IdempotencyConflict(
            f"幂等键 {key} 已用于另一通知（账号 {first.uin}，模板 {first.template}）",
            f"key {key} was used for another notification (account {first.uin}, "
            f"template {first.template})", field="key")
    outbox_ids = conn.execute(select(_O.c.id).where(_O.c.message_id == first.id)
                              .order_by(_O.c.id)).scalars()
    return [first.id, *outbox_ids]


# ---------------------------------------------------------------- reading

def _message_json(row, locale: str | None = None) -> dict:
    title, body = _in_locale(row, locale) if locale else (row["title"], row["body"])
    return {"id": row["id"], "template": row["template"], "title": title,
            "body": body, "created_at": row["created_at"], "read_at": row["read_at"],
            "read": row["read_at"] is not None}


def _in_locale(row, locale: str) -> tuple[str, str]:
    """Title and body in one language, rendered again from the stored params; the stored
    bilingual text when that is no longer possible (a template since changed)."""
    try:
        rendered = render(row["template"], locale, json.loads(row["params"]))
    except (InvalidInput, ValueError, TypeError):
        return row["title"], row["body"]
    return rendered.subject, rendered.body


def list_messages(conn: Connection, actor: Actor, uin: int, unread_only: bool = False,
                  offset: int = 0, limit: int = 20, locale: str | None = None) -> dict:
    """A page of the account's in-site messages, newest first, with totals.

    Any user of the account may read them (READ_PROFILE), each the kinds addressed
    to its role (``recipients.readable_by``). Read state is kept per account.
    ``locale`` (zh-CN, en): each title and body in that language only; otherwise
    both, as stored (zh-CN, then en).
    """
    require(actor, uin, READ_PROFILE)
    if offset < 0:
        raise invalid("offset", "offset 不能为负", "offset must not be negative")
    if not 1 <= limit <= MAX_PAGE:
        raise invalid("limit", f"limit 须在 1–{MAX_PAGE} 之间", f"limit must be 1-{MAX_PAGE}")
    where = _visible(actor, uin)
    counts = conn.execute(select(func.count(), func.count().filter(_M.c.read_at.is_(None)))
                          .select_from(_M).where(*where)).one()
    if unread_only:
        where.append(_M.c.read_at.is_(None))
    rows = conn.execute(select(_M).where(*where).order_by(_M.c.id.desc())
                        .offset(offset).limit(limit)).mappings()
    return {"total": counts[1] if unread_only else counts[0], "unread": counts[1],
            "items": [_message_json(r, locale) for r in rows]}


def mark_read(conn: Connection, clock: Clock, actor: Actor, uin: int,
              message_ids: Sequence[int] | None) -> int:
    """Mark messages read (``None``: all unread ones); returns how many were newly marked.

    Ids that are not messages this actor sees are refused, and nothing is marked.
    """
    require(actor, uin, READ_PROFILE)
    visible = _visible(actor, uin)
    stmt = update(_M).where(*visible, _M.c.read_at.is_(None))
    if message_ids is not None:
        ids = sorted(set(message_ids))
        if not ids or len(ids) > MAX_MARK_IDS:
            raise invalid("ids", f"须给出 1–{MAX_MARK_IDS} 条消息 ID",
                          f"give 1-{MAX_MARK_IDS} message ids")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise invalid("ids", "消息 ID 须为整数", "message ids must be integers")
        found = set(conn.execute(select(_M.c.id).where(*visible, _M.c.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise not_found("ids", "站内信", "message", ", ".join(map(str, missing)))
        stmt = stmt.where(_M.c.id.in_(ids))
    return conn.execute(stmt.values(read_at=db_time(clock.now()))).rowcount


def _visible(actor: Actor, uin: int) -> list:
    """The account's messages ``actor`` sees: a user, those of the kinds addressed to its
    role; operators and the system, all."""
    where = [_M.c.uin == uin]
    if actor.kind == "user":
        where.append(_M.c.template.in_(readable_by(actor.role)))
    return where


def list_outbox(conn: Connection, actor: Actor, uin: int | None = None,
                state: str | None = None, limit: int = 100) -> list[dict]:
    """Operators: outbox rows, newest first (state pending|sent|failed)."""
    require_operator(actor)
    stmt = select(_O).order_by(_O.c.id.desc()).limit(min(max(limit, 1), 1000))
    if uin is not None:
        stmt = stmt.where(_O.c.uin == uin)
    if state is not None:
        stmt = stmt.where(_O.c.state == state)
    return [dict(r) for r in conn.execute(stmt).mappings()]


# ---------------------------------------------------------------- delivery

def retry_delay_s(attempts: int) -> int:
    """Wait after the ``attempts``-th failed attempt: 5, 10, 20, 40 minutes, at most 1 hour."""
    return min(RETRY_BASE_S * 2 ** max(attempts - 1, 0), RETRY_MAX_S)


def deliver_pending(engine: Engine, clock: Clock, senders: Mapping[str, Sender], *,
                    batch: int = 100, max_attempts: int = DEFAULT_MAX_ATTEMPTS) -> dict:
    """Send up to ``batch`` due outbox rows; returns {"sent", "retrying", "failed"} counts.

    Only channels in ``senders`` are sent: with email disabled (no sender),
    email rows stay pending, untouched. Each row: one short transaction to
    claim it (attempts + 1, due again only after a lease), the send outside
    any transaction, one short transaction to record sent / the error.
    """
    if batch < 1 or max_attempts < 1:
        raise ValueError("batch and max_attempts must be positive")
    counts = {"sent": 0, "retrying": 0, "failed": 0}
    channels = sorted(senders)
    if not channels:
        return counts
    for _ in range(batch):
        row = _claim(engine, clock, channels)
        if row is None:
            break
        message = OutgoingMessage(
            outbox_id=row["id"], uin=row["uin"], channel=row["channel"],
            recipient=row["recipient"], template=row["template"], locale=row["locale"],
            subject=row["subject"], body=row["body"], at=clock.now())
        error, permanent = None, False
        try:
            senders[row["channel"]].send(message)
        except Exception as exc:  # noqa: BLE001 - any sender failure is recorded on the row
            error = f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]
            permanent = isinstance(exc, PermanentSendError)
            log.warning("sending outbox row %s (%s to %s) failed, attempt %s: %s", row["id"],
                        row["channel"], row["recipient"], row["attempts"], error)
        outcome = _record(engine, clock, row, error, permanent, max_attempts)
        if outcome:
            counts[outcome] += 1
    return counts


def _claim(engine: Engine, clock: Clock, channels: list[str]) -> dict | None:
    with transaction(engine) as conn:
        now = db_time(clock.now())
        row = conn.execute(
            select(_O.c.id, _O.c.uin, _O.c.channel, _O.c.recipient, _O.c.template,
                   _O.c.locale, _O.c.subject, _O.c.body, _O.c.attempts)
            .where(_O.c.state == "pending", _O.c.channel.in_(channels),
                   _O.c.next_attempt_at <= now)
            .order_by(_O.c.id).limit(1)
            .with_for_update(skip_locked=True)).mappings().first()
        if row is None:
            return None
        attempts = row["attempts"] + 1
        conn.execute(update(_O).where(_O.c.id == row["id"]).values(
            attempts=attempts, next_attempt_at=now + timedelta(seconds=LEASE_S)))
        return {**row, "attempts": attempts}


def _record(engine: Engine, clock: Clock, row: dict, error: str | None, permanent: bool,
            max_attempts: int) -> str | None:
    with transaction(engine) as conn:
        now = db_time(clock.now())
        mine = update(_O).where(_O.c.id == row["id"], _O.c.state == "pending",
                                _O.c.attempts == row["attempts"])  # still our claim
        if error is None:
            outcome, values = "sent", {"state": "sent", "sent_at": now}
        elif permanent or row["attempts"] >= max_attempts:
            outcome, values = "failed", {"state": "failed", "last_error": error}
        else:
            outcome, values = "retrying", {
                "last_error": error,
                "next_attempt_at": now + timedelta(seconds=retry_delay_s(row["attempts"]))}
        if conn.execute(mine.values(**values)).rowcount != 1:
            log.error("outbox row %s was claimed again before its result was recorded",
                      row["id"])
            return None
        return outcome

