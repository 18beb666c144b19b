"""The pure remittance rules (no database): receiving codes, matching the number
paid to, payer names, holds, and the decision per transfer (RMT-1, RMT-3..7)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from feecenter.errors import ConfigurationError, InvalidInput
from feecenter.remittances import rules
from feecenter.remittances.rules import AccountPayers, Payee
from feecenter.remittances.service import ReceivingBank, Settings
from feecenter.remittances.transfer import Transfer

PREFIXES = ("755912345600001", "110998765400002")
ENTITY = AccountPayers("北京示例科技有限公司", frozenset())


@pytest.mark.spec("RMT-1")
def test_a_code_is_nine_digits_and_a_luhn_digit_so_a_mistyped_one_is_unknown():
    code = rules.code_from(123_456_789)
    assert code[:9] == "123456789" and len(code) == 10 and rules.is_valid_code(code)
    assert rules.code_from(42) == "0000000422"  # leading zeros kept: always 10 digits
    for i in range(10):  # every single-digit typo is caught
        for digit in "0123456789":
            typo = code[:i] + digit + code[i + 1:]
            assert rules.is_valid_code(typo) == (typo == code), typo
    swapped = code[0] + code[2] + code[1] + code[3:]  # neighbours swapped (1 <-> 2)
    assert not rules.is_valid_code(swapped)
    with pytest.raises(ValueError):
        rules.code_from(10 ** 9)


@pytest.mark.spec("RMT-1", "RMT-3")
def test_the_number_paid_to_is_matched_by_prefix_and_code():
    code = rules.code_from(7)
    assert rules.read_payee(PREFIXES[0] + code, PREFIXES) == Payee(rules.OURS, PREFIXES[0], code)
    assert rules.read_payee(f"{PREFIXES[1][:5]} {PREFIXES[1][5:]}-{code}", PREFIXES) == \
        Payee(rules.OURS, PREFIXES[1], code)  # as banks print numbers
    bad = code[:-1] + str((int(code[-1]) + 1) % 10)
    assert rules.read_payee(PREFIXES[0] + bad, PREFIXES) == Payee(rules.OURS, PREFIXES[0], None)
    assert rules.read_payee(PREFIXES[0], PREFIXES) == Payee(rules.OURS, PREFIXES[0], None)  # bare
    assert rules.read_payee(PREFIXES[0] + code[:6], PREFIXES).code is None  # short code
    assert rules.read_payee("621700" + "1" * 19, PREFIXES).kind == rules.FOREIGN
    assert rules.read_payee("", PREFIXES).kind == rules.FOREIGN
    assert rules.read_payee("７５５９１２３４５６０００01" + code, PREFIXES).kind == rules.FOREIGN


@pytest.mark.spec("RMT-4")
def test_payer_names_compare_after_nfkc_without_spaces_and_casefolded():
    n = rules.normalize_name
    assert n("腾讯云计算（北京）有限责任公司") == n("腾讯云计算 (北京) 有限责任公司")
    assert n("ＡＣＭＥ　Ｌｔｄ") == n("acme ltd") == "acmeltd"
    assert n("北京示例科技") != n("北京示例科技有限公司")


@pytest.mark.spec("RMT-4")
def test_the_payer_must_be_the_verified_entity_or_a_registered_payer():
    assert rules.verify_payer("北京示例科技有限公司 ", ENTITY) == (rules.CREDITED, None)
    state, reason = rules.verify_payer("上海代付有限公司", ENTITY)
    assert state == rules.PENDING_SIGNATURE and "上海代付有限公司" in reason and "签署" in reason
    registered = AccountPayers("北京示例科技有限公司", frozenset({rules.normalize_name("上海代付有限公司")}))
    assert rules.verify_payer("上海代付有限公司", registered)[0] == rules.CREDITED
    unverified = AccountPayers(None, frozenset())
    assert rules.verify_payer("北京示例科技有限公司", unverified)[0] == rules.PENDING_CONFIRMATION
    assert rules.verify_payer("", AccountPayers("", frozenset({""})))[0] == rules.PENDING_CONFIRMATION


@pytest.mark.spec("RMT-6", "RMT-7")
def test_restricted_memos_and_foreign_currency_are_held():
    keywords = ("保证金", "押金")
    assert rules.hold_reason("CNY", "货款 2026-03", keywords) is None
    assert "保证金" in rules.hold_reason("CNY", "投标保 证金", keywords)  # spacing does not hide it
    assert "押金" in rules.hold_reason("CNY", "设备押金", keywords)
    assert "USD" in rules.hold_reason("USD", "invoice 1", keywords)


@pytest.mark.spec("RMT-3", "RMT-6")
def test_one_decision_per_transfer():
    ours, hold = Payee(rules.OURS, PREFIXES[0], "0000000422"), "held!"
    assert rules.decide(Payee(rules.FOREIGN), None, None, None, "x").state == rules.NOT_OURS
    assert rules.decide(ours, 7, hold, ENTITY, "北京示例科技有限公司") == \
        rules.Decision(rules.HELD, 7, hold)  # held even though the payer matches
    assert rules.decide(Payee(rules.OURS, PREFIXES[0], None), None, None, None, "x").state == \
        rules.UNASSIGNED
    assert rules.decide(ours, 7, None, ENTITY, "北京示例科技有限公司") == \
        rules.Decision(rules.CREDITED, 7, None)


@pytest.mark.spec("ACC-5")
def test_a_transfer_to_a_cancelled_account_is_held_never_credited():
    ours = Payee(rules.OURS, PREFIXES[0], "0000000422")
    gone = replace(ENTITY, cancelled=True)
    cancelled = rules.Decision(rules.HELD, 7, rules.ACCOUNT_CANCELLED_REASON)
    assert rules.decide(ours, 7, None, gone, "北京示例科技有限公司") == cancelled
    assert rules.decide(ours, 7, "held!", gone, "x") == cancelled  # the reason that decides
    assert rules.decide(Payee(rules.FOREIGN), 7, None, gone, "x").state == rules.NOT_OURS
    assert rules.verify_account("北京示例科技有限公司", gone) == (
        rules.HELD, rules.ACCOUNT_CANCELLED_REASON)
    assert rules.verify_account("北京示例科技有限公司", ENTITY) == (rules.CREDITED, None)
    assert "注销" in rules.ACCOUNT_CANCELLED_REASON and "cancelled" in rules.ACCOUNT_CANCELLED_REASON


def transfer(**kw) -> Transfer:
    base = dict(bank_reference="R1", receiving_account=PREFIXES[0], payee_account=PREFIXES[0],
                payer_name="p", payer_account="1", payer_bank="b", amount=100, currency="CNY",
                memo="", value_date=date(2026, 3, 2), line=3)
    return Transfer(**{**base, **kw})


@pytest.mark.parametrize("field,value", [
    ("amount", 0), ("amount", -5), ("amount", 1.5), ("currency", "usd"), ("currency", "CN"),
    ("bank_reference", ""), ("bank_reference", "x" * 65), ("payer_name", "a\x00b"),
    ("memo", "\ud800"), ("value_date", "2026-03-02")])
def test_a_line_that_cannot_be_stored_is_refused_naming_field_and_line(field, value):
    with pytest.raises(InvalidInput) as refused:
        rules.check_transfer(transfer(**{field: value}))
    assert refused.value.field == field and refused.value.details["line"] == 3
    assert "第 3 行" in refused.value.message_zh and "line 3" in refused.value.message_en


def test_the_content_digest_ignores_only_where_the_line_was_read():
    one = transfer()
    assert rules.content_digest(one) == rules.content_digest(replace(one, line=99))
    assert rules.content_digest(one) != rules.content_digest(replace(one, amount=101))


@pytest.mark.spec("RMT-1", "RMT-6")
def test_settings_come_from_the_environment_with_defaults():
    default = Settings.from_env({})
    assert default.prefixes == PREFIXES and default.restricted_keywords == ("保证金",)
    env = {"FEECENTER_REMITTANCE_PREFIXES": "123456789012345",
           "FEECENTER_REMITTANCE_BANKS": "招商银行|北京分行",
           "FEECENTER_REMITTANCE_PAYEE": "示例云有限公司",
           "FEECENTER_REMITTANCE_RESTRICTED_KEYWORDS": "押金, 保证金"}
    custom = Settings.from_env(env)
    assert custom.banks == (ReceivingBank("123456789012345", "招商银行", "北京分行"),)
    assert custom.payee_entity == "示例云有限公司"
    assert custom.restricted_keywords == ("保证金", "押金")
    for bad in ({"FEECENTER_REMITTANCE_PREFIXES": "12345"},
                {"FEECENTER_REMITTANCE_PREFIXES": "123456789012345,123456789012345"},
                {"FEECENTER_REMITTANCE_PREFIXES": "1" * 15 + ",2" * 1 + "2" * 14 + ",3" * 1 + "3" * 14},
                {"FEECENTER_REMITTANCE_BANKS": "only-one-part"}):
        with pytest.raises(ConfigurationError):
            Settings.from_env(bad)
