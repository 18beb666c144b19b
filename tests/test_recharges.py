"""Online recharge (RCH-1..6, ARR-4, BAL-5) through the real WeChat Pay v3 adapter
against the sandbox provider, which runs in-process on a free port and notifies
the real app, itself served on a free port.

The clock is a FixedClock set to the wall time at the test's start: the sandbox
signs with the wall clock, and the adapter refuses a notification signed more
than five minutes from the service's now.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import requests
import uvicorn
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, select
from starlette.testclient import TestClient

from feecenter.accounts.permissions import SYSTEM
from feecenter.api.app import create_app
from feecenter.clock import FixedClock
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.gateways.wechatpay import WeChatPayConfig, WeChatPayGateway
from feecenter.recharges import rules
from feecenter.recharges import service as recharges
from feecenter.recharges.gateway import GatewayUnavailable, NotificationRefused
from feecenter.recharges.rules import RechargeRefused
from feecenter.recharges.tables import recharge_notifications
from feecenter.recharges.tables import recharges as recharges_table
from feecenter.runtime import Runtime
from feecenter.sandbox import keys as sandbox_keys
from feecenter.sandbox import protocol
from feecenter.sandbox.app import create_app as create_sandbox
from tests.helpers import OPS, api_key, assert_reconciled, balance, new_account

OWNER = "payer-owner"


# ---------------------------------------------------------------- serving

def serve(app) -> tuple[uvicorn.Server, threading.Thread, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return server, thread, f"http://127.0.0.1:{port}"


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(timeout=10)


def serve_sandbox(folder, public_key_mode: bool = False):
    """(keys, base URL, provider state) of a sandbox retrying quickly (0.2 s, 0.4 s …)."""
    keys = sandbox_keys.load_or_create(folder)
    app = create_sandbox(keys, retry_delays=(0, 0.2, 0.4, 0.8, 1.6),
                         public_key_mode=public_key_mode)
    server, thread, url = serve(app)
    yield keys, url, app.state.provider
    stop(server, thread)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory):
    yield from serve_sandbox(tmp_path_factory.mktemp("sandbox-keys"))


@pytest.fixture(scope="module")
def public_key_sandbox(tmp_path_factory):
    """A sandbox in public-key mode: it signs with its platform key and announces
    the key's id PUB_KEY_ID_…, as WeChat Pay does for merchants without certificates."""
    yield from serve_sandbox(tmp_path_factory.mktemp("sandbox-pubkey"), public_key_mode=True)


def paying(engine, database_url, sandbox, public_key_mode: bool = False):
    from feecenter.config import Settings
    from tests.conftest import MASTER_KEY

    keys, url, provider = sandbox
    rt = Runtime(engine=engine, clock=FixedClock(datetime.now(UTC)),
                 settings=Settings(home=None, database_url=database_url, master_key=MASTER_KEY))
    server, thread, own = serve(create_app(rt))
    config = WeChatPayConfig.from_env(sandbox_keys.merchant_env(
        keys, url, f"{own}/api/v1/recharges/notify/wechat", public_key_mode))
    gateway = WeChatPayGateway(config)
    rt.gateways = {"wechat": gateway, "qq": gateway, "netbank": gateway}
    uin = new_account(rt, "recharger")
    yield Pay(rt, uin, gateway, keys, url, provider, own,
              keys.public_key_id if public_key_mode else keys.platform_serial)
    stop(server, thread)


@pytest.fixture
def pay(engine, database_url, sandbox):
    """The app on a FixedClock at wall time, its WeChat gateway the real adapter pointed
    at the sandbox (also standing in for qq and netbank), served on a free port."""
    yield from paying(engine, database_url, sandbox)


@pytest.fixture
def pay_public_key(engine, database_url, public_key_sandbox):
    """``pay`` for a merchant in public-key mode (no platform certificate at all)."""
    yield from paying(engine, database_url, public_key_sandbox, public_key_mode=True)


class Pay:
    def __init__(self, rt, uin, gateway, keys, url, provider, own, serial):
        self.rt, self.uin, self.gateway, self.keys = rt, uin, gateway, keys
        self.url, self.provider, self.own, self.serial = url, provider, own, serial

    def create(self, fen: int, channel: str = "wechat", payer: str = OWNER, intl: bool = False,
               uin: int | None = None) -> dict:
        return recharges.create(self.rt.engine, self.rt.clock, SYSTEM, uin or self.uin,
                                recharges.NewRecharge(fen, channel, payer, intl),
                                self.rt.gateways)

    def payer_acts(self, recharge: dict, action: str = "pay", **form) -> requests.Response:
        response = requests.post(recharge["code_url"], data={"action": action, **form}, timeout=60)
        assert response.status_code == 200, response.text
        return response

    def row(self, recharge_id: int) -> dict:
        with self.rt.engine.connect() as conn:
            return recharges.get(conn, SYSTEM, recharge_id)

    def wait_state(self, recharge_id: int, state: str, timeout_s: float = 15) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            row = self.row(recharge_id)
            if row["state"] == state:
                return row
            time.sleep(0.05)
        raise AssertionError(f"recharge {recharge_id} is {row['state']}, not {state}")

    def wait_acknowledged(self, out_trade_no: str, timeout_s: float = 15) -> None:
        """Until the sandbox recorded the merchant's 2xx (it may credit first)."""
        deadline = time.monotonic() + timeout_s
        while not self.provider.payments[out_trade_no].acknowledged:
            assert time.monotonic() < deadline, f"{out_trade_no}'s notification not acknowledged"
            time.sleep(0.05)

    def entries(self) -> list[tuple]:
        with self.rt.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(
                statement_entries.c.action_type, statement_entries.c.amount,
                statement_entries.c.pay_channel, statement_entries.c.deduct_mode)
                .where(statement_entries.c.uin == self.uin).order_by(statement_entries.c.id))]

    def notifications(self) -> list[dict]:
        with self.rt.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(recharge_notifications)
                                                  .order_by(recharge_notifications.c.id)).mappings()]

    def signed_notification(self, transaction: dict, *, key=None, timestamp=None,
                            notification_id=None) -> tuple[dict, bytes]:
        body = protocol.notification_body(self.keys.apiv3_key, transaction, notification_id)
        headers = protocol.signed_headers(key or self.keys.platform_key, self.serial, body,
                                          timestamp=timestamp)
        return headers, body.encode()


