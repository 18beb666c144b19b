"""The console's 环比分析 page (month over month, BIL-8), ``/console/bills/compare``:
two months picked (default: this business month against the one before), both
totals, the difference, and each category explaining it with its amount and
its resources (the largest first). ``bills.month_over_month.explain`` checks
FINANCE and the months; a refusal is shown on the page with the field it names.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from feecenter.bills import month_over_month
from feecenter.console.charts import business_month
from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, page, page_error, render
from feecenter.errors import FeeCenterError

router = APIRouter(prefix=PREFIX, include_in_schema=False)

# what each category is called and what it means (English ids, translated when shown)
CATEGORY_LABELS = {
    "new_purchases": (N_("New purchases"),
                      N_("Prepaid purchases, and postpaid resources without cost the month "
                         "before")),
    "renewals": (N_("Renewals"),
                 N_("Prepaid renewals without the unified expiry days; a resource renewed "
                    "in both months: the change in what was renewed")),
    "unified_expiry": (N_("Unified expiry"),
                       N_("The extra days renewals paid to end on the unified expiry day")),
    "expired_discounts": (N_("Expired discounts"),
                          N_("The same usage or renewal with a smaller discount or none")),
    "price_changes": (N_("Price changes"),
                      N_("The same usage or renewal at a changed unit price")),
    "usage_growth": (N_("Usage growth"),
                     N_("More or less postpaid usage at the earlier price; resources gone "
                        "count negative")),
    "upgrades": (N_("Upgrades"), N_("Prepaid upgrades")),
    "refunds_downgrades": (N_("Refunds and downgrades"),
                           N_("Prepaid refunds and downgrades (negative)")),
    "precision_difference": (N_("Precision difference"),
                             N_("Rounding of the postpaid amounts to the fen")),
    "other": (N_("Other"), N_("Differences that cannot be attributed to a cause")),
}


@router.get("/bills/compare")
def compare(request: Request) -> HTMLResponse:
    current = page(request)
    rt, actor = current.rt, current.session.actor
    query = request.query_params
    month = query.get("month", "").strip() or business_month(rt.clock.now())
    previous = query.get("previous", "").strip() or None
    context = {"month": month, "previous": previous or "", "labels": CATEGORY_LABELS}
    try:
        with rt.engine.connect() as conn:
            out = month_over_month.explain(conn, actor, actor.uin, month, previous)
    except FeeCenterError as exc:
        found = page_error(request, exc)
        return render(request, "bill_compare.html", status=found.pop("status"),
                      session=current.session, active="bills", result=None, **found, **context)
    return render(request, "bill_compare.html", session=current.session, active="bills",
                  result=out, error=None, field=None, denied=False,
                  **{**context, "previous": out["previous"]})
