"""``feecenter catalog …``: load the catalog file and show products and prices (ORD-5).

Same contract as the rest of the CLI (docs/cli.md): ``--json`` prints exactly
one JSON object; exit 0 done, 1 refused (a refused file lists every problem
as ``FILE:LINE: field: 中文 / English``), 2 bad usage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from feecenter.cli.common import JsonOpt, emit as _emit, flag, out, refusals as _refusals
from feecenter.cli.common import operator_actor as _actor, runtime as _runtime

catalog_app = typer.Typer(help="Catalog and price lists (ORD-5) / 产品目录与刊例价",
                          no_args_is_help=True)



@catalog_app.command("load")
def load(file: Annotated[Path, typer.Argument(help="catalog YAML file (docs/catalog.md)")],
         as_json: JsonOpt = False) -> None:
    """Load a catalog file: all of it or, on any problem, nothing (each problem with its line)."""
    from feecenter.catalog import service as catalog
    from feecenter.db.engine import transaction
    from feecenter.errors import invalid

    with _refusals(as_json):
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise invalid("file", f"无法读取文件：{file}（{exc}）",
                          f"cannot read the file {file}: {exc}") from None
        rt = _runtime()
        with transaction(rt.engine) as conn:
            summary = catalog.load_catalog(conn, rt.clock, _actor(), text, str(file))
    _emit(as_json, summary, _render_summary)


def _render_summary(data: dict) -> None:
    state = "已更新 / changed" if data["changed"] else "无变化 / unchanged"
    out.print(f"[bold]{escape(data['source'])}[/bold]: {state}"
              + (f" (load {data['load_id']})" if data["load_id"] else ""))
    table = Table()
    for column in ("", "added", "updated", "unchanged"):
        table.add_column(column)
    for kind in ("entities", "product_classes", "regions", "products", "items"):
        counts = data[kind]
        table.add_row(kind, str(counts["added"]), str(counts["updated"]),
                      str(counts["unchanged"]))
    prices = data["price_lists"]
    table.add_row("price_lists", str(prices["added"]), f"{prices['closed']} closed",
                  str(prices["unchanged"]))
    out.print(table)
    for late in data.get("late_prepaid_prices", []):
        out.print(f"[yellow]包年包月新价格 {late['product']}/{late['item']} {late['region']} 于 "
                  f"{late['starts_at']} 生效，早于下次调价通知，无法提前通知 / this prepaid price "
                  "applies before the next price-change announcement: owners cannot be told "
                  "in advance[/yellow]")


@catalog_app.command("show")
def show(
    product: Annotated[Optional[str], typer.Option(help="one product's items and prices")] = None,
    at: Annotated[Optional[str], typer.Option(help='prices in force at "YYYY-MM-DD HH:MM:SS"')]
    = None,
    history: Annotated[bool, flag("--history", help="every price version")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Products; with --product, its billing items and current (or --history) prices."""
    from feecenter.catalog import service as catalog
    from feecenter.clock import parse_business_time
    from feecenter.present.catalog import item_json, price_list_json, product_json

    with _refusals(as_json):
        rt = _runtime()
        when = parse_business_time(at, "at") if at else rt.clock.now()
        with rt.engine.connect() as conn:
            if product is None:
                payload = {"products": [product_json(p) for p in catalog.list_products(conn)],
                           "regions": catalog.list_regions(conn)}
            else:
                detail = catalog.product_detail(conn, product, when)
                versions = (catalog.price_lists_of(conn, product) if history
                            else detail["prices"])
                payload = {**product_json(detail["product"]),
                           "items": [item_json(i) for i in detail["items"]],
                           "prices": [price_list_json(v) for v in versions]}
    _emit(as_json, payload, _render_products if product is None else _render_product)


def _render_products(data: dict) -> None:
    table = Table(title="产品目录 / Catalog")
    for column in ("code", "名称 / name", "entity", "tax", "pay modes", "class"):
        table.add_column(column)
    for p in data["products"]:
        table.add_row(p["code"], f"{p['name_zh']} / {p['name_en']}", p["entity"],
                      f"{p['tax_rate_bp'] / 100:g}% {p['tax_code']}", ", ".join(p["pay_modes"]),
                      p["product_class"])
    out.print(table)
    out.print("地域 / regions: " + ", ".join(r["code"] for r in data["regions"]),
              markup=False)


def _render_product(data: dict) -> None:
    out.print(f"{data['code']} {data['name_zh']} / {data['name_en']} — {data['entity']}, "
              f"{data['tax_name']} {data['tax_rate_bp'] / 100:g}%", markup=False)
    table = Table(title="价格 / Prices")
    for column in ("item", "region", "pay mode", "from", "until", "tiers (from-upto: yuan/unit)"):
        table.add_column(column)
    for v in data["prices"]:
        tiers = "\n".join(f"{t['from']}-{t['upto'] or '∞'}: {t['unit_price']}"
                          for t in v["tiers"])
        table.add_row(escape(v["item"]), v["region"], v["pay_mode"], v["starts_at"],
                      v["ends_at"] or "∞", tiers)
    out.print(table)
