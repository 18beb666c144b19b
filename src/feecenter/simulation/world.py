"""The simulated cloud, generated from a seed: its catalog (hourly, daily and
monthly postpaid products, prepaid products, a resource package), its accounts
(personal and enterprise, some with credit lines), their opening money, and the
prepaid resources some of them bought a month before the run (``history``), so
that expiry, auto-renewal, the recycle bin and release happen within it.

Pure: plain values and the catalog's YAML text; the same seed gives the same
world. Prices are integers in 1e-8 yuan (prepaid: per unit per month).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone

from feecenter.money import RATE_PER_FEN, format_yuan

START = datetime(2026, 3, 28, 0, 0, tzinfo=timezone.utc)  # 08:00 in Shanghai; April is near
REGION = "ap-guangzhou"
PACK_QUANTITY = 100  # GB of obj.store each package covers per day
HISTORY_START = datetime(2026, 1, 28, 0, 0, tzinfo=timezone.utc)  # + 2 months: in the run


@dataclass(frozen=True)
class Item:
    code: str
    spec: bool
    period: str | None  # postpaid_period: hour | day | month | None (per unit)
    postpaid: int | None  # price, 1e-8 yuan
    prepaid: int | None  # price per unit per month, 1e-8 yuan


@dataclass(frozen=True)
class Product:
    code: str
    pay_modes: tuple[str, ...]
    cycle: str | None  # postpaid settlement cycle
    items: tuple[Item, ...]
    freeze: int = 0  # fen frozen when a postpaid resource opens (FRZ-1)
    manual: bool = False  # delivered by an operator (else on payment)
    covers: str | None = None  # resource package: the obj item it covers
    refund_days: int = 5  # ORD-4 no-reason refund window (catalog refund_window_days)
    recovery_days: int = 1  # RNW-6: days in the recycle bin (catalog recovery_days)
    retry_days: int = 1  # RNW-2: auto-renewal retry days (catalog auto_renew_retry_days)
    entity: str = "sim"  # the selling entity (INV-4: invoices are split by it)
    tax_category: str = "cloud_service"  # INV-4: cloud_service (6 %) or software (13 %)

    @property
    def bucket(self) -> tuple[str, str]:
        """The invoiceable bucket its consumption falls in (docs/invoices.md)."""
        return self.entity, self.tax_category

    def item(self, code: str) -> Item:
        return next(i for i in self.items if i.code == code)

    @property
    def specs(self) -> list[str]:
        return [i.code for i in self.items if i.spec]


@dataclass(frozen=True)
class Account:
    name: str
    enterprise: bool
    cash: int  # fen
    gift: int
    credit: int  # credit line, fen; 0: none


@dataclass(frozen=True)
class Bought:
    """A prepaid resource bought (and paid) before the run, ``minutes`` after
    HISTORY_START, for two months; ``auto``: its auto-renew flag ("on", "off", or
    "default": the account's default turned on), ``unified_day``: the account's."""
    account: int  # index into World.accounts
    product: str
    spec: str
    count: int
    minutes: int
    auto: str | None
    unified_day: int | None


@dataclass(frozen=True)
class World:
    seed: int
    products: tuple[Product, ...]
    accounts: tuple[Account, ...]
    history: tuple[Bought, ...] = ()

    def product(self, code: str) -> Product:
        return next(p for p in self.products if p.code == code)


def _yuan(rated: int) -> str:
    whole, frac = divmod(rated, RATE_PER_FEN * 100)
    return f"{whole}.{frac:08d}"


def generate(seed: int, accounts: int) -> World:
    rng = random.Random(seed)
    products = _products(rng)
    people = tuple(_account(rng, n) for n in range(accounts))
    return World(seed, products, people, _history(random.Random(f"{seed}:history"), products,
                                                    accounts))


def _history(rng: random.Random, products, accounts: int) -> tuple[Bought, ...]:
    """Most accounts bought a prepaid ``vm`` or ``objpack`` (some two) for two months
    between 28 January 00:30 and 31 January 00:00 (UTC): they expire between the run's
    start (28 March) and 31 March 00:00, so that auto-renewals, retries, stops, restores
    and releases (1-2 recovery days) all fall within a CI run of 96 hours."""
    out = []
    for n in [n for n in range(accounts) for _ in range(rng.choice([0, 1, 1, 2]))]:
        code = rng.choice(["vm", "vm", "objpack"])
        product = next(p for p in products if p.code == code)
        out.append(Bought(n, product.code, rng.choice(product.specs), rng.choice([1, 1, 2]),
                          rng.randint(30, 3 * 24 * 60), rng.choice(["on", "on", "off", "default",
                                                                None]),
                          rng.choice([None, None, None, 1, 10, 28])))
    return tuple(out)


def _price(rng: random.Random, low_fen: int, high_fen: int, decimals: int = 2) -> int:
    """A positive price with ``decimals`` (at most 4) decimals of a fen, in 1e-8 yuan:
    a quantity of two decimals times it is exact in 1e-8 yuan (no rounding per line)."""
    step = RATE_PER_FEN // 10 ** decimals
    return rng.randint(max(low_fen * 10 ** decimals, 1), high_fen * 10 ** decimals) * step


def _products(rng: random.Random) -> tuple[Product, ...]:
    specs = [Item(f"s{n}", True, "hour", _price(rng, 20 * n, 60 * n, 3),
                  _price(rng, 5000 * n, 15000 * n)) for n in (1, 2, 3)]
    return (
        Product("vm", ("prepaid", "postpaid"), "hour",
                (*specs, Item("net", False, None, _price(rng, 40, 90, 4), None)),
                refund_days=1, recovery_days=1, retry_days=1),
        Product("disk", ("postpaid",), "hour",
                (Item("hdd", True, "hour", _price(rng, 0, 1, 4), None),)),
        Product("db", ("postpaid",), "hour",
                (Item("m1", True, "hour", _price(rng, 30, 90, 2), None),), freeze=2000,
                entity="simsw"),
        Product("obj", ("postpaid",), "day",
                (Item("store", False, "day", _price(rng, 0, 1, 4), None),
                 Item("req", False, None, _price(rng, 1, 2, 2), None))),
        Product("lic", ("postpaid",), "month",
                (Item("seat", True, "month", _price(rng, 500, 3000), None),),
                entity="simsw", tax_category="software"),
        Product("cert", ("prepaid",), None,
                (Item("ov", True, None, None, _price(rng, 10000, 80000)),), manual=True,
                retry_days=0, recovery_days=2, tax_category="software"),
        Product("objpack", ("prepaid",), None,
                (Item("p100", True, None, None, _price(rng, 500, 2000)),), covers="store",
                refund_days=0, retry_days=2),
    )


def _account(rng: random.Random, n: int) -> Account:
    enterprise = rng.random() < 0.4
    return Account(name=f"sim{n:05d}", enterprise=enterprise,
                   cash=rng.choice([0, 5_00, 50_00, 500_00, 5_000_00]),
                   gift=rng.choice([0, 0, 10_00, 100_00]),
                   credit=rng.choice([0, 0, 0, 200_00]) if enterprise else 0)


def catalog_yaml(world: World) -> str:
    """The world's catalog in the catalog format (docs/catalog.md)."""
    lines = [f'version: "sim-{world.seed}"', "entities:",
             "  - {code: sim, name_zh: 模拟云, name_en: Simulated Cloud}",
             "  - {code: simsw, name_zh: 上海模拟软件, name_en: Simulated Software Shanghai}",
             "product_classes:",
             '  - {code: any, name_zh: 模拟, name_en: Simulated, operable_balance: "0.00"}',
             "regions:", f"  - {{code: {REGION}, name_zh: 广州, name_en: Guangzhou}}",
             "products:"]
    for p in world.products:
        lines += _product_yaml(p)
    return "\n".join(lines) + "\n"


def _product_yaml(p: Product) -> list[str]:
    out = [f"  - code: {p.code}", f"    name_zh: {p.code}", f"    name_en: {p.code}",
           f"    entity: {p.entity}", f"    tax_category: {p.tax_category}",
           f"    pay_modes: [{', '.join(p.pay_modes)}]", "    class: any"]
    if p.cycle:
        out.append(f"    postpaid_cycle: {p.cycle}")
    if "prepaid" in p.pay_modes:
        out.append("    prepaid_months: [1, 2, 3, 6, 12]")
        out.append(f"    refund_window_days: {p.refund_days}")
        out.append(f"    recovery_days: {p.recovery_days}")
        out.append(f"    auto_renew_retry_days: {p.retry_days}")
    if p.freeze:
        out += [f'    freeze_amount: "{format_yuan(p.freeze)}"',
                "    freeze_release: immediate"]
    if p.manual:
        out.append("    delivery: manual")
    out.append("    items:")
    for i in p.items:
        extra = (", spec: true" if i.spec else "") + (
            f", postpaid_period: {i.period}" if i.period else "")
        if p.covers:
            extra += (f', covers: {{product: obj, item: {p.covers}, '
                      f'quantity: "{PACK_QUANTITY}", per: period}}')
        out.append(f"      - {{code: {i.code}, name_zh: {i.code}, name_en: {i.code}, "
                   f"unit_zh: 个, unit_en: unit{extra}}}")
    out.append("    prices:")
    for i in p.items:
        for mode, price in (("prepaid", i.prepaid), ("postpaid", i.postpaid)):
            if price is not None:
                out.append(f"      - {{item: {i.code}, pay_mode: {mode}, regions: [{REGION}], "
                           f'from: 2026-01-01, price: "{_yuan(price)}"}}')
    return out
