"""Emailing issued invoices (INV-5): each issued invoice whose ``emailed_at`` is NULL
goes once to its ``email``, with its PDF and XML attached, through the project's
SMTP settings (FEECENTER_SMTP_*, config.py).

Owns the ``invoices.emailed_at`` column. An invoice is claimed before it is sent:
a conditional UPDATE (emailed_at NULL -> now) committed on its own, whose rowcount
decides which of several concurrent runs sends it. A failed send releases the claim
(emailed_at back to NULL, only if it is still this run's), so a later run retries
it; failures are counted. A process that dies between the claim and the hand-over
leaves the invoice marked as emailed: an email is sent at most once (the customer
can always download it; docs/invoices.md, "Email").
"""

from __future__ import annotations

import logging
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr

from sqlalchemy import Engine, select, update

from feecenter.clock import BUSINESS_TZ, Clock, db_time
from feecenter.config import Settings
from feecenter.db.engine import transaction
from feecenter.invoices import documents
from feecenter.invoices.tables import invoices
from feecenter.notifications.senders import smtp_sender

log = logging.getLogger("feecenter.invoices")

BATCH = 100  # invoices read per query; a run goes on until none is pending

SUBJECT = "电子发票 {number} 已开具 / Digital invoice {number} issued"
RED_SUBJECT = "红字电子发票 {number} 已开具 / Red-letter digital invoice {number} issued"
BODY = """尊敬的客户：

您的{heading}已开具{red_zh}。
发票号码：{number}
开票日期：{date_zh}
销售方：{seller_zh}
价税合计：¥{amount}（{words}）
PDF 与 XML 文件见附件。

Dear customer,

your digital invoice ({kind_en}) has been issued{red_en}.
Invoice number: {number}
Issue date: {date}
Seller: {seller_en}
Total, tax included: CNY {amount}
The PDF and XML files are attached.
"""
KIND_EN = {"special": "special VAT invoice", "ordinary": "ordinary VAT invoice"}


def deliver_pending(engine: Engine, clock: Clock, settings: Settings) -> dict:
    """Email every issued, not yet emailed invoice once; {"sent", "failed"}.
    Email disabled (no FEECENTER_SMTP_HOST): nothing is claimed or sent."""
    sent = failed = 0
    if not settings.smtp_host:
        return {"sent": 0, "failed": 0}
    after_id = 0
    while True:
        pending = _pending_ids(engine, after_id)
        if not pending:
            return {"sent": sent, "failed": failed}
        after_id = pending[-1]
        for invoice_id in pending:
            outcome = _deliver_one(engine, clock, settings, invoice_id)
            sent += outcome == "sent"
            failed += outcome == "failed"


def _pending_ids(engine: Engine, after_id: int) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(
            select(invoices.c.id).where(invoices.c.state == "issued", invoices.c.emailed_at.is_(None),
                                        invoices.c.id > after_id)
            .order_by(invoices.c.id).limit(BATCH)).scalars())


def _deliver_one(engine: Engine, clock: Clock, settings: Settings, invoice_id: int) -> str:
    """"sent", "failed" or "taken" (another run claimed it first)."""
    claimed_at = db_time(clock.now())
    with transaction(engine) as conn:
        won = conn.execute(update(invoices).where(
            invoices.c.id == invoice_id, invoices.c.state == "issued",
            invoices.c.emailed_at.is_(None)).values(emailed_at=claimed_at)).rowcount == 1
    if not won:
        return "taken"
    try:
        send_email(settings, invoice_email(engine, clock, settings, invoice_id))
    except Exception as exc:  # noqa: BLE001 - any failure: release the claim, retry later
        with transaction(engine) as conn:
            conn.execute(update(invoices).where(invoices.c.id == invoice_id,
                                                invoices.c.emailed_at == claimed_at)
                         .values(emailed_at=None))
        log.warning("invoice %s not emailed (retried on the next run): %s", invoice_id, exc)
        return "failed"
    return "sent"


def invoice_email(engine: Engine, clock: Clock, settings: Settings, invoice_id: int) -> EmailMessage:
    """The email of an issued invoice: zh-CN then English, the PDF and XML attached."""
    with engine.connect() as conn:
        uin = conn.execute(select(invoices.c.uin).where(invoices.c.id == invoice_id)).scalar_one()
        view = documents.invoice_view(conn, uin, invoice_id)
        seller = documents.seller_of(conn, view["entity"])
    number = view["invoice_number"]
    email = EmailMessage()
    email["From"] = settings.smtp_from
    email["To"] = view["email"]
    email["Subject"] = (RED_SUBJECT if view["kind"] == "red" else SUBJECT).format(number=number)
    email["Date"] = format_datetime(clock.now())
    domain = parseaddr(settings.smtp_from)[1].rpartition("@")[2] or "localhost"
    email["Message-ID"] = f"<feecenter.invoice.{invoice_id}@{domain}>"  # a resent copy is the same mail
    email.set_content(_body(view, seller), charset="utf-8", cte="base64")
    email.add_attachment(documents.render_pdf(view, seller), maintype="application", subtype="pdf",
                         filename=f"invoice-{number}.pdf")
    email.add_attachment(documents.render_xml(view, seller), maintype="application", subtype="xml",
                         filename=f"invoice-{number}.xml")
    return email


def _body(view: dict, seller: dict) -> str:
    issued: datetime = view["issued_at"].astimezone(BUSINESS_TZ)
    red = view["kind"] == "red"
    kind = view.get("original_kind") if red else view["kind"]
    return BODY.format(
        heading=documents.HEADINGS["special" if kind == "special" else "ordinary"],
        red_zh="（红字发票，金额为负数）" if red else "", red_en=" (red-letter, negative amounts)" if red else "",
        number=view["invoice_number"],
        date_zh=documents.DATE_FORMAT.format(y=issued.year, m=issued.month, d=issued.day),
        date=issued.date().isoformat(), seller_zh=seller["name_zh"], seller_en=seller["name_en"],
        amount=documents.yuan(view["amount"]), words=documents.amount_in_words(view["amount"]),
        kind_en=KIND_EN["special" if kind == "special" else "ordinary"])


def send_email(settings: Settings, email: EmailMessage) -> None:
    """Hand ``email`` to the project's SMTP server (notifications' sender and settings)."""
    smtp_sender(settings).deliver(email)
