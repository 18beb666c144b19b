"""The documents of an issued invoice (INV-5): the PDF (fpdf2, with the Noto Sans SC
subset shipped in invoices/fonts/), the XML (lxml, valid against
invoices/schema/invoice.xsd) and their download.

Owns invoices/fonts/ (built by scripts/build-invoice-font) and invoices/schema/.
A document is a pure function of the invoice's stored rows: downloading it any
number of times gives the same bytes. OFD is not produced (docs/invoices.md,
"OFD"). ``missing_glyphs`` tells which characters of a text the font cannot draw,
so that a title the PDF could not render is refused before it is stored.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from datetime import datetime
from importlib import resources
from pathlib import Path

from fpdf import FPDF
from lxml import etree
from sqlalchemy import Connection, select

from feecenter.accounts.permissions import FINANCE, Actor, require
from feecenter.catalog.tables import selling_entities
from feecenter.clock import BUSINESS_TZ, from_db_time
from feecenter.errors import Conflict, invalid, not_found
from feecenter.invoices.tables import invoice_lines, invoices

PACKAGE = resources.files("feecenter.invoices")
FONT_PATH = Path(str(PACKAGE / "fonts" / "NotoSansSC-Invoice.ttf"))
SCHEMA_PATH = Path(str(PACKAGE / "schema" / "invoice.xsd"))
XML_NAMESPACE = "urn:feecenter:invoice:1"

# The seller's taxpayer ID per selling entity: FEECENTER_INVOICE_SELLER_TAX_IDS =
# "cn-cloud=91110000XXXXXXXXXX,cn-software=…"; an entity not listed shows the
# placeholder (18 zeros: visibly not a real USCC).
SELLER_TAX_IDS_ENV = "FEECENTER_INVOICE_SELLER_TAX_IDS"
PLACEHOLDER_TAX_ID = "000000000000000000"

FORMATS = {"pdf": "application/pdf", "xml": "application/xml"}
DOWNLOADABLE_STATES = ("issued", "reversed")

# The PDF's fixed text (every character must be in the font: see the tests)
HEADINGS = {"special": "电子发票（增值税专用发票）", "ordinary": "电子发票（普通发票）"}
RED_MARK = "红字发票（负数）"
LABELS = {
    "number": "发票号码：", "code": "发票代码：", "date": "开票日期：",
    "buyer": "购买方信息", "seller": "销售方信息", "name": "名称：",
    "tax_id": "统一社会信用代码/纳税人识别号：", "address": "地址、电话：",
    "bank": "开户银行及账号：", "item": "项目名称", "rate": "税率/征收率",
    "net": "金额", "tax": "税额", "subtotal": "合计", "total_words": "价税合计（大写）",
    "total_figures": "（小写）", "remarks": "备注", "check_code": "校验码：",
    "original": "被红冲蓝字发票号码：", "personal": "个人",
}
DATE_FORMAT = "{y}年{m:02d}月{d:02d}日"

_DIGITS = "零壹贰叁肆伍陆柒捌玖"
_UNITS = ("", "拾", "佰", "仟")
_SECTIONS = ("", "万", "亿", "万亿")
TEMPLATE_TEXTS = (*HEADINGS.values(), RED_MARK, *LABELS.values(), DATE_FORMAT, _DIGITS,
                  *_UNITS, *_SECTIONS, "圆整角分负", "¥%")


# ---------------------------------------------------------------- the font

@functools.cache
def _font_codepoints() -> frozenset[int]:
    from fontTools.ttLib import TTFont  # fpdf2's own dependency

    with TTFont(FONT_PATH, lazy=True) as font:
        return frozenset(font.getBestCmap())


def missing_glyphs(text: str) -> set[str]:
    """The characters of ``text`` the invoice font has no glyph for (empty: it renders)."""
    codepoints = _font_codepoints()
    return {char for char in text if ord(char) not in codepoints}


# ---------------------------------------------------------------- amounts

def yuan(fen: int) -> str:
    """1_060_00 -> "1060.00"; negative (a red invoice) -> "-1060.00". No float."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def amount_in_words(fen: int) -> str:
    """The amount in Chinese capital numerals (大写), as 价税合计 writes it:
    106000 -> 壹仟零陆拾圆整; 5 -> 伍分; 1050 -> 壹拾圆伍角; negative -> 负….
    """
    if fen < 0:
        return "负" + amount_in_words(-fen)
    whole, cents = divmod(fen, 100)
    jiao, fen_digit = divmod(cents, 10)
    text = _integer_in_words(whole) + "圆" if whole else ""
    if not cents:
        return (text or "零圆") + "整"
    if jiao:
        text += _DIGITS[jiao] + "角"
    elif whole:
        text += "零"  # 壹圆零伍分
    if fen_digit:
        text += _DIGITS[fen_digit] + "分"
    return text


