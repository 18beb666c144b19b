"""Things that must exist once, created by 8 concurrent requests (PostgreSQL).

An account's default project (made by its first purchase or opening), a coupon
granted under an idempotency key, and an account's open arrears case are each
unique. When 8 requests create one at the same moment, every request succeeds
with the one row the winner made: no raw unique-key error reaches a caller
(it used to, for each of the three; the simulation's concurrent runs retried
them, docs/simulation.md).
"""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from feecenter.arrears import service as arrears
from feecenter.arrears.tables import arrears_cases
from feecenter.coupons import rules as coupon_rules
from feecenter.coupons import service as coupons
from feecenter.coupons.tables import coupons as coupons_table
from feecenter.funds import service as funds
from feecenter.notifications.tables import in_site_messages as messages
from feecenter.resources import service as resources
from feecenter.resources.tables import projects
from tests.helpers import OPS, add_cash, new_account, run_threads

pytestmark = pytest.mark.postgres_only

THREADS = 8


def count(rt, stmt) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(stmt).scalar_one()


def test_eight_first_uses_make_one_default_project(rt):
    uin = new_account(rt)
    made: list[int] = []

    def first_use(_):
        with rt.engine.begin() as conn:
            made.append(resources.default_project(conn, rt.clock, uin))

    assert run_threads(THREADS, first_use) == []
    assert len(made) == THREADS and len(set(made)) == 1
    assert count(rt, select(func.count()).select_from(projects)
                 .where(projects.c.uin == uin)) == 1


@pytest.mark.spec("CPN-1")
def test_eight_identical_grants_give_one_coupon(rt):
    uin = new_account(rt)
    terms = coupon_rules.Terms(kind=coupon_rules.VOUCHER, pay_mode=coupon_rules.PREPAID,
                               face_amount=50_00, valid_days=30)
    granted: list[int] = []

    def grant(_):
        with rt.engine.begin() as conn:
            granted.append(coupons.grant(conn, rt.clock, OPS, uin, terms,
                                         campaign="spring", key="welcome"))

    assert run_threads(THREADS, grant) == []
    assert len(granted) == THREADS and len(set(granted)) == 1
    assert count(rt, select(func.count()).select_from(coupons_table)
                 .where(coupons_table.c.uin == uin)) == 1


@pytest.mark.spec("ARR-3")
def test_eight_escalation_runs_open_one_case_and_dun_once(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 5_00)
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 6_00, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    opened: Counter = Counter()

    def escalate(_):
        opened.update({"opened": arrears.escalate(rt.engine, rt.clock)["opened"]})

    assert run_threads(THREADS, escalate) == []
    assert opened["opened"] == 1
    assert count(rt, select(func.count()).select_from(arrears_cases)
                 .where(arrears_cases.c.uin == uin)) == 1
    assert count(rt, select(func.count()).select_from(messages)
                 .where(messages.c.uin == uin, messages.c.template == "arrears_dunning")) == 1
