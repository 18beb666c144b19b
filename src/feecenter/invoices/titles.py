"""An account's invoice title (INV-3) with its special-invoice details (INV-2), its
invoice emails and its invoice settings, automatic issuing (INV-5). Owns the
``invoice_titles``, ``invoice_emails`` and ``invoice_settings`` rows.

The title must equal the verified entity (customers.realname_state / entity_name /
uscc): an enterprise-verified account's title is its company's name with its
unified social credit code as tax ID; a personal-verified account's title is the
verified person's name (a personal title: no tax ID, no special details). An
account without a verified real name has no title. Every refusal names the field
(zh, en) and writes nothing. Customers need FINANCE; operators pass.

``lock_account`` is the one per-account lock of invoices: applying for invoices and
changing the emails take the account's ``invoice_settings`` row FOR UPDATE first."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sqlalchemy import Connection, delete, insert, select, update
from stdnum.cn import uscc as uscc_number
from stdnum.exceptions import ValidationError

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import FINANCE, SYSTEM, Actor, require
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time, from_db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid, not_found
from feecenter.inputs import digits_id
from feecenter.invoices.rules import KINDS
from feecenter.invoices.tables import invoice_emails, invoice_settings, invoice_titles

TITLE_FIELDS = ("title_kind", "title", "tax_id", "address", "phone", "bank", "bank_account")
SPECIAL_FIELDS = ("tax_id", "address", "phone", "bank", "bank_account")
MAX_EMAILS = 10  # kept per account
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+?[0-9][0-9\- ]{5,28}$")
_BANK_ACCOUNT = re.compile(r"^[0-9]{8,32}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


# ---------------------------------------------------------------- the per-account lock

def lock_account(conn: Connection, clock: Clock, uin: int) -> dict:
    """The account's invoice settings row, created if absent and locked FOR UPDATE
    (PostgreSQL) until the transaction ends: applications and email changes of one
    account run one after the other. On SQLite the unit of work is one writer."""
    accounts.get_account(conn, SYSTEM, uin)  # an unknown UIN: NotFound, nothing written
    conn.execute(insert_if_absent(conn, invoice_settings, ["uin"]).values(
        uin=uin, auto_issue=False, auto_issue_kind="ordinary", updated_at=db_time(clock.now())))
    stmt = select(invoice_settings).where(invoice_settings.c.uin == uin)
    if conn.dialect.name != "sqlite":
        stmt = stmt.with_for_update()
    return dict(conn.execute(stmt).mappings().one())


# ---------------------------------------------------------------- the title (INV-3, INV-2)

def _title_view(row) -> dict:
    view = {name: row[name] for name in TITLE_FIELDS}
    view["special_ready"] = special_ready(row)
    view["updated_at"] = from_db_time(row["updated_at"])
    return view


def special_ready(title) -> bool:
    """INV-2: an enterprise title with every special-invoice detail filled in."""
    return (title is not None and title["title_kind"] == "enterprise"
            and all(title[name] for name in SPECIAL_FIELDS))


def title_row(conn: Connection, uin: int) -> dict | None:
    row = conn.execute(select(invoice_titles).where(invoice_titles.c.uin == uin)
                       ).mappings().first()
    return dict(row) if row else None


def get_title(conn: Connection, actor: Actor, uin: int) -> dict | None:
    """The account's title with ``special_ready``, None when none is set."""
    require(actor, uin, FINANCE)
    accounts.get_account(conn, SYSTEM, uin)
    row = title_row(conn, uin)
    return _title_view(row) if row else None


def set_title(conn: Connection, clock: Clock, actor: Actor, uin: int,
              fields: Mapping[str, object]) -> dict:
    """Set the account's one title (INV-3): ``title_kind`` (personal | enterprise) and
    ``title`` equal to the verified entity; an enterprise title's ``tax_id`` is the
    verified USCC; ``address``, ``phone``, ``bank``, ``bank_account`` (optional,
    needed for special invoices) are checked when given. Replaces the earlier one."""
    require(actor, uin, FINANCE)
    values = check_title(accounts.get_account(conn, SYSTEM, uin), fields)
    now = db_time(clock.now())
    conn.execute(insert_if_absent(conn, invoice_titles, ["uin"]).values(
        uin=uin, updated_by=actor.label, updated_at=now, **values))
    conn.execute(update(invoice_titles).where(invoice_titles.c.uin == uin)
                 .values(updated_by=actor.label, updated_at=now, **values))
    record_audit(conn, clock, actor, "set_invoice_title", uin,
                 {"title_kind": values["title_kind"], "title": values["title"]})
    return _title_view(title_row(conn, uin))


