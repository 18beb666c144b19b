"""Notifications: templates, in-site messages, the outbox and its senders.

Email goes to a real SMTP server (aiosmtpd on a free local port); SMS to the
log sender's file. Delivery by two workers at once never sends a row twice.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.auth import service as auth
from feecenter.cli.client import ApiError, FeeCenterClient
from feecenter.config import Settings
from feecenter.errors import IdempotencyConflict, InvalidInput, NotFound, PermissionDenied
from feecenter.notifications import senders as senders_mod
from feecenter.notifications import service as notifications
from feecenter.notifications import templates
from feecenter.notifications.senders import LogSmsSender, SmtpEmailSender
from feecenter.notifications.tables import in_site_messages, notification_outbox
from tests.helpers import OPS, new_account

DUNNING = {"amount": "1,234.56"}
ALL_PARAMS = {"uin": 100000000001, "account_name": "示例科技", "at": "2026-03-02 10:00:00",
              "amount": "1,234.56", "stop_at": "2026-03-02 12:00:00",
              "destroy_at": "2026-03-09 12:00:00", "resources": "cvm-001 (广州)\ncvm-002",
              "available": "8.00", "threshold": "100.00", "payer_name": "示例付款有限公司",
              "reference": "REF-0001", "state_zh": "待签署", "state_en": "pending signature",
              "request_id": 7, "kind_zh": "精度差异补偿",
              "kind_en": "Precision difference compensation", "note": "-",
              "day": "2026-03-02", "count": 2, "product": "cvm", "item": "S2.SMALL",
              "region": "ap-guangzhou", "starts_at": "2026-04-01 00:00:00",
              "old_price": "100.00", "new_price": "120.00", "expiring_count": 1, "expiring": "cvm-x",
              "reversal_id": 3, "invoice_number": "26110000000000000001", "withdrawal_id": 5,
              "reason": "多次催缴未付", "cash": "34.56", "arrears": "1,200.00", "repaid": "1,000.00",
              "advances": "234.56", "gift": "7.00", "spent": "100.00", "days": 3,
              "threshold_days": 5}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def contact_account(rt, name="notify-co", email_addr="pay@example.cn", phone="13800138000"):
    return new_account(rt, name, email=email_addr, phone=phone)


def outbox_rows(rt, uin=None):
    with rt.engine.connect() as conn:
        stmt = select(notification_outbox).order_by(notification_outbox.c.id)
        if uin is not None:
            stmt = stmt.where(notification_outbox.c.uin == uin)
        return [dict(r) for r in conn.execute(stmt).mappings()]


def notify(rt, uin, template="arrears_dunning", params=DUNNING, key="k1", **kw):
    with rt.engine.begin() as conn:
        return notifications.notify(conn, rt.clock, uin, template, params, key=key, **kw)


class Recorder:
    """An SMTP handler that keeps every message it accepts; refuses listed recipients."""

    def __init__(self, refuse=()):
        self.envelopes = []
        self.refuse = set(refuse)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server():
    handler = Recorder(refuse={"gone@example.cn"})
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.hostname, controller.port
    controller.stop()


# ---------------------------------------------------------------- templates (no database)

def test_every_template_renders_in_both_languages():
    required = {"arrears_dunning", "arrears_stop_warning", "resources_stopped",
                "resources_destroy_warning", "resources_destroyed", "arrears_repaid_restored",
                "balance_low"}
    assert required <= set(templates.TEMPLATES)
    for code, by_locale in templates.TEMPLATES.items():
        assert set(by_locale) == set(templates.LOCALES), code
        fields = [templates._fields(t.subject) | templates._fields(t.body)
                  | templates._fields(t.sms) for t in by_locale.values()]
        assert all(f == fields[0] for f in fields), f"{code}: locales need different params"
        zh = templates.render(code, "zh-CN", ALL_PARAMS)
        en = templates.render(code, "en", ALL_PARAMS)
        for text in (zh.subject, zh.body, zh.sms, en.subject, en.body, en.sms):
            assert "{" not in text and "}" not in text, (code, text)
            assert "100000000001" in text, (code, text)
        assert any("\u4e00" <= ch <= "\u9fff" for ch in zh.subject + zh.body), code
        assert zh.sms.startswith("【费用中心】") and en.sms.startswith("[Fee Center]")
        assert len(zh.sms) <= 140, (code, len(zh.sms))  # fits a long SMS


def test_missing_param_is_an_error_and_unknown_template_too():
    with pytest.raises(templates.MissingTemplateParam) as err:
        templates.render("arrears_stop_warning", "en", {"uin": 1, "account_name": "x",
                                                        "amount": "1.00"})
    assert err.value.field == "params" and err.value.details["missing"] == ["stop_at"]
    with pytest.raises(InvalidInput):
        templates.render("no_such_template", "zh-CN", ALL_PARAMS)
    with pytest.raises(InvalidInput):
        templates.render("balance_low", "fr", ALL_PARAMS)


def test_bilingual_in_site_text_is_zh_first_then_en():
    title, body = templates.render_bilingual("balance_low", ALL_PARAMS)
    assert title.index("余额预警") < title.index("Low balance")
    assert body.index("可用余额为 8.00 元") < body.index("CNY 8.00")


# ---------------------------------------------------------------- notify

@pytest.mark.spec("ARR-3")
def test_dunning_notice_says_what_is_owed_and_how_to_pay(rt):
    uin = contact_account(rt)
    with rt.engine.begin() as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "fin", "finance")
    ids = notify(rt, uin, key="arrears-entered-1")
    # in-site message, email, SMS: this finance user has no contacts of its own
    assert len(ids) == 3
    with rt.engine.connect() as conn:
        page = notifications.list_messages(conn, SYSTEM, uin)
    message = page["items"][0]
    assert message["id"] == ids[0] and message["template"] == "arrears_dunning"
    assert "催缴通知" in message["title"] and "Payment due" in message["title"]
    body = message["body"]
    assert "当前欠费金额为 1,234.56 元" in body and "the amount owed is CNY 1,234.56" in body
    assert "付款方式：登录控制台，在「在线充值」页面" in body  # how to pay: online recharge, zh
    assert "How to pay: recharge online in the console (Online recharge" in body  # and en
    assert "客户经理" in body and "account manager" in body  # or through the account manager
    assert body.index("尊敬的 notify-co") < body.index("Dear notify-co")
    email_row, sms_row = outbox_rows(rt, uin)
    assert (email_row["channel"], email_row["recipient"]) == ("email", "pay@example.cn")
    assert email_row["subject"] == "【催缴通知】您的账号 %d 已欠费 1,234.56 元" % uin
    assert "请尽快结清欠款" in email_row["body"] and "Dear" not in email_row["body"]
    assert (sms_row["channel"], sms_row["recipient"]) == ("sms", "13800138000")
    assert sms_row["body"].startswith("【费用中心】") and "1,234.56元" in sms_row["body"]
    assert {email_row["state"], sms_row["state"]} == {"pending"}


def test_notify_is_idempotent_by_key(rt):
    uin = contact_account(rt)
    first = notify(rt, uin, key="evt-1")
    rt.clock.advance(minutes=5)
    again = notify(rt, uin, params={"amount": "9.99"}, key="evt-1")
    assert again == first
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(in_site_messages)).scalar() == 1
    assert len(outbox_rows(rt)) == 2
    with pytest.raises(IdempotencyConflict):
        notify(rt, uin, template="balance_low", params={"available": "1", "threshold": "2"},
               key="evt-1")
    other = notify(rt, uin, key="evt-2")
    assert other[0] != first[0] and len(outbox_rows(rt)) == 4


def test_notify_without_contacts_writes_only_the_in_site_message(rt):
    uin = new_account(rt, "quiet-co")
    ids = notify(rt, uin, template="resources_stopped",
                 params={"amount": "3.00", "resources": "cvm-1", "destroy_at": "2026-03-10"},
                 key="stop-1")
    assert len(ids) == 1 and outbox_rows(rt) == []


def test_notify_refuses_bad_input_and_writes_nothing(rt):
    uin = contact_account(rt)
    with pytest.raises(templates.MissingTemplateParam):
        notify(rt, uin, template="resources_stopped", params={"amount": "1.00"}, key="x")
    with pytest.raises(InvalidInput):
        notify(rt, uin, key="")
    with pytest.raises(NotFound):
        notify(rt, 999, key="y")
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(in_site_messages)).scalar() == 0
    assert outbox_rows(rt) == []


# ---------------------------------------------------------------- who receives what

# kind -> who receives it (the account's contacts, user roles), by hand from ARR-3 and ACC-2 (docs/notifications.md): every
# kind that exists states money owed or the balance, so the account's contacts, the owner
# and the finance users; never an admin or a readonly user.
RECEIVERS = {code: {"account", "owner", "finance"} for code in (
    "arrears_dunning", "arrears_stop_warning", "resources_stopped",
    "resources_destroy_warning", "resources_destroyed", "arrears_repaid_restored",
    "balance_low", "balance_warning", "remittance_pending", "remittance_review_failed", "service_request_update",
    "renewal_stopped", "renewal_released", "renewal_recharge_reminder", "renewal_reminder",
    "invoice_reversal_update", "withdrawal_failed", "arrears_measure_offline",
    "arrears_measure_reclaim", "arrears_measure_damages", "arrears_measure_set_off",
    "account_cancelled")}
RECEIVERS.update({code: {"account", "owner", "finance", "admin"} for code in (
    "renewal_expiry_reminder", "renewal_price_change")})
# who, with which email and phone; the owner's are the account's contacts (ACC-1)
PEOPLE = {"fin": ("finance", "fin@example.cn", "13900000001"),
          "adm": ("admin", "adm@example.cn", "13900000002"),
          "ro": ("readonly", "ro@example.cn", "13900000003"),
          "fin-quiet": ("finance", None, None)}


def team_account(rt, name="team-co") -> tuple[int, dict]:
    """An account with contacts, a user of each role with its own email and phone, and a
    finance user without any; returns (uin, actor of each login, the owner's as "owner")."""
    uin = contact_account(rt, name)
    with rt.engine.begin() as conn:
        actors = {login: accounts.user_actor(conn, accounts.add_user(
            conn, rt.clock, OPS, uin, login, role, email=mail, phone=phone))
            for login, (role, mail, phone) in PEOPLE.items()}
        actors["owner"] = accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])
    return uin, actors


