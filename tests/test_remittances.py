"""Corporate remittance (RMT-1..8, ARR-4, BAL-5) on both backends: receiving numbers,
statement import (duplicates, conflicts, matching), payer verification and
re-verification, holds, operators' assignment and release, the overdue flag, the
queues, and the ledger (bank -> suspense on arrival, suspense -> cash on credit)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import Actor
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_transactions
from feecenter.notifications.tables import in_site_messages
from feecenter.remittances import jobs as remittance_jobs
from feecenter.remittances import rules
from feecenter.remittances import service as remittances
from feecenter.remittances.service import Settings
from feecenter.remittances.tables import remittance_imports, remittances as remittances_table
from feecenter.remittances.transfer import Transfer
from tests.helpers import OPS, assert_reconciled, balance, new_account, row_counts

SETTINGS = Settings(restricted_keywords=("保证金", "押金"))
P1, P2 = SETTINGS.prefixes
ENTITY = "北京示例科技有限公司"
USCC = "91110108551385082Q"


# ---------------------------------------------------------------- helpers

def company(rt, name: str = "acme", entity: str | None = ENTITY) -> tuple[int, str, str]:
    """A new account (verified enterprise ``entity`` unless None) and its two numbers."""
    kw = {"enterprise_name": entity, "uscc": USCC} if entity else {}
    uin = new_account(rt, name, **kw)
    details = receiving(rt, uin)
    return uin, details["accounts"][0]["number"], details["accounts"][1]["number"]


def receiving(rt, uin: int, actor: Actor = OPS) -> dict:
    with transaction(rt.engine) as conn:
        return remittances.receiving_details(conn, rt.clock, actor, uin, SETTINGS)


def owner(rt, uin: int) -> Actor:
    with rt.engine.connect() as conn:
        return accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])


def line(ref: str, payee: str, amount: int = 1000_00, payer: str = ENTITY, *,
         currency: str = "CNY", memo: str = "货款", n: int = 1) -> Transfer:
    return Transfer(bank_reference=ref, receiving_account=P1, payee_account=payee,
                    payer_name=payer, payer_account="6222020200112233", payer_bank="中国银行北京分行",
                    amount=amount, currency=currency, memo=memo, value_date=date(2026, 3, 2),
                    line=n)


def do_import(rt, transfers, digest: str = "digest-1") -> remittances.ImportSummary:
    with transaction(rt.engine) as conn:
        return remittances.import_transfers(conn, rt.clock, OPS, transfers, source="mt940",
                                            digest=digest, settings=SETTINGS)


def record(rt, ref: str) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(remittances_table).where(
            remittances_table.c.bank_reference == ref)).mappings().one())


def act(rt, fn, *args, **kw):
    with transaction(rt.engine) as conn:
        return fn(conn, rt.clock, *args, **kw)


def entries(rt, uin: int) -> list[tuple]:
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(
            statement_entries.c.action_type, statement_entries.c.amount,
            statement_entries.c.pay_channel, statement_entries.c.deduct_mode)
            .where(statement_entries.c.uin == uin).order_by(statement_entries.c.id))]


def platform_balance(rt, purpose: str) -> int:
    with transaction(rt.engine) as conn:
        return ledger.balance_of(conn, funds.platform_account(conn, rt.clock, purpose))


def messages(rt, uin: int) -> list[str]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(in_site_messages.c.template).where(
            in_site_messages.c.uin == uin).order_by(in_site_messages.c.id)).scalars())


# ---------------------------------------------------------------- RMT-1, RMT-5 receiving details

@pytest.mark.spec("RMT-1", "RMT-5")
def test_each_account_has_its_own_25_digit_numbers_under_both_prefixes(rt):
    uin, first, second = company(rt)
    other, other_first, _ = company(rt, "other-co")
    details = receiving(rt, uin, owner(rt, uin))
    assert details["payee_entity"] == SETTINGS.payee_entity
    assert [(a["bank"], a["branch"]) for a in details["accounts"]] == [
        (b.bank, b.branch) for b in SETTINGS.banks]
    code = details["code"]
    assert (first, second) == (P1 + code, P2 + code) and len(first) == 25
    assert rules.is_valid_code(code) and receiving(rt, uin)["code"] == code  # allocated once
    assert other_first[15:] != code
    with pytest.raises(PermissionDenied):
        receiving(rt, other, owner(rt, uin))
    with pytest.raises(NotFound):
        receiving(rt, 999_999_999)


# ---------------------------------------------------------------- RMT-3, RMT-8, ARR-4, BAL-5

@pytest.mark.spec("RMT-3", "RMT-8", "ARR-4", "BAL-5")
def test_a_transfer_to_a_known_number_is_credited_arrears_and_advances_first(rt):
    uin, first, second = company(rt)
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=500_00)
        revenue = funds.platform_account(conn, rt.clock, "revenue")
        funds.spend(conn, rt.clock, uin, 800_00, key="usage", postpaid=True,
                    revenue_account_id=revenue)  # credit pays 500, 300 becomes arrears
    summary = do_import(rt, [line("R1", first, 1000_00), line("R2", second, 50_00, n=2)])
    assert (summary.lines, summary.credited, summary.duplicates) == (2, 2, 0)
    assert (summary.new_fen, summary.credited_fen) == (1050_00, 1050_00)
    view = balance(rt, uin)
    assert (view.arrears, view.advances, view.cash) == (0, 0, 250_00)
    assert entries(rt, uin)[-4:] == [
        ("recharge", 1000_00, "bank", "bank-enterprice"), ("repayment", -300_00, None, None),
        ("repay", -500_00, None, None), ("recharge", 50_00, "bank", "bank-enterprice")]
    r1 = record(rt, "R1")
    assert (r1["state"], r1["uin"], r1["reason"]) == ("credited", uin, None)
    assert r1["txn_id"] and r1["arrival_txn_id"] and r1["credited_at"]
    assert platform_balance(rt, "remittance_suspense") == 0  # all credited
    assert platform_balance(rt, "bank") == -1050_00
    assert_reconciled(rt)


@pytest.mark.spec("RMT-3", "RMT-2")
def test_unknown_code_is_unassigned_and_an_unknown_prefix_is_not_ours(rt):
    uin, first, _ = company(rt)
    typo = first[:-1] + str((int(first[-1]) + 1) % 10)
    summary = do_import(rt, [
        line("U1", typo, 10_00), line("U2", P1, 20_00, n=2),            # mistyped, bare prefix
        line("U3", P2 + rules.code_from(5), 30_00, n=3),               # valid code, nobody's
        line("N1", "621700" + "9" * 19, 40_00, n=4)])                  # not ours
    assert (summary.unassigned, summary.not_ours, summary.credited) == (3, 1, 0)
    assert summary.not_ours_references == ("N1",)
    assert (summary.new_fen, summary.credited_fen) == (100_00, 0)
    assert balance(rt, uin).cash == 0
    n1 = record(rt, "N1")
    assert (n1["state"], n1["uin"], n1["arrival_txn_id"]) == ("not_ours", None, None)
    # received and ours, not yet anyone's: visible in the ledger as suspense
    assert platform_balance(rt, "remittance_suspense") == 60_00
    with rt.engine.connect() as conn:
        queue = remittances.operator_queue(conn, OPS, "unassigned")
        assert [r["bank_reference"] for r in queue["items"]] == ["U1", "U2", "U3"]
        assert remittances.operator_queue(conn, OPS, "not_ours")["total"] == 1
        imported = remittances.list_imports(conn, OPS)[0]
    assert (imported["unassigned"], imported["not_ours"], imported["source"]) == (3, 1, "mt940")
    assert_reconciled(rt)


# ---------------------------------------------------------------- RMT-2 re-import and conflicts

@pytest.mark.spec("RMT-2")
def test_a_re_import_is_harmless(rt):
    uin, first, _ = company(rt)
    lines = [line("D1", first, 100_00), line("D2", first, 200_00, n=2)]
    assert do_import(rt, lines).credited == 2
    before = row_counts(rt, remittances_table, ledger_transactions, statement_entries)
    again = do_import(rt, [*lines, replace(lines[0], line=9)], digest="digest-2")
    assert (again.duplicates, again.credited, again.new_fen) == (3, 0, 0)
    assert row_counts(rt, remittances_table, ledger_transactions, statement_entries) == before
    assert balance(rt, uin).cash == 300_00
    assert row_counts(rt, remittance_imports) == (2,)
    assert_reconciled(rt)


@pytest.mark.spec("RMT-2")
def test_the_same_reference_with_other_content_refuses_the_whole_import(rt):
    uin, first, _ = company(rt)
    do_import(rt, [line("C1", first, 100_00)])
    before = row_counts(rt, remittances_table, remittance_imports, ledger_transactions)
    with pytest.raises(Conflict) as refused:
        do_import(rt, [line("C0", first, 5_00), line("C1", first, 999_00, n=2),
                       line("C2", first, 7_00, n=3)], digest="digest-2")
    assert refused.value.details["bank_reference"] == "C1" and "C1" in refused.value.message_zh
    assert row_counts(rt, remittances_table, remittance_imports, ledger_transactions) == before
    assert balance(rt, uin).cash == 100_00
    with pytest.raises(Conflict):  # within one import too
        do_import(rt, [line("C5", first, 1_00), line("C5", first, 2_00, n=2)], digest="d3")
    assert row_counts(rt, remittances_table) == (1,)


def test_a_bad_line_refuses_the_import_and_writes_nothing(rt):
    _, first, _ = company(rt)
    with pytest.raises(InvalidInput) as refused:
        do_import(rt, [line("B1", first), line("B2", first, 0, n=7)])
    assert (refused.value.field, refused.value.details["line"]) == ("amount", 7)
    assert row_counts(rt, remittances_table, remittance_imports) == (0, 0)
    with transaction(rt.engine) as conn, pytest.raises(PermissionDenied):
        remittances.import_transfers(conn, rt.clock, Actor("user", "x", uin=1, role="owner"),
                                     [], source="mt940", digest="d", settings=SETTINGS)


# ---------------------------------------------------------------- RMT-4, RMT-5 verification

@pytest.mark.spec("RMT-4")
def test_an_unknown_payer_waits_for_signature_and_the_owner_is_notified(rt):
    uin, first, _ = company(rt)
    unverified, unverified_number, _ = company(rt, "no-realname", entity=None)
    summary = do_import(rt, [line("P1", first, 100_00, payer="上海代付有限公司"),
                             line("P2", unverified_number, 200_00, n=2),
                             line("P3", first, 300_00, payer="北京示例科技有限公司 ", n=3)])
    assert (summary.pending, summary.credited) == (2, 1)
    p1, p2 = record(rt, "P1"), record(rt, "P2")
    assert p1["state"] == "pending_signature" and "上海代付有限公司" in p1["reason"]
    assert p2["state"] == "pending_confirmation" and "实名" in p2["reason"]
    assert balance(rt, uin).cash == 300_00 and balance(rt, unverified).cash == 0
    assert messages(rt, uin) == ["remittance_pending"]
    assert messages(rt, unverified) == ["remittance_pending"]
    with rt.engine.connect() as conn:
        assert remittances.pending_count(conn, uin) == 1
        assert remittances.operator_queue(conn, OPS, "pending")["total"] == 2
    assert platform_balance(rt, "remittance_suspense") == 300_00


@pytest.mark.spec("RMT-4", "RMT-5")
def test_registering_the_payer_and_asking_again_credits_it(rt):
    uin, first, _ = company(rt)
    do_import(rt, [line("V1", first, 100_00, payer="上海代付有限公司")])
    me = owner(rt, uin)
    rid = record(rt, "V1")["id"]
    failed = act(rt, remittances.request_reverification, me, uin, rid)
    assert failed["state"] == "review_failed" and "上海代付有限公司" in failed["reason"]
    with rt.engine.connect() as conn:
        assert remittances.pending_count(conn, uin) == 1
        assert remittances.operator_queue(conn, OPS, "review_failed")["total"] == 1
    assert messages(rt, uin) == ["remittance_pending", "remittance_review_failed"]
    payer = act(rt, remittances.register_payer, me, uin, " 上海代付有限公司 ")
    assert (payer["signed_by"], payer["name"]) == (me.label, "上海代付有限公司")
    credited = act(rt, remittances.request_reverification, me, uin, rid)
    assert (credited["state"], credited["reason"], credited["reviews"]) == ("credited", None, 2)
    assert balance(rt, uin).cash == 100_00
    with pytest.raises(Conflict) as again:
        act(rt, remittances.request_reverification, me, uin, rid)
    assert again.value.details["state"] == "credited"
    assert_reconciled(rt)


@pytest.mark.spec("RMT-4", "RMT-5")
def test_payer_names_are_listed_removed_and_registered_in_any_width(rt):
    uin, first, _ = company(rt)
    other, _, _ = company(rt, "other-co")
    me = owner(rt, uin)
    added = act(rt, remittances.register_payer, me, uin, "ＡＣＭＥ Trading Ltd")
    assert act(rt, remittances.register_payer, me, uin, "acme trading ltd")["id"] == added["id"]
    act(rt, remittances.remove_payer, me, uin, added["id"])
    with rt.engine.connect() as conn:
        assert remittances.list_payers(conn, me, uin) == []
        assert remittances.list_payers(conn, me, uin, include_removed=True)[0]["removed_by"] \
            == me.label
    do_import(rt, [line("W1", first, 10_00, payer="ACME Trading Ltd")])
    assert record(rt, "W1")["state"] == "pending_signature"  # removed: no longer a payer
    again = act(rt, remittances.register_payer, me, uin, "ACME Trading Ltd")
    assert again["id"] == added["id"] and again["removed_at"] is None
    with pytest.raises(PermissionDenied):
        act(rt, remittances.register_payer, me, other, "x")
    with pytest.raises(NotFound):  # another account's record: as if absent
        act(rt, remittances.request_reverification, owner(rt, other), other, record(rt, "W1")["id"])
    with pytest.raises(InvalidInput):
        act(rt, remittances.register_payer, me, uin, "   ")


# ---------------------------------------------------------------- RMT-6, RMT-7 holds; assignment

@pytest.mark.spec("RMT-6")
def test_a_restricted_memo_is_held_until_an_operator_releases_it(rt):
    uin, first, _ = company(rt)
    summary = do_import(rt, [line("H1", first, 500_00, memo="投标保证金"),
                             line("H2", first, 60_00, memo="设备押金", n=2)])
    assert (summary.held, summary.credited) == (2, 0)
    h1 = record(rt, "H1")
    assert (h1["state"], h1["uin"]) == ("held", uin) and "保证金" in h1["reason"]
    assert balance(rt, uin).cash == 0
    with pytest.raises(Conflict):  # the customer cannot push it through
        act(rt, remittances.request_reverification, owner(rt, uin), uin, h1["id"])
    with rt.engine.connect() as conn:  # money on its way in (ACC-5)
        assert remittances.pending_count(conn, uin) == 2
    released = act(rt, remittances.release, OPS, h1["id"])
    assert (released["state"], released["released_by"]) == ("credited", OPS.label)
    assert balance(rt, uin).cash == 500_00
    with rt.engine.connect() as conn:
        audited = conn.execute(select(audit_log.c.actor).where(
            audit_log.c.action == "remittance_release")).scalars().all()
    assert audited == [OPS.label]
    with pytest.raises(PermissionDenied):
        act(rt, remittances.release, owner(rt, uin), record(rt, "H2")["id"])
    with rt.engine.connect() as conn:
        assert remittances.pending_count(conn, uin) == 1
    assert_reconciled(rt)


@pytest.mark.spec("RMT-7")
def test_foreign_currency_is_held_never_credited_and_stays_out_of_the_ledger(rt):
    uin, first, _ = company(rt)
    summary = do_import(rt, [line("F1", first, 1500_00, currency="USD")])
    assert (summary.held, summary.new_fen) == (1, 0)
    f1 = record(rt, "F1")
    assert f1["state"] == "held" and "USD" in f1["reason"] and f1["arrival_txn_id"] is None
    with pytest.raises(Conflict) as refused:
        act(rt, remittances.release, OPS, f1["id"])
    assert refused.value.field == "currency"
    assert record(rt, "F1")["state"] == "held" and balance(rt, uin).cash == 0
    assert platform_balance(rt, "remittance_suspense") == 0


@pytest.mark.spec("RMT-3", "RMT-4")
def test_an_operator_assigns_an_unassigned_record_then_verification_applies(rt):
    uin, _, _ = company(rt)
    other, _, _ = company(rt, "other-co", entity="上海别家有限公司")
    do_import(rt, [line("A1", P1, 70_00), line("A2", P2, 80_00, n=2),
                   line("A3", P1, 90_00, memo="保证金", n=3)])
    a1 = act(rt, remittances.assign, OPS, record(rt, "A1")["id"], uin)
    assert (a1["state"], a1["uin"], a1["assigned_by"]) == ("credited", uin, OPS.label)
    a2 = act(rt, remittances.assign, OPS, record(rt, "A2")["id"], other)
    assert a2["state"] == "pending_signature" and messages(rt, other) == ["remittance_pending"]
    a3 = act(rt, remittances.assign, OPS, record(rt, "A3")["id"], uin)
    assert (a3["state"], a3["uin"]) == ("held", uin)  # still the operator's to release
    with pytest.raises(Conflict) as twice:
        act(rt, remittances.assign, OPS, record(rt, "A1")["id"], other)
    assert twice.value.details["state"] == "credited"
    with pytest.raises(NotFound):
        act(rt, remittances.assign, OPS, record(rt, "A2")["id"], 999_999_999)
    assert balance(rt, uin).cash == 70_00 and balance(rt, other).cash == 0
    with rt.engine.connect() as conn:
        assigned = conn.execute(select(audit_log.c.actor, audit_log.c.uin).where(
            audit_log.c.action == "remittance_assign").order_by(audit_log.c.id)).all()
    assert [tuple(a) for a in assigned] == [(OPS.label, uin), (OPS.label, other), (OPS.label, uin)]
    assert_reconciled(rt)


# ---------------------------------------------------------------- RMT-2 the overdue flag; queries

@pytest.mark.spec("RMT-2")
def test_records_unresolved_a_day_after_arrival_are_flagged(rt):
    uin, first, _ = company(rt)
    do_import(rt, [line("O1", first, 10_00, payer="别人"), line("O2", first, 20_00, n=2),
                   line("O3", P1, 30_00, n=3)])
    rt.clock.advance(hours=23)
    do_import(rt, [line("O4", P1, 40_00)], digest="later")
    with transaction(rt.engine) as conn:
        assert remittances.flag_overdue(conn, rt.clock) == 0
    rt.clock.advance(hours=1)
    period = None  # the job is about the present
    assert remittance_jobs.flag_overdue(rt.engine, rt.clock, period) == {"flagged": 2}
    assert remittance_jobs.flag_overdue(rt.engine, rt.clock, period) == {"flagged": 0}
    with rt.engine.connect() as conn:
        flagged = remittances.operator_queue(conn, OPS, "flagged")["items"]
    assert [r["bank_reference"] for r in flagged] == ["O1", "O3"]  # O2 credited, O4 too young
    assert all(r["flagged_at"] is not None for r in flagged)
    from feecenter.jobs.loader import load_all
    assert "remittances.flag_overdue" in load_all()


def test_the_customer_list_is_newest_first_and_private(rt):
    uin, first, _ = company(rt)
    other, _, _ = company(rt, "other-co")
    do_import(rt, [line(f"L{i}", first, (i + 1) * 100, n=i) for i in range(5)])
    me, stranger = owner(rt, uin), owner(rt, other)
    with rt.engine.connect() as conn:
        page = remittances.list_remittances(conn, me, uin, offset=1, limit=2)
        assert page["total"] == 5
        assert [r["bank_reference"] for r in page["items"]] == ["L3", "L2"]
        assert remittances.list_remittances(conn, me, uin, state="held")["total"] == 0
        assert remittances.get_remittance(conn, me, page["items"][0]["id"])["uin"] == uin
        with pytest.raises(PermissionDenied):
            remittances.list_remittances(conn, me, other)
        with pytest.raises(NotFound):
            remittances.get_remittance(conn, stranger, page["items"][0]["id"])
        with pytest.raises(PermissionDenied):
            remittances.operator_queue(conn, me, "pending")
        for bad in ({"state": "lost"}, {"limit": 0}, {"offset": -1}):
            with pytest.raises(InvalidInput):
                remittances.list_remittances(conn, me, uin, **bad)
        with pytest.raises(InvalidInput):
            remittances.operator_queue(conn, OPS, "everything")
        assert conn.execute(select(func.count()).select_from(remittances_table)).scalar() == 5
