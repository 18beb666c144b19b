"""Arrears escalation service (ARR-3).

``escalate(engine_or_conn, clock)`` is the one entry point, run hourly by
the ``arrears.escalate`` job:

1. Accounts in arrears are selected set-based from the ledger: customer
   ledger accounts of kind ``arrears`` whose (cached) balance is below zero.
   Open cases are read in one query.
2. An account in arrears without an open case gets one (``started_at`` is
   when the arrears began, read from the ledger's postings) and a dunning
   notice to the owner and the finance users (notifications decides who:
   ``notifications.recipients``).
3. For every open case still in arrears, each postpaid resource's policy
   (``policy``) is applied through the pure rules (``rules.due_steps``):
   stop warning, stop (state ``stopped``), destruction warning, destruction
   (state ``recycled`` with ``released_at``). Every step is an event on the
   account (``account_events``) and is notified. From the stop, the resource's
   usage is not charged (``resources.stop_resource``, ``usage.restate_stopped``).
4. An open case whose account is out of arrears (balance back to 0) is
   closed; the resources this case stopped (and did not destroy) are
   restarted — charged again from then on — with events and an
   ``arrears_repaid_restored`` notice.

Each account is handled in one transaction of its own (events, resource
changes and notifications commit together). Idempotent: events are unique
per (case, step, resource) and notifications carry keys derived from the case
and step, so a rerun — after success or a crash — writes nothing new.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, Engine, func, insert, select, update

from feecenter.accounts.permissions import FINANCE, Actor, require, require_operator
from feecenter.arrears import rules
from feecenter.arrears.policy import DEFAULT_POLICIES, ArrearsPolicy, PolicyTable
from feecenter.arrears.tables import account_events, arrears_cases
from feecenter.catalog import service as catalog
from feecenter.clock import Clock, business_time_text, db_time, from_db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import FeeCenterError, invalid
from feecenter.ledger.tables import ledger_accounts, ledger_postings, ledger_transactions
from feecenter.money import format_yuan
from feecenter.notifications.service import notify
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.resources.tables import resources as resources_table
from feecenter.usage import service as usage

_C = arrears_cases.c
_E = account_events.c

# step -> (notification template, include the finance users)
_TEMPLATES = {
    "dunning": "arrears_dunning",
    rules.STOP_WARNING: "arrears_stop_warning",
    rules.STOPPED: "resources_stopped",
    rules.DESTROY_WARNING: "resources_destroy_warning",
    rules.DESTROYED: "resources_destroyed",
    "restored": "arrears_repaid_restored",
}


def escalate(engine_or_conn: Engine | Connection, clock: Clock, *,
             policies: PolicyTable = DEFAULT_POLICIES) -> dict:
    """Open, advance and close arrears cases; returns counts of what was done."""
    counts = {"opened": 0, "closed": 0, "stop_warning": 0, "stopped": 0,
              "destroy_warning": 0, "destroyed": 0, "restarted": 0, "accounts": 0}
    if isinstance(engine_or_conn, Connection):
        _escalate(engine_or_conn, clock, policies, counts, lambda: _Same(engine_or_conn))
    else:
        _escalate(None, clock, policies, counts, engine_or_conn.begin)
    return counts


class _Same:
    """A context manager that hands back the caller's connection (no own transaction)."""

    def __init__(self, conn: Connection):
        self.conn = conn

    def __enter__(self):
        return self.conn

    def __exit__(self, *exc):
        return False


def _escalate(conn: Connection | None, clock: Clock, policies: PolicyTable, counts: dict,
              begin) -> None:
    with begin() as c:
        owing = {row.uin: (row.id, -row.balance) for row in c.execute(
            select(ledger_accounts.c.uin, ledger_accounts.c.id, ledger_accounts.c.balance)
            .where(ledger_accounts.c.kind == "arrears", ledger_accounts.c.balance < 0,
                   ledger_accounts.c.uin.is_not(None)))}
        open_cases = {row["uin"]: dict(row) for row in c.execute(
            select(arrears_cases).where(_C.state == "open")).mappings()}
    for uin in sorted(set(owing) | set(open_cases)):
        counts["accounts"] += 1
        with begin() as c:
            case = _open_case(c, uin)  # re-read inside the account's own transaction
            if uin in owing:
                account_id, amount = owing[uin]
                if case is None:
                    opened = _start_case(c, clock, uin, account_id, amount)
                    counts["opened"] += int(opened is not None)
                    case = opened or _open_case(c, uin)  # another run opened it just now
                for kind, n in _advance(c, clock, policies, case, amount).items():
                    counts[kind] += n
            elif case is not None:
                counts["restarted"] += _close_case(c, clock, case)
                counts["closed"] += 1


