"""The failed-payout service-request kind (SRV-1, WDR-5): its fields, filing check and
resolving action, registered in ``service_requests.kinds``. Owns no table: the
requests are service requests, the money moves in ``withdrawals.payouts``.

The customer files it for a withdrawal "failed — needs review", or for one still
under way 14 days after it was applied for (a payout gone missing), with proof
attached (closure certificate, console screenshot, recharge voucher: required), and
says how the money should come back: paid offline to a bank account of the
verified entity (its details in the request), or returned to cash. Due in 5
working days. The operator reviews the proof and resolves: the action runs that
choice (``payouts.pay_offline`` or ``payouts.return_to_cash``) under the operator's
name; a withdrawal the operator already settled from the failed-review queue is
resolved as it stands; one still under way is refused (reject it with the finding).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, select

from feecenter.accounts.permissions import Actor
from feecenter.accounts.tables import customers
from feecenter.clock import Clock, from_db_time
from feecenter.errors import Conflict, invalid
from feecenter.service_requests.rules import BANK_ACCOUNT, CHOICE, RECORD_ID, TEXT, Field
from feecenter.withdrawals import payouts
from feecenter.withdrawals.tables import withdrawals

FAILED_PAYOUT = "failed_payout"
DUE_WORKING_DAYS = 5
MISSING_AFTER = timedelta(days=14)  # WDR-5: "still missing two weeks after the application"
RESOLUTIONS = (("offline", "改为线下打款到银行账户", "pay it offline to a bank account"),
               ("cash", "退回现金余额", "return it to the cash balance"))
BANK_FIELD_NAMES = ("holder", "account_no", "bank", "branch")
FIELDS = (
    Field("withdrawal_id", "提现编号", "withdrawal", RECORD_ID),
    Field("resolution", "处理方式", "how to resolve", CHOICE, choices=RESOLUTIONS),
    Field("holder", "收款户名（线下打款必填，须为实名主体）",
          "account holder (offline: the verified entity)", required=False),
    Field("account_no", "收款银行账号（线下打款必填）", "bank account (offline)", BANK_ACCOUNT,
          required=False),
    Field("bank", "开户银行（线下打款必填）", "bank (offline)", required=False, max_length=100),
    Field("branch", "开户支行（线下打款必填）", "branch (offline)", required=False, max_length=100),
    Field("description", "情况说明", "what happened", TEXT, required=False, max_length=500),
)


def admit(conn: Connection, clock: Clock, actor: Actor, uin: int, values: dict) -> None:
    """The withdrawal is the account's and failed, or under way for 14 days; an
    offline resolution names the whole bank account, held by the verified entity."""
    row = conn.execute(select(withdrawals.c.uin, withdrawals.c.state, withdrawals.c.applied_at)
                       .where(withdrawals.c.id == values["withdrawal_id"])).first()
    if row is None or row.uin != uin:
        raise invalid("fields.withdrawal_id", "提现编号：不是本账号的提现",
                      "withdrawal: not a withdrawal of this account")
    missing = (row.state == "in_progress"
               and clock.now() - from_db_time(row.applied_at) >= MISSING_AFTER)
    if row.state != "failed" and not missing:
        raise invalid("fields.withdrawal_id", "提现编号：只有打款失败、或申请 14 天后仍未到账的提现可以申请",
                      "withdrawal: only a failed withdrawal, or one still missing 14 days after "
                      "it was applied for, can be filed")
    if values["resolution"] == "offline":
        _check_offline(conn, uin, values)


def _check_offline(conn: Connection, uin: int, values: dict) -> None:
    for name in BANK_FIELD_NAMES:
        if not values.get(name):
            raise invalid(f"fields.{name}", f"{name}：线下打款必填", f"{name}: required to pay offline")
    entity = (conn.execute(select(customers.c.entity_name).where(customers.c.uin == uin))
              .scalar() or "").strip()
    if not entity or values["holder"] != entity:
        raise invalid("fields.holder", "收款户名：须与账号的实名认证主体一致",
                      "account holder: must be the account's verified entity")


def resolve(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    """Run the customer's choice on a failed withdrawal; one settled already stands."""
    fields = request["fields"]
    withdrawal_id, resolution = fields["withdrawal_id"], fields["resolution"]
    state = conn.execute(select(withdrawals.c.state)
                         .where(withdrawals.c.id == withdrawal_id)).scalar_one()
    if state in ("paid", "returned"):
        return {"withdrawal_id": withdrawal_id, "resolution": "settled_before", "state": state}
    if state != "failed":
        raise Conflict("该提现仍在打款中：请核实后驳回工单并说明情况，或待其失败后再解决",
                       "the withdrawal is still being paid out: reject the request with what "
                       "was found, or resolve it once the payout failed", field="state",
                       state=state)
    reason = f"工单 {request['id']}：{dict((v, zh) for v, zh, _ in RESOLUTIONS)[resolution]}"
    if resolution == "offline":
        bank = {name: fields[name] for name in BANK_FIELD_NAMES}
        done = payouts.pay_offline(conn, clock, operator, withdrawal_id, bank, reason=reason)
    else:
        done = payouts.return_to_cash(conn, clock, operator, withdrawal_id, reason=reason)
    return {"withdrawal_id": withdrawal_id, "resolution": resolution, "state": done["state"]}
