"""Parse and validate a catalog YAML file, with the line of every problem.

The text is read with ``yaml.compose`` (nodes, never Python objects: no
tags are constructed, and no number ever becomes a float: scalars are read
from their text). Every problem is collected, not only the first, and
reported as ``FILE:LINE: field: 中文 / English``. The format is documented in
docs/catalog.md. Nothing here touches the database: what the file refers to
but does not define (entities, classes, regions) is checked against the
``known`` codes the caller passes in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import yaml

from feecenter.catalog import rules
from feecenter.catalog.rules import Tier, Version
from feecenter.clock import db_time, parse_business_time
from feecenter.errors import InvalidInput
from feecenter.money import parse_rated, parse_yuan

MAX_FILE_BYTES = 5_000_000
MAX_NODES = 500_000          # aliases can make a small file walk forever; stop there
MAX_TIERS = 50
MAX_MONTHS_LIST = 40
DEFAULT_REFUND_WINDOW_DAYS = 5  # ORD-4: the no-reason refund window (五天无理由退款)
MAX_REFUND_WINDOW_DAYS = 365
DEFAULT_RECOVERY_DAYS = 7  # RNW-6: days an expired prepaid resource waits in the recycle bin
DEFAULT_AUTO_RENEW_RETRY_DAYS = 3  # RNW-2: days after expiry a failed auto-renewal is retried

_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,39}$", re.ASCII)
_ITEM_CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,59}$", re.ASCII)
_INT = re.compile(r"^\d{1,9}$", re.ASCII)
_TRUE, _FALSE = {"true", "yes", "on"}, {"false", "no", "off"}


@dataclass(frozen=True)
class Ref:
    """Where something came from: 1-based line and the field path."""

    line: int
    field: str


@dataclass(frozen=True)
class CatalogProblem:
    line: int
    field: str
    zh: str
    en: str

    def render(self, source: str) -> str:
        return f"{source}:{self.line}: {self.field}: {self.zh} / {self.en}"


@dataclass
class EntitySpec:
    code: str
    name_zh: str
    name_en: str
    ref: Ref


@dataclass
class ClassSpec:
    code: str
    name_zh: str
    name_en: str
    operable_balance: int  # fen
    ref: Ref


@dataclass
class RegionSpec:
    code: str
    name_zh: str
    name_en: str
    ref: Ref


@dataclass
class ItemSpec:
    code: str
    name_zh: str
    name_en: str
    unit_zh: str
    unit_en: str
    spec: bool
    postpaid_period: str | None
    ref: Ref
    covers: "Covers | None" = None  # a resource package: what its usage coverage is (SET-10)


@dataclass(frozen=True)
class Covers:
    """What one unit of a package item covers: ``quantity`` (1e-6 units) of a
    product's billing item, per settled period or per calendar month."""
    product: str
    item: str
    quantity: int
    per: str


@dataclass
class PriceKey:
    product: str
    item: str
    region: str
    pay_mode: str

    def as_tuple(self) -> tuple[str, str, str, str]:
        return (self.product, self.item, self.region, self.pay_mode)


@dataclass
class ProductSpec:
    code: str
    name_zh: str
    name_en: str
    entity: str
    tax_category: str
    pay_modes: tuple[str, ...]
    product_class: str
    postpaid_cycle: str | None
    freeze_amount: int
    freeze_release: str
    delivery_mode: str
    unpaid_order_days: int
    prepaid_months: tuple[int, ...]
    items: list[ItemSpec]
    ref: Ref
    refund_window_days: int = DEFAULT_REFUND_WINDOW_DAYS
    recovery_days: int = DEFAULT_RECOVERY_DAYS
    auto_renew_retry_days: int = DEFAULT_AUTO_RENEW_RETRY_DAYS
    renewal_managed: bool = True
    monthly_freeze: bool = False  # FRZ-5: legacy monthly freeze settlement (postpaid only)


