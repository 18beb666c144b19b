"""A cancelled account takes no money in, and operators cannot cancel around the rules
(ACC-5, ACC-4; docs/cancellation.md "After the cancellation"): the operators' status
switch neither cancels nor brings a cancelled account back; a remittance to a
cancelled account's number (statement import, the bank's signed push) is held for an
operator and refunded to the payer (RMT-11), never credited, and so is one assigned
to it or re-verified; releasing it, a wrong-account claim or a legacy form for it
are refused; operators' adjustments, credit and coupons are refused. On PostgreSQL:
a remittance racing a cancellation is either credited first (the cancellation is then
refused for the cash) or held after it, with the lock held both ways and 8 threads."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.api.app import create_app
from feecenter.audit.tables import audit_log
from feecenter.auth import service as auth
from feecenter.cancellation import service
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupons as coupon_rows
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput
from feecenter.funds import service as funds
from feecenter.funds.tables import credit_lines, statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.remittances import cases, rules
from feecenter.remittances import service as remittances
from feecenter.remittances.statements import push
from feecenter.remittances.tables import (remittance_imports, remittance_legacy_transfers)
from feecenter.remittances.tables import remittances as remittances_table
from feecenter.service_requests import service as srv
from tests.helpers import (OPS, assert_reconciled, balance, new_account, row_counts,
                           run_threads)
from tests.rest_harness import HOST, Signed
from tests.test_cancellation import BLOCKERS, _in_thread, owner, status_of
from tests.test_coupons import terms
from tests.test_remittance_cases import (ALICE, PDF, claim_fields, form_fields, legacy_transfer,
                                         money, number_of, original, refund_fields)
from tests.test_remittances import (ENTITY, P1, SETTINGS, USCC, act, company, do_import,
                                    entries, line, record)

STRANGER = "上海代付有限公司"
PAYOUT = {"holder": ENTITY, "bank_account": "6222020200112233", "bank": "中国银行"}
MONEY_TABLES = (ledger_transactions, statement_entries)


def cancel(rt, uin: int, key: str = "cancel-1") -> dict:
    actor = owner(rt, uin)
    with transaction(rt.engine) as conn:
        return service.cancel(conn, rt.clock, actor, uin, key=key)


def cancelled_company(rt, name: str = "gone-co") -> tuple[int, str]:
    """A verified company, its first receiving number, then cancelled (nothing blocks)."""
    uin, number, _ = company(rt, name)
    assert cancel(rt, uin)["created"] is True
    return uin, number


def set_status(rt, uin: int, status: str) -> None:
    with transaction(rt.engine) as conn:
        accounts.set_status(conn, rt.clock, OPS, uin, status)


def audits(rt, action: str) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == action)).scalar_one()


def assert_held_for_cancellation(rt, ref: str, uin: int) -> dict:
    rec = record(rt, ref)
    assert (rec["state"], rec["uin"], rec["reason"]) == (
        rules.HELD, uin, rules.ACCOUNT_CANCELLED_REASON)
    assert rec["txn_id"] is None and rec["credited_at"] is None
    assert balance(rt, uin).cash == 0 and entries(rt, uin) == []
    return rec


# ---------------------------------------------------------------- the operators' status switch

@pytest.mark.spec("ACC-5")
@pytest.mark.parametrize("code", [None, "arrears", "cash", "remittances_held",
                                  "withdrawals_in_progress"])
def test_the_status_switch_cannot_cancel_blocked_or_not(rt, code):
    uin = new_account(rt)
    if code:
        BLOCKERS[code][0](rt, uin)
    before = row_counts(rt, audit_log, *MONEY_TABLES)
    with pytest.raises(InvalidInput) as refused:
        set_status(rt, uin, "cancelled")
    assert refused.value.field == "status"
    assert "注销" in refused.value.message_zh and "cancel" in refused.value.message_en
    assert status_of(rt, uin) == "normal"
    assert row_counts(rt, audit_log, *MONEY_TABLES) == before


@pytest.mark.spec("ACC-4", "ACC-5")
def test_a_cancelled_accounts_status_is_final(rt):
    uin = new_account(rt)
    set_status(rt, uin, "restricted")  # a restricted account may still be cancelled
    cancel(rt, uin)
    before = row_counts(rt, audit_log)
    for status in ("normal", "restricted", "cancelled"):
        with pytest.raises((Conflict, InvalidInput)) as refused:
            set_status(rt, uin, status)
        assert refused.value.field == "status"
    with pytest.raises(Conflict) as final:
        set_status(rt, uin, "normal")
    assert "已注销" in final.value.message_zh and "cancelled" in final.value.message_en
    assert status_of(rt, uin) == "cancelled" and row_counts(rt, audit_log) == before


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
def test_status_switches_racing_a_cancellation_never_revive_it(rt):
    uin = new_account(rt)
    with transaction(rt.engine) as conn:
        funds.platform_account(conn, rt.clock, "forfeited_gift")
    actor = owner(rt, uin)
    outcomes: dict = {}

    def work(i: int) -> None:
        try:
            with transaction(rt.engine) as conn:
                if i % 2:
                    accounts.set_status(conn, rt.clock, OPS, uin, ("normal", "restricted")[i % 4 // 2])
                    outcomes[i] = "set"
                else:
                    outcomes[i] = service.cancel(conn, rt.clock, actor, uin, key=f"k{i}")["created"]
        except Conflict as exc:
            outcomes[i] = exc.field

    assert run_threads(8, work) == []
    assert status_of(rt, uin) == "cancelled"
    assert sorted(outcomes[i] for i in (0, 2, 4, 6)) == [False, False, False, True]
    assert {outcomes[i] for i in (1, 3, 5, 7)} <= {"set", "status"}
    assert audits(rt, "set_status") == sum(outcomes[i] == "set" for i in (1, 3, 5, 7))


# ---------------------------------------------------------------- a transfer to a cancelled account

@pytest.mark.spec("ACC-5", "RMT-11")
def test_a_statement_line_to_a_cancelled_account_is_held_then_refunded(rt):
    uin, number = cancelled_company(rt)
    summary = do_import(rt, [line("C1", number, 500_00),
                             line("C2", number, 70_00, memo="保证金", n=2)])
    assert (summary.credited, summary.held, summary.pending) == (0, 2, 0)
    assert summary.credited_fen == 0 and summary.new_fen == 570_00
    rec = assert_held_for_cancellation(rt, "C1", uin)
    assert assert_held_for_cancellation(rt, "C2", uin)  # the cancellation, not the memo
    assert money(rt)[1] == 570_00  # in suspense, never the account's
    with pytest.raises(Conflict) as refused:  # an operator cannot release it to the account
        act(rt, remittances.release, OPS, rec["id"])
    assert refused.value.field == "uin" and "已注销" in refused.value.message_zh
    assert record(rt, "C1")["state"] == rules.HELD and balance(rt, uin).cash == 0
    with transaction(rt.engine) as conn:  # the refund path (RMT-11), on the account's behalf
        done = cases.refund(conn, rt.clock, ALICE, rec["id"], uin=uin, payout=PAYOUT,
                            reason="账号已注销 / account cancelled")
    assert done["state"] == "refunded" and record(rt, "C1")["state"] == "refunded"
    assert money(rt)[1] == 70_00 and balance(rt, uin).cash == 0
    with rt.engine.connect() as conn:
        imported = conn.execute(select(remittance_imports)).mappings().one()
    assert (imported["credited"], imported["held"], imported["credited_fen"]) == (0, 2, 0)
    assert_reconciled(rt)


@pytest.mark.spec("ACC-5", "RMT-11")
def test_an_operator_files_the_refund_request_on_a_cancelled_accounts_behalf(rt):
    uin, number = cancelled_company(rt)
    do_import(rt, [line("C1", number, 1000_00)])
    rec = record(rt, "C1")
    request = _file(rt, uin, "remittance_refund", refund_fields(
        rec, reason="other", detail="账号已注销 / the account is cancelled", holder=ENTITY))
    done = _resolve(rt, request["id"])
    assert done["state"] == "resolved" and record(rt, "C1")["state"] == "refunded"
    assert money(rt)[1] == 0 and balance(rt, uin).cash == 0
    assert_reconciled(rt)


@pytest.mark.spec("ACC-5", "RMT-2")
def test_the_banks_signed_push_to_a_cancelled_account_is_held(rt, monkeypatch):
    secret = "p" * 40
    monkeypatch.setenv(push.SECRET_ENV, secret)
    uin = new_account(rt, "pushed-co", enterprise_name=ENTITY, uscc=USCC)
    with transaction(rt.engine) as conn:
        number = remittances.receiving_details(conn, rt.clock, OPS, uin)["accounts"][0]["number"]
    cancel(rt, uin)
    body = json.dumps({"bank_reference": "P1", "receiving_account": P1, "payee_account": number,
                       "payer_name": ENTITY, "payer_account": "6222020200112233",
                       "payer_bank": "中国银行", "amount": "1234.56", "currency": "CNY",
                       "memo": "充值", "value_date": "2026-12-07"}, ensure_ascii=False).encode()
    stamp, nonce = str(int(rt.clock.now().timestamp())), "nonce-cancelled-0001"
    http = TestClient(create_app(rt), base_url=f"http://{HOST}")
    answer = http.post(f"http://{HOST}/api/v1/remittances/push", content=body, headers={
        "X-FC-Push-Timestamp": stamp, "X-FC-Push-Nonce": nonce,
        "X-FC-Push-Signature": push.sign(secret.encode(), stamp, nonce, body),
        "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["remittance"]["state"] == rules.HELD
    assert_held_for_cancellation(rt, "P1", uin)


@pytest.mark.spec("ACC-5")
def test_an_unassigned_transfer_assigned_to_a_cancelled_account_is_held(rt):
    uin, _ = cancelled_company(rt)
    do_import(rt, [line("U1", P1 + "0000000001", 300_00)])
    rec = record(rt, "U1")
    assert rec["state"] == rules.UNASSIGNED
    done = act(rt, remittances.assign, OPS, rec["id"], uin)
    assert done["state"] == rules.HELD and done["assigned_by"] == OPS.label
    assert_held_for_cancellation(rt, "U1", uin)
    with pytest.raises(Conflict):
        act(rt, remittances.release, OPS, rec["id"])
    assert balance(rt, uin).cash == 0


@pytest.mark.spec("ACC-5")
def test_a_held_transfer_assigned_to_a_cancelled_account_says_so(rt):
    uin, _ = cancelled_company(rt)
    do_import(rt, [line("H1", P1 + "0000000001", 300_00, memo="保证金")])
    rec = record(rt, "H1")
    assert (rec["state"], rec["uin"]) == (rules.HELD, None)
    act(rt, remittances.assign, OPS, rec["id"], uin)
    assert_held_for_cancellation(rt, "H1", uin)


@pytest.mark.spec("ACC-5")
def test_a_re_verification_of_a_cancelled_accounts_pending_record_holds_it(rt):
    """A record left pending by a transfer that raced the cancellation: re-verifying it,
    even with the payer now registered, holds it for a refund instead of crediting."""
    uin, number, _ = company(rt)
    do_import(rt, [line("R1", number, 200_00, STRANGER)])
    assert record(rt, "R1")["state"] == rules.PENDING_SIGNATURE
    with transaction(rt.engine) as conn:
        remittances.register_payer(conn, rt.clock, OPS, uin, STRANGER)
        assert accounts.mark_cancelled(conn, uin)  # as if the cancellation missed the record
    done = act(rt, remittances.request_reverification, OPS, uin, record(rt, "R1")["id"])
    assert done["state"] == rules.HELD
    assert_held_for_cancellation(rt, "R1", uin)


def _file(rt, uin, kind, fields):
    with transaction(rt.engine) as conn:
        return srv.file_request(conn, rt.clock, ALICE, uin, kind, fields,
                                (srv.Upload("receipt.pdf", PDF),))


def _resolve(rt, request_id):
    with transaction(rt.engine) as conn:
        srv.take(conn, rt.clock, ALICE, request_id)
    with transaction(rt.engine) as conn:
        return srv.resolve(conn, rt.clock, ALICE, request_id)


@pytest.mark.spec("ACC-5", "RMT-9")
def test_a_wrong_account_claim_by_a_cancelled_account_is_refused(rt):
    claimant = new_account(rt, "claimant", enterprise_name="甲方科技有限公司", uscc=USCC)
    wrong = new_account(rt, "wrong-co", enterprise_name="乙方贸易有限公司", uscc=USCC)
    do_import(rt, [line("X1", number_of(rt, wrong), 800_00, "甲方科技有限公司")])
    fields = claim_fields(corrected_number=number_of(rt, claimant))
    request = _file(rt, claimant, "wrong_account_claim", fields)
    cancel(rt, claimant)
    before = row_counts(rt, remittances_table, *MONEY_TABLES)
    with pytest.raises(Conflict) as refused:
        _resolve(rt, request["id"])
    assert refused.value.field == "uin" and "已注销" in refused.value.message_zh
    assert original(rt, "X1")["state"] == rules.PENDING_SIGNATURE
    assert row_counts(rt, remittances_table, *MONEY_TABLES) == before
    assert balance(rt, claimant).cash == 0


@pytest.mark.spec("ACC-5", "RMT-10")
def test_a_legacy_form_crediting_a_cancelled_account_is_refused(rt):
    rec = legacy_transfer(rt)
    uin = new_account(rt, "xco")
    request = _file(rt, uin, "legacy_remittance_form", form_fields("600.00"))
    cancel(rt, uin)
    before = row_counts(rt, remittance_legacy_transfers, *MONEY_TABLES)
    with pytest.raises(Conflict) as refused:
        _resolve(rt, request["id"])
    assert refused.value.field == "uin"
    assert record(rt, "L1")["state"] == rules.UNASSIGNED and record(rt, "L1")["id"] == rec["id"]
    assert row_counts(rt, remittance_legacy_transfers, *MONEY_TABLES) == before


# ---------------------------------------------------------------- other money in

@pytest.mark.spec("ACC-5")
def test_operators_give_a_cancelled_account_no_cash_gift_credit_or_coupon(rt):
    uin = new_account(rt)
    cancel(rt, uin)
    before = row_counts(rt, audit_log, credit_lines, coupon_rows, *MONEY_TABLES)
    for sub in ("cash", "gift"):
        with pytest.raises(Conflict) as refused, transaction(rt.engine) as conn:
            funds.adjust(conn, rt.clock, OPS, uin, sub_account=sub, amount=1_00,
                         reason="goodwill", key=f"adj-{sub}")
        assert refused.value.field == "uin" and "已注销" in refused.value.message_zh
    with pytest.raises(Conflict) as no_credit, transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=100_00)
    assert no_credit.value.field == "uin"
    with pytest.raises(Conflict) as no_coupon, transaction(rt.engine) as conn:
        coupons.grant(conn, rt.clock, OPS, uin, terms(), campaign="spring", key="c1")
    assert no_coupon.value.field == "uin"
    with transaction(rt.engine) as conn:
        code = coupons.create_codes(conn, rt.clock, OPS, terms(), campaign="wallet",
                                    count=1, key="b1").codes[0]
    before = row_counts(rt, audit_log, credit_lines, coupon_rows, *MONEY_TABLES)
    with pytest.raises(Conflict) as no_code, transaction(rt.engine) as conn:
        coupons.redeem(conn, rt.clock, OPS, uin, code)
    assert no_code.value.field == "uin"
    assert row_counts(rt, audit_log, credit_lines, coupon_rows, *MONEY_TABLES) == before
    with transaction(rt.engine) as conn:  # taking credit away stays possible
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=0)
    assert balance(rt, uin).cash == 0 and balance(rt, uin).gift == 0


@pytest.mark.spec("ACC-5")
def test_rest_refusals_are_409s_naming_uin_and_write_nothing(rt):
    """The operators' REST calls: an adjustment and a release for a cancelled account."""
    uin, number = cancelled_company(rt)
    do_import(rt, [line("C1", number, 500_00)])
    with transaction(rt.engine) as conn:
        _, ops_key = auth.create_operator(conn, rt.clock, OPS, "cancel-ops")
    ops = Signed(rt, TestClient(create_app(rt), base_url=f"http://{HOST}"), ops_key)
    before = row_counts(rt, audit_log, *MONEY_TABLES)
    adjusted = ops.send("POST", f"/api/v1/ops/accounts/{uin}/adjustments", {
        "sub_account": "cash", "amount": "5.00", "reason": "goodwill", "idempotency_key": "a1"})
    released = ops.send("POST", f"/api/v1/ops/remittances/{record(rt, 'C1')['id']}/release")
    for answer in (adjusted, released):
        assert answer.status_code == 409, answer.text
        error = answer.json()["error"]
        assert error["field"] == "uin" and "已注销" in error["message_zh"]
        assert "cancelled" in error["message_en"]
    assert row_counts(rt, audit_log, *MONEY_TABLES) == before
    assert balance(rt, uin).cash == 0 and record(rt, "C1")["state"] == rules.HELD


