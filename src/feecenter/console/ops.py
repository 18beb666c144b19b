"""The operator console (运营控制台) under /console/ops: its login, session, menu and
layout; the pages are in ``ops_accounts`` and ``ops_platform``.

An operator logs in with its name and password (``auth.operator_sessions``);
its session cookie (``fc_ops_session``, path /console/ops) is apart from the
customers' (``fc_session``) and opens only operator pages, as the operator
whose API key would act (``Actor(kind="operator")``); a customer session
opens none of them. CSRF, throttling, expiry and the security headers are the
customer console's (docs/console.md, "Operator console").
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.auth import operator_sessions
from feecenter.auth.operator_sessions import OperatorSession
from feecenter.console.i18n import N_
from feecenter.console.menu import MenuItem
from feecenter.console.web import PREFIX, csrf_refused, lang_of, message, render
from feecenter.db.engine import transaction
from feecenter.errors import AuthFailed

OPS = PREFIX + "/ops"
SESSION_COOKIE = "fc_ops_session"
LOGIN_CSRF_COOKIE = "fc_ops_login_csrf"

OPS_MENU = (
    MenuItem("accounts", N_("Accounts"), OPS + "/"),
    MenuItem("arrears", N_("Arrears cases"), OPS + "/arrears"),
    MenuItem("arrears_measures", N_("Arrears measures"), OPS + "/arrears-measures"),
    MenuItem("jobs", N_("Jobs"), OPS + "/jobs"),
    MenuItem("reconcile", N_("Reconciliation"), OPS + "/reconcile"),
    MenuItem("audit", N_("Audit log"), OPS + "/audit"),
    MenuItem("catalog", N_("Catalog"), OPS + "/catalog"),
    MenuItem("recharges", N_("Recharges"), OPS + "/recharges"),
    MenuItem("remittances", N_("Remittances"), OPS + "/remittances"),
    MenuItem("service_requests", N_("Service requests"), OPS + "/service-requests"),
    MenuItem("invoices", N_("Invoice queue"), OPS + "/invoices"),
    MenuItem("invoice_reversals", N_("Invoice reversals"), OPS + "/invoice-reversals"),
    MenuItem("payouts", N_("Withdrawal payouts"), OPS + "/payouts"),
    MenuItem("withdrawals_failed", N_("Failed withdrawals"), OPS + "/withdrawals/failed"),
)

router = APIRouter(prefix=OPS, include_in_schema=False)


class OpsLoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


@dataclass
class OpsPage:
    request: Request
    session: OperatorSession

    @property
    def rt(self):
        return self.request.app.state.runtime

    @property
    def actor(self):
        return self.session.actor


def ops_page(request: Request) -> OpsPage:
    """The operator's session, or OpsLoginRequired (-> the operator login, then back)."""
    rt = request.app.state.runtime
    found = operator_sessions.current_session(rt.engine, rt.clock,
                                              request.cookies.get(SESSION_COOKIE))
    if found is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise OpsLoginRequired(back if request.method == "GET" else OPS + "/")
    return OpsPage(request, found)


def ops_render(request: Request, template: str, current: OpsPage | None, status: int = 200,
               **context) -> HTMLResponse:
    """A page of templates/ops/ (their layout is ops/base.html, with the operator menu)."""
    return render(request, template, status=status, op=current.session if current else None,
                  ops_menu=OPS_MENU, **context)


def refused(request: Request, current: OpsPage, template: str, exc, status: int | None = None,
            **context) -> HTMLResponse:
    """``template`` again with a domain error's message in the page's language, next to
    the field it names (``data-error-field``); the error's status (400, 403, 404, 409)."""
    return ops_render(request, template, current, status or exc.http_status,
                      error=message(exc, lang_of(request)), field=exc.field, **context)


def posted(current: OpsPage, csrf_token: str, x_csrf_token: str | None) -> bool:
    return current.session.csrf_ok(csrf_token or x_csrf_token)


def _safe_next(target: str | None) -> str:
    if target and target.startswith(OPS + "/") and not target.startswith("//") \
            and "\\" not in target and all(ch.isprintable() for ch in target):
        return target
    return OPS + "/"


def _login_required(request: Request, exc: OpsLoginRequired) -> Response:
    target = f"{OPS}/login?next={quote(_safe_next(exc.next_path), safe='/')}"
    response = (Response(status_code=204, headers={"HX-Redirect": target})
                if request.headers.get("hx-request") else RedirectResponse(target, 303))
    response.delete_cookie(SESSION_COOKIE, path=OPS)
    return response


# ---------------------------------------------------------------- login and logout

@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:
    return _login_page(request, next)


def _login_page(request: Request, next_path: str | None, error: str | None = None,
                status: int = 200, name: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = ops_render(request, "ops/login.html", None, status, csrf=token,
                          next=_safe_next(next_path), error=error, name=name)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=OPS + "/login", httponly=True,
                        samesite="lax", secure=request.url.scheme == "https")
    return response


@router.post("/login")
def login(request: Request, name: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:
    sent = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (sent and csrf_token and secrets.compare_digest(sent.encode(), csrf_token.encode())):
        return csrf_refused(request)
    rt = request.app.state.runtime
    try:
        new = operator_sessions.log_in(rt.engine, rt.clock, name, password)
    except AuthFailed as exc:
        status = 429 if exc.reason == "LoginThrottled" else 401
        return _login_page(request, next, message(exc, lang_of(request)), status, name=name)
    response = RedirectResponse(_safe_next(next), 303)
    response.set_cookie(SESSION_COOKIE, new.token, path=OPS, httponly=True, samesite="lax",
                        secure=request.url.scheme == "https")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=OPS + "/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    with transaction(current.rt.engine) as conn:
        operator_sessions.log_out(conn, current.session)
    response = RedirectResponse(f"{OPS}/login", 303)
    response.delete_cookie(SESSION_COOKIE, path=OPS)
    return response


def install(app: FastAPI) -> None:
    """Mount the operator pages (called by ``web.install`` before the console's
    catch-all 404 route)."""
    from feecenter.console import (
        ops_accounts,
        ops_arrears_measures,
        ops_invoices,
        ops_platform,
        ops_recharges,
        ops_remittances,
        ops_service_requests,
        ops_withdrawals,
    )

    app.include_router(router)
    app.include_router(ops_accounts.router)
    app.include_router(ops_arrears_measures.router)
    app.include_router(ops_platform.router)
    app.include_router(ops_recharges.router)
    app.include_router(ops_remittances.router)
    app.include_router(ops_service_requests.router)
    app.include_router(ops_invoices.router)
    app.include_router(ops_withdrawals.router)
    app.add_exception_handler(OpsLoginRequired, _login_required)
