"""The operators' payout routes over signed REST (WDR-3, WDR-5): the failed-review
queue, paying a failed withdrawal offline, the payout queue, a batch exported and
its result imported, returning to cash; customers are refused, bad input is a 400
naming the field, nothing written. The provider here is a stand-in answering
ABNORMAL (the sandbox path is in test_withdrawal_payouts.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from feecenter.accounts.tables import customers
from feecenter.db.engine import transaction
from feecenter.jobs.loader import load_all
from feecenter.jobs.registry import HOURLY
from feecenter.recharges.gateway import ProviderRefund
from feecenter.withdrawals import sending
from tests.helpers import assert_reconciled, balance
from tests.rest_harness import rest_shop  # noqa: F401 - fixture
from tests.withdrawal_seed import paid_recharge, withdraw

BANK = {"holder": "示例科技有限公司", "account_no": "6222020200112233445", "bank": "中国工商银行",
        "branch": "深圳科技园支行"}


class Closed:
    """A provider whose every refund ends ABNORMAL (the payer's account closed)."""

    channel = "wechat"

    def refund(self, out_trade_no, out_refund_no, amount, total, reason):
        return ProviderRefund(out_refund_no, f"R-{out_refund_no}", "ABNORMAL", amount)

    def query_refund(self, out_refund_no):
        return None


def failed_withdrawal(shop, fen: int, key: str) -> dict:
    paid_recharge(shop.rt, shop.uin, fen)
    made = withdraw(shop.rt, shop.uin, fen, key=key)
    assert sending.send_pending(shop.rt.engine, shop.rt.clock, {"wechat": Closed()},
                                withdrawal_id=made["id"])["failed"] == 1
    return made


@pytest.fixture
def shop(rest_shop):  # noqa: F811
    with transaction(rest_shop.rt.engine) as conn:
        conn.execute(update(customers).where(customers.c.uin == rest_shop.uin).values(
            realname_state="enterprise", entity_name=BANK["holder"]))
    return rest_shop


def test_the_pay_out_job_is_registered():
    assert load_all().get("withdrawals.pay_out").cadence == HOURLY


@pytest.mark.spec("WDR-5", "WDR-3")
def test_operators_pay_a_failed_withdrawal_offline_through_a_batch_over_rest(shop):
    made = failed_withdrawal(shop, 30_00, "rest-1")
    ops, customer = shop.operator.send, shop.customer.send
    assert customer("GET", "/api/v1/ops/withdrawals/failed").status_code == 403
    failed = ops("GET", "/api/v1/ops/withdrawals/failed")
    assert failed.status_code == 200, failed.text
    assert [(w["id"], w["amount"]) for w in failed.json()["items"]] == [(made["id"], "30.00")]
    path = f"/api/v1/ops/withdrawals/{made['id']}/pay-offline"
    bad = ops("POST", path, {"reason": "改线下", "bank": {**BANK, "holder": "别人"}})
    assert (bad.status_code, bad.json()["error"]["field"]) == (400, "bank.holder"), bad.text
    assert ops("POST", path, {"reason": "改线下"}).status_code == 400
    paid_offline = ops("POST", path, {"reason": "原账户已注销", "bank": BANK})
    assert paid_offline.status_code == 200, paid_offline.text
    assert [leg["state"] for leg in paid_offline.json()["legs"]] == ["rerouted", "queued"]
    assert ops("POST", path, {"reason": "again", "bank": BANK}).status_code == 409
    queue = ops("GET", "/api/v1/ops/payouts").json()["items"]
    assert [(leg["holder"], leg["amount"]) for leg in queue] == [(BANK["holder"], "30.00")]
    batch = ops("POST", "/api/v1/ops/payout-batches")
    assert batch.status_code == 201, batch.text
    assert batch.json()["legs"] == 1 and "30.00" in batch.json()["csv"]  # a JSON string
    result_path = f"/api/v1/ops/payout-batches/{batch.json()['batch_id']}/result"
    wrong = ops("POST", result_path, {"lines": ["leg,result"]})
    assert (wrong.status_code, wrong.json()["error"]["field"]) == (400, "csv")
    imported = ops("POST", result_path, {"lines": ["leg_id,result,reason", f"{queue[0]['id']},paid,"]})
    assert imported.status_code == 200, imported.text
    assert (imported.json()["paid"], imported.json()["already"]) == (1, 0)
    assert shop.customer.send("GET", f"/api/v1/withdrawals/{made['id']}").json()["state"] == "paid"
    assert_reconciled(shop.rt)


@pytest.mark.spec("WDR-5")
def test_operators_return_a_failed_withdrawal_to_cash_over_rest(shop):
    made = failed_withdrawal(shop, 12_00, "rest-2")
    before = balance(shop.rt, shop.uin).cash
    path = f"/api/v1/ops/withdrawals/{made['id']}/return"
    assert shop.customer.send("POST", path, {"reason": "x"}).status_code == 403
    assert shop.operator.send("POST", path, {}).status_code == 400
    back = shop.operator.send("POST", path, {"reason": "客户要求退回余额"})
    assert back.status_code == 200, back.text
    assert (back.json()["returned"], back.json()["state"]) == ("12.00", "returned")
    assert balance(shop.rt, shop.uin).cash - before == 12_00
    assert shop.operator.send("POST", path, {"reason": "again"}).status_code == 409
    assert_reconciled(shop.rt)


@pytest.mark.spec("WDR-2", "WDR-5")
def test_a_remittance_leg_is_paid_to_the_remitter_and_a_rerouted_leg_to_the_bank_given(rt):
    """One withdrawal: a recharge leg that fails and is paid offline, and a remittance
    leg; the batch pays each to its own payee."""
    import csv
    import io

    from sqlalchemy import select

    from feecenter.remittances.tables import remittances
    from feecenter.withdrawals import payouts
    from tests.helpers import OPS
    from tests.test_remittances import company, do_import, line

    uin, number, _ = company(rt)
    do_import(rt, [line("R1", number, 200_00)])
    rt.clock.advance(days=1)
    paid_recharge(rt, uin, 50_00)
    made = withdraw(rt, uin, 120_00)
    sending.send_pending(rt.engine, rt.clock, {"wechat": Closed()}, withdrawal_id=made["id"])
    with transaction(rt.engine) as conn:
        entity = conn.execute(select(customers.c.entity_name).where(customers.c.uin == uin)).scalar()
        remitter = conn.execute(select(remittances.c.payer_name, remittances.c.payer_account)
                                .where(remittances.c.uin == uin)).one()
        payouts.pay_offline(conn, rt.clock, OPS, made["id"], {**BANK, "holder": entity},
                            reason="原账户已注销")
        batch = payouts.export_batch(conn, rt.clock, OPS)
    rows = {r["amount"]: (r["holder"], r["account_no"])
            for r in csv.DictReader(io.StringIO(batch["csv"]))}
    assert rows == {"70.00": tuple(remitter), "50.00": (entity, BANK["account_no"])}
    assert_reconciled(rt)
