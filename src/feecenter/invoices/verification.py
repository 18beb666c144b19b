"""Public invoice verification (发票查验, INV-8); its attempts are counted per client
and minute by the shared limiter (``feecenter.ratelimit``, table
``invoice_verifications``, keys without a scope).

Anyone may check an invoice this system issued from its 12-digit code, 20-digit
number, issue date, amount (tax-inclusive, yuan) and the last 6 digits of its check
code, from the business day after issue (Asia/Shanghai, from the clock). All five
must match an issued invoice — or a reversed one, which verifies as genuine with state
"reversed" (已红冲, void for deduction) so the holder learns it no longer counts. On
any mismatch, and on the day of issue, the answer is one generic refusal: it never
says which field was wrong, nor whether the invoice exists.

Malformed input is refused naming the field and counts no attempt. Each well-formed
attempt is claimed before the lookup with one upsert whose conditional UPDATE stops
at ``MAX_ATTEMPTS_PER_MINUTE`` per client (the row count decides, so concurrent
attempts cannot pass the limit); beyond it ``TooManyRequests`` (HTTP 429).
"""

from __future__ import annotations

import re
from datetime import date

from sqlalchemy import Connection, select

from feecenter import ratelimit
from feecenter.clock import Clock, business_date, from_db_time
from feecenter.errors import invalid
from feecenter.invoices.tables import invoices
from feecenter.money import parse_yuan

_I = invoices.c

MAX_ATTEMPTS_PER_MINUTE = 10
MAX_CLIENT_CHARS = 64
VERIFIABLE_STATES = {"issued": ("正常", "valid"), "reversed": ("已红冲（作废）", "reversed (void)")}
_CODE = re.compile(r"^[0-9]{12}$", re.ASCII)
_NUMBER = re.compile(r"^[0-9]{20}$", re.ASCII)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)
_LAST6 = re.compile(r"^[0-9]{6}$", re.ASCII)
NOT_VERIFIED = {"valid": False,
                "message_zh": "查验不通过：未找到与所填信息一致的本平台发票（开票次日起可查验）",
                "message_en": "not verified: no invoice of this platform matches what was "
                              "entered (invoices can be verified from the day after issue)"}


def verify(conn: Connection, clock: Clock, client: object, *, invoice_code: object,
           invoice_number: object, issued_on: object, amount: object,
           check_last6: object) -> dict:
    """{"valid": True, the invoice's state, kind, seller, title, amounts, date} when all
    five match a verifiable invoice; else ``NOT_VERIFIED``, the same whatever differed."""
    client = _client(client)
    wanted = {"invoice_code": _matching(invoice_code, _CODE, "invoice_code", "发票代码",
                                        "invoice code", "应为 12 位数字", "12 digits"),
              "invoice_number": _matching(invoice_number, _NUMBER, "invoice_number", "发票号码",
                                          "invoice number", "应为 20 位数字", "20 digits"),
              "issued_on": _date(issued_on),
              "amount": parse_yuan(amount, "amount", allow_negative=True),
              "check_last6": _matching(check_last6, _LAST6, "check_last6", "校验码后 6 位",
                                       "last 6 digits of the check code", "应为 6 位数字",
                                       "6 digits")}
    _claim_attempt(conn, clock, client)
    invoice = conn.execute(select(invoices).where(
        _I.invoice_number == wanted["invoice_number"])).mappings().first()
    if invoice is None or not _matches(invoice, wanted, business_date(clock.now())):
        return dict(NOT_VERIFIED)
    state_zh, state_en = VERIFIABLE_STATES[invoice["state"]]
    return {"valid": True, "state": invoice["state"], "state_zh": state_zh,
            "state_en": state_en, "kind": invoice["kind"], "entity": invoice["entity"],
            "title": invoice["title"], "issued_on": wanted["issued_on"].isoformat(),
            "amount": invoice["amount"], "net_amount": invoice["net_amount"],
            "tax_amount": invoice["tax_amount"]}


def _matches(invoice, wanted: dict, today: date) -> bool:
    """Every field equal, the invoice verifiable, and its issue day over."""
    if invoice["state"] not in VERIFIABLE_STATES or invoice["issued_at"] is None:
        return False
    issued_on = business_date(from_db_time(invoice["issued_at"]))
    return (invoice["invoice_code"] == wanted["invoice_code"]
            and issued_on == wanted["issued_on"] and today > issued_on
            and invoice["amount"] == wanted["amount"]
            and (invoice["check_code"] or "")[-6:] == wanted["check_last6"])


# ---------------------------------------------------------------- input

def _client(value: object) -> str:
    """The rate limit's key (``ratelimit.client_key``: an IPv6 address counts by its /64)."""
    return ratelimit.client_key(value, max_chars=MAX_CLIENT_CHARS)


def _matching(value: object, pattern: re.Pattern, field: str, zh: str, en: str, rule_zh: str,
              rule_en: str) -> str:
    text = value.strip() if isinstance(value, str) else None
    if text is None or not pattern.fullmatch(text):
        raise invalid(field, f"{zh}：{rule_zh}", f"{en}: {rule_en}")
    return text


def _date(value: object) -> date:
    text = value.strip() if isinstance(value, str) else ""
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        return date.fromisoformat(text)
    except ValueError:
        raise invalid("issued_on", "开票日期：格式应为 YYYY-MM-DD",
                      "issue date: must be YYYY-MM-DD") from None


# ---------------------------------------------------------------- the rate limit

def _claim_attempt(conn: Connection, clock: Clock, client: str) -> None:
    """Count one attempt in the client's current minute (``ratelimit.claim_attempt``):
    beyond ``MAX_ATTEMPTS_PER_MINUTE``, ``TooManyRequests``."""
    ratelimit.claim_attempt(
        conn, clock, client, limit=MAX_ATTEMPTS_PER_MINUTE,
        message_zh=f"查验过于频繁：每分钟最多 {MAX_ATTEMPTS_PER_MINUTE} 次，请稍后再试",
        message_en=f"too many verifications: at most {MAX_ATTEMPTS_PER_MINUTE} a minute; try "
                   "again later")
