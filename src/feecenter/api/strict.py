"""Strict REST input and a truthful OpenAPI document (docs/api.md, "Strict input").

Owns what every /api/v1 route shares about its input: the body models' base
(JSON types exactly as declared, unknown fields refused), the bounded integer
types of paths and queries (ASCII digits, within BIGINT or their sense), the
request-body guard (size limit, duplicate JSON keys) and the error responses
the document lists for every operation instead of FastAPI's unused 422.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Path, Query
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from feecenter import inputs
from feecenter.errors import InvalidInput

_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


def _ascii_digits(value: Any) -> Any:
    """Path and query integers arrive as text: only ASCII digits ("+5", "5_0", "١" refused)."""
    if isinstance(value, str) and not _DIGITS.fullmatch(value):
        raise ValueError("must be written with the ASCII digits 0-9 only")
    return value


class StrictModel(BaseModel):
    """A JSON body: no "1" or true for an integer, no 5 for a string, no unknown fields."""

    model_config = ConfigDict(strict=True, extra="forbid")


Digits = BeforeValidator(_ascii_digits)
Uin = Annotated[int, Digits, Path(ge=1, le=inputs.BIGINT_MAX, description="account UIN")]
PathId = Annotated[int, Digits, Path(ge=1, le=inputs.BIGINT_MAX)]
QueryId = Annotated[int | None, Digits, Query(ge=1, le=inputs.BIGINT_MAX)]
Offset = Annotated[int, Digits, Query(ge=0, le=10**9)]
Limit = Annotated[int, Digits, Query(ge=1, le=100)]
BodyId = Annotated[int, Field(ge=1, le=inputs.BIGINT_MAX)]
_PRINTABLE = r"^[^\x00-\x1f\x7f]*$"  # no control characters (the guard also refuses them)
Text = Annotated[str, Field(min_length=1, max_length=200, pattern=_PRINTABLE)]
OptionalText = Annotated[str | None, Field(max_length=200, pattern=_PRINTABLE)]
Code = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[!-~]+$",
                            description="a catalog code (printable ASCII)")]
BusinessTime = Annotated[str, Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}( [0-9]{2}:[0-9]{2}:[0-9]{2})?$",
                                    description="Asia/Shanghai, YYYY-MM-DD HH:MM:SS")]
Key = Annotated[str, Field(min_length=1, max_length=128, pattern=_PRINTABLE,
                           description="idempotency key")]
Yuan = Annotated[str, Field(min_length=1, max_length=20, pattern=r"^[+-]?[0-9]{1,13}(\.[0-9]{1,2})?$",
                            description='yuan with at most 2 decimals, e.g. "12.30"')]

Rated = Annotated[str, Field(min_length=1, max_length=24, pattern=r"^[0-9]{1,13}(\.[0-9]{1,8})?$",
                             description='yuan with at most 8 decimals, e.g. "0.12345678"')]

# ---------------------------------------------------------------- the body guard

_BIG_BODIES = {"/api/v1/ops/usage": 64 * 1024 * 1024, "/api/v1/ops/catalog": 5_000_000,
               # a statement upload (console/ops_remittances.MAX_UPLOAD_BYTES) and its form
               "/console/ops/remittances/imports": 20 * 1024 * 1024 + 64 * 1024}


# multipart uploads of one attachment (at most 5 MB, service_requests.rules) plus the form
_UPLOADS = re.compile(r"^(/api/v1/service-requests/[0-9]+/attachments"
                      r"|/console/service-requests/new|/console/service-requests/[0-9]+/attachments)$")
_UPLOAD_LIMIT = 5 * 1024 * 1024 + 64 * 1024


# a bank statement upload: the raw file as the body, which the route streams to a
# temporary file (api/remittances.py) within the statement parser's limit
_STREAMED = {"/api/v1/ops/remittance-imports": 200 * 1024 * 1024}
# bodies the route parses and records itself, however malformed (the bank's signed push)
_OWN_PARSERS = {"/api/v1/remittances/push"}


# the bank's payout result as JSON lines (api/withdrawals.py: at most 5,001 lines of 1,000
# characters, each up to 6 bytes escaped)
_PAYOUT_RESULTS = re.compile(r"^/api/v1/ops/payout-batches/[0-9]+/result$")
_PAYOUT_RESULT_LIMIT = 32 * 1024 * 1024


def body_limit(path: str) -> int:
    if path in _STREAMED:
        return _STREAMED[path]
    if _PAYOUT_RESULTS.fullmatch(path):
        return _PAYOUT_RESULT_LIMIT
    if _UPLOADS.fullmatch(path):
        return _UPLOAD_LIMIT if not path.startswith("/console") else 6 * _UPLOAD_LIMIT
    return _BIG_BODIES.get(path, inputs.MAX_BODY_BYTES)


class BodyGuard:
    """ASGI middleware: bodies above their limit get 413 (on the compat endpoint,
    Tencent's RequestSizeLimitExceeded); on /api, a duplicate JSON key or a control
    character in the path, the query or a body string gets 400 naming the field,
    before any route reads them."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = body_limit(scope["path"])
        if scope["path"] in _STREAMED:  # the route reads the body itself, within the limit
            refused = _declared_too_large(scope, limit) or _unstorable_refusal(scope, b"")
            if refused is not None:
                return await _reply(send, scope, *refused)
            return await self.app(scope, receive, send)
        body, refused = await _read_body(scope, receive, limit)
        if refused is None and scope["path"].startswith("/api/"):
            json_body = (_is_api_json(scope) and scope["path"] not in _BIG_BODIES
                         and scope["path"] not in _OWN_PARSERS)
            refused = _unstorable_refusal(scope, body if json_body else b"")
        if refused is not None:
            return await _reply(send, scope, *refused)
        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def _declared_too_large(scope, limit: int) -> tuple[int, dict] | None:
    declared = dict(scope["headers"]).get(b"content-length", b"0")
    return _too_large(limit) if declared.isdigit() and int(declared) > limit else None


async def _read_body(scope, receive, limit: int) -> tuple[bytes, tuple | None]:
    if _declared_too_large(scope, limit):
        return b"", _too_large(limit)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"", None  # the client went away; the route sees an empty body
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if size > limit:
            return b"", _too_large(limit)
        if not message.get("more_body"):
            return b"".join(chunks), None


def _too_large(limit: int) -> tuple[int, dict]:
    return 413, {"code": "PayloadTooLarge", "field": "body",
                 "message_zh": f"请求体过大（上限 {limit} 字节）",
                 "message_en": f"the request body is too large (at most {limit} bytes)"}


def _is_api_json(scope) -> bool:
    content_type = dict(scope["headers"]).get(b"content-type", b"")
    return scope["path"].startswith("/api/") and content_type.startswith(b"application/json")


def _unstorable_refusal(scope, body: bytes) -> tuple[int, dict] | None:
    """400 for a duplicate JSON key, or a control character or lone surrogate in the
    path, the query or any string of the body: no database stores those as text."""
    try:
        inputs.plain_text(scope["path"], "path", max_len=2048)
        for name, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
            inputs.plain_text(value, name, max_len=2048)
        if body:
            _check_strings(inputs.loads(body), "")
    except InvalidInput as exc:
        return 400, exc.to_dict()
    return None


def _check_strings(value: Any, field: str) -> None:
    if isinstance(value, str):
        inputs.plain_text(value, field or "body", max_len=inputs.MAX_BODY_BYTES * 64)
    elif isinstance(value, dict):
        for key, item in value.items():
            inputs.plain_text(key, field or "body", max_len=2048)
            _check_strings(item, f"{field}.{key}" if field else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_strings(item, f"{field}.{index}" if field else str(index))


async def _reply(send, scope, status: int, error: dict) -> None:
    if "message" not in error:
        error["message"] = f"[{error['field']}] {error['message_zh']} / {error['message_en']}"
    body = {"error": error}
    if not scope["path"].startswith("/api/"):  # the compat endpoint: Tencent's envelope
        status, body = 200, {"Response": {"RequestId": str(uuid.uuid4()), "Error": {
            "Code": "RequestSizeLimitExceeded", "Message": error["message"]}}}
    payload = json.dumps(body, ensure_ascii=False).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})

