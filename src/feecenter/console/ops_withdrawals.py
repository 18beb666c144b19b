"""The operator console's withdrawal pages (WDR-3, WDR-5):

- 提现出款 (/console/ops/payouts): the payout queue — bank legs (remittance and
  offline legs, and failed legs an operator paid offline) waiting for the bank;
  export them as a payout batch (the CSV is the answer, downloaded), upload the
  bank's result CSV of a batch (each leg paid or failed).
- 提现失败审核 (/console/ops/withdrawals/failed): the withdrawals whose payout
  failed ("failed — needs review"), each with pay offline (the bank details the
  customer's request gives) or return to cash, both with a reason and a
  confirmation checkbox.

Thin adapters: ``withdrawals.payouts`` ``payout_queue``, ``export_batch``,
``import_batch_result``, ``failed_reviews``, ``pay_offline``, ``return_to_cash``
check that the caller is an operator, audit under its name and claim each change
atomically. Every form carries the operator session's CSRF token.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from feecenter.console.ops import OPS, OpsPage, ops_page, ops_render, posted, refused
from feecenter.console.web import csrf_refused
from feecenter.console.withdrawals import (CHANNEL_LABELS, LEG_STATE_LABELS, ROUTE_LABELS,
                                           STATE_LABELS, shown_leg, shown_withdrawal)
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id
from feecenter.withdrawals import payouts as bank_payouts

router = APIRouter(prefix=OPS, include_in_schema=False)
PAYOUTS = OPS + "/payouts"
FAILED = OPS + "/withdrawals/failed"
MAX_RESULT_BYTES = 5 * 1024 * 1024
BANK_FIELDS = ("holder", "account_no", "bank", "branch")
LABELS = {"route_labels": ROUTE_LABELS, "state_labels": STATE_LABELS,
          "leg_states": LEG_STATE_LABELS, "channel_labels": CHANNEL_LABELS}
FormText = Annotated[str, Form()]


# ---------------------------------------------------------------- 提现出款: the payout queue

def _payouts_page(request: Request, current: OpsPage, exc: FeeCenterError | None = None,
                  **extra) -> HTMLResponse:
    context = {"active": "payouts", "rows": [], "result": None, **LABELS, **extra}
    try:
        with current.rt.engine.connect() as conn:
            rows = bank_payouts.payout_queue(conn, current.actor)
    except FeeCenterError as error:
        return refused(request, current, "ops/payouts.html", error, **context)
    context["rows"] = [shown_leg(r) for r in rows]
    if exc is not None:
        return refused(request, current, "ops/payouts.html", exc, **context)
    return ops_render(request, "ops/payouts.html", current, **context)


@router.get("/payouts")
def payouts(request: Request) -> HTMLResponse:
    return _payouts_page(request, ops_page(request))


@router.post("/payouts/batches")
def export(request: Request, csrf_token: FormText = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Export every queued leg as one batch; the answer is its CSV (a download)."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    try:
        with transaction(rt.engine) as conn:
            batch = bank_payouts.export_batch(conn, rt.clock, current.actor)
    except FeeCenterError as exc:
        return _payouts_page(request, current, exc)
    name = f"payout-batch-{batch['batch_id']}.csv"
    return Response(batch["csv"].encode("utf-8-sig"), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})


@router.post("/payouts/result")
async def upload_result(request: Request) -> Response:
    form = await request.form(max_files=1, max_fields=5)
    file = form.get("result")
    data = await file.read(MAX_RESULT_BYTES + 1) if isinstance(file, UploadFile) else b""
    return await run_in_threadpool(_import_result, request, form, data)


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _import_result(request: Request, form: FormData, data: bytes) -> Response:
    """The bank's answer for one batch: each leg paid or failed, all or nothing."""
    current = ops_page(request)
    if not posted(current, _field(form, "csrf_token"), None):
        return csrf_refused(request)
    rt = current.rt
    try:
        batch_id = digits_id(_field(form, "batch_id"), "batch_id")
        text = _csv_text(data)
        with transaction(rt.engine) as conn:
            result = bank_payouts.import_batch_result(conn, rt.clock, current.actor, batch_id, text)
    except FeeCenterError as exc:
        return _payouts_page(request, current, exc, batch_id=_field(form, "batch_id")[:20])
    return _payouts_page(request, current, result=result, batch_id=batch_id)


def _csv_text(data: bytes) -> str:
    if not data:
        raise invalid("result", "请选择银行回单文件（CSV）", "choose the bank's result file (CSV)")
    if len(data) > MAX_RESULT_BYTES:
        raise invalid("result", "回单文件过大", "the result file is too large")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise invalid("result", "回单文件须为 UTF-8 编码的 CSV",
                      "the result file must be a UTF-8 CSV") from None


# ---------------------------------------------------------------- 提现失败审核

def _failed_page(request: Request, current: OpsPage, exc: FeeCenterError | None = None,
                 **extra) -> HTMLResponse:
    context = {"active": "withdrawals_failed", "rows": [], "done": None, "failed_id": None,
               "form": {}, **LABELS, **extra}
    try:
        with current.rt.engine.connect() as conn:
            rows = bank_payouts.failed_reviews(conn, current.actor)
    except FeeCenterError as error:
        return refused(request, current, "ops/withdrawals_failed.html", error, **context)
    context["rows"] = [shown_withdrawal(r) for r in rows]
    if exc is not None:
        return refused(request, current, "ops/withdrawals_failed.html", exc, **context)
    return ops_render(request, "ops/withdrawals_failed.html", current, **context)


@router.get("/withdrawals/failed")
def failed(request: Request, done: str = "") -> HTMLResponse:
    return _failed_page(request, ops_page(request), done=done[:20] or None)


@router.post("/withdrawals/{withdrawal_id}/{action}")
def decide(request: Request, withdrawal_id: str, action: str, reason: FormText = "",
           confirm: FormText = "", holder: FormText = "", account_no: FormText = "",
           bank: FormText = "", branch: FormText = "", csrf_token: FormText = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """pay-offline (to the bank account given) or return (to the customer's cash)."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    rt = current.rt
    details = {"holder": holder.strip(), "account_no": account_no.strip(), "bank": bank.strip(),
               "branch": branch.strip()}
    try:
        number = digits_id(withdrawal_id, "withdrawal_id")
        _confirmed(confirm, reason)
        with transaction(rt.engine) as conn:
            if action == "pay-offline":
                bank_payouts.pay_offline(conn, rt.clock, current.actor, number, details,
                                    reason=reason.strip())
            elif action == "return":
                bank_payouts.return_to_cash(conn, rt.clock, current.actor, number,
                                       reason=reason.strip())
            else:
                raise invalid("action", "不支持的操作", "unknown action")
    except FeeCenterError as exc:
        return _failed_page(request, current, exc, failed_id=withdrawal_id[:20],
                            form={**details, "reason": reason, "action": action})
    return RedirectResponse(f"{FAILED}?done={number}", 303)


def _confirmed(confirm: str, reason: str) -> None:
    if not reason.strip():
        raise invalid("reason", "请填写处理原因", "enter the reason")
    if confirm != "yes":
        raise invalid("confirm", "请勾选确认：此操作不可撤销",
                      "tick the confirmation: this cannot be undone")
