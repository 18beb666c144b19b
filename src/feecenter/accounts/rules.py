"""Pure account rules: who may buy (ACC-4 account state, ACC-1 real name). No database."""

from __future__ import annotations

from feecenter.errors import PurchaseRefused


def refuse_buyer(status: str, realname_state: str) -> None:
    """ACC-4 and ACC-1: a restricted or cancelled account, or one whose real-name
    verification is abnormal, may not buy or renew."""
    if status in ("restricted", "cancelled"):
        raise PurchaseRefused(f"账号状态为 {status}，不能购买",
                              f"the account is {status} and cannot buy", field="uin")
    if realname_state == "abnormal":
        raise PurchaseRefused("实名认证状态异常，不能购买或续费",
                              "the real-name verification is abnormal: purchases are refused",
                              field="realname_state")
