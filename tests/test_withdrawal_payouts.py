"""Paying withdrawals out (WDR-2, WDR-4, WDR-5, WDR-6): online legs refunded through
the real WeChat Pay v3 adapter against the sandbox provider, failures held and
notified, query before retry, a leg settled once; the operators' failed reviews
(return to cash, pay offline) and payout batches (CSV out, the bank's result in).
"""

from __future__ import annotations

import csv
import io
import uuid

import pytest
import requests
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput
from feecenter.funds import service as funds
from feecenter.funds.tables import statement_entries
from feecenter.notifications.tables import in_site_messages as messages
from feecenter.recharges.gateway import GatewayUnavailable
from feecenter.withdrawals import payouts, sending
from feecenter.withdrawals import service as withdrawals
from tests.helpers import OPS, assert_reconciled, balance, new_account
from tests.test_recharges import pay, sandbox  # noqa: F401 - fixtures

HOLDER = "张三"
BANK = {"holder": HOLDER, "account_no": "6222020200112233445", "bank": "中国工商银行",
        "branch": "深圳科技园支行"}


# ---------------------------------------------------------------- helpers

class Money:
    """An account with a verified entity, recharged through the sandbox by ``payer``."""

    def __init__(self, pay, payer: str | None = None):  # noqa: F811
        self.pay, self.rt = pay, pay.rt
        self.payer = payer or f"payer-{uuid.uuid4().hex[:10]}"
        self.uin = new_account(self.rt, f"wd-{uuid.uuid4().hex[:8]}", personal_name=HOLDER)
        # the module's one sandbox serves both backends, whose withdrawal ids (and so
        # refund numbers) start over: forget the other database's withdrawal refunds
        for number in [n for n in pay.provider.refunds if n.startswith("WDR0")]:
            del pay.provider.refunds[number]

    def recharge(self, fen: int) -> dict:
        made = self.pay.create(fen, uin=self.uin)
        self.pay.payer_acts(made, payer=self.payer)
        return self.pay.wait_state(made["id"], "paid")

    def withdraw(self, fen: int, route: str = "original", **kw) -> dict:
        with transaction(self.rt.engine) as conn:
            return withdrawals.apply(conn, self.rt.clock, SYSTEM, self.uin, amount=fen,
                                     route=route, key=uuid.uuid4().hex, **kw)

    def send(self, gateways=None, **kw) -> dict:
        return sending.send_pending(self.rt.engine, self.rt.clock, gateways or self.rt.gateways,
                                    **kw)

    def get(self, withdrawal_id: int) -> dict:
        with self.rt.engine.connect() as conn:
            return withdrawals.get(conn, SYSTEM, withdrawal_id)

    def close_payer(self) -> None:
        answer = requests.post(f"{self.pay.url}/sandbox/payers/{self.payer}/close", timeout=30)
        assert answer.status_code == 200

    def entries(self) -> list[tuple]:
        with self.rt.engine.connect() as conn:
            return [tuple(r) for r in conn.execute(select(
                statement_entries.c.action_type, statement_entries.c.amount)
                .where(statement_entries.c.uin == self.uin).order_by(statement_entries.c.id))]

    def notices(self) -> list[str]:
        with self.rt.engine.connect() as conn:
            return list(conn.execute(select(messages.c.template)
                                     .where(messages.c.uin == self.uin)).scalars())

    def refunds(self, out_refund_no: str) -> list[dict]:
        return [r for r in self.pay.provider.refunds.values()
                if r["out_refund_no"] == out_refund_no]

    def failed(self, fen: int = 40_00) -> dict:
        """A withdrawal of ``fen`` whose online leg failed: the payer's account closed."""
        self.recharge(fen)
        self.close_payer()
        made = self.withdraw(fen)
        self.send(withdrawal_id=made["id"])
        return self.get(made["id"])


class Flaky:
    """The real gateway, but the refund's answer is lost (the provider took it) or
    the call never reaches the provider; every query is recorded."""

    def __init__(self, real, lose: str):
        self.real, self.lose, self.channel, self.queries = real, lose, real.channel, []

    def refund(self, out_trade_no, out_refund_no, amount, total, reason):
        if self.lose == "answer":
            self.real.refund(out_trade_no, out_refund_no, amount, total, reason)
        raise GatewayUnavailable("超时", "timed out")

    def query_refund(self, out_refund_no):
        self.queries.append(out_refund_no)
        return self.real.query_refund(out_refund_no)


