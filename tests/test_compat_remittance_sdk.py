"""A corporate remittance's credit through the official Tencent Cloud Billing SDK
(BAL-5, XTR-5): DescribeBillList shows it as a ``recharge`` whose DeductMode (the
SubPayType) is ``bank-enterprice`` and whose PayChannel is ``bank``; filtering by
PayType ``recharge`` and SubPayType ``bank-enterprice`` finds it, ``offline`` does not."""

from __future__ import annotations

from datetime import date

import pytest

from feecenter.db.engine import transaction
from feecenter.remittances import service as remittances
from feecenter.remittances.transfer import Transfer
from tests.helpers import OPS, add_cash, new_account
from tests.test_compat_sdk import bill_lister

ENTITY = "北京示例科技有限公司"


def remit(rt, uin: int, fen: int) -> None:
    with transaction(rt.engine) as conn:
        details = remittances.receiving_details(conn, rt.clock, OPS, uin)
        number = details["accounts"][0]["number"]
        remittances.import_transfers(conn, rt.clock, OPS, [Transfer(
            bank_reference="SDK-1", receiving_account=number[:15], payee_account=number,
            payer_name=ENTITY, payer_account="6222020200112233", payer_bank="中国银行",
            amount=fen, currency="CNY", memo="货款", value_date=date(2026, 12, 7))],
            source="mt940", digest="sdk-test")


@pytest.mark.spec("BAL-5", "XTR-5")
def test_a_remittance_credit_is_a_bank_enterprice_recharge_in_describe_bill_list(live_server):
    rt, address = live_server
    uin = new_account(rt, "sdk-remit", enterprise_name=ENTITY, uscc="91110108551385082Q")
    add_cash(rt, uin, 10_00)  # an operator's adjustment beside it: not a remittance
    remit(rt, uin, 888_88)
    listing = bill_lister(rt, address, uin)

    everything = listing()
    remittance = next(t for t in everything.TransactionList if t.DeductMode == "bank-enterprice")
    assert (remittance.ActionType, remittance.PayChannel) == ("recharge", "bank")
    assert (remittance.Amount, remittance.Cash, remittance.Balance) == (88888, 89888, 89888)
    assert remittance.OperationInfo == "SDK-1"  # the bank reference
    filtered = listing(PayType=["recharge"], SubPayType=["bank-enterprice"])
    assert filtered.Total == 1 and filtered.TransactionList[0].BillId == remittance.BillId
    assert filtered.RechargeAmount == 88888
    assert listing(SubPayType=["offline"]).Total == 0
