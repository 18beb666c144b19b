"""The console's balance warning form on 概览 (XTR-2): the days threshold (1-30, or
off) and the warning amount (yuan, or none). The service checks who may (the
owner); a refusal shows the overview again with its message and field."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.balance_warnings import rules, service
from feecenter.console.web import PREFIX, Page, overview_context, page_error, render, submit
from feecenter.errors import FeeCenterError, invalid
from feecenter.money import parse_yuan

router = APIRouter(prefix=PREFIX, include_in_schema=False)
DAYS = tuple(range(rules.MIN_DAYS, rules.MAX_DAYS + 1))


def _days(text: str) -> int | None:
    """"off", or a whole number of days (the service checks the range)."""
    text = text.strip()
    if text == "off":
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 3):
        raise invalid("days", "预警天数须为整数或关闭", "days must be a whole number or off")
    return int(text)


@router.post("/balance-warning")
def save(request: Request, days: Annotated[str, Form()] = "",
         amount: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
         x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        service.update_settings(conn, clock, actor, uin, days=_days(days),
                                amount=parse_yuan(amount, "amount") if amount.strip() else None)

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)  # its names prefixed: the overview has a "denied"
        return render(request, "overview.html", status=found.pop("status"),
                      session=current.session, active="overview", **overview_context(current),
                      **{f"warning_{name}": value for name, value in found.items()})

    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda *_: RedirectResponse(f"{PREFIX}/#balance-warning", 303))
