"""Applying for a withdrawal (WDR-1..4, WDR-6; docs/withdrawal.md): the original route
takes recharges newest first inside their windows (or the picked ones), the offline
route pays the verified entity's bank account; the money is held at once as one
ledger hold per leg (cash -> withdrawals_in_flight) with a 收支明细 ``cash`` entry;
nothing more than withdrawable leaves, an invoice debt holds money back (INV-7), a
refusal names its field and writes nothing; the ledger reconciles after each."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.db.engine import transaction
from feecenter.errors import (Conflict, IdempotencyConflict, InsufficientBalance, InvalidInput, NotFound,
                              PermissionDenied)
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger import service as ledger
from feecenter.ledger.tables import ledger_accounts, ledger_holds, ledger_transactions
from feecenter.withdrawals import rules, service
from feecenter.withdrawals.tables import withdrawal_legs, withdrawals
from tests.helpers import OPS, assert_reconciled, balance, new_account, revenue, row_counts
from tests.invoice_seed import COMPANY_A, enterprise
from tests.withdrawal_seed import paid_recharge, preview, takeable, withdraw

BANK = {"holder": COMPANY_A, "account_no": "6222020200012345678", "bank": "中国工商银行",
        "branch": "北京海淀支行"}
TABLES = (withdrawals, withdrawal_legs, ledger_holds, ledger_transactions, statement_entries)


def three_recharges(rt, uin: int) -> list[int]:
    """¥100.00, ¥50.00 ten days later, ¥30.00 ten days after that (wechat)."""
    ids = []
    for amount in (100_00, 50_00, 30_00):
        ids.append(paid_recharge(rt, uin, amount))
        rt.clock.advance(days=10)
    return ids


def in_flight(rt) -> int:
    """The platform escrow's balance (uncached: the sum of its postings)."""
    with rt.engine.connect() as conn:
        account = conn.execute(select(ledger_accounts.c.id).where(
            ledger_accounts.c.code == "platform:default:withdrawals_in_flight")).scalar()
        return 0 if account is None else ledger.balance_of(conn, account)


def cash_entries(rt, uin: int) -> list[tuple]:
    e = statement_entries.c
    with rt.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            select(e.action_type, e.amount, e.cash_amount, e.deduct_mode, e.cash_after)
            .where(e.uin == uin, e.action_type == "cash").order_by(e.id))]


def holds_of(rt, view: dict) -> list[tuple]:
    with rt.engine.connect() as conn:
        ids = conn.execute(select(withdrawal_legs.c.hold_id).where(
            withdrawal_legs.c.withdrawal_id == view["id"]).order_by(withdrawal_legs.c.seq)
        ).scalars().all()
        return [tuple(conn.execute(select(ledger_holds.c.state, ledger_holds.c.amount).where(
            ledger_holds.c.id == i)).one()) for i in ids]


# ---------------------------------------------------------------- the original route (WDR-2)

@pytest.mark.spec("WDR-2", "WDR-4", "BAL-5")
def test_lifo_across_three_recharges_the_oldest_in_part_held_at_once(rt):
    uin = new_account(rt)
    r1, r2, r3 = three_recharges(rt, uin)
    made = withdraw(rt, uin, 95_00)
    assert (made["amount"], made["route"], made["state"], made["bank"]) == (
        95_00, "original", "in_progress", None)
    assert [(leg["seq"], leg["source"], leg["ref_id"], leg["channel"], leg["amount"],
             leg["state"]) for leg in made["legs"]] == [
        (1, "recharge", r3, "wechat", 30_00, "pending"),
        (2, "recharge", r2, "wechat", 50_00, "pending"),
        (3, "recharge", r1, "wechat", 15_00, "pending")]
    applied = made["applied_at"]
    assert all((leg["estimate_from"], leg["estimate_to"]) == (applied, applied + timedelta(hours=2))
               for leg in made["legs"])
    assert holds_of(rt, made) == [("pending", 30_00), ("pending", 50_00), ("pending", 15_00)]
    assert balance(rt, uin).cash == 85_00 and in_flight(rt) == 95_00
    assert cash_entries(rt, uin) == [("cash", -95_00, -95_00, "original", 85_00)]
    again = withdraw(rt, uin, 80_00, key="w2")  # what r1 has left: 85.00
    assert [(leg["ref_id"], leg["amount"]) for leg in again["legs"]] == [(r1, 80_00)]
    with pytest.raises(InvalidInput) as refused:
        preview(rt, uin, 5_01)  # 5.00 left in cash, all of it r1's
    assert refused.value.field == "amount"
    assert_reconciled(rt)


