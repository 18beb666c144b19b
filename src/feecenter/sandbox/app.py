"""The sandbox provider's ASGI app: WeChat Pay API v3 Native payments, JSAPI payments
bound to a payer's openid (only that payer may pay them: RCH-4), query, close,
refund (with its query) and the platform certificates, each request's signature verified and each
answer signed (by the platform key, announced by its certificate's serial or, in
public-key mode, by its public key's id ``PUB_KEY_ID_…``); a payer page where a payment is paid, fails with the provider's
reason or is abandoned; payment notifications sent asynchronously and retried
with backoff until the merchant acknowledges them (2xx).

A payer's channel account can be closed (``POST /sandbox/payers/{payer}/close``):
refunds to it then end ``ABNORMAL``, WeChat's word for a refund to a closed or
frozen account (WDR-5); ``…/slow`` leaves that payer's refunds ``PROCESSING`` until
``POST /sandbox/refunds/{out_refund_no}/finish`` ends them, ``…/open`` undoes both.
Refunds are idempotent by ``out_refund_no``: a repeat answers the first refund.

State is kept in ``state.json`` in the keys folder, written after every change,
so a sandbox killed between a payment and its notification still knows the
payment when it comes back: it answers queries with it (the merchant recovers
by querying) and resumes the notifications not yet acknowledged.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import secrets
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import requests
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from feecenter.sandbox import protocol
from feecenter.sandbox.keys import SandboxKeys

DEFAULT_REASON = "当前交易行为异常"
PAYER_MISMATCH = "账号不一致，请核实后重试"  # WeChat's words when another openid pays a JSAPI order
RETRY_DELAYS_S = (0, 2, 4, 8, 16, 30, 60, 120, 300)  # before each attempt
SKEW_S = 300


@dataclass
class Payment:
    order: dict                      # as the merchant created it
    trade_state: str = "NOTPAY"
    trade_state_desc: str = "订单未支付"
    transaction_id: str | None = None
    success_time: str | None = None
    payer: str | None = None
    bank_type: str | None = None
    attempts: list[dict] = field(default_factory=list)
    acknowledged: bool = False
    held: bool = False               # paid with notify=no: no notification until asked
    notification_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def bound_payer(self) -> str | None:
        """The openid a JSAPI order may only be paid by; None: anyone (Native)."""
        return (self.order.get("payer") or {}).get("openid")

    def transaction(self) -> dict:
        total = self.order["amount"]["total"]
        data = {"appid": self.order["appid"], "mchid": self.order["mchid"],
                "out_trade_no": self.order["out_trade_no"],
                "trade_type": "JSAPI" if self.bound_payer else "NATIVE",
                "trade_state": self.trade_state, "trade_state_desc": self.trade_state_desc,
                "attach": "", "amount": {"total": total, "currency": "CNY"}}
        if self.trade_state in ("SUCCESS", "REFUND"):
            data.update(transaction_id=self.transaction_id, success_time=self.success_time,
                        bank_type=self.bank_type, payer={"openid": self.payer},
                        amount={"total": total, "payer_total": total, "currency": "CNY",
                                "payer_currency": "CNY"})
        return data


class Provider:
    def __init__(self, keys: SandboxKeys, retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
                 public_key_mode: bool = False):
        self.keys = keys
        self.retry_delays = retry_delays
        # the Wechatpay-Serial of every answer and notification
        self.serial = keys.public_key_id if public_key_mode else keys.platform_serial
        self.payments: dict[str, Payment] = {}
        self.refunds: dict[str, dict] = {}
        self.payer_accounts: dict[str, str] = {}  # payer -> closed | slow (else open)
        self.tasks: set[asyncio.Task] = set()
        self.state_path = keys.folder / "state.json"
        if self.state_path.exists():
            state = json.loads(self.state_path.read_text())
            self.payments = {no: Payment(**p) for no, p in state["payments"].items()}
            self.refunds = state["refunds"]
            self.payer_accounts = state.get("payer_accounts", {})

    def save(self) -> None:
        """Write the state (a new file renamed over the old: never half-written)."""
        temporary = self.state_path.with_suffix(".tmp")
        temporary.write_text(json.dumps({
            "payments": {no: asdict(p) for no, p in self.payments.items()},
            "refunds": self.refunds, "payer_accounts": self.payer_accounts},
            ensure_ascii=False))
        os.replace(temporary, self.state_path)

    def resume(self) -> None:
        """Notify again what was paid and never acknowledged (after a restart)."""
        for payment in self.payments.values():
            if payment.trade_state == "SUCCESS" and not (payment.acknowledged or payment.held):
                self.notify_later(payment)

    # ------------------------------------------------------------ wire

    def answer(self, status: int, payload: dict | None = None) -> Response:
        body = "" if payload is None else json.dumps(payload, ensure_ascii=False)
        headers = protocol.signed_headers(self.keys.platform_key, self.serial, body)
        return Response(body.encode(), status_code=status, headers=headers,
                        media_type="application/json" if body else None)

    def error(self, status: int, code: str, message: str) -> Response:
        return self.answer(status, {"code": code, "message": message})

    async def authenticate(self, request: Request) -> tuple[bytes, Response | None]:
        body = await request.body()
        fields = protocol.parse_authorization(request.headers.get("authorization", ""))
        if not fields:
            return body, self.error(401, "SIGN_ERROR", "Authorization 缺失或格式错误")
        if fields.get("mchid") != self.keys.mchid or fields.get("serial_no") != self.keys.merchant_serial:
            return body, self.error(401, "SIGN_ERROR", "商户号或证书序列号不匹配")
        if not fields.get("timestamp", "").isdigit() or abs(time.time() - int(fields["timestamp"])) > SKEW_S:
            return body, self.error(401, "SIGN_ERROR", "请求时间戳超出范围")
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        message = protocol.request_message(request.method, target, fields["timestamp"],
                                           fields.get("nonce_str", ""), body.decode("utf-8", "replace"))
        if not protocol.rsa_verify(self.keys.merchant_key.public_key(), message,
                                   fields.get("signature", "")):
            return body, self.error(401, "SIGN_ERROR", "签名错误")
        return body, None

    # ------------------------------------------------------------ paying

    def settle(self, payment: Payment, action: str, payer: str, international: bool,
               reason: str) -> None:
        if action == "pay":
            payment.trade_state, payment.trade_state_desc = "SUCCESS", "支付成功"
            payment.transaction_id = f"4200{secrets.randbelow(10**24):024d}"
            payment.success_time = datetime.now(UTC).astimezone().isoformat(
                timespec="seconds")
            payment.payer = payer or "sandbox-payer"
            payment.bank_type = "VISA_CREDIT" if international else "CMB_DEBIT"
        elif action == "fail":
            payment.trade_state, payment.trade_state_desc = "PAYERROR", reason or DEFAULT_REASON

    def notify_later(self, payment: Payment) -> None:
        task = asyncio.get_running_loop().create_task(self.deliver(payment))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def deliver(self, payment: Payment) -> None:
        """Send the notification until a 2xx answer, waiting longer after each failure."""
        for delay in self.retry_delays:
            await asyncio.sleep(delay)
            if payment.acknowledged:
                return
            body = protocol.notification_body(self.keys.apiv3_key, payment.transaction(),
                                              payment.notification_id)
            headers = {**protocol.signed_headers(self.keys.platform_key, self.serial, body),
                       "Content-Type": "application/json"}
            outcome = await asyncio.to_thread(_post, payment.order["notify_url"], body, headers)
            payment.attempts.append({"at": time.time(), **outcome})
            if 200 <= outcome.get("status", 0) < 300:
                payment.acknowledged = True
                self.save()
                return


def _post(url: str, body: str, headers: dict) -> dict:
    try:
        response = requests.post(url, data=body.encode(), headers=headers, timeout=(3, 10))
    except requests.RequestException as exc:
        return {"error": type(exc).__name__}
    return {"status": response.status_code}


def create_app(keys: SandboxKeys, retry_delays: tuple[float, ...] = RETRY_DELAYS_S,
               public_key_mode: bool = False) -> FastAPI:
    provider = Provider(keys, retry_delays, public_key_mode)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        provider.resume()
        yield

    app = FastAPI(title="Fee Center payment sandbox (WeChat Pay API v3)", lifespan=lifespan)
    app.state.provider = provider
    _api_routes(app, provider)
    _payer_routes(app, provider)
    return app


def _api_routes(app: FastAPI, provider: Provider) -> None:
    async def create(request: Request, bound: bool) -> Response:
        body, refused = await provider.authenticate(request)
        if refused:
            return refused
        try:
            order = json.loads(body)
            no, total = order["out_trade_no"], int(order["amount"]["total"])
            valid = (order["mchid"] == provider.keys.mchid and order["appid"] == provider.keys.appid
                     and total > 0 and bool(order["notify_url"])
                     and bool((order.get("payer") or {}).get("openid")) == bound)
        except (ValueError, KeyError, TypeError, AttributeError):
            valid = False
        if not valid:
            return provider.error(400, "PARAM_ERROR", "参数错误")
        if no in provider.payments:
            return provider.error(400, "OUT_TRADE_NO_USED", "商户订单号重复")
        provider.payments[no] = Payment(order)
        provider.save()
        if bound:
            return provider.answer(200, {"prepay_id": f"wx{secrets.token_hex(16)}"})
        return provider.answer(200, {"code_url": f"{request.base_url}pay/{no}"})

    @app.post("/v3/pay/transactions/native")
    async def create_native(request: Request) -> Response:
        return await create(request, bound=False)

    @app.post("/v3/pay/transactions/jsapi")
    async def create_jsapi(request: Request) -> Response:
        """A payment only ``payer.openid`` may pay (the mini-program's; its payer page is
        /pay/{out_trade_no} too)."""
        return await create(request, bound=True)

    async def signed_lookup(request: Request, records: dict, no: str, code: str,
                            message: str) -> tuple[object, Response | None]:
        """An authenticated call about record ``no``: (the record, None), or (None, the
        refusal: the signature's, or 404 with the provider's ``code``)."""
        _, refused = await provider.authenticate(request)
        if refused:
            return None, refused
        if no not in records:
            return None, provider.error(404, code, message)
        return records[no], None

    @app.get("/v3/pay/transactions/out-trade-no/{no}")
    async def query(no: str, request: Request) -> Response:
        payment, refused = await signed_lookup(request, provider.payments, no,
                                               "ORDER_NOT_EXIST", "订单不存在")
        return refused if refused is not None else provider.answer(200, payment.transaction())

    @app.post("/v3/pay/transactions/out-trade-no/{no}/close")
    async def close(no: str, request: Request) -> Response:
        payment, refused = await signed_lookup(request, provider.payments, no,
                                               "ORDER_NOT_EXIST", "订单不存在")
        if refused:
            return refused
        if payment.trade_state == "SUCCESS":
            return provider.error(400, "ORDERPAID", "订单已支付")
        payment.trade_state, payment.trade_state_desc = "CLOSED", "订单已关闭"
        provider.save()
        return provider.answer(204)

    @app.post("/v3/refund/domestic/refunds")
    async def refund(request: Request) -> Response:
        body, refused = await provider.authenticate(request)
        if refused:
            return refused
        try:
            data = json.loads(body)
            payment = provider.payments[data["out_trade_no"]]
            amount = int(data["amount"]["refund"])
        except (ValueError, KeyError, TypeError):
            return provider.error(400, "PARAM_ERROR", "参数错误")
        if payment.trade_state not in ("SUCCESS", "REFUND"):
            return provider.error(400, "INVALID_REQUEST", "订单未支付")
        if data["out_refund_no"] in provider.refunds:  # idempotent: the first refund
            return provider.answer(200, provider.refunds[data["out_refund_no"]])
        refunded = sum(r["amount"]["refund"] for r in provider.refunds.values()
                       if r["out_trade_no"] == data["out_trade_no"]
                       and r["status"] not in ("ABNORMAL", "CLOSED"))
        if not 0 < amount <= payment.order["amount"]["total"] - refunded:
            return provider.error(400, "INVALID_REQUEST", "退款金额超出可退金额")
        account = provider.payer_accounts.get(payment.payer or "", "open")
        status = {"closed": "ABNORMAL", "slow": "PROCESSING"}.get(account, "SUCCESS")
        record = provider.refunds[data["out_refund_no"]] = {
            "refund_id": f"5030{secrets.randbelow(10**24):024d}", "status": status,
            "out_refund_no": data["out_refund_no"], "out_trade_no": data["out_trade_no"],
            "transaction_id": payment.transaction_id, "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱" if status != "ABNORMAL" else "",
            "amount": {"refund": amount, "total": payment.order["amount"]["total"],
                       "currency": "CNY"}}
        payment.trade_state = "REFUND"
        provider.save()
        return provider.answer(200, record)

    @app.get("/v3/refund/domestic/refunds/{no}")
    async def query_refund(no: str, request: Request) -> Response:
        record, refused = await signed_lookup(request, provider.refunds, no,
                                              "RESOURCE_NOT_EXISTS", "退款单不存在")
        return refused if refused is not None else provider.answer(200, record)

    @app.get("/v3/certificates")
    async def certificates(request: Request) -> Response:
        _, refused = await provider.authenticate(request)
        if refused:
            return refused
        from cryptography.hazmat.primitives.serialization import Encoding

        cert = provider.keys.platform_cert
        pem = cert.public_bytes(Encoding.PEM).decode()
        sealed = protocol.encrypt_resource(provider.keys.apiv3_key, pem, "certificate")
        return provider.answer(200, {"data": [{
            "serial_no": provider.keys.platform_serial,
            "effective_time": cert.not_valid_before_utc.isoformat(),
            "expire_time": cert.not_valid_after_utc.isoformat(),
            "encrypt_certificate": {k: sealed[k] for k in (
                "algorithm", "nonce", "associated_data", "ciphertext")}}]})


def _payer_routes(app: FastAPI, provider: Provider) -> None:
    @app.get("/pay/{no}", response_class=HTMLResponse)
    async def payer_page(no: str) -> HTMLResponse:
        payment = provider.payments.get(no)
        if payment is None:
            return HTMLResponse(_page("订单不存在 / Unknown payment", ""), status_code=404)
        return HTMLResponse(_page("沙箱支付 / Sandbox payment", _form(no, payment)))

    @app.post("/pay/{no}", response_class=HTMLResponse)
    async def pay(no: str, action: Annotated[str, Form()],
                  payer: Annotated[str, Form()] = "sandbox-payer",
                  card: Annotated[str, Form()] = "domestic",
                  reason: Annotated[str, Form()] = DEFAULT_REASON,
                  notify: Annotated[str, Form()] = "yes") -> HTMLResponse:
        payment = provider.payments.get(no)
        if payment is None or action not in ("pay", "fail", "abandon"):
            return HTMLResponse(_page("无效请求 / Bad request", ""), status_code=400)
        if payment.trade_state != "NOTPAY":
            return HTMLResponse(_page("订单不可支付 / Not payable",
                                      html.escape(payment.trade_state_desc)), status_code=409)
        if action == "pay" and payment.bound_payer and payer != payment.bound_payer:
            return HTMLResponse(_page("支付失败 / Refused", PAYER_MISMATCH), status_code=403)
        provider.settle(payment, action, payer, card == "international", reason)
        payment.held = notify != "yes"
        provider.save()
        if action == "pay" and not payment.held:
            provider.notify_later(payment)
        return HTMLResponse(_page("结果 / Result", html.escape(payment.trade_state_desc)))

    @app.get("/sandbox/payments/{no}")
    async def inspect(no: str) -> JSONResponse:
        payment = provider.payments.get(no)
        if payment is None:
            return JSONResponse({"error": "unknown"}, status_code=404)
        return JSONResponse({**payment.transaction(), "attempts": payment.attempts,
                             "acknowledged": payment.acknowledged})

    @app.post("/sandbox/payers/{payer}/{state}")
    async def payer_account(payer: str, state: str) -> JSONResponse:
        """``close``: the payer's channel account is closed, refunds to it end ABNORMAL;
        ``slow``: its refunds stay PROCESSING until finished; ``open``: neither."""
        if state not in ("close", "slow", "open"):
            return JSONResponse({"error": "state: close | slow | open"}, status_code=404)
        if state == "open":
            provider.payer_accounts.pop(payer, None)
        else:
            provider.payer_accounts[payer] = "closed" if state == "close" else "slow"
        provider.save()
        return JSONResponse({"payer": payer, "account": provider.payer_accounts.get(payer, "open")})

    @app.get("/sandbox/refunds/{no}")
    async def inspect_refund(no: str) -> JSONResponse:
        record = provider.refunds.get(no)
        if record is None:
            return JSONResponse({"error": "unknown"}, status_code=404)
        return JSONResponse(record)

    @app.post("/sandbox/refunds/{no}/finish")
    async def finish_refund(no: str, status: Annotated[str, Form()] = "SUCCESS") -> JSONResponse:
        """End a PROCESSING refund: SUCCESS, ABNORMAL or CLOSED."""
        record = provider.refunds.get(no)
        if record is None or record["status"] != "PROCESSING" or status not in (
                "SUCCESS", "ABNORMAL", "CLOSED"):
            return JSONResponse({"error": "not a processing refund, or a bad status"},
                                status_code=409)
        record["status"] = status
        provider.save()
        return JSONResponse(record)

    @app.post("/sandbox/payments/{no}/notify")
    async def renotify(no: str) -> JSONResponse:
        payment = provider.payments.get(no)
        if payment is None or payment.trade_state != "SUCCESS":
            return JSONResponse({"error": "not paid"}, status_code=409)
        payment.acknowledged, payment.held = False, False
        provider.save()
        provider.notify_later(payment)
        return JSONResponse({"queued": True})


def _page(title: str, content: str) -> str:
    return (f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'><title>{title}</title>"
            f"<body style='font-family:sans-serif;max-width:30em;margin:2em auto'>"
            f"<h1>{title}</h1>{content}</body></html>")


def _form(no: str, payment: Payment) -> str:
    total = payment.order["amount"]["total"]
    state = html.escape(payment.trade_state_desc)
    return (f"<p>{html.escape(payment.order.get('description', ''))}</p>"
            f"<p>金额 / Amount: <b>{total // 100}.{total % 100:02d}</b> 元 · {state}</p>"
            f"<form method='post' action='/pay/{html.escape(no)}'>"
            "<p><label>付款人 / Payer <input name='payer' value='"
            f"{html.escape(payment.bound_payer or 'sandbox-payer', quote=True)}'></label></p>"
            "<p><label><input type='radio' name='card' value='domestic' checked> 境内卡 / domestic"
            "</label> <label><input type='radio' name='card' value='international'> 境外卡 / "
            "international</label></p>"
            f"<p><label>失败原因 / Failure reason <input name='reason' value='{DEFAULT_REASON}'>"
            "</label></p>"
            "<button name='action' value='pay'>支付 / Pay</button> "
            "<button name='action' value='fail'>支付失败 / Fail</button> "
            "<button name='action' value='abandon'>放弃 / Abandon</button></form>")
