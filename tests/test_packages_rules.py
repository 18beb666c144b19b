"""Resource package coverage rules (SET-10), pure."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feecenter.packages.rules import PER_MONTH, PER_PERIOD, Need, Package, cover, covered_by_line

T0 = datetime(2026, 3, 1, tzinfo=timezone.utc)
GB = 1_000_000


def _pkg(pid, quantity, per=PER_PERIOD, *, item="storage_std", region="ap-guangzhou", used=0,
         ends=T0 + timedelta(days=31), starts=T0):
    return Package(pid, "cos", item, region, quantity, per, starts, ends, used)


def _need(rid, quantity, item="storage_std", region="ap-guangzhou"):
    return Need(rid, "cos", item, region, quantity)


@pytest.mark.spec("SET-10")
def test_capacity_package_covers_up_to_its_quantity_and_the_rest_is_charged():
    covers = cover([_need("cos-a", 60 * GB), _need("cos-b", 70 * GB)],
                   [_pkg("pkg-1", 100 * GB)], T0 + timedelta(days=3))
    assert [(c.resource_id, c.package_id, c.quantity) for c in covers] == [
        ("cos-a", "pkg-1", 60 * GB), ("cos-b", "pkg-1", 40 * GB)]
    assert covered_by_line(covers) == {("cos-a", "storage_std"): 60 * GB,
                                       ("cos-b", "storage_std"): 40 * GB}


@pytest.mark.spec("SET-10")
def test_monthly_pool_continues_from_what_the_month_used():
    pool = _pkg("pkg-t", 100 * GB, PER_MONTH, item="traffic_out", used=90 * GB)
    covers = cover([_need("cos-a", 25 * GB, item="traffic_out")], [pool], T0)
    assert [(c.package_id, c.quantity) for c in covers] == [("pkg-t", 10 * GB)]


@pytest.mark.spec("SET-10")
def test_only_matching_packages_in_force_cover_and_the_soonest_expiring_first():
    later = _pkg("pkg-late", 50 * GB, ends=T0 + timedelta(days=60))
    sooner = _pkg("pkg-soon", 50 * GB, ends=T0 + timedelta(days=10))
    other_region = _pkg("pkg-sh", 500 * GB, region="ap-shanghai")
    not_yet = _pkg("pkg-next", 500 * GB, starts=T0 + timedelta(days=5))
    covers = cover([_need("cos-a", 80 * GB)], [later, other_region, sooner, not_yet],
                   T0 + timedelta(days=1))
    assert [(c.package_id, c.quantity) for c in covers] == [("pkg-soon", 50 * GB),
                                                             ("pkg-late", 30 * GB)]
    expired = cover([_need("cos-a", 80 * GB)], [sooner], T0 + timedelta(days=10))
    assert expired == []


lines = st.lists(st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.sampled_from(["a", "b"]),
                           st.integers(0, 10**9)), max_size=8, unique_by=lambda t: t[:2])
pools = st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(0, 10**9),
                           st.sampled_from([PER_PERIOD, PER_MONTH]), st.integers(0, 10**9)),
                 max_size=5)


@pytest.mark.spec("SET-10")
@given(lines, pools)
def test_coverage_never_exceeds_usage_nor_what_a_package_has_left(line_specs, pool_specs):
    needs = [_need(r, q, item=i) for r, i, q in line_specs]
    packages = [_pkg(f"p{n}", q, per, item=i, used=used)
                for n, (i, q, per, used) in enumerate(pool_specs)]
    covers = cover(needs, packages, T0)
    used = {(n.resource_id, n.item): n.quantity for n in needs}
    for key, total in covered_by_line(covers).items():
        assert 0 < total <= used[key]
    for p in packages:
        drawn = sum(c.quantity for c in covers if c.package_id == p.id)
        left = p.quantity - p.used
        assert drawn <= max(left, 0)
        assert all(c.item == p.item for c in covers if c.package_id == p.id)
    assert cover(needs, list(reversed(packages)), T0) == covers  # order of input irrelevant
