"""How the catalog is shown (ORD-5): products, billing items, price-list versions
and quotes. Prices and rated amounts are yuan with 8 decimals, fen amounts yuan
with 2, quantities decimal strings in the item's unit, times in business time."""

from __future__ import annotations

from feecenter.catalog import rules
from feecenter.catalog.service import Product, Quote, time_text
from feecenter.money import format_rated, format_yuan
from feecenter.present.text import rated

ITEM_FIELDS = ("code", "name_zh", "name_en", "unit_zh", "unit_en", "spec", "postpaid_period")
PRICE_LIST_FIELDS = ("id", "product", "item", "region", "pay_mode", "load_id", "source")
QUOTE_RATED = ("unit_price", "list_amount", "agreed_price", "amount")


def product_json(product: Product) -> dict:
    data = product.to_dict()
    data["pay_modes"] = list(product.pay_modes)
    data["prepaid_months"] = list(product.prepaid_months)
    data["operable_balance"] = format_yuan(product.operable_balance)
    data["freeze_amount"] = format_yuan(product.freeze_amount)
    return data


def item_json(item: dict) -> dict:
    return {k: item[k] for k in ITEM_FIELDS}


def price_list_json(version: dict) -> dict:
    return {**{k: version[k] for k in PRICE_LIST_FIELDS},
            "starts_at": time_text(version["starts_at"]),
            "ends_at": time_text(version["ends_at"]),
            "tiers": [{"from": rules.format_quantity(t["lower"]),
                       "upto": None if t["upper"] is None else rules.format_quantity(t["upper"]),
                       "unit_price": format_rated(t["unit_price"])} for t in version["tiers"]]}


def quote_json(quote: Quote) -> dict:
    data = quote.to_dict()
    for key in QUOTE_RATED:
        data[key] = rated(data[key])
    data["quantity"] = rules.format_quantity(quote.quantity)
    data["at"] = time_text(quote.at.replace(tzinfo=None))
    data["tiers"] = [{"from": rules.format_quantity(t.lower),
                      "upto": None if t.upper is None else rules.format_quantity(t.upper),
                      "unit_price": format_rated(t.unit_price),
                      "quantity": rules.format_quantity(t.quantity)} for t in quote.tiers]
    return data
