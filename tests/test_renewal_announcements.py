"""Price-change announcements (RNW-1): a prepaid price version loaded for the future
is announced once to each owner of a resource it prices, naming the resources, the
old and new price and when it applies; other owners hear nothing."""

import json
from datetime import date, timedelta

import pytest
from sqlalchemy import select

from feecenter.accounts.permissions import SYSTEM
from feecenter.catalog import service as catalog
from feecenter.cli import catalog as cli_catalog
from feecenter.db.engine import transaction
from feecenter.notifications.tables import in_site_messages
from feecenter.orders import service as orders
from feecenter.periods import DAILY, period_containing
from feecenter.clock import business_date, from_db_time
from feecenter.orders.tables import orders as orders_table
from feecenter.renewal import announcements, auto, reminder_jobs, rules, settings
from feecenter.resources import service as resources
from tests.helpers import OPS, add_cash, buy, load_sample_catalog, new_account, pay

SAMPLE_LINE = ('      - {item: S5.MEDIUM4,   pay_mode: prepaid,  regions: &regions3 '
               '[ap-guangzhou, ap-shanghai, ap-beijing], from: 2026-01-01, price: "178.00"}\n')


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def _load_price(rt, starts: str, price: str = "198.00", region: str = "ap-guangzhou"):
    """The sample catalog plus a prepaid S5.MEDIUM4 price in ``region`` from ``starts``."""
    text = catalog.sample_catalog_text()
    assert SAMPLE_LINE in text
    added = (f'      - {{item: S5.MEDIUM4,   pay_mode: prepaid,  regions: [{region}], '
             f'from: "{starts}", price: "{price}"}}\n')
    with transaction(rt.engine) as conn:
        return catalog.load_catalog(conn, rt.clock, OPS, text.replace(SAMPLE_LINE, SAMPLE_LINE + added),
                                    f"prices-{starts}.yaml")


def _bought(rt, uin, *items):
    add_cash(rt, uin, 10_000_00, key=f"cash-{uin}-{len(items)}-{items[0][1]}-{items[0][3]}")
    order_ids = buy(rt, uin, *items)
    pay(rt, uin, order_ids)
    with rt.engine.connect() as conn:
        return [orders.get_order(conn, SYSTEM, uin, o)["resource_id"] for o in order_ids]


def _announce(rt, day: date):
    rt.clock.set(rules.start_of_day(day) + timedelta(minutes=10))
    return announcements.announce(rt.engine, rt.clock, day)


def _messages(rt, uin):
    with rt.engine.connect() as conn:
        rows = conn.execute(select(in_site_messages).where(in_site_messages.c.uin == uin)
                            .order_by(in_site_messages.c.id)).mappings().all()
    return [{**row, "params": json.loads(row["params"])} for row in rows]


GZ = ("cvm", "S5.MEDIUM4", 1, "ap-guangzhou")


@pytest.fixture
def owners(shop):
    """An owner of two affected resources, one of the same spec in another region, one
    of another spec in the region, and one whose affected resource is released."""
    rt = shop
    uins = {name: new_account(rt, name) for name in ("affected", "shanghai", "large", "gone")}
    found = {"affected": _bought(rt, uins["affected"], GZ, GZ),
             "shanghai": _bought(rt, uins["shanghai"], ("cvm", "S5.MEDIUM4", 1, "ap-shanghai")),
             "large": _bought(rt, uins["large"], ("cvm", "S5.LARGE8", 1, "ap-guangzhou")),
             "gone": _bought(rt, uins["gone"], GZ)}
    with transaction(rt.engine) as conn:
        resources.update_resource(conn, found["gone"][0], state="recycled",
                                  released_at=rt.clock.now())
    return rt, uins, found


@pytest.mark.spec("RNW-1")
def test_a_future_price_is_announced_once_to_the_owners_of_affected_resources(owners):
    rt, uins, found = owners
    summary = _load_price(rt, "2026-04-01")
    assert summary["late_prepaid_prices"] == []
    day = date(2026, 3, 20)
    counts = _announce(rt, day)
    assert counts == {"versions": 1, "accounts": 1, "resources": 2}
    (message,) = _messages(rt, uins["affected"])
    assert message["template"] == announcements.TEMPLATE
    assert message["params"]["resources"].splitlines() == sorted(found["affected"])
    assert (message["params"]["old_price"], message["params"]["new_price"]) == ("178.00", "198.00")
    assert message["params"]["starts_at"] == "2026-04-01 00:00:00"
    assert "178.00" in message["body"] and "198.00" in message["body"]
    for other in ("shanghai", "large", "gone"):
        assert _messages(rt, uins[other]) == [], other
    _announce(rt, day)  # a rerun
    _announce(rt, day + timedelta(days=1))  # and the next days
    _announce(rt, date(2026, 3, 31))
    assert len(_messages(rt, uins["affected"])) == 1


