"""Strict input on the Tencent-compatible endpoint (issue #16; docs/api.md, strict input): each defect
a hostile client found, as a plain example.

Tencent's codes: a parameter of the wrong JSON type (or a body that is not one
JSON object, or repeats a key) is ``InvalidParameter``, a well-typed value that
is out of bounds or malformed ``InvalidParameterValue``, an undocumented name
``UnknownParameter``; the message names the parameter, in the language of
X-TC-Language, and nothing is written.
"""

from __future__ import annotations

import re

import pytest
from tencentcloud.billing.v20180709 import models

from feecenter.compat.params import PARAMS, Bool, Int, ListOf, Obj, Text
from feecenter.errors import InvalidInput
from feecenter.orders.rules import parse_order_ref
from tests.compat_harness import Shop
from tests.test_compat_fuzz import sdk_parameters

_MODEL_FIELD = re.compile(r":type (\w+): ")

pytestmark = pytest.mark.spec("XTR-5")


def refused(shop: Shop, action: str, body, code: str, field: str, *, english=False) -> str:
    """Assert ``body`` is refused with ``code`` naming ``field`` and writes nothing."""
    before = shop.written()
    response = shop.call(action, body, english=english)
    error = response.get("Error")
    assert error is not None, response
    assert (error["Code"], error["Message"].split(":")[0]) == (code, field), error
    assert response["RequestId"] and shop.written() == before
    return error["Message"]


def deals_window(shop: Shop, **params) -> dict:
    return {"StartTime": "2026-03-01 00:00:00", "EndTime": "2026-03-31 00:00:00", **params}


# ---------------------------------------------------------------- the defects found

def test_bill_detail_project_id_beyond_bigint_is_refused(compat_shop):
    # was: InternalError (the integer reached the database)
    refused(compat_shop, "DescribeBillDetail", {"Month": "2026-03", "ProjectId": 10**30},
            "InvalidParameterValue", "ProjectId")


@pytest.mark.spec("ORD-3", "CPN-1")
def test_pay_deals_voucher_id_beyond_bigint_is_refused(compat_shop):
    # was: InternalError
    shop = compat_shop
    order = shop.fresh_order()
    refused(shop, "PayDeals", {"OrderIds": [order], "VoucherIds": ["9" * 19]},
            "InvalidParameterValue", "VoucherIds")
    assert shop.order_state(order)["state"] == "unpaid"


@pytest.mark.spec("ORD-3", "CPN-1")
@pytest.mark.parametrize("digit", ["١", "１", "¹"])
def test_pay_deals_voucher_id_in_other_digits_is_refused_and_no_coupon_used(compat_shop, digit):
    # was: "١" read as 1 — the order paid with coupon 1
    shop = compat_shop
    order = shop.fresh_order()
    assert shop.vouchers[0] == "1"
    refused(shop, "PayDeals", {"OrderIds": [order], "VoucherIds": [digit]},
            "InvalidParameterValue", "VoucherIds")
    row = shop.order_state(order)
    assert (row["state"], row["paid_coupon"]) == ("unpaid", 0)


@pytest.mark.parametrize("params, field", [
    ({"StatusSet": [[1]]}, "StatusSet"),
    ({"StatusSet": [1, "2"]}, "StatusSet"),
    ({"Status": {"a": 1}}, "Status"),
    ({"Status": "4"}, "Status"),
    ({"ResourceId": {"a": 1}}, "ResourceId"),
    ({"ResourceId": ["cvm-1"]}, "ResourceId"),
    ({"OrderId": 202603020000000001}, "OrderId"),
])
def test_describe_deals_badly_typed_parameter_is_invalid_parameter(compat_shop, params, field):
    # was: InternalError (unhashable list, a dict bound into SQL), or a number read as a string
    refused(compat_shop, "DescribeDealsByCond", deals_window(compat_shop, **params),
            "InvalidParameter", field)


@pytest.mark.parametrize("action, ref_field, ref", [
    ("DescribeDealsByCond", "OrderId", "²"),
    ("DescribeDealsByCond", "BigDealId", "²" * 18),
    ("PayDeals", "OrderIds", ["²"]),
    ("PayDeals", "OrderIds", ["٢٠٢٦٠٣٠٢٠٠٠٠٠٠٠٠٠١"]),
])
def test_order_reference_in_other_digits_is_refused(compat_shop, action, ref_field, ref):
    # was: InternalError ("²".isdigit() is True, int("²") raises)
    body = {ref_field: ref} if action == "PayDeals" else deals_window(compat_shop, **{
        ref_field: ref})
    refused(compat_shop, action, body, "InvalidParameterValue", ref_field)