@dataclass
class CatalogFile:
    entities: list[EntitySpec] = field(default_factory=list)
    classes: list[ClassSpec] = field(default_factory=list)
    regions: list[RegionSpec] = field(default_factory=list)
    products: list[ProductSpec] = field(default_factory=list)
    # (product, item, region, pay_mode) -> the file's versions, chained (rules.chain_versions);
    # each Version.ref is the Ref of the region entry it came from.
    prices: dict[tuple[str, str, str, str], list[Version]] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class _Reader:
    def __init__(self) -> None:
        self.problems: list[CatalogProblem] = []
        self._visits = 0

    # -- reporting
    def problem(self, node, field_path: str, zh: str, en: str) -> None:
        self.problems.append(CatalogProblem(_line(node), field_path, zh, en))

    def _visit(self) -> None:
        self._visits += 1
        if self._visits > MAX_NODES:
            raise _TooLarge

    # -- structure
    def mapping(self, node, path: str, required: tuple[str, ...],
                optional: tuple[str, ...]) -> dict[str, yaml.Node] | None:
        self._visit()
        if not isinstance(node, yaml.MappingNode):
            self.problem(node, path, "应为键值映射", "expected a mapping")
            return None
        out: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            self._visit()
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                self.problem(key_node, path, "键必须是文本", "keys must be plain text")
                continue
            if key not in required and key not in optional:
                allowed = ", ".join(required + optional)
                self.problem(key_node, f"{path}.{key}", f"未知字段（可用：{allowed}）",
                             f"unknown field (allowed: {allowed})")
                continue
            if key in out:
                self.problem(key_node, f"{path}.{key}", "字段重复", "duplicate field")
                continue
            out[key] = value_node
        for key in required:
            if key not in out:
                self.problem(node, f"{path}.{key}", "缺少必填字段", "required field is missing")
        return out

    def sequence(self, node, path: str) -> list:
        self._visit()
        if not isinstance(node, yaml.SequenceNode):
            self.problem(node, path, "应为列表", "expected a list")
            return []
        return list(node.value)

    def scalar(self, fields: dict, key: str, path: str) -> tuple[str, yaml.Node] | None:
        node = fields.get(key)
        if node is None:
            return None
        self._visit()
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.problem(node, f"{path}.{key}", "应为单个值", "expected a single value")
            return None
        return node.value.strip(), node

    # -- typed values
    def text(self, fields, key, path, *, default=None, max_len=100) -> str | None:
        got = self.scalar(fields, key, path)
        if got is None:
            return default
        value, node = got
        if not value or len(value) > max_len:
            self.problem(node, f"{path}.{key}", f"须为 1–{max_len} 个字符",
                         f"must be 1-{max_len} characters")
            return None
        return value

    def code(self, fields, key, path, *, pattern=_CODE) -> str | None:
        got = self.scalar(fields, key, path)
        if got is None:
            return None
        value, node = got
        if not pattern.match(value):
            self.problem(node, f"{path}.{key}", f"代码格式错误：{value!r}（字母数字开头，可含 . _ -）",
                         f"malformed code {value!r} (letters/digits first, then . _ -)")
            return None
        return value

    def choice(self, fields, key, path, choices, *, default=None) -> str | None:
        got = self.scalar(fields, key, path)
        if got is None:
            return default
        value, node = got
        if value not in choices:
            self.problem(node, f"{path}.{key}", f"只能为 {' / '.join(choices)}：{value!r}",
                         f"must be one of {', '.join(choices)}: {value!r}")
            return None
        return value

    def boolean(self, fields, key, path, *, default=False) -> bool | None:
        got = self.scalar(fields, key, path)
        if got is None:
            return default
        value, node = got
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        self.problem(node, f"{path}.{key}", "应为 true 或 false", "expected true or false")
        return None

    def integer(self, fields, key, path, *, default=None, low=0, high=10**9) -> int | None:
        got = self.scalar(fields, key, path)
        if got is None:
            return default
        value, node = got
        if not _INT.match(value) or not low <= int(value) <= high:
            self.problem(node, f"{path}.{key}", f"应为 {low}–{high} 的整数",
                         f"expected a whole number {low}-{high}")
            return None
        return int(value)

    def converted(self, fields, key, path, convert, *, default=None):
        """A value parsed by a money/quantity/time parser that raises InvalidInput."""
        got = self.scalar(fields, key, path)
        if got is None:
            return default
        value, node = got
        try:
            return convert(value)
        except InvalidInput as exc:
            self.problem(node, f"{path}.{key}", exc.message_zh, exc.message_en)
            return None


