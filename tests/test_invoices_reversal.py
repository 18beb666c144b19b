"""Invoice reversals (退票, INV-6) through the service layer, on SQLite and PostgreSQL:
only issued blue invoices, one reversal per invoice, the treatment and its red-letter
number (红字待发起 until set), the operators' queue with its due time in working days,
release making the negative red invoice and returning the amount to invoiceable,
reject with a reason, notices and audit. Blue invoices are inserted as rows
(``issued_invoice``), as the issuing job leaves them."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from feecenter.accounts.permissions import SYSTEM, Actor, operator
from feecenter.audit.tables import audit_log
from feecenter.clock import business_date, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.invoices import invoiceable, issuing, reversals, verification
from feecenter.invoices.tables import invoice_lines, invoice_reversals, invoices
from feecenter.notifications.tables import in_site_messages
from tests.helpers import load_sample_catalog, new_account, row_counts
from tests.invoice_seed import CVM_MONTH, apply, cash_purchase, enterprise, enterprise_title

ALICE = operator("alice")
LINES = (("cloud_service", "信息技术服务*云服务费", "3040205", 600, 106_000, 100_000, 6_000),
         ("software", "软件*软件产品销售", "10603010101", 1300, 11_300, 10_000, 1_300))
_serial = iter(range(1, 10**6))


def owner(uin: int) -> Actor:
    return Actor(kind="user", name=f"owner-{uin}", uin=uin, role="owner")


def issued_invoice(rt, uin: int, *, state: str = "issued", kind: str = "ordinary",
                   issued_at: datetime | None = None, lines=LINES) -> dict:
    """A blue invoice with its lines as the issuing job leaves it (numbered when issued)."""
    n = next(_serial)
    when = issued_at or rt.clock.now()
    numbered = state in ("issued", "reversed")
    row = {"uin": uin, "application_id": 1000 + n, "kind": kind, "state": state,
           "entity": "tencent-cloud-bj", "title_kind": "enterprise", "title": "北京某某科技有限公司",
           "tax_id": "91110000MA01ABCD2X", "address": "北京市海淀区", "phone": "010-12345678",
           "bank": "招商银行", "bank_account": "110912345678901", "email": "fin@example.cn",
           "amount": sum(line[4] for line in lines), "net_amount": sum(line[5] for line in lines),
           "tax_amount": sum(line[6] for line in lines),
           "invoice_code": "011002600111" if numbered else None,
           "invoice_number": f"26110{n:015d}" if numbered else None,
           "check_code": f"{n:014d}123456" if numbered else None,
           "applied_at": db_time(when - timedelta(minutes=5)),
           "issued_at": db_time(when) if numbered else None}
    with transaction(rt.engine) as conn:
        invoice_id = conn.execute(insert(invoices).values(**row).returning(invoices.c.id)).scalar_one()
        conn.execute(insert(invoice_lines), [
            {"invoice_id": invoice_id, "uin": uin, "entity": row["entity"], "tax_category": c,
             "item_name": name, "tax_code": code, "rate_bp": rate, "amount": amount,
             "net_amount": net, "tax_amount": tax}
            for c, name, code, rate, amount, net, tax in lines])
    return {**row, "id": invoice_id}


def submit(rt, uin, invoice_id, actor=None, **overrides):
    args = {"treatment": "booked", "red_letter_no": "4403262511000012345",
            "reason": "wrong_details", "explanation": "抬头开错了"} | overrides
    with transaction(rt.engine) as conn:
        return reversals.submit(conn, rt.clock, actor or owner(uin), uin, invoice_id, **args)


def act(rt, verb, *args, actor=ALICE):
    with transaction(rt.engine) as conn:
        return getattr(reversals, verb)(conn, rt.clock, actor, *args)


def invoiced(rt, uin) -> int:
    """Σ invoice_lines.amount of the account: what the invoiced sum counts (contract)."""
    with rt.engine.connect() as conn:
        return conn.execute(select(func.coalesce(func.sum(invoice_lines.c.amount), 0))
                            .where(invoice_lines.c.uin == uin)).scalar_one()


def notices(rt, uin) -> list[str]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(in_site_messages.c.title).where(
            in_site_messages.c.uin == uin,
            in_site_messages.c.template == reversals.NOTIFY_TEMPLATE)
            .order_by(in_site_messages.c.id)).scalars())


@pytest.fixture
def shop(rt):
    return new_account(rt, "inv-shop")


# ---------------------------------------------------------------- submitting

@pytest.mark.spec("INV-6")
def test_submit_a_booked_invoice_waits_for_the_operators_due_in_three_working_days(rt, shop):
    blue = issued_invoice(rt, shop)
    made = submit(rt, shop, blue["id"])
    assert (made["state"], made["treatment"], made["red_letter_no"], made["reason"]) == (
        "submitted", "booked", "4403262511000012345", "wrong_details")
    # submitted Monday 2 March 10:00 Shanghai: due at the end of Thursday 5 March
    assert made["due_at"] == datetime(2026, 3, 5, 16, 0, tzinfo=timezone.utc)
    assert made["overdue"] is False and made["red_invoice_id"] is None
    assert made["invoice_number"] == blue["invoice_number"] and made["amount"] == 117_300
    assert notices(rt, shop) == [f"【退票通知】账号 {shop} 的退票申请 {made['id']}：待处理 / "
                                 f"[Invoice reversal] Account {shop}, reversal {made['id']}: submitted"]
    rt.clock.set(datetime(2026, 3, 5, 16, 0, tzinfo=timezone.utc))
    with rt.engine.connect() as conn:
        assert reversals.list_reversals(conn, rt.clock, owner(shop), shop)[0]["overdue"] is True


@pytest.mark.spec("INV-6")
def test_the_due_time_counts_cn_working_days_across_the_spring_festival():
    # Thursday 12 February 2026: Friday 13, make-up Saturday 14 (调休), then the holiday
    # until Monday 23; the third working day is Tuesday 24, due at its end (Shanghai)
    assert reversals.due_at(datetime(2026, 2, 12, 2, 0, tzinfo=timezone.utc)) == datetime(
        2026, 2, 24, 16, 0, tzinfo=timezone.utc)
    # late on Friday evening Shanghai time is still Friday's business date
    assert reversals.due_at(datetime(2026, 3, 6, 15, 59, tzinfo=timezone.utc)) == datetime(
        2026, 3, 11, 16, 0, tzinfo=timezone.utc)


@pytest.mark.spec("INV-6")
def test_a_deducted_invoice_without_its_number_waits_as_red_letter_pending(rt, shop):
    blue = issued_invoice(rt, shop)
    made = submit(rt, shop, blue["id"], treatment="deducted", red_letter_no=None)
    assert (made["state"], made["state_zh"], made["overdue"]) == (
        "red_letter_pending", "红字待发起", False)
    with transaction(rt.engine) as conn, pytest.raises(Conflict) as refused:
        reversals.release(conn, rt.clock, ALICE, made["id"])
    assert refused.value.details["state"] == "red_letter_pending"
    with transaction(rt.engine) as conn:
        later = reversals.set_red_letter_no(conn, rt.clock, owner(shop), shop, made["id"],
                                            "4403262511000099999")
    assert (later["state"], later["red_letter_no"]) == ("submitted", "4403262511000099999")
    with transaction(rt.engine) as conn, pytest.raises(Conflict):  # set once
        reversals.set_red_letter_no(conn, rt.clock, owner(shop), shop, made["id"],
                                    "4403262511000011111")
    assert act(rt, "release", made["id"])["state"] == "released"


@pytest.mark.spec("INV-6")
def test_treatments_need_their_red_letter_number(rt, shop):
    blue = issued_invoice(rt, shop)
    with pytest.raises(InvalidInput) as refused:
        submit(rt, shop, blue["id"], treatment="booked", red_letter_no=None)
    assert refused.value.field == "red_letter_no"
    with pytest.raises(InvalidInput) as refused:
        submit(rt, shop, blue["id"], treatment="none", red_letter_no="4403262511000012345")
    assert refused.value.field == "red_letter_no"
    made = submit(rt, shop, blue["id"], treatment="none", red_letter_no=None,
                  reason="invoice_debt")
    assert (made["state"], made["red_letter_no"]) == ("submitted", None)


@pytest.mark.spec("INV-6")
@pytest.mark.parametrize("overrides, field", [
    ({"treatment": "lost"}, "treatment"), ({"treatment": None}, "treatment"),
    ({"reason": "changed_mind"}, "reason"), ({"explanation": "  "}, "explanation"),
    ({"explanation": None}, "explanation"), ({"explanation": "x" * 1001}, "explanation"),
    ({"explanation": "bad\x00text"}, "explanation"), ({"red_letter_no": "12-34"}, "red_letter_no"),
    ({"red_letter_no": 4403262511000012345}, "red_letter_no")])
def test_bad_input_names_the_field_and_writes_nothing(rt, shop, overrides, field):
    blue = issued_invoice(rt, shop)
    with pytest.raises(InvalidInput) as refused:
        submit(rt, shop, blue["id"], **overrides)
    assert refused.value.field == field
    assert row_counts(rt, invoice_reversals, in_site_messages) == (0, 0)


@pytest.mark.spec("INV-6")
@pytest.mark.parametrize("state", ["applied", "issuing"])
def test_an_invoice_being_issued_cannot_be_stopped(rt, shop, state):
    blue = issued_invoice(rt, shop, state=state)
    with pytest.raises(Conflict, match="cannot stop an invoice being issued") as refused:
        submit(rt, shop, blue["id"])
    assert refused.value.field == "invoice_id"
    assert row_counts(rt, invoice_reversals) == (0,)


@pytest.mark.spec("INV-6")
def test_one_reversal_per_invoice_and_no_reversal_of_a_red_or_reversed_one(rt, shop):
    blue = issued_invoice(rt, shop)
    first = submit(rt, shop, blue["id"])
    with pytest.raises(Conflict, match="submitted already") as refused:
        submit(rt, shop, blue["id"], reason="invoice_debt")
    assert (refused.value.field, refused.value.details["reversal_id"]) == ("invoice_id", first["id"])
    act(rt, "reject", first["id"], "请先核对红字确认单")
    with pytest.raises(Conflict, match="submitted already"):  # a rejected one is final too
        submit(rt, shop, blue["id"])
    other = issued_invoice(rt, shop)
    released = act(rt, "release", submit(rt, shop, other["id"])["id"])
    with pytest.raises(Conflict, match="red invoice"):
        submit(rt, shop, released["red_invoice_id"])
    with pytest.raises(Conflict, match="reversed already"):
        submit(rt, shop, other["id"])


def test_only_the_accounts_finance_may_submit_and_only_its_own_invoices(rt, shop):
    blue = issued_invoice(rt, shop)
    other = new_account(rt, "nosy")
    with pytest.raises(PermissionDenied):
        submit(rt, shop, blue["id"], actor=owner(other))
    with pytest.raises(PermissionDenied):
        submit(rt, shop, blue["id"], actor=Actor("user", "ro", uin=shop, role="readonly"))
    with pytest.raises(NotFound):  # another account's invoice is not found
        submit(rt, other, blue["id"])
    with pytest.raises(InvalidInput):
        submit(rt, shop, "1")
    assert not hasattr(reversals, "withdraw")  # INV-6: never withdrawn once submitted


def test_an_operator_submitting_for_the_customer_is_audited(rt, shop):
    made = submit(rt, shop, issued_invoice(rt, shop)["id"], actor=ALICE)
    assert made["submitted_by"] == "operator:alice"
    submit(rt, shop, issued_invoice(rt, shop)["id"])  # the customer's own: not audited
    with rt.engine.connect() as conn:
        assert conn.execute(select(audit_log.c.action, audit_log.c.detail).where(
            audit_log.c.action.like("invoice_reversal.%"))).all() == [
            ("invoice_reversal.submit",
             f'{{"invoice_id": {made["invoice_id"]}, "reversal_id": {made["id"]}}}')]


# ---------------------------------------------------------------- operators

@pytest.mark.spec("INV-6", "INV-7")
def test_release_makes_the_red_invoice_and_returns_the_amount(rt, shop):
    blue = issued_invoice(rt, shop)
    assert invoiced(rt, shop) == 117_300
    made = submit(rt, shop, blue["id"], reason="invoice_debt")
    rt.clock.advance(days=1)
    released = act(rt, "release", made["id"])
    assert (released["state"], released["decided_by"]) == ("released", "operator:alice")
    assert invoiced(rt, shop) == 0  # the red lines cancel the blue ones: invoiceable again
    with rt.engine.connect() as conn:
        red = conn.execute(select(invoices).where(
            invoices.c.id == released["red_invoice_id"])).mappings().one()
        state = conn.execute(select(invoices.c.state).where(invoices.c.id == blue["id"])).scalar()
        lines = conn.execute(select(invoice_lines).where(invoice_lines.c.invoice_id == red["id"])
                             .order_by(invoice_lines.c.id)).mappings().all()
        audit = conn.execute(select(audit_log.c.action, audit_log.c.actor).where(
            audit_log.c.uin == shop, audit_log.c.action.like("invoice_reversal.%"))).all()
    assert state == "reversed"
    assert (red["kind"], red["state"], red["original_id"], red["application_id"]) == (
        "red", "applied", blue["id"], None)
    assert (red["amount"], red["net_amount"], red["tax_amount"]) == (-117_300, -110_000, -7_300)
    assert {k: red[k] for k in ("title", "tax_id", "bank_account", "entity", "email")} == {
        k: blue[k] for k in ("title", "tax_id", "bank_account", "entity", "email")}
    assert red["invoice_number"] is None  # numbered by the issuing job
    assert [(ln["tax_category"], ln["rate_bp"], ln["amount"], ln["net_amount"], ln["tax_amount"])
            for ln in lines] == [("cloud_service", 600, -106_000, -100_000, -6_000),
                                 ("software", 1300, -11_300, -10_000, -1_300)]
    assert audit == [("invoice_reversal.release", "operator:alice")]
    assert [t.split("：")[1].split(" /")[0] for t in notices(rt, shop)] == ["待处理", "已退票"]
    with pytest.raises(Conflict) as again:
        act(rt, "release", made["id"])
    assert again.value.details["state"] == "released"
    with pytest.raises(Conflict):
        act(rt, "reject", made["id"], "too late")


@pytest.mark.spec("INV-6")
def test_reject_with_a_reason_keeps_the_invoice_issued(rt, shop):
    blue = issued_invoice(rt, shop)
    pending = submit(rt, shop, blue["id"], treatment="deducted", red_letter_no=None)
    with pytest.raises(InvalidInput) as refused:
        act(rt, "reject", pending["id"], " ")
    assert refused.value.field == "reason"
    rejected = act(rt, "reject", pending["id"], "红字确认单未发起")
    assert (rejected["state"], rejected["reject_reason"]) == ("rejected", "红字确认单未发起")
    with rt.engine.connect() as conn:
        assert conn.execute(select(invoices.c.state).where(
            invoices.c.id == blue["id"])).scalar() == "issued"
        assert conn.execute(select(audit_log.c.action).where(
            audit_log.c.uin == shop, audit_log.c.action.like("invoice_reversal.%"))).scalars(
            ).all() == ["invoice_reversal.reject"]
    assert invoiced(rt, shop) == 117_300
    assert len(notices(rt, shop)) == 2
    with pytest.raises(Conflict):
        act(rt, "release", pending["id"])


def test_the_queue_is_operators_only_oldest_first_with_overdue(rt, shop):
    first = submit(rt, shop, issued_invoice(rt, shop)["id"])
    rt.clock.advance(hours=1)
    second = submit(rt, shop, issued_invoice(rt, shop)["id"], treatment="deducted",
                    red_letter_no=None)
    third = submit(rt, shop, issued_invoice(rt, shop)["id"])
    act(rt, "release", third["id"])
    rt.clock.set(datetime(2026, 3, 6, 2, 0, tzinfo=timezone.utc))  # Friday: past due
    with rt.engine.connect() as conn:
        page = reversals.queue(conn, rt.clock, ALICE)
        done = reversals.queue(conn, rt.clock, ALICE, state="released")
        with pytest.raises(PermissionDenied):
            reversals.queue(conn, rt.clock, owner(shop))
        with pytest.raises(InvalidInput):
            reversals.queue(conn, rt.clock, ALICE, state="lost")
    assert page["total"] == 2
    assert [(r["id"], r["overdue"]) for r in page["items"]] == [
        (first["id"], True), (second["id"], False)]  # 红字待发起 waits for the customer
    assert [r["id"] for r in done["items"]] == [third["id"]]
    with pytest.raises(PermissionDenied):
        act(rt, "release", first["id"], actor=owner(shop))
    with pytest.raises(NotFound):
        act(rt, "release", 999_999)


# ---------------------------------------------------------------- with applying and issuing (CORE)

@pytest.mark.spec("INV-5", "INV-6", "INV-8")
def test_applied_issued_reversed_and_the_red_invoice_issued_end_to_end(rt):
    """apply -> issuing job -> reversal -> release: invoiceable again at once; the
    issuing job numbers the red invoice; both verify (the blue one as reversed)."""
    load_sample_catalog(rt)
    uin = enterprise(rt)
    enterprise_title(rt, uin)
    cash_purchase(rt, uin)
    (blue,) = apply(rt, uin)["invoices"]
    with pytest.raises(Conflict, match="cannot stop an invoice being issued"):
        submit(rt, uin, blue["id"])
    assert issuing.issue_pending(rt.engine, rt.clock, rt.settings)["issued"] == 1

    def available() -> int:
        with rt.engine.connect() as conn:
            return invoiceable.invoiceable(conn, SYSTEM, uin)["amount"]

    assert available() == 0
    made = submit(rt, uin, blue["id"], treatment="deducted", red_letter_no=None)
    with transaction(rt.engine) as conn:
        reversals.set_red_letter_no(conn, rt.clock, owner(uin), uin, made["id"],
                                    "4403262511000012345")
    released = act(rt, "release", made["id"])
    assert available() == CVM_MONTH  # back to invoiceable at once, before the red is issued
    assert issuing.issue_pending(rt.engine, rt.clock, rt.settings)["issued"] == 1
    rt.clock.advance(days=1)
    with rt.engine.connect() as conn:
        rows = {r["id"]: r for r in conn.execute(select(invoices)).mappings()}
    red = rows[released["red_invoice_id"]]
    assert (red["state"], red["amount"], len(red["invoice_number"])) == ("issued", -CVM_MONTH, 20)

    def check(row, amount):
        with transaction(rt.engine) as conn:
            return verification.verify(
                conn, rt.clock, "192.0.2.9", invoice_code=row["invoice_code"],
                invoice_number=row["invoice_number"],
                issued_on=business_date(from_db_time(row["issued_at"])).isoformat(),
                amount=amount, check_last6=row["check_code"][-6:])

    assert check(rows[blue["id"]], "178.00")["state"] == "reversed"
    assert check(red, "-178.00")["state"] == "issued"