def check_title(account: Mapping, fields: Mapping[str, object]) -> dict:
    """The title's stored values, or InvalidInput naming the first bad field."""
    if not isinstance(fields, Mapping):
        raise invalid("title", "发票抬头须为对象", "the invoice title must be an object")
    unknown = sorted(str(k) for k in fields if k not in TITLE_FIELDS)
    if unknown:
        raise invalid(unknown[0], f"未知的发票抬头字段：{unknown[0]}",
                      f"unknown invoice title field: {unknown[0]}")
    kind = fields.get("title_kind")
    if kind not in ("personal", "enterprise"):
        raise invalid("title_kind", "抬头类型须为 personal（个人）或 enterprise（企业）",
                      "title_kind must be personal or enterprise")
    state = account["realname_state"]
    if state not in ("personal", "enterprise"):
        raise invalid("title_kind", "账号尚未完成实名认证，不能设置发票抬头",
                      "the account has no verified real name: it cannot have an invoice title")
    if kind == "enterprise" and state != "enterprise":
        raise invalid("title_kind", "个人认证账号不能使用企业抬头",
                      "a personal account cannot take an enterprise title")
    if kind == "personal" and state != "personal":
        raise invalid("title_kind", "企业认证账号须使用企业抬头（与认证主体一致）",
                      "an enterprise account's title is its verified enterprise")
    title = _text(fields.get("title"), "title", 200, "发票抬头", "title")
    if title != (account["entity_name"] or "").strip():
        raise invalid("title", f"发票抬头须与实名认证主体一致：{account['entity_name']}",
                      f"the title must equal the verified entity: {account['entity_name']}")
    values = {"title_kind": kind, "title": title}
    if kind == "personal":
        given = [name for name in SPECIAL_FIELDS if fields.get(name) not in (None, "")]
        if given:
            raise invalid(given[0], "个人抬头不能填写税号或专票信息",
                          "a personal title has no tax ID or special-invoice details")
        return {**values, **dict.fromkeys(SPECIAL_FIELDS)}
    values["tax_id"] = check_tax_id(fields.get("tax_id"))
    if values["tax_id"] != account["uscc"]:
        raise invalid("tax_id", "税号须为实名认证企业的统一社会信用代码",
                      "the tax ID must be the verified enterprise's unified social credit code")
    return {**values, **check_special_details(fields)}


def check_tax_id(value: object) -> str:
    """A unified social credit code, its check digit verified (python-stdnum)."""
    if not isinstance(value, str) or not value.strip():
        raise invalid("tax_id", "企业抬头须填写税号（统一社会信用代码）",
                      "an enterprise title needs its tax ID (unified social credit code)")
    try:
        return uscc_number.validate(value.strip().upper())
    except ValidationError:
        raise invalid("tax_id", f"税号无效（统一社会信用代码校验失败）：{value!r}",
                      f"invalid tax ID (unified social credit code): {value!r}") from None


def check_special_details(fields: Mapping[str, object]) -> dict:
    """address, phone, bank, bank_account: each None (not given) or well formed."""
    out = {}
    address = fields.get("address")
    out["address"] = None if address in (None, "") else _text(address, "address", 200,
                                                              "地址", "address", low=4)
    phone = fields.get("phone")
    if phone in (None, ""):
        out["phone"] = None
    elif not isinstance(phone, str) or not _PHONE.match(phone.strip()):
        raise invalid("phone", "电话格式错误（数字、空格、连字符，6–30 位）",
                      "malformed phone (digits, spaces, hyphens; 6-30 characters)")
    else:
        out["phone"] = phone.strip()
    bank = fields.get("bank")
    out["bank"] = None if bank in (None, "") else _text(bank, "bank", 100, "开户银行", "bank",
                                                        low=2)
    account_no = fields.get("bank_account")
    if account_no in (None, ""):
        out["bank_account"] = None
    else:
        digits = account_no.replace(" ", "") if isinstance(account_no, str) else ""
        if not _BANK_ACCOUNT.match(digits):
            raise invalid("bank_account", "银行账号须为 8–32 位数字",
                          "the bank account number must be 8-32 digits")
        out["bank_account"] = digits
    return out