def expected_addresses(who: set[str]) -> set[tuple[str, str]]:
    found = {("email", "pay@example.cn"), ("sms", "13800138000")} if "account" in who else set()
    for role, mail, phone in PEOPLE.values():
        found |= {("email", mail), ("sms", phone)} if role in who and mail else set()
    return found


def seen_by(rt, actor, uin) -> list[str]:
    with rt.engine.connect() as conn:
        return [m["template"] for m in notifications.list_messages(conn, actor, uin)["items"]]


@pytest.mark.spec("ARR-3", "ACC-2")
@pytest.mark.parametrize("code", sorted(RECEIVERS))
def test_each_kind_reaches_the_recipients_its_rule_names_on_each_channel(rt, code):
    assert set(templates.TEMPLATES) == set(RECEIVERS)  # a new kind needs its row here
    uin, actors = team_account(rt)
    ids = notify(rt, uin, template=code, params=ALL_PARAMS, key=f"{code}-1")
    rows = outbox_rows(rt, uin)
    assert {(r["channel"], r["recipient"]) for r in rows} == expected_addresses(RECEIVERS[code])
    # each address once; the quiet user has none
    assert len(rows) == len(ids) - 1 == len(expected_addresses(RECEIVERS[code])) >= 4
    for login, actor in actors.items():
        assert seen_by(rt, actor, uin) == ([code] if actor.role in RECEIVERS[code] else []), login
    with rt.engine.begin() as conn, pytest.raises(NotFound):  # not its message to mark
        notifications.mark_read(conn, rt.clock, actors["ro"], uin, [ids[0]])
    with rt.engine.begin() as conn:
        assert notifications.mark_read(conn, rt.clock, actors["ro"], uin, None) == 0
        assert notifications.mark_read(conn, rt.clock, actors["fin"], uin, None) == 1


