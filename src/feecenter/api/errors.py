"""DESIGN §6 for the REST API: domain errors -> 4xx JSON naming the field, zh and en."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from feecenter.errors import FeeCenterError

log = logging.getLogger("feecenter.api")


def install(app: FastAPI) -> None:
    @app.exception_handler(FeeCenterError)
    async def _domain(_request: Request, exc: FeeCenterError):
        return JSONResponse({"error": exc.to_dict()}, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        field = ".".join(str(p) for p in first.get("loc", ())[1:]) or None
        detail = first.get("msg", "invalid input")
        return JSONResponse({"error": {
            "code": "InvalidInput", "field": field,
            "message_zh": f"参数错误：{field}（{detail}）", "message_en": f"invalid {field}: {detail}",
            "message": f"[{field}] 参数错误 / invalid input: {detail}"}}, status_code=400)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception):
        log.exception("unexpected error", exc_info=exc)
        return JSONResponse({"error": {"code": "InternalError", "message_zh": "服务内部错误",
                                       "message_en": "internal error",
                                       "message": "服务内部错误 / internal error"}},
                            status_code=500)