def _text(value: object, field: str, max_len: int, zh: str, en: str, low: int = 1) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or not low <= len(text) <= max_len or _CONTROL.search(text):
        raise invalid(field, f"{zh}须为 {low}–{max_len} 个字符，不含控制字符",
                      f"{en} must be {low}-{max_len} characters without control characters")
    return text


# ---------------------------------------------------------------- emails (INV-5)

def _contact_email(conn: Connection, uin: int) -> str | None:
    return accounts.get_account(conn, SYSTEM, uin)["email"] or None


def _email_rows(conn: Connection, uin: int) -> list[dict]:
    e = invoice_emails.c
    return [dict(r) for r in conn.execute(select(invoice_emails).where(e.uin == uin)
                                          .order_by(e.id)).mappings()]


def _email_view(row: dict) -> dict:
    return {"id": row["id"], "email": row["email"], "is_default": bool(row["is_default"]),
            "contact": False}


def list_emails(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    """The invoice emails kept (in the order added) and, when none is the default, the
    account's contact email as the default (``id`` None, ``contact`` True)."""
    require(actor, uin, FINANCE)
    rows = [_email_view(r) for r in _email_rows(conn, uin)]
    contact = _contact_email(conn, uin)
    if contact and not any(r["is_default"] for r in rows):
        rows.insert(0, {"id": None, "email": contact, "is_default": True, "contact": True})
    return rows


def default_email(conn: Connection, uin: int) -> str | None:
    """Where invoices go unless an application names another: the default kept
    email, else the contact email (None: neither)."""
    e = invoice_emails.c
    found = conn.execute(select(e.email).where(e.uin == uin, e.is_default.is_(True))
                         .order_by(e.id).limit(1)).scalar()
    return found or _contact_email(conn, uin)


def check_email(value: object, field: str = "email") -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or len(text) > 200 or not _EMAIL.match(text) or _CONTROL.search(text):
        raise invalid(field, f"邮箱格式错误：{value!r}", f"malformed email: {value!r}")
    return text


def add_email(conn: Connection, clock: Clock, actor: Actor, uin: int, email: object,
              make_default: bool = False) -> dict:
    """Keep another invoice email (at most MAX_EMAILS); ``make_default``: it becomes
    the default (the earlier default stays kept)."""
    require(actor, uin, FINANCE)
    address = check_email(email)
    if not isinstance(make_default, bool):
        raise invalid("make_default", "make_default 须为 true 或 false",
                      "make_default must be true or false")
    lock_account(conn, clock, uin)
    rows = _email_rows(conn, uin)
    if any(r["email"].lower() == address.lower() for r in rows):
        raise Conflict(f"邮箱已添加：{address}", f"email already kept: {address}", field="email")
    if len(rows) >= MAX_EMAILS:
        raise invalid("email", f"最多保存 {MAX_EMAILS} 个发票邮箱",
                      f"at most {MAX_EMAILS} invoice emails are kept")
    if make_default:
        _clear_default(conn, uin)
    new_id = conn.execute(insert(invoice_emails).values(
        uin=uin, email=address, is_default=make_default, created_at=db_time(clock.now()))
        .returning(invoice_emails.c.id)).scalar_one()
    record_audit(conn, clock, actor, "add_invoice_email", uin, {"email": address})
    return _email_view(_email_row(conn, uin, new_id))


def _email_row(conn: Connection, uin: int, email_id: object) -> dict:
    number = email_id if isinstance(email_id, int) and not isinstance(email_id, bool) \
        else digits_id(email_id, "email_id")
    row = conn.execute(select(invoice_emails).where(invoice_emails.c.uin == uin,
                                                    invoice_emails.c.id == number)
                       ).mappings().first()
    if row is None:
        raise not_found("email_id", "发票邮箱", "invoice email", email_id)
    return dict(row)


def _clear_default(conn: Connection, uin: int) -> None:
    conn.execute(update(invoice_emails).where(invoice_emails.c.uin == uin,
                                              invoice_emails.c.is_default.is_(True))
                 .values(is_default=False))


def set_default_email(conn: Connection, clock: Clock, actor: Actor, uin: int,
                      email_id: object) -> dict:
    """Make the kept email ``email_id`` the default."""
    require(actor, uin, FINANCE)
    lock_account(conn, clock, uin)
    row = _email_row(conn, uin, email_id)
    _clear_default(conn, uin)
    conn.execute(update(invoice_emails).where(invoice_emails.c.id == row["id"])
                 .values(is_default=True))
    record_audit(conn, clock, actor, "default_invoice_email", uin, {"email": row["email"]})
    return _email_view({**row, "is_default": True})


def remove_email(conn: Connection, clock: Clock, actor: Actor, uin: int, email_id: object) -> None:
    """Forget a kept email; when it was the default, the contact email is again."""
    require(actor, uin, FINANCE)
    lock_account(conn, clock, uin)
    row = _email_row(conn, uin, email_id)
    conn.execute(delete(invoice_emails).where(invoice_emails.c.id == row["id"]))
    record_audit(conn, clock, actor, "remove_invoice_email", uin, {"email": row["email"]})


# ---------------------------------------------------------------- settings (自动开票, INV-5)

def _settings_view(row) -> dict:
    if row is None:
        return {"auto_issue": False, "auto_issue_kind": "ordinary"}
    return {"auto_issue": bool(row["auto_issue"]), "auto_issue_kind": row["auto_issue_kind"]}


def get_settings(conn: Connection, actor: Actor, uin: int) -> dict:
    """``auto_issue`` (off until set) and the kind automatic applications take."""
    require(actor, uin, FINANCE)
    accounts.get_account(conn, SYSTEM, uin)
    row = conn.execute(select(invoice_settings).where(invoice_settings.c.uin == uin)
                       ).mappings().first()
    return _settings_view(row)


def set_settings(conn: Connection, clock: Clock, actor: Actor, uin: int, auto_issue: object,
                 kind: object) -> dict:
    """Turn automatic issuing on or off, with the kind it applies for. Turning it on
    needs a title; special needs a title ready for special invoices (INV-2)."""
    require(actor, uin, FINANCE)
    if not isinstance(auto_issue, bool):
        raise invalid("auto_issue", "auto_issue 须为 true 或 false",
                      "auto_issue must be true or false")
    if kind not in KINDS:
        raise invalid("auto_issue_kind", "发票类型须为 ordinary（普票）或 special（专票）",
                      "auto_issue_kind must be ordinary or special")
    title = title_row(conn, uin)
    if auto_issue and title is None:
        raise invalid("auto_issue", "开启自动开票前请先设置发票抬头",
                      "set the invoice title before turning automatic issuing on")
    if auto_issue and kind == "special":
        check_special_allowed(conn, uin, title, "auto_issue_kind")
    lock_account(conn, clock, uin)
    conn.execute(update(invoice_settings).where(invoice_settings.c.uin == uin).values(
        auto_issue=auto_issue, auto_issue_kind=kind, updated_at=db_time(clock.now())))
    record_audit(conn, clock, actor, "set_invoice_settings", uin,
                 {"auto_issue": auto_issue, "auto_issue_kind": kind})
    return {"auto_issue": auto_issue, "auto_issue_kind": kind}


def check_special_allowed(conn: Connection, uin: int, title: dict | None, field: str) -> None:
    """INV-2: special invoices need an enterprise-verified account, an enterprise title
    and complete special-invoice details; else InvalidInput on ``field``."""
    account = accounts.get_account(conn, SYSTEM, uin)
    if account["realname_state"] != "enterprise":
        raise invalid(field, "仅企业认证账号可开具增值税专用发票",
                      "only enterprise-verified accounts may have special VAT invoices")
    if not special_ready(title):
        raise invalid(field, "开具专票需要企业抬头及完整的专票信息（税号、地址、电话、开户行、账号）",
                      "a special invoice needs an enterprise title with tax ID, address, phone, "
                      "bank and bank account")


def auto_issue_accounts(conn: Connection) -> list[dict]:
    """The accounts with automatic issuing on, by UIN: ``{"uin", "auto_issue_kind"}``."""
    s = invoice_settings.c
    return [dict(r) for r in conn.execute(select(s.uin, s.auto_issue_kind)
                                          .where(s.auto_issue.is_(True)).order_by(s.uin))
            .mappings()]

