"""The official Tencent Cloud Billing SDK against `feecenter` served for real (XTR-5)."""

import json
from datetime import timedelta

import pytest
from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from feecenter.auth import service as auth
from feecenter.clock import business_time_text
from tests.helpers import OPS, add_cash, add_gift, new_account


def sdk(address: str, secret_id: str, secret_key: str):
    http = HttpProfile(protocol="http", endpoint=address, reqTimeout=10)
    return billing_client.BillingClient(credential.Credential(secret_id, secret_key), "",
                                        ClientProfile(httpProfile=http))


def make_key(rt, uin, login=None):
    with rt.engine.begin() as conn:
        return auth.create_api_key(conn, rt.clock, OPS, uin, login)


def bill_lister(rt, address: str, uin: int):
    """DescribeBillList of ``uin`` through the official SDK over the day either side of
    the test clock's now: a function of the extra filters, answering the response."""
    key = make_key(rt, uin)
    client = sdk(address, key.secret_id, key.secret_key)
    window = {"StartTime": business_time_text(rt.clock.now() - timedelta(days=1)),
              "EndTime": business_time_text(rt.clock.now() + timedelta(days=1))}

    def listing(**filters):
        req = models.DescribeBillListRequest()
        req.from_json_string(json.dumps({**window, **filters}))
        return client.DescribeBillList(req)
    return listing


@pytest.mark.spec("BAL-1", "BAL-2", "XTR-5")
def test_describe_account_balance_returns_every_sub_balance_in_fen(live_server):
    rt, address = live_server
    uin = new_account(rt, "sdk-user")
    add_cash(rt, uin, 123_45)
    add_gift(rt, uin, 10_00)
    key = make_key(rt, uin)
    resp = sdk(address, key.secret_id, key.secret_key).DescribeAccountBalance(
        models.DescribeAccountBalanceRequest())
    assert resp.Uin == uin
    assert (resp.CashAccountBalance, resp.PresentAccountBalance, resp.IncomeIntoAccountBalance,
            resp.FreezeAmount, resp.OweAmount) == (12345, 1000, 0, 0, 0)
    assert resp.RealBalance == resp.Balance == 12345 + 0 + 1000 - 0 - 0
    assert resp.RequestId


def test_wrong_secret_gets_signature_failure(live_server):
    rt, address = live_server
    uin = new_account(rt, "sdk-wrong")
    key = make_key(rt, uin)
    with pytest.raises(TencentCloudSDKException) as err:
        sdk(address, key.secret_id, "x" * 32).DescribeAccountBalance(
            models.DescribeAccountBalanceRequest())
    assert err.value.get_code() == "AuthFailure.SignatureFailure"


def test_unknown_secret_id_gets_secret_id_not_found(live_server):
    _, address = live_server
    with pytest.raises(TencentCloudSDKException) as err:
        sdk(address, "AKID" + "0" * 32, "y" * 32).DescribeAccountBalance(
            models.DescribeAccountBalanceRequest())
    assert err.value.get_code() == "AuthFailure.SecretIdNotFound"


@pytest.mark.spec("ACC-2")
def test_key_of_account_b_never_sees_account_a(live_server):
    rt, address = live_server
    uin_a = new_account(rt, "tenant-a")
    uin_b = new_account(rt, "tenant-b")
    add_cash(rt, uin_a, 999_00)
    key_b = make_key(rt, uin_b)
    resp = sdk(address, key_b.secret_id, key_b.secret_key).DescribeAccountBalance(
        models.DescribeAccountBalanceRequest())
    assert resp.Uin == uin_b and resp.CashAccountBalance == 0
    req = models.DescribeBillListRequest()
    req.from_json_string('{"StartTime": "2000-01-01 00:00:00", "EndTime": "2000-06-01 00:00:00"}')
    listing = sdk(address, key_b.secret_id, key_b.secret_key).DescribeBillList(req)
    assert listing.Total == 0


@pytest.mark.spec("ACC-2")
def test_readonly_sub_user_is_refused_money_views(live_server):
    rt, address = live_server
    uin = new_account(rt, "with-subusers")
    from feecenter.accounts import service as accounts

    with rt.engine.begin() as conn:
        accounts.add_user(conn, rt.clock, OPS, uin, "viewer", "readonly")
        accounts.add_user(conn, rt.clock, OPS, uin, "bookkeeper", "finance")
    viewer = make_key(rt, uin, "viewer")
    with pytest.raises(TencentCloudSDKException) as err:
        sdk(address, viewer.secret_id, viewer.secret_key).DescribeAccountBalance(
            models.DescribeAccountBalanceRequest())
    assert err.value.get_code() == "UnauthorizedOperation"
    assert "财务" in err.value.get_message()
    bookkeeper = make_key(rt, uin, "bookkeeper")
    resp = sdk(address, bookkeeper.secret_id, bookkeeper.secret_key).DescribeAccountBalance(
        models.DescribeAccountBalanceRequest())
    assert resp.Uin == uin


@pytest.mark.spec("BAL-5", "XTR-5")
def test_describe_bill_list_lists_adjustments_with_totals(live_server):
    rt, address = live_server
    uin = new_account(rt, "bill-list")
    add_cash(rt, uin, 500_00)
    add_gift(rt, uin, 20_00)
    key = make_key(rt, uin)
    req = models.DescribeBillListRequest()
    req.from_json_string('{"StartTime": "2020-01-01 00:00:00", "EndTime": "2020-06-30 00:00:00"}')
    client = sdk(address, key.secret_id, key.secret_key)
    assert client.DescribeBillList(req).Total == 0
    from datetime import timedelta

    from feecenter.clock import business_time_text

    now = business_time_text(rt.clock.now())
    since = business_time_text(rt.clock.now() - timedelta(days=1))
    req.from_json_string(f'{{"StartTime": "{since}", "EndTime": "{now[:10]} 23:59:59",'
                         f' "Offset": 0, "Limit": 10}}')
    listing = client.DescribeBillList(req)
    assert listing.Total == 2
    types = [t.ActionType for t in listing.TransactionList]
    assert types == ["present", "adj_refund"]  # newest first
    gift_entry, cash_entry = listing.TransactionList
    assert (cash_entry.Amount, cash_entry.Cash, cash_entry.Balance) == (50000, 50000, 50000)
    assert (gift_entry.Amount, gift_entry.Incentive, gift_entry.Balance) == (2000, 2000, 52000)
    assert listing.RechargeAmount == 52000
    req.from_json_string(f'{{"StartTime": "{since}", "EndTime": "{now[:10]} 23:59:59",'
                         f' "PayType": ["present"]}}')
    assert client.DescribeBillList(req).Total == 1


def test_bad_parameters_get_invalid_parameter(live_server):
    rt, address = live_server
    uin = new_account(rt, "bad-params")
    key = make_key(rt, uin)
    req = models.DescribeBillListRequest()
    req.from_json_string('{"StartTime": "yesterday", "EndTime": "2026-01-01 00:00:00"}')
    with pytest.raises(TencentCloudSDKException) as err:
        sdk(address, key.secret_id, key.secret_key).DescribeBillList(req)
    assert err.value.get_code().startswith("InvalidParameter")
    assert "StartTime" in err.value.get_message()