def _open_case(conn: Connection, uin: int) -> dict | None:
    stmt = select(arrears_cases).where(_C.open_uin == uin)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).mappings().first()
    return dict(row) if row else None


def arrears_began(conn: Connection, account_id: int) -> datetime | None:
    """When the current arrears began: the first posting after the balance was last 0."""
    p = ledger_postings.c
    last_clear = conn.execute(select(func.max(p.id)).where(
        p.account_id == account_id, p.balance_after >= 0)).scalar()
    first = select(func.min(p.id)).where(p.account_id == account_id, p.amount < 0)
    if last_clear is not None:
        first = first.where(p.id > last_clear)
    posting_id = conn.execute(first).scalar()
    if posting_id is None:
        return None
    at = conn.execute(select(ledger_transactions.c.created_at)
                      .join(ledger_postings, ledger_postings.c.txn_id == ledger_transactions.c.id)
                      .where(ledger_postings.c.id == posting_id)).scalar()
    return from_db_time(at) if at is not None else None


def _start_case(conn: Connection, clock: Clock, uin: int, account_id: int,
                amount: int) -> dict | None:
    """Open the account's arrears case and send the dunning notice; None if another
    escalation run opened it at the same moment (one open case per account)."""
    now = clock.now()
    began = arrears_began(conn, account_id) or now
    began = min(began, now)
    case_id = conn.execute(insert_if_absent(conn, arrears_cases, ["open_uin"]).values(
        uin=uin, started_at=db_time(began), opened_at=db_time(now), ended_at=None, state="open",
        open_uin=uin, arrears_at_open=amount).returning(_C.id)).scalar()
    if case_id is None:
        return None
    key = f"arrears:{case_id}:dunning"
    notify(conn, clock, uin, _TEMPLATES["dunning"], {"amount": format_yuan(amount)}, key=key)
    _event(conn, clock, uin, case_id, "dunning", None,
           {"amount": amount, "started_at": business_time_text(began)}, key)
    return dict(conn.execute(select(arrears_cases).where(_C.id == case_id)).mappings().one())


def _event(conn: Connection, clock: Clock, uin: int, case_id: int, kind: str,
           resource_id: str | None, detail: dict, notification_key: str | None) -> None:
    conn.execute(insert(account_events).values(
        uin=uin, case_id=case_id, kind=kind, resource_id=resource_id, at=db_time(clock.now()),
        detail=json.dumps(detail, ensure_ascii=False, sort_keys=True, default=str),
        step_key=f"{case_id}:{kind}:{resource_id or '-'}", notification_key=notification_key))


def _case_events(conn: Connection, case_id: int) -> dict[str | None, dict[str, datetime]]:
    done: dict[str | None, dict[str, datetime]] = defaultdict(dict)
    for row in conn.execute(select(_E.resource_id, _E.kind, _E.at).where(_E.case_id == case_id)):
        done[row.resource_id][row.kind] = from_db_time(row.at)
    return done


def _resource_line(r: dict) -> str:
    name = f" {r['name']}" if r.get("name") else ""
    return f"- {r['id']}{name} ({r['product_code']}, {r['region']})"


def _group_key(case_id: int, kind: str, resource_ids: list[str]) -> str:
    digest = hashlib.sha1(",".join(sorted(resource_ids)).encode()).hexdigest()[:16]
    return f"arrears:{case_id}:{kind}:{digest}"


def _advance(conn: Connection, clock: Clock, policies: PolicyTable, case: dict,
             amount: int) -> dict[str, int]:
    """Run the steps now due for the case's postpaid resources; counts per step."""
    now = clock.now()
    uin, case_id = case["uin"], case["id"]
    started = from_db_time(case["started_at"])
    done = _case_events(conn, case_id)
    rows = _postpaid_resources(conn, uin)
    products: dict[str, catalog.Product | None] = {}
    # (kind, promised time) -> [(resource, step)]
    groups: dict[tuple[str, datetime], list[tuple[dict, rules.Step]]] = defaultdict(list)
    for r in rows:
        policy = _policy(conn, policies, products, r["product_code"])
        for step in rules.due_steps(started, now, policy, r["state"], done.get(r["id"], {})):
            when = step.stop_at if step.kind == rules.STOP_WARNING else step.destroy_at
            groups[(step.kind, when)].append((r, step))
    counts = {kind: 0 for kind in rules.RESOURCE_STEPS}
    order = {kind: i for i, kind in enumerate(rules.RESOURCE_STEPS)}
    for (kind, when), items in sorted(groups.items(), key=lambda g: (order[g[0][0]], g[0][1])):
        ids = [r["id"] for r, _ in items]
        key = _group_key(case_id, kind, ids)
        for r, step in items:
            _apply(conn, clock, r, kind, products.get(r["product_code"]))
            _event(conn, clock, uin, case_id, kind, r["id"],
                   {"amount": amount, "stop_at": business_time_text(step.stop_at),
                    "destroy_at": business_time_text(step.destroy_at)}, key)
        params = {"amount": format_yuan(amount),
                  "resources": "\n".join(_resource_line(r) for r, _ in items),
                  "stop_at": business_time_text(when), "destroy_at": business_time_text(when)}
        notify(conn, clock, uin, _TEMPLATES[kind], params, key=key)
        counts[kind] += len(items)
    return counts


