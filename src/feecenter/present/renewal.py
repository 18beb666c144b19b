"""How renewal management is shown (RNW-5, RNW-7): the renewable resources and
the unified-expiry preview, money as yuan strings, times in business time
(Asia/Shanghai)."""

from __future__ import annotations

from feecenter.present.text import time_text, with_yuan

PREVIEW_MONEY = ("term_amount", "unified_extra", "amount")
PREVIEW_TIMES = ("current_expiry", "term_end", "new_expiry")


def renewable_json(item: dict) -> dict:
    return {**item, "period_start": time_text(item["period_start"]),
            "period_end": time_text(item["period_end"])}


def renewal_preview_json(preview: dict) -> dict:
    items = [{**with_yuan(i, PREVIEW_MONEY), **{k: time_text(i[k]) for k in PREVIEW_TIMES}}
             for i in preview["items"]]
    return {"unified_day": preview["unified_day"], "items": items,
            "total": with_yuan(preview, ("total",))["total"]}