@pytest.mark.spec("WDR-2", "WDR-3")
def test_day_360_in_day_361_out_to_the_fen(rt):
    uin = enterprise(rt)
    old = paid_recharge(rt, uin, 100_00)
    rt.clock.advance(days=1)
    young = paid_recharge(rt, uin, 1)  # ¥0.01 a day later
    rt.clock.advance(days=359)  # day 360 of the old one
    assert sum(leg["amount"] for leg in preview(rt, uin, 100_01)["legs"]) == 100_01
    rt.clock.advance(days=1)  # day 361 of the old one, day 360 of the young one
    assert [(leg["ref_id"], leg["amount"]) for leg in preview(rt, uin, 1)["legs"]] == [(young, 1)]
    with pytest.raises(InvalidInput) as refused:
        preview(rt, uin, 2)
    assert refused.value.field == "amount"
    assert "0.01" in refused.value.message_en and "offline" in refused.value.message_en
    assert "线下提现" in refused.value.message_zh
    with pytest.raises(InvalidInput) as picked:
        preview(rt, uin, 1, recharge_ids=[old])
    assert picked.value.field == "recharge_ids" and "offline" in picked.value.message_en
    made = withdraw(rt, uin, 100_01, route="offline", bank=BANK)  # money this old: offline
    assert [(leg["source"], leg["amount"], leg["state"]) for leg in made["legs"]] == [
        ("bank", 100_01, "queued")]
    assert_reconciled(rt)


@pytest.mark.spec("WDR-2")
def test_a_shorter_channel_window_is_kept(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 10_00, channel="qq")
    rt.clock.advance(days=31)
    windows = rules.parse_windows("qq=30")
    with pytest.raises(InvalidInput) as refused:
        preview(rt, uin, 10_00, windows=windows)
    assert refused.value.field == "amount"
    assert preview(rt, uin, 10_00)["legs"][0]["channel"] == "qq"  # 360 days by default


@pytest.mark.spec("WDR-2")
def test_picked_recharges_only_and_each_refusal_names_recharge_ids(rt):
    uin, other = new_account(rt), new_account(rt, "other")
    r1, r2, r3 = three_recharges(rt, uin)
    theirs = paid_recharge(rt, other, 10_00)
    made = withdraw(rt, uin, 60_00, recharge_ids=[r1])
    assert [(leg["ref_id"], leg["amount"]) for leg in made["legs"]] == [(r1, 60_00)]
    picked = withdraw(rt, uin, 60_00, key="w2", recharge_ids=[r1, r2])  # LIFO among them
    assert [(leg["ref_id"], leg["amount"]) for leg in picked["legs"]] == [(r2, 50_00),
                                                                          (r1, 10_00)]
    before = row_counts(rt, *TABLES)
    for ids in ([theirs], [r3, 999_999], [r1, r1], [], "r1"):
        with pytest.raises(InvalidInput) as refused:
            withdraw(rt, uin, 1_00, key="w3", recharge_ids=ids)
        assert refused.value.field == "recharge_ids", ids
    withdraw(rt, uin, 30_00, key="w4", recharge_ids=[r1])  # r1 is used up now
    with pytest.raises(InvalidInput) as spent:
        withdraw(rt, uin, 1_00, key="w5", recharge_ids=[r1])
    assert spent.value.field == "recharge_ids"
    with pytest.raises(InvalidInput) as short:
        withdraw(rt, uin, 30_01, key="w6", recharge_ids=[r3])
    assert short.value.field == "amount" and "30.00" in short.value.message_en
    assert row_counts(rt, *TABLES)[0] == before[0] + 1
    assert_reconciled(rt)


