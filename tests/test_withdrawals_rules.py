"""The withdrawal route's pure rules (WDR-2, WDR-3; docs/withdrawal.md): windows per
channel counted in Asia/Shanghai business dates (day 360 in, day 361 out, never
above 360), the LIFO plan over what each source has left, and when each leg's money
is expected (online 2 hours; international card, remittance and bank 7–15 working
days)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from feecenter.withdrawals import rules

UTC = timezone.utc
PAID = datetime(2026, 1, 5, 15, 59, tzinfo=UTC)  # 23:59 in Shanghai on 2026-01-05


def source(ref: int, refundable: int, paid_at: datetime = PAID, channel: str = "wechat",
           intl_card: bool = False, kind: str = "recharge") -> rules.RouteSource:
    return rules.RouteSource(kind, ref, channel, intl_card, paid_at, refundable)


@pytest.mark.spec("WDR-2")
def test_day_360_is_inside_the_window_and_day_361_is_not():
    paid_on = date(2026, 1, 5)
    assert rules.in_window(paid_on, paid_on + timedelta(days=360), 360)
    assert not rules.in_window(paid_on, paid_on + timedelta(days=361), 360)
    assert rules.in_window(paid_on, paid_on, 0)
    assert not rules.in_window(paid_on, paid_on + timedelta(days=1), 0)
    # a window set above 360 days is still 360 days
    assert not rules.in_window(paid_on, paid_on + timedelta(days=361), 500)
    assert not rules.in_window(paid_on, paid_on - timedelta(days=1), 360)  # not paid yet


@pytest.mark.spec("WDR-2")
def test_the_window_counts_business_dates_in_shanghai():
    # paid 23:59 Shanghai on 01-05 (15:59 UTC): day 360 is 2026-12-31 in Shanghai
    late = source(1, 100)
    windows = rules.Windows()
    day_360 = date(2026, 1, 5) + timedelta(days=360)
    assert rules.usable([late], day_360, windows) == [late]
    assert rules.usable([late], day_360 + timedelta(days=1), windows) == []
    # 16:00 UTC is already 01-06 in Shanghai: one more day inside
    next_day = source(2, 100, paid_at=PAID + timedelta(minutes=1))
    assert rules.usable([next_day], day_360 + timedelta(days=1), windows) == [next_day]


@pytest.mark.spec("WDR-2")
def test_windows_are_per_channel_configurable_and_capped_at_360():
    windows = rules.parse_windows("wechat=30, netbank=90")
    assert (windows.of("wechat"), windows.of("netbank"), windows.of("qq"),
            windows.of("remittance")) == (30, 90, 360, 360)
    assert rules.parse_windows(None) == rules.parse_windows("") == rules.Windows()
    today = date(2026, 1, 5) + timedelta(days=31)
    wechat, qq = source(1, 100), source(2, 100, channel="qq")
    intl = source(3, 100, intl_card=True)
    assert rules.usable([wechat, qq, intl], today, windows) == [qq, intl]
    assert rules.usable([intl], today, rules.parse_windows("intl_card=30")) == []
    for bad in ("wechat=361", "wechat=-1", "alipay=10", "wechat", "wechat=x"):
        with pytest.raises(ValueError):
            rules.parse_windows(bad)


@pytest.mark.spec("WDR-2")
def test_lifo_takes_the_newest_first_and_the_last_one_in_part():
    old = source(1, 100_00, paid_at=PAID)
    middle = source(2, 50_00, paid_at=PAID + timedelta(days=10))
    new = source(3, 30_00, paid_at=PAID + timedelta(days=20))
    plan = rules.plan_route(95_00, [old, new, middle])
    assert [(leg.ref_id, leg.amount) for leg in plan] == [(3, 30_00), (2, 50_00), (1, 15_00)]
    assert sum(leg.amount for leg in plan) == 95_00


@pytest.mark.spec("WDR-2")
def test_lifo_skips_sources_with_nothing_left_and_stops_short_when_they_hold_less():
    spent = source(1, 0, paid_at=PAID + timedelta(days=30))
    left = source(2, 40_01, paid_at=PAID)
    remittance = source(7, 10_00, paid_at=PAID + timedelta(days=1), channel="remittance",
                        kind="remittance")
    plan = rules.plan_route(100_00, [spent, left, remittance])
    assert [(leg.source, leg.ref_id, leg.amount) for leg in plan] == [
        ("remittance", 7, 10_00), ("recharge", 2, 40_01)]
    assert rules.plan_route(1, []) == []


@pytest.mark.spec("WDR-2", "WDR-3")
def test_estimates_online_two_hours_others_7_to_15_working_days():
    applied = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai
    assert rules.estimate("wechat", False, applied) == (applied, applied + timedelta(hours=2))
    assert rules.estimate("netbank", False, applied)[1] == applied + timedelta(hours=2)
    seven = datetime(2026, 3, 11, 2, 0, tzinfo=UTC)   # 7 working days later (Wednesday)
    fifteen = datetime(2026, 3, 23, 2, 0, tzinfo=UTC)  # 15 working days later (Monday)
    for channel, intl in (("wechat", True), ("remittance", False), ("bank", False)):
        assert rules.estimate(channel, intl, applied) == (seven, fifteen)


@pytest.mark.spec("WDR-3")
def test_bank_estimates_skip_the_national_holidays():
    applied = datetime(2026, 9, 30, 2, 0, tzinfo=UTC)  # the day before National Day
    start, end = rules.estimate("bank", False, applied)
    # 1-7 October off, Saturday 10 October a make-up working day (调休): the 7th
    # working day is 15 October, the 15th is 27 October
    assert (start, end) == (datetime(2026, 10, 15, 2, 0, tzinfo=UTC),
                            datetime(2026, 10, 27, 2, 0, tzinfo=UTC))


@pytest.mark.parametrize(("variable", "value"), [
    ("FEECENTER_WITHDRAWAL_WINDOWS", "wechat=400"),
    ("FEECENTER_WITHDRAWAL_WINDOWS", "nonsense"),
    ("FEECENTER_MONTHLY_FREEZE_DAY", "31"),
])
def test_a_wrong_domain_setting_stops_the_start(monkeypatch, variable, value):
    """A wrong withdrawal window or monthly-freeze day is refused when the runtime
    opens, naming the variable, instead of failing each request later."""
    from feecenter.errors import ConfigurationError
    from feecenter.runtime import open_runtime

    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as err:
        open_runtime()  # refused before any settings or database are opened
    assert variable in err.value.message_en


@pytest.mark.spec("WDR-7")
def test_money_transferred_in_and_unspent_is_never_withdrawable():
    """The rule's part for WDR-7: cash an agent or group admin transferred in and the
    account has not spent comes off, to the fen, even when it is all the cash (the
    service passes 0 until agents and groups exist: docs/withdrawal.md)."""
    def raw(cash: int, transferred: int) -> int:
        return rules.withdrawable(rules.WithdrawableParts(
            cash=cash, invoice_debt=0, unrepaid_advances=0, frozen=0, gift=0, income=0,
            transferred_in_unspent=transferred))
    assert raw(300_00, 120_50) == 179_50
    assert raw(120_50, 120_50) == 0
    assert rules.takeable(raw(100_00, 120_50)) == 0
