"""The catalog (ORD-5): loading price lists, versions, tiers, discounts, contract and
fixed prices, and the quote every other package prices with."""

import json
from datetime import datetime

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.audit.tables import audit_log
from feecenter.catalog import rules
from feecenter.catalog import service as catalog
from feecenter.catalog.loader import parse_catalog
from feecenter.catalog.rules import QTY_SCALE, Tier, Version
from feecenter.catalog.tables import (account_discounts, billing_items, catalog_loads, price_lists,
                                      price_tiers, products, regions)
from feecenter.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.money import RATE_SCALE
from tests.helpers import OPS, new_account

YUAN = RATE_SCALE  # 1e-8 yuan per yuan
UNIT = QTY_SCALE   # 1e-6 units per unit


def sh(text: str) -> datetime:
    """A Shanghai wall-clock time as aware UTC."""
    from feecenter.clock import parse_business_time

    return parse_business_time(text, "t")


def load(rt, text, source="test.yaml", actor=OPS):
    with rt.engine.begin() as conn:
        return catalog.load_catalog(conn, rt.clock, actor, text, source)


def load_sample(rt):
    return load(rt, catalog.sample_catalog_text(), "sample_catalog.yaml")


def quote(rt, uin, product, item, region, pay_mode, qty_units, at=None, months=None, **kw):
    with rt.engine.connect() as conn:
        return catalog.quote(conn, uin, product, item, region, pay_mode, qty_units,
                             at or rt.clock.now(), months, **kw)


def counts(rt):
    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in (products, regions, price_lists, price_tiers, catalog_loads))


HEAD = """\
entities:
  - {code: cn-cloud, name_zh: 示例云, name_en: Example Cloud}
product_classes:
  - {code: compute, name_zh: 计算, name_en: Compute, operable_balance: "100.00"}
regions:
  - {code: ap-guangzhou, name_zh: 广州, name_en: Guangzhou}
  - {code: ap-shanghai, name_zh: 上海, name_en: Shanghai}
products:
  - code: vm
    name_zh: 云服务器
    name_en: Virtual machine
    entity: cn-cloud
    tax_category: cloud_service
    pay_modes: [prepaid, postpaid]
    class: compute
    postpaid_cycle: hour
    items:
      - {code: std, name_zh: 标准型, name_en: Standard, unit_zh: 台, unit_en: instance, spec: true, postpaid_period: hour}
      - {code: traffic, name_zh: 流量, name_en: Traffic, unit_zh: GB, unit_en: GB}
    prices:
"""


def vm_catalog(*price_lines: str) -> str:
    return HEAD + "".join(f"      - {line}\n" for line in price_lines)


V1 = '{item: std, pay_mode: prepaid, regions: [ap-guangzhou], from: 2026-01-01, price: "100.00"}'
V2 = '{item: std, pay_mode: prepaid, regions: [ap-guangzhou], from: 2026-07-01, price: "110.00"}'


# ---------------------------------------------------------------- pure rules

@pytest.mark.spec("ORD-5", "SET-2")
def test_tiers_are_graduated_each_part_at_its_tiers_price():
    tiers = (Tier(0, 2048 * UNIT, 21_000_000), Tier(2048 * UNIT, 10240 * UNIT, 20_000_000),
             Tier(10240 * UNIT, None, 18_000_000))
    priced = rules.list_price_amount(tiers, 3000 * UNIT)
    # 2048 GB at 0.21 + 952 GB at 0.20 = 430.08 + 190.40 (volume tiers would give 600.00)
    assert priced.list_amount == priced.amount == 62_048 * YUAN // 100
    assert [(c.unit_price, c.quantity) for c in priced.charges] == [
        (21_000_000, 2048 * UNIT), (20_000_000, 952 * UNIT)]
    # the month's earlier 2000 GB: the next 100 GB start in the first tier and cross into the second
    later = rules.list_price_amount(tiers, 100 * UNIT, before=2000 * UNIT)
    assert later.amount == 2_048 * YUAN // 100  # 48 x 0.21 + 52 x 0.20 = 20.48
    assert rules.price_at(tiers, 2000 * UNIT) == 21_000_000
    assert rules.list_price_amount(tiers, 0).amount == 0


@pytest.mark.spec("SET-2")
def test_one_rounding_step_half_up_at_eight_decimals():
    # 1.5 hours at 0.33333333 = 0.499999995 -> 0.50000000
    assert rules.list_price_amount(rules.flat(33_333_333), 1_500_000).amount == 50_000_000
    # 0.5 unit at 1e-8 yuan with 90%: exact 0.45e-8 -> 0 (rounding the list amount
    # first, 1e-8, and discounting it again would give 1e-8: two roundings)
    priced = rules.list_price_amount(rules.flat(1), 500_000, discount_bp=9000)
    assert (priced.list_amount, priced.amount) == (1, 0)
    assert rules.div_half_up(5, 10) == 1 and rules.div_half_up(4, 10) == 0
    assert rules.div_half_up(-5, 10) == -1
    assert rules.contract_amount(15_000_000_000, 2 * UNIT, 3) == 900 * YUAN
    assert rules.fixed_amount(999 * YUAN, 12) == 11_988 * YUAN
    assert rules.parse_quantity("1.5") == 1_500_000 and rules.format_quantity(2_048_000_000) == "2048"
    for bad in ("-1", "1.0000001", "１", "", "1e3"):
        with pytest.raises(InvalidInput):
            rules.parse_quantity(bad)