@pytest.mark.spec("ARR-3")
def test_a_user_added_over_rest_with_contacts_receives_its_notices_and_bad_ones_are_400(
        rest_shop):
    send, uin = rest_shop.customer.send, rest_shop.uin
    added = send("POST", f"/api/v1/accounts/{uin}/users", {
        "login": "fin", "role": "finance", "email": "fin@example.cn", "phone": "13900000001"})
    assert added.status_code == 201, added.text
    for field, value in (("email", "fin-at-example.cn"), ("phone", "call me")):
        bad = send("POST", f"/api/v1/accounts/{uin}/users",
                   {"login": "fin2", "role": "finance", field: value})
        error = bad.json()["error"]
        assert (bad.status_code, error["field"]) == (400, field), bad.text
        assert error["message_zh"] and error["message_en"]
    notify(rest_shop.rt, uin, key="rest-user-1")
    assert {(r["channel"], r["recipient"]) for r in outbox_rows(rest_shop.rt, uin)} == {
        ("email", "fin@example.cn"), ("sms", "13900000001")}


def test_no_notice_names_a_way_of_paying_that_does_not_exist():
    """Customers cannot see their receiving numbers yet (no console page): the payment
    notices name online recharge (在线充值) and the platform crediting a payment, never a
    transfer or a remittance (the remittance notices themselves aside)."""
    missing = ("转账", "汇款", "transfer", "remittance")
    for code in (c for c in templates.TEMPLATES if not c.startswith("remittance_")):
        for locale in templates.LOCALES:
            rendered = templates.render(code, locale, ALL_PARAMS)
            for text in (rendered.subject, rendered.body, rendered.sms):
                assert not [w for w in missing if w in text.lower()], (code, locale, text)
    dunning = templates.render_bilingual("arrears_dunning", ALL_PARAMS)[1]
    assert dunning.index("「在线充值」") < dunning.index("Online recharge: WeChat Pay")