def paid_transaction(pay: Pay, recharge: dict, **changes) -> dict:
    """What the provider reports once the payer paid ``recharge`` (the sandbox's shape)."""
    data = {"appid": pay.keys.appid, "mchid": pay.keys.mchid,
            "out_trade_no": recharge["out_trade_no"], "transaction_id": "4200000000000001",
            "trade_type": "NATIVE", "trade_state": "SUCCESS", "trade_state_desc": "支付成功",
            "bank_type": "CMB_DEBIT", "success_time": "2026-03-02T10:00:00+08:00",
            "payer": {"openid": "o-payer"},
            "amount": {"total": recharge["amount"], "payer_total": recharge["amount"],
                       "currency": "CNY", "payer_currency": "CNY"}}
    data.update(changes)
    return data


# ---------------------------------------------------------------- paying, end to end

@pytest.mark.spec("RCH-1", "RCH-5", "RCH-6", "BAL-5")
def test_a_paid_recharge_is_credited_once_from_the_providers_notification(pay):
    recharge = pay.create(123_45)
    assert recharge["state"] == "pending" and recharge["code_url"].startswith(pay.url)
    pay.payer_acts(recharge, "pay")
    row = pay.wait_state(recharge["id"], "paid")
    assert row["provider_txn_id"].startswith("4200") and row["intl_card"] is False
    assert row["provider_payer"] == "sandbox-payer" and row["txn_id"] is not None
    assert balance(pay.rt, pay.uin).cash == 123_45
    assert pay.entries() == [("recharge", 123_45, "wechat", "online")]
    # the sandbox got its acknowledgement; a query afterwards credits nothing more
    pay.wait_acknowledged(recharge["out_trade_no"])
    recharges.query(pay.rt.engine, pay.rt.clock, SYSTEM, recharge["id"], pay.rt.gateways)
    assert balance(pay.rt, pay.uin).cash == 123_45
    assert [n["outcome"] for n in pay.notifications()] == ["credited"]
    assert_reconciled(pay.rt)


@pytest.mark.spec("RCH-6", "RCH-2")
def test_an_international_card_payment_is_recorded(pay):
    recharge = pay.create(100_00)
    pay.payer_acts(recharge, "pay", card="international")
    assert pay.wait_state(recharge["id"], "paid")["intl_card"] is True


@pytest.mark.spec("RCH-6")
def test_a_failed_payment_keeps_the_providers_reason_and_credits_nothing(pay):
    recharge = pay.create(50_00)
    pay.payer_acts(recharge, "fail")  # the sandbox's default reason: its risk control's
    row = recharges.query(pay.rt.engine, pay.rt.clock, SYSTEM, recharge["id"], pay.rt.gateways)
    assert (row["state"], row["fail_reason"]) == ("failed", "当前交易行为异常")
    assert balance(pay.rt, pay.uin).cash == 0 and pay.entries() == []


@pytest.mark.spec("RCH-6")
def test_an_abandoned_recharge_is_closed_after_its_term_at_the_provider_too(pay):
    recharge = pay.create(20_00)
    pay.payer_acts(recharge, "abandon")
    before = recharges.sync_pending(pay.rt.engine, pay.rt.clock, pay.rt.gateways,
                                    older_than=timedelta(0))
    assert before["checked"] == 1 and pay.row(recharge["id"])["state"] == "pending"
    pay.rt.clock.advance(minutes=31)
    counts = recharges.sync_pending(pay.rt.engine, pay.rt.clock, pay.rt.gateways)
    assert counts["closed"] == 1
    assert pay.row(recharge["id"])["state"] == "closed"
    assert pay.provider.payments[recharge["out_trade_no"]].trade_state == "CLOSED"
    # the payer comes back too late: the sandbox refuses the payment
    late = requests.post(recharge["code_url"], data={"action": "pay"}, timeout=60)
    assert late.status_code == 409
    assert balance(pay.rt, pay.uin).cash == 0


@pytest.mark.spec("RCH-5")
def test_a_missed_notification_is_recovered_by_querying_the_provider(pay):
    recharge = pay.create(88_00)
    pay.payer_acts(recharge, "pay", notify="no")  # the provider went down before notifying
    time.sleep(0.3)
    assert pay.row(recharge["id"])["state"] == "pending"
    pay.rt.clock.advance(minutes=3)
    counts = recharges.sync_pending(pay.rt.engine, pay.rt.clock, pay.rt.gateways)
    assert counts["credited"] == 1 and balance(pay.rt, pay.uin).cash == 88_00
    # the provider comes back and notifies after all: acknowledged, nothing more credited
    pay.rt.clock.set(datetime.now(UTC))
    requests.post(f"{pay.url}/sandbox/payments/{recharge['out_trade_no']}/notify", timeout=60)
    deadline = time.monotonic() + 10
    while not pay.provider.payments[recharge["out_trade_no"]].acknowledged:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert [n["outcome"] for n in pay.notifications()] == ["duplicate"]
    assert balance(pay.rt, pay.uin).cash == 88_00
    assert_reconciled(pay.rt)


