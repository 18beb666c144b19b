"""Applying for invoices (申请开票, INV-2, INV-4) and reading them. Owns the
``invoice_applications`` rows and the blue ``invoices`` and ``invoice_lines`` an
application makes (state ``applied``; ``issuing`` issues them).

An application takes an amount (all available when none is given) from the
account's buckets in ``rules.bucket_order``, and becomes one invoice per selling
entity with one line per tax category, each line's tax split once (half-up). The
claim is race-free: ``titles.lock_account`` locks the account's settings row first,
then everything deciding it (the request key's earlier use, the title, what is owed,
the available amount) is read under that lock, so 8 concurrent applications for the
whole amount make exactly one. Idempotent per (uin, request_key).

Views (amounts int fen; adapters format yuan) are the contract's (docs/invoices.md).
"""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import Connection, and_, func, insert, or_, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require, require_operator
from feecenter.catalog.tables import selling_entities
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.errors import AccountInArrears, IdempotencyConflict, invalid, not_found
from feecenter.inputs import bounded_int, digits_id
from feecenter.invoices import invoiceable as amounts
from feecenter.invoices import rules, titles
from feecenter.invoices.tables import invoice_applications, invoice_lines, invoices
from feecenter.money import format_yuan, parse_yuan

FLAG_AFTER = timedelta(minutes=30)  # INV-5: not issued 30 minutes after applying
MAX_PAGE = 100
STATES = ("applied", "issuing", "issued", "reversed")
_KEY = re.compile(r"^[\x21-\x7e]{1,64}$")  # printable ASCII, no spaces


# ---------------------------------------------------------------- inputs

def check_kind(kind: object) -> str:
    if kind not in rules.KINDS:
        raise invalid("kind", "发票类型须为 ordinary（数电普票）或 special（数电专票）",
                      "kind must be ordinary (digital ordinary VAT invoice) or special "
                      "(digital special VAT invoice)")
    return kind


def _check_amount(amount: object) -> int | None:
    """A yuan string ("12.30") in fen, or None: everything available."""
    return None if amount is None else parse_yuan(amount, "amount")


def _check_request_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise invalid("request_key", "请求键须为 1–64 个可打印 ASCII 字符（不含空格）",
                      "request_key must be 1-64 printable ASCII characters without spaces")
    return key


# ---------------------------------------------------------------- what an application makes

def _title_for(conn: Connection, uin: int, kind: str) -> dict:
    """The title the invoices carry, re-checked against the verified entity now (it may
    have changed since the title was set), and for special invoices INV-2."""
    title = titles.title_row(conn, uin)
    if title is None:
        raise invalid("title", "请先设置发票抬头", "set the invoice title first")
    titles.check_title(accounts.get_account(conn, SYSTEM, uin),
                       {k: title[k] for k in titles.TITLE_FIELDS if title[k] is not None})
    if kind == "special":
        titles.check_special_allowed(conn, uin, title, "kind")
    return title


def _refuse_if_owed(conn: Connection, uin: int) -> None:
    owed = amounts.owed(conn, uin)
    if owed > 0:
        text = format_yuan(owed)
        raise AccountInArrears(f"账号欠费或有未还的信用额度 {text} 元，结清后才能申请开票",
                               f"the account owes {text} yuan (arrears or credit not repaid): "
                               "pay it before applying for invoices", field="uin", owed=text)


def _plan(conn: Connection, uin: int, amount: int | None) -> tuple[int, list[dict]]:
    """(the amount, the invoices it makes), or InvalidInput on ``amount``."""
    found = amounts.buckets(conn, uin)
    available = {(b["entity"], b["tax_category"]): b["available"] for b in found}
    # less the commercial invoices' part (INV-9): ≤ Σ available, the buckets can give it
    total = max(amounts.net_invoiceable(
        found, commercial=amounts.commercial_requested(conn, uin)), 0)
    if total <= 0:
        raise invalid("amount", "当前没有可开票金额", "there is no invoiceable amount")
    amount = total if amount is None else amount
    if amount > total:
        raise invalid("amount", f"开票金额超过可开票金额 {format_yuan(total)} 元",
                      f"the amount exceeds the invoiceable amount {format_yuan(total)} yuan",
                      available=format_yuan(total))
    return amount, rules.invoices_of(rules.allocate(amount, available))


def _entity_names(conn: Connection) -> dict[str, str]:
    return dict(conn.execute(select(selling_entities.c.code, selling_entities.c.name_zh)).all())


