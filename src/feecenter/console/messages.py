"""The console's 消息 (in-site messages) page: the user's notification inbox, newest
first, read or unread, each in the page's language; marking one or all read (htmx
swaps the list and the header's unread count, a plain form goes back to the page).

The handlers call what REST calls (``api/notifications.py``):
``notifications.list_messages`` and ``notifications.mark_read``, which decide which
messages a user sees (the kinds addressed to its role) and refuse ids it does not
see, marking nothing. Read state is per account (docs/notifications.md).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.console.web import PREFIX, Page, csrf_refused, lang_of, message, page, render
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id
from feecenter.inputs import page_number as read_page
from feecenter.notifications import service as notifications
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 20



def inbox(current: Page, unread_only: bool = False, number: int = 1,
          limit: int = PAGE_SIZE) -> dict:
    """A page of the user's messages in the page's language, with its times as text."""
    actor = current.session.actor
    with current.rt.engine.connect() as conn:
        found = notifications.list_messages(conn, actor, actor.uin, unread_only=unread_only,
                                            offset=(number - 1) * limit, limit=limit,
                                            locale=lang_of(current.request))
    for item in found["items"]:
        item["created_text"] = time_text(item["created_at"])
    return found


def _show(current: Page, unread_only: bool, page_text: str, status: int = 200,
          error: FeeCenterError | None = None) -> HTMLResponse:
    request = current.request
    htmx = bool(request.headers.get("hx-request"))
    context = {"unread_only": unread_only, "page_number": 1, "pages": 1,
               "found": {"total": 0, "unread": 0, "items": []}}
    try:
        context["page_number"] = read_page(page_text)
        context["found"] = inbox(current, unread_only, context["page_number"])
    except FeeCenterError as exc:
        error, status = error or exc, max(status, exc.http_status)
    if error is not None:
        context.update(error=message(error, lang_of(request)), field=error.field or "form")
    context["pages"] = max(1, -(-context["found"]["total"] // PAGE_SIZE))
    context["page_query"] = lambda n: urlencode({"unread": "1" if unread_only else "", "page": n})
    return render(request, "_messages.html" if htmx else "messages.html",
                  status=200 if htmx else status, session=current.session, active="messages",
                  oob_unread=htmx, **context)


@router.get("/messages")
def messages_page(request: Request, unread: str = "") -> HTMLResponse:
    return _show(page(request), unread == "1", request.query_params.get("page", "1"))


@router.post("/messages/read")
def mark_read(request: Request, id: Annotated[list[str], Form()] = [],  # noqa: A002, B006
              all: Annotated[str, Form()] = "",  # noqa: A002
              unread: Annotated[str, Form()] = "",
              page_number: Annotated[str, Form(alias="page")] = "1",
              csrf_token: Annotated[str, Form()] = "",
              x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Mark the ticked message (``id``) or every unread one (``all=1``) read."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    try:
        if all != "1" and not id:
            raise invalid("ids", "请选择消息，或全部标为已读", "choose a message, or mark all read")
        ids = None if all == "1" else [digits_id(v, "ids") for v in id]
        with transaction(rt.engine) as conn:
            notifications.mark_read(conn, rt.clock, actor, actor.uin, ids)
    except FeeCenterError as exc:
        return _show(current, unread == "1", page_number, exc.http_status, exc)
    if request.headers.get("hx-request"):
        return _show(current, unread == "1", page_number)
    query = urlencode({"unread": "1" if unread == "1" else "", "page": page_number})
    return RedirectResponse(f"{PREFIX}/messages?{query}", 303)