def _postpaid_resources(conn: Connection, uin: int) -> list[dict]:
    """The account's postpaid resources not recycled: those a case's policy applies to."""
    return [dict(r) for r in conn.execute(
        select(resources_table).where(resources_table.c.uin == uin,
                                      resources_table.c.pay_mode == "postpaid",
                                      resources_table.c.state != "recycled")
        .order_by(resources_table.c.id)).mappings()]


def _policy(conn: Connection, policies: PolicyTable,
            products: dict[str, catalog.Product | None], code: str) -> ArrearsPolicy:
    """The product's arrears policy; ``products`` caches the catalog's facts (None: the
    product is gone from the catalog, the default policy applies)."""
    if code not in products:
        try:
            products[code] = catalog.get_product(conn, code)
        except FeeCenterError:
            products[code] = None
    facts = products[code]
    return policies.for_product(code, facts.product_class if facts else None)


def _apply(conn: Connection, clock: Clock, r: dict, kind: str, facts) -> None:
    """The resource side of a step: stop (its usage from now on is not charged), or
    recycle (its freeze follows FRZ-3)."""
    now = clock.now()
    if kind == rules.STOPPED:
        resources.stop_resource(conn, r["id"], now, "arrears")
        usage.restate_stopped(conn, r["id"], db_time(now))
        r["state"] = "stopped"
    elif kind == rules.DESTROYED:
        values: dict = {"state": "recycled", "released_at": now}
        if r.get("freeze_hold_id"):
            values["freeze_release_at"] = db_time(freeze_release_time(facts, now))
        resources.end_stop(conn, r["id"], now, **values)
        r["state"] = "recycled"


def freeze_release_time(facts, now: datetime) -> datetime:
    """When a destroyed postpaid resource's freeze is released (FRZ-3), as
    release_postpaid does: at once, at the next settlement boundary, or on the monthly
    settlement day for a monthly-freeze product (FRZ-5); ``resources.release_due_freezes``
    (hourly) releases it then; ``facts`` None (the product left the catalog): at once."""
    return now if facts is None else postpaid.freeze_release_after(facts, now)


def ensure_open_case(conn: Connection, clock: Clock, uin: int) -> dict | None:
    """The account's open arrears case (locked on PostgreSQL), opened now with its
    dunning notice if the account is in arrears and the hourly job has not opened it
    yet (ARR-6 measures belong to a case); None when the account owes nothing."""
    case = _open_case(conn, uin)
    if case is not None:
        return case
    found = conn.execute(select(ledger_accounts.c.id, ledger_accounts.c.balance).where(
        ledger_accounts.c.uin == uin, ledger_accounts.c.kind == "arrears")).first()
    if found is None or found.balance >= 0:
        return None
    return _start_case(conn, clock, uin, found.id, -found.balance) or _open_case(conn, uin)


def _repaid_amount(conn: Connection, uin: int, since) -> int:
    """What was paid into the arrears account since the case began (fen)."""
    p, a, t = ledger_postings.c, ledger_accounts.c, ledger_transactions.c
    return int(conn.execute(
        select(func.coalesce(func.sum(p.amount), 0))
        .select_from(ledger_postings.join(ledger_accounts, ledger_accounts.c.id == p.account_id)
                     .join(ledger_transactions, ledger_transactions.c.id == p.txn_id))
        .where(a.uin == uin, a.kind == "arrears", p.amount > 0, t.created_at >= since)).scalar())


