"""``feecenter orders …``: operators inspect prepaid orders, expire unpaid ones and
record manual deliveries (ORD-1..3, FRZ-3).

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly
one JSON object (an order has the shape of the REST API's, ``present.orders.order_json``:
money as yuan strings, times in Asia/Shanghai); exit 0 done, 1 refused (the
error names the field), 2 bad usage.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from feecenter.cli.common import JsonOpt, emit as _emit, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime

orders_app = typer.Typer(help="Prepaid orders (ORD) / 订单", no_args_is_help=True)

UinOpt = Annotated[int, typer.Option(help="the customer account (UIN)")]
OrderOpt = Annotated[str, typer.Option("--order", help="order number (18 digits) or order id")]

STATE_LABELS = {"unpaid": "未支付 unpaid", "paid": "已支付 paid", "delivered": "已发货 delivered",
                "delivery_failed": "发货失败 delivery failed", "refunded": "已退款 refunded",
                "expired": "已过期 expired", "voided": "已作废 voided"}
KIND_LABELS = {"new": "新购 new", "renew": "续费 renew", "upgrade": "升配 upgrade",
               "downgrade": "降配 downgrade", "refund": "退订 refund"}


# ---------------------------------------------------------------- commands

@orders_app.command("list")
def list_orders(
    uin: UinOpt,
    state: Annotated[Optional[list[str]], typer.Option(
        help="unpaid | paid | delivered | delivery_failed | refunded | expired | voided "
             "(repeatable)")] = None,
    resource: Annotated[Optional[str], typer.Option(help="one resource's orders")] = None,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    limit: Annotated[int, typer.Option(help="1-1000")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """An account's orders, newest first."""
    from feecenter.orders import service as orders
    from feecenter.present.orders import order_json

    with _refusals(as_json):
        query = orders.OrderQuery(states=tuple(state or ()), resource_id=resource,
                                  offset=offset, limit=limit)
        rt = _runtime()
        with rt.engine.connect() as conn:
            page = orders.list_orders(conn, _actor(), uin, query)
    payload = {"uin": uin, "total": page["total"],
               "items": [order_json(o) for o in page["items"]]}
    _emit(as_json, payload, _render_list)


@orders_app.command("show")
def show(uin: UinOpt, order: OrderOpt, as_json: JsonOpt = False) -> None:
    """One order: kind, state, amounts paid by each source, service period, resource."""
    from feecenter.orders.rules import parse_order_ref
    from feecenter.orders import service as orders
    from feecenter.present.orders import order_json

    with _refusals(as_json):
        order_id = parse_order_ref(order, "order")
        rt = _runtime()
        with rt.engine.connect() as conn:
            row = orders.get_order(conn, _actor(), uin, order_id)
    _emit(as_json, order_json(row), _render_order)


@orders_app.command("expire")
def expire(as_json: JsonOpt = False) -> None:
    """Expire unpaid orders past their term (ORD-2: 15 days, promotions their own)."""
    from feecenter.db.engine import transaction
    from feecenter.orders import service as orders

    with _refusals(as_json):
        rt = _runtime()
        with transaction(rt.engine) as conn:
            count = orders.expire_unpaid(conn, rt.clock)
    _emit(as_json, {"expired": count},
          lambda data: out.print(f"已过期 / expired: {data['expired']}", markup=False))


@orders_app.command("deliver")
def deliver(
    order: OrderOpt,
    uin: UinOpt,
    fail: Annotated[bool, flag("--fail", help="delivery failed: release the freeze")]
    = False,
    reason: Annotated[Optional[str], typer.Option(help="why delivery failed (with --fail)")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Record a manual delivery (FRZ-3): the freeze is posted, or with --fail released."""
    from feecenter.orders.rules import parse_order_ref
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid
    from feecenter.orders import service as orders
    from feecenter.present.orders import order_json

    with _refusals(as_json):
        if reason is not None and not fail:
            raise invalid("reason", "--reason 只能与 --fail 一起使用",
                          "--reason goes with --fail")
        order_id = parse_order_ref(order, "order")
        rt = _runtime()
        actor = _actor()
        with transaction(rt.engine) as conn:
            orders.get_order(conn, actor, uin, order_id)  # the order is this account's
            if fail:
                orders.fail_delivery(conn, rt.clock, actor, order_id, reason or "")
            else:
                orders.deliver(conn, rt.clock, actor, order_id)
            row = orders.get_order(conn, actor, uin, order_id)
    _emit(as_json, order_json(row), _render_order)


# ---------------------------------------------------------------- rendering

def _render_list(data: dict) -> None:
    table = Table(title=f"订单 / Orders — UIN {data['uin']} ({data['total']})")
    for column in ("order_no", "kind", "state"):
        table.add_column(column, no_wrap=True)
    table.add_column("product spec")
    table.add_column("mo")
    table.add_column("yuan", justify="right", no_wrap=True)
    table.add_column("created_at")
    for o in data["items"]:
        table.add_row(o["order_no"], o["kind"], o["state"],
                      escape(f"{o['product_code']} {o['spec_item']}"), str(o["months"] or ""),
                      o["amount"], o["created_at"] or "")
    out.print(table)


def _render_order(o: dict) -> None:
    table = Table(title=f"订单 / Order {o['order_no']}", show_header=False)
    table.add_column("")
    table.add_column("")
    rows = [
        ("kind", KIND_LABELS.get(o["kind"], o["kind"])),
        ("state", STATE_LABELS.get(o["state"], o["state"])),
        ("uin", str(o["uin"])), ("product", o["product_code"]), ("region", o["region"]),
        ("spec", o["spec_item"]), ("months", str(o["months"] or "")),
        ("resource", o["resource_id"]), ("project", o["project_name"]),
        ("list amount", o["list_amount"]), ("amount", o["amount"]),
        ("paid gift / cash / credit / coupon",
         f"{o['paid_gift']} / {o['paid_cash']} / {o['paid_credit']} / {o['paid_coupon']}"),
        ("refunded gift / cash", f"{o['refunded_gift']} / {o['refunded_cash']}"),
        ("created", o["created_at"]), ("expires", o["expires_at"]), ("paid", o["paid_at"]),
        ("closed", o["closed_at"]),
        ("service", f"{o['service_start'] or ''} → {o['service_end'] or ''}"),
        ("failure reason", o["failure_reason"]),
    ]
    for label, value in rows:
        if value not in (None, ""):
            table.add_row(label, escape(str(value)))
    out.print(table)