# ---------------------------------------------------------------- reading in-site messages

def test_list_and_mark_read_with_permissions(rt):
    uin = contact_account(rt)
    other = new_account(rt, "other-co")
    with rt.engine.begin() as conn:
        reader = accounts.user_actor(conn, accounts.add_user(conn, rt.clock, OPS, uin, "fin",
                                                             "finance"))
        outsider = accounts.user_actor(conn, accounts.find_user(conn, other, None)["id"])
    ids = [notify(rt, uin, key=f"evt-{i}")[0] for i in range(3)]
    other_msg = notify(rt, other, key="other-evt")[0]

    with rt.engine.connect() as conn:
        page = notifications.list_messages(conn, reader, uin, limit=2)
        assert page["total"] == 3 and page["unread"] == 3
        assert [m["id"] for m in page["items"]] == [ids[2], ids[1]]  # newest first
        assert [m["id"] for m in notifications.list_messages(
            conn, reader, uin, offset=2, limit=2)["items"]] == [ids[0]]
        with pytest.raises(PermissionDenied):
            notifications.list_messages(conn, outsider, uin)
        with pytest.raises(InvalidInput):
            notifications.list_messages(conn, reader, uin, limit=1000)

    rt.clock.advance(hours=1)
    with rt.engine.begin() as conn:
        assert notifications.mark_read(conn, rt.clock, reader, uin, [ids[0], ids[1]]) == 2
        assert notifications.mark_read(conn, rt.clock, reader, uin, [ids[0]]) == 0
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        notifications.mark_read(conn, rt.clock, outsider, uin, [ids[2]])
    with rt.engine.begin() as conn, pytest.raises(NotFound):
        notifications.mark_read(conn, rt.clock, reader, uin, [ids[2], other_msg])
    with rt.engine.connect() as conn:
        unread = notifications.list_messages(conn, reader, uin, unread_only=True)
        assert unread["total"] == 1 and unread["unread"] == 1
        assert [m["id"] for m in unread["items"]] == [ids[2]]  # the refused call marked nothing
        read = {m["id"]: m for m in notifications.list_messages(conn, reader, uin)["items"]}
        assert read[ids[0]]["read"] and read[ids[0]]["read_at"] is not None
        assert notifications.list_messages(conn, SYSTEM, other)["unread"] == 1
    with rt.engine.begin() as conn:
        assert notifications.mark_read(conn, rt.clock, reader, uin, None) == 1


