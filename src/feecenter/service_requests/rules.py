"""Pure rules of service requests: the states and their transitions, field validators
(one per field type), the due time in working days, and sniffing an attachment's type
from its bytes. Plain values only, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

from feecenter.clock import BUSINESS_TZ, business_date
from feecenter.errors import InvalidInput, invalid
from feecenter.inputs import plain_text
from feecenter.money import parse_yuan
from feecenter.workdays import add_working_days

# ---------------------------------------------------------------- states

SUBMITTED, PROCESSING, RESOLVED, REJECTED, WITHDRAWN = (
    "submitted", "processing", "resolved", "rejected", "withdrawn")
OPEN_STATES = (SUBMITTED, PROCESSING)
STATES = (SUBMITTED, PROCESSING, RESOLVED, REJECTED, WITHDRAWN)
STATE_NAMES = {SUBMITTED: ("待处理", "submitted"), PROCESSING: ("处理中", "processing"),
               RESOLVED: ("已解决", "resolved"), REJECTED: ("已驳回", "rejected"),
               WITHDRAWN: ("已撤销", "withdrawn")}
# the transition -> the states it may leave (the conditional UPDATE's WHERE) and the state
# it enters
TRANSITIONS = {"take": ((SUBMITTED,), PROCESSING),
               "resolve": ((PROCESSING,), RESOLVED),
               "reject": ((SUBMITTED, PROCESSING), REJECTED),
               "withdraw": ((SUBMITTED,), WITHDRAWN)}

# ---------------------------------------------------------------- attachments

MAX_ATTACHMENT_BYTES = 5 * 1024 * 1024
MAX_ATTACHMENTS = 5  # a kind may allow fewer, never more
MAX_FILENAME_CHARS = 120
CONTENT_TYPES = {"pdf": "application/pdf", "png": "image/png", "jpeg": "image/jpeg"}


def sniff_type(content: bytes) -> str | None:
    """The attachment's type decided by its bytes (never the client's word): PDF, PNG
    or JPEG by their signatures; None for anything else (HTML, scripts, archives)."""
    if content.startswith(b"%PDF-"):
        return CONTENT_TYPES["pdf"]
    if content.startswith(b"\x89PNG\r\n\x1a\n"):
        return CONTENT_TYPES["png"]
    if content.startswith(b"\xff\xd8\xff"):
        return CONTENT_TYPES["jpeg"]
    return None


def check_attachment(filename: object, content: bytes) -> tuple[str, str]:
    """(safe file name, sniffed content type) or 4xx naming ``attachment``."""
    if not content:
        raise invalid("attachment", "附件为空", "the attachment is empty")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise invalid("attachment", f"附件过大（每个不超过 {MAX_ATTACHMENT_BYTES // 1048576} MB）",
                      f"the attachment is too large (at most "
                      f"{MAX_ATTACHMENT_BYTES // 1048576} MB each)")
    content_type = sniff_type(content)
    if content_type is None:
        raise invalid("attachment", "附件只能是 PDF、PNG 或 JPEG 文件",
                      "an attachment must be a PDF, PNG or JPEG file")
    return safe_filename(filename, content_type), content_type


def safe_filename(filename: object, content_type: str) -> str:
    """A name to show and to offer on download: the base name, printable ASCII and CJK
    kept, the rest replaced; an empty one gets ``attachment.<ext>``."""
    raw = filename if isinstance(filename, str) else ""
    base = re.split(r"[\\/]", raw)[-1]
    cleaned = re.sub(r"[^0-9A-Za-z._\-\u4e00-\u9fff]", "_", base).strip("._")
    ext = {v: k for k, v in CONTENT_TYPES.items()}[content_type]
    return cleaned[:MAX_FILENAME_CHARS] or f"attachment.{ext}"


# ---------------------------------------------------------------- due times

def due_at(submitted_at: datetime, working_days: int) -> datetime:
    """The end of the business day ``working_days`` working days after the submission's
    business date (the CN calendar, make-up days included), as an aware UTC time:
    filed on Friday with 1 working day, due at the end of Monday."""
    due_day = add_working_days(business_date(submitted_at), working_days)
    end = datetime.combine(due_day + timedelta(days=1), time(0), tzinfo=BUSINESS_TZ)
    return end.astimezone(timezone.utc)


def is_overdue(state: str, due: datetime, now: datetime) -> bool:
    return state in OPEN_STATES and now >= due


# ---------------------------------------------------------------- fields

TEXT, AMOUNT, PHONE, BANK_ACCOUNT, DATE, MONTH, CHOICE, BOOLEAN, RECORD_ID = (
    "text", "amount", "phone", "bank_account", "date", "month", "choice", "boolean", "id")
MAX_ID = 2 ** 63 - 1
_PHONE = re.compile(r"^(1[3-9][0-9]{9}|0[0-9]{2,3}-?[0-9]{7,8})$", re.ASCII)
_BANK_ACCOUNT = re.compile(r"^[0-9]{8,30}$", re.ASCII)
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$", re.ASCII)
_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$", re.ASCII)


@dataclass(frozen=True)
class Field:
    """One typed field of a kind; ``max_length`` bounds text, ``choices`` are
    (value, zh, en) for ``choice``."""

    name: str
    zh: str
    en: str
    type: str = TEXT
    required: bool = True
    max_length: int = 200
    choices: tuple[tuple[str, str, str], ...] = ()

    def describe(self) -> dict:
        out = {"name": self.name, "name_zh": self.zh, "name_en": self.en, "type": self.type,
               "required": self.required}
        if self.type == TEXT:
            out["max_length"] = self.max_length
        if self.choices:
            out["choices"] = [{"value": v, "name_zh": zh, "name_en": en}
                              for v, zh, en in self.choices]
        return out


def _wrong(field: Field, zh: str, en: str):
    return invalid(f"fields.{field.name}", f"{field.zh}：{zh}", f"{field.en}: {en}")


def _text(field: Field, value: object) -> str:
    if not isinstance(value, str):
        raise _wrong(field, "必须是文本", "must be text")
    try:
        text = plain_text(value, field.name, field.max_length).strip()
    except InvalidInput:  # re-raised naming the field in both languages
        raise _wrong(field, f"不超过 {field.max_length} 个字符，不含控制字符",
                     f"at most {field.max_length} characters, no control characters") from None
    return text


def _matching(pattern: re.Pattern, zh: str, en: str):
    def check(field: Field, value: object) -> str:
        text = _text(field, value)
        if not pattern.fullmatch(text):
            raise _wrong(field, zh, en)
        return text
    return check


def _amount(field: Field, value: object) -> int:
    if not isinstance(value, str):
        raise _wrong(field, '必须是以元为单位的字符串，如 "12.30"',
                     'must be a yuan string such as "12.30"')
    try:
        return parse_yuan(value, f"fields.{field.name}")
    except InvalidInput as exc:  # re-raised naming the field in both languages
        raise _wrong(field, exc.message_zh, exc.message_en) from None


def _date(field: Field, value: object) -> str:
    text = _text(field, value)
    try:
        if not _DATE.fullmatch(text):
            raise ValueError(text)
        date.fromisoformat(text)
    except ValueError:
        raise _wrong(field, "日期格式应为 YYYY-MM-DD", "a date must be YYYY-MM-DD") from None
    return text


def _choice(field: Field, value: object) -> str:
    text = _text(field, value)
    if text not in {v for v, _, _ in field.choices}:
        allowed = ", ".join(v for v, _, _ in field.choices)
        raise _wrong(field, f"只能是 {allowed} 之一", f"must be one of {allowed}")
    return text


def _boolean(field: Field, value: object) -> bool:
    if not isinstance(value, bool):
        raise _wrong(field, "必须是 true 或 false", "must be true or false")
    return value


def _record_id(field: Field, value: object) -> int:
    """The number of a record (a remittance, another request): a positive integer, as
    JSON or as the digits a form sends."""
    digits = value.strip() if isinstance(value, str) else ""
    if digits.isascii() and digits.isdigit() and len(digits) <= len(str(MAX_ID)):
        value = int(digits)
    if type(value) is not int or not 0 < value <= MAX_ID:
        raise _wrong(field, "必须是正整数编号", "must be a positive whole number")
    return value


VALIDATORS = {
    TEXT: _text,
    AMOUNT: _amount,
    PHONE: _matching(_PHONE, "手机号或座机号格式错误", "malformed phone number"),
    BANK_ACCOUNT: _matching(_BANK_ACCOUNT, "银行账号应为 8–30 位数字",
                            "a bank account number is 8-30 digits"),
    DATE: _date,
    MONTH: _matching(_MONTH, "月份格式应为 YYYY-MM", "a month must be YYYY-MM"),
    CHOICE: _choice,
    BOOLEAN: _boolean,
    RECORD_ID: _record_id,
}


def validate_fields(fields: tuple[Field, ...], raw: object) -> dict:
    """The kind's fields from ``raw`` (a JSON object), each validated by its type:
    unknown names, missing required ones and bad values are refused naming the field."""
    if not isinstance(raw, dict):
        raise invalid("fields", "fields 必须是对象", "fields must be an object")
    known = {f.name: f for f in fields}
    for name in raw:
        if name not in known:
            raise invalid(f"fields.{str(name)[:40]}", "未知字段", "unknown field")
    values = {}
    for field in fields:
        value = raw.get(field.name)
        if value is None or value == "":
            if field.required:
                raise _wrong(field, "必填", "required")
            continue
        values[field.name] = VALIDATORS[field.type](field, value)
    return values


def check_reason(reason: object, field: str = "reason", max_len: int = 500) -> str:
    """An operator's rejection reason or a note: required text."""
    if not isinstance(reason, str) or not reason.strip():
        raise invalid(field, "必须填写原因", "a reason is required")
    return plain_text(reason, field, max_len).strip()