@pytest.mark.spec("WDR-2")
def test_a_credited_remittance_goes_back_to_the_payer_by_bank(rt):
    from tests.test_remittances import company, do_import, line

    uin, number, _ = company(rt)
    do_import(rt, [line("R1", number, 200_00)])
    rt.clock.advance(days=1)
    recharge = paid_recharge(rt, uin, 50_00)
    made = withdraw(rt, uin, 120_00)
    (first, second) = made["legs"]
    assert (first["source"], first["ref_id"], first["amount"], first["state"]) == (
        "recharge", recharge, 50_00, "pending")
    assert (second["source"], second["channel"], second["amount"], second["state"]) == (
        "remittance", "remittance", 70_00, "queued")
    start, end = rules.estimate("remittance", False, made["applied_at"].replace(
        tzinfo=rt.clock.now().tzinfo))
    assert (second["estimate_from"], second["estimate_to"]) == (
        start.replace(tzinfo=None), end.replace(tzinfo=None))
    assert_reconciled(rt)


# ---------------------------------------------------------------- the offline route (WDR-3)

@pytest.mark.spec("WDR-3")
def test_offline_pays_the_verified_entitys_bank_account(rt):
    uin = enterprise(rt)
    paid_recharge(rt, uin, 80_00)
    made = withdraw(rt, uin, 80_00, route="offline", bank={**BANK, "holder": f" {COMPANY_A} "})
    assert made["bank"] == BANK and made["route"] == "offline"
    (leg,) = made["legs"]
    assert (leg["source"], leg["ref_id"], leg["channel"], leg["state"]) == (
        "bank", None, "bank", "queued")
    assert cash_entries(rt, uin) == [("cash", -80_00, -80_00, "offline", 0)]
    assert_reconciled(rt)


@pytest.mark.spec("WDR-3")
@pytest.mark.parametrize("bank, field", [
    ({**BANK, "holder": "另一家公司"}, "bank.holder"),
    ({**BANK, "account_no": "6222-0202-0001"}, "bank.account_no"),
    ({**BANK, "account_no": "1234567"}, "bank.account_no"),
    ({**BANK, "account_no": "1" * 31}, "bank.account_no"),
    ({**BANK, "bank": "  "}, "bank.bank"),
    ({**BANK, "branch": "支" * 101}, "bank.branch"),
    ({**BANK, "branch": "海淀\n支行"}, "bank.branch"),
    ({**BANK, "holder": 12}, "bank.holder"),
    ({k: v for k, v in BANK.items() if k != "branch"}, "bank"),
    ({**BANK, "iban": "x"}, "bank"),
    (None, "bank"),
])
def test_offline_bank_details_are_checked_and_nothing_written(rt, bank, field):
    uin = enterprise(rt)
    paid_recharge(rt, uin, 80_00)
    before = row_counts(rt, *TABLES)
    with pytest.raises(InvalidInput) as refused:
        withdraw(rt, uin, 10_00, route="offline", bank=bank)
    assert refused.value.field == field
    assert refused.value.message_zh and refused.value.message_en
    assert row_counts(rt, *TABLES) == before


@pytest.mark.spec("WDR-3")
def test_an_account_without_a_verified_entity_cannot_withdraw_offline(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 10_00)
    with pytest.raises(InvalidInput) as refused:
        withdraw(rt, uin, 10_00, route="offline", bank={**BANK, "holder": "acme"})
    assert refused.value.field == "bank.holder"
    with pytest.raises(InvalidInput) as original:
        withdraw(rt, uin, 10_00, bank=BANK)  # a bank account belongs to the offline route
    assert original.value.field == "bank"


# ---------------------------------------------------------------- the withdrawable amount

