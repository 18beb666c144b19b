"""Resource package coverage (SET-10), pure: which package covers how much of a period's usage.

A resource package (资源包) is a prepaid resource whose catalog item says what
it covers: a product's billing item in the package's region, ``quantity``
units (1e-6 units, already multiplied by the number bought) either

* ``per: period`` — a capacity: up to ``quantity`` of each settled period's
  usage (storage of 100 GB covers up to 100 GB of every day's storage), or
* ``per: month`` — a pool: ``quantity`` per calendar month of validity,
  drawn down by the month's usage in period order; what is left at the end
  of the month does not carry over (traffic of 100 GB a month).

A package covers a period when it is in force at the period's start. The
account's usage lines of one period draw on its packages in a fixed order:
lines by (resource, item), packages expiring soonest first (then by id), so
a rerun of the same period always allocates alike. Every covered quantity is
reported per (line, package); what no package covers is charged normally.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

PER_PERIOD = "period"
PER_MONTH = "month"
PERS = (PER_PERIOD, PER_MONTH)


@dataclass(frozen=True)
class Package:
    id: str                 # the package resource's id
    product: str            # what it covers: product, billing item, region
    item: str
    region: str
    quantity: int           # 1e-6 units per period or per month
    per: str                # PER_PERIOD | PER_MONTH
    starts_at: datetime
    ends_at: datetime
    used: int = 0           # drawn already from this pool: the month's (PER_MONTH) or,
                            # for a late adjustment, the period's (PER_PERIOD)


@dataclass(frozen=True)
class Need:
    resource_id: str
    product: str
    item: str
    region: str
    quantity: int           # the period's usage of this line, 1e-6 units


@dataclass(frozen=True)
class Cover:
    resource_id: str
    item: str
    package_id: str
    quantity: int


def in_force(package: Package, at: datetime) -> bool:
    return package.starts_at <= at < package.ends_at


def _left(package: Package) -> int:
    return max(package.quantity - package.used, 0)


def _order(packages: list[Package]) -> list[Package]:
    return sorted(packages, key=lambda p: (p.ends_at, p.id))


def cover(needs: list[Need], packages: list[Package], period_start: datetime) -> list[Cover]:
    """How the packages in force at ``period_start`` cover ``needs`` (one account, one period).

    Never covers more than a line used, nor more than a package has left.
    """
    left = {p.id: _left(p) for p in packages}
    usable = [p for p in _order(packages) if in_force(p, period_start)]
    covers: list[Cover] = []
    for need in sorted(needs, key=lambda n: (n.resource_id, n.item)):
        wanted = need.quantity
        for package in usable:
            if wanted <= 0:
                break
            if (package.product, package.item, package.region) != (need.product, need.item,
                                                                   need.region):
                continue
            take = min(wanted, left[package.id])
            if take > 0:
                covers.append(Cover(need.resource_id, need.item, package.id, take))
                left[package.id] -= take
                wanted -= take
    return covers


def covered_by_line(covers: list[Cover]) -> dict[tuple[str, str], int]:
    """Total covered quantity per (resource, item)."""
    total: dict[tuple[str, str], int] = {}
    for c in covers:
        total[(c.resource_id, c.item)] = total.get((c.resource_id, c.item), 0) + c.quantity
    return total


__all__ = ["PER_PERIOD", "PER_MONTH", "PERS", "Package", "Need", "Cover", "in_force", "cover",
           "covered_by_line"]
