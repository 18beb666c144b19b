"""The invoice service-request kinds (SRV-1, INV-9): their fields, filing checks and
resolving actions, registered in ``service_requests.kinds`` so the service-request
REST and console pages offer them. Owns no table: the requests are service requests.

- ``paper_invoice_copy`` (纸质发票复印件): invoice number(s) of the account, recipient,
  address and phone; due 7 working days (SRV-1 says 5-7: the latest is the due time).
  The operator posts the copy and resolves the request (the note can carry the
  courier's tracking number).
- ``commercial_invoice`` (商业发票, INV-9): for customers outside the mainland (HK,
  Macau, Taiwan or another country, an ISO 3166 code; CN refused): account ID, RMB
  amount, title and address; the title cannot be changed afterwards — a request with
  another title than the account's earlier (open or resolved) ones is refused. The
  amount is taken from what the account may invoice (INV-1: ``invoiceable``, where open
  and resolved requests are their own part), never more than it, under the lock VAT
  applications take. Due 7 working days; the operator attaches the scan (PDF, PNG or
  JPEG) and resolves it: the action refuses to resolve without an operator's
  attachment.
"""

from __future__ import annotations

import json
import re

from babel import Locale
from sqlalchemy import Connection, select

from feecenter.accounts.permissions import Actor
from feecenter.clock import Clock
from feecenter.errors import AccountInArrears, Conflict, invalid
from feecenter.invoices import invoiceable, titles
from feecenter.invoices.invoiceable import COMMERCIAL_INVOICE
from feecenter.invoices.tables import invoices
from feecenter.money import format_yuan
from feecenter.service_requests.rules import (AMOUNT, OPEN_STATES, PHONE, RECORD_ID, RESOLVED,
                                              TEXT, Field)
from feecenter.service_requests.tables import service_request_attachments, service_requests

PAPER_INVOICE_COPY = "paper_invoice_copy"
DUE_WORKING_DAYS = 7  # SRV-1 / INV-9: 5-7 working days, due at the latest
MAX_COPIES = 10
COPYABLE_STATES = ("issued", "reversed")
_NUMBER = re.compile(r"^[0-9]{20}$", re.ASCII)
_SEPARATORS = re.compile(r"[\s,，;；、]+")
MAINLAND = "CN"
# ISO 3166 alpha-2 codes from the CLDR data babel ships (HK, MO, TW included)
NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "ZZ", "XA", "XB"})  # CLDR groupings, pseudo
REGIONS = frozenset(code for code in Locale("en").territories
                    if len(code) == 2 and code.isalpha() and code.isupper()) - NOT_COUNTRIES

# ---------------------------------------------------------------- paper invoice copy

PAPER_COPY_FIELDS = (
    Field("invoice_numbers", "发票号码（多张以逗号分隔）", "invoice number(s), comma-separated",
          TEXT, max_length=(20 + 2) * MAX_COPIES),
    Field("recipient", "收件人", "recipient", TEXT, max_length=50),
    Field("address", "邮寄地址", "postal address", TEXT, max_length=500),
    Field("phone", "联系电话", "phone", PHONE),
    Field("note", "备注", "note", TEXT, required=False, max_length=500),
)


def invoice_numbers(text: str) -> list[str]:
    """The distinct 20-digit numbers in ``text``, in order; 1 to ``MAX_COPIES``."""
    numbers = list(dict.fromkeys(n for n in _SEPARATORS.split(text) if n))
    if not numbers or len(numbers) > MAX_COPIES or not all(_NUMBER.fullmatch(n) for n in numbers):
        raise invalid("fields.invoice_numbers",
                      f"发票号码：1–{MAX_COPIES} 个 20 位数字的发票号码，以逗号分隔",
                      f"invoice number(s): 1-{MAX_COPIES} invoice numbers of 20 digits, "
                      "comma-separated")
    return numbers


def admit_paper_copy(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     values: dict) -> None:
    """Every number is an issued (or reversed) invoice of the account."""
    numbers = invoice_numbers(values["invoice_numbers"])
    found = set(conn.execute(select(invoices.c.invoice_number).where(
        invoices.c.uin == uin, invoices.c.invoice_number.in_(numbers),
        invoices.c.state.in_(COPYABLE_STATES))).scalars())
    missing = [n for n in numbers if n not in found]
    if missing:
        raise invalid("fields.invoice_numbers", f"发票号码：不是本账号已开具的发票：{', '.join(missing)}",
                      f"invoice number(s): not issued invoices of this account: "
                      f"{', '.join(missing)}")


