"""Service request use cases (SRV-1..2): file a request of a kind, attach files, list
and read them (with their history), withdraw; the operators' queue, take, resolve,
reject; flag overdue ones.

Every state change is a conditional UPDATE on the state whose row count decides
(docs/architecture.md, "Claiming a state change"): of two operators resolving one
request at once, one wins and the kind's action runs once, in the same transaction,
under the winner's name in the audit log. Each change is recorded as an event and
notified to the account (notifications.service.notify).

Operators' names stay with operators: what a customer (a user) reads — a request,
its history, its attachments — names an operator (or the system) who filed, took,
resolved, rejected, attached or flagged by its kind only, "operator" / "system"
(``accounts.permissions.labels_seen_by``, as remittances do); the account's own
users' labels are shown as they are.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from feecenter.accounts.permissions import (
    FINANCE,
    SYSTEM,
    Actor,
    labels_seen_by,
    require,
    require_operator,
)
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.errors import Conflict, invalid, not_found
from feecenter.notifications.service import notify
from feecenter.service_requests import rules
from feecenter.service_requests.kinds import KINDS, Kind, get_kind
from feecenter.service_requests.tables import (
    service_request_attachments,
    service_request_events,
    service_requests,
)

_R = service_requests.c
_E = service_request_events.c
_A = service_request_attachments.c
NOTIFY_TEMPLATE = "service_request_update"
# the columns naming who did something, an ``Actor.label`` each
REQUEST_LABELS = ("created_by", "taken_by", "ended_by")
EVENT_LABELS = ("actor",)
ATTACHMENT_LABELS = ("created_by",)


@dataclass(frozen=True)
class Upload:
    filename: str
    content: bytes


def list_kinds() -> list[dict]:
    """Every kind with its fields, attachment rules and due time (no account data)."""
    return [kind.describe() for kind in KINDS.values()]


# ---------------------------------------------------------------- filing

def file_request(conn: Connection, clock: Clock, actor: Actor, uin: int, kind_code: object,
                 raw_fields: object, uploads: tuple[Upload, ...] | None = None) -> dict:
    """File a request of ``kind_code`` for account ``uin``. ``uploads``: the files sent
    with it (the console's form), attached in the same transaction, and a kind that
    requires attachments needs one there; None: they follow one by one
    (``add_attachment``, REST), and an operator takes the request only once a required
    one is there. Bad input writes nothing."""
    kind = get_kind(kind_code)
    require(actor, uin, kind.permission)
    values = rules.validate_fields(kind.fields, raw_fields)
    if uploads is not None and kind.attachments.required and not uploads:
        raise invalid("attachment", "该类型工单必须上传附件", "this kind needs an attachment")
    uploads = uploads or ()
    if len(uploads) > kind.attachments.max_count:
        raise _too_many(kind)
    checked = [(rules.check_attachment(u.filename, u.content), u.content) for u in uploads]
    if kind.admit is not None:
        kind.admit(conn, clock, actor, uin, values)
    subject = kind.subject(values) if kind.subject else None
    if subject is not None:
        _refuse_duplicate(conn, kind, uin, subject)
    now = clock.now()
    row = {"uin": uin, "kind": kind.code, "state": rules.SUBMITTED,
           "fields": json.dumps(values, ensure_ascii=False, sort_keys=True), "subject": subject,
           "created_by": actor.label, "created_at": db_time(now),
           "due_at": db_time(rules.due_at(now, kind.due_working_days))}
    request_id = conn.execute(insert(service_requests).values(**row)
                              .returning(_R.id)).scalar_one()
    for (filename, content_type), content in checked:
        _store_attachment(conn, clock, actor, request_id, uin, filename, content_type, content)
    _record(conn, clock, {**row, "id": request_id}, "submitted", actor, None)
    return get_request(conn, clock, actor, request_id)


def _too_many(kind: Kind):
    return invalid("attachment", f"附件最多 {kind.attachments.max_count} 个",
                   f"at most {kind.attachments.max_count} attachments")


def _refuse_duplicate(conn: Connection, kind: Kind, uin: int, subject: str) -> None:
    """One open or resolved request per (kind, account, subject): a claimed month is
    not claimed again. The money itself is guarded by the action's own claim."""
    earlier = conn.execute(select(_R.id).where(
        _R.kind == kind.code, _R.uin == uin, _R.subject == subject,
        _R.state.in_((*rules.OPEN_STATES, rules.RESOLVED))).limit(1)).scalar()
    if earlier is not None:
        raise Conflict(f"已有同一事项的工单（编号 {earlier}）", f"a request about the same "
                       f"matter exists already (no. {earlier})", field="fields")


# ---------------------------------------------------------------- attachments

def add_attachment(conn: Connection, clock: Clock, actor: Actor, request_id: int,
                   upload: Upload) -> dict:
    """Attach a file to the caller's submitted request, or (an operator) to an open one
    — the scan a commercial invoice is resolved with (INV-9); its type is sniffed from
    the bytes (PDF, PNG, JPEG), never taken from the client. The request row is locked
    while counting, so concurrent uploads cannot pass the kind's maximum."""
    request = _load(conn, request_id, lock=True)
    require(actor, request["uin"], FINANCE)
    open_to = rules.OPEN_STATES if actor.kind in ("operator", "system") else (rules.SUBMITTED,)
    if request["state"] not in open_to:
        raise _state_conflict(request["state"])
    filename, content_type = rules.check_attachment(upload.filename, upload.content)
    kind = get_kind(request["kind"])
    count = conn.execute(select(func.count()).select_from(service_request_attachments)
                         .where(_A.request_id == request_id)).scalar_one()
    if count >= kind.attachments.max_count:
        raise _too_many(kind)
    attachment = _store_attachment(conn, clock, actor, request_id, request["uin"], filename,
                                   content_type, upload.content)
    _event(conn, clock, request, "attached", request["state"], actor, filename)
    return labels_seen_by(actor, attachment, ATTACHMENT_LABELS)


def _store_attachment(conn, clock, actor, request_id, uin, filename, content_type,
                      content) -> dict:
    values = {"request_id": request_id, "uin": uin, "filename": filename,
              "content_type": content_type, "size": len(content),
              "sha256": hashlib.sha256(content).hexdigest(), "created_by": actor.label,
              "created_at": db_time(clock.now())}
    new_id = conn.execute(insert(service_request_attachments)
                          .values(**values, content=content).returning(_A.id)).scalar_one()
    return {"id": new_id, **values}


def get_attachment(conn: Connection, actor: Actor, request_id: int,
                   attachment_id: int) -> dict:
    """One attachment with its bytes, for download by the account or an operator."""
    row = conn.execute(select(service_request_attachments).where(
        _A.id == attachment_id, _A.request_id == request_id)).mappings().first()
    if row is None:
        raise not_found("attachment_id", "附件", "attachment", attachment_id)
    require(actor, row["uin"], FINANCE)
    return labels_seen_by(actor, row, ATTACHMENT_LABELS)


# ---------------------------------------------------------------- reading

def get_request(conn: Connection, clock: Clock, actor: Actor, request_id: int) -> dict:
    """One request with its history (oldest first) and its attachments (no bytes), as
    ``actor`` may see them (a customer: no operator's name)."""
    request = _load(conn, request_id)
    require(actor, request["uin"], FINANCE)
    events = conn.execute(select(service_request_events).where(_E.request_id == request_id)
                          .order_by(_E.id)).mappings().all()
    files = conn.execute(select(*[c for c in service_request_attachments.c if c.name != "content"])
                         .where(_A.request_id == request_id).order_by(_A.id)).mappings().all()
    return {**_seen_by(actor, _view(request, clock)),
            "events": [labels_seen_by(actor, e, EVENT_LABELS) for e in events],
            "attachments": [labels_seen_by(actor, f, ATTACHMENT_LABELS) for f in files]}


def list_requests(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                  state: str | None = None, kind: str | None = None, offset: int = 0,
                  limit: int = 20) -> dict:
    """An account's requests, newest first, as ``actor`` may see them."""
    require(actor, uin, FINANCE)
    page = _page(conn, clock, [_R.uin == uin], state, kind, offset, limit)
    return {**page, "items": [_seen_by(actor, r) for r in page["items"]]}


def queue(conn: Connection, clock: Clock, actor: Actor, *, kind: str | None = None,
          state: str | None = None, overdue: bool | None = None, uin: int | None = None,
          offset: int = 0, limit: int = 50) -> dict:
    """The operators' queue, most urgent (earliest due) first; ``state`` None: open
    ones; ``overdue``: past due and still open (live, not only what the job flagged)."""
    require_operator(actor)
    where = []
    if uin is not None:
        where.append(_R.uin == uin)
    if overdue is not None:
        now = db_time(clock.now())
        live = (_R.state.in_(rules.OPEN_STATES)) & (_R.due_at <= now)
        where.append(live if overdue else ~live)
    if state is None:
        where.append(_R.state.in_(rules.OPEN_STATES))
    return _page(conn, clock, where, state, kind, offset, limit, urgent_first=True)


def _page(conn, clock, where, state, kind, offset, limit, urgent_first=False) -> dict:
    if state is not None:
        if state not in rules.STATES:
            raise invalid("state", "工单状态无效", "unknown service request state")
        where = [*where, _R.state == state]
    if kind is not None:
        where = [*where, _R.kind == get_kind(kind).code]
    order = (_R.due_at, _R.id) if urgent_first else (_R.id.desc(),)
    rows = conn.execute(select(service_requests).where(*where).order_by(*order)
                        .offset(offset).limit(limit)).mappings().all()
    total = conn.execute(select(func.count()).select_from(service_requests)
                         .where(*where)).scalar_one()
    return {"total": total, "items": [_view(r, clock) for r in rows]}


def _load(conn: Connection, request_id: int, lock: bool = False) -> dict:
    stmt = select(service_requests).where(_R.id == request_id)
    if lock:
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise not_found("request_id", "工单", "service request", request_id)
    return dict(row)


def _seen_by(actor: Actor, request: dict) -> dict:
    """A request row as ``actor`` may see who filed, took and ended it."""
    return labels_seen_by(actor, request, REQUEST_LABELS)


def _view(row, clock: Clock) -> dict:
    kind = KINDS.get(row["kind"])
    out = dict(row)
    out["fields"] = json.loads(row["fields"])
    out["result"] = json.loads(row["result"]) if row["result"] else None
    out["kind_zh"], out["kind_en"] = (kind.zh, kind.en) if kind else (row["kind"], row["kind"])
    out["state_zh"], out["state_en"] = rules.STATE_NAMES[row["state"]]
    out["overdue"] = rules.is_overdue(row["state"], from_db_time(row["due_at"]), clock.now())
    return out


# ---------------------------------------------------------------- state changes

def withdraw(conn: Connection, clock: Clock, actor: Actor, request_id: int) -> dict:
    """The customer withdraws a request nobody has taken yet (已撤销)."""
    request = _load(conn, request_id)
    require(actor, request["uin"], FINANCE)
    _claim(conn, clock, actor, request, "withdraw", ended_by=actor.label)
    return get_request(conn, clock, actor, request_id)


def take(conn: Connection, clock: Clock, actor: Actor, request_id: int) -> dict:
    """An operator takes a submitted request (处理中). A kind that needs attachments
    is taken only once they are there."""
    require_operator(actor)
    request = _load(conn, request_id)
    kind = get_kind(request["kind"])
    if kind.attachments.required and not _attachment_count(conn, request_id):
        raise invalid("attachment", "客户尚未上传必需的附件", "the required attachment is missing")
    _claim(conn, clock, actor, request, "take", taken_by=actor.label,
           taken_at=db_time(clock.now()))
    return get_request(conn, clock, actor, request_id)


def resolve(conn: Connection, clock: Clock, actor: Actor, request_id: int,
            note: str | None = None) -> dict:
    """Resolve a request in processing: claim it, then run the kind's action in the same
    transaction under the operator (an action that fails rolls the claim back)."""
    require_operator(actor)
    note = rules.check_reason(note, "note") if note not in (None, "") else None
    request = _load(conn, request_id)
    claimed = _claim(conn, clock, actor, request, "resolve", ended_by=actor.label, reason=note)
    result = get_kind(request["kind"]).action(conn, clock, actor, _view(claimed, clock))
    conn.execute(update(service_requests).where(_R.id == request_id)
                 .values(result=json.dumps(result, ensure_ascii=False, default=str)))
    return get_request(conn, clock, actor, request_id)


def reject(conn: Connection, clock: Clock, actor: Actor, request_id: int,
           reason: object) -> dict:
    """Reject an open request with a reason the customer sees (已驳回)."""
    require_operator(actor)
    reason = rules.check_reason(reason)
    request = _load(conn, request_id)
    _claim(conn, clock, actor, request, "reject", ended_by=actor.label, reason=reason)
    return get_request(conn, clock, actor, request_id)


def _attachment_count(conn: Connection, request_id: int) -> int:
    return conn.execute(select(func.count()).select_from(service_request_attachments)
                        .where(_A.request_id == request_id)).scalar_one()


def _claim(conn: Connection, clock: Clock, actor: Actor, request: dict, transition: str,
           **values) -> dict:
    """The conditional UPDATE of the transition: only from the states it may leave; the
    row count decides, the loser gets a 409 naming the state it found."""
    leaves, enters = rules.TRANSITIONS[transition]
    if enters in (rules.RESOLVED, rules.REJECTED, rules.WITHDRAWN):
        values.setdefault("ended_at", db_time(clock.now()))
    row = conn.execute(update(service_requests)
                       .where(_R.id == request["id"], _R.state.in_(leaves))
                       .values(state=enters, **values)
                       .returning(*service_requests.c)).mappings().first()
    if row is None:
        raise _state_conflict(_load(conn, request["id"])["state"])
    row = dict(row)
    event = {"take": "taken", "resolve": "resolved", "reject": "rejected",
             "withdraw": "withdrawn"}[transition]
    note = values.get("reason")
    if actor.kind in ("operator", "system"):
        record_audit(conn, clock, actor, f"service_request.{transition}", row["uin"],
                     {"request_id": row["id"], "kind": row["kind"], "note": note})
    _record(conn, clock, row, event, actor, note)
    return row


def _state_conflict(state: str) -> Conflict:
    zh, en = rules.STATE_NAMES[state]
    return Conflict(f"工单当前状态为「{zh}」，不能执行此操作",
                    f"the request is {en}; this cannot be done now", field="state", state=state)


def _record(conn: Connection, clock: Clock, request: dict, event: str, actor: Actor,
            note: str | None) -> None:
    """The event in the history, and the notice to the account (one per event)."""
    _event(conn, clock, request, event, request["state"], actor, note)
    kind = KINDS[request["kind"]]
    state_zh, state_en = rules.STATE_NAMES[request["state"]]
    notify(conn, clock, request["uin"], NOTIFY_TEMPLATE,
           {"request_id": request["id"], "kind_zh": kind.zh, "kind_en": kind.en,
            "state_zh": state_zh, "state_en": state_en, "note": note or "-"},
           key=f"srv:{request['id']}:{event}")


def _event(conn, clock, request, event, state, actor, note) -> None:
    conn.execute(insert(service_request_events).values(
        request_id=request["id"], uin=request["uin"], event=event, state=state,
        actor=actor.label, note=note, created_at=db_time(clock.now())))


# ---------------------------------------------------------------- overdue

def flag_overdue(conn: Connection, clock: Clock) -> int:
    """Flag open requests past their due time (SRV-2), each once: the conditional
    UPDATE on ``overdue_at IS NULL`` decides; each flag is an event in the history."""
    now = db_time(clock.now())
    rows = conn.execute(update(service_requests).where(
        _R.state.in_(rules.OPEN_STATES), _R.due_at <= now, _R.overdue_at.is_(None))
        .values(overdue_at=now).returning(_R.id, _R.uin, _R.state)).mappings().all()
    for row in rows:
        _event(conn, clock, row, "overdue", row["state"], SYSTEM, None)
    return len(rows)
