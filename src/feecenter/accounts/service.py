"""Account use cases: create customers, real-name state, sub-users, storefronts,
account state (ACC-1..4), and the purchase gate every new purchase, renewal,
upgrade and postpaid opening passes (``purchase_gate``)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, or_, select, update
from stdnum.cn import uscc as uscc_number
from stdnum.exceptions import ValidationError

from feecenter.accounts import rules
from feecenter.accounts.permissions import (READ_PROFILE, ROLES, SYSTEM, Actor, require,
                                            require_manage_user, require_operator)
from feecenter.accounts.tables import customers, storefronts, users
from feecenter.audit.service import record_audit
from feecenter.clock import Clock, db_time
from feecenter.errors import Conflict, invalid, not_found
from feecenter.funds import service as funds
from feecenter.inputs import EMAIL, plain_text

FIRST_UIN = 100000000001
SYSTEM_ACTOR = SYSTEM
DEFAULT_STOREFRONT = ("console", "云控制台 / Cloud console")
_NAME = re.compile(r"^[\w\-. @\u4e00-\u9fff]{2,100}$")
_PHONE = re.compile(r"^\+?[0-9][0-9\- ]{5,28}$")


@dataclass(frozen=True)
class NewAccount:
    name: str
    personal_name: str | None = None
    enterprise_name: str | None = None
    uscc: str | None = None
    email: str | None = None
    phone: str | None = None


def _validate(new: NewAccount) -> dict:
    name = (new.name or "").strip()
    if not _NAME.match(name):
        raise invalid("name", "账号名称须为 2–100 个字符（字母、数字、汉字、-_.@ 空格）",
                      "name must be 2-100 letters, digits, CJK or -_.@ and spaces")
    if new.personal_name and new.enterprise_name:
        raise invalid("realname", "个人与企业实名只能选一种", "choose personal or enterprise, not both")
    _check_contacts(new.email, new.phone)
    values = {"name": name, "email": new.email, "phone": new.phone, "realname_state": "none",
              "entity_name": None, "uscc": None}
    if new.personal_name:
        values.update(realname_state="personal", entity_name=new.personal_name.strip())
    elif new.enterprise_name or new.uscc:
        values.update(realname_state="enterprise", entity_name=(new.enterprise_name or "").strip(),
                      uscc=validate_uscc(new.uscc))
        if not values["entity_name"]:
            raise invalid("enterprise", "企业实名需要企业名称", "enterprise name is required")
    return values


def _check_contacts(email: str | None, phone: str | None) -> None:
    if email and not EMAIL.match(email):
        raise invalid("email", f"邮箱格式错误：{email}", f"malformed email: {email}")
    if phone and not _PHONE.match(phone):
        raise invalid("phone", f"手机号格式错误：{phone}", f"malformed phone: {phone}")


def validate_uscc(code: str | None) -> str:
    """Unified social credit code (统一社会信用代码), checked digit included."""
    try:
        return uscc_number.validate(code or "")
    except ValidationError as exc:
        raise invalid("uscc", f"统一社会信用代码无效：{code!r}",
                      f"invalid unified social credit code {code!r}: {exc}") from None


def create_account(conn: Connection, clock: Clock, actor: Actor, new: NewAccount) -> int:
    """Create a customer account with its owner user, storefront and fee account."""
    require_operator(actor)
    values = _validate(new)
    if conn.execute(select(customers.c.uin).where(customers.c.name == values["name"])).first():
        raise Conflict(f"账号名称已存在：{values['name']}", f"name already taken: {values['name']}",
                       field="name")
    uin = (conn.execute(select(func.max(customers.c.uin))).scalar() or FIRST_UIN - 1) + 1
    now = db_time(clock.now())
    conn.execute(insert(customers).values(uin=uin, status="normal", created_at=now, **values))
    conn.execute(insert(users).values(uin=uin, login=values["name"], role="owner", kind="owner",
                                      created_at=now))
    add_storefront(conn, uin, *DEFAULT_STOREFRONT)
    funds.open_fee_account(conn, clock, uin)
    record_audit(conn, clock, actor, "create_account", uin, {"name": values["name"]})
    return uin


def get_account(conn: Connection, actor: Actor, uin: int) -> dict:
    require(actor, uin, READ_PROFILE)
    row = conn.execute(select(customers).where(customers.c.uin == uin)).mappings().first()
    if row is None:
        raise not_found("uin", "账号", "account", uin)
    return dict(row)


SEARCH_LIMIT = 50


def search_accounts(conn: Connection, actor: Actor, text: str) -> list[dict]:
    """Operators' account search: ``text`` is a UIN (exact), a USCC (exact, any case),
    or part of the account name or the verified name (any case); at most
    ``SEARCH_LIMIT`` accounts, by UIN."""
    require_operator(actor)
    text = (text or "").strip()
    if not 1 <= len(text) <= 100 or not text.isprintable():
        raise invalid("q", "请输入 1–100 个字符的 UIN、账号名称、实名主体或统一社会信用代码",
                      "enter a UIN, account name, verified name or USCC of 1-100 characters")
    c, lowered = customers.c, text.lower()
    matches = [func.lower(c.name).contains(lowered, autoescape=True),
               func.lower(c.entity_name).contains(lowered, autoescape=True), c.uscc == text.upper()]
    if text.isdigit() and len(text) < 19:
        matches.append(c.uin == int(text))
    rows = conn.execute(select(customers).where(or_(*matches)).order_by(c.uin)
                        .limit(SEARCH_LIMIT)).mappings()
    return [dict(r) for r in rows]


def account_state(conn: Connection, clock: Clock, uin: int) -> str:
    """ACC-4: cancelled and restricted are set; in arrears follows the arrears balance."""
    row = get_account(conn, SYSTEM, uin)
    if row["status"] != "normal":
        return row["status"]
    view = funds.balance_view(conn, clock, SYSTEM, uin)
    return "arrears" if view.arrears > 0 else "normal"


def purchase_gate(conn: Connection, clock: Clock, uin: int, operable_balance_fen: int) -> None:
    """Who may buy: account state (ACC-4), real name (ACC-1), then the arrears gate
    (ARR-1/2) with the product class's operable balance in fen."""
    account = get_account(conn, SYSTEM, uin)
    rules.refuse_buyer(account["status"], account["realname_state"])
    funds.require_operable(conn, clock, uin, operable_balance_fen)