@pytest.fixture
def notification_server(engine, database_url):
    """The app with the notifications router, served on a free port (real clock)."""
    import uvicorn

    from feecenter.api import notifications as notification_routes
    from feecenter.api.app import create_app
    from feecenter.clock import SystemClock
    from feecenter.runtime import Runtime
    from tests.conftest import MASTER_KEY

    runtime = Runtime(engine=engine, clock=SystemClock(),
                      settings=Settings(home=None, database_url=database_url,
                                        master_key=MASTER_KEY))
    app = create_app(runtime)
    if not any(getattr(r, "path", None) == "/api/v1/accounts/{uin}/messages"
               for r in app.routes):
        app.include_router(notification_routes.router)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    yield runtime, f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_rest_messages_list_and_mark_read(notification_server):
    rt, base = notification_server
    uin, other = contact_account(rt), new_account(rt, "rest-other")
    ids = [notify(rt, uin, key=f"rest-{i}")[0] for i in range(2)]
    with rt.engine.begin() as conn:
        key = auth.create_api_key(conn, rt.clock, OPS, uin, None)
        other_key = auth.create_api_key(conn, rt.clock, OPS, other, None)
    client = FeeCenterClient(base, key.secret_id, key.secret_key)
    page = client.get(f"/api/v1/accounts/{uin}/messages", "unread=true&limit=10")
    assert page["total"] == 2 and page["unread"] == 2
    assert page["items"][0]["id"] == ids[1] and "催缴通知" in page["items"][0]["title"]
    assert page["items"][0]["read_at"] is None and len(page["items"][0]["created_at"]) == 19
    assert client.post(f"/api/v1/accounts/{uin}/messages/read", {"ids": [ids[0]]}) == {
        "marked": 1, "unread": 1}
    later = FeeCenterClient(base, key.secret_id, key.secret_key, clock=lambda: time.time() + 1)
    assert later.get(f"/api/v1/accounts/{uin}/messages", "unread=true")["total"] == 1
    assert later.post(f"/api/v1/accounts/{uin}/messages/read", {"all": True})["unread"] == 0
    with pytest.raises(ApiError) as err:
        client.post(f"/api/v1/accounts/{uin}/messages/read", {})
    assert err.value.status == 400 and err.value.body["error"]["field"] == "ids"
    outsider = FeeCenterClient(base, other_key.secret_id, other_key.secret_key)
    with pytest.raises(ApiError) as err:
        outsider.get(f"/api/v1/accounts/{uin}/messages")
    assert err.value.status == 403


# ---------------------------------------------------------------- delivery

def test_email_is_delivered_to_a_real_smtp_server(rt, smtp_server):
    handler, host, port = smtp_server
    uin = contact_account(rt, email_addr="finance@example.cn")
    notify(rt, uin, key="mail-1")
    sender = SmtpEmailSender(host, port, from_addr="费用中心 <billing@cloud.example>",
                             timeout_s=5)
    counts = notifications.deliver_pending(rt.engine, rt.clock, {"email": sender})
    assert counts == {"sent": 1, "retrying": 0, "failed": 0}
    [envelope] = handler.envelopes
    assert envelope.rcpt_tos == ["finance@example.cn"]
    assert envelope.mail_from == "billing@cloud.example"
    received = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
    assert received["To"] == "finance@example.cn"
    assert str(received["Subject"]) == f"【催缴通知】您的账号 {uin} 已欠费 1,234.56 元"
    assert received["From"].addresses[0].display_name == "费用中心"
    assert received.get_content_charset() == "utf-8"
    text = received.get_content()
    assert f"您的账号（UIN：{uin}）于 2026-03-02 10:00:00 进入欠费状态" in text
    assert "当前欠费金额为 1,234.56 元" in text and "客户经理" in text
    row = outbox_rows(rt, uin)[0]
    assert (row["state"], row["attempts"], row["last_error"]) == ("sent", 1, None)
    assert row["sent_at"] is not None
    assert received["Message-ID"] == f"<feecenter.outbox.{row['id']}@cloud.example>"
    # the SMS row waits: no SMS sender was given
    sms = outbox_rows(rt, uin)[1]
    assert (sms["state"], sms["attempts"]) == ("pending", 0)
    assert notifications.deliver_pending(rt.engine, rt.clock, {"email": sender})["sent"] == 0
    assert len(handler.envelopes) == 1


