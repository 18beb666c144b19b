"""Small builders shared by tests (no fixtures here, plain functions).

Writes go through production's unit of work, ``transaction(engine)``
(db/engine.py), as the API, CLI and jobs do; reads use ``engine.connect()``,
as production's read paths do.
"""

from __future__ import annotations

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import SYSTEM, operator
from feecenter.db.engine import transaction
from feecenter.funds import service as funds

OPS = operator("test-operator")


def new_account(rt, name: str = "acme", **kw) -> int:
    with transaction(rt.engine) as conn:
        return accounts.create_account(conn, rt.clock, OPS, accounts.NewAccount(name=name, **kw))


def add_cash(rt, uin: int, fen: int, key: str | None = None):
    with transaction(rt.engine) as conn:
        return funds.adjust(conn, rt.clock, OPS, uin, sub_account="cash", amount=fen,
                            reason="test top-up", key=key or f"cash-{uin}-{fen}-{id(conn)}")


def add_gift(rt, uin: int, fen: int, key: str | None = None):
    with transaction(rt.engine) as conn:
        return funds.adjust(conn, rt.clock, OPS, uin, sub_account="gift", amount=fen,
                            reason="test gift", key=key or f"gift-{uin}-{fen}-{id(conn)}")


def balance(rt, uin: int):
    with rt.engine.connect() as conn:
        return funds.balance_view(conn, rt.clock, SYSTEM, uin)


def revenue(rt) -> int:
    with transaction(rt.engine) as conn:
        return funds.platform_account(conn, rt.clock, "revenue")


# ---------------------------------------------------------------- shop: catalog, orders, payment

def load_sample_catalog(rt) -> None:
    """The shipped sample catalog (cvm, cbs, cos, cdn, cdb, ssl, and the cospack resource packages) loaded by an operator."""
    from feecenter.catalog import service as catalog

    with transaction(rt.engine) as conn:
        catalog.load_catalog(conn, rt.clock, OPS, catalog.sample_catalog_text(), "sample.yaml")


def buy(rt, uin: int, *items, **each) -> list[int]:
    """One purchase (one big deal) of ``items``: (product, spec_item, months, region)
    tuples; none: one month of a cvm S5.MEDIUM4 in ap-guangzhou. ``each``: more
    NewPurchase fields for every item (count, promo_term_days, project_id …)."""
    from feecenter.orders import service as orders

    items = items or (("cvm", "S5.MEDIUM4", 1, "ap-guangzhou"),)
    with transaction(rt.engine) as conn:
        return orders.create_purchase(conn, rt.clock, SYSTEM, uin, [
            orders.NewPurchase(product=p, spec_item=s, months=m, region=r, **each)
            for p, s, m, r in items])


def pay(rt, uin: int, order_ids, key: str | None = None) -> dict:
    """``orders.pay`` in a transaction of its own (key: one derived from the orders)."""
    from feecenter.orders import service as orders

    order_ids = list(order_ids)
    with transaction(rt.engine) as conn:
        return orders.pay(conn, rt.clock, SYSTEM, uin, order_ids,
                          key=key or f"pay-{'-'.join(map(str, order_ids))}")


def row_counts(rt, *tables) -> tuple[int, ...]:
    """How many rows each table holds (to prove a refusal wrote nothing)."""
    from sqlalchemy import func, select

    with rt.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                     for t in tables)


def assert_reconciled(rt, uin: int | None = None) -> None:
    """Every cached balance equals its postings, every transaction sums to zero (BAL-6)."""
    from feecenter.ledger.reconcile import reconcile

    with rt.engine.connect() as conn:
        assert reconcile(conn, uin) == []


def api_key(rt, uin: int):
    """A new API key of the account (secret_id, secret_key) for signed clients."""
    from feecenter.auth import service as auth

    with transaction(rt.engine) as conn:
        return auth.create_api_key(conn, rt.clock, OPS, uin, None)


# ---------------------------------------------------------------- concurrency

def run_threads(count: int, target, *, timeout_s: float = 120) -> list[BaseException]:
    """Run ``target(i)`` for i in 0..count-1 on real threads released together by a
    barrier; returns what they raised (the caller asserts). A hung thread fails."""
    import threading

    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i):
        try:
            start.wait(timeout=30)
            target(i)
        except BaseException as exc:  # noqa: BLE001 - reported to the caller
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout_s)
    assert not any(t.is_alive() for t in threads), "a worker thread hung"
    return errors
