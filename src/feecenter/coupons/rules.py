"""Pure coupon rules (CPN-1..6, ARR-5): which coupons pay which lines of one payment.

No database, no clock: plain values in, plain values out. ``plan`` takes an
account's coupons and the lines of one payment (the orders of a merged
prepaid payment, or one settlement's per-product charges) and returns what
each coupon pays of each line, with a reason (zh and en) for every coupon
that pays nothing. ``check_terms`` validates what an operator asks to grant.

The order of use (docs/coupons.md):

1. A coupon must be usable at all: unused, inside its validity window, of
   the payment's mode, the account not in arrears (ARR-5).
2. It applies to the lines it covers: product in its list (or not in its
   exclusion list), prepaid order kind and duration in its range; never a
   line for arrears, a postpaid freeze, or a promotional order that refuses
   coupons (CPN-4). The applicable lines of the whole payment must reach its
   threshold (CPN-6).
3. Vouchers and cash coupons (one family) never combine with discount
   coupons (CPN-5). Both families are planned; the one that pays more wins,
   vouchers and cash coupons on a tie.
4. Vouchers and cash coupons are used expiring soonest first; then cash
   before voucher (CPN-5); then the one covering fewer lines of this
   payment; then the smaller remaining amount; then the lower id. Each pays
   the lines fewer coupons can pay first, then in line order. Unless the
   customer selected it, a single-use voucher or cash coupon that would lose
   part of its amount is kept for a later payment.
5. A discount coupon takes its share off its applicable lines' total (one
   half-up rounding), capped by its cap and by what is left of it, spread
   over the lines in proportion. At most ``CountLimits.discount`` of them
   (default one): the one taking most off first.

Never more than a line's amount, never more than a coupon's remaining.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from feecenter.errors import invalid
from feecenter.money import MAX_AMOUNT_FEN, RATE_PER_FEN, format_yuan, round_rated_to_fen, \
    split_proportionally

VOUCHER, CASH, DISCOUNT = "voucher", "cash", "discount"
KINDS = (VOUCHER, CASH, DISCOUNT)
KIND_NAMES = {VOUCHER: ("代金券", "voucher"), CASH: ("现金券", "cash coupon"),
              DISCOUNT: ("折扣券", "discount coupon")}
PREPAID, POSTPAID = "prepaid", "postpaid"
PAY_MODES = (PREPAID, POSTPAID)
PREPAID_ORDER_KINDS = ("new", "renew", "upgrade")
ORDER_KIND_NAMES = {"new": "新购", "renew": "续费", "upgrade": "升配", "downgrade": "降配",
                    "refund": "退订"}
ONLY, ALL_BUT = "only", "all_but"
UNUSED, USED, EXPIRED = "unused", "used", "expired"
STATES = (UNUSED, USED, EXPIRED)
CHARGE, ARREARS, FREEZE = "charge", "arrears", "freeze"
PURPOSES = (CHARGE, ARREARS, FREEZE)
BP_SCALE = 10_000
MAX_MONTHS = 120
MAX_VALID_DAYS = 3650
MAX_LINES = 500  # one payment or settlement; more is a bug upstream
_PRODUCT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,39}$", re.ASCII)
_ENTITY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,39}$", re.ASCII)
assert RATE_PER_FEN % BP_SCALE == 0  # discount arithmetic below is exact before rounding


# ---------------------------------------------------------------- values

@dataclass(frozen=True)
class Coupon:
    """A coupon as the rules see it (service.load builds these from rows)."""

    id: int
    kind: str
    pay_mode: str
    remaining: int | None  # fen still payable; None: an uncapped discount coupon
    valid_from: datetime
    valid_until: datetime  # exclusive
    state: str = UNUSED
    discount_bp: int | None = None  # discount coupons: share still paid (8000 = 8折)
    max_discount: int | None = None
    product_scope: str = ALL_BUT
    products: frozenset[str] = frozenset()
    order_kinds: frozenset[str] = frozenset(PREPAID_ORDER_KINDS)
    min_months: int | None = None
    max_months: int | None = None
    threshold: int = 0
    single_use: bool = False

    def covers(self, product_code: str) -> bool:
        inside = product_code in self.products
        return inside if self.product_scope == ONLY else not inside


@dataclass(frozen=True)
class Line:
    """One line of a payment: an order of a merged payment, or one settlement charge."""

    reference: str  # what confirm/release name later: "order:42", a settlement key …
    product_code: str
    amount: int  # fen, positive
    order_kind: str | None = None  # prepaid: new | renew | upgrade | …; postpaid: None
    months: int | None = None  # prepaid purchase duration; None (e.g. an upgrade): no duration
    refuses_coupons: bool = False  # a promotional order that takes no coupons (CPN-4)
    purpose: str = CHARGE  # charge | arrears | freeze: only charges take coupons (CPN-4)
    entity: str = "default"  # selling entity whose revenue the line is


@dataclass(frozen=True)
class Reason:
    code: str
    zh: str
    en: str

    def to_dict(self) -> dict:
        return {"code": self.code, "zh": self.zh, "en": self.en}


@dataclass(frozen=True)
class Use:
    coupon_id: int
    line_index: int
    amount: int


@dataclass(frozen=True)
class CountLimits:
    """Coupons of each kind one payment may use; None: no limit. Independent (CPN-5)."""

    cash: int | None = None
    voucher: int | None = None
    discount: int | None = 1

    def of(self, kind: str) -> int | None:
        return getattr(self, kind)


@dataclass(frozen=True)
class Plan:
    uses: tuple[Use, ...]
    line_paid: tuple[int, ...]  # coupon money per line, in line order
    skipped: Mapping[int, Reason]  # coupon id -> why it pays nothing
    forfeited: Mapping[int, int] = field(default_factory=dict)  # single use: the rest lost

    @property
    def total(self) -> int:
        return sum(self.line_paid)

    def paid_by(self, coupon_id: int) -> int:
        return sum(u.amount for u in self.uses if u.coupon_id == coupon_id)

    def coupon_ids(self) -> list[int]:
        return sorted({u.coupon_id for u in self.uses})


# ---------------------------------------------------------------- reasons

def _reason(code: str, zh: str, en: str) -> Reason:
    return Reason(code, zh, en)


def _product_reason(c: Coupon, product: str) -> Reason:
    if c.product_scope == ONLY:
        listed = "、".join(sorted(c.products))
        return _reason("product", f"仅适用于产品 {listed}，不适用于 {product}",
                       f"covers only {', '.join(sorted(c.products))}, not {product}")
    return _reason("product", f"不适用于产品 {product}（排除产品）",
                   f"product {product} is excluded")


def _months_text(c: Coupon) -> tuple[str, str]:
    low, high = c.min_months, c.max_months
    if low is not None and high is not None:
        return f"{low}–{high} 个月", f"{low}-{high} months"
    if low is not None:
        return f"至少 {low} 个月", f"at least {low} months"
    return f"至多 {high} 个月", f"at most {high} months"


# ---------------------------------------------------------------- checks

def _coupon_reason(c: Coupon, mode: str, now: datetime, in_arrears: bool,
                   selected: Collection[int] | None) -> Reason | None:
    """Why the coupon cannot pay anything of this payment, whatever its lines."""
    if selected is not None and c.id not in selected:
        return _reason("not_selected", "本次支付未选用此券", "not selected for this payment")
    if c.state == USED or (c.remaining is not None and c.remaining <= 0):
        return _reason("used", "已使用", "already used up")
    if c.state == EXPIRED or now >= c.valid_until:
        return _reason("expired", "已过期", "expired")
    if now < c.valid_from:
        return _reason("not_yet_valid", "尚未到生效时间", "not valid yet")
    if c.pay_mode != mode:
        if c.pay_mode == PREPAID:
            return _reason("pay_mode", "仅限预付费订单（新购、续费、升配）使用",
                           "for prepaid orders (new, renewal, upgrade) only")
        return _reason("pay_mode", "仅限后付费结算使用", "for postpaid settlement only")
    if in_arrears:
        return _reason("account_in_arrears", "账号欠费，还清欠费前不能使用优惠券",
                       "the account is in arrears: coupons work again once it is repaid")
    return None


def unusable_reason(c: Coupon, now: datetime, *, in_arrears: bool) -> Reason | None:
    """Why the coupon can pay nothing now, whatever the payment: used up, expired, not
    valid yet, or the account in arrears (ARR-5) — the reasons a payment gives
    (``plan``). None: it pays what its restrictions allow (products, threshold …)."""
    return _coupon_reason(c, c.pay_mode, now, in_arrears, None)


def _line_reason(c: Coupon, line: Line, mode: str) -> tuple[int, Reason] | None:
    """(stage, reason) of the first check the line fails for this coupon; None: it applies."""
    if line.purpose == ARREARS:
        return 0, _reason("arrears", "优惠券不能抵扣欠费", "coupons never pay arrears")
    if line.purpose == FREEZE:
        return 0, _reason("freeze", "优惠券不能抵扣按量计费的冻结金额",
                          "coupons never pay a postpaid freeze")
    if line.refuses_coupons:
        return 0, _reason("promo", "该促销订单不可使用优惠券",
                          "this promotional order takes no coupons")
    if not c.covers(line.product_code):
        return 1, _product_reason(c, line.product_code)
    if mode == POSTPAID:
        return None
    if line.order_kind not in c.order_kinds:
        allowed = "、".join(ORDER_KIND_NAMES[k] for k in PREPAID_ORDER_KINDS if k in c.order_kinds)
        kind_zh = ORDER_KIND_NAMES.get(line.order_kind or "", line.order_kind)
        return 2, _reason("order_kind", f"仅适用于{allowed}订单，不适用于{kind_zh}订单",
                          f"for {', '.join(sorted(c.order_kinds))} orders only, "
                          f"not {line.order_kind}")
    if c.min_months is not None or c.max_months is not None:
        zh, en = _months_text(c)
        m = line.months
        if m is None or (c.min_months is not None and m < c.min_months) \
                or (c.max_months is not None and m > c.max_months):
            got_zh = f"{m} 个月" if m is not None else "无购买时长"
            got_en = f"{m} months" if m is not None else "no duration"
            return 3, _reason("months", f"购买时长须为 {zh}（本订单：{got_zh}）",
                              f"purchase duration must be {en} (this order: {got_en})")
    return None


def _applicable(c: Coupon, lines: Sequence[Line], mode: str
                ) -> tuple[list[int], Reason | None]:
    """The lines the coupon applies to; if none, the reason of the line that came closest."""
    indexes, best = [], None
    for i, line in enumerate(lines):
        failed = _line_reason(c, line, mode)
        if failed is None:
            indexes.append(i)
        elif best is None or failed[0] > best[0]:
            best = failed
    if indexes:
        return indexes, None
    assert best is not None  # lines is never empty
    return [], best[1]


def _threshold_reason(c: Coupon, lines: Sequence[Line], indexes: list[int]) -> Reason | None:
    """CPN-3/CPN-6: the applicable lines of the whole payment must reach the threshold."""
    total = sum(lines[i].amount for i in indexes)
    if total >= c.threshold:
        return None
    return _reason("threshold",
                   f"适用产品合计 {format_yuan(total)} 元，未满 {format_yuan(c.threshold)} 元",
                   f"applicable products total {format_yuan(total)} yuan, below the "
                   f"threshold of {format_yuan(c.threshold)} yuan")


def check_lines(lines: Sequence[Line], mode: str) -> None:
    """Refuse malformed payment lines, naming the field (nothing is planned)."""
    if mode not in PAY_MODES:
        raise invalid("mode", "付费模式须为 prepaid 或 postpaid", "mode must be prepaid or postpaid")
    if not lines:
        raise invalid("lines", "至少需要一行待支付金额", "at least one line is required")
    if len(lines) > MAX_LINES:
        raise invalid("lines", f"一次支付至多 {MAX_LINES} 行", f"at most {MAX_LINES} lines")
    for i, line in enumerate(lines):
        _check_line(i, line, mode)


def _check_line(i: int, line: Line, mode: str) -> None:
    where = f"lines[{i}]"
    if not isinstance(line.reference, str) or not 1 <= len(line.reference) <= 200:
        raise invalid(f"{where}.reference", "引用须为 1–200 个字符", "reference must be 1-200 characters")
    if not isinstance(line.product_code, str) or not _PRODUCT.match(line.product_code):
        raise invalid(f"{where}.product_code", "产品代码格式错误", "malformed product code")
    if not isinstance(line.entity, str) or not _ENTITY.match(line.entity):
        raise invalid(f"{where}.entity", "签约主体代码格式错误", "malformed selling entity")
    if not is_int(line.amount) or not 1 <= line.amount <= MAX_AMOUNT_FEN:
        raise invalid(f"{where}.amount", "金额须为正整数（分）", "amount must be a positive integer (fen)")
    if line.purpose not in PURPOSES:
        raise invalid(f"{where}.purpose", "用途须为 charge / arrears / freeze",
                      "purpose must be charge, arrears or freeze")
    if mode == PREPAID:
        if line.order_kind not in ORDER_KIND_NAMES:
            raise invalid(f"{where}.order_kind", "预付费订单须给出订单类型",
                          "a prepaid line needs its order kind")
        if line.months is not None and (not is_int(line.months)
                                        or not 1 <= line.months <= MAX_MONTHS):
            raise invalid(f"{where}.months", f"购买时长须为 1–{MAX_MONTHS} 个月",
                          f"duration must be 1-{MAX_MONTHS} months")


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# ---------------------------------------------------------------- planning

def plan(coupons: Sequence[Coupon], lines: Sequence[Line], *, mode: str, now: datetime,
         in_arrears: bool = False, limits: CountLimits = CountLimits(),
         selected: Collection[int] | None = None) -> Plan:
    """Decide which coupons pay which lines; every coupon paying nothing gets a reason.

    ``selected``: the coupons the customer picked (None: any of the account's).
    """
    check_lines(lines, mode)
    skipped: dict[int, Reason] = {}
    candidates: list[tuple[Coupon, list[int]]] = []
    for c in sorted(coupons, key=lambda c: c.id):
        reason = _coupon_reason(c, mode, now, in_arrears, selected)
        indexes: list[int] = []
        if reason is None:
            indexes, reason = _applicable(c, lines, mode)
        if reason is None:
            reason = _threshold_reason(c, lines, indexes)
        if reason is None:
            candidates.append((c, indexes))
        else:
            skipped[c.id] = reason
    amounts = [line.amount for line in lines]
    by_amount = _pay_amount_coupons([x for x in candidates if x[0].kind != DISCOUNT], amounts,
                                    limits, auto=selected is None)
    by_discount = _pay_discount_coupons([x for x in candidates if x[0].kind == DISCOUNT],
                                        amounts, limits)
    won, lost = ((by_discount, by_amount) if _total(by_discount) > _total(by_amount)
                 else (by_amount, by_discount))
    uses, forfeited, family_skipped = won
    skipped.update(family_skipped)
    if _total(lost) > 0:  # it could have paid: stacking is why it does not
        for coupon_id in _family_ids(lost):
            skipped[coupon_id] = _stacking_reason(won is by_discount)
    else:
        skipped.update(lost[2])
    return _result(uses, forfeited, skipped, len(lines))


_Family = tuple[list[Use], dict[int, int], dict[int, Reason]]


def _total(family: _Family) -> int:
    return sum(u.amount for u in family[0])


def _family_ids(family: _Family) -> set[int]:
    return {u.coupon_id for u in family[0]} | set(family[2])


def _stacking_reason(discount_won: bool) -> Reason:
    if discount_won:
        return _reason("stacking", "折扣券与代金券、现金券不能同时使用，本次已选用折扣券",
                       "discount coupons never combine with vouchers or cash coupons: "
                       "a discount coupon is used here")
    return _reason("stacking", "折扣券与代金券、现金券不能同时使用，本次已选用代金券或现金券",
                   "discount coupons never combine with vouchers or cash coupons: "
                   "vouchers or cash coupons are used here")


def _result(uses: list[Use], forfeited: dict[int, int], skipped: dict[int, Reason],
            n_lines: int) -> Plan:
    line_paid = [0] * n_lines
    for u in uses:
        line_paid[u.line_index] += u.amount
    ordered = sorted(uses, key=lambda u: (u.line_index, u.coupon_id))
    return Plan(tuple(ordered), tuple(line_paid), dict(sorted(skipped.items())),
                dict(sorted(forfeited.items())))


def _amount_order(c: Coupon, indexes: list[int]) -> tuple:
    """Expiring soonest, cash before voucher, narrower, smaller, older (docs/coupons.md)."""
    return (c.valid_until, 0 if c.kind == CASH else 1, len(indexes), c.remaining, c.id)


def _limit_reason(kind: str, limit: int) -> Reason:
    zh, en = KIND_NAMES[kind]
    return _reason("count_limit", f"一次支付最多使用 {limit} 张{zh}",
                   f"at most {limit} {en}s per payment")


def _nothing_left() -> Reason:
    return _reason("nothing_left", "适用的订单已被其他优惠券全额抵扣",
                   "the lines it applies to are already paid by other coupons")


def _single_use_rest(budget: int, payable: int) -> Reason:
    return _reason("single_use_rest",
                   f"单次使用券，本次仅可抵扣 {format_yuan(payable)} 元，剩余 "
                   f"{format_yuan(budget - payable)} 元将作废，须手动选用",
                   f"single use: it would pay only {format_yuan(payable)} yuan here and lose "
                   f"the other {format_yuan(budget - payable)} yuan; select it to use it anyway")


def _pay_amount_coupons(candidates: list[tuple[Coupon, list[int]]], amounts: list[int],
                        limits: CountLimits, *, auto: bool) -> _Family:
    """Vouchers and cash coupons together (CPN-5), greedily in the documented order.

    ``auto`` (no coupon selected by the customer): a single-use coupon that
    would lose part of its amount is left for a later payment.
    """
    left = list(amounts)
    coverage = [0] * len(amounts)
    for _, indexes in candidates:
        for i in indexes:
            coverage[i] += 1
    uses: list[Use] = []
    forfeited: dict[int, int] = {}
    skipped: dict[int, Reason] = {}
    counts = {CASH: 0, VOUCHER: 0}
    for c, indexes in sorted(candidates, key=lambda x: _amount_order(*x)):
        limit = limits.of(c.kind)
        if limit is not None and counts[c.kind] >= limit:
            skipped[c.id] = _limit_reason(c.kind, limit)
            continue
        budget = c.remaining
        assert budget is not None and budget > 0  # vouchers and cash coupons have an amount
        payable = min(budget, sum(left[i] for i in indexes))
        if auto and c.single_use and 0 < payable < budget:
            skipped[c.id] = _single_use_rest(budget, payable)
            continue
        paid = 0
        for i in sorted(indexes, key=lambda i: (coverage[i], i)):
            take = min(left[i], budget - paid)
            if take > 0:
                uses.append(Use(c.id, i, take))
                left[i] -= take
                paid += take
        if paid == 0:
            skipped[c.id] = _nothing_left()
            continue
        counts[c.kind] += 1
        if c.single_use and budget > paid:
            forfeited[c.id] = budget - paid
    return uses, forfeited, skipped


def discount_amount(base: int, discount_bp: int) -> int:
    """What a discount of ``discount_bp`` (share still paid) takes off ``base`` fen, half-up."""
    return round_rated_to_fen(base * (RATE_PER_FEN // BP_SCALE) * (BP_SCALE - discount_bp))


def _discount_take(c: Coupon, indexes: list[int], left: list[int]) -> int:
    base = sum(left[i] for i in indexes)
    assert c.discount_bp is not None
    take = discount_amount(base, c.discount_bp)
    for cap in (c.max_discount, c.remaining):
        if cap is not None:
            take = min(take, cap)
    return min(take, base)


def _pay_discount_coupons(candidates: list[tuple[Coupon, list[int]]], amounts: list[int],
                          limits: CountLimits) -> _Family:
    """The discount coupons taking most off, one after another, up to the limit."""
    left = list(amounts)
    uses: list[Use] = []
    forfeited: dict[int, int] = {}
    skipped: dict[int, Reason] = {}
    waiting = sorted(candidates, key=lambda x: _amount_order(*x))
    used = 0
    while waiting:
        if limits.discount is not None and used >= limits.discount:
            for c, _ in waiting:
                skipped[c.id] = _limit_reason(DISCOUNT, limits.discount)
            break
        best = max(range(len(waiting)),
                   key=lambda k: (_discount_take(waiting[k][0], waiting[k][1], left), -k))
        c, indexes = waiting.pop(best)
        take = _discount_take(c, indexes, left)
        if take <= 0:
            skipped[c.id] = _reason("zero_amount", "按此券计算的抵扣金额为 0",
                                    "this coupon would take nothing off here")
            for other, _ in waiting:
                skipped[other.id] = skipped[c.id]
            break
        weights = [left[i] for i in indexes]
        for i, share in zip(indexes, split_proportionally(take, weights)):
            if share > 0:
                uses.append(Use(c.id, i, share))
                left[i] -= share
        used += 1
        if c.single_use and c.remaining is not None and c.remaining > take:
            forfeited[c.id] = c.remaining - take
    return uses, forfeited, skipped


# ---------------------------------------------------------------- terms

@dataclass(frozen=True)
class Terms:
    """What an operator grants (or a redemption code redeems to)."""

    kind: str
    pay_mode: str
    face_amount: int | None = None  # vouchers and cash coupons, fen
    discount_bp: int | None = None  # discount coupons: share still paid, 1..9999
    max_discount: int | None = None  # discount coupons: the most taken off in all, fen
    product_scope: str = ALL_BUT
    products: tuple[str, ...] = ()
    order_kinds: tuple[str, ...] = PREPAID_ORDER_KINDS  # prepaid only
    min_months: int | None = None  # prepaid only
    max_months: int | None = None
    threshold: int = 0
    valid_from: datetime | None = None  # None: from the grant or redemption
    valid_until: datetime | None = None  # exclusive; or valid_days after valid_from
    valid_days: int | None = None
    single_use: bool = False

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("valid_from", "valid_until"):
            data[k] = data[k].isoformat() if data[k] is not None else None
        data["products"], data["order_kinds"] = list(self.products), list(self.order_kinds)
        return data

    @classmethod
    def from_json(cls, data: dict) -> Terms:
        data = dict(data)
        for k in ("valid_from", "valid_until"):
            data[k] = datetime.fromisoformat(data[k]) if data[k] is not None else None
        data["products"], data["order_kinds"] = tuple(data["products"]), tuple(data["order_kinds"])
        return cls(**data)


def check_terms(t: Terms) -> Terms:
    """Validate and normalise terms (products sorted, unique); errors name the field."""
    if t.kind not in KINDS:
        raise invalid("kind", "券类型须为 voucher（代金券）/ cash（现金券）/ discount（折扣券）",
                      "kind must be voucher, cash or discount")
    if t.pay_mode not in PAY_MODES:
        raise invalid("pay_mode", "付费模式须为 prepaid 或 postpaid",
                      "pay_mode must be prepaid or postpaid")
    _check_value(t)
    products = _check_products(t)
    kinds = _check_prepaid_limits(t)
    _check_amount("threshold", t.threshold, allow_zero=True)
    _check_validity(t)
    if not isinstance(t.single_use, bool):
        raise invalid("single_use", "single_use 须为布尔值", "single_use must be a boolean")
    return Terms(**{**{k: getattr(t, k) for k in t.__dataclass_fields__},
                    "products": products, "order_kinds": kinds})


def _check_amount(name: str, value, *, allow_zero: bool = False) -> None:
    low = 0 if allow_zero else 1
    if not is_int(value) or not low <= value <= MAX_AMOUNT_FEN:
        raise invalid(name, "金额须为正整数（分）且不超过上限",
                      "amount must be a positive integer (fen) within the limit")


def _check_value(t: Terms) -> None:
    if t.kind in (VOUCHER, CASH):
        _check_amount("face_amount", t.face_amount)
        if t.discount_bp is not None or t.max_discount is not None:
            raise invalid("discount_bp", "只有折扣券有折扣率与抵扣上限",
                          "only discount coupons have a discount and a cap")
        return
    if t.face_amount is not None:
        raise invalid("face_amount", "折扣券没有面额，请给出折扣率与上限",
                      "a discount coupon has no face amount: give discount_bp and max_discount")
    if not is_int(t.discount_bp) or not 1 <= t.discount_bp < BP_SCALE:
        raise invalid("discount_bp", "折扣率须为 1–9999 个基点（应付比例，8000 即 8 折）",
                      "discount_bp must be 1-9999 (the share still paid; 8000 = 20% off)")
    if t.max_discount is not None:
        _check_amount("max_discount", t.max_discount)
    elif not t.single_use:
        raise invalid("single_use", "无抵扣上限的折扣券只能单次使用",
                      "a discount coupon without a cap must be single-use")


def _check_products(t: Terms) -> tuple[str, ...]:
    if t.product_scope not in (ONLY, ALL_BUT):
        raise invalid("product_scope", "适用范围须为 only（指定产品）或 all_but（排除产品）",
                      "product_scope must be only or all_but")
    if isinstance(t.products, str) or not all(isinstance(p, str) and _PRODUCT.match(p)
                                              for p in t.products):
        raise invalid("products", "产品代码格式错误", "malformed product code")
    products = tuple(sorted(set(t.products)))
    if t.product_scope == ONLY and not products:
        raise invalid("products", "指定产品券至少需要一个产品", "list at least one product")
    if len(products) > 200:
        raise invalid("products", "产品至多 200 个", "at most 200 products")
    return products


def _check_prepaid_limits(t: Terms) -> tuple[str, ...]:
    if t.pay_mode == POSTPAID:
        if t.min_months is not None or t.max_months is not None:
            raise invalid("min_months", "购买时长限制仅适用于预付费券",
                          "a duration range is for prepaid coupons only")
        if tuple(t.order_kinds) not in ((), PREPAID_ORDER_KINDS):
            raise invalid("order_kinds", "订单类型限制仅适用于预付费券",
                          "order kinds are for prepaid coupons only")
        return ()
    kinds = tuple(k for k in PREPAID_ORDER_KINDS if k in set(t.order_kinds))
    if not kinds or set(t.order_kinds) - set(PREPAID_ORDER_KINDS):
        raise invalid("order_kinds", "订单类型须为 new / renew / upgrade 中的一种或几种",
                      "order_kinds must be some of new, renew, upgrade")
    for name in ("min_months", "max_months"):
        value = getattr(t, name)
        if value is not None and (not is_int(value) or not 1 <= value <= MAX_MONTHS):
            raise invalid(name, f"购买时长须为 1–{MAX_MONTHS} 个月",
                          f"duration must be 1-{MAX_MONTHS} months")
    if t.min_months is not None and t.max_months is not None and t.min_months > t.max_months:
        raise invalid("max_months", "最长时长不能小于最短时长", "max_months is below min_months")
    return kinds


def _check_validity(t: Terms) -> None:
    for name in ("valid_from", "valid_until"):
        value = getattr(t, name)
        if value is not None and (not isinstance(value, datetime) or value.tzinfo is None):
            raise invalid(name, "时间须带时区", "a time must carry its time zone")
    if (t.valid_until is None) == (t.valid_days is None):
        raise invalid("valid_until", "请给出截止时间或有效天数之一",
                      "give either valid_until or valid_days")
    if t.valid_days is not None and (not is_int(t.valid_days)
                                     or not 1 <= t.valid_days <= MAX_VALID_DAYS):
        raise invalid("valid_days", f"有效天数须为 1–{MAX_VALID_DAYS}",
                      f"valid_days must be 1-{MAX_VALID_DAYS}")
    if t.valid_from is not None and t.valid_until is not None and t.valid_until <= t.valid_from:
        raise invalid("valid_until", "截止时间须晚于生效时间", "valid_until must be after valid_from")


def window(t: Terms, now: datetime) -> tuple[datetime, datetime]:
    """The validity window of a coupon granted or redeemed at ``now`` (never extended later)."""
    start = t.valid_from or now
    end = t.valid_until if t.valid_until is not None else start + timedelta(days=t.valid_days)
    return start, end


def initial_remaining(t: Terms) -> int | None:
    """What a new coupon may pay: its face amount, a discount coupon's cap, or None (uncapped)."""
    return t.face_amount if t.kind != DISCOUNT else t.max_discount


def state_after(remaining: int | None, has_uses: bool, valid_until: datetime,
                now: datetime) -> str:
    """A coupon's stored state: used up, expired, or unused (usable or partly used)."""
    if (remaining is not None and remaining <= 0) or (remaining is None and has_uses):
        return USED
    return EXPIRED if now >= valid_until else UNUSED
