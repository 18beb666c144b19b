"""Tables owned by the catalog (ORD-5): what is sold, where, and at what price.

Money columns are BIGINT: list, contract and fixed prices in 1e-8 yuan
(``money.RATE_SCALE`` per yuan) per unit; the operable balance and the
postpaid freeze amount in fen. Quantities (tier bounds) are in 1e-6 units
(``catalog.rules.QTY_SCALE``). Effective ranges are half-open
``[starts_at, ends_at)`` in naive UTC; ``ends_at`` NULL means open-ended.
"""

from sqlalchemy import (BigInteger, Boolean, Column, DateTime, ForeignKey, Index, Integer,
                        String, Table, Text, UniqueConstraint, text)

from feecenter.db.base import IdType, metadata

# One row per catalog file that changed something (a re-load of the same file writes none).
catalog_loads = Table(
    "catalog_loads", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("source", String(500), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("actor", String(120), nullable=False),
    Column("summary", Text, nullable=False),  # JSON
    Column("loaded_at", DateTime, nullable=False),
)

# Selling entities (签约主体): revenue and invoices are split by them (INV-4).
selling_entities = Table(
    "selling_entities", metadata,
    Column("code", String(40), primary_key=True),
    Column("name_zh", String(200), nullable=False),
    Column("name_en", String(200), nullable=False),
)

# Product classes for the arrears gate: the operable balance an account must
# keep, after repaying arrears, before it may buy such products again (ARR-2).
product_classes = Table(
    "product_classes", metadata,
    Column("code", String(40), primary_key=True),
    Column("name_zh", String(100), nullable=False),
    Column("name_en", String(100), nullable=False),
    Column("operable_balance", BigInteger, nullable=False),  # fen
)

regions = Table(
    "regions", metadata,
    Column("code", String(40), primary_key=True),
    Column("name_zh", String(100), nullable=False),
    Column("name_en", String(100), nullable=False),
)

products = Table(
    "products", metadata,
    Column("code", String(40), primary_key=True),
    Column("name_zh", String(100), nullable=False),
    Column("name_en", String(100), nullable=False),
    Column("entity", String(40), ForeignKey("selling_entities.code"), nullable=False),
    Column("tax_category", String(20), nullable=False),  # cloud_service | software (INV-4)
    Column("allow_prepaid", Boolean, nullable=False),
    Column("allow_postpaid", Boolean, nullable=False),
    Column("product_class", String(40), ForeignKey("product_classes.code"), nullable=False),
    Column("postpaid_cycle", String(10), nullable=True),  # hour | day | month (SET-1)
    Column("freeze_amount", BigInteger, nullable=False),  # fen frozen on opening (FRZ-1)
    Column("freeze_release", String(20), nullable=False),  # immediate | next_settlement (FRZ-3)
    Column("delivery_mode", String(10), nullable=False),  # auto | manual
    Column("unpaid_order_days", Integer, nullable=False),  # ORD-2
    # ORD-4: days after the first payment in which a refund returns everything paid
    Column("refund_window_days", Integer, nullable=False, server_default=text("5")),
    Column("prepaid_months", String(200), nullable=False),  # allowed durations, "1,2,3,12"
    # RNW-6: days in the recycle bin; RNW-2: days a failed auto-renewal is retried;
    # RNW-7: shown in renewal management
    Column("recovery_days", Integer, nullable=False, server_default=text("7")),
    Column("auto_renew_retry_days", Integer, nullable=False, server_default=text("3")),
    Column("renewal_managed", Boolean, nullable=False, server_default=text("true")),
    # FRZ-5: legacy monthly freeze settlement (cycles frozen, the month deducted on the 3rd)
    Column("monthly_freeze", Boolean, nullable=False, server_default=text("false")),
    Column("updated_at", DateTime, nullable=False),
)

billing_items = Table(
    "billing_items", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("product_code", String(40), ForeignKey("products.code"), nullable=False),
    Column("code", String(60), nullable=False),
    Column("name_zh", String(100), nullable=False),
    Column("name_en", String(100), nullable=False),
    Column("unit_zh", String(20), nullable=False),  # the quantity's unit: 台, GB, 万次 …
    Column("unit_en", String(20), nullable=False),
    # A spec is what a prepaid order buys (instance type, disk GB); only specs
    # may carry prepaid prices, which are per unit per month.
    Column("spec", Boolean, nullable=False),
    # What a postpaid price is per, besides the unit: hour | day | month, or
    # NULL for pure volume (traffic GB, requests).
    Column("postpaid_period", String(10), nullable=True),
    # A resource package (SET-10): one unit covers covers_quantity (1e-6 units) of
    # covers_product's covers_item, per settled period or per month (covers_per).
    Column("covers_product", String(40), nullable=True),
    Column("covers_item", String(60), nullable=True),
    Column("covers_quantity", BigInteger, nullable=True),
    Column("covers_per", String(10), nullable=True),
    UniqueConstraint("product_code", "code", name="uq_billing_items_product_code"),
)

# A price-list version: one billing item in one region and pay mode over
# [starts_at, ends_at). Versions of the same key never overlap; history stays.
price_lists = Table(
    "price_lists", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("product_code", String(40), ForeignKey("products.code"), nullable=False),
    Column("item_id", IdType, ForeignKey("billing_items.id"), nullable=False),
    Column("region_code", String(40), ForeignKey("regions.code"), nullable=False),
    Column("pay_mode", String(10), nullable=False),  # prepaid | postpaid
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=True),
    Column("load_id", IdType, ForeignKey("catalog_loads.id"), nullable=False),
    Column("created_at", DateTime, nullable=False),
    UniqueConstraint("item_id", "region_code", "pay_mode", "starts_at",
                     name="uq_price_lists_item_region_mode_start"),
)

