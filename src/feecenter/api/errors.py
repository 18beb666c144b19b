"""Errors of the REST API (docs/api.md): domain errors -> 4xx JSON naming the field, zh and en."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, Route

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


def _error(status: int, code: str, zh: str, en: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message_zh": zh, "message_en": en,
                                   "message": f"{zh} / {en}"}},
                        status_code=status, headers=headers)


def install_method_routing(app: FastAPI, routes: list[BaseRoute]) -> None:
    """404 and 405 in the error body; Allow names every method of every route on the
    path (Starlette names only the first route's); OPTIONS is answered with it."""

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        if exc.status_code == 405:  # the app's own routes: /docs, /healthz …
            own = [r for r in app.router.routes if isinstance(r, Route)]
            return _method_not_allowed([*routes, *own], request)
        if exc.status_code == 404:
            return _error(404, "NotFound", "接口不存在", "no such endpoint")
        return _error(exc.status_code, "HTTPError", "请求无法处理", str(exc.detail))


def _method_not_allowed(routes: list[BaseRoute], request: Request) -> Response:
    matching = [route for route in routes if route.matches(request.scope)[0] != Match.NONE]
    # "/coupons/redeem" also fits "/coupons/{coupon_id}": the template with the fewest
    # parameters is the resource the client named
    fewest = min((route.path.count("{") for route in matching), default=0)
    allowed = sorted({method for route in matching if route.path.count("{") == fewest
                      for method in route.methods} | {"OPTIONS"})
    headers = {"Allow": ", ".join(allowed)}
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=headers)
    return _error(405, "MethodNotAllowed", f"不支持的请求方法：{request.method}",
                  f"method not allowed: {request.method}", headers)