# ---------------------------------------------------------------- the document


class ErrorDetail(BaseModel):
    code: str = Field(description="stable error code, e.g. InvalidInput, InsufficientBalance")
    message: str
    message_zh: str
    message_en: str
    field: str | None = Field(default=None, description="the input field at fault, if any")
    details: dict | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


ERRORS = {
    "400": "invalid input: the field is named / 参数错误",
    "401": "missing or wrong TC3 signature / 签名错误",
    "402": "not enough balance, or the account is in arrears / 余额不足或欠费",
    "403": "no permission / 无权限",
    "404": "not found / 不存在",
    "409": "conflicting state or idempotency key / 状态冲突",
    "413": "request body too large / 请求体过大",
}
READ_ERRORS = ("400", "401", "403", "404")  # a GET moves nothing and reads no body


def install_openapi(app: FastAPI) -> None:
    """Every operation lists the errors the server really answers, never 422."""

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = _truthful(get_openapi(
                title=app.title, version=app.version, description=app.description,
                routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi


def _truthful(document: dict) -> dict:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    body = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(body.pop("$defs", {}))
    schemas["ErrorBody"] = body
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
    for operations in document.get("paths", {}).values():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for status in READ_ERRORS if method == "get" else ERRORS:
                responses.setdefault(status, {"description": ERRORS[status], **error})
    return document