# Graduated tiers of a version: [lower_qty, upper_qty) of the cumulative
# quantity at unit_price. A flat price is one tier from 0 with no upper bound.
price_tiers = Table(
    "price_tiers", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("price_list_id", IdType, ForeignKey("price_lists.id"), nullable=False),
    Column("lower_qty", BigInteger, nullable=False),  # 1e-6 units
    Column("upper_qty", BigInteger, nullable=True),
    Column("unit_price", BigInteger, nullable=False),  # 1e-8 yuan per unit (per month if prepaid)
    UniqueConstraint("price_list_id", "lower_qty", name="uq_price_tiers_list_lower"),
)

# Per-account discount in basis points (8500 = 85%, 10000 = none), for one
# product or (product_code NULL) for all.
account_discounts = Table(
    "account_discounts", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, ForeignKey("customers.uin"), nullable=False),
    Column("product_code", String(40), ForeignKey("products.code"), nullable=True),
    Column("discount_bp", Integer, nullable=False),
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_account_discounts_uin_product", "uin", "product_code", "starts_at"),
)

# Per-account negotiated prices: contract (合同价, a unit price replacing list x
# discount) or fixed (一口价, an amount per month whatever the quantity), for one
# item and pay mode, in one region or (region_code NULL) all.
account_prices = Table(
    "account_prices", metadata,
    Column("id", IdType, primary_key=True, autoincrement=True),
    Column("uin", BigInteger, ForeignKey("customers.uin"), nullable=False),
    Column("kind", String(10), nullable=False),  # contract | fixed
    Column("product_code", String(40), ForeignKey("products.code"), nullable=False),
    Column("item_id", IdType, ForeignKey("billing_items.id"), nullable=False),
    Column("region_code", String(40), ForeignKey("regions.code"), nullable=True),
    Column("pay_mode", String(10), nullable=False),
    # contract: 1e-8 yuan per unit (per unit per month if prepaid); fixed: 1e-8 yuan per month
    Column("price", BigInteger, nullable=False),
    Column("starts_at", DateTime, nullable=False),
    Column("ends_at", DateTime, nullable=True),
    Column("note", Text, nullable=True),
    Column("created_by", String(120), nullable=False),
    Column("created_at", DateTime, nullable=False),
    Index("ix_account_prices_uin_item", "uin", "item_id", "pay_mode", "starts_at"),
)
