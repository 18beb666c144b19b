"""Service requests (工单, SRV-1..2) and the precision-difference compensation kind
(SET-3) through the service layer, on SQLite and PostgreSQL: typed fields, states and
their conditional transitions, history and notices, attachments sniffed by their bytes,
due times in working days (the CN calendar) and the overdue flag, crediting a month's
positive precision difference once."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from feecenter.accounts.permissions import Actor, operator
from feecenter.audit.tables import audit_log
from feecenter.clock import BUSINESS_TZ, db_time
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, PermissionDenied
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.notifications.tables import in_site_messages
from feecenter.service_requests import rules
from feecenter.service_requests import service as srv
from feecenter.service_requests.kinds import PRECISION_COMPENSATION
from feecenter.service_requests.tables import (
    precision_compensations,
    service_request_attachments,
    service_request_events,
    service_requests,
)
from feecenter.settlement.tables import bill_lines
from feecenter.workdays import is_working_day
from tests.helpers import assert_reconciled, balance, new_account, row_counts

ALICE = operator("alice")
BOB = operator("bob")
PDF = b"%PDF-1.7\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
COMPENSATION = PRECISION_COMPENSATION


def owner(uin: int) -> Actor:
    return Actor(kind="user", name=f"owner-{uin}", uin=uin, role="owner")


def add_lines(rt, uin: int, diffs: list[int], when: datetime) -> None:
    """Bill lines deducted at ``when`` whose rounding differences (1e-8 yuan) are
    ``diffs``: what settlement writes (SET-3), without rating real usage."""
    rows = []
    for i, diff in enumerate(diffs):
        deducted = 100  # fen
        rows.append({
            "uin": uin, "resource_id": f"ins-{uin}-{when:%m%d}-{i}", "product_code": "cvm",
            "region": "ap-guangzhou", "billing_item": "cpu", "project_id": 0,
            "project_name": "默认项目", "cycle": "hour", "period_key": f"{when:%Y%m%d%H}",
            "period_start": db_time(when), "period_end": db_time(when + timedelta(hours=1)),
            "quantity": 1_000_000, "price_kind": "list", "unit_price": 1, "list_amount": 1,
            "discount_bp": 10000, "discounted_amount": deducted * 1_000_000 - diff,
            "deducted": deducted, "rounding_diff": diff, "voucher_paid": 0,
            "cash_paid": deducted, "gift_paid": 0, "credit_paid": 0, "arrears": 0,
            "deducted_at": db_time(when), "kind": "charge", "sequence": 0})
    with transaction(rt.engine) as conn:
        conn.execute(insert(bill_lines), rows)


FEBRUARY = datetime(2026, 2, 10, 4, 0, tzinfo=timezone.utc)  # the clock starts on 2 March


@pytest.fixture
def shop(rt):
    uin = new_account(rt, "srv-shop")
    # 2.6 fen overpaid in February: 3 fen back (half-up); March's lines are not February's
    add_lines(rt, uin, [1_000_000, 900_000, 700_000], FEBRUARY)
    add_lines(rt, uin, [500_000], datetime(2026, 3, 1, 16, 30, tzinfo=timezone.utc))
    return uin


def file(rt, uin, fields=None, actor=None, uploads=()):
    with transaction(rt.engine) as conn:
        return srv.file_request(conn, rt.clock, actor or owner(uin), uin, COMPENSATION,
                                {"month": "2026-02"} if fields is None else fields, uploads)


def act(rt, verb, request_id, actor=ALICE, *args):
    with transaction(rt.engine) as conn:
        return getattr(srv, verb)(conn, rt.clock, actor, request_id, *args)


def read(rt, request_id, actor=ALICE):
    with rt.engine.connect() as conn:
        return srv.get_request(conn, rt.clock, actor, request_id)


# ---------------------------------------------------------------- the kinds

@pytest.mark.spec("SRV-1")
def test_kinds_list_the_compensation_with_its_typed_fields():
    kinds = {k["code"]: k for k in srv.list_kinds()}
    compensation = kinds[COMPENSATION]
    assert compensation["name_zh"] == "精度差异补偿"
    assert [(f["name"], f["type"], f["required"]) for f in compensation["fields"]] == [
        ("month", "month", True), ("note", "text", False)]
    assert compensation["due_working_days"] == 5
    assert compensation["attachments"] == {"required": False, "max_count": 3}


@pytest.mark.parametrize(("field", "value", "zh", "en"), [
    ("amount", "12.345", "金额", "amount"),
    ("amount", 12, "金额", "amount"),
    ("phone", "12345", "电话", "phone"),
    ("bank", "6222-0000", "银行账号", "bank account"),
    ("day", "2026-02-30", "日期", "date"),
    ("choice", "maybe", "类型", "type"),
    ("flag", "true", "是否", "flag"),
    ("text", "x" * 11, "文本", "text"),
])
def test_each_field_type_refuses_bad_values_naming_the_field(field, value, zh, en):
    fields = (rules.Field("amount", "金额", "amount", rules.AMOUNT, required=False),
              rules.Field("phone", "电话", "phone", rules.PHONE, required=False),
              rules.Field("bank", "银行账号", "bank account", rules.BANK_ACCOUNT, required=False),
              rules.Field("day", "日期", "date", rules.DATE, required=False),
              rules.Field("choice", "类型", "type", rules.CHOICE, required=False,
                          choices=(("a", "甲", "A"), ("b", "乙", "B"))),
              rules.Field("flag", "是否", "flag", rules.BOOLEAN, required=False),
              rules.Field("text", "文本", "text", rules.TEXT, required=False, max_length=10))
    with pytest.raises(InvalidInput) as refused:
        rules.validate_fields(fields, {field: value})
    assert refused.value.field == f"fields.{field}"
    assert refused.value.message_zh.startswith(zh) and refused.value.message_en.startswith(en)


def test_good_values_are_normalised():
    fields = (rules.Field("amount", "金额", "amount", rules.AMOUNT),
              rules.Field("phone", "电话", "phone", rules.PHONE),
              rules.Field("bank", "银行账号", "bank account", rules.BANK_ACCOUNT),
              rules.Field("day", "日期", "date", rules.DATE),
              rules.Field("flag", "是否", "flag", rules.BOOLEAN))
    assert rules.validate_fields(fields, {
        "amount": "12.30", "phone": "13800138000", "bank": "6222000011112222",
        "day": "2026-02-28", "flag": False}) == {
        "amount": 1230, "phone": "13800138000", "bank": "6222000011112222",
        "day": "2026-02-28", "flag": False}


# ---------------------------------------------------------------- filing

@pytest.mark.spec("SRV-1", "SET-3")
@pytest.mark.parametrize(("fields", "field", "zh"), [
    ({}, "fields.month", "月份：必填"),
    ({"month": "2026-2"}, "fields.month", "月份：月份格式应为 YYYY-MM"),
    ({"month": "２０２６-02"}, "fields.month", "月份：月份格式应为 YYYY-MM"),
    ({"month": "2026-03"}, "fields.month", "月份：只能申请已结束月份"),
    ({"month": "2026-01"}, "fields.month", "月份：该月没有可申请补偿"),
    ({"month": "2026-02", "note": "x" * 501}, "fields.note", "说明："),
    ({"month": "2026-02", "amount": "1.00"}, "fields.amount", "未知字段"),
    ("2026-02", "fields", "fields 必须是对象"),
])
def test_bad_input_names_the_field_and_writes_nothing(rt, shop, fields, field, zh):
    with pytest.raises(InvalidInput) as refused:
        file(rt, shop, fields)
    assert refused.value.field == field
    assert refused.value.message_zh.startswith(zh) and refused.value.message_en
    assert row_counts(rt, service_requests, service_request_events, in_site_messages) == (0, 0, 0)


def test_an_unknown_kind_is_refused(rt, shop):
    with transaction(rt.engine) as conn, pytest.raises(InvalidInput) as refused:
        srv.file_request(conn, rt.clock, owner(shop), shop, "no_such_kind", {})
    assert refused.value.field == "kind"


@pytest.mark.spec("SET-3")
def test_a_negative_month_cannot_be_claimed(rt):
    uin = new_account(rt, "waived")
    add_lines(rt, uin, [-900_000], FEBRUARY)
    with pytest.raises(InvalidInput, match="no positive precision difference"):
        file(rt, uin)


@pytest.mark.spec("SRV-1", "ACC-2")
def test_only_the_accounts_finance_users_file_and_read(rt, shop):
    other = new_account(rt, "other-co")
    with pytest.raises(PermissionDenied):
        file(rt, shop, actor=owner(other))
    readonly = Actor(kind="user", name="ro", uin=shop, role="readonly")
    with pytest.raises(PermissionDenied):
        file(rt, shop, actor=readonly)
    request = file(rt, shop)
    with pytest.raises(PermissionDenied):
        read(rt, request["id"], owner(other))
    with pytest.raises(PermissionDenied):
        act(rt, "take", request["id"], owner(shop))


# ---------------------------------------------------------------- the life of a request

@pytest.mark.spec("SRV-1", "SRV-2", "SET-3")
def test_resolving_a_compensation_credits_the_month_once_under_the_operator(rt, shop):
    request = file(rt, shop, {"month": "2026-02", "note": "二月多扣了"})
    assert request["state"] == "submitted" and request["fields"] == {
        "month": "2026-02", "note": "二月多扣了"}
    act(rt, "take", request["id"])
    done = act(rt, "resolve", request["id"], BOB, "已核对")
    assert done["state"] == "resolved" and done["ended_by"] == "operator:bob"
    assert done["result"]["amount"] == "0.03" and done["result"]["difference"] == 2_600_000
    assert balance(rt, shop).cash == 3
    assert [e["event"] for e in done["events"]] == ["submitted", "taken", "resolved"]
    assert [e["actor"] for e in done["events"]][1:] == ["operator:alice", "operator:bob"]
    with rt.engine.connect() as conn:
        audited = conn.execute(select(audit_log.c.actor, audit_log.c.action)
                               .where(audit_log.c.uin == shop).order_by(audit_log.c.id)).all()
        entry = conn.execute(select(statement_entries.c.action_type, statement_entries.c.amount,
                                    statement_entries.c.memo)
                             .where(statement_entries.c.uin == shop)).one()
        titles = conn.execute(select(in_site_messages.c.title).where(
            in_site_messages.c.uin == shop).order_by(in_site_messages.c.id)).scalars().all()
        claimed = conn.execute(select(precision_compensations)).mappings().one()
    assert ("operator:bob", "adjust") in audited
    assert ("operator:bob", "service_request.resolve") in audited
    assert ("operator:alice", "service_request.take") in audited
    assert entry.amount == 3 and "2026-02" in entry.memo
    assert [t.split("：")[-1].split(" / ")[0] for t in titles] == ["待处理", "处理中", "已解决"]
    assert (claimed["uin"], claimed["month"], claimed["amount"]) == (shop, "2026-02", 3)
    assert claimed["txn_id"] == done["result"]["txn_id"]
    assert_reconciled(rt)


@pytest.mark.spec("SRV-2", "SET-3")
def test_a_second_resolve_conflicts_and_credits_nothing_more(rt, shop):
    request = file(rt, shop)
    act(rt, "take", request["id"])
    act(rt, "resolve", request["id"])
    with pytest.raises(Conflict, match="已解决"):
        act(rt, "resolve", request["id"], BOB)
    assert balance(rt, shop).cash == 3
    with pytest.raises(Conflict):  # the month is claimed: no new request about it
        file(rt, shop)


@pytest.mark.spec("SET-3")
def test_a_month_is_compensated_once_even_through_two_requests(rt, shop):
    """Two requests about one month that got past filing (e.g. filed at the same moment):
    the (account, month) claim lets only the first resolution credit."""
    first = file(rt, shop)
    act(rt, "reject", first["id"], ALICE, "重复")
    second = file(rt, shop)  # allowed: the first was rejected
    with transaction(rt.engine) as conn:  # a twin the filing check did not see
        twin = conn.execute(insert(service_requests).values(
            uin=shop, kind=COMPENSATION, state="processing", fields='{"month": "2026-02"}',
            subject="2026-02", created_by="test", created_at=db_time(rt.clock.now()),
            due_at=db_time(rt.clock.now())).returning(service_requests.c.id)).scalar_one()
    act(rt, "take", second["id"])
    act(rt, "resolve", second["id"])
    with pytest.raises(Conflict, match="compensated already"):
        act(rt, "resolve", twin)
    assert read(rt, twin)["state"] == "processing"  # the failed action rolled the claim back
    assert balance(rt, shop).cash == 3


def test_a_failing_action_rolls_the_resolution_back(rt, shop):
    request = file(rt, shop)
    act(rt, "take", request["id"])
    add_lines(rt, shop, [-5_000_000], FEBRUARY + timedelta(days=1))  # now negative
    with pytest.raises(InvalidInput):
        act(rt, "resolve", request["id"])
    after = read(rt, request["id"])
    assert after["state"] == "processing" and [e["event"] for e in after["events"]] == [
        "submitted", "taken"]
    assert balance(rt, shop).cash == 0


@pytest.mark.spec("SRV-2")
def test_reject_needs_a_reason_the_customer_sees(rt, shop):
    request = file(rt, shop)
    with pytest.raises(InvalidInput) as refused:
        act(rt, "reject", request["id"], ALICE, "  ")
    assert refused.value.field == "reason"
    act(rt, "reject", request["id"], ALICE, "金额有误")
    seen = read(rt, request["id"], owner(shop))
    assert (seen["state"], seen["reason"], seen["state_zh"]) == ("rejected", "金额有误", "已驳回")
    with pytest.raises(Conflict):
        act(rt, "take", request["id"])
    assert balance(rt, shop).cash == 0


@pytest.mark.spec("SRV-2")
def test_the_customer_withdraws_only_before_an_operator_takes_it(rt, shop):
    request = file(rt, shop)
    gone = act(rt, "withdraw", request["id"], owner(shop))
    assert gone["state"] == "withdrawn" and gone["state_zh"] == "已撤销"
    again = file(rt, shop)  # a withdrawn request does not block the month
    act(rt, "take", again["id"])
    with pytest.raises(Conflict, match="处理中"):
        act(rt, "withdraw", again["id"], owner(shop))
    with pytest.raises(Conflict):  # resolve needs an operator to take it first
        act(rt, "resolve", file(rt, new_and_claimable(rt))["id"])


def new_and_claimable(rt) -> int:
    uin = new_account(rt, "second-shop")
    add_lines(rt, uin, [1_000_000], FEBRUARY)
    return uin


# ---------------------------------------------------------------- attachments

@pytest.mark.spec("SRV-1")
def test_attachments_are_sniffed_stored_with_their_hash_and_counted(rt, shop):
    request = file(rt, shop, uploads=(srv.Upload("对账单.pdf", PDF),))
    assert [(a["filename"], a["content_type"]) for a in request["attachments"]] == [
        ("对账单.pdf", "application/pdf")]
    with transaction(rt.engine) as conn:
        png = srv.add_attachment(conn, rt.clock, owner(shop), request["id"],
                                 srv.Upload("../../etc/scan.pdf", PNG))
    assert png["content_type"] == "image/png" and png["filename"] == "scan.pdf"
    with rt.engine.connect() as conn:
        stored = srv.get_attachment(conn, owner(shop), request["id"], png["id"])
    assert bytes(stored["content"]) == PNG and len(stored["sha256"]) == 64
    with transaction(rt.engine) as conn:
        srv.add_attachment(conn, rt.clock, owner(shop), request["id"], srv.Upload("c.pdf", PDF))
    with transaction(rt.engine) as conn, pytest.raises(InvalidInput, match="at most 3"):
        srv.add_attachment(conn, rt.clock, owner(shop), request["id"], srv.Upload("d.pdf", PDF))


@pytest.mark.spec("SRV-1")
@pytest.mark.parametrize(("content", "message"), [
    (b"<html><script>alert(1)</script></html>", "PDF, PNG or JPEG"),
    (b"  %PDF-1.4 <html>", "PDF, PNG or JPEG"),
    (b"%PDF-" + b"0" * rules.MAX_ATTACHMENT_BYTES, "too large"),
    (b"", "empty"),
])
def test_bad_attachments_are_refused_and_nothing_is_written(rt, shop, content, message):
    with pytest.raises(InvalidInput, match=message) as refused:
        file(rt, shop, uploads=(srv.Upload("invoice.pdf", content),))
    assert refused.value.field == "attachment"
    assert row_counts(rt, service_requests, service_request_attachments) == (0, 0)


def test_attachments_only_while_submitted_and_only_by_the_account(rt, shop):
    request = file(rt, shop)
    other = new_account(rt, "nosy")
    with transaction(rt.engine) as conn, pytest.raises(PermissionDenied):
        srv.add_attachment(conn, rt.clock, owner(other), request["id"], srv.Upload("a.pdf", PDF))
    act(rt, "take", request["id"])
    with transaction(rt.engine) as conn, pytest.raises(Conflict):
        srv.add_attachment(conn, rt.clock, owner(shop), request["id"], srv.Upload("a.pdf", PDF))


# ---------------------------------------------------------------- due times, overdue

@pytest.mark.spec("SRV-2")
def test_due_time_counts_working_days_across_the_spring_festival():
    # 2026: off 15-23 February; Saturday 14 February is a make-up working day
    assert is_working_day(date(2026, 2, 14)) and not is_working_day(date(2026, 2, 16))
    friday = datetime(2026, 2, 13, 10, 0, tzinfo=BUSINESS_TZ)
    due = rules.due_at(friday, 5)
    # 14 (make-up Saturday), 24, 25, 26, 27: due at the end of Friday 27 February
    assert due == datetime(2026, 2, 28, 0, 0, tzinfo=BUSINESS_TZ)
    assert rules.due_at(datetime(2026, 2, 13, 23, 59, tzinfo=BUSINESS_TZ), 1) == datetime(
        2026, 2, 15, 0, 0, tzinfo=BUSINESS_TZ)


@pytest.mark.spec("SRV-2")
def test_overdue_requests_are_flagged_once_and_shown_in_the_queue(rt, shop):
    request = file(rt, shop)  # Monday 2 March 2026, 10:00: 5 working days -> end of 9 March
    assert request["due_at"] == datetime(2026, 3, 9, 16, 0)
    late = file(rt, new_and_claimable(rt))
    act(rt, "take", late["id"])
    done = file(rt, new_account_with_lines(rt, "third"))
    act(rt, "withdraw", done["id"], owner(done["uin"]))
    rt.clock.advance(days=7)  # Monday 9 March, 10:00: not yet
    with transaction(rt.engine) as conn:
        assert srv.flag_overdue(conn, rt.clock) == 0
    rt.clock.advance(hours=14)  # Tuesday 10 March, 00:00
    with transaction(rt.engine) as conn:
        assert srv.flag_overdue(conn, rt.clock) == 2
        assert srv.flag_overdue(conn, rt.clock) == 0
    with rt.engine.connect() as conn:
        overdue = srv.queue(conn, rt.clock, ALICE, overdue=True)
        by_kind = srv.queue(conn, rt.clock, ALICE, kind=COMPENSATION, uin=shop)
        events = conn.execute(select(func.count()).select_from(service_request_events)
                              .where(service_request_events.c.event == "overdue")).scalar()
        with pytest.raises(PermissionDenied):
            srv.queue(conn, rt.clock, owner(shop))
    assert {r["id"] for r in overdue["items"]} == {request["id"], late["id"]}
    assert all(r["overdue"] and r["overdue_at"] for r in overdue["items"])
    assert [r["id"] for r in by_kind["items"]] == [request["id"]] and events == 2


def new_account_with_lines(rt, name: str) -> int:
    uin = new_account(rt, name)
    add_lines(rt, uin, [1_000_000], FEBRUARY)
    return uin


def test_the_hourly_job_flags_overdue_requests(rt, shop):
    from feecenter.jobs.loader import load_all
    from feecenter.periods import HOURLY, period_containing

    job = load_all().get("service_requests.flag_overdue")
    request = file(rt, shop)
    rt.clock.advance(days=8)
    period = period_containing(HOURLY, rt.clock.now())
    assert job.cadence == HOURLY
    assert job.func(rt.engine, rt.clock, period) == {"flagged": 1}
    assert job.func(rt.engine, rt.clock, period) == {"flagged": 0}  # a rerun changes nothing
    assert read(rt, request["id"])["overdue_at"] is not None


def test_every_event_is_in_the_history_in_order(rt, shop):
    request = file(rt, shop)
    with transaction(rt.engine) as conn:
        srv.add_attachment(conn, rt.clock, owner(shop), request["id"], srv.Upload("a.pdf", PDF))
    act(rt, "reject", request["id"], BOB, "资料不全")
    events = read(rt, request["id"], owner(shop))["events"]
    assert [(e["event"], e["state"], e["note"]) for e in events] == [
        ("submitted", "submitted", None), ("attached", "submitted", "a.pdf"),
        ("rejected", "rejected", "资料不全")]
    with rt.engine.connect() as conn:
        txns = conn.execute(select(func.count()).select_from(ledger_transactions)
                            .where(ledger_transactions.c.uin == shop)).scalar()
    assert txns == 0


# ---------------------------------------------------------------- a kind added by a test

@pytest.mark.spec("SRV-1", "SRV-2")
def test_a_new_kind_is_one_registration_and_its_action_runs_once(rt, monkeypatch):
    """The framework with a kind of its own: required attachment, typed fields, an action
    that sees the claimed request (amounts in fen) and the operator; what it returns is
    stored; REST's rendering shows the amount as yuan."""
    from feecenter.present.service_requests import request_json
    from feecenter.service_requests import kinds

    calls = []

    def action(conn, clock, operator, request):
        calls.append((operator.label, request["state"], request["fields"]))
        return {"done": True}

    kind = kinds.Kind(
        code="test_refund", zh="测试退款", en="Test refund", due_working_days=15,
        fields=(rules.Field("amount", "金额", "amount", rules.AMOUNT),
                rules.Field("invoiced", "是否已开票", "invoiced", rules.BOOLEAN),
                rules.Field("phone", "联系电话", "phone", rules.PHONE, required=False)),
        attachments=kinds.Attachments(required=True, max_count=1), action=action)
    monkeypatch.setitem(kinds.KINDS, kind.code, kind)
    uin = new_account(rt, "kind-shop")
    with transaction(rt.engine) as conn, pytest.raises(InvalidInput, match="needs an attachment"):
        srv.file_request(conn, rt.clock, owner(uin), uin, "test_refund",  # a form without one
                         {"amount": "12.30", "invoiced": False}, ())
    with transaction(rt.engine) as conn:  # REST: the attachments follow
        made = srv.file_request(conn, rt.clock, owner(uin), uin, "test_refund",
                                {"amount": "12.30", "invoiced": False})
    assert made["fields"] == {"amount": 1230, "invoiced": False}
    assert request_json(made)["fields"]["amount"] == "12.30"
    with pytest.raises(InvalidInput, match="required attachment"):
        act(rt, "take", made["id"])
    with transaction(rt.engine) as conn:
        srv.add_attachment(conn, rt.clock, owner(uin), made["id"], srv.Upload("r.png", PNG))
    act(rt, "take", made["id"])
    done = act(rt, "resolve", made["id"], BOB)
    with pytest.raises(Conflict):
        act(rt, "resolve", made["id"], ALICE)
    assert calls == [("operator:bob", "resolved", {"amount": 1230, "invoiced": False})]
    assert done["result"] == {"done": True}
    # 15 working days after Monday 2 March 2026 (3-6, 9-13, 16-20, 23): end of Monday 23 March
    assert done["due_at"] == datetime(2026, 3, 23, 16, 0)
