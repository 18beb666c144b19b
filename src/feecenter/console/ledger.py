"""收支明细 (transactions, BAL-5) and 账单 (L3 bill lines, BIL-1) in the console, with
the bills' statistic-period setting (BIL-3: the one-way switch to usage time, made
only with the rules acknowledged; ``settlement.switch_statistic_period``).

The pages call the services REST calls (``funds.list_transactions`` behind
``GET /accounts/{uin}/transactions``, ``settlement.list_bill_lines`` behind
``GET /accounts/{uin}/bill-lines``) with the logged-in user; the services check
the finance permission (ACC-2) and validate the filters. A filter the service
or the page finds malformed is shown next to its field, in the page's language.

Both services page by offset (no keyset), newest transaction first, bill lines
in period order. ``install`` (console.web) includes ``router`` before the
console's catch-all 404 route.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from urllib.parse import urlencode

from typing import Annotated

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from feecenter.clock import parse_business_time
from feecenter.console import i18n
from feecenter.console.charts import PERIOD_LABELS
from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, Page, csrf_refused, lang_of, message, page, render
from feecenter.db.engine import transaction
from feecenter.errors import FeeCenterError, InvalidInput, PermissionDenied
from feecenter.funds import service as funds
from feecenter.inputs import plain_text
from feecenter.money import format_yuan
from feecenter.present.bills import NOT_CHARGED_STOPPED, line_quantity
from feecenter.present.text import rated, time_text
from feecenter.settlement import service as settlement

router = APIRouter(prefix=PREFIX, include_in_schema=False)

PAGE_SIZE = 20
CSV_BATCH = 1000  # the services' largest page

TYPE_LABELS = {
    "recharge": N_("Top-up"), "deduct": N_("Deduction"), "return": N_("Money returned"),
    "block": N_("Freeze"), "unblock": N_("Unfreeze"), "cash": N_("Withdrawal"),
    "agentin": N_("Transfer in"), "agentout": N_("Transfer out"),
    "advanced": N_("Credit advance"), "repay": N_("Advance repaid"),
    "repayment": N_("Arrears repaid"), "adj_refund": N_("Adjustment (credit)"),
    "adj_deduct": N_("Adjustment (debit)"), "present": N_("Gift granted"),
}
KIND_LABELS = {"charge": N_("Charge"), "adjustment": N_("Adjustment")}

# the CSV's columns: (header, the entry's value as text)
CSV_COLUMNS = (
    (N_("Time"), lambda e, t: time_text(e["created_at"])),
    (N_("Type"), lambda e, t: t(TYPE_LABELS.get(e["action_type"], e["action_type"]))),
    (N_("Product"), lambda e, t: e["product_code"] or ""),
    (N_("Amount (CNY)"), lambda e, t: format_yuan(e["amount"])),
    (N_("Cash (CNY)"), lambda e, t: format_yuan(e["cash_amount"])),
    (N_("Gift (CNY)"), lambda e, t: format_yuan(e["gift_amount"])),
    (N_("Coupon (CNY)"), lambda e, t: format_yuan(e["coupon_amount"])),
    (N_("Balance after (CNY)"), lambda e, t: format_yuan(e["balance_after"])),
    (N_("Order"), lambda e, t: e["order_id"] or ""),
    (N_("Memo"), lambda e, t: e["memo"] or ""),
)


def _text(request: Request, name: str) -> str:
    return request.query_params.get(name, "").strip()


def _page_number(request: Request, errors: dict[str, str]) -> int:
    raw = _text(request, "page") or "1"
    if raw.isascii() and raw.isdigit() and len(raw) <= 10 and 1 <= int(raw) <= 10**9:
        return int(raw)
    errors["page"] = i18n.translations(lang_of(request)).gettext(
        "The page must be a whole number from 1.")
    return 1


def _query_text(filters: dict, **extra) -> str:
    return urlencode({k: v for k, v in {**filters, **extra}.items() if v})


def _field_error(exc: InvalidInput, lang: str, fields: dict[str, str]) -> tuple[str, str]:
    """(form field, message) for a service's invalid input; unknown fields go on the form."""
    return fields.get(exc.field or "", "form"), message(exc, lang)


