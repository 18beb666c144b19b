"""Renewal reminders (RNW-3, RNW-4): once a business day, the owners of prepaid
resources within their reminder window (7 days before the expiry day to 6
days after, ``rules.in_reminder_window``) are told what will happen.

Owns no table: the notifications' idempotency keys are the record.

Which resources: prepaid, running or stopped for expiry (an open
``resource_stops`` row with reason "expired"), not released; resources
stopped for another reason are left out.

- Auto-renewal on (the resource's own flag, else the account's default, read
  every day: cancelling it restores the expiry reminders the next day, RNW-4)
  and the resource still running: its renewal of its term is priced as
  ``orders.create_renewal`` prices it (``catalog.quote`` at the price in force
  now, rounded to fen). An account's auto-renewals in the window are counted
  in expiry order against what a payment could use now (gift + cash + unused
  credit, ``funds.spendable_many``; coupons left out, so a reminder errs on
  the side of telling; nothing while in arrears): the ones the balance still
  covers get no reminder, the rest a recharge reminder (提醒充值).
- Auto-renewal off, a resource stopped for expiry (after a stop only a manual
  renewal recovers it, RNW-2), or one whose renewal cannot be priced (no
  price in force, a term the product no longer sells): the expiry reminder
  (到期提醒): expires / expired on X, released on Y.

One message per account, day and kind (recharge, expiry) listing its
resources, keyed ``renewal.remind:{kind}:{uin}:{day}``: a rerun, or a run
after a crash (each batch of accounts commits on its own), sends nothing
twice. Set-based: accounts in batches of 500, a few queries per batch,
``notify_many``; one price book for the whole run.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import Connection, Engine, and_, false, func, select

from feecenter.catalog import service as catalog
from feecenter.catalog.pricebook import PriceBook
from feecenter.catalog.tables import products
from feecenter.clock import Clock, business_time_text, db_time, from_db_time
from feecenter.db.engine import transaction
from feecenter.errors import InvalidInput, NotFound
from feecenter.funds import service as funds
from feecenter.money import format_yuan, round_rated_to_fen
from feecenter.notifications import service as notifications
from feecenter.notifications.service import Notice
from feecenter.orders import rules as order_rules
from feecenter.renewal import alignment, rules
from feecenter.renewal.tables import renewal_accounts, renewal_settings
from feecenter.resources import service as resources_service
from feecenter.resources.tables import resources

ACCOUNTS_PER_BATCH = 500  # one transaction, one notify_many
MAX_LINES = 50  # resources named in one message; the rest counted
EXPIRY, RECHARGE = "renewal_expiry_reminder", "renewal_recharge_reminder"
COMBINED = "renewal_reminder"  # both on one day: one message
STOP_REASON = rules.EXPIRED  # the open stop of a resource stopped at expiry (RNW-6)
_IDS_PER_QUERY = 1000

_R, _S, _A = resources.c, renewal_settings.c, renewal_accounts.c


@dataclass(frozen=True)
class Due:
    """A resource within its reminder window on the day."""

    id: str
    uin: int
    name: str | None
    product: str
    region: str
    spec_item: str
    quantity: int
    expiry: datetime  # aware UTC
    auto_renew: bool
    months: int
    recovery_days: int
    retry_days: int
    stopped_at: datetime | None = None  # stopped for expiry: when
    renewal: int | None = None  # fen: its auto-renewal, when it can be priced
    unified_day: int | None = None  # RNW-5: the account's; the renewal pays the extra days


def remind(engine: Engine, clock: Clock, day: date) -> dict:
    """Send the reminders of business day ``day``. Idempotent. Returns counts: the
    accounts with resources in the window, the auto-renewals the balance covers, and
    the resources each kind of reminder names (a rerun counts them again but sends
    nothing)."""
    with transaction(engine) as conn:
        uins = _accounts_with_due(conn, day)
        book = PriceBook.load(conn, clock.now(), "prepaid")
    counts = {"accounts": len(uins), "covered": 0, RECHARGE: 0, EXPIRY: 0}
    for start in range(0, len(uins), ACCOUNTS_PER_BATCH):
        with transaction(engine) as conn:
            batch = remind_accounts(conn, clock, book, day, uins[start:start + ACCOUNTS_PER_BATCH])
        for key, value in batch.items():
            counts[key] += value
    return counts


def _window(day: date) -> tuple[datetime, datetime]:
    """Expiry times that may fall in ``day``'s window (checked exactly afterwards)."""
    return (db_time(rules.start_of_day(day - timedelta(days=rules.REMIND_AFTER_DAYS))),
            db_time(rules.start_of_day(day + timedelta(days=rules.REMIND_BEFORE_DAYS + 1))))


