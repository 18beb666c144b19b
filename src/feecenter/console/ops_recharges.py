"""The operator console's online-recharge pages: a recharge search across accounts
(by UIN, state or the provider's transaction id) and the provider's raw
notification log (RCH-5: every notification received, refused ones included).

Each calls what REST calls: ``recharges.search_recharges`` and
``recharges.list_notifications`` (GET /api/v1/ops/recharges/notifications);
both check that the caller is an operator.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from feecenter.console.ops import OPS, ops_page, ops_render, refused
from feecenter.console.recharge import CHANNEL_LABELS, STATE_LABELS
from feecenter.errors import FeeCenterError
from feecenter.inputs import digits_id, plain_text
from feecenter.present.recharges import recharge_json
from feecenter.present.text import time_text
from feecenter.recharges import rules
from feecenter.recharges import service as recharges

router = APIRouter(prefix=OPS, include_in_schema=False)
LIMIT = 100


@router.get("/recharges")
def recharge_search(request: Request, uin: str = "", state: str = "",
                    provider_txn_id: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "recharges", "uin": uin, "state": state,
               "provider_txn_id": provider_txn_id, "rows": [], "states": rules.STATES,
               "state_labels": STATE_LABELS, "channel_labels": CHANNEL_LABELS, "limit": LIMIT}
    try:
        with current.rt.engine.connect() as conn:
            rows = recharges.search_recharges(
                conn, current.actor, uin=digits_id(uin, "uin") if uin.strip() else None,
                state=state.strip() or None,
                provider_txn_id=plain_text(provider_txn_id, "provider_txn_id", 64).strip() or None,
                limit=LIMIT)
    except FeeCenterError as exc:
        return refused(request, current, "ops/recharges.html", exc, **context)
    context["rows"] = [recharge_json(r) for r in rows]
    return ops_render(request, "ops/recharges.html", current, **context)


@router.get("/recharges/notifications")
def notification_log(request: Request, recharge_id: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "recharges", "recharge_id": recharge_id, "rows": [], "limit": LIMIT}
    try:
        number = digits_id(recharge_id, "recharge_id") if recharge_id.strip() else None
        with current.rt.engine.connect() as conn:
            rows = recharges.list_notifications(conn, current.actor, recharge_id=number,
                                                limit=LIMIT)
    except FeeCenterError as exc:
        return refused(request, current, "ops/recharge_notifications.html", exc, **context)
    context["rows"] = [{**r, "received_at": time_text(r["received_at"])} for r in rows]
    return ops_render(request, "ops/recharge_notifications.html", current, **context)
