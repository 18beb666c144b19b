"""Emailing issued invoices (INV-5): a real SMTP server (aiosmtpd on a free local port)
receives each issued invoice once, at its email, with the PDF (whose text has the
title) and the valid XML attached; a failed send is retried by the next run; eight
concurrent runs on PostgreSQL still email each invoice exactly once."""

from __future__ import annotations

import email
import email.policy
import socket
import subprocess
from collections import Counter

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from feecenter.config import Settings
from feecenter.invoices import delivery, documents
from feecenter.invoices.tables import invoices
from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import HOURLY
from tests.helpers import new_account, run_threads
from tests.test_invoices_documents import TITLE, seed_invoice


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Recorder:
    """An SMTP handler that keeps every message it accepts."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.hostname, controller.port
    controller.stop()


def smtp_settings(rt, host, port) -> Settings:
    return Settings(home=None, database_url="", master_key=None, smtp_host=host, smtp_port=port,
                    smtp_from="费用中心 <invoices@fee.example.cn>", smtp_timeout_s=10)


def messages(handler):
    return [email.message_from_bytes(e.content, policy=email.policy.default) for e in handler.envelopes]


def emailed_at(rt, invoice_id):
    with rt.engine.connect() as conn:
        return conn.execute(select(invoices.c.emailed_at).where(invoices.c.id == invoice_id)).scalar_one()


@pytest.mark.spec("INV-5")
def test_an_issued_invoice_is_emailed_once_with_its_pdf_and_xml(rt, smtp_server, tmp_path):
    handler, host, port = smtp_server
    uin = new_account(rt, "mail-shop")
    issued = seed_invoice(rt, uin, 11, email="fin@buyer.example.cn")
    other = seed_invoice(rt, uin, 12, email="boss@buyer.example.cn", kind="ordinary")
    pending = seed_invoice(rt, uin, 13, state="issuing")
    settings = smtp_settings(rt, host, port)

    assert delivery.deliver_pending(rt.engine, rt.clock, settings) == {"sent": 2, "failed": 0}
    assert delivery.deliver_pending(rt.engine, rt.clock, settings) == {"sent": 0, "failed": 0}
    assert sorted(e.rcpt_tos[0] for e in handler.envelopes) == ["boss@buyer.example.cn",
                                                                 "fin@buyer.example.cn"]
    message = next(m for m in messages(handler) if m["To"] == "fin@buyer.example.cn")
    assert message["Subject"] == ("电子发票 26110000000000000011 已开具 / "
                                  "Digital invoice 26110000000000000011 issued")
    body = message.get_body(("plain",)).get_content()
    assert body.index("尊敬的客户") < body.index("Dear customer")
    assert "壹仟零陆拾圆整" in body and "CNY 1060.00" in body
    attachments = {part.get_filename(): part for part in message.iter_attachments()}
    assert set(attachments) == {"invoice-26110000000000000011.pdf", "invoice-26110000000000000011.xml"}
    pdf = attachments["invoice-26110000000000000011.pdf"]
    assert pdf.get_content_type() == "application/pdf"
    path = tmp_path / "attached.pdf"
    path.write_bytes(pdf.get_content())
    text = subprocess.run(["pdftotext", "-layout", str(path), "-"], check=True,
                          capture_output=True, text=True).stdout
    assert "电子发票（增值税专用发票）" in text and TITLE in text and "¥1060.00" in text
    documents.validate_xml(attachments["invoice-26110000000000000011.xml"].get_content())
    assert emailed_at(rt, issued) is not None and emailed_at(rt, other) is not None
    assert emailed_at(rt, pending) is None  # not issued: not emailed


@pytest.mark.spec("INV-5")
def test_a_failed_send_is_released_and_retried(rt, smtp_server):
    handler, host, port = smtp_server
    uin = new_account(rt, "retry-shop")
    invoice_id = seed_invoice(rt, uin, 21)
    nobody = smtp_settings(rt, "127.0.0.1", free_port())  # nothing listens there
    assert delivery.deliver_pending(rt.engine, rt.clock, nobody) == {"sent": 0, "failed": 1}
    assert emailed_at(rt, invoice_id) is None
    assert delivery.deliver_pending(rt.engine, rt.clock, smtp_settings(rt, host, port)) == {
        "sent": 1, "failed": 0}
    assert len(handler.envelopes) == 1 and emailed_at(rt, invoice_id) is not None


@pytest.mark.spec("INV-5")
def test_no_smtp_host_claims_nothing(rt):
    uin = new_account(rt, "quiet-shop")
    invoice_id = seed_invoice(rt, uin, 31)
    settings = Settings(home=None, database_url="", master_key=None)
    assert delivery.deliver_pending(rt.engine, rt.clock, settings) == {"sent": 0, "failed": 0}
    assert emailed_at(rt, invoice_id) is None


@pytest.mark.spec("INV-5", "INV-6")
def test_a_red_invoice_is_emailed_as_red(rt, smtp_server):
    handler, host, port = smtp_server
    uin = new_account(rt, "red-mail-shop")
    blue = seed_invoice(rt, uin, 41, state="reversed")
    red = seed_invoice(rt, uin, 42, kind="red", original_id=blue)
    assert delivery.deliver_pending(rt.engine, rt.clock, smtp_settings(rt, host, port))["sent"] == 1
    (message,) = messages(handler)
    assert message["Subject"].startswith("红字电子发票 26110000000000000042")
    assert "负壹仟零陆拾圆整" in message.get_body(("plain",)).get_content()
    assert emailed_at(rt, red) is not None and emailed_at(rt, blue) is None  # reversed: not sent


def test_the_delivery_job_is_registered_hourly():
    job = load_all().get("invoices.deliver")
    assert job.cadence == HOURLY


@pytest.mark.postgres_only
@pytest.mark.spec("INV-5")
def test_eight_concurrent_runs_email_each_invoice_once(rt, smtp_server):
    handler, host, port = smtp_server
    uin = new_account(rt, "race-mail-shop")
    ids = [seed_invoice(rt, uin, 100 + n, email=f"f{n}@buyer.example.cn") for n in range(12)]
    settings = smtp_settings(rt, host, port)
    results: list = [None] * 8

    def work(i: int) -> None:
        results[i] = delivery.deliver_pending(rt.engine, rt.clock, settings)

    assert run_threads(8, work) == []
    assert sum(r["sent"] for r in results) == 12 and sum(r["failed"] for r in results) == 0
    recipients = Counter(e.rcpt_tos[0] for e in handler.envelopes)
    assert recipients == Counter(f"f{n}@buyer.example.cn" for n in range(12))  # each exactly once
    assert all(emailed_at(rt, i) is not None for i in ids)
    assert delivery.deliver_pending(rt.engine, rt.clock, settings) == {"sent": 0, "failed": 0}
    assert len(handler.envelopes) == 12