def test_tier_tables_must_cover_every_quantity_once():
    assert rules.tier_problems((Tier(0, 10, 1), Tier(10, None, 1))) == []
    assert rules.tier_problems((Tier(0, 10, 1),))            # bounded last tier
    assert rules.tier_problems((Tier(0, None, 1), Tier(10, None, 1)))
    assert rules.tier_problems((Tier(5, None, 1),))          # does not start at 0
    assert rules.tier_problems((Tier(0, None, -1),))


@pytest.mark.spec("ORD-5")
def test_version_planning_closes_open_versions_and_refuses_overlaps():
    jan, mar, may, jul = (datetime(2026, m, 1) for m in (1, 3, 5, 7))
    now = datetime(2026, 3, 2)
    price = rules.flat(100)
    stored = [Version(jan, None, price, id=1)]
    plan = rules.plan_versions(stored, [Version(jul, None, rules.flat(110), ref="new")], now)
    assert (plan.closes, [v.start for v in plan.new], plan.problems) == ({1: jul}, [jul], [])
    assert rules.plan_versions(stored, [Version(jan, None, price)], now).unchanged == 1
    changed = rules.plan_versions(stored, [Version(jan, None, rules.flat(90), ref="x")], now)
    assert changed.problems and "history" in changed.problems[0].en
    past = rules.plan_versions(stored, [Version(datetime(2026, 2, 1), None, price, ref="p")], now)
    assert past.problems and "past" in past.problems[0].en
    closed = [Version(jan, jul, price, id=1), Version(jul, None, price, id=2)]
    inside = rules.plan_versions(closed, [Version(mar, may, price, ref="in")], now)
    assert inside.problems and inside.problems[0].ref == "in"
    chained, problems = rules.chain_versions([Version(jan, may, price, ref="a"),
                                              Version(mar, None, price, ref="b")])
    assert [p.ref for p in problems] == ["a"]


# ---------------------------------------------------------------- loading

@pytest.mark.spec("ORD-5", "INV-4")
def test_sample_catalog_loads_once_and_again_changes_nothing(rt):
    first = load_sample(rt)
    assert first["changed"] and first["products"]["added"] == 7
    assert first["price_lists"]["added"] > 50
    before = counts(rt)
    again = load_sample(rt)
    assert not again["changed"] and again["load_id"] is None
    assert again["price_lists"] == {"added": 0, "closed": 0,
                                    "unchanged": first["price_lists"]["added"]}
    assert counts(rt) == before
    with rt.engine.connect() as conn:
        by_code = {p.code: p for p in catalog.list_products(conn)}
        assert set(by_code) == {"cvm", "cbs", "cos", "cdn", "cdb", "cospack", "ssl"}
        ssl, cvm = by_code["ssl"], by_code["cvm"]
        assert (ssl.tax_category, ssl.tax_rate_bp, ssl.tax_name, ssl.tax_code) == (
            "software", 1300, "软件*软件产品销售", "10603010101")
        assert (cvm.tax_rate_bp, cvm.tax_name, cvm.tax_code) == (600, "信息技术服务*云服务费", "3040205")
        assert ssl.entity != cvm.entity and ssl.pay_modes == ("prepaid",)
        assert ssl.prepaid_months == (12, 24, 36) and ssl.delivery_mode == "manual"
        assert by_code["cdb"].freeze_amount == 2000 and cvm.operable_balance == 10_000
        assert cvm.unpaid_order_days == 15 and cvm.postpaid_cycle == "hour"
        items = {i["code"]: i for i in catalog.list_items(conn, "cvm")}
        assert items["S5.MEDIUM4"]["spec"] and not items["traffic"]["spec"]
        assert {r["code"] for r in catalog.list_regions(conn)} >= {
            "ap-guangzhou", "ap-shanghai", "ap-beijing"}
    # realistic figures: a year of an OV certificate, a quarter of two S5.MEDIUM4
    cert = quote(rt, 0, "ssl", "OV.single", "mainland", "prepaid", UNIT, months=12)
    assert cert.amount == 3_960 * YUAN and cert.tax_category == "software"
    vms = quote(rt, 0, "cvm", "S5.MEDIUM4", "ap-beijing", "prepaid", 2 * UNIT, months=3)
    assert vms.amount == 1_068 * YUAN and vms.unit_price == 178 * YUAN
    cdn = quote(rt, 0, "cdn", "traffic", "mainland", "postpaid", 3000 * UNIT)
    assert cdn.amount == 62_048 * YUAN // 100 and len(cdn.tiers) == 2