def _integer_in_words(number: int) -> str:
    """A positive integer in capital numerals: 1060 -> 壹仟零陆拾, 100010000 -> 壹亿零壹万."""
    groups = []
    while number:
        number, group = divmod(number, 10000)
        groups.append(group)
    if len(groups) > len(_SECTIONS):
        raise ValueError("amount too large for capital numerals")
    text, zero_pending = "", False
    for index in range(len(groups) - 1, -1, -1):
        group = groups[index]
        if group == 0:
            zero_pending = bool(text)
            continue
        if text and (zero_pending or group < 1000):
            text += "零"
        text += _group_in_words(group) + _SECTIONS[index]
        zero_pending = False
    return text


def _group_in_words(group: int) -> str:
    """0 < group < 10000, without leading 零: 1060 -> 壹仟零陆拾, 5 -> 伍."""
    text, started, zero = "", False, False
    for position in (3, 2, 1, 0):
        digit = group // 10 ** position % 10
        if digit == 0:
            zero = started
            continue
        if zero:
            text += "零"
            zero = False
        text += _DIGITS[digit] + _UNITS[position]
        started = True
    return text


def rate_text(rate_bp: int) -> str:
    """600 -> "6%", 650 -> "6.5%"."""
    whole, rest = divmod(rate_bp, 100)
    return f"{whole}%" if not rest else f"{whole}.{rest:02d}".rstrip("0") + "%"


def _issue_date(view: Mapping) -> datetime:
    issued = view["issued_at"]
    if issued is None:
        raise ValueError("the invoice is not issued: no document")
    return issued.astimezone(BUSINESS_TZ)


def _heading(view: Mapping) -> str:
    kind = view.get("original_kind") if view["kind"] == "red" else view["kind"]
    return HEADINGS["special" if kind == "special" else "ordinary"]


def _item_label(line: Mapping) -> str:
    return f"*{line['item_name']}"  # 信息技术服务*云服务费 -> *信息技术服务*云服务费


def _grouped_check_code(code: str | None) -> str:
    code = code or ""
    return " ".join(code[i:i + 5] for i in range(0, len(code), 5))


# ---------------------------------------------------------------- PDF

class _InvoicePdf(FPDF):
    FONT = "invoice"

    def __init__(self, issued: datetime):
        super().__init__(orientation="landscape", unit="mm", format=(148, 210))  # A5
        self.set_margins(10, 10, 10)
        self.set_auto_page_break(True, margin=10)
        self.set_creation_date(issued)  # the document's date: the same bytes every time
        self.add_font(self.FONT, fname=str(FONT_PATH))
        self.add_page()

    def text_at(self, x: float, y: float, width: float, text: str, *, size: float = 9,
                align: str = "L", color: tuple[int, int, int] = (0, 0, 0)) -> float:
        """Write ``text`` in a box of ``width`` at (x, y), wrapping; returns the y below it."""
        self.set_font(self.FONT, size=size)
        self.set_text_color(*color)
        self.set_xy(x, y)
        self.multi_cell(width, size * 0.5, text, align=align, new_x="LEFT", new_y="NEXT")
        return self.get_y()


HEADING_COLOR = (150, 60, 30)
RED_COLOR = (200, 0, 0)


