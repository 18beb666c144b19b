"""The console's 资源 (resources) pages: the account's resources by project with their
state (and why one is stopped, ARR-3), pay mode, spec and expiry; moving resources
between projects; one resource with its renew and upgrade forms (they create the
order and lead to its page to pay, ORD-1); and the refund (退订, ORD-4): the
service's dry-run preview, then the confirmation.

Each handler calls what REST calls (api/orders.py): ``resources.list_projects``,
``resources.list_resources``, ``resources.move_resources``,
``orders.create_renewal``, ``orders.create_upgrade``, ``orders.preview_refund``
and ``orders.refund_resource``; they check the permissions (ACC-2). The refund
form carries an idempotency key made when the preview is rendered, so a second
submit of the same form returns the first refund (docs/console.md, "Resources").
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.catalog import service as catalog
from feecenter.console.i18n import N_
from feecenter.console.orders import STATE_LABELS as ORDER_STATES
from feecenter.console.web import PREFIX, Page, form_key, page, page_error, render, submit
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, invalid, not_found
from feecenter.orders import service as orders
from feecenter.present.orders import order_json
from feecenter.present.resources import resource_json
from feecenter.present.text import time_text
from feecenter.resources import service as resources

router = APIRouter(prefix=PREFIX, include_in_schema=False)
STATE_LABELS = {"running": N_("Running"), "stopped": N_("Stopped"),
                "recycled": N_("Recycled")}
PAY_MODES = {"prepaid": N_("Prepaid (monthly)"), "postpaid": N_("Postpaid (by usage)")}
STOP_REASONS = {"arrears": N_("Stopped for arrears since %(time)s: paying the arrears "
                              "restarts it (see Arrears).")}


def _page(request: Request, current: Page, template: str, status: int = 200,
          **context) -> HTMLResponse:
    return render(request, template, status=status, session=current.session, active="resources",
                  state_labels=STATE_LABELS, pay_modes=PAY_MODES, stop_reasons=STOP_REASONS,
                  **context)


def _whole(text: str, field: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise invalid(field, f"{field} 须为整数", f"{field} must be a whole number")
    return int(text)


# ---------------------------------------------------------------- the list, moving

def _listing(current: Page, project_text: str) -> dict:
    """Projects, the resources (of one project, or all grouped by project), open stops."""
    actor, rt = current.session.actor, current.rt
    project_id = _whole(project_text, "project_id") if project_text else None
    with transaction(rt.engine) as conn:  # as REST: the default project is made on first use
        projects = resources.list_projects(conn, rt.clock, actor, actor.uin)
        rows = resources.list_resources(conn, actor, actor.uin, project_id=project_id)
        stops = resources.open_stops(conn, [r["id"] for r in rows])
    shown = [{**resource_json(r), "stop": stops.get(r["id"])} for r in rows]
    for row in shown:
        if row["stop"]:
            row["stop"] = {**row["stop"], "since": time_text(row["stop"]["stopped_at"])}
    groups = [(p, [r for r in shown if r["project_id"] == p["id"]]) for p in projects
              if project_id in (None, p["id"])]
    return {"projects": projects, "groups": [g for g in groups if g[1] or project_id],
            "project": project_id, "count": len(shown)}


def _list_page(request: Request, current: Page, project_text: str, status: int = 200,
               **extra) -> HTMLResponse:
    context = {"projects": [], "groups": [], "project": None, "count": 0}
    try:
        context.update(_listing(current, project_text))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    return _page(request, current, "resources.html", status, **{**context, **extra})


@router.get("/resources")
def resource_list(request: Request, project: str = "") -> HTMLResponse:
    return _list_page(request, page(request), project.strip())


@router.post("/resources/move")
def move(request: Request, resource_id: Annotated[list[str], Form()] = [],  # noqa: B006
         project_id: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
         x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Move the ticked resources to a project (SET-7: later charges belong to it)."""
    def change(conn, clock, actor, uin):
        target = _whole(project_id.strip(), "project_id")
        resources.move_resources(conn, clock, actor, uin, resource_id, target)
        return target

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _list_page(request, current, "", found.pop("status"), moving=True, **found)
    return submit(request, csrf_token or x_csrf_token, change, refused,
                  lambda _, target: RedirectResponse(f"{PREFIX}/resources?project={target}", 303))


# ---------------------------------------------------------------- one resource: renew, upgrade

