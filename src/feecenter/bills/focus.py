"""The FinOps FOCUS 1.3 cost-and-usage dataset of the L3 bill lines (BIL-7): the column
list (``FOCUS_COLUMNS``), what a month's export needs from the database besides the
lines (``focus_context``: the billing account, the billing period, names and units from
the catalog, the resources' tags), the month's L3 lines with their metered quantity
(``focus_lines``), and the streaming CSV writer (``write_focus_csv``).

Amounts are decimal strings made from the integers (fen, 1e-8 yuan): never floats.
docs/focus.md gives the mapping column by column and why.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TextIO

from sqlalchemy import Connection, select

from feecenter.accounts.permissions import Actor
from feecenter.accounts.tables import customers
from feecenter.bills.lines import month_start
from feecenter.bills.service import iter_month_lines
from feecenter.catalog.tables import billing_items, products, regions, selling_entities
from feecenter.clock import BUSINESS_TZ, add_months
from feecenter.money import format_rated, format_yuan
from feecenter.resources.tables import resources
from feecenter.settlement.tables import bill_lines

QUANTITY_CHUNK = 1000  # streamed lines whose metered quantities are read at once

FOCUS_VERSION = "1.3"
PROVIDER_NAME = "Fee Center"  # the platform: provider, publisher, service and host provider
CURRENCY = "CNY"

# FOCUS 1.3 columns, FOCUS-defined ones first (ColumnHandling), alphabetically.
FOCUS_DEFINED = [
    "AllocatedMethodDetails", "AllocatedMethodId", "AllocatedResourceId",
    "AllocatedResourceName", "AllocatedTags",
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "BillingPeriodEnd", "BillingPeriodStart",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency",
    "ChargePeriodEnd", "ChargePeriodStart", "ConsumedQuantity", "ConsumedUnit",
    "ContractApplied", "ContractedCost", "ContractedUnitPrice", "EffectiveCost",
    "HostProviderName", "InvoiceId", "InvoiceIssuerName", "ListCost", "ListUnitPrice",
    "PricingCategory", "PricingQuantity", "PricingUnit", "ProviderName", "PublisherName",
    "RegionId", "RegionName", "ResourceId", "ResourceName", "ResourceType",
    "ServiceCategory", "ServiceName", "ServiceProviderName", "ServiceSubcategory",
    "SkuId", "SkuMeter", "SkuPriceDetails", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
]
# Our own fields, x_-prefixed (FOCUS custom columns).
CUSTOM = [
    "x_LineId", "x_PayMode", "x_LineKind", "x_BillingItem", "x_PriceKind",
    "x_ListUnitPricePerBillingUnit", "x_DiscountBasisPoints", "x_OriginalCost",
    "x_DiscountedCost", "x_VoucherPaid", "x_CashPaid", "x_GiftPaid",
    "x_PrecisionDifference", "x_DeductedAt", "x_UsageMonth", "x_BillMonth",
]
FOCUS_COLUMNS: list[str] = FOCUS_DEFINED + CUSTOM

# product class (catalog) -> FOCUS ServiceCategory (allowed values)
SERVICE_CATEGORIES = {"compute": "Compute", "storage": "Storage", "network": "Networking",
                      "database": "Databases", "security": "Security"}
# product -> FOCUS ServiceSubcategory where one fits; else "Other (<category>)"
SERVICE_SUBCATEGORIES = {"cvm": "Virtual Machines", "cbs": "Block Storage",
                         "cos": "Object Storage"}
PERIOD_UNITS = {timedelta(hours=1): "Hour", timedelta(days=1): "Day"}


@dataclass(frozen=True)
class Product:
    name: str
    service_category: str
    service_subcategory: str
    entity: str  # the selling entity (签约主体): provider and invoice issuer


@dataclass(frozen=True)
class FocusContext:
    """What every row of one account's month shares, and the names the rows look up."""
    billing_account_id: str
    billing_account_name: str
    billing_period_start: str  # UTC, YYYY-MM-DDTHH:MM:SSZ (the business month's start)
    billing_period_end: str  # exclusive
    billing_currency: str = CURRENCY
    # the names of a product not in ``products`` (a known product's are its selling entity)
    provider_name: str = PROVIDER_NAME
    publisher_name: str = PROVIDER_NAME
    invoice_issuer_name: str = PROVIDER_NAME
    products: Mapping[str, Product] = field(default_factory=dict)
    region_names: Mapping[str, str] = field(default_factory=dict)
    # (product, billing item) -> (its English name, its quantity's unit)
    items: Mapping[tuple[str, str], tuple[str, str]] = field(default_factory=dict)
    tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # resource id -> tags