def _candidates(day: date, *extra):
    """Prepaid, not released, expiring around ``day`` (and ``extra`` conditions)."""
    low, high = _window(day)
    return and_(_R.pay_mode == "prepaid", _R.state.in_(("running", "stopped")),
                _R.period_end >= low, _R.period_end < high, *extra)


def _accounts_with_due(conn: Connection, day: date) -> list[int]:
    return list(conn.execute(select(_R.uin).where(_candidates(day))
                             .group_by(_R.uin).order_by(_R.uin)).scalars())


def remind_accounts(conn: Connection, clock: Clock, book: PriceBook, day: date,
                    uins: list[int]) -> dict:
    """The reminders of ``day`` for some accounts, in the caller's transaction."""
    due = _priced(conn, book, _due(conn, day, uins))
    spendable = funds.spendable_many(conn, clock, sorted({d.uin for d in due if d.renewal is not None}))
    by_account: dict[int, list[Due]] = {}
    for item in due:
        by_account.setdefault(item.uin, []).append(item)
    counts = {"covered": 0, RECHARGE: 0, EXPIRY: 0}
    notices = []
    for uin, items in by_account.items():
        short, expiring, covered = split(items, spendable.get(uin, 0))
        counts["covered"] += covered
        if short:  # one message a day: the expiring ones ride along (they share its key)
            notices.append(_recharge_notice(uin, day, short, spendable.get(uin, 0), expiring))
        elif expiring:
            notices.append(_expiry_notice(uin, day, expiring))
        counts[RECHARGE] += len(short)
        counts[EXPIRY] += len(expiring)
    notifications.notify_many(conn, clock, notices)
    return counts


def _due(conn: Connection, day: date, uins: list[int]) -> list[Due]:
    """The accounts' resources in ``day``'s window with their flag and term in force."""
    flag = func.coalesce(_S.auto_renew, _A.auto_renew_default, false())
    rows = conn.execute(
        select(_R.id, _R.uin, _R.name, _R.product_code, _R.region, _R.spec_item, _R.quantity,
               _R.state, _R.period_end, flag.label("auto_renew"),
               func.coalesce(_S.months, 1).label("months"), products.c.recovery_days,
               products.c.auto_renew_retry_days, _A.unified_day)
        .select_from(resources.join(products, products.c.code == _R.product_code)
                     .outerjoin(renewal_settings, _S.resource_id == _R.id)
                     .outerjoin(renewal_accounts, _A.uin == _R.uin))
        .where(_candidates(day, _R.uin.in_(uins)))
        .order_by(_R.uin, _R.period_end, _R.id)).all()
    rows = [r for r in rows if rules.in_reminder_window(from_db_time(r.period_end), day)]
    stopped = [r.id for r in rows if r.state == "stopped"]
    stops = {}
    for start in range(0, len(stopped), _IDS_PER_QUERY):
        stops.update(resources_service.open_stops(conn, stopped[start:start + _IDS_PER_QUERY]))
    found = []
    for r in rows:
        stop = stops.get(r.id)
        if r.state == "stopped" and (stop is None or stop["reason"] != STOP_REASON):
            continue  # stopped for another reason (arrears): not an expiry matter
        found.append(Due(r.id, r.uin, r.name, r.product_code, r.region, r.spec_item,
                         r.quantity, from_db_time(r.period_end), bool(r.auto_renew),
                         r.months or 1, r.recovery_days, r.auto_renew_retry_days,
                         from_db_time(stop["stopped_at"]) if stop else None,
                         unified_day=r.unified_day))
    return found


