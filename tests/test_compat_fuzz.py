"""Hypothesis fuzzing of the Tencent-compatible endpoint (issue #16; docs/api.md, strict input).

Every action of ``compat.actions.ACTIONS`` is posted bodies built from the
parameters the official SDK documents for it (read from the SDK's request
models, not from our code): a plausible request (real order numbers, voucher
ids, times and months of the account) with up to three parameters made
hostile — well-typed values at the edges (integers beyond BIGINT, ids in
Arabic-Indic or superscript digits, NUL, lone surrogates, years 1 and 9999)
or values of another JSON type — or an unknown name; and raw bodies: deep
nesting, duplicated keys, NaN, bytes that are not UTF-8. Each request is
signed with a valid customer key. Whatever comes in, the answer is the
Tencent envelope with a RequestId, an error carries a documented Code and a
Message (never InternalError), and a refused request writes nothing.

Examples per test: FEECENTER_FUZZ_EXAMPLES (default 200, under a minute for the
module on SQLite); docs/api.md gives the long run.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tencentcloud.billing.v20180709 import models

from feecenter.clock import business_time_text
from feecenter.compat.actions import ACTIONS
from tests.compat_harness import Shop

EXAMPLES = int(os.environ.get("FEECENTER_FUZZ_EXAMPLES", "200"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow, HealthCheck.data_too_large])

# Codes the compat endpoint documents (docs/api.md); anything else is a defect
DOCUMENTED_CODES = re.compile(
    r"^(AuthFailure\.\w+|InvalidParameter|InvalidParameterValue|UnknownParameter|"
    r"UnauthorizedOperation|ResourceNotFound|FailedOperation\.\w+|"
    r"InvalidAction|NoSuchVersion)$")
_TYPE_LINE = re.compile(r":type (\w+): (.+)")


def sdk_parameters(action: str) -> dict[str, str]:
    """The request parameters the official SDK documents for ``action``: name -> type."""
    doc = getattr(models, f"{action}Request").__init__.__doc__ or ""
    return {name: kind.strip() for name, kind in _TYPE_LINE.findall(doc)}


# ---------------------------------------------------------------- strategies

# what a hostile client tries first: the nasty values get most of the draws
NASTY_INTS = [-1, 0, 2**63, 10**30, -(2**63) - 1, 10**400]
EDGE_INTS = NASTY_INTS + [1, 2, 3, 4, 8, 9, 20, 99, 100, 101, 300, 301, 1000, 1001, 10**9,
                          2**31 - 1, 2**31, 2**63 - 1, 10**19]
NASTY_TEXT = ["²", "١", "２", "\x00", "\ud800", "9" * 19, "²" * 18, "x" * 5000, "", " 1 "]
TRICKY_TEXT = NASTY_TEXT + [
    " ", "0", "1", "01", "-1", "+1", "1_0", "1e3", "1.0", "all", "٣٤", "१२", "9" * 20,
    "1" * 18, "a\x00b", "\udfff", "🙂", "null", "true", "byPayTime", "byUsedTime", "prePay",
    "postPay", "按量计费小时结", "cvm", "recharge", "deduct", "hourh"]
# values of the wrong JSON type for any parameter (and of the right one for a few)
WRONG_TYPES = [True, False, None, "1", 1, 1.0, 1.5, [], {}, [[1]], [{"a": 1}], {"a": 1},
               ["1"], [1], [None], [True]]
json_scalars = st.one_of(
    st.none(), st.booleans(), st.sampled_from(EDGE_INTS), st.integers(),
    st.floats(allow_nan=False, allow_infinity=False), st.sampled_from(TRICKY_TEXT), st.text())
any_json = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12)


ODD_TIMES = ["0001-01-01 00:00:00", "9999-12-31 23:59:59", "0000-01-01 00:00:00",
             "２０２６-03-01 00:00:00", "2026-03-01", "2026-3-1 0:0:0", "2026-02-30 00:00:00",
             "2026-03-01T00:00:00", "2026-03-01 00:00:00\n", "yesterday"]
ODD_MONTHS = ["9999-12", "0001-01", "0000-01", "2026-13", "2026-00", "２０２６-03", "2026-0_3",
              " 2026-03", "2026-03-01", "2026", "-1-1"]
WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)


def plausible(name: str, kind: str, ctx: Shop) -> st.SearchStrategy:
    """A value a real client would send for ``name``: it reaches deep into the action."""
    now = ctx.now
    orders = st.sampled_from(ctx.orders)
    by_name = {
        "Month": st.integers(-24, 2).map(
            lambda m: business_time_text(now + timedelta(days=31 * m))[:7]),
        "PeriodType": st.sampled_from(["byPayTime", "byUsedTime"]),
        "PayMode": st.sampled_from(["prePay", "postPay"]),
        "ActionType": st.sampled_from(["按量计费小时结", "按量计费日结"]),
        "PayType": st.lists(st.sampled_from(["all", "deduct", "recharge", "adj_refund"]),
                            max_size=3),
        "SubPayType": st.lists(st.sampled_from(["hourh", "hourd", "prePay"]), max_size=2),
        "Status": st.integers(1, 8), "StatusSet": st.lists(st.integers(1, 8), max_size=3),
        "VoucherIds": st.lists(st.sampled_from(ctx.vouchers), min_size=1, max_size=1),
        "ResourceId": st.sampled_from(ctx.resources),
        "InstanceId": st.sampled_from(ctx.resources),
        "InstanceIdList": st.lists(st.sampled_from(ctx.resources), max_size=2, unique=True),
        "RenewFlag": st.sampled_from(["NOTIFY_AND_AUTO_RENEW", "NOTIFY_AND_MANUAL_RENEW",
                                      "DISABLE_NOTIFY_AND_MANUAL_RENEW"]),
        "RenewFlagList": st.lists(st.sampled_from(["NOTIFY_AND_AUTO_RENEW",
                                                   "NOTIFY_AND_MANUAL_RENEW"]), max_size=2),
        "Period": st.integers(1, 3), "PeriodUnit": st.sampled_from(["m", "y"]),
        "RenewPeriod": st.sampled_from(["1", "2", "12"]),
        "RenewPeriodUnit": st.sampled_from(["m", "y"]),
        "MaxResults": st.integers(1, 100),
        "OrderIds": st.lists(orders, min_size=1, max_size=3, unique=True),
        "BigDealIds": st.lists(orders, min_size=1, max_size=2, unique=True),
        "OrderId": orders, "BigDealId": orders, "PayerUin": st.just(str(ctx.uin)),
        "ProductCode": st.sampled_from(["cvm", "cbs"]), "BusinessCode": st.sampled_from(["cvm"]),
        "Limit": st.integers(1, 100), "Offset": st.integers(0, 5), "ProjectId": st.integers(0, 3),
    }
    if name in by_name:
        return by_name[name]
    if name.endswith("Time"):
        return st.integers(-40, 40).map(
            lambda days: business_time_text(now + timedelta(days=days)))
    return {"int": st.integers(0, 1), "bool": st.booleans()}.get(kind, WORD)


def hostile(kind: str, name: str, ctx: Shop) -> st.SearchStrategy:
    """A value of the documented JSON type from the edges, or one of another type."""
    ints = st.one_of(st.sampled_from(NASTY_INTS), st.sampled_from(EDGE_INTS), st.integers())
    odd = ODD_TIMES if name.endswith("Time") else ODD_MONTHS if name == "Month" else NASTY_TEXT
    text = st.one_of(st.sampled_from(odd), st.sampled_from(TRICKY_TEXT),
                     st.sampled_from(ctx.refs), st.text(max_size=40))
    typed = {"int": ints, "bool": st.booleans(), "str": text,
             "list of str": st.lists(text, min_size=1, max_size=3),
             "list of int": st.lists(ints, min_size=1, max_size=3)}.get(kind, any_json)
    return st.one_of(typed, st.sampled_from(WRONG_TYPES), any_json)


MOVES_MONEY = ("PayDeals", "RenewInstance", "RefundInstance")
# what a request must carry to go past the first check (the SDK does not say)
REQUIRED = {"DescribeBillList": ("StartTime", "EndTime"), "DescribeBillDetail": ("Month",),
            "DescribeDealsByCond": ("StartTime", "EndTime"), "PayDeals": ("OrderIds",),
            "SetRenewal": ("InstanceId", "RenewFlag"), "RenewInstance": ("InstanceId",),
            "RefundInstance": ("InstanceId",)}


def bodies(action: str, ctx: Shop) -> st.SearchStrategy[dict]:
    """A plausible request, as is or with up to three parameters (or unknown ones) hostile."""
    params = sdk_parameters(action)
    values = {name: plausible(name, kind, ctx) for name, kind in params.items()}
    required = {name: values[name] for name in REQUIRED.get(action, ())}
    base = st.one_of(
        st.fixed_dictionaries(required, optional={
            n: v for n, v in values.items() if n not in required}),
        st.fixed_dictionaries({}, optional=values))
    names = st.one_of(st.sampled_from(sorted(params)), st.sampled_from(sorted(params)),
                      st.sampled_from(["Unknown", "limit", "ClientToken", "", "\ud800"]))
    mutation = names.flatmap(lambda name: st.tuples(
        st.just(name), hostile(params.get(name, "any"), name, ctx)))
    mutations = st.one_of(st.just([]), st.lists(mutation, min_size=1, max_size=3),
                          st.lists(mutation, min_size=1, max_size=3))
    return st.tuples(base, mutations).map(lambda pair: {**pair[0], **dict(pair[1])})


def check_answer(shop: Shop, action: str, body: bytes, english: bool) -> dict:
    """Post, and assert what holds for any input; returns the Response object."""
    before = shop.written()
    response = shop.call(action, body, english=english)
    assert isinstance(response.get("RequestId"), str) and response["RequestId"]
    error = response.get("Error")
    if error is not None:
        assert DOCUMENTED_CODES.match(error.get("Code", "")), (error, body)
        assert isinstance(error.get("Message"), str) and error["Message"], (error, body)
        assert shop.written() == before, (error, body)
    elif action not in MOVES_MONEY:
        assert shop.written() == before, (response, body)
    return response


# ---------------------------------------------------------------- the fuzz tests

@pytest.mark.slow
@pytest.mark.spec("XTR-5")
@pytest.mark.parametrize("action", sorted(ACTIONS))
@FUZZ
@given(data=st.data())
def test_every_action_answers_any_parameters_with_the_envelope(compat_shop, action, data):
    shop = compat_shop
    if action == "PayDeals":  # a new unpaid order first in the list: payments go through
        shop = replace(shop, orders=[shop.fresh_order()] + shop.orders)
    body = data.draw(bodies(action, shop), label="body")
    english = data.draw(st.booleans(), label="english")
    check_answer(shop, action, json.dumps(body).encode(), english)


def _duplicated(pair: tuple[str, object, object]) -> bytes:
    name, first, second = pair
    return (f'{{{json.dumps(name)}: {json.dumps(first)}, '
            f'{json.dumps(name)}: {json.dumps(second)}}}').encode()


RAW_NASTY = [b"[" * 5000, b'{"a": ' * 2000, b"[]", b"null", b"1", b'"x"', b"", b"{",
             b'{"Limit": NaN}', b'{"Limit": Infinity}', b'{"Offset": 1e400}', b"\xff\xfe",
             b'"\\ud800"', b'{"\\ud800": 1}', b"{}" + b" " * 10000]
raw_bodies = st.one_of(
    st.sampled_from(RAW_NASTY),
    st.tuples(st.sampled_from(["OrderIds", "Limit", "Offset", "Month", "VoucherIds"]),
              any_json, any_json).map(_duplicated),
    any_json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64))


@pytest.mark.slow
@pytest.mark.spec("XTR-5")
@FUZZ
@given(action=st.sampled_from(sorted(ACTIONS)), body=raw_bodies, english=st.booleans())
def test_every_action_answers_any_body_with_the_envelope(compat_shop, action, body, english):
    check_answer(compat_shop, action, body, english)