def test_smtp_down_retries_with_backoff_then_fails(rt):
    uin = contact_account(rt, phone=None)
    notify(rt, uin, key="down-1")
    dead = SmtpEmailSender("127.0.0.1", free_port(), timeout_s=2)  # nothing listens there
    deliver = lambda: notifications.deliver_pending(  # noqa: E731
        rt.engine, rt.clock, {"email": dead}, max_attempts=3)
    assert deliver() == {"sent": 0, "retrying": 1, "failed": 0}
    [row] = outbox_rows(rt)
    assert (row["state"], row["attempts"]) == ("pending", 1)
    assert "ConnectionRefusedError" in row["last_error"]
    assert deliver() == {"sent": 0, "retrying": 0, "failed": 0}  # not due yet
    rt.clock.advance(seconds=notifications.retry_delay_s(1))
    assert deliver() == {"sent": 0, "retrying": 1, "failed": 0}
    assert outbox_rows(rt)[0]["attempts"] == 2
    rt.clock.advance(seconds=notifications.retry_delay_s(2))
    assert deliver() == {"sent": 0, "retrying": 0, "failed": 1}
    [row] = outbox_rows(rt)
    assert (row["state"], row["attempts"]) == ("failed", 3) and row["last_error"]
    rt.clock.advance(days=1)
    assert deliver() == {"sent": 0, "retrying": 0, "failed": 0}


def test_email_disabled_leaves_rows_pending_and_refused_recipient_fails_at_once(
        rt, smtp_server, tmp_path):
    handler, host, port = smtp_server
    uin = contact_account(rt, email_addr="gone@example.cn", phone=None)
    notify(rt, uin, key="gone-1")
    disabled = senders_mod.senders_from_settings(
        Settings(home=tmp_path, database_url="", master_key=None))
    assert set(disabled) == {"sms"}
    assert notifications.deliver_pending(rt.engine, rt.clock, disabled)["sent"] == 0
    assert (outbox_rows(rt)[0]["state"], outbox_rows(rt)[0]["attempts"]) == ("pending", 0)
    enabled = senders_mod.senders_from_settings(
        Settings(home=tmp_path, database_url="", master_key=None, smtp_host=host,
                 smtp_port=port))
    assert isinstance(enabled["email"], SmtpEmailSender)
    assert notifications.deliver_pending(rt.engine, rt.clock, enabled) == {
        "sent": 0, "retrying": 0, "failed": 1}
    [row] = outbox_rows(rt)
    assert row["state"] == "failed" and row["attempts"] == 1 and "550" in row["last_error"]
    assert handler.envelopes == []


def test_sms_log_sender_writes_one_json_line(rt, tmp_path, caplog):
    uin = contact_account(rt, email_addr=None)
    notify(rt, uin, key="sms-1")
    path = tmp_path / "sms" / "sms.log"
    with caplog.at_level("INFO", logger="feecenter.notifications"):
        counts = notifications.deliver_pending(rt.engine, rt.clock, {"sms": LogSmsSender(path)})
    assert counts["sent"] == 1
    [line] = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(line)
    assert record["to"] == "13800138000" and record["uin"] == uin
    assert record["template"] == "arrears_dunning" and record["locale"] == "zh-CN"
    assert record["text"].startswith("【费用中心】") and "已欠费1,234.56元" in record["text"]
    assert record["at"] == "2026-03-02 10:00:00"
    assert "13800138000" in caplog.text
    assert outbox_rows(rt)[0]["state"] == "sent"


