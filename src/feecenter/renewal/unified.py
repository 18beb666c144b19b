"""The unified expiry date's preview (RNW-5): before a renewal is confirmed, per
resource its current expiry, the new expiry (aligned to the account's unified
day when it has one), the term's amount and the extra days' prorated amount.
Owns no table; the price is ``orders.quote_renewal``'s, the very one
``orders.create_renewal`` charges, so the delivered expiry is the one shown.
The rule itself: ``renewal.alignment``; docs/renewal.md, "Unified expiry date".
"""

from __future__ import annotations

from sqlalchemy import Connection

from feecenter.accounts.permissions import RENEWAL, Actor, require
from feecenter.clock import Clock
from feecenter.orders import service as orders
from feecenter.renewal.settings import _check_ids, account_renewal, effective


def preview_renewals(conn: Connection, clock: Clock, actor: Actor, uin: int,
                     resource_ids: list[str], months: int | None = None) -> dict:
    """{"unified_day", "items", "total"}: what renewing each resource would cost and
    give; ``months``: one term for all, None: each resource's own term. Writes
    nothing. Amounts in fen, times aware UTC."""
    require(actor, uin, RENEWAL)
    ids = _check_ids(resource_ids)
    terms = effective(conn, uin, ids)
    items = []
    for resource_id in ids:
        term = months if months is not None else terms[resource_id][1]
        price = orders.quote_renewal(conn, clock, actor, uin, resource_id, term)
        items.append({"resource_id": resource_id, "months": term,
                      "current_expiry": price.start, "term_end": price.term_end,
                      "new_expiry": price.end, "unified_day": price.unified_day,
                      "extra_days": price.extra_days, "term_amount": price.term_amount,
                      "unified_extra": price.unified_extra or 0, "amount": price.amount})
    return {"unified_day": account_renewal(conn, uin).unified_day, "items": items,
            "total": sum(item["amount"] for item in items)}
