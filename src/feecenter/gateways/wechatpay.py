"""The WeChat Pay API v3 adapter of the payment-gateway port (RCH-1), on the maintained
``wechatpayv3`` package: Native (QR) payments, JSAPI payments bound to a payer's
openid (the mini-program, RCH-4), query, close, refund and its query (WDR-2), and payment
notifications verified (SHA256-RSA2048) with their resource decrypted with the
API v3 key (AEAD_AES_256_GCM).

Answers and notifications are verified with the WeChat Pay public key
(``Wechatpay-Serial`` is its id ``PUB_KEY_ID_…``; what WeChat issues to new
merchants), with the platform certificates of merchants that still have them, or
with both while a merchant switches over (docs/recharge.md).

Configuration comes from the environment (``WeChatPayConfig.from_env``); the
private key and the API v3 key are never logged (the client gets no logger,
and the config's repr hides them). ``FEECENTER_WECHATPAY_BASE_URL`` points the
adapter at another server speaking the same protocol, e.g. the sandbox
provider (``feecenter sandbox-pay``): the package has no public setting for
its gateway address, so the adapter sets the client's ``_core._gate_way``
(docs/decisions.md, "The WeChat Pay gateway address").
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from wechatpayv3 import WeChatPay, WeChatPayType

from feecenter.clock import BUSINESS_TZ
from feecenter.recharges.gateway import (
    GatewayRefused,
    GatewayUnavailable,
    NotificationRefused,
    ProviderNotification,
    ProviderPayment,
    ProviderRefund,
)
from feecenter.recharges.rules import CLOSED, FAILED, PAID, PENDING

PRODUCTION_URL = "https://api.mch.weixin.qq.com"
SIGNATURE_WINDOW_S = 300          # a notification signed further from now is refused
# WeChat's trade_state -> ours (RCH-6); REFUND: it was paid (a refund followed)
TRADE_STATES = {"SUCCESS": PAID, "REFUND": PAID, "NOTPAY": PENDING, "USERPAYING": PENDING,
                "ACCEPT": PENDING, "PAYERROR": FAILED, "CLOSED": CLOSED, "REVOKED": CLOSED}
# bank_type values of cards issued abroad (RCH-6); configurable, see docs/recharge.md
FOREIGN_BANK_TYPES = ("VISA_", "MASTERCARD_", "JCB_", "AMEX_", "AE_", "DINERS_", "DISCOVER_")


@dataclass(frozen=True)
class WeChatPayConfig:
    mchid: str
    appid: str
    serial_no: str                      # the merchant API certificate's serial number
    private_key_path: str               # apiclient_key.pem
    apiv3_key: str = field(repr=False)  # 32 bytes
    platform_cert_dir: str | None       # the platform certificate(s), *.pem
    notify_url: str
    public_key_path: str | None = None  # the WeChat Pay public key (pub_key.pem)
    public_key_id: str | None = None    # its id, PUB_KEY_ID_…
    base_url: str = PRODUCTION_URL
    timeout_s: tuple[float, float] = (5.0, 15.0)  # connect, read
    foreign_bank_types: tuple[str, ...] = FOREIGN_BANK_TYPES

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> WeChatPayConfig | None:
        """FEECENTER_WECHATPAY_*; None when FEECENTER_WECHATPAY_MCHID is unset. One of
        PLATFORM_CERT_DIR and PUBLIC_KEY_PATH (with PUBLIC_KEY_ID) is required."""
        if not env.get("FEECENTER_WECHATPAY_MCHID"):
            return None

        def need(name: str) -> str:
            value = env.get(f"FEECENTER_WECHATPAY_{name}")
            if not value:
                raise ValueError(f"FEECENTER_WECHATPAY_{name} must be set with "
                                 "FEECENTER_WECHATPAY_MCHID (docs/recharge.md)")
            return value

        key = env.get("FEECENTER_WECHATPAY_APIV3_KEY") or _read(
            need("APIV3_KEY_FILE"), "APIV3_KEY_FILE").strip()
        foreign = env.get("FEECENTER_WECHATPAY_FOREIGN_BANK_TYPES")
        public_key_path, public_key_id = (env.get("FEECENTER_WECHATPAY_PUBLIC_KEY_PATH"),
                                          env.get("FEECENTER_WECHATPAY_PUBLIC_KEY_ID"))
        if bool(public_key_path) != bool(public_key_id):
            raise ValueError("FEECENTER_WECHATPAY_PUBLIC_KEY_PATH and "
                             "FEECENTER_WECHATPAY_PUBLIC_KEY_ID must be set together")
        cert_dir = env.get("FEECENTER_WECHATPAY_PLATFORM_CERT_DIR") or None
        if not (cert_dir or public_key_path):
            raise ValueError("FEECENTER_WECHATPAY_PUBLIC_KEY_PATH (with _PUBLIC_KEY_ID) or "
                             "FEECENTER_WECHATPAY_PLATFORM_CERT_DIR must be set with "
                             "FEECENTER_WECHATPAY_MCHID (docs/recharge.md)")
        return cls(mchid=need("MCHID"), appid=need("APPID"), serial_no=need("SERIAL_NO"),
                   private_key_path=need("PRIVATE_KEY_PATH"), apiv3_key=key,
                   platform_cert_dir=cert_dir, notify_url=need("NOTIFY_URL"),
                   public_key_path=public_key_path, public_key_id=public_key_id,
                   base_url=env.get("FEECENTER_WECHATPAY_BASE_URL") or PRODUCTION_URL,
                   timeout_s=(float(env.get("FEECENTER_WECHATPAY_CONNECT_TIMEOUT_S") or 5),
                              float(env.get("FEECENTER_WECHATPAY_READ_TIMEOUT_S") or 15)),
                   foreign_bank_types=tuple(foreign.split(",")) if foreign else FOREIGN_BANK_TYPES)


class WeChatPayGateway:
    """``recharges.gateway.PaymentGateway`` for WeChat Pay (Native and JSAPI payments)."""

    channel = "wechat"

    def __init__(self, config: WeChatPayConfig):
        self.config = config
        # the Wechatpay-Serial values a signature may name: the public key's id and the
        # serials of the platform certificates on disk
        self._platform_serials = (_platform_serials(config.platform_cert_dir)
                                  if config.platform_cert_dir else frozenset())
        public_key = (_read(config.public_key_path, "PUBLIC_KEY_PATH")
                      if config.public_key_path else None)
        if public_key:
            _check_public_key(public_key)
        self._client = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE, mchid=config.mchid,
            private_key=_read(config.private_key_path, "PRIVATE_KEY_PATH"),
            cert_serial_no=config.serial_no, appid=config.appid, apiv3_key=config.apiv3_key,
            notify_url=config.notify_url, cert_dir=config.platform_cert_dir, logger=None,
            timeout=config.timeout_s, public_key=public_key, public_key_id=config.public_key_id)
        if config.base_url.rstrip("/") != PRODUCTION_URL:
            if not hasattr(self._client._core, "_gate_way"):  # never fall back to production
                raise RuntimeError("wechatpayv3 no longer has _core._gate_way: "
                                   "FEECENTER_WECHATPAY_BASE_URL cannot be applied")
            self._client._core._gate_way = config.base_url.rstrip("/")

    # ------------------------------------------------------------ calls

    def create_payment(self, out_trade_no: str, amount: int, description: str,
                       expires_at: datetime, payer: str | None = None) -> str:
        """A Native payment (its code_url); with ``payer`` a JSAPI payment for the
        mini-program that only that openid may pay (RCH-4; its prepay_id)."""
        kind, answer = (WeChatPayType.MINIPROG, "prepay_id") if payer else (
            WeChatPayType.NATIVE, "code_url")
        status, body = self._call(
            "create", self._client.pay, description=description[:127], out_trade_no=out_trade_no,
            amount={"total": amount, "currency": "CNY"},
            time_expire=expires_at.astimezone(BUSINESS_TZ).isoformat(timespec="seconds"),
            payer={"openid": payer} if payer else None, pay_type=kind)
        reference = self._ok(status, body).get(answer)
        if not isinstance(reference, str) or not reference:
            raise GatewayUnavailable(f"微信支付未返回 {answer}", f"WeChat Pay returned no {answer}",
                                     call="create")
        return reference

    def query(self, out_trade_no: str) -> ProviderPayment:
        status, body = self._call("query", self._client.query, out_trade_no=out_trade_no)
        if status == 404 and _json(body).get("code") == "ORDER_NOT_EXIST":  # never taken
            return ProviderPayment(out_trade_no, CLOSED, None, reason="ORDER_NOT_EXIST")
        return self._payment(self._ok(status, body))

    def close(self, out_trade_no: str) -> None:
        status, body = self._call("close", self._client.close, out_trade_no=out_trade_no)
        if status != 204:
            self._ok(status, body)

    def refund(self, out_trade_no: str, out_refund_no: str, amount: int, total: int,
               reason: str) -> ProviderRefund:
        status, body = self._call(
            "refund", self._client.refund, out_refund_no=out_refund_no, out_trade_no=out_trade_no,
            amount={"refund": amount, "total": total, "currency": "CNY"}, reason=reason[:80])
        return self._refund(out_refund_no, self._ok(status, body))

    def query_refund(self, out_refund_no: str) -> ProviderRefund | None:
        """GET /v3/refund/domestic/refunds/{out_refund_no}; None: WeChat does not know
        the refund (RESOURCE_NOT_EXISTS), so it was never taken."""
        status, body = self._call("query_refund", self._client.query_refund,
                                  out_refund_no=out_refund_no)
        if status == 404 and _json(body).get("code") == "RESOURCE_NOT_EXISTS":
            return None
        return self._refund(out_refund_no, self._ok(status, body))

    @staticmethod
    def _refund(out_refund_no: str, data: dict) -> ProviderRefund:
        return ProviderRefund(str(data.get("out_refund_no") or out_refund_no),
                              str(data.get("refund_id", "")), str(data.get("status", "")),
                              (data.get("amount") or {}).get("refund"))

    def parse_notification(self, headers: Mapping[str, str], body: bytes,
                           now: datetime) -> ProviderNotification:
        wire = {name: headers.get(name, "") for name in (
            "Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Serial",
            "Wechatpay-Signature-Type")}
        self._check_fresh(wire["Wechatpay-Timestamp"], now)
        serial = wire["Wechatpay-Serial"]
        if not (serial == self.config.public_key_id or serial.upper() in self._platform_serials):
            # never let a forger make the client fetch certificates
            raise NotificationRefused("bad_signature", f"unknown platform serial {serial[:40]}")
        try:
            data = self._client.callback(wire, body)
        except Exception as exc:  # the package raises bare Exception on a bad algorithm
            raise NotificationRefused("bad_signature", str(exc)[:200]) from exc
        if not data:
            raise NotificationRefused("bad_signature", "signature or decryption failed")
        resource = data.get("resource")
        if not isinstance(resource, dict) or data.get("event_type") != "TRANSACTION.SUCCESS":
            raise NotificationRefused("malformed", f"event {data.get('event_type')!r}")
        if resource.get("mchid") != self.config.mchid or resource.get("appid") != self.config.appid:
            raise NotificationRefused("other_merchant", f"mchid {resource.get('mchid')!r}")
        return ProviderNotification(str(data.get("id", "")), self._payment(resource))

    # ------------------------------------------------------------ plumbing

    def _call(self, what: str, method, **kwargs) -> tuple[int, str]:
        try:
            return method(**kwargs)
        except requests.RequestException as exc:
            raise GatewayUnavailable("微信支付暂时无法访问，请稍后重试",
                                     "WeChat Pay cannot be reached; try again later",
                                     call=what, error=type(exc).__name__) from exc
        except Exception as exc:  # the package raises bare Exception on a bad response signature
            raise GatewayUnavailable("微信支付的应答无法验证", "WeChat Pay's answer failed "
                                     "verification", call=what, error=str(exc)[:200]) from exc

    @staticmethod
    def _ok(status: int, body) -> dict:
        data = _json(body)
        if 200 <= status < 300:
            return data
        code, message = data.get("code", str(status)), data.get("message", "")
        error = GatewayUnavailable if status >= 500 or status == 429 else GatewayRefused
        raise error(f"微信支付拒绝了请求：{code} {message}",
                    f"WeChat Pay refused the call: {code} {message}", provider_code=code)

    def _payment(self, data: dict) -> ProviderPayment:
        trade_state = data.get("trade_state", "")
        bank_type = str(data.get("bank_type") or "")
        amount = data.get("amount") or {}
        return ProviderPayment(
            out_trade_no=str(data.get("out_trade_no", "")),
            state=TRADE_STATES.get(trade_state, PENDING),
            # the order's amount; payer_total is what the payer paid after WeChat's own
            # coupons, which the merchant is settled for all the same
            amount=amount.get("total") if trade_state else None,
            provider_txn_id=data.get("transaction_id"),
            payer=(data.get("payer") or {}).get("openid"),
            intl_card=bank_type.upper().startswith(self.config.foreign_bank_types),
            reason=data.get("trade_state_desc") if trade_state == "PAYERROR" else None)

    @staticmethod
    def _check_fresh(timestamp: str, now: datetime) -> None:
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            raise NotificationRefused("bad_signature", "no timestamp")
        signed_at = int(timestamp)
        if abs(now.timestamp() - signed_at) > SIGNATURE_WINDOW_S:
            raise NotificationRefused("stale", f"signed at {signed_at}, now {int(now.timestamp())}")


def _json(body) -> dict:
    try:
        data = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _read(path: str, variable: str) -> str:
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"FEECENTER_WECHATPAY_{variable}: cannot read {path} "
                         f"({type(exc).__name__})") from exc


def _check_public_key(pem: str) -> None:
    """The package's own error for a bad key names no setting: name it first."""
    try:
        serialization.load_pem_public_key(pem.strip().encode())
    except ValueError as exc:
        raise ValueError("FEECENTER_WECHATPAY_PUBLIC_KEY_PATH: not a PEM public key") from exc


def _platform_serials(cert_dir: str) -> frozenset[str]:
    """The serial numbers (upper-case hex, as Wechatpay-Serial carries them) of the
    platform certificates in ``cert_dir``."""
    serials = set()
    for path in sorted(Path(cert_dir).glob("*.pem")):
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        serials.add(f"{cert.serial_number:X}")
    if not serials:
        raise ValueError(f"FEECENTER_WECHATPAY_PLATFORM_CERT_DIR: no platform certificate "
                         f"(*.pem) in {cert_dir}; a merchant without one sets "
                         "FEECENTER_WECHATPAY_PUBLIC_KEY_PATH and _PUBLIC_KEY_ID")
    return frozenset(serials)