@pytest.mark.spec("ORD-5")
def test_loader_reports_every_problem_with_its_line_and_writes_nothing(rt):
    bad = (
        "products:\n"                                                             # 1
        "  - code: vm\n"                                                          # 2
        "    name_zh: 云服务器\n"                                                  # 3
        "    name_en: VM\n"                                                       # 4
        "    entity: nowhere\n"                                                   # 5
        "    tax_category: cloud\n"                                               # 6
        "    pay_modes: [prepaid]\n"                                              # 7
        "    class: compute\n"                                                    # 8
        "    colour: blue\n"                                                      # 9
        "    items:\n"                                                            # 10
        "      - {code: std, name_zh: 标准型, name_en: Std, unit_zh: 台, unit_en: instance, spec: true}\n"
        "    prices:\n"                                                           # 12
        '      - {item: std, pay_mode: prepaid, regions: [gz], from: 2026-01-01, price: "1.123456789"}\n'
        '      - {item: big, pay_mode: postpaid, regions: [gz], from: 2026-13-01, price: "1.00"}\n'
    )
    with pytest.raises(InvalidInput) as err:
        load(rt, bad, "bad.yaml")
    lines = err.value.details["errors"]
    assert err.value.field == "catalog"
    prefixes = [line.split(": ", 2)[0] + ": " + line.split(": ", 2)[1] for line in lines]
    assert prefixes == [
        "bad.yaml:5: products[vm].entity",
        "bad.yaml:6: products[vm].tax_category",
        "bad.yaml:8: products[vm].class",
        "bad.yaml:9: products[vm].colour",
        "bad.yaml:13: products[vm].prices[0].price",
        "bad.yaml:13: products[vm].prices[0].regions[gz]",
        "bad.yaml:14: products[vm].prices[1].item",
        "bad.yaml:14: products[vm].prices[1].pay_mode",
        "bad.yaml:14: products[vm].prices[1].from",
        "bad.yaml:14: products[vm].prices[1].regions[gz]",
    ]
    assert "undefined selling entity: nowhere" in lines[0] and "未定义的签约主体" in lines[0]
    assert "至多" in lines[4] or "最多八位小数" in lines[4]
    assert " / " in lines[0]  # Chinese / English
    assert counts(rt) == (0, 0, 0, 0, 0)
    with pytest.raises(InvalidInput) as err:
        load(rt, "products:\n  - code: [unclosed\n", "syntax.yaml")
    assert err.value.details["errors"][0].startswith("syntax.yaml:3: yaml: ")


@pytest.mark.spec("ORD-5")
def test_a_file_with_one_bad_part_writes_nothing_at_all(rt):
    load(rt, vm_catalog(V1))
    before = counts(rt)
    # a new region and a new product would be fine, but the stored price cannot change
    changed = vm_catalog(V1.replace('"100.00"', '"95.00"')).replace(
        "products:\n", "  - {code: ap-beijing, name_zh: 北京, name_en: Beijing}\nproducts:\n")
    with pytest.raises(InvalidInput) as err:
        load(rt, changed, "changed.yaml")
    [line] = err.value.details["errors"]
    assert line.startswith("changed.yaml:22: products[vm].prices[0].regions[ap-guangzhou]: ")
    assert "history cannot change" in line
    assert counts(rt) == before
    with rt.engine.connect() as conn:
        assert "ap-beijing" not in {r["code"] for r in catalog.list_regions(conn)}


@pytest.mark.spec("INV-4")
def test_a_products_entity_and_tax_category_never_change(rt):
    load(rt, vm_catalog(V1))
    before = counts(rt)
    for old, new, field in (("entity: cn-cloud", "entity: cn-software", "entity"),
                            ("tax_category: cloud_service", "tax_category: software",
                             "tax_category")):
        moved = vm_catalog(V1).replace(f"    {old}\n", f"    {new}\n")
        assert moved != vm_catalog(V1)
        if field == "entity":  # the other entity must exist for the file to parse
            moved = moved.replace("entities:\n", "entities:\n  - {code: cn-software, "
                                  "name_zh: 软件公司, name_en: Software Co}\n")
        with pytest.raises(InvalidInput) as err:
            load(rt, moved, "moved.yaml")
        assert any(f"products[vm].{field}: " in line and "cannot change" in line
                   for line in err.value.details["errors"]), err.value.details
        assert counts(rt) == before


@pytest.mark.spec("ORD-5")
def test_price_change_mid_year_applies_from_its_start_and_history_stays(rt):
    uin = new_account(rt)
    load(rt, vm_catalog(V1), "2026-01.yaml")
    assert quote(rt, uin, "vm", "std", "ap-guangzhou", "prepaid", UNIT, months=1).amount == 100 * YUAN
    # the newer file only announces the new price; the open-ended old one ends at its start
    summary = load(rt, vm_catalog(V2), "2026-07.yaml")
    assert summary["price_lists"] == {"added": 1, "closed": 1, "unchanged": 0}
    old = quote(rt, uin, "vm", "std", "ap-guangzhou", "prepaid", UNIT,
                at=sh("2026-06-30 23:59:59"), months=1)
    new = quote(rt, uin, "vm", "std", "ap-guangzhou", "prepaid", UNIT,
                at=sh("2026-07-01 00:00:00"), months=1)
    assert (old.amount, new.amount) == (100 * YUAN, 110 * YUAN)
    assert old.price_list_id != new.price_list_id
    with rt.engine.connect() as conn:
        history = catalog.price_lists_of(conn, "vm", item="std", pay_mode="prepaid")
        current = catalog.price_lists_of(conn, "vm", at=rt.clock.now())
    assert [(v["source"], v["tiers"][0]["unit_price"]) for v in history] == [
        ("2026-01.yaml", 100 * YUAN), ("2026-07.yaml", 110 * YUAN)]
    assert history[0]["ends_at"] == history[1]["starts_at"] == datetime(2026, 6, 30, 16, 0)
    assert [v["id"] for v in current] == [old.price_list_id]
    # a file with the whole history is the same thing: nothing changes
    assert not load(rt, vm_catalog(V1, V2), "full.yaml")["changed"]
    with pytest.raises(InvalidInput) as err:  # no price before the first version
        quote(rt, uin, "vm", "std", "ap-guangzhou", "prepaid", UNIT, at=sh("2025-12-31"),
              months=1)
    assert err.value.field == "at"