def render_pdf(view: Mapping, seller: Mapping) -> bytes:
    """The invoice as a PDF (A5 landscape), its Chinese text in the embedded font."""
    issued = _issue_date(view)
    pdf = _InvoicePdf(issued)
    pdf.set_title(f"{_heading(view)} {view['invoice_number']}")
    pdf.set_producer("feecenter")
    _pdf_header(pdf, view, issued)
    y = _pdf_parties(pdf, view, seller, 34)
    y = _pdf_lines(pdf, view, y + 2)
    _pdf_totals_and_remarks(pdf, view, y)
    return bytes(pdf.output())


def _pdf_header(pdf: _InvoicePdf, view: Mapping, issued: datetime) -> None:
    pdf.text_at(10, 10, 190, _heading(view), size=16, align="C", color=HEADING_COLOR)
    if view["kind"] == "red":
        pdf.text_at(10, 19, 190, RED_MARK, size=11, align="C", color=RED_COLOR)
    date = DATE_FORMAT.format(y=issued.year, m=issued.month, d=issued.day)
    meta = (f"{LABELS['number']}{view['invoice_number']}\n{LABELS['code']}{view['invoice_code']}"
            f"\n{LABELS['date']}{date}")
    pdf.text_at(140, 20, 60, meta, size=8)


def _party_text(kind: str, party: Mapping) -> str:
    rows = [LABELS[kind], f"{LABELS['name']}{party['name']}",
            f"{LABELS['tax_id']}{party.get('tax_id') or ''}"]
    if party.get("address") or party.get("phone"):
        rows.append(f"{LABELS['address']}{party.get('address') or ''} {party.get('phone') or ''}")
    if party.get("bank") or party.get("bank_account"):
        rows.append(f"{LABELS['bank']}{party.get('bank') or ''} {party.get('bank_account') or ''}")
    return "\n".join(rows)


def _pdf_parties(pdf: _InvoicePdf, view: Mapping, seller: Mapping, y: float) -> float:
    buyer = {"name": view["title"], "tax_id": view.get("tax_id"), "address": view.get("address"),
             "phone": view.get("phone"), "bank": view.get("bank"),
             "bank_account": view.get("bank_account")}
    seller_party = {"name": seller["name_zh"], "tax_id": seller.get("tax_id")}
    bottom = max(pdf.text_at(12, y + 2, 91, _party_text("buyer", buyer), size=8),
                 pdf.text_at(107, y + 2, 91, _party_text("seller", seller_party), size=8))
    pdf.set_draw_color(*HEADING_COLOR)
    pdf.rect(10, y, 95, bottom - y + 2)
    pdf.rect(105, y, 95, bottom - y + 2)
    return bottom + 2


def _pdf_lines(pdf: _InvoicePdf, view: Mapping, y: float) -> float:
    pdf.set_xy(10, y)
    pdf.set_font(_InvoicePdf.FONT, size=8)
    pdf.set_text_color(0, 0, 0)
    with pdf.table(width=190, col_widths=(90, 30, 35, 35), text_align=("LEFT", "CENTER", "RIGHT", "RIGHT"),
                   first_row_as_headings=False, line_height=5, align="L") as table:
        table.row([LABELS["item"], LABELS["rate"], LABELS["net"], LABELS["tax"]])
        for line in view["lines"]:
            table.row([_item_label(line), rate_text(line["rate_bp"]),
                       yuan(line["net_amount"]), yuan(line["tax_amount"])])
        table.row([LABELS["subtotal"], "", f"¥{yuan(view['net_amount'])}",
                   f"¥{yuan(view['tax_amount'])}"])
    return pdf.get_y()


def _pdf_totals_and_remarks(pdf: _InvoicePdf, view: Mapping, y: float) -> None:
    total = (f"{LABELS['total_words']}  {amount_in_words(view['amount'])}"
             f"        {LABELS['total_figures']}¥{yuan(view['amount'])}")
    y = pdf.text_at(12, y + 2, 186, total, size=9)
    remarks = [f"{LABELS['remarks']}",
               f"{LABELS['check_code']}{_grouped_check_code(view.get('check_code'))}"]
    if view["kind"] == "red" and view.get("original_number"):
        remarks.append(f"{LABELS['original']}{view['original_number']}")
    pdf.text_at(12, y + 2, 186, "\n".join(remarks), size=8)


