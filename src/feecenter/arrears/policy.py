"""Per-product arrears policy (ARR-3), kept here because the catalog does not carry it.

A policy has three phases, counted from the moment the arrears began:

- protection: the resource keeps running (and keeps being charged);
- isolation: the resource is stopped (state ``stopped``; configuration and
  data kept; paying the arrears restarts it);
- destruction: at ``protection + isolation`` the resource is recycled
  (state ``recycled``, ``released_at`` set) — but never without a
  destruction warning sent at least ``destroy_warning`` earlier.

A stop warning is sent ``stop_warning`` before the stop.

Lookup order: ``by_product[product_code]``, then ``by_class[product_class]``,
then ``default``. ``DEFAULT_POLICIES`` is the table the job uses; pass another
``PolicyTable`` to ``service.escalate`` to change it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from types import MappingProxyType


@dataclass(frozen=True)
class ArrearsPolicy:
    protection: timedelta
    isolation: timedelta
    stop_warning: timedelta = timedelta(hours=1)  # lead time of the stop warning
    destroy_warning: timedelta = timedelta(hours=24)  # minimum notice before destruction

    def __post_init__(self):
        for name in ("protection", "isolation", "stop_warning", "destroy_warning"):
            value = getattr(self, name)
            if not isinstance(value, timedelta) or value < timedelta(0):
                raise ValueError(f"arrears policy: {name} must be a timedelta >= 0")


DEFAULT_POLICY = ArrearsPolicy(protection=timedelta(days=15), isolation=timedelta(days=15),
                               stop_warning=timedelta(hours=24),
                               destroy_warning=timedelta(hours=24))

COMPUTE_POLICY = ArrearsPolicy(protection=timedelta(hours=2), isolation=timedelta(days=7),
                               stop_warning=timedelta(hours=1),
                               destroy_warning=timedelta(hours=24))


@dataclass(frozen=True)
class PolicyTable:
    default: ArrearsPolicy = DEFAULT_POLICY
    by_class: Mapping[str, ArrearsPolicy] = field(default_factory=dict)
    by_product: Mapping[str, ArrearsPolicy] = field(default_factory=dict)

    def for_product(self, product_code: str, product_class: str | None) -> ArrearsPolicy:
        if product_code in self.by_product:
            return self.by_product[product_code]
        if product_class is not None and product_class in self.by_class:
            return self.by_class[product_class]
        return self.default


DEFAULT_POLICIES = PolicyTable(default=DEFAULT_POLICY,
                               by_class=MappingProxyType({"compute": COMPUTE_POLICY}),
                               by_product=MappingProxyType({}))
