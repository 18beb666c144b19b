"""Pure invoice rules (INV-4, INV-5, INV-8): the tax split of a tax-inclusive amount
(one rounding, half-up), how an application's amount is taken from the account's
buckets and grouped into invoices and lines, and the formats of the invoice number,
the invoice code and the check code. Plain values only: no database, no clock.
docs/invoices.md ("Decisions")."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from feecenter.catalog.rules import TAX_CATEGORIES

KINDS = ("ordinary", "special")  # 数电普票, 数电专票 (INV-2); red invoices: kind "red"
KIND_DIGITS = {"ordinary": "1", "special": "2", "red": "3"}  # in the invoice code
CHANNEL = "1"  # the 1-digit issuing channel of the number: this system
COUNTER_DIGITS = 12  # the sequence part of the 15-digit counter (3-digit entity block first)
MAX_SEQUENCE = 10 ** COUNTER_DIGITS - 1
MAX_BLOCK = 999
# INV-5 / GB/T 2260: the province-level area code of the tax authority, from the place
# named in the selling entity's registered Chinese name; "99" when none is named.
AREAS = (("北京", "11"), ("天津", "12"), ("河北", "13"), ("山西", "14"), ("内蒙古", "15"),
         ("辽宁", "21"), ("吉林", "22"), ("黑龙江", "23"), ("上海", "31"), ("江苏", "32"),
         ("南京", "32"), ("苏州", "32"), ("浙江", "33"), ("杭州", "33"), ("安徽", "34"),
         ("福建", "35"), ("厦门", "35"), ("江西", "36"), ("山东", "37"), ("青岛", "37"),
         ("河南", "41"), ("湖北", "42"), ("武汉", "42"), ("湖南", "43"), ("广东", "44"),
         ("广州", "44"), ("深圳", "44"), ("广西", "45"), ("海南", "46"), ("重庆", "50"),
         ("四川", "51"), ("成都", "51"), ("贵州", "52"), ("云南", "53"), ("西藏", "54"),
         ("陕西", "61"), ("西安", "61"), ("甘肃", "62"), ("青海", "63"), ("宁夏", "64"),
         ("新疆", "65"))
UNKNOWN_AREA = "99"
CHECK_CODE_CONTEXT = b"feecenter.invoices.check_code.v1"


# ---------------------------------------------------------------- tax (INV-4)

def split_tax(amount_fen: int, rate_bp: int) -> tuple[int, int]:
    """(net, tax) of a tax-inclusive amount at ``rate_bp`` (600 = 6 %): tax =
    round_half_up(amount × rate / (10000 + rate)), halves away from zero (a red, negative
    amount splits as the negative of its blue one), net = amount − tax. Integers only.
    1,060.00 at 6 % -> (1,000.00, 60.00); 1,130.00 at 13 % -> (1,000.00, 130.00)."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise TypeError("amount_fen must be an int (fen)")
    if isinstance(rate_bp, bool) or not isinstance(rate_bp, int) or rate_bp < 0:
        raise ValueError("rate_bp must be a non-negative int")
    numerator, denominator = abs(amount_fen) * rate_bp, 10_000 + rate_bp
    tax = (2 * numerator + denominator) // (2 * denominator)  # half-up on the magnitude
    tax = -tax if amount_fen < 0 else tax
    return amount_fen - tax, tax


# ---------------------------------------------------------------- buckets -> invoices

@dataclass(frozen=True)
class Take:
    """Fen taken from one bucket (selling entity, tax category) by an application."""

    entity: str
    tax_category: str
    amount: int


def bucket_order(bucket: tuple[str, str]) -> tuple:
    """The fixed order buckets are filled in: by selling entity code, then by tax
    category in the order of catalog.rules.TAX_CATEGORIES (cloud services, software)."""
    entity, category = bucket
    categories = list(TAX_CATEGORIES)
    return (entity, categories.index(category) if category in categories else len(categories),
            category)


