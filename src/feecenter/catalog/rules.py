"""Pure pricing rules (ORD-5, SET-2): no database, plain integers.

Units
- Prices and rated amounts: 1e-8 yuan (``money.RATE_SCALE`` per yuan).
- Quantities: 1e-6 units (``QTY_SCALE`` per unit), so 1.5 GB is 1_500_000.
- Discounts: basis points, ``BP_SCALE`` (10000) = no discount, 8500 = 85%.

Rounding: a price times a quantity is exact in 1e-14 yuan; the discount
multiplies that exact figure. Only then is it divided back to 1e-8 yuan, in
**one** rounding step, half-up (halves away from zero). No intermediate
figure is rounded: ``amount`` is not ``list_amount × discount`` re-rounded.

Tiers (阶梯价) are **graduated**: tiers are ranges of the cumulative quantity
[lower, upper); each part of the quantity is charged at the price of the tier
it falls in (0–2048 GB at 0.21, the next GB at 0.20, …), not the whole
quantity at the price of the tier the total reaches ("volume" tiers).
``before`` is the quantity already used in the same tier period (e.g. the
month's earlier days), so the next part starts where that one stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from feecenter.errors import invalid

QTY_SCALE = 1_000_000          # quantities: 1e-6 units
BP_SCALE = 10_000              # basis points: 10000 = 100% = no discount
MAX_MONTHS = 120               # a prepaid term longer than 10 years is a typo
MAX_QTY = 10**13 * QTY_SCALE   # above this a quantity is absurd

PAY_MODES = ("prepaid", "postpaid")
PRICE_KINDS = ("list", "contract", "fixed")
POSTPAID_CYCLES = ("hour", "day", "month")       # SET-1
POSTPAID_PERIODS = ("hour", "day", "month")      # what a postpaid price is per, besides the unit
DELIVERY_MODES = ("auto", "manual")
FREEZE_RELEASES = ("immediate", "next_settlement")  # FRZ-3
DEFAULT_UNPAID_ORDER_DAYS = 15                   # ORD-2
DEFAULT_PREPAID_MONTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 24, 36)


@dataclass(frozen=True)
class TaxCategory:
    code: str
    rate_bp: int        # 600 = 6%
    name: str           # the goods-and-services name printed on the invoice
    tax_code: str       # 税收分类编码


# INV-4: fixed by product.
TAX_CATEGORIES = {
    "cloud_service": TaxCategory("cloud_service", 600, "信息技术服务*云服务费", "3040205"),
    "software": TaxCategory("software", 1300, "软件*软件产品销售", "10603010101"),
}


# ---------------------------------------------------------------- quantities

_QTY = re.compile(r"^(?P<int>\d{1,13})(?:\.(?P<frac>\d{1,6}))?$", re.ASCII)


def parse_quantity(text: object, field: str = "quantity") -> int:
    """"1.5" (units) -> 1_500_000 (1e-6 units); non-negative, at most 6 decimals."""
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise invalid(field, "数量必须是数字字符串，如 \"1.5\"", 'quantity must be a number such as "1.5"')
    raw = str(text).strip()
    match = _QTY.match(raw)
    if not match:
        raise invalid(field, f"数量格式错误：{raw!r}（非负，最多六位小数）",
                      f"malformed quantity {raw!r} (non-negative, at most 6 decimals)")
    return int(match["int"]) * QTY_SCALE + int((match["frac"] or "").ljust(6, "0"))


def format_quantity(qty: int) -> str:
    """1_500_000 -> "1.5"; 2048_000000 -> "2048"."""
    sign = "-" if qty < 0 else ""
    whole, part = divmod(abs(qty), QTY_SCALE)
    frac = f"{part:06d}".rstrip("0")
    return f"{sign}{whole}" + (f".{frac}" if frac else "")


def div_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half-up (halves away from zero): the one rounding step."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    sign = -1 if numerator < 0 else 1
    return sign * ((abs(numerator) * 2 + denominator) // (2 * denominator))


# ---------------------------------------------------------------- tiers

@dataclass(frozen=True)
class Tier:
    lower: int            # cumulative quantity where the tier starts, inclusive (1e-6 units)
    upper: int | None     # exclusive; None: no upper bound
    unit_price: int       # 1e-8 yuan per unit (per unit per month when prepaid)


@dataclass(frozen=True)
class TierCharge:
    lower: int
    upper: int | None
    unit_price: int
    quantity: int         # the part of the quantity charged in this tier (1e-6 units)


def flat(unit_price: int) -> tuple[Tier, ...]:
    return (Tier(0, None, unit_price),)


def tier_problems(tiers: tuple[Tier, ...]) -> list[tuple[int, str, str]]:
    """What is wrong with a tier table: (tier index, zh, en); empty when it is valid.

    Valid: starts at 0, each tier starts where the previous ended, bounds
    strictly increase, only the last tier is open-ended, prices non-negative.
    """
    problems = []
    if not tiers:
        return [(0, "至少需要一个价格档", "at least one tier is required")]
    expected_lower = 0
    for i, tier in enumerate(tiers):
        last = i == len(tiers) - 1
        if tier.lower != expected_lower:
            problems.append((i, "阶梯必须从 0 开始且首尾相接", "tiers must start at 0 and be contiguous"))
        if tier.unit_price < 0:
            problems.append((i, "单价不能为负数", "unit price must not be negative"))
        if last and tier.upper is not None:
            problems.append((i, "最后一档不能有上限", "the last tier must have no upper bound"))
        if not last and tier.upper is None:
            problems.append((i, "只有最后一档可以没有上限", "only the last tier may have no upper bound"))
        if tier.upper is not None and tier.upper <= tier.lower:
            problems.append((i, "阶梯上限必须递增", "tier bounds must increase"))
        expected_lower = tier.upper if tier.upper is not None else expected_lower
    return problems


def graduated(tiers: tuple[Tier, ...], quantity: int, before: int = 0) -> tuple[TierCharge, ...]:
    """Split ``quantity`` (used after ``before``) over graduated tiers."""
    if quantity < 0 or before < 0:
        raise ValueError("quantity and before must be non-negative")
    low, high = before, before + quantity
    charges = []
    for tier in tiers:
        start = max(low, tier.lower)
        end = high if tier.upper is None else min(high, tier.upper)
        if end > start:
            charges.append(TierCharge(tier.lower, tier.upper, tier.unit_price, end - start))
    assert sum(c.quantity for c in charges) == quantity, "tiers do not cover the quantity"
    return tuple(charges)


def price_at(tiers: tuple[Tier, ...], position: int) -> int:
    """Unit price of the tier the cumulative quantity ``position`` falls in."""
    for tier in tiers:
        if tier.upper is None or position < tier.upper:
            return tier.unit_price
    raise ValueError("tiers do not cover the position")


# ---------------------------------------------------------------- amounts

@dataclass(frozen=True)
class ListPricing:
    list_amount: int                    # 1e-8 yuan before discount
    amount: int                         # 1e-8 yuan after discount
    charges: tuple[TierCharge, ...] = field(default=())


def check_discount_bp(discount_bp: int, field_name: str = "discount_bp") -> int:
    if isinstance(discount_bp, bool) or not isinstance(discount_bp, int) \
            or not 1 <= discount_bp <= BP_SCALE:
        raise invalid(field_name, "折扣须为 1–10000 的基点数（8500 即 85 折，10000 即无折扣）",
                      "discount must be 1-10000 basis points (8500 = 85%, 10000 = none)")
    return discount_bp


def list_price_amount(tiers: tuple[Tier, ...], quantity: int, *, months: int = 1,
                      discount_bp: int = BP_SCALE, before: int = 0) -> ListPricing:
    """List price × quantity (graduated) × months, and the same × discount (SET-2).

    Both figures come from the exact product, each with one rounding step.
    """
    if months < 1:
        raise ValueError("months must be at least 1")
    charges = graduated(tiers, quantity, before)
    exact = sum(c.quantity * c.unit_price for c in charges) * months  # 1e-14 yuan
    return ListPricing(list_amount=div_half_up(exact, QTY_SCALE),
                       amount=div_half_up(exact * discount_bp, QTY_SCALE * BP_SCALE),
                       charges=charges)


def contract_amount(unit_price: int, quantity: int, months: int = 1) -> int:
    """合同价: the negotiated unit price replaces list × discount."""
    if months < 1 or quantity < 0:
        raise ValueError("months must be >= 1 and quantity >= 0")
    return div_half_up(unit_price * quantity * months, QTY_SCALE)


def fixed_amount(amount_per_month: int, months: int = 1) -> int:
    """一口价: a fixed amount per month for the item, whatever the quantity."""
    if months < 1:
        raise ValueError("months must be at least 1")
    return amount_per_month * months


# ---------------------------------------------------------------- effective ranges

def overlaps(a_start: datetime, a_end: datetime | None, b_start: datetime,
             b_end: datetime | None) -> bool:
    """Do half-open ranges [a_start, a_end) and [b_start, b_end) share an instant?

    None is an open end. An empty range (start == end) overlaps nothing.
    """
    if (a_end is not None and a_end <= a_start) or (b_end is not None and b_end <= b_start):
        return False
    return (b_end is None or a_start < b_end) and (a_end is None or b_start < a_end)


def in_force(start: datetime, end: datetime | None, at: datetime) -> bool:
    return start <= at and (end is None or at < end)


@dataclass(frozen=True)
class Version:
    """A price-list version: existing (``id``) or from a file (``ref`` says where)."""

    start: datetime
    end: datetime | None
    tiers: tuple[Tier, ...]
    id: int | None = None
    ref: object = None


@dataclass(frozen=True)
class Problem:
    ref: object
    zh: str
    en: str


@dataclass
class VersionPlan:
    new: list[Version] = field(default_factory=list)
    closes: dict[int, datetime] = field(default_factory=dict)  # existing id -> its new end
    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)


def chain_versions(entries: list[Version]) -> tuple[list[Version], list[Problem]]:
    """The file's versions of one key in start order, each ending where the next starts.

    An explicit end (``until``) is kept; it may end before the next start (a
    gap: nothing is sold then) but not after it (an overlap).
    """
    problems: list[Problem] = []
    ordered = sorted(entries, key=lambda v: v.start)
    chained = []
    for i, version in enumerate(ordered):
        nxt = ordered[i + 1] if i + 1 < len(ordered) else None
        if nxt is not None and nxt.start == version.start:
            problems.append(Problem(nxt.ref, f"同一生效时间出现两次：{_t(version.start)}",
                                    f"two versions start at the same time {_t(version.start)}"))
            continue
        end = version.end
        if end is not None and end <= version.start:
            problems.append(Problem(version.ref, "失效时间必须晚于生效时间",
                                    "until must be later than from"))
            continue
        if nxt is not None:
            if end is None:
                end = nxt.start
            elif end > nxt.start:
                problems.append(Problem(version.ref, f"与 {_t(nxt.start)} 生效的价格时间重叠",
                                        f"overlaps the version from {_t(nxt.start)}"))
                continue
        chained.append(Version(version.start, end, version.tiers, ref=version.ref))
    return chained, problems


def plan_versions(existing: list[Version], incoming: list[Version],
                  now: datetime) -> VersionPlan:
    """Merge a file's (chained) versions of one key into the stored history.

    - same start, same prices and end: unchanged (a re-load is harmless);
    - same start, the stored version open-ended, the file ending it: it is
      closed there (a later price follows);
    - same start but other prices, or another stored end: refused, history
      does not change;
    - a new start: a new version; a stored open-ended version that started
      earlier is closed at the new start (the new price applies from its
      start);
    - closing a version before ``now`` would re-price what may already have
      been charged: refused;
    - any overlap left in the result: refused.
    """
    plan = VersionPlan()
    by_start = {v.start: v for v in existing}
    ends = {v.id: v.end for v in existing}
    for version in incoming:
        stored = by_start.get(version.start)
        if stored is None:
            plan.new.append(version)
        elif stored.tiers != version.tiers:
            plan.problems.append(Problem(
                version.ref, f"{_t(version.start)} 生效的价格已存在且不同；历史价格不能修改，请以新的生效时间发布新价格",
                f"a different price from {_t(version.start)} already exists; history cannot "
                "change: publish a new version with a later start"))
        elif stored.end == version.end:
            plan.unchanged += 1
        elif stored.end is None:
            _close(plan, ends, stored, version.end, version.ref, now)
        else:
            plan.problems.append(Problem(
                version.ref, f"{_t(version.start)} 生效的价格已于 {_t(stored.end)} 失效，不能修改",
                f"the version from {_t(version.start)} already ends at {_t(stored.end)}; "
                "history cannot change"))
    for version in sorted(plan.new, key=lambda v: v.start):
        for stored in existing:
            if ends[stored.id] is None and stored.start < version.start:
                _close(plan, ends, stored, version.start, version.ref, now)
    final = [(v.start, ends[v.id], None) for v in existing] + \
            [(v.start, v.end, v) for v in plan.new]
    final.sort(key=lambda r: r[0])
    for (start_a, end_a, new_a), (start_b, end_b, new_b) in zip(final, final[1:]):
        if overlaps(start_a, end_a, start_b, end_b):
            culprit = new_b or new_a
            other_start, other_end = (start_a, end_a) if new_b else (start_b, end_b)
            plan.problems.append(Problem(
                culprit.ref if culprit else None,
                f"与已有价格 [{_t(other_start)}, {_t(other_end)}) 时间重叠",
                f"overlaps the existing version [{_t(other_start)}, {_t(other_end)})"))
    return plan


def _close(plan: VersionPlan, ends: dict, stored: Version, at: datetime, ref, now) -> None:
    if at < now:
        plan.problems.append(Problem(
            ref, f"不能把 {_t(stored.start)} 生效的价格追溯到 {_t(at)} 截止（已计费的用量会被改价）",
            f"cannot end the version from {_t(stored.start)} in the past at {_t(at)} "
            "(usage already charged would be re-priced)"))
        return
    plan.closes[stored.id] = at
    ends[stored.id] = at


@dataclass(frozen=True)
class Span:
    id: int
    start: datetime
    end: datetime | None


def plan_supersede(existing: list[Span], start: datetime,
                   end: datetime | None) -> tuple[dict[int, datetime], Span | None]:
    """A new per-account row over [start, end): which stored rows it ends, or the conflict.

    A stored open-ended row that started no later than ``start`` is ended at
    ``start`` (the new setting replaces it from then on). Any other overlap is
    a conflict, returned for the caller to report.
    """
    closes = {}
    for span in existing:
        if not overlaps(span.start, span.end, start, end):
            continue
        if span.end is None and span.start <= start:
            closes[span.id] = start
        else:
            return {}, span
    return closes, None


def _t(when: datetime | None) -> str:
    if when is None:
        return "∞"
    from feecenter.clock import business_time_text

    return business_time_text(when)
