"""Account cancellation (注销, ACC-5; docs/cancellation.md): every blocker listed alone
and all together; a cancellation refused while blocked changes nothing and lists every
reason in one error; once clear it succeeds, forfeits the gift, disables the keys and
ends the sessions; a cancelled account cannot log in, call the API, buy or recharge,
and a payment for it is not credited; a repeat changes nothing; only the owner may
cancel; the cancellation-help request kind; REST and the console's 注销 page."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, insert, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.accounts.tables import customers
from feecenter.audit.tables import audit_log
from feecenter.auth import sessions
from feecenter.auth.tables import api_keys
from feecenter.cancellation import service
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.errors import AuthFailed, Conflict, PermissionDenied, PurchaseRefused
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_transactions
from feecenter.notifications.tables import in_site_messages as messages
from feecenter.recharges import rules as recharge_rules
from feecenter.recharges import service as recharges
from feecenter.recharges.gateway import ProviderPayment
from feecenter.recharges.tables import recharges as recharge_rows
from feecenter.remittances.tables import remittance_imports, remittances
from feecenter.resources import service as resources
from feecenter.service_requests import service as srv
from feecenter.withdrawals.tables import withdrawals
from tests.helpers import (OPS, add_cash, add_gift, api_key, assert_reconciled, balance,
                           new_account, row_counts, run_threads)
from tests.rest_harness import Signed
from tests.test_console import PASSWORD, client, csrf_of, log_in, logged_in, set_password

pytestmark = pytest.mark.spec("ACC-5")


def owner(rt, uin: int):
    with rt.engine.connect() as conn:
        return accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])


def blockers(rt, uin: int) -> list[dict]:
    with rt.engine.connect() as conn:
        return service.blockers(conn, rt.clock, SYSTEM, uin)


def cancel(rt, uin: int, actor=None, key: str = "cancel-1") -> dict:
    actor = actor or owner(rt, uin)
    with transaction(rt.engine) as conn:
        return service.cancel(conn, rt.clock, actor, uin, key=key)


def status_of(rt, uin: int) -> str:
    with rt.engine.connect() as conn:
        return conn.execute(select(customers.c.status).where(customers.c.uin == uin)).scalar()


# ---------------------------------------------------------------- making each blocker

def _arrears(rt, uin):
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, 12_34, key="arrears", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))


def _advances(rt, uin):
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=100_00)
        funds.spend(conn, rt.clock, uin, 30_00, key="advance", postpaid=False,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))


def _cash(rt, uin):
    add_cash(rt, uin, 5_00)


def _frozen(rt, uin):
    add_gift(rt, uin, 80_00)
    with transaction(rt.engine) as conn:
        funds.freeze(conn, rt.clock, uin, 50_00, key="freeze")


def _recharge(rt, uin, state="pending"):
    now = db_time(rt.clock.now())
    with transaction(rt.engine) as conn:
        return conn.execute(insert(recharge_rows).values(
            uin=uin, amount=100_00, channel="wechat", payer="p", out_trade_no=f"FC{state}{uin}",
            state=state, intl_card=False, source="qr", created_by="test", created_at=now,
            expires_at=now + timedelta(minutes=30)).returning(recharge_rows.c.id)).scalar_one()


def _remittance(state):
    def make(rt, uin):
        now = db_time(rt.clock.now())
        with transaction(rt.engine) as conn:
            import_id = conn.execute(insert(remittance_imports).values(
                source="test", digest="d" * 64, operator="ops", imported_at=now, lines=1,
                credited=0, unassigned=0, pending=1, held=0, not_ours=0, duplicates=0,
                new_fen=0, credited_fen=0).returning(remittance_imports.c.id)).scalar_one()
            conn.execute(insert(remittances).values(
                receiving_account="r", bank_reference=f"ref-{state}", content_digest="c" * 64,
                import_id=import_id, line=1, payee_account="p", payer_name="payer",
                payer_account="1", payer_bank="b", amount=1_000_00, currency="CNY", memo="",
                value_date=date(2026, 12, 1), uin=uin, state=state, arrived_at=now,
                updated_at=now))
    return make


def _withdrawal(rt, uin):
    with transaction(rt.engine) as conn:
        conn.execute(insert(withdrawals).values(
            uin=uin, request_key="w1", request_digest="0" * 64, route="original", amount=20_00,
            state="in_progress", applied_by="test", applied_at=db_time(rt.clock.now())))


def _resource(rt, uin):
    with transaction(rt.engine) as conn:
        resources.create_resource(conn, rt.clock, uin=uin, product_code="cvm",
                                  region="ap-guangzhou",
                                  project_id=resources.default_project(conn, rt.clock, uin),
                                  pay_mode="postpaid", spec_item=None, quantity=1_000_000)


BLOCKERS = {
    "arrears": (_arrears, {"amount": 12_34}),
    "advances": (_advances, {"amount": 30_00}),
    "cash": (_cash, {"amount": 5_00}),
    "frozen": (_frozen, {"amount": 50_00}),
    "recharges_pending": (_recharge, {"count": 1}),
    "remittances_pending_confirmation": (_remittance("pending_confirmation"), {"count": 1}),
    "remittances_pending_signature": (_remittance("pending_signature"), {"count": 1}),
    "remittances_review_failed": (_remittance("review_failed"), {"count": 1}),
    "remittances_held": (_remittance("held"), {"count": 1}),
    "withdrawals_in_progress": (_withdrawal, {"count": 1, "amount": 20_00}),
    "resources": (_resource, {"count": 1}),
}


@pytest.mark.parametrize("code", list(BLOCKERS))
def test_each_blocker_is_listed_alone_and_refuses_the_cancellation(rt, code):
    uin = new_account(rt)
    make, expected = BLOCKERS[code]
    make(rt, uin)
    found = blockers(rt, uin)
    assert [b["code"] for b in found] == [code]
    assert {k: found[0][k] for k in expected} == expected
    assert found[0]["zh"] and found[0]["en"]
    before = row_counts(rt, ledger_transactions, statement_entries, audit_log, api_keys)
    with pytest.raises(Conflict) as refused:
        cancel(rt, uin)
    assert refused.value.field == "uin" and refused.value.details["blockers"] == [code]
    assert found[0]["zh"] in refused.value.message_zh
    assert found[0]["en"] in refused.value.message_en
    assert status_of(rt, uin) == "normal"
    assert row_counts(rt, ledger_transactions, statement_entries, audit_log, api_keys) == before


def test_every_blocker_is_listed_together_in_one_error(rt):
    uin = new_account(rt)
    # incoming cash repays arrears and advances first (ARR-4): cash frozen first, then debts
    add_cash(rt, uin, 50_00)
    with transaction(rt.engine) as conn:
        funds.freeze(conn, rt.clock, uin, 50_00, key="freeze")
    _advances(rt, uin)
    with transaction(rt.engine) as conn:  # credit's 70.00 left, then 30.00 in arrears
        funds.spend(conn, rt.clock, uin, 100_00, key="arrears", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    for code, (make, _) in BLOCKERS.items():
        if code not in ("arrears", "advances", "cash", "frozen"):
            make(rt, uin)
    found = blockers(rt, uin)
    assert [b["code"] for b in found] == list(BLOCKERS)
    assert [b.get("amount") for b in found[:4]] == [30_00, 100_00, 50_00, 50_00]
    with pytest.raises(Conflict) as refused:
        cancel(rt, uin)
    assert refused.value.details["blockers"] == list(BLOCKERS)
    for n, blocker in enumerate(found, 1):
        assert f"{n}. {blocker['zh']}" in refused.value.message_zh
        assert f"{n}. {blocker['en']}" in refused.value.message_en
    assert status_of(rt, uin) == "normal"


def test_finished_records_and_a_gift_do_not_block(rt):
    uin = new_account(rt)
    add_gift(rt, uin, 7_00)
    _recharge(rt, uin, "closed")
    _remittance("credited")(rt, uin)
    assert blockers(rt, uin) == []


# ---------------------------------------------------------------- cancelling

def test_cancel_succeeds_once_clear_forfeits_the_gift_and_ends_access(rt):
    uin = new_account(rt)
    add_gift(rt, uin, 7_00)
    _cash(rt, uin)
    api_key(rt, uin)
    set_password(rt, uin, None)
    session = sessions.log_in(rt.engine, rt.clock, str(uin), "acme", PASSWORD)
    with pytest.raises(Conflict):
        cancel(rt, uin)
    with transaction(rt.engine) as conn:  # the cash is taken out (as a withdrawal would)
        funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=-5_00,
                     reason="paid out", key="out")
    done = cancel(rt, uin)
    assert done == {"uin": uin, "cancelled": True, "created": True, "gift_forfeited": 7_00,
                    "keys_disabled": 1, "sessions_ended": 1}
    assert status_of(rt, uin) == "cancelled"
    assert balance(rt, uin).gift == 0
    with rt.engine.connect() as conn:
        states = conn.execute(select(api_keys.c.state).where(api_keys.c.uin == uin)).scalars()
        assert list(states) == ["disabled"]
        assert conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "cancel_account", audit_log.c.uin == uin)).scalar() == 1
        assert conn.execute(select(func.count()).select_from(messages).where(
            messages.c.uin == uin, messages.c.template == "account_cancelled")).scalar() == 1
    assert sessions.current_session(rt.engine, rt.clock, session.token) is None
    assert_reconciled(rt)


def test_a_repeat_changes_nothing(rt):
    uin = new_account(rt)
    add_gift(rt, uin, 3_00)
    assert cancel(rt, uin)["created"] is True
    before = row_counts(rt, ledger_transactions, statement_entries, audit_log, messages)
    for key in ("cancel-1", "another-key"):
        assert cancel(rt, uin, key=key) == {"uin": uin, "cancelled": True, "created": False,
                                             "gift_forfeited": 0}
    assert row_counts(rt, ledger_transactions, statement_entries, audit_log, messages) == before


def test_only_the_owner_may_cancel(rt):
    uin = new_account(rt)
    other = new_account(rt, "other")
    with transaction(rt.engine) as conn:
        ids = {role: accounts.add_user(conn, rt.clock, OPS, uin, f"u-{role}", role)
               for role in ("finance", "admin", "readonly")}
    for role, user_id in ids.items():
        with rt.engine.connect() as conn:
            actor = accounts.user_actor(conn, user_id)
        with pytest.raises(PermissionDenied):
            cancel(rt, uin, actor)
    with pytest.raises(PermissionDenied):
        cancel(rt, uin, owner(rt, other))
    with pytest.raises(PermissionDenied):  # the blockers are a finance view (ACC-2)
        with rt.engine.connect() as conn:
            service.blockers(conn, rt.clock, owner(rt, other), uin)
    assert status_of(rt, uin) == "normal"


def test_a_malformed_key_is_refused_naming_it(rt):
    uin = new_account(rt)
    from feecenter.errors import InvalidInput
    with pytest.raises(InvalidInput) as refused:
        cancel(rt, uin, key="")
    assert refused.value.field == "idempotency_key"
    assert status_of(rt, uin) == "normal"


# ---------------------------------------------------------------- after cancellation

def test_a_cancelled_account_cannot_log_in_buy_or_recharge(rt):
    uin = new_account(rt)
    set_password(rt, uin, None)
    cancel(rt, uin)
    with pytest.raises(AuthFailed) as refused:
        sessions.log_in(rt.engine, rt.clock, str(uin), "acme", PASSWORD)
    assert refused.value.reason == "AccountCancelled"
    assert "注销" in refused.value.message_zh and "cancelled" in refused.value.message_en
    with pytest.raises(AuthFailed) as wrong:  # a wrong password learns nothing
        sessions.log_in(rt.engine, rt.clock, str(uin), "acme", "not-the-password")
    assert wrong.value.reason == "LoginFailed"
    with pytest.raises(PurchaseRefused):
        with rt.engine.connect() as conn:
            accounts.purchase_gate(conn, rt.clock, uin, 0)
    actor = owner(rt, uin)
    with pytest.raises(recharge_rules.RechargeRefused) as no_recharge:
        with transaction(rt.engine) as conn:
            recharges._admit(conn, rt.clock, actor, uin,
                             recharges.NewRecharge(amount=100_00, channel="wechat"), "wechat",
                             "payer", recharges.Settings())
    assert no_recharge.value.field == "uin"


def test_a_payment_for_a_cancelled_account_is_not_credited(rt):
    uin = new_account(rt)
    recharge_id = _recharge(rt, uin, "closed")  # closed, then paid late
    cancel(rt, uin)
    with transaction(rt.engine) as conn:
        row = recharges.get(conn, SYSTEM, recharge_id)
        outcome = recharges.apply_payment(conn, rt.clock, row, ProviderPayment(
            row["out_trade_no"], "paid", 100_00, provider_txn_id="t1"))
    assert outcome == "account_cancelled"
    assert balance(rt, uin).cash == 0
    with rt.engine.connect() as conn:
        row = recharges.get(conn, SYSTEM, recharge_id)
    assert (row["state"], row["fail_reason"]) == ("failed", recharge_rules.ACCOUNT_CANCELLED)


def test_rest_lists_blockers_cancels_and_then_refuses_the_key(rt):
    uin = new_account(rt)
    _cash(rt, uin)
    http = client(rt)
    signed = Signed(rt, http, api_key(rt, uin))
    shown = signed.send("GET", f"/api/v1/accounts/{uin}/cancellation")
    assert shown.status_code == 200, shown.text
    assert shown.json()["may_cancel"] is False
    assert shown.json()["blockers"][0] | {"zh": "", "en": ""} == {
        "code": "cash", "amount": "5.00", "zh": "", "en": ""}
    refused = signed.send("POST", f"/api/v1/accounts/{uin}/cancellation",
                          {"idempotency_key": "k1"})
    assert refused.status_code == 409 and refused.json()["error"]["field"] == "uin"
    with transaction(rt.engine) as conn:
        funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=-5_00,
                     reason="paid out", key="out")
    assert signed.send("GET", f"/api/v1/accounts/{uin}/cancellation").json()["may_cancel"]
    done = signed.send("POST", f"/api/v1/accounts/{uin}/cancellation", {"idempotency_key": "k1"})
    assert done.status_code == 200, done.text
    assert done.json()["cancelled"] is True and done.json()["gift_forfeited"] == "0.00"
    after = signed.send("GET", f"/api/v1/accounts/{uin}/balance")
    assert after.status_code == 401
    error = after.json()["error"]
    assert "已注销" in error["message_zh"] and "cancelled" in error["message_en"]


# ---------------------------------------------------------------- cancellation help (SRV-1)

def _file(rt, uin, actor, wish):
    with transaction(rt.engine) as conn:
        return srv.file_request(conn, rt.clock, actor, uin, "cancellation_help",
                                {"wish": wish, "reason": "closing the company",
                                 "phone": "13800138000"})


def _resolve(rt, request_id):
    with transaction(rt.engine) as conn:
        srv.take(conn, rt.clock, OPS, request_id)
    with transaction(rt.engine) as conn:
        return srv.resolve(conn, rt.clock, OPS, request_id, "done")


@pytest.mark.spec("ACC-5", "SRV-1", "SRV-2")
def test_cancellation_help_advises_then_cancels_on_behalf_once_clear(rt):
    uin = new_account(rt)
    _cash(rt, uin)
    advice = _resolve(rt, _file(rt, uin, owner(rt, uin), "advice")["id"])
    assert advice["result"]["blockers"] == ["cash"] and advice["result"]["cancelled"] is False
    asked = _file(rt, uin, owner(rt, uin), "cancel")
    assert asked["due_at"] > asked["created_at"]
    with transaction(rt.engine) as conn:
        srv.take(conn, rt.clock, OPS, asked["id"])
    with pytest.raises(Conflict) as blocked:  # still blocked: the resolution is refused
        with transaction(rt.engine) as conn:
            srv.resolve(conn, rt.clock, OPS, asked["id"], None)
    assert blocked.value.details["blockers"] == ["cash"]
    with transaction(rt.engine) as conn:
        funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=-5_00,
                     reason="paid out", key="out")
    with transaction(rt.engine) as conn:
        done = srv.resolve(conn, rt.clock, OPS, asked["id"], None)
    assert done["result"]["cancelled"] is True and status_of(rt, uin) == "cancelled"


@pytest.mark.spec("ACC-5", "SRV-1")
def test_only_the_owner_asks_to_cancel_through_a_request(rt):
    uin = new_account(rt)
    with transaction(rt.engine) as conn:
        user_id = accounts.add_user(conn, rt.clock, OPS, uin, "fin", "finance")
    with rt.engine.connect() as conn:
        finance = accounts.user_actor(conn, user_id)
    with pytest.raises(PermissionDenied):
        _file(rt, uin, finance, "cancel")
    assert _file(rt, uin, finance, "advice")["kind"] == "cancellation_help"


# ---------------------------------------------------------------- the console's 注销 page

def test_console_page_lists_blockers_with_links_and_cancels_once_clear(rt):
    uin = new_account(rt, "acme-cloud")
    add_gift(rt, uin, 2_00)
    _cash(rt, uin)
    _remittance("pending_signature")(rt, uin)
    set_password(rt, uin, None)
    http = logged_in(rt)
    shown = http.get("/console/cancellation")
    assert shown.status_code == 200
    assert 'data-blocker="cash"' in shown.text and 'href="/console/withdrawals"' in shown.text
    assert 'data-blocker="remittances_pending_signature"' in shown.text
    assert 'href="/console/remittance"' in shown.text
    assert "data-cancel-form" not in shown.text and "data-gift" in shown.text
    assert 'href="/console/cancellation"' in shown.text  # the menu entry
    refused = http.post("/console/cancellation", data={
        "csrf_token": csrf_of(shown.text), "request_key": "k", "confirm": "yes"})
    assert refused.status_code == 409 and "data-error" in refused.text
    with transaction(rt.engine) as conn:
        funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=-5_00,
                     reason="paid out", key="out")
        conn.execute(remittances.update().where(remittances.c.uin == uin)
                     .values(state="refunded"))
    clear = http.get("/console/cancellation")
    assert "data-cancel-form" in clear.text and "data-clear" in clear.text
    no_csrf = http.post("/console/cancellation", data={"request_key": "k", "confirm": "yes"})
    assert no_csrf.status_code == 403 and status_of(rt, uin) == "normal"
    unconfirmed = http.post("/console/cancellation", data={
        "csrf_token": csrf_of(clear.text), "request_key": "k"})
    assert unconfirmed.status_code == 400 and 'data-error-field="confirm"' in unconfirmed.text
    done = http.post("/console/cancellation", data={
        "csrf_token": csrf_of(clear.text), "request_key": "k", "confirm": "yes"})
    assert done.status_code == 200 and "data-cancelled" in done.text
    assert status_of(rt, uin) == "cancelled"
    assert http.get("/console/cancellation").status_code == 303  # the session ended
    again = log_in(client(rt), "acme-cloud", "acme-cloud")
    assert again.status_code == 401 and "已注销" in again.text


def test_console_page_offers_no_button_to_a_finance_user(rt):
    uin = new_account(rt, "acme-cloud")
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "fin", "finance")
    set_password(rt, uin, "fin")
    shown = logged_in(rt, "fin").get("/console/cancellation")
    assert shown.status_code == 200
    assert "data-owner-only" in shown.text and "data-cancel-form" not in shown.text


# ---------------------------------------------------------------- concurrency (PostgreSQL)

def _platforms(rt) -> None:
    """The platform accounts the races use exist before them (opening one is no race)."""
    with transaction(rt.engine) as conn:
        for purpose in ("forfeited_gift", "gateway_wechat"):
            funds.platform_account(conn, rt.clock, purpose)


@pytest.mark.postgres_only
def test_eight_concurrent_cancels_make_one_cancellation(rt):
    uin = new_account(rt)
    add_gift(rt, uin, 7_00)
    api_key(rt, uin)
    _platforms(rt)
    actor = owner(rt, uin)
    results: list = [None] * 8

    def work(i: int) -> None:
        with transaction(rt.engine) as conn:
            results[i] = service.cancel(conn, rt.clock, actor, uin, key=f"k{i % 2}")

    assert run_threads(8, work) == []
    assert sorted(r["created"] for r in results) == [False] * 7 + [True]
    assert sum(r["gift_forfeited"] for r in results) == 7_00
    assert status_of(rt, uin) == "cancelled" and balance(rt, uin).gift == 0
    with rt.engine.connect() as conn:
        forfeits = conn.execute(select(func.count()).select_from(ledger_transactions).where(
            ledger_transactions.c.idempotency_key == f"cancel:{uin}:gift")).scalar()
        audits = conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "cancel_account")).scalar()
        notices = conn.execute(select(func.count()).select_from(messages).where(
            messages.c.template == "account_cancelled")).scalar()
    assert (forfeits, audits, notices) == (1, 1, 1)
    assert_reconciled(rt)


def _late_payment(rt, recharge_id: int) -> str:
    with transaction(rt.engine) as conn:
        row = recharges.get(conn, SYSTEM, recharge_id)
        return recharges.apply_payment(conn, rt.clock, row, ProviderPayment(
            row["out_trade_no"], "paid", 100_00, provider_txn_id=f"t{recharge_id}"))


def _in_thread(target) -> tuple[threading.Thread, list]:
    out: list = []

    def run():
        try:
            out.append(target())
        except Exception as exc:  # noqa: BLE001 - returned to the test
            out.append(exc)
    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


@pytest.mark.postgres_only
def test_a_credit_waits_for_a_cancellation_holding_the_lock_and_is_not_credited(rt):
    """Lock order: the balance rows first, in both. A cancellation holding them makes
    the late payment's credit wait; it then finds the account cancelled."""
    uin = new_account(rt)
    recharge_id = _recharge(rt, uin, "closed")
    _platforms(rt)
    actor = owner(rt, uin)
    with transaction(rt.engine) as conn:
        service.cancel(conn, rt.clock, actor, uin, key="k")
        thread, out = _in_thread(lambda: _late_payment(rt, recharge_id))
        time.sleep(1.0)
        assert thread.is_alive() and out == []  # waiting on the balance rows
    thread.join(timeout=30)
    assert out == ["account_cancelled"]
    assert status_of(rt, uin) == "cancelled" and balance(rt, uin).cash == 0
    assert_reconciled(rt)


