"""``bills.service.daily_totals``: the month's roll-ups by business day of deduction
(the cost-by-day chart of 账单概览): each day's sums equal the day's L3 lines and
add up to L0 (BIL-1); the month is chosen as every roll-up level chooses it, a
usage-time month holding a later deduction day (BIL-3); FINANCE and a bad month
are refused."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

import pytest
from sqlalchemy import delete

from feecenter.bills import service
from feecenter.bills.tables import bill_rollups
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, PermissionDenied
from tests.helpers import OPS, new_account
from tests.test_bills_rollup import MONTH, _l3, _refresh_all, month  # noqa: F401 - a fixture


def _days(rt, uin, bill_month=MONTH, actor=OPS) -> list[dict]:
    with rt.engine.connect() as conn:
        return service.daily_totals(conn, actor, uin, bill_month)


@pytest.mark.spec("BIL-1")
def test_each_day_holds_its_lines_and_the_days_add_up_to_the_overview(rt, month):  # noqa: F811
    uin = month["uin"]
    assert _days(rt, uin) == []  # T+1: nothing rolled up yet
    _refresh_all(rt)
    days = _days(rt, uin)
    by_day = defaultdict(lambda: defaultdict(int))
    for line in _l3(rt, uin):
        by_day[line["deducted_on"]]["deducted"] += line["deducted"]
        by_day[line["deducted_on"]]["lines"] += 1
        by_day[line["deducted_on"]]["precision_diff"] += line["precision_diff"]
    assert [d["day"] for d in days] == sorted(by_day) == [date(2026, 3, d) for d in (2, 3, 4)]
    for found in days:
        assert {k: found[k] for k in ("deducted", "lines", "precision_diff")} == \
            dict(by_day[found["day"]]), found["day"]
    assert days[-1]["deducted"] < 0  # the 4th: a downgrade and a refund (BIL-5)
    with rt.engine.connect() as conn:
        total = service.overview(conn, OPS, uin, MONTH)["total"]
    for name in service.SUMS:
        assert sum(d[name] for d in days) == total[name], name
    assert _days(rt, uin, "2026-04") == []


def test_the_month_is_chosen_as_the_other_levels_choose_it(rt, month, monkeypatch):  # noqa: F811
    """Switched in March: March's usage deducted on 1 April is March's (a day after
    the month); April's own usage is April's."""
    uin = month["uin"]
    with transaction(rt.engine) as conn:
        conn.execute(delete(bill_rollups))
        for n, (day, usage) in enumerate(((date(2026, 3, 31), "2026-03"),
                                          (date(2026, 4, 1), "2026-03"),
                                          (date(2026, 4, 1), "2026-04"))):
            conn.execute(bill_rollups.insert().values(
                uin=uin, deducted_on=day, deducted_month=day.strftime("%Y-%m"),
                usage_month=usage, product_code="cvm", project_id=0, project_name="default",
                region="ap-guangzhou", pay_mode="postpaid", resource_id=f"r-{n}",
                original_cost=0, discounted_cost=0, deducted=10 ** n, voucher_paid=0,
                cash_paid=0, gift_paid=0, precision_diff=0, lines=1))
    assert [(d["day"], d["deducted"]) for d in _days(rt, uin)] == [(date(2026, 3, 31), 1)]
    monkeypatch.setattr(service, "usage_time_switch_month", lambda conn, uin: "2026-03")
    assert [(d["day"], d["deducted"]) for d in _days(rt, uin)] == [
        (date(2026, 3, 31), 1), (date(2026, 4, 1), 10)]
    assert [(d["day"], d["deducted"]) for d in _days(rt, uin, "2026-04")] == [
        (date(2026, 4, 1), 100)]


@pytest.mark.parametrize("bad", ["2026-13", "2026-3", "0000-01", "march", "２０２６-03"])
def test_a_bad_month_is_refused_naming_it(rt, bad):
    uin = new_account(rt, "daily-bad")
    with pytest.raises(InvalidInput) as refused:
        _days(rt, uin, bad)
    assert refused.value.field == "month"


def test_another_account_is_refused(rt):
    from feecenter.accounts.permissions import Actor

    owner, other = new_account(rt, "daily-owner"), new_account(rt, "daily-other")
    with pytest.raises(PermissionDenied):
        _days(rt, owner, actor=Actor(kind="user", uin=other, name="other", role="owner"))
