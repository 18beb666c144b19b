"""Small builders shared by tests (no fixtures here, plain functions)."""

from __future__ import annotations

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.funds import service as funds

OPS = operator("test-operator")


def new_account(rt, name: str = "acme", **kw) -> int:
    with rt.engine.begin() as conn:
        return accounts.create_account(conn, rt.clock, OPS, accounts.NewAccount(name=name, **kw))


def add_cash(rt, uin: int, fen: int, key: str | None = None):
    with rt.engine.begin() as conn:
        return funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=fen,
                            reason="test top-up", key=key or f"cash-{uin}-{fen}-{id(conn)}")


def add_gift(rt, uin: int, fen: int, key: str | None = None):
    with rt.engine.begin() as conn:
        return funds.adjust(conn, rt.clock, OPS, uin, sub_account="gift", amount=fen,
                            reason="test gift", key=key or f"gift-{uin}-{fen}-{id(conn)}")


def balance(rt, uin: int):
    with rt.engine.connect() as conn:
        return funds.balance_view(conn, rt.clock, SYSTEM, uin)


def revenue(rt) -> int:
    with rt.engine.begin() as conn:
        return funds.platform_account(conn, rt.clock, "revenue")