def gateway_balance(rt, purpose: str) -> int:
    with transaction(rt.engine) as conn:
        account_id = funds.platform_account(conn, rt.clock, purpose)
        from feecenter.ledger.service import balance_of
        return balance_of(conn, account_id)


# ---------------------------------------------------------------- online legs

@pytest.mark.spec("WDR-2", "WDR-4", "WDR-6")
def test_an_online_leg_is_refunded_through_the_sandbox_and_the_withdrawal_paid(pay):  # noqa: F811
    money = Money(pay)
    money.recharge(100_00)
    clearing = gateway_balance(money.rt, "gateway_wechat")
    made = money.withdraw(60_00)
    assert balance(money.rt, money.uin).cash == 40_00  # held at once (WDR-4)
    assert money.send(withdrawal_id=made["id"])["paid"] == 1
    done = money.get(made["id"])
    leg = done["legs"][0]
    assert (done["state"], leg["state"]) == ("paid", "paid") and done["finished_at"]
    refunds = money.refunds(leg["out_refund_no"])
    assert [r["amount"]["refund"] for r in refunds] == [60_00]  # no fee (WDR-6)
    assert gateway_balance(money.rt, "gateway_wechat") == clearing + 60_00
    assert balance(money.rt, money.uin).cash == 40_00
    assert money.entries() == [("recharge", 100_00), ("cash", -60_00)]
    assert money.send(withdrawal_id=made["id"]) == dict.fromkeys(
        ("paid", "processing", "failed", "unreachable", "skipped", "duplicate"), 0)
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-5", "WDR-4")
def test_a_refund_to_a_closed_account_fails_keeps_the_money_held_and_is_notified(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(40_00)
    leg = done["legs"][0]
    assert (done["state"], leg["state"]) == ("failed", "failed")
    assert "ABNORMAL" in leg["reason"] and "ABNORMAL" in done["failure_reason"]
    assert balance(money.rt, money.uin).cash == 0  # still held, not spendable
    with money.rt.engine.connect() as conn:
        assert withdrawals.owed(conn, money.uin) == 40_00
        assert [w["id"] for w in payouts.failed_reviews(conn, OPS)
                if w["uin"] == money.uin] == [done["id"]]
    assert money.notices().count("withdrawal_failed") == 1
    money.send(withdrawal_id=done["id"])  # nothing more is sent, nothing notified again
    assert money.notices().count("withdrawal_failed") == 1
    assert len(money.refunds(leg["out_refund_no"])) == 1
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-2", "WDR-5")
@pytest.mark.parametrize("lose", ["answer", "call"])
def test_after_a_timeout_the_next_run_queries_before_it_retries_and_settles_once(pay, lose):  # noqa: F811
    money = Money(pay)
    money.recharge(25_00)
    made = money.withdraw(25_00)
    flaky = Flaky(pay.gateway, lose)
    assert money.send({"wechat": flaky}, withdrawal_id=made["id"])["unreachable"] == 1
    leg = money.get(made["id"])["legs"][0]
    assert leg["state"] == "sending"
    assert money.send(withdrawal_id=made["id"])["skipped"] + money.send(
        withdrawal_id=made["id"])["paid"] == 0  # not due again before its retry time
    money.rt.clock.advance(minutes=2)
    asked = Flaky(pay.gateway, "none")
    asked.refund = pay.gateway.refund  # the retry itself reaches the provider
    outcome = money.send({"wechat": asked}, withdrawal_id=made["id"])
    assert outcome["paid"] == 1, outcome
    assert asked.queries == [leg["out_refund_no"]]  # asked first
    assert len(money.refunds(leg["out_refund_no"])) == 1  # one refund at the provider
    assert money.get(made["id"])["state"] == "paid"
    assert gateway_balance(money.rt, "withdrawals_in_flight") >= 0
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-5")
def test_the_provider_answering_twice_settles_the_leg_once(pay):  # noqa: F811
    """While the refund call is out, another run queries the same leg and settles it
    from the provider's answer; the first run's own answer then finds it settled."""
    money = Money(pay)
    money.recharge(30_00)
    made = money.withdraw(30_00)
    inner = []

    class Echo:
        channel = "wechat"

        def refund(self, *args):
            answer = pay.gateway.refund(*args)
            money.rt.clock.advance(minutes=2)  # the second run's turn has come
            inner.append(money.send(withdrawal_id=made["id"]))
            return answer

        def query_refund(self, out_refund_no):
            return pay.gateway.query_refund(out_refund_no)

    outcome = money.send({"wechat": Echo()}, withdrawal_id=made["id"])
    assert inner[0]["paid"] == 1 and outcome["duplicate"] == 1 and outcome["paid"] == 0
    assert money.get(made["id"])["state"] == "paid"
    assert balance(money.rt, money.uin).cash == 0
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-2")
def test_a_processing_refund_stays_sending_until_the_provider_finishes_it(pay):  # noqa: F811
    money = Money(pay)
    money.recharge(15_00)
    requests.post(f"{pay.url}/sandbox/payers/{money.payer}/slow", timeout=30)
    made = money.withdraw(15_00)
    assert money.send(withdrawal_id=made["id"])["processing"] == 1
    leg = money.get(made["id"])["legs"][0]
    assert leg["state"] == "sending"
    requests.post(f"{pay.url}/sandbox/refunds/{leg['out_refund_no']}/finish",
                  data={"status": "SUCCESS"}, timeout=30)
    money.rt.clock.advance(minutes=2)
    assert money.send(withdrawal_id=made["id"])["paid"] == 1
    assert len(money.refunds(leg["out_refund_no"])) == 1
    assert money.get(made["id"])["state"] == "paid"


# ---------------------------------------------------------------- failed reviews

@pytest.mark.spec("WDR-5")
def test_a_failed_payout_returned_to_cash_gives_back_exactly_its_money(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(40_00)
    before = balance(money.rt, money.uin)
    with transaction(money.rt.engine) as conn:
        back = payouts.return_to_cash(conn, money.rt.clock, OPS, done["id"],
                                      reason="客户销户，退回余额")
    assert back["returned"] == 40_00 and back["state"] == "returned" and back["finished_at"]
    assert back["legs"][0]["state"] == "returned"
    after = balance(money.rt, money.uin)
    assert after.cash - before.cash == 40_00 and after.available - before.available == 40_00
    assert money.entries()[-1] == ("cash", 40_00)  # 提现退回
    with money.rt.engine.connect() as conn:
        assert withdrawals.owed(conn, money.uin) == 0
        assert conn.execute(select(func.count()).select_from(audit_log).where(
            audit_log.c.action == "withdrawal.return_to_cash",
            audit_log.c.uin == money.uin)).scalar() == 1
    with transaction(money.rt.engine) as conn, pytest.raises(Conflict):
        payouts.return_to_cash(conn, money.rt.clock, OPS, done["id"], reason="again")
    assert balance(money.rt, money.uin).cash == after.cash
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-5", "WDR-3")
def test_a_failed_payout_paid_offline_goes_out_in_a_batch_and_is_settled_by_the_result(pay):  # noqa: F811
    money = Money(pay)
    done = money.failed(35_00)
    with transaction(money.rt.engine) as conn, pytest.raises(InvalidInput) as wrong:
        payouts.pay_offline(conn, money.rt.clock, OPS, done["id"], {**BANK, "holder": "李四"},
                            reason="改线下")
    assert wrong.value.field == "bank.holder"
    with transaction(money.rt.engine) as conn:
        rerouted = payouts.pay_offline(conn, money.rt.clock, OPS, done["id"], BANK,
                                       reason="原账户已注销，改线下打款")
    assert rerouted["state"] == "in_progress" and rerouted["bank"] == BANK
    assert [leg["state"] for leg in rerouted["legs"]] == ["rerouted", "queued"]
    with transaction(money.rt.engine) as conn:
        queue = [leg for leg in payouts.payout_queue(conn, OPS) if leg["uin"] == money.uin]
        batch = payouts.export_batch(conn, money.rt.clock, OPS)
    assert [leg["holder"] for leg in queue] == [HOLDER]
    rows = list(csv.DictReader(io.StringIO(batch["csv"])))
    mine = [r for r in rows if r["uin"] == str(money.uin)]
    assert mine == [{"leg_id": str(queue[0]["id"]), "withdrawal_id": str(done["id"]),
                     "uin": str(money.uin), "holder": HOLDER, "account_no": BANK["account_no"],
                     "bank": BANK["bank"], "branch": BANK["branch"], "amount": "35.00",
                     "reference": queue[0]["out_refund_no"]}]
    result = "leg_id,result,reason\n" + "".join(f"{r['leg_id']},paid,\n" for r in rows)
    with transaction(money.rt.engine) as conn:
        settled = payouts.import_batch_result(conn, money.rt.clock, OPS, batch["batch_id"], result)
        again = payouts.import_batch_result(conn, money.rt.clock, OPS, batch["batch_id"], result)
    assert (settled["paid"], again["paid"], again["already"]) == (len(rows), 0, len(rows))
    assert money.get(done["id"])["state"] == "paid"
    assert balance(money.rt, money.uin).cash == 0
    assert gateway_balance(money.rt, "bank_payouts") >= 35_00
    assert_reconciled(money.rt)


@pytest.mark.spec("WDR-3", "WDR-5")
def test_an_offline_withdrawal_the_bank_refuses_fails_held_and_notified(pay):  # noqa: F811
    money = Money(pay)
    money.recharge(20_00)
    made = money.withdraw(20_00, route="offline", bank=BANK)
    with transaction(money.rt.engine) as conn:
        batch = payouts.export_batch(conn, money.rt.clock, OPS)
    leg_id = money.get(made["id"])["legs"][0]["id"]
    for bad, line in (("leg_id,result\n1,paid\n", 1), (f"leg_id,result,reason\n{leg_id},failed,\n", 2),
                      ("leg_id,result,reason\n999999999,paid,\n", None)):
        with transaction(money.rt.engine) as conn, pytest.raises(InvalidInput) as refused:
            payouts.import_batch_result(conn, money.rt.clock, OPS, batch["batch_id"], bad)
        assert refused.value.field == "csv" and refused.value.details.get("line") == line
    with transaction(money.rt.engine) as conn:
        payouts.import_batch_result(conn, money.rt.clock, OPS, batch["batch_id"],
                                    f"leg_id,result,reason\n{leg_id},failed,户名不符\n")
    done = money.get(made["id"])
    assert (done["state"], done["legs"][0]["reason"]) == ("failed", "户名不符")
    assert balance(money.rt, money.uin).cash == 0 and money.notices().count("withdrawal_failed") == 1
    assert_reconciled(money.rt)


# ---------------------------------------------------------------- the failed-payout request (SRV-1)

@pytest.mark.spec("WDR-5", "SRV-1")
def test_a_failed_payout_request_with_proof_is_resolved_by_paying_offline(pay):  # noqa: F811
    from feecenter.accounts.permissions import Actor
    from feecenter.service_requests import service as srv

    money = Money(pay)
    customer = Actor(kind="user", name=f"owner-{money.uin}", uin=money.uin, role="owner")
    money.recharge(18_00)
    under_way = money.withdraw(8_00, route="offline", bank=BANK)  # queued, not missing yet
    done = money.failed(10_00)
    fields = {"withdrawal_id": done["id"], "resolution": "offline", **BANK,
              "description": "微信账户已注销"}
    with transaction(money.rt.engine) as conn:
        for wrong, field in (({**fields, "withdrawal_id": under_way["id"]}, "fields.withdrawal_id"),
                             ({**fields, "holder": "李四"}, "fields.holder"),
                             ({**fields, "account_no": ""}, "fields.account_no")):
            with pytest.raises(InvalidInput) as refused:
                srv.file_request(conn, money.rt.clock, customer, money.uin, "failed_payout", wrong)
            assert refused.value.field == field
        with pytest.raises(InvalidInput) as no_proof:
            srv.file_request(conn, money.rt.clock, customer, money.uin, "failed_payout", fields,
                             uploads=())
        assert no_proof.value.field == "attachment"
        filed = srv.file_request(conn, money.rt.clock, customer, money.uin, "failed_payout",
                                 fields, uploads=(srv.Upload("销户证明.pdf",
                                                             b"%PDF-1.7\n%%EOF\n"),))
    assert filed["due_at"] is not None
    with transaction(money.rt.engine) as conn:
        srv.take(conn, money.rt.clock, OPS, filed["id"])
        resolved = srv.resolve(conn, money.rt.clock, OPS, filed["id"], note="证明材料齐全")
    assert resolved["state"] == "resolved"
    assert resolved["result"]["resolution"] == "offline"
    legs = money.get(done["id"])["legs"]
    assert [leg["state"] for leg in legs] == ["rerouted", "queued"]
    assert money.get(done["id"])["bank"] == BANK
    money.rt.clock.advance(days=15)  # the other one, still under way, may now be filed
    with transaction(money.rt.engine) as conn:
        late = srv.file_request(conn, money.rt.clock, customer, money.uin, "failed_payout",
                                {"withdrawal_id": under_way["id"], "resolution": "cash"})
    assert late["state"] == "submitted"
    assert_reconciled(money.rt)