OPERATOR_STATES = ("normal", "restricted")


def set_status(conn: Connection, clock: Clock, actor: Actor, uin: int, status: str) -> None:
    """Operators restrict an account or lift the restriction (ACC-4): ``normal`` or
    ``restricted`` only. Cancelling is ``cancellation.service.cancel`` alone (the owner,
    or an operator on its behalf through the cancellation-help request: the same
    blockers, under the balance lock), so ``cancelled`` is refused here naming
    ``status``; and a cancelled account's state is final: the conditional UPDATE
    (``status <> 'cancelled'``) decides, and a cancelled account is refused (409,
    ``status``). Nothing is written on a refusal."""
    require_operator(actor)
    if status == "cancelled":
        raise invalid("status", "账号注销须通过注销流程（账号注销页面或注销协助工单），并先清除全部注销障碍，不能直接设置状态",
                      "an account is cancelled only through the cancellation (the 注销 page or "
                      "a cancellation-help request), once nothing blocks it; its status cannot "
                      "be set to cancelled")
    if status not in OPERATOR_STATES:
        raise invalid("status", "状态只能为 normal / restricted", "status must be normal or restricted")
    get_account(conn, actor, uin)
    changed = conn.execute(update(customers).where(
        customers.c.uin == uin, customers.c.status != "cancelled").values(status=status)).rowcount
    if changed != 1:
        raise Conflict(f"账号 {uin} 已注销，状态不能再更改",
                       f"account {uin} is cancelled; its status cannot be changed any more",
                       field="status", state="cancelled")
    record_audit(conn, clock, actor, "set_status", uin, {"status": status})


def mark_cancelled(conn: Connection, uin: int) -> bool:
    """ACC-4/5: the account becomes cancelled. The conditional UPDATE decides: True when
    this call changed it, False when it was cancelled already. The caller
    (``cancellation.service``) checks who may and what blocks it, under the balance lock."""
    return conn.execute(update(customers).where(
        customers.c.uin == uin, customers.c.status != "cancelled")
        .values(status="cancelled")).rowcount == 1


def is_cancelled(conn: Connection, uin: int) -> bool:
    """ACC-4: is account ``uin`` cancelled? (An unknown UIN raises NotFound.)"""
    return get_account(conn, SYSTEM, uin)["status"] == "cancelled"


def set_realname(conn: Connection, clock: Clock, actor: Actor, uin: int, state: str) -> None:
    """Operators mark real-name abnormal (or restore it); ACC-1."""
    require_operator(actor)
    if state not in ("none", "personal", "enterprise", "abnormal"):
        raise invalid("realname_state", "实名状态无效", "invalid real-name state")
    get_account(conn, actor, uin)
    conn.execute(update(customers).where(customers.c.uin == uin).values(realname_state=state))
    record_audit(conn, clock, actor, "set_realname", uin, {"state": state})


# ---------------------------------------------------------------- users