def _priced(conn: Connection, book: PriceBook, due: list[Due]) -> list[Due]:
    """Each running auto-renewed resource with the price of its renewal (fen), as
    ``orders.create_renewal`` would price it now; None when it cannot be."""
    return [replace(d, renewal=renewal_price(conn, book, d))
            if d.auto_renew and d.stopped_at is None else d for d in due]


def renewal_price(conn: Connection, book: PriceBook, due: Due) -> int | None:
    product = book.products.get(due.product)
    if product is None:
        return None
    try:
        catalog.check_prepaid_months(product, due.months)
        quote = book.quote(conn, due.uin, due.product, due.spec_item, due.region,
                           due.quantity, months=due.months)
        extra = _aligned_extra(conn, book, due)
    except (InvalidInput, NotFound):  # no renewal possible: an expiry matter
        return None
    return round_rated_to_fen(quote.amount) + extra


def _aligned_extra(conn: Connection, book: PriceBook, due: Due) -> int:
    """Fen of the extra days a renewal aligned to the unified day adds (RNW-5), priced
    as ``orders.create_renewal`` prices them; 0 without a unified day."""
    if due.unified_day is None:
        return 0
    days = alignment.align(due.expiry, due.months, due.unified_day).days_by_month
    if not days:
        return 0
    monthly = book.quote(conn, due.uin, due.product, due.spec_item, due.region, due.quantity,
                         months=1)
    return order_rules.prorated_days(monthly.amount, list(days))


def split(items: list[Due], spendable: int) -> tuple[list[Due], list[Due], int]:
    """(short, expiring, covered count) of one account's resources due: auto-renewals
    are counted in expiry order against ``spendable``; the first one it no longer
    covers and every later one are short (RNW-3). The rest are expiry reminders."""
    short, expiring, covered, total = [], [], 0, 0
    for item in sorted(items, key=lambda d: (d.expiry, d.id)):
        if item.renewal is None:
            expiring.append(item)
            continue
        total += item.renewal
        if total <= spendable:
            covered += 1
        else:
            short.append(item)
    return short, expiring, covered


def _key(uin: int, day: date) -> str:
    """One reminder per account and day, whichever kind it is."""
    return f"renewal.remind:{uin}:{day.isoformat()}"


def _lines(items: list[Due], last_column) -> str:
    lines = [f"{_label(d)} | {d.product} | {d.region} | {business_time_text(d.expiry)} | "
             f"{last_column(d)}" for d in items[:MAX_LINES]]
    if len(items) > MAX_LINES:
        lines.append(f"… +{len(items) - MAX_LINES}")
    return "\n".join(lines)


def _label(item: Due) -> str:
    return f"{item.id} ({item.name})" if item.name else item.id


def release_time(item: Due) -> datetime:
    """When an expiring resource is released if nobody renews it (RNW-6)."""
    stopped = item.stopped_at or rules.stop_at(item.expiry, item.auto_renew, item.retry_days)
    return rules.release_at(stopped, item.recovery_days)


def _expiry_notice(uin: int, day: date, items: list[Due]) -> Notice:
    text = _lines(items, lambda d: business_time_text(release_time(d)))
    return Notice(uin, EXPIRY, {"day": day.isoformat(), "count": len(items), "resources": text},
                  _key(uin, day))


def _recharge_notice(uin: int, day: date, items: list[Due], spendable: int,
                     expiring: list[Due]) -> Notice:
    """The recharge reminder; with resources expiring without auto-renewal too, the
    combined reminder (one message per account and day)."""
    params = {"day": day.isoformat(), "count": len(items),
              "resources": _lines(items, lambda d: format_yuan(d.renewal)),
              "amount": format_yuan(sum(d.renewal for d in items)),
              "available": format_yuan(spendable)}
    if not expiring:
        return Notice(uin, RECHARGE, params, _key(uin, day))
    params.update(expiring_count=len(expiring),
                  expiring=_lines(expiring, lambda d: business_time_text(release_time(d))))
    return Notice(uin, COMBINED, params, _key(uin, day))