def test_sender_registry_plugs_in_an_sms_gateway(rt, tmp_path):
    sent = []

    class Gateway:
        channel = "sms"

        def send(self, message):
            sent.append((message.recipient, message.body))

    senders_mod.register_sender("sms", "test-gateway", lambda settings: Gateway())
    settings = Settings(home=tmp_path, database_url="", master_key=None,
                        sms_sender="test-gateway")
    uin = contact_account(rt, email_addr=None)
    notify(rt, uin, key="gw-1", locale="en")
    notifications.deliver_pending(rt.engine, rt.clock, senders_mod.senders_from_settings(settings))
    assert sent == [("13800138000", f"[Fee Center] Account {uin} owes CNY 1,234.56. Please "
                     "recharge online in the console, or your resources will be stopped "
                     "and deleted.")]
    with pytest.raises(ValueError, match="no sms sender named 'nope'"):
        senders_mod.senders_from_settings(Settings(home=tmp_path, database_url="",
                                                   master_key=None, sms_sender="nope"))


def test_crashed_claim_is_retried_after_its_lease(rt):
    uin = contact_account(rt, email_addr=None)
    notify(rt, uin, key="lease-1")
    claimed = notifications._claim(rt.engine, rt.clock, ["sms"])  # the worker then dies
    assert claimed["attempts"] == 1
    sent = []

    class Fake:
        channel = "sms"

        def send(self, message):
            sent.append(message.outbox_id)

    assert notifications.deliver_pending(rt.engine, rt.clock, {"sms": Fake()})["sent"] == 0
    rt.clock.advance(seconds=notifications.LEASE_S)
    assert notifications.deliver_pending(rt.engine, rt.clock, {"sms": Fake()})["sent"] == 1
    assert sent == [claimed["id"]] and outbox_rows(rt)[0]["attempts"] == 2


def test_two_concurrent_workers_never_send_a_row_twice(rt, database_url):
    uin = contact_account(rt)
    for i in range(40):
        notify(rt, uin, key=f"burst-{i}")
    rows = outbox_rows(rt)
    assert len(rows) == 80
    sent: list[tuple[int, int]] = []
    lock = threading.Lock()

    class Slow:
        def __init__(self, channel, worker):
            self.channel, self.worker = channel, worker

        def send(self, message):
            time.sleep(0.005)  # a slow gateway widens the race
            with lock:
                sent.append((self.worker, message.outbox_id))

    start = threading.Barrier(2)
    results, errors = {}, []

    def work(worker):
        try:
            start.wait(timeout=30)
            results[worker] = notifications.deliver_pending(
                rt.engine, rt.clock, {"email": Slow("email", worker), "sms": Slow("sms", worker)},
                batch=1000)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    ids = [outbox_id for _, outbox_id in sent]
    assert len(ids) == len(set(ids)) == 80
    assert sorted(ids) == [r["id"] for r in rows]
    assert results[1]["sent"] + results[2]["sent"] == 80
    assert {r["state"] for r in outbox_rows(rt)} == {"sent"}
    assert {r["attempts"] for r in outbox_rows(rt)} == {1}
    if rt.engine.dialect.name == "postgresql":  # SKIP LOCKED: both really worked in parallel
        assert results[1]["sent"] > 0 and results[2]["sent"] > 0


def test_outbox_is_listable_by_operators_only(rt):
    uin = contact_account(rt)
    notify(rt, uin, key="ops-1")
    with rt.engine.begin() as conn:
        rows = notifications.list_outbox(conn, OPS, uin=uin, state="pending")
        assert [r["channel"] for r in rows] == ["sms", "email"]
        owner = accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])
        with pytest.raises(PermissionDenied):
            notifications.list_outbox(conn, owner, uin=uin)
