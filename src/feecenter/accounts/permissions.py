"""Who may do what (ACC-2), checked in the service layer for every adapter.

An ``Actor`` is whoever calls a service: a user of a customer account (owner,
sub-user or collaborator with a role), a platform operator, or the system
itself (jobs, the demo). Money views and actions need the owner or the
finance role; user management and renewal management need owner or admin.
Every permission below guards actions that exist; each is checked where its
action happens (``require`` / ``holds`` in the services).
Managing users and their API keys follows ``may_manage_user``: nobody gains,
through a user or a key, a right it does not hold itself.
What a customer sees of who did something follows ``labels_seen_by``: operators'
names stay with operators (a user sees "operator" or "system", never the name).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from feecenter.errors import PermissionDenied

ROLES = ("owner", "finance", "admin", "readonly")
# Each permission and the actions that check it (docs/api.md, "Who may do what"):
# balances, transactions, bills, coupons, arrears, every order, payments, refunds
FINANCE = "finance"
# adding users, managing their API keys (``may_manage_user``)
MANAGE_USERS = "manage_users"
# renewal orders: creating one, reading or voiding one (``orders.service``); paying
# it spends the balance, which stays FINANCE
RENEWAL = "renewal"
# the account, its users, storefronts, resources and in-site messages
READ_PROFILE = "read_profile"
# projects, resource names, tags and moves, opening and releasing postpaid resources
MANAGE_RESOURCES = "manage_resources"

_GRANTS = {
    "owner": {FINANCE, MANAGE_USERS, RENEWAL, READ_PROFILE, MANAGE_RESOURCES},
    "finance": {FINANCE, READ_PROFILE},
    "admin": {MANAGE_USERS, RENEWAL, READ_PROFILE, MANAGE_RESOURCES},
    "readonly": {READ_PROFILE},
}

_PERMISSION_NAMES = {
    FINANCE: ("财务", "finance"),
    MANAGE_USERS: ("用户管理", "user management"),
    RENEWAL: ("续费管理", "renewal management"),
    READ_PROFILE: ("账号信息", "account profile"),
    MANAGE_RESOURCES: ("资源与项目管理", "resource and project management"),
}


@dataclass(frozen=True)
class Actor:
    kind: str  # user | operator | system
    name: str
    uin: int | None = None
    user_id: int | None = None
    role: str | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.name}" + (f"@{self.uin}" if self.uin else "")


SYSTEM = Actor(kind="system", name="system")


def operator(name: str) -> Actor:
    return Actor(kind="operator", name=name)


def holds(actor: Actor, uin: int, permission: str) -> bool:
    """Does ``actor`` hold ``permission`` on account ``uin``? (operators and the system: yes)"""
    if actor.kind in ("system", "operator"):
        return True
    return actor.uin == uin and permission in _GRANTS.get(actor.role or "", set())


def require(actor: Actor, uin: int, permission: str) -> None:
    """Raise PermissionDenied unless ``actor`` may use ``permission`` on account ``uin``."""
    if holds(actor, uin, permission):
        return
    zh, en = _PERMISSION_NAMES[permission]
    if actor.uin != uin:
        raise PermissionDenied("无权访问其他账号的数据", "no access to another account's data")
    raise PermissionDenied(f"缺少{zh}权限，请联系主账号授权",
                               f"the {en} permission is required; ask the account owner",
                               role=actor.role)


def require_owner(actor: Actor, uin: int) -> None:
    """Raise PermissionDenied unless ``actor`` is the owner of account ``uin`` (or an
    operator, or the system): what only the owner may do, such as cancelling (ACC-5)."""
    if actor.kind in ("system", "operator") or (actor.uin == uin and actor.role == "owner"):
        return
    if actor.uin != uin:
        raise PermissionDenied("无权访问其他账号的数据", "no access to another account's data")
    raise PermissionDenied("仅主账号可执行此操作", "only the account owner may do this",
                           role=actor.role)


def require_operator(actor: Actor) -> None:
    if actor.kind not in ("system", "operator"):
        raise PermissionDenied("仅平台运营人员可执行此操作", "only platform operators may do this")


# ---------------------------------------------------------------- who did it, as seen

def label_seen_by(viewer: Actor, label: str | None) -> str | None:
    """An ``Actor.label`` as ``viewer`` may see it: operators and the system see every
    label; a customer (a user) sees users' labels as they are and an operator's or the
    system's by its kind only ("operator", "system"), never an operator's name."""
    if viewer.kind != "user" or not label or label.startswith("user:"):
        return label
    return label.split(":", 1)[0]


def labels_seen_by(viewer: Actor, row: Mapping, names: Iterable[str]) -> dict:
    """A copy of ``row`` whose columns ``names`` (actor labels) are as ``viewer`` may
    see them (``label_seen_by``); columns the row lacks stay absent."""
    out = dict(row)
    for name in names:
        if name in out:
            out[name] = label_seen_by(viewer, out[name])
    return out


# ---------------------------------------------------------------- users and their keys

def lesser_roles(role: str | None) -> tuple[str, ...]:
    """Roles holding strictly fewer rights than ``role`` (admin: readonly only)."""
    mine = _GRANTS.get(role or "", set())
    return tuple(r for r in ROLES if _GRANTS[r] < mine)


def may_manage_user(actor: Actor, uin: int, target_role: str | None,
                    target_user_id: int | None) -> bool:
    """May ``actor`` add a user of ``target_role`` to account ``uin``, or create, enable,
    disable or list the API keys of the user ``target_user_id`` holding that role?

    Operators and the system: always. A user, only in its own account: itself
    (its own keys) always; the owner: everyone; an admin: users of a lesser
    role (readonly) — never the owner, a finance user or another admin, whose
    keys would give it rights it lacks. Finance and readonly: only themselves.
    """
    if actor.kind in ("system", "operator"):
        return True
    if actor.kind != "user" or actor.uin != uin:
        return False
    if target_user_id is not None and target_user_id == actor.user_id:
        return True
    if actor.role == "owner":
        return True
    return MANAGE_USERS in _GRANTS.get(actor.role or "", set()) \
        and target_role in lesser_roles(actor.role)


def require_manage_user(actor: Actor, uin: int, target_role: str | None,
                        target_user_id: int | None) -> None:
    """Raise PermissionDenied (with the reason) unless ``may_manage_user``."""
    if may_manage_user(actor, uin, target_role, target_user_id):
        return
    if actor.uin != uin:
        raise PermissionDenied("无权访问其他账号的数据", "no access to another account's data")
    if MANAGE_USERS not in _GRANTS.get(actor.role or "", set()):
        raise PermissionDenied("缺少用户管理权限：只能管理自己的密钥",
                               "the user management permission is required; "
                               "you may manage only your own API keys", role=actor.role)
    lesser = "/".join(lesser_roles(actor.role)) or "-"
    raise PermissionDenied(f"只能管理权限少于自己的用户（{lesser}），不能管理角色为 {target_role} 的用户",
                           f"you may manage only users with fewer rights ({lesser}), "
                           f"not one with the {target_role} role", role=actor.role,
                           target_role=target_role)