# ---------------------------------------------------------------- 收支明细 (transactions)

TRANSACTION_FIELDS = {"start": "start", "end": "end", "action_type": "type", "limit": "page",
                      "offset": "page", "product": "product", "after_id": "page",
                      "before_id": "page"}
MAX_FILTER = 100  # characters of a product or resource filter (no stored code is longer)


def _transaction_filters(request: Request) -> dict[str, str]:
    return {name: _text(request, name) for name in ("type", "start", "end", "product")}


def _statement_query(filters: dict[str, str], offset: int, limit: int,
                     end_at=None, cursor: dict | None = None) -> funds.StatementQuery:
    """The same query REST builds from the same parameters (api.routes.list_transactions)."""
    end = parse_business_time(filters["end"], "end") if filters["end"] else None
    if end_at is not None and (end is None or end > end_at):
        end = end_at
    return funds.StatementQuery(
        start=parse_business_time(filters["start"], "start") if filters["start"] else None,
        end=end, action_types=(filters["type"],) if filters["type"] else (),
        product_code=filters["product"] or None, offset=offset, limit=limit,
        after_id=(cursor or {}).get("after"), before_id=(cursor or {}).get("before"),
        with_totals=False)  # the page shows no sums per type


def _cursor(request: Request, errors: dict[str, str]) -> dict[str, int]:
    """Keyset paging: ``after`` (the next page) or ``before`` (the previous one) an
    entry's (a line's) id; a page number without them is read by offset (older links)."""
    cursor = {}
    for name in ("after", "before"):
        raw = _text(request, name)
        if raw and raw.isascii() and raw.isdigit() and len(raw) <= 19 and 1 <= int(raw) < 2**63:
            cursor[name] = int(raw)
        elif raw:
            errors["page"] = i18n.translations(lang_of(request)).gettext(
                "The page must be a whole number from 1.")
    if len(cursor) > 1:
        errors["page"] = i18n.translations(lang_of(request)).gettext(
            "The page must be a whole number from 1.")
    return cursor


def _keyset_links(filters: dict, number: int, result: dict | None):
    """The pager's addresses: the next page after the last entry shown, the previous
    one before the first (page 1 without a cursor); the number is only shown."""
    items = result["items"] if result else []

    def page_query(n: int) -> str:
        if items and n == number + 1:
            return _query_text(filters, page=n, after=items[-1]["id"])
        if items and n == number - 1 and n > 1:
            return _query_text(filters, page=n, before=items[0]["id"])
        return _query_text(filters, page=n)

    return page_query


def _transactions(current: Page) -> tuple[dict, int]:
    request, rt = current.request, current.rt
    lang, filters, errors = lang_of(request), _transaction_filters(request), {}
    number, cursor = _page_number(request, errors), _cursor(request, errors)
    result, denied = None, None
    if not errors:
        try:
            plain_text(filters["product"], "product", MAX_FILTER)  # NUL, controls: refused
            query = _statement_query(filters, (number - 1) * PAGE_SIZE, PAGE_SIZE,
                                     cursor=cursor)
            with rt.engine.connect() as conn:
                result = funds.list_transactions(conn, current.session.actor,
                                                 current.session.actor.uin, query)
            for entry in result["items"]:  # business time, as the API gives it
                entry["created_at_text"] = time_text(entry["created_at"])
        except PermissionDenied as exc:  # ACC-2: the service refuses, the page says why
            denied = message(exc, lang)
        except InvalidInput as exc:
            field, text = _field_error(exc, lang, TRANSACTION_FIELDS)
            errors[field] = text
    context = {"filters": filters, "errors": errors, "denied": denied, "result": result,
               "page_number": number, "pages": _pages(result), "types": TYPE_LABELS,
               "query": _query_text(filters), "page_query": _keyset_links(filters, number, result),
               "cursor": cursor}
    status = 403 if denied else 400 if errors else 200
    return context, status