def _line(node) -> int:
    return node.start_mark.line + 1 if node is not None and node.start_mark else 1


def _rated_non_negative(text: str) -> int:
    value = parse_rated(text, "price")
    if value < 0:
        raise InvalidInput("价格不能为负数", "price must not be negative")
    return value


def _fen_non_negative(text: str) -> int:
    return parse_yuan(text, "amount", allow_zero=True)


def _when(text: str) -> datetime:
    return db_time(parse_business_time(text, "time"))


# ---------------------------------------------------------------- entry point

def parse_catalog(text: str, source: str, known: dict[str, set[str]]
                  ) -> tuple[CatalogFile, list[CatalogProblem]]:
    """Parse and validate; ``known`` holds the codes already stored, by kind
    ("entities", "classes", "regions"), that the file may refer to."""
    reader = _Reader()
    if len(text.encode("utf-8", "replace")) > MAX_FILE_BYTES:
        return CatalogFile(), [CatalogProblem(1, "file", f"文件过大（上限 {MAX_FILE_BYTES} 字节）",
                                              f"file too large (limit {MAX_FILE_BYTES} bytes)")]
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return CatalogFile(), [CatalogProblem(line, "yaml", f"YAML 语法错误：{exc.problem}",
                                              f"YAML syntax error: {exc.problem}")]
    except yaml.YAMLError as exc:
        return CatalogFile(), [CatalogProblem(1, "yaml", f"YAML 语法错误：{exc}",
                                              f"YAML syntax error: {exc}")]
    if root is None:
        return CatalogFile(), [CatalogProblem(1, "file", "文件为空", "the file is empty")]
    catalog = CatalogFile()
    try:
        _read(reader, root, catalog, known)
    except _TooLarge:
        reader.problems.append(CatalogProblem(1, "file", "文件结构过大或别名嵌套过深",
                                              "file too large or too deeply aliased"))
    reader.problems.sort(key=lambda p: p.line)
    return catalog, reader.problems


def _read(reader: _Reader, root, catalog: CatalogFile, known: dict[str, set[str]]) -> None:
    top = reader.mapping(root, "catalog", (), ("version", "entities", "product_classes",
                                               "regions", "products"))
    if top is None:
        return
    reader.text(top, "version", "catalog", max_len=100)
    seen: dict[str, set[str]] = {"entities": set(), "classes": set(), "regions": set()}
    for i, node in enumerate(reader.sequence(top["entities"], "entities")
                             if "entities" in top else []):
        path = f"entities[{i}]"
        fields = reader.mapping(node, path, ("code", "name_zh", "name_en"), ())
        if fields is None:
            continue
        code = _unique(reader, fields, path, seen["entities"])
        name_zh, name_en = (reader.text(fields, k, path, max_len=200)
                            for k in ("name_zh", "name_en"))
        if code and name_zh and name_en:
            catalog.entities.append(EntitySpec(code, name_zh, name_en, Ref(_line(node), path)))
    for i, node in enumerate(reader.sequence(top["product_classes"], "product_classes")
                             if "product_classes" in top else []):
        path = f"product_classes[{i}]"
        fields = reader.mapping(node, path, ("code", "name_zh", "name_en"),
                                ("operable_balance",))
        if fields is None:
            continue
        code = _unique(reader, fields, path, seen["classes"])
        name_zh, name_en = (reader.text(fields, k, path) for k in ("name_zh", "name_en"))
        balance = reader.converted(fields, "operable_balance", path, _fen_non_negative, default=0)
        if code and name_zh and name_en and balance is not None:
            catalog.classes.append(ClassSpec(code, name_zh, name_en, balance,
                                             Ref(_line(node), path)))
    for i, node in enumerate(reader.sequence(top["regions"], "regions")
                             if "regions" in top else []):
        path = f"regions[{i}]"
        fields = reader.mapping(node, path, ("code", "name_zh", "name_en"), ())
        if fields is None:
            continue
        code = _unique(reader, fields, path, seen["regions"])
        name_zh, name_en = (reader.text(fields, k, path) for k in ("name_zh", "name_en"))
        if code and name_zh and name_en:
            catalog.regions.append(RegionSpec(code, name_zh, name_en, Ref(_line(node), path)))
    available = {kind: seen[kind] | set(known.get(kind, ())) for kind in seen}
    product_codes: set[str] = set()
    for i, node in enumerate(reader.sequence(top["products"], "products")
                             if "products" in top else []):
        _read_product(reader, node, i, catalog, available, product_codes)


