"""The renewal settings: each prepaid resource's auto-renew flag and term (RNW-1,
RNW-4), each account's default flag for resources without one, and its unified
expiry day (RNW-5). Changing them is renewal management (ACC-2: owner, admin)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select, update

from feecenter.catalog import service as catalog
from feecenter.resources import service as resources
from feecenter.accounts.permissions import READ_PROFILE, RENEWAL, Actor, require
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time
from feecenter.db.upsert import insert_if_absent
from feecenter.errors import Conflict, invalid
from feecenter.renewal.tables import renewal_accounts, renewal_settings

MAX_BATCH = 500  # resources changed by one request
UNIFIED_DAYS = range(1, 29)  # RNW-5: a day every month has


@dataclass(frozen=True)
class AccountRenewal:
    auto_renew_default: bool = False
    unified_day: int | None = None


def account_renewal(conn: Connection, uin: int) -> AccountRenewal:
    row = conn.execute(select(renewal_accounts).where(renewal_accounts.c.uin == uin)).first()
    return AccountRenewal(bool(row.auto_renew_default), row.unified_day) if row else AccountRenewal()


def effective(conn: Connection, uin: int, resource_ids: list[str]) -> dict[str, tuple[bool, int]]:
    """resource id -> (auto_renew, months) in force: its own setting, else the
    account's default flag and a 1-month term."""
    default = account_renewal(conn, uin).auto_renew_default
    found = {r.resource_id: (bool(r.auto_renew), r.months or 1) for r in conn.execute(
        select(renewal_settings).where(renewal_settings.c.resource_id.in_(resource_ids)))}
    return {rid: found.get(rid, (default, 1)) for rid in resource_ids}


def _check_flag(value: object, field: str) -> bool:
    if not isinstance(value, bool):
        raise invalid(field, "须为 true 或 false", "must be true or false")
    return value


def _renewable(conn: Connection, uin: int, resource_id: str, months: int | None) -> dict:
    """The resource, refused unless a live prepaid one (``months``: one its product sells)."""
    resource = resources.get_resource(conn, uin, resource_id)
    if resource["pay_mode"] != "prepaid":
        raise invalid("resource_ids", f"资源 {resource_id} 不是包年包月资源，不能设置续费",
                      f"resource {resource_id} is not prepaid: it has no renewal")
    if resource["state"] == "recycled":
        raise Conflict(f"资源 {resource_id} 已释放", f"resource {resource_id} is released",
                       field="resource_ids", state="recycled")
    if months is not None:
        catalog.check_prepaid_months(catalog.get_product(conn, resource["product_code"]), months)
    return resource


def set_auto_renew(conn: Connection, clock: Clock, actor: Actor, uin: int,
                   resource_ids: list[str], *, auto_renew: bool | None = None,
                   months: int | None = None) -> int:
    """Set the auto-renew flag and/or the term of several resources at once (RNW-7's
    batch); all or nothing. Returns how many were set. Turning it off restores the
    normal expiry reminders (RNW-4)."""
    require(actor, uin, RENEWAL)
    if auto_renew is None and months is None:
        raise invalid("auto_renew", "请指定自动续费开关或续费时长", "give auto_renew or months")
    if auto_renew is not None:
        _check_flag(auto_renew, "auto_renew")
    if months is not None and (not isinstance(months, int) or isinstance(months, bool)):
        raise invalid("months", "续费时长须为整数月", "months must be a whole number")
    ids = _check_ids(resource_ids)
    for resource_id in ids:
        _renewable(conn, uin, resource_id, months)
    now = db_time(clock.now())
    current = effective(conn, uin, ids)
    for resource_id in ids:
        flag, term = current[resource_id]
        values = {"auto_renew": flag if auto_renew is None else auto_renew,
                  "months": term if months is None else months, "updated_at": now}
        conn.execute(insert_if_absent(conn, renewal_settings, ["resource_id"]).values(
            resource_id=resource_id, uin=uin, **values))
        conn.execute(update(renewal_settings).where(renewal_settings.c.resource_id == resource_id)
                     .values(**values))
    record_audit(conn, clock, actor, "set_auto_renew", uin,
                 {"resource_ids": ids, "auto_renew": auto_renew, "months": months})
    return len(ids)


def _check_ids(resource_ids: object) -> list[str]:
    if not isinstance(resource_ids, list) or not resource_ids:
        raise invalid("resource_ids", "至少指定一个资源", "name at least one resource")
    if len(resource_ids) > MAX_BATCH:
        raise invalid("resource_ids", f"一次至多 {MAX_BATCH} 个资源",
                      f"at most {MAX_BATCH} resources at a time")
    ids = [resources.resource_ref(r) for r in resource_ids]
    if len(set(ids)) != len(ids):
        raise invalid("resource_ids", "资源重复", "a resource appears twice")
    return ids


def _save_account(conn: Connection, clock: Clock, uin: int, **values) -> None:
    now = db_time(clock.now())
    current = account_renewal(conn, uin)
    row = {"auto_renew_default": current.auto_renew_default, "unified_day": current.unified_day,
           **values, "updated_at": now}
    conn.execute(insert_if_absent(conn, renewal_accounts, ["uin"]).values(uin=uin, **row))
    conn.execute(update(renewal_accounts).where(renewal_accounts.c.uin == uin).values(**row))


def set_account_default(conn: Connection, clock: Clock, actor: Actor, uin: int,
                        auto_renew: bool) -> None:
    """The flag of resources that have none of their own (new purchases)."""
    require(actor, uin, RENEWAL)
    _save_account(conn, clock, uin, auto_renew_default=_check_flag(auto_renew, "auto_renew"))
    record_audit(conn, clock, actor, "set_auto_renew_default", uin, {"auto_renew": auto_renew})


def set_unified_day(conn: Connection, clock: Clock, actor: Actor, uin: int,
                    day: int | None) -> None:
    """RNW-5: the day of the month renewals align resources to (1-28); None turns it
    off. It can be changed at any time; it applies from the next renewal."""
    require(actor, uin, RENEWAL)
    if day is not None and (not isinstance(day, int) or isinstance(day, bool)
                            or day not in UNIFIED_DAYS):
        raise invalid("unified_day", "统一到期日须为每月 1–28 日", "the unified day must be 1-28")
    _save_account(conn, clock, uin, unified_day=day)
    record_audit(conn, clock, actor, "set_unified_day", uin, {"unified_day": day})


def get_account_settings(conn: Connection, actor: Actor, uin: int) -> dict:
    require(actor, uin, READ_PROFILE)
    found = account_renewal(conn, uin)
    return {"auto_renew_default": found.auto_renew_default, "unified_day": found.unified_day}