@pytest.mark.spec("ORD-5")
def test_overlapping_price_list_dates_are_refused(rt):
    overlapping = '{item: std, pay_mode: prepaid, regions: [ap-guangzhou], from: 2026-01-01, until: 2026-08-01, price: "100.00"}'
    with pytest.raises(InvalidInput) as err:
        load(rt, vm_catalog(overlapping, V2), "inner.yaml")
    [line] = err.value.details["errors"]
    assert line.startswith("inner.yaml:21: ") and "overlaps" in line
    load(rt, vm_catalog(V1))
    before = counts(rt)
    retro = '{item: std, pay_mode: prepaid, regions: [ap-guangzhou], from: 2026-03-01, price: "90.00"}'
    with pytest.raises(InvalidInput) as err:  # would re-price January's open version from 1 March
        load(rt, vm_catalog(retro), "retro.yaml")
    assert "in the past" in err.value.details["errors"][0]
    assert counts(rt) == before
    load(rt, vm_catalog(V2))
    before = counts(rt)
    inside = '{item: std, pay_mode: prepaid, regions: [ap-guangzhou], from: 2026-04-01, until: 2026-05-01, price: "90.00"}'
    with pytest.raises(InvalidInput) as err:
        load(rt, vm_catalog(inside), "inside.yaml")
    assert "overlaps the existing version [2026-01-01 00:00:00, 2026-07-01 00:00:00)" in \
        err.value.details["errors"][0]
    assert counts(rt) == before


# ---------------------------------------------------------------- quoting

@pytest.mark.spec("ORD-5")
@pytest.mark.parametrize("args, error, field", [
    (("nope", "S5.MEDIUM4", "ap-guangzhou", "prepaid", 1), NotFound, "product"),
    (("cvm", "S5.MEDIUM4", "ap-mars", "prepaid", 1), NotFound, "region"),
    (("cvm", "S9.HUGE", "ap-guangzhou", "prepaid", 1), NotFound, "item"),
    (("cvm", "S5.MEDIUM4", "ap-guangzhou", "monthly", 1), InvalidInput, "pay_mode"),
    (("cos", "storage_std", "ap-guangzhou", "prepaid", 1), InvalidInput, "pay_mode"),
    (("ssl", "OV.single", "mainland", "prepaid", 121), InvalidInput, "months"),
    (("cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", None), InvalidInput, "months"),
    (("cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", 0), InvalidInput, "months"),
    (("cvm", "S5.MEDIUM4", "ap-guangzhou", "postpaid", 1), InvalidInput, "months"),
    (("cdn", "traffic", "ap-guangzhou", "postpaid", None), NotFound, "region"),
])
def test_bad_quotes_name_the_field(rt, args, error, field):
    load_sample(rt)
    product, item, region, pay_mode, months = args
    with pytest.raises(error) as err:
        quote(rt, 0, product, item, region, pay_mode, UNIT, months=months)
    assert err.value.field == field and err.value.message_zh and err.value.message_en


def test_quote_refuses_negative_quantities_and_naive_times(rt):
    load_sample(rt)
    # any whole month prices (prorating, unified expiry), but ssl is ordered by the year
    month = quote(rt, 0, "ssl", "OV.single", "mainland", "prepaid", UNIT, months=1)
    assert month.amount == 330 * YUAN
    with rt.engine.connect() as conn:
        ssl = catalog.get_product(conn, "ssl")
    catalog.check_prepaid_months(ssl, 24)
    with pytest.raises(InvalidInput) as err:
        catalog.check_prepaid_months(ssl, 1)
    assert err.value.field == "months" and "12, 24, 36" in err.value.message_en
    with pytest.raises(InvalidInput) as err:
        quote(rt, 0, "cvm", "traffic", "ap-guangzhou", "postpaid", -1)
    assert err.value.field == "quantity"
    with pytest.raises(InvalidInput) as err:
        quote(rt, 0, "cvm", "traffic", "ap-guangzhou", "postpaid", 1, at=datetime(2026, 4, 1))
    assert err.value.field == "at"