def post_paper_copy(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    """The copies were posted: the result names them and where they went."""
    fields = request["fields"]
    return {"invoice_numbers": invoice_numbers(fields["invoice_numbers"]),
            "recipient": fields["recipient"], "address": fields["address"]}


# ---------------------------------------------------------------- commercial invoice (INV-9)

COMMERCIAL_FIELDS = (
    Field("account_id", "账号 ID", "account ID", RECORD_ID),
    Field("amount", "金额（人民币元）", "amount (RMB)", AMOUNT),
    Field("title", "抬头（提交后不可更改）", "title (cannot be changed afterwards)", TEXT,
          max_length=200),
    Field("address", "地址", "address", TEXT, max_length=500),
    Field("region", "国家或地区代码（如 HK、MO、TW、SG）", "country or region code (e.g. HK, MO, "
          "TW, SG)", TEXT, max_length=2),
)


def _same_title(a: str, b: str) -> bool:
    return " ".join(a.split()).casefold() == " ".join(b.split()).casefold()


def admit_commercial(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     values: dict) -> None:
    """The account ID is the account's, the region is outside the mainland, the title
    equals the account's earlier commercial-invoice title, and the amount is at most
    what the account may invoice now (INV-1; refused while it owes money, as VAT
    applications are). Everything is read under ``titles.lock_account``, the lock VAT
    applications and withdrawals take (PostgreSQL; SQLite's writers are serialised):
    two first requests with different titles cannot both pass, and a request racing a
    VAT application cannot take the same money."""
    if values["account_id"] != uin:
        raise invalid("fields.account_id", "账号 ID：须为本账号的 ID", "account ID: must be this account's")
    region = values["region"]
    if region == MAINLAND:
        raise invalid("fields.region", "国家或地区：中国大陆客户请申请增值税发票，不能开具商业发票",
                      "region: mainland customers get VAT invoices, not a commercial invoice")
    if region not in REGIONS:
        raise invalid("fields.region", "国家或地区：应为两位大写的国家或地区代码，如 HK、MO、TW",
                      "region: a two-letter upper-case country or region code such as HK, MO, TW")
    titles.lock_account(conn, clock, uin)  # the claim: everything below is read under it
    title = earlier_title(conn, uin)
    if title is not None and not _same_title(title, values["title"]):
        raise invalid("fields.title", f"抬头：提交后不可更改，本账号的商业发票抬头为「{title}」",
                      f"title: it cannot be changed; this account's commercial-invoice title "
                      f"is \"{title}\"", title=title)
    owed = invoiceable.owed(conn, uin)
    if owed > 0:
        text = format_yuan(owed)
        raise AccountInArrears(f"账号欠费或有未还的信用额度 {text} 元，结清后才能申请商业发票",
                               f"the account owes {text} yuan (arrears or credit not repaid): "
                               "pay it before requesting a commercial invoice", field="uin",
                               owed=text)
    available = invoiceable.available_now(conn, uin)
    if values["amount"] > available:
        text = format_yuan(available)
        raise invalid("fields.amount", f"金额（人民币元）：超过可开票金额 {text} 元",
                      f"amount (RMB): above the invoiceable amount {text} yuan",
                      available=text)


def earlier_title(conn: Connection, uin: int) -> str | None:
    """The title of the account's first open or resolved commercial-invoice request."""
    fields = conn.execute(select(service_requests.c.fields).where(
        service_requests.c.uin == uin, service_requests.c.kind == COMMERCIAL_INVOICE,
        service_requests.c.state.in_((*OPEN_STATES, RESOLVED)))
        .order_by(service_requests.c.id).limit(1)).scalar()
    if fields is None:
        return None
    return json.loads(fields)["title"]


def send_commercial_invoice(conn: Connection, clock: Clock, operator: Actor,
                            request: dict) -> dict:
    """Resolved once the operator attached the scan (the customer downloads it from the
    request): refused without an attachment of an operator's."""
    scans = conn.execute(select(service_request_attachments.c.id).where(
        service_request_attachments.c.request_id == request["id"],
        service_request_attachments.c.created_by.like("operator:%"))
        .order_by(service_request_attachments.c.id)).scalars().all()
    if not scans:
        raise Conflict("请先上传商业发票扫描件再解决工单",
                       "attach the commercial invoice's scan before resolving",
                       field="attachment")
    fields = request["fields"]
    return {"scan_attachment_ids": scans, "title": fields["title"],
            "amount": format_yuan(fields["amount"]), "region": fields["region"]}