def _close_case(conn: Connection, clock: Clock, case: dict) -> int:
    """Arrears repaid: restart what this case stopped (not destroyed), notify, close."""
    uin, case_id = case["uin"], case["id"]
    done = _case_events(conn, case_id)
    stopped_ids = sorted(rid for rid, kinds in done.items()
                         if rid is not None and rules.STOPPED in kinds
                         and rules.DESTROYED not in kinds and "restarted" not in kinds)
    restart = [dict(r) for r in conn.execute(
        select(resources_table).where(resources_table.c.id.in_(stopped_ids),
                                      resources_table.c.uin == uin,
                                      resources_table.c.state == "stopped")
        .order_by(resources_table.c.id)).mappings()] if stopped_ids else []
    # and what an operator's measure took offline (ARR-6): the arrears are paid
    known = {r["id"] for r in restart}
    restart += [r for r in resources.stopped_for(conn, uin, rules.MEASURE_STOP)
                if r["id"] not in known]
    key = f"arrears:{case_id}:restored"
    amount = _repaid_amount(conn, uin, case["started_at"]) or case["arrears_at_open"]
    now = clock.now()
    for r in restart:  # charged again from now on (ARR-3)
        resources.end_stop(conn, r["id"], now, state="running")
        usage.restate_stopped(conn, r["id"], db_time(now))
        _event(conn, clock, uin, case_id, "restarted", r["id"], {}, key)
    _event(conn, clock, uin, case_id, "restored", None,
           {"amount": amount, "restarted": [r["id"] for r in restart]}, key)
    notify(conn, clock, uin, _TEMPLATES["restored"],
           {"amount": format_yuan(amount),
            "resources": "\n".join(_resource_line(r) for r in restart) or "-"},
           key=key)
    conn.execute(update(arrears_cases).where(_C.id == case_id)
                 .values(state="closed", ended_at=db_time(clock.now()), open_uin=None))
    return len(restart)


# ---------------------------------------------------------------- reading

def list_cases(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    require(actor, uin, FINANCE)
    return [dict(r) for r in conn.execute(select(arrears_cases).where(_C.uin == uin)
                                          .order_by(_C.id)).mappings()]


def list_all_cases(conn: Connection, actor: Actor, *, state: str | None = None,
                   limit: int = 200) -> list[dict]:
    """Every account's cases (operators), newest first; ``state`` open or closed."""
    require_operator(actor)
    if state not in (None, "open", "closed"):
        raise invalid("state", "欠费状态须为 open 或 closed", "the state is open or closed")
    stmt = select(arrears_cases).order_by(_C.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(_C.state == state)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def list_events(conn: Connection, actor: Actor, uin: int, *, case_id: int | None = None,
                limit: int = 1000) -> list[dict]:
    """The account's events (oldest first), ``detail`` decoded."""
    require(actor, uin, FINANCE)
    stmt = select(account_events).where(_E.uin == uin).order_by(_E.id).limit(limit)
    if case_id is not None:
        stmt = stmt.where(_E.case_id == case_id)
    rows = [dict(r) for r in conn.execute(stmt).mappings()]
    for row in rows:
        row["detail"] = json.loads(row["detail"])
    return rows


def outlook(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
            policies: PolicyTable = DEFAULT_POLICIES) -> list[dict]:
    """For the account's open case: each postpaid resource's next step (``stopped`` or
    ``destroyed``) and when, as the escalation will take it (``rules.next_step``);
    [] without an open case. Reads only; FINANCE (ACC-2)."""
    require(actor, uin, FINANCE)
    case = conn.execute(select(arrears_cases).where(_C.open_uin == uin)).mappings().first()
    if case is None:
        return []
    started, now = from_db_time(case["started_at"]), clock.now()
    done = _case_events(conn, case["id"])
    products: dict[str, catalog.Product | None] = {}
    out = []
    for r in _postpaid_resources(conn, uin):
        policy = _policy(conn, policies, products, r["product_code"])
        step = rules.next_step(started, now, policy, r["state"], done.get(r["id"], {}))
        if step is not None:
            out.append({"case_id": case["id"], "resource_id": r["id"], "name": r["name"],
                        "product_code": r["product_code"], "state": r["state"],
                        "next": step[0], "at": step[1]})
    return out


def earliest_ahead(conn: Connection, clock: Clock, actor: Actor, uin: int, *,
                   policies: PolicyTable = DEFAULT_POLICIES) -> dict | None:
    """The console's arrears banner (ARR-3 ahead): the open case's earliest next
    step of ``outlook`` — ``step`` (stopped: the protection period ends; destroyed:
    the isolation period ends), ``at``, and how many ``resources`` it concerns;
    None without an open case or with nothing ahead (FINANCE)."""
    ahead = outlook(conn, clock, actor, uin, policies=policies)
    if not ahead:
        return None
    first = min(ahead, key=lambda item: item["at"])
    same = [item for item in ahead if (item["next"], item["at"]) == (first["next"], first["at"])]
    return {"step": first["next"], "at": first["at"], "resources": len(same)}
