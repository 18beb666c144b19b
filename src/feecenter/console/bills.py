"""The cost-bill pages of the console (费用账单, BIL-1) and the consumption bill (消耗账单,
BIL-4), under /console/bills/…, each with the bill pages' tab bar (``_bills_nav.html``):

- 概览 ``/bills/overview``: a month's L0 totals, by pay mode, the precision difference
  (SET-3) as its own category, and charts of the cost by day, by product and by
  project (``bills.service.overview``, ``daily_totals``, ``summary``);
- 汇总 ``/bills/summary?by=product|project|region|pay_mode|tag&tag_key=…`` (L1);
- 资源 ``/bills/resources`` (L2), each resource leading to its lines;
- 明细 ``/bills/lines?resource=…&page=…`` (L3, paged; ``month_lines_page``);
- 消耗账单 ``/bills/consumption`` (``bills.consumption.consumption_bill``) with why it
  does not reconcile line by line with the cost bill.

``/console/bills`` itself (console.ledger) stays the postpaid bill lines with the
statistic-period setting (BIL-3), the tab bar's last tab. The services check the
finance permission (ACC-2) and the month; a malformed month, ``by``, ``tag_key``,
resource or page is shown at its field in the page's language with a 400, a
refusal with a 403. Amounts: fen through the ``yuan`` filter, 1e-8 yuan as 8
decimals; a line off the list price shows "-" for its list price, discount and
original cost (BIL-6); refunds and downgrades are negative (BIL-5).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import Connection

from feecenter.accounts.permissions import Actor
from feecenter.bills import consumption
from feecenter.bills import service as bills
from feecenter.bills.lines import month_start
from feecenter.catalog import service as catalog
from feecenter.clock import BUSINESS_TZ, add_months
from feecenter.console import i18n
from feecenter.console.charts import business_month
from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, lang_of, message, page, render
from feecenter.errors import FeeCenterError, InvalidInput, PermissionDenied
from feecenter.inputs import page_number, plain_text
from feecenter.present.text import rated, time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 20  # L3 lines a page
MAX_TEXT = 127  # characters of a resource id or tag key in a query
PAY_MODES = {"prepaid": N_("Prepaid (monthly)"), "postpaid": N_("Postpaid (by usage)")}
DIMENSIONS = {"product": N_("By product"), "project": N_("By project"),
              "region": N_("By region"), "pay_mode": N_("By pay mode"), "tag": N_("By tag")}
KINDS = {"charge": N_("Charge"), "adjustment": N_("Adjustment"), "new": N_("New purchase"),
         "renew": N_("Renewal"), "upgrade": N_("Upgrade"), "downgrade": N_("Downgrade"),
         "refund": N_("Refund")}


# ---------------------------------------------------------------- the shared frame

def _text(request: Request, name: str) -> str:
    return request.query_params.get(name, "").strip()


def _show(request: Request, template: str, tab: str,
          load: Callable[[Connection, Actor, int, str, dict], dict], **shown) -> HTMLResponse:
    """Render a bill page of ``month`` (the query's, else this business month):
    ``load(conn, actor, uin, month, context)`` calls the services and returns what the
    template shows beside ``shown`` (``context`` holds the page's language and query);
    a service's refusal or invalid input is shown instead, with its status."""
    current = page(request)
    lang = lang_of(request)
    month = _text(request, "month") or business_month(current.rt.clock.now())
    query = {name: value.strip() for name, value in request.query_params.items()}
    context = {"month": month, "bills_tab": tab, "errors": {}, "denied": None, **shown}
    actor, status = current.session.actor, 200
    try:
        with current.rt.engine.connect() as conn:
            context.update(load(conn, actor, actor.uin, month, {"lang": lang, "query": query}))
    except PermissionDenied as exc:  # ACC-2: the service refuses, the page says why
        context["denied"], status = message(exc, lang), exc.http_status
    except InvalidInput as exc:
        context["errors"][exc.field or "form"], status = message(exc, lang), exc.http_status
    except FeeCenterError as exc:  # e.g. the account is gone: said on the page, never a 500
        context["errors"]["form"], status = message(exc, lang), exc.http_status
    context.update(_around(month))
    return render(request, template, status=status, session=current.session, active="bills",
                  **context)


def _around(month: str) -> dict:
    """The month carried by the tab bar and the picker's previous and next months;
    none for a malformed month."""
    try:
        first = month_start(bills.check_month(month))
    except InvalidInput:
        return {"bills_month": ""}
    return {"bills_month": month, **{
        name: add_months(first, step).astimezone(BUSINESS_TZ).strftime("%Y-%m")
        for name, step in (("previous_month", -1), ("next_month", 1))}}


def _product_names(conn: Connection, lang: str) -> dict[str, str]:
    name = "name_zh" if lang == "zh-CN" else "name_en"
    return {product.code: getattr(product, name) for product in catalog.list_products(conn)}


def _sums_text(group: dict) -> dict:
    """A group's (or a line's) costs in 1e-8 yuan as 8-decimal text; fen stay fen for
    the ``yuan`` filter. A missing original cost (BIL-6) stays None: shown "-"."""
    return {**group, **{f"{name}_text": rated(group.get(name))
                        for name in ("original_cost", "discounted_cost", "precision_diff")}}


# ---------------------------------------------------------------- 概览 (L0 and charts)

@router.get("/bills/overview")
def overview(request: Request) -> HTMLResponse:
    return _show(request, "bills_overview.html", "overview", _overview)


def _overview(conn: Connection, actor: Actor, uin: int, month: str, context: dict) -> dict:
    lang = context["lang"]
    gettext = i18n.translations(lang).gettext
    l0 = bills.overview(conn, actor, uin, month)
    days = bills.daily_totals(conn, actor, uin, month)
    by_product = bills.summary(conn, actor, uin, month, "product")
    by_project = bills.summary(conn, actor, uin, month, "project")
    names = _product_names(conn, lang)
    products = [{**group, "label": names.get(group["product"], group["product"])}
                for group in by_product]
    projects = [{**group, "label": group["project_name"]} for group in by_project]
    return {"total": _sums_text(l0["total"]),
            "by_pay_mode": [{**_sums_text(group), "label": PAY_MODES.get(group["pay_mode"])}
                            for group in l0["by_pay_mode"]],
            "precision_difference_text": rated(l0["precision_difference"]),
            "refreshed_through": l0["refreshed_through"],
            "products": products, "projects": projects,
            "charts": {"by_day": _by_day_chart(month, days, gettext("Cost")),
                       "by_product": _pie(products, gettext("Cost")),
                       "by_project": _pie(projects, gettext("Cost"))}}


def _by_day_chart(month: str, days: list[dict], series: str) -> dict:
    """Every day of the month (MM-DD) with its deducted fen, and any later day a
    usage-time month holds (its usage deducted after the month, BIL-3)."""
    first = month_start(month).astimezone(BUSINESS_TZ).date()
    last = add_months(month_start(month), 1).astimezone(BUSINESS_TZ).date() - timedelta(days=1)
    deducted: dict[date, int] = {first + timedelta(days=n): 0
                                 for n in range((last - first).days + 1)}
    for day in days:
        deducted[day["day"]] = deducted.get(day["day"], 0) + day["deducted"]
    shown = sorted(deducted)
    return {"kind": "bar", "series": series, "labels": [d.strftime("%m-%d") for d in shown],
            "values": [deducted[d] for d in shown]}


def _pie(groups: list[dict], series: str) -> dict:
    return {"kind": "pie", "series": series, "labels": [g["label"] for g in groups],
            "values": [g["deducted"] for g in groups]}


# ---------------------------------------------------------------- 汇总 (L1)

@router.get("/bills/summary")
def summary(request: Request) -> HTMLResponse:
    return _show(request, "bills_summary.html", "summary", _summary, dimensions=DIMENSIONS,
                 by=_text(request, "by") or "product", tag_key=_text(request, "tag_key"))


def _summary(conn: Connection, actor: Actor, uin: int, month: str, context: dict) -> dict:
    query = context["query"]
    by, tag_key = query.get("by") or "product", query.get("tag_key")
    known_keys = []
    if by == "tag":
        found = bills.resource_bills(conn, actor, uin, month)  # FINANCE, the month
        known_keys = sorted({key for resource in found for key in resource["tags"]})
        if tag_key is None:  # the tab just opened: choose a key first
            return {"known_keys": known_keys, "groups": None}
        plain_text(tag_key, "tag_key", MAX_TEXT)
    groups = bills.summary(conn, actor, uin, month, by, tag_key)
    names = _product_names(conn, context["lang"]) if by == "product" else {}
    gettext = i18n.translations(context["lang"]).gettext
    return {"known_keys": known_keys, "groups": [
        {**_sums_text(group), "label": _group_label(by, group, names, gettext)}
        for group in groups]}


def _group_label(by: str, group: dict, names: dict[str, str], gettext) -> str | None:
    """What a group is called, in the page's language; None for the resources without
    the tag key."""
    if by == "product":
        return names.get(group["product"], group["product"])
    if by == "project":
        return group["project_name"]
    if by == "pay_mode":
        return gettext(PAY_MODES[group["pay_mode"]]) if group["pay_mode"] in PAY_MODES \
            else group["pay_mode"]
    if by == "tag":
        return group["tag_value"] or None
    return group[by]


# ---------------------------------------------------------------- 资源 (L2)

@router.get("/bills/resources")
def resources(request: Request) -> HTMLResponse:
    return _show(request, "bills_resources.html", "resources", _resources)


def _resources(conn: Connection, actor: Actor, uin: int, month: str, context: dict) -> dict:
    found = bills.resource_bills(conn, actor, uin, month)
    return {"resources": [{**_sums_text(r), "tags_text": ", ".join(
        f"{key}={value}" for key, value in sorted(r["tags"].items()))} for r in found]}


# ---------------------------------------------------------------- 明细 (L3)

def month_lines_page(conn: Connection, actor: Actor, uin: int, month: str,
                     resource: str | None, offset: int, limit: int) -> tuple[list[dict], int]:
    """One page of the month's L3 lines (of one resource when given) and how many there
    are, in deduction time order. Reads the whole month and slices it
    (``bills.service.month_lines``): the one place to swap for a read paged in SQL."""
    lines = bills.month_lines(conn, actor, uin, month)
    if resource:
        lines = [line for line in lines if line["resource_id"] == resource]
    return lines[offset:offset + limit], len(lines)


@router.get("/bills/lines")
def lines(request: Request) -> HTMLResponse:
    return _show(request, "bills_lines.html", "lines", _lines, resource=_text(request, "resource"))


@router.get("/bills/lines/table")
def lines_table(request: Request) -> HTMLResponse:
    """The lines alone, for the pager's htmx requests (200 even for an error: htmx
    swaps successful responses only, and the part says why)."""
    response = _show(request, "_bill_lines.html", "lines", _lines,
                     resource=_text(request, "resource"))
    response.status_code = 200
    query = request.url.query
    response.headers["HX-Push-Url"] = f"{PREFIX}/bills/lines" + (f"?{query}" if query else "")
    return response


def _lines(conn: Connection, actor: Actor, uin: int, month: str, context: dict) -> dict:
    query = context["query"]
    resource = plain_text(query.get("resource", ""), "resource", MAX_TEXT)
    number = page_number(query.get("page") or "1")
    found, total = month_lines_page(conn, actor, uin, month, resource or None,
                                    (number - 1) * PAGE_SIZE, PAGE_SIZE)
    names = _product_names(conn, context["lang"])
    filters = {"month": month, "resource": resource}
    return {"resource": resource, "lines": [_line(line, names) for line in found],
            "total": total, "page_number": number, "pages": max(1, -(-total // PAGE_SIZE)),
            "page_query": lambda n: urlencode({k: v for k, v in {**filters, "page": n}.items()
                                               if v})}


def _line(line: dict, names: dict[str, str]) -> dict:
    """What the page shows of a line: BIL-6, no list price, discount or original cost
    off the list price (None: "-"); the kind's label; business times."""
    return {**_sums_text(line), "product_name": names.get(line["product_code"],
                                                          line["product_code"]),
            "unit_price_text": rated(line["unit_price"]),
            "discount_text": (f"{line['discount_bp'] / 10_000:g}"
                              if line["discount_bp"] is not None else None),
            "kind_label": KINDS.get(line["kind"]), "pay_mode_label": PAY_MODES.get(line["pay_mode"]),
            "deducted_at_text": time_text(line["deducted_at"]),
            "usage_start_text": time_text(line["usage_start"]),
            "usage_end_text": time_text(line["usage_end"])}


# ---------------------------------------------------------------- 消耗账单 (BIL-4)

@router.get("/bills/consumption")
def consumption_bill(request: Request) -> HTMLResponse:
    return _show(request, "bills_consumption.html", "consumption", _consumption)


def _consumption(conn: Connection, actor: Actor, uin: int, month: str, context: dict) -> dict:
    bill = consumption.consumption_bill(conn, actor, uin, month)
    names = _product_names(conn, context["lang"])
    why = bill["why_not_line_by_line"]["zh" if context["lang"] == "zh-CN" else "en"]
    return {"bill": bill, "why": why,
            "products": [{**p, "label": names.get(p["product"], p["product"])}
                         for p in bill["by_product"]]}