@pytest.mark.spec("WDR-1")
def test_more_than_withdrawable_is_refused_naming_amount_and_nothing_written(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 100_00)
    with transaction(rt.engine) as conn:  # 30.00 of the cash frozen (FRZ-1)
        funds.freeze(conn, rt.clock, uin, 30_00, key="freeze")
    assert takeable(rt, uin) == 70_00
    before = row_counts(rt, *TABLES)
    with pytest.raises(InvalidInput) as refused:
        withdraw(rt, uin, 70_01)
    assert refused.value.field == "amount"
    assert "70.00" in refused.value.message_zh and "70.00" in refused.value.message_en
    assert refused.value.details["withdrawable"] == "70.00"
    assert row_counts(rt, *TABLES) == before
    assert withdraw(rt, uin, 70_00)["amount"] == 70_00
    assert_reconciled(rt)


@pytest.mark.spec("WDR-1", "INV-7")
def test_an_invoice_debt_holds_money_back_from_a_withdrawal(rt):
    from tests.helpers import load_sample_catalog
    from tests.test_withdrawable import _invoiced_and_refunded

    load_sample_catalog(rt)
    uin, debt, _ = _invoiced_and_refunded(rt)  # cash 500.00, invoice debt 178.00
    assert debt == 178_00 and takeable(rt, uin) == 322_00
    before = row_counts(rt, *TABLES)
    with pytest.raises(InvalidInput) as refused:
        withdraw(rt, uin, 322_01, route="offline", bank=BANK)
    assert refused.value.field == "amount" and "322.00" in refused.value.message_en
    assert row_counts(rt, *TABLES) == before
    made = withdraw(rt, uin, 322_00, route="offline", bank=BANK)
    assert made["amount"] == 322_00 and takeable(rt, uin) == 0
    assert balance(rt, uin).cash == 178_00  # the debt's cash stays
    assert_reconciled(rt)


@pytest.mark.spec("WDR-4")
def test_held_money_is_neither_spendable_nor_withdrawable_again(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 100_00)
    withdraw(rt, uin, 100_00)
    view = balance(rt, uin)
    assert (view.cash, view.available) == (0, 0) and takeable(rt, uin) == 0
    revenue_id = revenue(rt)
    with pytest.raises(InsufficientBalance):
        with transaction(rt.engine) as conn:
            funds.spend(conn, rt.clock, uin, 1, key="spend", postpaid=False,
                        revenue_account_id=revenue_id)
    with pytest.raises(InvalidInput) as again:
        withdraw(rt, uin, 1, key="again")
    assert again.value.field == "amount"
    assert in_flight(rt) == 100_00
    assert_reconciled(rt)


# ---------------------------------------------------------------- keys, inputs, permissions

@pytest.mark.spec("WDR-4")
def test_the_same_key_returns_the_first_withdrawal_another_request_under_it_is_refused(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 100_00)
    first = withdraw(rt, uin, 40_00, key="once")
    assert withdraw(rt, uin, 40_00, key="once") == first
    with pytest.raises(IdempotencyConflict) as conflict:
        withdraw(rt, uin, 41_00, key="once")
    assert conflict.value.field == "key"
    assert balance(rt, uin).cash == 60_00 and in_flight(rt) == 40_00
    other = new_account(rt, "other")
    paid_recharge(rt, other, 10_00)
    assert withdraw(rt, other, 10_00, key="once")["uin"] == other  # keys are per account
    assert_reconciled(rt)


@pytest.mark.parametrize("change, field", [
    ({"amount": 0}, "amount"), ({"amount": -1}, "amount"), ({"amount": "1.00"}, "amount"),
    ({"amount": True}, "amount"), ({"route": "cheque"}, "route"), ({"key": "a b"}, "key"),
    ({"key": "k" * 65}, "key"), ({"key": None}, "key"),
])
def test_bad_input_names_its_field_and_writes_nothing(rt, change, field):
    uin = new_account(rt)
    paid_recharge(rt, uin, 10_00)
    before = row_counts(rt, *TABLES)
    with pytest.raises(InvalidInput) as refused:
        withdraw(rt, uin, **{"amount": 1_00, "key": "k", **change})
    assert refused.value.field == field
    assert row_counts(rt, *TABLES) == before