@pytest.mark.spec("RNW-1")
def test_a_price_is_announced_from_thirty_days_before_it_applies(owners):
    rt, uins, _ = owners
    _load_price(rt, "2026-05-01")
    assert _announce(rt, date(2026, 3, 31))["versions"] == 0  # 31 days ahead: not yet
    assert _messages(rt, uins["affected"]) == []
    assert _announce(rt, date(2026, 4, 2))["accounts"] == 1  # 29 days ahead
    assert len(_messages(rt, uins["affected"])) == 1


@pytest.mark.spec("RNW-1")
def test_a_price_loaded_to_apply_before_the_next_run_is_reported_and_announced_late(owners,
                                                                                  capsys):
    rt, uins, _ = owners
    rt.clock.set(rules.start_of_day(date(2026, 3, 10)) + timedelta(hours=9))
    summary = _load_price(rt, "2026-03-10 18:00:00", price="168.00")
    assert summary["late_prepaid_prices"] == [
        {"product": "cvm", "item": "S5.MEDIUM4", "region": "ap-guangzhou",
         "starts_at": "2026-03-10 18:00:00"}]
    cli_catalog._render_summary(summary)  # what `feecenter catalog load` prints
    printed = "".join(capsys.readouterr().out.split())  # rich wraps lines
    assert "cvm/S5.MEDIUM4ap-guangzhou于2026-03-1018:00:00生效" in printed
    _announce(rt, date(2026, 3, 11))  # the first run after it: told, if late
    (message,) = _messages(rt, uins["affected"])
    assert (message["params"]["old_price"], message["params"]["new_price"]) == ("178.00", "168.00")


def test_the_same_price_again_is_not_a_change(owners):
    rt, uins, _ = owners
    _load_price(rt, "2026-04-01", price="178.00")
    assert _announce(rt, date(2026, 3, 20))["versions"] == 0
    assert _messages(rt, uins["affected"]) == []


@pytest.mark.spec("RNW-1")
def test_the_daily_job_announces_and_skips_past_days(owners):
    rt, uins, _ = owners
    _load_price(rt, "2026-04-01")
    day = date(2026, 3, 25)
    period = period_containing(DAILY, rules.start_of_day(day) - timedelta(hours=1))
    rt.clock.set(rules.start_of_day(day) + timedelta(minutes=1))
    result = reminder_jobs.announce_prices(rt.engine, rt.clock, period)
    assert result == {"day": "2026-03-25", "versions": 1, "accounts": 1, "resources": 2}
    rt.clock.set(rules.start_of_day(day + timedelta(days=1)))
    assert reminder_jobs.announce_prices(rt.engine, rt.clock, period)["skipped"] == "past"
    assert len(_messages(rt, uins["affected"])) == 1


@pytest.mark.spec("RNW-1")
def test_an_announced_price_is_the_one_the_auto_renewal_pays(owners):
    """Announced before it applies, then applied: the auto-renewal on the expiry day
    buys the term at the announced new price, not the price the resource was bought at."""
    rt, uins, found = owners
    uin, (resource_id, _) = uins["affected"], found["affected"]
    with transaction(rt.engine) as conn:
        settings.set_auto_renew(conn, rt.clock, SYSTEM, uin, [resource_id], auto_renew=True)
        expiry = resources.get_resource(conn, uin, resource_id)["period_end"]
    expiry_day = business_date(from_db_time(expiry))
    _load_price(rt, (expiry_day - timedelta(days=3)).isoformat())
    _announce(rt, expiry_day - timedelta(days=10))
    (notice,) = _messages(rt, uin)
    assert notice["params"]["new_price"] == "198.00" and resource_id in notice["params"]["resources"]
    rt.clock.set(rules.start_of_day(expiry_day) + timedelta(hours=1))
    assert auto.renew_due(rt.engine, rt.clock, expiry_day)["renewed"] >= 1
    with rt.engine.connect() as conn:
        renewal = conn.execute(select(orders_table).where(
            orders_table.c.resource_id == resource_id, orders_table.c.kind == "renew")).mappings().one()
    assert (renewal["state"], renewal["amount"]) == ("delivered", 198_00)
