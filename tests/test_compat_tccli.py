"""The official Tencent Cloud CLI, ``tccli billing …``, against ``feecenter`` served
over TLS (XTR-5): the same figures as the official SDK for the same calls.

tccli speaks HTTPS only and verifies the server against its venv's certifi bundle
alone (the SDK passes ``certifi.where()`` to requests, so ``REQUESTS_CA_BUNDLE``
and ``SSL_CERT_FILE`` are ignored): the test appends its local CA to that bundle,
as docs/api.md tells users to.

tccli is installed once per session, as users install it (``pip install tccli``,
its whole ``tencentcloud-sdk-python`` included), into a throw-away venv under the
pytest tmp dir: ~10 s without byte-compiling its thousands of modules
(``--no-compile``; what tccli imports is compiled as it runs). Without PyPI the
test is skipped, except under CI=true, where that is a failure.

One backend (SQLite): what is checked is the transport — TLS, tccli's requests and
its output — which no database changes; the SDK tests check the same actions on
both backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from tencentcloud.billing.v20180709 import billing_client, models
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile

from feecenter.cli.tls import local_tls
from feecenter.clock import SystemClock, business_time_text
from feecenter.periods import DAILY, HOURLY, period_containing
from feecenter.runtime import Runtime
from feecenter.settlement import service as settlement
from tests.conftest import _serve
from tests.helpers import add_cash, add_gift, api_key, buy, new_account, pay
from tests.test_settlement import ingest, load, open_


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    return local_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def tccli(tmp_path_factory, tls_files):
    """``tccli(*args, secret_id=, secret_key=)`` -> its JSON output, from a venv of its
    own whose certifi bundle trusts the test CA."""
    venv = tmp_path_factory.mktemp("tccli-venv")
    python = venv / "bin" / "python"
    try:
        for command in ([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                         "--no-compile", "--disable-pip-version-check", "tccli"]):
            subprocess.run(command, check=True, capture_output=True, text=True, timeout=600)
    except subprocess.CalledProcessError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"installing tccli failed under CI=true: {exc.stderr[-2000:]}")
        pytest.skip(f"tccli could not be installed: {exc.stderr[-500:]}")
    bundle = subprocess.run([str(python), "-m", "certifi"], check=True, capture_output=True,
                            text=True).stdout.strip()
    with open(bundle, "a") as out:
        out.write("\n" + tls_files.ca.read_text())
    home = tmp_path_factory.mktemp("tccli-home")  # no ~/.tccli profile of the user's

    def run(*args, secret_id: str, secret_key: str) -> dict:
        env = {"PATH": os.environ["PATH"], "HOME": str(home),
               "TENCENTCLOUD_SECRET_ID": secret_id, "TENCENTCLOUD_SECRET_KEY": secret_key}
        done = subprocess.run([str(venv / "bin" / "tccli"), *map(str, args)], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (done.stdout, done.stderr)
        try:
            return json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"tccli printed no JSON: {done.stdout} {done.stderr}") from None

    return run


@pytest.fixture
def billed(rt, tls_files):
    """An account with gift and cash, two settled postpaid hours of yesterday (a CVM
    both hours, a disk in the second), a paid and an unpaid order, served over TLS
    on the real clock: (address, key, yesterday's business midnight)."""
    now = datetime.now(timezone.utc)
    midnight = period_containing(DAILY, now - timedelta(days=1)).start
    rt.clock.set(midnight)
    load(rt)
    uin = new_account(rt, "tccli-user")
    add_gift(rt, uin, 12_00)
    add_cash(rt, uin, 5_000_00)
    cvm, cbs = open_(rt, uin, name="web-1"), open_(rt, uin, product="cbs", spec="premium")
    hours = [period_containing(HOURLY, midnight + timedelta(hours=n)) for n in range(2)]
    usage = [[("cvm-h0", uin, cvm, "S5.MEDIUM4", "1", hours[0].start, hours[0].end)],
             [("cvm-h1", uin, cvm, "S5.MEDIUM4", "1", hours[1].start, hours[1].end),
              ("cbs-h1", uin, cbs, "premium", "100", hours[1].start, hours[1].end)]]
    for period, rows in zip(hours, usage):
        rt.clock.set(period.end + timedelta(minutes=5))
        ingest(rt, rows)
        settlement.settle_period(rt.engine, rt.clock, "hour", period)
    rt.clock.set(now - timedelta(minutes=1))
    pay(rt, uin, buy(rt, uin))
    buy(rt, uin, ("cbs", "premium", 1, "ap-guangzhou"), count=50)
    served = Runtime(engine=rt.engine, clock=SystemClock(), settings=rt.settings)
    for _, address in _serve(served, tls=(str(tls_files.cert), str(tls_files.key))):
        yield address, api_key(rt, uin), midnight


def sdk(address: str, key, ca: str) -> billing_client.BillingClient:
    http = HttpProfile(endpoint=address, reqTimeout=15, certification=ca)  # https
    return billing_client.BillingClient(credential.Credential(key.secret_id, key.secret_key), "",
                                        ClientProfile(httpProfile=http))


def figures(response) -> dict:
    """What a response says, without its RequestId (new for every call)."""
    return {k: v for k, v in json.loads(response.to_json_string()).items() if k != "RequestId"}


@pytest.mark.slow
@pytest.mark.spec("XTR-5")
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_tccli_over_tls_reports_the_figures_the_sdk_reports(tccli, billed, tls_files):
    address, key, midnight = billed
    client = sdk(address, key, str(tls_files.ca))
    since, until = business_time_text(midnight), business_time_text(midnight + timedelta(days=2))
    calls = [  # (action, its parameters)
        ("DescribeAccountBalance", {}),
        ("DescribeBillList", {"StartTime": since, "EndTime": until, "Offset": 0, "Limit": 100}),
        ("DescribeBillDetail", {"Month": since[:7], "Offset": 0, "Limit": 100,
                                "NeedRecordNum": 1}),
        ("DescribeDealsByCond", {"StartTime": since, "EndTime": until, "Offset": 0,
                                 "Limit": 100}),
    ]
    answers = {}
    for action, params in calls:
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(params))
        expected = figures(getattr(client, action)(request))
        args = [a for name, value in params.items() for a in (f"--{name}", value)]
        answer = tccli("billing", action, "--endpoint", address, "--region", "ap-guangzhou",
                       *args, secret_id=key.secret_id, secret_key=key.secret_key)
        assert answer.pop("RequestId")
        assert answer == expected, action
        answers[action] = answer
    # 5012.00 less 1.05 of postpaid hours (gift first) and the 178.00 order
    balance = answers["DescribeAccountBalance"]
    assert (balance["CashAccountBalance"], balance["PresentAccountBalance"],
            balance["Balance"]) == (5_000_00 + 12_00 - 1_05 - 178_00, 0, 4_832_95)
    bills = answers["DescribeBillList"]
    assert [t["ActionType"] for t in bills["TransactionList"]] == [
        "deduct", "block", "deduct", "deduct", "deduct", "adj_refund", "present"]
    assert (bills["Total"], bills["DeductAmount"]) == (7, -(1_05 + 178_00))
    detail = answers["DescribeBillDetail"]
    assert detail["Total"] == 3
    assert [d["ComponentSet"][0]["RealCost"]
            for d in detail["DetailSet"]] == ["0.50000000", "0.04900000", "0.50000000"]
    deals = answers["DescribeDealsByCond"]
    assert deals["TotalCount"] == 2
    assert [(d["Status"], d["RealTotalCost"]) for d in deals["Deals"]] == [(1, 17_50), (4, 178_00)]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_test_server_certificate_is_not_trusted_without_its_ca(billed):
    """What makes tccli's calls above work is the CA the test adds: the default
    bundle refuses the server (and a plain-HTTP client gets no answer either)."""
    import certifi

    address, key, _ = billed
    for ca, protocol in ((certifi.where(), "https"), (None, "http")):
        http = HttpProfile(protocol=protocol, endpoint=address, reqTimeout=5, certification=ca)
        client = billing_client.BillingClient(
            credential.Credential(key.secret_id, key.secret_key), "", ClientProfile(httpProfile=http))
        with pytest.raises(TencentCloudSDKException) as err:
            client.DescribeAccountBalance(models.DescribeAccountBalanceRequest())
        assert err.value.get_code() == "ClientNetworkError"