def add_user(conn: Connection, clock: Clock, actor: Actor, uin: int, login: str, role: str,
             kind: str = "subuser", *, email: str | None = None, phone: str | None = None) -> int:
    """A sub-user or collaborator; who may add which role: ``may_manage_user``.
    ``email``/``phone``: where it receives the notifications its role gets."""
    if role not in ROLES or role == "owner":
        raise invalid("role", "角色只能为 finance / admin / readonly",
                      "role must be finance, admin or readonly")
    require_manage_user(actor, uin, role, None)
    get_account(conn, SYSTEM, uin)
    if kind not in ("subuser", "collaborator"):
        raise invalid("kind", "类型只能为子用户或协作者", "kind must be subuser or collaborator")
    login = (login or "").strip()
    if not _NAME.match(login):
        raise invalid("login", "登录名须为 2–100 个字符", "login must be 2-100 characters")
    _check_contacts(email, phone)
    if conn.execute(select(users.c.id).where(users.c.uin == uin, users.c.login == login)).first():
        raise Conflict(f"用户已存在：{login}", f"user already exists: {login}", field="login")
    user_id = conn.execute(insert(users).values(uin=uin, login=login, role=role, kind=kind,
                                                email=email, phone=phone,
                                                created_at=db_time(clock.now()))
                           .returning(users.c.id)).scalar_one()
    record_audit(conn, clock, actor, "add_user", uin, {"login": login, "role": role})
    return user_id


def set_role(conn: Connection, clock: Clock, actor: Actor, uin: int, login: str,
             role: str) -> dict:
    """Give the sub-user ``login`` another role (ACC-2). Who may: ``may_manage_user`` for
    both its present and its new role, never for itself (nobody raises its own rights);
    the owner's role is fixed. Sessions and API keys read the role at each request, so
    the change holds at once. Returns the user with its new role."""
    if role not in ROLES or role == "owner":
        raise invalid("role", "角色只能为 finance / admin / readonly",
                      "role must be finance, admin or readonly")
    require(actor, uin, READ_PROFILE)
    login = plain_text(login, "login", 100).strip()
    if not login:
        raise invalid("login", "请给出用户的登录名", "give the user's login name")
    user = find_user(conn, uin, login)
    if user["role"] == "owner":
        raise invalid("login", "主账号的角色不能更改", "the owner's role cannot be changed")
    require_manage_user(actor, uin, user["role"], None)
    require_manage_user(actor, uin, role, None)
    if user["role"] != role:
        conn.execute(update(users).where(users.c.id == user["id"]).values(role=role))
        record_audit(conn, clock, actor, "set_role", uin,
                     {"login": user["login"], "from": user["role"], "to": role})
    return {**user, "role": role}


def find_user(conn: Connection, uin: int, login: str | None) -> dict:
    stmt = select(users).where(users.c.uin == uin)
    stmt = stmt.where(users.c.login == login) if login else stmt.where(users.c.role == "owner")
    row = conn.execute(stmt).mappings().first()
    if row is None:
        raise not_found("user", "用户", "user", login or f"owner of {uin}")
    return dict(row)


def user_actor(conn: Connection, user_id: int) -> Actor:
    row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    if row is None:
        raise not_found("user_id", "用户", "user", user_id)
    return Actor(kind="user", name=row["login"], uin=row["uin"], user_id=row["id"],
                 role=row["role"])


def contacts(conn: Connection, uin: int) -> dict:
    """Who can be reached for account ``uin`` (for notifications): its name, the
    account's contact email and phone (ACC-1), and each user's role, email and phone."""
    account = get_account(conn, SYSTEM, uin)
    people = conn.execute(select(users.c.login, users.c.role, users.c.email, users.c.phone)
                          .where(users.c.uin == uin).order_by(users.c.id)).mappings()
    return {"name": account["name"], "email": account["email"], "phone": account["phone"],
            "users": [dict(u) for u in people]}


def list_users(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    require(actor, uin, READ_PROFILE)
    rows = conn.execute(select(users).where(users.c.uin == uin).order_by(users.c.id)).mappings()
    return [dict(r) for r in rows]


# ---------------------------------------------------------------- storefronts

def add_storefront(conn: Connection, uin: int, code: str, name: str) -> int:
    """ACC-3: another storefront of the same owner; all share one fee account."""
    return conn.execute(insert(storefronts).values(uin=uin, code=code, name=name)
                        .returning(storefronts.c.id)).scalar_one()


def list_storefronts(conn: Connection, actor: Actor, uin: int) -> list[dict]:
    require(actor, uin, READ_PROFILE)
    return [dict(r) for r in conn.execute(select(storefronts).where(storefronts.c.uin == uin)
                                          .order_by(storefronts.c.id)).mappings()]


def require_storefront(conn: Connection, uin: int, code: str) -> None:
    found = conn.execute(select(storefronts.c.id).where(storefronts.c.uin == uin,
                                                        storefronts.c.code == code)).first()
    if found is None:
        raise not_found("storefront", "门户", "storefront", code)
