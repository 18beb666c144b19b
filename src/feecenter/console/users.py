"""The console's 用户与密钥 (users and keys) page: the account's users and their roles
(ACC-2), adding a sub-user, changing a sub-user's role, setting a sub-user's console
password; the API keys the user may manage, creating one (its SecretKey shown once,
on that response only) and enabling or disabling one.

Each handler calls the services REST and the CLI call — ``accounts.list_users``,
``accounts.add_user``, ``accounts.set_role``, ``sessions.set_password``,
``auth.list_api_keys``, ``auth.create_api_key``, ``auth.set_key_state`` — which
check who may (``may_manage_user``). The page asks the same rule only to leave out
the buttons a user may not use; a crafted POST is refused by the service (403,
nothing written). A successful change answers with a redirect to the page, except
a new key, whose secret exists only in that response.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import ROLES, may_manage_user
from feecenter.auth import service as auth
from feecenter.auth import sessions
from feecenter.console.i18n import N_
from feecenter.console.web import (PREFIX, Page, csrf_refused, lang_of, message, page, render,
                                   submit)
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, PermissionDenied, invalid
from feecenter.inputs import plain_text
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PATH = PREFIX + "/users"
SUB_ROLES = tuple(r for r in ROLES if r != "owner")
KIND_LABELS = {"owner": N_("Account owner"), "subuser": N_("Sub-user"),
               "collaborator": N_("Collaborator")}
KEY_STATE_LABELS = {"enabled": N_("Enabled"), "disabled": N_("Disabled")}
ACTIONS = {"enable": True, "disable": False}


def _login(value: str, field: str = "login") -> str:
    """A login name from a form: text a database can store (the service checks the rest)."""
    text = plain_text(value, field, 100).strip()
    if not text:
        raise invalid(field, "请选择或填写用户", "choose or enter a user")
    return text


def _context(current: Page) -> dict:
    """The account's users, what this user may do with each, and the keys it may manage."""
    actor, rt = current.session.actor, current.rt
    uin = actor.uin
    with rt.engine.connect() as conn:
        people = accounts.list_users(conn, actor, uin)
        keys = auth.list_api_keys(conn, actor, uin)
    login_of = {u["id"]: u["login"] for u in people}
    assignable = [r for r in SUB_ROLES if may_manage_user(actor, uin, r, None)]
    for user in people:
        user["created_text"] = time_text(user["created_at"])
        user["is_me"] = user["id"] == actor.user_id
        others = user["role"] != "owner" and not user["is_me"] \
            and may_manage_user(actor, uin, user["role"], None)
        user["may_set_password"] = others
        user["roles"] = assignable if others and len(assignable) > 1 else []
        user["may_have_key"] = may_manage_user(actor, uin, user["role"], user["id"])
    for key in keys:
        key["login"] = login_of.get(key["user_id"], "")
        key["created_text"] = time_text(key["created_at"])
    return {"people": people, "keys": keys, "assignable": assignable,
            "key_owners": [u for u in people if u["may_have_key"]]}


def _show(current: Page, status: int = 200, template: str = "users.html",
          error: FeeCenterError | None = None, **extra) -> HTMLResponse:
    """The page (or, for htmx, its keys part); a service's error next to its field."""
    request = current.request
    context: dict = {"people": [], "keys": [], "assignable": [], "key_owners": []}
    denied = None
    try:
        context = _context(current)
    except PermissionDenied as exc:
        denied, status = message(exc, lang_of(request)), max(status, exc.http_status)
    if error is not None:
        extra.update(error=message(error, lang_of(request)), field=error.field or "form")
    extra.setdefault("form", {})
    return render(request, template, status=status, session=current.session, active="users",
                  kind_labels=KIND_LABELS, key_state_labels=KEY_STATE_LABELS, denied=denied,
                  **context, **extra)


@router.get("/users")
def users_page(request: Request) -> HTMLResponse:
    return _show(page(request))


def _change(request: Request, csrf: str | None, form: dict, act) -> Response:
    """Run ``act(conn, actor, uin)`` as a form's change (``web.submit``), then back to
    the page; a refusal shows the page with the service's message and its status."""
    return submit(request, csrf, lambda conn, clock, actor, uin: act(conn, actor, uin),
                  lambda current, exc: _show(current, exc.http_status, error=exc, form=form),
                  lambda *_: RedirectResponse(PATH, 303))


@router.post("/users")
def add_user(request: Request, login: Annotated[str, Form()] = "",
             role: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    rt = request.app.state.runtime
    return _change(request, csrf_token or x_csrf_token, {"login": login, "role": role},
                   lambda conn, actor, uin: accounts.add_user(
                       conn, rt.clock, actor, uin, _login(login), role))


@router.post("/users/role")
def set_role(request: Request, login: Annotated[str, Form()] = "",
             role: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    rt = request.app.state.runtime
    return _change(request, csrf_token or x_csrf_token, {"target": login},
                   lambda conn, actor, uin: accounts.set_role(
                       conn, rt.clock, actor, uin, _login(login), role))


@router.post("/users/password")
def set_password(request: Request, login: Annotated[str, Form()] = "",
                 password: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
                 x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """A sub-user's console password (the form is never shown back with the password)."""
    rt = request.app.state.runtime
    return _change(request, csrf_token or x_csrf_token, {"target": login},
                   lambda conn, actor, uin: sessions.set_password(
                       conn, rt.clock, actor, uin, _login(login), password))


@router.post("/users/keys/state")
def set_key_state(request: Request, secret_id: Annotated[str, Form()] = "",
                  action: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
                  x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    rt = request.app.state.runtime

    def act(conn, actor, uin):
        if action not in ACTIONS:
            raise invalid("action", "操作只能为启用或停用", "the action is enable or disable")
        auth.set_key_state(conn, rt.clock, actor, plain_text(secret_id, "secret_id", 64),
                           ACTIONS[action])
    return _change(request, csrf_token or x_csrf_token, {}, act)


@router.post("/users/keys")
def create_key(request: Request, login: Annotated[str, Form()] = "",
               csrf_token: Annotated[str, Form()] = "",
               x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """A new key: its SecretKey is in this response only (never stored in plain form,
    never logged, never shown again). htmx gets the keys part, swapped into the page,
    so reloading the page (a GET) no longer shows it."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    part = "_keys.html" if request.headers.get("hx-request") else "users.html"
    try:
        with transaction(rt.engine) as conn:
            key = auth.create_api_key(conn, rt.clock, actor, actor.uin, _login(login))
    except FeeCenterError as exc:  # htmx swaps only successful answers: the part says why
        status = 200 if part == "_keys.html" else exc.http_status
        return _show(current, status, part, error=exc, error_in="keys")
    return _show(current, 200, part, new_key=key)
