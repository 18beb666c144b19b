"""The fee account's money rules (BAL, ARR-4, FRZ) through the funds services."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.audit.service import list_audit
from feecenter.errors import AccountInArrears, InsufficientBalance, PermissionDenied
from feecenter.funds import rules
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.reconcile import reconcile
from feecenter.ledger.tables import ledger_postings, ledger_transactions
from tests.helpers import OPS, add_cash, add_gift, balance, new_account


def spend(rt, uin, fen, key, postpaid=False, **kw):
    with rt.engine.begin() as conn:
        return funds.spend(conn, rt.clock, uin, fen, key=key, postpaid=postpaid,
                           revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"),
                           **kw)


def row_counts(rt):
    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (ledger_transactions, ledger_postings, statement_entries))


def assert_clean(rt):
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []


@pytest.mark.spec("BAL-3", "BAL-2")
def test_spending_takes_gift_first_then_cash(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 10_000)
    add_gift(rt, uin, 3_000)
    spend(rt, uin, 5_000, "s1")
    view = balance(rt, uin)
    assert (view.cash, view.gift, view.available) == (8_000, 0, 8_000)
    with rt.engine.connect() as conn:
        entry = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(
            action_types=("deduct",)))["items"][0]
    assert (entry["gift_amount"], entry["cash_amount"], entry["amount"]) == (-3_000, -2_000, -5_000)
    assert entry["balance_after"] == 8_000
    assert_clean(rt)


@pytest.mark.spec("BAL-4")
def test_prepaid_never_overdraws_postpaid_makes_arrears(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 1_000)
    before = row_counts(rt)
    with pytest.raises(InsufficientBalance) as err:
        spend(rt, uin, 1_001, "prepaid-too-much")
    assert "0.01" in err.value.message_zh
    assert row_counts(rt) == before
    spend(rt, uin, 1_500, "postpaid", postpaid=True, deduct_mode="hour_h")
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.available) == (0, 500, -500)
    with rt.engine.connect() as conn:
        assert accounts.account_state(conn, rt.clock, uin) == "arrears"
    with pytest.raises(AccountInArrears) as err:
        spend(rt, uin, 1, "blocked")
    assert err.value.details["arrears"] == "5.00"
    assert_clean(rt)


@pytest.mark.spec("BAL-7")
def test_credit_pays_beyond_balance_as_an_advance(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 1_000)
    with rt.engine.begin() as conn:
        view = funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=5_000,
                                  temp_credit=2_000, temp_credit_end=rt.clock.now() + timedelta(days=1))
    assert (view.credit_amount, view.credit_balance, view.real_credit_balance) == (7_000, 8_000, 8_000)
    spend(rt, uin, 4_000, "on-credit")
    view = balance(rt, uin)
    assert (view.cash, view.advances, view.arrears) == (0, 3_000, 0)
    assert view.credit_balance == 0 + (7_000 - 3_000)
    with pytest.raises(InsufficientBalance):
        spend(rt, uin, 4_001, "beyond-credit")
    rt.clock.advance(days=2)  # the temporary credit ends
    view = balance(rt, uin)
    assert view.credit_amount == 5_000 and view.credit_balance == 2_000
    assert_clean(rt)


@pytest.mark.spec("BAL-7")
def test_credit_in_force_and_credit_left():
    now = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    end = now + timedelta(days=1)
    assert rules.credit_in_force(5_000, 0, None, now) == 5_000
    assert rules.credit_in_force(5_000, 2_000, end, now) == 7_000  # before its end
    assert rules.credit_in_force(5_000, 2_000, end, end) == 5_000  # ends at its end time
    assert rules.credit_in_force(5_000, 2_000, end, end + timedelta(days=1)) == 5_000
    assert rules.credit_left(7_000, advances=3_000) == 4_000
    assert rules.credit_left(5_000, advances=7_000) == 0  # temporary credit ended after use
    assert rules.credit_left(0, advances=0) == 0


@pytest.mark.spec("BAL-7")
def test_credit_needs_an_operator(rt):
    uin = new_account(rt)
    owner = Actor("user", "owner", uin=uin, user_id=1, role="owner")
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        funds.grant_credit(conn, rt.clock, owner, uin, credit_limit=100)


@pytest.mark.spec("BAL-7", "ARR-4")
def test_arr4_advance_repaid_before_balance(rt):
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=50_000)
    spend(rt, uin, 50_000, "advance")
    add_cash(rt, uin, 80_000, key="remit")
    view = balance(rt, uin)
    assert (view.cash, view.advances, view.available) == (30_000, 0, 30_000)
    with rt.engine.connect() as conn:
        page = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery())
    assert [e["action_type"] for e in page["items"]][:2] == ["repay", "adj_refund"]
    assert_clean(rt)


@pytest.mark.spec("BAL-7", "BAL-4", "ARR-4")
def test_arr4_arrears_then_advance_then_balance(rt):
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=50_000)
    spend(rt, uin, 50_000, "advance")
    spend(rt, uin, 10_000, "usage", postpaid=True)  # credit used up: arrears 10,000
    assert balance(rt, uin).available == -10_000
    add_cash(rt, uin, 80_000, key="remit")
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.advances, view.available) == (20_000, 0, 0, 20_000)
    assert_clean(rt)


@pytest.mark.spec("BAL-1", "BAL-2", "BAL-5", "FRZ-1", "FRZ-2", "FRZ-4")
def test_freeze_and_release_show_in_balance_and_list(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 10_000)
    add_gift(rt, uin, 1_000)
    with rt.engine.begin() as conn:
        hold = funds.freeze(conn, rt.clock, uin, 4_000, key="f1", product_code="cvm")
    view = balance(rt, uin)
    assert (view.cash, view.gift, view.frozen, view.available) == (10_000, 1_000, 4_000, 7_000)
    with pytest.raises(InsufficientBalance):
        spend(rt, uin, 7_001, "too-much-while-frozen")
    with rt.engine.begin() as conn:
        funds.deduct_frozen(conn, rt.clock, uin, hold,
                            revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    view = balance(rt, uin)
    assert (view.frozen, view.gift, view.cash, view.available) == (0, 0, 7_000, 7_000)
    with rt.engine.connect() as conn:
        page = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(
            action_types=("block", "unblock", "deduct")))
    assert [e["action_type"] for e in page["items"]] == ["deduct", "block"]
    assert page["items"][1]["frozen_after"] == 4_000
    assert_clean(rt)


def test_unfreeze_returns_everything(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 5_000)
    with rt.engine.begin() as conn:
        hold = funds.freeze(conn, rt.clock, uin, 5_000, key="f")
    with rt.engine.begin() as conn:
        funds.unfreeze(conn, rt.clock, uin, hold)
    view = balance(rt, uin)
    assert (view.frozen, view.available) == (0, 5_000)
    with rt.engine.begin() as conn, pytest.raises(Exception):
        funds.unfreeze(conn, rt.clock, uin, hold)
    assert_clean(rt)


@pytest.mark.spec("BAL-5")
def test_transaction_list_filters_and_pages(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 100_000)
    for i in range(5):
        rt.clock.advance(hours=1)
        spend(rt, uin, 100 + i, f"d{i}", product_code="cvm" if i % 2 else "cos",
              billing_item="cpu")
    rt.clock.advance(hours=1)
    with rt.engine.begin() as conn:
        funds.freeze(conn, rt.clock, uin, 50, key="f")

    def page(**kw):
        with rt.engine.connect() as conn:
            return funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(**kw))

    assert page()["total"] == 7
    assert page(product_code="cvm")["total"] == 2
    assert page(action_types=("block",))["total"] == 1
    two = page(action_types=("deduct",), offset=1, limit=2)
    assert [e["amount"] for e in two["items"]] == [-103, -102] and two["total"] == 5
    assert two["totals"]["deduct"] == -(100 + 101 + 102 + 103 + 104)
    window = page(start=rt.clock.now() - timedelta(hours=2, minutes=30),
                  end=rt.clock.now() - timedelta(minutes=30))
    assert [e["amount"] for e in window["items"]] == [-104, -103]
    with pytest.raises(Exception) as err:
        page(limit=0)
    assert err.value.field == "limit"


@pytest.mark.spec("BAL-6")
def test_reconcile_per_account_finds_tampering(rt):
    uin = new_account(rt)
    other = new_account(rt, "other")
    add_cash(rt, uin, 100)
    with rt.engine.begin() as conn:
        conn.exec_driver_sql(f"UPDATE ledger_accounts SET balance = 7 WHERE code = 'cust:{uin}:gift'")
        diffs = reconcile(conn, uin)
        assert [(d.kind, d.subject, d.expected, d.actual) for d in diffs] == [
            ("balance_mismatch", f"cust:{uin}:gift", 0, 7)]
        assert reconcile(conn, other) == []


@pytest.mark.spec("ACC-3")
def test_storefronts_share_one_fee_account(rt):
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        accounts.add_storefront(conn, uin, "devplatform", "开发者平台 / developer platform")
    add_cash(rt, uin, 1_000)
    spend(rt, uin, 300, "console-buy", storefront="console")
    spend(rt, uin, 200, "dev-buy", storefront="devplatform")
    assert balance(rt, uin).cash == 500
    with rt.engine.connect() as conn:
        items = funds.list_transactions(conn, SYSTEM, uin, funds.StatementQuery(
            action_types=("deduct",)))["items"]
        fronts = accounts.list_storefronts(conn, SYSTEM, uin)
    assert {e["storefront"] for e in items} == {"console", "devplatform"}
    assert [f["code"] for f in fronts] == ["console", "devplatform"]


def test_failure_mid_operation_leaves_no_partial_rows(rt, monkeypatch):
    uin = new_account(rt)
    add_cash(rt, uin, 1_000)
    before = row_counts(rt)

    def explode(*args, **kwargs):
        raise RuntimeError("crash after the ledger write, before the statement entry")

    monkeypatch.setattr(funds, "_record", explode)
    with pytest.raises(RuntimeError):
        spend(rt, uin, 100, "crashy")
    monkeypatch.undo()
    assert row_counts(rt) == before
    assert balance(rt, uin).cash == 1_000
    spend(rt, uin, 100, "crashy")  # the same key works after the rollback
    assert balance(rt, uin).cash == 900
    assert_clean(rt)


def test_adjustments_are_audited_and_operator_only(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 1_000, key="audited")
    owner = Actor("user", "owner", uin=uin, user_id=1, role="owner")
    with rt.engine.begin() as conn, pytest.raises(PermissionDenied):
        funds.adjust(conn, rt.clock, owner, uin, sub_account="cash", amount=5, reason="r", key="x")
    with rt.engine.connect() as conn:
        log = list_audit(conn, OPS, uin)
    adjust = [a for a in log if a["action"] == "adjust"]
    assert len(adjust) == 1 and '"amount": 1000' in adjust[0]["detail"]
    assert adjust[0]["actor"] == "operator:test-operator"