def allocate(amount: int, available: dict[tuple[str, str], int]) -> list[Take]:
    """Take ``amount`` fen from the buckets ``available`` ((entity, category) -> fen),
    filling them whole one after the other in ``bucket_order``: the first buckets are
    used up before the next is touched, so an application makes as few invoices and
    lines as it can and the same request always splits the same way. The caller has
    checked 0 < amount ≤ Σ available."""
    if amount <= 0 or amount > sum(max(v, 0) for v in available.values()):
        raise ValueError("amount must be positive and at most the available total")
    left, takes = amount, []
    for bucket in sorted(available, key=bucket_order):
        if left == 0:
            break
        take = min(left, max(available[bucket], 0))
        if take > 0:
            takes.append(Take(bucket[0], bucket[1], take))
            left -= take
    return takes


def line_of(tax_category: str, amount: int) -> dict:
    """An invoice line: the category's printed name, tax code and rate; the tax split."""
    category = TAX_CATEGORIES[tax_category]
    net, tax = split_tax(amount, category.rate_bp)
    return {"tax_category": tax_category, "item_name": category.name,
            "tax_code": category.tax_code, "rate_bp": category.rate_bp, "amount": amount,
            "net_amount": net, "tax_amount": tax}


def invoices_of(takes: list[Take]) -> list[dict]:
    """One invoice per selling entity, one line per tax category (INV-4): ``{"entity",
    "amount", "net_amount", "tax_amount", "lines"}``; an invoice's net and tax are the
    sums of its lines' (each line rounded once), in entity order."""
    by_entity: dict[str, list[dict]] = {}
    for take in takes:
        by_entity.setdefault(take.entity, []).append(line_of(take.tax_category, take.amount))
    out = []
    for entity in sorted(by_entity):
        lines = by_entity[entity]
        out.append({"entity": entity, "amount": sum(line["amount"] for line in lines),
                    "net_amount": sum(line["net_amount"] for line in lines),
                    "tax_amount": sum(line["tax_amount"] for line in lines), "lines": lines})
    return out


# ---------------------------------------------------------------- numbers (INV-5, INV-8)

def entity_area(name_zh: str) -> str:
    """The 2-digit area of a selling entity: the first place its Chinese name names
    (AREAS, longest match first at the same position), else UNKNOWN_AREA."""
    found = [(name_zh.find(place), -len(place), code) for place, code in AREAS
             if place in (name_zh or "")]
    return min(found)[2] if found else UNKNOWN_AREA


def invoice_number(year: int, area: str, block: int, sequence: int) -> str:
    """The 20-digit number: YY (2) + area (2) + channel (1) + the 15-digit counter,
    which is the entity's 3-digit block and its 12-digit sequence in the year. Blocks
    are given to entities once (issuing), so two entities of one area never share a
    number."""
    if not (len(area) == 2 and area.isdigit() and 1 <= block <= MAX_BLOCK
            and 1 <= sequence <= MAX_SEQUENCE):
        raise ValueError("number parts out of range")
    return f"{year % 100:02d}{area}{CHANNEL}{block:03d}{sequence:0{COUNTER_DIGITS}d}"


def invoice_code(year: int, area: str, block: int, kind: str) -> str:
    """The 12-digit invoice code: area (2) + YY (2) + block (3) + channel (1) + kind
    digit (1: ordinary, 2: special, 3: red) + "000"."""
    return f"{area}{year % 100:02d}{block:03d}{CHANNEL}{KIND_DIGITS[kind]}000"


def check_code(master_key: str, number: str) -> str:
    """The 20-digit check code (校验码): HMAC-SHA256 of the invoice number, keyed by a
    key derived from the runtime's master key, read as an integer mod 10^20 and
    zero-padded. Whoever holds the number alone cannot make it (INV-8)."""
    key = hmac.new(master_key.encode(), CHECK_CODE_CONTEXT, hashlib.sha256).digest()
    digest = hmac.new(key, number.encode(), hashlib.sha256).digest()
    return f"{int.from_bytes(digest, 'big') % 10 ** 20:020d}"


__all__ = ["KINDS", "split_tax", "Take", "bucket_order", "allocate", "line_of", "invoices_of",
           "entity_area", "invoice_number", "invoice_code", "check_code"]