@pytest.mark.spec("ORD-5", "SET-2")
def test_account_discount_applies_to_list_prices_product_specific_first(rt):
    load_sample(rt)
    uin, other = new_account(rt, "discounted"), new_account(rt, "plain")
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 8500, note="年框协议")
        catalog.set_discount(conn, rt.clock, OPS, uin, 9000, product="cdn")
    vm = quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", UNIT, months=1)
    assert (vm.price_kind, vm.list_amount, vm.discount_bp, vm.amount) == (
        "list", 178 * YUAN, 8500, 15_130 * YUAN // 100)
    hour = quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "postpaid", 1_500_000)
    assert hour.amount == rules.div_half_up(1_500_000 * 50_000_000 * 8500, UNIT * 10_000)
    cdn = quote(rt, uin, "cdn", "traffic", "mainland", "postpaid", 3000 * UNIT)
    assert (cdn.discount_bp, cdn.amount) == (9000, 55_843_200_000)  # 620.48 x 90% = 558.432
    assert quote(rt, other, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", UNIT,
                 months=1).discount_bp == 10_000
    # a later discount ends the open one at its start; history stays
    rt.clock.advance(days=10)
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 8000)
        pricing = catalog.account_pricing(conn, SYSTEM, uin)
        audited = conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "set_discount", audit_log.c.uin == uin)).scalar_one()
    assert audited == 3
    all_products = [d for d in pricing["discounts"] if d["product_code"] is None]
    assert [d["discount_bp"] for d in all_products] == [8000, 8500]
    assert all_products[1]["ends_at"] == all_products[0]["starts_at"]
    assert quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", UNIT,
                 months=1).discount_bp == 8000
    assert quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", UNIT,
                 at=rt.clock.now().replace(day=3), months=1).discount_bp == 8500


def test_bad_discounts_are_refused_and_write_nothing(rt):
    load_sample(rt)
    uin = new_account(rt)
    for kwargs, field in (({"discount_bp": 0}, "discount_bp"),
                          ({"discount_bp": 10_001}, "discount_bp"),
                          ({"discount_bp": 9000, "product": "nope"}, "product"),
                          ({"discount_bp": 9000, "start": sh("2026-01-01")}, "start"),
                          ({"discount_bp": 9000, "start": sh("2026-05-01"),
                            "end": sh("2026-04-01")}, "end")):
        bp = kwargs.pop("discount_bp")
        with rt.engine.begin() as conn, pytest.raises((InvalidInput, NotFound)) as err:
            catalog.set_discount(conn, rt.clock, OPS, uin, bp, **kwargs)
        assert err.value.field == field
    with rt.engine.begin() as conn, pytest.raises(NotFound) as err:
        catalog.set_discount(conn, rt.clock, OPS, 999, 9000)
    assert err.value.field == "uin"
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 9000, start=sh("2026-05-01"),
                             end=sh("2026-06-01"))
    with rt.engine.begin() as conn, pytest.raises(Conflict):
        catalog.set_discount(conn, rt.clock, OPS, uin, 8000, start=sh("2026-05-15"))
    with rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(account_discounts)).scalar_one() == 1


