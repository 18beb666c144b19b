"""The console's 欠费 (arrears) page: what the account owes now, its arrears cases
and their events (ARR-3: dunning, stop warning, stop, destruction warning,
destruction, restart, restored), what happens next to each postpaid resource and
when, and how the arrears are paid back today.

The page calls what REST calls (api/arrears.py, api/routes.py):
``funds.balance_view``, ``arrears.list_cases``, ``arrears.list_events`` and
``arrears.outlook``; they check the FINANCE permission (ACC-2).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from feecenter.arrears import service as arrears
from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, Page, lang_of, message, page, render
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.funds import service as funds
from feecenter.present.text import time_text

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MAX_EVENTS = 1000  # as REST
EVENT_LABELS = {
    "dunning": N_("Arrears began: dunning notice sent"),
    "stop_warning": N_("Warning: the resource will be stopped"),
    "stopped": N_("Resource stopped (isolation: not charged, data kept)"),
    "destroy_warning": N_("Warning: the resource will be destroyed"),
    "destroyed": N_("Resource destroyed (released with its data)"),
    "restarted": N_("Resource restarted"),
    "restored": N_("Arrears repaid: service restored"),
    # ARR-6: the operators' measures (arrears.measures)
    "measure_offline": N_("Operator's measure: all services taken offline"),
    "measure_reclaim": N_("Operator's measure: all resources reclaimed, data deleted"),
    "measure_damages": N_("Operator's measure: liquidated damages charged"),
    "measure_set_off": N_("Operator's measure: arrears set off against cash"),
}
CASE_STATES = {"open": N_("Open"), "closed": N_("Closed")}
NEXT_STEPS = {"stopped": N_("Protection period: keeps running and being charged; "
                            "stopped at %(time)s"),
              "destroyed": N_("Isolation period: stopped, data kept; destroyed at %(time)s")}


def _event(event: dict) -> dict:
    detail = event["detail"]
    return {**event, "at_text": time_text(event["at"]),
            "amount": detail.get("amount"), "stop_at": detail.get("stop_at"),
            "destroy_at": detail.get("destroy_at"), "started_at": detail.get("started_at")}


def _arrears(current: Page) -> dict:
    actor, rt = current.session.actor, current.rt
    with rt.engine.connect() as conn:
        owed = funds.balance_view(conn, rt.clock, actor, actor.uin).arrears
        cases = arrears.list_cases(conn, actor, actor.uin)
        events = arrears.list_events(conn, actor, actor.uin, limit=MAX_EVENTS)
        steps = arrears.outlook(conn, rt.clock, actor, actor.uin)
    shown_cases = [{**c, **{f"{k}_text": time_text(c[k])
                            for k in ("started_at", "opened_at", "ended_at")},
                    "events": [_event(e) for e in events if e["case_id"] == c["id"]]}
                   for c in reversed(cases)]  # the newest case first
    return {"owed": owed, "cases": shown_cases,
            "steps": [{**s, "at_text": time_text(s["at"])} for s in steps]}


@router.get("/arrears")
def arrears_page(request: Request) -> HTMLResponse:
    current = page(request)
    context: dict = {"owed": 0, "cases": [], "steps": []}
    status = 200
    try:
        context.update(_arrears(current))
    except FeeCenterError as exc:
        status = exc.http_status
        context.update(error=message(exc, lang_of(request)), field=exc.field,
                       denied=isinstance(exc, PermissionDenied))
    return render(request, "arrears.html", status=status, session=current.session,
                  active="arrears", event_labels=EVENT_LABELS, case_states=CASE_STATES,
                  next_steps=NEXT_STEPS, **context)
