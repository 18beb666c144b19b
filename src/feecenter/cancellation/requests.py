"""The cancellation-help service request kind (SRV-1, ACC-5), registered in
``service_requests.kinds``: its fields, filing check and resolving action. Owns no
table: the requests are service requests.

The customer gives a reason, a contact phone and what it asks for: ``advice`` (what
blocks the cancellation and how to clear it) or ``cancel`` (cancel the account on its
behalf once nothing blocks it; the owner only, ACC-2). Due in 5 working days.
Resolving records the blockers found then; for ``cancel`` it cancels the account under
the operator's name (``service.cancel``), and is refused, listing every blocker, while
any remains (the operator then waits or rejects the request with the reasons).
"""

from __future__ import annotations

from sqlalchemy import Connection

from feecenter.accounts import service as accounts
from feecenter.accounts.permissions import Actor, require_owner
from feecenter.cancellation import service
from feecenter.clock import Clock
from feecenter.errors import Conflict
from feecenter.service_requests.rules import CHOICE, PHONE, TEXT, Field

CANCELLATION_HELP = "cancellation_help"
DUE_WORKING_DAYS = 5
ADVICE, CANCEL = "advice", "cancel"
WISHES = ((ADVICE, "咨询注销条件与处理方法", "advice on what blocks the cancellation"),
          (CANCEL, "条件满足后代为注销账号（仅主账号）",
           "cancel the account on my behalf once nothing blocks it (owner only)"))
FIELDS = (
    Field("wish", "申请事项", "request", CHOICE, choices=WISHES),
    Field("reason", "注销原因", "reason", TEXT, max_length=500),
    Field("phone", "联系电话", "contact phone", PHONE),
)


def admit(conn: Connection, clock: Clock, actor: Actor, uin: int, values: dict) -> None:
    """Not for a cancelled account; asking to cancel is the owner's (ACC-2)."""
    if accounts.is_cancelled(conn, uin):
        raise Conflict("账号已注销", "the account is cancelled already", field="uin")
    if values["wish"] == CANCEL:
        require_owner(actor, uin)


def resolve(conn: Connection, clock: Clock, operator: Actor, request: dict) -> dict:
    """Record the blockers found now; cancel on the customer's behalf when it asked to
    and nothing blocks (else the resolution is refused listing every blocker)."""
    uin = request["uin"]
    if accounts.is_cancelled(conn, uin):
        return {"blockers": [], "cancelled": True, "created": False}
    if request["fields"]["wish"] != CANCEL:
        found = service.blockers(conn, clock, operator, uin)
        return {"blockers": [b["code"] for b in found], "cancelled": False,
                "advice_zh": "；".join(b["zh"] for b in found) or "无阻碍，可自助注销",
                "advice_en": "; ".join(b["en"] for b in found) or "nothing blocks it"}
    done = service.cancel(conn, clock, operator, uin, key=f"srv:{request['id']}")
    return {"blockers": [], **done}
