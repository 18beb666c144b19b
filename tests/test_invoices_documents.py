"""Invoice documents (INV-5): the PDF renders its Chinese text with the embedded font
(read back with poppler's pdftotext), the XML validates against the shipped schema
and a tampered one does not, downloads are deterministic and refused for invoices
not issued or of another account; the font covers every character of the texts."""

from __future__ import annotations

import re
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from fontTools.ttLib import TTFont
from sqlalchemy import insert, select

from feecenter.accounts.permissions import Actor
from feecenter.catalog.rules import TAX_CATEGORIES
from feecenter.catalog.tables import selling_entities
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.invoices import documents
from feecenter.invoices.tables import invoice_lines, invoices
from tests.helpers import new_account

ROOT = Path(__file__).resolve().parent.parent
SELLER_NAME = "示例云计算（北京）有限责任公司"
TITLE = "示例科技（上海）有限公司"
CLOUD = TAX_CATEGORIES["cloud_service"]
SOFTWARE = TAX_CATEGORIES["software"]


# ---------------------------------------------------------------- seeding (shared with delivery)

def ensure_entity(conn, code: str = "cn-cloud", name: str = SELLER_NAME) -> None:
    if conn.execute(select(selling_entities.c.code).where(selling_entities.c.code == code)).first():
        return
    conn.execute(insert(selling_entities).values(code=code, name_zh=name, name_en="Example Cloud"))


def seed_invoice(rt, uin: int, serial: int, *, kind: str = "special", state: str = "issued",
                 lines=((CLOUD, 106_000),), email: str = "finance@example.com",
                 original_id: int | None = None, title: str = TITLE) -> int:
    """An invoice as CORE's issuing leaves it (issued: number, code, check code set)."""
    sign = -1 if kind == "red" else 1
    taxed = []
    for category, amount in lines:
        tax = (amount * category.rate_bp * 2 + (10000 + category.rate_bp)) // (2 * (10000 + category.rate_bp))
        taxed.append((category, sign * amount, sign * tax))
    total = sum(a for _, a, _ in taxed)
    tax_total = sum(t for _, _, t in taxed)
    now = rt.clock.now()
    issued = state in ("issued", "reversed")
    with transaction(rt.engine) as conn:
        ensure_entity(conn)
        invoice_id = conn.execute(insert(invoices).values(
            uin=uin, application_id=None if kind == "red" else serial, kind=kind, state=state,
            entity="cn-cloud", title_kind="enterprise", title=title, tax_id="91310000MA1FL1234X",
            address="上海市浦东新区世纪大道1号", phone="021-12345678", bank="招商银行上海分行",
            bank_account="6225880212345678", email=email, amount=total,
            net_amount=total - tax_total, tax_amount=tax_total, original_id=original_id,
            invoice_code="031002600111" if issued else None,
            invoice_number=f"2611{serial:016d}" if issued else None,
            check_code=f"{serial:020d}"[-20:].replace("0", "7") if issued else None,
            applied_at=db_time(now - timedelta(minutes=5)),
            issued_at=db_time(now) if issued else None)).inserted_primary_key[0]
        for category, amount, tax in taxed:
            conn.execute(insert(invoice_lines).values(
                invoice_id=invoice_id, uin=uin, entity="cn-cloud", tax_category=category.code,
                item_name=category.name, tax_code=category.tax_code, rate_bp=category.rate_bp,
                amount=amount, net_amount=amount - tax, tax_amount=tax))
    return invoice_id


def finance(uin: int) -> Actor:
    return Actor(kind="user", name="fin", uin=uin, role="finance")


def pdf_text(content: bytes, tmp_path: Path) -> str:
    path = tmp_path / "invoice.pdf"
    path.write_bytes(content)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout


def download(rt, uin, invoice_id, fmt, actor=None):
    with rt.engine.connect() as conn:
        return documents.download(conn, actor or finance(uin), uin, invoice_id, fmt)


# ---------------------------------------------------------------- capital numerals

@pytest.mark.parametrize("fen, words", [
    (106_000, "壹仟零陆拾圆整"),
    (113_000, "壹仟壹佰叁拾圆整"),
    (0, "零圆整"),
    (5, "伍分"),
    (50, "伍角"),
    (105, "壹圆零伍分"),
    (1_050, "壹拾圆伍角"),
    (20_007, "贰佰圆零柒分"),
    (1_000_000, "壹万圆整"),
    (1_010_000, "壹万零壹佰圆整"),
    (12_345_678, "壹拾贰万叁仟肆佰伍拾陆圆柒角捌分"),
    (10_001_000_000, "壹亿零壹万圆整"),
    (10_000_000_100, "壹亿零壹圆整"),
    (10_010_000_000, "壹亿零壹拾万圆整"),
    (100_000_000_000_000, "壹万亿圆整"),
    (-106_000, "负壹仟零陆拾圆整"),
])
def test_amount_in_capital_numerals(fen, words):
    assert documents.amount_in_words(fen) == words