# ---------------------------------------------------------------- racing a cancellation (PostgreSQL)

def _platforms(rt) -> None:
    with transaction(rt.engine) as conn:
        for purpose in ("forfeited_gift", "bank", "remittance_suspense"):
            funds.platform_account(conn, rt.clock, purpose)


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
def test_an_import_waiting_for_a_cancellation_holds_the_line_it_decided_to_credit(rt):
    """The import decides while the cancellation is not committed (the account looks
    normal: credited), then waits for the balance rows at the credit; it finds the
    account cancelled and holds the record; the import's counts follow."""
    uin, number, _ = company(rt)
    _platforms(rt)
    actor = owner(rt, uin)
    with transaction(rt.engine) as conn:
        service.cancel(conn, rt.clock, actor, uin, key="k")
        thread, out = _in_thread(lambda: do_import(rt, [line("W1", number, 900_00)]))
        time.sleep(1.0)
        assert thread.is_alive() and out == []  # waiting on the balance rows
    thread.join(timeout=30)
    summary = out[0]
    assert (summary.credited, summary.held, summary.credited_fen) == (0, 1, 0)
    assert_held_for_cancellation(rt, "W1", uin)
    with rt.engine.connect() as conn:
        stored = conn.execute(select(remittance_imports.c.credited, remittance_imports.c.held)
                              ).one()
    assert tuple(stored) == (0, 1)
    assert_reconciled(rt)


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
def test_a_cancellation_waiting_for_an_import_finds_the_cash(rt):
    uin, number, _ = company(rt)
    _platforms(rt)
    actor = owner(rt, uin)

    def cancel_now():
        with transaction(rt.engine) as conn:
            return service.cancel(conn, rt.clock, actor, uin, key="k")

    with transaction(rt.engine) as conn:
        remittances.import_transfers(conn, rt.clock, OPS, [line("W1", number, 900_00)],
                                     source="mt940", digest="d", settings=SETTINGS)
        thread, out = _in_thread(cancel_now)
        time.sleep(1.0)
        assert thread.is_alive() and out == []
    thread.join(timeout=30)
    assert isinstance(out[0], Conflict) and out[0].details["blockers"] == ["cash"]
    assert status_of(rt, uin) == "normal" and balance(rt, uin).cash == 900_00


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
def test_an_assignment_waiting_for_a_cancellation_holds_the_record(rt):
    uin, _, _ = company(rt)
    _platforms(rt)
    do_import(rt, [line("U1", P1 + "0000000001", 300_00)])
    rec = record(rt, "U1")
    actor = owner(rt, uin)
    with transaction(rt.engine) as conn:
        service.cancel(conn, rt.clock, actor, uin, key="k")
        thread, out = _in_thread(lambda: act(rt, remittances.assign, OPS, rec["id"], uin))
        time.sleep(1.0)
        assert thread.is_alive() and out == []
    thread.join(timeout=30)
    assert out[0]["state"] == rules.HELD
    assert_held_for_cancellation(rt, "U1", uin)


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
def test_remittances_racing_cancellations_never_leave_a_cancelled_account_with_cash(rt):
    """4 accounts, each raced by its cancellation and a statement line to its number
    (imports run one at a time; the pushes and the operators' file imports alike).
    Whichever wins, the other outcome follows: cancelled and the line held, or
    credited and the cancellation refused for the cash."""
    _platforms(rt)
    targets = [company(rt, f"race-{n}")[:2] for n in range(4)]
    actors = {uin: owner(rt, uin) for uin, _ in targets}
    outcomes: dict = {}

    def work(i: int) -> None:
        uin, number = targets[i // 2]
        if i % 2:
            outcomes[i] = do_import(rt, [line(f"R{i}", number, 100_00)], digest=f"d{i}")
            return
        time.sleep(0.3 * (i // 2))  # staggered: the first cancellations tend to win,
        try:                        # the later ones to find the cash
            with transaction(rt.engine) as conn:
                outcomes[i] = service.cancel(conn, rt.clock, actors[uin], uin,
                                             key="k")["created"]
        except Conflict as exc:
            outcomes[i] = exc.details["blockers"]

    assert run_threads(8, work) == []
    for n, (uin, _) in enumerate(targets):
        cancelled, summary, rec = outcomes[2 * n], outcomes[2 * n + 1], record(rt, f"R{2 * n + 1}")
        if status_of(rt, uin) == "cancelled":
            assert cancelled is True and balance(rt, uin).cash == 0
            assert (rec["state"], rec["reason"]) == (rules.HELD, rules.ACCOUNT_CANCELLED_REASON)
            assert (summary.credited, summary.held) == (0, 1)
        else:
            assert cancelled == ["cash"] and balance(rt, uin).cash == 100_00
            assert rec["state"] == rules.CREDITED and (summary.credited, summary.held) == (1, 0)
    assert_reconciled(rt)


@pytest.mark.spec("ACC-5")
@pytest.mark.postgres_only
@pytest.mark.parametrize("grant", ["credit", "coupon"])
def test_a_credit_line_or_coupon_granted_during_a_cancellation_waits_and_is_refused(rt, grant):
    """The grant reads the account's state after the balance lock the cancellation
    holds: it waits for the cancellation to commit, then finds it cancelled."""
    uin = new_account(rt)
    give = {"credit": lambda c: funds.grant_credit(c, rt.clock, OPS, uin, credit_limit=100_00),
            "coupon": lambda c: coupons.grant(c, rt.clock, OPS, uin, terms(),
                                              campaign="spring", key="c1")}[grant]

    def in_own_transaction():
        with transaction(rt.engine) as conn:
            return give(conn)
    with transaction(rt.engine) as conn:
        service.cancel(conn, rt.clock, owner(rt, uin), uin, key="k")
        thread, out = _in_thread(in_own_transaction)
        time.sleep(1.0)
        assert thread.is_alive() and out == []  # waiting on the balance rows
    thread.join(timeout=30)
    assert isinstance(out[0], Conflict) and out[0].field == "uin"
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.coalesce(func.max(credit_lines.c.credit_limit), 0))
                            .where(credit_lines.c.uin == uin)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(coupon_rows)
                            .where(coupon_rows.c.uin == uin)).scalar() == 0


@pytest.mark.spec("ACC-5")
def test_a_cancellation_ends_the_credit_line(rt):
    uin = new_account(rt)
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=500_00)
    cancel(rt, uin)
    with rt.engine.connect() as conn:
        row = conn.execute(select(credit_lines.c.credit_limit, credit_lines.c.temp_credit)
                           .where(credit_lines.c.uin == uin)).one()
        assert tuple(row) == (0, 0)
        audit = conn.execute(select(audit_log.c.detail).where(
            audit_log.c.action == "cancel_account", audit_log.c.uin == uin)).scalar()
    assert json.loads(audit)["credit_limit_ended"] == 500_00
