"""Withdrawals through the official Tencent Cloud Billing SDK (BAL-5, WDR-3, WDR-4):
DescribeBillList shows the money held at application as an entry of ActionType
``cash`` (Tencent's 提现, named so in the console's 收支明细) whose DeductMode (the
SubPayType) is the leg's route, summed into WithdrawAmount; filtering by PayType
``cash`` and SubPayType ``offline`` finds it, ``original`` does not. A withdrawal
returned to cash after a failed payout is a ``cash`` entry of +amount (提现退回)."""

from __future__ import annotations


import pytest

from feecenter.console import i18n
from feecenter.console.ledger import TYPE_LABELS
from feecenter.db.engine import transaction
from feecenter.withdrawals import service
from tests.helpers import OPS, add_cash, new_account
from tests.test_compat_sdk import bill_lister

BANK = {"holder": "北京示例科技有限公司", "account_no": "6222020200112233",
        "bank": "中国银行", "branch": "北京海淀支行"}


def withdraw(rt, uin: int, fen: int, key: str) -> dict:
    with transaction(rt.engine) as conn:
        return service.apply(conn, rt.clock, OPS, uin, amount=fen, route="offline", key=key,
                             bank=BANK)


@pytest.mark.spec("BAL-5", "WDR-4")
def test_a_withdrawal_is_a_cash_entry_with_its_route_in_describe_bill_list(live_server):
    rt, address = live_server
    uin = new_account(rt, "sdk-withdraw", enterprise_name=BANK["holder"],
                      uscc="91110108551385082Q")
    add_cash(rt, uin, 100_00)
    withdraw(rt, uin, 30_00, "sdk-wdr-1")
    listing = bill_lister(rt, address, uin)

    everything = listing()
    held = next(t for t in everything.TransactionList if t.ActionType == "cash")
    assert held.DeductMode == "offline"
    assert (held.Amount, held.Cash, held.Balance) == (-30_00, 70_00, 70_00)
    assert everything.WithdrawAmount == -30_00
    filtered = listing(PayType=["cash"], SubPayType=["offline"])
    assert filtered.Total == 1 and filtered.TransactionList[0].BillId == held.BillId
    assert listing(PayType=["cash"], SubPayType=["original"]).Total == 0
    # the ActionTypeName the console's 收支明细 and its CSV show for it
    assert i18n.translations("zh-CN").gettext(TYPE_LABELS[held.ActionType]) == "提现"
