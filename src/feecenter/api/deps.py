"""Request plumbing shared by the native and compat APIs: runtime and signed caller."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from feecenter.accounts.permissions import Actor
from feecenter.auth.service import SignedRequest, authenticate
from feecenter.runtime import Runtime


def runtime(request: Request) -> Runtime:
    return request.app.state.runtime


async def signed_request(request: Request) -> SignedRequest:
    return SignedRequest(method=request.method, path=request.url.path,
                         query=request.url.query,
                         headers={k.lower(): v for k, v in request.headers.items()},
                         body=await request.body())


async def caller(request: Request) -> Actor:
    """The authenticated actor of a TC3-HMAC-SHA256 signed request."""
    rt = runtime(request)
    signed = await signed_request(request)
    return await run_in_threadpool(authenticate, rt.engine, rt.clock, signed,
                                   window_s=rt.settings.signature_window_s)
