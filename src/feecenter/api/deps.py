"""Request plumbing shared by the native and compat APIs: runtime and signed caller."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from feecenter.auth.service import SignedRequest, authenticate
from feecenter.runtime import Runtime

_PATH_SAFE = "/!$&'()*+,;=:@-._~"  # RFC 3986 pchar and "/": never percent-encoded


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def signed_request(request: Request) -> SignedRequest:
    """What the client signed: the path and query exactly as sent, byte for byte."""
    return SignedRequest(method=request.method, path=raw_path(request.scope),
                         query=request.scope.get("query_string", b"").decode("latin-1"),
                         headers={k.lower(): v for k, v in request.headers.items()},
                         body=await request.body())


def raw_path(scope: dict) -> str:
    """The request target's path as the client sent it (``raw_path``, percent-encoding and
    all; never the decoded or URL-parsed path, which drops control characters). A server
    that gives no ``raw_path`` gets the path re-encoded as RFC 3986 clients send it."""
    raw = scope.get("raw_path")
    if raw is None:
        raw = quote(scope.get("root_path", "") + scope["path"], safe=_PATH_SAFE).encode()
    return raw.decode("latin-1")


async def caller(request: Request) -> Actor:
    """The authenticated actor of a TC3-HMAC-SHA256 signed request."""
    rt = runtime(request)
    signed = await signed_request(request)
    return await run_in_threadpool(authenticate, rt.engine, rt.clock, signed,
                                   window_s=rt.settings.signature_window_s)