def test_yuan_and_rates_have_no_float():
    assert [documents.yuan(v) for v in (106_000, 5, 0, -106_000)] == ["1060.00", "0.05", "0.00", "-1060.00"]
    assert [documents.rate_text(v) for v in (600, 1300, 650, 5)] == ["6%", "13%", "6.5%", "0.05%"]


# ---------------------------------------------------------------- the font

def test_every_character_of_the_invoice_texts_has_a_glyph():
    assert documents.missing_glyphs("".join(documents.TEMPLATE_TEXTS)) == set()
    written = set()
    for path in (ROOT / "src/feecenter/invoices").rglob("*.py"):
        written |= set(re.findall(r"[^\x00-\x7f]", path.read_text(encoding="utf-8")))
    assert documents.missing_glyphs("".join(written)) == set()
    names = "".join(c.name for c in TAX_CATEGORIES.values())
    assert documents.missing_glyphs(names + SELLER_NAME + TITLE) == set()


def test_missing_glyphs_names_what_the_font_lacks():
    assert documents.missing_glyphs("示例𠀀公司😀") == {"𠀀", "😀"}
    assert documents.missing_glyphs("") == set()


def test_the_font_is_a_small_truetype_subset_with_all_of_gb2312():
    assert documents.FONT_PATH.stat().st_size < 5_000_000
    with TTFont(documents.FONT_PATH) as font:
        assert font.sfntVersion == "\x00\x01\x00\x00" and "glyf" in font  # TrueType outlines
        cmap = font.getBestCmap()
    hanzi = []
    for row in range(0xB0, 0xF8):
        for cell in range(0xA1, 0xFF):
            try:
                hanzi.append(bytes((row, cell)).decode("gb2312"))
            except UnicodeDecodeError:
                continue
    assert len(hanzi) == 6763
    assert [c for c in hanzi if ord(c) not in cmap] == []


# ---------------------------------------------------------------- PDF and XML of a download

@pytest.mark.spec("INV-5", "INV-4")
def test_the_pdf_shows_the_invoice_in_chinese_with_an_embedded_font(rt, tmp_path):
    uin = new_account(rt, "pdf-shop")
    invoice_id = seed_invoice(rt, uin, 1, lines=((CLOUD, 106_000), (SOFTWARE, 113_000)))
    name, content_type, content = download(rt, uin, invoice_id, "pdf")
    assert (name, content_type) == ("invoice-26110000000000000001.pdf", "application/pdf")
    assert content.startswith(b"%PDF-")
    text = pdf_text(content, tmp_path)
    for expected in ("电子发票（增值税专用发票）", "26110000000000000001", "2026年03月02日",
                     TITLE, "91310000MA1FL1234X", SELLER_NAME, documents.PLACEHOLDER_TAX_ID,
                     "*信息技术服务*云服务费", "*软件*软件产品销售", "6%", "13%",
                     "1000.00", "60.00", "130.00", "¥2000.00", "¥190.00", "¥2190.00",
                     "贰仟壹佰玖拾圆整", "价税合计（大写）"):
        assert expected in text, expected
    fonts = subprocess.run(["pdffonts", str(tmp_path / "invoice.pdf")], check=True,
                           capture_output=True, text=True).stdout.splitlines()[2:]
    assert fonts and all(" yes yes yes " in row for row in fonts), fonts  # embedded, subset, ToUnicode


@pytest.mark.spec("INV-5")
def test_a_download_is_the_same_document_every_time(rt):
    uin = new_account(rt, "same-shop")
    invoice_id = seed_invoice(rt, uin, 2)
    first_pdf, first_xml = download(rt, uin, invoice_id, "pdf"), download(rt, uin, invoice_id, "XML")
    rt.clock.advance(days=3)
    assert download(rt, uin, invoice_id, "pdf") == first_pdf
    assert download(rt, uin, invoice_id, "xml") == first_xml