# ---------------------------------------------------------------- XML

def render_xml(view: Mapping, seller: Mapping) -> bytes:
    """The invoice as XML in the namespace urn:feecenter:invoice:1 (schema/invoice.xsd)."""
    issued = _issue_date(view)
    ns = f"{{{XML_NAMESPACE}}}"
    root = etree.Element(ns + "Invoice", nsmap={None: XML_NAMESPACE}, version="1")

    def add(parent, tag: str, value: object | None) -> None:
        if value is not None and value != "":
            etree.SubElement(parent, ns + tag).text = str(value)

    header = etree.SubElement(root, ns + "Header")
    add(header, "Kind", view["kind"])
    add(header, "Heading", _heading(view))
    add(header, "InvoiceCode", view["invoice_code"])
    add(header, "InvoiceNumber", view["invoice_number"])
    add(header, "IssueDate", issued.date().isoformat())
    add(header, "CheckCode", view.get("check_code"))
    add(header, "OriginalInvoiceNumber", view.get("original_number") if view["kind"] == "red" else None)
    party = etree.SubElement(root, ns + "Seller")
    add(party, "Name", seller["name_zh"])
    add(party, "TaxID", seller.get("tax_id"))
    party = etree.SubElement(root, ns + "Buyer")
    add(party, "Kind", view["title_kind"])
    for tag, key in (("Name", "title"), ("TaxID", "tax_id"), ("Address", "address"),
                     ("Phone", "phone"), ("Bank", "bank"), ("BankAccount", "bank_account")):
        add(party, tag, view.get(key))
    lines = etree.SubElement(root, ns + "Lines")
    for line in view["lines"]:
        element = etree.SubElement(lines, ns + "Line")
        add(element, "ItemName", _item_label(line))
        add(element, "TaxCode", line["tax_code"])
        add(element, "TaxRate", rate_text(line["rate_bp"]))
        add(element, "NetAmount", yuan(line["net_amount"]))
        add(element, "TaxAmount", yuan(line["tax_amount"]))
        add(element, "Amount", yuan(line["amount"]))
    totals = etree.SubElement(root, ns + "Totals")
    add(totals, "NetAmount", yuan(view["net_amount"]))
    add(totals, "TaxAmount", yuan(view["tax_amount"]))
    add(totals, "Amount", yuan(view["amount"]))
    add(totals, "AmountInWords", amount_in_words(view["amount"]))
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


def _hardened_parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                           dtd_validation=False, huge_tree=False, remove_comments=False)


@functools.cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(SCHEMA_PATH), _hardened_parser()))


def validate_xml(document: bytes) -> None:
    """Raise InvalidInput unless ``document`` is an invoice valid against the schema
    (no DTD, no entities, nothing fetched from the network)."""
    try:
        tree = etree.fromstring(document, _hardened_parser())
    except etree.XMLSyntaxError as exc:
        raise invalid("xml", f"发票 XML 格式错误：{exc}", f"the invoice XML is malformed: {exc}") from exc
    if tree.getroottree().docinfo.doctype:
        raise invalid("xml", "发票 XML 不得包含 DOCTYPE", "the invoice XML must not have a DOCTYPE")
    schema = _schema()
    if not schema.validate(tree):
        error = schema.error_log.last_error
        raise invalid("xml", f"发票 XML 不符合格式定义：{error}",
                      f"the invoice XML does not match its schema: {error}")


# ---------------------------------------------------------------- download

