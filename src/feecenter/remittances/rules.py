"""Pure remittance rules: receiving numbers (RMT-1), checking a statement line,
matching its payee number (RMT-3), holds for restricted memos and foreign
currency (RMT-6/7), payer verification (RMT-4/5) and the one decision per
transfer that combines them. Plain values, no database: the service loads
what they need in sets, so a bulk import can call them line after line.
"""

from __future__ import annotations

import functools
import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import date, timedelta

from stdnum import luhn

from feecenter.errors import invalid
from feecenter.money import MAX_AMOUNT_FEN
from feecenter.remittances.transfer import Transfer

# ---------------------------------------------------------------- states

CREDITED = "credited"                          # 已充值
UNASSIGNED = "unassigned"                      # 待分配: right prefix, unknown or missing code
PENDING_SIGNATURE = "pending_signature"        # 待签署: payer not registered (RMT-4)
PENDING_CONFIRMATION = "pending_confirmation"  # 待确认: the account has no verified entity
REVIEW_FAILED = "review_failed"                # 审核不通过 (RMT-5), resubmittable
HELD = "held"                                  # 待人工处理: restricted memo, foreign currency
NOT_OURS = "not_ours"                          # 非本平台账号: recorded, reported, never credited
REFUNDED = "refunded"                          # 已退款: refunded to the payer (RMT-11) or
                                               # claimed by the rightful account (RMT-9)
LEGACY = "legacy"                              # 按表单入账: a legacy transfer credited by forms (RMT-10)
STATES = (CREDITED, UNASSIGNED, PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED,
          HELD, NOT_OURS, REFUNDED, LEGACY)
STATE_NAMES = {
    CREDITED: ("已充值", "credited"),
    UNASSIGNED: ("待分配", "unassigned"),
    PENDING_SIGNATURE: ("待签署", "pending signature"),
    PENDING_CONFIRMATION: ("待确认", "pending confirmation"),
    REVIEW_FAILED: ("审核不通过", "review failed"),
    HELD: ("待人工处理", "held for an operator"),
    NOT_OURS: ("非本平台账号", "not ours"),
    REFUNDED: ("已退款", "refunded"),
    LEGACY: ("按表单入账", "credited by legacy forms"),
}
PENDING = (PENDING_SIGNATURE, PENDING_CONFIRMATION)
REVERIFIABLE = (PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED)
UNRESOLVED = (UNASSIGNED, PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED, HELD)
# money of an account still on its way in (ACC-5: remittances pending confirmation,
# signature or review, and those an operator holds)
IN_PROGRESS = (PENDING_SIGNATURE, PENDING_CONFIRMATION, REVIEW_FAILED, HELD)
FLAG_AFTER = timedelta(days=1)  # RMT-2: unresolved this long after arrival -> flagged

CNY = "CNY"
SUB_PAY_TYPE = "bank-enterprice"  # Tencent's SubPayType of a corporate remittance (sic)
PAY_CHANNEL = "bank"

# ---------------------------------------------------------------- receiving numbers (RMT-1)

PREFIX_DIGITS = 15
CODE_DIGITS = 10
NUMBER_DIGITS = PREFIX_DIGITS + CODE_DIGITS
CODE_SPACE = 10 ** (CODE_DIGITS - 1)  # 9 digits chosen, the 10th is the Luhn check digit


def code_from(serial: int) -> str:
    """The 10-digit code of ``serial`` (0 <= serial < 10**9): its 9 digits and a Luhn
    check digit, so one mistyped digit or two swapped neighbours make an invalid code
    (unknown: unassigned), never another account's."""
    if not 0 <= serial < CODE_SPACE:
        raise ValueError(f"serial {serial} outside 0..{CODE_SPACE - 1}")
    body = f"{serial:0{CODE_DIGITS - 1}d}"
    return body + luhn.calc_check_digit(body)


def is_valid_code(code: str) -> bool:
    return len(code) == CODE_DIGITS and code.isascii() and code.isdigit() and luhn.is_valid(code)


def check_prefix(prefix: str) -> str:
    if len(prefix) != PREFIX_DIGITS or not (prefix.isascii() and prefix.isdigit()):
        raise ValueError(f"a platform account prefix is {PREFIX_DIGITS} digits, not {prefix!r}")
    return prefix


# ---------------------------------------------------------------- matching (RMT-3)

OURS, FOREIGN = "ours", "foreign"


