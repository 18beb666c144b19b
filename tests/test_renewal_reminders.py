"""Renewal reminders (RNW-3, RNW-4): the window, no reminder while the balance covers
the auto-renewals, a recharge reminder when it does not, expiry reminders without
auto-renewal (again once it is cancelled), one message per account, day and kind,
and never twice (rerun, crash)."""

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import business_date, business_time_text, from_db_time
from feecenter.db.engine import transaction
from feecenter.notifications import service as notifications
from feecenter.notifications.tables import in_site_messages, notification_outbox
from feecenter.orders import service as orders
from feecenter.periods import DAILY, period_containing
from feecenter.renewal import reminder_jobs, reminders, rules, settings
from feecenter.resources import service as resources
from feecenter.errors import InsufficientBalance
from feecenter.funds import service as funds
from feecenter.money import format_yuan
from tests.helpers import OPS, add_cash, add_gift, buy, load_sample_catalog, new_account, pay, revenue

CVM = ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")  # 178.00 yuan a month
MONTH_FEN = 178_00


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def _bought(rt, uin, count=1, item=CVM):
    """``count`` paid one-month resources of ``uin``; returns (ids, expiry day)."""
    add_cash(rt, uin, MONTH_FEN * count, key=f"buy-{uin}-{count}-{item[3]}")
    order_ids = buy(rt, uin, *[item] * count)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        found = [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]
        ends = {resources.get_resource(conn, uin, r)["period_end"] for r in found}
    assert len(ends) == 1
    return found, business_date(from_db_time(ends.pop()))


def _auto_renew(rt, uin, ids, flag=True):
    with transaction(rt.engine) as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, ids, auto_renew=flag)


def _remind(rt, day):
    """The reminders of ``day``, run at 00:10 of it (balances and prices as of then)."""
    rt.clock.set(rules.start_of_day(day) + timedelta(minutes=10))
    return reminders.remind(rt.engine, rt.clock, day)


def _messages(rt, uin, template=None):
    with rt.engine.connect() as conn:
        stmt = select(in_site_messages).where(in_site_messages.c.uin == uin)
        if template:
            stmt = stmt.where(in_site_messages.c.template == template)
        rows = conn.execute(stmt.order_by(in_site_messages.c.id)).mappings().all()
    return [{**row, "params": json.loads(row["params"])} for row in rows]


def _named(message) -> list[str]:
    """The resource ids a reminder lists, in order."""
    return [line.split(" ")[0] for line in message["params"]["resources"].splitlines()]


@pytest.mark.spec("RNW-3")
def test_reminders_run_from_seven_days_before_the_expiry_day_to_six_after(shop):
    rt = shop
    uin = new_account(rt)
    (rid,), expiry_day = _bought(rt, uin)
    reminded = {}
    for offset in (-8, -7, 6, 7):
        before = len(_messages(rt, uin))
        _remind(rt, expiry_day + timedelta(days=offset))
        reminded[offset] = len(_messages(rt, uin)) - before
    assert reminded == {-8: 0, -7: 1, 6: 1, 7: 0}
    first, last = _messages(rt, uin)
    assert first["template"] == last["template"] == reminders.EXPIRY
    assert _named(first) == [rid]
    assert first["params"]["day"] == (expiry_day - timedelta(days=7)).isoformat()


@pytest.mark.spec("RNW-3")
def test_no_reminder_while_the_balance_covers_the_auto_renewal_else_a_recharge_reminder(shop):
    rt = shop
    rich, poor = new_account(rt, "rich"), new_account(rt, "poor")
    (rich_id,), expiry_day = _bought(rt, rich)
    (poor_id,), _ = _bought(rt, poor)
    _auto_renew(rt, rich, [rich_id])
    _auto_renew(rt, poor, [poor_id])
    add_cash(rt, rich, MONTH_FEN)  # exactly the renewal
    add_cash(rt, poor, MONTH_FEN - 1)  # one fen short
    counts = _remind(rt, expiry_day - timedelta(days=3))
    assert counts["covered"] == 1 and counts[reminders.RECHARGE] == 1
    assert counts[reminders.EXPIRY] == 0
    assert _messages(rt, rich) == []
    (message,) = _messages(rt, poor)
    assert message["template"] == reminders.RECHARGE and _named(message) == [poor_id]
    assert (message["params"]["amount"], message["params"]["available"]) == ("178.00", "177.99")
    assert "178.00" in message["params"]["resources"]
    assert "提醒" in message["title"] and "Recharge reminder" in message["title"]


