"""Arrears escalation (ARR-3): dunning, stop, destruction warning, destruction, restore."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM
from feecenter.arrears import rules
from feecenter.arrears import service as arrears
from feecenter.arrears.policy import (COMPUTE_POLICY, DEFAULT_POLICIES, DEFAULT_POLICY,
                                      ArrearsPolicy, PolicyTable)
from feecenter.catalog import service as catalog
from feecenter.errors import PermissionDenied
from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from feecenter.notifications import service as notifications
from feecenter.notifications.tables import notification_outbox
from feecenter.resources import postpaid
from feecenter.resources import service as resources
from tests.helpers import OPS, add_cash, balance, new_account

H = timedelta(hours=1)
D = timedelta(days=1)
ZERO = {"opened": 0, "closed": 0, "stop_warning": 0, "stopped": 0, "destroy_warning": 0,
        "destroyed": 0, "restarted": 0}


# ---------------------------------------------------------------- pure rules

T0 = datetime(2026, 3, 2, 2, 0, tzinfo=timezone.utc)


@pytest.mark.spec("ARR-3")
def test_rules_compute_schedule():
    p = COMPUTE_POLICY
    assert rules.due_steps(T0, T0 + 30 * 60 * timedelta(seconds=1), p, "running", {}) == []
    [warn] = rules.due_steps(T0, T0 + H, p, "running", {})
    assert (warn.kind, warn.stop_at) == ("stop_warning", T0 + 2 * H)
    assert rules.due_steps(T0, T0 + H, p, "running", {"stop_warning": T0 + H}) == []
    [stop] = rules.due_steps(T0, T0 + 2 * H, p, "running", {"stop_warning": T0 + H})
    assert (stop.kind, stop.destroy_at) == ("stopped", T0 + 2 * H + 7 * D)
    done = {"stop_warning": T0 + H, "stopped": T0 + 2 * H}
    assert rules.due_steps(T0, T0 + 6 * D, p, "stopped", done) == []
    [warn] = rules.due_steps(T0, T0 + 2 * H + 6 * D, p, "stopped", done)
    assert (warn.kind, warn.destroy_at) == ("destroy_warning", T0 + 2 * H + 7 * D)
    done["destroy_warning"] = T0 + 2 * H + 6 * D
    assert rules.due_steps(T0, T0 + 2 * H + 7 * D - H, p, "stopped", done) == []
    [gone] = rules.due_steps(T0, T0 + 2 * H + 7 * D, p, "stopped", done)
    assert gone.kind == "destroyed"
    done["destroyed"] = T0 + 2 * H + 7 * D
    assert rules.due_steps(T0, T0 + 30 * D, p, "stopped", done) == []
    assert rules.due_steps(T0, T0 + 30 * D, p, "recycled", {}) == []
    # restarted by an operator during the case: left alone
    assert rules.due_steps(T0, T0 + 30 * D, p, "running", {"stopped": T0 + 2 * H}) == []


@pytest.mark.spec("ARR-3")
def test_rules_never_destroy_without_a_full_warning():
    p = COMPUTE_POLICY
    late = T0 + 30 * D  # the escalation did not run for a month
    steps = rules.due_steps(T0, late, p, "running", {})
    assert [s.kind for s in steps] == ["stopped", "destroy_warning"]  # no stop warning, no destruction
    assert steps[1].destroy_at == late + p.destroy_warning
    done = {"stopped": late, "destroy_warning": late}
    assert rules.due_steps(T0, late + 23 * H, p, "stopped", done) == []
    assert [s.kind for s in rules.due_steps(T0, late + D, p, "stopped", done)] == ["destroyed"]


def test_policy_lookup_and_validation():
    table = PolicyTable(by_class={"compute": COMPUTE_POLICY},
                        by_product={"cdn": ArrearsPolicy(protection=D, isolation=D)})
    assert table.for_product("cvm", "compute") is COMPUTE_POLICY
    assert table.for_product("cdn", "network").protection == D
    assert table.for_product("cbs", "storage") is DEFAULT_POLICY
    assert table.for_product("gone", None) is DEFAULT_POLICY
    assert DEFAULT_POLICIES.for_product("cvm", "compute").protection == 2 * H
    assert DEFAULT_POLICIES.for_product("cdb", "database").protection == 15 * D
    with pytest.raises(ValueError):
        ArrearsPolicy(protection=-H, isolation=D)


# ---------------------------------------------------------------- service

@pytest.fixture
def owing(rt):
    return make_owing(rt)


def make_owing(rt, **contacts):
    """An account with a postpaid cvm (compute) and cdb (database), 1.00 yuan in arrears;
    ``contacts``: its email and phone."""
    with rt.engine.begin() as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")
    uin = new_account(rt, **contacts)
    add_cash(rt, uin, 1_000_00)
    ids = {}
    with rt.engine.begin() as conn:
        for product in ("cvm", "cdb"):
            spec = next(i["code"] for i in catalog.list_items(conn, product) if i["spec"])
            ids[product] = postpaid.open_postpaid(conn, rt.clock, SYSTEM, uin, product=product,
                                                  region="ap-guangzhou", spec_item=spec)
    available = balance(rt, uin).available
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, available + 100, key="usage", postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    assert balance(rt, uin).arrears == 100
    return rt, uin, ids


def run(rt) -> dict:
    counts = arrears.escalate(rt.engine, rt.clock)
    counts.pop("accounts")
    return counts


def state_of(rt, uin, resource_id) -> dict:
    with rt.engine.connect() as conn:
        return resources.get_resource(conn, uin, resource_id)


def templates(rt, uin) -> list[str]:
    with rt.engine.connect() as conn:
        items = notifications.list_messages(conn, SYSTEM, uin, limit=100)["items"]
    return [m["template"] for m in reversed(items)]


def events(rt, uin) -> list[tuple[str, str | None]]:
    with rt.engine.connect() as conn:
        return [(e["kind"], e["resource_id"]) for e in arrears.list_events(conn, SYSTEM, uin)]


def advance(rt, delta):
    rt.clock.set(rt.clock.now() + delta)


@pytest.mark.spec("ARR-3")
def test_dunning_stop_warning_and_restore_on_repayment(owing):
    rt, uin, ids = owing
    cvm, cdb = ids["cvm"], ids["cdb"]
    assert run(rt) == {**ZERO, "opened": 1}
    assert templates(rt, uin) == ["arrears_dunning"]
    with rt.engine.connect() as conn:
        [case] = arrears.list_cases(conn, SYSTEM, uin)
    assert case["state"] == "open" and case["arrears_at_open"] == 100
    assert events(rt, uin) == [("dunning", None)]
    assert run(rt) == ZERO  # rerun: nothing new

    advance(rt, H)
    assert run(rt) == {**ZERO, "stop_warning": 1}
    assert templates(rt, uin)[-1] == "arrears_stop_warning"
    advance(rt, H)  # the compute protection (2 h) is over
    assert run(rt) == {**ZERO, "stopped": 1}
    assert state_of(rt, uin, cvm)["state"] == "stopped"
    assert state_of(rt, uin, cdb)["state"] == "running"  # database: 15 days of protection
    assert ("stopped", cvm) in events(rt, uin)
    assert templates(rt, uin)[-1] == "resources_stopped"
    with rt.engine.connect() as conn:
        body = notifications.list_messages(conn, SYSTEM, uin)["items"][0]["body"]
    assert cvm in body
    assert run(rt) == ZERO

    advance(rt, 6 * D)  # 24 h before the destruction
    assert run(rt) == {**ZERO, "destroy_warning": 1}
    assert templates(rt, uin)[-1] == "resources_destroy_warning"
    assert run(rt) == ZERO

    add_cash(rt, uin, 5_00)  # an operator's cash adjustment repays the arrears first (ARR-4)
    assert balance(rt, uin).arrears == 0
    assert run(rt) == {**ZERO, "closed": 1, "restarted": 1}
    assert state_of(rt, uin, cvm)["state"] == "running"
    assert state_of(rt, uin, cdb)["state"] == "running"
    assert templates(rt, uin)[-1] == "arrears_repaid_restored"
    with rt.engine.connect() as conn:
        [case] = arrears.list_cases(conn, SYSTEM, uin)
        repaid = arrears.list_events(conn, SYSTEM, uin)[-1]
    assert case["state"] == "closed" and case["ended_at"] is not None
    assert repaid["kind"] == "restored" and repaid["detail"] == {"amount": 100,
                                                               "restarted": [cvm]}
    assert ("restarted", cvm) in events(rt, uin)
    n = len(templates(rt, uin))
    advance(rt, 2 * D)
    assert run(rt) == ZERO  # rerun after closing: nothing new
    assert len(templates(rt, uin)) == n
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []


@pytest.mark.spec("ARR-3")
def test_entering_arrears_sends_the_dunning_notice_to_owner_and_finance_users_only(rt):
    """The owner (the account's contacts) and each finance user, on each channel it has;
    the admin and the readonly user get neither email, SMS nor the in-site message."""
    rt, uin, _ = make_owing(rt, email="boss@example.cn", phone="13800000000")
    with rt.engine.begin() as conn:
        users = {login: accounts.user_actor(conn, accounts.add_user(
            conn, rt.clock, OPS, uin, login, role, email=f"{login}@example.cn",
            phone=f"1390000000{n}")) for n, (login, role) in enumerate(
                (("fin", "finance"), ("fin2", "finance"), ("adm", "admin"), ("ro", "readonly")))}
        users["owner"] = accounts.user_actor(conn, accounts.find_user(conn, uin, None)["id"])
    assert run(rt) == {**ZERO, "opened": 1}
    with rt.engine.connect() as conn:
        sent = {(r.template, r.channel, r.recipient) for r in conn.execute(select(
            notification_outbox).where(notification_outbox.c.uin == uin))}
        seen = {login: [m["template"] for m in notifications.list_messages(
            conn, actor, uin)["items"]] for login, actor in users.items()}
    assert sent == {("arrears_dunning", channel, address) for channel, address in (
        ("email", "boss@example.cn"), ("sms", "13800000000"), ("email", "fin@example.cn"),
        ("sms", "13900000000"), ("email", "fin2@example.cn"), ("sms", "13900000001"))}
    assert seen == {"owner": ["arrears_dunning"], "fin": ["arrears_dunning"],
                    "fin2": ["arrears_dunning"], "adm": [], "ro": []}


@pytest.mark.spec("ARR-3")
def test_destruction_after_isolation_and_a_new_case_later(owing):
    rt, uin, ids = owing
    cvm, cdb = ids["cvm"], ids["cdb"]
    began = rt.clock.now()
    run(rt)
    advance(rt, 2 * H)
    assert run(rt) == {**ZERO, "stopped": 1}  # the stop warning's hour was not run: skipped
    rt.clock.set(began + 2 * H + 6 * D)
    assert run(rt)["destroy_warning"] == 1
    rt.clock.set(began + 2 * H + 7 * D)
    assert run(rt) == {**ZERO, "destroyed": 1}
    gone = state_of(rt, uin, cvm)
    assert gone["state"] == "recycled" and gone["released_at"] is not None
    assert templates(rt, uin)[-1] == "resources_destroyed"
    assert run(rt) == ZERO
    # the cdb follows its own (default) policy: 15 days of protection, then 15 of isolation
    rt.clock.set(began + 15 * D)
    assert run(rt) == {**ZERO, "stopped": 1}
    assert state_of(rt, uin, cdb)["state"] == "stopped"
    # repaying restarts only what is still there
    add_cash(rt, uin, 1_00)
    assert run(rt) == {**ZERO, "closed": 1, "restarted": 1}
    assert state_of(rt, uin, cdb)["state"] == "running"
    assert state_of(rt, uin, cvm)["state"] == "recycled"
    # falling into arrears again opens a new case with a new dunning notice
    available = balance(rt, uin).available
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, available + 50, key="usage-2",
                    postpaid=True,
                    revenue_account_id=funds.platform_account(conn, rt.clock, "revenue"))
    assert run(rt) == {**ZERO, "opened": 1}
    with rt.engine.connect() as conn:
        cases = arrears.list_cases(conn, SYSTEM, uin)
    assert [c["state"] for c in cases] == ["closed", "open"]
    assert templates(rt, uin).count("arrears_dunning") == 2


@pytest.mark.spec("ARR-3")
def test_escalation_runs_as_an_hourly_job(owing):
    from feecenter.arrears.tables import account_events
    from feecenter.jobs.loader import load_all
    from feecenter.jobs.runner import run_until

    rt, uin, ids = owing
    assert "arrears.escalate" in load_all()
    run_until(rt.engine, rt.clock, rt.clock.now() + 3 * H)
    assert state_of(rt, uin, ids["cvm"])["state"] == "stopped"
    with rt.engine.connect() as conn:
        kinds = [r.kind for r in conn.execute(select(account_events.c.kind)
                                              .where(account_events.c.uin == uin))]
    assert kinds[:1] == ["dunning"] and "stopped" in kinds


# ---------------------------------------------------------------- REST

@pytest.mark.spec("ARR-3")
def test_cases_and_events_over_rest(live_server):
    from feecenter.clock import FixedClock, SystemClock
    from tests.test_rest_api import customer_client

    rt, address = live_server
    sim = FixedClock(SystemClock().now() - 3 * H)  # the arrears began three hours ago
    scenario = type(rt)(engine=rt.engine, clock=sim, settings=rt.settings)
    _, uin, _ = make_owing(scenario)
    arrears.escalate(rt.engine, sim)
    advance(scenario, 2 * H)
    arrears.escalate(rt.engine, sim)
    client = customer_client(rt, address, uin)
    [case] = client.get(f"/api/v1/accounts/{uin}/arrears/cases")["items"]
    assert (case["state"], case["arrears_at_open"]) == ("open", "1.00")
    kinds = [e["kind"] for e in client.get(f"/api/v1/accounts/{uin}/arrears/events",
                                           f"case_id={case['id']}")["items"]]
    assert kinds[0] == "dunning" and "stopped" in kinds
    other = new_account(rt, name="outsider")
    outsider = customer_client(rt, address, other)
    with pytest.raises(Exception) as refused:
        outsider.get(f"/api/v1/accounts/{uin}/arrears/events")
    assert getattr(refused.value, "status", None) == 403


@pytest.mark.spec("ARR-3")
def test_the_next_step_is_what_the_escalation_will_take_and_when():
    p = COMPUTE_POLICY
    assert rules.next_step(T0, T0, p, "running", {}) == ("stopped", T0 + 2 * H)
    assert rules.next_step(T0, T0 + D, p, "stopped", {"stopped": T0 + 2 * H}) == (
        "destroyed", T0 + 2 * H + 7 * D)
    late = T0 + 30 * D  # not warned yet: never sooner than a full warning from now
    assert rules.next_step(T0, late, p, "stopped", {"stopped": late}) == (
        "destroyed", late + p.destroy_warning)
    warned = {"stopped": late, "destroy_warning": late}
    assert rules.next_step(T0, late + H, p, "stopped", warned) == ("destroyed", late + D)
    assert rules.next_step(T0, late, p, "recycled", {}) is None
    assert rules.next_step(T0, late, p, "running", {"stopped": T0 + 2 * H}) is None  # restarted


@pytest.mark.spec("ARR-3")
def test_the_outlook_lists_each_resources_next_step_of_the_open_case(owing):
    rt, uin, ids = owing
    began = rt.clock.now()
    with rt.engine.connect() as conn:
        assert arrears.outlook(conn, rt.clock, SYSTEM, uin) == []  # no case opened yet
    run(rt)
    with rt.engine.connect() as conn:
        steps = {s["resource_id"]: (s["next"], s["at"])
                 for s in arrears.outlook(conn, rt.clock, SYSTEM, uin)}
    assert steps == {ids["cvm"]: ("stopped", began + 2 * H), ids["cdb"]: ("stopped", began + 15 * D)}
    advance(rt, 2 * H)
    run(rt)
    with rt.engine.connect() as conn:
        steps = {s["resource_id"]: (s["next"], s["at"])
                 for s in arrears.outlook(conn, rt.clock, SYSTEM, uin)}
    assert steps[ids["cvm"]] == ("destroyed", began + 2 * H + 7 * D)
    with rt.engine.connect() as conn:
        reader = accounts.user_actor(conn, accounts.add_user(conn, rt.clock, OPS, uin, "r1",
                                                             "readonly"))
        with pytest.raises(PermissionDenied):
            arrears.outlook(conn, rt.clock, reader, uin)
