"""Money: integer amounts, parsing, formatting and the one rounding rule.

Two scales exist. Balances, ledger postings, deductions, invoices and
withdrawals are in **fen** (0.01 yuan). Rated usage is in **1e-8 yuan**
("micro" below, RATE_SCALE per yuan). Floats never touch money; ``Decimal``
appears only here, at the edges. ``round_rated_to_fen`` is the only place a
rated amount becomes fen: half-up (四舍五入), i.e. halves away from zero.
"""

from __future__ import annotations

import re

from feecenter.errors import invalid

FEN_PER_YUAN = 100
RATE_SCALE = 100_000_000  # rated amounts: 1e-8 yuan
RATE_PER_FEN = RATE_SCALE // FEN_PER_YUAN
MAX_AMOUNT_FEN = 999_999_999_999  # 9,999,999,999.99 yuan: above this an input is absurd

# re.ASCII: without it \d (and int()) accept any Unicode digit, "１２.３０" or "١٢".
_YUAN = re.compile(r"^(?P<sign>[+-]?)(?P<int>\d{1,13})(?:\.(?P<frac>\d{1,2}))?$", re.ASCII)
_RATED = re.compile(r"^(?P<sign>[+-]?)(?P<int>\d{1,13})(?:\.(?P<frac>\d{1,8}))?$", re.ASCII)


def parse_yuan(text: object, field: str = "amount", *, allow_negative: bool = False,
               allow_zero: bool = False) -> int:
    """Parse a yuan string such as "12.30" into fen (1230), strictly.

    Refused: more than 2 decimals, signs where not allowed, "-0", empty,
    non-numeric text, exponents, and anything above MAX_AMOUNT_FEN.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise invalid(field, "金额必须是以元为单位的字符串，如 \"12.30\"",
                      'amount must be a yuan string such as "12.30"')
    raw = str(text).strip()
    match = _YUAN.match(raw)
    if not match:
        raise invalid(field, f"金额格式错误：{raw!r}（最多两位小数）",
                      f"malformed amount {raw!r} (at most 2 decimals)")
    fen = int(match["int"]) * FEN_PER_YUAN + int((match["frac"] or "").ljust(2, "0"))
    return _checked(fen, match["sign"] == "-", field, allow_negative, allow_zero, raw)


def parse_rated(text: object, field: str = "amount") -> int:
    """Parse a yuan string with up to 8 decimals into 1e-8 yuan units."""
    raw = str(text).strip()
    match = _RATED.match(raw)
    if not match or isinstance(text, (bool, float)):
        raise invalid(field, f"金额格式错误：{raw!r}（最多八位小数）",
                      f"malformed amount {raw!r} (at most 8 decimals)")
    value = int(match["int"]) * RATE_SCALE + int((match["frac"] or "").ljust(8, "0"))
    return -value if match["sign"] == "-" else value


def _checked(fen: int, negative: bool, field: str, allow_negative: bool, allow_zero: bool,
             raw: str) -> int:
    if negative and (fen == 0 or not allow_negative):
        raise invalid(field, f"金额不能为负数：{raw}", f"amount must not be negative: {raw}")
    if fen == 0 and not allow_zero:
        raise invalid(field, "金额不能为零", "amount must not be zero")
    if fen > MAX_AMOUNT_FEN:
        raise invalid(field, f"金额过大：{raw}", f"amount is too large: {raw}")
    return -fen if negative else fen


def format_yuan(fen: int) -> str:
    """1230 -> "12.30"; -5 -> "-0.05"."""
    if not isinstance(fen, int) or isinstance(fen, bool):
        raise TypeError(f"fen must be int, got {type(fen).__name__}")
    sign = "-" if fen < 0 else ""
    whole, part = divmod(abs(fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{part:02d}"


def format_rated(micro: int) -> str:
    """123456789 (1e-8 yuan) -> "1.23456789"."""
    sign = "-" if micro < 0 else ""
    whole, part = divmod(abs(micro), RATE_SCALE)
    return f"{sign}{whole}.{part:08d}"


def round_rated_to_fen(micro: int) -> int:
    """The one rounding rule: 1e-8 yuan to fen, half-up (halves away from zero)."""
    sign = -1 if micro < 0 else 1
    return sign * ((abs(micro) + RATE_PER_FEN // 2) // RATE_PER_FEN)


def split_proportionally(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` fen by ``weights`` exactly (largest remainder), summing to total."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must have a positive sum")
    shares = [total * w // weight_sum for w in weights]
    remainders = sorted(range(len(weights)), key=lambda i: -(total * weights[i] % weight_sum))
    for i in remainders[: total - sum(shares)]:
        shares[i] += 1
    return shares