@pytest.mark.spec("ARR-4", "RCH-5", "BAL-5", "ARR-5")
def test_a_recharge_repays_arrears_then_advances_then_the_balance(pay):
    rt, uin = pay.rt, pay.uin
    with transaction(rt.engine) as conn:
        funds.grant_credit(conn, rt.clock, OPS, uin, credit_limit=500_00)
        revenue = funds.platform_account(conn, rt.clock, "revenue")
        funds.spend(conn, rt.clock, uin, 800_00, key="usage", postpaid=True,
                    revenue_account_id=revenue)   # credit pays 500, 300 becomes arrears
    view = balance(rt, uin)
    assert (view.advances, view.arrears) == (500_00, 300_00)
    recharge = pay.create(1000_00)
    pay.payer_acts(recharge, "pay")
    pay.wait_state(recharge["id"], "paid")
    view = balance(rt, uin)
    assert (view.arrears, view.advances, view.cash) == (0, 0, 200_00)
    assert pay.entries()[-3:] == [("recharge", 1000_00, "wechat", "online"),
                                  ("repayment", -300_00, None, None),
                                  ("repay", -500_00, None, None)]
    assert_reconciled(rt)


# ---------------------------------------------------------------- notifications refused

def notify(pay: Pay, headers: dict, body: bytes):
    with TestClient(create_app(pay.rt)) as client:
        return client.post("/api/v1/recharges/notify/wechat", content=body,
                           headers={**headers, "Content-Type": "application/json"})


@pytest.mark.spec("RCH-5")
@pytest.mark.parametrize("attack", ["forged", "stale", "future", "amount", "unknown", "merchant",
                                    "tampered", "overlong_timestamp"])
def test_bad_notifications_are_refused_recorded_and_credit_nothing(pay, attack):
    recharge = pay.create(66_00)
    transaction_ = paid_transaction(pay, recharge)
    now = int(time.time())
    key, timestamp = None, None
    if attack == "forged":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    elif attack == "stale":
        timestamp = now - 600
    elif attack == "future":
        timestamp = now + 600
    elif attack == "overlong_timestamp":  # int() takes it; a float of it overflows
        timestamp = int("9" * 400)
    elif attack == "amount":
        transaction_["amount"] = {**transaction_["amount"], "payer_total": 1, "total": 1}
    elif attack == "unknown":
        transaction_["out_trade_no"] = "FCNOSUCHPAYMENT"
    elif attack == "merchant":
        transaction_["mchid"] = "1234567890"
    headers, body = pay.signed_notification(transaction_, key=key, timestamp=timestamp)
    if attack == "tampered":  # one byte of the ciphertext changed after signing
        data = json.loads(body)
        sealed = bytearray(base64.b64decode(data["resource"]["ciphertext"]))
        sealed[0] ^= 1
        data["resource"]["ciphertext"] = base64.b64encode(bytes(sealed)).decode()
        body = json.dumps(data).encode()
        headers = protocol.signed_headers(pay.keys.platform_key, pay.keys.platform_serial,
                                          body.decode())
    response = notify(pay, headers, body)
    assert response.status_code == 400 and response.json()["code"] == "FAIL"
    logged = pay.notifications()
    assert [n["outcome"] for n in logged] == ["refused"]
    expected = {"forged": "bad_signature", "stale": "stale", "future": "stale",
                "amount": "amount_mismatch", "unknown": "unknown_payment",
                "merchant": "other_merchant", "tampered": "bad_signature",
                "overlong_timestamp": "bad_signature"}[attack]
    assert logged[0]["reason"] == expected
    assert pay.row(recharge["id"])["state"] == "pending"
    assert balance(pay.rt, pay.uin).cash == 0 and pay.entries() == []


@pytest.mark.spec("RCH-1", "RCH-5", "BAL-5")
def test_a_merchant_in_public_key_mode_is_credited_once_and_refuses_another_key(pay_public_key):
    """WeChat Pay's public-key mode: no platform certificate is configured; answers and
    notifications name PUB_KEY_ID_… and are verified with the public key."""
    pay = pay_public_key
    assert pay.gateway.config.platform_cert_dir is None
    assert pay.gateway.config.public_key_id.startswith("PUB_KEY_ID_")
    recharge = pay.create(88_00)  # the sandbox's signed answer verified with the public key
    pay.payer_acts(recharge, "pay")
    pay.wait_state(recharge["id"], "paid")
    out_trade_no = recharge["out_trade_no"]
    pay.wait_acknowledged(out_trade_no)
    requests.post(f"{pay.url}/sandbox/payments/{out_trade_no}/notify",  # WeChat sends it again
                  timeout=60).raise_for_status()
    pay.wait_acknowledged(out_trade_no)
    assert [n["outcome"] for n in pay.notifications()][-1] == "duplicate"
    assert balance(pay.rt, pay.uin).cash == 88_00
    assert pay.entries() == [("recharge", 88_00, "wechat", "online")]
    # the same id, another key: refused, nothing credited
    other = pay.create(5_00)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    response = notify(pay, *pay.signed_notification(paid_transaction(pay, other), key=forger))
    assert response.status_code == 400 and response.json()["code"] == "FAIL"
    assert pay.notifications()[-1]["reason"] == "bad_signature"
    assert pay.row(other["id"])["state"] == "pending"
    assert balance(pay.rt, pay.uin).cash == 88_00
    assert_reconciled(pay.rt)