@dataclass(frozen=True, slots=True)
class Payee:
    """Where a transfer was paid to: ``ours`` (one of our prefixes) with the code if it
    is a valid one (else None: missing, mistyped, a bare 15-digit account), or
    ``foreign`` (not one of our accounts)."""

    kind: str
    prefix: str | None = None
    code: str | None = None


_SEPARATORS = str.maketrans("", "", " -\u3000")


def read_payee(payee_account: str, prefixes: tuple[str, ...]) -> Payee:
    """Match the number paid to against the platform's prefixes. Spaces and hyphens,
    as banks print numbers, are ignored."""
    digits = payee_account.translate(_SEPARATORS)
    if not (digits.isascii() and digits.isdigit()):
        return Payee(FOREIGN)
    prefix = digits[:PREFIX_DIGITS]
    if len(digits) < PREFIX_DIGITS or prefix not in prefixes:
        return Payee(FOREIGN)
    code = digits[PREFIX_DIGITS:]
    return Payee(OURS, prefix, code if len(digits) == NUMBER_DIGITS and is_valid_code(code)
                 else None)


# ---------------------------------------------------------------- payer names (RMT-4)

@functools.lru_cache(maxsize=8192)  # pure; an import compares the same names line after line
def normalize_name(name: str) -> str:
    """A payer or entity name as compared: Unicode NFKC (full-width letters, digits and
    brackets become their ASCII forms: （） -> ()), every whitespace character removed,
    case folded. ``腾讯云计算（北京）有限责任公司`` equals ``腾讯云计算(北京)有限责任公司``."""
    folded = unicodedata.normalize("NFKC", name)
    return "".join(ch for ch in folded if not ch.isspace()).casefold()


@dataclass(frozen=True, slots=True)
class AccountPayers:
    """What payer verification needs of one account: its verified entity name (None:
    not verified) and its registered payer names, normalized."""

    entity_name: str | None
    payer_names: frozenset[str]
    cancelled: bool = False  # ACC-5: the account is cancelled; nothing is credited to it


def verify_payer(payer_name: str, account: AccountPayers) -> tuple[str, str | None]:
    """RMT-4: (credited, None) when the payer is the verified entity or a registered
    payer; otherwise the waiting state and its reason: pending_confirmation when the
    account has no verified entity to compare with, pending_signature when it has."""
    payer = normalize_name(payer_name)
    entity = normalize_name(account.entity_name) if account.entity_name else None
    if payer and (payer == entity or payer in account.payer_names):
        return CREDITED, None
    if entity is None:
        return PENDING_CONFIRMATION, (
            f"账号尚未完成实名认证，付款人「{payer_name}」待确认：请登记付款人（签署第三方付款协议）后申请重新审核"
            f" / the account has no verified entity: register the payer \"{payer_name}\" "
            "(sign the third-party payment agreement), then ask for re-verification")
    return PENDING_SIGNATURE, (
        f"付款人「{payer_name}」与实名主体「{account.entity_name}」不一致，且未登记为付款人：请签署第三方付款协议后申请重新审核"
        f" / the payer \"{payer_name}\" is neither the verified entity \"{account.entity_name}\" "
        "nor a registered payer: sign the third-party payment agreement, then ask for "
        "re-verification")


def review_failed_reason(payer_name: str) -> str:
    """RMT-5: the bank-side payer differs from what the account holds."""
    return (f"审核不通过：银行侧付款人名称「{payer_name}」与实名主体及已登记的付款人名称均不一致"
            f" / review failed: the payer name on the bank side, \"{payer_name}\", matches "
            "neither the verified entity nor any registered payer name")


# ---------------------------------------------------------------- holds (RMT-6/7)

def hold_reason(currency: str, memo: str, keywords: tuple[str, ...]) -> str | None:
    """Why a transfer may not be credited automatically, or None."""
    if currency != CNY:
        return (f"外币汇款（{currency}）不自动入账，待人工处理 / foreign currency ({currency}) is "
                "never credited automatically; it waits for an operator")
    folded = normalize_name(memo)
    for keyword in keywords:
        if keyword and normalize_name(keyword) in folded:
            return (f"附言含受限关键词「{keyword}」，待人工处理 / the memo contains the restricted "
                    f"keyword \"{keyword}\"; it waits for an operator")
    return None


ACCOUNT_CANCELLED_REASON = (
    "收款账号已注销，汇款不入账，待人工处理：须原路退款给付款人 / the account paid to is cancelled: "
    "the remittance is never credited; it waits for an operator to refund the payer")


