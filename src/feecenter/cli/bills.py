"""``feecenter bills …``: operators read an account's postpaid L3 bill lines (BIL-1),
and read or switch its statistic period on the customer's request (BIL-3).

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly
one JSON object; exit 0 done, 1 refused, 2 bad usage. Amounts as the native
API renders them (``present.bills.bill_line_json``): fen as yuan ("12.30"), rated
amounts with 8 decimals.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from feecenter.cli.common import JsonOpt, emit as _emit, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime

bills_app = typer.Typer(help="Bills (BIL-1) / 账单", no_args_is_help=True)

MAX_LINES = 1000  # settlement.service.MAX_LIMIT, without loading settlement for --help (tested)


@bills_app.command("lines")
def lines(
    uin: Annotated[int, typer.Option("--uin", help="the customer account")],
    month: Annotated[Optional[str], typer.Option(
        help="YYYY-MM, on the account's statistic period (BIL-3)")] = None,
    product: Annotated[Optional[str], typer.Option(help="a product code, e.g. cvm")] = None,
    resource_id: Annotated[Optional[str], typer.Option("--resource-id")] = None,
    kind: Annotated[Optional[str], typer.Option(help="charge | adjustment")] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(min=1, max=MAX_LINES)] = 100,
    as_json: JsonOpt = False,
) -> None:
    """L3 bill lines of an account with their components (billing item, list price,
    discount, original and discounted cost, what gift, cash, credit paid, arrears)."""
    from feecenter.present.bills import bill_line_json
    from feecenter.settlement import service as settlement

    filters = {"month": month, "product": product, "resource_id": resource_id, "kind": kind}
    with _refusals(as_json):
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = settlement.list_bill_lines(conn, _actor(), uin, filters, offset, limit)
    payload = {"uin": uin, "month": month, "statistic_period": page["statistic_period"],
               "total": page["total"], "offset": offset, "limit": limit,
               "items": [bill_line_json(line) for line in page["items"]]}
    _emit(as_json, payload, _render_lines)


def _render_lines(data: dict) -> None:
    title = f"L3 账单明细 / bill lines — {data['uin']}" + (
        f" {data['month']} ({data['statistic_period']})" if data["month"] else "")
    table = Table(title=title)
    for column in ("period", "resource", "item", "qty", "package", "stopped", "list", "disc.",
                   "discounted", "deducted", "gift", "cash", "arrears", "kind"):
        table.add_column(column)
    for line in data["items"]:
        discount = line["discount_bp"]  # None with list_amount: not at the list price (BIL-6)
        table.add_row(
            line["period_key"], line["resource_id"], line["billing_item"], line["quantity"],
            line["package_quantity"], line["stopped_quantity"], line["list_amount"] or "-",
            "-" if discount is None else f"{discount / 10_000:g}",
            line["discounted_amount"], line["deducted"], line["gift_paid"], line["cash_paid"],
            line["arrears"], line["kind"])
    out.print(table)
    shown = len(data["items"])
    out.print(f"{shown} of {data['total']} lines (offset {data['offset']})", markup=False)
    for reason in sorted({line["not_charged_reason"] for line in data["items"]} - {None}):
        out.print(f"stopped = {reason}", markup=False)  # ARR-3: the stopped part is not charged


@bills_app.command("statistic-period")
def statistic_period(
    uin: Annotated[int, typer.Option("--uin", help="the customer account")],
    switch: Annotated[bool, flag("--switch", help=(
        "switch to usage time on the customer's request (one way, never undone)"))] = False,
    acknowledge: Annotated[bool, flag("--acknowledge", help=(
        "the customer acknowledged the rules shown (required with --switch)"))] = False,
    request_note: Annotated[Optional[str], typer.Option(
        "--request-note", help="the customer's request, e.g. its ticket")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The account's bill statistic period (BIL-3) and the rules a switch acknowledges;
    with --switch --acknowledge --request-note, switch it to usage time from this
    business month (audited)."""
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid
    from feecenter.settlement import service as settlement

    with _refusals(as_json):
        rt = _runtime()
        if switch:
            if not acknowledge:
                raise invalid("acknowledged", "切换须确认客户已阅读并同意切换规则（--acknowledge）",
                              "a switch needs the customer's acknowledgement of the rules "
                              "(--acknowledge)")
            with transaction(rt.engine) as conn:
                settlement.switch_statistic_period_for(
                    conn, rt.clock, _actor(), uin, period="usage_time",
                    request_note=request_note or "")
        with rt.engine.connect() as conn:
            payload = settlement.describe_statistic_period(conn, _actor(), uin)
    _emit(as_json, payload, _render_period)


def _render_period(data: dict) -> None:
    if data["switched_in"]:
        out.print(f"{data['uin']}: 按使用时间 / usage time since {data['switched_in']} "
                  f"(switched {data['switched_at']:%Y-%m-%d %H:%M} UTC by {data['requested_by']})",
                  markup=False)
    else:
        out.print(f"{data['uin']}: 按扣费时间 / deduction time (default)", markup=False)
    ack = data["acknowledgement"]
    out.print(f"rules {ack['version']}:\n{ack['text_zh']}\n{ack['text_en']}", markup=False)