@pytest.mark.spec("RNW-3", "RNW-5")
def test_the_auto_renewal_counted_includes_the_unified_days_extra_days(shop):
    rt = shop
    uin = new_account(rt)
    (resource_id,), expiry_day = _bought(rt, uin)
    _auto_renew(rt, uin, [resource_id])
    with transaction(rt.engine) as conn:  # a day the renewal must reach past its term
        settings.set_unified_day(conn, rt.clock, SYSTEM, uin, (expiry_day.day % 28) + 1)
        price = orders.quote_renewal(conn, rt.clock, SYSTEM, uin, resource_id, 1)
    assert price.unified_extra > 0
    add_cash(rt, uin, MONTH_FEN)  # the term alone: short by the extra days
    counts = _remind(rt, expiry_day - timedelta(days=3))
    assert (counts["covered"], counts[reminders.RECHARGE]) == (0, 1)
    (message,) = _messages(rt, uin)
    assert message["params"]["amount"] == format_yuan(price.amount)
    add_cash(rt, uin, price.amount - MONTH_FEN)  # now exactly what the renewal costs
    assert _remind(rt, expiry_day - timedelta(days=2))["covered"] == 1


@pytest.mark.spec("RNW-3")
def test_the_balance_counts_an_accounts_auto_renewals_in_expiry_order(shop):
    rt = shop
    uin = new_account(rt)
    (first,), expiry_day = _bought(rt, uin)
    rt.clock.advance(days=1)
    (second,), second_day = _bought(rt, uin, item=("cvm", "S5.MEDIUM4", 1, "ap-shanghai"))
    assert second_day == expiry_day + timedelta(days=1)
    _auto_renew(rt, uin, [first, second])
    add_cash(rt, uin, MONTH_FEN + 50_00)  # covers the first renewal only
    counts = _remind(rt, expiry_day)
    assert (counts["covered"], counts[reminders.RECHARGE]) == (1, 1)
    (message,) = _messages(rt, uin)
    assert _named(message) == [second] and message["params"]["available"] == "228.00"


@pytest.mark.spec("RNW-4")
def test_cancelling_auto_renewal_restores_the_expiry_reminders(shop):
    rt = shop
    covered, short = new_account(rt, "covered"), new_account(rt, "short")
    (covered_id,), expiry_day = _bought(rt, covered)
    (short_id,), _ = _bought(rt, short)
    _auto_renew(rt, covered, [covered_id])
    _auto_renew(rt, short, [short_id])
    add_cash(rt, covered, MONTH_FEN)
    day = expiry_day - timedelta(days=5)
    _remind(rt, day)
    assert _messages(rt, covered) == []
    assert [m["template"] for m in _messages(rt, short)] == [reminders.RECHARGE]
    _auto_renew(rt, covered, [covered_id], flag=False)
    _auto_renew(rt, short, [short_id], flag=False)
    _remind(rt, day + timedelta(days=1))
    for uin, rid in ((covered, covered_id), (short, short_id)):
        latest = _messages(rt, uin)[-1]
        assert latest["template"] == reminders.EXPIRY and _named(latest) == [rid]
        assert latest["params"]["day"] == (day + timedelta(days=1)).isoformat()


@pytest.mark.spec("RNW-4")
def test_the_account_default_flag_counts_and_its_removal_restores_expiry_reminders(shop):
    rt = shop
    uin = new_account(rt)
    (rid,), expiry_day = _bought(rt, uin)
    with transaction(rt.engine) as conn:
        settings.set_account_default(conn, rt.clock, SYSTEM, uin, True)
    add_cash(rt, uin, MONTH_FEN)
    _remind(rt, expiry_day - timedelta(days=2))
    assert _messages(rt, uin) == []
    with transaction(rt.engine) as conn:
        settings.set_account_default(conn, rt.clock, SYSTEM, uin, False)
    _remind(rt, expiry_day - timedelta(days=1))
    assert [m["template"] for m in _messages(rt, uin)] == [reminders.EXPIRY]


@pytest.mark.spec("RNW-3")
def test_one_message_per_account_and_day_lists_all_its_resources(shop):
    rt = shop
    uin, other = new_account(rt, "many"), new_account(rt, "other")
    ids, expiry_day = _bought(rt, uin, count=3)
    (other_id,), _ = _bought(rt, other)
    renewed = ids[:2]
    _auto_renew(rt, uin, renewed)  # no money left: both short
    counts = _remind(rt, expiry_day)
    assert counts == {"accounts": 2, "covered": 0, reminders.RECHARGE: 2, reminders.EXPIRY: 2}
    (mine,) = _messages(rt, uin)  # one message: the recharge reminder carries the expiry list
    assert mine["template"] == reminders.COMBINED
    assert sorted(_named(mine)) == sorted(renewed)
    assert ids[2] in mine["params"]["expiring"] and ids[2] not in mine["params"]["resources"]
    assert mine["params"]["count"] == 2 and mine["params"]["amount"] == "356.00"
    assert mine["params"]["expiring_count"] == 1
    assert [_named(m) for m in _messages(rt, other)] == [[other_id]]


