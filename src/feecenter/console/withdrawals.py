"""The console's 提现 (withdrawal) page: the withdrawable amount (可提现金额) with every
part and the raw value even when negative (WDR-1, WDR-7). Withdrawing itself comes
later (issue #26); the page says so and offers no button.

The page calls what REST calls (api/withdrawals.py): ``withdrawals.service.withdrawable``,
which checks the FINANCE permission (ACC-2).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from feecenter.console.i18n import N_
from feecenter.console.web import PREFIX, lang_of, message, page, render
from feecenter.errors import FeeCenterError, PermissionDenied
from feecenter.withdrawals import service

router = APIRouter(prefix=PREFIX, include_in_schema=False)
# WDR-1's parts in the order the formula takes them, with the sign each is taken with
PARTS = (("cash", "", N_("Cash")),
         ("invoice_debt", "−", N_("Invoice debt")),
         ("unrepaid_advances", "−", N_("Unrepaid advances")),
         ("arrears", "−", N_("Arrears")),
         ("frozen_cash", "−", N_("Frozen money not covered by gift and income")),
         ("transferred_in_unspent", "−", N_("Transferred in by an agent or group admin")))
BRACKET = (("frozen", N_("Frozen")), ("gift", N_("Gift")), ("income", N_("Income transfers")))


@router.get("/withdrawals")
def withdrawals_page(request: Request) -> HTMLResponse:
    current = page(request)
    actor, rt = current.session.actor, current.rt
    context: dict = {"view": None}
    status = 200
    try:
        with rt.engine.connect() as conn:
            context["view"] = service.withdrawable(conn, rt.clock, actor, actor.uin)
    except FeeCenterError as exc:
        status = exc.http_status
        context.update(error=message(exc, lang_of(request)), field=exc.field,
                       denied=isinstance(exc, PermissionDenied))
    return render(request, "withdrawals.html", status=status, session=current.session,
                  active="withdrawals", parts=PARTS, bracket=BRACKET, **context)
