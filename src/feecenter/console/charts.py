"""The overview's charts (概览): month-to-date cost by day and by product.

``cost_charts`` turns ``settlement.month_cost`` (the account's L3 lines on its
statistic period, BIL-3) into what ``static/charts.js`` draws with the vendored
ECharts: labels and fen amounts, passed as JSON in a ``data-chart`` attribute
(the CSP allows no inline script). Amounts stay integer fen here; the script
shows them as yuan.
"""

from __future__ import annotations

from feecenter.clock import BUSINESS_TZ
from feecenter.console.i18n import N_

PERIOD_LABELS = {"deduction_time": N_("by deduction time"), "usage_time": N_("by usage time")}


def cost_charts(cost: dict, lang: str, gettext) -> dict:
    """The two charts' data and the page's figures for ``cost`` in ``lang``."""
    by_day, by_product = cost["by_day"], cost["by_product"]
    name = "name_zh" if lang == "zh-CN" else "name_en"
    return {
        "month": cost["month"],
        "period": cost["statistic_period"],
        "period_label": PERIOD_LABELS[cost["statistic_period"]],
        "total": sum(day["deducted"] for day in by_day),
        "products": [{"code": p["product"], "name": p[name], "deducted": p["deducted"]}
                     for p in by_product],
        "by_day": {"kind": "bar", "series": gettext("Cost"),
                   "labels": [day["day"][8:] for day in by_day],
                   "values": [day["deducted"] for day in by_day]},
        "by_product": {"kind": "pie", "series": gettext("Cost"),
                       "labels": [p[name] for p in by_product],
                       "values": [p["deducted"] for p in by_product]},
    }


def business_month(now) -> str:
    """YYYY-MM of ``now`` in business time (the month the charts show, to date)."""
    return now.astimezone(BUSINESS_TZ).strftime("%Y-%m")