def test_permissions_another_account_and_a_readonly_user(rt):
    uin, other = new_account(rt), new_account(rt, "other")
    paid_recharge(rt, uin, 10_00)
    made = withdraw(rt, uin, 10_00)
    stranger = Actor(kind="user", name="other", uin=other, role="owner")
    with pytest.raises(PermissionDenied):
        withdraw(rt, uin, 1, key="x", actor=stranger)
    with rt.engine.connect() as conn:
        with pytest.raises(NotFound):
            service.get(conn, stranger, made["id"])
        with pytest.raises(PermissionDenied):
            service.list_withdrawals(conn, stranger, uin)
    with transaction(rt.engine) as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "viewer", "readonly")
    viewer = Actor(kind="user", name="viewer", uin=uin, role="readonly")
    with rt.engine.connect() as conn:
        with pytest.raises(PermissionDenied):
            service.get(conn, viewer, made["id"])
    finance = Actor(kind="user", name="fin", uin=uin, role="finance")
    with rt.engine.connect() as conn:
        assert service.get(conn, finance, made["id"]) == made


def test_list_in_progress_and_owed(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 100_00)
    first, second = withdraw(rt, uin, 10_00, key="a"), withdraw(rt, uin, 20_00, key="b")
    with rt.engine.connect() as conn:
        listed = service.list_withdrawals(conn, SYSTEM, uin)
        assert [w["id"] for w in listed] == [second["id"], first["id"]]
        assert service.list_withdrawals(conn, SYSTEM, uin, state="paid") == []
        with pytest.raises(InvalidInput):
            service.list_withdrawals(conn, SYSTEM, uin, state="lost")
        assert [(w["id"], w["amount"], w["state"]) for w in service.in_progress(conn, uin)] == [
            (first["id"], 10_00, "in_progress"), (second["id"], 20_00, "in_progress")]
        assert service.owed(conn, uin) == 0
    with transaction(rt.engine) as conn:  # a payout failed (the payout side's doing)
        conn.execute(withdrawal_legs.update().where(
            withdrawal_legs.c.withdrawal_id == second["id"]).values(state="failed"))
    with rt.engine.connect() as conn:
        assert service.owed(conn, uin) == 20_00
        assert conn.execute(select(func.count()).select_from(withdrawals)).scalar() == 2


@pytest.mark.spec("ARR-4", "BAL-5")
def test_a_leg_returned_to_cash_repays_arrears_first_and_only_once(rt):
    uin = new_account(rt)
    paid_recharge(rt, uin, 100_00)
    (leg,) = withdraw(rt, uin, 100_00)["legs"]
    revenue_id = revenue(rt)
    with transaction(rt.engine) as conn:  # postpaid usage while the money is held
        funds.spend(conn, rt.clock, uin, 30_00, key="usage", postpaid=True,
                    revenue_account_id=revenue_id)
    assert balance(rt, uin).arrears == 30_00
    with rt.engine.connect() as conn:
        hold_id = conn.execute(select(withdrawal_legs.c.hold_id).where(
            withdrawal_legs.c.id == leg["id"])).scalar_one()
    with transaction(rt.engine) as conn:
        funds.return_withdrawal(conn, rt.clock, uin, hold_id, memo="returned")
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (70_00, 0) and in_flight(rt) == 0
    e = statement_entries.c
    with rt.engine.connect() as conn:
        last = [tuple(r) for r in conn.execute(select(e.action_type, e.amount, e.cash_after)
                                               .where(e.uin == uin).order_by(e.id.desc()).limit(2))]
    assert last == [("repayment", -30_00, 70_00), ("cash", 100_00, 100_00)]
    with pytest.raises(Conflict):
        with transaction(rt.engine) as conn:
            funds.return_withdrawal(conn, rt.clock, uin, hold_id)
    assert balance(rt, uin).cash == 70_00
    assert_reconciled(rt)