@pytest.mark.parametrize("ref", ["²", "²" * 18, "١٢", "１２", "-1", "1_0", "", True])
def test_parse_order_ref_takes_ascii_digits_only(ref):
    with pytest.raises(InvalidInput) as err:
        parse_order_ref(ref, "order")
    assert err.value.field == "order"
    assert parse_order_ref(" 202603020000000007 ", "order") == 7
    assert parse_order_ref("42", "order") == 42


@pytest.mark.parametrize("action, params, field", [
    ("PayDeals", {"AutoVoucher": True}, "AutoVoucher"),
    ("PayDeals", {"AutoVoucher": "1"}, "AutoVoucher"),
    ("PayDeals", {"OrderIds": [7]}, "OrderIds"),
    ("DescribeBillList", {"WithZeroAmount": True}, "WithZeroAmount"),
    ("DescribeBillList", {"Limit": "10"}, "Limit"),
    ("DescribeBillList", {"Offset": 1.0}, "Offset"),
    ("DescribeBillList", {"PayType": "deduct"}, "PayType"),
    ("DescribeBillDetail", {"ProjectId": True}, "ProjectId"),
    ("DescribeBillDetail", {"Month": 202603}, "Month"),
    ("DescribeAccountBalance", {"TempCredit": 1}, "TempCredit"),
    ("DescribeAccountBalance", {"TempCredit": None}, "TempCredit"),
])
def test_booleans_strings_and_numbers_pass_only_as_documented(compat_shop, action, params, field):
    # was: AutoVoucher true/"1" and WithZeroAmount true read as 1, TempCredit 1 as true,
    # OrderIds [7] as order 7
    shop = compat_shop
    base = {"DescribeBillList": deals_window(shop), "DescribeBillDetail": {"Month": "2026-03"},
            "PayDeals": {"OrderIds": [shop.fresh_order()]}}.get(action, {})
    refused(shop, action, {**base, **params}, "InvalidParameter", field)


@pytest.mark.spec("ORD-3")
def test_duplicate_keys_are_refused_not_last_one_wins(compat_shop):
    # was: the last OrderIds taken (and paid)
    shop = compat_shop
    first, second = shop.fresh_order(), shop.fresh_order()
    body = f'{{"OrderIds": ["{first}"], "OrderIds": ["{second}"]}}'.encode()
    refused(shop, "PayDeals", body, "InvalidParameter", "OrderIds")
    assert shop.order_state(second)["state"] == "unpaid"
    refused(shop, "DescribeBillList",
            b'{"StartTime": "2026-03-01 00:00:00", "EndTime": "2026-03-31 00:00:00",'
            b' "Limit": 1, "Limit": 100}', "InvalidParameter", "Limit")


@pytest.mark.spec("ORD-3")
def test_unknown_parameter_is_refused_not_ignored(compat_shop):
    # was: ignored — a mistyped "Voucherids" paid the order without the voucher
    shop = compat_shop
    order = shop.fresh_order()
    refused(shop, "PayDeals", {"OrderIds": [order], "Voucherids": [shop.vouchers[0]]},
            "UnknownParameter", "Voucherids")
    assert shop.order_state(order)["state"] == "unpaid"
    response = shop.call("DescribeAccountBalance", b'{"\\ud800": 1}')
    assert response["Error"]["Code"] == "UnknownParameter"  # and the answer is valid UTF-8


@pytest.mark.parametrize("action, params, field", [
    ("DescribeBillDetail", {"Month": "2026-03", "ResourceId": "cvm\x00"}, "ResourceId"),
    ("DescribeBillDetail", {"Month": "2026-03", "ProductCode": "\ud800"}, "ProductCode"),
    ("DescribeDealsByCond", {"ResourceId": "x" * 257}, "ResourceId"),
    ("DescribeBillDetail", {"Month": "9999-12"}, "Month"),
    ("DescribeBillDetail", {"Month": "0001-01"}, "Month"),
    ("DescribeBillDetail", {"Month": "２０２６-03"}, "Month"),
    ("DescribeBillDetail", {"Month": "2026-0_3"}, "Month"),
    ("DescribeDealsByCond", {"StartTime": "0001-01-01 00:00:00"}, "StartTime"),
    ("DescribeDealsByCond", {"StartTime": "２０２６-03-01 00:00:00"}, "StartTime"),
    ("DescribeBillDetail", {"Month": "2026-03", "Limit": 301}, "Limit"),
    ("DescribeDealsByCond", {"Offset": 2**63}, "Offset"),
    ("DescribeDealsByCond", {"StatusSet": [0]}, "StatusSet"),
])
def test_out_of_bounds_or_unstorable_values_are_invalid_parameter_value(compat_shop, action,
                                                                        params, field):
    # was: InternalError (NUL on PostgreSQL, a lone surrogate on SQLite, year 10000 or 0,
    # an integer beyond BIGINT), or "２０２６" read as 2026
    body = deals_window(compat_shop, **params) if action == "DescribeDealsByCond" else params
    refused(compat_shop, action, body, "InvalidParameterValue", field)


