"""Online withdrawal legs that could get stuck or be paid twice (WDR-2, WDR-5): legs of
a channel without a gateway never starve the others and due legs rotate; a refused
RETRY is not taken as final; an operator fails a stuck leg only after querying the
provider (``payouts.fail_online_leg``), and a failed online leg is checked with the
provider before its money goes out another way; a rerouted leg frees its recharge.
The provider is a scripted stand-in (the sandbox path is test_withdrawal_payouts.py).
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from feecenter.accounts.permissions import SYSTEM, Actor
from feecenter.audit.tables import audit_log
from feecenter.db.engine import transaction
from feecenter.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from feecenter.notifications.tables import in_site_messages as messages
from feecenter.recharges.gateway import GatewayRefused, GatewayUnavailable, ProviderRefund
from feecenter.withdrawals import payouts, sending
from feecenter.withdrawals import service as withdrawals
from tests.helpers import OPS, add_cash, assert_reconciled, balance, new_account
from tests.withdrawal_seed import paid_recharge, withdraw

BANK = {"holder": "张三", "account_no": "6222020200112233445", "bank": "中国工商银行",
        "branch": "深圳科技园支行"}


class Provider:
    """A scripted provider: ``known`` is what it has taken (out_refund_no -> status);
    each refund call does what ``script`` says next ("take": record and answer
    ``status``, "lose": record, then time out, "refuse": raise GatewayRefused)."""

    def __init__(self, channel: str = "wechat", status: str = "SUCCESS", script=()):
        self.channel, self.status, self.script = channel, status, list(script)
        self.known: dict[str, str] = {}
        self.calls: list[tuple[str, str]] = []

    def refund(self, out_trade_no, out_refund_no, amount, total, reason):
        step = self.script.pop(0) if self.script else "take"
        self.calls.append(("refund", out_refund_no))
        if step == "refuse":
            raise GatewayRefused("退款被拒绝", "refund refused")
        self.known.setdefault(out_refund_no, self.status)
        if step == "lose":
            raise GatewayUnavailable("超时", "timed out")
        return ProviderRefund(out_refund_no, f"R-{out_refund_no}", self.known[out_refund_no],
                              amount)

    def query_refund(self, out_refund_no):
        self.calls.append(("query", out_refund_no))
        status = self.known.get(out_refund_no)
        return None if status is None else ProviderRefund(out_refund_no, f"R-{out_refund_no}",
                                                          status, None)


def send(rt, gateways, **kw) -> dict:
    return sending.send_pending(rt.engine, rt.clock, gateways, **kw)


def get(rt, withdrawal_id: int) -> dict:
    with rt.engine.connect() as conn:
        return withdrawals.get(conn, SYSTEM, withdrawal_id)


def fail_leg(rt, made: dict, gateways, actor=OPS, leg: int = 0, reason="渠道已下线") -> dict:
    return payouts.fail_online_leg(rt.engine, rt.clock, actor, made["id"],
                                   made["legs"][leg]["id"], reason=reason, gateways=gateways)


def audits(rt, action: str) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(audit_log)
                            .where(audit_log.c.action == action)).scalar()


def notices(rt, uin: int) -> int:
    with rt.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(messages).where(
            messages.c.uin == uin, messages.c.template == "withdrawal_failed")).scalar()


# ---------------------------------------------------------------- the sender

@pytest.mark.spec("WDR-2")
def test_legs_of_a_channel_without_a_gateway_never_starve_the_others(rt):
    uin = new_account(rt, "starve")
    for _ in range(3):
        paid_recharge(rt, uin, 1_00, channel="qq")
    stranded = withdraw(rt, uin, 3_00, key="qq")
    rt.clock.advance(minutes=1)
    paid_recharge(rt, uin, 5_00)
    made = withdraw(rt, uin, 5_00, key="wx")
    wechat = Provider()
    for _ in range(2):
        assert send(rt, {"wechat": wechat}, limit=2)["unreachable"] == 0
        rt.clock.advance(hours=1)
    assert get(rt, made["id"])["state"] == "paid"
    assert [(leg["state"], leg["channel"]) for leg in get(rt, stranded["id"])["legs"]] == [
        ("pending", "qq")] * 3  # never claimed: nothing moved
    assert send(rt, {}) == dict.fromkeys(
        ("paid", "processing", "failed", "unreachable", "skipped", "duplicate"), 0)
    assert_reconciled(rt)


@pytest.mark.spec("WDR-2")
def test_due_legs_are_worked_never_sent_first_then_oldest_turn_first(rt):
    uin = new_account(rt, "rotate")
    for _ in range(3):
        paid_recharge(rt, uin, 2_00)
    made = withdraw(rt, uin, 6_00)
    slow = Provider(status="PROCESSING")
    assert send(rt, {"wechat": slow}, limit=2)["processing"] == 2
    rt.clock.advance(minutes=2)
    assert send(rt, {"wechat": slow}, limit=2)["processing"] == 2
    legs = get(rt, made["id"])["legs"]
    assert [leg["state"] for leg in legs] == ["sending"] * 3  # the third had its turn
    with rt.engine.connect() as conn:
        attempts = sorted(withdrawals._legs_of(conn, [made["id"]])[made["id"]],
                          key=lambda leg: leg["seq"])
    assert sorted(leg["attempts"] for leg in attempts) == [1, 1, 2]


@pytest.mark.spec("WDR-2", "WDR-5")
def test_a_refusal_on_a_retry_is_not_final_the_leg_is_queried_again(rt):
    """The first call times out (the provider took it, its answer lost, but the
    provider does not show it yet); the retry is refused. The leg stays sending and
    is settled paid once the provider shows the first refund."""
    uin = new_account(rt, "retry")
    paid_recharge(rt, uin, 20_00)
    made = withdraw(rt, uin, 20_00)
    provider = Provider(script=["lose", "refuse"])
    assert send(rt, {"wechat": provider})["unreachable"] == 1
    hidden = provider.known.pop(made["legs"][0]["out_refund_no"])  # not shown yet
    rt.clock.advance(minutes=2)
    assert send(rt, {"wechat": provider})["unreachable"] == 1
    done = get(rt, made["id"])
    assert (done["state"], done["legs"][0]["state"]) == ("in_progress", "sending")
    assert "refund refused" in done["legs"][0]["reason"]
    assert notices(rt, uin) == 0
    provider.known[made["legs"][0]["out_refund_no"]] = hidden
    rt.clock.advance(minutes=2)
    assert send(rt, {"wechat": provider})["paid"] == 1
    assert get(rt, made["id"])["state"] == "paid"
    assert provider.calls[-1][0] == "query"
    assert_reconciled(rt)


@pytest.mark.spec("WDR-5")
def test_a_refusal_of_the_first_attempt_still_fails_the_leg(rt):
    uin = new_account(rt, "first")
    paid_recharge(rt, uin, 8_00)
    made = withdraw(rt, uin, 8_00)
    assert send(rt, {"wechat": Provider(script=["refuse"])})["failed"] == 1
    assert get(rt, made["id"])["state"] == "failed"


# ---------------------------------------------------------------- the operator fails a stuck leg

@pytest.mark.spec("WDR-5")
def test_an_operator_fails_a_leg_of_a_channel_without_a_gateway_and_returns_it(rt):
    uin = new_account(rt, "no-gateway")
    paid_recharge(rt, uin, 30_00, channel="qq")
    made = withdraw(rt, uin, 30_00)
    assert send(rt, {"wechat": Provider()})["unreachable"] == 0
    with pytest.raises(PermissionDenied):
        fail_leg(rt, made, {}, actor=Actor(kind="user", name="owner", uin=uin, role="owner"))
    with pytest.raises(InvalidInput) as bad:
        fail_leg(rt, made, {}, reason=" ")
    assert bad.value.field == "reason"
    with pytest.raises(NotFound):
        payouts.fail_online_leg(rt.engine, rt.clock, OPS, made["id"] + 1,
                                made["legs"][0]["id"], reason="x", gateways={})
    failed = fail_leg(rt, made, {})
    assert (failed["state"], failed["legs"][0]["state"]) == ("failed", "failed")
    assert "渠道已下线" in failed["legs"][0]["reason"]
    assert audits(rt, "withdrawal.leg.fail") == 1 and notices(rt, uin) == 1
    with pytest.raises(Conflict):  # failed already
        fail_leg(rt, made, {})
    with transaction(rt.engine) as conn:
        back = payouts.return_to_cash(conn, rt.clock, OPS, made["id"], reason="退回余额")
    assert back["state"] == "returned" and balance(rt, uin).cash == 30_00
    assert_reconciled(rt)


def _sent(rt, name: str, status: str) -> tuple[int, dict, Provider]:
    """A withdrawal whose leg was sent once and timed out, the provider then showing
    ``status`` for it (or nothing: "none")."""
    uin = new_account(rt, name)
    paid_recharge(rt, uin, 10_00)
    made = withdraw(rt, uin, 10_00)
    provider = Provider(status="SUCCESS" if status == "none" else status, script=["lose"])
    assert send(rt, {"wechat": provider})["unreachable"] == 1
    if status == "none":
        provider.known.clear()
    return uin, made, provider


@pytest.mark.spec("WDR-5")
@pytest.mark.parametrize("status", ["none", "ABNORMAL", "CLOSED"])
def test_a_sent_leg_is_failed_after_the_provider_is_queried(rt, status):
    uin, made, provider = _sent(rt, f"stuck-{status}", status)
    with pytest.raises(Conflict) as busy:  # the sender's turn has not passed yet
        fail_leg(rt, made, {"wechat": provider})
    assert busy.value.field == "leg_id"
    rt.clock.advance(minutes=2)
    with pytest.raises(Conflict) as unknown:  # sent before, no gateway to ask
        fail_leg(rt, made, {})
    assert unknown.value.field == "channel"
    failed = fail_leg(rt, made, {"wechat": provider})
    assert (failed["state"], failed["legs"][0]["state"]) == ("failed", "failed")
    assert provider.calls[-1] == ("query", made["legs"][0]["out_refund_no"])
    assert notices(rt, uin) == 1
    rt.clock.advance(hours=1)
    calls = len(provider.calls)
    send(rt, {"wechat": provider})
    assert len(provider.calls) == calls  # a failed leg is never sent again
    assert_reconciled(rt)


@pytest.mark.spec("WDR-5")
def test_a_leg_the_provider_refunded_is_settled_paid_not_failed(rt):
    uin, made, provider = _sent(rt, "stuck-paid", "SUCCESS")
    rt.clock.advance(minutes=2)
    with pytest.raises(Conflict) as refused:
        fail_leg(rt, made, {"wechat": provider})
    assert refused.value.details.get("state") == "paid"
    done = get(rt, made["id"])
    assert (done["state"], done["legs"][0]["state"]) == ("paid", "paid")
    assert audits(rt, "withdrawal.leg.paid") == 1 and notices(rt, uin) == 0
    with transaction(rt.engine) as conn, pytest.raises(Conflict):
        payouts.return_to_cash(conn, rt.clock, OPS, made["id"], reason="x")
    assert balance(rt, uin).cash == 0
    assert_reconciled(rt)


@pytest.mark.spec("WDR-5")
def test_a_leg_the_provider_is_still_processing_cannot_be_failed(rt):
    uin, made, provider = _sent(rt, "stuck-processing", "PROCESSING")
    rt.clock.advance(minutes=2)
    with pytest.raises(Conflict) as refused:
        fail_leg(rt, made, {"wechat": provider})
    assert refused.value.details.get("state") == "PROCESSING"
    assert get(rt, made["id"])["legs"][0]["state"] == "sending"
    assert audits(rt, "withdrawal.leg.fail") == 0


# ---------------------------------------------------------------- checked before paying another way

@pytest.mark.spec("WDR-5")
def test_a_failed_online_leg_the_provider_shows_refunded_is_not_returned_to_cash(rt):
    uin = new_account(rt, "late-success")
    paid_recharge(rt, uin, 12_00)
    made = withdraw(rt, uin, 12_00)
    provider = Provider(status="ABNORMAL")
    assert send(rt, {"wechat": provider})["failed"] == 1
    gateways = {"wechat": provider}
    payouts.check_failed_with_provider(rt.engine, rt.clock, OPS, made["id"], gateways)
    provider.known[made["legs"][0]["out_refund_no"]] = "SUCCESS"  # the provider says paid
    with pytest.raises(Conflict):
        payouts.check_failed_with_provider(rt.engine, rt.clock, OPS, made["id"], gateways)
    assert get(rt, made["id"])["state"] == "paid"
    with transaction(rt.engine) as conn, pytest.raises(Conflict):
        payouts.return_to_cash(conn, rt.clock, OPS, made["id"], reason="x")
    assert balance(rt, uin).cash == 0
    assert_reconciled(rt)


# ---------------------------------------------------------------- the refundable remainder

@pytest.mark.spec("WDR-2", "WDR-5")
def test_a_rerouted_leg_frees_its_recharge_for_a_later_withdrawal(rt):
    uin = new_account(rt, "rerouted", personal_name=BANK["holder"])
    recharge_id = paid_recharge(rt, uin, 50_00)
    made = withdraw(rt, uin, 50_00)
    assert send(rt, {"wechat": Provider(status="ABNORMAL")})["failed"] == 1
    with transaction(rt.engine) as conn:
        payouts.pay_offline(conn, rt.clock, OPS, made["id"], BANK, reason="改线下")
    with rt.engine.connect() as conn:
        left = {c.ref_id: c.refundable for c in withdrawals.candidates(conn, uin)}
    assert left == {recharge_id: 50_00}
    add_cash(rt, uin, 50_00)
    again = withdraw(rt, uin, 50_00, key="w2", recharge_ids=[recharge_id])
    assert [leg["amount"] for leg in again["legs"]] == [50_00]
    assert_reconciled(rt)