@pytest.mark.parametrize("change, named", [
    ({"FEECENTER_WECHATPAY_PUBLIC_KEY_ID": ""}, "FEECENTER_WECHATPAY_PUBLIC_KEY_ID"),
    ({"FEECENTER_WECHATPAY_PUBLIC_KEY_PATH": "", "FEECENTER_WECHATPAY_PUBLIC_KEY_ID": ""},
     "FEECENTER_WECHATPAY_PLATFORM_CERT_DIR"),
    ({"FEECENTER_WECHATPAY_PUBLIC_KEY_PATH": "/nonexistent/pub_key.pem"},
     "FEECENTER_WECHATPAY_PUBLIC_KEY_PATH"),
    ({"FEECENTER_WECHATPAY_PUBLIC_KEY_PATH": "GARBAGE"}, "FEECENTER_WECHATPAY_PUBLIC_KEY_PATH"),
    ({"FEECENTER_WECHATPAY_PUBLIC_KEY_PATH": "", "FEECENTER_WECHATPAY_PUBLIC_KEY_ID": "",
      "FEECENTER_WECHATPAY_PLATFORM_CERT_DIR": "EMPTY"}, "FEECENTER_WECHATPAY_PLATFORM_CERT_DIR"),
    ({"FEECENTER_WECHATPAY_PRIVATE_KEY_PATH": "/nonexistent/key.pem"},
     "FEECENTER_WECHATPAY_PRIVATE_KEY_PATH"),
    ({"FEECENTER_WECHATPAY_APIV3_KEY_FILE": "/nonexistent/apiv3.key"},
     "FEECENTER_WECHATPAY_APIV3_KEY_FILE"),
])
def test_a_payment_configuration_that_cannot_work_is_refused_naming_the_variable(
        sandbox, tmp_path, change, named):
    from feecenter.errors import ConfigurationError
    from feecenter.gateways import configured

    keys, url, _ = sandbox
    env = sandbox_keys.merchant_env(keys, url, "http://127.0.0.1:9/notify", public_key_mode=True)
    assert set(configured(env)) == {"wechat"}  # public-key mode alone is enough
    garbage, empty = tmp_path / "garbage.pem", tmp_path / "empty"
    garbage.write_text("not a key")
    empty.mkdir()
    values = {"GARBAGE": str(garbage), "EMPTY": str(empty)}
    env.update({name: values.get(value, value) for name, value in change.items()})
    with pytest.raises(ConfigurationError) as err:
        configured(env)
    assert named in err.value.message_en and named in err.value.message_zh


@pytest.mark.spec("RCH-5")
def test_a_payment_a_wechat_coupon_lowered_is_credited_its_order_total(pay):
    """WeChat's amount.payer_total is what the payer paid after WeChat's own coupons;
    the merchant is settled the order's total, which is what the recharge credits."""
    recharge = pay.create(100_00)
    transaction_ = paid_transaction(pay, recharge)
    transaction_["amount"] = {**transaction_["amount"], "total": 100_00, "payer_total": 95_00}
    assert notify(pay, *pay.signed_notification(transaction_)).status_code == 200
    assert pay.row(recharge["id"])["state"] == "paid"
    assert balance(pay.rt, pay.uin).cash == 100_00
    assert_reconciled(pay.rt)


@pytest.mark.spec("RCH-5")
def test_a_replayed_notification_is_acknowledged_and_credits_nothing_more(pay):
    recharge = pay.create(10_00)
    headers, body = pay.signed_notification(paid_transaction(pay, recharge))
    first, second = notify(pay, headers, body), notify(pay, headers, body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert [n["outcome"] for n in pay.notifications()] == ["credited", "duplicate"]
    assert balance(pay.rt, pay.uin).cash == 10_00
    assert_reconciled(pay.rt)


# ---------------------------------------------------------------- limits (RCH-2)

@pytest.mark.spec("RCH-2")
@pytest.mark.parametrize("fen", [0, -1, rules.MAX_FEN + 1])
def test_the_global_range_is_refused_naming_the_amount(pay, fen):
    with pytest.raises(InvalidInput) as err:
        pay.create(fen, "netbank")
    assert err.value.field == "amount" and "0.01" in err.value.message_zh
    with pay.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(recharges_table)).scalar() == 0


@pytest.mark.spec("RCH-2")
def test_online_banking_takes_the_whole_global_range(pay):
    assert pay.create(rules.MAX_FEN, "netbank")["amount"] == rules.MAX_FEN
    assert pay.create(1, "netbank")["amount"] == 1


@pytest.mark.spec("RCH-2")
@pytest.mark.parametrize("channel", ["wechat", "qq"])
def test_wechat_and_qq_allow_50000_a_payment_and_a_day_per_payer(pay, channel):
    with pytest.raises(RechargeRefused) as err:
        pay.create(5_000_001, channel)
    assert (err.value.field, err.value.details["limit"]) == ("amount", "per_payment")
    pay.create(3_000_000, channel)
    with pytest.raises(RechargeRefused) as err:
        pay.create(2_000_001, channel)
    assert err.value.details["limit"] == "per_day" and err.value.details["left"] == "20000.00"
    assert "50,000" not in err.value.message_zh and "50000.00" in err.value.message_zh
    pay.create(2_000_000, channel)                     # exactly to the limit
    pay.create(2_000_000, channel, payer="another")    # counted per payer
    pay.rt.clock.advance(days=1)
    pay.create(5_000_000, channel)                     # a new day


@pytest.mark.spec("RCH-2")
def test_failed_and_closed_recharges_do_not_count_against_the_day(pay):
    first = pay.create(4_000_000)
    pay.payer_acts(first, "fail")
    recharges.query(pay.rt.engine, pay.rt.clock, SYSTEM, first["id"], pay.rt.gateways)
    assert pay.create(5_000_000)["state"] == "pending"