@pytest.mark.parametrize("body", [b"[" * 5000, b"[]", b"1", b'"x"', b"{", b'{"Limit": NaN}'])
def test_a_body_that_is_not_one_json_object_is_invalid_parameter(compat_shop, body):
    # was: InternalError for deep nesting (RecursionError in json.loads)
    refused(compat_shop, "DescribeBillList", body, "InvalidParameter", "body")


@pytest.mark.spec("ORD-3")
def test_agent_payment_is_refused_not_paid_by_the_account(compat_shop):
    # was: AgentPay ignored — the account paid what it asked an agent to pay
    shop = compat_shop
    order = shop.fresh_order()
    refused(shop, "PayDeals", {"OrderIds": [order], "AgentPay": 1}, "InvalidParameterValue",
            "AgentPay")
    assert shop.order_state(order)["state"] == "unpaid"


@pytest.mark.spec("ACC-2")
def test_bill_detail_of_another_payer_is_refused_not_answered_with_ones_own(compat_shop):
    # was: PayerUin ignored — the caller's own lines came back as the other payer's
    shop = compat_shop
    refused(shop, "DescribeBillDetail", {"Month": "2026-03", "PayerUin": str(shop.uin + 1)},
            "UnauthorizedOperation", "PayerUin")
    own = shop.call("DescribeBillDetail", {"Month": "2026-03", "PayerUin": str(shop.uin)})
    assert own["Total"] == 1 and own["DetailSet"][0]["PayerUin"] == str(shop.uin)


def test_messages_follow_x_tc_language(compat_shop):
    shop = compat_shop
    body = deals_window(shop, Limit="10")
    assert refused(shop, "DescribeBillList", body, "InvalidParameter", "Limit",
                   english=True) == "Limit: Limit must be a JSON integer"
    assert refused(shop, "DescribeBillList", body, "InvalidParameter",
                   "Limit") == "Limit: Limit 必须是整数"


def test_well_typed_requests_still_work(compat_shop):
    shop = compat_shop
    order = shop.fresh_order()
    paid = shop.call("PayDeals", {"OrderIds": [order], "VoucherIds": [shop.vouchers[0]],
                                  "AgentPay": 0})
    assert paid["OrderIds"] == [order] and shop.order_state(order)["paid_coupon"] == 30_00
    listing = shop.call("DescribeDealsByCond", deals_window(shop, StatusSet=[2, 4],
                                                            OrderId=order))
    assert listing["TotalCount"] == 1
    assert shop.call("DescribeAccountBalance", {"TempCredit": True})["Uin"] == shop.uin
    assert shop.call("DescribeBillList", deals_window(shop, Limit=5, WithZeroAmount=1,
                                                      PayType=["all"]))["Total"] >= 1


# ---------------------------------------------------------------- the declaration

KINDS = {"int": Int, "str": Text, "bool": Bool}


@pytest.mark.parametrize("action", sorted(PARAMS))
def test_every_sdk_parameter_is_declared_with_its_documented_type(action):
    declared = PARAMS[action]
    for name, kind in sdk_parameters(action).items():
        param = declared.get(name)
        if kind.startswith("list of "):
            assert isinstance(param, ListOf), (name, kind)
            param, kind = param.item, kind.removeprefix("list of ")
        if kind.startswith(":class:"):  # a model as a parameter: an object of its fields
            assert isinstance(param, Obj), (name, kind)
            model = getattr(models, kind.rstrip("`").rsplit(".", 1)[1])
            assert set(param.fields) == set(_MODEL_FIELD.findall(model.__init__.__doc__))
            continue
        assert isinstance(param, KINDS[kind]), (name, kind)
    assert hasattr(models, f"{action}Request")
