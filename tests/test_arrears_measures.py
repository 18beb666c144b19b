"""Operators' arrears measures (ARR-6): take offline, reclaim, liquidated damages, set-off;
each audited, notified, idempotent by its key, refused with the field named."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.arrears import measures
from feecenter.arrears import service as arrears
from feecenter.arrears.tables import account_events
from feecenter.audit.tables import audit_log
from feecenter.catalog import service as catalog
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, IdempotencyConflict, InvalidInput, NotFound, PermissionDenied
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.ledger.tables import ledger_postings, ledger_transactions
from feecenter.notifications import service as notifications
from feecenter.notifications.tables import in_site_messages
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from feecenter.resources.tables import resource_stops
from feecenter.withdrawals import service as withdrawals
from tests import helpers
from tests.helpers import (OPS, add_cash, assert_reconciled, balance, buy, load_sample_catalog,
                           new_account, row_counts)
from tests.test_console_ops import csrf_of, customer_client, operator_client, world  # noqa: F401 - world: a fixture
from tests.test_recharges import pay, sandbox  # noqa: F401 - fixtures
from tests.test_withdrawal_payouts import Money

WRITES = (account_events, audit_log, ledger_transactions, statement_entries, in_site_messages,
          resource_stops)


def owing_with_resources(rt):
    """An account with a prepaid cvm (paid) and a postpaid cvm and cdb (each with its
    opening freeze), then 1.00 yuan in arrears; returns (uin, {name: resource id})."""
    load_sample_catalog(rt)
    uin = new_account(rt, "owing-co")
    add_cash(rt, uin, 2_000_00)
    order_ids = buy(rt, uin)
    helpers.pay(rt, uin, order_ids)
    ids = {}
    with transaction(rt.engine) as conn:
        ids["prepaid"] = resources.list_resources(conn, SYSTEM, uin)[0]["id"]
        for product in ("cvm", "cdb"):
            spec = next(i["code"] for i in catalog.list_items(conn, product) if i["spec"])
            ids[product] = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product=product,
                                                  region="ap-guangzhou", spec_item=spec)
    overdraw(rt, uin, balance(rt, uin).available + 100)
    assert balance(rt, uin).arrears == 100
    return uin, ids


def overdraw(rt, uin, fen, key="usage"):
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, fen, key=key, postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))


def run(rt, fn, *args, **kw):
    with transaction(rt.engine) as conn:
        return fn(conn, rt.clock, OPS, *args, **kw)


def states(rt, uin) -> dict[str, str]:
    with rt.engine.connect() as conn:
        return {r["id"]: r["state"] for r in resources.list_resources(conn, SYSTEM, uin)}


def notices(rt, uin) -> list[dict]:
    with rt.engine.connect() as conn:
        return list(reversed(notifications.list_messages(conn, SYSTEM, uin, limit=100)["items"]))


def audited(rt, action) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(audit_log).where(audit_log.c.action == action)
                                              .order_by(audit_log.c.id)).mappings()]


def entries(rt, uin, *types) -> list[dict]:
    with rt.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(statement_entries).where(
            statement_entries.c.uin == uin, statement_entries.c.action_type.in_(types))
            .order_by(statement_entries.c.id)).mappings()]


def platform_total(rt, purpose) -> int:
    with transaction(rt.engine) as conn:
        account = funds.platform_account(conn, rt.clock, purpose)
        return conn.execute(select(func.coalesce(func.sum(ledger_postings.c.amount), 0)).where(
            ledger_postings.c.account_id == account)).scalar_one()


def ledger_count(rt) -> int:
    return row_counts(rt, ledger_transactions)[0]


# ---------------------------------------------------------------- take offline

@pytest.mark.spec("ARR-6")
def test_take_offline_stops_every_running_resource_and_payment_restarts_them(rt):
    uin, ids = owing_with_resources(rt)
    txns = ledger_count(rt)
    done = run(rt, measures.take_offline, uin, reason="多次催缴未付", key="off-1")
    assert done["created"] and done["measure"] == "offline" and done["amount"] == 100
    assert sorted(done["resources"]) == sorted(ids.values())
    assert set(states(rt, uin).values()) == {"stopped"}  # prepaid and postpaid alike
    with rt.engine.connect() as conn:
        stops = resources.open_stops(conn, list(ids.values()))
    assert {s["reason"] for s in stops.values()} == {"arrears_measure"}
    assert ledger_count(rt) == txns  # no money moves: the measure is its event and audit entry
    [audit] = audited(rt, "arrears_offline")
    assert audit["actor"] == OPS.label and json.loads(audit["detail"])["reason"] == "多次催缴未付"
    with rt.engine.connect() as conn:
        kinds = [e["kind"] for e in arrears.list_events(conn, SYSTEM, uin)]
        [case] = arrears.list_cases(conn, SYSTEM, uin)
    assert kinds == ["dunning", "measure_offline"]  # the case was opened with its dunning
    assert case["state"] == "open"
    sent = [n["template"] for n in notices(rt, uin)]
    assert sent == ["arrears_dunning", "arrears_measure_offline"]
    assert ids["prepaid"] in notices(rt, uin)[-1]["body"]

    before = row_counts(rt, *WRITES)
    again = run(rt, measures.take_offline, uin, reason="多次催缴未付", key="off-1")
    assert not again["created"] and again["id"] == done["id"]
    assert again["resources"] == done["resources"]
    assert row_counts(rt, *WRITES) == before
    with pytest.raises(IdempotencyConflict) as err:
        run(rt, measures.take_offline, uin, reason="another reason", key="off-1")
    assert err.value.field == "idempotency_key"
    with pytest.raises(Conflict) as err:  # nothing is running any more
        run(rt, measures.take_offline, uin, reason="again", key="off-2")
    assert err.value.field == "uin"

    add_cash(rt, uin, 10_00)  # paid: the case closes and restarts them all
    counts = arrears.escalate(rt.engine, rt.clock)
    assert counts["closed"] == 1 and counts["restarted"] == 3
    assert set(states(rt, uin).values()) == {"running"}
    assert_reconciled(rt)


# ---------------------------------------------------------------- reclaim

@pytest.mark.spec("ARR-6", "FRZ-3")
def test_reclaim_releases_every_resource_at_once_without_refund(rt):
    uin, ids = owing_with_resources(rt)
    with transaction(rt.engine) as conn:  # one stopped already: reclaimed too
        resources.stop_resource(conn, ids["cdb"], rt.clock.now(), "arrears")
    cash_before = balance(rt, uin)
    returns = len(entries(rt, uin, "return"))
    done = run(rt, measures.reclaim_all, uin, reason="长期欠费", key="rec-1")
    assert done["refund"] == 0 and done["prepaid"] == [ids["prepaid"]]
    assert sorted(done["resources"]) == sorted(ids.values())
    assert set(states(rt, uin).values()) == {"recycled"}
    with rt.engine.connect() as conn:
        assert resources.open_stops(conn, list(ids.values())) == {}  # no recycle bin
        released = {i: resources.get_resource(conn, uin, i) for i in ids.values()}
    assert all(r["released_at"] is not None for r in released.values())
    assert len(entries(rt, uin, "return")) == returns  # no refund of the prepaid term
    assert balance(rt, uin).cash == cash_before.cash
    # the cdb's opening freeze follows FRZ-3 (immediate for cdb): released by the hourly
    # job, back to cash (which a set-off can then take)
    assert released[ids["cdb"]]["freeze_release_at"] == released[ids["cdb"]]["released_at"]
    assert balance(rt, uin).frozen == 20_00
    rt.clock.set(rt.clock.now() + timedelta(hours=1))
    with transaction(rt.engine) as conn:
        assert postpaid.release_due_freezes(conn, rt.clock) == 1
    assert balance(rt, uin).frozen == 0
    done_off = run(rt, measures.set_off, uin, key="so-after-reclaim")
    assert done_off["arrears"] == 100 and balance(rt, uin).arrears == 0
    assert "arrears_measure_reclaim" in [n["template"] for n in notices(rt, uin)]
    assert len(audited(rt, "arrears_reclaim")) == 1
    again = run(rt, measures.reclaim_all, uin, reason="长期欠费", key="rec-1")
    assert not again["created"] and again["resources"] == done["resources"]
    with pytest.raises(Conflict) as err:
        run(rt, measures.reclaim_all, uin, reason="长期欠费", key="rec-2")
    assert err.value.field == "uin"
    assert_reconciled(rt)


# ---------------------------------------------------------------- liquidated damages

@pytest.mark.spec("ARR-6", "BAL-5")
def test_damages_take_cash_then_become_arrears_to_the_platform_account(rt):
    uin = new_account(rt, "damaged")
    add_cash(rt, uin, 50_00)
    done = run(rt, measures.charge_damages, uin, amount=80_00, reason="违约", key="dmg-1")
    assert (done["amount"], done["cash"], done["arrears"], done["owed_after"]) == (
        80_00, 50_00, 30_00, 30_00)
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.available) == (0, 30_00, -30_00)
    [entry] = entries(rt, uin, "adj_deduct")
    assert (entry["amount"], entry["cash_amount"], entry["txn_id"]) == (-80_00, -50_00,
                                                                        done["txn_id"])
    assert "违约" in entry["memo"]
    assert platform_total(rt, "liquidated_damages") == 80_00
    assert [n["template"] for n in notices(rt, uin)] == ["arrears_dunning",
                                                         "arrears_measure_damages"]
    assert "30.00" in notices(rt, uin)[-1]["body"]
    assert len(audited(rt, "arrears_damages")) == 1

    before = row_counts(rt, *WRITES)
    again = run(rt, measures.charge_damages, uin, amount=80_00, reason="违约", key="dmg-1")
    assert not again["created"] and again["txn_id"] == done["txn_id"]
    assert row_counts(rt, *WRITES) == before
    with pytest.raises(IdempotencyConflict):
        run(rt, measures.charge_damages, uin, amount=81_00, reason="违约", key="dmg-1")
    second = run(rt, measures.charge_damages, uin, amount=1_00, reason="再次违约", key="dmg-2")
    assert (second["cash"], second["arrears"], second["owed_after"]) == (0, 1_00, 31_00)
    assert_reconciled(rt)


# ---------------------------------------------------------------- set-off

@pytest.mark.spec("ARR-6", "ARR-4")
def test_set_off_repays_arrears_then_advances_from_cash_owed_to_the_account(rt):
    uin = new_account(rt, "set-off-co")
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=20_00)
        revenue = funds.platform_account(conn, rt.clock, "revenue")
        funds.spend(conn, rt.clock, uin, 20_00, key="on-credit", postpaid=False,
                    revenue_account_id=revenue)  # an advance of 20.00
    overdraw(rt, uin, 30_00)  # arrears 30.00
    with transaction(rt.engine) as conn:  # a refund credited while in arrears: cash 100.00
        funds.refund(conn, rt.clock, uin, key="refund-1", gift=0, cash=100_00,
                     revenue_account_id=revenue)
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.advances) == (100_00, 30_00, 20_00)
    done = run(rt, measures.set_off, uin, key="so-1")
    assert (done["amount"], done["arrears"], done["advances"], done["owed_after"]) == (
        50_00, 30_00, 20_00, 0)
    view = balance(rt, uin)
    assert (view.cash, view.arrears, view.advances) == (50_00, 0, 0)
    assert [(e["action_type"], e["amount"]) for e in entries(rt, uin, "repayment", "repay")] == [
        ("repayment", -30_00), ("repay", -20_00)]
    assert notices(rt, uin)[-1]["template"] == "arrears_measure_set_off"
    assert len(audited(rt, "arrears_set_off")) == 1
    before = row_counts(rt, *WRITES)
    again = run(rt, measures.set_off, uin, key="so-1")
    assert not again["created"] and again["txn_ids"] == done["txn_ids"]
    assert row_counts(rt, *WRITES) == before
    with pytest.raises(Conflict) as err:  # owes nothing now
        run(rt, measures.set_off, uin, key="so-2")
    assert err.value.field == "uin"
    overdraw(rt, uin, 60_00, key="usage-2")  # 50.00 cash spent, 10.00 arrears, no cash left
    with pytest.raises(Conflict) as err:
        run(rt, measures.set_off, uin, key="so-3")
    assert err.value.field == "cash"
    assert_reconciled(rt)


# ---------------------------------------------------------------- refusals

@pytest.mark.spec("ARR-6")
def test_bad_input_unknown_accounts_and_customers_are_refused_writing_nothing(rt):
    uin = new_account(rt, "refused-co")
    add_cash(rt, uin, 10_00)
    customer = Actor(kind="user", name="owner", uin=uin, role="owner")
    before = row_counts(rt, *WRITES)
    cases = [
        (lambda: run(rt, measures.charge_damages, uin, amount=0, reason="x", key="k"),
         InvalidInput, "amount"),
        (lambda: run(rt, measures.charge_damages, uin, amount=-1, reason="x", key="k"),
         InvalidInput, "amount"),
        (lambda: run(rt, measures.charge_damages, uin, amount=True, reason="x", key="k"),
         InvalidInput, "amount"),
        (lambda: run(rt, measures.charge_damages, uin, amount=1, reason=" ", key="k"),
         InvalidInput, "reason"),
        (lambda: run(rt, measures.take_offline, uin, reason="x", key=""),
         InvalidInput, "idempotency_key"),
        (lambda: run(rt, measures.charge_damages, 999, amount=1_00, reason="x", key="k"),
         NotFound, "uin"),
        (lambda: run(rt, measures.set_off, 999, key="k"), NotFound, "uin"),
        (lambda: run(rt, measures.take_offline, uin, reason="x", key="k"), Conflict, "uin"),
        (lambda: run(rt, measures.reclaim_all, uin, reason="x", key="k"), Conflict, "uin"),
        (lambda: run(rt, measures.set_off, uin, key="k"), Conflict, "uin"),
    ]
    for call, error, field in cases:
        with pytest.raises(error) as err:
            call()
        assert err.value.field == field and err.value.message_zh and err.value.message_en
    with transaction(rt.engine) as conn, pytest.raises(PermissionDenied):
        measures.charge_damages(conn, rt.clock, customer, uin, amount=1_00, reason="x", key="k")
    with rt.engine.connect() as conn, pytest.raises(PermissionDenied):
        measures.list_measures(conn, customer, uin)
    assert row_counts(rt, *WRITES) == before


@pytest.mark.spec("ARR-6")
def test_the_measures_taken_are_listed_newest_first(rt):
    uin, _ = owing_with_resources(rt)
    run(rt, measures.charge_damages, uin, amount=5_00, reason="违约", key="a")
    run(rt, measures.take_offline, uin, reason="停服", key="b")
    with rt.engine.connect() as conn:
        mine = measures.list_measures(conn, OPS, uin)
        every = measures.list_measures(conn, OPS)
    assert [m["measure"] for m in mine] == ["offline", "damages"] == [
        m["measure"] for m in every]
    assert mine[0]["reason"] == "停服" and mine[0]["operator"] == OPS.label


# ---------------------------------------------------------------- REST

@pytest.mark.spec("ARR-6")
def test_rest_operator_endpoints_take_measures_and_refuse_customers_and_bad_input(rest_shop):
    ops, customer, uin = rest_shop.operator.send, rest_shop.customer.send, rest_shop.uin
    base = f"/api/v1/ops/accounts/{uin}/arrears-measures"
    before = row_counts(rest_shop.rt, *WRITES)
    refusals = [
        (customer, "damages", {"amount": "1.00", "reason": "x", "idempotency_key": "d1"}, 403,
         None),
        (ops, "damages", {"amount": "0", "reason": "x", "idempotency_key": "d1"}, 400, "amount"),
        (ops, "damages", {"amount": "-5.00", "reason": "x", "idempotency_key": "d1"}, 400,
         "amount"),
        (ops, "damages", {"amount": "1.00", "reason": "x"}, 400, "idempotency_key"),
        (ops, "offline", {"reason": "x", "idempotency_key": "o1"}, 409, "uin"),
        (ops, "set-off", {"idempotency_key": "s1"}, 409, "uin"),
    ]
    for send, measure, body, status, field in refusals:
        response = send("POST", f"{base}/{measure}", body)
        assert response.status_code == status, (measure, response.text)
        error = response.json()["error"]
        assert error.get("field") == field and error["message_zh"] and error["message_en"]
    missing = ops("POST", "/api/v1/ops/accounts/999/arrears-measures/damages",
                  {"amount": "1.00", "reason": "x", "idempotency_key": "d1"})
    assert missing.status_code == 404 and missing.json()["error"]["field"] == "uin"
    assert row_counts(rest_shop.rt, *WRITES) == before

    body = {"amount": "100001.00", "reason": "违约 / breach", "idempotency_key": "d-1"}
    made = ops("POST", f"{base}/damages", body)
    assert made.status_code == 201, made.text
    shown = made.json()
    assert (shown["amount"], shown["cash"], shown["arrears"], shown["created"]) == (
        "100001.00", "100000.00", "1.00", True)
    again = ops("POST", f"{base}/damages", body).json()
    assert again["id"] == shown["id"] and again["created"] is False
    no_cash = ops("POST", f"{base}/set-off", {"idempotency_key": "s-1"})
    assert no_cash.status_code == 409 and no_cash.json()["error"]["field"] == "cash"
    listed = ops("GET", base).json()["items"]
    assert [(m["measure"], m["amount"]) for m in listed] == [("damages", "100001.00")]
    assert ops("GET", "/api/v1/ops/arrears-measures").json()["items"] == listed
    assert customer("GET", base).status_code == 403
    assert_reconciled(rest_shop.rt)


# ---------------------------------------------------------------- the operator console

def measure_form(http, uin) -> dict:
    page = http.get(f"/console/ops/accounts/{uin}/arrears-measures")
    assert page.status_code == 200, page.text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
    return {"idempotency_key": key, "csrf_token": csrf_of(page.text)}


@pytest.mark.spec("ARR-6")
def test_console_damages_are_confirmed_then_taken_once_and_listed(rt, world):  # noqa: F811
    http = operator_client(rt)
    http.cookies.set("fc_lang", "zh-CN", path="/console")
    assert "欠费处置" in http.get("/console/ops/").text  # the menu
    form = measure_form(http, world)
    before = row_counts(rt, *WRITES)
    review = http.get(f"/console/ops/accounts/{world}/arrears-measures/confirm", params={
        "measure": "damages", "amount": "80.00", "reason": "违约",
        "idempotency_key": form["idempotency_key"]})
    assert review.status_code == 200 and "确认处置" in review.text and "¥80.00" in review.text
    assert row_counts(rt, *WRITES) == before  # the confirmation writes nothing
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', review.text))
    made = http.post(f"/console/ops/accounts/{world}/arrears-measures", data=fields)
    assert made.status_code == 200 and "data-repeat" not in made.text, made.text
    again = http.post(f"/console/ops/accounts/{world}/arrears-measures", data=fields)
    assert again.status_code == 200 and "data-repeat" in again.text
    view = balance(rt, world)
    assert (view.cash, view.arrears) == (0, 30_00)  # 50.00 cash, 30.00 became arrears
    assert len(entries(rt, world, "adj_deduct")) == 1
    listed = http.get("/console/ops/arrears-measures", params={"uin": str(world)})
    assert listed.status_code == 200 and 'data-measure="damages"' in listed.text
    assert "收取违约金" in listed.text and "违约" in listed.text
    assert 'data-measure="damages"' in http.get(
        f"/console/ops/accounts/{world}/arrears-measures").text
    customer = customer_client(rt)  # the customer's 欠费 page shows it among the case's events
    customer.cookies.set("fc_lang", "zh-CN", path="/console")
    page = customer.get("/console/arrears")
    assert 'data-event="measure_damages"' in page.text and "运营处置：已收取违约金" in page.text


@pytest.mark.spec("ARR-6")
def test_console_refuses_bad_measures_next_to_the_field_and_without_csrf(rt, world):  # noqa: F811
    http = operator_client(rt)
    form = measure_form(http, world)
    before = row_counts(rt, *WRITES)
    cases = [({"measure": "damages", "amount": "0", "reason": "x"}, "amount", 400),
             ({"measure": "damages", "amount": "1.00", "reason": " "}, "reason", 400),
             ({"measure": "nuke", "reason": "x"}, "measure", 400),
             ({"measure": "offline", "reason": "x"}, "uin", 409),  # not in arrears
             ({"measure": "set_off"}, "uin", 409)]
    for change, field, status in cases:
        fields = {"idempotency_key": form["idempotency_key"], **change}
        posted = http.post(f"/console/ops/accounts/{world}/arrears-measures",
                           data={**fields, "csrf_token": form["csrf_token"]})
        assert posted.status_code == status, (change, posted.text)
        assert f'data-error-field="{field}"' in posted.text, change
    assert http.get(f"/console/ops/accounts/{world}/arrears-measures/confirm", params={
        "measure": "damages", "amount": "abc", "reason": "x",
        "idempotency_key": form["idempotency_key"]}).status_code == 400
    refused = http.post(f"/console/ops/accounts/{world}/arrears-measures", data={
        "measure": "damages", "amount": "1.00", "reason": "x",
        "idempotency_key": form["idempotency_key"], "csrf_token": "stale"})
    assert refused.status_code == 403
    assert http.get("/console/ops/accounts/999/arrears-measures").status_code == 404
    assert row_counts(rt, *WRITES) == before


# ---------------------------------------------------------------- set-off of payouts due

@pytest.mark.spec("ARR-6", "ARR-4", "WDR-5")
def test_set_off_returns_failed_withdrawals_to_cash_which_repays_the_arrears(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(40_00)  # a payout due: the withdrawal failed, its 40.00 held
    rt, uin = money.rt, money.uin
    overdraw(rt, uin, 30_00)
    with rt.engine.connect() as conn:
        assert withdrawals.owed(conn, uin) == 40_00
    made = run(rt, measures.set_off, uin, key="so-wdr")
    assert (made["withdrawals"], made["returned"], made["arrears"], made["owed_after"]) == (
        [done["id"]], 40_00, 30_00, 0)
    view = balance(rt, uin)
    assert (view.cash, view.arrears) == (10_00, 0)
    with rt.engine.connect() as conn:
        assert withdrawals.owed(conn, uin) == 0
        assert withdrawals.get(conn, SYSTEM, done["id"])["state"] == "returned"
    assert money.entries()[-2:] == [("cash", 40_00), ("repayment", -30_00)]  # 提现退回, ARR-4
    assert len(audited(rt, "withdrawal.return_to_cash")) == 1
    again = run(rt, measures.set_off, uin, key="so-wdr")
    assert not again["created"] and again["returned"] == 40_00
    assert_reconciled(rt)