@pytest.mark.postgres_only
def test_a_cancellation_waits_for_a_credit_holding_the_lock_and_is_refused(rt):
    uin = new_account(rt)
    recharge_id = _recharge(rt, uin, "closed")
    _platforms(rt)
    actor = owner(rt, uin)

    def cancel_now():
        with transaction(rt.engine) as conn:
            return service.cancel(conn, rt.clock, actor, uin, key="k")

    with transaction(rt.engine) as conn:
        row = recharges.get(conn, SYSTEM, recharge_id)
        assert recharges.apply_payment(conn, rt.clock, row, ProviderPayment(
            row["out_trade_no"], "paid", 100_00, provider_txn_id="t")) == "credited"
        thread, out = _in_thread(cancel_now)
        time.sleep(1.0)
        assert thread.is_alive() and out == []
    thread.join(timeout=30)
    assert isinstance(out[0], Conflict) and out[0].details["blockers"] == ["cash"]
    assert status_of(rt, uin) == "normal" and balance(rt, uin).cash == 100_00


@pytest.mark.postgres_only
def test_cancels_racing_late_payments_never_leave_a_cancelled_account_with_cash(rt):
    _platforms(rt)
    accounts_ = []
    for n in range(4):
        uin = new_account(rt, f"race-{n}")
        accounts_.append((uin, _recharge(rt, uin, "closed"), owner(rt, uin)))
    outcomes: dict = {}

    def work(i: int) -> None:
        uin, recharge_id, actor = accounts_[i // 2]
        if i % 2:
            outcomes[i] = _late_payment(rt, recharge_id)
            return
        try:
            with transaction(rt.engine) as conn:
                outcomes[i] = service.cancel(conn, rt.clock, actor, uin, key="k")["created"]
        except Conflict as exc:
            outcomes[i] = exc.details["blockers"]

    assert run_threads(8, work) == []
    for n, (uin, _, _) in enumerate(accounts_):
        cancelled, credit = outcomes[2 * n], outcomes[2 * n + 1]
        if status_of(rt, uin) == "cancelled":
            assert (cancelled, credit, balance(rt, uin).cash) == (True, "account_cancelled", 0)
        else:
            assert (cancelled, credit, balance(rt, uin).cash) == (["cash"], "credited", 100_00)
    assert_reconciled(rt)
