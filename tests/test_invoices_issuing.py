"""Issuing invoices (INV-5): applied -> issuing -> issued with one number each, a crash
between the steps or inside the issue leaves nothing half done, red invoices take the
same path, late ones are flagged, and automatic issuing (自动开票) applies daily."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import insert, select, update

from feecenter.accounts.permissions import SYSTEM
from feecenter.accounts.tables import customers
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.invoices import invoiceable, issuing, jobs, rules, service, titles
from feecenter.invoices.tables import invoice_counters, invoice_lines, invoices
from feecenter.jobs.loader import JOB_MODULES, load_all
from feecenter.jobs.registry import DAILY, HOURLY
from feecenter.orders import service as orders
from tests.helpers import OPS, load_sample_catalog
from tests.invoice_seed import (CVM_MONTH, USCC_B, USCC_C, apply, cash_purchase, enterprise,
                                enterprise_title)


@pytest.fixture
def shop(rt):
    load_sample_catalog(rt)
    return rt


def _ready(rt, name="acme", **kw) -> int:
    uin = enterprise(rt, name, **kw)
    enterprise_title(rt, uin, **({"company": kw["company"], "code": kw["code"]} if kw else {}))
    cash_purchase(rt, uin)
    return uin


def _invoice(rt, invoice_id) -> dict:
    with rt.engine.connect() as conn:
        return dict(conn.execute(select(invoices).where(invoices.c.id == invoice_id))
                    .mappings().one())


def _counters(rt) -> dict:
    with rt.engine.connect() as conn:
        return {(r.entity, r.year): r.next_value for r in conn.execute(select(invoice_counters))}


@pytest.mark.spec("INV-5", "INV-8")
def test_issue_pending_numbers_each_invoice_once(shop):
    uin = _ready(shop)
    (first,) = apply(shop, uin, amount="100.00")["invoices"]
    (second,) = apply(shop, uin, key="k2")["invoices"]
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings) == {"issued": 2,
                                                                             "flagged": 0}
    one, two = _invoice(shop, first["id"]), _invoice(shop, second["id"])
    assert (one["state"], two["state"]) == ("issued", "issued")
    assert one["invoice_number"] == rules.invoice_number(2026, "11", 1, 1)
    assert two["invoice_number"] == rules.invoice_number(2026, "11", 1, 2)
    assert one["invoice_code"] == "112600111000"
    assert one["check_code"] == rules.check_code(shop.settings.master_key, one["invoice_number"])
    assert one["issued_at"] == db_time(shop.clock.now()) and one["issuing_at"] is not None
    assert _counters(shop) == {("*", 0): 2, ("cn-cloud", 0): 1, ("cn-cloud", 2026): 3}
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings) == {"issued": 0,
                                                                             "flagged": 0}
    assert issuing.issue_one(shop.engine, shop.clock, shop.settings, first["id"]) is False
    with shop.engine.connect() as conn:
        view = service.get_invoice(conn, SYSTEM, uin, first["id"])
    assert (view["state"], view["invoice_number"], view["check_code"]) == (
        "issued", one["invoice_number"], one["check_code"])


@pytest.mark.spec("INV-5")
def test_the_invoices_of_an_application_are_issued_right_after_it(shop):
    uin = _ready(shop)
    other = apply(shop, uin, amount="8.00", key="left")["invoices"][0]["id"]
    made = apply(shop, uin, key="now")
    ids = [i["id"] for i in made["invoices"]]
    assert issuing.issue_invoices(shop.engine, shop.clock, shop.settings, ids) == 1
    assert issuing.issue_invoices(shop.engine, shop.clock, shop.settings, ids) == 0
    assert _invoice(shop, ids[0])["state"] == "issued"
    assert _invoice(shop, other)["state"] == "applied"  # left to the sweeper


@pytest.mark.spec("INV-5")
def test_each_selling_entity_has_its_own_block_of_numbers(shop):
    uin = _ready(shop)
    (ssl,) = cash_purchase(shop, uin, ("ssl", "OV.single", 12, "mainland"), top_up=0)
    with transaction(shop.engine) as conn:
        orders.deliver(conn, shop.clock, OPS, ssl)
    made = apply(shop, uin)["invoices"]
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings)["issued"] == 2
    numbers = {i["entity"]: _invoice(shop, i["id"])["invoice_number"] for i in made}
    assert numbers == {"cn-cloud": rules.invoice_number(2026, "11", 1, 1),
                       "cn-software": rules.invoice_number(2026, "44", 2, 1)}


@pytest.mark.spec("INV-5")
def test_a_crash_between_claim_and_issue_is_finished_by_the_rerun(shop, monkeypatch):
    uin = _ready(shop)
    (made,) = apply(shop, uin)["invoices"]

    def crash(*args, **kwargs):
        raise RuntimeError("worker died after the claim")

    monkeypatch.setattr(issuing, "finish", crash)
    with pytest.raises(RuntimeError):
        issuing.issue_pending(shop.engine, shop.clock, shop.settings)
    stuck = _invoice(shop, made["id"])
    assert (stuck["state"], stuck["invoice_number"]) == ("issuing", None)
    monkeypatch.undo()
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings)["issued"] == 1
    done = _invoice(shop, made["id"])
    assert (done["state"], done["invoice_number"]) == ("issued",
                                                      rules.invoice_number(2026, "11", 1, 1))
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings)["issued"] == 0
    assert _counters(shop)[("cn-cloud", 2026)] == 2


@pytest.mark.spec("INV-5")
def test_a_crash_inside_the_issue_rolls_the_number_back(shop, monkeypatch):
    uin = _ready(shop)
    (made,) = apply(shop, uin)["invoices"]
    real = rules.check_code

    def crash(*args, **kwargs):
        raise RuntimeError("crash after the counter moved")

    monkeypatch.setattr(rules, "check_code", crash)
    with pytest.raises(RuntimeError):
        issuing.issue_one(shop.engine, shop.clock, shop.settings, made["id"])
    assert _invoice(shop, made["id"])["state"] == "issuing"
    assert ("cn-cloud", 2026) not in _counters(shop)  # rolled back with the issue
    monkeypatch.setattr(rules, "check_code", real)
    assert issuing.issue_one(shop.engine, shop.clock, shop.settings, made["id"]) is True
    assert _invoice(shop, made["id"])["invoice_number"] == rules.invoice_number(2026, "11", 1, 1)
    assert _counters(shop)[("cn-cloud", 2026)] == 2


@pytest.mark.spec("INV-5", "INV-6")
def test_red_invoices_are_issued_by_the_same_path(shop):
    uin = _ready(shop)
    (blue,) = apply(shop, uin)["invoices"]
    issuing.issue_pending(shop.engine, shop.clock, shop.settings)
    original = _invoice(shop, blue["id"])
    red_fields = {k: original[k] for k in ("uin", "entity", "title_kind", "title", "tax_id",
                                           "address", "phone", "bank", "bank_account", "email")}
    with transaction(shop.engine) as conn:  # as the reversal's release makes it
        red_id = conn.execute(insert(invoices).values(
            kind="red", state="applied", amount=-original["amount"],
            net_amount=-original["net_amount"], tax_amount=-original["tax_amount"],
            original_id=original["id"], applied_at=db_time(shop.clock.now()), **red_fields)
            .returning(invoices.c.id)).scalar_one()
        conn.execute(insert(invoice_lines).values(
            invoice_id=red_id, uin=uin, entity="cn-cloud", amount=-CVM_MONTH,
            **{k: v for k, v in rules.line_of("cloud_service", -CVM_MONTH).items()
               if k != "amount"}))
        conn.execute(update(invoices).where(invoices.c.id == original["id"])
                     .values(state="reversed"))
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings)["issued"] == 1
    red = _invoice(shop, red_id)
    assert red["state"] == "issued"
    assert red["invoice_number"] == rules.invoice_number(2026, "11", 1, 2)
    assert red["invoice_code"] == "112600113000"  # kind digit 3: red
    assert _invoice(shop, blue["id"])["state"] == "reversed"
    with shop.engine.connect() as conn:
        assert invoiceable.invoiceable(conn, SYSTEM, uin)["amount"] == CVM_MONTH


@pytest.mark.spec("INV-5")
def test_invoices_not_issued_in_30_minutes_are_flagged(shop):
    uin = _ready(shop)
    (made,) = apply(shop, uin)["invoices"]
    shop.clock.advance(minutes=29)
    with transaction(shop.engine) as conn:
        assert issuing.flag_late(conn, shop.clock) == 0
    shop.clock.advance(minutes=2)
    assert issuing.issue_pending(shop.engine, shop.clock, shop.settings) == {"issued": 1,
                                                                             "flagged": 1}
    late = _invoice(shop, made["id"])
    assert late["flagged_at"] is not None and late["state"] == "issued"
    with shop.engine.connect() as conn:
        assert service.get_invoice(conn, SYSTEM, uin, made["id"])["flagged"] is True
        assert service.ops_invoices(conn, shop.clock, OPS, flagged=True)["total"] == 1


def _auto(rt, uin, kind="ordinary"):
    with transaction(rt.engine) as conn:
        titles.set_settings(conn, rt.clock, SYSTEM, uin, True, kind)


@pytest.mark.spec("INV-5")
def test_automatic_issuing_applies_daily_for_the_whole_available_amount(shop):
    uin = _ready(shop)  # 178.00 available: above the 100.00 minimum
    small = _ready(shop, "small", company="示例乙公司", code=USCC_B)
    quiet = _ready(shop, "quiet", company="示例丙公司", code=USCC_C)  # auto issuing off
    _auto(shop, uin)
    _auto(shop, small, "special")
    apply(shop, small, amount="100.00")  # 78.00 left: below the minimum
    day = date(2026, 3, 2)
    counts = jobs.auto_issue_day(shop.engine, shop.clock, day, shop.settings)
    assert counts == {"applied": 1, "skipped": 0, "below_minimum": 1, "issued": 1}
    with shop.engine.connect() as conn:
        (auto,) = service.list_invoices(conn, SYSTEM, uin)["items"]
    assert (auto["amount"], auto["state"]) == (CVM_MONTH, "issued")
    again = jobs.auto_issue_day(shop.engine, shop.clock, day, shop.settings)
    assert again["applied"] == 0
    month_end = jobs.auto_issue_day(shop.engine, shop.clock, date(2026, 3, 31), shop.settings)
    assert month_end["applied"] == 1  # the month's last day: any positive amount
    with shop.engine.connect() as conn:
        kinds = [i["kind"] for i in service.list_invoices(conn, SYSTEM, small)["items"]]
    assert sorted(kinds) == ["ordinary", "special"]
    with shop.engine.connect() as conn:
        assert service.list_invoices(conn, SYSTEM, quiet)["total"] == 0


@pytest.mark.spec("INV-5")
def test_automatic_issuing_skips_accounts_that_cannot_apply(shop):
    uin = _ready(shop)
    _auto(shop, uin)
    with transaction(shop.engine) as conn:  # the verified name changed since the title
        conn.execute(update(customers).where(customers.c.uin == uin)
                     .values(entity_name="示例甲公司（新）"))
    counts = jobs.auto_issue_day(shop.engine, shop.clock, date(2026, 3, 2), shop.settings)
    assert counts == {"applied": 0, "skipped": 1, "below_minimum": 0, "issued": 0}


def test_the_jobs_are_registered():
    assert "feecenter.invoices.jobs" in JOB_MODULES
    registry = load_all()
    assert registry.get("invoices.issue").cadence == HOURLY
    assert registry.get("invoices.auto_issue").cadence == DAILY
    assert jobs.month_end(date(2026, 2, 28)) and not jobs.month_end(date(2026, 3, 30))
