"""Balance warnings (XTR-2): the days-left rule to the fen, the owner's settings
(checked in the service, bad input naming the field and writing nothing), the
daily notice (one per account and day, never twice: rerun, crash) and REST."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from starlette.testclient import TestClient

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.auth import service as auth
from feecenter.balance_warnings import jobs, rules, service
from feecenter.balance_warnings.tables import balance_warning_settings
from feecenter.clock import business_date, db_time
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from feecenter.notifications.tables import in_site_messages
from feecenter.periods import DAILY, period_containing
from feecenter.settlement.tables import bill_lines
from tests.helpers import OPS, add_cash, new_account, run_threads
from tests.rest_harness import HOST, Signed
from tests.test_console import csrf_of, logged_in, shop  # noqa: F401 - shop is a fixture

# ---------------------------------------------------------------- rules (no database)


@pytest.mark.spec("XTR-2")
@pytest.mark.parametrize("available, spent, left", [
    (500_00, 100_00, 5), (499_99, 100_00, 4), (100_00, 100_00, 1), (99_99, 100_00, 0),
    (1, 3, 0), (0, 1, 0), (-50_00, 10_00, 0), (10_00, 0, None), (10_00, -5_00, None),
    (1_000_000_00, 1, 1_000_000_00)])
def test_days_left_is_the_available_balance_over_a_days_spending_floored(available, spent, left):
    assert rules.days_left(available, spent) == left


@pytest.mark.spec("XTR-2")
def test_warn_under_the_threshold_days_and_under_the_owners_amount_separately():
    # default 5 days: 499.99 yuan at 100.00 a day is 4 whole days, under 5
    assert rules.decide(499_99, 100_00) == rules.Verdict(4, True, False)
    assert rules.decide(500_00, 100_00) == rules.Verdict(5, False, False)
    assert rules.decide(500_00, 100_00, days=6).by_days
    assert not rules.decide(0, 100_00, days=None).warn  # days warning off
    assert rules.decide(10_00, 0) == rules.Verdict(None, False, False)  # nothing spent
    # the amount: strictly under it, to the fen, with or without spending
    assert rules.decide(99_99, 0, amount=100_00) == rules.Verdict(None, False, True)
    assert not rules.decide(100_00, 0, amount=100_00).warn
    both = rules.decide(99_99, 100_00, amount=100_00)
    assert both.by_days and both.by_amount and both.days_left == 0
    assert rules.DEFAULT_DAYS == 5 and (rules.MIN_DAYS, rules.MAX_DAYS) == (1, 30)


# ---------------------------------------------------------------- helpers

_LINE = 0


def _line(rt, uin, deducted, at, *, voucher=0, cycle="hour"):
    """One L3 bill line deducted at ``at`` (what settlement writes; the rest plain)."""
    global _LINE
    _LINE += 1
    with transaction(rt.engine) as conn:
        conn.execute(insert(bill_lines).values(
            uin=uin, resource_id=f"ins-{_LINE}", product_code="cvm", region="ap-guangzhou",
            billing_item="cpu", project_id=0, project_name="默认项目", cycle=cycle,
            period_key=f"k{_LINE}", period_start=db_time(at - timedelta(hours=1)),
            period_end=db_time(at), quantity=1, price_kind="list", unit_price=0,
            list_amount=deducted * 10**6, discount_bp=10000, discounted_amount=deducted * 10**6,
            deducted=deducted, rounding_diff=0, voucher_paid=voucher,
            cash_paid=deducted - voucher, gift_paid=0, credit_paid=0, arrears=0,
            deducted_at=db_time(at), kind="charge", sequence=0))


def _messages(rt, uin):
    with rt.engine.connect() as conn:
        rows = conn.execute(select(in_site_messages).where(in_site_messages.c.uin == uin)
                            .order_by(in_site_messages.c.id)).mappings().all()
    return [{**r, "params": json.loads(r["params"])} for r in rows]


def _owner(rt, uin):
    with rt.engine.connect() as conn:
        return accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])


def _finance(rt, uin, login="fin"):
    with transaction(rt.engine) as conn:
        return accounts.user_actor(conn, accounts.add_user(conn, rt.clock, OPS, uin, login,
                                                           "finance"))


def _settings_rows(rt):
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(balance_warning_settings)).scalar()


# ---------------------------------------------------------------- settings


@pytest.mark.spec("XTR-2")
def test_the_owner_sets_the_days_and_the_amount_others_may_not(rt):
    uin = new_account(rt)
    owner, fin = _owner(rt, uin), _finance(rt, uin)
    with rt.engine.connect() as conn:
        assert service.settings_of(conn, uin) == service.WarningSettings(5, None)
    with transaction(rt.engine) as conn:
        assert service.update_settings(conn, rt.clock, owner, uin, days=10) == \
            service.WarningSettings(10, None)
        assert service.update_settings(conn, rt.clock, owner, uin, amount=200_00) == \
            service.WarningSettings(10, 200_00)
        assert service.update_settings(conn, rt.clock, owner, uin, days=None) == \
            service.WarningSettings(None, 200_00)
    other = new_account(rt, "other")
    for actor, target in ((fin, uin), (_owner(rt, other), uin)):
        with pytest.raises(PermissionDenied), transaction(rt.engine) as conn:
            service.update_settings(conn, rt.clock, actor, target, days=3)
    with rt.engine.connect() as conn:
        assert service.settings_of(conn, uin) == service.WarningSettings(None, 200_00)
        assert service.estimate(conn, rt.clock, fin, uin)["days"] is None  # finance reads


@pytest.mark.spec("XTR-2")
@pytest.mark.parametrize("field, value", [
    ("days", 0), ("days", 31), ("days", True), ("days", "5"), ("days", 2.0),
    ("amount", 0), ("amount", -1), ("amount", "1.00"), ("amount", 10**20)])
def test_bad_settings_name_the_field_and_write_nothing(rt, field, value):
    uin = new_account(rt)
    owner = _owner(rt, uin)
    with pytest.raises(InvalidInput) as err, transaction(rt.engine) as conn:
        service.update_settings(conn, rt.clock, owner, uin, **{field: value})
    assert err.value.field == field and err.value.message_zh and err.value.message_en
    assert _settings_rows(rt) == 0


# ---------------------------------------------------------------- the daily notice


def _run(rt, period=None):
    """The job's run for ``period`` (default: the clock's day) when due (02:00 the next
    day, Shanghai), five minutes late."""
    period = period or period_containing(DAILY, rt.clock.now())
    rt.clock.set(period.end + jobs.LAG + timedelta(minutes=5))
    return jobs.warn(rt.engine, rt.clock, period)


@pytest.mark.spec("XTR-2")
def test_days_left_under_five_warns_once_with_the_estimate(rt):
    uin, fine, idle = new_account(rt, "low"), new_account(rt, "fine"), new_account(rt, "idle")
    add_cash(rt, uin, 399_99)
    add_cash(rt, fine, 500_00)
    period = period_containing(DAILY, rt.clock.now())
    end = period.end + jobs.LAG
    for who in (uin, fine):  # 100.00 yuan in the 24 hours before 02:00
        _line(rt, who, 60_00, end - timedelta(hours=23, minutes=59))
        _line(rt, who, 50_00, end - timedelta(hours=1), voucher=10_00)  # coupons: not balance
    _line(rt, uin, 900_00, end - timedelta(hours=25))  # before the window
    _line(rt, uin, 900_00, end)  # at its end: not in it
    _line(rt, uin, 900_00, end - timedelta(hours=2), cycle="month")  # a month: left out
    result = _run(rt)
    assert result == {"day": business_date(period.end).isoformat(), "accounts": 2,
                      "warned": 1, "by_days": 1, "by_amount": 0}
    (msg,) = _messages(rt, uin)
    assert _messages(rt, fine) == [] and _messages(rt, idle) == []
    assert msg["template"] == "balance_warning"
    assert msg["idempotency_key"] == f"balance_warning:{uin}:{business_date(period.end)}"
    assert {k: msg["params"][k] for k in ("available", "spent", "days", "threshold_days",
                                          "threshold")} == {
        "available": "399.99", "spent": "100.00", "days": 3, "threshold_days": 5,
        "threshold": "—"}
    assert "约可用 3 天" in msg["body"] and "about 3 days left" in msg["title"]


@pytest.mark.spec("XTR-2")
def test_the_amount_warns_without_spending_and_off_days_never_warn(rt):
    uin, quiet = new_account(rt, "amount"), new_account(rt, "quiet")
    add_cash(rt, uin, 99_99)
    with transaction(rt.engine) as conn:
        service.update_settings(conn, rt.clock, SYSTEM, uin, amount=100_00)
        service.update_settings(conn, rt.clock, SYSTEM, quiet, days=None)
    end = period_containing(DAILY, rt.clock.now()).end + jobs.LAG
    _line(rt, quiet, 100_00, end - timedelta(hours=3))  # 0 available, days off
    result = _run(rt)
    assert (result["accounts"], result["warned"], result["by_amount"]) == (2, 1, 1)
    (msg,) = _messages(rt, uin)
    assert msg["params"]["threshold"] == "100.00" and msg["params"]["days"] == "—"
    assert _messages(rt, quiet) == []


@pytest.mark.spec("XTR-2")
def test_a_rerun_and_a_run_after_a_crash_send_nothing_twice(rt, monkeypatch):
    uins = [new_account(rt, f"acct{i}") for i in range(3)]
    period = period_containing(DAILY, rt.clock.now())
    end = period.end + jobs.LAG
    for uin in uins:
        _line(rt, uin, 10_00, end - timedelta(hours=5))  # nothing available: 0 days
    monkeypatch.setattr(service, "ACCOUNTS_PER_BATCH", 1)
    real, calls = service.warn_accounts, []

    def crash_on_second(*args, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("worker died")
        return real(*args, **kw)

    monkeypatch.setattr(service, "warn_accounts", crash_on_second)
    with pytest.raises(RuntimeError):
        _run(rt, period)
    assert [len(_messages(rt, u)) for u in uins] == [1, 0, 0]  # the first batch committed
    monkeypatch.setattr(service, "warn_accounts", real)
    for _ in range(2):  # after the crash, then a plain rerun
        assert _run(rt, period)["warned"] == 3
    assert [len(_messages(rt, u)) for u in uins] == [1, 1, 1]
    # the next day warns again, once
    _line(rt, uins[0], 10_00, end + timedelta(hours=20))
    result = _run(rt, period.next())
    assert result["warned"] == 1 and len(_messages(rt, uins[0])) == 2


@pytest.mark.spec("XTR-2")
def test_the_job_skips_a_past_day(rt):
    uin = new_account(rt)
    period = period_containing(DAILY, rt.clock.now())
    _line(rt, uin, 10_00, period.end)
    rt.clock.set(period.end + timedelta(days=1, hours=3))
    assert jobs.warn(rt.engine, rt.clock, period) == {
        "day": business_date(period.end).isoformat(), "skipped": "past"}
    assert _messages(rt, uin) == []


# ---------------------------------------------------------------- REST


@pytest.mark.spec("XTR-2")
def test_rest_reads_and_changes_the_settings_and_refuses_bad_input(rt):
    uin = new_account(rt, "rest")
    add_cash(rt, uin, 250_00)
    _line(rt, uin, 100_00, rt.clock.now() - timedelta(hours=1))
    _finance(rt, uin)
    with transaction(rt.engine) as conn:
        owner_key = auth.create_api_key(conn, rt.clock, OPS, uin)
        fin_key = auth.create_api_key(conn, rt.clock, OPS, uin, "fin")
    http = TestClient(create_app(rt), base_url=f"http://{HOST}")
    owner, fin = Signed(rt, http, owner_key), Signed(rt, http, fin_key)
    path = f"/api/v1/accounts/{uin}/balance-warning"
    got = owner.send("GET", path)
    assert got.status_code == 200, got.text
    assert got.json() == {"days": 5, "amount": None, "available": "250.00",
                          "spent_24h": "100.00", "days_left": 2, "warn_by_days": True,
                          "warn_by_amount": False}
    put = owner.send("PUT", path, {"days": 2, "amount": "300.00"})
    assert put.status_code == 200, put.text
    assert put.json()["days"] == 2 and put.json()["amount"] == "300.00"
    assert put.json()["warn_by_days"] is False and put.json()["warn_by_amount"] is True
    for body, field in (({"days": 0}, "days"), ({"days": 31}, "days"), ({"days": "3"}, "days"),
                        ({"amount": "0"}, "amount"), ({"amount": "1.234"}, "amount"),
                        ({"amount": 5}, "amount"), ({}, "days"), ({"other": 1}, "other")):
        bad = owner.send("PUT", path, body)
        assert bad.status_code == 400, (body, bad.text)
        error = bad.json()["error"]
        assert error["field"] == field and error["message_zh"] and error["message_en"], body
    assert fin.send("GET", path).status_code == 200
    denied = fin.send("PUT", path, {"days": None})
    assert denied.status_code == 403
    off = owner.send("PUT", path, {"days": None, "amount": None}).json()
    assert off["days"] is None and off["amount"] is None and off["days_left"] == 2
    assert _settings_rows(rt) == 1


# ---------------------------------------------------------------- console (概览)


@pytest.mark.spec("XTR-2")
def test_the_overview_shows_the_estimate_and_the_owner_changes_the_settings(rt, shop):  # noqa: F811 - the fixture
    uin = shop
    _line(rt, uin, 500_000_00, rt.clock.now() - timedelta(hours=2))
    with rt.engine.connect() as conn:
        left = service.estimate(conn, rt.clock, SYSTEM, uin)["days_left"]
    assert left == 2  # 1,234,467.89 available at 500,000.00 a day
    http = logged_in(rt)
    page = http.get("/console/").text
    assert f'data-days-left="{left}"' in page
    assert "按近24小时消耗（¥500,000.00），余额约可用 2 天。" in page
    assert "data-warning-now" in page  # 2 days < 5
    token = csrf_of(page)
    done = http.post("/console/balance-warning", data={"csrf_token": token, "days": "2",
                                                        "amount": "100.50"})
    assert done.status_code == 303
    with rt.engine.connect() as conn:
        assert service.settings_of(conn, uin) == service.WarningSettings(2, 100_50)
    page = http.get("/console/").text
    assert '<option value="2" selected>' in page and 'value="100.50"' in page
    assert "data-warning-now" not in page
    for data, field in (({"days": "0"}, "days"), ({"days": "x"}, "days"),
                        ({"days": "5", "amount": "1.234"}, "amount")):
        bad = http.post("/console/balance-warning", data={"csrf_token": token, **data})
        assert bad.status_code == 400 and f'data-error-field="{field}"' in bad.text, data
    assert http.post("/console/balance-warning", data={"csrf_token": "forged",
                                                       "days": "off"}).status_code == 403
    off = http.post("/console/balance-warning", data={"csrf_token": token, "days": "off"})
    assert off.status_code == 303
    with rt.engine.connect() as conn:
        assert service.settings_of(conn, uin) == service.WarningSettings(None, None)
    finance = logged_in(rt, "acme-finance")
    page = finance.get("/console/").text
    assert 'data-days-left="2"' in page and 'action="/console/balance-warning"' not in page
    refused = finance.post("/console/balance-warning",
                           data={"csrf_token": csrf_of(page), "days": "3"})
    assert refused.status_code == 403
    with rt.engine.connect() as conn:
        assert service.settings_of(conn, uin) == service.WarningSettings(None, None)
    assert "data-balance-warning" not in logged_in(rt, "acme-admin").get("/console/").text


@pytest.mark.postgres_only
@pytest.mark.spec("XTR-2")
def test_eight_concurrent_runs_send_each_warning_once(rt):
    uins = [new_account(rt, f"conc{i}") for i in range(4)]
    period = period_containing(DAILY, rt.clock.now())
    end = period.end + jobs.LAG
    for uin in uins:
        _line(rt, uin, 10_00, end - timedelta(hours=5))
    rt.clock.set(end + timedelta(minutes=5))
    day = business_date(period.end)
    errors = run_threads(8, lambda i: service.warn(rt.engine, rt.clock, day, end))
    assert errors == []
    assert [len(_messages(rt, u)) for u in uins] == [1, 1, 1, 1]


@pytest.mark.spec("XTR-2")
def test_the_job_reads_the_available_balance_the_overview_shows(rt, shop):  # noqa: F811
    """Cash, gift, a freeze and credit (the console's shop): ``funds.available_many``
    is BAL-2's available balance, as ``balance_view`` gives it."""
    from feecenter.funds import service as funds

    uin = shop
    with rt.engine.connect() as conn:
        view = funds.balance_view(conn, rt.clock, SYSTEM, uin)
        assert funds.available_many(conn, [uin, 999_999_999]) == {uin: view.available}
    assert view.frozen > 0 and view.gift > 0 and view.credit_amount > 0