@pytest.mark.spec("RNW-3")
def test_a_rerun_and_a_run_after_a_crash_send_nothing_twice(shop, monkeypatch):
    rt = shop
    uins = [new_account(rt, f"acct-{i}", email=f"a{i}@example.cn", phone=f"1380013800{i}")
            for i in range(3)]
    expiry_day = [_bought(rt, uin)[1] for uin in uins][0]
    day = expiry_day - timedelta(days=1)
    monkeypatch.setattr(reminders, "ACCOUNTS_PER_BATCH", 1)
    real = notifications.notify_many
    calls = []

    def crash_on_second_batch(conn, clock, notices, **kw):
        calls.append(len(notices))
        if len(calls) == 2:
            raise RuntimeError("worker died")
        return real(conn, clock, notices, **kw)

    monkeypatch.setattr(notifications, "notify_many", crash_on_second_batch)
    with pytest.raises(RuntimeError):
        _remind(rt, day)
    assert [len(_messages(rt, u)) for u in uins] == [1, 0, 0]  # the first batch committed
    monkeypatch.setattr(notifications, "notify_many", real)
    _remind(rt, day)
    _remind(rt, day)
    assert [len(_messages(rt, u)) for u in uins] == [1, 1, 1]
    with rt.engine.connect() as conn:
        keys = conn.execute(select(in_site_messages.c.idempotency_key)).scalars().all()
        outbox = conn.execute(select(func.count()).select_from(notification_outbox)).scalar()
    assert sorted(keys) == sorted(f"renewal.remind:{u}:{day.isoformat()}" for u in uins)
    assert outbox == sum(2 for _ in uins)  # each account's contact email and phone, once


@pytest.mark.spec("RNW-3")
def test_stopped_for_expiry_is_reminded_with_its_release_time_other_stops_and_released_not(shop):
    rt = shop
    expired, arrears, released = (new_account(rt, n) for n in ("expired", "arrears", "released"))
    (expired_id,), expiry_day = _bought(rt, expired)
    (arrears_id,), _ = _bought(rt, arrears)
    (released_id,), _ = _bought(rt, released)
    with rt.engine.connect() as conn:
        end = from_db_time(resources.get_resource(conn, expired, expired_id)["period_end"])
    _auto_renew(rt, expired, [expired_id])  # after a stop only a manual renewal recovers it
    with transaction(rt.engine) as conn:
        resources.stop_resource(conn, expired_id, end, reminders.STOP_REASON)
        resources.stop_resource(conn, arrears_id, end, "arrears")
        resources.update_resource(conn, released_id, state="recycled", released_at=end)
    _remind(rt, expiry_day + timedelta(days=2))
    (message,) = _messages(rt, expired)
    assert message["template"] == reminders.EXPIRY and _named(message) == [expired_id]
    release = business_time_text(rules.release_at(end, 7))  # the product's recovery days
    assert message["params"]["resources"].endswith(f"| {release}")
    assert _messages(rt, arrears) == [] and _messages(rt, released) == []


@pytest.mark.spec("RNW-3")
def test_the_daily_job_sends_the_day_its_period_ends_into_and_skips_past_days(shop):
    rt = shop
    uin = new_account(rt)
    (rid,), expiry_day = _bought(rt, uin)
    day = expiry_day - timedelta(days=4)
    period = period_containing(DAILY, rules.start_of_day(day) - timedelta(hours=1))
    rt.clock.set(rules.start_of_day(day) + timedelta(minutes=5))
    assert reminder_jobs.notice_day(period) == day
    result = reminder_jobs.remind(rt.engine, rt.clock, period)
    assert result["day"] == day.isoformat() and result[reminders.EXPIRY] == 1
    assert reminder_jobs.remind(rt.engine, rt.clock, period)[reminders.EXPIRY] == 1  # rerun
    assert len(_messages(rt, uin)) == 1  # ... that sends nothing again
    rt.clock.set(rules.start_of_day(day + timedelta(days=2)))
    assert reminder_jobs.remind(rt.engine, rt.clock, period) == {
        "day": day.isoformat(), "skipped": "past"}
    assert len(_messages(rt, uin)) == 1


def _spend_postpaid(rt, uin, fen, key):
    revenue_id = revenue(rt)
    with transaction(rt.engine) as conn:
        funds.spend(conn, rt.clock, uin, fen, key=key, postpaid=True,
                    revenue_account_id=revenue_id)


@pytest.mark.spec("RNW-3")
def test_the_balance_counted_is_exactly_what_a_payment_could_use(shop):
    """gift + cash + unused credit, as ``funds.plan_payment`` plans a payment; nothing
    for an account in arrears (its renewal would be refused)."""
    rt = shop
    mixed, owing = new_account(rt, "mixed"), new_account(rt, "owing")
    add_cash(rt, mixed, 40_00)
    add_gift(rt, mixed, 30_00)
    with transaction(rt.engine) as conn:
        for uin in (mixed, owing):
            funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=100_00)
    _spend_postpaid(rt, mixed, 90_00, "use-credit")  # gift, cash, then 20.00 of credit
    _spend_postpaid(rt, owing, 150_00, "into-arrears")  # credit used up, 50.00 owed
    with rt.engine.connect() as conn:
        found = funds.spendable_many(conn, rt.clock, [mixed, owing, 999])
        assert found == {mixed: 80_00, owing: 0}
        funds.plan_payment(conn, rt.clock, mixed, [80_00])
        with pytest.raises(InsufficientBalance):
            funds.plan_payment(conn, rt.clock, mixed, [80_01])
