"""feecenter.money: strict parsing, formatting, the one rounding rule, exact splits.

Pure functions: no database, so these run once (not per backend).
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from feecenter.errors import InvalidInput
from feecenter.money import (FEN_PER_YUAN, MAX_AMOUNT_FEN, RATE_PER_FEN, RATE_SCALE,
                             format_rated, format_yuan, parse_rated, parse_yuan,
                             round_rated_to_fen, split_proportionally)

CJK = re.compile(r"[\u4e00-\u9fff]")
fen_amounts = st.integers(min_value=1, max_value=MAX_AMOUNT_FEN)
signed_fen = st.integers(min_value=-MAX_AMOUNT_FEN, max_value=MAX_AMOUNT_FEN)


def _assert_bilingual(exc: InvalidInput, field: str) -> None:
    assert exc.field == field
    assert exc.code == "InvalidInput"
    assert CJK.search(exc.message_zh), exc.message_zh
    assert re.search(r"[A-Za-z]{3,} [A-Za-z]{2,}", exc.message_en), exc.message_en
    assert f"[{field}]" in exc.message  # the combined message names the field too
    assert exc.to_dict()["field"] == field


# ---------------------------------------------------------------- parse_yuan

@pytest.mark.parametrize("text, fen", [
    ("12.30", 1230), ("12.3", 1230), ("12", 1200), ("0.01", 1), ("0.10", 10),
    ("007.05", 705), (" 12.30 ", 1230), ("+1.00", 100), ("9999999999.99", MAX_AMOUNT_FEN),
    (12, 1200),
])
def test_parse_yuan_accepts_plain_decimal_yuan(text, fen):
    assert parse_yuan(text) == fen


@pytest.mark.parametrize("text", [
    "1.234", "1.", ".5", "abc", "", "   ", "1e5", "1E5", "0x10", "1,000.00", "1 000",
    "12.30元", "¥12.30", "--1", "+-1", "1.2.3", "NaN", "inf", "12_000",
    "１２.３０",  # full-width digits
    "١٢.٣٠",  # Arabic-Indic digits: Python's \d and int() accept them, money must not
    "12345678901234",  # 14 integer digits
])
def test_parse_yuan_refuses_malformed_text(text):
    with pytest.raises(InvalidInput) as info:
        parse_yuan(text, "price")
    _assert_bilingual(info.value, "price")


@pytest.mark.parametrize("value", [12.3, 1e5, None, True, False, Decimal("12.30"), b"12.30",
                                   ["12.30"]])
def test_parse_yuan_refuses_non_string_types(value):
    with pytest.raises(InvalidInput) as info:
        parse_yuan(value, "amount")
    _assert_bilingual(info.value, "amount")


def test_parse_yuan_refuses_absurdly_large_amounts():
    assert parse_yuan("9999999999.99") == MAX_AMOUNT_FEN
    for text in ("10000000000.00", "9999999999999.99"):
        with pytest.raises(InvalidInput) as info:
            parse_yuan(text, "total")
        _assert_bilingual(info.value, "total")
    with pytest.raises(InvalidInput):
        parse_yuan("-10000000000", "total", allow_negative=True)


def test_negative_amounts_only_when_allowed():
    for text in ("-1.00", "-0.01"):
        with pytest.raises(InvalidInput) as info:
            parse_yuan(text, "amount")
        _assert_bilingual(info.value, "amount")
        assert "negative" in info.value.message_en
    assert parse_yuan("-1.00", allow_negative=True) == -100
    assert parse_yuan("-0.01", allow_negative=True) == -1
    assert parse_yuan("-12.3", allow_negative=True) == -1230


def test_zero_only_when_allowed():
    for text in ("0", "0.00", "0.0", "+0"):
        with pytest.raises(InvalidInput) as info:
            parse_yuan(text, "amount")
        _assert_bilingual(info.value, "amount")
        assert parse_yuan(text, allow_zero=True) == 0


@pytest.mark.parametrize("text", ["-0", "-0.00", "-0.0"])
def test_minus_zero_is_refused_even_when_negatives_and_zero_are_allowed(text):
    with pytest.raises(InvalidInput) as info:
        parse_yuan(text, "delta", allow_negative=True, allow_zero=True)
    _assert_bilingual(info.value, "delta")


def test_error_names_the_field_given():
    with pytest.raises(InvalidInput) as info:
        parse_yuan("1.234", "RechargeAmount")
    assert info.value.field == "RechargeAmount"
    assert "1.234" in info.value.message_en  # the offending text is quoted back


@given(fen_amounts)
def test_parse_of_format_is_identity(fen):
    assert parse_yuan(format_yuan(fen)) == fen


@given(signed_fen)
def test_parse_of_format_is_identity_for_signed_amounts(fen):
    assume(fen != 0)
    assert parse_yuan(format_yuan(fen), allow_negative=True) == fen


@given(st.integers(min_value=0, max_value=MAX_AMOUNT_FEN // 100),
       st.one_of(st.none(), st.integers(0, 9).map(str), st.integers(0, 99).map("{:02d}".format)),
       st.sampled_from(["", "+", "-"]))
def test_format_of_parse_gives_the_canonical_text(whole, frac, sign):
    text = f"{sign}{whole}" + (f".{frac}" if frac is not None else "")
    expected = Decimal(text).quantize(Decimal("0.01"))
    assume(expected != 0)
    assert format_yuan(parse_yuan(text, allow_negative=True)) == str(expected)


@given(st.decimals(min_value=Decimal("0.01"), max_value=Decimal("9999999999.99"), places=2))
def test_parse_yuan_agrees_with_decimal(amount):
    assert parse_yuan(str(amount)) == int(amount * FEN_PER_YUAN)


# ---------------------------------------------------------------- format_yuan

@pytest.mark.parametrize("fen, text", [
    (0, "0.00"), (1, "0.01"), (5, "0.05"), (10, "0.10"), (1230, "12.30"), (100, "1.00"),
    (-5, "-0.05"), (-1230, "-12.30"), (MAX_AMOUNT_FEN, "9999999999.99"),
    (123456789012, "1234567890.12"),
])
def test_format_yuan(fen, text):
    assert format_yuan(fen) == text


@pytest.mark.parametrize("value", [1.5, Decimal("1"), "100", True, None])
def test_format_yuan_refuses_non_integers(value):
    with pytest.raises(TypeError):
        format_yuan(value)


# ---------------------------------------------------------------- rated amounts

@pytest.mark.parametrize("text, micro", [
    ("0.00000001", 1), ("1", RATE_SCALE), ("1.5", 150_000_000), ("0.12345678", 12_345_678),
    ("-0.00000001", -1), ("12.30", 1_230_000_000), (" 3.14159265 ", 314_159_265),
])
def test_parse_rated(text, micro):
    assert parse_rated(text) == micro


@pytest.mark.parametrize("text", ["0.123456789", "1e-8", "abc", "", "1.", ".5", "1,5",
                                  "１.５", 1.5, None, True])
def test_parse_rated_refuses_malformed(text):
    with pytest.raises(InvalidInput) as info:
        parse_rated(text, "unit_price")
    _assert_bilingual(info.value, "unit_price")


@given(st.integers(min_value=-10**20, max_value=10**20))
def test_rated_round_trip(micro):
    assert parse_rated(format_rated(micro)) == micro


# ---------------------------------------------------------------- rounding

@pytest.mark.parametrize("micro, fen", [
    (0, 0),
    (499_999, 0), (500_000, 1), (500_001, 1), (1_499_999, 1), (1_500_000, 2),
    (2_500_000, 3),  # half-up, not banker's rounding (which would give 2)
    (123_456_789, 123),  # 1.23456789 -> 1.23
    (123_500_000, 124),  # 1.235 -> 1.24
    (-499_999, 0), (-500_000, -1), (-1_500_000, -2), (-2_500_000, -3), (-123_500_000, -124),
    (RATE_PER_FEN, 1), (-RATE_PER_FEN, -1),
])
def test_round_rated_to_fen_half_up_away_from_zero(micro, fen):
    assert round_rated_to_fen(micro) == fen


@given(st.integers(min_value=-10**18, max_value=10**18))
def test_rounding_matches_decimal_half_up(micro):
    exact = Decimal(micro) / RATE_SCALE
    expected = int(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * FEN_PER_YUAN)
    assert round_rated_to_fen(micro) == expected


@given(st.integers(min_value=-10**18, max_value=10**18))
def test_rounding_is_symmetric_and_within_half_a_fen(micro):
    fen = round_rated_to_fen(micro)
    assert round_rated_to_fen(-micro) == -fen
    assert abs(fen * RATE_PER_FEN - micro) <= RATE_PER_FEN // 2


@given(fen_amounts)
def test_whole_fen_survive_rounding(fen):
    assert round_rated_to_fen(fen * RATE_PER_FEN) == fen
    assert round_rated_to_fen(parse_rated(format_yuan(fen))) == fen


# ---------------------------------------------------------------- splitting

@pytest.mark.parametrize("total, weights, shares", [
    (100, [1, 1, 1], [34, 33, 33]),
    (10, [1, 0, 1], [5, 0, 5]),
    (7, [3], [7]),
    (0, [5, 5], [0, 0]),
    (1, [1, 1], [1, 0]),
    (1000, [1, 2, 3, 4], [100, 200, 300, 400]),
    (5, [2, 1], [3, 2]),  # 3.33 -> 3, 1.67 -> 2: largest remainder wins the spare fen
])
def test_split_proportionally_examples(total, weights, shares):
    assert split_proportionally(total, weights) == shares


@pytest.mark.parametrize("weights", [[], [0, 0], [0]])
def test_split_proportionally_needs_positive_weights(weights):
    with pytest.raises(ValueError):
        split_proportionally(100, weights)


@given(st.integers(min_value=-10**12, max_value=10**12),
       st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=12))
def test_split_sums_exactly_and_each_share_is_floor_or_ceil(total, weights):
    assume(sum(weights) > 0)
    shares = split_proportionally(total, weights)
    assert len(shares) == len(weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights):
        exact = Fraction(total * weight, sum(weights))
        assert exact - 1 < share < exact + 1
        if weight == 0:
            assert share == 0