def utc_text(when: datetime) -> str:
    """An aware datetime as FOCUS date/time: ISO 8601 UTC with Z, to the second."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def focus_context(conn: Connection, uin: int, month: str) -> FocusContext:
    """The context of ``uin``'s ``month`` (YYYY-MM, already checked): the account's
    name, the business month as UTC, the catalog's product and region names, the
    selling entities (invoice issuers) and the resources' tags now."""
    name = conn.execute(select(customers.c.name).where(customers.c.uin == uin)).scalar()
    start = month_start(month)
    entities = {code: name_en for code, name_en in conn.execute(
        select(selling_entities.c.code, selling_entities.c.name_en))}
    found = {row.code: _product(row.code, row.name_en, row.product_class,
                                entities.get(row.entity, PROVIDER_NAME))
             for row in conn.execute(select(products.c.code, products.c.name_en,
                                            products.c.product_class, products.c.entity))}
    return FocusContext(
        billing_account_id=f"uin-{uin}", billing_account_name=name or str(uin),
        billing_period_start=utc_text(start),
        billing_period_end=utc_text(add_months(start.astimezone(BUSINESS_TZ), 1)),
        products=found,
        region_names={code: name_en for code, name_en in conn.execute(
            select(regions.c.code, regions.c.name_en))},
        items={(row.product_code, row.code): (row.name_en, row.unit_en) for row in conn.execute(
            select(billing_items.c.product_code, billing_items.c.code, billing_items.c.name_en,
                   billing_items.c.unit_en))},
        tags=_tags(conn, uin))


def _product(code: str, name: str, product_class: str | None, entity: str) -> Product:
    category = SERVICE_CATEGORIES.get(product_class, "Other")
    return Product(name, category, SERVICE_SUBCATEGORIES.get(code, f"Other ({category})"),
                   entity)


def _tags(conn: Connection, uin: int) -> dict[str, dict[str, str]]:
    """The account's resources' tags now (a value that is not a JSON object: none)."""
    found = {}
    for rid, text in conn.execute(select(resources.c.id, resources.c.tags)
                                  .where(resources.c.uin == uin, resources.c.tags.is_not(None))):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict) and value:
            found[rid] = {str(k): str(v) for k, v in value.items()}
    return found


def focus_lines(conn: Connection, actor: Actor, uin: int, month: str) -> Iterator[dict]:
    """``bills.service.iter_month_lines`` (FINANCE checked there), streamed, each
    postpaid line with its metered ``quantity`` (1e-6 units) for ConsumedQuantity,
    looked up 1,000 lines at a time; prepaid lines: None."""
    chunk: list[dict] = []
    for line in iter_month_lines(conn, actor, uin, month):
        chunk.append(line)
        if len(chunk) == QUANTITY_CHUNK:
            yield from _with_quantities(conn, chunk)
            chunk = []
    yield from _with_quantities(conn, chunk)


def _with_quantities(conn: Connection, lines: list[dict]) -> list[dict]:
    ids = [int(line["line_id"].split(":")[1]) for line in lines if line["pay_mode"] == "postpaid"]
    quantities = dict(conn.execute(select(bill_lines.c.id, bill_lines.c.quantity).where(
        bill_lines.c.id.in_(ids))).all()) if ids else {}
    for line in lines:
        line["quantity"] = quantities.get(int(line["line_id"].split(":")[1])) \
            if line["pay_mode"] == "postpaid" else None
    return lines