@pytest.mark.spec("INV-5")
def test_the_xml_validates_and_a_tampered_one_does_not(rt):
    uin = new_account(rt, "xml-shop")
    invoice_id = seed_invoice(rt, uin, 3)
    name, content_type, xml = download(rt, uin, invoice_id, "xml")
    assert (name, content_type) == ("invoice-26110000000000000003.xml", "application/xml")
    documents.validate_xml(xml)
    text = xml.decode()
    assert "<Amount>1060.00</Amount>" in text and "壹仟零陆拾圆整" in text
    tampered = [
        text.replace("<Amount>1060.00</Amount>", "<Amount>1060.5</Amount>", 1),
        text.replace("<InvoiceNumber>26110000000000000003</InvoiceNumber>", "<InvoiceNumber>X</InvoiceNumber>"),
        re.sub(r"<Seller>.*?</Seller>", "", text, flags=re.S),
        text.replace("<Kind>special</Kind>", "<Kind>gift</Kind>"),
        text.replace("</Totals>", "<Discount>1.00</Discount></Totals>"),
        text[: len(text) // 2],
    ]
    for document in tampered:
        with pytest.raises(InvalidInput) as refused:
            documents.validate_xml(document.encode())
        assert refused.value.field == "xml"


def test_validation_resolves_no_entities_and_fetches_nothing():
    xxe = ('<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
           '<Invoice xmlns="urn:feecenter:invoice:1" version="1"><Header><Kind>&e;</Kind></Header></Invoice>')
    with pytest.raises(InvalidInput) as refused:
        documents.validate_xml(xxe.encode())
    assert "root:" not in refused.value.message


@pytest.mark.spec("INV-5", "INV-6")
def test_a_red_invoice_is_marked_and_negative(rt, tmp_path):
    uin = new_account(rt, "red-shop")
    blue = seed_invoice(rt, uin, 4, state="reversed")
    red = seed_invoice(rt, uin, 5, kind="red", original_id=blue)
    text = pdf_text(download(rt, uin, red, "pdf")[2], tmp_path)
    for expected in ("电子发票（增值税专用发票）", "红字发票（负数）", "-1000.00", "-60.00",
                     "¥-1060.00", "负壹仟零陆拾圆整", "被红冲蓝字发票号码：26110000000000000004"):
        assert expected in text, expected
    xml = download(rt, uin, red, "xml")[2]
    documents.validate_xml(xml)
    assert b"<OriginalInvoiceNumber>26110000000000000004</OriginalInvoiceNumber>" in xml
    assert download(rt, uin, blue, "pdf")[2].startswith(b"%PDF-")  # a reversed one still downloads


@pytest.mark.spec("INV-5")
def test_an_ordinary_invoice_has_its_heading(rt, tmp_path):
    uin = new_account(rt, "plain-shop")
    invoice_id = seed_invoice(rt, uin, 6, kind="ordinary")
    assert "电子发票（普通发票）" in pdf_text(download(rt, uin, invoice_id, "pdf")[2], tmp_path)


@pytest.mark.spec("INV-5")
def test_downloads_are_refused_unless_issued_and_ones_own(rt):
    uin = new_account(rt, "refuse-shop")
    other = new_account(rt, "other-shop")
    pending = seed_invoice(rt, uin, 7, state="issuing")
    issued = seed_invoice(rt, uin, 8)
    with pytest.raises(Conflict) as refused:
        download(rt, uin, pending, "pdf")
    assert refused.value.field == "invoice_id" and "invoice_id" in refused.value.message
    with pytest.raises(NotFound):
        download(rt, other, issued, "pdf")  # another account's invoice does not exist for it
    with pytest.raises(PermissionDenied):
        download(rt, uin, issued, "pdf", Actor(kind="user", name="ro", uin=uin, role="readonly"))
    with pytest.raises(PermissionDenied):
        download(rt, uin, issued, "pdf", finance(other))
    for fmt, field in (("ofd", "fmt"), ("docx", "fmt"), (None, "fmt")):
        with pytest.raises(InvalidInput) as bad:
            download(rt, uin, issued, fmt)
        assert bad.value.field == field
    for bad_id in ("abc", -1, True, None):
        with pytest.raises(InvalidInput) as bad:
            download(rt, uin, bad_id, "pdf")
        assert bad.value.field == "invoice_id"


def test_the_seller_tax_id_comes_from_the_setting():
    env = {documents.SELLER_TAX_IDS_ENV: "cn-cloud=91110000mA00000001, cn-software = 91440300MA00000002,bad"}
    assert documents.seller_tax_ids(env) == {"cn-cloud": "91110000MA00000001",
                                             "cn-software": "91440300MA00000002"}
    assert documents.seller_tax_ids({}) == {}
