"""/api/v1 routes for invoices (INV-1..9; docs/invoices.md, "REST"): the invoiceable
amount with its parts and buckets, the title, the invoice emails, the automatic
issuing setting, the preview and the application (issuing starts right after the
answer, as a background task; the issuing job picks up any left), the invoices
with their PDF/XML, reversals (退票) and the red-letter number; the operators'
invoice and reversal queues, release and reject; and the public verification
(no login; rate-limited per client address, 429).

Thin adapter: each route calls one service of ``feecenter.invoices``, which checks
the FINANCE permission (operators pass) and the input; amounts are yuan strings
in and out (``present.invoices``)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Header, Query, Request
from fastapi.responses import Response
from pydantic import Field

from feecenter.accounts.permissions import Actor
from feecenter.api.deps import caller, runtime
from feecenter.api.strict import (Key, Limit, Offset, OptionalText, PathId, StrictModel, Text,
                                  Uin, Yuan)
from feecenter.db.engine import transaction
from feecenter.errors import invalid
from feecenter.invoices import (documents, invoiceable, issuing, reversals, service, titles,
                                verification)
from feecenter.present.invoices import (invoice_json, invoiceable_json, preview_json,
                                        reversal_json, title_json, verification_json)
from feecenter.present.service_requests import download_headers
from feecenter.runtime import Runtime

router = APIRouter(prefix="/api/v1")
Rt = Annotated[Runtime, Depends(runtime)]
Caller = Annotated[Actor, Depends(caller)]
ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
TOO_MANY = {429: {"description": "too many verifications from this client / 查验过于频繁",
                  "content": ERROR_CONTENT}}
Kind = Annotated[str, Field(min_length=1, max_length=10, description="ordinary | special")]


def _key(body_key: str | None, header_key: str | None) -> str:
    key = body_key or header_key
    if not key:
        raise invalid("request_key", "申请开票必须提供幂等键（Idempotency-Key 头或 request_key 字段）",
                      "applying needs an idempotency key (Idempotency-Key header or "
                      "request_key field)")
    return key


def _issue_later(tasks: BackgroundTasks, rt: Runtime, invoice_ids: list[int]) -> None:
    """Issue the new invoices right after the answer (INV-5); the job takes any left."""
    tasks.add_task(issuing.issue_invoices, rt.engine, rt.clock, rt.settings, invoice_ids)


# ---------------------------------------------------------------- invoiceable, title, emails

@router.get("/accounts/{uin}/invoiceable",
            summary="INV-1, INV-7: the invoiceable amount, its parts and buckets / 可开票金额")
def get_invoiceable(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return invoiceable_json(invoiceable.invoiceable(conn, actor, uin))


class TitleBody(StrictModel):
    title_kind: str = Field(min_length=1, max_length=12, description="personal | enterprise")
    title: Text
    tax_id: OptionalText = None
    address: OptionalText = None
    phone: Annotated[str | None, Field(max_length=30)] = None
    bank: OptionalText = None
    bank_account: Annotated[str | None, Field(max_length=40)] = None


@router.get("/accounts/{uin}/invoice-title", summary="INV-3: the invoice title / 发票抬头")
def get_title(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return {"title": title_json(titles.get_title(conn, actor, uin))}


@router.put("/accounts/{uin}/invoice-title",
            summary="INV-2, INV-3: set the title (equal to the verified entity) / 设置抬头")
def put_title(uin: Uin, body: TitleBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return {"title": title_json(titles.set_title(conn, rt.clock, actor, uin,
                                                     body.model_dump()))}


class EmailBody(StrictModel):
    email: Annotated[str, Field(min_length=3, max_length=200)]
    make_default: bool = False


@router.get("/accounts/{uin}/invoice-emails", summary="INV-5: invoice emails / 收票邮箱")
def list_emails(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return {"items": titles.list_emails(conn, actor, uin)}


@router.post("/accounts/{uin}/invoice-emails", status_code=201,
             summary="INV-5: add an invoice email / 添加收票邮箱")
def add_email(uin: Uin, body: EmailBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return titles.add_email(conn, rt.clock, actor, uin, body.email,
                                make_default=body.make_default)


@router.post("/accounts/{uin}/invoice-emails/{email_id}/default",
             summary="INV-5: make an email the default / 设为默认收票邮箱")
def set_default_email(uin: Uin, email_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return titles.set_default_email(conn, rt.clock, actor, uin, email_id)


@router.delete("/accounts/{uin}/invoice-emails/{email_id}",
               summary="INV-5: remove an invoice email / 删除收票邮箱")
def remove_email(uin: Uin, email_id: PathId, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        titles.remove_email(conn, rt.clock, actor, uin, email_id)
        return {"items": titles.list_emails(conn, actor, uin)}


class SettingsBody(StrictModel):
    auto_issue: bool
    auto_issue_kind: Kind = "ordinary"


@router.get("/accounts/{uin}/invoice-settings",
            summary="INV-5: automatic issuing (自动开票) / 开票设置")
def get_settings(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return titles.get_settings(conn, actor, uin)


@router.put("/accounts/{uin}/invoice-settings",
            summary="INV-5: turn automatic issuing on or off / 设置自动开票")
def put_settings(uin: Uin, body: SettingsBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return titles.set_settings(conn, rt.clock, actor, uin, body.auto_issue,
                                   body.auto_issue_kind)


# ---------------------------------------------------------------- applying and invoices

class PreviewBody(StrictModel):
    kind: Kind
    amount: Yuan | None = Field(default=None, description="yuan; absent: all that is invoiceable")


class ApplyBody(PreviewBody):
    email: Annotated[str | None, Field(max_length=200)] = Field(
        default=None, description="absent: the default invoice email")
    request_key: Key | None = None


@router.post("/accounts/{uin}/invoices/preview",
             summary="INV-2, INV-4: the invoices, lines and tax an application would make / 开票预览")
def preview(uin: Uin, body: PreviewBody, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return preview_json(service.preview(conn, actor, uin, kind=body.kind,
                                            amount=body.amount))


@router.post("/accounts/{uin}/invoices", status_code=201,
             summary="INV-5: apply for invoices (issued asynchronously) / 申请开票")
def apply(uin: Uin, body: ApplyBody, rt: Rt, actor: Caller, tasks: BackgroundTasks,
          idempotency_key: Annotated[str | None, Header(max_length=128)] = None) -> dict:
    key = _key(body.request_key, idempotency_key)
    with transaction(rt.engine) as conn:
        result = service.apply(conn, rt.clock, actor, uin, kind=body.kind, amount=body.amount,
                               email=body.email, request_key=key)
    _issue_later(tasks, rt, [i["id"] for i in result["invoices"]])
    return {"application_id": result["application_id"],
            "invoices": [invoice_json(i) for i in result["invoices"]]}


@router.get("/accounts/{uin}/invoices", summary="INV-5: the account's invoices / 开票记录")
def list_invoices(uin: Uin, rt: Rt, actor: Caller, offset: Offset = 0,
                  limit: Limit = 20) -> dict:
    with rt.engine.connect() as conn:
        page = service.list_invoices(conn, actor, uin, offset=offset, limit=limit)
    return {"total": page["total"], "items": [invoice_json(i) for i in page["items"]]}


@router.get("/accounts/{uin}/invoices/{invoice_id}", summary="INV-5: one invoice / 发票详情")
def get_invoice(uin: Uin, invoice_id: PathId, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return invoice_json(service.get_invoice(conn, actor, uin, invoice_id))


@router.get("/accounts/{uin}/invoices/{invoice_id}/download", response_class=Response,
            summary="INV-5: download an issued invoice as PDF or XML / 下载发票",
            responses={200: {"description": "the file / 文件",
                             "content": {"application/pdf": {}, "application/xml": {}}}})
def download(uin: Uin, invoice_id: PathId, rt: Rt, actor: Caller,
             format: Annotated[Literal["pdf", "xml"], Query()] = "pdf") -> Response:  # noqa: A002
    with rt.engine.connect() as conn:
        filename, content_type, content = documents.download(conn, actor, uin, invoice_id,
                                                             format)
    headers = download_headers({"filename": filename, "content_type": content_type})
    return Response(content=content, media_type=headers.pop("Content-Type"), headers=headers)


# ---------------------------------------------------------------- reversals (退票)

class ReversalBody(StrictModel):
    treatment: str = Field(min_length=1, max_length=10, description="deducted | booked | none")
    red_letter_no: Annotated[str | None, Field(max_length=30)] = None
    reason: str = Field(min_length=1, max_length=20, description="wrong_details | invoice_debt")
    explanation: Annotated[str, Field(min_length=1, max_length=1000)]


class RedLetterBody(StrictModel):
    red_letter_no: Annotated[str, Field(min_length=1, max_length=30)]


@router.post("/accounts/{uin}/invoices/{invoice_id}/reversal", status_code=201,
             summary="INV-6: ask to reverse an issued invoice (退票) / 申请退票")
def submit_reversal(uin: Uin, invoice_id: PathId, body: ReversalBody, rt: Rt,
                    actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return reversal_json(reversals.submit(
            conn, rt.clock, actor, uin, invoice_id, treatment=body.treatment,
            red_letter_no=body.red_letter_no, reason=body.reason,
            explanation=body.explanation))


@router.put("/accounts/{uin}/invoice-reversals/{reversal_id}/red-letter-number",
            summary="INV-6: give the red-letter confirmation number / 填写红字确认单编号")
def put_red_letter_no(uin: Uin, reversal_id: PathId, body: RedLetterBody, rt: Rt,
                      actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return reversal_json(reversals.set_red_letter_no(conn, rt.clock, actor, uin,
                                                         reversal_id, body.red_letter_no))


@router.get("/accounts/{uin}/invoice-reversals", summary="INV-6: the account's reversals / 退票记录")
def list_reversals(uin: Uin, rt: Rt, actor: Caller) -> dict:
    with rt.engine.connect() as conn:
        return {"items": [reversal_json(r)
                          for r in reversals.list_reversals(conn, rt.clock, actor, uin)]}


# ---------------------------------------------------------------- operators

@router.get("/ops/invoices", summary="INV-5: the invoice queue, flagged (late) ones / 发票队列")
def ops_invoices(rt: Rt, actor: Caller,
                 state: Annotated[str | None, Query(max_length=10)] = None,
                 flagged: bool | None = None, offset: Offset = 0, limit: Limit = 50) -> dict:
    with rt.engine.connect() as conn:
        page = service.ops_invoices(conn, rt.clock, actor, state=state, flagged=flagged,
                                    offset=offset, limit=limit)
    return {"total": page["total"], "items": [invoice_json(i) for i in page["items"]]}


@router.get("/ops/invoice-reversals", summary="INV-6: the reversal queue / 退票审核队列")
def ops_reversals(rt: Rt, actor: Caller,
                  state: Annotated[str | None, Query(max_length=20)] = None,
                  offset: Offset = 0, limit: Limit = 50) -> dict:
    with rt.engine.connect() as conn:
        page = reversals.queue(conn, rt.clock, actor, state=state, offset=offset, limit=limit)
    return {"total": page["total"], "items": [reversal_json(r) for r in page["items"]]}


class RejectBody(StrictModel):
    reason: Annotated[str, Field(min_length=1, max_length=500)]


@router.post("/ops/invoice-reversals/{reversal_id}/release",
             summary="INV-6: release a reversal: the red invoice, the amount invoiceable again")
def ops_release(reversal_id: PathId, rt: Rt, actor: Caller, tasks: BackgroundTasks) -> dict:
    with transaction(rt.engine) as conn:
        view = reversals.release(conn, rt.clock, actor, reversal_id)
    if view.get("red_invoice_id"):
        _issue_later(tasks, rt, [view["red_invoice_id"]])
    return reversal_json(view)


@router.post("/ops/invoice-reversals/{reversal_id}/reject",
             summary="INV-6: reject a reversal with a reason / 驳回退票")
def ops_reject(reversal_id: PathId, body: RejectBody, rt: Rt, actor: Caller) -> dict:
    with transaction(rt.engine) as conn:
        return reversal_json(reversals.reject(conn, rt.clock, actor, reversal_id, body.reason))


# ---------------------------------------------------------------- public verification

class VerificationBody(StrictModel):
    invoice_code: Annotated[str, Field(min_length=1, max_length=12)]
    invoice_number: Annotated[str, Field(min_length=1, max_length=20)]
    issued_on: Annotated[str, Field(min_length=1, max_length=10, description="YYYY-MM-DD")]
    amount: Yuan
    check_last6: Annotated[str, Field(min_length=1, max_length=6)]


@router.post("/invoice-verifications", responses=TOO_MANY,
             summary="INV-8: verify an invoice this system issued (no login) / 发票查验")
def verify(body: VerificationBody, request: Request, rt: Rt) -> dict:
    client = request.client.host if request.client else "unknown"
    with transaction(rt.engine) as conn:
        return verification_json(verification.verify(conn, rt.clock, client,
                                                      **body.model_dump()))
