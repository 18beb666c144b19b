"""The console's routes, rendering, cookies, CSRF and security headers.

Every page is a plain function: read the session, call service functions (the
same ones REST calls), render a template. ``install`` mounts the routes, the
static files and the security headers on the app (api.app).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, FastAPI, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, select_autoescape

from feecenter.accounts import service as accounts
from feecenter.arrears import service as arrears
from feecenter.auth import sessions
from feecenter.balance_warnings import rules as balance_rules
from feecenter.balance_warnings import service as balance_warnings
from feecenter.auth.sessions import ConsoleSession
from feecenter.clock import business_time_text
from feecenter.console import i18n
from feecenter.console.charts import business_month, cost_charts
from feecenter.console.menu import MENU, ROLE_LABELS
from feecenter.db.engine import transaction
from feecenter.errors import AuthFailed, FeeCenterError, PermissionDenied, invalid
from feecenter.funds import service as funds
from feecenter.notifications import service as notifications
from feecenter.present.text import time_text
from feecenter.settlement import service as settlement

HERE = Path(__file__).parent
PREFIX = "/console"
SESSION_COOKIE = "fc_session"
LOGIN_CSRF_COOKIE = "fc_login_csrf"  # double-submit token of the login form
CSRF_HEADER = "X-CSRF-Token"  # htmx sends it (hx-headers in base.html)
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                               "form-action 'self'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}

LATEST_MESSAGES = 5  # the overview's newest in-site messages
router = APIRouter(prefix=PREFIX, include_in_schema=False)


# ---------------------------------------------------------------- rendering

@lru_cache(maxsize=None)
def _environment(lang: str) -> Environment:
    """One environment per language (its catalog compiled on first use), shared by
    every request in that language."""
    env = Environment(loader=FileSystemLoader(HERE / "templates"),
                      autoescape=select_autoescape(default=True),
                      extensions=["jinja2.ext.i18n"], auto_reload=False,
                      trim_blocks=True, lstrip_blocks=True)
    env.install_gettext_translations(i18n.translations(lang), newstyle=True)
    env.filters["yuan"] = yuan
    return env


def yuan(fen: int) -> str:
    """¥1,234.56 (fen in, two decimals, thousands grouped; -¥12.30 below zero)."""
    sign, fen = ("-" if fen < 0 else ""), abs(fen)
    return f"{sign}¥{fen // 100:,}.{fen % 100:02d}"


def lang_of(request: Request) -> str:
    return i18n.language(request.cookies.get(i18n.COOKIE))


def render(request: Request, template: str, status: int = 200,
           session: ConsoleSession | None = None, **context) -> HTMLResponse:
    lang = lang_of(request)
    html = _environment(lang).get_template(template).render(
        lang=lang, languages=i18n.LANGUAGES, menu=MENU, roles=ROLE_LABELS, session=session,
        here=_here(request), path=request.url.path, unread=_unread(request, session), **context)
    return HTMLResponse(html, status_code=status, headers={"cache-control": "no-store"})


def _unread(request: Request, session: ConsoleSession | None) -> int | None:
    """How many in-site messages the logged-in user has not read (the header's count)."""
    if session is None or session.actor.kind != "user":
        return None
    with request.app.state.runtime.engine.connect() as conn:
        return notifications.list_messages(conn, session.actor, session.actor.uin, unread_only=True,
                                           limit=1)["unread"]


def message(error, lang: str) -> str:
    """A domain error's message in the page's language."""
    return error.message_zh if lang == "zh-CN" else error.message_en


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


def _safe_next(target: str | None) -> str:
    """Where to go after login or a language switch: a console path, never elsewhere."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") \
            and "\\" not in target and all(ch.isprintable() for ch in target):
        return target
    return PREFIX + "/"


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


# ---------------------------------------------------------------- sessions and CSRF

class LoginRequired(Exception):
    def __init__(self, next_path: str):
        self.next_path = next_path


@dataclass
class Page:
    request: Request
    session: ConsoleSession

    @property
    def rt(self):
        return self.request.app.state.runtime


def page(request: Request) -> Page:
    """The logged-in session, or LoginRequired (-> the login page, then back here)."""
    rt = request.app.state.runtime
    found = sessions.current_session(rt.engine, rt.clock, request.cookies.get(SESSION_COOKIE))
    if found is None:
        raise LoginRequired(_here(request) if request.method == "GET" else _came_from(request))
    return Page(request, found)


def _came_from(request: Request) -> str:
    """The page a POST was sent from (htmx's HX-Current-URL, else the Referer), so that
    logging in again leads back to it."""
    url = urlsplit(request.headers.get("hx-current-url") or request.headers.get("referer") or "")
    return url.path + (f"?{url.query}" if url.query else "")


def csrf_refused(request: Request) -> HTMLResponse:
    return render(request, "error.html", status=403)


def page_error(request: Request, exc: FeeCenterError) -> dict:
    """A refusal shown on its page: the service's message in the page's language, the
    field it names, whether it is a permission refusal, its status (400, 403, 409 …)."""
    return {"error": message(exc, lang_of(request)), "field": exc.field,
            "denied": isinstance(exc, PermissionDenied), "status": exc.http_status}


def form_key(key: str, page_zh: str, page_en: str) -> str:
    """The idempotency key a form carries (made when its page was rendered, so a
    second submit repeats the first), or the refusal naming the field."""
    if not key:
        raise invalid("idempotency_key", f"表单缺少幂等键，请重新打开{page_zh}",
                      f"the form has no idempotency key; open {page_en} again")
    return key


def submit(request: Request, csrf: str | None, change, refused, done) -> Response:
    """A console form's POST: the CSRF token checked, then ``change(conn, clock, actor,
    uin)`` in one transaction; a refusal (FeeCenterError) rolls it back and is answered
    by ``refused(current, exc)``, success by ``done(current, result)``."""
    current = page(request)
    if not current.session.csrf_ok(csrf):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    try:
        with transaction(rt.engine) as conn:
            result = change(conn, rt.clock, actor, actor.uin)
    except FeeCenterError as exc:
        return refused(current, exc)
    return done(current, result)


def _login_required(request: Request, exc: LoginRequired) -> Response:
    target = f"{PREFIX}/login?next={quote(_safe_next(exc.next_path), safe='/')}"
    response = (Response(status_code=204, headers={"HX-Redirect": target})
                if request.headers.get("hx-request") else RedirectResponse(target, 303))
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


# ---------------------------------------------------------------- login and logout

@router.get("/login")
def login_form(request: Request, next: str | None = None) -> HTMLResponse:  # noqa: A002
    return _login_page(request, next)


def _login_page(request: Request, next_path: str | None, error: str | None = None,
                status: int = 200, account: str = "", login: str = "") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", status=status, csrf=token,
                      next=_safe_next(next_path), error=error, account=account, login=login)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, path=PREFIX + "/login", httponly=True,
                        samesite="lax", secure=_secure(request))
    return response


@router.post("/login")  # any length is answered with the page (the body guard bounds it)
def login(request: Request, account: Annotated[str, Form()] = "",
          login: Annotated[str, Form()] = "",
          password: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = "",
          next: Annotated[str, Form()] = "") -> Response:  # noqa: A002
    sent = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (sent and csrf_token and secrets.compare_digest(sent.encode(), csrf_token.encode())):
        return csrf_refused(request)
    rt = request.app.state.runtime
    try:
        new = sessions.log_in(rt.engine, rt.clock, account, login, password)
    except AuthFailed as exc:
        status = 429 if exc.reason == "LoginThrottled" else 401
        return _login_page(request, next, message(exc, lang_of(request)), status,
                           account=account, login=login)
    response = RedirectResponse(_safe_next(next), 303)
    response.set_cookie(SESSION_COOKIE, new.token, path=PREFIX, httponly=True, samesite="lax",
                        secure=_secure(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX + "/login")
    return response


@router.post("/logout")
def logout(request: Request, csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    with transaction(current.rt.engine) as conn:
        sessions.log_out(conn, current.session)
    response = RedirectResponse(f"{PREFIX}/login", 303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


@router.get("/lang/{code}")
def switch_language(request: Request, code: str, next: str | None = None) -> Response:  # noqa: A002
    """Remember the language in a cookie (no server state changes) and go back."""
    response = RedirectResponse(_safe_next(next), 303)
    response.set_cookie(i18n.COOKIE, i18n.language(code), max_age=365 * 24 * 3600, path=PREFIX,
                        samesite="lax", secure=_secure(request))
    return response


# ---------------------------------------------------------------- overview (概览)

@router.get("/")
def overview(request: Request) -> HTMLResponse:
    current = page(request)
    return render(request, "overview.html", session=current.session, active="overview",
                  **_overview(current))


def overview_context(current: Page) -> dict:
    """What the overview page shows (its forms' refusals render it again)."""
    return _overview(current)


@router.get("/overview/balances")
def overview_balances(request: Request) -> HTMLResponse:
    """The balances panel alone, for htmx's refresh."""
    current = page(request)
    return render(request, "_balances.html", session=current.session,
                  **_overview(current, with_charts=False))


def _overview(current: Page, with_charts: bool = True) -> dict:
    actor, rt = current.session.actor, current.rt
    lang = lang_of(current.request)
    with rt.engine.connect() as conn:
        account = accounts.get_account(conn, actor, actor.uin)
        latest = notifications.list_messages(conn, actor, actor.uin, limit=LATEST_MESSAGES,
                                             locale=lang)["items"]
        for item in latest:
            item["created_text"] = time_text(item["created_at"])
        try:
            view, denied = funds.balance_view(conn, rt.clock, actor, actor.uin), None
        except PermissionDenied as exc:  # ACC-2: the service refuses, the page says why
            return {"account": account, "balance": None, "denied": message(exc, lang),
                    "latest_messages": latest}
        warning = balance_warnings.estimate(conn, rt.clock, actor, actor.uin) \
            if with_charts else None
        ahead = (arrears.earliest_ahead(conn, rt.clock, actor, actor.uin)
                 if view.arrears > 0 else None)
        cost = settlement.month_cost(conn, actor, actor.uin, business_month(rt.clock.now())) \
            if with_charts else None
    return {"account": account, "balance": view, "denied": denied, "latest_messages": latest,
            "charts": cost and cost_charts(cost, lang, i18n.translations(lang).gettext),
            "ahead": ahead and {**ahead, "at_text": business_time_text(ahead["at"])},
            "warning": warning, "warning_days": range(balance_rules.MIN_DAYS,
                                                      balance_rules.MAX_DAYS + 1)}


@router.get("/{unknown:path}")
def not_found(request: Request, unknown: str) -> HTMLResponse:
    """Any other console path: a page saying so (last of the console's routes)."""
    return render(request, "not_found.html", status=404)


# ---------------------------------------------------------------- mounting

class SecurityHeaders:
    """ASGI middleware: the console's security headers on every /console response."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not scope["path"].startswith(PREFIX):
            return await self.app(scope, receive, send)

        async def with_headers(event):
            if event["type"] == "http.response.start":
                names = {name.lower() for name, _ in event.get("headers", [])}
                event["headers"] = [*event.get("headers", []), *(
                    (name.encode(), value.encode()) for name, value in SECURITY_HEADERS.items()
                    if name.encode() not in names)]
            await send(event)

        return await self.app(scope, receive, with_headers)


def install(app: FastAPI) -> None:
    # the static files first: the router ends with the console's catch-all 404 page
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="console-static")
    # the pages' own modules import this one (render, page), so they are imported here
    from feecenter.console import arrears as arrears_pages
    from feecenter.console import balance_warning as balance_warning_pages
    from feecenter.console import bill_compare as bill_compare_pages
    from feecenter.console import bill_exports as bill_export_pages
    from feecenter.console import bills as bill_pages
    from feecenter.console import cancellation as cancellation_pages
    from feecenter.console import coupons as coupon_pages
    from feecenter.console import invoices as invoice_pages
    from feecenter.console import ledger
    from feecenter.console import messages as message_pages
    from feecenter.console import orders as order_pages
    from feecenter.console import recharge as recharge_pages
    from feecenter.console import remittance as remittance_pages
    from feecenter.console import renewal as renewal_pages
    from feecenter.console import ops  # the operator console (its own session and menu)
    from feecenter.console import resources as resource_pages
    from feecenter.console import service_requests as service_request_pages
    from feecenter.console import users as user_pages
    from feecenter.console import withdrawals as withdrawal_pages

    app.include_router(bill_compare_pages.router)  # /bills/compare before any /bills/…
    app.include_router(bill_export_pages.router)  # /bills/downloads, before the bill pages
    app.include_router(ledger.router)  # before ``router``, which ends with the catch-all
    app.include_router(bill_pages.router)
    app.include_router(order_pages.router)
    app.include_router(resource_pages.router)
    app.include_router(renewal_pages.router)
    app.include_router(coupon_pages.router)
    app.include_router(arrears_pages.router)
    app.include_router(user_pages.router)
    app.include_router(message_pages.router)
    app.include_router(recharge_pages.router)
    app.include_router(remittance_pages.router)
    app.include_router(service_request_pages.router)
    app.include_router(invoice_pages.router)
    app.include_router(withdrawal_pages.router)
    app.include_router(cancellation_pages.router)
    app.include_router(balance_warning_pages.router)
    app.include_router(invoice_pages.public_router)  # /invoice-verification, no login
    ops.install(app)
    app.include_router(router)
    app.add_exception_handler(LoginRequired, _login_required)
    app.add_middleware(SecurityHeaders)

    @app.get(PREFIX, include_in_schema=False)
    def console_root() -> Response:
        return RedirectResponse(PREFIX + "/", 307)
