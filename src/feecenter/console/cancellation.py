"""The console's 注销 (account cancellation, ACC-5) page: every reason that blocks the
cancellation, each with a link to the page where it is cleared (提现, 在线充值,
对公汇款, 资源); the gift that would be forfeited; and, only when nothing blocks it,
the owner's cancel button behind a confirmation (a box to tick) and the CSRF token.

The page calls what REST calls (api/cancellation.py): ``cancellation.service.status``
(FINANCE, ACC-2) and ``cancel`` (the owner only). Cancelling ends every session of
the account, this one too: the answer is the final page, without the menu.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, Response

from feecenter.cancellation import service
from feecenter.console.i18n import N_
from feecenter.console.web import (PREFIX, SESSION_COOKIE, Page, form_key, lang_of, page,
                                   page_error, render, submit)
from feecenter.errors import FeeCenterError, invalid

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PATH = f"{PREFIX}/cancellation"
# where each blocker is cleared: (path, the menu's label)
RECHARGE = (f"{PREFIX}/recharge", N_("Online recharge"))
REMITTANCE = (f"{PREFIX}/remittance", N_("Corporate remittance"))
WITHDRAWALS = (f"{PREFIX}/withdrawals", N_("Withdrawals"))
RESOURCES = (f"{PREFIX}/resources", N_("Resources"))
FIX = {"arrears": RECHARGE, "advances": RECHARGE, "recharges_pending": RECHARGE,
       "cash": WITHDRAWALS, "withdrawals_in_progress": WITHDRAWALS, "frozen": RESOURCES,
       "resources": RESOURCES}


def _shown(blocker: dict, lang: str) -> dict:
    path, label = FIX.get(blocker["code"], REMITTANCE)  # remittances_<state>
    return {"code": blocker["code"], "text": blocker["zh"] if lang == "zh-CN" else blocker["en"],
            "path": path, "label": label}


def _page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    actor, rt = current.session.actor, current.rt
    context: dict = {"view": None, "blockers": [], "key": uuid.uuid4().hex,
                     "owner": actor.role == "owner"}
    try:
        with rt.engine.connect() as conn:
            view = service.status(conn, rt.clock, actor, actor.uin)
        context.update(view=view, blockers=[_shown(b, lang_of(request)) for b in view["blockers"]])
    except FeeCenterError as exc:
        context.update(page_error(request, exc))
        status = exc.http_status
    context.update(extra)
    status = context.pop("status", status)
    return render(request, "cancellation.html", status=status, session=current.session,
                  active="cancellation", **context)


@router.get("/cancellation")
def cancellation_page(request: Request) -> HTMLResponse:
    return _page(request, page(request))


@router.post("/cancellation")
def cancel(request: Request, confirm: Annotated[str, Form()] = "",
           request_key: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        key = form_key(request_key, "注销页面", "the cancellation page")
        if confirm != "yes":
            raise invalid("confirm", "请勾选确认：注销后账号不能再登录或调用 API，赠送金作废",
                          "tick the confirmation: once cancelled the account cannot log in or "
                          "call the API, and its gift balance is forfeited")
        return service.cancel(conn, clock, actor, uin, key=f"console:{key[:64]}")

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        return _page(request, current, **page_error(request, exc))

    def done(current: Page, result: dict) -> Response:
        response = render(request, "cancellation_done.html", result=result,
                          uin=current.session.actor.uin)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response
    return submit(request, csrf_token or x_csrf_token, change, refused, done)