def write_focus_csv(lines: Iterable[dict], context: FocusContext, out: TextIO) -> int:
    """Write the header, then one FOCUS row per L3 line as it comes; the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FOCUS_COLUMNS)
    count = 0
    for line in lines:
        row = focus_row(line, context)
        writer.writerow(["" if row[name] is None else row[name] for name in FOCUS_COLUMNS])
        count += 1
    return count


def focus_row(line: dict, context: FocusContext) -> dict[str, str | None]:
    """One L3 line as a FOCUS row (column -> text, None for null)."""
    product = context.products.get(line["product_code"]) or _product(
        line["product_code"], line["product_code"], None, context.invoice_issuer_name)
    postpaid = line["pay_mode"] == "postpaid"
    contracted = line["discounted_cost"]  # 1e-8 yuan
    listed = line["original_cost"] if line["original_cost"] is not None else contracted
    quantity = "-1.000000" if contracted < 0 else "1.000000"  # one charge; negative: given back
    start, end = _charge_period(line)
    correction = postpaid and line["kind"] == "adjustment" and \
        utc_text(line["usage_start"]) < context.billing_period_start
    tags = context.tags.get(line["resource_id"])
    item_name, unit = context.items.get((line["product_code"], line["item"]),
                                        (line["item"], None))
    consumed = line.get("quantity") if postpaid else None
    return {
        "AllocatedMethodDetails": None, "AllocatedMethodId": None,
        "AllocatedResourceId": None, "AllocatedResourceName": None, "AllocatedTags": None,
        "BilledCost": format_yuan(line["deducted"]),
        "BillingAccountId": context.billing_account_id,
        "BillingAccountName": context.billing_account_name,
        "BillingCurrency": context.billing_currency,
        "BillingPeriodEnd": context.billing_period_end,
        "BillingPeriodStart": context.billing_period_start,
        "ChargeCategory": "Usage" if postpaid else "Purchase",
        "ChargeClass": "Correction" if correction else None,
        "ChargeDescription": f"{product.name} {line['item']} ({line['kind']})",
        "ChargeFrequency": "Usage-Based" if postpaid else "One-Time",
        "ChargePeriodEnd": utc_text(end), "ChargePeriodStart": utc_text(start),
        # the metered quantity (focus_lines); null on purchases and when not given
        "ConsumedQuantity": None if consumed is None else _micro_units(consumed),
        "ConsumedUnit": None if consumed is None else (unit or line["item"]),
        "ContractApplied": None,  # no contract commitments on our lines
        "ContractedCost": format_rated(contracted),
        "ContractedUnitPrice": format_rated(abs(contracted)),
        # a prepaid purchase is not amortized here: FOCUS wants 0 on Purchase rows
        "EffectiveCost": format_yuan(line["deducted"] if postpaid else 0),
        "HostProviderName": product.entity,
        "InvoiceId": None,  # no invoice is tied to a line (yet)
        "InvoiceIssuerName": product.entity,
        "ListCost": format_rated(listed), "ListUnitPrice": format_rated(abs(listed)),
        "PricingCategory": "Standard",
        "PricingQuantity": quantity,
        "PricingUnit": _pricing_unit(line, start, end),
        "ProviderName": product.entity, "PublisherName": product.entity,
        "RegionId": line["region"],
        "RegionName": context.region_names.get(line["region"], line["region"]),
        "ResourceId": line["resource_id"], "ResourceName": line["resource_name"] or None,
        "ResourceType": product.name,
        "ServiceCategory": product.service_category, "ServiceName": product.name,
        "ServiceProviderName": product.entity,
        "ServiceSubcategory": product.service_subcategory,
        "SkuId": f"{line['product_code']}.{line['item']}",
        "SkuMeter": item_name,
        "SkuPriceDetails": None,
        "SkuPriceId": f"{line['product_code']}.{line['item']}.{line['pay_mode']}."
                      f"{line['price_kind']}",
        "SubAccountId": f"project-{line['project_id']}", "SubAccountName": line["project_name"],
        "Tags": json.dumps(tags, ensure_ascii=False, sort_keys=True) if tags else None,
        **_custom(line)}


def _micro_units(micro: int) -> str:
    """1e-6 units -> a decimal string with 6 decimals."""
    sign = "-" if micro < 0 else ""
    whole, part = divmod(abs(micro), 1_000_000)
    return f"{sign}{whole}.{part:06d}"


def _charge_period(line: dict) -> tuple[datetime, datetime]:
    """Postpaid: the usage period; prepaid: the hour of the deduction (a one-time charge)."""
    if line["pay_mode"] == "postpaid" and line["usage_end"] is not None:
        return line["usage_start"], line["usage_end"]
    at = line["deducted_at"].astimezone(timezone.utc).replace(minute=0, second=0, microsecond=0)
    return at, at + timedelta(hours=1)


def _pricing_unit(line: dict, start: datetime, end: datetime) -> str:
    """The unit of the line's one charge: its billing period (postpaid) or the order."""
    if line["pay_mode"] == "prepaid":
        return "Order"
    return PERIOD_UNITS.get(end - start, "Month")


def _custom(line: dict) -> dict[str, str | None]:
    def rated(value):
        return None if value is None else format_rated(value)
    return {
        "x_LineId": line["line_id"], "x_PayMode": line["pay_mode"], "x_LineKind": line["kind"],
        "x_BillingItem": line["item"], "x_PriceKind": line["price_kind"],
        "x_ListUnitPricePerBillingUnit": rated(line["unit_price"]),
        "x_DiscountBasisPoints": None if line["discount_bp"] is None else str(line["discount_bp"]),
        "x_OriginalCost": rated(line["original_cost"]),
        "x_DiscountedCost": format_rated(line["discounted_cost"]),
        "x_VoucherPaid": format_yuan(line["voucher_paid"]),
        "x_CashPaid": format_yuan(line["cash_paid"]), "x_GiftPaid": format_yuan(line["gift_paid"]),
        "x_PrecisionDifference": format_rated(line["precision_diff"]),
        "x_DeductedAt": utc_text(line["deducted_at"]),
        "x_UsageMonth": line.get("usage_month"), "x_BillMonth": line.get("bill_month")}


__all__ = ["FOCUS_COLUMNS", "FOCUS_VERSION", "FocusContext", "Product", "focus_context",
           "focus_lines", "focus_row", "write_focus_csv"]