def download(conn: Connection, actor: Actor, uin: int, invoice_id: object,
             fmt: object) -> tuple[str, str, bytes]:
    """An issued (or reversed) invoice of account ``uin`` as (filename, content type,
    bytes); FINANCE permission. Another account's invoice is not found."""
    require(actor, uin, FINANCE)
    fmt = _document_format(fmt)
    view = invoice_view(conn, uin, _invoice_id(invoice_id))
    if view["state"] not in DOWNLOADABLE_STATES:
        raise Conflict(f"发票（invoice_id {view['id']}）尚未开具，暂不能下载",
                       f"invoice (invoice_id {view['id']}) is not issued yet: no document",
                       field="invoice_id", state=view["state"])
    seller = seller_of(conn, view["entity"])
    if fmt == "pdf":
        content = render_pdf(view, seller)
    else:
        content = render_xml(view, seller)
    return f"invoice-{view['invoice_number']}.{fmt}", FORMATS[fmt], content


def _document_format(fmt: object) -> str:
    if isinstance(fmt, str) and fmt.strip().lower() in FORMATS:
        return fmt.strip().lower()
    if isinstance(fmt, str) and fmt.strip().lower() == "ofd":
        raise invalid("fmt", "暂不提供 OFD 格式，请下载 PDF 或 XML",
                      "OFD is not available yet; download the PDF or the XML")
    raise invalid("fmt", "文件格式（fmt）须为 pdf 或 xml", "fmt must be pdf or xml")


def _invoice_id(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and int(value) > 0:
        return int(value)
    raise invalid("invoice_id", "发票编号（invoice_id）须为正整数", "invoice_id must be a positive integer")


def invoice_view(conn: Connection, uin: int, invoice_id: int) -> dict:
    """The invoice as the contract's view (amounts in fen), with ``original_kind`` and
    ``original_number`` for a red one; not found unless it belongs to ``uin``."""
    row = conn.execute(select(invoices, selling_entities.c.name_zh.label("entity_name"))
                       .join(selling_entities, selling_entities.c.code == invoices.c.entity)
                       .where(invoices.c.id == invoice_id, invoices.c.uin == uin)).mappings().first()
    if row is None:
        raise not_found("invoice_id", "发票", "invoice", invoice_id)
    lines = conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id == invoice_id)
                         .order_by(invoice_lines.c.id)).mappings().all()
    view = {key: row[key] for key in (
        "id", "uin", "kind", "state", "entity", "entity_name", "title_kind", "title", "tax_id",
        "address", "phone", "bank", "bank_account", "email", "amount", "net_amount", "tax_amount",
        "invoice_code", "invoice_number", "check_code", "original_id")}
    view["applied_at"] = from_db_time(row["applied_at"])
    view["issued_at"] = from_db_time(row["issued_at"]) if row["issued_at"] else None
    view["flagged"] = row["flagged_at"] is not None
    view["lines"] = [{key: line[key] for key in ("tax_category", "item_name", "tax_code", "rate_bp",
                                                 "amount", "net_amount", "tax_amount")}
                     for line in lines]
    if row["original_id"] is not None:
        original = conn.execute(select(invoices.c.kind, invoices.c.invoice_number)
                                .where(invoices.c.id == row["original_id"])).first()
        if original is not None:
            view["original_kind"], view["original_number"] = original.kind, original.invoice_number
    return view


def seller_of(conn: Connection, entity: str, environ: Mapping[str, str] = os.environ) -> dict:
    """The selling entity as the seller of its invoices: names and taxpayer ID."""
    row = conn.execute(select(selling_entities).where(selling_entities.c.code == entity)).first()
    if row is None:
        raise not_found("entity", "销售主体", "selling entity", entity)
    return {"code": row.code, "name_zh": row.name_zh, "name_en": row.name_en,
            "tax_id": seller_tax_ids(environ).get(entity, PLACEHOLDER_TAX_ID)}


def seller_tax_ids(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """entity code -> taxpayer ID from FEECENTER_INVOICE_SELLER_TAX_IDS ("code=ID,…")."""
    out = {}
    for item in (environ.get(SELLER_TAX_IDS_ENV) or "").split(","):
        code, sep, tax_id = item.partition("=")
        if sep and code.strip() and tax_id.strip():
            out[code.strip()] = tax_id.strip().upper()
    return out
