import pytest

from feecenter.funds import service as funds
from feecenter.ledger.reconcile import reconcile
from tests.helpers import add_cash, add_gift, balance, new_account, revenue


@pytest.mark.spec("BAL-1", "BAL-2", "BAL-3")
def test_gift_then_cash_and_available(rt):
    uin = new_account(rt)
    add_cash(rt, uin, 10_000)
    add_gift(rt, uin, 3_000)
    rev = revenue(rt)
    with rt.engine.begin() as conn:
        funds.spend(conn, rt.clock, uin, 5_000, key="s1", postpaid=False, revenue_account_id=rev)
    view = balance(rt, uin)
    assert (view.cash, view.gift, view.available) == (8_000, 0, 8_000)
    with rt.engine.connect() as conn:
        assert reconcile(conn) == []