@pytest.mark.spec("RCH-2")
def test_wechat_with_an_international_card_6000_a_payment_10000_a_day_50000_a_month(pay):
    with pytest.raises(RechargeRefused) as err:
        pay.create(600_001, intl=True)
    assert err.value.details["limit"] == "per_payment"
    pay.create(600_000, intl=True)
    with pytest.raises(RechargeRefused) as err:
        pay.create(400_001, intl=True)
    assert err.value.details["limit"] == "per_day"
    pay.create(400_000, intl=True)
    pay.rt.clock.set(datetime(2026, 3, 2, 2, 0, tzinfo=UTC))  # the 2nd of a month
    for _ in range(5):  # 10,000 a day for five days: 50,000 in the month
        pay.create(600_000, intl=True, payer="traveller")
        pay.create(400_000, intl=True, payer="traveller")
        pay.rt.clock.advance(days=1)
    with pytest.raises(RechargeRefused) as err:
        pay.create(1, intl=True, payer="traveller")
    assert err.value.details["limit"] == "per_month"
    pay.create(1, payer="traveller")  # a domestic card is not under the foreign-card limits


@pytest.mark.spec("RCH-1")
def test_the_international_card_channel_is_off_and_unknown_channels_refused(pay):
    for channel in ("intl_card", "alipay"):
        with pytest.raises(InvalidInput) as err:
            pay.create(100, channel)
        assert err.value.field == "channel"


@pytest.mark.spec("RCH-1")
def test_a_provider_that_cannot_be_reached_leaves_nothing_pending(pay):
    dead = replace(pay.gateway.config, base_url="http://127.0.0.1:9", timeout_s=(1.0, 1.0))
    gateways = {"wechat": WeChatPayGateway(dead)}
    with pytest.raises(GatewayUnavailable) as err:
        recharges.create(pay.rt.engine, pay.rt.clock, SYSTEM, pay.uin,
                         recharges.NewRecharge(100, "wechat", OWNER), gateways)
    assert err.value.http_status == 503
    with pay.rt.engine.connect() as conn:
        states = conn.execute(select(recharges_table.c.state)).scalars().all()
    assert states == ["closed"]


# ---------------------------------------------------------------- frequency control (RCH-3)

@pytest.mark.spec("RCH-3")
def test_too_many_payers_block_only_the_wechat_qr_until_the_block_lifts(pay):
    for i in range(rules.FREQUENCY.max_payers):
        pay.create(100, payer=f"p{i}")
    with pytest.raises(RechargeRefused) as err:
        pay.create(100, payer="one-too-many")
    assert err.value.message_zh == "暂时无法获取微信支付二维码"
    assert err.value.field == "channel"
    with pytest.raises(RechargeRefused):      # the block holds for known payers too
        pay.create(100, payer="p0")
    assert pay.create(100, "netbank", payer="one-too-many")["state"] == "pending"
    other = new_account(pay.rt, "unrelated")
    assert pay.create(100, uin=other, payer="one-too-many")["state"] == "pending"
    pay.rt.clock.advance(hours=1, seconds=1)  # the block lifts by itself
    assert pay.create(100, payer="p0")["state"] == "pending"


# ---------------------------------------------------------------- the adapter's cryptography

