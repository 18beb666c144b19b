"""The console's 续费管理 (renewal management, RNW-7) and 回收站 (recycle bin, RNW-6)
pages.

续费管理: the renewable prepaid resources, or the resource packages (资源包, a tab
of their own where only the auto-renew flag and period are set), filtered by
expiry within N days, auto-renew on/off, project and product; a batch of ticked
ones gets auto-renew on or off, a period, or (resources only) a manual renewal:
``renewal.management.renew_batch`` makes the orders and the user goes on to the
orders' payment page (``/console/orders/pay``: the merged preview, then the
payment). The account's default flag and unified expiry day (RNW-5) are set
on the same page.

回收站: the resources stopped for expiry with their release time; 恢复 (restore)
makes a renewal order (``renewal.recycle_bin.restore``) and leads to its
payment page.

Each handler calls the services, which check the permissions (ACC-2: renewal
management is the owner's and the admins'). Renewal and restore forms carry an
idempotency key made when the page is rendered, so a second submit makes the
same orders (docs/console.md, "Renewal management").
"""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.catalog import service as catalog
from feecenter.console.web import PREFIX, Page, form_key, page, page_error, render, submit
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import page_number, plain_text
from feecenter.present.text import time_text
from feecenter.renewal import management, recycle_bin, settings
from feecenter.resources import service as resources

router = APIRouter(prefix=PREFIX, include_in_schema=False)
PAGE_SIZE = 50
TABS = ("resources", "packages")
FLAGS = {"on": True, "off": False}
UNIFIED_DAYS = tuple(settings.UNIFIED_DAYS)


def _page(request: Request, current: Page, template: str, status: int = 200,
          **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session,
                  active=context.pop("active", "renewal"), **context)


