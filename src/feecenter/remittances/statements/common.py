"""What every statement format shares: the refusal error, reading a source
within the size limit, the file digest, amounts in minor units, and the
per-statement totals that the balance check adds up.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import BinaryIO, Union

from feecenter.errors import InvalidInput

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # a day's statement of a busy account is a few MB
Source = Union[str, os.PathLike, bytes, bytearray, memoryview]

# ISO 4217 minor units where they are not 2 (the currencies a Chinese bank account may see)
_MINOR_DIGITS = {"JPY": 0, "KRW": 0, "VND": 0, "ISK": 0, "CLP": 0, "XOF": 0, "XAF": 0,
                 "BHD": 3, "KWD": 3, "OMR": 3, "JOD": 3, "TND": 3, "LYD": 3, "IQD": 3}
_MAX_MINOR = 10**15  # 15 digits: the longest amount MT940 (15d) and camt (18 digits, 5 fraction) allow in practice


@dataclass(frozen=True, slots=True)
class Where:
    """Where a fault is: a line of the file and, for XML or an MT940 tag, the element."""

    line: int = 0
    element: str = ""

    def zh(self) -> str:
        text = f"第 {self.line} 行" if self.line else ""
        return f"{text}（{self.element}）" if self.element and text else text or self.element

    def en(self) -> str:
        text = f"line {self.line}" if self.line else ""
        return f"{text} ({self.element})" if self.element and text else text or self.element


class StatementRefused(InvalidInput):
    """A statement file (or pushed transfer) that is refused as a whole: ``field``
    names the format, ``where`` the line (MT940) or element and line (XML)."""

    code = "StatementRefused"

    def __init__(self, field: str, where: "Where | None", zh: str, en: str):
        where = where or Where()
        prefix_zh, prefix_en = (where.zh() + "：", where.en() + ": ") if (where.line or where.element) else ("", "")
        super().__init__(prefix_zh + zh, prefix_en + en, field=field, line=where.line,
                         element=where.element)
        self.where = where


def minor_digits(currency: str) -> int:
    return _MINOR_DIGITS.get(currency, 2)


def to_minor(amount: Decimal, currency: str, field: str, where: "Where") -> int:
    """A Decimal amount of ``currency`` -> integer minor units, refusing more
    decimals than the currency has and absurd sizes (never rounds)."""
    try:
        scaled = amount.scaleb(minor_digits(currency))
        exact = scaled == scaled.to_integral_value()
    except InvalidOperation:
        exact = False
    if not exact:
        raise StatementRefused(field, where, f"金额 {amount} 的小数位超出 {currency} 的最小单位",
                               f"amount {amount} has more decimals than {currency} allows")
    minor = int(scaled)
    if abs(minor) >= _MAX_MINOR:
        raise StatementRefused(field, where, f"金额过大：{amount}", f"amount is too large: {amount}")
    return minor


@dataclass
class StatementTotals:
    """One statement of a file (an MT940 :20: message, a camt Stmt): its
    balances and what its entries add up to, all in minor units."""

    account: str
    currency: str
    line: int
    opening: int | None = None
    closing: int | None = None
    credit_count: int = 0      # credits returned as transfers
    credit_total: int = 0
    debit_count: int = 0       # debits, and reversals of either sign: counted, never returned
    debit_total: int = 0       # signed sum of everything not returned (debits negative)
    extra: dict = field(default_factory=dict)

    def check_balance(self, fmt: str, where: "Where") -> None:
        if self.opening is None or self.closing is None:
            raise StatementRefused(fmt, where, "缺少期初或期末余额，无法核对",
                                   "the opening or closing balance is missing: the statement cannot be checked")
        moved = self.credit_total + self.debit_total
        if self.opening + moved != self.closing:
            raise StatementRefused(
                fmt, where,
                f"余额不平：期初 {self.opening} + 发生额 {moved} ≠ 期末 {self.closing}（最小货币单位）",
                f"balances do not add up: opening {self.opening} + movements {moved} "
                f"!= closing {self.closing} (minor units)")


def open_source(source: Source, fmt_field: str, max_bytes: int) -> tuple[BinaryIO, int]:
    """(binary stream, size) of a path or bytes, refusing a file over ``max_bytes``
    from its size alone, before a byte of it is read."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        size = len(source)
        _check_size(size, max_bytes, fmt_field)
        return io.BytesIO(bytes(source)), size
    path = Path(source)
    size = path.stat().st_size
    _check_size(size, max_bytes, fmt_field)
    return path.open("rb"), size


def _check_size(size: int, max_bytes: int, fmt_field: str) -> None:
    if size > max_bytes:
        raise StatementRefused(fmt_field, None, f"文件过大：{size} 字节，上限 {max_bytes} 字节",
                               f"file too large: {size} bytes, the limit is {max_bytes}")
    if size == 0:
        raise StatementRefused(fmt_field, None, "文件为空", "the file is empty")


def digest(stream: BinaryIO) -> str:
    """sha256 hex of the whole stream, read in 1 MB blocks; rewinds it."""
    stream.seek(0)
    hasher = hashlib.sha256()
    for block in iter(lambda: stream.read(1 << 20), b""):
        hasher.update(block)
    stream.seek(0)
    return hasher.hexdigest()