@pytest.mark.spec("ORD-5", "SET-2")
def test_contract_and_fixed_prices_replace_list_times_discount(rt):
    load_sample(rt)
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        catalog.set_discount(conn, rt.clock, OPS, uin, 8000)
        contract = catalog.set_contract_price(conn, rt.clock, OPS, uin, product="cvm",
                                              item="S5.MEDIUM4", pay_mode="prepaid",
                                              unit_price=150 * YUAN)
        catalog.set_contract_price(conn, rt.clock, OPS, uin, product="cvm", item="S5.MEDIUM4",
                                   pay_mode="prepaid", unit_price=140 * YUAN,
                                   region="ap-shanghai")
        fixed = catalog.set_fixed_price(conn, rt.clock, OPS, uin, product="cos",
                                        item="storage_std", pay_mode="postpaid",
                                        amount_per_month=999 * YUAN)
    gz = quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", 2 * UNIT, months=3)
    assert (gz.price_kind, gz.amount, gz.agreed_price, gz.account_price_id) == (
        "contract", 900 * YUAN, 150 * YUAN, contract["id"])
    # no discount on an agreed price; the list figures stay for reference (bills show "-", BIL-6)
    assert (gz.unit_price, gz.list_amount, gz.discount_bp) == (178 * YUAN, 1_068 * YUAN, 10_000)
    assert gz.price_list_id is not None
    sh_quote = quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-shanghai", "prepaid", UNIT, months=1)
    assert (sh_quote.price_kind, sh_quote.amount) == ("contract", 140 * YUAN)  # region first
    storage = quote(rt, uin, "cos", "storage_std", "ap-beijing", "postpaid", 123_456 * UNIT)
    assert (storage.price_kind, storage.amount, storage.account_price_id) == (
        "fixed", 999 * YUAN, fixed["id"])
    listed = quote(rt, uin, "cvm", "S5.LARGE8", "ap-guangzhou", "prepaid", UNIT, months=1)
    assert (listed.price_kind, listed.amount) == ("list", 356 * YUAN * 8 // 10)
    # the same setting again is no change; a new one ends the old from its start
    with rt.engine.begin() as conn:
        again = catalog.set_fixed_price(conn, rt.clock, OPS, uin, product="cos",
                                        item="storage_std", pay_mode="postpaid",
                                        amount_per_month=999 * YUAN)
        assert again["id"] == fixed["id"] and again["created"] is False
        ended = catalog.end_account_price(conn, rt.clock, OPS, uin, contract["id"])
    assert ended["ends_at"] == datetime(2026, 3, 2, 2, 0)
    assert quote(rt, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou", "prepaid", UNIT,
                 months=1).price_kind == "list"


def test_agreed_prices_validate_their_fields(rt):
    load_sample(rt)
    uin = new_account(rt)
    base = {"product": "cvm", "item": "S5.MEDIUM4", "pay_mode": "prepaid", "unit_price": YUAN}
    for change, field in (({"product": "nope"}, "product"), ({"item": "nope"}, "item"),
                          ({"region": "mars"}, "region"), ({"pay_mode": "weekly"}, "pay_mode"),
                          ({"unit_price": -1}, "unit_price")):
        with rt.engine.begin() as conn, pytest.raises((InvalidInput, NotFound)) as err:
            catalog.set_contract_price(conn, rt.clock, OPS, uin, **{**base, **change})
        assert err.value.field == field


@pytest.mark.spec("ORD-5")
def test_only_operators_write_prices_and_customers_see_only_their_own(rt):
    load_sample(rt)
    uin, other = new_account(rt, "mine"), new_account(rt, "theirs")
    owner = Actor("user", "mine", uin=uin, user_id=1, role="owner")
    reader = Actor("user", "reader", uin=uin, user_id=2, role="readonly")
    with rt.engine.begin() as conn:
        for call in (lambda: catalog.load_catalog(conn, rt.clock, owner, "products: []", "x"),
                     lambda: catalog.set_discount(conn, rt.clock, owner, uin, 1000),
                     lambda: catalog.set_fixed_price(conn, rt.clock, owner, uin, product="cos",
                                                     item="storage_std", pay_mode="postpaid",
                                                     amount_per_month=0),
                     lambda: catalog.quote_for(conn, owner, other, "cvm", "S5.MEDIUM4",
                                               "ap-guangzhou", "prepaid", UNIT,
                                               rt.clock.now(), 1),
                     lambda: catalog.account_pricing(conn, reader, uin)):
            with pytest.raises(PermissionDenied):
                call()
        own = catalog.quote_for(conn, reader, uin, "cvm", "S5.MEDIUM4", "ap-guangzhou",
                                "prepaid", UNIT, rt.clock.now(), 1)
        assert own.amount == 178 * YUAN
        assert catalog.account_pricing(conn, owner, uin) == {"discounts": [], "prices": []}


def test_loader_parses_without_a_database():
    catalog_file, problems = parse_catalog(catalog.sample_catalog_text(), "s.yaml", {})
    assert problems == []
    versions = catalog_file.prices[("cdn", "traffic", "mainland", "postpaid")]
    assert [v.end for v in versions] == [versions[1].start, None]
    _, problems = parse_catalog("", "empty.yaml", {})
    assert problems[0].render("empty.yaml").startswith("empty.yaml:1: file: ")


def with_refund_window(value: str) -> str:
    return vm_catalog(V1).replace("    class: compute\n",
                                  f"    class: compute\n    refund_window_days: {value}\n")


@pytest.mark.spec("ORD-4", "ORD-5")
@pytest.mark.parametrize("value", ["-1", "366", "five", "2.5", "[5]"])
def test_a_refund_window_must_be_whole_days_within_a_year(value):
    _, problems = parse_catalog(with_refund_window(value), "window.yaml", {})
    assert [(p.line, p.field) for p in problems] == [(16, "products[vm].refund_window_days")]
    assert problems[0].zh and problems[0].en


@pytest.mark.spec("ORD-4", "ORD-5")
def test_the_refund_window_is_stored_with_the_product_five_days_unless_set(rt):
    load(rt, vm_catalog(V1))
    with rt.engine.connect() as conn:
        assert catalog.get_product(conn, "vm").refund_window_days == 5
    changed = load(rt, with_refund_window("0"), "no-window.yaml")
    assert changed["products"] == {"added": 0, "updated": 1, "unchanged": 0}
    with rt.engine.connect() as conn:
        assert catalog.get_product(conn, "vm").refund_window_days == 0
    load(rt, with_refund_window("30"), "thirty.yaml")
    with rt.engine.connect() as conn:
        assert catalog.get_product(conn, "vm").to_dict()["refund_window_days"] == 30
    before = counts(rt)
    with pytest.raises(InvalidInput) as err:
        load(rt, with_refund_window("-5"), "bad.yaml")
    assert "refund_window_days" in err.value.details["errors"][0]
    assert counts(rt) == before


# ---------------------------------------------------------------- CLI

@pytest.fixture
def catalog_cli(database_url, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from feecenter.cli.catalog import catalog_app
    from tests.conftest import MASTER_KEY

    monkeypatch.setenv("FEECENTER_DATABASE_URL", database_url)
    monkeypatch.setenv("FEECENTER_MASTER_KEY", MASTER_KEY)
    monkeypatch.setenv("FEECENTER_HOME", str(tmp_path))
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(catalog_app, [str(a) for a in args])
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return result

    return run


@pytest.mark.spec("ORD-5")
def test_cli_loads_and_shows_the_catalog(catalog_cli, tmp_path):
    from importlib import resources

    sample = resources.files("feecenter.catalog").joinpath("sample_catalog.yaml")
    result = catalog_cli("load", str(sample), "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["changed"] and summary["products"]["added"] == 7
    result = catalog_cli("load", str(sample))
    assert result.exit_code == 0 and "unchanged" in result.stdout
    shown = json.loads(catalog_cli("show", "--json").stdout)
    assert {p["code"] for p in shown["products"]} >= {"cvm", "ssl"}
    detail = json.loads(catalog_cli("show", "--product", "cdn", "--at", "2026-03-02 10:00:00",
                                    "--json").stdout)
    assert detail["tax_rate_bp"] == 600 and len(detail["prices"]) == 1
    assert detail["prices"][0]["tiers"][0] == {"from": "0", "upto": "2048",
                                               "unit_price": "0.21000000"}
    history = json.loads(catalog_cli("show", "--product", "cdn", "--history", "--json").stdout)
    assert [p["starts_at"] for p in history["prices"]] == ["2026-01-01 00:00:00",
                                                           "2026-07-01 00:00:00"]
    assert catalog_cli("show", "--product", "cdn").exit_code == 0


def test_cli_refuses_a_bad_file_listing_every_line(catalog_cli, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("regions:\n  - {code: gz}\n  - {code: gz, name_zh: 广州, name_en: GZ}\n",
                   encoding="utf-8")
    result = catalog_cli("load", bad)
    assert result.exit_code == 1
    assert f"{bad}:2: regions[0].name_zh: " in result.stderr
    assert f"{bad}:3: regions[1].code: " in result.stderr
    payload = json.loads(catalog_cli("load", bad, "--json").stdout)
    assert payload["error"]["code"] == "InvalidInput" and len(payload["error"]["details"]["errors"]) == 3
    missing = catalog_cli("load", tmp_path / "missing.yaml", "--json")
    assert missing.exit_code == 1 and json.loads(missing.stdout)["error"]["field"] == "file"


# ---------------------------------------------------------------- REST API (throwaway app)

@pytest.fixture
def api(rt):
    import warnings

    from fastapi import FastAPI
    with warnings.catch_warnings():  # starlette's notice about its httpx-based client
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from feecenter.api import errors
    from feecenter.api.catalog import router
    from feecenter.auth import service as auth
    from feecenter.auth import tc3

    app = FastAPI()
    app.state.runtime = rt
    errors.install(app)
    app.include_router(router)
    client = TestClient(app)

    def call(key, method, path, *, query="", body=b"", content_type="application/json"):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        timestamp = int(rt.clock.now().timestamp())
        rt.clock.advance(seconds=1)  # a new signature each call: not a replay
        headers = tc3.sign(key.secret_id, key.secret_key, method=method, host="testserver",
                           path=path, query=query, body=body, content_type=content_type,
                           timestamp=timestamp)
        return client.request(method, path + (f"?{query}" if query else ""), content=body,
                              headers=headers)

    def operator_key():
        with rt.engine.begin() as conn:
            return auth.create_operator(conn, rt.clock, OPS, "catalog-ops")[1]

    def customer_key(uin):
        with rt.engine.begin() as conn:
            return auth.create_api_key(conn, rt.clock, OPS, uin)

    call.operator_key, call.customer_key = operator_key, customer_key
    return call


@pytest.mark.spec("ORD-5")
def test_api_operators_load_and_price_customers_read_and_quote(api, rt):
    ops = api.operator_key()
    uin = new_account(rt, "api-co")
    customer = api.customer_key(uin)
    text = catalog.sample_catalog_text()
    loaded = api(ops, "POST", "/api/v1/ops/catalog", query="source=sample.yaml", body=text,
                 content_type="application/yaml")
    assert loaded.status_code == 200, loaded.text
    assert loaded.json()["changed"] and loaded.json()["source"] == "sample.yaml"
    again = api(ops, "POST", "/api/v1/ops/catalog", body={"yaml": text, "source": "s.yaml"})
    assert again.status_code == 200 and again.json()["changed"] is False
    refused = api(customer, "POST", "/api/v1/ops/catalog", body=text,
                  content_type="application/yaml")
    assert refused.status_code == 403
    bad = api(ops, "POST", "/api/v1/ops/catalog", body="regions:\n  - {code: x}\n",
              content_type="application/yaml")
    assert bad.status_code == 400
    assert bad.json()["error"]["details"]["errors"][0].startswith("api-upload.yaml:2: ")

    listed = api(customer, "GET", "/api/v1/catalog/products").json()
    assert {p["code"] for p in listed} == {"cvm", "cbs", "cos", "cdn", "cdb", "cospack", "ssl"}
    ssl = api(customer, "GET", "/api/v1/catalog/products/ssl").json()
    assert ssl["tax_rate_bp"] == 1300 and ssl["prices"][0]["tiers"][0]["unit_price"] == "330.00000000"
    assert {i["code"] for i in ssl["items"]} == {"OV.single", "OV.wildcard", "EV.single"}
    assert api(customer, "GET", "/api/v1/catalog/products/nope").status_code == 404
    history = api(customer, "GET", "/api/v1/catalog/products/cdn/price-lists").json()
    assert len(history) == 2 and history[0]["ends_at"] == "2026-07-01 00:00:00"

    put = api(ops, "PUT", f"/api/v1/ops/accounts/{uin}/discounts", body={"discount_bp": 8500})
    assert put.status_code == 200, put.text
    put = api(ops, "PUT", f"/api/v1/ops/accounts/{uin}/contract-prices",
              body={"product": "cvm", "item": "S5.LARGE8", "pay_mode": "prepaid",
                    "unit_price": "300.00"})
    assert put.status_code == 200 and put.json()["price"] == "300.00000000"
    put = api(ops, "PUT", f"/api/v1/ops/accounts/{uin}/fixed-prices",
              body={"product": "cdn", "item": "traffic", "pay_mode": "postpaid",
                    "amount_per_month": "5000.00"})
    assert put.status_code == 200
    assert api(customer, "PUT", f"/api/v1/ops/accounts/{uin}/discounts",
               body={"discount_bp": 1}).status_code == 403

    q = api(customer, "GET", f"/api/v1/accounts/{uin}/quote",
            query="product=cvm&item=S5.MEDIUM4&region=ap-guangzhou&pay_mode=prepaid"
                  "&quantity=2&months=12")
    assert q.status_code == 200, q.text
    body = q.json()
    assert (body["price_kind"], body["list_amount"], body["discount_bp"], body["amount"]) == (
        "list", "4272.00000000", 8500, "3631.20000000")
    q = api(customer, "GET", f"/api/v1/accounts/{uin}/quote",
            query="product=cvm&item=S5.LARGE8&region=ap-guangzhou&pay_mode=prepaid&months=1")
    assert (q.json()["price_kind"], q.json()["amount"], q.json()["list_amount"]) == (
        "contract", "300.00000000", "356.00000000")
    q = api(customer, "GET", f"/api/v1/accounts/{uin}/quote",
            query="product=cvm&item=S5.MEDIUM4&region=ap-mars&pay_mode=prepaid&months=1")
    assert q.status_code == 404 and q.json()["error"]["field"] == "region"
    q = api(customer, "GET", f"/api/v1/accounts/{uin}/quote",
            query="product=cvm&item=traffic&region=ap-guangzhou&pay_mode=postpaid&quantity=-1")
    assert q.status_code == 400 and q.json()["error"]["field"] == "quantity"
    pricing = api(customer, "GET", f"/api/v1/accounts/{uin}/pricing").json()
    assert pricing["discounts"][0]["discount_bp"] == 8500
    assert {p["kind"] for p in pricing["prices"]} == {"contract", "fixed"}


@pytest.mark.spec("ORD-5")
def test_an_agreed_price_needs_no_list_price(rt):
    load(rt, vm_catalog(V1))
    uin = new_account(rt)
    with rt.engine.begin() as conn:
        catalog.set_contract_price(conn, rt.clock, OPS, uin, product="vm", item="traffic",
                                   pay_mode="postpaid", unit_price=30_000_000)
    q = quote(rt, uin, "vm", "traffic", "ap-shanghai", "postpaid", 10 * UNIT)
    assert (q.price_kind, q.price_list_id, q.unit_price, q.list_amount, q.amount) == (
        "contract", None, 30_000_000, 3 * YUAN, 3 * YUAN)
    with pytest.raises(NotFound) as err:
        quote(rt, new_account(rt, "other"), "vm", "traffic", "ap-shanghai", "postpaid", UNIT)
    assert err.value.field == "region"


PACKAGE_ITEMS = (
    "      - {code: p1, name_zh: 包, name_en: Pack, unit_zh: 个, unit_en: pack, spec: true,"
    " covers: {product: vm, item: traffic, quantity: \"100.5\", per: month}}\n")


def _with_package_items(items: str) -> str:
    return HEAD.replace("    prices:\n", items)  # no prices: nothing to sell, only to check


@pytest.mark.spec("SET-10", "ORD-5")
def test_a_package_item_stores_what_it_covers(rt):
    load(rt, _with_package_items(PACKAGE_ITEMS))
    with rt.engine.connect() as conn:
        row = conn.execute(select(billing_items).where(billing_items.c.code == "p1")).mappings().one()
    assert (row["covers_product"], row["covers_item"], row["covers_quantity"],
            row["covers_per"]) == ("vm", "traffic", 100_500_000, "month")


@pytest.mark.spec("SET-10", "ORD-5")
def test_bad_package_items_are_refused_naming_the_line_and_writing_nothing(rt):
    bad = (PACKAGE_ITEMS.replace("p1", "p2").replace('"100.5"', '"0"')
           + PACKAGE_ITEMS.replace("p1", "p3").replace("spec: true", "spec: false")
           + PACKAGE_ITEMS.replace("p1", "p4").replace("per: month", "per: year"))
    with pytest.raises(InvalidInput) as err:
        load(rt, _with_package_items(bad), "pack.yaml")
    fields = [line.split(": ")[1] for line in err.value.details["errors"]]
    assert fields == ["products[vm].items[p2].covers.quantity", "products[vm].items[p3].covers",
                      "products[vm].items[p4].covers.per"]
    unknown = PACKAGE_ITEMS.replace("item: traffic", "item: nothing")
    with pytest.raises(InvalidInput) as err:
        load(rt, _with_package_items(unknown), "pack.yaml")
    [line] = err.value.details["errors"]
    item_line = _with_package_items(unknown).splitlines().index(unknown.rstrip("\n")) + 1
    assert line.startswith(f"pack.yaml:{item_line}: products[vm].items[p1].covers: ")
    assert "unknown billing item: vm/nothing" in line and "不存在" in line
    assert counts(rt) == (0, 0, 0, 0, 0)