def _whole(text: str, field: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise invalid(field, f"{field} 须为整数", f"{field} must be a whole number")
    return int(text)


def _optional_whole(text: str, field: str) -> int | None:
    return _whole(text, field) if text.strip() else None


def _flag(text: str, field: str = "auto_renew") -> bool | None:
    """"on" / "off" / "" (either)."""
    if not text:
        return None
    if text not in FLAGS:
        raise invalid(field, "自动续费须为开启或关闭", "auto-renew must be on or off")
    return FLAGS[text]


# ---------------------------------------------------------------- 续费管理: the list

def _filters(request: Request) -> dict:
    """The list's query as given (text), for the form and the links."""
    query = request.query_params
    return {name: query.get(name, "").strip()
            for name in ("tab", "within", "auto", "project", "product", "page")}


def _query(filters: dict) -> tuple[management.RenewalQuery, int]:
    tab = filters["tab"] or "resources"
    if tab not in TABS:
        raise invalid("tab", "未知的标签页", "unknown tab")
    number = page_number(filters["page"] or "1")
    product = plain_text(filters["product"], "product_code", 40) if filters["product"] else None
    return management.RenewalQuery(
        expiring_within_days=_optional_whole(filters["within"], "expiring_within_days"),
        auto_renew=_flag(filters["auto"]), project_id=_optional_whole(filters["project"],
                                                                      "project_id"),
        product_code=product, packages=tab == "packages",
        offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE), number


def _shown(item: dict) -> dict:
    return {**item, "expires": time_text(item["period_end"])}


def _listing(current: Page, filters: dict) -> dict:
    actor, rt = current.session.actor, current.rt
    query, number = _query(filters)
    with transaction(rt.engine) as conn:  # the default project is made on first use
        found = management.list_renewables(conn, rt.clock, actor, actor.uin, query)
        account = settings.get_account_settings(conn, actor, actor.uin)
        projects = resources.list_projects(conn, rt.clock, actor, actor.uin)
        products = [p for p in catalog.list_products(conn) if p.renewal_managed]
    return {"items": [_shown(i) for i in found["items"]], "total": found["total"],
            "page": number, "pages": max(1, -(-found["total"] // PAGE_SIZE)),
            "account": account, "projects": projects, "products": products,
            "packages": query.packages}


def _list_page(request: Request, current: Page, filters: dict, status: int = 200,
               **extra) -> HTMLResponse:
    context = {"items": [], "total": 0, "page": 1, "pages": 1, "account": None,
               "projects": [], "products": [], "packages": filters.get("tab") == "packages",
               "key": secrets.token_urlsafe(24)}
    try:
        context.update(_listing(current, filters))
    except FeeCenterError as exc:
        if "error" not in extra:  # the listing's own refusal, unless the POST's is shown
            found = page_error(request, exc)
            status = found.pop("status")
            context.update(found)
    return _page(request, current, "renewal.html", status, filters=filters,
                 months=range(1, 13), unified_days=UNIFIED_DAYS,
                 page_query=lambda n: urlencode({**filters, "page": n}), **{**context, **extra})


@router.get("/renewal")
def renewal_list(request: Request) -> HTMLResponse:
    return _list_page(request, page(request), _filters(request))


def _back(tab: str) -> str:
    return f"{PREFIX}/renewal" + ("?tab=packages" if tab == "packages" else "")


def _batch(request: Request, csrf: str, tab: str, change) -> Response:
    """Run a change of the ticked resources; on a refusal the list again with its message."""
    tab = tab if tab in TABS else "resources"

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        filters = {"tab": tab, "within": "", "auto": "", "project": "", "product": "",
                   "page": ""}
        return _list_page(request, current, filters, found.pop("status"), **found)
    return submit(request, csrf, change, refused,
                  lambda _, target: RedirectResponse(target or _back(tab), 303))


@router.post("/renewal/auto-renew")
def set_flag(request: Request, resource_id: Annotated[list[str], Form()] = [],  # noqa: B006
             auto_renew: Annotated[str, Form()] = "", tab: Annotated[str, Form()] = "",
             csrf_token: Annotated[str, Form()] = "",
             x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Auto-renew on or off for the ticked resources (or packages), all or nothing."""
    def change(conn, clock, actor, uin):
        flag = _flag(auto_renew)
        if flag is None:
            raise invalid("auto_renew", "请选择开启或关闭自动续费", "choose auto-renew on or off")
        settings.set_auto_renew(conn, clock, actor, uin, resource_id, auto_renew=flag)
    return _batch(request, csrf_token or x_csrf_token, tab, change)


@router.post("/renewal/period")
def set_period(request: Request, resource_id: Annotated[list[str], Form()] = [],  # noqa: B006
               months: Annotated[str, Form()] = "", tab: Annotated[str, Form()] = "",
               csrf_token: Annotated[str, Form()] = "",
               x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The auto-renewal period of the ticked resources (or packages)."""
    def change(conn, clock, actor, uin):
        settings.set_auto_renew(conn, clock, actor, uin, resource_id,
                                months=_whole(months, "months"))
    return _batch(request, csrf_token or x_csrf_token, tab, change)


@router.post("/renewal/renew")
def renew(request: Request, resource_id: Annotated[list[str], Form()] = [],  # noqa: B006
          renew_months: Annotated[str, Form()] = "", idempotency_key: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = "",
          x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The batch manual renewal: renewal orders for the ticked resources, then their
    merged payment on the orders' payment page (preview, then pay)."""
    def change(conn, clock, actor, uin):
        key = form_key(idempotency_key, "续费管理页面", "renewal management")
        order_ids = management.renew_batch(
            conn, clock, actor, uin, resource_id, _optional_whole(renew_months, "months"),
            key=f"console-renew:{key[:100]}")
        return f"{PREFIX}/orders/pay?" + urlencode([("order_id", i) for i in order_ids])
    return _batch(request, csrf_token or x_csrf_token, "resources", change)


@router.post("/renewal/settings")
def account_settings(request: Request, auto_renew_default: Annotated[str, Form()] = "",
                     unified_day: Annotated[str, Form()] = "",
                     csrf_token: Annotated[str, Form()] = "",
                     x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """The account's default auto-renew flag (new resources) and unified expiry day
    (RNW-5; empty: off)."""
    def change(conn, clock, actor, uin):
        flag = _flag(auto_renew_default, "auto_renew_default")
        if flag is None:
            raise invalid("auto_renew_default", "请选择默认是否自动续费",
                          "choose the default auto-renew")
        day = _optional_whole(unified_day, "unified_day")
        settings.set_account_default(conn, clock, actor, uin, flag)
        settings.set_unified_day(conn, clock, actor, uin, day)
    return _batch(request, csrf_token or x_csrf_token, "resources", change)


# ---------------------------------------------------------------- 回收站

def _bin(current: Page) -> dict:
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        found = recycle_bin.list_recycle_bin(conn, rt.clock, actor, actor.uin,
                                             limit=recycle_bin.MAX_PAGE)
        months = {}
        for item in found["items"]:
            if item["product_code"] not in months:
                months[item["product_code"]] = catalog.get_product(
                    conn, item["product_code"]).prepaid_months
    items = [{**i, "expires": time_text(i["period_end"]), "stopped": time_text(i["stopped_at"]),
              "released": time_text(i["release_at"]), "choices": months[i["product_code"]]}
             for i in found["items"]]
    return {"items": items, "total": found["total"]}


def _bin_page(request: Request, current: Page, status: int = 200, **extra) -> HTMLResponse:
    context: dict = {"items": [], "total": 0, "key": secrets.token_urlsafe(24)}
    try:
        context.update(_bin(current))
    except FeeCenterError as exc:
        if "error" not in extra:
            found = page_error(request, exc)
            status = found.pop("status")
            context.update(found)
    return _page(request, current, "recycle_bin.html", status, active="recycle_bin",
                 **{**context, **extra})


@router.get("/recycle-bin")
def bin_list(request: Request) -> HTMLResponse:
    return _bin_page(request, page(request))


@router.post("/recycle-bin/{resource_id}/restore")
def restore(request: Request, resource_id: str, months: Annotated[str, Form()] = "",
            idempotency_key: Annotated[str, Form()] = "",
            csrf_token: Annotated[str, Form()] = "",
            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """恢复: a renewal order for the resource, then its payment page."""
    def change(conn, clock, actor, uin):
        key = form_key(idempotency_key, "回收站页面", "the recycle bin")
        return recycle_bin.restore(conn, clock, actor, uin, resource_id, _whole(months, "months"),
                                   key=f"console-restore:{key[:100]}:{resource_id}")  # per resource

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _bin_page(request, current, found.pop("status"), **found)
    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda _, order_id: RedirectResponse(f"{PREFIX}/orders/pay?order_id={order_id}", 303))
