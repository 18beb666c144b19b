"""How a prepaid order is shown (ORD-1..3): its 18-digit order number, money as
yuan strings, the unit price as the catalog shows it (8 decimals) with the
quantity in the item's unit, times in business time."""

from __future__ import annotations

from feecenter.catalog.rules import format_quantity
from feecenter.money import format_yuan
from feecenter.orders.rules import order_no
from feecenter.present.text import rated, time_text, with_yuan

ORDER_MONEY = ("list_amount", "amount", "paid_coupon", "paid_gift", "paid_cash", "paid_credit",
               "refunded_gift", "refunded_cash")
ORDER_TIMES = ("created_at", "expires_at", "paid_at", "closed_at", "service_start", "service_end")
HIDDEN = ("hold_id", "tags")  # internal: the payment's hold, the purchase's tags


def order_json(order: dict) -> dict:
    out = with_yuan({k: v for k, v in order.items() if k not in HIDDEN}, ORDER_MONEY)
    out["order_no"] = order_no(order["id"], order["created_at"])
    # as the catalog renders them: yuan with 8 decimals, the item's unit
    out["unit_price"] = rated(order["unit_price"])
    out["quantity"] = format_quantity(order["quantity"])
    extra = order.get("unified_extra")  # RNW-5: the extra days' part of the amount, if aligned
    out["unified_extra"] = None if extra is None else format_yuan(extra)
    for key in ORDER_TIMES:
        out[key] = time_text(order.get(key))
    return out