def preview(conn: Connection, actor: Actor, uin: int, *, kind: object, amount: object) -> dict:
    """What ``apply`` would make now (writes nothing): ``{"kind", "amount", "invoices":
    [{"entity", "entity_name", "amount", "net_amount", "tax_amount", "lines"}]}``;
    refused as ``apply`` refuses (title, special invoice details, owed money, amount)."""
    require(actor, uin, FINANCE)
    kind, wanted = check_kind(kind), _check_amount(amount)
    accounts.get_account(conn, SYSTEM, uin)
    _title_for(conn, uin, kind)
    _refuse_if_owed(conn, uin)
    total, planned = _plan(conn, uin, wanted)
    names = _entity_names(conn)
    return {"kind": kind, "amount": total,
            "invoices": [{**inv, "entity_name": names.get(inv["entity"], inv["entity"])}
                         for inv in planned]}


AUTO_KEY_PREFIX = "auto:"  # automatic issuing's request keys (invoices.jobs), system only


def apply(conn: Connection, clock: Clock, actor: Actor, uin: int, *, kind: object,
          amount: object, email: object, request_key: object) -> dict:
    """申请开票: the invoices of ``amount`` (None: all available) of ``kind``, sent to
    ``email`` (None: the default invoice email), in state ``applied``. The same
    ``request_key`` again returns the first application (another kind or amount under
    it: IdempotencyConflict). ``{"application_id", "invoices": [view]}``."""
    require(actor, uin, FINANCE)
    kind, wanted = check_kind(kind), _check_amount(amount)
    key = _check_request_key(request_key)
    if key.startswith(AUTO_KEY_PREFIX) and actor.kind != "system":
        raise invalid("request_key", "请求键不能以 auto: 开头（自动开票专用）",
                      "request_key cannot start with auto: (kept for automatic issuing)")
    address = None if email is None else titles.check_email(email)
    titles.lock_account(conn, clock, uin)  # the claim: everything below is read under it
    earlier = _application(conn, uin, key)
    if earlier is not None:
        return _repeat(conn, earlier, kind, wanted, address)
    title = _title_for(conn, uin, kind)
    _refuse_if_owed(conn, uin)
    total, planned = _plan(conn, uin, wanted)
    address = address or titles.default_email(conn, uin)
    if address is None:
        raise invalid("email", "请填写接收发票的邮箱", "give the email the invoices go to")
    now = db_time(clock.now())
    application_id = conn.execute(insert(invoice_applications).values(
        uin=uin, request_key=key, kind=kind, amount=total, email=address,
        automatic=actor.kind == "system", applied_by=actor.label, applied_at=now)
        .returning(invoice_applications.c.id)).scalar_one()
    for planned_invoice in planned:
        _insert_invoice(conn, uin, application_id, kind, title, address, planned_invoice, now)
    return application_view(conn, application_id)


def _insert_invoice(conn: Connection, uin: int, application_id: int, kind: str, title: dict,
                    email: str, planned: dict, now) -> int:
    invoice_id = conn.execute(insert(invoices).values(
        uin=uin, application_id=application_id, kind=kind, state="applied",
        entity=planned["entity"], email=email, amount=planned["amount"],
        net_amount=planned["net_amount"], tax_amount=planned["tax_amount"], applied_at=now,
        **{name: title[name] for name in titles.TITLE_FIELDS})
        .returning(invoices.c.id)).scalar_one()
    conn.execute(insert(invoice_lines), [
        {"invoice_id": invoice_id, "uin": uin, "entity": planned["entity"], **line}
        for line in planned["lines"]])
    return invoice_id


def _application(conn: Connection, uin: int, key: str) -> dict | None:
    a = invoice_applications.c
    row = conn.execute(select(invoice_applications).where(a.uin == uin, a.request_key == key)
                       ).mappings().first()
    return dict(row) if row else None


def _repeat(conn: Connection, earlier: dict, kind: str, wanted: int | None,
            address: str | None) -> dict:
    if (earlier["kind"] != kind or (wanted is not None and wanted != earlier["amount"])
            or (address is not None and address != earlier["email"])):
        raise IdempotencyConflict("该请求键已用于另一笔开票申请",
                                  "request_key was used for another application",
                                  field="request_key")
    return application_view(conn, earlier["id"])


def application_view(conn: Connection, application_id: int) -> dict:
    """An application's invoices in entity order (as they were made)."""
    rows = _rows(conn, [invoices.c.application_id == application_id], newest_first=False)
    return {"application_id": application_id, "invoices": _views(conn, rows)}


# ---------------------------------------------------------------- views

