"""ISO 20022 camt.053 (.001.02 and .001.08) statements, streamed with lxml.

Hardened: a DOCTYPE or entity declaration is refused before parsing; the parser
loads no DTD, resolves no entity, uses no network and keeps libxml2's size
limits (no huge_tree). The document is validated against the official XSD
shipped in ``xsd/`` while it streams (iterparse ``schema=``); each ``Ntry`` is
handled at its end tag and cleared, so memory stays constant in the file size.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import BinaryIO

from lxml import etree

from feecenter.remittances.statements.common import StatementRefused, StatementTotals, Where, to_minor
from feecenter.remittances.transfer import Transfer

VERSIONS = ("camt.053.001.02", "camt.053.001.08")
_NS_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"
_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
_ROOT_NS = re.compile(rb"<(?:\w+:)?Document\b[^>]*\bxmlns(?::\w+)?\s*=\s*[\"']" + re.escape(_NS_PREFIX.encode())
                      + rb"(camt\.\d{3}\.\d{3}\.\d{2})[\"']")
HEAD_BYTES = 64 * 1024


def detect_version(head: bytes) -> str | None:
    found = _ROOT_NS.search(head)
    return found.group(1).decode() if found else None


def looks_like(head: bytes) -> bool:
    return b"<" in head[:1024] and (b"BkToCstmrStmt" in head or detect_version(head) is not None
                                     or head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"))


@cache
def schema(version: str) -> etree.XMLSchema:
    path = resources.files("feecenter.remittances.statements") / "xsd" / f"{version}.xsd"
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.XMLSchema(etree.parse(str(path), parser))


def check_prolog(stream: BinaryIO, version_hint: str | None = None) -> str:
    """Refuse a DOCTYPE/entity declaration and anything but camt.053 .02/.08;
    returns the version. Reads only the head: a DOCTYPE must precede the root."""
    head = stream.read(HEAD_BYTES)
    stream.seek(0)
    root = re.search(rb"<(?:\w+:)?Document\b", head)
    prolog = head if root is None else head[:root.start()]
    if _DECLARATION.search(prolog) or _DECLARATION.search(head):
        found = _DECLARATION.search(head)
        line = head[:found.start()].count(b"\n") + 1
        raise StatementRefused("camt.053", Where(line, "<!DOCTYPE>"),
                               "XML 含 DOCTYPE 或实体声明，拒绝处理",
                               "the XML has a DOCTYPE or entity declaration: refused")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise StatementRefused("camt.053", None, "XML 必须是 UTF-8 编码", "the XML must be UTF-8")
    version = detect_version(head)
    if version not in VERSIONS:
        raise StatementRefused("camt.053", Where(0, "Document"),
                               f"不支持的 XML 报文：{version or '未知命名空间'}（支持 {', '.join(VERSIONS)}）",
                               f"unsupported XML message: {version or 'unknown namespace'} "
                               f"(supported: {', '.join(VERSIONS)})")
    if version_hint and version_hint != version:
        raise StatementRefused("camt.053", Where(0, "Document"), f"报文版本 {version} 与指定的 {version_hint} 不符",
                               f"the message is {version}, not {version_hint}")
    return version


def read(stream: BinaryIO, version: str, totals_out: list[StatementTotals]) -> Iterator[Transfer]:
    ns = "{" + _NS_PREFIX + version + "}"
    tags = [ns + name for name in ("Acct", "Bal", "Ntry", "Stmt")]
    events = etree.iterparse(stream, events=("end",), tag=tags, schema=schema(version),
                             resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_comments=True,
                             remove_pis=True)
    reader = _Reader(ns, version)
    try:
        for _, element in events:
            reader.last_line = element.sourceline or reader.last_line
            yield from reader.handle(element, totals_out)
    except etree.XMLSyntaxError as error:  # schema violations during iterparse arrive as this too
        raise _invalid(error, version, reader.last_line) from None


def _invalid(error: etree.XMLSyntaxError, version: str, last_line: int) -> StatementRefused:
    """libxml2 gives schema violations met while streaming no line: name the
    element from the message and the line of the last element handed to us
    before it (the fault is at or after it; iterparse reads ahead in blocks)."""
    message = re.sub(r"\{[^}]*\}", "", str(error))[:300]
    line = getattr(error, "lineno", 0) or 0
    named = re.search(r"Element '([^']+)'", message)
    element = f"{named.group(1)}, XSD" if named else "XSD"
    if not line and last_line:
        message += f" (at or after line {last_line})"
        line = last_line
    return StatementRefused(version, Where(line, element), f"XML 无效或不符合 {version}.xsd：{message}",
                            f"invalid XML or not valid against {version}.xsd: {message}")


class _Reader:
    def __init__(self, ns: str, version: str):
        self.ns, self.version = ns, version
        self.totals: StatementTotals | None = None
        self.currency: str | None = None
        self.last_line = 0
        self._paths: dict[str, str] = {}
        v08 = version.endswith(".08")
        self._status_path = "Sts/Cd" if v08 else "Sts"
        self._payer_name_paths = ("Dbtr/Pty/Nm",) if v08 else ("Dbtr/Nm",)
        self._bank_paths = ("BICFI" if v08 else "BIC", "Nm", "ClrSysMmbId/MmbId")

    def q(self, path: str) -> str:
        qualified = self._paths.get(path)
        if qualified is None:
            qualified = self._paths[path] = "/".join(self.ns + part for part in path.split("/"))
        return qualified

    def text(self, element, path: str) -> str:
        return (element.findtext(self.q(path)) or "").strip()

    def handle(self, element, totals_out: list[StatementTotals]) -> Iterator[Transfer]:
        parent = element.getparent()
        if parent is None or parent.tag != self.ns + "Stmt":
            if element.tag == self.ns + "Stmt":
                self._end_statement(element, totals_out)
            return
        name = element.tag[len(self.ns):]
        if name == "Acct":
            self._start_statement(element)
        elif name == "Bal":
            self._balance(element)
        elif name == "Ntry":
            transfer = self._entry(element)
            if transfer is not None:
                yield transfer
            element.clear(keep_tail=False)
            while element.getprevious() is not None and element.getprevious().tag == self.ns + "Ntry":
                del parent[parent.index(element) - 1]

    def where(self, element, name: str) -> Where:
        return Where(element.sourceline or 0, name)

    def _start_statement(self, acct) -> None:
        account = self.text(acct, "Id/IBAN") or self.text(acct, "Id/Othr/Id")
        currency = self.text(acct, "Ccy")
        if currency:
            self._same_currency(currency, acct, "Stmt/Acct/Ccy")
        self.totals = StatementTotals(account=account, currency=currency, line=acct.sourceline)

    def _same_currency(self, currency: str, element, name: str) -> None:
        if self.currency is None:
            self.currency = currency
        elif currency != self.currency:
            raise StatementRefused(self.version, self.where(element, name),
                                   f"文件混用币种：{self.currency} 与 {currency}",
                                   f"the file mixes currencies: {self.currency} and {currency}")
        if self.totals is not None and not self.totals.currency:
            self.totals.currency = currency

    def _amount(self, element, name: str) -> int:
        amt = element.find(self.ns + "Amt")
        currency = amt.get("Ccy", "")
        self._same_currency(currency, element, f"{name}/Amt")
        try:
            value = Decimal(amt.text.strip())
        except (InvalidOperation, AttributeError):
            raise StatementRefused(self.version, self.where(element, name), "金额格式错误",
                                   "malformed amount") from None
        minor = to_minor(value, currency, self.version, self.where(element, name))
        return -minor if self.text(element, "CdtDbtInd") == "DBIT" else minor

    def _balance(self, bal) -> None:
        kind = self.text(bal, "Tp/CdOrPrtry/Cd")
        if kind not in ("OPBD", "PRCD", "CLBD"):
            return
        amount = self._amount(bal, "Bal")
        if kind == "CLBD":
            self.totals.closing = amount
        elif self.totals.opening is None or kind == "OPBD":
            self.totals.opening = amount

    def _entry(self, ntry) -> Transfer | None:
        where = self.where(ntry, "Ntry")
        amount = self._amount(ntry, "Ntry")
        if amount == 0:
            raise StatementRefused(self.version, where, "金额为零", "the amount is zero")
        totals = self.totals
        status = self.text(ntry, self._status_path)
        if status and status != "BOOK":  # pending or information only: not in the booked balances
            totals.extra["not_booked"] = totals.extra.get("not_booked", 0) + 1
            return None
        reversal = self.text(ntry, "RvslInd").lower() in ("true", "1")
        if amount < 0 or reversal:  # debits and reversals: counted in the balance, never transfers
            totals.debit_count += 1
            totals.debit_total += amount
            return None
        details = ntry.findall(self.q("NtryDtls/TxDtls"))
        if len(details) > 1:
            raise StatementRefused(self.version, where, f"批量贷记（{len(details)} 笔明细）暂不支持，请银行按笔出具对账单",
                                   f"a batched credit entry ({len(details)} TxDtls) is not supported: "
                                   "ask the bank for one entry per transfer")
        tx = details[0] if details else None
        reference = self._reference(ntry, tx)
        if not reference:
            raise StatementRefused(self.version, where, "贷记条目缺少银行参考号（AcctSvcrRef / NtryRef）",
                                   "a credit entry without a bank reference (AcctSvcrRef / NtryRef)")
        totals.credit_count += 1
        totals.credit_total += amount
        parties = tx.find(self.q("RltdPties")) if tx is not None else None
        agent = tx.find(self.q("RltdAgts/DbtrAgt/FinInstnId")) if tx is not None else None
        memo = " ".join(u.text.strip() for u in tx.iterfind(self.q("RmtInf/Ustrd")) if u.text) if tx is not None else ""
        return Transfer(bank_reference=reference, receiving_account=totals.account,
                        payee_account=self._account(parties, "CdtrAcct") or totals.account,
                        payer_name=self._first(parties, self._payer_name_paths),
                        payer_account=self._account(parties, "DbtrAcct"),
                        payer_bank=self._first(agent, self._bank_paths),
                        amount=amount, currency=self.currency, memo=memo,
                        value_date=self._value_date(ntry, where), line=ntry.sourceline)

    def _first(self, element, paths: tuple[str, ...]) -> str:
        if element is None:
            return ""
        for path in paths:
            value = self.text(element, path)
            if value:
                return value
        return ""

    def _account(self, parties, which: str) -> str:
        return self._first(parties, (f"{which}/Id/IBAN", f"{which}/Id/Othr/Id"))

    def _reference(self, ntry, tx) -> str:
        candidates = ((tx, "Refs/AcctSvcrRef"), (ntry, "AcctSvcrRef"), (ntry, "NtryRef"),
                      (tx, "Refs/EndToEndId"))
        for element, path in candidates:
            value = self.text(element, path) if element is not None else ""
            if value and value.upper() != "NOTPROVIDED":
                return value
        return ""

    def _value_date(self, ntry, where: Where) -> date:
        text = (self.text(ntry, "ValDt/Dt") or self.text(ntry, "ValDt/DtTm")
                or self.text(ntry, "BookgDt/Dt") or self.text(ntry, "BookgDt/DtTm"))
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            raise StatementRefused(self.version, where, "缺少起息日或记账日", "no value or booking date") from None

    def _end_statement(self, stmt, totals_out: list[StatementTotals]) -> None:
        totals = self.totals
        totals.check_balance(self.version, self.where(stmt, "Stmt"))
        totals_out.append(totals)
        self.totals = None
        stmt.clear(keep_tail=False)
        parent = stmt.getparent()
        while stmt.getprevious() is not None and stmt.getprevious().tag == self.ns + "Stmt":
            del parent[parent.index(stmt) - 1]
