"""Builders shared by the withdrawal tests: paid recharges (credited through the
recharges service as a provider's payment report credits them) and applying."""

from __future__ import annotations

from itertools import count

from sqlalchemy import insert

from feecenter.accounts.permissions import SYSTEM
from feecenter.clock import db_time
from feecenter.db.engine import transaction
from feecenter.recharges import service as recharges
from feecenter.recharges.gateway import ProviderPayment
from feecenter.recharges.rules import PAYMENT_TERM
from feecenter.recharges.tables import recharges as recharges_table
from feecenter.withdrawals import service

_NUMBERS = count(1)


def paid_recharge(rt, uin: int, amount: int, channel: str = "wechat",
                  intl_card: bool = False) -> int:
    """A recharge of ``amount`` paid now on ``channel`` and credited (RCH-5)."""
    n = next(_NUMBERS)
    now = rt.clock.now()
    with transaction(rt.engine) as conn:
        row = conn.execute(insert(recharges_table).values(
            uin=uin, amount=amount, channel=channel, payer=f"payer-{uin}",
            out_trade_no=f"T{uin}x{n}", state="pending", intl_card=False,
            created_by="test", created_at=db_time(now), expires_at=db_time(now + PAYMENT_TERM))
            .returning(recharges_table)).mappings().one()
        outcome = recharges.apply_payment(conn, rt.clock, dict(row), ProviderPayment(
            out_trade_no=row["out_trade_no"], state="paid", amount=amount,
            provider_txn_id=f"P{n}", payer=f"payer-{uin}", intl_card=intl_card))
    assert outcome == "credited"
    return row["id"]


def withdraw(rt, uin: int, amount: int, route: str = "original", key: str = "w1",
             actor=SYSTEM, **kw) -> dict:
    with transaction(rt.engine) as conn:
        return service.apply(conn, rt.clock, actor, uin, amount=amount, route=route, key=key,
                             **kw)


def preview(rt, uin: int, amount: int, route: str = "original", actor=SYSTEM, **kw) -> dict:
    with rt.engine.connect() as conn:
        return service.preview(conn, rt.clock, actor, uin, amount=amount, route=route, **kw)


def takeable(rt, uin: int) -> int:
    with rt.engine.connect() as conn:
        return service.withdrawable(conn, rt.clock, SYSTEM, uin)["takeable"]
