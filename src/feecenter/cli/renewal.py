"""``feecenter renewal …``: operators manage an account's renewals (RNW-5, RNW-7):
the renewal-management list, the auto-renew flag and term of resources, the
account's default flag and unified expiry day, and the batch renewal (orders
with their merged payment preview, or paid at once; ``--preview`` shows the
unified-expiry preview and writes nothing).

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly
one JSON object (the REST API's shapes: money as yuan strings, times in
Asia/Shanghai); exit 0 done, 1 refused (the error names the field), 2 bad usage.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from feecenter.cli.common import JsonOpt, emit as _emit, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime

renewal_app = typer.Typer(help="Renewal management (RNW) / 续费管理", no_args_is_help=True)

UinOpt = Annotated[int, typer.Option(help="the customer account (UIN)")]
ResourcesOpt = Annotated[list[str], typer.Option(
    "--resource", help="a resource id (repeatable)")]
MonthsOpt = Annotated[Optional[int], typer.Option(help="the term in months")]


@renewal_app.command("list")
def list_renewals(
    uin: UinOpt,
    expiring_within_days: Annotated[Optional[int], typer.Option(
        help="expiring within N days")] = None,
    auto_renew: Annotated[Optional[bool], typer.Option(
        "--auto-renew/--no-auto-renew", help="only those with / without auto-renewal",
        metavar="")] = None,
    project_id: Annotated[Optional[int], typer.Option(help="one project's")] = None,
    product: Annotated[Optional[str], typer.Option(help="one product's (code)")] = None,
    packages: Annotated[bool, flag("--packages", help="the resource-package list")] = False,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(help="1-200")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """The renewable prepaid resources (or resource packages), by expiry (RNW-7)."""
    from feecenter.present.renewal import renewable_json
    from feecenter.renewal import management

    with _refusals(as_json):
        query = management.RenewalQuery(
            expiring_within_days=expiring_within_days, auto_renew=auto_renew,
            project_id=project_id, product_code=product, packages=packages, offset=offset,
            limit=limit)
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = management.list_renewables(conn, rt.clock, _actor(), uin, query)
    payload = {"uin": uin, "total": page["total"],
               "items": [renewable_json(i) for i in page["items"]]}
    _emit(as_json, payload, _render_list)


@renewal_app.command("set")
def set_auto_renew(
    uin: UinOpt,
    resource: ResourcesOpt,
    auto_renew: Annotated[Optional[bool], typer.Option(
        "--on/--off", help="turn auto-renewal on or off", metavar="")] = None,
    months: MonthsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Set the auto-renew flag and/or the term of resources (all or nothing)."""
    from feecenter.db.engine import transaction
    from feecenter.renewal import settings

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            count = settings.set_auto_renew(conn, rt.clock, _actor(), uin, list(resource),
                                            auto_renew=auto_renew, months=months)
    _emit(as_json, {"uin": uin, "updated": count, "resource_ids": list(resource),
                    "auto_renew": auto_renew, "months": months})