def _pages(result: dict | None) -> int:
    return max(1, -(-result["total"] // PAGE_SIZE)) if result else 1


@router.get("/transactions")
def transactions(request: Request) -> HTMLResponse:
    current = page(request)
    context, status = _transactions(current)
    return render(request, "transactions.html", status=status, session=current.session,
                  active="transactions", **context)


@router.get("/transactions/table")
def transactions_table(request: Request) -> HTMLResponse:
    """The filter form and the table alone, for htmx (200 even for a refusal or an
    invalid filter: htmx swaps only successful responses, and the part says why)."""
    current = page(request)
    context, _ = _transactions(current)
    response = render(request, "_transactions.html", session=current.session, **context)
    response.headers["HX-Push-Url"] = f"{PREFIX}/transactions" + (
        f"?{_query_text(context['filters'], page=context['page_number'], **context['cursor'])}")
    return response


@router.get("/transactions.csv")
def transactions_csv(request: Request) -> Response:
    """The filtered list, every page of it, as CSV: UTF-8 with a BOM (Excel reads the
    Chinese), the columns in the page's language, streamed in batches of the
    service's largest page, each after the last entry of the one before (keyset).
    The end is held at the moment the download starts, so entries posted meanwhile
    are not included."""
    current = page(request)
    context, status = _transactions(current)  # refusals and bad filters: the page says why
    if status != 200:
        return render(request, "transactions.html", status=status, session=current.session,
                      active="transactions", **context)
    lang, rt, actor = lang_of(request), current.rt, current.session.actor
    gettext = i18n.translations(lang).gettext
    now = rt.clock.now()

    def rows() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([gettext(header) for header, _ in CSV_COLUMNS])
        yield "\ufeff" + _drain(buffer)
        after = None
        while True:
            query = _statement_query(context["filters"], 0, CSV_BATCH, end_at=now,
                                     cursor={"after": after} if after else None)
            with rt.engine.connect() as conn:
                batch = funds.list_transactions(conn, actor, actor.uin, query)["items"]
            for entry in batch:
                writer.writerow([_cell(value(entry, gettext)) for _, value in CSV_COLUMNS])
            yield _drain(buffer)
            if len(batch) < CSV_BATCH:
                return
            after = batch[-1]["id"]

    name = f"transactions-{actor.uin}.csv"
    return StreamingResponse(
        (chunk.encode("utf-8") for chunk in rows()), media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"',
                 "cache-control": "no-store"})


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def _cell(value: str) -> str:
    """A text cell a spreadsheet would read as a formula gets a leading apostrophe
    (CSV injection); amounts like "-12.30" stay numbers."""
    if value and value[0] in "=+-@\t\r" and not _is_amount(value):
        return "'" + value
    return value


def _is_amount(value: str) -> bool:
    digits = value.lstrip("-")
    whole, _, cents = digits.partition(".")
    return whole.isascii() and whole.isdigit() and cents.isascii() and cents.isdigit()


# ---------------------------------------------------------------- 账单 (L3 bill lines)

BILL_FIELDS = {"month": "month", "product": "product", "resource_id": "resource",
               "resource": "resource", "limit": "page", "offset": "page", "after_id": "page",
               "before_id": "page"}


def _bills(current: Page) -> tuple[dict, int]:
    request, rt = current.request, current.rt
    lang, errors = lang_of(request), {}
    filters = {name: _text(request, name) for name in ("month", "product", "resource")}
    number, cursor = _page_number(request, errors), _cursor(request, errors)
    result, denied = None, None
    if not errors:
        try:
            plain_text(filters["product"], "product", MAX_FILTER)
            plain_text(filters["resource"], "resource", MAX_FILTER)
            with rt.engine.connect() as conn:
                result = settlement.list_bill_lines(
                    conn, current.session.actor, current.session.actor.uin,
                    {"month": filters["month"] or None, "product": filters["product"] or None,
                     "resource_id": filters["resource"] or None},
                    (number - 1) * PAGE_SIZE, PAGE_SIZE, after_id=cursor.get("after"),
                    before_id=cursor.get("before"))
        except PermissionDenied as exc:
            denied = message(exc, lang)
        except InvalidInput as exc:
            field, text = _field_error(exc, lang, BILL_FIELDS)
            errors[field] = text
    lines = [_bill_line(line, lang) for line in result["items"]] if result else []
    context = {"filters": filters, "errors": errors, "denied": denied, "result": result,
               "lines": lines, "page_number": number, "pages": _pages(result),
               "period_label": PERIOD_LABELS.get(result["statistic_period"]) if result else None,
               "kinds": KIND_LABELS, "page_query": _keyset_links(filters, number, result),
               "cursor": cursor}
    return context, 403 if denied else 400 if errors else 200


def _bill_line(line: dict, lang: str) -> dict:
    """What the page shows of a line: the API's values (present.bills), fen kept as fen
    for the ``yuan`` filter; BIL-6: no list price, discount or original cost off the
    list price; the stopped part's reason (ARR-3) in the page's language."""
    listed = line["price_kind"] == "list"
    return {**line,
            "period_start_text": time_text(line["period_start"]),
            "period_end_text": time_text(line["period_end"]),
            "deducted_at_text": time_text(line["deducted_at"]),
            "quantity_text": line_quantity(line["quantity"]),
            "package_text": line_quantity(line["package_quantity"]),
            "stopped_text": line_quantity(line["stopped_quantity"]),
            "unit_price_text": rated(line["unit_price"]) if listed else None,
            "list_amount_text": rated(line["list_amount"]) if listed else None,
            "discount_text": f"{line['discount_bp'] / 10_000:g}" if listed else None,
            "discounted_text": rated(line["discounted_amount"]),
            "stopped_reason": (NOT_CHARGED_STOPPED[0 if lang == "zh-CN" else 1]
                               if line["stopped_quantity"] else None)}


def _period_setting(current: Page) -> dict | None:
    """The statistic-period block (BIL-3): the account's period, its switch, the rules
    in the page's language; None for a user without the finance permission."""
    actor, rt = current.session.actor, current.rt
    try:
        with rt.engine.connect() as conn:
            shown = settlement.describe_statistic_period(conn, actor, actor.uin)
    except PermissionDenied:
        return None
    ack = shown["acknowledgement"]
    return {**shown, "rules": ack["text_zh"] if lang_of(current.request) == "zh-CN"
            else ack["text_en"], "version": ack["version"],
            "switched_at_text": time_text(shown["switched_at"]) if shown["switched_at"] else ""}


def _bills_page(request: Request, status: int | None = None, **extra) -> HTMLResponse:
    current = page(request)
    context, shown = _bills(current)
    return render(request, "bills.html", status=status or shown, session=current.session,
                  active="bills", period_setting=_period_setting(current),
                  switched=request.query_params.get("switched") == "1", **{**context, **extra})


@router.get("/bills")
def bills(request: Request) -> HTMLResponse:
    return _bills_page(request)


@router.post("/bills/statistic-period")
def switch_statistic_period(request: Request, acknowledged: Annotated[str, Form()] = "",
                            acknowledgement_version: Annotated[str, Form()] = "",
                            csrf_token: Annotated[str, Form()] = "",
                            x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Switch the account's bills to usage time (BIL-3): once, with the rules
    acknowledged (the checkbox), from this month; refusals shown next to the form."""
    current = page(request)
    if not current.session.csrf_ok(csrf_token or x_csrf_token):
        return csrf_refused(request)
    actor, rt = current.session.actor, current.rt
    try:
        with transaction(rt.engine) as conn:
            settlement.switch_statistic_period(
                conn, rt.clock, actor, actor.uin, period="usage_time",
                acknowledged=acknowledged == "on",
                acknowledgement_version=acknowledgement_version)
    except FeeCenterError as exc:
        return _bills_page(request, exc.http_status, period_error=message(exc, lang_of(request)),
                           period_error_field=exc.field)
    return RedirectResponse(f"{PREFIX}/bills?switched=1", 303)


@router.get("/bills/table")
def bills_table(request: Request) -> HTMLResponse:
    """The filter form and the lines alone, for htmx (200 as for transactions)."""
    current = page(request)
    context, _ = _bills(current)
    response = render(request, "_bills.html", session=current.session, **context)
    response.headers["HX-Push-Url"] = f"{PREFIX}/bills" + (
        f"?{_query_text(context['filters'], page=context['page_number'], **context['cursor'])}")
    return response