@pytest.mark.spec("RCH-5")
def test_the_adapter_verifies_and_decrypts_a_vector_built_independently(pay):
    """A notification built here step by step with ``cryptography`` as the protocol
    describes it (not with the sandbox's helpers): SHA256-RSA2048 PKCS#1 v1.5 over
    "timestamp\\nnonce\\nbody\\n", the resource AEAD_AES_256_GCM with the API v3 key
    as key, a 12-byte nonce, associated data "transaction", base64(ciphertext‖tag)."""
    recharge = {"out_trade_no": "FCVECTOR0001", "amount": 1}
    plaintext = json.dumps(paid_transaction(pay, recharge)).encode()
    nonce, associated = b"0123456789ab", b"transaction"
    sealed = AESGCM(pay.keys.apiv3_key.encode()).encrypt(nonce, plaintext, associated)
    assert len(sealed) == len(plaintext) + 16  # the GCM tag follows the ciphertext
    body = json.dumps({"id": "EV-1", "create_time": "2026-03-02T10:00:00+08:00",
                       "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                       "summary": "支付成功", "resource": {
                           "original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                           "ciphertext": base64.b64encode(sealed).decode(),
                           "associated_data": associated.decode(), "nonce": nonce.decode()}})

    def signed(text: str) -> dict:
        timestamp, wire_nonce = str(int(time.time())), "5K8264ILTKCH16CQ2502SI8ZNMTM67VS"
        signature = pay.keys.platform_key.sign(f"{timestamp}\n{wire_nonce}\n{text}\n".encode(),
                                               padding.PKCS1v15(), hashes.SHA256())
        return {"Wechatpay-Timestamp": timestamp, "Wechatpay-Nonce": wire_nonce,
                "Wechatpay-Serial": f"{pay.keys.platform_cert.serial_number:X}",
                "Wechatpay-Signature": base64.b64encode(signature).decode(),
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048"}

    headers = signed(body)
    note = pay.gateway.parse_notification(headers, body.encode(), datetime.now(UTC))
    assert (note.notification_id, note.payment.out_trade_no) == ("EV-1", "FCVECTOR0001")
    assert (note.payment.state, note.payment.amount, note.payment.payer) == ("paid", 1, "o-payer")
    other_ad = body.replace('"associated_data": "transaction"', '"associated_data": "certificate"')
    assert other_ad != body
    with pytest.raises(NotificationRefused):  # the associated data is authenticated too
        pay.gateway.parse_notification(signed(other_ad), other_ad.encode(), datetime.now(UTC))
    with pytest.raises(NotificationRefused) as err:  # an unknown platform serial: no fetch
        pay.gateway.parse_notification({**headers, "Wechatpay-Serial": "ABCDEF"}, body.encode(),
                                       datetime.now(UTC))
    assert err.value.reason == "bad_signature"


def test_the_request_signature_string_matches_wechat_pays_published_example(pay):
    """WeChat Pay's worked example of the string a request signature covers
    (https://pay.weixin.qq.com/wiki/doc/api_external/ch/wechatpay/wechatpay4_0.shtml,
    "构造签名串", step 6). The sandbox verifies every adapter request over this string;
    the example's signature value needs the merchant's private key, which is not
    published, so only the string is checked, and that the adapter's own requests
    verify over it."""
    documented = "GET\n/v3/certificates\n1554208460\n593BEC0C930BF1AFEB40B4A08C8FB242\n\n"
    assert protocol.request_message("GET", "/v3/certificates", "1554208460",
                                     "593BEC0C930BF1AFEB40B4A08C8FB242", "") == documented
    # the package's public signer signs the same lines (JSAPI paySign uses it)
    signed = pay.gateway._client.sign(["GET", "/v3/certificates", "1554208460",
                                       "593BEC0C930BF1AFEB40B4A08C8FB242", ""])
    assert protocol.rsa_verify(pay.keys.merchant_key.public_key(), documented, signed)


def test_the_sandbox_refuses_a_request_not_signed_by_the_merchant(pay):
    response = requests.get(f"{pay.url}/v3/pay/transactions/out-trade-no/X?mchid=1", timeout=10,
                            headers={"Authorization": 'WECHATPAY2-SHA256-RSA2048 mchid="1"'})
    assert response.status_code == 401 and response.json()["code"] == "SIGN_ERROR"


# ---------------------------------------------------------------- REST and compat

def rest(pay: Pay):
    from tests.rest_harness import Signed

    return Signed(pay.rt, TestClient(create_app(pay.rt)), api_key(pay.rt, pay.uin))


@pytest.mark.spec("RCH-1", "RCH-2", "BAL-5")
def test_rest_create_show_list_and_the_bill_list_shows_an_online_recharge(pay):
    client = rest(pay)
    created = client.send("POST", "/api/v1/recharges",
                          {"uin": pay.uin, "amount": "12.34", "channel": "wechat"})
    assert created.status_code == 201, created.text
    body = created.json()
    assert (body["amount"], body["state"], body["channel"]) == ("12.34", "pending", "wechat")
    bad = client.send("POST", "/api/v1/recharges",
                      {"uin": pay.uin, "amount": "60000.00", "channel": "wechat"})
    error = bad.json()["error"]
    assert bad.status_code == 403 and error["field"] == "amount"
    assert "限额" in error["message_zh"] and "at most" in error["message_en"]
    pay.payer_acts(body, "pay")
    pay.wait_state(body["id"], "paid")
    shown = client.send("GET", f"/api/v1/recharges/{body['id']}").json()
    assert shown["state"] == "paid" and shown["paid_at"]
    listed = client.send("GET", f"/api/v1/accounts/{pay.uin}/recharges").json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == body["id"]
    entries = client.send("GET", f"/api/v1/accounts/{pay.uin}/transactions",
                          query={"type": "recharge"}).json()
    assert [(e["amount"], e["deduct_mode"], e["pay_channel"]) for e in entries["items"]] == [
        ("12.34", "online", "wechat")]


def test_rest_refuses_another_accounts_recharge(pay):
    other = new_account(pay.rt, "someone-else")
    recharge = pay.create(100, uin=other)
    response = rest(pay).send("GET", f"/api/v1/recharges/{recharge['id']}")
    assert response.status_code == 404  # as a missing one: ids cannot be probed
    missing = rest(pay).send("GET", f"/api/v1/recharges/{recharge['id'] + 1000}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == response.json()["error"]["code"]


@pytest.mark.spec("RCH-2")
def test_rest_names_the_field_of_bad_input(pay):
    client = rest(pay)
    for body, field in (({"uin": pay.uin, "amount": "1.234", "channel": "wechat"}, "amount"),
                        ({"uin": pay.uin, "amount": "1.00", "channel": "cash"}, "channel"),
                        ({"uin": pay.uin, "amount": "0.00", "channel": "netbank"}, "amount")):
        response = client.send("POST", "/api/v1/recharges", body)
        assert response.status_code == 400, response.text
        assert field in json.dumps(response.json())
    with pay.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(recharges_table)).scalar() == 0


def test_cli_create_query_show_list(pay, cli, monkeypatch):
    for name, value in sandbox_keys.merchant_env(
            pay.keys, pay.url, f"{pay.own}/api/v1/recharges/notify/wechat").items():
        monkeypatch.setenv(name, value)
    code, created = cli.json("recharge", "create", "--uin", str(pay.uin), "--amount", "5.00",
                             "--payer", "cli-payer")
    assert code == 0 and created["state"] == "pending"
    requests.post(created["code_url"], data={"action": "pay", "notify": "no"}, timeout=60)
    code, queried = cli.json("recharge", "query", str(created["id"]))
    assert code == 0 and queried["state"] == "paid"
    code, shown = cli.json("recharge", "show", str(created["id"]))
    assert shown["txn_id"] == queried["txn_id"]
    code, listed = cli.json("recharge", "list", "--uin", str(pay.uin))
    assert listed["total"] == 1
    assert balance(pay.rt, pay.uin).cash == 5_00


@pytest.mark.spec("BAL-5")
def test_describe_bill_list_shows_the_recharge_with_its_online_sub_type(pay):
    from feecenter.clock import business_time_text
    from tests.compat_harness import Shop

    recharge = pay.create(7_00)
    pay.payer_acts(recharge, "pay")
    pay.wait_state(recharge["id"], "paid")
    now = pay.rt.clock.now()
    shop = Shop(pay.rt, pay.uin, api_key(pay.rt, pay.uin), TestClient(create_app(pay.rt)), now,
                [], [], [])
    answer = shop.call("DescribeBillList", {
        "StartTime": business_time_text(now - timedelta(hours=1)),
        "EndTime": business_time_text(now + timedelta(hours=1)),
        "Offset": 0, "Limit": 20, "PayType": ["recharge"], "SubPayType": ["online"]})
    assert [(t["ActionType"], t["Amount"], t["DeductMode"], t["PayChannel"])
            for t in answer["TransactionList"]] == [("recharge", 7_00, "online", "wechat")]
    assert answer["RechargeAmount"] == 7_00


@pytest.mark.spec("RCH-5")
@pytest.mark.parametrize("body", [b"\x00\xff not json", b"", b'{"id": 1}'])
def test_garbage_at_the_notification_endpoint_is_refused_and_recorded(pay, body):
    with TestClient(create_app(pay.rt)) as client:
        response = client.post("/api/v1/recharges/notify/wechat", content=body,
                               headers={"Content-Type": "text/plain",
                                        "Wechatpay-Timestamp": str(int(time.time())),
                                        "Wechatpay-Serial": pay.keys.platform_serial,
                                        "Wechatpay-Signature": "bm90IGEgc2lnbmF0dXJl"})
        unknown = client.post("/api/v1/recharges/notify/alipay", content=b"{}")
    assert response.status_code == 400 and unknown.status_code == 404
    assert [(n["outcome"], n["reason"]) for n in pay.notifications()] == [
        ("refused", "bad_signature")]


@pytest.mark.spec("RCH-5")
def test_operators_read_the_raw_notification_log_customers_do_not(pay):
    from tests.rest_harness import Signed

    recharge = pay.create(3_00)
    headers, body = pay.signed_notification(paid_transaction(pay, recharge))
    assert notify(pay, headers, body).status_code == 200
    with transaction(pay.rt.engine) as conn:
        from feecenter.auth import service as auth

        _, ops_key = auth.create_operator(conn, pay.rt.clock, OPS, "recharge-ops")
    client = TestClient(create_app(pay.rt))
    log = Signed(pay.rt, client, ops_key).send(
        "GET", "/api/v1/ops/recharges/notifications", query={"recharge_id": recharge["id"]})
    assert log.status_code == 200, log.text
    (item,) = log.json()["items"]
    assert (item["outcome"], item["out_trade_no"]) == ("credited", recharge["out_trade_no"])
    assert json.loads(item["body"])["resource"]["algorithm"] == "AEAD_AES_256_GCM"  # as received
    assert rest(pay).send("GET", "/api/v1/ops/recharges/notifications").status_code == 403


def start_sandbox_process(keys_dir, port: int, *options: str):
    """`feecenter sandbox-pay` in a subprocess; returns (process, the settings it printed)."""
    import subprocess
    import sys

    process = subprocess.Popen(
        [sys.executable, "-m", "feecenter.cli", "sandbox-pay", "--port", str(port),
         "--keys", str(keys_dir), *options],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    env = {}
    while "FEECENTER_WECHATPAY_BASE_URL" not in env:  # the last line printed
        line = process.stdout.readline()
        assert line, "sandbox-pay ended early"
        if line.startswith("export "):
            name, _, value = line[len("export "):].strip().partition("=")
            env[name] = value
    deadline = time.monotonic() + 15
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/pay/none", timeout=1)
            return process, env
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "sandbox-pay did not start"
            time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("options", [(), ("--public-key-mode",)])
def test_feecenter_sandbox_pay_runs_as_its_own_service(tmp_path, options):
    """`feecenter sandbox-pay` in a subprocess: it prints the settings that point the
    adapter at it, and the real adapter creates and queries a payment there; with
    --public-key-mode the settings are the public key and its id, no certificates."""
    port = free_port()
    process, env = start_sandbox_process(tmp_path / "keys", port, *options)
    try:
        assert env["FEECENTER_WECHATPAY_BASE_URL"] == f"http://127.0.0.1:{port}"
        assert ("FEECENTER_WECHATPAY_PLATFORM_CERT_DIR" in env) == (not options)
        if options:
            assert env["FEECENTER_WECHATPAY_PUBLIC_KEY_ID"].startswith("PUB_KEY_ID_")
        gateway = WeChatPayGateway(WeChatPayConfig.from_env(env))
        code_url = gateway.create_payment("FCSUBPROCESS1", 1_00, "test",
                                          datetime.now(UTC) + timedelta(minutes=5))
        requests.post(code_url, data={"action": "pay", "notify": "no"}, timeout=60)
        assert gateway.query("FCSUBPROCESS1").state == "paid"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.mark.spec("RCH-5")
def test_a_sandbox_killed_between_paying_and_notifying_is_credited_once_when_back(pay, tmp_path):
    """The provider dies (SIGKILL) after the payer paid and before any notification:
    once it is back, the recovery query credits the payment, and the notification it
    then sends is acknowledged without a second credit."""
    port = free_port()
    process, env = start_sandbox_process(tmp_path / "keys", port)
    env["FEECENTER_WECHATPAY_NOTIFY_URL"] = f"{pay.own}/api/v1/recharges/notify/wechat"
    gateway = WeChatPayGateway(WeChatPayConfig.from_env(env))
    pay.rt.gateways = {"wechat": gateway}
    try:
        recharge = pay.create(42_00)
        pay.payer_acts(recharge, "pay", notify="no")
        process.kill()
        process.wait(timeout=10)
        pay.rt.clock.advance(minutes=3)
        assert recharges.sync_pending(pay.rt.engine, pay.rt.clock, pay.rt.gateways) == {
            "checked": 1, "credited": 0, "failed": 0, "closed": 0, "unreachable": 1}
        process, _ = start_sandbox_process(tmp_path / "keys", port)
        counts = recharges.sync_pending(pay.rt.engine, pay.rt.clock, pay.rt.gateways)
        assert counts["credited"] == 1 and balance(pay.rt, pay.uin).cash == 42_00
        pay.rt.clock.set(datetime.now(UTC))
        requests.post(f"http://127.0.0.1:{port}/sandbox/payments/{recharge['out_trade_no']}/notify",
                      timeout=60)
        deadline = time.monotonic() + 15
        while not requests.get(f"http://127.0.0.1:{port}/sandbox/payments/"
                               f"{recharge['out_trade_no']}", timeout=5).json()["acknowledged"]:
            assert time.monotonic() < deadline, "the notification was never acknowledged"
            time.sleep(0.1)
        assert [n["outcome"] for n in pay.notifications()] == ["duplicate"]
        assert balance(pay.rt, pay.uin).cash == 42_00 and len(pay.entries()) == 1
        assert_reconciled(pay.rt)
    finally:
        process.terminate()
        process.wait(timeout=10)


# ---------------------------------------------------------------- mini-program codes (RCH-4)

MINI_OPENID = "o-mini-creator"


def mini_program_recharge(pay: Pay, fen: int) -> dict:
    return recharges.create(pay.rt.engine, pay.rt.clock, SYSTEM, pay.uin,
                            recharges.NewRecharge(fen, "wechat", MINI_OPENID,
                                                  source=rules.MINI_PROGRAM), pay.rt.gateways)


def pay_as(pay: Pay, recharge: dict, payer: str) -> requests.Response:
    """The payer page of the sandbox, paying as ``payer``."""
    return requests.post(f"{pay.url}/pay/{recharge['out_trade_no']}",
                         data={"action": "pay", "payer": payer}, timeout=10)


@pytest.mark.spec("RCH-4", "RCH-5")
def test_a_mini_program_code_is_paid_by_its_creator_and_credited_once(pay):
    recharge = mini_program_recharge(pay, 88_00)
    assert (recharge["source"], recharge["bound_payer"]) == ("mini_program", MINI_OPENID)
    assert recharge["prepay_id"].startswith("wx") and recharge["code_url"] is None
    order = pay.provider.payments[recharge["out_trade_no"]].order
    assert order["payer"] == {"openid": MINI_OPENID}  # a JSAPI order bound at the provider
    assert pay_as(pay, recharge, MINI_OPENID).status_code == 200
    row = pay.wait_state(recharge["id"], "paid")
    assert row["provider_payer"] == MINI_OPENID
    recharges.query(pay.rt.engine, pay.rt.clock, SYSTEM, recharge["id"], pay.rt.gateways)
    assert balance(pay.rt, pay.uin).cash == 88_00
    assert pay.entries() == [("recharge", 88_00, "wechat", "online")]
    assert_reconciled(pay.rt)


@pytest.mark.spec("RCH-4")
def test_another_payer_of_a_mini_program_code_is_refused_and_nothing_is_credited(pay):
    recharge = mini_program_recharge(pay, 66_00)
    refused = pay_as(pay, recharge, "o-someone-else")
    assert refused.status_code == 403 and "账号不一致，请核实后重试" in refused.text
    row = recharges.query(pay.rt.engine, pay.rt.clock, SYSTEM, recharge["id"], pay.rt.gateways)
    assert row["state"] == "pending" and pay.provider.payments[
        recharge["out_trade_no"]].trade_state == "NOTPAY"
    assert balance(pay.rt, pay.uin).cash == 0 and pay.entries() == []
    assert pay_as(pay, recharge, MINI_OPENID).status_code == 200  # the creator still can
    pay.wait_state(recharge["id"], "paid")
    assert balance(pay.rt, pay.uin).cash == 66_00


@pytest.mark.spec("RCH-4")
def test_a_provider_reporting_another_payer_of_a_bound_code_is_refused_and_recorded(pay):
    recharge = mini_program_recharge(pay, 42_00)
    headers, body = pay.signed_notification(paid_transaction(
        pay, recharge, trade_type="JSAPI", payer={"openid": "o-intruder"}))
    result = recharges.handle_notification(pay.rt.engine, pay.rt.clock, pay.gateway,
                                           headers, body)
    assert (result.accepted, result.reason) == (False, "payer_mismatch")
    row = pay.row(recharge["id"])
    assert row["state"] == "failed" and row["fail_reason"].startswith("账号不一致，请核实后重试")
    assert [(n["outcome"], n["reason"]) for n in pay.notifications()] == [
        ("refused", "payer_mismatch")]
    assert balance(pay.rt, pay.uin).cash == 0 and pay.entries() == []
    assert_reconciled(pay.rt)


@pytest.mark.spec("RCH-4")
def test_a_qr_code_may_be_paid_by_anyone(pay):
    recharge = pay.create(20_00, payer=OWNER)
    assert recharge["source"] == "qr" and recharge["bound_payer"] is None
    assert pay_as(pay, recharge, "o-a-friend").status_code == 200
    assert pay.wait_state(recharge["id"], "paid")["provider_payer"] == "o-a-friend"
    assert balance(pay.rt, pay.uin).cash == 20_00


@pytest.mark.spec("RCH-4")
def test_rest_creates_a_mini_program_recharge_and_names_bad_fields(pay):
    client = rest(pay)
    made = client.send("POST", "/api/v1/recharges", {
        "uin": pay.uin, "amount": "9.99", "channel": "wechat", "source": "mini_program",
        "payer": MINI_OPENID})
    assert made.status_code == 201, made.text
    body = made.json()
    assert (body["source"], body["bound_payer"], body["code_url"]) == (
        "mini_program", MINI_OPENID, None) and body["prepay_id"]
    for bad, field in (({"source": "mini_program"}, "payer"), ({"source": "app"}, "source"),
                       ({"source": "mini_program", "payer": "o", "channel": "netbank"}, "source")):
        sent = {"uin": pay.uin, "amount": "1.00", "channel": "wechat", **bad}
        answer = client.send("POST", "/api/v1/recharges", sent)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["field"] == field
    with pay.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(recharges_table)).scalar() == 1