@renewal_app.command("default")
def account_default(
    uin: UinOpt,
    auto_renew: Annotated[Optional[bool], typer.Option(
        "--on/--off", help="the flag of resources without their own; neither: show",
        metavar="")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Show or set the account's default auto-renew flag."""
    from feecenter.db.engine import transaction
    from feecenter.renewal import settings

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            if auto_renew is not None:
                settings.set_account_default(conn, rt.clock, _actor(), uin, auto_renew)
            found = settings.get_account_settings(conn, _actor(), uin)
    _emit(as_json, {"uin": uin, **found})


@renewal_app.command("unified-day")
def unified_day(
    uin: UinOpt,
    day: Annotated[Optional[int], typer.Option(help="the day of the month, 1-28")] = None,
    off: Annotated[bool, flag("--off", help="no unified expiry day")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show or set the unified expiry day (RNW-5); it applies from the next renewal."""
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid
    from feecenter.renewal import settings

    with _refusals(as_json):
        if off and day is not None:
            raise invalid("day", "--day 与 --off 只能选一个", "give --day or --off, not both")
        rt = _runtime()
        with transaction(rt.engine) as conn:
            if off or day is not None:
                settings.set_unified_day(conn, rt.clock, _actor(), uin, None if off else day)
            found = settings.get_account_settings(conn, _actor(), uin)
    _emit(as_json, {"uin": uin, **found})


@renewal_app.command("renew")
def renew(
    uin: UinOpt,
    resource: ResourcesOpt,
    months: MonthsOpt = None,
    preview: Annotated[bool, flag("--preview", help="only show the new expiries and amounts")]
    = False,
    pay: Annotated[bool, flag("--pay", help="pay the orders at once (needs the key)")] = False,
    idempotency_key: Annotated[Optional[str], typer.Option(
        help="a repeat returns the same orders (and payment)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Renew resources (RNW-7's batch): the orders with their merged payment preview,
    or paid at once with --pay; --preview: the unified-expiry preview (RNW-5) only."""
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid
    from feecenter.money import format_yuan
    from feecenter.orders import service as orders
    from feecenter.present.orders import order_json
    from feecenter.present.renewal import renewal_preview_json
    from feecenter.renewal import management, unified

    with _refusals(as_json):
        if pay and preview:
            raise invalid("pay", "--pay 与 --preview 只能选一个", "give --pay or --preview, not both")
        if pay and not idempotency_key:
            raise invalid("idempotency_key", "--pay 必须提供 --idempotency-key",
                          "--pay needs --idempotency-key")
        rt = _runtime()
        actor = _actor()
        if preview:
            with rt.engine.connect() as conn:
                shown = unified.preview_renewals(conn, rt.clock, actor, uin, list(resource),
                                                 months)
            _emit(as_json, {"uin": uin, **renewal_preview_json(shown)}, _render_preview)
            return
        with transaction(rt.engine) as conn:
            ids = management.renew_batch(conn, rt.clock, actor, uin, list(resource), months,
                                         key=idempotency_key)
            if pay:
                paid = orders.pay(conn, rt.clock, actor, uin, ids, key=f"renewal:{idempotency_key}")
                money = {k: format_yuan(paid[k]) for k in ("amount", "coupon", "gift", "cash",
                                                              "credit")}
                extra = {"payment": {**paid, **money}}
            else:
                plan = orders.preview_payment(conn, rt.clock, actor, uin, ids)
                extra = {"payment_preview": {k: format_yuan(v)
                                             for k, v in plan["totals"].items()}}
            rows = [order_json(o) for o in orders.get_orders(conn, actor, uin, ids)]
    _emit(as_json, {"uin": uin, "orders": rows, **extra}, _render_orders)


# ---------------------------------------------------------------- rendering

def _render_list(data: dict) -> None:
    table = Table(title=f"续费管理 / Renewals — UIN {data['uin']} ({data['total']})")
    table.add_column("resource", no_wrap=True)
    table.add_column("product")
    table.add_column("project")
    table.add_column("expires", no_wrap=True)
    table.add_column("days", justify="right")
    table.add_column("auto")
    table.add_column("mo", justify="right")
    for i in data["items"]:
        table.add_row(escape(i["resource_id"]),
                      escape(f"{i['product_code']} {i['spec_item']} {i['region']}"),
                      escape(i["project_name"]), i["period_end"][:16], str(i["days_left"]),
                      "on" if i["auto_renew"] else "off", str(i["months"]))
    out.print(table)


def _render_preview(data: dict) -> None:
    """Dates only: alignment keeps the time of day (docs/renewal.md)."""
    day = data["unified_day"]
    table = Table(title=f"续费预览 / Renewal preview — UIN {data['uin']}, "
                        f"统一到期日 / unified day: {day or '-'}")
    table.add_column("resource", no_wrap=True)
    for column in ("expires", "new expiry"):
        table.add_column(column, no_wrap=True)
    table.add_column("+days", justify="right")
    for column in ("term", "extra", "amount"):
        table.add_column(column, justify="right", no_wrap=True)
    for i in data["items"]:
        table.add_row(escape(i["resource_id"]), i["current_expiry"][:10], i["new_expiry"][:10],
                      str(i["extra_days"]), i["term_amount"], i["unified_extra"], i["amount"])
    out.print(table)
    out.print(f"合计 / total: {data['total']}", markup=False)


def _render_orders(data: dict) -> None:
    table = Table(title=f"续费订单 / Renewal orders — UIN {data['uin']}")
    for column in ("order_no", "resource", "state", "service end"):
        table.add_column(column, no_wrap=True)
    table.add_column("yuan", justify="right", no_wrap=True)
    for o in data["orders"]:
        table.add_row(o["order_no"], escape(o["resource_id"]), o["state"],
                      o["service_end"] or "", o["amount"])
    out.print(table)
    if "payment" in data:
        out.print(f"已支付 / paid: {data['payment']['amount']}", markup=False)
    else:
        plan = data["payment_preview"]
        out.print(f"待支付 / to pay: {plan['amount']} (coupon {plan['coupon']}, gift "
                  f"{plan['gift']}, cash {plan['cash']}, credit {plan['credit']})", markup=False)
