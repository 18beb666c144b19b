"""Price-change announcements (RNW-1: price changes are announced to the owners of
affected resources before they apply).

Owns no table: the notifications' idempotency keys are the record, one per
(price version, account): ``renewal.price:{price_list_id}:{uin}``.

Once a business day D (the job ``renewal.announce_prices``, run just after
00:00), every prepaid price-list version that starts from 00:00 of the day
before D up to ``HORIZON_DAYS`` days after 00:00 of D, and whose tiers differ
from the version in force before it, is announced to each account owning a
resource it prices (same product, spec item and region, prepaid, not
released): one message per account naming its resources, the old and new list
price per unit and month, and when it applies. A version loaded for more than
``HORIZON_DAYS`` ahead is announced once it comes within them. A version
loaded to start before the next run (the same day, or backdated) cannot be
announced before it applies: the first run after its start still announces
it (if it started at most a day before), and the catalog load lists such
versions in its summary (``late_prepaid_prices``) so the operator knows. Accounts and resources are read in batches
(500 accounts per transaction, ``notify_many``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, select

from feecenter.catalog.tables import billing_items, price_lists, price_tiers
from feecenter.clock import Clock, business_time_text, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.money import RATE_SCALE
from feecenter.notifications import service as notifications
from feecenter.notifications.service import Notice
from feecenter.renewal import rules
from feecenter.resources.tables import resources

HORIZON_DAYS = 30  # a version is announced from this many days before it applies
ACCOUNTS_PER_BATCH = 500
MAX_LINES = 50
TEMPLATE = "renewal_price_change"

_L, _T, _R = price_lists.c, price_tiers.c, resources.c


@dataclass(frozen=True)
class Version:
    """A prepaid price-list version to announce."""

    id: int
    product: str
    item: str
    region: str
    starts_at: datetime  # aware UTC
    old_price: str
    new_price: str


def announce(engine: Engine, clock: Clock, day: date) -> dict:
    """Announce the price versions due on business day ``day``; returns counts. Idempotent."""
    with transaction(engine) as conn:
        versions = versions_to_announce(conn, day)
    counts = {"versions": len(versions), "accounts": 0, "resources": 0}
    for version in versions:
        with transaction(engine) as conn:
            uins = _owners(conn, version)
        for start in range(0, len(uins), ACCOUNTS_PER_BATCH):
            with transaction(engine) as conn:
                sent = announce_to(conn, clock, version, uins[start:start + ACCOUNTS_PER_BATCH])
            counts["accounts"] += sent[0]
            counts["resources"] += sent[1]
    return counts


def versions_to_announce(conn: Connection, day: date) -> list[Version]:
    """Prepaid versions starting in [00:00 of day - 1, 00:00 of day + HORIZON_DAYS) that
    change the price in force before them."""
    low = rules.start_of_day(day - timedelta(days=1))
    high = rules.start_of_day(day + timedelta(days=HORIZON_DAYS))
    rows = conn.execute(
        select(_L.id, _L.product_code, billing_items.c.code.label("item"), _L.item_id,
               _L.region_code, _L.starts_at)
        .join(billing_items, billing_items.c.id == _L.item_id)
        .where(_L.pay_mode == "prepaid", _L.starts_at >= db_time(low),
               _L.starts_at < db_time(high))
        .order_by(_L.starts_at, _L.id)).all()
    found = []
    for row in rows:
        before = conn.execute(
            select(_L.id).where(_L.item_id == row.item_id, _L.region_code == row.region_code,
                                _L.pay_mode == "prepaid", _L.starts_at < row.starts_at)
            .order_by(_L.starts_at.desc()).limit(1)).scalar()
        new = _tiers(conn, row.id)
        old = _tiers(conn, before) if before is not None else None
        if old == new:
            continue  # the same price again: nothing to announce
        found.append(Version(row.id, row.product_code, row.item, row.region_code,
                             from_db_time(row.starts_at),
                             "-" if old is None else price_text(old), price_text(new)))
    return found


def _tiers(conn: Connection, list_id: int) -> tuple[tuple[int, int | None, int], ...]:
    return tuple(tuple(row) for row in conn.execute(
        select(_T.lower_qty, _T.upper_qty, _T.unit_price)
        .where(_T.price_list_id == list_id).order_by(_T.lower_qty)))


def price_text(tiers) -> str:
    """Yuan per unit and month; graduated tiers joined by " / " (lowest first)."""
    return " / ".join(_yuan(unit_price) for _, _, unit_price in tiers)


def _yuan(rated: int) -> str:
    """1e-8 yuan as yuan with at least two decimals: 17800000000 -> "178.00"."""
    whole, part = divmod(rated, RATE_SCALE)
    decimals = f"{part:08d}".rstrip("0").ljust(2, "0")
    return f"{whole}.{decimals}"


def _affected(version: Version):
    return (_R.pay_mode == "prepaid", _R.product_code == version.product,
            _R.spec_item == version.item, _R.region == version.region,
            _R.state.in_(("running", "stopped")))


def _owners(conn: Connection, version: Version) -> list[int]:
    return list(conn.execute(select(_R.uin).where(*_affected(version))
                             .group_by(_R.uin).order_by(_R.uin)).scalars())


def announce_to(conn: Connection, clock: Clock, version: Version,
                uins: list[int]) -> tuple[int, int]:
    """Notify these accounts of ``version`` (a repeat sends nothing); (accounts, resources)."""
    by_account: dict[int, list] = {}
    for row in conn.execute(select(_R.uin, _R.id, _R.name)
                            .where(*_affected(version), _R.uin.in_(uins))
                            .order_by(_R.uin, _R.id)):
        by_account.setdefault(row.uin, []).append(row)
    notices = [_notice(version, uin, rows) for uin, rows in by_account.items()]
    notifications.notify_many(conn, clock, notices)
    return len(notices), sum(len(rows) for rows in by_account.values())


def _notice(version: Version, uin: int, rows) -> Notice:
    lines = [f"{r.id} ({r.name})" if r.name else r.id for r in rows[:MAX_LINES]]
    if len(rows) > MAX_LINES:
        lines.append(f"… +{len(rows) - MAX_LINES}")
    params = {"product": version.product, "item": version.item, "region": version.region,
              "starts_at": business_time_text(version.starts_at),
              "old_price": version.old_price, "new_price": version.new_price,
              "resources": "\n".join(lines)}
    return Notice(uin, TEMPLATE, params, f"renewal.price:{version.id}:{uin}")