def verify_account(payer_name: str, account: AccountPayers) -> tuple[str, str | None]:
    """The state a transfer of a known account moves to: held (an operator refunds
    it, RMT-11) when the account is cancelled (ACC-5), else ``verify_payer``."""
    if account.cancelled:
        return HELD, ACCOUNT_CANCELLED_REASON
    return verify_payer(payer_name, account)


# ---------------------------------------------------------------- one transfer's decision

@dataclass(frozen=True, slots=True)
class Decision:
    state: str
    uin: int | None
    reason: str | None


NOT_OURS_REASON = ("收款账号不属于本平台，不予入账 / the payee account is not one of the "
                   "platform's; never credited")
UNASSIGNED_REASON = ("收款账号的10位识别码缺失或无法识别，待人工分配 / the 10-digit code of the payee "
                     "number is missing or unknown; waits for an operator to assign it")


def decide(payee: Payee, uin: int | None, hold: str | None,
           account: AccountPayers | None, payer_name: str) -> Decision:
    """What happens to one transfer (RMT-3..7): not ours; held for a cancelled account
    (ACC-5: refunded, never credited); held (an operator decides, whoever it is
    for); unassigned (ours, no known code); then payer verification of the account
    ``uin`` (``account``: its names)."""
    if payee.kind != OURS:
        return Decision(NOT_OURS, None, NOT_OURS_REASON)
    if uin is not None and account is not None and account.cancelled:
        return Decision(HELD, uin, ACCOUNT_CANCELLED_REASON)
    if hold is not None:
        return Decision(HELD, uin, hold)
    if uin is None or account is None:
        return Decision(UNASSIGNED, None, UNASSIGNED_REASON)
    state, reason = verify_payer(payer_name, account)
    return Decision(state, uin, reason)


# ---------------------------------------------------------------- checking a line

MAX_TEXT = {"bank_reference": 64, "receiving_account": 40, "payee_account": 64,
            "payer_name": 200, "payer_account": 64, "payer_bank": 200, "memo": 500}


def check_transfer(transfer: Transfer) -> None:
    """Refuse a line that cannot be stored as given (naming the field and the line)."""
    where_zh, where_en = f"第 {transfer.line} 行", f"line {transfer.line}"
    for field, limit in MAX_TEXT.items():
        value = getattr(transfer, field)
        if not isinstance(value, str) or len(value) > limit or not _storable(value):
            raise invalid(field, f"{where_zh}：{field} 须为不超过 {limit} 个字符的文本",
                          f"{where_en}: {field} must be text of at most {limit} characters",
                          line=transfer.line)
    for field in ("bank_reference", "receiving_account"):
        if not getattr(transfer, field).strip():
            raise invalid(field, f"{where_zh}：缺少 {field}", f"{where_en}: {field} is missing",
                          line=transfer.line)
    if type(transfer.amount) is not int or not 0 < transfer.amount <= MAX_AMOUNT_FEN:
        raise invalid("amount", f"{where_zh}：金额须为正整数（最小单位）",
                      f"{where_en}: the amount must be a positive integer of minor units",
                      line=transfer.line)
    currency = transfer.currency
    if not (isinstance(currency, str) and len(currency) == 3 and currency.isascii()
            and currency.isalpha() and currency.isupper()):
        raise invalid("currency", f"{where_zh}：币种须为三位大写字母（ISO 4217）",
                      f"{where_en}: the currency must be three upper-case letters (ISO 4217)",
                      line=transfer.line)
    if not isinstance(transfer.value_date, date):
        raise invalid("value_date", f"{where_zh}：起息日无效", f"{where_en}: invalid value date",
                      line=transfer.line)


def _storable(text: str) -> bool:
    """No NUL (PostgreSQL refuses it in text) and no lone surrogate (not UTF-8)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def key_of(transfer: Transfer) -> tuple[str, str]:
    """What makes a transfer the same one again: the receiving account and the bank's
    reference (RMT-2)."""
    return transfer.receiving_account, transfer.bank_reference


def content_digest(transfer: Transfer) -> str:
    """What the bank said about the transfer (every field but where it was read):
    equal for a harmless re-import, different for a conflicting one."""
    fields = (transfer.bank_reference, transfer.receiving_account, transfer.payee_account,
              transfer.payer_name, transfer.payer_account, transfer.payer_bank,
              transfer.amount, transfer.currency, transfer.memo, transfer.value_date.isoformat())
    return hashlib.sha256(repr(fields).encode()).hexdigest()
