"""The compat endpoint: authenticate, dispatch the action, wrap the Response."""

from __future__ import annotations

import logging
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from feecenter.api.deps import runtime, signed_request
from feecenter.auth.service import authenticate
from feecenter.compat.actions import ACTIONS
from feecenter.compat.params import parse_body
from feecenter.errors import (AuthFailed, FeeCenterError, InsufficientBalance, InvalidInput,
                              NotFound, PermissionDenied)

VERSION = "2018-07-09"
router = APIRouter()
log = logging.getLogger("feecenter.compat")


class CompatError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def tencent_code(exc: FeeCenterError) -> str:
    if getattr(exc, "tencent_code", None):  # compat.params: InvalidParameter, UnknownParameter
        return exc.tencent_code
    if isinstance(exc, AuthFailed):
        return f"AuthFailure.{exc.reason}"
    if isinstance(exc, InvalidInput):
        return "InvalidParameterValue"
    if isinstance(exc, PermissionDenied):
        return "UnauthorizedOperation"
    if isinstance(exc, NotFound):
        return "ResourceNotFound"
    if isinstance(exc, InsufficientBalance):
        return "FailedOperation.BalanceInsufficient"
    return f"FailedOperation.{exc.code}"


def _envelope(request_id: str, body: dict) -> JSONResponse:
    return JSONResponse({"Response": {**body, "RequestId": request_id}})


def _error(request_id: str, code: str, message: str) -> JSONResponse:
    # a message may quote the input: a lone surrogate in it must not break the UTF-8 answer
    message = message.encode("utf-8", "backslashreplace").decode("utf-8")
    return _envelope(request_id, {"Error": {"Code": code, "Message": message}})


@router.post("/", include_in_schema=False)
async def compat(request: Request) -> JSONResponse:
    request_id = str(uuid.uuid4())
    english = request.headers.get("x-tc-language", "").lower().startswith("en")
    try:
        result = await _handle(request)
    except CompatError as exc:
        return _error(request_id, exc.code, exc.message)
    except FeeCenterError as exc:
        message = exc.message_en if english else exc.message_zh
        if exc.field:
            message = f"{exc.field}: {message}"
        return _error(request_id, tencent_code(exc), message)
    except Exception:  # noqa: BLE001 - reported to the caller as InternalError, and logged
        log.exception("compat action failed")
        return _error(request_id, "InternalError", "服务内部错误 / internal error")
    return _envelope(request_id, result)


async def _handle(request: Request) -> dict:
    action = request.headers.get("x-tc-action", "")
    version = request.headers.get("x-tc-version", "")
    if action not in ACTIONS:
        raise CompatError("InvalidAction", f"接口不存在 / action not found: {action!r}")
    if version != VERSION:
        raise CompatError("NoSuchVersion", f"接口版本不存在 / version not supported: {version!r}")
    rt = runtime(request)
    signed = await signed_request(request)
    actor = await run_in_threadpool(authenticate, rt.engine, rt.clock, signed,
                                    window_s=rt.settings.signature_window_s)
    params = parse_body(action, signed.body)
    return await run_in_threadpool(ACTIONS[action], rt, actor, params)