def _rows(conn: Connection, where: list, *, offset: int = 0, limit: int | None = None,
          newest_first: bool = True) -> list:
    order = ((invoices.c.applied_at.desc(), invoices.c.id.desc()) if newest_first
             else (invoices.c.id,))
    stmt = select(invoices).where(*where).order_by(*order)
    if limit is not None:
        stmt = stmt.offset(offset).limit(limit)
    return [dict(r) for r in conn.execute(stmt).mappings()]


def _views(conn: Connection, rows: list[dict], now=None) -> list[dict]:
    if not rows:
        return []
    i = invoice_lines.c
    lines: dict[int, list[dict]] = {}
    for line in conn.execute(select(invoice_lines).where(
            i.invoice_id.in_([r["id"] for r in rows])).order_by(i.invoice_id, i.id)).mappings():
        lines.setdefault(line["invoice_id"], []).append(
            {k: line[k] for k in ("tax_category", "item_name", "tax_code", "rate_bp", "amount",
                                  "net_amount", "tax_amount")})
    names = _entity_names(conn)
    return [_view(r, names, lines.get(r["id"], []), now) for r in rows]


def _view(row: dict, names: dict, lines: list[dict], now=None) -> dict:
    overdue = (now is not None and row["state"] in ("applied", "issuing")
               and row["applied_at"] <= now - FLAG_AFTER)
    keys = ("id", "uin", "kind", "state", "entity", "title_kind", "title", "tax_id", "address",
            "phone", "bank", "bank_account", "email", "amount", "net_amount", "tax_amount",
            "invoice_code", "invoice_number", "check_code", "original_id")
    view = {k: row[k] for k in keys}
    view["entity_name"] = names.get(row["entity"], row["entity"])
    view["applied_at"] = from_db_time(row["applied_at"])
    view["issued_at"] = from_db_time(row["issued_at"]) if row["issued_at"] else None
    view["flagged"] = row["flagged_at"] is not None or bool(overdue)
    view["lines"] = lines
    return view


def _page(offset: object, limit: object) -> tuple[int, int]:
    return bounded_int(offset, "offset"), bounded_int(limit, "limit", 1, MAX_PAGE)


def list_invoices(conn: Connection, actor: Actor, uin: int, *, offset: int = 0,
                  limit: int = 20) -> dict:
    """The account's invoices, blue and red, newest application first."""
    require(actor, uin, FINANCE)
    offset, limit = _page(offset, limit)
    where = [invoices.c.uin == uin]
    total = conn.execute(select(func.count()).select_from(invoices).where(*where)).scalar_one()
    return {"total": total,
            "items": _views(conn, _rows(conn, where, offset=offset, limit=limit))}


def get_invoice(conn: Connection, actor: Actor, uin: int, invoice_id: object) -> dict:
    """One invoice of the account (another account's: not found)."""
    require(actor, uin, FINANCE)
    number = invoice_id if isinstance(invoice_id, int) and not isinstance(invoice_id, bool) \
        else digits_id(invoice_id, "invoice_id")
    rows = _rows(conn, [invoices.c.uin == uin, invoices.c.id == number])
    if not rows:
        raise not_found("invoice_id", "发票", "invoice", invoice_id)
    return _views(conn, rows)[0]


def ops_invoices(conn: Connection, clock: Clock, actor: Actor, *, state: object = None,
                 flagged: object = None, offset: object = 0, limit: object = 50) -> dict:
    """Operators' list of every account's invoices, newest first; ``state`` one of
    STATES, ``flagged`` True: those flagged or not issued 30 minutes after applying
    (False: the others)."""
    require_operator(actor)
    offset, limit = _page(offset, limit)
    where = []
    if state is not None:
        if state not in STATES:
            raise invalid("state", "状态须为 applied、issuing、issued 或 reversed",
                          "state must be applied, issuing, issued or reversed")
        where.append(invoices.c.state == state)
    now = db_time(clock.now())
    late = or_(invoices.c.flagged_at.is_not(None),
               and_(invoices.c.state.in_(("applied", "issuing")),
                    invoices.c.applied_at <= now - FLAG_AFTER))
    if flagged is not None:
        if not isinstance(flagged, bool):
            raise invalid("flagged", "flagged 须为 true 或 false", "flagged must be true or false")
        where.append(late if flagged else ~late)
    total = conn.execute(select(func.count()).select_from(invoices).where(*where)).scalar_one()
    return {"total": total,
            "items": _views(conn, _rows(conn, where, offset=offset, limit=limit), now)}