def _resource(current: Page, resource_id: str) -> dict:
    """The resource as the list shows it, with its product's renewal terms and the
    specs it can be changed to (the catalog's)."""
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        rows = resources.list_resources(conn, actor, actor.uin)  # READ_PROFILE (ACC-2)
        row = next((r for r in rows if r["id"] == resource_id), None)
        if row is None:
            raise not_found("resource_id", "资源", "resource", resource_id)
        stop = resources.open_stops(conn, [resource_id]).get(resource_id)
        product = catalog.get_product(conn, row["product_code"])
        specs = [i for i in catalog.list_items(conn, row["product_code"])
                 if i["spec"] and i["code"] != row["spec_item"]]
    return {"resource": {**resource_json(row),
                         "stop": stop and {**stop, "since": time_text(stop["stopped_at"])}},
            "months": product.prepaid_months, "specs": specs}


def _detail_page(request: Request, current: Page, resource_id: str, status: int = 200,
                 **extra) -> HTMLResponse:
    context: dict = {"resource": None, "months": (), "specs": []}
    try:
        context.update(_resource(current, resource_id))
    except FeeCenterError as exc:
        found = page_error(request, exc)
        status = found.pop("status")
        context.update(found)
    return _page(request, current, "resource.html", status, **{**context, **extra})


@router.get("/resources/{resource_id}")
def resource_detail(request: Request, resource_id: str) -> HTMLResponse:
    return _detail_page(request, page(request), resource_id)


def _order_action(request: Request, resource_id: str, csrf: str, create) -> Response:
    """Create a renewal or an upgrade order and go to its page, where it is paid."""
    def change(conn, clock, actor, uin):
        order_id = create(conn, clock, actor, uin)
        return order_json(orders.get_order(conn, actor, uin, order_id))["order_no"]

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _detail_page(request, current, resource_id, found.pop("status"), **found)
    return submit(request, csrf, change, refused,
                  lambda _, number: RedirectResponse(f"{PREFIX}/orders/{number}", 303))


@router.post("/resources/{resource_id}/renew")
def renew(request: Request, resource_id: str, months: Annotated[str, Form()] = "",
          csrf_token: Annotated[str, Form()] = "",
          x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def create(conn, clock, actor, uin):
        return orders.create_renewal(conn, clock, actor, uin, resource_id,
                                     _whole(months.strip(), "months"))
    return _order_action(request, resource_id, csrf_token or x_csrf_token, create)


@router.post("/resources/{resource_id}/upgrade")
def upgrade(request: Request, resource_id: str, spec_item: Annotated[str, Form()] = "",
            csrf_token: Annotated[str, Form()] = "",
            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def create(conn, clock, actor, uin):
        return orders.create_upgrade(conn, clock, actor, uin, resource_id, spec_item.strip())
    return _order_action(request, resource_id, csrf_token or x_csrf_token, create)


# ---------------------------------------------------------------- refund (退订)

def _preview(current: Page, resource_id: str) -> dict:
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        preview = orders.preview_refund(conn, rt.clock, actor, actor.uin, resource_id)
    times = ("first_paid_at", "window_ends_at", "service_end")
    return {"preview": {**preview, **{k: time_text(preview[k]) for k in times}},
            "key": secrets.token_urlsafe(24)}


def _refund_page(request: Request, current: Page, resource_id: str, status: int = 200,
                 **extra) -> HTMLResponse:
    context: dict = {"resource_id": resource_id, "preview": None, "key": ""}
    try:
        context.update(_preview(current, resource_id))
    except FeeCenterError as exc:
        if "error" not in extra:  # the preview's own refusal, unless the POST's is shown
            found = page_error(request, exc)
            status = found.pop("status")
            context.update(found)
    return _page(request, current, "refund.html", status, **{**context, **extra})


@router.get("/resources/{resource_id}/refund")
def refund_form(request: Request, resource_id: str) -> HTMLResponse:
    """The service's dry run: what comes back to gift, cash and coupons, and why."""
    return _refund_page(request, page(request), resource_id)


@router.post("/resources/{resource_id}/refund")
def refund(request: Request, resource_id: str, idempotency_key: Annotated[str, Form()] = "",
           csrf_token: Annotated[str, Form()] = "",
           x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    def change(conn, clock, actor, uin):
        refund_id = orders.refund_resource(
            conn, clock, actor, uin, resource_id,
            key=form_key(idempotency_key, "退订页面", "the refund page"))
        return orders.get_order(conn, actor, uin, refund_id)

    def refused(current: Page, exc: FeeCenterError) -> HTMLResponse:
        found = page_error(request, exc)
        return _refund_page(request, current, resource_id, found.pop("status"), **found)

    def done(current: Page, made: dict) -> HTMLResponse:
        money = ("amount", "paid_coupon", "refunded_gift", "refunded_cash")
        return _page(request, current, "refunded.html",
                     order={**order_json(made), "fen": {k: made[k] or 0 for k in money}},
                     order_states=ORDER_STATES)
    return submit(request, csrf_token or x_csrf_token, change, refused, done)
