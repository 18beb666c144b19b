"""Bank statement parsers (RMT-2): real MT940 and camt.053 files from public
parser repositories (tests/data/README.md) checked against totals computed here
from the files' own balance fields, generated files in both camt versions, and
every refusal with the line or element it names."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from datetime import date
from pathlib import Path

import pytest

from feecenter.errors import InvalidInput
from feecenter.remittances import statements
from feecenter.remittances.statements import StatementRefused

DATA = Path(__file__).parent / "data" / "statements"
_spec = importlib.util.spec_from_file_location(
    "statement_files", Path(__file__).parent.parent / "benchmarks" / "statement_files.py")
statement_files = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("statement_files", statement_files)
_spec.loader.exec_module(statement_files)

pytestmark = pytest.mark.spec("RMT-2")


def read_all(source, **kwargs):
    parsed = statements.parse(source, **kwargs)
    return parsed, list(parsed.transfers())


def refused(source, **kwargs) -> StatementRefused:
    with pytest.raises(StatementRefused) as caught:
        read_all(source, **kwargs)
    assert isinstance(caught.value, InvalidInput)
    return caught.value


# --- real files --------------------------------------------------------------

def test_real_mt940_sepa_statements_give_their_credits_and_balance():
    parsed, transfers = read_all(DATA / "mt940_sepa_excerpt.sta")
    assert parsed.format == "mt940" and parsed.currency == "EUR"
    assert parsed.accounts == ["50880050/0194777100888", "50880050/0194779500888"]
    # from the file's own balance fields: D970499,90 -> D1455749,85 and C3192675,04 -> C4242675,04
    first, second = parsed.statements
    assert (first.opening, first.closing) == (-97_049_990, -145_574_985)
    assert (second.opening, second.closing) == (319_267_504, 424_267_504)
    assert [t.amount for t in transfers] == [1_500_005, 25_000_000, 30_000_000, 50_000_000]
    assert parsed.credit_total == 106_500_005 and parsed.debit_count == 1
    assert parsed.debit_total == -50_025_000
    first_credit = transfers[0]
    assert first_credit.bank_reference == "0724710290621954"
    assert first_credit.receiving_account == first_credit.payee_account == "50880050/0194777100888"
    assert first_credit.payer_bank == "PBNKDEFF100"
    assert first_credit.payer_account == "DE42100100100043921105"
    assert first_credit.payer_name.startswith("Richter Renate")
    assert first_credit.value_date == date(2007, 9, 4) and first_credit.line == 5
    assert transfers[1].memo == "SVWZ+TO13 TF20010 MINT 20010 2007-08.30"
    assert parsed.complete


def test_real_mt940_with_debits_only_counts_them_and_returns_nothing():
    parsed, transfers = read_all(DATA / "mt940_generic.sta")
    assert transfers == []
    assert [(s.opening, s.closing) for s in parsed.statements] == [(10_000, 9_000), (9_000, 8_000)]
    assert parsed.debit_count == 2 and parsed.debit_total == -2_000
    assert parsed.opening_balance == 10_000 and parsed.closing_balance == 8_000


def test_real_mt940_with_a_non_swift_tag_is_refused_at_its_line():
    error = refused(DATA / "mt940_sberbank.sta")
    assert ":NS:" in error.message_en and "line 4" in error.message_en
    assert error.message_zh.startswith("第 4 行")


def test_real_camt053_v02_two_statements():
    parsed, transfers = read_all(DATA / "camt053_v2_multi_statement.xml")
    assert parsed.format == "camt.053.001.02"
    assert parsed.accounts == ["NL26VAYB8060476890"]
    assert [(s.opening, s.closing) for s in parsed.statements] == [(1_815, 2_700), (2_700, 2_000)]
    assert parsed.credit_count == 1 and parsed.debit_count == 1
    (transfer,) = transfers
    assert transfer.amount == 885 and transfer.currency == "EUR"
    assert transfer.payee_account == "NL56AGDH9619008421"       # TxDtls/RltdPties/CdtrAcct
    assert transfer.receiving_account == "NL26VAYB8060476890"
    assert transfer.bank_reference == "000000001"                # no AcctSvcrRef/NtryRef: EndToEndId
    assert transfer.memo == "Transaction Description 1"
    assert transfer.value_date == date(2015, 1, 2)


def test_real_camt053_v08_with_balances_in_four_currencies_is_refused():
    error = refused(DATA / "camt053_v8_mixed_currencies.xml")
    assert "EUR" in error.message_en and "SEK" in error.message_en
    assert error.details["element"] == "Bal/Amt" and error.details["line"] == 74


def test_the_digest_is_the_sha256_of_the_bytes():
    raw = (DATA / "mt940_generic.sta").read_bytes()
    assert statements.parse(raw).digest == hashlib.sha256(raw).hexdigest()
    assert statements.parse(DATA / "mt940_generic.sta").digest == hashlib.sha256(raw).hexdigest()


# --- generated files ---------------------------------------------------------

@pytest.mark.parametrize("version", ["camt.053.001.02", "camt.053.001.08"])
def test_generated_camt053_both_versions(tmp_path, version):
    path = tmp_path / "s.xml"
    expected = statement_files.write_camt053(path, 1_200, version)
    parsed, transfers = read_all(path)
    assert parsed.format == version
    assert len(transfers) == expected.credit_count == parsed.credit_count
    assert sum(t.amount for t in transfers) == expected.credit_total
    assert parsed.debit_total == expected.debit_total
    assert (parsed.opening_balance, parsed.closing_balance) == (expected.opening, expected.closing)
    first = transfers[0]
    assert first.payee_account == statement_files.dedicated_number(0)
    assert first.payer_name == "示例科技有限公司0" and first.payer_bank == "ICBKCNBJSHI"
    assert first.memo == "充值 0" and first.bank_reference == "B000000000000"


def test_generated_mt940_spanning_several_chunks(tmp_path):
    path = tmp_path / "s.sta"
    expected = statement_files.write_mt940(path, 1_234)  # > 2 chunks of 500
    parsed, transfers = read_all(path)
    assert len(transfers) == expected.credit_count
    assert sum(t.amount for t in transfers) == expected.credit_total
    assert parsed.closing_balance == expected.closing and parsed.debit_total == expected.debit_total
    assert [t.line for t in transfers[:2]] == [5, 7]
    assert transfers[0].payee_account == statement_files.dedicated_number(0)
    assert transfers[0].payer_account == "6222020200112233000"
    assert transfers[0].payer_bank == "中国工商银行上海分行"


# --- MT940 :86: convention and references ------------------------------------

HEAD = ":20:S1\n:25:310066726018010\n:28C:1/1\n:60F:C261201CNY100,00\n"


def mt940(body: str, closing: str = "C261201CNY200,00") -> bytes:
    return (HEAD + body + f":62F:{closing}\n-\n").encode()


def test_platform_86_convention_and_free_text_fallback():
    data = mt940(":61:2612011201C60,00NTRFNONREF//B1\n"
                 ":86:/PAYEE/3100667260180100000000042/PAYER/上海示例有限公司/PACC/6222020200112233\n"
                 "/PBNK/中国银行/MEMO/货款/12月\n"
                 ":61:2612011201C40,00NTRFREF2\n:86:付款人户名：北京示例科技有限公司；用途：充值\n")
    _, (structured, free) = read_all(data)
    assert structured.payee_account == "3100667260180100000000042"
    assert (structured.payer_name, structured.payer_account, structured.payer_bank) == (
        "上海示例有限公司", "6222020200112233", "中国银行")
    assert structured.memo == "货款/12月" and structured.amount == 6_000
    assert free.payee_account == "310066726018010" and free.bank_reference == "REF2"
    assert free.payer_name == "北京示例科技有限公司" and "用途：充值" in free.memo


def test_gbk_crlf_file_in_a_swift_envelope():
    text = ("{1:F01BKCHCNBJAXXX0000000000}{2:O9401200261201BKCHCNBJAXXX00000000002612011200N}{4:\r\n"
            + HEAD.replace("\n", "\r\n")
            + ":61:2612011201C100,00NTRFNONREF//B9\r\n:86:/PAYER/广州示例贸易有限公司/MEMO/预付款\r\n"
            + ":62F:C261201CNY200,00\r\n-}\r\n")
    parsed, (transfer,) = read_all(text.encode("gbk"))
    assert parsed.format == "mt940" and parsed.closing_balance == 20_000
    assert transfer.payer_name == "广州示例贸易有限公司" and transfer.memo == "预付款"
    assert transfer.bank_reference == "B9" and transfer.line == 6


def test_a_credit_without_any_reference_is_refused():
    error = refused(mt940(":61:2612011201C100,00NTRFNONREF\n:86:x\n"))
    assert error.details["line"] == 5 and "reference" in error.message_en


# --- refusals -----------------------------------------------------------------

def test_malformed_61_is_refused_with_its_line():
    error = refused(mt940(":61:2612011201C100,00NTRFNONREF//B1\n:86:x\n:61:garbage\n:86:y\n"))
    assert error.details["line"] == 7 and ":61:" in error.message_en


def test_unknown_mt940_tag_is_refused():
    error = refused(mt940(":61:2612011201C100,00NTRFNONREF//B1\n:99X:what\n"))
    assert "unknown MT940 tag :99X:" in error.message_en and error.details["line"] == 6


def test_mt940_line_after_the_closing_balance_is_refused():
    data = mt940(":61:2612011201C100,00NTRFNONREF//B1\n").replace(
        b"-\n", b":61:2612011201C5,00NTRFNONREF//B2\n-\n")
    error = refused(data)
    assert error.details == {"line": 7, "element": ":61:"} and "out of place" in error.message_en


def test_mt940_balances_that_do_not_add_up():
    error = refused(mt940(":61:2612011201C99,99NTRFNONREF//B1\n:86:x\n"))
    assert "do not add up" in error.message_en and "opening 10000" in error.message_en
    assert error.details["line"] == 1


def test_mt940_zero_amount():
    error = refused(mt940(":61:2612011201C0,00NTRFNONREF//B1\n:86:x\n", "C261201CNY100,00"))
    assert error.details["line"] == 5 and "zero" in error.message_en


def test_mt940_file_mixing_currencies():
    second = ":20:S2\n:25:310066726018010\n:28C:2/1\n:60F:C261201USD1,00\n:62F:C261201USD1,00\n-\n"
    error = refused(mt940(":61:2612011201C100,00NTRFNONREF//B1\n:86:x\n") + second.encode())
    assert "mixes currencies" in error.message_en and "CNY" in error.message_en


def test_camt_failing_the_xsd_names_the_line(tmp_path):
    path = tmp_path / "s.xml"
    statement_files.write_camt053(path, 5, "camt.053.001.08")
    text = path.read_text().replace("<CdtDbtInd>CRDT</CdtDbtInd><Sts>", "<CdtDbtInd>CREDIT</CdtDbtInd><Sts>", 1)
    error = refused(text.encode())
    assert error.field == "camt.053.001.08" and "xsd" in error.message_en
    assert error.details["element"] == "CdtDbtInd, XSD" and "CREDIT" in error.message_en
    # libxml2 gives no line while streaming: the last element read before the fault (the bad one is on line 5)
    assert 1 <= error.details["line"] <= 5 and "at or after line" in error.message_en


def test_camt_balances_that_do_not_add_up(tmp_path):
    path = tmp_path / "s.xml"
    statement_files.write_camt053(path, 5, "camt.053.001.02")
    text = path.read_text().replace("<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">",
                                    "<Cd>CLBD</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">1", 1)
    error = refused(text.encode())
    assert "do not add up" in error.message_en and error.details["element"] == "Stmt"


@pytest.mark.parametrize("version, booked, pending", [
    ("camt.053.001.02", "<Sts>BOOK</Sts>", "<Sts>PDNG</Sts>"),
    ("camt.053.001.08", "<Sts><Cd>BOOK</Cd></Sts>", "<Sts><Cd>PDNG</Cd></Sts>")])
def test_camt_pending_entries_are_neither_transfers_nor_in_the_balance(tmp_path, version, booked, pending):
    path = tmp_path / "s.xml"
    expected = statement_files.write_camt053(path, 4, version, debit_every=0)
    text = path.read_text()
    entries = text.split("<Ntry>")
    extra = "<Ntry>" + entries[1].replace(booked, pending).replace("B000000000000", "P1")
    parsed, transfers = read_all((text.replace("</Stmt>", extra.rstrip("\n") + "</Stmt>")).encode())
    assert len(transfers) == expected.credit_count == 4
    assert parsed.statements[0].extra == {"not_booked": 1}
    assert parsed.credit_total == expected.credit_total


def test_mt940_owner_information_after_the_closing_balance_is_not_a_memo():
    data = mt940(":61:2612011201C100,00NTRFNONREF//B1\n:86:/MEMO/real\n") + b":86:statement note\n"
    _, (transfer,) = read_all(data.replace(b"-\n:86:statement note\n", b":86:statement note\n-\n"))
    assert transfer.memo == "real"


def test_camt_zero_amount(tmp_path):
    path = tmp_path / "s.xml"
    statement_files.write_camt053(path, 3, "camt.053.001.08", debit_every=0)
    text = path.read_text()
    first = text.index("<Ntry>")
    amount_start = text.index('<Amt Ccy="CNY">', first) + len('<Amt Ccy="CNY">')
    amount_end = text.index("</Amt>", amount_start)
    text = text[:amount_start] + "0.00" + text[amount_end:]
    error = refused(text.encode())
    assert error.details["element"] == "Ntry" and "zero" in error.message_en


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"><BkToCstmrStmt>&lol3;</BkToCstmrStmt></Document>
"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"><BkToCstmrStmt>&xxe;</BkToCstmrStmt></Document>
"""


@pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_doctype_and_entities_are_refused_before_parsing(body):
    with pytest.raises(StatementRefused) as caught:
        statements.parse(body)
    assert "DOCTYPE" in caught.value.message_en and caught.value.details["line"] == 2


def test_unsupported_camt_version_is_refused():
    body = b'<?xml version="1.0"?><Document xmlns="urn:iso:std:iso:20022:tech:xsd:camt.053.001.04"/>'
    with pytest.raises(StatementRefused) as caught:
        statements.parse(body)
    assert "camt.053.001.04" in caught.value.message_en


def test_a_file_over_the_limit_is_refused_from_its_size_without_reading(tmp_path, monkeypatch):
    huge = tmp_path / "huge.sta"
    with open(huge, "wb") as out:  # a sparse 1 GiB file: no disk used, and it must not be read
        out.truncate(1 << 30)
    opened = []
    monkeypatch.setattr(Path, "open", lambda self, *a, **k: opened.append(self))
    with pytest.raises(StatementRefused) as caught:
        statements.parse(huge)
    assert "too large" in caught.value.message_en and opened == []
    with pytest.raises(StatementRefused):
        statements.parse(b"x" * 101, max_bytes=100)


def test_unrecognised_and_wrong_explicit_format():
    with pytest.raises(StatementRefused):
        statements.parse(b"hello, world\n")
    with pytest.raises(StatementRefused):
        statements.parse((DATA / "camt053_v2_multi_statement.xml").read_bytes(), fmt="camt.053.001.08")
    with pytest.raises(StatementRefused):
        statements.parse(b"x", fmt="bai2")


def test_transfers_can_be_read_once():
    parsed = statements.parse(DATA / "mt940_generic.sta")
    parsed.check()
    with pytest.raises(RuntimeError):
        list(parsed.transfers())
