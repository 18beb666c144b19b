"""Bank statement parsers (RMT-2): SWIFT MT940 and ISO 20022 camt.053 files into
``Transfer`` records, and the signed push of one transfer (``push``).

    parsed = statements.parse(path_or_bytes)          # format detected, size checked, digest taken
    parsed.format, parsed.digest                      # "mt940" | "camt.053.001.02" | "camt.053.001.08"
    for transfer in parsed.transfers():               # credits only, streamed: memory constant in file size
        ...
    parsed.statements, parsed.currency, parsed.credit_count, …   # final once transfers() is exhausted

A bad file raises ``StatementRefused`` (an ``InvalidInput``) naming the line or
element. Size, format, DOCTYPE and encoding are refused by ``parse`` itself; what
can only be known while reading (a malformed line further on, an XSD violation,
balances that do not add up, a second currency) is raised from inside
``transfers()``, possibly after earlier transfers were yielded. The consumer
must therefore do all its work for one file in one database transaction and
roll it back on the error (docs/statements.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from feecenter.remittances.statements import camt_format, mt940_format
from feecenter.remittances.statements.common import (DEFAULT_MAX_BYTES, Source, StatementRefused,
                                                     StatementTotals, Where, digest, open_source)
from feecenter.remittances.transfer import Transfer

FORMATS = ("mt940", *camt_format.VERSIONS)

__all__ = ["DEFAULT_MAX_BYTES", "FORMATS", "ParsedStatement", "Source", "StatementRefused",
           "StatementTotals", "Where", "parse"]


@dataclass
class ParsedStatement:
    format: str
    digest: str                     # sha256 hex of the file's bytes: the import record's identity
    size: int
    _stream: BinaryIO = field(repr=False)
    statements: list[StatementTotals] = field(default_factory=list)
    complete: bool = False          # True once transfers() ran to the end: totals are final
    _started: bool = field(default=False, repr=False)

    def transfers(self) -> Iterator[Transfer]:
        """The file's credits in file order; can be iterated once. Raises
        StatementRefused mid-way for a fault found further on (see the module doc)."""
        if self._started:
            raise RuntimeError("a ParsedStatement's transfers can be read once")
        self._started = True
        try:
            if self.format == "mt940":
                source = mt940_format.read(self._stream, self.statements)
            else:
                source = camt_format.read(self._stream, self.format, self.statements)
            for transfer in source:
                self._same_currency(transfer.currency, Where(transfer.line))
                yield transfer
            for totals in self.statements:
                self._same_currency(totals.currency, Where(totals.line))
            if not self.statements:
                raise StatementRefused(self.format, None, "文件中没有对账单", "the file holds no statement")
            self.complete = True
        finally:
            self._stream.close()

    @property
    def bytes_read(self) -> int:
        """How far reading has got (for a progress bar; the parsers read ahead a little)."""
        return self.size if self._stream.closed else min(self._stream.tell(), self.size)

    def check(self) -> "ParsedStatement":
        """Read the whole file, discarding the transfers: a validation pass."""
        for _ in self.transfers():
            pass
        return self

    def _same_currency(self, currency: str, where: Where) -> None:
        first = self.statements[0].currency if self.statements else currency
        if currency != first:
            raise StatementRefused(self.format, where, f"文件混用币种：{first} 与 {currency}",
                                   f"the file mixes currencies: {first} and {currency}")

    # totals over the file's statements (final once ``complete``)
    @property
    def accounts(self) -> list[str]:
        return list(dict.fromkeys(s.account for s in self.statements))

    @property
    def currency(self) -> str | None:
        return self.statements[0].currency if self.statements else None

    @property
    def opening_balance(self) -> int | None:
        return self.statements[0].opening if self.statements else None

    @property
    def closing_balance(self) -> int | None:
        return self.statements[-1].closing if self.statements else None

    @property
    def credit_count(self) -> int:
        return sum(s.credit_count for s in self.statements)

    @property
    def credit_total(self) -> int:
        return sum(s.credit_total for s in self.statements)

    @property
    def debit_count(self) -> int:
        return sum(s.debit_count for s in self.statements)

    @property
    def debit_total(self) -> int:
        return sum(s.debit_total for s in self.statements)


def parse(source: Source, *, fmt: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> ParsedStatement:
    """Open a statement file (a path or its bytes): refuse it if it is over
    ``max_bytes`` (from its size, before reading), detect or check the format,
    refuse a DOCTYPE, and take its sha256. Nothing is parsed until
    ``transfers()`` is iterated."""
    if fmt is not None and fmt not in FORMATS and fmt != "camt.053":
        raise StatementRefused("format", None, f"未知的对账单格式：{fmt}（支持 {', '.join(FORMATS)}）",
                               f"unknown statement format {fmt} (supported: {', '.join(FORMATS)})")
    stream, size = open_source(source, fmt or "statement", max_bytes)
    try:
        head = stream.read(camt_format.HEAD_BYTES)
        stream.seek(0)
        detected = fmt or _detect(head)
        if detected != "mt940":
            detected = camt_format.check_prolog(stream, None if detected == "camt.053" else detected)
        return ParsedStatement(format=detected, digest=digest(stream), size=size, _stream=stream)
    except BaseException:
        stream.close()
        raise


def _detect(head: bytes) -> str:
    if camt_format.looks_like(head):
        return "camt.053"
    if mt940_format.looks_like(head):
        return "mt940"
    raise StatementRefused("format", None, "无法识别的对账单格式（支持 MT940 与 camt.053）",
                           "unrecognised statement format (MT940 and camt.053 are supported)")
