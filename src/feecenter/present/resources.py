"""How a resource (prepaid or postpaid) is shown: its row, times in business time."""

from __future__ import annotations

from feecenter.present.text import time_text

RESOURCE_TIMES = ("period_start", "period_end", "created_at", "released_at")


def resource_json(row: dict) -> dict:
    out = dict(row)
    for key in RESOURCE_TIMES:
        out[key] = time_text(row.get(key))
    return out
