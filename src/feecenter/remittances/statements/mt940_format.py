"""SWIFT MT940 statements, read with the ``mt-940`` package in bounded chunks.

mt-940 parses a whole string; to keep memory constant in the file's size the
file is read line by line and each statement message (:20: … :62F:) is fed to
it in chunks of at most ``CHUNK`` transactions, every chunk carrying the
message's header again (:20: :25: :28C: :60F:). Balances are checked here:
opening + credits − debits = closing per message. Every tag is checked against
the MT940 tag set before mt-940 sees it, so a tag it would skip is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from typing import BinaryIO

import mt940

from feecenter.remittances.statements.common import StatementRefused, StatementTotals, Where, to_minor
from feecenter.remittances.statements.details86 import parse_details
from feecenter.remittances.transfer import Transfer

FMT = "mt940"
CHUNK = 500  # transactions per mt-940 call: memory ~ CHUNK × a line's objects
_TAG = re.compile(r":([0-9A-Z]{2,3}):")
HEADER_TAGS = {"20", "21", "25", "28", "28C", "13", "13D", "34F", "60F", "60M"}
LINE_TAGS = {"61", "86"}
TRAILER_TAGS = {"62F", "62M", "64", "65", "90C", "90D"}
KNOWN_TAGS = HEADER_TAGS | LINE_TAGS | TRAILER_TAGS
_NO_REFERENCE = {"", "NONREF", "NOTPROVIDED"}


def looks_like(head: bytes) -> bool:
    return bool(re.search(rb"(^|\n)\s*(\{1:[^\n]*)?:20:", head)) and b":25:" in head


class _Message:
    """One statement message being read: its header lines, the pending lines
    (:61: with their :86:), and the line number of each pending :61:."""

    def __init__(self, line: int):
        self.line = line
        self.header: list[str] = []
        self.pending: list[str] = []
        self.pending_lines: list[int] = []
        self.trailer: list[str] = []
        self.totals: StatementTotals | None = None
        self.account = ""


def read(stream: BinaryIO, totals_out: list[StatementTotals]) -> Iterator[Transfer]:
    """Credits of every message in ``stream`` as Transfers; each message's
    totals are appended to ``totals_out`` once it is checked."""
    message: _Message | None = None
    last_tag = None
    for number, line in _lines(stream):
        if not line.strip() or line.startswith("{") and "{4:" in line:
            continue
        if line.strip() in ("-", "-}"):
            if message:
                yield from _finish(message, totals_out)
            message, last_tag = None, None
            continue
        tag_match = _TAG.match(line)
        if tag_match is None:
            if last_tag is None:
                raise StatementRefused(FMT, Where(number), f"不是 MT940 标签行：{line[:40]!r}",
                                       f"not an MT940 tag line: {line[:40]!r}")
            _append(message, last_tag, line)
            continue
        tag = tag_match.group(1)
        if tag not in KNOWN_TAGS:
            raise StatementRefused(FMT, Where(number, f":{tag}:"), f"未知的 MT940 标签 :{tag}:",
                                   f"unknown MT940 tag :{tag}:")
        if tag == "20":
            if message:
                yield from _finish(message, totals_out)
            message = _Message(number)
        elif message is None:
            raise StatementRefused(FMT, Where(number, f":{tag}:"), f"标签 :{tag}: 出现在 :20: 之前",
                                   f"tag :{tag}: before any :20:")
        last_tag = tag
        if tag in HEADER_TAGS or tag == "61" and message.trailer:
            if message.pending or message.trailer:
                raise StatementRefused(FMT, Where(number, f":{tag}:"), f"标签 :{tag}: 位置错误",
                                       f"tag :{tag}: out of place")
            message.header.append(line)
        elif tag == "86" and message.trailer:  # information for the account owner after :62F:
            last_tag = "86-info"
            continue
        elif tag in LINE_TAGS and not message.trailer:
            if tag == "61":
                if len(message.pending_lines) >= CHUNK:
                    yield from _flush(message, final=False)
                message.pending_lines.append(number)
            elif not message.pending:
                last_tag = "86-info"  # information for the account owner, not about a line
                continue
            message.pending.append(line)
        else:
            message.trailer.append(line)
    if message:
        yield from _finish(message, totals_out)


def _append(message: _Message, last_tag: str, line: str) -> None:
    if last_tag == "86-info":
        return
    if last_tag in HEADER_TAGS:
        message.header.append(line)
    elif last_tag in LINE_TAGS and not message.trailer:
        message.pending.append(line)
    else:
        message.trailer.append(line)


def _lines(stream: BinaryIO) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = raw.decode("gb18030")  # Chinese banks' files are UTF-8 or GBK
            except UnicodeDecodeError:
                raise StatementRefused(FMT, Where(number), "无法识别的字符编码（应为 UTF-8 或 GBK）",
                                       "unknown character encoding (expected UTF-8 or GBK)") from None
        yield number, text.rstrip("\r\n").lstrip("\ufeff")


def _finish(message: _Message, totals_out: list[StatementTotals]) -> Iterator[Transfer]:
    yield from _flush(message, final=True)
    if message.totals is None:
        raise StatementRefused(FMT, Where(message.line, ":20:"), "报文缺少 :25: 或 :60F: 期初余额",
                               "the message has no :25: or opening balance :60F:")
    message.totals.check_balance(FMT, Where(message.line, ":20: … :62F:"))
    totals_out.append(message.totals)


def _flush(message: _Message, *, final: bool) -> Iterator[Transfer]:
    """Feed the header + pending lines (+ the trailer when ``final``) to mt-940."""
    lines, message.pending = message.pending, []
    numbers, message.pending_lines = message.pending_lines, []
    text = "\n".join(message.header + lines + (message.trailer if final else [])) + "\n"
    parsed = _parse(text, message.line, numbers)
    _start_totals(message, parsed.data)
    if final:
        _close_totals(message, parsed.data)
    if len(parsed) != len(numbers):
        raise StatementRefused(FMT, Where(message.line, ":20:"), f":61: 行数 {len(numbers)} 与解析结果 {len(parsed)} 不符",
                               f"{len(numbers)} :61: lines but {len(parsed)} parsed")
    transfers = [_transfer(tx.data, message, number) for tx, number in zip(parsed, numbers)]
    # A Transaction and its Transactions refer to each other: emptying the list breaks
    # the cycle so the chunk is freed now, not whenever the cyclic collector runs.
    parsed.transactions.clear()
    yield from (transfer for transfer in transfers if transfer is not None)


def _parse(text: str, first_line: int, numbers: list[int]):
    transactions = mt940.models.Transactions(processors={"post_transaction_details": []})
    try:
        transactions.parse(text)
    except RuntimeError as error:  # mt-940: "Unable to parse <tag> from '<text>'"
        bad = str(error.args[2]) if len(error.args) > 2 else str(error)
        raise StatementRefused(FMT, _where_of(bad, text, first_line, numbers), f"无法解析：{bad[:60]!r}",
                               f"cannot parse {bad[:60]!r}") from None
    except (ValueError, ArithmeticError) as error:
        raise StatementRefused(FMT, Where(first_line, ":20:"), f"格式错误：{error}",
                               f"malformed: {error}") from None
    return transactions


def _where_of(bad: str, text: str, first_line: int, numbers: list[int]) -> Where:
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(":61:") and bad.split("\n")[0] in line:
            position = sum(1 for previous in lines[:index] if previous.startswith(":61:"))
            if position < len(numbers):
                return Where(numbers[position], ":61:")
    return Where(first_line, ":20:")


def _start_totals(message: _Message, data: dict) -> None:
    if message.totals is not None:
        return
    opening = data.get("final_opening_balance") or data.get("intermediate_opening_balance")
    account = (data.get("account_identification") or "").strip()
    if opening is None or not account:
        raise StatementRefused(FMT, Where(message.line, ":20:"), "报文缺少 :25: 账号或 :60F: 期初余额",
                               "the message has no :25: account or :60F: opening balance")
    currency = opening.amount.currency
    where = Where(message.line, ":20: … :60F:")
    message.account = account
    message.totals = StatementTotals(account=account, currency=currency, line=message.line,
                                     opening=to_minor(opening.amount.amount, currency, FMT, where))


def _close_totals(message: _Message, data: dict) -> None:
    closing = data.get("final_closing_balance") or data.get("intermediate_closing_balance")
    if closing is None:
        return
    where = Where(message.line, ":20: … :62F:")
    if closing.amount.currency != message.totals.currency:
        raise StatementRefused(FMT, where, "期末余额币种与期初不同", "the closing balance is in another currency")
    message.totals.closing = to_minor(closing.amount.amount, closing.amount.currency, FMT, where)


def _transfer(data: dict, message: _Message, number: int) -> Transfer | None:
    where = Where(number, ":61:")
    totals = message.totals
    amount = data["amount"]
    if amount.currency != totals.currency:
        raise StatementRefused(FMT, where, f"币种 {amount.currency} 与报文币种 {totals.currency} 不同",
                               f"currency {amount.currency} differs from the message's {totals.currency}")
    minor = to_minor(amount.amount, amount.currency, FMT, where)
    if minor == 0:
        raise StatementRefused(FMT, where, "金额为零", "the amount is zero")
    status = data.get("status") or ""
    if status != "C":  # debits and reversals (RC, RD): counted in the balance, never transfers
        totals.debit_count += 1
        totals.debit_total += minor
        return None
    if minor < 0:
        raise StatementRefused(FMT, where, "贷记金额为负数", "a credit with a negative amount")
    reference = _reference(data)
    if not reference:
        raise StatementRefused(FMT, where, "贷记行缺少银行流水号（// 之后）或客户参考号",
                               "a credit without a bank reference (after //) or customer reference")
    totals.credit_count += 1
    totals.credit_total += minor
    details = parse_details(data.get("transaction_details"))
    value = data["date"]
    return Transfer(bank_reference=reference, receiving_account=message.account,
                    payee_account=details.payee or message.account, payer_name=details.payer_name,
                    payer_account=details.payer_account, payer_bank=details.payer_bank, amount=minor,
                    currency=amount.currency, memo=details.memo,
                    value_date=date(value.year, value.month, value.day), line=number)


def _reference(data: dict) -> str:
    for key in ("bank_reference", "customer_reference"):
        value = (data.get(key) or "").strip()
        if value.upper() not in _NO_REFERENCE:
            return value
    return ""