def _peek_code(node) -> str | None:
    """The code of a mapping, to name it in field paths (``products[cvm]``), if it has a
    plain one."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == "code" \
                    and isinstance(value, yaml.ScalarNode) and _ITEM_CODE.match(value.value):
                return value.value
    return None


def _unique(reader: _Reader, fields: dict, path: str, seen: set[str], *,
            pattern=_CODE) -> str | None:
    code = reader.code(fields, "code", path, pattern=pattern)
    if code is None:
        return None
    if code in seen:
        reader.problem(fields["code"], f"{path}.code", f"代码重复：{code}", f"duplicate code: {code}")
        return None
    seen.add(code)
    return code


def _reference(reader: _Reader, fields: dict, key: str, path: str, available: set[str],
               what_zh: str, what_en: str) -> str | None:
    code = reader.code(fields, key, path)
    if code is not None and code not in available:
        reader.problem(fields[key], f"{path}.{key}", f"未定义的{what_zh}：{code}",
                       f"undefined {what_en}: {code}")
        return None
    return code


_PRODUCT_REQUIRED = ("code", "name_zh", "name_en", "entity", "tax_category", "pay_modes",
                     "class", "items")
_PRODUCT_OPTIONAL = ("postpaid_cycle", "freeze_amount", "freeze_release", "delivery",
                     "unpaid_order_days", "refund_window_days", "prepaid_months", "prices",
                     "recovery_days", "auto_renew_retry_days", "renewal_managed",
                     "monthly_freeze")


def _monthly_freeze(reader: _Reader, fields, path: str, pay_modes) -> bool | None:
    """FRZ-5: ``monthly_freeze`` (default false), only for a postpaid product."""
    monthly = reader.boolean(fields, "monthly_freeze", path, default=False)
    if monthly and pay_modes and "postpaid" not in pay_modes:
        reader.problem(fields["monthly_freeze"], f"{path}.monthly_freeze",
                       "仅后付费产品可按月冻结结算", "only postpaid products may use monthly_freeze")
        return None
    return monthly


def _read_product(reader: _Reader, node, index: int, catalog: CatalogFile,
                  available: dict[str, set[str]], product_codes: set[str]) -> None:
    path = f"products[{_peek_code(node) or index}]"
    fields = reader.mapping(node, path, _PRODUCT_REQUIRED, _PRODUCT_OPTIONAL)
    if fields is None:
        return
    code = _unique(reader, fields, path, product_codes)
    name_zh, name_en = (reader.text(fields, k, path) for k in ("name_zh", "name_en"))
    entity = _reference(reader, fields, "entity", path, available["entities"], "签约主体",
                        "selling entity")
    klass = _reference(reader, fields, "class", path, available["classes"], "产品类别",
                       "product class")
    tax = reader.choice(fields, "tax_category", path, tuple(rules.TAX_CATEGORIES))
    pay_modes = _pay_modes(reader, fields, path)
    cycle = reader.choice(fields, "postpaid_cycle", path, rules.POSTPAID_CYCLES)
    if pay_modes and "postpaid" in pay_modes and cycle is None and "postpaid_cycle" not in fields:
        reader.problem(node, f"{path}.postpaid_cycle", "后付费产品必须指定结算周期 hour / day / month",
                       "a postpaid product needs postpaid_cycle: hour, day or month")
    if pay_modes and "postpaid" not in pay_modes and "postpaid_cycle" in fields:
        reader.problem(fields["postpaid_cycle"], f"{path}.postpaid_cycle",
                       "仅后付费产品可设置结算周期", "only postpaid products have a postpaid_cycle")
    freeze = reader.converted(fields, "freeze_amount", path, _fen_non_negative, default=0)
    release = reader.choice(fields, "freeze_release", path, rules.FREEZE_RELEASES,
                            default="immediate")
    delivery = reader.choice(fields, "delivery", path, rules.DELIVERY_MODES, default="auto")
    unpaid_days = reader.integer(fields, "unpaid_order_days", path, low=1, high=365,
                                 default=rules.DEFAULT_UNPAID_ORDER_DAYS)
    refund_days = reader.integer(fields, "refund_window_days", path, low=0,
                                 high=MAX_REFUND_WINDOW_DAYS, default=DEFAULT_REFUND_WINDOW_DAYS)
    recovery = reader.integer(fields, "recovery_days", path, low=0, high=90,
                              default=DEFAULT_RECOVERY_DAYS)
    retry = reader.integer(fields, "auto_renew_retry_days", path, low=0, high=30,
                           default=DEFAULT_AUTO_RENEW_RETRY_DAYS)
    managed = reader.boolean(fields, "renewal_managed", path, default=True)
    monthly = _monthly_freeze(reader, fields, path, pay_modes)
    months = _months(reader, fields, path, pay_modes)
    items = _read_items(reader, fields.get("items"), path)
    scalars = (code, name_zh, name_en, entity, klass, tax, pay_modes, freeze, release, delivery,
               unpaid_days, refund_days, months, recovery, retry, managed, monthly)
    product_ok = all(v is not None for v in scalars) and (
        cycle is not None or "postpaid" not in (pay_modes or ()))
    if product_ok:
        catalog.products.append(ProductSpec(
            code, name_zh, name_en, entity, tax, pay_modes, klass, cycle, freeze, release,
            delivery, unpaid_days, months, items, Ref(_line(node), path), refund_days,
            recovery, retry, managed, monthly))
    if "prices" in fields:
        by_code = {item.code: item for item in items}
        raw: dict[tuple[str, str, str, str], list[Version]] = {}
        for j, price_node in enumerate(reader.sequence(fields["prices"], f"{path}.prices")):
            _read_price(reader, price_node, f"{path}.prices[{j}]", code, by_code,
                        pay_modes or (), available["regions"], raw)
        for key, versions in raw.items():
            chained, problems = rules.chain_versions(versions)
            for problem in problems:
                reader.problems.append(CatalogProblem(problem.ref.line, problem.ref.field,
                                                      problem.zh, problem.en))
            catalog.prices[key] = chained


def _pay_modes(reader: _Reader, fields: dict, path: str) -> tuple[str, ...] | None:
    if "pay_modes" not in fields:
        return None
    modes = []
    for node in reader.sequence(fields["pay_modes"], f"{path}.pay_modes"):
        value = node.value if isinstance(node, yaml.ScalarNode) else None
        if value not in rules.PAY_MODES or value in modes:
            reader.problem(node, f"{path}.pay_modes", "付费模式只能为 prepaid / postpaid，且不重复",
                           "pay modes are prepaid and/or postpaid, each once")
            return None
        modes.append(value)
    if not modes:
        reader.problem(fields["pay_modes"], f"{path}.pay_modes", "至少需要一种付费模式",
                       "at least one pay mode is required")
        return None
    return tuple(m for m in rules.PAY_MODES if m in modes)


def _months(reader: _Reader, fields: dict, path: str,
            pay_modes: tuple[str, ...] | None) -> tuple[int, ...] | None:
    if "prepaid_months" not in fields:
        return rules.DEFAULT_PREPAID_MONTHS if pay_modes and "prepaid" in pay_modes else ()
    node = fields["prepaid_months"]
    if pay_modes is not None and "prepaid" not in pay_modes:
        reader.problem(node, f"{path}.prepaid_months", "仅预付费产品可设置购买时长",
                       "only prepaid products have prepaid_months")
        return None
    values = []
    for element in reader.sequence(node, f"{path}.prepaid_months"):
        text = element.value if isinstance(element, yaml.ScalarNode) else ""
        if not _INT.match(str(text)) or not 1 <= int(text) <= rules.MAX_MONTHS:
            reader.problem(element, f"{path}.prepaid_months",
                           f"购买时长须为 1–{rules.MAX_MONTHS} 的整数月",
                           f"durations are whole months 1-{rules.MAX_MONTHS}")
            return None
        values.append(int(text))
    if not values or len(values) > MAX_MONTHS_LIST or len(set(values)) != len(values):
        reader.problem(node, f"{path}.prepaid_months", "购买时长列表不能为空或重复",
                       "the list of durations must be non-empty without repeats")
        return None
    return tuple(sorted(values))


def _read_items(reader: _Reader, node, path: str) -> list[ItemSpec]:
    if node is None:
        return []
    items, seen = [], set()
    nodes = reader.sequence(node, f"{path}.items")
    if not nodes and isinstance(node, yaml.SequenceNode):
        reader.problem(node, f"{path}.items", "至少需要一个计费项", "at least one billing item is required")
    for i, item_node in enumerate(nodes):
        item_path = f"{path}.items[{_peek_code(item_node) or i}]"
        fields = reader.mapping(item_node, item_path,
                                ("code", "name_zh", "name_en", "unit_zh", "unit_en"),
                                ("spec", "postpaid_period", "covers"))
        if fields is None:
            continue
        code = _unique(reader, fields, item_path, seen, pattern=_ITEM_CODE)
        name_zh, name_en = (reader.text(fields, k, item_path) for k in ("name_zh", "name_en"))
        unit_zh, unit_en = (reader.text(fields, k, item_path, max_len=20)
                            for k in ("unit_zh", "unit_en"))
        spec = reader.boolean(fields, "spec", item_path)
        period = reader.choice(fields, "postpaid_period", item_path, rules.POSTPAID_PERIODS)
        covers = _read_covers(reader, fields, item_path, spec)
        values = (code, name_zh, name_en, unit_zh, unit_en, spec)
        if (all(v is not None for v in values) and (period or "postpaid_period" not in fields)
                and (covers or "covers" not in fields)):
            items.append(ItemSpec(code, name_zh, name_en, unit_zh, unit_en, spec, period,
                                  Ref(_line(item_node), item_path), covers))
    return items


def _read_covers(reader: _Reader, fields: dict, path: str, spec: bool | None) -> Covers | None:
    """``covers: {product, item, quantity, per: period|month}`` of a resource package item."""
    if "covers" not in fields:
        return None
    path = f"{path}.covers"
    inner = reader.mapping(fields["covers"], path, ("product", "item", "quantity", "per"), ())
    if inner is None:
        return None
    if spec is False:
        reader.problem(fields["covers"], path, "资源包须为可购买的规格（spec: true）",
                       "a resource package must be a spec (spec: true) to be bought")
        return None
    product = reader.code(inner, "product", path)
    item = reader.code(inner, "item", path, pattern=_ITEM_CODE)
    quantity = reader.converted(inner, "quantity", path,
                                lambda t: rules.parse_quantity(t, "quantity"))
    if quantity == 0:
        reader.problem(inner["quantity"], f"{path}.quantity", "资源包额度须大于零",
                       "a package must cover more than zero")
        quantity = None
    per = reader.choice(inner, "per", path, ("period", "month"))
    if None in (product, item, quantity, per):
        return None
    return Covers(product, item, quantity, per)


def _read_price(reader: _Reader, node, path: str, product: str | None,
                items: dict[str, ItemSpec], pay_modes: tuple[str, ...], regions: set[str],
                out: dict[tuple[str, str, str, str], list[Version]]) -> None:
    fields = reader.mapping(node, path, ("item", "pay_mode", "regions", "from"),
                            ("until", "price", "tiers"))
    if fields is None:
        return
    item_code = reader.code(fields, "item", path, pattern=_ITEM_CODE)
    item = items.get(item_code) if item_code else None
    if item_code and item is None:
        reader.problem(fields["item"], f"{path}.item", f"本产品没有此计费项：{item_code}",
                       f"no such billing item in this product: {item_code}")
    pay_mode = reader.choice(fields, "pay_mode", path, rules.PAY_MODES)
    if pay_mode and pay_modes and pay_mode not in pay_modes:
        reader.problem(fields["pay_mode"], f"{path}.pay_mode",
                       f"产品不支持此付费模式：{pay_mode}", f"the product does not allow {pay_mode}")
        pay_mode = None
    if pay_mode == "prepaid" and item is not None and not item.spec:
        reader.problem(fields["item"], f"{path}.item",
                       f"预付费价格只能设在规格计费项上（spec: true）：{item_code}",
                       f"prepaid prices belong on spec items (spec: true): {item_code}")
        item = None
    start = reader.converted(fields, "from", path, _when)
    end = reader.converted(fields, "until", path, _when)
    tiers = _tiers(reader, fields, node, path)
    region_refs = []
    for region_node in reader.sequence(fields["regions"], f"{path}.regions") \
            if "regions" in fields else []:
        value = region_node.value if isinstance(region_node, yaml.ScalarNode) else None
        region_path = f"{path}.regions[{value}]"
        if value not in regions:
            reader.problem(region_node, region_path, f"未定义的地域：{value}",
                           f"undefined region: {value}")
        elif value in [r for r, _ in region_refs]:
            reader.problem(region_node, region_path, f"地域重复：{value}", f"duplicate region: {value}")
        else:
            # the entry's line, not the region's: an aliased list (*regions) sits elsewhere
            region_refs.append((value, Ref(_line(node), region_path)))
    if "regions" in fields and isinstance(fields["regions"], yaml.SequenceNode) \
            and not fields["regions"].value:
        reader.problem(fields["regions"], f"{path}.regions", "至少需要一个地域",
                       "at least one region is required")
    if None in (product, item, pay_mode, start, tiers) or ("until" in fields and end is None):
        return
    for region, ref in region_refs:
        out.setdefault((product, item.code, region, pay_mode), []).append(
            Version(start, end, tiers, ref=ref))


def _tiers(reader: _Reader, fields: dict, node, path: str) -> tuple[Tier, ...] | None:
    if ("price" in fields) == ("tiers" in fields):
        reader.problem(node, f"{path}.price", "price 与 tiers 必须且只能给出一个",
                       "give exactly one of price or tiers")
        return None
    if "price" in fields:
        price = reader.converted(fields, "price", path, _rated_non_negative)
        return None if price is None else rules.flat(price)
    nodes = reader.sequence(fields["tiers"], f"{path}.tiers")
    if not nodes or len(nodes) > MAX_TIERS:
        reader.problem(fields["tiers"], f"{path}.tiers", f"阶梯须为 1–{MAX_TIERS} 档",
                       f"tiers must number 1-{MAX_TIERS}")
        return None
    tiers, lower, ok = [], 0, True
    for i, tier_node in enumerate(nodes):
        tier_path = f"{path}.tiers[{i}]"
        tier_fields = reader.mapping(tier_node, tier_path, ("price",), ("upto",))
        if tier_fields is None:
            ok = False
            continue
        price = reader.converted(tier_fields, "price", tier_path, _rated_non_negative)
        upper = reader.converted(tier_fields, "upto", tier_path,
                                 lambda t: rules.parse_quantity(t, "upto"))
        if price is None or ("upto" in tier_fields and upper is None):
            ok = False
            continue
        tiers.append(Tier(lower, upper, price))
        lower = upper if upper is not None else lower
    if not ok:
        return None
    for index, zh, en in rules.tier_problems(tuple(tiers)):
        reader.problem(nodes[index], f"{path}.tiers[{index}]", zh, en)
        ok = False
    return tuple(tiers) if ok else None
