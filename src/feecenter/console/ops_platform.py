"""The operator console's platform pages: arrears cases across accounts, job runs
(list, failed, retry), reconciliation on demand, the audit log with filters and
the catalog read-only (products, price lists and their history).

Each calls what the CLI and the REST operator endpoints call:
``arrears.list_all_cases``, ``jobs.runner.list_runs`` and ``retry_failed``,
``ledger.reconcile``, ``audit.list_audit``, ``catalog.list_products``,
``product_detail``, ``price_lists_of`` and ``list_loads``.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Header, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from feecenter.accounts.permissions import require_operator
from feecenter.arrears import service as arrears
from feecenter.audit.service import list_actions, list_audit
from feecenter.catalog import service as catalog
from feecenter.console.ops import OPS, ops_page, ops_render, posted, refused
from feecenter.console.web import csrf_refused
from feecenter.errors import FeeCenterError, invalid
from feecenter.inputs import digits_id, page_number, plain_text
from feecenter.jobs import runner as jobs
from feecenter.ledger.reconcile import reconcile as reconcile_ledger
from feecenter.present.catalog import item_json, price_list_json, product_json
from feecenter.present.text import time_text

router = APIRouter(prefix=OPS, include_in_schema=False)
PAGE_SIZE = 50


def _optional_uin(text: str) -> int | None:
    return digits_id(text, "uin") if text.strip() else None



# ---------------------------------------------------------------- arrears cases (ARR-3)

@router.get("/arrears")
def arrears_cases(request: Request, state: str = "open") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "arrears", "state": state, "cases": []}
    try:
        with current.rt.engine.connect() as conn:
            cases = arrears.list_all_cases(conn, current.actor, state=state or None)
    except FeeCenterError as exc:
        return refused(request, current, "ops/arrears.html", exc, **context)
    context["cases"] = [{**c, **{k: time_text(c[k]) for k in ("started_at", "opened_at",
                                                               "ended_at")}} for c in cases]
    return ops_render(request, "ops/arrears.html", current, **context)


# ---------------------------------------------------------------- jobs

@router.get("/jobs")
def job_runs(request: Request, state: str = "", job: str = "", page: str = "1") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "jobs", "state": state, "job": job, "states": jobs.STATES,
               "runs": [], "total": 0, "page": 1, "pages": 1,
               "retried": request.query_params.get("retried")}
    try:
        number = page_number(page)
        job_name = plain_text(job, "job", 100).strip() or None
        found = jobs.list_runs(current.rt.engine, state=state or None, job=job_name,
                               offset=(number - 1) * PAGE_SIZE, limit=PAGE_SIZE)
    except FeeCenterError as exc:
        return refused(request, current, "ops/jobs.html", exc, **context)
    context.update(runs=found["items"], total=found["total"], page=number,
                   pages=max(1, -(-found["total"] // PAGE_SIZE)))
    return ops_render(request, "ops/jobs.html", current, **context)


@router.post("/jobs/retry")
def retry_job(request: Request, job: Annotated[str, Form()] = "",
              period: Annotated[str, Form()] = "", csrf_token: Annotated[str, Form()] = "",
              x_csrf_token: Annotated[str | None, Header()] = None) -> Response:
    """Give the failed run of ``job`` and ``period`` (both from the list) fresh attempts."""
    current = ops_page(request)
    if not posted(current, csrf_token, x_csrf_token):
        return csrf_refused(request)
    try:
        job = plain_text(job, "job", 100).strip()
        period = plain_text(period, "period", 100).strip()
        if not job or not period:
            raise invalid("job", "请从列表中选择要重试的任务", "choose the run to retry from the list")
        retried = jobs.retry_failed(current.rt.engine, current.rt.clock, job=job,
                                    period_key=period, actor=current.actor)
    except FeeCenterError as exc:
        return refused(request, current, "ops/jobs.html", exc, active="jobs", state="failed",
                       job="", states=jobs.STATES, runs=[], total=0, page=1, pages=1,
                       retried=None)
    return RedirectResponse(f"{OPS}/jobs?{urlencode({'state': 'failed', 'retried': retried})}",
                            303)


# ---------------------------------------------------------------- reconciliation (BAL-6)

@router.get("/reconcile")
def reconcile(request: Request, uin: str = "", run: str = "") -> HTMLResponse:
    """The form; with ``run``, every balance recomputed from its postings (reads only)."""
    current = ops_page(request)
    context = {"active": "reconcile", "uin": uin, "result": None}
    if not run:
        return ops_render(request, "ops/reconcile.html", current, **context)
    try:
        scope = _optional_uin(uin)
        require_operator(current.actor)  # as GET /api/v1/ops/reconcile
        with current.rt.engine.connect() as conn:
            differences = reconcile_ledger(conn, scope)
    except FeeCenterError as exc:
        return refused(request, current, "ops/reconcile.html", exc, **context)
    context["result"] = {"clean": not differences, "differences": differences}
    return ops_render(request, "ops/reconcile.html", current, **context)


# ---------------------------------------------------------------- audit log

@router.get("/audit")
def audit_log(request: Request, uin: str = "", action: str = "", by: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "audit", "uin": uin, "action": action, "by": by, "rows": [],
               "actions": [], "limit": PAGE_SIZE * 4}
    try:
        with current.rt.engine.connect() as conn:
            context["actions"] = list_actions(conn, current.actor)
            rows = list_audit(conn, current.actor, _optional_uin(uin), context["limit"],
                              action=plain_text(action, "action", 60).strip() or None,
                              by=plain_text(by, "by", 120).strip() or None)
    except FeeCenterError as exc:
        return refused(request, current, "ops/audit.html", exc, **context)
    context["rows"] = [{**r, "created_at": time_text(r["created_at"])} for r in rows]
    return ops_render(request, "ops/audit.html", current, **context)


# ---------------------------------------------------------------- catalog (read-only)

@router.get("/catalog")
def catalog_page(request: Request) -> HTMLResponse:
    current = ops_page(request)
    with current.rt.engine.connect() as conn:
        products = [product_json(p) for p in catalog.list_products(conn)]
        loads = [{**r, "loaded_at": time_text(r["loaded_at"])}
                 for r in catalog.list_loads(conn, limit=20)]
    return ops_render(request, "ops/catalog.html", current, active="catalog",
                      products=products, loads=loads)


@router.get("/catalog/{product}")
def product_page(request: Request, product: str, history: str = "") -> HTMLResponse:
    current = ops_page(request)
    context = {"active": "catalog", "code": product, "history": bool(history), "product": None}
    try:
        with current.rt.engine.connect() as conn:
            detail = catalog.product_detail(conn, plain_text(product, "product", 40),
                                            current.rt.clock.now())
            versions = (catalog.price_lists_of(conn, product) if history else detail["prices"])
    except FeeCenterError as exc:
        return refused(request, current, "ops/product.html", exc, **context)
    context.update(product=product_json(detail["product"]),
                   items=[item_json(i) for i in detail["items"]],
                   prices=[price_list_json(v) for v in versions])
    return ops_render(request, "ops/product.html", current, **context)

